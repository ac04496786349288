"""The papers' claims, each checked on the grid's per-seed numbers as a difference with a 95%
interval (components/report/stats.py): paired by seed where both arms ran the same seeds, Welch's
interval otherwise. The verdict is `holds` when the interval excludes the claim's margin on the
claimed side, `contradicted` when it excludes it on the other, `inconclusive` otherwise; with the
seeds that would resolve the observed difference at its spread. Pure: per-cell results in, one
verdict per (claim, task, label fraction) out. Differences are in accuracy points."""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from components.report import stats

NOT_RUN = "not run"
CLOSE = 2.0  # points: "comes close" (the SPT paper: DLR + SPT 83.4 vs S4 + SPT 84.5)


@dataclass(frozen=True)
class Verdict:
    claim: str
    task: str
    verdict: str
    evidence: str
    difference: float = math.nan
    low: float = math.nan
    high: float = math.nan
    n: int = 0
    method: str = ""
    seeds_needed: int | None = None


def _families(archs: dict) -> dict[str, list[str]]:
    """Arch names by role: transformers, LaS, structured SSMs, unstructured (random-init) SSMs, FPT."""
    fam = {"transformer": [], "las": [], "ssm": [], "ssm_rand": [], "fpt": []}
    for name, cfg in archs.items():
        if cfg.kind == "transformer":
            fam["transformer"].append(name)
        elif cfg.kind in ("las", "las_chunk"):
            fam["las"].append(name)
        elif cfg.kind in ("s4d", "dlr"):
            fam["ssm_rand" if cfg.rand_init else "ssm"].append(name)
        elif cfg.kind == "fpt":
            fam["fpt"].append(name)
    return fam


def _arm(rows: pd.DataFrame, arch: str, init: str) -> pd.Series | None:
    """Test accuracy (%) by seed of one arm; diverged or failed seeds are NaN (kept, and counted,
    even when no seed finished); None when the arm is not in the grid or was skipped."""
    got = rows[(rows["arch"] == arch) & (rows["init"] == init) & (rows["status"] != "skipped")]
    if got.empty:
        return None
    return got.set_index("seed")["acc"].where(got.set_index("seed")["status"] == "ok")


def difference(a: pd.Series, b: pd.Series) -> stats.Interval:
    """a - b: paired by seed when both ran the same seeds (and two pairs finished), else Welch
    (where it has more to go by)."""
    if set(a.index) == set(b.index):
        seeds = sorted(a.index)
        ci = stats.paired(a[seeds].to_numpy(), b[seeds].to_numpy())
        if ci.n >= 2:
            return ci
        unpaired = stats.welch(a.to_numpy(), b.to_numpy())
        return unpaired if unpaired.n > ci.n else ci
    return stats.welch(a.to_numpy(), b.to_numpy())


def _lost(*arms: pd.Series) -> str:
    seeds = sorted({s for arm in arms for s in arm.index[arm.isna()]})
    bad = sum(int(arm.isna().sum()) for arm in arms)
    return (f"; {bad} seed run(s) diverged or failed (seed {', '.join(map(str, seeds))}), left out of the interval"
            if bad else "")


def _mean(x: pd.Series) -> str:
    return f"{x.mean():+.2f}" if x.notna().any() else "–"  # pandas skips NaN


def _more(ci: stats.Interval, need: int | None) -> str:
    """What more seeds would do for an inconclusive difference."""
    if ci.n == 0:
        return "; no seed of these arms finished"
    if ci.n < 2:
        return "; one seed gives no interval: run 3 or more"
    if need is None or need > 1000:
        return "; the difference is too small for its spread to resolve with any practical number of seeds"
    return f"; ~{need} seeds would resolve it (80% power)"


def _verdict(claim: str, task: str, label: str, ci: stats.Interval, margin: float, lost: str) -> Verdict:
    v = stats.verdict(ci, margin)
    need = stats.seeds_needed(ci, margin) if v == stats.INCONCLUSIVE else None
    more = _more(ci, need) if v == stats.INCONCLUSIVE else ""
    evidence = f"{label}: {ci.text()} ({ci.method}, {ci.n} seed{'s' * (ci.n != 1)}){more}{lost}"
    return Verdict(claim, task, v, evidence, ci.estimate, ci.low, ci.high, ci.n, ci.method, need)


def check(results: pd.DataFrame, archs: dict, inits: dict) -> list[Verdict]:
    """One verdict per claim, comparison and (task, label fraction) from per-cell results (columns
    task, arch, init, seed, fraction, status, test_accuracy). SPT arms are the self-pretraining inits
    with their own budgets (compute-tied ones answer another question)."""
    SPT = [n for n, c in inits.items() if c.kind in ("masked_spt", "causal_spt") and c.total_steps is None]
    fam, out = _families(archs), []
    results = results.assign(acc=100.0 * pd.to_numeric(results.get("test_accuracy"), errors="coerce"),
                             status=results.get("status", pd.Series("ok", index=results.index)).fillna("ok"))
    for (task, fraction), rows in results.groupby(["task", "fraction"], sort=False):
        where = task if fraction == 1.0 else f"{task} ({100 * fraction:g}% labels)"
        found: dict[str, list[Verdict]] = {}

        def add(claim, label, a, b, margin=0.0, lost_from=()):
            found.setdefault(claim, []).append(_verdict(claim, where, label, difference(a, b), margin,
                                                        _lost(*lost_from) if lost_from else _lost(a, b)))

        for t in fam["transformer"]:
            for i in SPT:
                if (a := _arm(rows, t, i)) is not None and (b := _arm(rows, t, "scratch")) is not None:
                    add("SPT beats scratch for Transformers", f"{t}: {i} − scratch", a, b)
        for t in fam["transformer"]:
            for s in fam["ssm"]:
                for i in SPT:
                    arms_ = [_arm(rows, s, "scratch"), _arm(rows, t, "scratch"), _arm(rows, s, i), _arm(rows, t, i)]
                    if any(x is None for x in arms_) or len({frozenset(x.index) for x in arms_}) != 1:
                        continue
                    g0, g1 = arms_[0] - arms_[1], arms_[2] - arms_[3]  # the SSM's lead, per seed
                    add("SPT narrows the Transformer–SSM gap", f"|{s} − {t}| from scratch minus with {i} "
                        f"(> 0 narrows; gaps {_mean(g0)} → {_mean(g1)})", g0.abs(), g1.abs(),
                        lost_from=arms_)
        for t in fam["transformer"]:
            for a_name in fam["las"]:
                if (a := _arm(rows, a_name, "scratch")) is not None and (b := _arm(rows, t, "scratch")) is not None:
                    add("LaS beats the vanilla Transformer from scratch", f"{a_name} − {t}", a, b)
        for f in fam["fpt"]:
            if (a := _arm(rows, f, "fpt_frozen")) is not None and (b := _arm(rows, f, "fpt_random")) is not None:
                add("Frozen-pretrained beats frozen-random", f"{f}: fpt_frozen − fpt_random", a, b)
        for s in fam["ssm"]:
            for r in fam["ssm_rand"]:
                for i in SPT:
                    if (a := _arm(rows, r, i)) is not None and (b := _arm(rows, s, i)) is not None:
                        add("Unstructured SSMs with SPT come close to structured ones with SPT",
                            f"{r} − {s} with {i} (close: above −{CLOSE:g})", a, b, margin=-CLOSE)
        for claim in ("SPT beats scratch for Transformers", "SPT narrows the Transformer–SSM gap",
                      "LaS beats the vanilla Transformer from scratch", "Frozen-pretrained beats frozen-random",
                      "Unstructured SSMs with SPT come close to structured ones with SPT"):
            out += found.get(claim) or [Verdict(claim, where, NOT_RUN, "the arms it compares are not in this grid")]
    return out
