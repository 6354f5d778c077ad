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


def _same(a, b, path=""):
    """Equal JSON-like values, floats to 1e-9 (sums in another order)."""
    import math

    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (path, a, b)
    else:
        assert a == b, (path, a, b)


def test_long_runs_equal_the_standalone_long_run(project):
    """The programme reads the transactions once for every experiment; each experiment's long
    run from those shared reads equals `long_run` on that experiment alone (its own reads).
    The two experiments get disjoint halves of the customers here, so the one without a
    holdout (left out of the holdout view) has purchases of its own to read."""
    import datetime as dt

    import pandas as pd

    from upliftlab.longrun import long_run
    from upliftlab.programme import Experiment, programme
    from upliftlab.sources import register

    d = project
    tx_all = pd.concat([pd.read_parquet(d / "world" / "transactions.parquet"),
                        pd.read_parquet(d / "world" / "after.parquet")], ignore_index=True)
    as_of = dt.date(2026, 7, 1)
    with open_store(d / "both.duckdb", read_only=True) as store:
        found = store.experiment_specs()
        exps = [Experiment.from_spec(f["name"], f["version"], f["spec"]) for f in found]
        full = store.programme_assignments_sql([(e.name, e.version) for e in exps])
        half = (f"SELECT * FROM ({full}) WHERE (experiment = 'with_holdout') = "
                "(CAST(customer_id AS BIGINT) % 2 = 0)")
        register(store.con, tx_all, "tx")
        res = programme(store.con, half, "tx", exps, as_of=as_of)
        assigned = store.con.execute(half).df()
    runs = {r["experiment"]: r for r in res.long_run}
    assert set(runs) == {"with_holdout", "no_holdout"}

    for e in exps:
        a = assigned[assigned["experiment"] == e.name]
        alone = long_run(a[["customer_id", "arm", "tier"]], tx_all, start=e.start, end=as_of,
                         window_days=e.window_days, control=e.control, experiment=e.name,
                         costs=e.costs, dormant_after=e.dormant_after).to_dict()
        _same(runs[e.name], alone)
        # both halves bought after the start: the long run is read, not empty
        back = runs[e.name]["survival"]["back"]["curves"]
        assert sum(c["events"] for c in back.values()) > 0


def test_integer_ids_join_as_their_text(project):
    """Transactions with integer customer ids are joined on integers (faster); the numbers equal
    those of the same transactions with text ids, and a stored id that is not an integer's own
    spelling ('007') matches no purchase in either, as text comparison says."""
    import datetime as dt

    import pandas as pd

    from upliftlab.programme import Experiment, programme
    from upliftlab.sources import register

    d = project
    tx = pd.concat([pd.read_parquet(d / "world" / "transactions.parquet"),
                    pd.read_parquet(d / "world" / "after.parquet")], ignore_index=True)
    tx = tx[["customer_id", "ts", "amount"]]
    with open_store(d / "both.duckdb", read_only=True) as store:
        found = store.experiment_specs()
        exps = [Experiment.from_spec(f["name"], f["version"], f["spec"]) for f in found]
        full = store.programme_assignments_sql([(e.name, e.version) for e in exps])
        some = store.con.execute(f"SELECT min(customer_id) FROM ({full})").fetchall()[0][0]
        padded = (f"SELECT experiment, CASE WHEN customer_id = '{some}' THEN '00{some}' ELSE "
                  f"customer_id END AS customer_id, arm, tier FROM ({full})")
        results = []
        for kind, frame in (("int", tx), ("text", tx.astype({"customer_id": str}))):
            register(store.con, frame, f"tx_{kind}")
            results.append(programme(store.con, padded, f"tx_{kind}", exps,
                                     as_of=dt.date(2026, 7, 1)).to_dict())
    # (had the padded id been read as the integer it spells, it would have purchases in the
    # integer run only, and the numbers would differ)
    _same(results[0], results[1])
    assert results[0]["monthly"][-1]["customers"] > 0
