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


def t_quantile(df: float) -> float:
    return float(_st.t.ppf(0.5 + LEVEL / 2, df))


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
    """Mean of `x` with its 95% t interval."""
    a = _clean(x)
    n = len(a)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, math.nan, "t")
    m = float(a.mean())
    if n < 2:
        return Interval(m, math.nan, math.nan, 1, math.nan, "t")
    sd = float(a.std(ddof=1))
    half = t_quantile(n - 1) * sd / math.sqrt(n)
    return Interval(m, m - half, m + half, n, sd, "t")


def paired(a, b) -> Interval:
    """mean(a_i - b_i) with the 95% t interval of the paired differences (NaN pairs dropped)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = (a - b)[~(np.isnan(a) | np.isnan(b))]
    ci = mean_ci(d)
    return Interval(ci.estimate, ci.low, ci.high, ci.n, ci.sd, "paired t")


def welch(a, b) -> Interval:
    """mean(a) - mean(b) with Welch's 95% interval (unequal variances, Welch–Satterthwaite df)."""
    a, b = _clean(a), _clean(b)
    if len(a) == 0 or len(b) == 0:
        return Interval(math.nan, math.nan, math.nan, 0, math.nan, "Welch")
    d = float(a.mean() - b.mean())
    n = min(len(a), len(b))
    if len(a) < 2 or len(b) < 2:
        return Interval(d, math.nan, math.nan, n, math.nan, "Welch")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(d, d, d, n, 0.0, "Welch")  # no spread at all: the interval is the point
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = t_quantile(df) * se
    spread = math.sqrt(a.var(ddof=1) + b.var(ddof=1))  # the sd a paired difference would have, independent arms
    return Interval(d, d - half, d + half, n, spread, "Welch")


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
