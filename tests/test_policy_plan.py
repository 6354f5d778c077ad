"""The written plan against the truth, on the simulator and on a second, test-only world whose
effects differ in kind (other column names; the best arm depends on one feature):

- the written plan's true cost stays within the budget and every capacity at exploration
  shares 0, 10% and 50% (exploration is inside the budget, not added to it);
- the off-policy interval of the written plan covers its true value in >= 90% of seeded
  repetitions;
- at the default exploration, the written plan reaches >= 85% of the oracle's true value
  (the LP on the true effects, same budget and capacities) on the second world with the
  default model; on the simulator, at this test's size, 70% (bar 65%), and >= 85% of what
  the best possible use of the cohort's features reaches (the issue's 85% of the oracle is
  out of reach of any learner there at this size: see that test for the measured reasons).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from upliftlab.policy.exact import solve_lp
from upliftlab.policy.problem import make_problem
from upliftlab.policy.explore import DEFAULT_EXPLORE_BUDGET, plan_campaign
from upliftlab.policy.io import Scores
from upliftlab.policy.ope import evaluate_policy
from upliftlab.policy.run import run_policy, true_plan_value


def second_world(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Members of a loyalty scheme with other column names; arms ctl / sms / call. The best
    arm depends on one feature (`zone`): sms works in the north, the call elsewhere, and the
    call slightly harms northern members. Returns the members and P (n x 3, ctl first)."""
    rng = np.random.default_rng(seed)
    zone = rng.choice(["north", "south", "east"], n)
    spend = rng.gamma(2.0, 40.0, n)
    visits = rng.poisson(3, n)
    age = rng.integers(18, 80, n)
    p0 = np.clip(0.04 + 0.0004 * spend + 0.004 * visits, 0, 0.5)
    north = zone == "north"
    p_sms = np.clip(p0 + np.where(north, 0.06, 0.0), 0, 1)
    p_call = np.clip(p0 + np.where(north, -0.01, 0.09), 0, 1)
    members = pd.DataFrame({"member_no": np.arange(10_000, 10_000 + n), "zone": zone,
                            "spend_12m": spend, "visits_90d": visits, "age": age})
    return members, np.column_stack([p0, p_sms, p_call])


def randomise(rng: np.random.Generator, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    arm = rng.integers(0, P.shape[1], P.shape[0])
    return arm, (rng.random(P.shape[0]) < P[np.arange(P.shape[0]), arm]).astype(float)


def oracle_value(P: np.ndarray, arms: tuple, budget: float, capacity: dict,
                 cpc: dict, cpv: dict) -> float:
    """The LP relaxation on the true effects (an upper bound on any plan's true value)."""
    problem = make_problem(P[:, 0], P[:, 1:] - P[:, [0]], arms=arms, budget=budget,
                           capacity=capacity, cost_per_contact=cpc, cost_per_conversion=cpv)
    return solve_lp(problem)[0]


def fitted_scores(X: pd.DataFrame, arm_labels: np.ndarray, y: np.ndarray, ids: np.ndarray,
                  control: str) -> Scores:
    """Out-of-fold scores of the default model (`model fit`'s per-arm selection)."""
    from upliftlab.uplift.select import select_per_arm

    sel = select_per_arm(X, y, arm_labels, control=control, n_jobs=2, folds=3)
    out = sel.outcomes.clip(0, 1)
    names = list(out.columns)
    base = out[names[0]].to_numpy()
    return Scores(ids, base, {a: out[a].to_numpy() - base for a in names[1:]}, "oof")


@pytest.fixture(scope="module")
def world_b():
    members, P = second_world(16_000, 11)
    rng = np.random.default_rng(12)
    arm, y = randomise(rng, P)
    labels = np.array(["ctl", "sms", "call"])[arm]
    X = members.drop(columns="member_no")
    scores = fitted_scores(X, labels, y, members.member_no.to_numpy(), "ctl")
    exp = pd.DataFrame({"member_no": members.member_no, "group": np.where(
        labels == "ctl", "control", labels), "converted": y.astype(int)})
    costs = {"sms": (0.05, 0.0), "call": (2.5, 0.0)}
    setting = dict(budget=2_600.0, capacity={"call": 800}, costs=costs)
    arms = tuple(scores.arms)  # the model's order (sorted)
    cols = {"ctl": 0, "sms": 1, "call": 2}
    return scores, P[:, [0] + [cols[a] for a in arms]], exp, setting, arms


def feature_ceiling_scores(X: pd.DataFrame, ids: np.ndarray, arms: tuple, *,
                           n_train: int = 300_000, seed: int = 6) -> Scores:
    """About the best scores the simulator's cohort features allow: E[p_control | x] and
    E[uplift_a | x], learned by LightGBM from the TRUE values of the dormant customers of an
    independent world (`seed`, `n_train` simulated customers). No real model has that
    supervision: the oracle knows the latent drivers (price sensitivity, engagement) that the
    features only proxy, so this is the reference for what a learner can reach from them."""
    from lightgbm import LGBMRegressor

    from upliftlab.uplift.simdata import simulated_experiment

    train = simulated_experiment(n_train, seed=seed)

    def frame(df: pd.DataFrame) -> pd.DataFrame:
        return df.astype({c: "category" for c in df.columns
                          if not pd.api.types.is_numeric_dtype(df[c])
                          or isinstance(df[c].dtype, pd.CategoricalDtype)})

    Xt, Xs = frame(train.X), frame(X)
    P = train.true_p
    fitted = {}
    for col in ("control", *arms):
        target = P[col] - (0.0 if col == "control" else P["control"])
        model = LGBMRegressor(n_estimators=400, learning_rate=0.05, num_leaves=63,
                              min_child_samples=50, verbose=-1, n_jobs=2, random_state=0)
        fitted[col] = model.fit(Xt, target).predict(Xs)
    base = np.clip(fitted["control"], 0.0, 1.0)
    return Scores(ids, base, {a: np.clip(base + fitted[a], 0.0, 1.0) - base for a in arms},
                  "feature ceiling")


@pytest.fixture(scope="module")
def world_sim():
    from upliftlab.uplift.simdata import simulated_experiment

    e = simulated_experiment(60_000, seed=5)
    scores = fitted_scores(e.X, e.treatment, e.reactivated, e.customer_id, "control")
    arms = tuple(scores.arms)
    P = e.true_p[["control", *arms]].to_numpy()
    exp = pd.DataFrame({"customer_id": e.customer_id, "arm": e.treatment,
                        "reactivated": e.reactivated.astype(int)})
    costs = {"coupon": (0.10, 10.0), "content": (0.02, 0.0), "advisor": (4.0, 0.0)}
    setting = dict(budget=3_000.0, capacity={"advisor": 400}, costs=costs)
    ceiling = feature_ceiling_scores(e.X, e.customer_id, arms)
    return scores, P, exp, setting, arms, ceiling


def _cost_vectors(setting: dict, arms: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Per contact and per conversion cost of every arm, none (0) first."""
    return (np.array([0.0] + [setting["costs"][a][0] for a in arms]),
            np.array([0.0] + [setting["costs"][a][1] for a in arms]))


def _check_world(world, customer_col, arm_col, outcome_col, min_share=0.85, strict=True):
    """The written plan at exploration shares 0, 10%, 50% (its cost and capacities checked
    unless `strict` is False: the bound holds the budget in about 95% of experiments), then
    its true value at the default exploration as a share of the oracle's (>= `min_share`)."""
    scores, P, exp, setting, arms = world
    cpc, cpv = _cost_vectors(setting, arms)
    budget, cap = setting["budget"], setting["capacity"]
    for share in (0.0, 0.10, 0.50):
        # the plan as `upliftlab policy --experiment` writes it (a hard budget fits the plan's
        # off-policy cost too); rebuilt from its propensities
        res = run_policy(scores, budget=budget, costs=setting["costs"], capacity=cap,
                         explore_budget=share, experiment=exp, customer_col=customer_col,
                         arm_col=arm_col, outcome_col=outcome_col)
        plan = _plan(scores, {**setting, "budget": res["plan_value"]["planning_budget"]}, share)
        written = np.zeros_like(P)
        written[np.arange(P.shape[0]), plan.arm] = 1.0
        for prop in (plan.propensity, written):  # the stochastic plan and the arms written
            cost = true_plan_value(P, prop, cpc, cpv)["cost"]
            if not strict:
                print(f"exploration {share:.0%}: true cost {cost:,.2f} of the budget {budget:,.2f}")
                continue
            assert cost <= budget, share
        for a, c in cap.items():
            assert (plan.arm == 1 + arms.index(a)).sum() <= c
        assert res["plan_value"]["expected"] == pytest.approx(_expected_value(scores, plan))
        assert res["exploration"]["cost"] <= share * budget + 1e-9
        assert res["plan_value"]["cost"] <= budget + 1e-6
        # the plan is fitted under the one-sided 95% upper bound of its off-policy cost
        bound = res["plan_value"]["cost_bound"]
        assert bound["level"] == 0.95 and bound["upper"] <= budget * (1 + 1e-9)
        assert bound["estimate"] + bound["se"] <= bound["upper"]
    return written_share(world, customer_col, arm_col, outcome_col, min_share)


def written_share(world, customer_col, arm_col, outcome_col, min_share=0.85):
    """The written plan's true value at the default exploration as a share of the oracle's."""
    scores, P, exp, setting, arms = world
    cpc, cpv = _cost_vectors(setting, arms)
    budget, cap = setting["budget"], setting["capacity"]
    res = run_policy(scores, budget=budget, costs=setting["costs"], capacity=cap,
                     explore_budget=DEFAULT_EXPLORE_BUDGET, experiment=exp,
                     customer_col=customer_col, arm_col=arm_col, outcome_col=outcome_col)
    plan = _plan(scores, {**setting, "budget": res["plan_value"]["planning_budget"]},
                 DEFAULT_EXPLORE_BUDGET)
    assert res["plan_value"]["expected"] == pytest.approx(_expected_value(scores, plan))
    true = true_plan_value(P, plan.propensity, cpc, cpv)["incremental_reactivations"]
    oracle = oracle_value(P, arms, budget, cap, dict(zip(arms, cpc[1:])),
                          dict(zip(arms, cpv[1:])))
    print(f"share of the oracle {true / oracle:.3f} ({true:.1f} of {oracle:.1f})")
    assert true >= min_share * oracle, (true, oracle)
    return true / oracle


def _expected_value(scores, plan):
    up = np.column_stack([scores.uplift[a] for a in scores.arms])
    return float((plan.propensity[:, 1:] * up).sum())


def _plan(scores, setting, share):
    arms = scores.arms
    costs = setting["costs"]
    problem = make_problem(scores.base, scores.uplift, arms=arms, budget=setting["budget"],
                           capacity=setting["capacity"],
                           cost_per_contact={a: costs[a][0] for a in arms},
                           cost_per_conversion={a: costs[a][1] for a in arms})
    return plan_campaign(problem, scores.customer_id, explore_budget=share)


@pytest.mark.slow
def test_second_world_plan_within_budget_and_near_the_oracle(world_b):
    _check_world(world_b, "member_no", "group", "converted")


@pytest.mark.slow
def test_simulator_plan_within_budget_and_near_what_the_features_allow(world_sim):
    # Issue 9 asks >= 85% of the LP oracle (on the TRUE effects) on both worlds. On the
    # simulator no learner can reach it at this size: the oracle knows the latent drivers
    # (price sensitivity, engagement) that the cohort's features only proxy. The reference is
    # therefore the feature ceiling (`feature_ceiling_scores`: LightGBM taught the TRUE effects
    # on an independent world), run through the same written plan (5% exploration, held under
    # the one-sided 95% bound of its off-policy cost), and the bar is the 85% of it.
    # Measured, seeded as here (benchmarks/bench_plan_oracle.py, RESULTS.md plan_oracle):
    #   ~33k dormant customers (this test, budget 3,000): default model 70.3% of the oracle,
    #     the feature ceiling 78.2% (model / ceiling 0.90), the true effects as scores 88%
    #     (the cost bound's price);
    #   ~83k (the benchmark, budget and capacity scaled): 73.1% / 85.6% (0.85) / 94.3%; 85% of
    #     the oracle comes within reach of a learner only from about this size (the ceiling
    #     crosses it).
    # Before the glm candidate and the budgeted-value selection the default model reached
    # 58.2% here (75% of the ceiling).
    scores, P, exp, setting, arms, ceiling = world_sim
    share = _check_world(world_sim[:5], "customer_id", "arm", "reactivated", min_share=0.65)
    reachable = written_share((ceiling, P, exp, setting, arms), "customer_id", "arm",
                              "reactivated", min_share=0.0)
    print(f"default model {share:.3f} of the oracle; feature ceiling {reachable:.3f}")
    assert share >= 0.85 * reachable, (share, reachable)


@pytest.mark.slow
@pytest.mark.parametrize("world", ["second", "simulator"])
def test_off_policy_interval_covers_the_written_plans_true_value(world):
    """Scores = truth + noise (no model fit: seconds); the written plan at 10% exploration is
    fixed, each repetition is a fresh randomised experiment on the same customers."""
    rng = np.random.default_rng(3)
    if world == "second":
        _, P = second_world(12_000, 4)
        arms, costs, cap, budget = ("sms", "call"), {"sms": (0.05, 0.0), "call": (2.5, 0.0)}, \
            {"call": 600}, 2_000.0
    else:
        sim = pytest.importorskip("upliftlab.simulate")
        t = sim.simulate_world(24_000, 8).truth
        t = t[t["recency_days"] >= 90]
        arms = ("coupon", "content", "advisor")
        P = t[["p_control"] + [f"p_{a}" for a in arms]].to_numpy()
        costs = {"coupon": (0.10, 10.0), "content": (0.02, 0.0), "advisor": (4.0, 0.0)}
        cap, budget = {"advisor": 200}, 0.15 * len(P)
    n = P.shape[0]
    noisy = np.clip(P + rng.normal(0, 0.01, P.shape), 0.0, 1.0)
    scores = Scores(np.arange(n), noisy[:, 0],
                    {a: noisy[:, j + 1] - noisy[:, 0] for j, a in enumerate(arms)}, "noisy")
    plan = _plan(scores, {"budget": budget, "capacity": cap, "costs": costs}, 0.10)
    assert plan.explore.any()
    pi = plan.propensity
    truth = float((pi * (P - P[:, [0]])).sum())
    mu = noisy
    reps, hits = 200, 0
    e = np.full(len(arms) + 1, 1 / (len(arms) + 1))
    for _ in range(reps):
        A, Y = randomise(rng, P)
        ev = evaluate_policy(pi, A, Y, e, mu, arms=("control",) + arms)
        inc = ev.incremental
        hits += inc.total_ci_low <= truth <= inc.total_ci_high
    assert hits / reps >= 0.90, hits / reps
