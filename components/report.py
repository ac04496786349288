"""The comparison grid: per-cell results aggregated over seeds, as a table and as Markdown."""
from __future__ import annotations

import pandas as pd

KEYS = ["task", "arch", "init"]


def aggregate(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, arch, init) from one row per (task, arch, init, seed).
    Accuracies are reported in percent; std is the sample std over seeds (NaN for one seed)."""
    acc = results.assign(acc=100.0 * results["test_accuracy"])
    g = acc.groupby(KEYS, sort=False)
    table = g.agg(n_seeds=("seed", "nunique"), acc_mean=("acc", "mean"), acc_std=("acc", "std"),
                  val_acc_mean=("val_accuracy", lambda s: 100.0 * s.mean()),
                  params_trainable=("params_trainable", "first"), params_total=("params_total", "first"),
                  pretrain_steps=("pretrain_steps", "first"), finetune_steps=("finetune_steps", "first"),
                  finetune_seconds=("finetune_seconds", "sum")).reset_index()
    scratch = table[table["init"] == "scratch"].set_index(["task", "arch"])["acc_mean"]
    table["delta_vs_scratch"] = [
        row.acc_mean - scratch.get((row.task, row.arch), float("nan")) for row in table.itertuples()
    ]
    return table.round({"acc_mean": 2, "acc_std": 2, "val_acc_mean": 2, "delta_vs_scratch": 2,
                        "finetune_seconds": 1})


def _fmt(x: float, signed: bool = False) -> str:
    if pd.isna(x):
        return "–"
    return f"{x:+.2f}" if signed else f"{x:.2f}"


def render_markdown(table: pd.DataFrame) -> str:
    lines = ["# Comparison grid", "",
             "Test accuracy (%) at the best-validation checkpoint, mean ± std over seeds; "
             "Δ is the change against `scratch` for the same task and architecture.", ""]
    for task, rows in table.groupby("task", sort=False):
        lines += [f"## {task}", "",
                  "| arch | init | seeds | test acc | Δ vs scratch | val acc | trainable / total params | pretrain steps | finetune steps |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in rows.itertuples():
            acc = _fmt(r.acc_mean) + ("" if pd.isna(r.acc_std) else f" ± {r.acc_std:.2f}")
            lines.append(f"| {r.arch} | {r.init} | {r.n_seeds} | {acc} | {_fmt(r.delta_vs_scratch, True)} | "
                         f"{_fmt(r.val_acc_mean)} | {r.params_trainable:,} / {r.params_total:,} | {r.pretrain_steps} | "
                         f"{r.finetune_steps} |")
        lines.append("")
    return "\n".join(lines)
