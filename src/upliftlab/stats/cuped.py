"""Variance reduction with pre-period covariates: CUPED (pooled θ) and Lin's regression adjustment.

Both work on RegressionStats (n, Σy, Σy², Σx, Σxx', Σxy) per arm; no rows are needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from upliftlab.stats.sufficient import RegressionStats
from upliftlab.stats.tests import Effect, relative, welch_df


@dataclass(frozen=True)
class Adjusted:
    """Adjusted absolute and relative effect, and the variance reduction achieved."""

    absolute: Effect
    relative: Effect | None
    mean_t: float
    mean_c: float
    variance_reduction: float  # 1 − Var(adjusted diff) / Var(unadjusted diff)


def cuped(t: RegressionStats, c: RegressionStats) -> Adjusted:
    """CUPED (Deng et al. 2013) with θ = S_xx⁻¹S_xy from the pooled sample of both arms.

    ȳadj = ȳ − θ'(x̄ − x̄pooled); per arm Var(yadj) = Var(y) + θ'S_xxθ − 2θ'S_xy (within-arm,
    n−1). With one covariate θ = Cov(x, y)/Var(x). Equal to Welch's t on the adjusted rows
    y − θ'(x − x̄pooled) (θ treated as fixed, the usual CUPED convention).
    """
    pooled = t + c
    pxx, pxy, _ = pooled.centred_moments()
    theta = _solve(pxx, pxy)
    mx = np.asarray(pooled.sum_x) / pooled.n
    out = []
    for arm in (t, c):
        sxx, sxy, vy = arm.centred_moments()
        mean = arm.sum_y / arm.n - float(theta @ (np.asarray(arm.sum_x) / arm.n - mx))
        var = max(vy + float(theta @ sxx @ theta) - 2 * float(theta @ sxy), 0.0)
        out.append((mean, var / arm.n, arm.y.variance(1) / arm.n))
    (mt, vmt, raw_t), (mc, vmc, raw_c) = out
    df = welch_df(vmt, t.n, vmc, c.n)
    absolute = Effect(mt - mc, math.sqrt(vmt + vmc), df, t.n + c.n)
    rel = relative(mt, vmt, mc, vmc, df, t.n + c.n)
    return Adjusted(absolute, rel, mt, mc, _reduction(vmt + vmc, raw_t + raw_c))


def lin(t: RegressionStats, c: RegressionStats) -> Adjusted:
    """Lin's (2013) estimator: OLS of y on the centred covariates, separately per arm.

    Covariates are centred at the pooled mean of both arms, so each arm's intercept is its
    adjusted mean and the effect is their difference: the coefficient of the arm in the fully
    interacted regression y ~ T + Xc + T·Xc. Its variance is the per-arm OLS variance of the
    intercept (residual variance with n − k − 1 df) summed over arms; that equals statsmodels
    OLS fitted per arm, and is asymptotically the HC2 sandwich of the interacted regression.
    """
    pooled = t + c
    mx = np.asarray(pooled.sum_x) / pooled.n
    out = []
    for arm in (t, c):
        n, k = arm.n, arm.k
        sxx, sxy, vy = arm.centred_moments()
        beta = _solve(sxx, sxy)
        dx = np.asarray(arm.sum_x) / n - mx
        mean = arm.sum_y / n - float(beta @ dx)
        rss = max((n - 1) * (vy - float(sxy @ beta)), 0.0)
        sigma2 = rss / (n - k - 1) if n - k - 1 > 0 else math.nan
        inv00 = 1 / n + float(dx @ _solve(sxx * (n - 1), dx))
        out.append((mean, sigma2 * inv00, n - k - 1, vy / n))
    (mt, vmt, dft, raw_t), (mc, vmc, dfc, raw_c) = out
    den = vmt ** 2 / dft + vmc ** 2 / dfc
    df = (vmt + vmc) ** 2 / den if den > 0 else math.inf
    absolute = Effect(mt - mc, math.sqrt(vmt + vmc), df, t.n + c.n)
    rel = relative(mt, vmt, mc, vmc, df, t.n + c.n)
    return Adjusted(absolute, rel, mt, mc, _reduction(vmt + vmc, raw_t + raw_c))


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # lstsq, not solve: a constant or collinear covariate must not crash the weekly job
    return np.linalg.lstsq(np.atleast_2d(a), np.atleast_1d(b), rcond=None)[0]


def _reduction(adjusted: float, raw: float) -> float:
    return 1 - adjusted / raw if raw > 0 else 0.0
