"""The spec's cohort built on Spark (`spec_cohort_spark`) equals the one DuckDB builds
(`spec_cohort`) on the same simulated world, every column and every row: ids, dates, tiers,
value bands and counts exactly, money and ratios to 1e-9; for the dormant cohort with value bands
(quantile cuts and given thresholds), the at-risk cohort of a risk model (levels and a share),
and a ready table. Then `assign`, `export` and `report` with `--engine spark` build that cohort
on Spark (never DuckDB's) and record, write and report what DuckDB does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import upliftlab as ul
from _helpers import cli, spec_toml, three_arms
from upliftlab.engine.spark_cohort import spec_cohort_spark
from upliftlab.errors import InputError
from upliftlab.session import Session
from upliftlab.spec import load_spec
from upliftlab.spec_cohort import spec_cohort
from upliftlab.store import open_store

AS_OF = "2026-01-05"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A simulated world on disk (transactions, customers) and a churn-risk model fitted on it."""
    from upliftlab.risk import fit_risk, save_risk_model

    root = tmp_path_factory.mktemp("spark-cohort")
    w = ul.simulate_world(3000, seed=31)
    w.write(root / "world")
    fit = fit_risk(root / "world" / "transactions.parquet", "2025-11-06", horizon=60,
                   n_snapshots=2, every=30, n_bootstrap=10, seed=1)
    save_risk_model(fit, root / "risk-model", report=False)
    rng = np.random.default_rng(5)  # purchases after the campaign start, for the report
    ids = rng.choice(w.transactions["customer_id"].unique(), 1500)
    pd.DataFrame({"customer_id": ids,
                  "ts": (pd.Timestamp(AS_OF) + pd.to_timedelta(
                      rng.integers(0, 60 * 86400, len(ids)), unit="s")).astype("datetime64[us]"),
                  "amount": rng.gamma(2.0, 30.0, len(ids)).round(2)}).to_parquet(
        root / "post.parquet", index=False)
    return root


COHORTS = {
    "dormant-quantile-bands": {"transactions": "world/transactions.parquet", "as_of": AS_OF},
    "dormant-threshold-bands": {"transactions": "world/transactions.parquet", "as_of": AS_OF,
                                "tiers": "short=200,long"},
    "at-risk-levels": {"kind": "at_risk", "transactions": "world/transactions.parquet",
                       "model": "risk-model", "as_of": AS_OF, "min_level": "medium"},
    "at-risk-share": {"kind": "at_risk", "transactions": "world/transactions.parquet",
                      "model": "risk-model", "as_of": AS_OF, "share": 0.3},
}
BANDS = {"dormant-quantile-bands": {"column": "revenue_365d", "quantiles": [0.25, 0.5, 0.75]},
         "dormant-threshold-bands": {"column": "revenue_730d", "thresholds": [40.0, 120.0]},
         "at-risk-levels": {"column": "revenue_365d"},
         "at-risk-share": {"column": "avg_order_value", "quantiles": [0.5]}}


def write_spec(root: Path, case: str, name: str = "exp", engine: str | None = None) -> Path:
    path = root / f"{name}-{case}.toml"
    path.write_text(spec_toml(
        name, f"salt-{case}", outcome_window_days=60, strata=["tier", "value_band"],
        covariates=["revenue_365d", "orders_730d"], engine=engine, cohort=COHORTS[case],
        arms=three_arms(advisor_capacity=60),
        tables={"value_band": BANDS[case], "outcomes": {"transactions": "post.parquet"},
                "holdout": {"share": 0.05}}))
    return path


def assert_same_frame(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Every column and row: the same names in order; ints, text and dates exactly; floats to
    1e-9 (relative; sums of money are added in another order on Spark), NULL where NULL."""
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want) > 0
    got = got.sort_values("customer_id").reset_index(drop=True)
    want = want.sort_values("customer_id").reset_index(drop=True)
    for col in want.columns:
        w, g = want[col], got[col]
        assert (g.isna() == w.isna()).all(), col
        if pd.api.types.is_float_dtype(w):
            assert np.allclose(g.astype(float), w, rtol=1e-9, atol=1e-12, equal_nan=True), col
        elif pd.api.types.is_datetime64_any_dtype(w) or col.endswith("_purchase"):
            assert (pd.to_datetime(g) == pd.to_datetime(w)).all(), col
        elif pd.api.types.is_integer_dtype(w):
            assert g.astype("int64").tolist() == w.astype("int64").tolist(), col
        else:
            assert g.astype(str).tolist() == w.astype(str).tolist(), col


@pytest.mark.parametrize("case", list(COHORTS))
def test_spec_cohort_on_spark_equals_duckdb(engine, world, case):
    spec = load_spec(write_spec(world, case))
    with Session() as session:
        handle = spec_cohort(session, spec)
        want = handle.relation().df()
    cohort = spec_cohort_spark(engine, spec)
    try:
        got = cohort.frame.toPandas()
        assert cohort.columns == tuple(want.columns)
        assert cohort.where == handle.where
    finally:
        cohort.drop()
    assert_same_frame(got, want)
    # the strata are what the arms hang on: the same customers in each, exactly
    strata = want.groupby(["tier", "value_band"]).size()
    assert (got.groupby(["tier", "value_band"]).size() == strata).all()
    assert want["value_band"].nunique() >= 2
    # nothing left behind on the session
    assert not [t.name for t in engine.spark.catalog.listTables() if t.isTemporary
                and t.name.startswith(("ul_spark_cohort", "ul_spark_risk"))]


def test_spec_cohort_on_spark_checks_as_duckdb(engine, world):
    """A bad spec or cohort is the same one-line error on either engine."""
    base = write_spec(world, "dormant-quantile-bands").read_text()
    bad = {
        "covariate-text": base.replace('covariates = ["revenue_365d", "orders_730d"]',
                                       'covariates = ["tier"]'),
        "band-column": base.replace('column = "revenue_365d"', 'column = "no_such"'),
        "empty": base.replace('as_of = "2026-01-05"', 'as_of = "2026-01-05"\n'
                              'dormant_after = 5000\ntiers = "long"'),
    }
    # a ready table with a repeated id: refused after its value bands are made
    pd.DataFrame({"customer_id": [1, 2, 2, 3], "tier": ["short", "mid", "mid", "long"],
                  "revenue_365d": [10.0, 50.0, 50.0, 90.0], "orders_730d": [1, 2, 2, 3]}
                 ).to_parquet(world / "dups.parquet", index=False)
    bad["duplicate-ids"] = base.replace('transactions = "world/transactions.parquet"',
                                        'table = "dups.parquet"')
    for name, text in bad.items():
        path = world / f"bad-{name}.toml"
        path.write_text(text)
        spec = load_spec(path)
        with Session() as session, pytest.raises(Exception) as duck:
            spec_cohort(session, spec)
        with pytest.raises(Exception) as spark:
            spec_cohort_spark(engine, spec)
        assert type(spark.value) is type(duck.value), name
        assert str(spark.value) == str(duck.value), name
    csv = world / "bad-csv.toml"
    csv.write_text(base.replace("world/transactions.parquet", "world/transactions.csv"))
    with pytest.raises(InputError, match="^.*: engine spark reads Parquet transactions"):
        spec_cohort_spark(engine, load_spec(csv))
    # a refused cohort leaves nothing behind on the session
    assert not [t.name for t in engine.spark.catalog.listTables() if t.isTemporary
                and t.name.startswith(("ul_spark_cohort", "ul_spark_risk"))]


def _not_on_duckdb(*args, **kwargs):
    raise AssertionError("the spec's cohort was built on DuckDB under --engine spark")


def _stored(path: Path) -> dict:
    """The store's assignments and allocations (test_spark_commands.stored), and its checks."""
    from test_spark_commands import stored

    with open_store(path, read_only=True) as store:
        checks = store.con.execute("SELECT kind, scope, statistic, p_value, ok FROM checks "
                                   "ORDER BY kind, scope, details").fetchall()
    return {**stored(path), "checks": checks}


def _same_checks(got: list, want: list) -> None:
    assert len(got) == len(want) > 0
    for g, w in zip(got, want):
        assert g[:2] == w[:2] and g[4] == w[4], (g, w)
        assert np.isclose(g[2], w[2], rtol=1e-9, atol=1e-12), (g, w)
        assert (g[3] is None and w[3] is None) or np.isclose(g[3], w[3], rtol=1e-9,
                                                             atol=1e-12), (g, w)


@pytest.mark.parametrize("case", ["dormant-quantile-bands", "at-risk-levels"])
def test_assign_export_report_on_spark_equal_duckdb(spark, world, tmp_path, capsys, case,
                                                    monkeypatch):
    """With --engine spark the cohort is built on Spark only; the stored arms, strata, batches
    and allocations are DuckDB's exactly, the checks to 1e-9; the contact lists hold the same
    rows; report.json has the same counts, and its numbers agree to 1e-9."""
    from test_spark_commands import _numbers

    for f in ("world", "risk-model", "post.parquet"):
        (tmp_path / f).symlink_to(world / f)
    duck, on_spark = write_spec(tmp_path, case), write_spec(tmp_path, case, engine="spark")
    d_store, s_store = tmp_path / "d.duckdb", tmp_path / "s.duckdb"
    printed, bodies, lists = {}, {}, {}
    for name, spec, store in (("duckdb", duck, d_store), ("spark", on_spark, s_store)):
        with monkeypatch.context() as m:
            if name == "spark":  # never DuckDB's cohort, assignment or outcomes on Spark
                m.setattr("upliftlab.spec_cohort.spec_cohort", _not_on_duckdb)
                m.setattr("upliftlab.assignment.experiment.assign_sql", _not_on_duckdb)
                m.setattr("upliftlab.outcomes.spec_outcomes", _not_on_duckdb)
            code, out, err = cli(capsys, "assign", spec, "--store", store)
            assert code == 0, err
            printed[name] = out
            code, out, err = cli(capsys, "export", spec, "--store", store, "--out",
                                 tmp_path / f"lists-{name}", "--format", "parquet")
            assert code == 0, err
            lists[name] = {p.name: pd.read_parquet(p).sort_values("customer_id")
                           .reset_index(drop=True)
                           for p in sorted((tmp_path / f"lists-{name}").glob("exp_v1_*"))}
            rep = tmp_path / f"rep-{name}"
            code, out, err = cli(capsys, "report", spec, "--as-of", "2026-02-10", "--store",
                                 store, "--out", rep)
            assert code == 0, err
            printed[name] += out.replace(str(rep), "OUT")
            bodies[name] = json.loads((rep / "report.json").read_text())
    d, s = _stored(d_store), _stored(s_store)
    assert s["assignments"] == d["assignments"] and s["allocations"] == d["allocations"]
    assert len(d["assignments"]) > 200
    assert len({r[4].split("value_band=")[-1] for r in d["assignments"]
                if "value_band=" in r[4]}) >= 2
    _same_checks(s["checks"], d["checks"])
    assert printed["spark"] == printed["duckdb"]
    assert list(lists["spark"]) == list(lists["duckdb"])
    for f, want in lists["duckdb"].items():
        got = lists["spark"][f]
        assert list(got.columns) == list(want.columns), f
        money = [c for c in want.columns if c.startswith(("revenue_", "avg_order_value"))]
        # a sum added in another order may round to the other cent at a half cent
        assert np.allclose(got[money], want[money], rtol=0, atol=0.0100001), f
        pd.testing.assert_frame_equal(got.drop(columns=money), want.drop(columns=money),
                                      check_dtype=False)
    assert [a["n"] for a in bodies["spark"]["arms"]] == [a["n"] for a in bodies["duckdb"]["arms"]]
    _numbers(bodies["duckdb"], bodies["spark"])
