"""The store through the CLI: idempotent re-runs, late joiners, refusal of a changed
randomisation, transactional failure, a locked store, bad input, export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _helpers import AS_OF, cli, spec_toml, three_arms
from upliftlab.cli import main
from upliftlab.store import open_store

SPEC = spec_toml(
    "exp", "store-test", version=1, strata=["tier", "value_band"], covariates=["revenue_365d"],
    mde=0.02, cohort={"table": "cohort.parquet", "as_of": AS_OF}, arms=three_arms(250),
    tables={"value_band": {"column": "revenue_365d", "thresholds": [50.0, 150.0]},
            "baseline": {"rates": {"short": 0.05, "mid": 0.03, "long": 0.01}},
            "holdout": {"share": 0.05}})


def make_cohort(n: int, seed: int = 0, start: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": np.arange(start, start + n, dtype="int64"),
        "tier": rng.choice(["short", "mid", "long"], n),
        "revenue_365d": rng.gamma(2.0, 50.0, n),
        "orders_total": rng.poisson(3, n),
        "days_since_last": rng.integers(90, 700, n),
    })


@pytest.fixture
def project(tmp_path):
    make_cohort(2000).to_parquet(tmp_path / "cohort.parquet")
    (tmp_path / "exp.toml").write_text(SPEC)
    return tmp_path


def dump(path: Path) -> dict:
    with open_store(path, read_only=True) as store:
        return store.dump()


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def assign(capsys, project: Path, spec: str = "exp.toml") -> tuple[int, str, str]:
    return cli(capsys, "assign", project / spec, "--store", project / "s.duckdb")


@pytest.mark.slow
def test_assign_writes_store_and_rerun_is_a_noop(capsys, project):
    code, out, err = assign(capsys, project)
    assert code == 0, err
    assert "2,000 new customers" in out and "SRM" in out and "balance:" in out
    d = dump(project / "s.duckdb")
    assert d["schema_version"][0][:2] == ("design", 1)
    (exp,) = d["experiments"]
    assert exp[0:2] == ("exp", 1) and len(exp[3]) == 64 and len(exp[4]) == 64
    assert json.loads(exp[2])["salt"] == "store-test"
    rows = d["assignments"]
    assert len(rows) == 2000 and len({r[2] for r in rows}) == 2000
    assert {r[7] for r in rows} == {"stratified/md5-60/v1"}
    arms = pd.Series([r[3] for r in rows]).value_counts()
    assert arms["advisor"] == 250                    # capacity
    assert set(arms.index) == {"control", "coupon", "advisor", "holdout"}
    kinds = {(c[3], c[4].split(":")[0]) for c in d["checks"]}
    assert {("srm", "overall"), ("srm", "stratum"), ("smd", "overall"), ("count", "stratum"),
            ("srm_holdout", "overall")} <= kinds
    assert {r[3] for r in d["allocations"]} == {"control", "coupon", "advisor"}
    # second run: nothing added, nothing changed
    code, out, err = assign(capsys, project)
    assert code == 0 and "no new customers" in out
    assert dump(project / "s.duckdb") == d


@pytest.mark.slow
def test_late_joiners_are_added_and_nobody_moves(capsys, project):
    assert assign(capsys, project)[0] == 0
    before = dump(project / "s.duckdb")
    old = {r[2]: r for r in before["assignments"]}
    grown = pd.concat([make_cohort(2000), make_cohort(600, seed=1, start=5000)])
    grown.to_parquet(project / "cohort.parquet")
    code, out, err = assign(capsys, project)
    assert code == 0, err
    assert "600 new customers (2,000 before)" in out
    after = dump(project / "s.duckdb")
    new = {r[2]: r for r in after["assignments"]}
    assert {k: new[k] for k in old} == old          # existing rows unchanged, byte for byte
    added = [r for k, r in new.items() if k not in old]
    assert len(added) == 600 and {r[5] for r in added} == {2}
    assert sum(r[3] == "advisor" for r in new.values()) <= 250
    assert len(after["allocations"]) == 2 * len(before["allocations"])


@pytest.mark.slow
@pytest.mark.parametrize("old, new, what", [
    ("weight = 0.3\ncost_per_contact = 0.1", "weight = 0.35\ncost_per_contact = 0.1", "weights"),
    ('salt = "store-test"', 'salt = "other"', "salt"),
    ('strata = ["tier", "value_band"]', 'strata = ["tier"]', "strata"),
    ("share = 0.05", "share = 0.1", "holdout"),
])
def test_changed_randomisation_is_refused_store_unchanged(capsys, project, old, new, what):
    assert assign(capsys, project)[0] == 0
    before = dump(project / "s.duckdb")
    text = SPEC.replace(old, new, 1)
    if what == "weights":
        text = text.replace("weight = 0.4", "weight = 0.35", 1)
    (project / "exp.toml").write_text(text)
    code, out, err = assign(capsys, project)
    assert code == 2
    line = one_error_line(err)
    assert line.startswith("error: experiment 'exp' v1 already has 2000 assignments; its ")
    assert what in line and "bump `version`" in line
    assert dump(project / "s.duckdb") == before
    # a new version is the way: it is assigned alongside, v1 untouched
    (project / "exp.toml").write_text(text.replace("version = 1", "version = 2"))
    assert assign(capsys, project)[0] == 0
    after = dump(project / "s.duckdb")
    assert [r for r in after["assignments"] if r[1] == 1] == before["assignments"]
    assert sum(r[1] == 2 for r in after["assignments"]) == 2000


@pytest.mark.slow
def test_cost_change_is_allowed_and_recorded(capsys, project):
    assert assign(capsys, project)[0] == 0
    before = dump(project / "s.duckdb")
    (project / "exp.toml").write_text(SPEC.replace("cost_per_contact = 4.0",
                                                   "cost_per_contact = 5.0"))
    code, out, _ = assign(capsys, project)
    assert code == 0 and "stored spec was updated" in out
    after = dump(project / "s.duckdb")
    assert after["assignments"] == before["assignments"]
    assert after["experiments"][0][3] != before["experiments"][0][3]    # spec hash
    assert after["experiments"][0][4] == before["experiments"][0][4]    # randomisation hash


@pytest.mark.slow
def test_failure_mid_run_leaves_store_as_it_was(capsys, project, monkeypatch):
    import upliftlab.assignment.experiment as assign_mod

    assert assign(capsys, project)[0] == 0
    before = dump(project / "s.duckdb")
    pd.concat([make_cohort(2000), make_cohort(300, seed=2, start=9000)]).to_parquet(
        project / "cohort.parquet")

    def boom(*args, **kwargs):  # runs after the new assignments were inserted
        raise RuntimeError("injected failure")

    monkeypatch.setattr(assign_mod, "_experiment_checks", boom)
    with pytest.raises(RuntimeError, match="injected"):
        main(["assign", str(project / "exp.toml"), "--store", str(project / "s.duckdb")])
    assert dump(project / "s.duckdb") == before
    # a store that this run would have created is not left behind
    with pytest.raises(RuntimeError, match="injected"):
        main(["assign", str(project / "exp.toml"), "--store", str(project / "fresh.duckdb")])
    assert not (project / "fresh.duckdb").exists()


@pytest.mark.slow
def test_locked_store(capsys, project):
    assert assign(capsys, project)[0] == 0
    before = dump(project / "s.duckdb")
    path = project / "s.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time\n"
         f"con = duckdb.connect({str(path)!r})\nprint('ready', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        code, _, err = assign(capsys, project)
        assert code == 2
        assert one_error_line(err) == f"error: store {path} is locked by another run"
    finally:
        holder.kill()
        holder.wait()
    assert dump(path) == before


def test_duplicate_ids_exit_2_store_untouched(capsys, project):
    cohort = make_cohort(50)
    pd.concat([cohort, cohort.iloc[[7]]]).to_parquet(project / "cohort.parquet")
    code, _, err = assign(capsys, project)
    assert code == 2
    assert "customer_id '7' appears 2 times" in one_error_line(err)
    assert not (project / "s.duckdb").exists()


@pytest.mark.slow
def test_export_contact_lists(capsys, project):
    assert cli(capsys, "export", project / "exp.toml", "--store", project / "s.duckdb",
               "--out", project / "out")[0] == 2                      # nothing assigned yet
    assert assign(capsys, project)[0] == 0
    rows = dump(project / "s.duckdb")["assignments"]
    for fmt in ("csv", "parquet"):
        out_dir = project / f"out_{fmt}"
        code, out, err = cli(capsys, "export", project / "exp.toml", "--store",
                             project / "s.duckdb", "--out", out_dir, "--format", fmt)
        assert code == 0, err
        files = sorted(p.name for p in out_dir.iterdir())
        assert files == [".upliftlab.json", f"exp_v1_advisor.{fmt}", f"exp_v1_assignment.{fmt}",
                         f"exp_v1_coupon.{fmt}"]
        for arm in ("coupon", "advisor", "assignment"):
            path = out_dir / f"exp_v1_{arm}.{fmt}"
            frame = pd.read_csv(path, dtype={"customer_id": str}) if fmt == "csv" else \
                pd.read_parquet(path)
            frame["customer_id"] = frame["customer_id"].astype(str)
            if arm == "assignment":  # every customer: control and the holdout too
                assert sorted(zip(frame["customer_id"], frame["arm"])) == sorted(
                    (r[2], r[3]) for r in rows)
                assert {"control", "holdout"} <= set(frame["arm"])
            else:
                assert set(frame["arm"]) == {arm}
                assert set(frame["customer_id"]) == {r[2] for r in rows if r[3] == arm}
            assert {"tier", "value_band", "revenue_365d", "stratum"} <= set(frame.columns)
            money = frame[["revenue_365d"]].to_numpy()
            assert (abs(money * 100 - (money * 100).round()) < 1e-6).all()  # cents


@pytest.mark.slow
def test_with_simulated_transactions(capsys, tmp_path):
    """The spec path through the cohort of a simulated world: assign, power, export."""
    from upliftlab.cohort import build_cohort
    from upliftlab.simulate import simulate_world

    world = simulate_world(1500, seed=4)
    world.write(tmp_path / "world")
    root = Path(__file__).resolve().parents[1]
    text = (root / "experiments" / "reactivation_2026q1.toml").read_text().replace(
        "../reports/demo/world/transactions.parquet", "world/transactions.parquet")
    (tmp_path / "r.toml").write_text(text)
    code, out, err = cli(capsys, "assign", tmp_path / "r.toml", "--store", tmp_path / "s.duckdb")
    assert code == 0, err
    cohort = build_cohort(world.transactions, "2026-01-05")
    rows = dump(tmp_path / "s.duckdb")["assignments"]
    assert {r[2] for r in rows} == set(cohort["customer_id"].astype(str))
    code, out, err = cli(capsys, "power", tmp_path / "r.toml", "--store", tmp_path / "s.duckdb")
    assert code == 0, err
    assert "history as of 2025-07-05" in out and "x1.73" in out


@pytest.mark.slow
@pytest.mark.parametrize("old, new, message", [
    ("weight = 0.3\ncost_per_contact = 4.0", "weight = -0.3\ncost_per_contact = 4.0",
     "arms[2].weight: must be >= 0"),
    ("weight = 0.4", "weight = 0.5", "arms: weights sum to 1.1"),
    ("control = true\n", "", "exactly one arm must have control = true (found none)"),
    ('name = "coupon"', 'name = "coupon"\ncontrol = true', "found 'control', 'coupon'"),
    ("cost_per_conversion = 10.0", "cost_per_conversion = -10.0",
     "arms[1].cost_per_conversion: must be >= 0"),
    ("capacity = 250", "capacity = 250\ncapacty = 3", "unknown key 'capacty' in arms[2]"),
    ('name = "exp"', 'name = "exp; drop"', "name: must be a safe identifier"),
])
def test_bad_spec_on_a_running_store_exit_2_store_untouched(capsys, project, old, new, message):
    assert assign(capsys, project)[0] == 0
    before = dump(project / "s.duckdb")
    assert old in SPEC
    (project / "exp.toml").write_text(SPEC.replace(old, new, 1))
    code, out, err = assign(capsys, project)
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert line.startswith(f"error: {project / 'exp.toml'}: ") and message in line, line
    assert dump(project / "s.duckdb") == before
