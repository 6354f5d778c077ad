"""Budgeted allocation: the best treatment arm per customer under a total budget and per-arm
capacities, solved exactly (LP / MILP with HiGHS) or at scale by Lagrangian prices plus repair.

The problem (STATS-NOTES "Budgeted allocation"): maximise sum g_ia x_ia subject to
sum_a x_ia <= 1 per customer, sum c_ia x_ia <= B, sum_i x_ia <= cap_a, x in {0, 1}, where
c_ia = cost_per_contact[a] + cost_per_conversion[a] * (base_i + uplift_ia) and g_ia is the gain
of the chosen objective (uplift, value x uplift - cost, or revenue uplift - cost). Customers are
only ever given arms with positive gain.

Methods and where they are practical on this machine (2 cores):

- ``"lagrangian"`` (default, scalable): the prices lambda (budget) and mu_a (capacities) are
  found first on a random subsample of 200k customers, then refined on all of them, by a
  one-dimensional root search on lambda (safeguarded secant on the monotone cost curve) with
  the mu_a re-optimised exactly at every lambda (each is an order statistic: one selection).
  The allocation "take argmax_a (g_ia - lambda c_ia - mu_a) if positive" is then repaired
  (capacity, budget), the leftover budget filled by the best remaining moves per unit cost,
  and, if the gap is still above 1e-5, the 200 customers nearest the price boundary are
  re-solved exactly (MILP). O(n k) per pass, about 10-15 passes: 10M customers x 3 arms in
  a few seconds. Every evaluation of the prices also yields the Lagrangian dual bound, an
  upper bound on the optimum, so the gap is always reported.
- ``"lp"``: the LP relaxation with ``scipy.optimize.linprog`` (HiGHS; interior point with
  crossover above 50k customer-arm pairs) on sparse matrices; the optimum of the relaxation is
  an upper bound and its duals are the prices. About 2 s at 10k-30k customers x 3 arms, 15 s at
  100k, 220 s at 300k; 1M is out of reach here (benchmarks/RESULTS.md, section `policy`).
- ``"milp"``: the integer optimum with ``scipy.optimize.milp``: practical up to a few thousand
  customers x 3 arms (time limit configurable).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from upliftlab.errors import InputError

OBJECTIVES = ("reactivations", "net_value", "revenue")
_TOL = 1e-9  # slack for probabilities computed in floating point
_SUBSAMPLE = 200_000  # customers used to find the prices before refining on all of them


# --------------------------------------------------------------------------------------------
# problem set-up


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
    cap = _per_arm(capacity, arms, "capacity", default=np.inf)
    cpc = _per_arm(cost_per_contact, arms, "cost_per_contact", default=0.0)
    cpv = _per_arm(cost_per_conversion, arms, "cost_per_conversion", default=0.0)
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


def _per_arm(values: Any, arms: tuple[str, ...], what: str, default: float) -> np.ndarray:
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


# --------------------------------------------------------------------------------------------
# the result


@dataclass(frozen=True, eq=False)
class Allocation:
    """An allocation and what it is expected to deliver; `arm` is -1 for no treatment."""

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

    @property
    def labels(self) -> np.ndarray:
        """The arm name per customer ("none" for no treatment)."""
        names = np.array(("none",) + self.arms, dtype=object)
        return names[self.arm + 1]

    def to_dict(self) -> dict:
        """The summary (no per-customer arrays) as plain JSON-able values."""
        keys = ("arms", "counts", "expected_incremental_reactivations", "expected_value",
                "expected_cost",
                "cost_per_incremental_reactivation", "budget", "budget_used", "objective",
                "method", "lambda_", "mu_", "dual_bound", "gap_to_dual_bound", "lp_bound",
                "gap_to_lp_bound", "marginal_cost_per_reactivation", "seconds")
        out = {k: _plain(getattr(self, k)) for k in keys}
        out["lambda"] = out.pop("lambda_")
        out["mu"] = out.pop("mu_")
        out["n_treated"] = int(sum(self.counts.values()))
        out["n_customers"] = int(self.arm.shape[0])
        out.update({k: _plain(v) for k, v in self.extra.items()})
        return out


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (np.floating, float)):
        return None if not np.isfinite(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def evaluate(problem: Problem, arm: np.ndarray, *, method: str = "given", lambda_: float = 0.0,
             mu: np.ndarray | None = None, dual_bound: float = np.inf,
             lp_bound: float | None = None, marginal: float | None = None,
             seconds: float = 0.0, extra: dict | None = None) -> Allocation:
    """The `Allocation` summary of an arm vector (-1 = none) on `problem`."""
    arm = np.asarray(arm, dtype=np.int64)
    value, cost, react = _totals(problem, arm)
    counts = np.bincount(arm[arm >= 0], minlength=problem.k)
    mu = np.zeros(problem.k) if mu is None else mu
    gap_d = _gap(dual_bound, value)
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
        gap_to_lp_bound=None if lp_bound is None else _gap(lp_bound, value),
        marginal_cost_per_reactivation=marginal, seconds=seconds, extra=dict(extra or {}))


def _gap(bound: float, value: float) -> float:
    """Relative gap (bound - value) / bound, 0 when both are 0."""
    if not np.isfinite(bound):
        return float("nan")
    if bound <= 0:
        return 0.0 if value >= bound - 1e-12 else float("nan")
    return max(0.0, (bound - value) / bound)


def _totals(problem: Problem, arm: np.ndarray) -> tuple[float, float, float]:
    """Total gain, cost and uplift of the chosen arms (masked sums, no per-customer copies)."""
    m = np.empty(problem.n, dtype=bool)
    tot = np.zeros(3)
    for a in range(problem.k):
        np.equal(arm, a, out=m)
        for j, x in enumerate((problem.gain, problem.cost, problem.uplift)):
            tot[j] += np.sum(x[a], where=m)
    return float(tot[0]), float(tot[1]), float(tot[2])


def _chosen(problem: Problem, arm: np.ndarray) -> tuple[np.ndarray, ...]:
    """Gain, cost and uplift of each customer's chosen arm (0 for none)."""
    g = np.zeros(problem.n)
    c = np.zeros(problem.n)
    u = np.zeros(problem.n)
    m = np.empty(problem.n, dtype=bool)
    for a in range(problem.k):
        np.equal(arm, a, out=m)
        np.copyto(g, problem.gain[a], where=m)
        np.copyto(c, problem.cost[a], where=m)
        np.copyto(u, problem.uplift[a], where=m)
    return g, c, u


def check_feasible(problem: Problem, arm: np.ndarray, rtol: float = 1e-9) -> list[str]:
    """What an allocation violates (empty when feasible): budget, capacities, bad arms."""
    bad = []
    _, c, _ = _chosen(problem, arm)
    if c.sum() > problem.budget * (1 + rtol) + 1e-12:
        bad.append(f"cost {c.sum():.6g} > budget {problem.budget:.6g}")
    counts = np.bincount(arm[arm >= 0], minlength=problem.k)
    for j, a in enumerate(problem.arms):
        if counts[j] > problem.capacity[j]:
            bad.append(f"{a}: {counts[j]} > capacity {problem.capacity[j]:.0f}")
    g, _, _ = _chosen(problem, arm)
    if (g[arm >= 0] <= 0).any():
        bad.append("an arm with non-positive gain was assigned")
    return bad


# --------------------------------------------------------------------------------------------
# Lagrangian pricing


class _Pricer:
    """Evaluates the price rule on a (sub)problem; every call also yields a dual bound.

    The reduced gains g_ia - lam c_ia of all arms are kept for the last lam, so re-optimising
    the capacity prices and choosing the arms at that lam reuse one pass over the data.
    """

    def __init__(self, gain: np.ndarray, cost: np.ndarray, budget: float, cap: np.ndarray):
        self.gain, self.cost = gain, cost
        self.budget, self.cap = budget, cap
        k, n = gain.shape
        self._R = np.empty((k, n))
        self._R_lam: float | None = None
        self._r = np.empty(n)
        self._other = np.empty(n)
        self._best = np.empty(n)
        self._bestc = np.empty(n)
        self._mask = np.empty(n, dtype=bool)
        self.arm = np.empty(n, dtype=np.int8)
        self.best_bound = np.inf
        self.best_duals: tuple[float, np.ndarray] = (0.0, np.zeros(k))
        self.evals = 0

    def _reduced_all(self, lam: float) -> np.ndarray:
        if self._R_lam != lam:
            for a in range(self.gain.shape[0]):
                np.multiply(self.cost[a], -lam, out=self._R[a])
                self._R[a] += self.gain[a]
            self._R_lam = lam
        return self._R

    def __call__(self, lam: float, mu: np.ndarray, full: bool = False) -> float:
        """Choose arms at prices (lam, mu) into self.arm; return their total cost.

        With `full`, also keep each customer's chosen gain and cost (`bestg`, `bestc`) and the
        margin between the best and the second-best option (no treatment counts as an option
        with reduced gain 0): customers with a small margin are the ones a repair may move.
        """
        R = self._reduced_all(lam)
        best, bestc, m = self._best, self._bestc, self._mask
        best.fill(0.0)
        bestc.fill(0.0)
        self.arm.fill(-1)
        if full:
            bestg = np.zeros_like(best)
            second = np.full_like(best, -np.inf)
        for a in range(self.gain.shape[0]):
            if mu[a]:
                r = np.subtract(R[a], mu[a], out=self._r)
            else:
                r = R[a]
            np.greater(r, best, out=m)
            if full:
                np.maximum(second, np.minimum(r, best), out=second)
                np.copyto(bestg, self.gain[a], where=m)
            np.maximum(r, best, out=best)
            np.copyto(bestc, self.cost[a], where=m)
            np.copyto(self.arm, a, where=m)
        self.evals += 1
        finite = np.isfinite(self.cap)
        bound = float(best.sum()) + (lam * self.budget if lam > 0 else 0.0) + float(
            (mu[finite] * self.cap[finite]).sum())
        if bound < self.best_bound:
            self.best_bound, self.best_duals = bound, (lam, mu.copy())
        if full:
            self.bestg, self.bestc = bestg, bestc.copy()
            self.margin = best - second
        return float(bestc.sum())

    def reduced(self, lam: float, mu: np.ndarray, a: int) -> np.ndarray:
        """s_i = (g_ia - lam c_ia) - max(0, best other arm's reduced gain): a is chosen iff
        s_i > mu_a. Returns an internal buffer, valid until the next call."""
        R = self._reduced_all(lam)
        other = self._other
        other.fill(0.0)
        for b in range(self.gain.shape[0]):
            if b == a:
                continue
            if mu[b]:
                np.maximum(other, np.subtract(R[b], mu[b], out=self._r), out=other)
            else:
                np.maximum(other, R[b], out=other)
        return np.subtract(R[a], other, out=other)


def _solve_mu(pr: _Pricer, lam: float, mu: np.ndarray, rounds: int = 8) -> np.ndarray:
    """The capacity prices that are optimal for this lam: each arm's is exactly the
    (cap+1)-th largest reduced gain (or 0); with several capacitated arms, cycled to a fixed
    point."""
    mu = mu.copy()
    capped = np.flatnonzero(np.isfinite(pr.cap))
    for _ in range(rounds if capped.size > 1 else 1):
        old = mu.copy()
        for a in capped:
            s = pr.reduced(lam, mu, a)
            cap = int(pr.cap[a])
            pos = s[s > 0]  # only customers who would take the arm at mu_a = 0 matter
            if pos.size <= cap:
                mu[a] = 0.0
            else:
                mu[a] = float(np.partition(pos, pos.size - cap - 1)[pos.size - cap - 1])
        if np.allclose(mu, old, rtol=1e-9, atol=0):
            break
    return mu


def _solve_lambda(pr: Any, guess: float, rtol: float) -> float:
    """Smallest lam >= 0 with cost(lam) <= budget (cost is non-increasing in lam).

    Brackets the root around the warm start `guess` with geometric steps, then Illinois
    (safeguarded regula falsi) on cost(lam) - budget; returns the feasible end of the bracket.
    `pr(lam)` returns the cost of the price rule at lam; `pr.budget` is the budget.
    """
    B = pr.budget
    if not np.isfinite(B):
        return 0.0
    if guess <= 0:
        f0 = pr(0.0) - B
        if f0 <= 0:
            return 0.0
        lo, f_lo, hi = 0.0, f0, 1e-3
        f_hi = pr(hi) - B
        while f_hi > 0 and hi < 1e12:
            lo, f_lo, hi = hi, f_hi, hi * 8.0
            f_hi = pr(hi) - B
    else:
        f_g = pr(guess) - B
        step = 0.01
        if f_g <= 0:  # feasible: walk down until over budget (or lam = 0)
            hi, f_hi = guess, f_g
            while True:
                x = hi * (1 - step) if step < 1 else 0.0
                fx = pr(x) - B
                if fx > 0:
                    lo, f_lo = x, fx
                    break
                hi, f_hi = x, fx
                if x == 0.0:
                    return 0.0
                step *= 4
        else:  # over budget: walk up until feasible
            lo, f_lo = guess, f_g
            while True:
                x = lo * (1 + step)
                fx = pr(x) - B
                if fx <= 0 or x > 1e12:
                    hi, f_hi = x, fx
                    break
                lo, f_lo = x, fx
                step *= 4
    side = 0
    for _ in range(200):
        if hi - lo <= rtol * hi or (B > 0 and -f_hi <= 1e-9 * B):
            break
        x = hi - f_hi * (hi - lo) / (f_hi - f_lo) if f_hi != f_lo else 0.5 * (lo + hi)
        if not (lo < x < hi):
            x = 0.5 * (lo + hi)
        fx = pr(x) - B
        if fx > 0:
            lo, f_lo = x, fx
            if side == -1:
                f_hi *= 0.5
            side = -1
        else:
            hi, f_hi = x, fx
            if side == 1:
                f_lo *= 0.5
            side = 1
    return hi


class _WithCapacity:
    """cost(lam) with the capacity prices re-optimised at every lam.

    phi(lam) = min_mu D(lam, mu) is convex and its slope is budget - cost(lam, mu*(lam)), so
    that cost is non-increasing in lam and a one-dimensional root search finds the optimal
    prices jointly (coordinate search on (lam, mu) zig-zags for hundreds of passes).
    """

    def __init__(self, pr: _Pricer, mu: np.ndarray):
        self.pr, self.budget, self.mu = pr, pr.budget, mu.copy()
        self.has_cap = bool(np.isfinite(pr.cap).any())
        self.cache: dict[float, np.ndarray] = {}

    def __call__(self, lam: float) -> float:
        if self.has_cap:
            self.mu = _solve_mu(self.pr, lam, self.mu)
        self.cache[lam] = self.mu.copy()
        return self.pr(lam, self.mu)


def find_prices(pr: _Pricer, *, lam: float = 0.0, mu: np.ndarray | None = None,
                rtol: float = 1e-7) -> tuple[float, np.ndarray]:
    """Optimal prices: lam by a root search on the budget, mu exactly for each lam."""
    k = pr.gain.shape[0]
    fn = _WithCapacity(pr, np.zeros(k) if mu is None else mu)
    lam = _solve_lambda(fn, lam, rtol)
    mu = fn.cache.get(lam)
    if mu is None:
        mu = _solve_mu(pr, lam, fn.mu) if fn.has_cap else np.zeros(k)
    return lam, mu


# --------------------------------------------------------------------------------------------
# repair and fill


def _repair(problem: Problem, arm: np.ndarray, lam: float, g: np.ndarray, c: np.ndarray
            ) -> np.ndarray:
    """Make the price-rule allocation feasible: drop the least valuable customers over a
    capacity, then over the budget. `g`, `c` (chosen gain and cost) are updated in place."""
    arm = arm.astype(np.int64, copy=True)
    for a in range(problem.k):
        if not np.isfinite(problem.capacity[a]):
            continue
        idx = np.flatnonzero(arm == a)
        cap = int(problem.capacity[a])
        if idx.size > cap:
            red = problem.gain[a, idx] - lam * problem.cost[a, idx]
            drop = idx[np.argsort(red, kind="stable")[: idx.size - cap]]
            arm[drop], g[drop], c[drop] = -1, 0.0, 0.0
    total = c.sum()
    if total > problem.budget:
        idx = np.flatnonzero(arm >= 0)
        ratio = g[idx] / np.maximum(c[idx], 1e-300)
        order = idx[np.argsort(ratio, kind="stable")]
        excess = total - problem.budget
        k_drop = int(np.searchsorted(np.cumsum(c[order]), excess, side="left")) + 1
        drop = order[:k_drop]
        arm[drop], g[drop], c[drop] = -1, 0.0, 0.0
    return arm


def _fill(problem: Problem, arm: np.ndarray, g_all: np.ndarray | None = None,
          c_all: np.ndarray | None = None, margin: np.ndarray | None = None,
          max_rounds: int = 60, pool_size: int = 100_000) -> np.ndarray:
    """Spend the leftover budget and capacity on the best remaining moves per unit cost.

    A move is a new assignment or a switch to an arm with a higher gain. Each round takes the
    longest prefix, by gain per unit cost, of the moves that fit (vectorised). Budget and
    capacity only shrink, so after the first round only the best few thousand candidates of the
    first round are looked at again: the leftover after Lagrangian pricing is small.
    """
    arm = arm.astype(np.int64, copy=True)
    if g_all is None or c_all is None:
        g_all, c_all, _ = _chosen(problem, arm)
    spent = float(c_all.sum())
    counts = np.bincount(arm[arm >= 0], minlength=problem.k).astype(float)
    pool: np.ndarray | None = None
    if margin is not None and problem.n > 2 * pool_size:
        # only customers near the price boundary can have a good move; look at them first
        pool = np.sort(np.argpartition(margin, pool_size)[:pool_size])
    widened = False
    for _ in range(max_rounds):
        left = problem.budget - spent
        cap_left = problem.capacity - counts
        if left < 0:
            break
        idx = np.arange(problem.n) if pool is None else pool
        cur, gcur, ccur = arm[idx], g_all[idx], c_all[idx]
        best_ratio = np.full(idx.size, -np.inf)
        best_to = np.full(idx.size, -1, dtype=np.int64)
        best_dg = np.zeros(idx.size)
        for b in range(problem.k):
            if cap_left[b] < 1:
                continue
            gb = problem.gain[b] if pool is None else problem.gain[b, idx]
            cb = problem.cost[b] if pool is None else problem.cost[b, idx]
            dg, dc = gb - gcur, cb - ccur
            ok = (cur != b) & (gb > 0) & (dg > 0) & (dc <= left)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(dc > 0, dg / dc, np.inf)
            better = ok & ((ratio > best_ratio) | ((ratio == best_ratio) & (dg > best_dg)))
            best_ratio[better], best_to[better], best_dg[better] = ratio[better], b, dg[better]
        cand = np.flatnonzero(best_to >= 0)
        if cand.size == 0:
            if pool is not None and not widened and left > 1e-6 * problem.budget:
                pool, widened = None, True  # the boundary pool is spent: one full scan
                continue
            break
        dc_c = problem.cost[best_to[cand], idx[cand]] - c_all[idx[cand]]
        if np.isfinite(left):
            pos = dc_c > 0
            fit = int((~pos).sum()) + (int(np.ceil(left / dc_c[pos].min())) + 1 if pos.any()
                                       else 0)
            keep = min(cand.size, max(4 * fit, 10_000))
        else:
            keep = cand.size
        if keep < cand.size:
            top = np.argpartition(-best_ratio[cand], keep - 1)[:keep]
            cand = cand[top]
        cand = cand[np.argsort(-best_ratio[cand], kind="stable")]
        pool = idx[cand]
        who, to = idx[cand], best_to[cand]
        dc = problem.cost[to, who] - c_all[who]
        ok = np.cumsum(dc) <= left + 1e-12 * max(1.0, abs(problem.budget))
        for b in range(problem.k):
            if np.isfinite(cap_left[b]):
                ok &= np.cumsum(to == b) <= cap_left[b]
        n_take = ok.size if ok.all() else int(np.argmin(ok))
        if n_take == 0:
            break
        who, to = who[:n_take], to[:n_take]
        old = arm[who]
        np.subtract.at(counts, old[old >= 0], 1)
        np.add.at(counts, to, 1)
        arm[who] = to
        g_all[who] = problem.gain[to, who]
        c_all[who] = problem.cost[to, who]
        spent += float(dc[:n_take].sum())
    return arm


# --------------------------------------------------------------------------------------------
# solvers


def solve_lagrangian(problem: Problem, *, subsample: int = _SUBSAMPLE, seed: int = 0,
                     rtol: float = 1e-7, lam0: float | None = None,
                     mu0: np.ndarray | None = None, core: int = 200
                     ) -> tuple[np.ndarray, float, np.ndarray, float]:
    """Prices (on a subsample first when large, then on all customers), repair, fill, and an
    exact re-solve of the `core` customers nearest the boundary (0 = skip).

    Returns (arm, lam, mu, dual_bound).
    """
    n, k = problem.n, problem.k
    lam = 0.0 if lam0 is None else float(lam0)
    mu = np.zeros(k) if mu0 is None else np.asarray(mu0, dtype=float).copy()
    if n > 2 * subsample and lam0 is None:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(n, size=subsample, replace=False))
        frac = subsample / n
        sub = _Pricer(problem.gain[:, idx], problem.cost[:, idx], problem.budget * frac,
                      np.where(np.isfinite(problem.capacity),
                               np.floor(problem.capacity * frac), np.inf))
        lam, mu = find_prices(sub, rtol=1e-6)
        rtol = max(rtol, 1e-4)  # the leftover of a looser root is spent by the fill
    pr = _Pricer(problem.gain, problem.cost, problem.budget, problem.capacity)
    lam, mu = find_prices(pr, lam=lam, mu=mu, rtol=rtol)
    pr(lam, mu, full=True)
    g, c = pr.bestg, pr.bestc
    arm = _repair(problem, pr.arm, lam, g, c)
    margin = pr.margin
    arm = _fill(problem, arm, g, c, margin=margin)
    if core and _gap(pr.best_bound, _totals(problem, arm)[0]) > 1e-5:
        arm = _polish_core(problem, arm, margin, core)
    return arm, lam, mu, pr.best_bound


def _polish_core(problem: Problem, arm: np.ndarray, margin: np.ndarray, size: int,
                 time_limit: float = 0.5) -> np.ndarray:
    """Re-solve exactly (MILP) the `size` customers nearest the price boundary, with everyone
    else fixed: the core problem of knapsack solvers (Balas & Zemel 1980). Rounding the LP
    loses at most a few customers' gain, which matters on small instances; far from the
    boundary the prices already decide."""
    core = np.sort(np.argpartition(margin, min(size, problem.n) - 1)[:size]) if (
        problem.n > size) else np.arange(problem.n)
    rest = np.ones(problem.n, dtype=bool)
    rest[core] = False
    fixed = np.where(rest, arm, -1)
    _, spent, _ = _totals(problem, fixed)
    counts = np.bincount(fixed[fixed >= 0], minlength=problem.k)
    sub = Problem(problem.arms, problem.gain[:, core], problem.cost[:, core],
                  problem.uplift[:, core], max(problem.budget - spent, 0.0),
                  problem.capacity - counts, problem.objective)
    try:
        sub_arm, sub_val = solve_milp(sub, time_limit=time_limit)
    except RuntimeError:  # time limit without a solution: keep the heuristic
        return arm
    if sub_val > _totals(sub, arm[core])[0] + 1e-12 and not check_feasible(sub, sub_arm):
        arm = arm.copy()
        arm[core] = sub_arm
    return arm


def dual_bound(problem: Problem, lam: float, mu: np.ndarray) -> float:
    """The Lagrangian dual function at (lam, mu): an upper bound on the optimum."""
    pr = _Pricer(problem.gain, problem.cost, problem.budget, problem.capacity)
    pr(lam, np.asarray(mu, dtype=float))
    return pr.best_bound


def _lp_arrays(problem: Problem):
    """Sparse LP data over the eligible (positive gain) pairs only."""
    from scipy import sparse

    a_idx, i_idx = np.nonzero(problem.gain > 0)
    m = a_idx.size
    g = problem.gain[a_idx, i_idx]
    c = problem.cost[a_idx, i_idx]
    cust, inv = np.unique(i_idx, return_inverse=True)
    rows = [sparse.csr_array((np.ones(m), (inv, np.arange(m))), shape=(cust.size, m))]
    ub = [np.ones(cust.size)]
    names = ["customer"]
    if np.isfinite(problem.budget):
        rows.append(sparse.csr_array(c[None, :]))
        ub.append(np.array([problem.budget]))
        names.append("budget")
    caps = np.flatnonzero(np.isfinite(problem.capacity))
    if caps.size:
        sel = np.isin(a_idx, caps)
        r = np.searchsorted(caps, a_idx[sel])
        rows.append(sparse.csr_array((np.ones(sel.sum()), (r, np.flatnonzero(sel))),
                                     shape=(caps.size, m)))
        ub.append(problem.capacity[caps])
        names.append("capacity")
    A = sparse.vstack(rows, format="csr")
    return a_idx, i_idx, g, A, np.concatenate(ub), caps


def solve_lp(problem: Problem, time_limit: float | None = None
             ) -> tuple[float, np.ndarray, float, np.ndarray]:
    """LP relaxation by HiGHS: (bound, x over (a, i) as k x n, lam, mu)."""
    from scipy.optimize import linprog

    a_idx, i_idx, g, A, ub, caps = _lp_arrays(problem)
    x_full = np.zeros((problem.k, problem.n))
    if g.size == 0:
        return 0.0, x_full, 0.0, np.zeros(problem.k)
    opts = {"presolve": True}
    if time_limit:
        opts["time_limit"] = float(time_limit)
    # interior point (with crossover) is ~5x faster than dual simplex from ~100k pairs on
    res = linprog(-g, A_ub=A, b_ub=ub, bounds=(0, 1),
                  method="highs-ipm" if g.size > 50_000 else "highs", options=opts)
    if res.status != 0:
        raise RuntimeError(f"LP failed: {res.message}")
    x_full[a_idx, i_idx] = res.x
    duals = -res.ineqlin.marginals
    n_cust = np.unique(i_idx).size
    lam = float(duals[n_cust]) if np.isfinite(problem.budget) else 0.0
    mu = np.zeros(problem.k)
    if caps.size:
        mu[caps] = duals[-caps.size:]
    return float(-res.fun), x_full, max(lam, 0.0), np.maximum(mu, 0.0)


@contextlib.contextmanager
def _silence_stdout():
    """HiGHS's MIP solver (as bundled with scipy 1.17) prints debugging lines straight to file
    descriptor 1, past Python's sys.stdout; they would corrupt a CLI's output, so fd 1 points
    at /dev/null for the duration of the solve."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # pytest capture, notebooks: nothing to do
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def solve_milp(problem: Problem, time_limit: float = 60.0, mip_rel_gap: float = 1e-5
               ) -> tuple[np.ndarray, float]:
    """Integer optimum by HiGHS branch and bound: (arm, objective)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    a_idx, i_idx, g, A, ub, _ = _lp_arrays(problem)
    arm = np.full(problem.n, -1, dtype=np.int64)
    if g.size == 0:
        return arm, 0.0
    with _silence_stdout():
        res = milp(-g, constraints=LinearConstraint(A, -np.inf, ub),
                   integrality=np.ones(g.size), bounds=Bounds(0, 1),
                   options={"time_limit": time_limit, "mip_rel_gap": mip_rel_gap})
    if res.x is None:
        raise RuntimeError(f"MILP failed: {res.message}")
    take = res.x > 0.5
    arm[i_idx[take]] = a_idx[take]
    return arm, float(-res.fun)


# --------------------------------------------------------------------------------------------
# the public entry points


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
            arm = np.full(problem.n, -1, dtype=np.int64)
            a_idx, i_idx = np.nonzero(x >= 1 - 1e-9)
            arm[i_idx] = a_idx
            extra["fractional_customers"] = int(((x > 1e-9) & (x < 1 - 1e-9)).any(0).sum())
            g, c, _ = _chosen(problem, arm)
            arm = _fill(problem, _repair(problem, arm, lam, g, c))
        else:
            arm, _ = solve_milp(problem, time_limit=time_limit)
        bound = dual_bound(problem, lam, mu)
    else:
        raise InputError(f"method must be lagrangian, lp or milp (got {method!r})")
    if want_lp and lp_val is None:
        lp_val, _, _, _ = solve_lp(problem, time_limit=time_limit)
    if lp_val is not None:
        bound = min(bound, max(lp_val, _value(problem, arm)))
    marginal = marginal_cost_per_reactivation(problem, lam, mu)
    return evaluate(problem, arm, method=method, lambda_=lam, mu=mu, dual_bound=bound,
                    lp_bound=lp_val, marginal=marginal, seconds=time.perf_counter() - t0,
                    extra=extra)


def _value(problem: Problem, arm: np.ndarray) -> float:
    return _totals(problem, arm)[0]


def marginal_cost_per_reactivation(problem: Problem, lam: float, mu: np.ndarray,
                                   step: float = 0.02) -> float | None:
    """Cost of the last incremental reactivation bought at the chosen budget.

    Under the reactivations objective this is 1 / lambda (lambda = reactivations per extra unit
    of budget, the LP dual of the budget). Under the other objectives it is the slope of cost
    against reactivations of the price rule between lambda (1 - step) and lambda (1 + step),
    with the capacity prices held. None when the budget does not bind (lambda = 0).
    """
    if lam <= 0 or not np.isfinite(problem.budget):
        return None
    if problem.objective == "reactivations":
        return 1.0 / lam
    pr = _Pricer(problem.gain, problem.cost, problem.budget, problem.capacity)
    pts = []
    for f in (1 - step, 1 + step):
        cost = pr(lam * f, mu)
        pts.append((cost, _totals(problem, pr.arm)[2]))
    dr = pts[0][1] - pts[1][1]
    return float((pts[0][0] - pts[1][0]) / dr) if dr > 0 else None


# --------------------------------------------------------------------------------------------
# budget curve


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
        pr = _Pricer(gain, cost, b * frac, cap)
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


# --------------------------------------------------------------------------------------------
# estimator-style wrapper


class BudgetedPolicy:
    """Learns budget and capacity prices on one set of customers and applies them to others.

    sklearn-like: `fit(base, uplift)` solves the allocation and keeps `lambda_`, `mu_` and
    `allocation_`; `predict(base, uplift)` returns the arm index per customer (-1 = none) by
    the price rule argmax_a (g_ia - lambda_ c_ia - mu_a) if positive, without re-solving.
    Budget and capacities are totals for the customers passed to `fit`.
    """

    def __init__(self, *, arms: Sequence[str] | None = None, budget: float | None = None,
                 capacity: Mapping[str, float] | Sequence[float] | None = None,
                 cost_per_contact: Mapping[str, float] | Sequence[float] | None = None,
                 cost_per_conversion: Mapping[str, float] | Sequence[float] | None = None,
                 objective: str = "reactivations", value_per_reactivation: float | None = None,
                 method: str = "lagrangian", lp_bound: bool | str = False, seed: int = 0):
        self.arms = arms
        self.budget = budget
        self.capacity = capacity
        self.cost_per_contact = cost_per_contact
        self.cost_per_conversion = cost_per_conversion
        self.objective = objective
        self.value_per_reactivation = value_per_reactivation
        self.method = method
        self.lp_bound = lp_bound
        self.seed = seed

    def _problem(self, base: Any, uplift: Any, revenue_uplift: Any = None,
                 budget: float | None = None, capacity: Any = None) -> Problem:
        return make_problem(base, uplift, arms=self.arms,
                            budget=self.budget if budget is None else budget,
                            capacity=self.capacity if capacity is None else capacity,
                            cost_per_contact=self.cost_per_contact,
                            cost_per_conversion=self.cost_per_conversion,
                            objective=self.objective,
                            value_per_reactivation=self.value_per_reactivation,
                            revenue_uplift=revenue_uplift)

    def get_params(self) -> dict:
        keys = ("arms", "budget", "capacity", "cost_per_contact", "cost_per_conversion",
                "objective", "value_per_reactivation", "method", "lp_bound", "seed")
        return {k: getattr(self, k) for k in keys}

    def scaled(self, factor: float) -> "BudgetedPolicy":
        """An unfitted copy whose budget and capacities are multiplied by `factor` (a fold is a
        fraction of the population the budget was set for)."""
        params = self.get_params()
        if params["budget"] is not None:
            params["budget"] = float(params["budget"]) * factor
        cap = params["capacity"]
        if isinstance(cap, Mapping):
            params["capacity"] = {a: (None if v is None else np.floor(float(v) * factor))
                                  for a, v in cap.items()}
        elif cap is not None:
            params["capacity"] = np.floor(np.asarray(cap, dtype=float) * factor)
        return BudgetedPolicy(**params)

    def fit(self, base: Any, uplift: Any, revenue_uplift: Any = None) -> "BudgetedPolicy":
        problem = self._problem(base, uplift, revenue_uplift)
        self.allocation_ = solve(problem, method=self.method, lp_bound=self.lp_bound,
                                 seed=self.seed)
        self.lambda_ = self.allocation_.lambda_
        self.mu_ = np.array([self.allocation_.mu_[a] for a in problem.arms])
        self.arms_ = problem.arms
        return self

    def predict(self, base: Any, uplift: Any, revenue_uplift: Any = None) -> np.ndarray:
        """Arm index per customer (-1 = none) by the learned prices."""
        problem = self._problem(base, uplift, revenue_uplift, budget=np.inf, capacity={})
        pr = _Pricer(problem.gain, problem.cost, np.inf, np.full(problem.k, np.inf))
        pr(self.lambda_, self.mu_)
        return pr.arm.astype(np.int64)
