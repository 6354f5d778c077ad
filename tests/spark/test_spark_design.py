"""The Spark side of assign/export (engine/spark_design.py): an assignment made on Spark is
written as Parquet, read back by the store's DuckDB connection with the store's column types
and DuckDB's arms, and exported as contact lists per treatment arm."""

from __future__ import annotations

import pandas as pd
import pytest

import upliftlab as ul
from upliftlab.assign import Design, assign

DESIGN = Design.of("q1", {"control": 0.4, "coupon": 0.3, "advisor": 0.3}, strata=("tier",),
                   capacity={"advisor": 200}, holdout_share=0.05)


@pytest.fixture(scope="module")
def cohort():
    return ul.build_cohort(ul.simulate_world(3000, seed=7).transactions, "2026-01-05")


def test_spark_assignment_read_by_the_store_as_duckdb_assigned(engine, cohort, tmp_path):
    from upliftlab.engine.spark_design import assign_to_parquet
    from upliftlab.store import open_store

    pool = cohort[["customer_id", "tier"]]
    got = assign_to_parquet(engine, pool, DESIGN, tmp_path / "assignment")
    want = assign(pool, DESIGN)
    assert got.allocation == want.allocation
    assert got.counts == want.frame["arm"].value_counts().to_dict()
    with open_store(tmp_path / "s.duckdb") as store:
        store.ensure_schema()
        view = got.relation(store.con, "ul_spark_new")
        types = dict(store.con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {view})"
                                       ).fetchall())
        table = dict(store.con.execute("SELECT column_name, column_type FROM "
                                       "(DESCRIBE assignments)").fetchall())
        assert types == {c: table[c] for c in ("customer_id", "arm", "stratum")}
        rows = store.con.execute(f"SELECT customer_id, arm, stratum FROM {view} "
                                 "ORDER BY customer_id").df()
    w = want.frame.astype({"customer_id": str}).sort_values("customer_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(rows, w[["customer_id", "arm", "stratum"]])


def test_contact_lists_per_treatment_arm(engine, cohort, tmp_path):
    from upliftlab.engine.spark_design import assign_to_parquet, write_contacts_spark

    got = assign_to_parquet(engine, cohort[["customer_id", "tier"]], DESIGN, tmp_path / "a")
    paths = write_contacts_spark(got.path, tmp_path / "contacts", experiment="q1", version=1,
                                 treatment_arms=["coupon", "advisor"], engine=engine,
                                 cohort=cohort, features=["tier", "revenue_365d"])
    assert [p.rsplit("/", 1)[1] for p in paths] == [
        "q1_v1_coupon.parquet", "q1_v1_advisor.parquet", "q1_v1_assignment.parquet"]
    full = pd.read_parquet(paths[-1])
    assert len(full) == len(cohort) and set(full["arm"]) == {"control", "coupon", "advisor",
                                                             "holdout"}
    want = assign(cohort[["customer_id", "tier"]], DESIGN).frame.astype({"customer_id": str})
    for arm, path in zip(["coupon", "advisor"], paths):
        lst = pd.read_parquet(path)
        assert sorted(lst["customer_id"]) == sorted(want.loc[want["arm"] == arm, "customer_id"])
        assert list(lst.columns) == ["customer_id", "experiment", "version", "arm", "stratum",
                                     "tier", "revenue_365d"]
        assert (lst["experiment"] == "q1").all() and (lst["version"] == 1).all()
    # a folder export did not write is refused; nothing replaced
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    from upliftlab.errors import InputError

    with pytest.raises(InputError, match="did not write"):
        write_contacts_spark(got.path, tmp_path / "mine", experiment="q1", version=1,
                             treatment_arms=["coupon"], engine=engine)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
