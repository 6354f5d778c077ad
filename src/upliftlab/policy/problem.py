"""The allocation problem: validated inputs (`make_problem` -> `Problem`), the result of an
allocation (`Allocation`, its JSON) and the sums and checks every solver shares.

The problem (STATS-NOTES "Budgeted allocation"): maximise sum g_ia x_ia subject to
sum_a x_ia <= 1 per customer, sum c_ia x_ia <= B, sum_i x_ia <= cap_a, x in {0, 1}, where
c_ia = cost_per_contact[a] + cost_per_conversion[a] * (base_i + uplift_ia) and g_ia is the gain
of the chosen objective (uplift, value x uplift - cost, or revenue uplift - cost). Customers are
only ever given arms with positive gain. A customer's arm is one index everywhere, solvers,
results, `BudgetedPolicy.predict`, propensities and the off-policy code alike: 0 = none
(control), j = 1..k the j-th treatment arm, whose gain, cost and uplift are row j - 1 of the
k x n arrays (there is no row for "none": its gain and cost are 0). `labels` names it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from upliftlab.errors import InputError
from upliftlab.jsonsafe import json_safe

OBJECTIVES = ("reactivations", "net_value", "revenue")
_TOL = 1e-9  # slack for probabilities computed in floating point


@dataclass(frozen=True, eq=False)
class Problem:
    """A validated allocation instance in arm-major layout (k x n) for fast column passes."""

    arms: tuple[str, ...]
    gain: np.ndarray            # k x n, the objective's gain of treating i with a
    cost: np.ndarray            # k x n, expected cost of treating i with a
    uplift: np.ndarray          # k x n, incremental reactivation probability
    budget: float               # inf when unlimited
    capacity: np.ndarray        # k, inf when unlimited
    objective: str

    @property
    def n(self) -> int:
        return int(self.gain.shape[1])

    @property
    def k(self) -> int:
        return int(self.gain.shape[0])


def make_problem(base: Any, uplift: Any, *, arms: Sequence[str] | None = None,
                 budget: float | None = None,
                 capacity: Mapping[str, float] | Sequence[float] | None = None,
                 cost_per_contact: Mapping[str, float] | Sequence[float] | None = None,
                 cost_per_conversion: Mapping[str, float] | Sequence[float] | None = None,
                 objective: str = "reactivations", value_per_reactivation: float | None = None,
                 revenue_uplift: Any = None) -> Problem:
    """Validate the inputs (InputError naming what is wrong) and build a `Problem`.

    `uplift` is an (n, k) array, a DataFrame (one column per arm) or a mapping arm -> (n,)
    array; the last two are column-major already, which saves a transposition at 10M rows.
    """
    base = np.asarray(base, dtype=float).ravel()
    n = base.shape[0]
    names, cols = _columns(uplift, n, "uplift")
    k = len(cols)
    if arms is None:
        arms = names if names is not None else tuple(f"arm{j}" for j in range(k))
    arms = tuple(str(a) for a in arms)
    if len(arms) != k or len(set(arms)) != k:
        raise InputError(f"arms {list(arms)} do not match the {k} uplift columns")
    if np.isnan(base).any():
        raise InputError("base contains missing values (NaN)")
    if n and (base.min() < -_TOL or base.max() > 1 + _TOL):
        raise InputError(f"base must be a probability in [0, 1] (found {base.min():.4g} .. "
                         f"{base.max():.4g})")
    if budget is None:
        budget = np.inf
    budget = float(budget)
    if np.isnan(budget) or budget < 0:
        raise InputError(f"budget must be >= 0 (got {budget})")
    cap = per_arm(capacity, arms, "capacity", default=np.inf)
    cpc = per_arm(cost_per_contact, arms, "cost_per_contact", default=0.0)
    cpv = per_arm(cost_per_conversion, arms, "cost_per_conversion", default=0.0)
    if objective not in OBJECTIVES:
        raise InputError(f"objective must be one of {', '.join(OBJECTIVES)} (got {objective!r})")
    if objective == "net_value" and (value_per_reactivation is None
                                     or not np.isfinite(value_per_reactivation)):
        raise InputError("objective 'net_value' needs value_per_reactivation")
    if objective == "revenue":
        if revenue_uplift is None:
            raise InputError("objective 'revenue' needs revenue_uplift (n x k)")
        _, rev = _columns(revenue_uplift, n, "revenue_uplift")
        if len(rev) != k:
            raise InputError(f"revenue_uplift has {len(rev)} columns for {k} arms")

    upT = np.empty((k, n))
    cost = np.empty((k, n))
    p = np.empty(n)
    for a in range(k):
        upT[a] = cols[a]
        if np.isnan(upT[a]).any():
            raise InputError(f"uplift of arm {arms[a]!r} contains missing values (NaN)")
        np.add(base, upT[a], out=p)
        if n and (p.min() < -_TOL or p.max() > 1 + _TOL):
            raise InputError(f"base + uplift of arm {arms[a]!r} must be a probability in "
                             f"[0, 1] (found {p.min():.4g} .. {p.max():.4g})")
        np.clip(p, 0.0, 1.0, out=p)
        np.multiply(p, cpv[a], out=cost[a])
        cost[a] += cpc[a]
    if objective == "reactivations":
        gain = upT
    elif objective == "net_value":
        gain = float(value_per_reactivation) * upT - cost
    else:
        gain = np.empty((k, n))
        for a in range(k):
            gain[a] = rev[a]
            if np.isnan(gain[a]).any():
                raise InputError(f"revenue_uplift of arm {arms[a]!r} contains missing values")
        gain -= cost
    return Problem(arms, gain, cost, upT, budget, cap, objective)


def _columns(values: Any, n: int, what: str) -> tuple[tuple[str, ...] | None, list[np.ndarray]]:
    """Per-arm 1-D arrays from an (n, k) array, a DataFrame or a mapping of columns."""
    if isinstance(values, Mapping):
        names = tuple(str(a) for a in values)
        cols = [np.asarray(values[a], dtype=float).ravel() for a in values]
    elif hasattr(values, "columns") and hasattr(values, "to_numpy"):
        names = tuple(str(c) for c in values.columns)
        cols = [np.asarray(values[c].to_numpy(dtype=float, na_value=np.nan))
                for c in values.columns]
    else:
        arr = np.asarray(values, dtype=float)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise InputError(f"{what} must be an n x k array (got shape {arr.shape})")
        names, cols = None, [arr[:, j] for j in range(arr.shape[1])]
    for c in cols:
        if c.shape[0] != n:
            raise InputError(f"{what} must have n = {n} rows (got {c.shape[0]})")
    if not cols:
        raise InputError(f"{what} has no arms")
    return names, cols


def per_arm(values: Any, arms: tuple[str, ...], what: str, default: float) -> np.ndarray:
    """One value per arm from a mapping arm -> value (None = unlimited) or a sequence; each
    >= 0, unknown arms refused (InputError naming `what`)."""
    out = np.full(len(arms), default, dtype=float)
    if values is None:
        return out
    if isinstance(values, Mapping):
        for arm, v in values.items():
            if arm not in arms:
                raise InputError(f"{what} given for unknown arm {arm!r} (arms: {', '.join(arms)})")
            out[arms.index(arm)] = np.inf if v is None else float(v)
    else:
        vals = np.asarray(values, dtype=float).ravel()
        if vals.shape[0] != len(arms):
            raise InputError(f"{what} has {vals.shape[0]} values for {len(arms)} arms")
        out[:] = vals
    if np.isnan(out).any() or (out < 0).any():
        raise InputError(f"{what} must be >= 0 for every arm (got {dict(zip(arms, out))})")
    return out



class ArmLabels:
    """`labels` of a result with `arms` and an `arm` index per customer (0 = none)."""

    arms: tuple[str, ...]
    arm: np.ndarray

    @property
    def labels(self) -> np.ndarray:
        """The arm name per customer ("none" for no treatment)."""
        return np.array(("none",) + self.arms, dtype=object)[self.arm]


@dataclass(frozen=True, eq=False)
class Allocation(ArmLabels):
    """An allocation and what it is expected to deliver; `arm` per customer: 0 = no
    treatment, j = arms[j - 1]."""

    arms: tuple[str, ...]
    arm: np.ndarray
    counts: dict[str, int]
    expected_incremental_reactivations: float  # sum of the chosen arms' uplifts
    expected_value: float                  # the objective's value
    expected_cost: float
    cost_per_incremental_reactivation: float | None
    budget: float
    budget_used: float                     # share of the budget spent (nan when unlimited)
    objective: str
    method: str
    lambda_: float
    mu_: dict[str, float]
    dual_bound: float                      # Lagrangian upper bound on the optimum
    gap_to_dual_bound: float
    lp_bound: float | None = None
    gap_to_lp_bound: float | None = None
    marginal_cost_per_reactivation: float | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The summary (no per-customer arrays) as plain JSON-able values (`json_safe`)."""
        keys = ("arms", "counts", "expected_incremental_reactivations", "expected_value",
                "expected_cost",
                "cost_per_incremental_reactivation", "budget", "budget_used", "objective",
                "method", "lambda_", "mu_", "dual_bound", "gap_to_dual_bound", "lp_bound",
                "gap_to_lp_bound", "marginal_cost_per_reactivation", "seconds")
        out = {k: json_safe(getattr(self, k)) for k in keys}
        out["lambda"] = out.pop("lambda_")
        out["mu"] = out.pop("mu_")
        out["n_treated"] = int(sum(self.counts.values()))
        out["n_customers"] = int(self.arm.shape[0])
        out.update({k: json_safe(v) for k, v in self.extra.items()})
        return out


def evaluate(problem: Problem, arm: np.ndarray, *, method: str = "given", lambda_: float = 0.0,
             mu: np.ndarray | None = None, dual_bound: float = np.inf,
             lp_bound: float | None = None, marginal: float | None = None,
             seconds: float = 0.0, extra: dict | None = None) -> Allocation:
    """The `Allocation` summary of an arm vector (0 = none) on `problem`."""
    arm = np.asarray(arm, dtype=np.int64)
    value, cost, react = totals(problem, arm)
    counts = arm_counts(problem, arm)
    mu = np.zeros(problem.k) if mu is None else mu
    gap_d = relative_gap(dual_bound, value)
    return Allocation(
        arms=problem.arms, arm=arm,
        counts={a: int(counts[j]) for j, a in enumerate(problem.arms)},
        expected_incremental_reactivations=react, expected_value=value, expected_cost=cost,
        cost_per_incremental_reactivation=(cost / react) if react > 0 else None,
        budget=problem.budget,
        budget_used=(cost / problem.budget) if np.isfinite(problem.budget) and problem.budget > 0
        else float("nan"),
        objective=problem.objective, method=method, lambda_=float(lambda_),
        mu_={a: float(mu[j]) for j, a in enumerate(problem.arms)},
        dual_bound=float(dual_bound), gap_to_dual_bound=gap_d,
        lp_bound=None if lp_bound is None else float(lp_bound),
        gap_to_lp_bound=None if lp_bound is None else relative_gap(lp_bound, value),
        marginal_cost_per_reactivation=marginal, seconds=seconds, extra=dict(extra or {}))


def relative_gap(bound: float, value: float) -> float:
    """Relative gap (bound - value) / bound, 0 when both are 0."""
    if not np.isfinite(bound):
        return float("nan")
    if bound <= 0:
        return 0.0 if value >= bound - 1e-12 else float("nan")
    return max(0.0, (bound - value) / bound)


def totals(problem: Problem, arm: np.ndarray) -> tuple[float, float, float]:
    """Total gain, cost and uplift of the chosen arms (masked sums, no per-customer copies)."""
    m = np.empty(problem.n, dtype=bool)
    tot = np.zeros(3)
    for j in range(1, problem.k + 1):
        np.equal(arm, j, out=m)
        for t, x in enumerate((problem.gain, problem.cost, problem.uplift)):
            tot[t] += np.sum(x[j - 1], where=m)
    return float(tot[0]), float(tot[1]), float(tot[2])


def chosen(problem: Problem, arm: np.ndarray) -> tuple[np.ndarray, ...]:
    """Gain, cost and uplift of each customer's chosen arm (0 for none)."""
    g = np.zeros(problem.n)
    c = np.zeros(problem.n)
    u = np.zeros(problem.n)
    m = np.empty(problem.n, dtype=bool)
    for j in range(1, problem.k + 1):
        np.equal(arm, j, out=m)
        np.copyto(g, problem.gain[j - 1], where=m)
        np.copyto(c, problem.cost[j - 1], where=m)
        np.copyto(u, problem.uplift[j - 1], where=m)
    return g, c, u


def arm_counts(problem: Problem, arm: np.ndarray) -> np.ndarray:
    """Customers per treatment arm (k,): index j - 1 counts arm j."""
    return np.bincount(arm, minlength=problem.k + 1)[1:]


def check_feasible(problem: Problem, arm: np.ndarray, rtol: float = 1e-9) -> list[str]:
    """What an allocation violates (empty when feasible): budget, capacities, bad arms."""
    bad = []
    _, c, _ = chosen(problem, arm)
    if c.sum() > problem.budget * (1 + rtol) + 1e-12:
        bad.append(f"cost {c.sum():.6g} > budget {problem.budget:.6g}")
    counts = arm_counts(problem, arm)
    for j, a in enumerate(problem.arms):
        if counts[j] > problem.capacity[j]:
            bad.append(f"{a}: {counts[j]} > capacity {problem.capacity[j]:.0f}")
    g, _, _ = chosen(problem, arm)
    if (g[arm > 0] <= 0).any():
        bad.append("an arm with non-positive gain was assigned")
    return bad
