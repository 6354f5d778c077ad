"""Off-policy evaluation (IPW / doubly robust) against known truth, baselines, cross-fitting,
exploration, and the policy on the simulator's world."""

from __future__ import annotations

import numpy as np
import pytest

from upliftlab.errors import InputError
from upliftlab.policy import (BudgetedPolicy, allocate, compare, cross_fit_policy,
                              estimate_from_terms, evaluate_policy,
                              make_problem, plan_campaign, policy_terms, off_policy_value)

E = np.array([0.4, 0.2, 0.2, 0.2])  # design: control 40%, three arms 20% each


def synthetic(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """x ~ U(0, 1) and the true P(reactivate | x, arm), control first."""
    x = rng.random(n)
    p0 = 0.05 + 0.10 * x
    return x, np.column_stack([p0, p0 + 0.06 - 0.08 * x, p0 + 0.01, p0 + 0.10 * x ** 2])


def experiment(rng, P):
    n = P.shape[0]
    A = rng.choice(4, size=n, p=E)
    Y = (rng.random(n) < P[np.arange(n), A]).astype(float)
    return A, Y


def test_hand_computed_terms():
    arm = np.array([0, 1, 1, 2])
    y = np.array([1.0, 0.0, 1.0, 1.0])
    e = np.array([0.5, 0.25, 0.25])
    pol = np.array([1, 1, 0, 2])
    ipw = policy_terms(pol, arm, y, e)
    np.testing.assert_allclose(ipw, [0, 0, 0, 4.0])
    mu = np.array([[0.2, 0.3, 0.1], [0.2, 0.4, 0.1], [0.5, 0.5, 0.5], [0.1, 0.1, 0.6]])
    dr = policy_terms(pol, arm, y, e, mu)
    # mu(x, pi) + 1{A = pi} (y - mu(x, A)) / e(A)
    np.testing.assert_allclose(dr, [0.3, 0.4 + (0 - 0.4) / 0.25, 0.5, 0.6 + 0.4 / 0.25])
    est = off_policy_value(pol, arm, y, e, mu, population=1000)
    assert est.estimate == pytest.approx(dr.mean())
    assert est.se == pytest.approx(dr.std(ddof=1) / 2)
    assert est.total == pytest.approx(1000 * dr.mean())
    # a random policy is the probability-weighted mix of deterministic ones
    half = np.tile([0.5, 0.5, 0.0], (4, 1))
    mix = policy_terms(half, arm, y, e, mu)
    np.testing.assert_allclose(mix, 0.5 * policy_terms(np.zeros(4, int), arm, y, e, mu)
                               + 0.5 * policy_terms(np.ones(4, int), arm, y, e, mu))


@pytest.mark.slow
def test_ipw_and_dr_unbiased_and_dr_interval_covers_95_percent():
    rng = np.random.default_rng(20240601)
    reps, n = 400, 3000
    cover = {"dr": 0, "ipw": 0}
    err = {"dr": [], "ipw": []}
    se_dr, se_ipw = [], []
    for _ in range(reps):
        x, P = synthetic(rng, n)
        A, Y = experiment(rng, P)
        pi = np.where(x < 0.4, 1, np.where(x > 0.8, 3, 0))
        truth = P[np.arange(n), pi].mean()
        mu = np.clip(P + rng.normal(0, 0.02, P.shape), 0, 1)  # a decent, imperfect model
        for name, mh in (("dr", mu), ("ipw", None)):
            est = off_policy_value(pi, A, Y, E, mh)
            cover[name] += est.ci_low <= truth <= est.ci_high
            err[name].append(est.estimate - truth)
            (se_dr if name == "dr" else se_ipw).append(est.se)
    for name in cover:
        e = np.array(err[name])
        assert abs(e.mean()) < 3 * e.std() / np.sqrt(reps), name  # unbiased
        assert 0.92 <= cover[name] / reps <= 0.98, (name, cover[name] / reps)
    assert np.mean(se_dr) < np.mean(se_ipw)  # the model soaks up outcome noise


def test_paired_difference_and_plain_statement():
    rng = np.random.default_rng(3)
    x, P = synthetic(rng, 4000)
    A, Y = experiment(rng, P)
    mu = P
    good = policy_terms(np.argmax(P, 1), A, Y, E, mu)
    nobody = policy_terms(np.zeros(4000, int), A, Y, E, mu)
    c = compare(good, nobody, name="treat nobody", metric="reactivations", population=10_000)
    paired = estimate_from_terms(good - nobody)
    assert c.difference.se == pytest.approx(paired.se)
    # pairing on the same customers removes their common variation
    assert c.difference.se < np.hypot(estimate_from_terms(good).se, estimate_from_terms(nobody).se)
    assert c.significant and "significantly better" in c.statement
    same = policy_terms(np.where(x < 0.5, 2, 0), A, Y, E, mu)
    close = compare(same, nobody, name="treat nobody", metric="reactivations")
    assert not close.significant and "cannot tell the policy from treat nobody" in close.statement


def test_evaluate_policy_baselines():
    rng = np.random.default_rng(5)
    n = 6000
    x, P = synthetic(rng, n)
    A, Y = experiment(rng, P)
    pol = np.where(x < 0.4, 1, np.where(x > 0.8, 3, 0))
    ev = evaluate_policy(pol, A, Y, E, P, arms=("control", "coupon", "content", "advisor"),
                         cost_per_contact={"coupon": 0.1, "content": 0.02, "advisor": 4.0},
                         cost_per_conversion={"coupon": 10.0}, budget_per_customer=0.5,
                         population=100_000)
    names = [c.name for c in ev.comparisons]
    assert names[0] == "treat nobody" and names[-1] == "what we did"
    assert any(nm.startswith("best single arm") for nm in names)
    assert "random allocation, same counts" in names
    assert ev.baselines["what we did"]["reactivation"]["estimate"] == pytest.approx(Y.mean())
    truth_inc = (P[np.arange(n), pol] - P[:, 0]).mean()
    assert abs(ev.incremental.estimate - truth_inc) < 4 * ev.incremental.se
    assert ev.incremental.total == pytest.approx(100_000 * ev.incremental.estimate)
    # expected cost of the policy: contact + conversion x P for the treated
    cpc = np.array([0, 0.1, 0.02, 4.0])
    cpv = np.array([0, 10.0, 0, 0])
    true_cost = (cpc[pol] + cpv[pol] * P[np.arange(n), pol]).mean()
    assert abs(ev.cost.estimate - true_cost) < 4 * ev.cost.se
    assert ev.to_dict()["comparisons"][0]["baseline"] == "treat nobody"
    with pytest.raises(InputError, match="propensities"):
        off_policy_value(pol, A, Y, np.array([0.5, 0.5, 0.0, 0.0]), P)


def test_cross_fit_policy_with_a_stratum_mean_model():
    rng = np.random.default_rng(11)
    n = 12_000
    x, P = synthetic(rng, n)
    A, Y = experiment(rng, P)
    bins = np.minimum((x * 5).astype(int), 4)

    def fit_outcome(X_train, a_train, y_train):
        # per stratum and arm mean: the simplest honest outcome model
        table = np.zeros((5, 4))
        for b in range(5):
            for a in range(4):
                m = (X_train == b) & (a_train == a)
                table[b, a] = y_train[m].mean() if m.any() else y_train.mean()
        return lambda X: table[np.asarray(X)]

    policy = BudgetedPolicy(arms=("coupon", "content", "advisor"), budget=0.3 * n,
                            cost_per_contact={"coupon": 0.1, "content": 0.02, "advisor": 1.0},
                            cost_per_conversion={"coupon": 2.0})
    cf = cross_fit_policy(bins, A, Y, E, fit_outcome=fit_outcome, policy=policy, folds=4,
                          seed=1, cost_per_contact={"coupon": 0.1, "content": 0.02,
                                                    "advisor": 1.0},
                          cost_per_conversion={"coupon": 2.0})
    assert cf.policy.shape == (n,) and cf.mu_hat.shape == (n, 4)
    assert len(cf.prices) == 4 and all(p["lambda"] >= 0 for p in cf.prices)
    # every fold's arms were chosen by prices learned without it: the estimate is honest
    truth = P[np.arange(n), cf.policy].mean()
    ev = cf.evaluation
    assert ev.reactivation.ci_low - 0.01 <= truth <= ev.reactivation.ci_high + 0.01
    assert abs(ev.reactivation.estimate - truth) < 4 * ev.reactivation.se


def test_exploration_hashes_weights_and_threshold():
    """Explored <=> md5 order hash < threshold; the arm is the documented draw of the second
    hash against the cumulative weights (control first), independent of the threshold."""
    from upliftlab.assign import unit_hash
    from upliftlab.policy.explore import Hashes, explore_weights, reserve

    ids = np.arange(1, 40_001)
    w = explore_weights({"control": 2, "coupon": 1, "content": 1}, ("coupon", "content"))
    h = Hashes.of(ids, w, "s1")
    u = np.array([unit_hash("s1", i) for i in ids[:300]])
    v = np.array([unit_hash("s1:arm", i) for i in ids[:300]])
    np.testing.assert_allclose(h.u[:300], u)
    # the arm index: 0 = control, j = the j-th treatment arm
    np.testing.assert_array_equal(h.arm[:300], np.searchsorted([0.5, 0.75, 1.0], v,
                                                                side="right"))
    assert np.mean(h.arm == 0) == pytest.approx(0.5, abs=0.01)
    problem = make_problem(np.full(40_000, 0.02), np.full((40_000, 2), 0.01),
                           arms=("coupon", "content"), budget=1000, capacity={"content": 400},
                           cost_per_contact={"coupon": 1.0, "content": 0.5})
    flag, thr = reserve(problem, h, w, 100.0, 0.1)
    np.testing.assert_array_equal(flag, h.u < thr)
    cost = np.where(h.arm == 1, 1.0, np.where(h.arm == 2, 0.5, 0.0))
    mean = 0.25 * 1.0 + 0.25 * 0.5  # expected cost of an explored customer over the weights
    assert cost[flag].sum() <= 100 and flag.sum() * mean <= 100
    # stopped by a limit: the content capacity share, or one more customer breaks the money
    assert (h.arm[flag] == 2).sum() == 40 or max(cost[flag].sum() + 1, (flag.sum() + 1) * mean) > 100
    flag2, _ = reserve(problem, h, w, 100.0, 1.0)  # capacity share 100%: the money binds
    assert max(cost[flag2].sum() + 1, (flag2.sum() + 1) * mean) > 100 >= flag2.sum() * mean
    with pytest.raises(InputError, match="unknown arm"):
        explore_weights({"phone": 1}, ("coupon",))
    with pytest.raises(InputError, match="no weight"):
        explore_weights({"control": 1, "coupon": 0}, ("coupon",))


@pytest.mark.slow
def test_plan_campaign_keeps_budget_and_capacity_with_exploration():
    rng = np.random.default_rng(2)
    n = 20_000
    base = rng.beta(1.2, 40, n)
    up = np.clip(np.column_stack([rng.normal(0.01, 0.012, n), rng.normal(0.004, 0.006, n),
                                  rng.normal(0.03, 0.06, n)]), -base[:, None], 1 - base[:, None])
    kw = {"budget": 0.08 * n, "capacity": {"advisor": 200}}
    problem = make_problem(base, up, arms=ARMS_SIM, budget=kw["budget"],
                           capacity=kw["capacity"], cost_per_contact=CPC_SIM,
                           cost_per_conversion=CPV_SIM)
    for share in (0.0, 0.1, 0.5):
        plan = plan_campaign(problem, np.arange(20_000), explore_budget=share, salt="x")
        ex_cost = plan.expected_cost[plan.explore].sum()
        assert ex_cost <= share * kw["budget"] + 1e-9
        assert plan.expected_cost.sum() <= kw["budget"] + 1e-6
        assert (plan.arm == 3).sum() <= kw["capacity"]["advisor"]  # 0 = none, 3 = ARMS_SIM[2]
        assert (plan.arm[plan.explore] == 3).sum() <= share * 200
        assert (plan.expected_uplift[plan.arm == 0] == 0).all()
        # the plan's expected cost over the exploration weights is within the budget too
        assert (plan.propensity[:, 1:].T * problem.cost).sum() <= kw["budget"] + 1e-6
    assert plan.summary["budget_used"] > 0.95
    with pytest.raises(InputError, match="cannot hold the exploration share"):
        small = make_problem(base, up, arms=ARMS_SIM, budget=kw["budget"],
                             capacity={"advisor": 5}, cost_per_contact=CPC_SIM,
                             cost_per_conversion=CPV_SIM)
        plan_campaign(small, np.arange(n), explore_budget="10%")
    with pytest.raises(InputError, match="smaller than the cheapest exploration"):
        plan_campaign(problem, np.arange(n), explore_budget="3")


def _dormant_world(n: int, seed: int):
    sim = pytest.importorskip("upliftlab.simulate")
    world = sim.simulate_world(n, seed)
    t = world.truth
    t = t[t["recency_days"] >= 90]
    P = t[["p_control", "p_coupon", "p_content", "p_advisor"]].to_numpy()
    return P


def test_on_the_simulator_policy_beats_best_single_arm_on_true_value():
    P = _dormant_world(30_000, 4)
    n = P.shape[0]
    rng = np.random.default_rng(0)
    true_up = P[:, 1:] - P[:, [0]]
    noisy = np.clip(true_up + rng.normal(0, 0.01, true_up.shape), -P[:, [0]], 1 - P[:, [0]])
    costs = dict(cost_per_contact=CPC_SIM, cost_per_conversion=CPV_SIM)
    budget = 0.5 * n
    res = allocate(P[:, 0], noisy, arms=ARMS_SIM, budget=budget,
                   capacity={"advisor": n // 50}, **costs, lp_bound=False)
    chosen = res.arm > 0
    true_value = true_up[np.flatnonzero(chosen), res.arm[chosen] - 1].sum()
    # best single arm: that arm for a random subset that fits the budget (and capacity)
    best = 0.0
    for j, a in enumerate(ARMS_SIM):
        cost = CPC_SIM[a] + CPV_SIM[a] * P[:, j + 1]
        share = min(1.0, budget / cost.sum(), (n // 50) / n if a == "advisor" else 1.0)
        best = max(best, share * true_up[:, j].sum())
    assert true_value > 1.2 * best
    assert res.expected_cost <= budget + 1e-6


@pytest.mark.slow
def test_on_the_simulator_dr_interval_covers_the_true_value():
    P_all = _dormant_world(60_000, 9)
    N = P_all.shape[0]
    rng = np.random.default_rng(1)
    true_up = P_all[:, 1:] - P_all[:, [0]]
    noisy = np.clip(true_up + rng.normal(0, 0.01, true_up.shape), -P_all[:, [0]],
                    1 - P_all[:, [0]])
    res = allocate(P_all[:, 0], noisy, arms=ARMS_SIM, budget=0.5 * N,
                   cost_per_contact=CPC_SIM, cost_per_conversion=CPV_SIM, lp_bound=False)
    pol_all = res.arm
    truth = (P_all[np.arange(N), pol_all] - P_all[:, 0]).mean()  # incremental, whole world
    mu_all = np.clip(P_all + rng.normal(0, 0.01, P_all.shape), 0, 1)
    reps, n, hits = 200, 4000, 0
    for _ in range(reps):
        idx = rng.integers(0, N, n)  # an experiment on customers drawn from the world
        P, pol, mu = P_all[idx], pol_all[idx], mu_all[idx]
        A, Y = experiment(rng, P)
        inc = estimate_from_terms(policy_terms(pol, A, Y, E, mu)
                                  - policy_terms(np.zeros(n, int), A, Y, E, mu))
        hits += inc.ci_low <= truth <= inc.ci_high
    assert 0.91 <= hits / reps <= 0.99


ARMS_SIM = ("coupon", "content", "advisor")
CPC_SIM = {"coupon": 0.10, "content": 0.02, "advisor": 4.0}
CPV_SIM = {"coupon": 10.0, "content": 0.0, "advisor": 0.0}
