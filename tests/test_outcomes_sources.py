"""The weekly report on a CRM export: outcome sources in the spec, column mapping, the
append-only weekly history, interim honesty, currency, `checks`, and their bad input.

A simulated world is exported twice with the same text ids (`M<id>`): once with upliftlab's
column names, once as a CRM would (member_no, purchased_at, net_amount, used_voucher); both
must give the same report.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from _helpers import AS_OF, RATES, cli, spec_toml, two_arms

START = "2026-01-05"
CRM = {"customer_id": "member_no", "ts": "purchased_at", "amount": "net_amount",
       "discount_used": "used_voucher"}


def write_spec(path: Path, *, name: str = "crm", pre: str = "pre.csv", currency: str = "EUR",
               crm: bool = False, outcomes: str | None = "post.csv",
               outcome_columns: bool = False) -> Path:
    crm_columns = {"customer_col": "member_no", "time_col": "purchased_at",
                   "amount_col": "net_amount"}
    cohort = {"transactions": pre, "as_of": AS_OF}
    tables: dict = {"baseline": {"rates": RATES}}
    if crm:
        tables["cohort.columns"] = {**crm_columns, "discount_col": "used_voucher"}
    if outcomes is not None:
        tables["outcomes"] = {"transactions": outcomes}
        if outcome_columns:
            tables["outcomes.columns"] = crm_columns
    path.write_text(spec_toml(name, "crm-test", version=1, outcome_window_days=60,
                              covariates=["revenue_365d"], strata=["tier"], currency=currency,
                              cohort=cohort, arms=two_arms(cost_per_contact=0.1,
                                                           cost_per_conversion=10.0),
                              tables=tables))
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def world_files(tmp_path_factory):
    """pre.csv / post.csv with upliftlab's names and crm_pre.csv / crm_post.csv with a CRM's,
    text ids M<id> in both; post = the world's response to the canonical spec's assignment."""
    from upliftlab.assign import assign_experiment
    from upliftlab.simulate import simulate_world
    from upliftlab.spec import load_spec
    from upliftlab.store import open_store

    d = tmp_path_factory.mktemp("crm")
    world = simulate_world(6000, seed=11)
    pre = world.transactions.assign(customer_id="M" + world.transactions.customer_id.astype(str))
    pre.to_csv(d / "pre.csv", index=False)
    pre.rename(columns=CRM).to_csv(d / "crm_pre.csv", index=False)
    spec = write_spec(d / "canon.toml")
    with open_store(d / "seed.duckdb") as store:
        assign_experiment(load_spec(spec), store)
        assigned = store.con.execute(
            "SELECT customer_id, CASE WHEN arm = 'holdout' THEN 'control' ELSE arm END AS arm "
            "FROM assignments").df()
    assigned["customer_id"] = assigned.customer_id.str[1:].astype("int64")
    post = world.respond(assigned)[["customer_id", "ts", "amount"]]
    post = post.assign(customer_id="M" + post.customer_id.astype(str), discount_used=False)
    post.to_csv(d / "post.csv", index=False)
    post.rename(columns=CRM).to_csv(d / "crm_post.csv", index=False)
    return d


@pytest.fixture()
def project(world_files, tmp_path, capsys):
    """A fresh folder with the files and an assigned canonical store."""
    for f in world_files.iterdir():
        if f.suffix == ".csv":
            (tmp_path / f.name).symlink_to(f)
    spec = write_spec(tmp_path / "canon.toml")
    code, _, err = cli(capsys, "assign", spec, "--store", tmp_path / "s.duckdb")
    assert code == 0, err
    return tmp_path


def numbers(report_dir: Path) -> dict:
    d = json.loads((report_dir / "report.json").read_text())
    keep = ("arm", "metric", "estimate", "ci_low", "ci_high", "p_value")
    return {"arms": d["arms"], "comparisons": [{k: c[k] for k in keep} for c in d["comparisons"]],
            "cost": d["cost"]}


@pytest.mark.slow
def test_column_mapping_by_spec_and_flags_gives_the_canonical_report(project, capsys):
    day = "2026-01-19"
    code, out, err = cli(capsys, "report", project / "canon.toml", "--as-of", day, "--store",
                         project / "s.duckdb", "--out", project / "r_canon")
    assert code == 0, err
    want = numbers(project / "r_canon")
    assert want["cost"] and any(c["estimate"] for c in want["comparisons"])
    # the CRM export mapped in the spec: [cohort.columns] and [outcomes.columns]
    mapped = write_spec(project / "mapped.toml", pre="crm_pre.csv", crm=True,
                        outcomes="crm_post.csv", outcome_columns=True)
    code, out, err = cli(capsys, "assign", mapped, "--store", project / "m.duckdb")
    assert code == 0, err
    assert "optional column" not in out  # used_voucher is mapped as the discount column
    code, out, err = cli(capsys, "report", mapped, "--as-of", day, "--store",
                         project / "m.duckdb", "--out", project / "r_mapped")
    assert code == 0, err
    assert numbers(project / "r_mapped") == want
    notes = json.loads((project / "r_mapped" / "report.json").read_text())["method"]["notes"]
    assert any("member_no, purchased_at, net_amount" in n for n in notes)
    assert any("not used: used_voucher" in n for n in notes)  # the ignored column is named
    # the outcome columns by flags (the spec maps only the cohort)
    flags = write_spec(project / "flags.toml", pre="crm_pre.csv", crm=True, outcomes=None)
    assert cli(capsys, "assign", flags, "--store", project / "f.duckdb")[0] == 0
    pd.read_csv(project / "pre.csv").drop(columns="discount_used").to_csv(
        project / "pre_nodisc.csv", index=False)
    nodisc = write_spec(project / "nodisc.toml", pre="pre_nodisc.csv")
    code, out, err = cli(capsys, "assign", nodisc, "--store", project / "u.duckdb")
    assert code == 0 and "optional column 'discount_used' is absent" in out
    code, out, err = cli(capsys, "report", flags, "--as-of", day, "--store", project / "f.duckdb",
                         "--transactions", project / "crm_post.csv", "--customer-col",
                         "member_no", "--time-col", "purchased_at", "--amount-col", "net_amount",
                         "--out", project / "r_flags")
    assert code == 0, err
    assert numbers(project / "r_flags") == want
    # export keeps the source's id column name and its text ids
    code, out, err = cli(capsys, "export", mapped, "--store", project / "m.duckdb", "--out",
                         project / "lists")
    assert code == 0, err
    full = pd.read_csv(project / "lists" / "crm_v1_assignment.csv")
    assert "member_no" in full.columns and full["member_no"].str.startswith("M").all()
    assert set(full["arm"]) >= {"control", "coupon"}


@pytest.mark.slow
def test_cohort_names_absent_and_ignored_columns(project, capsys):
    code, out, err = cli(capsys, "cohort", "--transactions", project / "crm_pre.csv", "--as-of",
                         START, "--customer-col", "member_no", "--time-col", "purchased_at",
                         "--amount-col", "net_amount", "--out", project / "c.parquet")
    assert code == 0, err
    assert "optional column 'discount_used' is absent" in out
    assert "not used: used_voucher" in out


@pytest.mark.slow
def test_missing_outcome_source_is_refused_and_the_store_unchanged(project, capsys):
    spec = write_spec(project / "noout.toml", name="crm", outcomes=None)
    before = digest(project / "s.duckdb")
    code, out, err = cli(capsys, "report", spec, "--as-of", "2026-01-19", "--store",
                         project / "s.duckdb", "--out", project / "r")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "pre.csv" in err and "no purchases on or after the campaign start 2026-01-05" in err
    assert "found" in err and "2024" in err  # the date range it found
    assert digest(project / "s.duckdb") == before
    assert not (project / "r").exists()


@pytest.mark.slow
def test_a_rerun_with_other_numbers_keeps_both_and_the_trend_uses_the_latest(project, capsys):
    import duckdb

    from upliftlab.outcomes import stored_history

    store = project / "s.duckdb"
    args = ["--store", store]
    assert cli(capsys, "report", project / "canon.toml", "--as-of", "2026-01-12", *args,
               "--out", project / "w1")[0] == 0
    # the same week again with the same data: nothing new is stored
    assert cli(capsys, "report", project / "canon.toml", "--as-of", "2026-01-12", *args,
               "--out", project / "w1b")[0] == 0
    # ... and with a late-arriving correction: half of the purchases are gone
    post = pd.read_csv(project / "post.csv")
    post.iloc[::2].to_csv(project / "post_fixed.csv", index=False)
    code, out, err = cli(capsys, "report", project / "canon.toml", "--as-of", "2026-01-12", *args,
                         "--transactions", project / "post_fixed.csv", "--out", project / "w1c")
    assert code == 0, err
    con = duckdb.connect(str(store), read_only=True)
    rows = con.execute("SELECT as_of, revision, fingerprint FROM weekly_results "
                       "ORDER BY revision").fetchall()
    con.close()
    assert [(str(a), r) for a, r, _ in rows] == [("2026-01-12", 1), ("2026-01-12", 2)]
    assert rows[0][2] != rows[1][2]
    second = json.loads((project / "w1c" / "report.json").read_text())
    assert second["method"]["revision"] == 2
    assert any("reported before with other numbers (revision 1" in n
               for n in second["method"]["notes"])
    history = stored_history(str(store), "crm")
    assert len(history) == 1 and history[0]["method"]["revision"] == 2  # the latest
    # the next week's trend uses revision 2
    assert cli(capsys, "report", project / "canon.toml", "--as-of", "2026-01-19", *args,
               "--transactions", project / "post_fixed.csv", "--out", project / "w2")[0] == 0
    w2 = json.loads((project / "w2" / "report.json").read_text())
    assert w2["history"][0]["comparisons"] == [
        {k: c[k] for k in w2["history"][0]["comparisons"][0]} for c in second["comparisons"]]


@pytest.mark.slow
def test_interim_headline_carries_the_observed_share_and_a_projection(project, capsys):
    code, out, err = cli(capsys, "report", project / "canon.toml", "--as-of", "2026-01-19",
                         "--store", project / "s.duckdb", "--out", project / "r")
    assert code == 0, err
    headline = next(line for line in out.splitlines() if line.startswith("coupon"))
    assert "in the first 14 of 60 days (effects and costs to date)" in headline
    assert "each incremental reactivation cost €" in headline
    md = (project / "r" / "report.md").read_text()
    assert "coupon: to date (14 of 60 days), each incremental reactivation cost €" in md
    assert "projected to the full 60 days" in headline or "no projection to the full 60" in headline
    md = (project / "r" / "report.md").read_text()
    assert "14 of 60 days of the outcome window observed; effects and costs to date" in md
    assert "in the first 14 of 60 days" in md and "$" not in md  # the spec's currency, EUR
    d = json.loads((project / "r" / "report.json").read_text())
    assert d["method"]["days_observed"] == 14 and d["method"]["currency"] == "EUR"
    factor = d["method"]["width_factor"]
    assert 1.2 < factor < 3
    assert any(f"{factor:.2f}× as wide as fixed-horizon" in n for n in d["method"]["notes"])
    assert any(p["arm"] == "coupon" for p in d["method"]["projection"])


@pytest.mark.slow
def test_final_report_marks_the_fixed_analysis_apart_on_a_date_axis(project, capsys):
    for day in ("2026-01-12", "2026-01-19", "2026-03-06"):
        code, out, err = cli(capsys, "report", project / "canon.toml", "--as-of", day, "--store",
                             project / "s.duckdb", "--out", project / f"r{day}")
        assert code == 0, err
    final = project / "r2026-03-06"
    html = (final / "report.html").read_text()
    assert "final, fixed-horizon" in html and "2026-01-12" in html
    assert "first" not in out.split("\n")[0]  # closed windows: no interim wording
    md = (final / "report.md").read_text()
    assert "| 2026-01-19 | sequential | coupon |" in md and "| 2026-03-06 | fixed | coupon |" in md


@pytest.mark.slow
@pytest.mark.parametrize("case", ["int_ids", "foreign_ids", "only_before", "as_of_before",
                                  "bad_currency"])
def test_bad_outcome_input_exit_2_store_unchanged(project, capsys, case):
    spec = project / "canon.toml"
    args = ["--as-of", "2026-01-19"]
    post = pd.read_csv(project / "post.csv")
    if case == "int_ids":
        post.assign(customer_id=post.customer_id.str[1:].astype(int)).to_csv(
            project / "bad.csv", index=False)
        args += ["--transactions", project / "bad.csv"]
        expect = "holds integers"
    elif case == "foreign_ids":
        post.assign(customer_id="X" + post.customer_id).to_csv(project / "bad.csv", index=False)
        args += ["--transactions", project / "bad.csv"]
        expect = "is by a customer of the experiment"
    elif case == "only_before":
        args += ["--transactions", project / "pre.csv"]
        expect = "no purchases on or after the campaign start"
    elif case == "as_of_before":
        args = ["--as-of", "2026-01-01"]
        expect = "is not after the campaign start"
    else:
        spec = write_spec(project / "cur.toml", currency="euros")
        expect = "currency 'euros' is neither an ISO 4217 code"
    before = digest(project / "s.duckdb")
    code, out, err = cli(capsys, "report", spec, *args, "--store", project / "s.duckdb",
                         "--out", project / "r")
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and expect in err, err
    assert digest(project / "s.duckdb") == before
    assert not (project / "r").exists()


@pytest.mark.slow
def test_checks_command_prints_and_stores(project, capsys):
    import duckdb

    def n_checks() -> int:
        con = duckdb.connect(str(project / "s.duckdb"), read_only=True)
        try:
            return con.execute("SELECT count(*) FROM checks").fetchone()[0]
        finally:
            con.close()

    before = n_checks()
    code, out, err = cli(capsys, "checks", project / "canon.toml", "--store", project / "s.duckdb")
    assert code == 0, err
    assert "SRM vs effective weights" in out and "balance:" in out
    assert n_checks() == 2 * before  # the same checks once more, with this run's time
    other = write_spec(project / "other.toml", name="other")
    digest_before = digest(project / "s.duckdb")
    code, out, err = cli(capsys, "checks", other, "--store", project / "s.duckdb")
    assert code == 2 and "has no assignments" in err and err.count("\n") == 1
    assert digest(project / "s.duckdb") == digest_before
    code, out, err = cli(capsys, "checks", other, "--store", project / "none.duckdb")
    assert code == 2 and not (project / "none.duckdb").exists()


def test_currency_is_a_code_or_a_symbol():
    from upliftlab.money import cents, check_currency, money

    assert money(847.5200000000001, 2, "EUR") == "€847.52"
    assert money(-12, 2, "CHF") == "-CHF 12.00" and money(3.5, 2, "₹") == "₹3.50"
    assert cents(847.5200000000001) == 847.52 and cents(0.125) == 0.13
    for bad in ("euro", "eur", "$$", "", "12"):
        with pytest.raises(ValueError):
            check_currency(bad)


def test_days_since_last_counts_calendar_days_at_the_tier_boundaries():
    """As of 2026-01-05: the as-of date minus the purchase's date, whatever the time of day."""
    from upliftlab.cohort import build_cohort

    last = {1: "2025-10-07 00:01", 2: "2025-10-07 23:59", 3: "2025-10-08 00:00",
            4: "2025-07-09 12:00", 5: "2025-07-10 23:59", 6: "2025-01-05 08:00",
            7: "2025-01-06 00:00", 8: "2026-01-04 23:59"}
    tx = pd.DataFrame({"customer_id": list(last), "ts": pd.to_datetime(list(last.values())),
                       "amount": 10.0})
    cohort = build_cohort(tx, START).set_index("customer_id")
    want = {1: (90, "short"), 2: (90, "short"), 4: (180, "mid"), 5: (179, "short"),
            6: (365, "long"), 7: (364, "mid")}
    assert sorted(cohort.index) == sorted(want)  # 3 (89 days) and 8 (1 day) are not dormant
    for cid, (days, tier) in want.items():
        assert (cohort.loc[cid, "days_since_last"], cohort.loc[cid, "tier"]) == (days, tier)


def test_assign_keeps_the_id_dtype_and_the_design_name():
    from upliftlab.assign import Design, assign

    design = Design.of("salt", {"control": 0.5, "t": 0.5}, name="winback")
    ints = assign(pd.DataFrame({"customer_id": [3, 1, 2]}), design).frame
    assert ints["customer_id"].dtype == "int64" and sorted(ints["customer_id"]) == [1, 2, 3]
    assert ints.attrs["experiment"] == "winback"
    text = assign(pd.DataFrame({"customer_id": ["M1", "M2"]}), design).frame
    assert list(text["customer_id"]) == ["M1", "M2"]
    # the same customers get the same arms whatever the id's type
    same = assign(pd.DataFrame({"customer_id": ["3", "1", "2"]}), design).frame
    assert list(same["arm"]) == list(ints.sort_values("customer_id")["arm"])


def test_status_line_ticks_on_a_terminal(monkeypatch):
    """A step without a count shows a status line refreshed twice a second (never silent)."""
    import io
    import time

    from upliftlab import progress

    buf = io.StringIO()
    monkeypatch.setattr(progress, "progress_enabled", lambda: True)
    monkeypatch.setattr(progress.sys, "stderr", buf)
    with progress.status("fitting", every=0.05):
        time.sleep(0.5)
    assert buf.getvalue().count("fitting ...") >= 5
    monkeypatch.setattr(progress, "progress_enabled", lambda: False)
    quiet = io.StringIO()
    monkeypatch.setattr(progress.sys, "stderr", quiet)
    with progress.status("fitting", every=0.05):
        time.sleep(0.1)
    assert quiet.getvalue() == ""


def test_data_report_takes_a_currency_and_refuses_a_bad_one(tmp_path, capsys):
    rows = pd.DataFrame({"grp": ["a", "b"] * 200, "conversion": [0, 1, 0, 0] * 100})
    rows.to_csv(tmp_path / "t.csv", index=False)
    base = ["report", "--data", tmp_path / "t.csv", "--arm-col", "grp", "--control", "a",
            "--metric", "conversion", "--cost", "b=0.5:2"]
    code, out, err = cli(capsys, *base, "--currency", "GBP", "--out", tmp_path / "r")
    assert code == 0, err
    assert "each incremental conversion cost £" in out and "b: conversion" in out
    md = (tmp_path / "r" / "report.md").read_text()
    assert "£" in md and "$" not in md and "so far" not in md and "reactivat" not in md
    code, out, err = cli(capsys, *base, "--currency", "pounds", "--out", tmp_path / "r2")
    assert code == 2 and "currency 'pounds'" in err and err.count("\n") == 1
    assert not (tmp_path / "r2").exists()


@pytest.mark.slow
def test_a_version_1_history_is_moved_to_the_append_only_table(project, capsys):
    import datetime as dt

    import duckdb

    con = duckdb.connect(str(project / "s.duckdb"))
    con.execute("""CREATE TABLE weekly_results (experiment VARCHAR NOT NULL, version INTEGER NOT
        NULL, as_of DATE NOT NULL, computed_at TIMESTAMP NOT NULL, analysis VARCHAR NOT NULL,
        report_json JSON NOT NULL, PRIMARY KEY (experiment, version, as_of))""")
    old = {"as_of": "2026-01-12", "method": {"analysis": "sequential"}, "comparisons": []}
    con.execute("INSERT INTO weekly_results VALUES ('crm', 1, '2026-01-12', ?, 'sequential', ?)",
                [dt.datetime(2026, 1, 12, 6), json.dumps(old)])
    con.execute("INSERT INTO schema_version VALUES ('report', 1, ?)", [dt.datetime(2026, 1, 1)])
    con.close()
    code, out, err = cli(capsys, "report", project / "canon.toml", "--as-of", "2026-01-19",
                         "--store", project / "s.duckdb", "--out", project / "r")
    assert code == 0, err
    con = duckdb.connect(str(project / "s.duckdb"), read_only=True)
    rows = con.execute("SELECT as_of, revision FROM weekly_results ORDER BY as_of").fetchall()
    version = con.execute("SELECT version FROM schema_version WHERE module = 'report'").fetchone()
    con.close()
    assert [(str(a), r) for a, r in rows] == [("2026-01-12", 1), ("2026-01-19", 1)]
    assert version == (2,)


def test_p_values_read_as_p_below_0_001():
    from upliftlab.report._text import p_is, pvalue

    assert p_is(3e-7) == "p < 0.001" and p_is(0.0123) == "p = 0.0123"
    assert pvalue(2e-5) == "< 0.001" and pvalue(0.5) == "0.5000"
