"""The budget curve: expected incremental reactivations (and value) against budget, each point
the price-rule allocation at that budget, warm-started from the last (`budget_curve`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from upliftlab.policy.lagrangian import Pricer, find_prices
from upliftlab.policy.problem import Problem


@dataclass(frozen=True)
class BudgetCurve:
    """Expected incremental reactivations (and objective value) against budget."""

    budget: np.ndarray
    cost: np.ndarray
    reactivations: np.ndarray
    value: np.ndarray
    lambda_: np.ndarray
    scale: float  # > 1 when computed on a subsample and scaled up to all customers

    def to_dict(self) -> dict:
        return {"budget": self.budget.tolist(), "cost": self.cost.tolist(),
                "reactivations": self.reactivations.tolist(), "value": self.value.tolist(),
                "lambda": self.lambda_.tolist(), "scale": self.scale}


def budget_curve(problem: Problem, budgets: Sequence[float] | int = 20, *,
                 max_customers: int = 500_000, seed: int = 0) -> BudgetCurve:
    """The price-rule allocation at each budget of a grid, warm-started from the previous one.

    Each point is the Lagrangian allocation at prices that fit the budget: it is optimal for
    the cost it spends (that is what Lagrangian prices guarantee), so the curve is the exact
    LP-efficient frontier up to the last fractional customer. Above `max_customers` the curve
    is computed on a random subsample with budget and capacities scaled, then scaled back.
    """
    if isinstance(budgets, (int, np.integer)):
        top = problem.budget if np.isfinite(problem.budget) else float(
            np.maximum(problem.cost, 0).max(0).sum())
        budgets = np.linspace(0, 1.5 * top, int(budgets) + 1)[1:]
    budgets = np.sort(np.asarray(budgets, dtype=float))
    n = problem.n
    if n > max_customers:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=max_customers, replace=False))
        frac = max_customers / n
    else:
        idx, frac = slice(None), 1.0
    gain, cost, up = problem.gain[:, idx], problem.cost[:, idx], problem.uplift[:, idx]
    cap = np.where(np.isfinite(problem.capacity), np.floor(problem.capacity * frac), np.inf)
    out = {k: [] for k in ("cost", "react", "value", "lam")}
    lam, mu = 0.0, np.zeros(problem.k)
    for b in budgets[::-1]:  # high budget first: lambda rises as the budget falls
        pr = Pricer(gain, cost, b * frac, cap)
        lam, mu = find_prices(pr, lam=lam, mu=mu, rtol=1e-5)
        c = pr(lam, mu)
        arm = pr.arm
        r = sum(float(up[a][arm == a].sum()) for a in range(problem.k))
        v = sum(float(gain[a][arm == a].sum()) for a in range(problem.k))
        out["cost"].append(c / frac)
        out["react"].append(r / frac)
        out["value"].append(v / frac)
        out["lam"].append(lam)
    rev = {k: np.array(v[::-1]) for k, v in out.items()}
    return BudgetCurve(budgets, rev["cost"], rev["react"], rev["value"], rev["lam"], 1 / frac)
