"""Two-group tests on sufficient statistics: difference of proportions, Welch's t, relative lift.

Each returns an `Effect` (estimate, standard error, degrees of freedom); `fixed_inference` and
`stats.sequential.sequential_inference` turn an Effect into an interval and a p-value.

Variance conventions (stated in the report's method notes):
- 0/1 metric: s² = p(1−p), the plug-in variance with denominator n, as the Wald test of
  `statsmodels.stats.proportion.test_proportions_2indep(method="wald")`; normal reference.
- continuous metric: the sample variance with denominator n−1 and Welch's t with the
  Welch–Satterthwaite df, as `scipy.stats.ttest_ind(equal_var=False)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from upliftlab.stats.sufficient import SampleStats


@dataclass(frozen=True)
class Effect:
    """An estimated difference with its standard error.

    df None means a normal reference distribution; `n` is the total sample of the comparison
    (the sequential interval needs it).
    """

    estimate: float
    se: float
    df: float | None
    n: int


@dataclass(frozen=True)
class Inference:
    ci_low: float
    ci_high: float
    p_value: float
    crit: float  # the critical value that made the interval: half-width / se


def proportions(t: SampleStats, c: SampleStats) -> Effect:
    """Difference of proportions p_t − p_c with the unpooled Wald SE (variances p(1−p)/n)."""
    pt, pc = t.mean, c.mean
    se = math.sqrt(pt * (1 - pt) / t.n + pc * (1 - pc) / c.n)
    return Effect(pt - pc, se, None, t.n + c.n)


def welch(t: SampleStats, c: SampleStats) -> Effect:
    """Difference of means with Welch's SE (sample variances, n−1) and Welch–Satterthwaite df."""
    vt, vc = t.variance(1) / t.n, c.variance(1) / c.n
    return Effect(t.mean - c.mean, math.sqrt(vt + vc), welch_df(vt, t.n, vc, c.n), t.n + c.n)


def welch_df(var_mean_t: float, n_t: int, var_mean_c: float, n_c: int) -> float:
    """Welch–Satterthwaite df from the variances of the two means."""
    den = var_mean_t ** 2 / (n_t - 1) + var_mean_c ** 2 / (n_c - 1)
    return (var_mean_t + var_mean_c) ** 2 / den if den > 0 else math.inf


def relative(mean_t: float, var_mean_t: float, mean_c: float, var_mean_c: float,
             df: float | None, n: int) -> Effect | None:
    """Relative lift mean_t/mean_c − 1 by the delta method (None when the control mean is 0).

    Var(r) ≈ Var(ȳt)/ȳc² + ȳt²·Var(ȳc)/ȳc⁴: the control's uncertainty counts too.
    """
    if mean_c == 0 or not math.isfinite(mean_c):
        return None
    var = var_mean_t / mean_c ** 2 + mean_t ** 2 * var_mean_c / mean_c ** 4
    return Effect(mean_t / mean_c - 1, math.sqrt(var), df, n)


def compare(t: SampleStats, c: SampleStats, binary: bool) -> tuple[Effect, Effect | None]:
    """Absolute and relative effect of one metric: Wald for 0/1 metrics, Welch otherwise."""
    ddof = 0 if binary else 1
    absolute = proportions(t, c) if binary else welch(t, c)
    rel = relative(t.mean, t.variance(ddof) / t.n, c.mean, c.variance(ddof) / c.n,
                   absolute.df, absolute.n)
    return absolute, rel


def critical(alpha: float, df: float | None) -> float:
    from scipy import stats

    if df is None or not math.isfinite(df):
        return float(stats.norm.isf(alpha / 2))
    return float(stats.t.isf(alpha / 2, df))


def fixed_inference(effect: Effect, alpha: float) -> Inference:
    """Two-sided fixed-horizon interval and p-value (normal, or t with effect.df)."""
    from scipy import stats

    d, se = effect.estimate, effect.se
    crit = critical(alpha, effect.df)
    if not se > 0:
        p = 1.0 if d == 0 else 0.0
        return Inference(d, d, p, crit)
    z = abs(d) / se
    if effect.df is None or not math.isfinite(effect.df):
        p = float(2 * stats.norm.sf(z))
    else:
        p = float(2 * stats.t.sf(z, effect.df))
    return Inference(d - crit * se, d + crit * se, p, crit)
