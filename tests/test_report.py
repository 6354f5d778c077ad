"""The report folder: three files, self-contained HTML, atomic replace, and the CLI's bad input."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from upliftlab.analysis import analyze
from upliftlab.errors import InputError
from upliftlab.report import render_markdown, write_report

from _helpers import AS_OF, RATES, cli_process, spec_toml, two_arms
from test_analyze import make_experiment


@pytest.fixture(scope="module")
def data():
    return make_experiment(n=6000, seed=50)


@pytest.fixture(scope="module")
def result(data):
    return analyze(data, arm="arm", control="control", metrics=["reactivated", "revenue"],
                   segments=["tier"], covariates=["pre_spend"],
                   costs={"coupon": (0.5, 10.0), "content": (0.2, 0.0)},
                   experiment="winback", as_of="2026-03-02", planned_n=20000)


def test_writes_three_files_with_report_json(result, tmp_path):
    out = write_report(result, tmp_path / "r")
    # the three reports and the marker that says `report` owns the folder (and their sha256)
    assert sorted(p.name for p in out.iterdir()) == [".upliftlab.json", "report.html",
                                                     "report.json", "report.md"]
    marker = json.loads((out / ".upliftlab.json").read_text())
    assert marker["owner"] == "report" and sorted(marker["files"]) == ["report.html",
                                                                      "report.json", "report.md"]
    d = json.loads((out / "report.json").read_text())
    assert d == json.loads(json.dumps(result.to_dict()))
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


@pytest.mark.slow
def test_html_is_self_contained_and_says_it_in_words(result, tmp_path):
    out = write_report(result, tmp_path / "r")
    html = (out / "report.html").read_text()
    assert "<script" not in html and "<link" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert html.count("<svg") >= 3  # forest, cost, segments
    assert "always-valid" in html
    assert re.search(r"coupon: reactivated \d+\.\d+% vs \d+\.\d+% in control: [+-]\d", html)
    assert "so far" not in html and "Trend" not in html  # a --data report: no campaign words
    for section in ("Lift per arm and metric", "Cost per incremental reactivation", "Segments", "Sample ratio and balance",
                    "Method"):
        assert section in html
    assert "Cochran" in html and "pre_spend" in html


@pytest.mark.slow
def test_trend_from_history(data, result, tmp_path):
    history = []
    for week, frac in enumerate((0.25, 0.5, 0.75), start=1):
        sub = data.iloc[: int(len(data) * frac)]
        history.append(analyze(sub, arm="arm", control="control",
                               metrics=["reactivated", "revenue"], planned_n=20000,
                               as_of=f"2026-02-{week * 7:02d}").to_dict())
    out = write_report(result, tmp_path / "r", history=history)
    d = json.loads((out / "report.json").read_text())
    assert [h["as_of"] for h in d["history"]] == ["2026-02-07", "2026-02-14", "2026-02-21"]
    html = (out / "report.html").read_text()
    assert "the trend appears from the second weekly report" not in html
    assert "weekly always-valid looks" in html
    md = (out / "report.md").read_text()
    assert "| 2026-02-14 | sequential | coupon |" in md


def test_unbounded_cost_is_said_in_words(tmp_path):
    df = make_experiment(n=3000, seed=41, effects=(0.0, 0.0, 0.002))
    res = analyze(df, arm="arm", control="control", metrics=["reactivated"], analysis="fixed",
                  costs={"coupon": (0.5, 10.0)})
    md = render_markdown(res)
    assert "unbounded" in md and "cannot be told from zero" in md


@pytest.mark.slow
def test_replaces_an_earlier_report_but_not_a_foreign_folder(result, tmp_path):
    out = tmp_path / "r"
    write_report(result, out)
    (out / "report.md").write_text("old")
    write_report(result, out)
    assert (out / "report.md").read_text() != "old"
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="holds files that `upliftlab report` did not write"):
        write_report(result, foreign)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def run(*args: str) -> subprocess.CompletedProcess:
    return cli_process("report", *args)


@pytest.fixture(scope="module")
def csv_path(data, tmp_path_factory):
    p = tmp_path_factory.mktemp("d") / "exp.csv"
    d = data.copy()
    d.loc[d.index[:5], "pre_orders"] = None
    d.to_csv(p, index=False)
    return p


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (["--control", "nobody", "--metric", "reactivated"], "control 'nobody' is not a value"),
    (["--control", "control", "--metric", "tier"], "metric column 'tier' is not numeric"),
    (["--control", "control", "--metric", "reactivated", "--cost", "voucher=1:2"],
     "cost given for unknown arm 'voucher'"),
    (["--control", "control", "--metric", "reactivated", "--cost", "coupon=x"],
     "expected ARM=PER_CONTACT[:PER_CONVERSION]"),
    (["--control", "control", "--metric", "pre_orders"], "'pre_orders' has 5 missing values"),
    (["--control", "control"], "missing --metric"),
])
def test_cli_bad_input_exit_2_one_line_no_output(csv_path, tmp_path, args, message):
    out = tmp_path / "out"
    proc = run("--data", str(csv_path), "--arm-col", "arm", "--out", str(out), *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_cli_one_arm_and_missing_file(tmp_path, data):
    one = tmp_path / "one.csv"
    data[data.arm == "coupon"].to_csv(one, index=False)
    proc = run("--data", str(one), "--arm-col", "arm", "--control", "coupon", "--metric",
               "reactivated", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "only one arm" in proc.stderr
    proc = run("--data", str(tmp_path / "nope.csv"), "--arm-col", "arm", "--control", "x",
               "--metric", "y", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "no such file" in proc.stderr
    assert not (tmp_path / "o").exists()


# --- a designed experiment: outcomes from the store's assignments and the transactions ---------

SPEC = spec_toml("winback_test", "winback-test", version=1, outcome_window_days=28,
                 covariates=["revenue_365d"], strata=["tier"],
                 cohort={"transactions": "tx_all.parquet", "as_of": AS_OF, "dormant_after": 90},
                 arms=two_arms(cost_per_contact=0.1, cost_per_conversion=10.0),
                 tables={"baseline": {"rates": RATES}})


@pytest.fixture(scope="module")
def designed(tmp_path_factory):
    """A simulated world, its cohort assigned in a store, and the world's response appended."""
    import duckdb
    import pandas as pd

    from upliftlab.assign import assign_experiment
    from upliftlab.simulate import simulate_world
    from upliftlab.spec import load_spec
    from upliftlab.store import open_store

    d = tmp_path_factory.mktemp("designed")
    world = simulate_world(8000, seed=5)
    world.transactions.to_parquet(d / "tx_all.parquet")
    (d / "spec.toml").write_text(SPEC)
    with open_store(d / "s.duckdb") as store:
        assign_experiment(load_spec(d / "spec.toml"), store)
    con = duckdb.connect(str(d / "s.duckdb"), read_only=True)
    assigned = con.execute("SELECT customer_id, arm FROM assignments WHERE arm <> 'holdout'").df()
    con.close()
    assigned["customer_id"] = assigned.customer_id.astype("int64")
    post = world.respond(assigned)
    tx = pd.concat([world.transactions, post[world.transactions.columns]], ignore_index=True)
    tx.to_parquet(d / "tx_all.parquet")
    return d, assigned, post


@pytest.mark.slow
def test_outcomes_equal_a_pandas_computation(designed):
    import duckdb
    import pandas as pd

    from upliftlab.outcomes import outcomes_sql

    d, assigned, post = designed
    con = duckdb.connect()
    con.register("a_df", assigned.assign(customer_id=assigned.customer_id.astype(str),
                                         stratum="all"))
    con.execute(f"CREATE VIEW tx AS SELECT * FROM read_parquet('{d / 'tx_all.parquet'}')")
    day = pd.Timestamp("2026-01-19")
    got = con.execute(outcomes_sql("a_df", "tx", start=day.date() - pd.Timedelta(days=14),
                                   as_of=day.date(), window_days=28)).df()
    got = got.set_index("customer_id").sort_index()
    start = pd.Timestamp("2026-01-05")
    win = post[(post.ts >= start) & (post.ts < day)]
    ref = win.groupby(win.customer_id.astype(str)).agg(orders=("amount", "size"),
                                                        revenue=("amount", "sum"),
                                                        first=("ts", "min"))
    ref = ref.reindex(got.index)
    assert (got.reactivated == ref.orders.notna().astype(int)).all()
    assert (got.orders == ref.orders.fillna(0)).all()
    assert got.revenue.to_numpy() == pytest.approx(ref.revenue.fillna(0).to_numpy())
    days = (ref["first"] - start).dt.days
    assert got.days_to_reactivation.fillna(-1).tolist() == days.fillna(-1).tolist()
    assert (got.exposure_days == 14).all() and not got.window_closed.any()
    assert got.reactivated.sum() > 0


@pytest.mark.slow
def test_weekly_reports_keep_history_in_the_store(designed):
    import duckdb

    d, _, _ = designed
    from upliftlab.outcomes import report_spec, stored_history

    store = str(d / "s.duckdb")
    for day in ("2026-01-12", "2026-01-19"):  # the API ...
        week = report_spec(str(d / "spec.toml"), as_of=day, out=str(d / f"r{day}"),
                           store_path=store)
        assert week.result.method["analysis"] == "sequential" and not week.window_closed
    # ... and the CLI, once every 28-day window has closed
    proc = run(str(d / "spec.toml"), "--as-of", "2026-02-09", "--store", store, "--out",
               str(d / "r2026-02-09"))
    assert proc.returncode == 0, proc.stderr
    assert "coupon reactivated" in proc.stdout
    assert [h["as_of"] for h in stored_history(store, "winback_test")] == [
        "2026-01-12", "2026-01-19", "2026-02-09"]
    con = duckdb.connect(str(d / "s.duckdb"), read_only=True)
    rows = con.execute("SELECT as_of, analysis FROM weekly_results ORDER BY as_of").fetchall()
    con.close()
    assert [(str(a), b) for a, b in rows] == [("2026-01-12", "sequential"),
                                              ("2026-01-19", "sequential"),
                                              ("2026-02-09", "fixed")]
    last = json.loads((d / "r2026-02-09" / "report.json").read_text())
    assert [h["as_of"] for h in last["history"]] == ["2026-01-12", "2026-01-19"]
    assert last["method"]["windows_closed"] is True
    assert last["method"]["covariates"] == ["revenue_365d"]
    first = json.loads((d / "r2026-01-12" / "report.json").read_text())
    assert any("equal exposure" in n for n in first["method"]["notes"])
    assert {c["arm"] for c in last["cost"]} == {"coupon"}
    html = (d / "r2026-02-09" / "report.html").read_text()
    assert "weekly always-valid looks" in html


@pytest.mark.slow
def test_designed_report_bad_input(designed, tmp_path):
    d, _, _ = designed
    out = tmp_path / "o"
    for args, msg in (
        (["--as-of", "2026-01-01", "--store", str(d / "s.duckdb")], "not after the campaign start"),
        (["--as-of", "2026-01-12", "--store", str(tmp_path / "none.duckdb")], "does not exist"),
        (["--as-of", "soon", "--store", str(d / "s.duckdb")], "is not a date"),
        (["--as-of", "2026-01-12", "--store", str(d / "s.duckdb"), "--metric", "x"],
         "go with --data"),
    ):
        proc = run(str(d / "spec.toml"), *args, "--out", str(out))
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and msg in lines[0]
        assert not out.exists()
    assert not (tmp_path / "none.duckdb").exists()
