"""`upliftlab risk fit|score` and the at-risk spec on bad input: exit 2, one `error:` line, no
traceback, and every file exactly as it was (nothing half-written)."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pandas as pd
import pytest

import upliftlab as ul
from _helpers import AS_OF, cli, spec_toml, two_arms
from upliftlab.cli import main


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("riskfault")
    world = ul.simulate_world(4000, seed=4)
    world.write(root / "world")
    tx = root / "world" / "transactions.parquet"
    model = root / "model"
    code = main_ok(["risk", "fit", "--transactions", str(tx), "--as-of", "2025-11-06",
                    "--bootstrap", "20", "--out", str(model)])
    assert code == 0
    # the same purchases without the discount column: the model's discount_share is missing
    plain = root / "plain.csv"
    world.transactions.drop(columns=["discount_used", "category"]).to_csv(plain, index=False)
    return root, tx, model, plain


def main_ok(args) -> int:
    try:
        main(args)
        return 0
    except SystemExit as exc:
        return exc.code or 0


def _check_fault(capsys, root: Path, args: list[str], needle: str) -> None:
    (root / "out").mkdir(exist_ok=True)
    (root / "out" / "keep.txt").write_text("an earlier output")
    before = _tree(root)
    code, _, err = cli(capsys, *args)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert needle in lines[0], lines[0]
    assert _tree(root) == before


@pytest.mark.slow
def test_snapshot_with_too_little_history(setup, capsys):
    root, tx, _, _ = setup
    _check_fault(capsys, root, ["risk", "fit", "--transactions", str(tx), "--as-of",
                                "2024-04-01", "--out", str(root / "out")], "history")


def test_label_window_not_observed(setup, capsys):
    root, tx, _, _ = setup
    _check_fault(capsys, root, ["risk", "fit", "--transactions", str(tx), "--as-of",
                                "2025-12-01", "--out", str(root / "out")], "not observed yet")


def test_training_snapshot_overlapping_the_evaluation(setup, capsys):
    root, tx, _, _ = setup
    _check_fault(capsys, root, ["risk", "fit", "--transactions", str(tx), "--as-of",
                                "2025-11-06", "--snapshot", "2025-10-01",
                                "--out", str(root / "out")], "out of time")


@pytest.mark.parametrize("horizon", ["0", "-5"])
def test_horizon_not_positive(setup, capsys, horizon):
    root, tx, _, _ = setup
    _check_fault(capsys, root, ["risk", "fit", "--transactions", str(tx), "--as-of",
                                "2025-11-06", "--horizon", horizon, "--out", str(root / "out")],
                 "--horizon")


@pytest.mark.slow
def test_model_on_data_without_its_features(setup, capsys):
    root, _, model, plain = setup
    _check_fault(capsys, root, ["risk", "score", "--model", str(model), "--transactions",
                                str(plain), "--as-of", "2026-01-05",
                                "--out", str(root / "out" / "scores.parquet")], "discount_share")


@pytest.mark.slow
def test_model_that_uses_events_scored_without_them(setup, capsys, tmp_path):
    root, tx, _, _ = setup
    events = tmp_path / "events.csv"
    pd.DataFrame({"customer_id": [1, 2, 3], "ts": ["2025-05-01", "2025-06-01", "2025-07-01"],
                  "event_type": ["visit", "visit", "complaint"]}).to_csv(events, index=False)
    model = tmp_path / "model-ev"
    assert main_ok(["risk", "fit", "--transactions", str(tx), "--as-of", "2025-11-06",
                    "--events", str(events), "--bootstrap", "20", "--out", str(model)]) == 0
    _check_fault(capsys, root, ["risk", "score", "--model", str(model), "--transactions",
                                str(tx), "--as-of", "2026-01-05",
                                "--out", str(root / "out" / "scores.parquet")], "--events")


def test_not_a_risk_model(setup, capsys):
    root, tx, _, _ = setup
    _check_fault(capsys, root, ["risk", "score", "--model", str(root / "world"),
                                "--transactions", str(tx), "--as-of", "2026-01-05",
                                "--out", str(root / "out" / "scores.parquet")], "model")


def _at_risk_spec(path: Path, tx: Path, cohort: dict | None = None,
                  tables: dict | None = None) -> Path:
    path.parent.mkdir(exist_ok=True)
    path.write_text(spec_toml("prevent", "prevent", cohort={
        "kind": "at_risk", "transactions": str(tx), "as_of": AS_OF, **(cohort or {})},
        arms=two_arms(), tables=tables))
    return path


def test_at_risk_spec_without_a_model(setup, capsys):
    root, tx, _, _ = setup
    spec = _at_risk_spec(root / "out" / "atrisk.toml", tx)
    _check_fault(capsys, root, ["assign", str(spec), "--store", str(root / "out" / "s.duckdb")],
                 "model")

def test_score_writes_levels_by_share_and_by_saved_thresholds(setup, capsys, tmp_path):
    import json

    root, tx, model, _ = setup
    out = tmp_path / "scores.parquet"
    code, _, err = cli(capsys, "risk", "score", "--model", str(model), "--transactions", str(tx),
                       "--as-of", "2026-01-05", "--level-shares", "high=0.2,medium=0.3",
                       "--batch-size", "1000", "--out", str(out))
    assert code == 0, err
    s = pd.read_parquet(out)
    share = s["risk_level"].value_counts(normalize=True)
    assert share["high"] == pytest.approx(0.2, abs=0.01)
    assert share["medium"] == pytest.approx(0.3, abs=0.01)
    assert {"customer_id", "days_since_last", "overdue_ratio", "risk"} <= set(s.columns)
    assert (s["days_since_last"] < 90).all() and s["customer_id"].is_unique
    # without shares, the thresholds saved with the model decide
    saved = json.loads((model / "model.json").read_text())["levels"]
    code, _, _ = cli(capsys, "risk", "score", "--model", str(model), "--transactions", str(tx),
                     "--as-of", "2026-01-05", "--out", str(out))
    s = pd.read_parquet(out)
    assert code == 0
    assert ((s["risk"] >= saved["high"]) == (s["risk_level"] == "high")).all()


def test_at_risk_spec_with_a_dormant_baseline(setup, capsys):
    root, tx, model, _ = setup
    spec = _at_risk_spec(root / "out" / "atrisk-baseline.toml", tx, {"model": str(model)},
                         {"baseline": {"history_as_of": dt.date(2025, 7, 5)}})
    _check_fault(capsys, root, ["power", str(spec), "--store", str(root / "out" / "s.duckdb")],
                 "baseline.rates")
