"""Budget curves: expected incremental reactivations (and value) against budget, of the
optimised allocation (`budget_curve`) and of the written plan with its exploration (`plan_curve`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from upliftlab.errors import InputError
from upliftlab.policy.explore import ExploreBudget, Hashes, plan_campaign
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
        r = sum(float(up[j - 1][arm == j].sum()) for j in range(1, problem.k + 1))
        v = sum(float(gain[j - 1][arm == j].sum()) for j in range(1, problem.k + 1))
        out["cost"].append(c / frac)
        out["react"].append(r / frac)
        out["value"].append(v / frac)
        out["lam"].append(lam)
    rev = {k: np.array(v[::-1]) for k, v in out.items()}
    return BudgetCurve(budgets, rev["cost"], rev["react"], rev["value"], rev["lam"], 1 / frac)


def plan_expectation(problem: Problem, prop: np.ndarray) -> dict[str, float]:
    """The model's expectation of the stochastic plan: incremental reactivations, cost, value."""
    p = prop[:, 1:].T
    return {"reactivations": float((p * problem.uplift).sum()),
            "cost": float((p * problem.cost).sum()),
            "value": float((p * problem.gain).sum())}


def plan_curve(problem: Problem, ids: np.ndarray, budget: float, eb: ExploreBudget,
               weights: Mapping[str, float] | None, hashes: Hashes, salt: str,
               points: int, seed: int, plan_point: tuple[float, float, float],
               plan_budget: float | None = None, max_customers: int = 200_000) -> BudgetCurve:
    """The written plan (same exploration rule) at budgets from 0 to twice the chosen one.

    Above `max_customers` the other points are computed on a random subsample with budget and
    capacities scaled, then scaled back; the plan's own point (at `plan_budget`, default the
    chosen budget) is the plan itself. Budgets too small to hold the exploration are left out.
    """
    plan_budget = budget if plan_budget is None else plan_budget
    if not np.isfinite(budget) or budget <= 0:
        return BudgetCurve(np.array([budget]), np.array([plan_point[1]]),
                           np.array([plan_point[0]]), np.array([plan_point[2]]),
                           np.zeros(1), 1.0)
    grid = np.linspace(0, 2 * budget, points + 1)[1:]
    n = problem.n
    idx = np.arange(n)
    if n > max_customers:
        idx = np.sort(np.random.default_rng(seed).choice(n, max_customers, replace=False))
    frac = idx.size / n
    cap = np.where(np.isfinite(problem.capacity), np.floor(problem.capacity * frac), np.inf)
    sub_hash = Hashes(hashes.u[idx], hashes.arm[idx])
    rows = []
    for b in grid:
        if np.isclose(b, plan_budget):
            continue
        part = Problem(problem.arms, problem.gain[:, idx], problem.cost[:, idx],
                       problem.uplift[:, idx], b * frac, cap, problem.objective)
        part_eb = eb if eb.share is not None else ExploreBudget(amount=min(eb.amount, b) * frac)
        try:
            plan = plan_campaign(part, ids[idx], explore_budget=part_eb,
                                 explore_weights_=weights, salt=salt, seed=seed,
                                 hashes=sub_hash, lp_bound=False, polish=False)
        except InputError:  # too small to hold the exploration
            continue
        e = plan_expectation(part, plan.propensity)
        rows.append((b, e["cost"] / frac, e["reactivations"] / frac, e["value"] / frac))
    rows.append((plan_budget, plan_point[1], plan_point[0], plan_point[2]))
    rows.sort()
    arr = np.array(rows)
    return BudgetCurve(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], np.zeros(len(rows)),
                       1 / frac)
