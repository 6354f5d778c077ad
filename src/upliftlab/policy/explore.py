"""The next campaign's plan: an exploration reserve inside the budget (and inside each capacity)
where arms are drawn at random by known weights, and the optimised allocation of the rest.

Exploration is part of the plan, not added to it (STATS-NOTES "The value of the plan as
written"). Two hashes of the documented assignment formula of `upliftlab.assign`
(u = the first 15 hex digits of md5(salt || ':' || customer_id) / 2^60, computed in DuckDB):

- the *order* u = hash(salt, id): customers explore when u < threshold;
- the *arm* v = hash(salt + ':arm', id): the first arm (control first) whose cumulative weight
  exceeds v.

The threshold is the largest one at which the exploration customers' expected cost (from the
model's predicted response, with the conversion costs; both for the arms written and averaged
over the weights) stays within the exploration budget and every arm's exploration count within
the same share of its capacity. Because the arm hash does not depend on the threshold, every
explored customer has the known propensity w_a of every arm, control included; the plan is the
stochastic policy pi(a | x) = (1 - e(x)) 1{a = d(x)} + e(x) w_a with e(x) = 1{u < threshold}.
The optimiser then spends what the exploration left of the budget and of each capacity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from upliftlab.errors import InputError
from upliftlab.policy.lagrangian import solve_lagrangian
from upliftlab.policy.problem import Allocation, ArmLabels, Problem, chosen, evaluate
from upliftlab.policy.solver import solve

DEFAULT_SALT = "upliftlab-explore"
# the default exploration reserve: 5% of the budget and of each capacity. Enough for a few
# hundred randomised customers per arm at demo scale (re-fitting the model next time), small
# enough that the plan keeps most of its value (tests/test_policy_plan.py measures the cost).
DEFAULT_EXPLORE_BUDGET = "5%"


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


@dataclass(frozen=True)
class ExploreBudget:
    """The exploration reserve: a share of the budget (`share`) or an amount (`amount`)."""

    share: float | None = None
    amount: float | None = None

    @classmethod
    def parse(cls, value: Any) -> "ExploreBudget":
        """'10%' (a share of the budget and of each capacity), '250' (an amount of money), a
        float in [0, 1] given as a share, or an ExploreBudget."""
        if isinstance(value, ExploreBudget):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not 0 <= value <= 1:
                raise InputError(f"explore budget share must be in [0, 1] (got {value}); give "
                                 "an amount as text, e.g. '500'")
            return cls(share=float(value))
        text = str(value).strip()
        try:
            if text.endswith("%"):
                share = float(text[:-1]) / 100
                if not 0 <= share <= 1:
                    raise ValueError
                return cls(share=share)
            amount = float(text)
        except ValueError:
            raise InputError(f"{{explore_budget}}: expected a share like 10% or an amount like "
                             f"500 (got {text!r})", params=["explore_budget"]) from None
        if not np.isfinite(amount) or amount < 0:
            raise InputError(f"{{explore_budget}}: an amount must be a finite number >= 0 "
                             f"(got {text!r})", params=["explore_budget"])
        return cls(amount=amount)

    def money(self, budget: float) -> float:
        if self.share is not None:
            return self.share * budget if np.isfinite(budget) else np.inf
        if self.amount > budget:
            raise InputError(f"{{explore_budget}} {self.amount:,.2f} is more than the budget "
                             f"{budget:,.2f}", params=["explore_budget"])
        return float(self.amount)

    def capacity_share(self, budget: float) -> float:
        """The share of each capacity the exploration may use: the budget share."""
        if self.share is not None:
            return self.share
        return self.amount / budget if budget > 0 and np.isfinite(budget) else 1.0

    def describe(self) -> str:
        return f"{self.share:.0%}" if self.share is not None else f"{self.amount:,.2f}"


def explore_weights(weights: Mapping[str, float] | None, arms: Sequence[str]) -> np.ndarray:
    """Normalised weights over (control, *arms); "none" is an alias of control. Every arm must
    keep a positive weight (a known propensity > 0 for the next experiment)."""
    names = ["control"] + list(arms)
    if not weights:
        return np.full(len(names), 1 / len(names))
    w = np.zeros(len(names))
    for a, v in weights.items():
        key = "control" if a == "none" else a
        if key not in names:
            raise InputError(f"{{weights}} for unknown arm {a!r} (arms: {', '.join(names)})",
                             params=["weights"])
        if not np.isfinite(v) or v < 0:
            raise InputError(f"{{weights}} {a}: must be a finite number >= 0 (got {v})",
                             params=["weights"])
        w[names.index(key)] = float(v)
    zero = [n for n, x in zip(names, w) if x <= 0]
    if zero:
        raise InputError(f"{{weights}}: arm(s) {', '.join(zero)} have no weight; exploration "
                         "keeps every arm, control included, at a known propensity > 0 (give "
                         "each a weight, or {explore_budget} 0 for no exploration)",
                         params=["weights", "explore_budget"])
    return w / w.sum()


@dataclass(frozen=True, eq=False)
class Hashes:
    """The two per-customer hashes of the exploration: order u and arm draw (0 = control)."""

    u: np.ndarray
    arm: np.ndarray

    @classmethod
    def of(cls, customer_ids: Any, weights: np.ndarray, salt: str) -> "Hashes":
        u = hash_uniform(customer_ids, salt)
        v = hash_uniform(customer_ids, salt + ":arm")
        cum = np.cumsum(weights)
        col = np.minimum(np.searchsorted(cum, v, side="right"), len(weights) - 1)
        return cls(u, col.astype(np.int64))


def reserve(problem: Problem, hashes: Hashes, weights: np.ndarray, money: float,
            cap_share: float) -> tuple[np.ndarray, float]:
    """The exploration customers (flag) and the threshold on u: the longest prefix in u order
    whose expected cost, for the arms drawn and averaged over the weights, stays within `money`
    and whose count per arm stays within `cap_share` of each capacity (without a budget, at
    most `cap_share` of the customers)."""
    n, k = problem.n, problem.k
    if money <= 0 or n == 0 or cap_share <= 0:
        return np.zeros(n, dtype=bool), 0.0
    order = np.argsort(hashes.u, kind="stable")
    arm = hashes.arm[order]
    real = np.zeros(n)
    for a in range(k):
        m = arm == a + 1  # row a is arm a + 1
        real[m] = problem.cost[a, order[m]]
    mean = weights[1:] @ problem.cost[:, order]
    ok = (np.cumsum(real) <= money * (1 + 1e-12)) & (np.cumsum(mean) <= money * (1 + 1e-12))
    for a in range(k):
        if np.isfinite(problem.capacity[a]):
            limit = np.floor(cap_share * problem.capacity[a] + 1e-9)
            ok &= np.cumsum(arm == a + 1) <= limit
    if not np.isfinite(money):
        ok &= np.arange(1, n + 1) <= np.floor(cap_share * n)
    m = n if ok.all() else int(np.argmin(ok))  # first prefix that breaks a limit
    flag = np.zeros(n, dtype=bool)
    flag[order[:m]] = True
    threshold = float(hashes.u[order[m]]) if m < n else 1.0
    return flag, threshold


@dataclass(frozen=True, eq=False)
class CampaignPlan(ArmLabels):
    """Arm per customer (0 = none, j = arms[j - 1]), the exploration flag, each customer's
    propensity of every arm (column 0 = none), and what the model expects of them."""

    arms: tuple[str, ...]
    arm: np.ndarray
    explore: np.ndarray
    propensity: np.ndarray          # n x (k+1): the written plan as a stochastic policy
    expected_uplift: np.ndarray     # of the arm written
    expected_cost: np.ndarray       # of the arm written
    allocation: Allocation          # the optimised part (exploration customers excluded)
    explore_budget: ExploreBudget
    explore_money: float            # the reserve in money
    explore_threshold: float        # customers with u < threshold explore
    explore_weights: dict[str, float]
    explore_counts: dict[str, int]  # per arm, control ("none") included
    summary: dict = field(default_factory=dict)




def plan_campaign(problem: Problem, customer_ids: Any, *,
                  explore_budget: Any = DEFAULT_EXPLORE_BUDGET,
                  explore_weights_: Mapping[str, float] | None = None,
                  salt: str = DEFAULT_SALT, method: str = "lagrangian",
                  lp_bound: bool | str = "auto", seed: int = 0,
                  hashes: Hashes | None = None, polish: bool = True) -> CampaignPlan:
    """The exploration reserve first (see the module docstring), then the budget and capacity
    it left go to the optimised allocation of everyone else. The whole plan's expected cost
    (exploration included) is within the budget and every capacity; InputError when the
    exploration cannot hold one customer of every arm within its share of the budget or of a
    capacity. `polish=False` skips the solver's exact re-solve near the price boundary and the
    LP bound (the budget curve's many points)."""
    ids = np.asarray(customer_ids)
    if ids.shape[0] != problem.n:
        raise InputError(f"{ids.shape[0]} customer ids for {problem.n} score rows")
    eb = ExploreBudget.parse(explore_budget)
    w = explore_weights(explore_weights_, problem.arms)
    money = eb.money(problem.budget)
    cap_share = eb.capacity_share(problem.budget)
    if hashes is None:
        hashes = Hashes.of(ids, w, salt)
    explore, threshold = reserve(problem, hashes, w, money, cap_share)
    names = ("none",) + problem.arms
    if money > 0 and problem.n:
        _check_every_arm(problem, hashes, explore, w, money, cap_share, eb)
    ex_arm = np.where(explore, hashes.arm, 0)
    ex_counts = np.bincount(ex_arm[explore], minlength=problem.k + 1)
    ex_cost = float(sum(problem.cost[a][ex_arm == a + 1].sum() for a in range(problem.k)))
    ex_cost_mean = float((w[1:] @ problem.cost[:, explore]).sum()) if explore.any() else 0.0
    rest = np.flatnonzero(~explore)
    sub = Problem(problem.arms, problem.gain[:, rest], problem.cost[:, rest],
                  problem.uplift[:, rest], problem.budget - max(ex_cost, ex_cost_mean),
                  problem.capacity - ex_counts[1:], problem.objective)
    if polish:
        alloc = solve(sub, method=method, lp_bound=lp_bound, seed=seed)
    else:
        sub_arm, lam, mu, bound = solve_lagrangian(sub, seed=seed, core=0)
        alloc = evaluate(sub, sub_arm, method="lagrangian", lambda_=lam, mu=mu,
                         dual_bound=bound)
    arm = ex_arm.copy()
    arm[rest] = alloc.arm
    rows = np.arange(problem.n)
    prop = np.zeros((problem.n, problem.k + 1))
    prop[rows[~explore], arm[~explore]] = 1.0
    prop[explore] = w
    _, cost, up = chosen(problem, arm)
    total = evaluate(problem, arm, method=alloc.method)
    summary = {
        "customers": int(problem.n),
        "explore_customers": int(explore.sum()),
        "explore_cost": ex_cost,
        "explore_cost_expected": ex_cost_mean,
        "counts": total.counts,
        "expected_incremental_reactivations": total.expected_incremental_reactivations,
        "expected_value": total.expected_value,
        "expected_cost": total.expected_cost,
        "cost_per_incremental_reactivation": total.cost_per_incremental_reactivation,
        "budget_used": total.budget_used,
    }
    return CampaignPlan(problem.arms, arm, explore, prop, up, cost, alloc, eb, money, threshold,
                        {a: float(x) for a, x in zip(names, w)},
                        {a: int(c) for a, c in zip(names, ex_counts)}, summary)


def _check_every_arm(problem: Problem, hashes: Hashes, explore: np.ndarray, w: np.ndarray,
                     money: float, cap_share: float, eb: ExploreBudget) -> None:
    """InputError naming the limit when an arm gets no exploration customer."""
    got = np.bincount(hashes.arm[explore], minlength=problem.k + 1)
    if (got > 0).all():
        return
    # the cheapest exploration: the shortest prefix in u order holding one customer per arm
    order = np.argsort(hashes.u, kind="stable")
    arm = hashes.arm[order]
    first = max(int(np.argmax(arm == a)) for a in range(problem.k + 1) if (arm == a).any())
    real = sum(problem.cost[a, order[:first + 1]][arm[:first + 1] == a + 1].sum()
               for a in range(problem.k))
    mean = float((w[1:] @ problem.cost[:, order[:first + 1]]).sum())
    need = max(real, mean)
    if need <= money:  # the money suffices: a capacity share is what stops the exploration
        limits = [(np.floor(cap_share * c + 1e-9), a) for a, c in enumerate(problem.capacity)
                  if np.isfinite(c)]
        held, a = min(limits)
        raise InputError(f"{{capacity}} {problem.arms[a]}={problem.capacity[a]:.0f} cannot hold "
                         f"the exploration share ({cap_share:.2%} of it holds {held:.0f} "
                         "customers, too few to reach every arm): raise the capacity or the "
                         "{explore_budget}, or use {explore_budget} 0",
                         params=["capacity", "explore_budget"])
    raise InputError(f"the exploration budget {money:,.2f} ({eb.describe()}) is smaller than the "
                     f"cheapest exploration that reaches every arm ({need:,.2f} for "
                     f"{first + 1:,} customers): raise {{explore_budget}} or {{budget}}, or use "
                     "{explore_budget} 0", params=["explore_budget", "budget"])
