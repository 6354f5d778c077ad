"""Lagrangian pricing at scale: prices for the budget (lambda) and the capacities (mu) by a root
search, the price rule, its repair and fill, and the dual bound (see `solver` for the methods).

The prices lambda (budget) and mu_a (capacities) are found first on a random subsample of 200k
customers, then refined on all of them, by a one-dimensional root search on lambda
(safeguarded secant on the monotone cost curve) with the mu_a re-optimised exactly at every
lambda (each is an order statistic: one selection). The allocation "take argmax_a (g_ia -
lambda c_ia - mu_a) if positive" is then repaired (capacity, budget), the leftover budget filled
by the best remaining moves per unit cost, and, if the gap is still above 1e-5, the 200
customers nearest the price boundary are re-solved exactly (MILP). O(n k) per pass, about 10-15
passes: 10M customers x 3 arms in a few seconds. Every evaluation of the prices also yields the
Lagrangian dual bound, an upper bound on the optimum, so the gap is always reported.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from upliftlab.policy.exact import solve_milp
from upliftlab.policy.problem import (Problem, arm_counts, check_feasible, chosen, relative_gap,
                                      totals)

_SUBSAMPLE = 200_000  # customers used to find the prices before refining on all of them


class Pricer:
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
        """Choose arms at prices (lam, mu) into self.arm (0 = none); return their total cost.

        With `full`, also keep each customer's chosen gain and cost (`bestg`, `bestc`) and the
        margin between the best and the second-best option (no treatment counts as an option
        with reduced gain 0): customers with a small margin are the ones a repair may move.
        """
        R = self._reduced_all(lam)
        best, bestc, m = self._best, self._bestc, self._mask
        best.fill(0.0)
        bestc.fill(0.0)
        self.arm.fill(0)
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
            np.copyto(self.arm, a + 1, where=m)  # row a is arm a + 1
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


def solve_mu(pr: Pricer, lam: float, mu: np.ndarray, rounds: int = 8) -> np.ndarray:
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

    def __init__(self, pr: Pricer, mu: np.ndarray):
        self.pr, self.budget, self.mu = pr, pr.budget, mu.copy()
        self.has_cap = bool(np.isfinite(pr.cap).any())
        self.cache: dict[float, np.ndarray] = {}

    def __call__(self, lam: float) -> float:
        if self.has_cap:
            self.mu = solve_mu(self.pr, lam, self.mu)
        self.cache[lam] = self.mu.copy()
        return self.pr(lam, self.mu)


def find_prices(pr: Pricer, *, lam: float = 0.0, mu: np.ndarray | None = None,
                rtol: float = 1e-7) -> tuple[float, np.ndarray]:
    """Optimal prices: lam by a root search on the budget, mu exactly for each lam."""
    k = pr.gain.shape[0]
    fn = _WithCapacity(pr, np.zeros(k) if mu is None else mu)
    lam = _solve_lambda(fn, lam, rtol)
    mu = fn.cache.get(lam)
    if mu is None:
        mu = solve_mu(pr, lam, fn.mu) if fn.has_cap else np.zeros(k)
    return lam, mu



# --------------------------------------------------------------------------------------------
# repair and fill


def repair(problem: Problem, arm: np.ndarray, lam: float, g: np.ndarray, c: np.ndarray
            ) -> np.ndarray:
    """Make the price-rule allocation feasible: drop the least valuable customers over a
    capacity, then over the budget. `g`, `c` (chosen gain and cost) are updated in place."""
    arm = arm.astype(np.int64, copy=True)
    for a in range(problem.k):
        if not np.isfinite(problem.capacity[a]):
            continue
        idx = np.flatnonzero(arm == a + 1)
        cap = int(problem.capacity[a])
        if idx.size > cap:
            red = problem.gain[a, idx] - lam * problem.cost[a, idx]
            drop = idx[np.argsort(red, kind="stable")[: idx.size - cap]]
            arm[drop], g[drop], c[drop] = 0, 0.0, 0.0
    total = c.sum()
    if total > problem.budget:
        idx = np.flatnonzero(arm > 0)
        ratio = g[idx] / np.maximum(c[idx], 1e-300)
        order = idx[np.argsort(ratio, kind="stable")]
        excess = total - problem.budget
        k_drop = int(np.searchsorted(np.cumsum(c[order]), excess, side="left")) + 1
        drop = order[:k_drop]
        arm[drop], g[drop], c[drop] = 0, 0.0, 0.0
    return arm


def fill(problem: Problem, arm: np.ndarray, g_all: np.ndarray | None = None,
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
        g_all, c_all, _ = chosen(problem, arm)
    spent = float(c_all.sum())
    counts = arm_counts(problem, arm).astype(float)
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
        best_to = np.zeros(idx.size, dtype=np.int64)  # the arm to move to, 0 = no move
        best_dg = np.zeros(idx.size)
        for b in range(problem.k):
            if cap_left[b] < 1:
                continue
            gb = problem.gain[b] if pool is None else problem.gain[b, idx]
            cb = problem.cost[b] if pool is None else problem.cost[b, idx]
            dg, dc = gb - gcur, cb - ccur
            ok = (cur != b + 1) & (gb > 0) & (dg > 0) & (dc <= left)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(dc > 0, dg / dc, np.inf)
            better = ok & ((ratio > best_ratio) | ((ratio == best_ratio) & (dg > best_dg)))
            best_ratio[better], best_to[better], best_dg[better] = ratio[better], b + 1, dg[better]
        cand = np.flatnonzero(best_to > 0)
        if cand.size == 0:
            if pool is not None and not widened and left > 1e-6 * problem.budget:
                pool, widened = None, True  # the boundary pool is spent: one full scan
                continue
            break
        dc_c = problem.cost[best_to[cand] - 1, idx[cand]] - c_all[idx[cand]]
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
        dc = problem.cost[to - 1, who] - c_all[who]
        ok = np.cumsum(dc) <= left + 1e-12 * max(1.0, abs(problem.budget))
        for b in range(problem.k):
            if np.isfinite(cap_left[b]):
                ok &= np.cumsum(to == b + 1) <= cap_left[b]
        n_take = ok.size if ok.all() else int(np.argmin(ok))
        if n_take == 0:
            break
        who, to = who[:n_take], to[:n_take]
        old = arm[who]
        np.subtract.at(counts, old[old > 0] - 1, 1)  # counts[j - 1] counts arm j
        np.add.at(counts, to - 1, 1)
        arm[who] = to
        g_all[who] = problem.gain[to - 1, who]
        c_all[who] = problem.cost[to - 1, who]
        spent += float(dc[:n_take].sum())
    return arm



# --------------------------------------------------------------------------------------------
# the Lagrangian solver


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
        sub = Pricer(problem.gain[:, idx], problem.cost[:, idx], problem.budget * frac,
                      np.where(np.isfinite(problem.capacity),
                               np.floor(problem.capacity * frac), np.inf))
        lam, mu = find_prices(sub, rtol=1e-6)
        rtol = max(rtol, 1e-4)  # the leftover of a looser root is spent by the fill
    pr = Pricer(problem.gain, problem.cost, problem.budget, problem.capacity)
    lam, mu = find_prices(pr, lam=lam, mu=mu, rtol=rtol)
    pr(lam, mu, full=True)
    g, c = pr.bestg, pr.bestc
    arm = repair(problem, pr.arm, lam, g, c)
    margin = pr.margin
    arm = fill(problem, arm, g, c, margin=margin)
    if core and relative_gap(pr.best_bound, totals(problem, arm)[0]) > 1e-5:
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
    fixed = np.where(rest, arm, 0)
    _, spent, _ = totals(problem, fixed)
    counts = arm_counts(problem, fixed)
    sub = Problem(problem.arms, problem.gain[:, core], problem.cost[:, core],
                  problem.uplift[:, core], max(problem.budget - spent, 0.0),
                  problem.capacity - counts, problem.objective)
    try:
        sub_arm, sub_val = solve_milp(sub, time_limit=time_limit)
    except RuntimeError:  # time limit without a solution: keep the heuristic
        return arm
    if sub_val > totals(sub, arm[core])[0] + 1e-12 and not check_feasible(sub, sub_arm):
        arm = arm.copy()
        arm[core] = sub_arm
    return arm


def price_rule(problem: Problem, lam: float, mu: np.ndarray) -> np.ndarray:
    """The arm per customer at prices (lam, mu): argmax_a (g_ia - lam c_ia - mu_a) if positive,
    0 = none; budget and capacities are not enforced."""
    pr = Pricer(problem.gain, problem.cost, np.inf, np.full(problem.k, np.inf))
    pr(float(lam), np.asarray(mu, dtype=float))
    return pr.arm.astype(np.int64)


def dual_bound(problem: Problem, lam: float, mu: np.ndarray) -> float:
    """The Lagrangian dual function at (lam, mu): an upper bound on the optimum."""
    pr = Pricer(problem.gain, problem.cost, problem.budget, problem.capacity)
    pr(lam, np.asarray(mu, dtype=float))
    return pr.best_bound


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
    pr = Pricer(problem.gain, problem.cost, problem.budget, problem.capacity)
    pts = []
    for f in (1 - step, 1 + step):
        cost = pr(lam * f, mu)
        pts.append((cost, totals(problem, pr.arm)[2]))
    dr = pts[0][1] - pts[1][1]
    return float((pts[0][0] - pts[1][0]) / dr) if dr > 0 else None
