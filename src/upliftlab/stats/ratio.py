"""Ratio metrics (Σy / Σx per arm, e.g. revenue per reactivated customer) with delta-method
intervals, from the sums of one SQL aggregate.

The unit of randomisation is the customer, so a ratio of sums over customers has the
delta-method variance (Deng et al. 2018, "Applying the delta method in metric analytics"):
Var(ȳ/x̄) ≈ (Var(ȳ) − 2R·Cov(ȳ, x̄) + R²·Var(x̄)) / x̄².
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from upliftlab.stats.cost import delta_ratio_se
from upliftlab.stats.tests import Effect


@dataclass(frozen=True)
class RatioStats:
    """n customers and the sums Σx, Σy, Σx², Σy², Σxy of one arm (x: denominator)."""

    n: int
    sum_x: float
    sum_y: float
    sum_xx: float
    sum_yy: float
    sum_xy: float

    def __add__(self, other: "RatioStats") -> "RatioStats":
        return RatioStats(self.n + other.n, self.sum_x + other.sum_x, self.sum_y + other.sum_y,
                          self.sum_xx + other.sum_xx, self.sum_yy + other.sum_yy,
                          self.sum_xy + other.sum_xy)

    def _cov(self, s_ab: float, s_a: float, s_b: float) -> float:
        return (s_ab - s_a * s_b / self.n) / (self.n - 1) if self.n > 1 else math.nan

    def estimate(self) -> Effect | None:
        """Σy/Σx with its delta-method SE; None when Σx is 0 (no one in the denominator)."""
        if self.n < 2 or self.sum_x == 0:
            return None
        x, y = self.sum_x / self.n, self.sum_y / self.n
        se = delta_ratio_se(y, x, self._cov(self.sum_yy, self.sum_y, self.sum_y) / self.n,
                            self._cov(self.sum_xx, self.sum_x, self.sum_x) / self.n,
                            self._cov(self.sum_xy, self.sum_x, self.sum_y) / self.n)
        return Effect(y / x, se, None, self.n)


def ratio_difference(t: RatioStats, c: RatioStats) -> Effect | None:
    """R_t − R_c, the arms independent (normal reference); None when either ratio is undefined."""
    et, ec = t.estimate(), c.estimate()
    if et is None or ec is None:
        return None
    return Effect(et.estimate - ec.estimate, math.hypot(et.se, ec.se), None, t.n + c.n)


__all__ = ["RatioStats", "ratio_difference"]
