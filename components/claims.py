"""The papers' claims, each checked on the grid's numbers: holds, does not hold, or not run at
this scale (an arm it needs is missing). Pure: the aggregated table and the arch settings in, one
verdict per (claim, task) out. Differences are in accuracy points (mean over seeds)."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

HOLDS, FAILS, NOT_RUN = "holds", "does not hold", "not run at this scale"
CLOSE = 2.0  # points: "comes close" (the SPT paper: DLR + SPT 83.4 vs S4 + SPT 84.5)


@dataclass(frozen=True)
class Verdict:
    claim: str
    task: str
    verdict: str
    evidence: str


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


def _acc(rows: pd.DataFrame, arch: str, inits) -> tuple[str, float] | None:
    """(init, accuracy) of the best of `inits` that finished for `arch`, or None."""
    inits = [inits] if isinstance(inits, str) else list(inits)
    got = rows[(rows["arch"] == arch) & rows["init"].isin(inits) & (rows["n_seeds"] > 0)]
    if got.empty:
        return None
    best = got.loc[got["acc_mean"].idxmax()]
    return best["init"], float(best["acc_mean"])


def _pairs(rows, archs_a, init_a, archs_b, init_b):
    """Every (arch_a, acc_a, arch_b, acc_b) where both arms finished."""
    out = []
    for a in archs_a:
        for b in archs_b:
            x, y = _acc(rows, a, init_a), _acc(rows, b, init_b)
            if x and y:
                out.append((a, x, b, y))
    return out


def _verdict(claim: str, task: str, comparisons: list[tuple[bool, str]]) -> Verdict:
    if not comparisons:
        return Verdict(claim, task, NOT_RUN, "the arms it compares are not in this grid")
    ok = all(c for c, _ in comparisons)
    return Verdict(claim, task, HOLDS if ok else FAILS, "; ".join(text for _, text in comparisons))


def check(table: pd.DataFrame, archs: dict, inits: dict) -> list[Verdict]:
    """One verdict per claim and task, from `aggregate()`'s table at label fraction 1.0. SPT arms
    are the self-pretraining inits with their own budgets (the compute-tied ones answer another
    question); an arch has at most one that applies (masked if bidirectional, causal if not)."""
    SPT = [name for name, cfg in inits.items() if cfg.kind in ("masked_spt", "causal_spt") and cfg.total_steps is None]
    fam, out = _families(archs), []
    full = table[table["fraction"] == 1.0]
    for task, rows in full.groupby("task", sort=False):
        comps = []
        for a in fam["transformer"]:
            base, spt = _acc(rows, a, "scratch"), _acc(rows, a, SPT)
            if base and spt:
                d = spt[1] - base[1]
                comps.append((d > 0, f"{a}: {spt[0]} {spt[1]:.2f} vs scratch {base[1]:.2f} ({d:+.2f})"))
        out.append(_verdict("SPT beats scratch for Transformers", task, comps))

        comps = []
        for t in fam["transformer"]:
            for s in fam["ssm"]:
                t0, s0, t1, s1 = (_acc(rows, t, "scratch"), _acc(rows, s, "scratch"), _acc(rows, t, SPT),
                                  _acc(rows, s, SPT))
                if t0 and s0 and t1 and s1:
                    g0, g1 = s0[1] - t0[1], s1[1] - t1[1]
                    comps.append((abs(g1) < abs(g0), f"{s} − {t}: {g0:+.2f} from scratch, {g1:+.2f} with SPT"))
        out.append(_verdict("SPT narrows the Transformer–SSM gap", task, comps))

        comps = [(y[1] > x[1], f"{b} {y[1]:.2f} vs {a} {x[1]:.2f} ({y[1] - x[1]:+.2f})")
                 for a, x, b, y in _pairs(rows, fam["transformer"], "scratch", fam["las"], "scratch")]
        out.append(_verdict("LaS beats the vanilla Transformer from scratch", task, comps))

        comps = [(x[1] > y[1], f"{a}: frozen pretrained {x[1]:.2f} vs frozen random {y[1]:.2f} ({x[1] - y[1]:+.2f})")
                 for a, x, b, y in _pairs(rows, fam["fpt"], "fpt_frozen", fam["fpt"], "fpt_random") if a == b]
        out.append(_verdict("Frozen-pretrained beats frozen-random", task, comps))

        comps = [(y[1] - x[1] >= -CLOSE, f"{b} + SPT {y[1]:.2f} vs {a} + SPT {x[1]:.2f} ({y[1] - x[1]:+.2f}; "
                                          f"close = within {CLOSE:g} points)")
                 for a, x, b, y in _pairs(rows, fam["ssm"], SPT, fam["ssm_rand"], SPT)]
        out.append(_verdict("Unstructured SSMs with SPT come close to structured ones with SPT", task, comps))
    return out
