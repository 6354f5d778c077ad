"""Always-valid inference for weekly looks: asymptotic confidence sequences.

Waudby-Smith, Arnold, Wu, Howard & Ramdas (2023), eq. 9 and 161, as GrowthBook's gbstats
(`sequential_rho`, `sequential_interval_halfwidth`, SequentialTwoSidedTTest.p_value).
"""

from __future__ import annotations

import math

import numpy as np

from upliftlab.stats.tests import Effect, Inference


def rho(alpha: float, n_star: float) -> float:
    """Mixing parameter tuned so the sequence is tightest at total sample N*."""
    la = -2 * math.log(alpha)
    return math.sqrt((la + math.log(la + 1)) / n_star)


def halfwidth(s2: np.ndarray | float, n: np.ndarray | float, alpha: float,
              n_star: float) -> np.ndarray | float:
    """Half-width √s²·√(2(nρ²+1)/(n²ρ²)·ln(√(nρ²+1)/α)); s² is per observation (SE²·n)."""
    r2 = rho(alpha, n_star) ** 2
    n = np.asarray(n, float)
    nr2 = n * r2
    return np.sqrt(s2) * np.sqrt(2 * (nr2 + 1) / (n * n * r2) * np.log(np.sqrt(nr2 + 1) / alpha))


def p_value(estimate: np.ndarray | float, se: np.ndarray | float, n: np.ndarray | float,
            alpha: float, n_star: float) -> np.ndarray | float:
    """Always-valid p-value: the smallest level whose sequence (same ρ) excludes 0.

    p = min(1, √(nρ²+1)·exp(−ρ²·n·d²/SE² / (2(nρ²+1)))); p ≤ α exactly when 0 lies outside
    the α-level sequence.
    """
    r2 = rho(alpha, n_star) ** 2
    n = np.asarray(n, float)
    st2 = np.asarray(estimate, float) ** 2 * n / np.asarray(se, float) ** 2
    tr = n * r2 + 1
    return np.minimum(1.0, np.sqrt(tr) * np.exp(-r2 * st2 / (2 * tr)))


def crit_at(p: float, n: float, alpha: float, n_star: float) -> float:
    """The distance (in SEs) at which the sequence with the design's ρ has level p."""
    if p <= 0:  # underflow of an overwhelming effect
        return math.inf
    r2 = rho(alpha, n_star) ** 2
    tr = n * r2 + 1
    inner = math.log(math.sqrt(tr) / p)
    return math.sqrt(max(2 * tr * inner / (n * r2), 0.0))


def sequential_inference(effect: Effect, alpha: float, n_star: float | None) -> Inference:
    """Confidence-sequence interval and always-valid p-value for `effect` at this look."""
    d, se, n = effect.estimate, effect.se, effect.n
    n_star = float(n_star) if n_star else float(n)
    if not se > 0:
        return Inference(d, d, 1.0 if d == 0 else 0.0, math.inf)
    hw = float(halfwidth(se * se * n, n, alpha, n_star))
    p = float(p_value(d, se, n, alpha, n_star))
    return Inference(d - hw, d + hw, p, hw / se)
