"""Allocation on Spark (engine/spark_allocate.py): the prices found on the driver from a sample
and refined by sums over all customers; the plan applied on Spark is exactly the policy's price
rule (`BudgetedPolicy.predict`) at those prices, within budget and capacity, and within the
stated tolerance of the single-machine solver's value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from upliftlab.errors import InputError

ARMS = ("coupon", "content", "advisor")
COSTS = dict(cost_per_contact={"coupon": 0.10, "content": 0.02, "advisor": 4.0},
             cost_per_conversion={"coupon": 10.0, "content": 0.0, "advisor": 0.0})


def _scores(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.02, 0.25, n)
    up = {"coupon": rng.normal(0.03, 0.03, n), "content": rng.normal(0.005, 0.01, n),
          "advisor": rng.gamma(1.0, 0.04, n)}
    return pd.DataFrame({"customer_id": rng.permutation(n) + 1_000_000, "base": base,
                         **{f"uplift_{a}": np.clip(up[a], -base, 1 - base) for a in ARMS}})


@pytest.fixture(scope="module")
def scores():
    return _scores(30_000, seed=3)


def _policy(**changes):
    from upliftlab.policy import BudgetedPolicy

    return BudgetedPolicy(**{**dict(arms=ARMS, budget=3000.0, capacity={"advisor": 150},
                                    **COSTS), **changes})


@pytest.mark.parametrize("objective", ["reactivations", "net_value"])
def test_plan_is_the_price_rule_feasible_and_near_the_single_machine_optimum(
        engine, scores, objective):
    from upliftlab.engine.spark_allocate import allocate_spark, with_prices
    from upliftlab.policy import allocate

    extra = {"value_per_reactivation": 60.0} if objective == "net_value" else {}
    policy = _policy(objective=objective, **extra)
    res = allocate_spark(engine, scores, policy, sample_size=5000, seed=1)
    assert res.sample_size < len(scores) and res.passes >= 1
    plan = res.plan.toPandas().set_index("customer_id").loc[scores["customer_id"]]

    # the same prices on one machine: the same arm for every customer, the same sums
    base = scores["base"].to_numpy()
    uplift = {a: scores[f"uplift_{a}"].to_numpy() for a in ARMS}
    mu = [res.mu_[a] for a in ARMS]
    arm = with_prices(policy, res.lambda_, mu, ARMS).predict(base, uplift)
    want = np.array(["none", *ARMS], dtype=object)[arm]  # predict: 0 = none, j = the j-th arm
    assert plan["arm"].tolist() == want.tolist()
    assert res.counts == {a: int((want == a).sum()) for a in ARMS}
    assert res.expected_cost == pytest.approx(plan["expected_cost"].sum(), rel=1e-9)
    assert res.expected_incremental_reactivations == pytest.approx(
        plan["expected_uplift"].sum(), rel=1e-9)

    # feasible on every customer; the dual bound is an upper bound; the gap is what it says
    assert res.expected_cost <= 3000.0 * (1 + 1e-12)
    assert res.counts["advisor"] <= 150
    single = allocate(base, uplift, arms=ARMS, budget=3000.0, capacity={"advisor": 150},
                      objective=objective, **COSTS, **extra)
    assert res.dual_bound >= single.expected_value - 1e-6
    assert res.gap_to_dual_bound == pytest.approx(
        (res.dual_bound - res.expected_value) / abs(res.dual_bound), rel=1e-12)
    # stated tolerance: within 0.5% of the single-machine plan's value (0.05% seen), and spends
    # the budget
    assert res.expected_value >= single.expected_value * (1 - 5e-3)
    assert res.expected_cost >= 0.99 * 3000.0
    assert res.gap_to_dual_bound < 2e-3


def test_prices_on_all_customers_when_the_sample_is_everyone(engine, scores):
    """A population within the sample size: the driver's prices are the single-machine
    policy's prices, and the plan is its price rule."""
    from upliftlab.engine.spark_allocate import allocate_spark

    small = scores.head(3000)
    policy = _policy(budget=300.0, capacity={"advisor": 30})
    res = allocate_spark(engine, small, policy, sample_size=5000)
    fitted = _policy(budget=300.0, capacity={"advisor": 30}).fit(
        small["base"].to_numpy(), {a: small[f"uplift_{a}"].to_numpy() for a in ARMS})
    assert res.sample_size == 3000
    assert res.sample_prices[0] == pytest.approx(fitted.lambda_, rel=1e-12)
    assert res.expected_cost <= 300.0 * (1 + 1e-12) and res.counts["advisor"] <= 30


def test_no_binding_budget_treats_every_positive_gain(engine, scores):
    from upliftlab.engine.spark_allocate import allocate_spark

    res = allocate_spark(engine, scores.head(4000), _policy(budget=None, capacity=None),
                         sample_size=2000)
    best = scores.head(4000)[[f"uplift_{a}" for a in ARMS]].to_numpy()
    assert res.lambda_ == 0.0 and sum(res.counts.values()) == int((best.max(1) > 0).sum())
    assert res.passes == 1 and res.gap_to_dual_bound == pytest.approx(0.0, abs=1e-12)


def test_plan_written_as_parquet(engine, scores, tmp_path):
    from upliftlab.engine.spark_allocate import allocate_spark, write_plan_spark

    res = allocate_spark(engine, scores.head(5000), _policy(budget=500.0), sample_size=2000)
    write_plan_spark(res, tmp_path / "plan.parquet")
    write_plan_spark(res, tmp_path / "plan")
    one = pd.read_parquet(tmp_path / "plan.parquet").sort_values("customer_id")
    parts = pd.read_parquet(tmp_path / "plan").sort_values("customer_id")
    assert list(one.columns) == ["customer_id", "arm", "expected_uplift", "expected_cost"]
    assert len(one) == 5000 and one.reset_index(drop=True).equals(parts.reset_index(drop=True))
    assert one["arm"].value_counts().drop("none", errors="ignore").to_dict() == {
        a: c for a, c in res.counts.items() if c}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan", "plan.parquet"]


def test_bad_scores_are_input_errors(engine, scores):
    from upliftlab.engine.spark_allocate import allocate_spark

    dup = pd.concat([scores.head(100), scores.head(2)], ignore_index=True)
    with pytest.raises(InputError, match="2 duplicate customer_id"):
        allocate_spark(engine, dup, _policy())
    over = scores.head(100).copy()
    over.loc[3, "base"] = 1.5
    with pytest.raises(InputError, match="base must be a probability"):
        allocate_spark(engine, over, _policy())
    nan = scores.head(100).copy()
    nan.loc[4, "uplift_coupon"] = np.nan
    with pytest.raises(InputError, match="'uplift_coupon' has 1 missing"):
        allocate_spark(engine, nan, _policy())
    with pytest.raises(InputError, match="uplift_advisor"):
        allocate_spark(engine, scores.head(100).drop(columns="uplift_advisor"), _policy())
