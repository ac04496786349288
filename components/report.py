"""The comparison grid: per-cell results aggregated over seeds, as a table and as Markdown.

One row per (task, arch, init, fraction). Numbers come from the cells that finished; a row whose
cells were skipped or diverged says so in `status` and `note` instead of silently vanishing.
"""
from __future__ import annotations

import pandas as pd

KEYS = ["task", "arch", "init", "fraction"]
NUMBERS = ["test_accuracy", "val_accuracy", "params_trainable", "params_total", "pretrain_steps",
           "finetune_steps", "finetune_seconds", "pretrain_seconds"]


def _status(statuses: pd.Series) -> str:
    counts = statuses.value_counts()
    if list(counts.index) == ["ok"]:
        return "ok"
    return ", ".join(f"{s} {n}/{len(statuses)}" for s, n in counts.items())


def aggregate(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, arch, init, fraction) from one row per cell (a seed).
    Accuracies are in percent; std is the sample std over finished seeds (NaN for one seed)."""
    results = results.copy()
    for col in NUMBERS + ["status", "reason"]:
        if col not in results:
            results[col] = pd.NA
    results["status"] = results["status"].fillna("ok")
    results["acc"] = 100.0 * pd.to_numeric(results["test_accuracy"], errors="coerce")
    results["val"] = 100.0 * pd.to_numeric(results["val_accuracy"], errors="coerce")
    rows = []
    for key, g in results.groupby(KEYS, sort=False):
        done = g[g["status"] == "ok"]
        notes = g.loc[g["status"] != "ok", "reason"].dropna().unique()
        rows.append({**dict(zip(KEYS, key)), "status": _status(g["status"]), "n_seeds": len(done),
                     "acc_mean": done["acc"].mean(), "acc_std": done["acc"].std(), "val_acc_mean": done["val"].mean(),
                     **{c: (done[c].iloc[0] if len(done) else pd.NA) for c in
                        ("params_trainable", "params_total", "pretrain_steps", "finetune_steps")},
                     "pretrain_seconds": pd.to_numeric(done["pretrain_seconds"], errors="coerce").sum() if len(done) else pd.NA,
                     "finetune_seconds": pd.to_numeric(done["finetune_seconds"], errors="coerce").sum() if len(done) else pd.NA,
                     "note": "; ".join(notes)})
    table = pd.DataFrame(rows)
    scratch = table[table["init"] == "scratch"].set_index(["task", "arch", "fraction"])["acc_mean"]
    table["delta_vs_scratch"] = [row.acc_mean - scratch.get((row.task, row.arch, row.fraction), float("nan"))
                                 for row in table.itertuples()]
    return table.round({"acc_mean": 2, "acc_std": 2, "val_acc_mean": 2, "delta_vs_scratch": 2,
                        "pretrain_seconds": 1, "finetune_seconds": 1})


def _fmt(x, signed: bool = False) -> str:
    if pd.isna(x):
        return "–"
    return f"{x:+.2f}" if signed else f"{x:.2f}"


def _count(x) -> str:
    return "–" if pd.isna(x) else f"{int(x):,}"


def render_markdown(table: pd.DataFrame) -> str:
    lines = ["# Comparison grid", "",
             "Test accuracy (%) at the best-validation checkpoint, mean ± std over seeds; "
             "Δ is the change against `scratch` for the same task, architecture and label fraction. "
             "Cells that did not run say why.", ""]
    for task, rows in table.groupby("task", sort=False):
        lines += [f"## {task}", "",
                  "| arch | init | labels | seeds | test acc | Δ vs scratch | val acc | trainable / total params "
                  "| pretrain steps | finetune steps |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows[rows["n_seeds"] > 0].itertuples():
            acc = _fmt(r.acc_mean) + ("" if pd.isna(r.acc_std) else f" ± {r.acc_std:.2f}")
            if r.status != "ok":
                acc += f" ({r.status}: {r.note})"
            lines.append(f"| {r.arch} | {r.init} | {100 * r.fraction:g}% | {r.n_seeds} | {acc} "
                         f"| {_fmt(r.delta_vs_scratch, True)} | {_fmt(r.val_acc_mean)} "
                         f"| {_count(r.params_trainable)} / {_count(r.params_total)} "
                         f"| {_count(r.pretrain_steps)} | {_count(r.finetune_steps)} |")
        missing = rows[rows["n_seeds"] == 0]
        if len(missing):
            lines += ["", "Not run:"]
            for note, group in missing.groupby("note", sort=False):
                which = ", ".join(f"{r.arch} × {r.init}" + ("" if r.fraction == 1.0 else f" ({100 * r.fraction:g}%)")
                                  for r in group.itertuples())
                lines.append(f"- {which} ({group['status'].iloc[0]}): {note}")
        lines.append("")
    return "\n".join(lines)
