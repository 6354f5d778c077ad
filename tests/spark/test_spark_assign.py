"""Assignment on Spark (engine/spark_assign.py): every customer of a simulated cohort gets the arm
`upliftlab.assign.assign` gives on DuckDB, in both modes, with the global holdout and capacity,
and the run allocates the same counts and effective weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import upliftlab as ul
from upliftlab.assign import Design, assign
from upliftlab.engine.spark_assign import assign_spark

DESIGNS = {
    "stratified": Design.of("reactivation-2026q1",
                            {"control": 0.4, "coupon": 0.2, "content": 0.2, "advisor": 0.2},
                            strata=("tier",)),
    "stratified_holdout_capacity": Design.of(
        "reactivation-2026q1", {"control": 0.4, "coupon": 0.2, "content": 0.2, "advisor": 0.2},
        strata=("tier",), capacity={"advisor": 150}, holdout_share=0.05),
    "simple_holdout_capacity": Design.of(
        "q1", {"control": 0.4, "coupon": 0.3, "advisor": 0.3}, mode="simple",
        capacity={"advisor": 120}, holdout_share=0.1),
}


@pytest.fixture(scope="module")
def cohort():
    world = ul.simulate_world(4000, seed=3)
    frame = ul.build_cohort(world.transactions, "2026-01-05")
    assert len(frame) > 1000
    return frame


@pytest.mark.parametrize("name", list(DESIGNS))
def test_every_customer_gets_the_duckdb_arm(engine, cohort, name):
    design = DESIGNS[name]
    want = assign(cohort[["customer_id", "tier"]], design)
    frame, allocation = assign_spark(engine, cohort[["customer_id", "tier"]], design)
    got = frame.toPandas().set_index("customer_id").sort_index()
    w = want.frame.assign(customer_id=want.frame["customer_id"].astype(str)).set_index(
        "customer_id").sort_index()
    assert len(got) == len(cohort)
    pd.testing.assert_frame_equal(got[["stratum", "arm"]], w[["stratum", "arm"]])
    assert allocation == want.allocation
    arms = set(got["arm"])
    assert arms == set(design.names) | ({"holdout"} if design.holdout_share else set())
    capped = [a for a in design.arms if a.capacity is not None]
    for a in capped:
        assert (got["arm"] == a.name).sum() <= a.capacity


def test_existing_customers_count_against_capacity(engine, cohort):
    design = DESIGNS["stratified_holdout_capacity"]
    existing = pd.DataFrame({"customer_id": [-1 - i for i in range(100)], "arm": ["advisor"] * 100})
    want = assign(cohort[["customer_id", "tier"]], design, existing=existing)
    frame, allocation = assign_spark(engine, cohort[["customer_id", "tier"]], design,
                                     existing={"advisor": 100})
    assert allocation == want.allocation
    got = frame.toPandas().sort_values("customer_id").reset_index(drop=True)
    w = want.frame.assign(customer_id=want.frame["customer_id"].astype(str)).sort_values(
        "customer_id").reset_index(drop=True)
    assert got["arm"].tolist() == w["arm"].tolist()
    assert (got["arm"] == "advisor").sum() <= 50


def test_duplicate_ids_refused(engine):
    from upliftlab.errors import InputError

    design = DESIGNS["stratified"]
    with pytest.raises(InputError, match="duplicated"):
        assign_spark(engine, pd.DataFrame({"customer_id": [1, 1, 2], "tier": ["a", "a", "b"]}),
                     design)


def test_value_band_strata_on_spark(engine, cohort):
    """The spec's derived stratum value_band (terciles of revenue_365d by default) computed by
    `assign.add_value_band` on Spark, then the tier x value_band assignment: DuckDB's arms."""
    from upliftlab.assign import add_value_band
    from upliftlab.sources import connect
    from upliftlab.spec import ValueBandSpec

    band = ValueBandSpec()
    frame = cohort[["customer_id", "tier", "revenue_365d"]].astype({"tier": str})
    con = connect()
    con.register("c", frame)
    duck_cuts = add_value_band(con, "c", band, "c_banded", "cohort")
    banded = con.execute("SELECT * FROM c_banded").df()
    con.close()
    engine.register(frame, "ul_t_c")
    spark_cuts = add_value_band(engine, "ul_t_c", band, "ul_t_c_banded", "cohort")
    assert np.allclose(spark_cuts, duck_cuts, rtol=1e-12)
    design = Design.of("vb", {"control": 0.5, "coupon": 0.25, "advisor": 0.25},
                       strata=("tier", "value_band"), holdout_share=0.05)
    want = assign(banded, design).frame
    arms, _ = assign_spark(engine, engine.spark.table("ul_t_c_banded"), design)
    got = arms.toPandas().sort_values("customer_id").reset_index(drop=True)
    w = want.assign(customer_id=want["customer_id"].astype(str)).sort_values(
        "customer_id").reset_index(drop=True)
    assert got[["customer_id", "stratum", "arm"]].equals(w[["customer_id", "stratum", "arm"]])
    assert got["stratum"].nunique() >= 6


def test_balance_and_srm_checks_on_spark(engine, cohort):
    """`checks.run_checks` (SRM overall and per stratum, holdout share, SMD of every numeric
    feature, counts) over the Spark assignment and cohort: DuckDB's checks of the same arms."""
    from upliftlab.checks import check_assignment, run_checks

    design = DESIGNS["stratified_holdout_capacity"]
    frame = cohort.astype({"tier": str})
    want = check_assignment(assign(frame, design), frame, design)
    arms, allocation = assign_spark(engine, frame, design)
    arms.createOrReplaceTempView("ul_t_arms")
    engine.register(frame, "ul_t_cohort")
    weights = ", ".join(f"('{a}', {w!r})" for a, w in allocation.effective_weights().items())
    engine.sql(f"""SELECT s.stratum, w.arm, s.n * w.w AS expected
        FROM (SELECT stratum, count(*) AS n FROM ul_t_arms WHERE arm <> 'holdout'
              GROUP BY stratum) s CROSS JOIN (SELECT * FROM (VALUES {weights}) AS v(arm, w)) w
        """).createOrReplaceTempView("ul_t_expected")
    got = run_checks(engine, assigned="ul_t_arms", expected="ul_t_expected",
                     cohort="ul_t_cohort", control=design.control.name,
                     treatments=[a.name for a in design.arms if not a.control],
                     holdout_share=design.holdout_share)
    key = lambda c: (c.kind, c.scope, str(c.details.get("feature", "")),  # noqa: E731
                     str(c.details.get("arm", "")))
    got, want = sorted(got, key=key), sorted(want, key=key)
    assert [key(c) for c in got] == [key(c) for c in want]
    assert sum(c.kind == "smd" for c in got) >= 10  # every numeric feature, int ones included
    for g, w in zip(got, want):
        assert g.ok == w.ok
        for a, b in ((g.statistic, w.statistic), (g.p_value, w.p_value)):
            assert (a is None and b is None) or np.isclose(a, b, rtol=1e-9, atol=1e-12)
