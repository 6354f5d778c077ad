"""`upliftlab policy`: outputs on success; exit 2, one `error:` line and nothing written on bad
input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from upliftlab.cli import main

ARMS = ["coupon", "content", "advisor"]
COSTS = ["--cost", "coupon=0.10:10", "--cost", "content=0.02", "--cost", "advisor=4"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("policy")
    rng = np.random.default_rng(0)
    n = 4000
    base = rng.beta(1.2, 40, n)
    up = np.clip(np.column_stack([rng.normal(0.01, 0.012, n), rng.normal(0.004, 0.006, n),
                                  rng.normal(0.03, 0.05, n)]), -base[:, None], 1 - base[:, None])
    scores = pd.DataFrame({"customer_id": np.arange(1, n + 1), "base": base,
                           **{f"uplift_{a}": up[:, j] for j, a in enumerate(ARMS)}})
    scores.to_csv(d / "scores.csv", index=False)
    A = rng.integers(0, 4, n)
    P = np.column_stack([base, base[:, None] + up])
    y = (rng.random(n) < P[np.arange(n), A]).astype(int)
    labels = np.array(["control"] + ARMS)
    pd.DataFrame({"customer_id": scores.customer_id, "arm": labels[A], "reactivated": y}).to_csv(
        d / "experiment.csv", index=False)
    return d, scores


def run(args, capsys):
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
def test_policy_writes_targeting_json_curve_and_report(files, tmp_path, capsys):
    d, scores = files
    out = tmp_path / "pol"
    code, stdout, err = run(["policy", "--scores", str(d / "scores.csv"), "--budget", "300",
                             *COSTS, "--capacity", "advisor=40", "--data",
                             str(d / "experiment.csv"), "--weight", "control=1",
                             "--weight", "coupon=1", "--weight", "content=1",
                             "--weight", "advisor=1", "--out", str(out)], capsys)
    assert code == 0, err
    assert "plan:" in stdout and "exploration (inside the budget, reserve 5%)" in stdout
    names = {p.name for p in out.iterdir()}
    assert names == {"targeting.csv", "policy.json", "budget_curve.png", "policy.md",
                     "policy.html", ".upliftlab.json"}
    t = pd.read_csv(out / "targeting.csv")
    props = [f"propensity_{a}" for a in ["none", *ARMS]]
    assert list(t.columns) == ["customer_id", "arm", "expected_uplift", "expected_cost",
                               "explore", *props]
    assert len(t) == len(scores) and set(t.arm) <= {"none", *ARMS}
    assert t.expected_cost.sum() <= 300 + 1e-6
    assert (t.arm == "advisor").sum() <= 40
    # exploration inside the budget: at most 5% of the budget and of the advisor capacity
    ex = t[t.explore]
    assert 0 < ex.expected_cost.sum() <= 0.05 * 300 + 1e-9
    assert 1 <= (ex.arm == "advisor").sum() <= 2 and set(ex.arm) == {"none", *ARMS}
    # propensities: the weights for explored customers, the arm written for the others
    np.testing.assert_allclose(t[props].sum(axis=1), 1.0)
    np.testing.assert_allclose(ex[props].to_numpy(), 0.25)
    rest = t[~t.explore]
    assert (rest[props].to_numpy().argmax(1) == rest.arm.map(
        {a: j for j, a in enumerate(["none", *ARMS])}).to_numpy()).all()
    pj = json.loads((out / "policy.json").read_text())
    pv = pj["plan_value"]
    P = t[props].to_numpy()
    up = np.column_stack([np.zeros(len(t))] + [scores[f"uplift_{a}"] for a in ARMS])
    assert pv["expected"] == pytest.approx((P * up).sum())
    assert pv["budget_curve"] == pytest.approx(pv["expected"])
    assert pv["cost"] <= 300 + 1e-6 and not pv["over_budget"]
    off = pv["off_policy"]
    assert off["ci_low"] < off["estimate"] < off["ci_high"]
    assert off["estimate"] == pytest.approx(pj["off_policy"]["incremental_reactivations"]["total"])
    assert pj["exploration"]["cost"] == pytest.approx(ex.expected_cost.sum())
    assert "Exploration, inside the budget" in (out / "policy.md").read_text()
    a = pj["allocation"]
    assert a["counts"] == {arm: int((t.arm == arm).sum()) for arm in ARMS}
    assert a["expected_cost"] == pytest.approx(t.expected_cost.sum())
    assert a["expected_incremental_reactivations"] == pytest.approx(t.expected_uplift.sum())
    # fitted so that the off-policy cost estimate is within the budget as well
    assert pv["off_policy"]["cost"]["estimate"] <= 300 * (1 + 1e-6)
    assert a["budget"] == 300 and 0.95 * pv["planning_budget"] / 300 <= a["budget_used"] <= 1.0
    assert a["optimality_gap"] is not None and a["optimality_gap"] < 1e-3
    assert a["cost_per_incremental_reactivation"] == pytest.approx(
        a["expected_cost"] / a["expected_incremental_reactivations"])
    ope = pj["off_policy"]
    assert ope["method"] == "doubly robust" and ope["propensities"]["control"] == 0.25
    assert [c["baseline"] for c in ope["comparisons"]][0] == "treat nobody"
    assert all("statement" in c for c in ope["comparisons"])
    assert 10 <= len(pj["budget_curve"]["budget"]) <= 20 and 300 in pj["budget_curve"]["budget"]
    assert (out / "budget_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert "data:image/png;base64" in (out / "policy.html").read_text()


@pytest.mark.slow
def test_parquet_and_net_value(files, tmp_path, capsys):
    d, _ = files
    out = tmp_path / "pq"
    code, _, err = run(["policy", "--scores", str(d / "scores.csv"), "--budget", "200", *COSTS,
                        "--value-per-reactivation", "80", "--explore-budget", "0", "--format",
                        "parquet", "--out", str(out)], capsys)
    assert code == 0, err
    t = pd.read_parquet(out / "targeting.parquet")
    assert not t.explore.any()
    pj = json.loads((out / "policy.json").read_text())
    assert pj["objective"] == "net_value"
    # net value never buys a customer whose value x uplift does not cover the cost
    treated = t[t.arm != "none"]
    assert (80 * treated.expected_uplift - treated.expected_cost > 0).all()


@pytest.mark.parametrize("extra, message", [
    (["--budget", "-5"], "--budget must be >= 0"),
    (["--budget", "100", "--capacity", "phone=3"], "unknown arm phone"),
    (["--budget", "100", "--cost", "phone=1"], "do not match the cost arms"),
    (["--budget", "100", "--explore-budget", "1.5x"], "--explore-budget"),
    (["--budget", "100", "--capacity", "advisor=x"], "not a number"),
    (["--budget", "100", "--weight", "phone=1"], "--weight for unknown arm 'phone'"),
    (["--budget", "100", "--weight", "control=0"], "have no weight"),
    (["--budget", "3"], "smaller than the cheapest exploration"),
    (["--budget", "300", "--explore-budget", "400"], "more than the budget"),
    (["--budget", "300", "--capacity", "advisor=5"], "cannot hold the exploration share"),
])
def test_bad_options_exit_2_and_write_nothing(files, tmp_path, capsys, extra, message):
    d, _ = files
    out = tmp_path / "bad"
    args = ["policy", "--scores", str(d / "scores.csv"), "--out", str(out)]
    if "--cost" not in extra:
        args += COSTS
    else:
        args += COSTS[:4]
    code, _, err = run(args + extra, capsys)
    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert message in err
    assert not out.exists()


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s.assign(base=s.base + 2), "base must be a probability"),
    (lambda s: s.assign(uplift_coupon=0.999), "base + uplift of arm 'coupon'"),
    (lambda s: s.assign(uplift_coupon=np.where(s.index == 3, np.nan, s.uplift_coupon)),
     "missing or non-numeric"),
    (lambda s: s.assign(customer_id=np.where(s.index == 5, 1, s.customer_id)), "duplicate"),
    (lambda s: s.assign(customer_id=np.where(s.index == 5, np.nan, s.customer_id)),
     "have no customer_id"),
    (lambda s: s.drop(columns=["uplift_advisor"]), "do not match the cost arms"),
    (lambda s: s.drop(columns=["base"]), "missing column 'base'"),
])
def test_bad_scores_exit_2_and_leave_output_untouched(files, tmp_path, capsys, mutate, message):
    d, scores = files
    bad = tmp_path / "bad.csv"
    mutate(scores.copy()).to_csv(bad, index=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "policy.json").write_text("old")
    code, _, err = run(["policy", "--scores", str(bad), "--budget", "100", *COSTS, "--out",
                        str(out)], capsys)
    assert code == 2, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert message in err
    assert (out / "policy.json").read_text() == "old"
    assert sorted(p.name for p in out.iterdir()) == ["policy.json"]


def test_model_path_needs_a_model_directory(files, tmp_path, capsys):
    d, _ = files
    code, _, err = run(["policy", "--model", str(tmp_path / "nomodel"), "--customers",
                        str(d / "scores.csv"), "--budget", "10", *COSTS, "--out",
                        str(tmp_path / "o")], capsys)
    assert code == 2 and err.startswith("error: ") and "model" in err


def test_help():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "from upliftlab.cli import main; main()",
                          "policy", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--budget" in out.stdout and "--capacity" in out.stdout


@pytest.mark.slow
def test_truth_is_reported_beside_the_estimate(files, tmp_path, capsys):
    d, scores = files
    # the scores are the truth here: the true value of the plan is its expected value
    truth = pd.DataFrame({"customer_id": scores.customer_id, "p_control": scores.base,
                          **{f"p_{a}": scores.base + scores[f"uplift_{a}"] for a in ARMS}})
    truth.to_csv(d / "truth.csv", index=False)
    out = tmp_path / "t"
    code, stdout, err = run(["policy", "--scores", str(d / "scores.csv"), "--budget", "300",
                             *COSTS, "--capacity", "advisor=40", "--data",
                             str(d / "experiment.csv"), "--truth",
                             str(d / "truth.csv"), "--out", str(out)], capsys)
    assert code == 0, err
    assert "off-policy, doubly robust" in stdout and "true value (simulator)" in stdout
    pj = json.loads((out / "policy.json").read_text())
    t = pd.read_csv(out / "targeting.csv")
    assert pj["truth"]["arms_written"]["incremental_reactivations"] == pytest.approx(
        t.expected_uplift.sum())
    assert pj["truth"]["arms_written"]["cost"] == pytest.approx(t.expected_cost.sum())
    # the truth is the model here, so the plan's true value is its expected value
    assert pj["truth"]["plan"]["incremental_reactivations"] == pytest.approx(
        pj["plan_value"]["expected"])


@pytest.mark.slow
def test_model_path_scores_customers_with_a_saved_model(tmp_path, capsys):
    simdata = pytest.importorskip("upliftlab.uplift.simdata")
    from upliftlab.uplift import UpliftModel, save_model

    sim = simdata.simulated_experiment(4000, seed=2)
    model = UpliftModel(learner="t", n_jobs=1, random_state=0).fit(sim.X, sim.reactivated,
                                                                   sim.treatment)
    save_model(model, tmp_path / "model")
    X = sim.X.copy()
    X.insert(0, "customer_id", sim.customer_id)
    X.to_parquet(tmp_path / "customers.parquet")
    out = tmp_path / "o"
    code, _, err = run(["policy", "--model", str(tmp_path / "model"), "--customers",
                        str(tmp_path / "customers.parquet"), "--budget", "100", *COSTS,
                        "--capacity", "advisor=10", "--explore-budget", "0", "--out", str(out)], capsys)
    assert code == 0, err
    t = pd.read_csv(out / "targeting.csv")
    mu = model.predict_outcomes(sim.X)
    up = np.clip(mu[ARMS].to_numpy(), 0, 1) - np.clip(mu[["control"]].to_numpy(), 0, 1)
    chosen = t.arm.map({a: j for j, a in enumerate(ARMS)}).fillna(-1).astype(int).to_numpy()
    treated = chosen >= 0
    np.testing.assert_allclose(t.expected_uplift[treated],
                               up[np.flatnonzero(treated), chosen[treated]])
    assert (t.arm == "advisor").sum() <= 10 and t.expected_cost.sum() <= 100 + 1e-6


@pytest.mark.slow
def test_off_policy_is_of_the_written_plan_by_hand(files, tmp_path, capsys):
    """DR of the written plan from targeting.csv's propensities, the experiment and the scores,
    computed by hand: the same figure as plan_value.off_policy."""
    d, scores = files
    out = tmp_path / "w"
    code, _, err = run(["policy", "--scores", str(d / "scores.csv"), "--budget", "300",
                        *COSTS, "--capacity", "advisor=40", "--explore-budget", "20%",
                        "--data", str(d / "experiment.csv"), "--out", str(out)], capsys)
    assert code == 0, err
    t = pd.read_csv(out / "targeting.csv")
    exp = pd.read_csv(d / "experiment.csv")
    names = ["none", *ARMS]
    pi = t[[f"propensity_{a}" for a in names]].to_numpy()
    mu = np.column_stack([scores.base] + [scores.base + scores[f"uplift_{a}"] for a in ARMS])
    A = exp.arm.map({"control": 0, **{a: j + 1 for j, a in enumerate(ARMS)}}).to_numpy()
    y = exp.reactivated.to_numpy()
    e = np.bincount(A, minlength=4) / len(A)
    rows = np.arange(len(A))
    dr = (pi * mu).sum(1) + pi[rows, A] / e[A] * (y - mu[rows, A])
    dr0 = mu[:, 0] + (A == 0) / e[0] * (y - mu[:, 0])
    terms = dr - dr0
    pv = json.loads((out / "policy.json").read_text())["plan_value"]
    assert pv["off_policy"]["estimate"] == pytest.approx(terms.sum())
    half = 1.959964 * terms.std(ddof=1) * np.sqrt(len(terms))
    assert pv["off_policy"]["ci_high"] == pytest.approx(terms.sum() + half, rel=1e-4)
    assert t.explore.any() and t[t.explore].expected_cost.sum() <= 0.2 * 300 + 1e-9


@pytest.mark.slow
def test_plan_fitted_to_its_off_policy_cost_or_flagged_when_soft(files, tmp_path, capsys):
    """The scores predict almost no coupon conversions; the experiment shows most coupon
    customers converting (10.00 each): the plan's off-policy cost is far above what the model
    expects. A hard budget re-fits the plan until its off-policy cost estimate is within the
    budget (and says so); --soft-budget writes the unfitted plan, flagged."""
    d, scores = files
    exp = pd.read_csv(d / "experiment.csv")
    rng = np.random.default_rng(5)
    exp.loc[exp.arm == "coupon", "reactivated"] = (rng.random((exp.arm == "coupon").sum())
                                                   < 0.3).astype(int)
    exp.to_csv(tmp_path / "exp_costly.csv", index=False)
    args = ["policy", "--scores", str(d / "scores.csv"), "--budget", "300", *COSTS,
            "--capacity", "advisor=40", "--explore-budget", "0", "--data",
            str(tmp_path / "exp_costly.csv")]
    hard = tmp_path / "hard"
    code, _, err = run(args + ["--out", str(hard)], capsys)
    assert code == 0, err
    pv = json.loads((hard / "policy.json").read_text())["plan_value"]
    assert pv["off_policy"]["cost"]["estimate"] <= 300 * (1 + 1e-6)
    assert pv["planning_budget"] < 300 and "upper bound of its off-policy cost" in \
        pv["planning_note"]
    assert pv["cost_bound"]["upper"] <= 300 * (1 + 1e-6)  # policy/margin.py
    assert not pv["over_budget"]
    assert "The plan was fitted to" in (hard / "policy.md").read_text()
    soft = tmp_path / "soft"
    code, stdout, err = run(args + ["--soft-budget", "--out", str(soft)], capsys)
    assert code == 0, err
    pv = json.loads((soft / "policy.json").read_text())["plan_value"]
    assert pv["over_budget"] and pv["soft_budget"] and pv["off_policy"]["cost"]["ci_low"] > 300
    assert pv["planning_budget"] == 300
    assert "OVER BUDGET" in stdout
    assert 'class="bad">OVER BUDGET' in (soft / "policy.html").read_text()


@pytest.mark.slow
def test_policy_html_uses_the_report_style_with_currency_and_no_leftover_markup(files, tmp_path,
                                                                                capsys):
    d, _ = files
    out = tmp_path / "h"
    code, _, err = run(["policy", "--scores", str(d / "scores.csv"), "--budget", "300", *COSTS,
                        "--currency", "EUR", "--out", str(out)], capsys)
    assert code == 0, err
    html = (out / "policy.html").read_text()
    md = (out / "policy.md").read_text()
    from upliftlab.policy.render import report_style

    assert report_style() in html and "€300.00" in html and "€300.00" in md
    assert "**" not in html and "|---" not in html and "{{" not in html and "{%" not in html
    assert "<table>" in html and "Who gets what" in html


@pytest.mark.slow
def test_profile_by_tier_and_value_band_and_the_customers_spared(files, tmp_path, capsys):
    d, scores = files
    rng = np.random.default_rng(9)
    cust = pd.DataFrame({"customer_id": scores.customer_id,
                         "tier": rng.choice(["short", "mid", "long"], len(scores)),
                         "revenue_total": rng.gamma(2, 50, len(scores))})
    cust.to_csv(tmp_path / "customers.csv", index=False)
    out = tmp_path / "p"
    code, _, err = run(["policy", "--scores", str(d / "scores.csv"), "--budget", "300", *COSTS,
                        "--capacity", "advisor=40", "--customers", str(tmp_path / "customers.csv"),
                        "--out", str(out)], capsys)
    assert code == 0, err
    t = pd.read_csv(out / "targeting.csv").merge(cust, on="customer_id")
    prof = json.loads((out / "policy.json").read_text())["profile"]
    assert prof["segments"] == ["tier", "value_band"]
    for row in prof["arms"]:
        sub = t[t.arm == row["arm"]]
        assert row["customers"] == len(sub) and row["explored"] == int(sub.explore.sum())
        assert row["by_tier"] == sub.tier.value_counts().to_dict()
        assert sum(row["by_value_band"].values()) == len(sub)
        assert row["expected_cost"] == pytest.approx(sub.expected_cost.sum())
        if row["arm"] != "none" and len(sub):
            assert row["mean_predicted_uplift"] == pytest.approx(sub.expected_uplift.mean())
    spared = {s["reason"]: s for s in prof["spared"]}
    rest = t[(t.arm == "none") & ~t.explore]
    assert sum(s["customers"] for s in spared.values()) == len(rest)
    up = scores.set_index("customer_id").loc[rest.customer_id, [f"uplift_{a}" for a in ARMS]]
    assert spared["predicted harm"]["customers"] == int((up.max(axis=1) < 0).sum())
    md = (out / "policy.md").read_text()
    assert "### Who gets what" in md and "| predicted harm |" in md and "by tier" in md
