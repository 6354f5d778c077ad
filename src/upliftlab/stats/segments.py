"""Heterogeneity of an effect across segments: Cochran's Q over the per-segment estimates.

Q = Σ wᵢ(dᵢ − d̄)², wᵢ = 1/SEᵢ², d̄ the inverse-variance weighted mean; Q ~ χ²(k − 1) when the
effect is the same in every segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Heterogeneity:
    q: float | None
    df: int
    p_value: float | None
    pooled: float | None  # the inverse-variance weighted mean effect
    used: int             # segments with a usable SE (> 0)


def cochran_q(estimates: list[float] | np.ndarray, ses: list[float] | np.ndarray) -> Heterogeneity:
    """Cochran's Q test; segments with SE 0 or NaN are left out (their weight is undefined)."""
    from scipy.stats import chi2

    d = np.asarray(estimates, float)
    se = np.asarray(ses, float)
    ok = np.isfinite(d) & np.isfinite(se) & (se > 0)
    d, se = d[ok], se[ok]
    k = int(d.size)
    if k < 2:
        return Heterogeneity(None, max(k - 1, 0), None, float(d[0]) if k else None, k)
    w = 1 / se ** 2
    pooled = float(np.sum(w * d) / np.sum(w))
    q = float(np.sum(w * (d - pooled) ** 2))
    return Heterogeneity(q, k - 1, float(chi2.sf(q, k - 1)), pooled, k)

