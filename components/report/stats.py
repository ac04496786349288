"""Intervals over seeds, and what they let a claim say. Small n (3 to 5 seeds) is the normal case,
so every interval is a t interval: paired when the arms ran the same seeds (same data order, same
initialization seed), Welch's otherwise (a linear contrast of independent arms in general).
Fewer than MIN_SEEDS finished seeds, or no spread at all, give a mean but no interval, and so no
verdict. Many claims are judged at once, so `holm` adjusts their p-values; a claim holds only
after that correction. Accuracies in, the same units out."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

LEVEL = 0.95
ONE_SIDED = (1 - LEVEL) / 2  # an interval excludes the margin on one side <=> one-sided p below this
MIN_SEEDS = 3
POWER = 0.8
HOLDS, CONTRADICTED, INCONCLUSIVE = "holds", "contradicted", "inconclusive"
NO_VERDICT = "no verdict"  # fewer than MIN_SEEDS finished seeds, or no spread


def _clean(x) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    return a[~np.isnan(a)]


@dataclass(frozen=True)
class Interval:
    estimate: float  # mean (of one arm, of a difference, or of a contrast of arms)
    low: float  # NaN when there is no interval (too few seeds, or no spread)
    high: float
    n: int  # seeds (pairs for a paired difference; the smallest arm for Welch)
    sd: float  # sample standard deviation (of the values, the paired differences, or the arms pooled)
    method: str
    se: float = math.nan  # standard error of the estimate
    df: float = math.nan  # degrees of freedom of its t distribution

    @property
    def has_interval(self) -> bool:
        return not math.isnan(self.low)

    def p_above(self, margin: float = 0.0) -> float:
        """One-sided p-value against `estimate <= margin` (small: the estimate is above the margin)."""
        if not self.has_interval:
            return math.nan
        return float(_st.t.sf((self.estimate - margin) / self.se, self.df))

    def p_below(self, margin: float = 0.0) -> float:
        """One-sided p-value against `estimate >= margin`."""
        if not self.has_interval:
            return math.nan
        return float(_st.t.cdf((self.estimate - margin) / self.se, self.df))

    def text(self, signed: bool = True) -> str:
        f = "{:+.2f}" if signed else "{:.2f}"
        if math.isnan(self.estimate):
            return "–"
        if not self.has_interval:
            why = "no spread" if self.sd == 0 else f"n = {self.n}"
            return f"{f.format(self.estimate)} ({why}: no interval)"
        return f"{f.format(self.estimate)} [{f.format(self.low)}, {f.format(self.high)}]"


def _t_interval(estimate: float, se: float, df: float, n: int, sd: float, method: str) -> Interval:
    half = float(_st.t.ppf(0.5 + LEVEL / 2, df)) * se
    return Interval(estimate, estimate - half, estimate + half, n, sd, method, se, df)


def _point(estimate: float, n: int, sd: float, method: str) -> Interval:
    return Interval(estimate, math.nan, math.nan, n, sd, method)


def mean_ci(x, method: str = "t") -> Interval:
    """Mean of `x` with its 95% t interval (scipy's one-sample t); no interval below MIN_SEEDS
    values or with no spread."""
    a = _clean(x)
    n = len(a)
    if n == 0:
        return _point(math.nan, 0, math.nan, method)
    m, sd = float(a.mean()), (float(a.std(ddof=1)) if n > 1 else math.nan)
    if n > 1 and sd <= 1e-9 * max(1.0, abs(m)):
        sd = 0.0  # equal values up to rounding (accuracy points differ by 1e-14): no spread
    if n < MIN_SEEDS or sd == 0:
        return _point(m, n, sd, method)
    ci = _st.ttest_1samp(a, 0.0).confidence_interval(LEVEL)
    return Interval(m, float(ci.low), float(ci.high), n, sd, method, sd / math.sqrt(n), n - 1)


def paired(a, b) -> Interval:
    """mean(a_i - b_i) with the 95% paired t interval (scipy's ttest_rel; NaN pairs dropped)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(b))
    d = a[keep] - b[keep]
    point = mean_ci(d, "paired t")
    if not point.has_interval:
        return point
    ci = _st.ttest_rel(a[keep], b[keep]).confidence_interval(LEVEL)
    return Interval(point.estimate, float(ci.low), float(ci.high), point.n, point.sd, "paired t", point.se, point.df)


def contrast(arms: list, weights: list[float], method: str = "Welch") -> Interval:
    """sum_i w_i mean(arm_i) for independent arms, with the Welch–Satterthwaite t interval; no
    interval when an arm has fewer than MIN_SEEDS values or there is no spread at all."""
    arms = [_clean(a) for a in arms]
    if any(len(a) == 0 for a in arms):
        return _point(math.nan, 0, math.nan, method)
    estimate = float(sum(w * a.mean() for w, a in zip(weights, arms)))
    n = min(len(a) for a in arms)
    if n < MIN_SEEDS:
        return _point(estimate, n, math.nan, method)
    parts = [w * w * a.var(ddof=1) / len(a) for w, a in zip(weights, arms)]  # each arm's share of the variance
    se2 = sum(parts)
    spread = math.sqrt(sum(a.var(ddof=1) for a in arms))  # the sd a per-seed contrast would have
    if se2 <= 1e-18 * max(1.0, estimate * estimate):  # equal values up to rounding: no spread
        return _point(estimate, n, 0.0, method)
    df = se2 ** 2 / sum(p ** 2 / (len(a) - 1) for p, a in zip(parts, arms))
    return _t_interval(estimate, math.sqrt(se2), df, n, spread, method)


def welch(a, b) -> Interval:
    """mean(a) - mean(b) with Welch's 95% interval (equal to scipy's ttest_ind, unequal variances)."""
    return contrast([a, b], [1.0, -1.0])


def verdict(ci: Interval, margin: float = 0.0, p_above: float | None = None, p_below: float | None = None) -> str:
    """The claim `difference > margin`: holds when the whole interval lies above the margin,
    contradicted when it lies below, inconclusive otherwise; no verdict without an interval. With
    family-adjusted p-values (`holm`), each side also needs its adjusted p below ONE_SIDED."""
    if not ci.has_interval:
        return NO_VERDICT
    if ci.low > margin and (p_above is None or p_above < ONE_SIDED):
        return HOLDS
    if ci.high < margin and (p_below is None or p_below < ONE_SIDED):
        return CONTRADICTED
    return INCONCLUSIVE


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (NaN entries are not in the family)."""
    order = sorted((i for i, p in enumerate(pvalues) if not math.isnan(p)), key=pvalues.__getitem__)
    m, out, running = len(order), [math.nan] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def power(n: int, effect: float, sd: float, alpha: float = ONE_SIDED) -> float:
    """Power of the paired t test on the claimed side at one-sided level `alpha` (ONE_SIDED: the
    95% interval's rule) with n seeds, for a true difference `effect` above the margin and a
    per-seed spread `sd` (scipy's noncentral t)."""
    df = n - 1
    return float(_st.nct.sf(_st.t.ppf(1 - alpha, df), df, effect / (sd / math.sqrt(n))))


def seeds_needed(ci: Interval, margin: float = 0.0, most: int = 100, family: int = 1) -> int | None:
    """The fewest seeds (pairs) at which the observed difference, at its spread, would be found
    with POWER: exact paired-t power, at the level a claim needs in a family of `family` claims
    (Bonferroni's ONE_SIDED / family, which Holm never asks more than). None when the observed
    difference is not on the claimed side (no number of seeds makes it hold), when there is no
    spread to go by, or beyond `most` seeds (then the interval is uninformative at this scale)."""
    effect = ci.estimate - margin
    if math.isnan(ci.sd) or ci.sd == 0 or math.isnan(effect) or effect <= 0:
        return None
    for n in range(max(2, ci.n + 1), most + 1):
        if power(n, effect, ci.sd, ONE_SIDED / max(1, family)) >= POWER:
            return n
    return None
