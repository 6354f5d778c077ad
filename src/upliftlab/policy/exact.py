"""Exact allocation with HiGHS (scipy): the LP relaxation (an upper bound, and its duals as
prices) and the integer optimum (MILP), with HiGHS's stray output kept off the CLI's stdout.

Practical on this machine (2 cores): the LP takes about 2 s at 10k-30k customers x 3 arms, 15 s
at 100k, 220 s at 300k (1M is out of reach: benchmarks/RESULTS.md, section `policy`); the MILP
up to a few thousand customers x 3 arms (time limit configurable).
"""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np

from upliftlab.policy.problem import Problem


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
    """Integer optimum by HiGHS branch and bound: (arm (0 = none), objective)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    a_idx, i_idx, g, A, ub, _ = _lp_arrays(problem)
    arm = np.zeros(problem.n, dtype=np.int64)
    if g.size == 0:
        return arm, 0.0
    with _silence_stdout():
        res = milp(-g, constraints=LinearConstraint(A, -np.inf, ub),
                   integrality=np.ones(g.size), bounds=Bounds(0, 1),
                   options={"time_limit": time_limit, "mip_rel_gap": mip_rel_gap})
    if res.x is None:
        raise RuntimeError(f"MILP failed: {res.message}")
    take = res.x > 0.5
    arm[i_idx[take]] = a_idx[take] + 1  # row a is arm a + 1
    return arm, float(-res.fun)
