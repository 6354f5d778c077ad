"""The portable assignment query (engine/spark_assign.py, docs/assignment.md's window form) gives
every customer the arm `upliftlab.assign.assign` gives, run here on DuckDB: the same SQL that
Spark runs (tests/spark/test_spark_assign.py), so a difference is the query's, not the engine's."""

from __future__ import annotations

import pandas as pd
import pytest

from upliftlab.assign import Design, assign
from upliftlab.engine.spark_assign import assign_query, counts_query, plan
from upliftlab.sources import connect

DESIGNS = {
    "stratified": Design.of("reactivation-2026q1",
                            {"control": 0.4, "coupon": 0.2, "content": 0.2, "advisor": 0.2},
                            strata=("tier", "region")),
    "stratified_holdout_capacity": Design.of(
        "q1", {"control": 0.5, "coupon": 0.25, "advisor": 0.25}, strata=("tier",),
        capacity={"advisor": 180}, holdout_share=0.05),
    "simple_holdout_capacity": Design.of(
        "q1", {"control": 0.4, "coupon": 0.3, "advisor": 0.3}, mode="simple",
        capacity={"advisor": 150}, holdout_share=0.1),
    "simple_zero_weight": Design.of("z", {"control": 0.5, "none": 0.0, "coupon": 0.5},
                                    mode="simple"),
    "stratified_thirds": Design.of("t", {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, strata=("tier",)),
}


def _cohort(n: int = 3000, seed: int = 1, string_ids: bool = False) -> pd.DataFrame:
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.choice(10**9, size=n, replace=False)
    return pd.DataFrame({
        "customer_id": [f"c{i}" for i in ids] if string_ids else ids.astype("int64"),
        "tier": rng.choice(["short", "mid", "long", None], size=n, p=[0.4, 0.3, 0.2, 0.1]),
        "region": rng.choice(["north", "south"], size=n),
    })


def duckdb_portable(cohort: pd.DataFrame, design: Design, existing=None) -> pd.DataFrame:
    from upliftlab.assign import stratum_sql

    con = connect()
    con.register("c", cohort)
    con.execute(f"CREATE TEMP VIEW pool AS SELECT customer_id, {stratum_sql(design.strata)} "
                "AS stratum FROM c")
    counts = con.execute(counts_query("pool", design)).fetchall()
    allocation, quotas, remaining = plan(design, counts, existing)
    frame = con.execute(assign_query("pool", design, quotas=quotas, remaining=remaining)).df()
    con.close()
    frame.attrs["allocation"] = allocation
    return frame


@pytest.mark.parametrize("name", list(DESIGNS))
@pytest.mark.parametrize("string_ids", [False, True])
def test_portable_query_equals_assign(name, string_ids):
    design = DESIGNS[name]
    cohort = _cohort(string_ids=string_ids)
    want = assign(cohort, design)
    got = duckdb_portable(cohort, design)
    w = want.frame.assign(customer_id=want.frame["customer_id"].astype(str)).set_index(
        "customer_id").sort_index()
    g = got.set_index("customer_id").sort_index()
    assert len(g) == len(cohort)
    pd.testing.assert_frame_equal(g[["stratum", "arm"]], w[["stratum", "arm"]])
    assert got.attrs["allocation"] == want.allocation
    # every arm with a weight is used (the ANSI-off pitfall would put everyone in the last arm)
    assert set(g["arm"]) == ({a.name for a in design.arms if a.weight > 0}
                             | ({"holdout"} if design.holdout_share else set()))


def test_capacity_counts_existing():
    design = DESIGNS["stratified_holdout_capacity"]
    cohort = _cohort()
    existing = {"advisor": 100, "control": 40}
    got = duckdb_portable(cohort, design, existing)
    allocation = got.attrs["allocation"]
    advisor = (got["arm"] == "advisor").sum()
    assert advisor <= 80
    assert advisor == {a.arm: a.assigned for a in allocation.arms}["advisor"]
    existing_frame = pd.DataFrame({"customer_id": [-1 - i for i in range(140)],
                                   "arm": ["advisor"] * 100 + ["control"] * 40})
    want = assign(cohort, design, existing=existing_frame)
    assert allocation == want.allocation
