"""The budget held against the truth: a one-sided upper confidence bound of the written plan's
cost from the last experiment, which the plan is fitted under (not the cost's point estimate).

A plan's cost is known up to its conversion costs (a redeemed coupon costs its face value), and
the model's predicted conversions are most wrong for the customers a plan picks. The doubly
robust estimate of the cost, sum_i [sum_a pi_ia (c_a + v_a mu_ia) + r_i] with the residual term
r_i = pi_i,A_i v_A_i (Y_i - mu_i,A_i) / e_A_i, differs from the true cost only by the centred
residual terms (the contact costs of the plan's customers are known), so its design-based
variance is sum_i r_i^2 (conservative: E r_i^2 >= Var r_i). When the experiment is a sample of
the scored population, the model part varies with the sample too (with the finite-population
correction 1 - m/N). Fitting the plan so that estimate + z SE stays within the budget makes the
true cost exceed it with probability about 1 - level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

# one-sided: the plan's true cost exceeds the budget in about 5% of experiments
COST_BOUND_LEVEL = 0.95


@dataclass(frozen=True)
class CostBound:
    """The written plan's cost: DR estimate, its design-based SE and one-sided upper bound."""

    estimate: float
    se: float
    upper: float
    level: float
    method: str

    def to_dict(self) -> dict:
        return asdict(self)


def cost_bound(policy: np.ndarray, arm: np.ndarray, y: np.ndarray, propensity: np.ndarray,
               mu: np.ndarray, *, arms: Sequence[str], cost_per_contact: Mapping[str, float],
               cost_per_conversion: Mapping[str, float], population: int | None = None,
               level: float = COST_BOUND_LEVEL) -> CostBound:
    """Upper `level` bound of the plan's total cost over `population` customers (default the
    experiment's). `policy` (m x (k+1)) and `mu` (predicted outcome per arm) are the
    experiment customers' rows, control first as `arms`; `arm` their arm codes, `y` their 0/1
    outcomes, `propensity` the design's probability of each arm."""
    from scipy.stats import norm

    pi = np.asarray(policy, dtype=float)
    mu = np.asarray(mu, dtype=float)
    arm = np.asarray(arm, dtype=np.int64)
    y = np.asarray(y, dtype=float)
    e = np.asarray(propensity, dtype=float)
    m = pi.shape[0]
    pop = m if population is None else int(population)
    cpc = np.array([float(cost_per_contact.get(a, 0.0)) for a in arms])
    cpv = np.array([float(cost_per_conversion.get(a, 0.0)) for a in arms])
    known = (pi * (cpc[None, :] + cpv[None, :] * mu)).sum(axis=1)
    rows = np.arange(m)
    resid = pi[rows, arm] * cpv[arm] * (y - mu[rows, arm]) / e[arm]
    estimate = pop / m * float((known + resid).sum())
    var = (pop / m) ** 2 * float((resid ** 2).sum())
    if pop > m and m > 1:  # the experiment is a sample of the population: its model part too
        var += pop ** 2 * (1 - m / pop) * float(known.var(ddof=1)) / m
    se = float(np.sqrt(var))
    z = float(norm.ppf(level))
    return CostBound(estimate, se, estimate + z * se, level,
                     f"doubly robust cost + {z:.3f} x its design-based standard error "
                     f"(one-sided {level:.0%} upper bound; only conversions are uncertain)")
