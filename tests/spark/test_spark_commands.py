"""`assign` with `--engine spark` (or the spec's `engine = "spark"`) records in the store what
DuckDB records: the same arms, strata, batches and allocations, late joiners included, and
prints the same counts and checks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _helpers import cli, spec_toml
from upliftlab.store import open_store

def spec(engine: str | None = None) -> str:
    """The assignment spec; `engine` (e.g. "spark") sets the spec's engine key."""
    return spec_toml(
        "exp", "spark-commands", version=1, strata=["tier", "value_band"],
        covariates=["revenue_365d"], mde=0.02, engine=engine,
        cohort={"table": "cohort.parquet", "as_of": dt.date(2026, 1, 5)},
        arms=[{"name": "control", "weight": 0.4, "control": True},
              {"name": "coupon", "weight": 0.3},
              {"name": "advisor", "weight": 0.3, "capacity": 250}],
        tables={"value_band": {"column": "revenue_365d", "thresholds": [50.0, 150.0]},
                "holdout": {"share": 0.05}})


def make_cohort(n: int, seed: int = 0, start: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": np.arange(start, start + n, dtype="int64"),
        "tier": rng.choice(["short", "mid", "long"], n),
        "revenue_365d": rng.gamma(2.0, 50.0, n),
    })


def stored(path: Path) -> dict:
    with open_store(path, read_only=True) as store:
        con = store.con
        return {
            "assignments": con.execute(
                "SELECT experiment, version, customer_id, arm, stratum, batch, method_version "
                "FROM assignments ORDER BY customer_id").fetchall(),
            "allocations": con.execute(
                "SELECT * EXCLUDE (assigned_at) FROM allocations ORDER BY batch, arm"
            ).fetchall(),
        }


def _not_on_spark(*args, **kwargs):
    raise AssertionError("the DuckDB path ran under --engine spark")


@pytest.mark.parametrize("how", ["flag", "spec"])
def test_assign_engine_spark_records_duckdb_arms(spark, tmp_path, capsys, how, monkeypatch):
    make_cohort(2000).to_parquet(tmp_path / "cohort.parquet")
    (tmp_path / "duck.toml").write_text(spec())
    (tmp_path / "spark.toml").write_text(spec("spark" if how == "spec" else None))
    flag = ["--engine", "spark"] if how == "flag" else []
    outs = {}
    for rnd in range(3):  # the first run, late joiners, a re-run with nothing new
        if rnd == 1:
            pd.concat([make_cohort(2000), make_cohort(600, seed=1, start=5000)]).to_parquet(
                tmp_path / "cohort.parquet")
        code, d_out, err = cli(capsys, "assign", tmp_path / "duck.toml",
                               "--store", tmp_path / "d.duckdb")
        assert code == 0, err
        with monkeypatch.context() as m:  # never DuckDB's assignment on Spark
            m.setattr("upliftlab.assignment.experiment.assign_sql", _not_on_spark)
            code, s_out, err = cli(capsys, "assign", tmp_path / "spark.toml",
                                   "--store", tmp_path / "s.duckdb", *flag)
        assert code == 0, err
        assert s_out == d_out
        outs[rnd] = s_out
        d, s = stored(tmp_path / "d.duckdb"), stored(tmp_path / "s.duckdb")
        assert s == d
    assert len(d["assignments"]) == 2600
    assert {r[5] for r in d["assignments"]} == {1, 2}
    assert {r[3] for r in d["assignments"]} == {"control", "coupon", "advisor", "holdout"}
    assert "no new customers" in outs[2]
    # nothing staged is left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cohort.parquet", "d.duckdb", "duck.toml", "s.duckdb", "spark.toml"]


def test_export_engine_spark_writes_duckdb_lists(spark, tmp_path, capsys):
    """The same files (a folder of parts each on Spark), rows, columns and column types."""
    make_cohort(1500).to_parquet(tmp_path / "cohort.parquet")
    (tmp_path / "exp.toml").write_text(spec())
    store = tmp_path / "s.duckdb"
    assert cli(capsys, "assign", tmp_path / "exp.toml", "--store", store)[0] == 0
    printed, frames = {}, {}
    for engine in ("duckdb", "spark"):
        out = tmp_path / f"out_{engine}"
        args = ["--engine", "spark"] if engine == "spark" else ["--format", "parquet"]
        code, text, err = cli(capsys, "export", tmp_path / "exp.toml", "--store", store,
                              "--out", out, *args)
        assert code == 0, err
        printed[engine] = text.replace(str(out), "OUT")
        frames[engine] = {p.name: pd.read_parquet(p).sort_values("customer_id")
                          .reset_index(drop=True) for p in sorted(out.glob("exp_v1_*"))}
    assert printed["spark"] == printed["duckdb"]
    d, s = frames["duckdb"], frames["spark"]
    assert list(s) == list(d) == ["exp_v1_advisor.parquet", "exp_v1_assignment.parquet",
                                  "exp_v1_coupon.parquet"]
    assert len(d["exp_v1_assignment.parquet"]) == 1500
    for name in d:
        pd.testing.assert_frame_equal(s[name], d[name], check_dtype=False)
        assert [str(t) for t in s[name].dtypes] == [str(t) for t in d[name].dtypes], name
    # CSV is DuckDB's: on Spark, exit 2 and what to do
    code, _, err = cli(capsys, "export", tmp_path / "exp.toml", "--store", store, "--out",
                       tmp_path / "csv", "--format", "csv", "--engine", "spark")
    assert code == 2 and "use --format parquet" in err and not (tmp_path / "csv").exists()


def report_spec(engine: str | None = None) -> str:
    """The weekly-report spec; `engine` (e.g. "spark") sets the spec's engine key."""
    return spec_toml(
        "wb", "spark-report", version=1, outcome_window_days=60,
        covariates=["revenue_365d", "orders_730d"], strata=["tier"], engine=engine,
        cohort={"transactions": "tx.parquet", "as_of": dt.date(2026, 1, 5)},
        arms=[{"name": "control", "weight": 0.5, "control": True},
              {"name": "coupon", "weight": 0.25, "cost_per_contact": 0.1,
               "cost_per_conversion": 10.0},
              {"name": "advisor", "weight": 0.25, "cost_per_contact": 4.0}],
        tables={"outcomes": {"transactions": "post.parquet"},
                "metrics": {"primary": "reactivation", "secondary": ["revenue", "orders"]},
                "holdout": {"share": 0.05}})


def _numbers(a, b, path="report"):
    """report.json of DuckDB (a) and Spark (b): the same keys, texts and counts, numbers to
    1e-9 (relative)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), path
        for k in a:
            _numbers(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _numbers(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and not isinstance(a, bool):
        assert isinstance(b, (int, float)) and np.isclose(a, b, rtol=1e-9, atol=1e-12), \
            (path, a, b)
    else:
        assert a == b, (path, a, b)


@pytest.mark.parametrize("how", ["flag", "spec"])
def test_report_engine_spark_same_numbers(spark, tmp_path, capsys, how, monkeypatch):
    """Outcomes and the per-arm sums on Spark; report.json the same numbers as DuckDB's."""
    import json

    import upliftlab as ul

    world = ul.simulate_world(2500, seed=21)
    world.transactions.to_parquet(tmp_path / "tx.parquet", index=False)
    rng = np.random.default_rng(5)
    ids = rng.choice(world.transactions["customer_id"].unique(), 700)
    pd.DataFrame({"customer_id": ids,
                  "ts": (pd.Timestamp("2026-01-05") + pd.to_timedelta(
                      rng.integers(0, 60 * 86400, len(ids)), unit="s")).astype("datetime64[us]"),
                  "amount": rng.gamma(2.0, 30.0, len(ids)).round(2)}).to_parquet(
        tmp_path / "post.parquet", index=False)
    (tmp_path / "duck.toml").write_text(report_spec())
    (tmp_path / "spark.toml").write_text(report_spec("spark" if how == "spec" else None))
    flag = ["--engine", "spark"] if how == "flag" else []
    printed, bodies = {}, {}
    for name, extra in (("duck", []), ("spark", flag)):
        store = tmp_path / f"{name}.duckdb"
        assert cli(capsys, "assign", tmp_path / "duck.toml", "--store", store)[0] == 0
        if name == "spark":  # never DuckDB's outcomes on Spark
            monkeypatch.setattr("upliftlab.outcomes.spec_outcomes", _not_on_spark)
        out = tmp_path / f"rep_{name}"
        code, text, err = cli(capsys, "report", tmp_path / f"{name}.toml", "--as-of",
                              "2026-02-10", "--store", store, "--out", out, *extra)
        assert code == 0, err
        printed[name] = text.replace(str(out), "OUT")
        bodies[name] = json.loads((out / "report.json").read_text())
    assert printed["spark"] == printed["duck"]
    d, s = bodies["duck"], bodies["spark"]
    assert {a["name"]: a["n"] for a in d["arms"]} == {a["name"]: a["n"] for a in s["arms"]}
    assert sum(a["n"] for a in d["arms"]) > 100
    _numbers(d, s)
