"""The allocation entry points: `allocate` (inputs -> `Allocation`) and `solve` (a `Problem`
by one method), each reporting its bound and gap; the methods live in `lagrangian` and `exact`.

- ``"lagrangian"`` (default, scalable): prices plus repair (`upliftlab.policy.lagrangian`).
- ``"lp"``: the LP relaxation (HiGHS), rounded down, repaired and filled; its optimum is an
  upper bound and its duals the prices (`upliftlab.policy.exact`).
- ``"milp"``: the integer optimum (HiGHS branch and bound): small instances only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from upliftlab.errors import InputError
from upliftlab.policy.exact import solve_lp, solve_milp
from upliftlab.policy.lagrangian import (dual_bound, fill, marginal_cost_per_reactivation, repair,
                                         solve_lagrangian)
from upliftlab.policy.problem import Allocation, Problem, chosen, evaluate, make_problem, totals


def allocate(base: Any, uplift: Any, *, arms: Sequence[str] | None = None,
             budget: float | None = None,
             capacity: Mapping[str, float] | Sequence[float] | None = None,
             cost_per_contact: Mapping[str, float] | Sequence[float] | None = None,
             cost_per_conversion: Mapping[str, float] | Sequence[float] | None = None,
             objective: str = "reactivations", value_per_reactivation: float | None = None,
             revenue_uplift: Any = None, method: str = "lagrangian",
             lp_bound: bool | str = "auto", lp_max_pairs: int = 100_000,
             time_limit: float = 60.0, seed: int = 0) -> Allocation:
    """Choose at most one arm per customer to maximise the objective within budget and
    capacity.

    `base` (n,) is P(reactivate) under control, `uplift` (n, k) the uplift of each treatment
    arm. `method` is "lagrangian" (scalable), "lp" (LP relaxation rounded down, then filled) or
    "milp" (integer optimum, small instances). `lp_bound="auto"` also solves the LP relaxation
    for the gap when it has at most `lp_max_pairs` eligible customer-arm pairs.
    """
    problem = make_problem(base, uplift, arms=arms, budget=budget, capacity=capacity,
                           cost_per_contact=cost_per_contact,
                           cost_per_conversion=cost_per_conversion, objective=objective,
                           value_per_reactivation=value_per_reactivation,
                           revenue_uplift=revenue_uplift)
    return solve(problem, method=method, lp_bound=lp_bound, lp_max_pairs=lp_max_pairs,
                 time_limit=time_limit, seed=seed)


def solve(problem: Problem, *, method: str = "lagrangian", lp_bound: bool | str = "auto",
          lp_max_pairs: int = 100_000, time_limit: float = 60.0, seed: int = 0) -> Allocation:
    """Solve a validated `Problem` (see `allocate`)."""
    t0 = time.perf_counter()
    want_lp = method == "lp" or lp_bound is True or (
        lp_bound == "auto" and int((problem.gain > 0).sum()) <= lp_max_pairs)
    lp_val = None
    extra: dict = {}
    if method == "lagrangian":
        arm, lam, mu, bound = solve_lagrangian(problem, seed=seed)
    elif method in ("lp", "milp"):
        lp_val, x, lam, mu = solve_lp(problem, time_limit=time_limit)
        if method == "lp":
            arm = np.zeros(problem.n, dtype=np.int64)
            a_idx, i_idx = np.nonzero(x >= 1 - 1e-9)
            arm[i_idx] = a_idx + 1  # row a is arm a + 1
            extra["fractional_customers"] = int(((x > 1e-9) & (x < 1 - 1e-9)).any(0).sum())
            g, c, _ = chosen(problem, arm)
            arm = fill(problem, repair(problem, arm, lam, g, c))
        else:
            arm, _ = solve_milp(problem, time_limit=time_limit)
        bound = dual_bound(problem, lam, mu)
    else:
        raise InputError(f"method must be lagrangian, lp or milp (got {method!r})")
    if want_lp and lp_val is None:
        lp_val, _, _, _ = solve_lp(problem, time_limit=time_limit)
    if lp_val is not None:
        bound = min(bound, max(lp_val, totals(problem, arm)[0]))
    marginal = marginal_cost_per_reactivation(problem, lam, mu)
    return evaluate(problem, arm, method=method, lambda_=lam, mu=mu, dual_bound=bound,
                    lp_bound=lp_val, marginal=marginal, seconds=time.perf_counter() - t0,
                    extra=extra)

