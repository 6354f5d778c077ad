"""Cohort, outcomes and the report's sufficient statistics on Spark equal DuckDB's on the same
simulated world: counts exactly, every feature and statistic to 1e-9 (relative)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import upliftlab as ul
from upliftlab.assign import Design, assign
from upliftlab.engine.spark_assign import assign_spark
from upliftlab.engine.spark_steps import aggregate_spark, cohort_spark, outcomes_spark
from upliftlab.errors import InputError

AS_OF = "2026-01-05"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = ul.simulate_world(3000, seed=11)
    path = tmp_path_factory.mktemp("world") / "transactions.parquet"
    world.transactions.to_parquet(path, index=False)
    return world, path


def _close(a: pd.Series, b: pd.Series) -> bool:
    a, b = a.astype(float).to_numpy(), b.astype(float).to_numpy()
    return bool(np.all((np.isnan(a) & np.isnan(b))
                       | np.isclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=False)))


@pytest.mark.parametrize("population", ["dormant", "active"])
def test_cohort_equals_duckdb(engine, world, population):
    _, path = world
    if population == "dormant":
        want = ul.build_cohort(str(path), AS_OF)
    else:
        from upliftlab.cohort import build_cohort_relation, _connection

        con = _connection()
        want = build_cohort_relation(con, str(path), AS_OF, population="active").df()
        con.close()
    got = cohort_spark(engine, str(path), AS_OF, population=population).toPandas()
    assert len(got) == len(want) > 100
    assert list(got.columns) == list(want.columns)
    got = got.sort_values("customer_id").reset_index(drop=True)
    want = want.sort_values("customer_id").reset_index(drop=True)
    for col in want.columns:
        w, g = want[col], got[col]
        if col in ("first_purchase", "last_purchase"):
            assert (pd.to_datetime(g) == pd.to_datetime(w)).all(), col
        elif col == "tier":
            assert g.tolist() == w.astype(str).tolist()
        elif pd.api.types.is_integer_dtype(w):
            assert g.astype("int64").tolist() == w.astype("int64").tolist(), col
        else:
            assert _close(g, w), col


def test_cohort_input_checked_as_duckdb(engine, world):
    tx = world[0].transactions.head(500).copy()
    tx.loc[tx.index[3], "amount"] = -5.0
    with pytest.raises(InputError) as duck:
        ul.build_cohort(tx, AS_OF)
    with pytest.raises(InputError) as spark:
        cohort_spark(engine, tx, AS_OF)
    assert "negative amount" in str(spark.value)
    assert str(spark.value).split(": ", 1)[1] == str(duck.value).split(": ", 1)[1]


def test_outcomes_and_statistics_equal_duckdb(engine, spark, world):
    w, path = world
    cohort = ul.build_cohort(str(path), AS_OF)
    design = Design.of("q1", {"control": 0.5, "coupon": 0.25, "advisor": 0.25},
                       strata=("tier",), holdout_share=0.05)
    assigned = assign(cohort, design).frame
    start = dt.date(2026, 1, 5)
    # purchases after the start: the simulator's response to this assignment
    tx = w.respond(assigned[assigned["arm"] != "holdout"], seed=5)
    want = ul.compute_outcomes(assigned, tx, start=start, as_of="2026-02-20", window_days=60)
    frame, _ = assign_spark(engine, cohort[["customer_id", "tier"]], design)
    frame.createOrReplaceTempView("ul_t_assigned")
    engine.register(tx, "ul_t_tx")
    got = outcomes_spark(engine, "ul_t_assigned", "ul_t_tx", start=start,
                         as_of=dt.date(2026, 2, 20), window_days=60)
    got_pd = got.toPandas().sort_values("customer_id").reset_index(drop=True)
    want = want.sort_values("customer_id").reset_index(drop=True)
    assert len(got_pd) == len(want)
    assert got_pd["arm"].tolist() == want["arm"].tolist()
    for col in ("reactivated", "orders", "exposure_days"):
        assert got_pd[col].astype("int64").tolist() == want[col].astype("int64").tolist(), col
    assert _close(got_pd["revenue"], want["revenue"])
    assert _close(got_pd["days_to_reactivation"], want["days_to_reactivation"])
    assert got_pd["reactivated"].sum() > 0

    # the report's statistics: per arm and per tier segment, with a covariate
    with_cov = want.merge(cohort[["customer_id", "revenue_365d", "tier"]].astype(
        {"customer_id": str, "tier": str}), on="customer_id")
    engine.register(with_cov, "ul_t_outcomes")
    from upliftlab.sources import connect
    from upliftlab.stats.sql import aggregate, needed_pairs

    metrics, covs = ["reactivated", "revenue", "orders"], ["revenue_365d"]
    values = metrics + covs
    con = connect()
    con.register("o", with_cov)
    duck = aggregate(con, "o", "arm", values, needed_pairs(metrics, covs), binary_check=metrics,
                     segments=["tier"])
    con.close()
    sp = aggregate_spark(engine, "ul_t_outcomes", "arm", metrics, covs, segments=["tier"])
    assert sp.arm_missing == duck.arm_missing == 0
    assert set(sp.arms) == set(duck.arms) == {"control", "coupon", "advisor", "holdout"}
    pairs = [(sp.arms[a], duck.arms[a]) for a in duck.arms]
    pairs += [(sp.segments["tier"][v][a], duck.segments["tier"][v][a])
              for v in duck.segments["tier"] for a in duck.segments["tier"][v]]
    assert len(pairs) > 8
    for s, d in pairs:
        assert (s.n, s.columns, s.pairs, s.n_missing, s.n_not01) == \
            (d.n, d.columns, d.pairs, d.n_missing, d.n_not01)
        assert np.allclose(s.sums, d.sums, rtol=1e-9, atol=1e-9)
        assert np.allclose(s.cross, d.cross, rtol=1e-9, atol=1e-9)


def test_iv_statistics_equal_duckdb(engine):
    """The touch report's IV sums (`stats.sql.iv_sql`: fourth-order products of centred
    covariates, a scalar subquery joined by comma) on Spark equal DuckDB's."""
    from upliftlab.sources import connect
    from upliftlab.stats.sql import iv_aggregate

    rng = np.random.default_rng(2)
    n = 4000
    arm = rng.choice(["control", "email", "call"], size=n)
    reach = ((arm != "control") & (rng.random(n) < 0.6)).astype(int)
    x1, x2 = rng.normal(50, 10, n), rng.exponential(3.0, n)
    y = (rng.random(n) < 0.1 + 0.05 * reach + 0.001 * x1).astype(float)
    frame = pd.DataFrame({"arm": arm, "reached": reach, "y": y, "x1": x1, "x2": x2,
                          "cost": reach * 0.5})
    con = connect()
    con.register("iv", frame)
    duck = iv_aggregate(con, "iv", "arm", "reached", "y", ["x1", "x2"], "cost")
    con.close()
    engine.register(frame, "ul_t_iv")
    sp = iv_aggregate(engine, "ul_t_iv", "arm", "reached", "y", ["x1", "x2"], "cost")
    assert set(sp) == set(duck) == {"control", "email", "call"}
    for a in duck:
        s, d = sp[a], duck[a]
        assert s.n == d.n and s.covariates == d.covariates
        assert np.allclose(s.sums, d.sums, rtol=1e-9, atol=1e-9)
        assert np.allclose([s.sum_cost, s.sum_cost_sq, s.sum_cost_y],
                           [d.sum_cost, d.sum_cost_sq, d.sum_cost_y],
                           rtol=1e-9)


def test_longrun_rows_equal_duckdb(engine, world):
    """`longrun.longrun_sql` (horizons, survival times from time differences) on Spark: DuckDB's
    rows (the epoch-of-a-difference rewrite included)."""
    from upliftlab.longrun import frame as longrun_frame
    from upliftlab.longrun import longrun_sql
    from upliftlab.sources import connect

    w, path = world
    cohort = ul.build_cohort(str(path), AS_OF)
    design = Design.of("lr", {"control": 0.5, "coupon": 0.5}, strata=("tier",))
    assigned = assign(cohort, design).frame.astype({"customer_id": str})
    assigned["tier"] = assigned["stratum"].str.removeprefix("tier=")
    post = w.respond(assigned[["customer_id", "arm"]].astype({"customer_id": "int64"}), seed=2)
    tx = pd.concat([w.transactions, post], ignore_index=True)
    fr = longrun_frame(dt.date(2026, 1, 5), dt.date(2026, 7, 31), window_days=60)
    sql = longrun_sql("lr_assigned", "lr_tx", fr)
    con = connect()
    con.register("lr_assigned", assigned[["customer_id", "arm", "tier"]])
    con.register("lr_tx", tx)
    want = con.execute(sql).df().sort_values("customer_id").reset_index(drop=True)
    con.close()
    engine.register(assigned[["customer_id", "arm", "tier"]], "lr_assigned")
    engine.register(tx, "lr_tx")
    got = engine.sql(sql).toPandas().sort_values("customer_id").reset_index(drop=True)
    assert list(got.columns) == list(want.columns) and len(got) == len(want)
    assert want["back_event"].sum() > 0
    for col in want.columns:
        if pd.api.types.is_numeric_dtype(want[col]):
            assert _close(got[col], want[col]), col
        else:
            assert got[col].tolist() == want[col].tolist(), col
