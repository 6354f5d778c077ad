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


def test_policy_writes_targeting_json_curve_and_report(files, tmp_path, capsys):
    d, scores = files
    out = tmp_path / "pol"
    code, stdout, err = run(["policy", "--scores", str(d / "scores.csv"), "--budget", "300",
                             *COSTS, "--capacity", "advisor=40", "--data",
                             str(d / "experiment.csv"), "--weight", "control=1",
                             "--weight", "coupon=1", "--weight", "content=1",
                             "--weight", "advisor=1", "--out", str(out)], capsys)
    assert code == 0, err
    assert "policy:" in stdout
    names = {p.name for p in out.iterdir()}
    assert names == {"targeting.csv", "policy.json", "budget_curve.png", "policy.md",
                     "policy.html", ".upliftlab.json"}
    t = pd.read_csv(out / "targeting.csv")
    assert list(t.columns) == ["customer_id", "arm", "expected_uplift", "expected_cost",
                               "explore"]
    assert len(t) == len(scores) and set(t.arm) <= {"none", *ARMS}
    assert t.expected_cost.sum() <= 300 + 1e-6
    assert (t.arm == "advisor").sum() <= 40
    assert t.explore.mean() == pytest.approx(0.10, abs=0.015)
    pj = json.loads((out / "policy.json").read_text())
    a = pj["allocation"]
    assert a["counts"] == {arm: int((t.arm == arm).sum()) for arm in ARMS}
    assert a["expected_cost"] == pytest.approx(t.expected_cost.sum())
    assert a["expected_incremental_reactivations"] == pytest.approx(t.expected_uplift.sum())
    assert a["budget"] == 300 and 0.99 <= a["budget_used"] <= 1.0
    assert a["optimality_gap"] is not None and a["optimality_gap"] < 1e-3
    assert a["cost_per_incremental_reactivation"] == pytest.approx(
        a["expected_cost"] / a["expected_incremental_reactivations"])
    ope = pj["off_policy"]
    assert ope["method"] == "doubly robust" and ope["propensities"]["control"] == 0.25
    assert [c["baseline"] for c in ope["comparisons"]][0] == "treat nobody"
    assert all("statement" in c for c in ope["comparisons"])
    assert len(pj["budget_curve"]["budget"]) == 20
    assert (out / "budget_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert "data:image/png;base64" in (out / "policy.html").read_text()


def test_parquet_and_net_value(files, tmp_path, capsys):
    d, _ = files
    out = tmp_path / "pq"
    code, _, err = run(["policy", "--scores", str(d / "scores.csv"), "--budget", "200", *COSTS,
                        "--value-per-reactivation", "80", "--explore", "0", "--format",
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
    (["--budget", "100", "--explore", "1.5"], "--explore"),
    (["--budget", "100", "--capacity", "advisor=x"], "not a number"),
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
    assert "off-policy (doubly robust)" in stdout and "truth: price rule" in stdout
    pj = json.loads((out / "policy.json").read_text())
    t = pd.read_csv(out / "targeting.csv")
    assert pj["truth"]["targeting"]["incremental_reactivations"] == pytest.approx(
        t.expected_uplift.sum())
    assert pj["truth"]["targeting"]["cost"] == pytest.approx(t.expected_cost.sum())
    assert pj["truth"]["price_rule"]["incremental_reactivations"] > 0


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
                        "--capacity", "advisor=10", "--explore", "0", "--out", str(out)], capsys)
    assert code == 0, err
    t = pd.read_csv(out / "targeting.csv")
    mu = model.predict_outcomes(sim.X)
    up = np.clip(mu[ARMS].to_numpy(), 0, 1) - np.clip(mu[["control"]].to_numpy(), 0, 1)
    chosen = t.arm.map({a: j for j, a in enumerate(ARMS)}).fillna(-1).astype(int).to_numpy()
    treated = chosen >= 0
    np.testing.assert_allclose(t.expected_uplift[treated],
                               up[np.flatnonzero(treated), chosen[treated]])
    assert (t.arm == "advisor").sum() <= 10 and t.expected_cost.sum() <= 100 + 1e-6


def test_experiment_with_folds_cross_fits_the_prices(files, tmp_path, capsys):
    from upliftlab.policy.allocate import make_problem, solve_lagrangian
    from upliftlab.policy.run import _cross_fitted_policy

    d, scores = files
    exp = pd.read_csv(d / "experiment.csv")
    exp["fold"] = np.arange(len(exp)) % 3
    exp.to_csv(tmp_path / "experiment_folds.csv", index=False)
    args = ["policy", "--scores", str(d / "scores.csv"), "--budget", "300", *COSTS,
            "--capacity", "advisor=40", "--data"]
    code, _, err = run(args + [str(tmp_path / "experiment_folds.csv"), "--out",
                               str(tmp_path / "cf")], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "cf" / "policy.json").read_text())
    assert "other folds" in report["off_policy"]["policy_learned"]
    code, _, err = run(args + [str(d / "experiment.csv"), "--out", str(tmp_path / "plain")],
                       capsys)
    plain = json.loads((tmp_path / "plain" / "policy.json").read_text())
    assert "no 'fold' column" in plain["off_policy"]["policy_learned"]

    # each fold's decisions use prices learned without it: the same as solving the other folds
    problem = make_problem(scores.base, {a: scores[f"uplift_{a}"] for a in ARMS}, arms=ARMS,
                           budget=300, capacity={"advisor": 40},
                           cost_per_contact={"coupon": 0.1, "content": 0.02, "advisor": 4},
                           cost_per_conversion={"coupon": 10, "content": 0, "advisor": 0})
    rows, fold = np.arange(problem.n), exp["fold"].to_numpy()
    policy = _cross_fitted_policy(problem, rows, fold)
    other = rows[fold != 0]
    part = type(problem)(problem.arms, problem.gain[:, other], problem.cost[:, other],
                         problem.uplift[:, other], 300 * 2 / 3, problem.capacity * 2 / 3,
                         problem.objective)
    _, lam, mu, _ = solve_lagrangian(part, core=0)
    reduced = problem.gain[:, fold == 0] - lam * problem.cost[:, fold == 0] - mu[:, None]
    expect = np.where(reduced.max(axis=0) > 0, reduced.argmax(axis=0) + 1, 0)
    assert (policy[fold == 0] == expect).mean() > 0.99
