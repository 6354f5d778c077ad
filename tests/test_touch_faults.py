"""Touch logs through the CLI: the spec's [touches] and `--touches` add the funnel and the
effects on the reached to report.json/md/html; every bad log exits 2 with one `error:` line,
leaves the store and any earlier report exactly as they were, and writes no output folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from _helpers import cli
from test_store import dump, one_error_line  # the store's test helpers
from upliftlab.cli import main
from upliftlab.store import open_store

ROOT = Path(__file__).resolve().parents[1]


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    """simulate -> assign (spec with [touches]) -> respond --touches, once for the module."""

    root = tmp_path_factory.mktemp("touch")
    main_args = [["simulate", "--n-customers", "4000", "--seed", "3", "--out", root / "world"]]
    spec = (ROOT / "experiments" / "reactivation_2026q1.toml").read_text()
    spec = (spec.replace("../reports/demo/world/transactions.parquet", "world/transactions.parquet")
            .replace("../reports/demo/world/touches.parquet", "world/touches.parquet")
            .replace("capacity = 5000", "capacity = 300"))
    assert "[touches]" in spec
    (root / "spec.toml").write_text(spec)
    main_args += [["assign", root / "spec.toml", "--store", root / "s.duckdb"],
                  ["respond", "--world", root / "world", "--store", root / "s.duckdb",
                   "--experiment", "reactivation_2026q1", "--out", root / "world" / "post.parquet",
                   "--touches", root / "world" / "touches.parquet"]]
    for args in main_args:
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            assert not exc.code, args
    return root


def report_args(root: Path, out: Path, *extra) -> list:
    return ["report", root / "spec.toml", "--as-of", "2026-03-06", "--store", root / "s.duckdb",
            "--transactions", root / "world" / "post.parquet", "--out", out, *extra]



def store_and_report_args(campaign: Path, tmp_path: Path) -> tuple[Path, list]:
    """A copy of the campaign's store in `tmp_path` and the report's arguments pointed at it."""
    store = tmp_path / "s.duckdb"
    shutil.copy(campaign / "s.duckdb", store)
    args = report_args(campaign, tmp_path / "r")
    args[args.index(campaign / "s.duckdb")] = store
    return store, args


@pytest.mark.slow
def test_spec_report_has_the_funnel_and_reached_effects(capsys, campaign, tmp_path):
    store, args = store_and_report_args(campaign, tmp_path)
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    x = rep["touches"]
    assert {f["arm"] for f in x["funnel"]} == {"coupon", "content", "advisor"}
    assert {(e["arm"], e["exposure"]) for e in x["effects"]} >= {
        ("coupon", "delivered"), ("content", "delivered"), ("advisor", "delivered"),
        ("coupon", "opened")}
    log = pd.read_parquet(campaign / "world" / "touches.parquet")
    coupon = next(f for f in x["funnel"] if (f["arm"], f["channel"]) == ("coupon", "sms"))
    delivered = next(s for s in coupon["steps"] if s["step"] == "delivered")
    assert delivered["customers"] == log.loc[log["arm"] == "coupon", "delivered_at"].notna().sum()
    e = next(e for e in x["effects"] if (e["arm"], e["exposure"]) == ("coupon", "delivered"))
    itt = next(c for c in rep["comparisons"] if c["arm"] == "coupon"
               and c["metric"] == "reactivated")
    # the unadjusted ITT (the comparison's estimate is covariate-adjusted)
    assert e["itt"] == pytest.approx(itt["mean_treatment"] - itt["mean_control"])
    assert e["cace"] == pytest.approx(e["itt"] / e["reach"])
    assert e["tsls"]["covariates"] == ["revenue_365d", "orders_730d"]
    assert any("exclusion" in n for n in rep["method"]["notes"])
    md = (tmp_path / "r" / "report.md").read_text()
    html = (tmp_path / "r" / "report.html").read_text()
    assert "## Touches: the funnel" in md and "effect on those reached" in md
    assert "Touches: the funnel" in html and html.count("<svg") >= 2


def _bad_logs(log: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, str]]:
    first = log.index[log["opened_at"].notna()][0]
    out_of_order = log.copy()
    out_of_order.loc[first, "opened_at"] = out_of_order.loc[first, "delivered_at"] - pd.Timedelta(
        minutes=5)
    unknown_channel = log.copy()
    unknown_channel["channel"] = unknown_channel["channel"].astype(str)
    unknown_channel.loc[log.index[0], "channel"] = "fax"
    unknown_arm = log.copy()
    unknown_arm["arm"] = unknown_arm["arm"].astype(str)
    unknown_arm.loc[log.index[0], "arm"] = "voucher"
    early = log.copy()
    early.loc[log.index[0], "sent_at"] = pd.Timestamp("2026-01-01")
    outside = log.copy()
    outside.loc[log.index[0], "customer_id"] = 10**9
    return {
        "out of order": (out_of_order, "steps out of order"),
        "duplicates": (pd.concat([log, log.iloc[:2]]), "duplicate touches"),
        "unknown channel": (unknown_channel, "channel not in the spec"),
        "unknown arm": (unknown_arm, "unknown arm"),
        "before the start": (early, "before the campaign start"),
        "outside": (outside, "customers outside the experiment"),
        "no delivered column": (log.drop(columns=["delivered_at"]), "missing column"),
    }


@pytest.mark.slow
@pytest.mark.parametrize("case", ["out of order", "duplicates", "unknown channel", "unknown arm",
                                  "before the start", "outside", "no delivered column"])
def test_bad_log_exit_2_store_and_reports_unchanged(capsys, campaign, tmp_path, case):
    log = pd.read_parquet(campaign / "world" / "touches.parquet")
    bad, message = _bad_logs(log)[case]
    bad.to_parquet(tmp_path / "bad.parquet")
    store = tmp_path / "s.duckdb"
    shutil.copy(campaign / "s.duckdb", store)
    before = dump(store)
    args = report_args(campaign, tmp_path / "new", "--touches", tmp_path / "bad.parquet")
    args[args.index(campaign / "s.duckdb")] = store
    code, out, err = cli(capsys, *args)
    assert code == 2, err
    line = one_error_line(err)
    assert line.startswith("error: touches: ") and message in line, line
    assert dump(store) == before and not (tmp_path / "new").exists()


@pytest.mark.slow
def test_bad_log_leaves_an_earlier_report_as_it_was(capsys, campaign, tmp_path):
    store, args = store_and_report_args(campaign, tmp_path)
    assert cli(capsys, *args)[0] == 0
    before, kept = dump(store), tree(tmp_path / "r")
    log = pd.read_parquet(campaign / "world" / "touches.parquet")
    pd.concat([log, log.iloc[:1]]).to_parquet(tmp_path / "dup.parquet")
    code, _, err = cli(capsys, *args, "--touches", tmp_path / "dup.parquet")
    assert code == 2 and "duplicate touches" in one_error_line(err)
    assert dump(store) == before and tree(tmp_path / "r") == kept


@pytest.mark.slow
@pytest.mark.parametrize("extra, message", [
    (["--touches", "nope.parquet"], "nope.parquet: no such file"),
    (["--touch-col", "delivered"], "--touch-col 'delivered': expected KEY=COL"),
    (["--touch-col", "sent_time=sent_at"], "--touch-col: unknown touch-log key 'sent_time'"),
    (["--touch-col", "delivered=dlv"], "missing column 'dlv'"),
])
def test_bad_touch_flags_exit_2(capsys, campaign, tmp_path, extra, message):
    store = tmp_path / "s.duckdb"
    shutil.copy(campaign / "s.duckdb", store)
    before = dump(store)
    args = report_args(campaign, tmp_path / "new", *extra)
    args[args.index(campaign / "s.duckdb")] = store
    code, _, err = cli(capsys, *args)
    assert code == 2 and message in one_error_line(err), err
    assert dump(store) == before and not (tmp_path / "new").exists()


@pytest.fixture
def data_experiment(campaign, tmp_path):
    """The campaign as an experiment table for `report --data` (holdout customers left out)."""
    with open_store(campaign / "s.duckdb", read_only=True) as store:
        asg = store.con.execute("SELECT customer_id, arm FROM assignments").df()
    post = pd.read_parquet(campaign / "world" / "post.parquet")
    asg = asg[asg["arm"] != "holdout"].copy()
    asg["reactivated"] = asg["customer_id"].astype("int64").isin(post["customer_id"]).astype(int)
    asg.to_csv(tmp_path / "exp.csv", index=False)
    return tmp_path / "exp.csv"


@pytest.mark.slow
def test_data_form_with_touches(capsys, campaign, data_experiment, tmp_path):
    base = ["report", "--data", data_experiment, "--arm-col", "arm", "--control", "control",
            "--metric", "reactivated", "--analysis", "fixed"]
    log = campaign / "world" / "touches.parquet"
    code, _, err = cli(capsys, *base, "--touches", log, "--out", tmp_path / "r")
    assert code == 0, err
    x = json.loads((tmp_path / "r" / "report.json").read_text())["touches"]
    assert x["checks"]["touches"] == len(pd.read_parquet(log))
    # holdout touches are not in the log of the simulator; a control customer's touch is
    # contamination, counted and shown
    exp = pd.read_csv(data_experiment)
    ctrl = exp.loc[exp["arm"] == "control", "customer_id"].iloc[0]
    extra = pd.read_parquet(log).iloc[:1].assign(customer_id=ctrl, arm="coupon")
    pd.concat([pd.read_parquet(log), extra]).to_parquet(tmp_path / "c.parquet")
    code, _, err = cli(capsys, *base, "--touches", tmp_path / "c.parquet", "--out",
                       tmp_path / "r2")
    assert code == 0, err
    y = json.loads((tmp_path / "r2" / "report.json").read_text())["touches"]
    assert y["checks"]["contamination"] == {"control": 1}
    assert y["effects"] == x["effects"]  # excluded: the estimates do not move
    # --touch-col without --touches is refused; a bad log writes nothing
    code, _, err = cli(capsys, *base, "--touch-col", "sent=s", "--out", tmp_path / "r3")
    assert code == 2 and "--touch-col goes with --touches" in one_error_line(err)
    pd.concat([pd.read_parquet(log), pd.read_parquet(log).iloc[:1]]).to_parquet(
        tmp_path / "d.parquet")
    code, _, err = cli(capsys, *base, "--touches", tmp_path / "d.parquet", "--out",
                       tmp_path / "r3")
    assert code == 2 and "duplicate touches" in one_error_line(err)
    assert not (tmp_path / "r3").exists()


def test_respond_touches_bad_suffix_writes_nothing(capsys, campaign, tmp_path):
    code, _, err = cli(capsys, "respond", "--world", campaign / "world", "--store",
                       campaign / "s.duckdb", "--experiment", "reactivation_2026q1", "--out",
                       tmp_path / "post.parquet", "--touches", tmp_path / "touches.json")
    assert code == 2 and "unknown output type" in one_error_line(err)
    assert not any(tmp_path.iterdir())
