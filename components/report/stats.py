"""Intervals over seeds, and what they let a claim say. Small n (3 to 5 seeds) is the normal case,
so every interval is a t interval: paired when both arms ran the same seeds (same data order,
same initialization seed), Welch's otherwise. Accuracies in, the same units out."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

LEVEL = 0.95
HOLDS, CONTRADICTED, INCONCLUSIVE = "holds", "contradicted", "inconclusive"


def _clean(x) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    return a[~np.isnan(a)]


@dataclass(frozen=True)
class Interval:
    estimate: float  # mean (of one arm, or of the difference)
    low: float  # NaN when the sample is too small for an interval
    high: float
    n: int  # seeds (pairs for a paired difference)
    sd: float  # sample standard deviation (of the values, or of the paired differences)
    method: str

    def text(self, signed: bool = True) -> str:
        f = "{:+.2f}" if signed else "{:.2f}"
        if math.isnan(self.estimate):
            return "–"
        if math.isnan(self.low):
            return f"{f.format(self.estimate)} (n = {self.n}: no interval)"
        return f"{f.format(self.estimate)} [{f.format(self.low)}, {f.format(self.high)}]"


def mean_ci(x) -> Interval:
    """Mean of `x` with its 95% t interval (scipy's one-sample t)."""
    a = _clean(x)
    n = len(a)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, math.nan, "t")
    m = float(a.mean())
    if n < 2:
        return Interval(m, math.nan, math.nan, 1, math.nan, "t")
    sd = float(a.std(ddof=1))
    if sd == 0:
        return Interval(m, m, m, n, 0.0, "t")  # no spread at all: the interval is the point
    ci = _st.ttest_1samp(a, 0.0).confidence_interval(LEVEL)
    return Interval(m, float(ci.low), float(ci.high), n, sd, "t")


def paired(a, b) -> Interval:
    """mean(a_i - b_i) with the 95% paired t interval (scipy's ttest_rel; NaN pairs dropped)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(b))
    d = a[keep] - b[keep]
    if len(d) < 2 or float(d.std(ddof=1)) == 0:
        ci = mean_ci(d)  # too few pairs for an interval, or no spread: the point
        return Interval(ci.estimate, ci.low, ci.high, ci.n, ci.sd, "paired t")
    ci = _st.ttest_rel(a[keep], b[keep]).confidence_interval(LEVEL)
    return Interval(float(d.mean()), float(ci.low), float(ci.high), len(d), float(d.std(ddof=1)), "paired t")


def welch(a, b) -> Interval:
    """mean(a) - mean(b) with Welch's 95% interval (scipy's ttest_ind, unequal variances)."""
    a, b = _clean(a), _clean(b)
    if len(a) == 0 or len(b) == 0:
        return Interval(math.nan, math.nan, math.nan, 0, math.nan, "Welch")
    d = float(a.mean() - b.mean())
    n = min(len(a), len(b))
    if len(a) < 2 or len(b) < 2:
        return Interval(d, math.nan, math.nan, n, math.nan, "Welch")
    if a.var(ddof=1) + b.var(ddof=1) == 0:
        return Interval(d, d, d, n, 0.0, "Welch")  # no spread at all: the interval is the point
    ci = _st.ttest_ind(a, b, equal_var=False).confidence_interval(LEVEL)
    spread = math.sqrt(a.var(ddof=1) + b.var(ddof=1))  # the sd a paired difference would have, independent arms
    return Interval(d, float(ci.low), float(ci.high), n, spread, "Welch")


def verdict(ci: Interval, margin: float = 0.0) -> str:
    """The claim `difference > margin`: holds when the whole interval lies above the margin,
    contradicted when it lies below, inconclusive otherwise (or with no interval)."""
    if math.isnan(ci.low):
        return INCONCLUSIVE
    if ci.low > margin:
        return HOLDS
    if ci.high < margin:
        return CONTRADICTED
    return INCONCLUSIVE


def seeds_needed(ci: Interval, margin: float = 0.0) -> int | None:
    """Seeds (pairs) that would resolve the observed difference at this spread: (2.8 s / d)^2,
    for 95% confidence and 80% power; None when there is no spread to go by or no difference."""
    d = abs(ci.estimate - margin)
    if math.isnan(ci.sd) or math.isnan(d) or d == 0:
        return None
    return max(2, math.ceil((2.8 * ci.sd / d) ** 2))
