"""Churn risk on the simulator, against its truth: the model out of time beats the overdue rule
and BG/NBD and comes within a stated distance of the true probabilities' own AUC, is calibrated
by decile, and an at-risk experiment (assign, respond, report) recovers the true preventive
effect; the uplift model and the policy take it unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import upliftlab as ul
from _helpers import AS_OF, cli_code, spec_toml, two_arms
from upliftlab.risk import fit_risk, load_risk_model, save_risk_model
from upliftlab.simulate_risk import true_dormancy

pytestmark = pytest.mark.slow

EVAL = "2025-11-06"          # the last snapshot whose 60-day window closes before the campaign
# the true probabilities know each customer's latent churn; purchase history only hints at it.
# On this world the truth's AUC is ~0.97 and the model's ~0.87: we require within 0.15.
AUC_DISTANCE = 0.15


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory) -> tuple[ul.World, Path]:
    world = ul.simulate_world(40_000, seed=21)
    out = tmp_path_factory.mktemp("risk") / "world"
    world.write(out)
    return world, out


@pytest.fixture(scope="module")
def fitted(world_dir):
    world, path = world_dir
    return fit_risk(path / "transactions.parquet", EVAL, horizon=60, n_snapshots=4, every=30,
                    truth=true_dormancy(world, EVAL, 60), n_bootstrap=200, seed=1)


def test_model_beats_the_baselines_out_of_time(fitted):
    rows = fitted.comparison.set_index("name")
    model, overdue, bg = rows.loc["model"], rows.loc["overdue rule"], rows.loc["BG/NBD"]
    truth = rows.loc["truth (simulator)"]
    # better than both baselines beyond the bootstrap noise, and near the truth
    assert model["auc_low"] > overdue["auc_high"]
    assert model["auc_low"] > bg["auc_high"]
    assert truth["auc"] - model["auc"] < AUC_DISTANCE
    assert model["brier"] < bg["brier"]
    assert max(fitted.train_snapshots) < fitted.eval_snapshot


def test_model_is_calibrated_by_decile(fitted):
    from upliftlab.risk.evaluate import calibration_table

    assert len(fitted.calibration) == 10
    # every decile's mean prediction inside the observed rate's Wilson interval at the
    # Bonferroni level for ten deciles (family-wise 5%)
    h = fitted.holdout
    table = calibration_table(h["risk"], h["dormant"], level=1 - 0.05 / 10)
    assert table["within"].all(), table


def test_at_risk_experiment_recovers_the_true_preventive_effect(world_dir, fitted, tmp_path,
                                                                capsys):
    world, path = world_dir
    model_dir = tmp_path / "risk-model"
    save_risk_model(fitted, model_dir)
    assert (model_dir / "report.html").is_file() and (model_dir / "model.pkl").is_file()
    spec = tmp_path / "prevent.toml"
    spec.write_text(spec_toml(
        "prevent", "prevent", outcome_window_days=60, covariates=["revenue_365d", "orders_365d"],
        strata=["tier"], cohort={"kind": "at_risk", "model": str(model_dir), "as_of": AS_OF,
                                 "transactions": str(path / "transactions.parquet"),
                                 "min_level": "medium"},
        arms=two_arms(cost_per_contact=0.10), tables={"metrics": {"secondary": ["revenue"]}}))
    store = str(tmp_path / "store.duckdb")
    post = str(tmp_path / "post.parquet")
    for args in (["assign", str(spec), "--store", store],
                 ["respond", "--world", str(path), "--store", store, "--experiment", "prevent",
                  "--out", post],
                 ["report", str(spec), "--as-of", "2026-03-06", "--store", store,
                  "--transactions", post, "--out", str(tmp_path / "report")],
                 ["model", "fit", str(spec), "--as-of", "2026-03-06", "--store", store,
                  "--transactions", post, "--candidates", "s,t", "--folds", "2",
                  "--bootstrap", "20", "--out", str(tmp_path / "uplift")],
                 ["policy", "--scores", str(tmp_path / "uplift" / "oof_scores.parquet"),
                  "--data", str(tmp_path / "uplift" / "oof_scores.parquet"),
                  "--budget", "300", "--cost", "coupon=0.10", "--out", str(tmp_path / "policy")]):
        assert cli_code(*args) == 0, capsys.readouterr().err
    import duckdb

    con = duckdb.connect(store, read_only=True)
    assigned = con.execute("SELECT customer_id, arm, stratum FROM assignments").df()
    con.close()
    # the cohort: the active customers at medium or high risk, stratified by their level
    levels = load_risk_model(model_dir).metadata_["levels"]
    scored = _scores(model_dir, path, tmp_path, capsys)
    expected = scored.loc[scored["risk"] >= levels["medium"], "customer_id"]
    assert sorted(assigned["customer_id"].astype("int64")) == sorted(expected)
    assert set(assigned["stratum"]) <= {"tier=high", "tier=medium"}
    # the truth: mean over the cohort of P(stays active | coupon) - P(stays active | control)
    t = world.truth.set_index("customer_id").loc[assigned["customer_id"].astype("int64")]
    true_effect = float((t["p_coupon"] - t["p_control"]).mean())
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    c = next(c for c in report["comparisons"] if c["arm"] == "coupon"
             and c["metric"] == "reactivated")
    assert c["ci_low"] <= true_effect <= c["ci_high"], (c, true_effect)
    assert c["ci_high"] - c["ci_low"] < 0.1


def _scores(model_dir, path, tmp_path, capsys) -> pd.DataFrame:
    out = tmp_path / "scores.parquet"
    assert cli_code("risk", "score", "--model", str(model_dir), "--transactions",
                    str(path / "transactions.parquet"), "--as-of", "2026-01-05",
                    "--out", str(out)) == 0
    return pd.read_parquet(out)
