"""Sufficient statistics: small frozen records of sums that add up (per stratum, per week).

Every test in `upliftlab.stats` runs on these, never on rows; `stats/sql.py` fills them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SampleStats:
    """n, sum and sum of squares of one metric in one group."""

    n: int
    sum: float
    sum_sq: float

    def __add__(self, other: "SampleStats") -> "SampleStats":
        return SampleStats(self.n + other.n, self.sum + other.sum, self.sum_sq + other.sum_sq)

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n else math.nan

    def variance(self, ddof: int = 1) -> float:
        """Sample variance (ddof=1, the default) or the plug-in variance (ddof=0)."""
        if self.n - ddof <= 0:
            return math.nan
        # clipped at 0: the one-pass formula can go a hair negative for a constant column
        return max((self.sum_sq - self.sum * self.sum / self.n) / (self.n - ddof), 0.0)

    @property
    def sd(self) -> float:
        return math.sqrt(self.variance(1)) if self.n > 1 else math.nan


@dataclass(frozen=True)
class RegressionStats:
    """Sums for regressing y on covariates x in one group: n, Σy, Σy², Σx, Σxx', Σxy.

    Enough for CUPED (one covariate, pooled θ) and Lin's interacted regression (several).
    """

    n: int
    sum_y: float
    sum_yy: float
    sum_x: tuple[float, ...]
    sum_xx: tuple[tuple[float, ...], ...]
    sum_xy: tuple[float, ...]

    def __add__(self, other: "RegressionStats") -> "RegressionStats":
        k = len(self.sum_x)
        if len(other.sum_x) != k:
            raise ValueError("cannot add RegressionStats with different covariates")
        return RegressionStats(
            self.n + other.n, self.sum_y + other.sum_y, self.sum_yy + other.sum_yy,
            tuple(a + b for a, b in zip(self.sum_x, other.sum_x)),
            tuple(tuple(a + b for a, b in zip(ra, rb)) for ra, rb in zip(self.sum_xx, other.sum_xx)),
            tuple(a + b for a, b in zip(self.sum_xy, other.sum_xy)))

    @property
    def k(self) -> int:
        return len(self.sum_x)

    @property
    def y(self) -> SampleStats:
        return SampleStats(self.n, self.sum_y, self.sum_yy)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(Σx, Σxx', Σxy) as numpy arrays."""
        return (np.asarray(self.sum_x, float), np.asarray(self.sum_xx, float).reshape(self.k, self.k),
                np.asarray(self.sum_xy, float))

    def centred_moments(self) -> tuple[np.ndarray, np.ndarray, float]:
        """Within-group (n−1) covariance S_xx, covariance vector S_xy and variance of y."""
        sx, sxx, sxy = self.arrays()
        n = self.n
        mx = sx / n
        cxx = (sxx - n * np.outer(mx, mx)) / (n - 1)
        cxy = (sxy - n * mx * (self.sum_y / n)) / (n - 1)
        return cxx, cxy, self.y.variance(1)


@dataclass(frozen=True)
class CostStats:
    """Within-group sums of the per-customer cost: Σcost, Σcost², Σcost·y, Σcost·revenue.

    cost_i = per_contact + per_conversion·y_i, so these follow exactly from the metric sums
    (`from_moments`); they are kept as their own record so a per-customer cost column could
    fill them as well.
    """

    n: int
    sum_cost: float
    sum_cost_sq: float
    sum_cost_y: float
    sum_cost_rev: float = 0.0

    def __add__(self, other: "CostStats") -> "CostStats":
        return CostStats(self.n + other.n, self.sum_cost + other.sum_cost,
                         self.sum_cost_sq + other.sum_cost_sq, self.sum_cost_y + other.sum_cost_y,
                         self.sum_cost_rev + other.sum_cost_rev)

    @property
    def mean(self) -> float:
        return self.sum_cost / self.n


@dataclass(frozen=True)
class MomentStats:
    """Joint sums of several numeric columns of one group, as one SQL aggregate returns them.

    `cross` holds Σ a·b for the column pairs in `pairs` (squares included as (a, a));
    `n_missing` the NULLs per column and `n_not01` the values outside {0, 1} (to tell a 0/1
    metric from a continuous one). All fields add up across strata and weeks.
    """

    n: int
    columns: tuple[str, ...]
    sums: tuple[float, ...]
    pairs: tuple[tuple[str, str], ...]
    cross: tuple[float, ...]
    n_missing: tuple[int, ...] = field(default=())
    n_not01: tuple[int, ...] = field(default=())

    def __add__(self, other: "MomentStats") -> "MomentStats":
        if self.columns != other.columns or self.pairs != other.pairs:
            raise ValueError("cannot add MomentStats over different columns")
        return MomentStats(
            self.n + other.n, self.columns,
            tuple(a + b for a, b in zip(self.sums, other.sums)), self.pairs,
            tuple(a + b for a, b in zip(self.cross, other.cross)),
            tuple(a + b for a, b in zip(self.n_missing, other.n_missing)),
            tuple(a + b for a, b in zip(self.n_not01, other.n_not01)))

    def sum_of(self, column: str) -> float:
        return self.sums[self.columns.index(column)]

    def cross_of(self, a: str, b: str) -> float:
        try:
            return self.cross[self.pairs.index((a, b))]
        except ValueError:
            try:
                return self.cross[self.pairs.index((b, a))]
            except ValueError:
                raise KeyError(f"cross-product {a}·{b} was not aggregated") from None

    def sample(self, metric: str) -> SampleStats:
        return SampleStats(self.n, self.sum_of(metric), self.cross_of(metric, metric))

    def regression(self, y: str, covariates: list[str] | tuple[str, ...]) -> RegressionStats:
        return RegressionStats(
            self.n, self.sum_of(y), self.cross_of(y, y),
            tuple(self.sum_of(x) for x in covariates),
            tuple(tuple(self.cross_of(a, b) for b in covariates) for a in covariates),
            tuple(self.cross_of(x, y) for x in covariates))

    def cost(self, per_contact: float, per_conversion: float, y: str,
             revenue: str | None = None) -> CostStats:
        """CostStats of cost_i = per_contact + per_conversion·y_i, exactly from the sums."""
        n, c0, c1 = self.n, float(per_contact), float(per_conversion)
        sy, syy = self.sum_of(y), self.cross_of(y, y)
        cost_rev = 0.0
        if revenue is not None:
            cost_rev = c0 * self.sum_of(revenue) + c1 * self.cross_of(y, revenue)
        return CostStats(n, n * c0 + c1 * sy, n * c0 * c0 + 2 * c0 * c1 * sy + c1 * c1 * syy,
                         c0 * sy + c1 * syy, cost_rev)
