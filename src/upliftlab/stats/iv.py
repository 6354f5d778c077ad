"""The effect on customers actually reached: complier average causal effect (CACE) with the
assignment as the instrument (Angrist, Imbens & Rubin 1996; STATS-NOTES "Non-compliance").

Wald (ITT on the outcome / ITT on reach) with a delta-method and a Fieller interval, and
two-stage least squares with pre-period covariates, both with White's (HC0) robust covariance as
linearmodels' `IV2SLS(...).fit(cov_type="robust")` computes it, from per-arm sums only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations_with_replacement

import numpy as np

from upliftlab.errors import InputError
from upliftlab.stats.cost import Ratio, delta_ratio_se, fieller

DEGREE = 4  # the robust (sandwich) covariance of 2SLS needs sums of products of four variables


@lru_cache(maxsize=None)
def monomials(k: int) -> tuple[tuple[int, ...], ...]:
    """Index tuples (sorted, length 4) over the variables 0..k+2: 0 is the constant 1, 1 reach
    (D), 2 the outcome (Y), 3.. the covariates. Lower degrees pad with the constant."""
    return tuple(combinations_with_replacement(range(k + 3), DEGREE))


@lru_cache(maxsize=None)
def _position(k: int) -> dict[tuple[int, ...], int]:
    return {m: i for i, m in enumerate(monomials(k))}


@dataclass(frozen=True)
class IVStats:
    """Sums of one arm over its customers: Σ of every product of up to four of (1, D, Y, x...)
    (`sums`, in the order of `monomials(k)`), and of the per-customer cost c: Σc, Σc², Σc·Y.

    Filled by one SQL aggregate (`upliftlab.touches.iv_sql`); adds up across strata.
    """

    n: int
    covariates: tuple[str, ...]
    sums: tuple[float, ...]
    sum_cost: float = 0.0
    sum_cost_sq: float = 0.0
    sum_cost_y: float = 0.0

    def __add__(self, other: "IVStats") -> "IVStats":
        if self.covariates != other.covariates:
            raise ValueError("cannot add IVStats over different covariates")
        return IVStats(self.n + other.n, self.covariates,
                       tuple(a + b for a, b in zip(self.sums, other.sums)),
                       self.sum_cost + other.sum_cost, self.sum_cost_sq + other.sum_cost_sq,
                       self.sum_cost_y + other.sum_cost_y)

    def without_covariates(self) -> "IVStats":
        """The same arm's sums over (1, D, Y) only: a subset of these sums."""
        if not self.covariates:
            return self
        sums = tuple(self.s(*m) for m in monomials(0))
        return IVStats(self.n, (), sums, self.sum_cost, self.sum_cost_sq, self.sum_cost_y)

    def s(self, *idx: int) -> float:
        """Σ of the product of the variables `idx` (up to four; 0 = the constant)."""
        key = tuple(sorted(idx + (0,) * (DEGREE - len(idx))))
        return self.sums[_position(len(self.covariates))[key]]

    def mean(self, i: int) -> float:
        return self.s(i) / self.n

    def cov(self, i: int, j: int) -> float:
        """Plug-in (ddof = 0) within-arm covariance of variables i and j."""
        return self.s(i, j) / self.n - self.mean(i) * self.mean(j)


D, Y = 1, 2


@dataclass(frozen=True)
class IVEstimate:
    """An effect on the reached: estimate, robust SE, normal interval (delta method), and for
    the Wald estimator Fieller's set (None for 2SLS). `itt_y` and `itt_d` are the effects of
    assignment on the outcome and on reach (the first stage)."""

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    fieller: Ratio | None
    itt_y: float
    itt_d: float
    itt_d_se: float
    n_treatment: int
    n_control: int


def wald(t: IVStats, c: IVStats, z: float) -> IVEstimate:
    """CACE = (ȳt − ȳc) / (d̄t − d̄c) with the delta-method SE (plug-in variances, equal to
    2SLS with HC0 robust covariance) and Fieller's interval at critical value `z`."""
    _check_arms(t, c)
    a = t.mean(Y) - c.mean(Y)
    b = t.mean(D) - c.mean(D)
    var_a = t.cov(Y, Y) / t.n + c.cov(Y, Y) / c.n
    var_b = t.cov(D, D) / t.n + c.cov(D, D) / c.n
    cov_ab = t.cov(Y, D) / t.n + c.cov(Y, D) / c.n
    if b == 0:
        raise InputError("reach: no customer of the arm was reached more often than in "
                         "control, so the effect on the reached is not defined")
    est = a / b
    se = delta_ratio_se(a, b, var_a, var_b, cov_ab)
    return IVEstimate(est, se, est - z * se, est + z * se,
                      fieller(a, b, var_a, var_b, cov_ab, z), a, b, math.sqrt(var_b), t.n, c.n)


def tsls(t: IVStats, c: IVStats, z: float) -> IVEstimate:
    """2SLS of Y on (1, D, x...) with instruments (1, Z, x...), Z = 1 in arm `t`, 0 in `c`,
    and White's (HC0) covariance: the D coefficient and its SE as linearmodels reports them."""
    _check_arms(t, c)
    k = len(t.covariates)
    inst = [0, -1] + [3 + j for j in range(k)]  # -1 stands for Z
    regr = [0, D] + [3 + j for j in range(k)]

    def S(*idx: int) -> float:
        # Z is 1 in the treatment arm and 0 in control, and Z·Z = Z
        rest = tuple(i for i in idx if i != -1)
        return t.s(*rest) if len(rest) != len(idx) else t.s(*rest) + c.s(*rest)

    p = len(inst)
    ww = np.array([[S(a, b) for b in inst] for a in inst])
    wx = np.array([[S(a, b) for b in regr] for a in inst])
    wy = np.array([S(a, Y) for a in inst])
    if np.linalg.matrix_rank(ww) < p:
        raise InputError("covariates: collinear (or constant) covariates; drop one")
    pi = np.linalg.solve(ww, wx)          # first stage: X̂ = W·Π
    a_mat = wx.T @ pi                     # X̂'X̂
    beta = np.linalg.solve(a_mat, pi.T @ wy)
    coef = {Y: 1.0}                       # residual u = Y − X·β as a combination of variables
    for var, b in zip(regr, beta):
        coef[var] = coef.get(var, 0.0) - b
    meat_w = np.zeros((p, p))
    for i, a in enumerate(inst):
        for j in range(i, p):
            val = sum(ci * cj * S(a, inst[j], vi, vj)
                      for vi, ci in coef.items() for vj, cj in coef.items())
            meat_w[i, j] = meat_w[j, i] = val
    bread = np.linalg.inv(a_mat)
    cov = bread @ (pi.T @ meat_w @ pi) @ bread
    se = math.sqrt(max(cov[1, 1], 0.0))
    est = float(beta[1])
    return IVEstimate(est, se, est - z * se, est + z * se, None, t.mean(Y) - c.mean(Y),
                      t.mean(D) - c.mean(D),
                      math.sqrt(t.cov(D, D) / t.n + c.cov(D, D) / c.n), t.n, c.n)


@dataclass(frozen=True)
class ReachedCost:
    """Cost per incremental reactivation of what the touches cost: (mean cost in the arm −
    in control) / ITT on reactivation = cost per delivered message / incremental
    reactivations per delivered message (the delivered count cancels), with Fieller's set."""

    cost_per_delivered: float | None
    ratio: Ratio


def reached_cost(t: IVStats, c: IVStats, z: float, touch_cost: float | None = None,
                 delivered: float | None = None) -> ReachedCost:
    """Fieller's set of the cost per incremental reactivation from the per-customer costs in
    `t`/`c`; `touch_cost` / `delivered` (the arm's spend on touches and its delivered messages,
    default Σcost and the reached customers) is the cost per delivered message."""
    a = t.sum_cost / t.n - c.sum_cost / c.n
    b = t.mean(Y) - c.mean(Y)

    def var_cost(s: IVStats) -> float:
        return (s.sum_cost_sq / s.n - (s.sum_cost / s.n) ** 2) / s.n

    def cov_cy(s: IVStats) -> float:
        return (s.sum_cost_y / s.n - s.sum_cost / s.n * s.mean(Y)) / s.n

    var_b = t.cov(Y, Y) / t.n + c.cov(Y, Y) / c.n
    ratio = fieller(a, b, var_cost(t) + var_cost(c), var_b, cov_cy(t) + cov_cy(c), z)
    spend = t.sum_cost if touch_cost is None else touch_cost
    delivered = t.s(D) if delivered is None else delivered
    return ReachedCost(spend / delivered if delivered > 0 else None, ratio)


def _check_arms(t: IVStats, c: IVStats) -> None:
    for s, what in ((t, "treatment"), (c, "control")):
        if s.n < 2:
            raise InputError(f"arm: the {what} arm has {s.n} customers; the effect on the "
                             "reached needs at least 2 in each arm")
