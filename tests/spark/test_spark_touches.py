"""The worked experiment (experiments/reactivation_2026q1.toml: tiers, value bands by quantile,
capacity, the global holdout, a touch log) run with `--engine spark` end to end: `assign` stores
DuckDB's arms, and `report` (cohort, outcomes, statistics and the touch section: funnel, the
effects on the reached) writes DuckDB's report.json, counts exactly and numbers to 1e-9."""

from __future__ import annotations

import json
from pathlib import Path

from _helpers import cli
from upliftlab.store import open_store

ROOT = Path(__file__).resolve().parents[2]


def _assignments(path: Path) -> list:
    with open_store(path, read_only=True) as store:
        return store.con.execute("SELECT customer_id, arm, stratum, batch FROM assignments "
                                 "ORDER BY customer_id").fetchall()


def test_worked_experiment_with_touches_on_spark_equals_duckdb(spark, tmp_path, capsys,
                                                                monkeypatch):
    from test_spark_commands import _numbers

    views_before = _temp_views(spark)
    world = tmp_path / "world"
    assert cli(capsys, "simulate", "--n-customers", "4000", "--seed", "3", "--out", world)[0] == 0
    text = (ROOT / "experiments" / "reactivation_2026q1.toml").read_text()
    spec = tmp_path / "exp.toml"
    spec.write_text(text.replace("../reports/demo/world/", "world/")
                    .replace("capacity = 5000", "capacity = 150"))
    stores = {e: tmp_path / f"{e}.duckdb" for e in ("duckdb", "spark")}
    printed = {}
    for engine, store in stores.items():
        flag = ["--engine", "spark"] if engine == "spark" else []
        code, out, err = cli(capsys, "assign", spec, "--store", store, *flag)
        assert code == 0, err
        printed[engine] = out
    assert printed["spark"] == printed["duckdb"]
    assert _assignments(stores["spark"]) == _assignments(stores["duckdb"])
    assert len(_assignments(stores["duckdb"])) > 500
    code, _, err = cli(capsys, "respond", "--world", world, "--store", stores["duckdb"],
                       "--experiment", "reactivation_2026q1", "--out",
                       world / "transactions_post.parquet", "--touches",
                       world / "touches.parquet")
    assert code == 0, err

    def _not_on_duckdb(*args, **kwargs):
        raise AssertionError("DuckDB ran a step of report --engine spark")

    bodies = {}
    for engine, store in stores.items():
        flag = ["--engine", "spark"] if engine == "spark" else []
        out = tmp_path / f"rep-{engine}"
        with monkeypatch.context() as m:
            if engine == "spark":
                m.setattr("upliftlab.spec_cohort.spec_cohort", _not_on_duckdb)
                m.setattr("upliftlab.outcomes.spec_outcomes", _not_on_duckdb)
            code, text, err = cli(capsys, "report", spec, "--as-of", "2026-02-16", "--store",
                                  store, "--out", out, *flag)
        assert code == 0, err
        printed[engine] = text.replace(str(out), "OUT")
        bodies[engine] = json.loads((out / "report.json").read_text())
    assert printed["spark"] == printed["duckdb"]
    d, s = bodies["duckdb"], bodies["spark"]
    touches = d["touches"]
    assert touches and touches["funnel"] and touches["effects"], sorted(d)
    assert {a["name"]: a["n"] for a in s["arms"]} == {a["name"]: a["n"] for a in d["arms"]}
    _numbers(d, s)
    # the commands leave nothing behind on the session (other tests' views may be there)
    assert _temp_views(spark) <= views_before


def _temp_views(spark) -> set[str]:
    return {t.name for t in spark.catalog.listTables() if t.isTemporary}
