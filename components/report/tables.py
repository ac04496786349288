"""The comparison grid: per-cell results aggregated over seeds, and the report built from them
(as document blocks: components/document.py renders Markdown, components/html.py HTML).

One row per (task, arch, init, fraction). Numbers come from the cells that finished; a row whose
cells were skipped, diverged or failed says so in `status` and `note` instead of silently vanishing.
The papers' numbers (components/references) stand beside ours, flagged where our setting differs.
"""
from __future__ import annotations

import pandas as pd

from components.report import stats
from components.report.claims import CHANCE, NOT_RUN, Verdict, rising_arm
from components.report.document import Block, Bullets, Figure, Heading, Paragraph, Table

KEYS = ["task", "arch", "init", "fraction"]
NUMBERS = ["test_accuracy", "val_accuracy", "params_trainable", "params_total", "pretrain_steps",
           "finetune_steps", "finetune_seconds", "pretrain_seconds", "device", "pretrain_tokens", "finetune_tokens",
           "state_size", "flops_per_token", "derived_by", "seed", "val_rising", "majority_accuracy"]


def _status(statuses: pd.Series) -> str:
    counts = statuses.value_counts()
    if list(counts.index) == ["ok"]:
        return "ok"
    return ", ".join(f"{s} {n}/{len(statuses)}" for s, n in counts.items())


def aggregate(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, arch, init, fraction) from one row per cell (a seed).
    Accuracies are in percent; std is the sample std over finished seeds (NaN for one seed), and
    [acc_low, acc_high] the 95% t interval of the mean (NaN below three seeds or with no spread)."""
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
        ci = stats.mean_ci(done["acc"].to_numpy(dtype=float))
        majority = 100 * float(pd.to_numeric(done["majority_accuracy"], errors="coerce").astype(float).mean())
        rising = done["val_rising"].astype("boolean").fillna(False).astype(bool)
        flags = ([f"at chance (chance level {majority:.1f}%)"] if done["acc"].mean() - majority < CHANCE else []) \
            + ([f"not converged (validation still rising in {int(rising.sum())} of {len(done)} seeds)"]
               if rising_arm(done["val_rising"]) else [])
        rows.append({**dict(zip(KEYS, key)), "status": _status(g["status"]), "n_seeds": len(done),
                     "acc_mean": done["acc"].mean(), "acc_std": done["acc"].std(),
                     "acc_low": max(0.0, ci.low) if ci.has_interval else ci.low,  # accuracy lives in [0, 100]
                     "acc_high": min(100.0, ci.high) if ci.has_interval else ci.high,
                     "flags": "; ".join(flags), "majority_pct": majority,
                     "val_acc_mean": done["val"].mean(),
                     **{c: (done[c].iloc[0] if len(done) else pd.NA) for c in
                        ("params_trainable", "params_total", "pretrain_steps", "finetune_steps", "state_size",
                         "flops_per_token", "derived_by")},
                     # per seed (a mean), so arms with different numbers of finished seeds compare
                     "pretrain_seconds": pd.to_numeric(done["pretrain_seconds"], errors="coerce").mean() if len(done) else pd.NA,
                     "finetune_seconds": pd.to_numeric(done["finetune_seconds"], errors="coerce").mean() if len(done) else pd.NA,
                     "device": ", ".join(sorted(done["device"].dropna().astype(str).unique())) if len(done) else "",
                     "note": "; ".join(notes)})
    table = pd.DataFrame(rows)
    scratch = table[table["init"] == "scratch"].set_index(["task", "arch", "fraction"])["acc_mean"]
    table["delta_vs_scratch"] = [row.acc_mean - scratch.get((row.task, row.arch, row.fraction), float("nan"))
                                 for row in table.itertuples()]
    return table.round({"acc_mean": 2, "acc_std": 2, "acc_low": 2, "acc_high": 2, "val_acc_mean": 2, "delta_vs_scratch": 2,
                        "pretrain_seconds": 1, "finetune_seconds": 1})


ARM = ["task", "arch", "init"]


def _spent(records: pd.DataFrame) -> pd.DataFrame:
    """Steps, tokens and seconds per seed (or trial): each pretraining start it used once (one per
    label fraction where self-pretraining saw that fraction's rows, one shared otherwise), plus the
    finetuning of each of its label fractions. Rows that did not finish count nothing."""
    r = records.copy()
    for c in ("pretrain_steps", "pretrain_tokens", "pretrain_seconds", "finetune_steps", "finetune_tokens",
              "finetune_seconds", "trial", "status", "pretrain_run_id"):
        if c not in r:
            r[c] = pd.NA
    r["status"] = r["status"].fillna("ok")
    r = r[r["status"] == "ok"]
    num = lambda s: pd.to_numeric(s, errors="coerce").fillna(0)  # noqa: E731
    r = r.assign(trial=r["trial"].fillna(-1), start=r["pretrain_run_id"].fillna(""),
                 **{c: num(r[c]) for c in r.columns if c.endswith(("_steps", "_tokens", "_seconds"))})
    keys = ARM + ["seed", "trial"]
    pre = r.drop_duplicates(keys + ["start"]).groupby(keys, sort=False)  # each pretraining once
    fine = r.groupby(keys, sort=False)
    return pd.DataFrame({
        "steps": pre["pretrain_steps"].sum() + fine["finetune_steps"].sum(),
        "tokens": pre["pretrain_tokens"].sum() + fine["finetune_tokens"].sum(),
        "seconds": pre["pretrain_seconds"].sum() + fine["finetune_seconds"].sum()}).reset_index()


def budget(results: pd.DataFrame, trials: pd.DataFrame, selections: dict[tuple, dict]) -> pd.DataFrame:
    """What each (task, arch, init) arm received: its tuning trials (steps, tokens, wall time of
    training), then per grid seed; pretraining counts toward the arm that uses it."""
    rows, grid, tuned = [], _spent(results), _spent(trials) if len(trials) else None
    for key, g in results.groupby(ARM, sort=False):
        sel = selections.get(key, {})
        if sel.get("status") == "skipped" or (g.get("status", pd.Series(["ok"])) == "skipped").all():
            continue
        t = tuned[(tuned[ARM] == list(key)).all(axis=1)] if tuned is not None else pd.DataFrame()
        s = grid[(grid[ARM] == list(key)).all(axis=1)]
        chosen = sel.get("selected")
        pretrains = "pretrain_steps" in g and (pd.to_numeric(g["pretrain_steps"], errors="coerce").fillna(0) > 0).any()
        shown = {k: v for k, v in (sel.get("values") or {}).items() if pretrains or not k.startswith("pretrain.")}
        scored = [s for s in (sel.get("scores") or {}).values() if s is not None]  # what selection could use
        rows.append({**dict(zip(ARM, key)), "trials": sel.get("trials", 1),
                     "trials_finished": len(scored) if sel.get("trials", 1) > 1 else 1,
                     "selected": "defaults" if sel.get("trials", 1) == 1 else
                     ("none finished" if chosen is None else f"trial {chosen}: " +
                      (", ".join(f"{k} {v:g}" for k, v in shown.items()) or "the defaults")),
                     "tuning_steps": t["steps"].sum() if len(t) else 0, "tuning_tokens": t["tokens"].sum() if len(t) else 0,
                     "tuning_seconds": t["seconds"].sum() if len(t) else 0.0, "seeds": len(s),
                     "steps_per_seed": s["steps"].mean() if len(s) else pd.NA,
                     "tokens_per_seed": s["tokens"].mean() if len(s) else pd.NA,
                     "seconds_per_seed": s["seconds"].mean() if len(s) else pd.NA,
                     "total_steps": (t["steps"].sum() if len(t) else 0) + s["steps"].sum(),
                     "total_tokens": (t["tokens"].sum() if len(t) else 0) + s["tokens"].sum(),
                     "total_seconds": (t["seconds"].sum() if len(t) else 0.0) + s["seconds"].sum()})
    return pd.DataFrame(rows)


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


def _budget_blocks(b: pd.DataFrame, tuning_note: str) -> list[Block]:
    if b is None or not len(b):
        return []
    body = [[r.task, r.arch, r.init, f"{r.trials_finished}/{r.trials}" if r.trials > 1 else "1 (no tuning)", r.selected,
             _count(r.tuning_steps), _count(r.tuning_tokens), _seconds(r.tuning_seconds), str(r.seeds),
             _count(r.steps_per_seed), _count(r.tokens_per_seed), _seconds(r.seconds_per_seed),
             _count(r.total_steps), _count(r.total_tokens), _seconds(r.total_seconds)] for r in b.itertuples()]
    uneven = b[b["trials_finished"] != b["trials"]] if (b["trials"] > 1).any() else b[:0]
    blocks = [Heading("Tuning budget", 2), Paragraph(tuning_note),
              Table(["task", "arch", "init", "trials (finished/declared)", "selected", "tuning steps", "tuning tokens",
                     "tuning time", "seeds", "steps / seed", "tokens / seed", "time / seed", "total steps",
                     "total tokens", "total time"], body,
                    [False, False, False, True, False] + [True] * 10)]
    if len(uneven):
        blocks.append(Paragraph("**Unequal budget:** " + ", ".join(f"{r.arch} × {r.init} on {r.task} finished "
                                                                   f"{r.trials_finished} of {r.trials} trials"
                                                                   for r in uneven.itertuples())
                                + " (a trial that diverged or failed counts against its arm)."))
    return blocks


def _acc_text(r) -> str:
    text = _fmt(r.acc_mean) + ("" if pd.isna(r.acc_std) else f" ± {r.acc_std:.2f}")
    if not pd.isna(getattr(r, "acc_low", float("nan"))):
        text += f" [{r.acc_low:.2f}, {r.acc_high:.2f}]"
    return text


def _derived(x, flops: bool = False) -> str:
    if x is None or pd.isna(x):
        return "–"
    return f"{x / 1e6:.2f} M" if flops and x >= 1e6 else f"{x / 1e3:.1f} k" if flops else f"{int(x):,}"


def headline(verdicts: list[Verdict], table: pd.DataFrame, scale: str = "") -> str:
    """The report's first paragraph: which claims hold and which do not, at what scale and training
    budget (`scale`), and the chance baseline of each task."""
    by: dict[str, list[str]] = {}
    for v in verdicts:
        if v.verdict != NOT_RUN:
            by.setdefault(v.verdict, []).append(f"{v.claim} ({v.task}: {v.difference:+.1f})"
                                                 if v.difference == v.difference else f"{v.claim} ({v.task})")
    if not by:
        parts = ["No claim of the three papers could be tested on this grid's arms."]
    else:
        n = sum(len(x) for x in by.values())
        parts = [f"Of {n} claim comparisons, {len(by.get('holds', []))} hold after Holm's correction"
                 + (f": {'; '.join(by['holds'])}." if by.get("holds") else ".")]
        for verdict, said in (("contradicted", "Contradicted"), ("inconclusive", "Inconclusive")):
            if by.get(verdict):
                parts.append(f"{said}: {'; '.join(by[verdict])}.")
        rest = {k: v for k, v in by.items() if k not in ("holds", "contradicted", "inconclusive")}
        if rest:
            parts.append("Without a verdict: " + "; ".join(f"{k} {len(v)}" for k, v in rest.items()) + ".")
    chance = table.groupby("task", sort=False)["majority_pct"].mean().dropna() if "majority_pct" in table else []
    if len(chance):
        parts.append("Chance-level test accuracy (the majority class; Bit Memory: copying the visible bits): "
                     + ", ".join(f"{t} {c:.1f}%" for t, c in chance.items()) + ".")
    return " ".join(([scale] if scale else []) + parts)


def document(table: pd.DataFrame, verdicts: list[Verdict], refs: pd.DataFrame, settings: dict[str, str],
             figures: dict[str, list[Figure]], context: str, budget_table: pd.DataFrame | None = None,
             tuning_note: str = "", scale: str = "") -> list[Block]:
    """The report: claims with intervals, the tuning budget, then per task the grid with the papers'
    numbers and its figures. `settings[task]` says how our setting differs from the papers' ("" when
    it does not); `figures[task]` are drawn under the task's table; `context` is a line on what ran where."""
    shown = [v for v in verdicts if v.verdict != NOT_RUN]
    absent = sorted({v.claim for v in verdicts if v.verdict == NOT_RUN} - {v.claim for v in shown})
    versions = sorted({str(v) for v in table.get("derived_by", pd.Series(dtype=object)).dropna()})
    blocks: list[Block] = [
        Heading("Comparison grid", 1),
        Paragraph("**Headline.** " + headline(verdicts, table, scale)),
        Paragraph(context),
        Paragraph("Test accuracy (%) at the best-validation checkpoint: mean ± std over seeds [95% t interval of "
                  "the mean]; Δ is the change against `scratch` for the same task, architecture and label fraction. "
                  "**paper** is the published number for the same cell (`?`: the project's notes could not verify "
                  "it; `S4`: the paper ran S4, we run S4D). Cells that did not run say why."),
        Heading("Claims", 2),
        Paragraph("Each claim of the three papers as a difference in test accuracy points with its 95% interval: "
                  "paired by seed where the arms ran the same seeds (same data order and initialization seed), "
                  "Welch's interval otherwise. The claims form one family: p-values are one-sided on the claimed "
                  "side, shown raw and Holm-adjusted over every claim with an interval. **holds**: the interval "
                  "excludes the claim's margin on the claimed side and the adjusted p is below 0.025; "
                  "**contradicted**: likewise on the other side; **inconclusive**: neither (with the seeds that "
                  "would resolve the observed difference at its spread: exact paired-t power, 80%); **no verdict**: "
                  "fewer than 3 finished seeds or no spread; **not converged** / **at chance**: a cell the claim "
                  "rests on was still improving at the end, or is within 2 points of the majority class; "
                  "**premise not met**: the narrowing claim where the SSM does not lead from scratch. SPT claims "
                  "state the compute ratio (steps of the SPT arm over scratch). With few seeds and many claims, "
                  "holding after correction takes a large, consistent effect: an inconclusive claim says when it "
                  "was significant before correction."),
        Table(["claim", "task", "verdict", "difference [95% CI] and evidence"],
              [[v.claim, v.task, f"**{v.verdict}**", v.evidence] for v in shown]),
    ]
    if absent:
        blocks.append(Paragraph("Not run at this grid's arms: " + "; ".join(absent) + "."))
    blocks += _budget_blocks(budget_table, tuning_note)
    if versions:
        blocks.append(Paragraph(f"Derived metrics (state size: real numbers a recurrent layer carries per sequence, "
                                f"– where the state grows with length; FLOPs per token: forward matrix products and "
                                f"attention at the task's mean test length, FFTs not counted) computed by code "
                                f"version {', '.join(versions)} (components/versioning.py)."))
    for task, rows in table.groupby("task", sort=False):
        blocks.append(Heading(task, 2))
        if settings.get(task):
            blocks.append(Paragraph(f"**Not the papers' setting:** {settings[task]}. Compare trends, not levels."))
        body = []
        for r in rows[rows["n_seeds"] > 0].itertuples():
            acc = _acc_text(r)
            if getattr(r, "flags", ""):
                acc += f" (**{r.flags}**)"
            if r.status != "ok":
                acc += f" ({r.status}: {r.note})"
            paper = paper_numbers(refs, task, r.arch, r.init)
            if r.fraction != 1.0 and paper != "–":
                paper += " (full labels)"  # the papers' numbers are for every label
            body.append([r.arch, r.init, f"{100 * r.fraction:g}%", str(r.n_seeds), acc, _fmt(r.delta_vs_scratch, True),
                         paper, _fmt(r.val_acc_mean),
                         f"{_count(r.params_trainable)} / {_count(r.params_total)}",
                         _derived(getattr(r, "state_size", None)), _derived(getattr(r, "flops_per_token", None), True),
                         f"{_count(r.pretrain_steps)} + {_count(r.finetune_steps)}",
                         _seconds((r.pretrain_seconds or 0) + (r.finetune_seconds or 0)), r.device or "–"])
        blocks.append(Table(["arch", "init", "labels", "seeds", "test acc", "Δ vs scratch", "paper", "val acc",
                             "trainable / total params", "state size", "FLOPs / token", "steps (pretrain + finetune)",
                             "train time / seed", "device"], body,
                            [False, False, True, True, True, True, False, True, True, True, True, True, True, False]))
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
