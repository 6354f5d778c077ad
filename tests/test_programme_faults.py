"""Bad input to `upliftlab programme`: exit 2, one line `error: ...`, no output folder, the
store exactly as it was; and the documented handlings (censoring at the data's end, an
experiment without a holdout left out with a stated line)."""

from __future__ import annotations

import json

import pytest

from _helpers import AS_OF, cli, spec_toml, two_arms
from upliftlab.cli import main
from upliftlab.store import open_store



def spec(name: str, share: float) -> str:
    return spec_toml(name, f"{name}-salt", version=1, outcome_window_days=60,
                     covariates=["revenue_365d"], strata=["tier"], mde=0.02,
                     cohort={"transactions": "world/transactions.parquet", "as_of": AS_OF},
                     arms=two_arms("content", cost_per_contact=0.01),
                     tables={"baseline": {"rates": {"short": 0.05, "mid": 0.03, "long": 0.01}},
                             "holdout": {"share": share}})


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from upliftlab.lifecycle_sim import respond_long_run
    from upliftlab.simulate import simulate_world, write_transactions

    d = tmp_path_factory.mktemp("faults")
    world = simulate_world(6_000, seed=2)
    world.write(d / "world")
    (d / "with.toml").write_text(spec("with_holdout", 0.2))
    (d / "without.toml").write_text(spec("no_holdout", 0.0))
    for args in (("with.toml", "both.duckdb"), ("without.toml", "both.duckdb"),
                 ("without.toml", "none.duckdb")):
        try:
            main(["assign", str(d / args[0]), "--store", str(d / args[1])])
        except SystemExit as exc:
            assert not exc.code
    with open_store(d / "both.duckdb", read_only=True) as store:
        a = store.con.execute("SELECT DISTINCT CAST(customer_id AS BIGINT) AS customer_id, arm "
                              "FROM assignments WHERE experiment = 'with_holdout'").df()
    write_transactions(respond_long_run(world, a, seed=1, horizon_days=200),
                       d / "world" / "after.parquet")
    return d


def dump(path):
    with open_store(path, read_only=True) as store:
        return store.dump()


def tx(d):
    return ["--transactions", d / "world" / "transactions.parquet",
            "--transactions", d / "world" / "after.parquet"]


def refused(capsys, d, store, *args, match: str) -> None:
    before = dump(store) if store.exists() else None
    out = d / "out-refused"
    code, _, err = cli(capsys, "programme", "--store", store, *args, "--out", out)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], err
    assert "Traceback" not in err
    assert not out.exists()
    assert (dump(store) if store.exists() else None) == before


@pytest.mark.slow
def test_store_with_no_experiments(capsys, project):
    from upliftlab.sources import connect

    empty = project / "empty.duckdb"
    connect(str(empty)).close()
    refused(capsys, project, empty, "--as-of", "2026-06-01", *tx(project),
            match="holds no experiments")
    refused(capsys, project, project / "missing.duckdb", "--as-of", "2026-06-01", *tx(project),
            match="does not exist")
    assert not (project / "missing.duckdb").exists()


@pytest.mark.slow
def test_experiment_without_the_holdout(capsys, project):
    refused(capsys, project, project / "none.duckdb", "--as-of", "2026-06-01", *tx(project),
            match="no experiment in the store has a global holdout")
    # beside one with a holdout: left out of the holdout view, with a stated line
    out = project / "out-both"
    code, _, err = cli(capsys, "programme", "--store", project / "both.duckdb", "--as-of",
                       "2026-06-01", *tx(project), "--out", out)
    assert code == 0, err
    r = json.loads((out / "report.json").read_text())
    assert any("Left out of the holdout view (no global holdout): no_holdout." == n
               for n in r["notes"])
    assert {e["name"] for e in r["experiments"]} == {"with_holdout", "no_holdout"}


@pytest.mark.slow
def test_horizon_longer_than_the_data(capsys, project):
    store = project / "both.duckdb"
    # nothing after the campaign start yet
    refused(capsys, project, store, "--as-of", "2026-01-05", *tx(project),
            match="before the first campaign start 2026-01-05")
    # --as-of beyond the data: censored at the data's end, said so, 365 days not covered
    out = project / "out-late"
    code, _, err = cli(capsys, "programme", "--store", store, "--as-of", "2027-06-01",
                       *tx(project), "--out", out)
    assert code == 0, err
    r = json.loads((out / "report.json").read_text())
    end = r["data_end"]
    assert end < "2026-07-25" and any(f"everything is censored at {end}" in n
                                      for n in r["notes"])
    lr = {x["experiment"]: x for x in r["long_run"]}["with_holdout"]
    assert lr["horizons_not_covered"] == [365] and lr["censored_at"] == end


@pytest.mark.slow
def test_bad_arguments(capsys, project):
    store = project / "both.duckdb"
    refused(capsys, project, store, "--as-of", "2026-13-01", *tx(project), match="--as-of")
    refused(capsys, project, store, "--as-of", "2026-06-01", "--transactions",
            project / "nope.parquet", match="nope.parquet")
    bad = project / "bad.csv"
    bad.write_text("customer_id,when,amount\n1,2026-02-01,3.0\n")
    refused(capsys, project, store, "--as-of", "2026-06-01", "--transactions", bad,
            match="missing column 'ts'")
    refused(capsys, project, store, "--as-of", "2026-06-01", *tx(project), "--customers", bad,
            match="missing column 'channel'")
    # an output folder that holds other files is left alone
    busy = project / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("keep me")
    code, _, err = cli(capsys, "programme", "--store", store, "--as-of", "2026-06-01",
                       *tx(project), "--out", busy)
    assert code == 2 and err.startswith("error: ") and "did not write" in err
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]


def test_respond_long_run_bad_input(capsys, project):
    store = project / "both.duckdb"
    for args, match in (
            (("--experiment", "nope", "--out", project / "lr.parquet"), "is not in"),
            (("--experiment", "with_holdout", "--out", project / "lr.txt"), "unknown output type"),
            (("--experiment", "with_holdout", "--days", "0", "--out", project / "lr.parquet"),
             "--days must be at least 1")):
        before = dump(store)
        code, _, err = cli(capsys, "respond-long-run", "--world", project / "world", "--store",
                           store, *args)
        assert code == 2 and err.startswith("error: ") and match in err, err
        assert len(err.strip().splitlines()) == 1
        assert dump(store) == before and not (project / "lr.parquet").exists()
    code, _, err = cli(capsys, "respond-long-run", "--world", project / "nowhere", "--store",
                       store, "--experiment", "with_holdout", "--out", project / "lr.parquet")
    assert code == 2 and "no such world directory" in err
