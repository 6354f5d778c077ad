"""Budgeted allocation: feasibility, optimality against brute force / MILP / the LP bound, the
budget curve, the policy estimator, and bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from upliftlab.errors import InputError
from upliftlab.policy import (BudgetedPolicy, allocate, budget_curve, check_feasible,
                              make_problem)

ARMS = ("coupon", "content", "advisor")
CPC = {"coupon": 0.10, "content": 0.02, "advisor": 4.0}
CPV = {"coupon": 10.0, "content": 0.0, "advisor": 0.0}


def instance(n: int, seed: int, *, budget_per_customer: float = 0.08, cap_share: float = 0.01,
             objective: str = "reactivations") -> dict:
    """Realistic shape: uplifts of a fraction of a point to a few points, some negative; an
    advisor arm that is expensive, strong for a tenth of customers, and capacity-limited."""
    rng = np.random.default_rng(seed)
    base = rng.beta(1.2, 40, n)
    strong = rng.random(n) < 0.1
    up = np.column_stack([rng.normal(0.01, 0.012, n), rng.normal(0.004, 0.006, n),
                          np.where(strong, rng.normal(0.15, 0.08, n), rng.normal(0, 0.02, n))])
    up = np.clip(up, -base[:, None], 1 - base[:, None])
    kw = dict(base=base, uplift=up, arms=ARMS, budget=budget_per_customer * n,
              capacity={"advisor": int(cap_share * n)}, cost_per_contact=CPC,
              cost_per_conversion=CPV, objective=objective)
    if objective == "net_value":
        kw["value_per_reactivation"] = 60.0
    return kw


def problem_of(kw: dict):
    keys = ("budget", "capacity", "cost_per_contact", "cost_per_conversion", "objective",
            "value_per_reactivation")
    return make_problem(kw["base"], kw["uplift"], arms=kw["arms"],
                        **{k: kw[k] for k in keys if k in kw})


def brute_force(problem) -> float:
    """Best feasible objective over all (k+1)^n assignments, vectorised."""
    n, k = problem.n, problem.k
    combos = np.array(list(itertools.product(range(-1, k), repeat=n)))  # (k+1)^n x n
    g = np.zeros(combos.shape)
    c = np.zeros(combos.shape)
    for a in range(k):
        m = combos == a
        g += m * problem.gain[a][None, :]
        c += m * problem.cost[a][None, :]
    ok = c.sum(1) <= problem.budget + 1e-12
    for a in range(k):
        ok &= (combos == a).sum(1) <= problem.capacity[a]
    return float(g.sum(1)[ok].max())


@pytest.mark.parametrize("seed", range(8))
def test_matches_brute_force_on_tiny_instances(seed):
    rng = np.random.default_rng(100 + seed)
    n = 6
    kw = instance(n, seed, budget_per_customer=float(rng.uniform(0.05, 1.0)), cap_share=0.2)
    kw["capacity"] = {"advisor": int(rng.integers(0, 3))}
    problem = problem_of(kw)
    best = brute_force(problem)
    exact = allocate(**kw, method="milp")
    fast = allocate(**kw)
    assert exact.expected_value == pytest.approx(best, rel=1e-9, abs=1e-12)
    assert fast.expected_value == pytest.approx(best, rel=1e-3, abs=1e-12)
    assert fast.expected_value <= best + 1e-12
    assert fast.lp_bound >= best - 1e-12  # the LP relaxation bounds the integer optimum
    assert fast.dual_bound >= best - 1e-12
    assert check_feasible(problem, fast.arm) == []


@pytest.mark.slow
def test_budget_and_capacity_never_exceeded_on_random_instances():
    rng = np.random.default_rng(7)
    for trial in range(28):
        n = int(rng.integers(1, 2000))
        objective = ("reactivations", "net_value")[trial % 2]
        kw = instance(n, trial, budget_per_customer=float(rng.choice([0.0, 0.01, 0.08, 0.5, 50])),
                      cap_share=float(rng.choice([0.0, 0.005, 0.05, 1.0])), objective=objective)
        if trial % 5 == 0:
            kw["capacity"] = {"coupon": int(rng.integers(0, 20)), "content": int(n // 3)}
        if trial % 7 == 0:
            kw["budget"] = None
        problem = problem_of(kw)
        for method in ("lagrangian", "lp") if n > 400 else ("lagrangian", "lp", "milp"):
            res = allocate(**kw, method=method, lp_bound=False)
            assert check_feasible(problem, res.arm) == [], (trial, method)
            assert res.arm.min() >= 0 and res.arm.max() <= 3
            assert sum(res.counts.values()) == int((res.arm > 0).sum())
            budget = kw["budget"] if kw["budget"] is not None else np.inf
            assert res.expected_cost <= budget + 1e-9
            assert res.expected_value <= res.dual_bound + 1e-9


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_scalable_within_0_1_percent_of_milp_on_small_instances(seed):
    kw = instance(300, seed)
    exact = allocate(**kw, method="milp", lp_bound=False)
    fast = allocate(**kw, lp_bound=False)
    assert fast.expected_value >= exact.expected_value * (1 - 1e-3)
    assert fast.expected_value <= exact.expected_value * (1 + 1e-5)  # milp is optimal (1e-5 gap)


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["reactivations", "net_value"])
def test_scalable_within_0_1_percent_of_lp_bound_on_medium_instances(objective):
    kw = instance(20_000, 3, objective=objective)
    fast = allocate(**kw, lp_bound=True)
    assert fast.gap_to_lp_bound is not None and fast.gap_to_lp_bound < 1e-3
    assert fast.gap_to_lp_bound == pytest.approx(
        (fast.lp_bound - fast.expected_value) / fast.lp_bound)
    # the Lagrangian dual bound is also an upper bound, never below the LP's
    assert fast.dual_bound >= fast.lp_bound * (1 - 1e-9)
    assert fast.gap_to_dual_bound < 1e-3
    assert fast.counts["advisor"] <= 200


@pytest.mark.slow
def test_large_instance_uses_subsample_and_reports_gap():
    kw = instance(600_000, 11)
    res = allocate(**kw, lp_bound=False)
    assert res.gap_to_dual_bound < 1e-3
    assert check_feasible(problem_of(kw), res.arm) == []
    assert res.budget_used == pytest.approx(1.0, abs=1e-3)


def test_never_assigns_non_positive_gain():
    kw = instance(2000, 5, budget_per_customer=100.0, cap_share=1.0)
    res = allocate(**kw)
    # arms are 0 = none, j = ARMS[j - 1], whose uplift is column j - 1 of the input
    up = kw["uplift"][np.arange(2000), np.maximum(res.arm - 1, 0)]
    assert (up[res.arm > 0] > 0).all()
    # with money no object, every customer with a positive uplift somewhere is treated
    assert ((res.arm > 0) == (kw["uplift"].max(1) > 0)).all()
    net = allocate(**instance(2000, 5, budget_per_customer=100.0, cap_share=1.0,
                              objective="net_value"))
    p = problem_of(instance(2000, 5, objective="net_value"))
    g = p.gain[np.maximum(net.arm - 1, 0), np.arange(2000)]
    assert (g[net.arm > 0] > 0).all()


@pytest.mark.slow
def test_lp_duals_and_marginal_cost():
    kw = instance(5000, 2, cap_share=1.0)  # capacity not binding: one price
    kw["capacity"] = None
    lp = allocate(**kw, method="lp")
    fast = allocate(**kw)
    assert fast.lambda_ == pytest.approx(lp.lambda_, rel=0.02)
    assert fast.marginal_cost_per_reactivation == pytest.approx(1 / fast.lambda_)
    # 1/lambda is the slope of the budget curve at the chosen budget (cost per reactivation)
    problem = problem_of(kw)
    b = kw["budget"]
    curve = budget_curve(problem, [b * 0.98, b * 1.02])
    slope = np.diff(curve.cost)[0] / np.diff(curve.reactivations)[0]
    assert slope == pytest.approx(fast.marginal_cost_per_reactivation, rel=0.05)


def test_budget_curve_is_increasing_and_matches_allocation():
    kw = instance(20_000, 4)
    problem = problem_of(kw)
    curve = budget_curve(problem, 12)
    assert (np.diff(curve.reactivations) >= -1e-9).all()
    assert (curve.cost <= curve.budget + 1e-6).all()
    res = allocate(**kw, lp_bound=False)
    at = budget_curve(problem, [kw["budget"]])
    assert at.reactivations[0] == pytest.approx(res.expected_incremental_reactivations, rel=1e-3)
    # concave: reactivations per unit budget fall as the budget grows
    slopes = np.diff(curve.reactivations) / np.diff(curve.budget)
    assert (np.diff(slopes) <= 1e-6).all()


def test_budgeted_policy_learns_prices_and_applies_them_to_another_fold():
    kw = instance(40_000, 8)
    half = slice(0, 20_000), slice(20_000, 40_000)
    pol = BudgetedPolicy(arms=ARMS, budget=kw["budget"] / 2,
                         capacity={"advisor": 200}, cost_per_contact=CPC,
                         cost_per_conversion=CPV)
    pol.fit(kw["base"][half[0]], kw["uplift"][half[0]])
    assert pol.lambda_ > 0 and pol.mu_[2] > 0
    # predict's arms are column indices: 0 = none, j = ARMS[j - 1]
    arm = pol.predict(kw["base"][half[1]], kw["uplift"][half[1]])
    assert arm.min() >= 0 and arm.max() <= 3
    problem = problem_of({**kw, "base": kw["base"][half[1]], "uplift": kw["uplift"][half[1]],
                          "budget": kw["budget"] / 2})
    spent = sum(problem.cost[a][arm == a + 1].sum() for a in range(3))
    # the prices learned on one half spend about the same budget on the other half
    assert spent == pytest.approx(kw["budget"] / 2, rel=0.05)
    assert abs(int((arm == 1 + ARMS.index("advisor")).sum()) - 200) < 40
    scaled = pol.scaled(0.5)
    assert scaled.budget == pytest.approx(kw["budget"] / 4) and scaled.capacity["advisor"] == 100


def test_accepts_dataframe_and_mapping_of_columns():
    import pandas as pd

    kw = instance(500, 1)
    frame = pd.DataFrame(kw["uplift"], columns=list(ARMS))
    a = allocate(**{**kw, "uplift": frame, "arms": None}, lp_bound=False)
    b = allocate(**{**kw, "uplift": {arm: kw["uplift"][:, j] for j, arm in enumerate(ARMS)}},
                 lp_bound=False)
    assert a.arms == ARMS == b.arms
    # the exact core step runs under a time limit, so the arms may differ on ties, not the value
    assert a.expected_value == pytest.approx(b.expected_value, rel=1e-4)
    d = a.to_dict()
    assert d["n_customers"] == 500 and set(d["counts"]) == set(ARMS)
    names = np.array(("none",) + ARMS)
    assert (a.labels == names[a.arm]).all() and (a.labels[a.arm == 0] == "none").all()
    assert a.counts == {arm: int((a.arm == j + 1).sum()) for j, arm in enumerate(ARMS)}


@pytest.mark.parametrize("change, message", [
    ({"budget": -1}, "budget must be >= 0"),
    ({"capacity": {"phone": 3}}, "unknown arm 'phone'"),
    ({"base": np.full(10, 1.2)}, "base must be a probability"),
    ({"uplift": np.full((10, 3), 0.99)}, "base + uplift of arm 'coupon'"),
    ({"uplift": np.full((10, 3), np.nan)}, "missing values"),
    ({"cost_per_contact": {"coupon": -1}}, "cost_per_contact must be >= 0"),
    ({"arms": ("a", "b")}, "do not match"),
    ({"objective": "net_value"}, "needs value_per_reactivation"),
])
def test_bad_input_is_input_error(change, message):
    kw = {**instance(10, 0), **change}
    with pytest.raises(InputError, match=message.replace("+", r"\+").replace("(", r"\(")):
        allocate(**kw)
