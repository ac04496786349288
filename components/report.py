"""The comparison grid: per-cell results aggregated over seeds, and the report built from them
(as document blocks: components/document.py renders Markdown, components/html.py HTML).

One row per (task, arch, init, fraction). Numbers come from the cells that finished; a row whose
cells were skipped, diverged or failed says so in `status` and `note` instead of silently vanishing.
The papers' numbers (components/references) stand beside ours, flagged where our setting differs.
"""
from __future__ import annotations

import pandas as pd

from components.claims import Verdict
from components.document import Block, Bullets, Figure, Heading, Paragraph, Table

KEYS = ["task", "arch", "init", "fraction"]
NUMBERS = ["test_accuracy", "val_accuracy", "params_trainable", "params_total", "pretrain_steps",
           "finetune_steps", "finetune_seconds", "pretrain_seconds", "device"]


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
                     "device": ", ".join(sorted(done["device"].dropna().astype(str).unique())) if len(done) else "",
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


def _seconds(x) -> str:
    if pd.isna(x):
        return "–"
    return f"{x / 60:.1f} min" if x >= 60 else f"{x:.0f} s"


PAPER = {"spt": "SPT", "las": "LaS", "fpt": "FPT"}
RANK = {"verified": 0, "likely": 1, "unverified": 2}


def paper_numbers(refs: pd.DataFrame, task: str, arch: str, init: str) -> str:
    """The papers' test accuracies for this cell (at most two, surest first): `59.15 (SPT Table 1)`,
    with `?` after an unverified number; S4's numbers stand in for our S4D, marked `S4`."""
    rows = refs[(refs["task"] == task) & (refs["init"] == init) & (refs["metric"] == "accuracy_pct")]
    exact, proxy = rows[rows["arch"] == arch], rows[rows["arch"] == "s4"] if arch.startswith("s4d") else rows[:0]
    found = exact if len(exact) else proxy
    if not len(found):
        return "–"
    found = found.assign(rank=found["confidence"].map(RANK), own=~found["table"].str.startswith(("Table", "Figure")))
    found = found.sort_values(["rank", "own", "paper", "table"]).head(2)  # a paper's own tables before re-runs
    return "; ".join(f"{'S4 ' if r.arch != arch else ''}{r.value:.2f}{'?' if r.confidence == 'unverified' else ''} "
                     f"({PAPER[r.paper]} {r.table})" for r in found.itertuples())


def document(table: pd.DataFrame, verdicts: list[Verdict], refs: pd.DataFrame, settings: dict[str, str],
             figures: dict[str, list[Figure]], context: str) -> list[Block]:
    """The report: claims, then per task the grid with the papers' numbers and its figures.
    `settings[task]` says how our setting differs from the papers' ("" when it does not);
    `figures[task]` are drawn under the task's table; `context` is a line on what ran where."""
    blocks: list[Block] = [
        Heading("Comparison grid", 1),
        Paragraph(context),
        Paragraph("Test accuracy (%) at the best-validation checkpoint, mean ± std over seeds; Δ is the change "
                  "against `scratch` for the same task, architecture and label fraction. **paper** is the published "
                  "number for the same cell (`?`: the project's notes could not verify it; `S4`: the paper ran S4, "
                  "we run S4D). Cells that did not run say why."),
        Heading("Claims", 2),
        Paragraph("Each claim of the three papers, computed from this grid (mean over seeds; no intervals yet)."),
        Table(["claim", "task", "verdict", "evidence"], [[v.claim, v.task, f"**{v.verdict}**", v.evidence]
                                                         for v in verdicts]),
    ]
    for task, rows in table.groupby("task", sort=False):
        blocks.append(Heading(task, 2))
        if settings.get(task):
            blocks.append(Paragraph(f"**Not the papers' setting:** {settings[task]}. Compare trends, not levels."))
        body = []
        for r in rows[rows["n_seeds"] > 0].itertuples():
            acc = _fmt(r.acc_mean) + ("" if pd.isna(r.acc_std) else f" ± {r.acc_std:.2f}")
            if r.status != "ok":
                acc += f" ({r.status}: {r.note})"
            body.append([r.arch, r.init, f"{100 * r.fraction:g}%", str(r.n_seeds), acc, _fmt(r.delta_vs_scratch, True),
                         paper_numbers(refs, task, r.arch, r.init), _fmt(r.val_acc_mean),
                         f"{_count(r.params_trainable)} / {_count(r.params_total)}",
                         f"{_count(r.pretrain_steps)} + {_count(r.finetune_steps)}",
                         _seconds((r.pretrain_seconds or 0) + (r.finetune_seconds or 0)), r.device or "–"])
        blocks.append(Table(["arch", "init", "labels", "seeds", "test acc", "Δ vs scratch", "paper", "val acc",
                             "trainable / total params", "steps (pretrain + finetune)", "train time", "device"], body,
                            [False, False, True, True, True, True, False, True, True, True, True, False]))
        missing = rows[rows["n_seeds"] == 0]
        if len(missing):
            items = []
            for note, group in missing.groupby("note", sort=False):
                which = ", ".join(f"{r.arch} × {r.init}" + ("" if r.fraction == 1.0 else f" ({100 * r.fraction:g}%)")
                                  for r in group.itertuples())
                items.append(f"{which} ({group['status'].iloc[0]}): {note}")
            blocks += [Paragraph("Not run:"), Bullets(items)]
        blocks += figures.get(task, [])
    return blocks
