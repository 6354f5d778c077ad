"""The next campaign's plan: a randomised exploration share assigned by the design's weights
(so that the next experiment can still measure and re-fit), the optimised allocation for the rest.

Exploration uses the assignment formula of `upliftlab.assign`: u = the first 15 hex digits of
md5(salt || ':' || customer_id) / 2^60, computed in DuckDB; a customer explores when
u < share, and within the exploration share the arm is the first whose cumulative weight
exceeds u / share. Deterministic, reproducible in any warehouse, independent of row order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from upliftlab.errors import InputError
from upliftlab.policy.allocate import Allocation, Problem, evaluate, solve

DEFAULT_SALT = "upliftlab-explore"


def hash_uniform(customer_ids: Any, salt: str) -> np.ndarray:
    """u in [0, 1) per customer id by the documented md5 formula (vectorised in DuckDB)."""
    import duckdb
    import pyarrow as pa

    from upliftlab.assign import unit_sql

    ids = np.asarray(customer_ids)
    # integers hash their decimal form, anything else its text form (as `assign` does)
    col = pa.array(ids if ids.dtype.kind in "iu" else ids.astype(str))
    con = duckdb.connect()
    try:
        con.register("ids", pa.table({"i": np.arange(ids.shape[0]), "customer_id": col}))
        sql = (f"SELECT {unit_sql(salt, 'CAST(customer_id AS VARCHAR)')} AS u "
               "FROM ids ORDER BY i")
        return con.execute(sql).fetchnumpy()["u"].astype(float)
    finally:
        con.close()


@dataclass(frozen=True, eq=False)
class CampaignPlan:
    """Arm per customer (-1 = none / control), the exploration flag, and what is expected."""

    arms: tuple[str, ...]
    arm: np.ndarray
    explore: np.ndarray
    expected_uplift: np.ndarray
    expected_cost: np.ndarray
    allocation: Allocation          # the optimised part (exploration customers excluded)
    explore_share: float
    explore_weights: dict[str, float]
    explore_counts: dict[str, int]
    summary: dict = field(default_factory=dict)

    @property
    def labels(self) -> np.ndarray:
        names = np.array(("none",) + self.arms, dtype=object)
        return names[self.arm + 1]


def exploration_arms(customer_ids: Any, share: float, weights: Mapping[str, float],
                     arms: Sequence[str], capacity: np.ndarray | None = None, *,
                     salt: str = DEFAULT_SALT) -> tuple[np.ndarray, np.ndarray]:
    """(explore flag, arm index -1..k-1) for every customer.

    `weights` are the design weights over "control" (or "none") and the treatment arms. An arm
    over its capacity keeps the customers with the smallest hash and gives the rest control:
    that selection depends on the hash only, so it stays random.
    """
    if not 0 <= share <= 1:
        raise InputError(f"explore share must be in [0, 1] (got {share})")
    names = ["control"] + list(arms)
    w = np.zeros(len(names))
    for a, v in weights.items():
        key = "control" if a == "none" else a
        if key not in names:
            raise InputError(f"exploration weight for unknown arm {a!r} (arms: "
                             f"{', '.join(names)})")
        if v < 0:
            raise InputError(f"exploration weight of {a!r} must be >= 0 (got {v})")
        w[names.index(key)] = float(v)
    if w.sum() <= 0:
        raise InputError("exploration weights must not all be zero")
    u = hash_uniform(customer_ids, salt)
    explore = u < share
    v = np.where(explore, u / share if share > 0 else 1.0, 1.0)
    cum = np.cumsum(w / w.sum())
    col = np.minimum(np.searchsorted(cum, v, side="right"), len(names) - 1)
    arm = np.where(explore, col - 1, -1).astype(np.int64)
    if capacity is not None:
        for j in range(len(arms)):
            if not np.isfinite(capacity[j]):
                continue
            idx = np.flatnonzero(arm == j)
            if idx.size > capacity[j]:
                drop = idx[np.argsort(u[idx], kind="stable")[int(capacity[j]):]]
                arm[drop] = -1
    return explore, arm


def plan_campaign(problem: Problem, customer_ids: Any, *, explore_share: float = 0.10,
                  explore_weights: Mapping[str, float] | None = None,
                  salt: str = DEFAULT_SALT, method: str = "lagrangian",
                  lp_bound: bool | str = "auto", seed: int = 0) -> CampaignPlan:
    """Exploration share first (design weights, within capacity), then the budget and
    capacity left go to the optimised allocation of everyone else.

    The exploration customers' expected cost (from their scores) is charged to the budget; if
    it alone exceeds the budget, InputError says so (lower the share or raise the budget).
    """
    ids = np.asarray(customer_ids)
    if ids.shape[0] != problem.n:
        raise InputError(f"{ids.shape[0]} customer ids for {problem.n} score rows")
    weights = dict(explore_weights) if explore_weights else {
        a: 1.0 for a in ("control",) + problem.arms}
    explore, ex_arm = exploration_arms(ids, explore_share, weights, problem.arms,
                                       problem.capacity, salt=salt)
    ex_counts = np.bincount(ex_arm[ex_arm >= 0], minlength=problem.k)
    ex_cost = sum(float(problem.cost[a][ex_arm == a].sum()) for a in range(problem.k))
    if ex_cost > problem.budget:
        raise InputError(f"the exploration share ({explore_share:.0%}) alone costs "
                         f"{ex_cost:,.2f}, more than the budget {problem.budget:,.2f}: lower "
                         "--explore or raise --budget")
    rest = np.flatnonzero(~explore)
    sub = Problem(problem.arms, problem.gain[:, rest], problem.cost[:, rest],
                  problem.uplift[:, rest], problem.budget - ex_cost,
                  problem.capacity - ex_counts, problem.objective)
    alloc = solve(sub, method=method, lp_bound=lp_bound, seed=seed)
    arm = ex_arm.copy()
    arm[rest] = alloc.arm
    up = np.zeros(problem.n)
    cost = np.zeros(problem.n)
    for a in range(problem.k):
        m = arm == a
        up[m] = problem.uplift[a, m]
        cost[m] = problem.cost[a, m]
    total = evaluate(problem, arm, method=alloc.method)
    summary = {
        "customers": int(problem.n),
        "explore_customers": int(explore.sum()),
        "explore_cost": ex_cost,
        "counts": total.counts,
        "expected_incremental_reactivations": total.expected_incremental_reactivations,
        "expected_value": total.expected_value,
        "expected_cost": total.expected_cost,
        "cost_per_incremental_reactivation": total.cost_per_incremental_reactivation,
        "budget_used": total.budget_used,
    }
    w = np.array(list(weights.values()), dtype=float)
    return CampaignPlan(problem.arms, arm, explore, up, cost, alloc, float(explore_share),
                        {a: float(v) / w.sum() for a, v in weights.items()},
                        {a: int(ex_counts[j]) for j, a in enumerate(problem.arms)}, summary)
