"""The papers' claims, each checked on the grid's per-seed numbers as a difference with a 95%
interval (components/report/stats.py): paired by seed where the arms ran the same seeds, Welch's
interval otherwise. The verdict is `holds` when the interval excludes the claim's margin on the
claimed side and Holm's correction over every claim of the report keeps it significant,
`contradicted` likewise on the other side, `inconclusive` otherwise (with the seeds that would
resolve the observed difference, where it lies on the claimed side), `no verdict` below three
finished seeds or with no spread. A claim resting on a cell that has not converged or is at
chance says so instead. Pure: per-cell results in, one verdict per (claim, task, label fraction)
out. Differences are in accuracy points."""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from components.report import stats

NOT_RUN = "not run"
PREMISE = "premise not met"  # the narrowing claim when the SSM does not lead from scratch
NOT_CONVERGED, AT_CHANCE = "not converged", "at chance"  # a claim resting on such a cell
CLOSE = 2.0  # points: "comes close" (the SPT paper: DLR + SPT 83.4 vs S4 + SPT 84.5)
CHANCE = 2.0  # points: a cell within this of the majority-class baseline is at chance
CLAIMS = ("SPT beats scratch for Transformers", "SPT beats scratch for SSMs", "SPT narrows the Transformer–SSM gap",
          "SPT beats scratch at equal compute", "LaS beats the vanilla Transformer from scratch",
          "Frozen-pretrained beats frozen-random", "Unstructured SSMs with SPT come close to structured ones with SPT")


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
    p_raw: float = math.nan  # one-sided, on the claimed side
    p_holm: float = math.nan  # the same, Holm-adjusted over every claim of the report
    compute_ratio: float = math.nan  # steps of the self-pretrained arm over scratch's


@dataclass(frozen=True)
class Arm:
    """One (arch, init) of a task and label fraction: test accuracy (%) by seed, diverged or
    failed seeds as NaN (kept and counted, even when no seed finished)."""

    name: str
    acc: pd.Series
    steps: float  # mean pretraining + finetuning steps of its finished seeds
    rising: bool  # a finished seed's validation accuracy was still rising at the end
    chance: bool  # its mean is within CHANCE points of the majority-class baseline


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


def _arm(rows: pd.DataFrame, arch: str, init: str) -> Arm | None:
    """None when the arm is not in the grid or was skipped."""
    got = rows[(rows["arch"] == arch) & (rows["init"] == init) & (rows["status"] != "skipped")].set_index("seed")
    if got.empty:
        return None
    ok = got["status"] == "ok"
    acc = got["acc"].where(ok)
    steps = (pd.to_numeric(got["pretrain_steps"], errors="coerce").astype(float).fillna(0)
             + pd.to_numeric(got["finetune_steps"], errors="coerce").astype(float))[ok].mean()
    rising = rising_arm(got["val_rising"][ok])
    majority = float(pd.to_numeric(got["majority_accuracy"], errors="coerce").astype(float)[ok].mean()) * 100
    chance = bool(acc.notna().any() and not math.isnan(majority) and acc.mean() - majority < CHANCE)
    return Arm(f"{arch}/{init}", acc, float(steps), rising, chance)


def rising_arm(flags: pd.Series) -> bool:
    """An arm has not converged when most of its finished seeds were still improving at the end."""
    known = flags.astype("boolean").dropna()
    return bool(len(known) and known.astype(bool).mean() > 0.5)


def difference(a: pd.Series, b: pd.Series) -> stats.Interval:
    """a - b: paired by seed when both ran the same seeds, else (or when too few pairs finished
    for an interval while each arm has enough) Welch."""
    if set(a.index) == set(b.index):
        seeds = sorted(a.index)
        ci = stats.paired(a[seeds].to_numpy(), b[seeds].to_numpy())
        if ci.has_interval or ci.n >= stats.MIN_SEEDS:  # enough pairs (no spread is no verdict, not Welch)
            return ci
        unpaired = stats.welch(a.to_numpy(), b.to_numpy())
        return unpaired if unpaired.has_interval else ci
    return stats.welch(a.to_numpy(), b.to_numpy())


def gain_difference(t0: pd.Series, t1: pd.Series, s0: pd.Series, s1: pd.Series) -> stats.Interval:
    """(t1 - t0) - (s1 - s0): the Transformer's gain from SPT minus the SSM's. Paired by seed when
    all four arms ran the same seeds. When each architecture's two arms share their seeds but the
    architectures ran different ones (more seeds where an effect is small), each gain is paired
    within its architecture and the two gains are compared by Welch. Else a Welch contrast of the
    four arms."""
    if len({frozenset(x.index) for x in (t0, t1, s0, s1)}) == 1:
        seeds = sorted(t0.index)
        d = (t1[seeds] - t0[seeds]) - (s1[seeds] - s0[seeds])
        ci = stats.mean_ci(d.to_numpy(), "paired t")
        if ci.has_interval or ci.n >= stats.MIN_SEEDS:
            return ci
    elif set(t0.index) == set(t1.index) and set(s0.index) == set(s1.index):
        gt, gs = (t1 - t0[t1.index]).to_numpy(), (s1 - s0[s1.index]).to_numpy()
        ci = stats.contrast([gt, gs], [1.0, -1.0], "Welch of paired gains")
        if ci.has_interval:
            return ci
    return stats.contrast([t1.to_numpy(), t0.to_numpy(), s1.to_numpy(), s0.to_numpy()], [1.0, -1.0, -1.0, 1.0])


def _lost(*arms: Arm) -> str:
    seeds = sorted({s for arm in arms for s in arm.acc.index[arm.acc.isna()]})
    bad = sum(int(arm.acc.isna().sum()) for arm in arms)
    return (f"; {bad} seed run(s) diverged or failed (seed {', '.join(map(str, seeds))}), left out of the interval"
            if bad else "")


def _guard(higher: Arm, *arms: Arm) -> tuple[str | None, str]:
    """A verdict that replaces the test when a cell it rests on has not converged (any arm), or
    when the arm the claim says is higher is at chance (a lower arm at chance is evidence)."""
    arms = (higher, *arms)
    chance = [higher.name] if higher.chance else []
    if chance:
        return AT_CHANCE, f"; at chance (within {CHANCE:g} points of the majority class): {', '.join(chance)}"
    rising = [a.name for a in arms if a.rising]
    if rising:
        return NOT_CONVERGED, f"; validation still rising over the last fifth of training: {', '.join(rising)}"
    return None, ""


def _more(ci: stats.Interval, need: int | None, margin: float, family: int) -> str:
    """What more seeds would do for an inconclusive difference."""
    if ci.estimate - margin <= 0:
        return "; the observed difference is not on the claimed side"
    if ci.has_interval and ci.low > margin:
        prefix = f"; significant before correction, not after Holm over {family} claims"
        return prefix + (f"; ~{need} seeds would resolve it (exact paired-t power, 80%)" if need else "")
    if need is None:
        return "; the interval is uninformative at this spread (more than 100 seeds would be needed)"
    return f"; ~{need} seeds would resolve it (exact paired-t power, 80%)"


def _no_verdict(ci: stats.Interval) -> str:
    if ci.n == 0:
        return "; no seed of these arms finished"
    if ci.sd == 0:
        return "; every seed gave the same difference: no spread, no interval"
    return f"; {ci.n} finished seed{'s' * (ci.n != 1)}: {stats.MIN_SEEDS} or more are needed for an interval"


@dataclass
class _Test:
    claim: str
    where: str
    label: str
    ci: stats.Interval
    margin: float
    notes: str
    guard: str | None = None
    ratio: float = math.nan


def _judge(tests: list[_Test]) -> list[Verdict]:
    """Verdicts for a family of tests: Holm over every test with an interval, each side apart."""
    family = [i for i, t in enumerate(tests) if t.guard is None and t.ci.has_interval]
    above = stats.holm([tests[i].ci.p_above(tests[i].margin) for i in family])
    below = stats.holm([tests[i].ci.p_below(tests[i].margin) for i in family])
    adjusted = {i: (a, b) for i, a, b in zip(family, above, below)}
    out = []
    for i, t in enumerate(tests):
        ci, raw = t.ci, t.ci.p_above(t.margin)
        p_up, p_down = adjusted.get(i, (math.nan, math.nan))
        v = t.guard or stats.verdict(ci, t.margin, p_up, p_down)
        need = stats.seeds_needed(ci, t.margin, family=len(family)) if v == stats.INCONCLUSIVE else None
        more = {stats.INCONCLUSIVE: _more(ci, need, t.margin, len(family)),
                stats.NO_VERDICT: _no_verdict(ci)}.get(v, "")
        p = "" if math.isnan(raw) else f"; p = {raw:.3g}, Holm-adjusted {p_up:.3g} (family of {len(family)})" \
            if i in adjusted else f"; p = {raw:.3g}"
        ratio = "" if math.isnan(t.ratio) else f"; compute: {t.ratio:.2f}× the steps of scratch"
        evidence = f"{t.label}: {ci.text()} ({ci.method}, {ci.n} seed{'s' * (ci.n != 1)}){p}{ratio}{more}{t.notes}"
        out.append(Verdict(t.claim, t.where, v, evidence, ci.estimate, ci.low, ci.high, ci.n, ci.method, need, raw,
                           p_up, t.ratio))
    return out


def check(results: pd.DataFrame, archs: dict, inits: dict) -> list[Verdict]:
    """One verdict per claim, comparison and (task, label fraction) from per-cell results (columns
    task, arch, init, seed, fraction, status, test_accuracy, steps, val_rising, majority_accuracy).
    SPT arms are the self-pretraining inits with their own budgets that pretrain on the cell's
    labelled rows (the papers' protocol); compute-tied ones answer "SPT beats scratch at equal
    compute"; inits that pretrain on every input (`pretrain_rows: all`) are semi-supervised, a
    different question, and make no SPT claim."""
    own = {n: c for n, c in inits.items() if c.kind in ("masked_spt", "causal_spt")
           and getattr(c, "pretrain_rows", "labelled") == "labelled"}
    spt = [n for n, c in own.items() if c.total_steps is None]
    tied = [n for n, c in own.items() if c.total_steps is not None]
    fam = _families(archs)
    results = results.copy()
    for col in ("pretrain_steps", "finetune_steps", "val_rising", "majority_accuracy", "test_accuracy"):
        if col not in results:
            results[col] = pd.NA
    results = results.assign(acc=100.0 * pd.to_numeric(results["test_accuracy"], errors="coerce"),
                             status=results.get("status", pd.Series("ok", index=results.index)).fillna("ok"))
    tests: list[_Test] = []
    missing: list[tuple[str, str]] = []
    for (task, fraction), rows in results.groupby(["task", "fraction"], sort=False):
        where = task if fraction == 1.0 else f"{task} ({100 * fraction:g}% labels)"
        found: set[str] = set()

        def add(claim, label, a: Arm, b: Arm, margin=0.0, ratio=math.nan):
            guard, why = _guard(a, b)
            tests.append(_Test(claim, where, label, difference(a.acc, b.acc), margin, why + _lost(a, b), guard,
                               ratio))
            found.add(claim)

        def pair(arch_a, init_a, arch_b, init_b):
            a, b = _arm(rows, arch_a, init_a), _arm(rows, arch_b, init_b)
            return (a, b) if a is not None and b is not None else (None, None)

        for claim, archs_ in (("SPT beats scratch for Transformers", fam["transformer"]),
                              ("SPT beats scratch for SSMs", fam["ssm"] + fam["ssm_rand"])):
            for arch in archs_:
                for i in spt:
                    a, b = pair(arch, i, arch, "scratch")
                    if a is not None:
                        add(claim, f"{arch}: {i} − scratch", a, b, ratio=a.steps / b.steps if b.steps else math.nan)
        for arch in fam["transformer"] + fam["ssm"] + fam["ssm_rand"]:
            for i in tied:
                a, b = pair(arch, i, arch, "scratch")
                if a is not None:
                    add("SPT beats scratch at equal compute", f"{arch}: {i} − scratch", a, b,
                        ratio=a.steps / b.steps if b.steps else math.nan)
        for t in fam["transformer"]:
            for s in fam["ssm"]:
                for i in spt:
                    arms_ = [_arm(rows, t, "scratch"), _arm(rows, t, i), _arm(rows, s, "scratch"), _arm(rows, s, i)]
                    if any(x is None for x in arms_):
                        continue
                    t0, t1, s0, s1 = arms_
                    claim = "SPT narrows the Transformer–SSM gap"
                    found.add(claim)
                    ci = gain_difference(t0.acc, t1.acc, s0.acc, s1.acc)
                    lead = s0.acc.mean() - t0.acc.mean()
                    label = (f"({t}'s gain from {i}) − ({s}'s gain), > 0 narrows; {s} leads {t} by "
                             f"{lead:+.2f} from scratch, {s1.acc.mean() - t1.acc.mean():+.2f} with {i}")
                    guard, why = _guard(t1, t0, s0, s1)
                    if math.isnan(lead):  # an arm with no finished seed: no premise to test
                        guard, why = stats.NO_VERDICT, "; a scratch arm has no finished seed" + why
                    elif not lead > 0:  # the Transformer already leads (or ties): nothing to narrow
                        guard, why = PREMISE, f"; {s} does not lead {t} from scratch ({lead:+.2f})" + why
                    tests.append(_Test(claim, where, label + f" (compute: the {t} arms')", ci, 0.0,
                                       why + _lost(*arms_), guard, t1.steps / t0.steps if t0.steps else math.nan))
        for t in fam["transformer"]:
            for las in fam["las"]:
                a, b = pair(las, "scratch", t, "scratch")
                if a is not None:
                    add("LaS beats the vanilla Transformer from scratch", f"{las} − {t}", a, b)
        for f in fam["fpt"]:
            a, b = pair(f, "fpt_frozen", f, "fpt_random")
            if a is not None:
                add("Frozen-pretrained beats frozen-random", f"{f}: fpt_frozen − fpt_random", a, b)
        for s in fam["ssm"]:
            for r in fam["ssm_rand"]:
                for i in spt:
                    a, b = pair(r, i, s, i)
                    if a is not None:
                        add("Unstructured SSMs with SPT come close to structured ones with SPT",
                            f"{r} − {s} with {i} (close: above −{CLOSE:g})", a, b, margin=-CLOSE)
        missing += [(claim, where) for claim in CLAIMS if claim not in found]
    judged = _judge(tests)
    out = []
    for claim in CLAIMS:  # grouped by claim, in the order the report lists them
        out += [v for v in judged if v.claim == claim]
        out += [Verdict(claim, where, NOT_RUN, "the arms it compares are not in this grid")
                for c, where in missing if c == claim]
    return out
