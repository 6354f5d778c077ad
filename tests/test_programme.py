"""The programme against the global holdout on the simulator: its cumulative incremental
reactivations recover the simulated truth within the interval; the CLI writes the report
triple; the page renders in a headless browser with its figures and tables and no network
request."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _helpers import AS_OF, cli_code, spec_toml, three_arms

SPEC = spec_toml(
    "winback", "winback-programme-test", version=1, outcome_window_days=60,
    covariates=["revenue_365d"], strata=["tier"], mde=0.01,
    cohort={"transactions": "world/transactions.parquet", "as_of": AS_OF}, arms=three_arms(),
    tables={"baseline": {"rates": {"short": 0.05, "mid": 0.03, "long": 0.01}},
            "holdout": {"share": 0.2}})
START = dt.date(2026, 1, 5)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A simulated world, the dormant cohort assigned with a 20% global holdout, and the world's
    twelve months after the campaign."""
    from upliftlab.lifecycle_sim import respond_long_run
    from upliftlab.simulate import simulate_world, write_transactions
    from upliftlab.store import open_store

    d = tmp_path_factory.mktemp("programme")
    world = simulate_world(30_000, seed=5)
    world.write(d / "world")
    (d / "spec.toml").write_text(SPEC)
    assert cli_code("assign", d / "spec.toml", "--store", d / "s.duckdb") == 0
    with open_store(d / "s.duckdb", read_only=True) as store:
        a = store.con.execute("SELECT CAST(customer_id AS BIGINT) AS customer_id, arm "
                              "FROM assignments").df()
    write_transactions(respond_long_run(world, a, seed=1), d / "world" / "after.parquet")
    return {"dir": d, "world": world, "assignments": a}


def programme_numbers(d: Path, after: pd.DataFrame, as_of: dt.date):
    """The library's programme over the store with `after` as the purchases after the start."""
    from upliftlab.programme import Experiment, programme
    from upliftlab.sources import register
    from upliftlab.store import open_store

    with open_store(d / "s.duckdb", read_only=True) as store:
        found = store.experiment_specs()
        exps = [Experiment.from_spec(f["name"], f["version"], f["spec"]) for f in found]
        register(store.con, str(d / "world" / "transactions.parquet"), "pre")
        register(store.con, after, "post")
        store.con.execute("CREATE TEMP VIEW tx AS SELECT customer_id, ts, amount FROM pre "
                          "UNION ALL SELECT customer_id, ts, amount FROM post")
        sql = store.programme_assignments_sql([(e.name, e.version) for e in exps])
        return programme(store.con, sql, "tx", exps, as_of=as_of, long_run=False)


@pytest.mark.slow
def test_text_and_integer_ids_read_the_same(project):
    """The transactions' ids as integers (joined as integers, grouped by them) or as text
    (compared as text): the same programme, long runs, structure and cost included."""
    from upliftlab.programme import Experiment, programme
    from upliftlab.sources import register
    from upliftlab.store import open_store

    d = project["dir"]
    out = []
    for cast in ("", "CAST(customer_id AS VARCHAR) AS "):
        with open_store(d / "s.duckdb", read_only=True) as store:
            exps = [Experiment.from_spec(f["name"], f["version"], f["spec"])
                    for f in store.experiment_specs()]
            for name in ("transactions", "after"):
                register(store.con, str(d / "world" / f"{name}.parquet"), name)
            store.con.execute(f"CREATE TEMP VIEW tx AS SELECT {cast}customer_id, ts, amount "
                              f"FROM transactions UNION ALL SELECT {cast}customer_id, ts, "
                              "amount FROM after")
            kind = store.con.execute("SELECT typeof(customer_id) FROM tx LIMIT 1").fetchone()[0]
            assert (kind == "VARCHAR") == bool(cast)
            sql = store.programme_assignments_sql([(e.name, e.version) for e in exps])
            out.append(programme(store.con, sql, "tx", exps, as_of=dt.date(2027, 1, 5))
                       .to_dict())
    as_int, as_text = out
    assert as_int["long_run"] and as_int["structure"]["rest"]
    assert as_text == _approx(as_int)


def _approx(x):
    """`x` with every float compared to 1e-9 (sums in another order)."""
    if isinstance(x, dict):
        return {k: _approx(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_approx(v) for v in x]
    return pytest.approx(x, rel=1e-9, abs=1e-12) if isinstance(x, float) else x


@pytest.mark.slow
def test_programme_recovers_the_simulated_truth(project):
    """Over seeded replays of the twelve months, the interval of the cumulative incremental
    reactivations (and revenue) covers the truth at the window's end and after a year."""
    from upliftlab.lifecycle_sim import programme_truth, respond_long_run

    world, a, d = project["world"], project["assignments"], project["dir"]
    checks = {dt.date(2026, 3, 1): None, dt.date(2027, 1, 5): None}
    for day in checks:
        checks[day] = programme_truth(world, a, (day - START).days)
    reps, hits, errors = 12, {k: 0 for k in ("r", "v")}, []
    for seed in range(reps):
        after = respond_long_run(world, a, seed=100 + seed)
        res = programme_numbers(d, after, dt.date(2027, 1, 5))
        rows = {m["month_end"]: m for m in res.monthly}
        for day, truth in checks.items():
            m = rows[day.isoformat()]
            t_r, t_v = truth["incremental_reactivations"], truth["incremental_revenue"]
            hits["r"] += m["incremental_reactivations_ci_low"] <= t_r <= \
                m["incremental_reactivations_ci_high"]
            hits["v"] += m["incremental_revenue_ci_low"] <= t_v <= m["incremental_revenue_ci_high"]
            errors.append((m["incremental_reactivations"] - t_r)
                          / m["incremental_reactivations_se"])
    n = reps * len(checks)
    assert hits["r"] >= 0.8 * n and hits["v"] >= 0.8 * n
    # no bias: the standardised errors average near 0 (their sd is about 1)
    assert abs(np.mean(errors)) < 3 / np.sqrt(reps)
    assert 0.5 < np.std(errors) < 1.6


@pytest.mark.slow
def test_programme_cli_writes_the_report(project, tmp_path, capsys):
    d = project["dir"]
    out = tmp_path / "prog"
    code = cli_code("programme", "--store", d / "s.duckdb", "--as-of", "2027-01-05",
                    "--transactions", d / "world" / "transactions.parquet",
                    "--transactions", d / "world" / "after.parquet",
                    "--customers", d / "world" / "customers.parquet", "--out", out)
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [".upliftlab.json", "report.html", "report.json",
                                                          "report.md"]
    r = json.loads((out / "report.json").read_text())
    assert r["kind"] == "programme" and r["data_end"] == "2027-01-05"
    assert [e["name"] for e in r["experiments"]] == ["winback"]
    assert r["experiments"][0]["status"] == "outcome window closed"
    assert r["monthly"][0]["month_end"] == "2026-02-01" and r["monthly"][-1]["month_end"] == \
        "2027-01-05"
    assert {b["by"] for b in r["breakdown"]} == {"arm", "tier", "channel"}
    assert {b["value"] for b in r["breakdown"] if b["by"] == "channel"} == {"web", "app", "store"}
    # the breakdown adds up: the treated of every channel are all the treated
    by_channel = [b for b in r["breakdown"] if b["by"] == "channel"]
    assert sum(b["customers"] for b in by_channel) == r["monthly"][-1]["customers"]
    lr = r["long_run"][0]
    assert lr["horizons"] == [90, 180, 365] and lr["censored_at"] == "2027-01-05"
    assert {c["arm"] for c in lr["survival"]["dormant_again"]["comparisons"]} == \
        {"coupon", "advisor"}
    # the advisor's customers stay longer than control's, the coupon's shorter (simulated truth)
    rm = {c["arm"]: c for c in lr["survival"]["dormant_again"]["comparisons"]}
    assert rm["advisor"]["ci_low"] > 0 and rm["coupon"]["ci_high"] < 0
    # the cost, independently: contacts of every treated customer, a coupon's face value for
    # each coupon customer who bought in the 60-day window
    a, after = project["assignments"], pd.read_parquet(d / "world" / "after.parquet")
    window = after[after["ts"] < pd.Timestamp("2026-03-06")]
    n = a["arm"].value_counts()
    conv = a[(a["arm"] == "coupon") & a["customer_id"].isin(window["customer_id"])]
    expected = 0.1 * n["coupon"] + 4.0 * n["advisor"] + 10.0 * len(conv)
    assert r["cost"]["total_cost"] == pytest.approx(expected)
    assert r["monthly"][-1]["cost"] == pytest.approx(expected)
    assert r["monthly"][0]["cost"] < expected  # conversions are paid as they come
    shares = r["structure"]["holdout"][-1]
    assert sum(shares[s] for s in r["statuses"]) == pytest.approx(1.0)
    assert "Kaplan" in (out / "report.md").read_text() or "RMST" in (out / "report.md").read_text()
    # a horizon the data does not cover is stated, not guessed
    out2 = tmp_path / "prog-early"
    assert cli_code("programme", "--store", d / "s.duckdb", "--as-of", "2026-09-30",
                    "--transactions", d / "world" / "transactions.parquet",
                    "--transactions", d / "world" / "after.parquet", "--out", out2) == 0
    r2 = json.loads((out2 / "report.json").read_text())
    assert r2["long_run"][0]["horizons_not_covered"] == [365]
    assert r2["long_run"][0]["censored_at"] == "2026-09-30"
    assert r2["experiments"][0]["status"] == "outcome window closed"


# ---- the page in a headless browser -----------------------------------------------------------

# Chromium's own background traffic (sign-in and Google service endpoints), not the page's
_BROWSER_OWN = ("www.google.com:443", "accounts.google.com:443", "clients2.google.com",
                "android.clients.google.com", "optimizationguide-pa.googleapis.com:443")


def _browse(page: Path, tmp: Path) -> tuple[str, list[str], Path]:
    """Open `page` in headless Chromium with every request sent to a local recording proxy:
    the rendered DOM, the requests the page made, and a screenshot."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (make test installs the Debian package when "
                    "apt-get is available)")
    seen: list[str] = []
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)

    def accept() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            try:
                seen.append(conn.recv(300).decode("latin-1").split("\r\n")[0])
            finally:
                conn.close()

    threading.Thread(target=accept, daemon=True).start()
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", f"--proxy-server=http://127.0.0.1:{srv.getsockname()[1]}",
             "--proxy-bypass-list=<-loopback>", "--virtual-time-budget=3000",
             f"--user-data-dir={tmp / 'profile'}"]
    try:
        dom = subprocess.run(flags + ["--dump-dom", page.as_uri()], capture_output=True,
                             text=True, timeout=120).stdout
        shot = tmp / "shot.png"
        subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1200,3000", page.as_uri()],
                       capture_output=True, timeout=120)
    finally:
        srv.close()
    page_requests = [s for s in seen if not any(h in s for h in _BROWSER_OWN)]
    return dom, page_requests, shot


@pytest.mark.slow
def test_report_renders_in_a_browser_without_network(project, tmp_path):
    from matplotlib.image import imread

    d = project["dir"]
    out = tmp_path / "prog"
    assert cli_code("programme", "--store", d / "s.duckdb", "--as-of", "2027-01-05",
                    "--transactions", d / "world" / "transactions.parquet",
                    "--transactions", d / "world" / "after.parquet", "--out", out) == 0
    dom, requests, shot = _browse(out / "report.html", tmp_path)
    assert "Reactivation programme" in dom and "</html>" in dom
    assert dom.count("<svg") >= 5  # two programme curves, the structure, two KM plots
    for table in ('id="experiments"', 'id="monthly"', 'id="breakdown"', 'class="survival"'):
        assert table in dom
    assert requests == []
    img = imread(shot)
    assert img.shape[0] > 1000 and img[..., :3].std() > 0.05  # rendered, not blank
    # the check can fail: a page with a remote image is caught
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><img src="http://example.com/x.png"></body></html>')
    _, requests, _ = _browse(bad, tmp_path)
    assert any("example.com" in r for r in requests)
