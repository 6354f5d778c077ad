"""Multiple-testing correction over arms × metrics, with intervals that agree with it.

Holm's step-down (family-wise error, the default) and Benjamini–Hochberg (false discovery
rate); adjusted intervals follow GrowthBook's recipe (see `adjusted_halfwidth`).
"""

from __future__ import annotations

import math

import numpy as np

METHODS = ("holm", "bh", "none")


def adjust(p_values: np.ndarray | list[float], method: str = "holm") -> np.ndarray:
    """Adjusted p-values, equal to statsmodels' multipletests(method='holm' / 'fdr_bh')."""
    p = np.asarray(p_values, float)
    m = p.size
    if m == 0 or method == "none":
        return p.copy()
    order = np.argsort(p, kind="mergesort")
    ps = p[order]
    if method == "holm":
        adj = np.maximum.accumulate((m - np.arange(m)) * ps)
    elif method == "bh":
        adj = np.minimum.accumulate((m / np.arange(m, 0, -1) * ps[::-1]))[::-1]
    else:
        raise ValueError(f"unknown correction {method!r} (expected one of {', '.join(METHODS)})")
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def adjusted_halfwidth(estimate: float, halfwidth: float, crit_alpha: float,
                       crit_adjusted: float) -> float:
    """Half-width of the interval that agrees with an adjusted p-value.

    `crit_adjusted` is the critical value (in SEs) whose level is the adjusted p-value
    (Φ⁻¹(1 − p_adj/2) for a z-test). SE_adj = |d| / crit_adjusted and the interval is
    d ± crit_alpha·SE_adj, so it excludes 0 exactly when p_adj < α. It is never narrower than
    the unadjusted interval; when p_adj = 1 (crit_adjusted = 0) it is the unadjusted one
    widened, if needed, to contain 0; when p_adj underflows to 0 it is the unadjusted one.
    """
    d = abs(estimate)
    if math.isinf(crit_adjusted):  # p_adj underflowed to 0: nothing to widen
        return halfwidth
    if crit_adjusted > 0 and d > 0:
        return max(halfwidth, crit_alpha * d / crit_adjusted)
    return max(halfwidth, d)
