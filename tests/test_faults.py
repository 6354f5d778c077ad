"""Fault injection through the CLI: every case of the fault and fuzz audit (issue 11) runs in a
fresh copy of a small simulated project and must exit 2 with one line `error: ...`, no
traceback, and leave every pre-existing file (sha256) and store table (dump) exactly as it was.

The cases are a table of command lines (with today's option names) and, where the bad input is
a changed file, a setup step; the project (a 4,000-customer world, its cohort, an assigned and
reported experiment, a fitted model and a policy) is made once per module.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pickle
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _helpers import PYTHON_CLI, cli
from upliftlab.cli import main
from upliftlab.store import open_store

# every test copies the `project` fixture (a world, a store, a fitted model: ~7 s of CPU):
# the whole file is in the full run only, not the fast tier
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SPEC = "experiments/exp.toml"
STORE = "s.duckdb"
TX_GLOB = "world/transactions*.parquet"
COSTS = ["--cost", "coupon=0.10:10", "--cost", "content=0.02", "--cost", "advisor=4"]
BIG = 25_000          # rows of the CSVs: beyond DuckDB's type sample of 20,480 rows
BAD_ROW = 22_001      # the data row that holds the bad value (file line BAD_ROW + 1)
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def spec_text(**changes: str) -> str:
    """The worked spec, pointed at the project's world, with text replacements."""
    text = (ROOT / "experiments" / "reactivation_2026q1.toml").read_text()
    text = text.replace("../reports/demo/world/transactions.parquet", "../world/transactions.parquet")
    text = text.replace("../reports/demo/world/touches.parquet", "../world/touches.parquet")
    text = text.replace("capacity = 5000", "capacity = 200")
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def _bad_csv(frame: pd.DataFrame, path: Path, column: str, value: str = "abc") -> Path:
    """`frame` as CSV with `value` in `column` at data row BAD_ROW (beyond the type sample)."""
    frame = frame.astype({column: object})
    frame.iloc[BAD_ROW - 1, frame.columns.get_loc(column)] = value
    frame.to_csv(path, index=False)
    return path


def _big(frame: pd.DataFrame, n: int = BIG) -> pd.DataFrame:
    """`frame` repeated to `n` rows with fresh customer ids."""
    out = frame.iloc[np.arange(n) % len(frame)].reset_index(drop=True)
    out["customer_id"] = np.arange(10_000_000, 10_000_000 + n)
    return out


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A small simulated project: world, cohort, spec, store (assigned, one weekly report),
    a model, a policy and the CSV inputs of the fuzz cases."""
    base = tmp_path_factory.mktemp("faults") / "project"
    (base / "experiments").mkdir(parents=True)
    (base / SPEC).write_text(spec_text())
    cwd = os.getcwd()
    os.chdir(base)
    try:
        steps = [
            ["simulate", "--n-customers", "4000", "--seed", "3", "--out", "world"],
            ["cohort", "--transactions", "world/transactions.parquet", "--as-of", "2026-01-05",
             "--out", "cohort.parquet"],
            ["assign", SPEC, "--store", STORE],
            ["respond", "--world", "world", "--store", STORE, "--experiment",
             "reactivation_2026q1", "--out", "world/transactions_post.parquet", "--touches",
             "world/touches.parquet"],
            ["report", SPEC, "--as-of", "2026-01-19", "--store", STORE, "--transactions",
             TX_GLOB, "--out", "rep"],
            ["model", "fit", SPEC, "--as-of", "2026-03-06", "--store", STORE, "--transactions",
             TX_GLOB, "--candidates", "s", "--folds", "2", "--bootstrap", "10", "--out", "model"],
            ["policy", "--scores", "model/oof_scores.parquet", "--data",
             "model/oof_scores.parquet", "--budget", "2000", *COSTS, "--out", "policy"],
        ]
        for args in steps:
            try:
                main(args)
            except SystemExit as exc:
                assert not exc.code, (args, exc.code)
    finally:
        os.chdir(cwd)
    _fuzz_inputs(base)
    return base


def _fuzz_inputs(base: Path) -> None:
    rng = np.random.default_rng(11)
    n = BIG
    exp = pd.DataFrame({
        "customer_id": np.arange(n), "arm": rng.choice(["control", "coupon"], n),
        "reactivated": rng.integers(0, 2, n), "revenue": rng.gamma(1.0, 20.0, n).round(2),
        "x1": rng.normal(size=n).round(4), "x2": rng.integers(0, 9, n)})
    exp.to_csv(base / "exp_good.csv", index=False)
    _bad_csv(exp, base / "exp_bad_revenue.csv", "revenue")
    _bad_csv(exp, base / "exp_bad_x1.csv", "x1")
    cohort = pd.read_parquet(base / "cohort.parquet")
    _bad_csv(_big(cohort), base / "customers_bad.csv", "revenue_365d")
    _bad_csv(_big(cohort), base / "cohort_bad.csv", "revenue_365d")
    cohort.head(0).to_csv(base / "cohort_empty.csv", index=False)
    tx = pd.read_parquet(base / "world" / "transactions.parquet")
    _bad_csv(tx.head(BIG), base / "tx_bad.csv", "amount", "12,50 EUR")
    assignments = pd.DataFrame({"customer_id": np.arange(n), "arm": "control"})
    _bad_csv(assignments, base / "assignments_bad.csv", "customer_id", "C-17")
    oof = pd.read_parquet(base / "model" / "oof_scores.parquet")
    scores = _big(oof[["customer_id", "base"] + [c for c in oof if c.startswith("uplift_")]])
    _bad_csv(scores, base / "scores_bad.csv", "uplift_coupon", "n/a?")
    (base / "experiments" / "bad_table.toml").write_text(spec_text(**{
        'transactions = "../world/transactions.parquet"': 'table = "../cohort_bad.csv"',
        'history_as_of = 2025-07-05': 'rates = { short = 0.05, mid = 0.03, long = 0.01 }'}))
    (base / "experiments" / "empty_table.toml").write_text(spec_text(**{
        'transactions = "../world/transactions.parquet"': 'table = "../cohort_empty.csv"',
        'history_as_of = 2025-07-05': 'rates = { short = 0.05, mid = 0.03, long = 0.01 }',
        'name = "reactivation_2026q1"': 'name = "empty_table"'}))
    (base / "experiments" / "bad_tx.toml").write_text(spec_text(**{
        '"../world/transactions.parquet"': '"../tx_bad.csv"',
        'name = "reactivation_2026q1"': 'name = "bad_tx"'}))
    (base / "experiments" / "rates_missing.toml").write_text(spec_text(**{
        'history_as_of = 2025-07-05': 'rates = { short = 0.05 }'}))
    (base / "experiments" / "text_covariate.toml").write_text(spec_text(**{
        'covariates = ["revenue_365d", "orders_730d"]': 'covariates = ["tier"]',
        'name = "reactivation_2026q1"': 'name = "text_covariate"'}))
    (base / "experiments" / "tiers_changed.toml").write_text(spec_text(**{
        'tiers = "short=180,mid=365,long"': 'tiers = "short=120,mid=365,long"'}))


# ---- helpers for cases that damage a file before the command runs ------------------------------

def _rehash(project: Path, data: bytes) -> None:
    """Write `data` as model.pkl with a matching checksum in model.json (a careful tamperer)."""
    (project / "model" / "model.pkl").write_bytes(data)
    meta_path = project / "model" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["pickle_sha256"] = hashlib.sha256(data).hexdigest()
    meta_path.write_text(json.dumps(meta))


def _truncate(project: Path) -> None:
    data = (project / "model" / "model.pkl").read_bytes()
    _rehash(project, data[: len(data) // 2])


def _pkl_dir(project: Path) -> None:
    (project / "model" / "model.pkl").unlink()
    (project / "model" / "model.pkl").mkdir()


def _pkl_dev_zero(project: Path) -> None:
    (project / "model" / "model.pkl").unlink()
    (project / "model" / "model.pkl").symlink_to("/dev/zero")


def _pkl_fifo(project: Path) -> None:
    (project / "model" / "model.pkl").unlink()
    os.mkfifo(project / "model" / "model.pkl")


def _plain_folder(project: Path) -> None:
    (project / "notes").mkdir()
    (project / "notes" / "todo.txt").write_text("keep me\n")


def _duplicate_ids(project: Path) -> None:
    cohort = pd.read_parquet(project / "cohort.parquet")
    pd.concat([cohort, cohort.head(3)]).to_parquet(project / "dups.parquet")


def _inf_features(project: Path) -> None:
    cohort = pd.read_parquet(project / "cohort.parquet")
    cohort.loc[cohort.index[5], "revenue_365d"] = np.inf
    cohort.loc[cohort.index[9], "avg_order_value"] = -np.inf
    cohort.to_parquet(project / "inf.parquet")


def _read_only_dir(project: Path) -> None:
    (project / "ro").mkdir()
    (project / "ro").chmod(0o555)


@dataclass(frozen=True)
class Case:
    id: str
    args: list[str]
    message: str                                   # a part of the expected error line
    setup: Callable[[Path], None] | None = None
    marks: tuple = field(default=())
    env: tuple[tuple[str, str], ...] = ()           # environment of the run
    seconds: float | None = None                    # the error comes within this time


LONG = "r" * 300
DATA = ["--data", "exp_good.csv", "--arm-col", "arm", "--control", "control"]
FIT_DATA = [*DATA, "--metric", "reactivated", "--feature", "x1", "--feature", "x2",
            "--folds", "2", "--bootstrap", "10", "--candidates", "s"]
REPORT_DATA = [*DATA, "--metric", "reactivated", "--metric", "revenue"]
SCORE = ["model", "score", "--model", "model", "--customers", "cohort.parquet", "--out",
         "scores.parquet"]
POLICY = ["policy", "--scores", "model/oof_scores.parquet", "--budget", "2000", *COSTS]


def bad_data(args: list[str], name: str) -> list[str]:
    return [name if a == "exp_good.csv" else a for a in args]


# Root ignores file permissions (CAP_DAC_OVERRIDE), and CI runs as root: these cases then run the
# CLI in a child process whose capability bounding set lacks the permission overrides
# (`setpriv`, util-linux), so that a read-only folder is read-only for it as for any user.
SETPRIV = shutil.which("setpriv")
UNPRIVILEGED = (pytest.mark.unprivileged,
                pytest.mark.skipif(IS_ROOT and SETPRIV is None,
                                   reason="running as root without setpriv to drop the "
                                          "permission overrides"))

NEEDS_PYSPARK = pytest.mark.skipif(
    importlib.util.find_spec("pyspark") is None or not (
        shutil.which("java") or os.path.exists(os.path.join(os.environ.get("JAVA_HOME", "-"),
                                                            "bin", "java"))),
    reason="without PySpark or Java --engine spark says what to install (tests/test_engine_cli)")

CASES = [
    # 1. a command refuses an existing --out it did not write
    Case("model-fit-out-world", ["model", "fit", *FIT_DATA, "--out", "world"],
         "written by `upliftlab simulate`"),
    Case("model-fit-out-report", ["model", "fit", *FIT_DATA, "--out", "rep"],
         "written by `upliftlab report`"),
    Case("model-fit-out-plain-folder", ["model", "fit", *FIT_DATA, "--out", "notes"],
         "did not write (todo.txt)", _plain_folder),
    Case("model-fit-n-jobs-zero", ["model", "fit", *FIT_DATA, "--n-jobs", "0", "--out", "m"],
         "--n-jobs"),
    Case("policy-out-world", [*POLICY, "--out", "world"], "written by `upliftlab simulate`"),
    Case("policy-out-report", [*POLICY, "--out", "rep"], "written by `upliftlab report`"),
    Case("export-out-world", ["export", SPEC, "--store", STORE, "--out", "world"],
         "written by `upliftlab simulate`"),
    Case("export-out-plain-folder", ["export", SPEC, "--store", STORE, "--out", "notes"],
         "did not write (todo.txt)", _plain_folder),
    Case("export-out-folder-of-csvs", ["export", SPEC, "--store", STORE, "--out", "mine"],
         "did not write (customers.csv)", lambda p: (p / "mine").mkdir() or shutil.copyfile(
             p / "exp_good.csv", p / "mine" / "customers.csv")),
    Case("report-out-model", ["report", *REPORT_DATA, "--out", "model"],
         "written by `upliftlab model`"),
    Case("report-spec-out-policy", ["report", SPEC, "--as-of", "2026-01-26", "--store", STORE,
                                    "--transactions", TX_GLOB, "--out", "policy"],
         "written by `upliftlab policy`"),
    Case("simulate-out-model", ["simulate", "--n-customers", "100", "--out", "model"],
         "written by `upliftlab model`"),
    # 2 and 6. malformed model folders
    Case("model-dict-pickle", SCORE,
         "holds a dict, not a fitted upliftlab UpliftModel",
         lambda p: _rehash(p, pickle.dumps({"learner": "s"}))),
    Case("model-truncated-pickle", SCORE,
         "cannot unpickle the model", _truncate),
    Case("model-pkl-is-a-folder", SCORE,
         "model.pkl is not a regular file", _pkl_dir),
    Case("model-pkl-dev-zero", SCORE,
         "model.pkl is not a regular file", _pkl_dev_zero),
    Case("model-pkl-fifo", SCORE,
         "model.pkl is not a regular file", _pkl_fifo),
    Case("model-json-a-list", SCORE,
         "metadata is a JSON list", lambda p: (p / "model" / "model.json").write_text("[1,2,3]")),
    Case("model-pkl-unreadable", SCORE,
         "cannot read model.pkl", lambda p: (p / "model" / "model.pkl").chmod(0), UNPRIVILEGED),
    Case("policy-model-dict-pickle", ["policy", "--model", "model", "--customers",
                                      "cohort.parquet", "--budget", "100", *COSTS, "--out", "p2"],
         "holds a dict", lambda p: _rehash(p, pickle.dumps({"learner": "s"}))),
    # 4. a bad value beyond DuckDB's type sample: one error naming file, line and column
    Case("csv-report-data", ["report", *bad_data(REPORT_DATA, "exp_bad_revenue.csv"), "--out",
                             "r2"], f"line {BAD_ROW + 1}, column 'revenue'"),
    Case("csv-model-fit-data", ["model", "fit", *bad_data(FIT_DATA, "exp_bad_x1.csv"), "--out",
                                "m2"], f"line {BAD_ROW + 1}, column 'x1'"),
    Case("csv-model-score-customers", ["model", "score", "--model", "model", "--customers",
                                       "customers_bad.csv", "--out", "scores.parquet"],
         f"line {BAD_ROW + 1}, column 'revenue_365d'"),
    Case("csv-assign-cohort-table", ["assign", "experiments/bad_table.toml", "--store", STORE],
         f"line {BAD_ROW + 1}, column 'revenue_365d'"),
    Case("csv-assign-transactions", ["assign", "experiments/bad_tx.toml", "--store", STORE],
         f"line {BAD_ROW + 1}, column 'amount'"),
    Case("csv-report-spec-transactions", ["report", SPEC, "--as-of", "2026-01-26", "--store",
                                          STORE, "--transactions", "tx_bad.csv", "--out", "r2"],
         f"line {BAD_ROW + 1}, column 'amount'"),
    Case("csv-respond-assignments", ["respond", "--world", "world", "--assignments",
                                     "assignments_bad.csv", "--out", "post2.parquet"],
         f"line {BAD_ROW + 1}, column 'customer_id'"),
    Case("csv-policy-scores", ["policy", "--scores", "scores_bad.csv", "--budget", "2000",
                               *COSTS, "--out", "p2"], f"line {BAD_ROW + 1}, column 'uplift_coupon'"),
    Case("csv-cohort-transactions", ["cohort", "--transactions", "tx_bad.csv", "--as-of",
                                     "2026-01-05", "--out", "c2.parquet"], "amount"),
    Case("glob-of-different-schemas", ["report", SPEC, "--as-of", "2026-01-26", "--store", STORE,
                                       "--transactions", "world/*.parquet", "--out", "r2"],
         "world/*.parquet"),
    # 5. paths no rename can replace, names too long, folders that cannot be written
    Case("report-out-dot", ["report", *REPORT_DATA, "--out", "."], "--out ."),
    Case("report-out-dotdot", ["report", *REPORT_DATA, "--out", ".."], "--out .."),
    Case("report-spec-out-dot", ["report", SPEC, "--as-of", "2026-01-26", "--store", STORE,
                                 "--transactions", TX_GLOB, "--out", "."], "--out ."),
    Case("policy-out-dot", [*POLICY, "--out", "."], "--out ."),
    Case("model-fit-out-dotdot", ["model", "fit", *FIT_DATA, "--out", ".."], "--out .."),
    Case("export-out-dot", ["export", SPEC, "--store", STORE, "--out", "."], "--out ."),
    Case("report-out-long-name", ["report", *REPORT_DATA, "--out", LONG], "name too long"),
    Case("model-score-out-xlsx", [*SCORE[:-1], "scores.xlsx"],
         "--out scores.xlsx: expected a .parquet or .csv file"),
    Case("assign-store-long-name", ["assign", SPEC, "--store", LONG + ".duckdb"],
         "name too long"),
    Case("export-out-under-a-file", ["export", SPEC, "--store", STORE, "--out",
                                     "cohort.parquet/contacts"], "cohort.parquet"),
    Case("policy-out-under-a-file", [*POLICY, "--out", "cohort.parquet/policy"],
         "cohort.parquet"),
    Case("assign-store-under-a-file", ["assign", SPEC, "--store", "cohort.parquet/s.duckdb"],
         "cohort.parquet"),
    Case("export-out-read-only", ["export", SPEC, "--store", STORE, "--out", "ro/contacts"],
         "ro/contacts", _read_only_dir, UNPRIVILEGED),
    Case("policy-out-read-only", [*POLICY, "--out", "ro/policy"], "ro/policy", _read_only_dir,
         UNPRIVILEGED),
    Case("assign-store-read-only", ["assign", SPEC, "--store", "ro/s.duckdb"], "ro/s.duckdb",
         _read_only_dir, UNPRIVILEGED),
    # 7. a spec with a tier missing from the baseline rates
    Case("power-rates-missing-tier", ["power", "experiments/rates_missing.toml", "--store",
                                      "none.duckdb"], "mid, long"),
    # 8. accepted today and wrong
    Case("report-as-of-not-a-date", ["report", *REPORT_DATA, "--as-of", "2026-13-45",
                                      "--out", "r2"], "'2026-13-45' is not a date"),
    Case("report-as-of-injection", ["report", *REPORT_DATA, "--as-of", "garbage'; DROP",
                                    "--out", "r2"], "is not a date"),
    Case("assign-header-only-cohort", ["assign", "experiments/empty_table.toml", "--store",
                                       STORE], "no customers"),
    Case("assign-text-covariate", ["assign", "experiments/text_covariate.toml", "--store",
                                   STORE], "covariate 'tier'"),
    Case("power-text-covariate", ["power", "experiments/text_covariate.toml", "--store",
                                  STORE], "covariate 'tier'"),
    Case("model-fit-weight-zero", ["model", "fit", *FIT_DATA, "--weight", "control=0",
                                   "--weight", "coupon=1", "--out", "m2"], "must be > 0"),
    Case("model-fit-weight-inf", ["model", "fit", *FIT_DATA, "--weight", "control=inf",
                                  "--weight", "coupon=1", "--out", "m2"], "finite weight"),
    Case("policy-budget-inf", [*POLICY[:-8], "--budget", "inf", *COSTS, "--out", "p2"],
         "--budget must be >= 0 and finite"),
    Case("policy-budget-nan", [*POLICY[:-8], "--budget", "nan", *COSTS, "--out", "p2"],
         "--budget must be >= 0 and finite"),
    Case("policy-cost-inf", [*POLICY[:-6], "--cost", "coupon=inf", *COSTS[2:], "--out", "p2"],
         "finite"),
    Case("model-score-duplicate-ids", ["model", "score", "--model", "model", "--customers",
                                       "dups.parquet", "--out", "scores.parquet"],
         "3 duplicate", _duplicate_ids),
    Case("model-score-inf-features", ["model", "score", "--model", "model", "--customers",
                                      "inf.parquet", "--out", "scores.parquet"],
         "infinite", _inf_features),
    Case("assign-tiers-changed", ["assign", "experiments/tiers_changed.toml", "--store", STORE],
         "tiers changed"),
    # an engine that does not exist, on the command line or in the spec: named, never DuckDB
    Case("assign-engine-bad", ["assign", SPEC, "--store", STORE, "--engine", "spork"],
         "'spork' is not one of 'duckdb', 'spark'"),
    Case("assign-spec-engine-bad", ["assign", "experiments/engine_bad.toml", "--store", STORE],
         "engine", lambda p: (p / "experiments" / "engine_bad.toml").write_text(
             'engine = "spork"\n' + (p / "experiments" / "exp.toml").read_text())),
    # a Spark cluster that cannot be reached: the master named, quickly, never DuckDB instead
    *(Case(f"{name}-spark-master-unreachable", [*args, "--engine", "spark"],
           "cannot reach the Spark master spark://127.0.0.1:1", env=(
               ("UPLIFTLAB_SPARK_MASTER", "spark://127.0.0.1:1"),), seconds=30.0,
           marks=(NEEDS_PYSPARK,))
      for name, args in (
          ("cohort", ["cohort", "--transactions", "world/transactions.parquet", "--as-of",
                      "2026-01-05", "--out", "c2.parquet"]),
          ("model-score", [*SCORE[:-1], "scores2.parquet"]),
          ("assign", ["assign", SPEC, "--store", STORE]),
          ("export", ["export", SPEC, "--store", STORE, "--out", "lists"]))),
    # Spark reads the spec's sources as Parquet: a CSV is named before Spark starts
    Case("assign-engine-spark-csv-cohort", ["assign", "experiments/bad_table.toml", "--store",
                                            STORE, "--engine", "spark"],
         "cohort_bad.csv: --engine spark reads Parquet cohort tables"),
    Case("export-engine-spark-csv-cohort", ["export", "experiments/bad_table.toml", "--store",
                                            STORE, "--out", "lists", "--engine", "spark"],
         "cohort_bad.csv: --engine spark reads Parquet cohort tables"),
    Case("report-engine-spark-csv-transactions", ["report", SPEC, "--as-of", "2026-01-26",
                                                  "--store", STORE, "--transactions",
                                                  "tx_bad.csv", "--out", "rep2",
                                                  "--engine", "spark"],
         "tx_bad.csv: --engine spark reads Parquet transactions"),
    # on Spark the touch log is read as Parquet too: a CSV named before anything starts
    Case("report-engine-spark-csv-touches", ["report", SPEC, "--as-of", "2026-01-26", "--store",
                                             STORE, "--transactions", TX_GLOB, "--touches",
                                             "touches.csv", "--out", "rep2", "--engine", "spark"],
         "touches.csv: --engine spark reads Parquet touch logs",
         lambda p: pd.read_parquet(p / "world" / "touches.parquet").to_csv(
             p / "touches.csv", index=False)),
]


def snapshot(root: Path) -> dict:
    """sha256 of every file (symlinks by target), the folders, and every store's tables."""
    files, stores = {}, {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            files[rel] = "-> " + os.readlink(p)
        elif p.is_dir():
            files[rel] = "dir"
        elif p.is_fifo():
            files[rel] = "fifo"
        elif os.access(p, os.R_OK):
            files[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            files[rel] = "unreadable"
        if p.suffix == ".duckdb" and p.is_file():
            with open_store(p, read_only=True) as store:
                stores[rel] = store.dump()
    return {"files": files, "stores": stores}


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input_exit_2_one_line_nothing_changed(case, project, tmp_path, capsys, monkeypatch):
    work = tmp_path / "p"
    shutil.copytree(project, work, symlinks=True)
    if case.setup is not None:
        case.setup(work)
    monkeypatch.chdir(work)
    for name, value in case.env:
        monkeypatch.setenv(name, value)
    before = snapshot(work)
    start = time.perf_counter()
    if IS_ROOT and any(m.name == "unprivileged" for m in case.marks):
        code, err = _run_without_dac_override(work, case.args)
    else:
        code, _, err = cli(capsys, *case.args)
    if case.seconds is not None:
        assert time.perf_counter() - start < case.seconds, err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert case.message in lines[0], lines[0]
    (work / "ro").chmod(0o755) if (work / "ro").exists() else None
    assert snapshot(work) == before


def _run_without_dac_override(work: Path, args: list[str]) -> tuple[int, str]:
    """Run the CLI as root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH: file modes apply."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]), "UPLIFTLAB_QUIET": "1"}
    proc = subprocess.run([SETPRIV, "--bounding-set=-dac_override,-dac_read_search", "--",
                           *PYTHON_CLI, *map(str, args)], cwd=work, env=env, capture_output=True, text=True)
    return proc.returncode, proc.stderr


# ---- kill -9 at every file-system step: the target is the old one or the new one ---------------

def _state(target: Path) -> dict[str, str] | None:
    if not target.exists():
        return None
    return {p.relative_to(target).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(target.rglob("*")) if p.is_file()}


def _run_killed(work: Path, args: list[str], step: int | None) -> int:
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]), "UPLIFTLAB_QUIET": "1"}
    env.pop("UPLIFTLAB_FAULT_AFTER_STEP", None)
    if step is not None:
        env["UPLIFTLAB_FAULT_AFTER_STEP"] = str(step)
    proc = subprocess.run([*PYTHON_CLI, *args], cwd=work, env=env, capture_output=True, text=True)
    assert proc.returncode in (0, 86), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode


KILLED = [
    pytest.param("rep", ["report", SPEC, "--as-of", "2026-01-26", "--store", STORE,
                         "--transactions", TX_GLOB, "--out", "rep"], id="report"),
    pytest.param("policy", ["policy", "--scores", "model/oof_scores.parquet", "--budget", "500",
                            *COSTS, "--out", "policy"], id="policy"),
    pytest.param("model", ["model", "fit", "--data", "exp_small.csv", "--arm-col", "arm", "--control",
                           "control", "--metric", "reactivated", "--feature", "x1", "--feature",
                           "x2", "--folds", "2", "--bootstrap", "10", "--candidates", "s",
                           "--out", "model"], id="model-fit"),
]


@pytest.mark.slow
@pytest.mark.parametrize("target, args", KILLED)
def test_killed_at_every_step_the_target_is_old_or_new(target, args, project, tmp_path):
    """UPLIFTLAB_FAULT_AFTER_STEP=N stops the run dead after its N-th file-system step; for
    every N the target folder is the old one or a complete new one (its marker's sha256 all
    match), never missing or mixed, and a report on disk always has its row in the store."""
    from upliftlab._files import verify

    pd.read_csv(project / "exp_good.csv", nrows=1000).to_csv(project / "exp_small.csv",
                                                             index=False)
    old = _state(project / target)
    assert old is not None
    outcomes = []
    for step in range(1, 40):
        work = tmp_path / f"n{step}"
        shutil.copytree(project, work, symlinks=True)
        code = _run_killed(work, args, step)
        now = _state(work / target)
        assert now is not None, f"step {step}: {target} is missing"
        if now != old:
            verify(work / target)  # raises if a file is missing or from another run
            assert (read := json.loads((work / target / ".upliftlab.json").read_text()))
            assert set(read["files"]) | {".upliftlab.json"} == set(now), f"step {step}: mixed"
        if target == "rep":
            rows = _weekly_rows(work)
            assert now == old or "2026-01-26" in rows, f"step {step}: report without its row"
        outcomes.append("new" if now != old else "old")
        if code == 0:
            break
        if step == 3:  # a later run cleans what the killed one left beside the target
            assert _run_killed(work, args, None) == 0
            assert not [p for p in work.iterdir() if p.name.startswith(f".{target}.")]
    assert code == 0 and outcomes[-1] == "new" and "old" in outcomes, outcomes
    shutil.rmtree(tmp_path, ignore_errors=True)


def _weekly_rows(work: Path) -> set[str]:
    with open_store(work / STORE, read_only=True) as store:
        return {str(r[0]) for r in store.con.execute(
            "SELECT as_of FROM weekly_results").fetchall()}


@pytest.mark.slow
def test_assign_into_a_new_store_killed_leaves_no_store_file(project, tmp_path):
    """Killed at any step of its first run, `assign` leaves no store file or the complete
    store, never an empty one; the next run succeeds and removes the killed run's leftovers."""
    for step in range(1, 10):
        work = tmp_path / f"n{step}"
        shutil.copytree(project, work, symlinks=True)
        code = _run_killed(work, ["assign", SPEC, "--store", "new.duckdb"], step)
        store = work / "new.duckdb"
        if store.exists():
            with open_store(store, read_only=True) as s:
                assert s.dump()["assignments"], f"step {step}: an empty store"
        else:
            assert code == 86
        if code == 0:
            break
        assert _run_killed(work, ["assign", SPEC, "--store", "new.duckdb"], None) == 0
        assert not [p for p in work.iterdir() if p.name.startswith(".new.duckdb.")]
    assert code == 0


# ---- the rest of the audit: trust in what is read back, leftovers, escaping ---------------------

class _Evil:
    """Unpickling it creates the file `path` (stands for any code a pickle can run)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_a_pickle_swapped_during_load_is_never_run(project, tmp_path):
    """The checksum is checked on the very bytes that are unpickled: a model.pkl swapped back
    and forth by atomic renames while `load_model` runs is refused or loaded, never run."""
    import threading

    from upliftlab.errors import InputError
    from upliftlab.uplift import load_model

    model = tmp_path / "model"
    shutil.copytree(project / "model", model)
    good = (model / "model.pkl").read_bytes()
    ran = tmp_path / "evil-ran"
    evil = pickle.dumps(_Evil(str(ran)))
    (tmp_path / "good.pkl").write_bytes(good)
    (tmp_path / "evil.pkl").write_bytes(evil)
    stop = threading.Event()

    def swap() -> None:
        i = 0
        while not stop.is_set():
            src = tmp_path / ("evil.pkl" if i % 2 else "good.pkl")
            shutil.copyfile(src, tmp_path / "next.pkl")
            os.replace(tmp_path / "next.pkl", model / "model.pkl")
            i += 1

    thread = threading.Thread(target=swap)
    thread.start()
    loaded = refused = 0
    try:
        for _ in range(25):
            try:
                load_model(model)
                loaded += 1
            except InputError as exc:
                assert "checksum does not match" in str(exc)
                refused += 1
    finally:
        stop.set()
        thread.join()
    assert not ran.exists()
    assert loaded + refused == 25


def test_stale_staging_folders_are_removed_and_live_ones_kept(project, tmp_path):
    import subprocess
    import sys

    from upliftlab.report import write_report

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    report = json.loads((project / "rep" / "report.json").read_text())
    leftovers = [f".rep.stage-{dead}-abcd", f".rep.old-{dead}-efgh", ".rep.tmp-1234",
                 ".rep.old-5678"]
    for name in leftovers:
        shutil.copytree(project / "model", tmp_path / name)  # one holds a model with its checksum
    live = tmp_path / f".rep.stage-{os.getpid()}-live"
    live.mkdir()
    write_report(report, tmp_path / "rep")
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "rep"]


def test_without_atomic_exchange_a_run_killed_between_renames_is_repaired(project, tmp_path,
                                                                          monkeypatch):
    """Where the file system cannot exchange two folders the old one is moved aside first;
    a run that died right then has its old folder put back by the next run."""
    import subprocess
    import sys

    from upliftlab import _files
    from upliftlab.report import write_report

    monkeypatch.setattr(_files, "_exchange", lambda a, b: False)
    report = json.loads((project / "rep" / "report.json").read_text())
    out = tmp_path / "rep"
    write_report(report, out)
    write_report(report, out)  # replaced by two renames
    assert _files.verify(out)["owner"] == "report"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    aside = tmp_path / f".rep.old-{dead}-abcd"
    out.rename(aside)  # as left by a run killed between its two renames
    _files.clean_stale(out)
    assert out.is_dir() and not aside.exists() and _files.verify(out)["owner"] == "report"


def test_arm_labels_are_inert_in_report_md(project, tmp_path, capsys, monkeypatch):
    data = pd.read_csv(project / "exp_good.csv", nrows=4000)
    data["arm"] = data["arm"].map({"control": "control", "coupon": "<script>alert(1)</script>"})
    data.to_csv(tmp_path / "d.csv", index=False)
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "report", "--data", "d.csv", "--arm-col", "arm", "--control",
                       "control", "--metric", "reactivated", "--out", "r")
    assert code == 0, err
    md = (tmp_path / "r" / "report.md").read_text()
    assert "<script" not in md and "&lt;script>alert(1)&lt;/script>" in md
    assert "<script" not in (tmp_path / "r" / "report.html").read_text()
