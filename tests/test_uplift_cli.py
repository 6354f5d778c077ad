"""`upliftlab model fit|score`: outputs, the scores format, and bad input (exit 2, one line,
nothing half-written)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from upliftlab.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def experiment_csv(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 3000
    arm = rng.choice(["none", "mail", "call"], n)
    x1 = rng.normal(size=n)
    seg = rng.choice(["a", "b", "c"], n)
    p = 0.2 + 0.15 * (arm == "mail") * (x1 > 0) + 0.1 * (arm == "call") * (seg == "a")
    df = pd.DataFrame({"cid": np.arange(n), "arm": arm, "x1": x1, "x2": rng.normal(size=n),
                       "seg": seg, "y": rng.binomial(1, p)})
    path = tmp_path_factory.mktemp("exp") / "exp.csv"
    df.to_csv(path, index=False)
    return path, df


FIT = ["--arm-col", "arm", "--control", "none", "--metric", "y", "--feature", "x1", "--feature",
       "x2", "--feature", "seg", "--folds", "2", "--bootstrap", "20"]


@pytest.mark.slow
def test_fit_then_score(capsys, experiment_csv, tmp_path):
    path, df = experiment_csv
    out = tmp_path / "model"
    code, stdout, err = run(capsys, "model", "fit", "--data", str(path), *FIT, "--learner", "t",
                            "--out", str(out))
    assert code == 0, err
    assert "model: t/large" in stdout and "learner per arm:" in stdout
    for name in ("model.pkl", "model.json", "comparison.csv", "comparison.json", "deciles.csv",
                 "selection.json",
                 "oof_scores.parquet", "qini_mail.png", "qini_call.png"):
        assert (out / name).exists(), name
    # out-of-fold scores of the training rows: the policy's off-policy evaluation reads them
    oof = pd.read_parquet(out / "oof_scores.parquet")
    assert list(oof.columns[:4]) == ["customer_id", "base", "uplift_call", "uplift_mail"]
    assert len(oof) == len(df) and set(oof.fold) == {0, 1}  # --folds 2
    assert (oof["arm"].to_numpy() == df[FIT[FIT.index("--arm-col") + 1]].astype(str).to_numpy()).all()
    table = pd.read_csv(out / "comparison.csv")
    assert set(table.arm) == {"mail", "call"} and (table.learner == "t/large").all()
    meta = json.loads((out / "model.json").read_text())
    assert meta["control"] == "none" and meta["outcome"] == "binary"
    assert [f["name"] for f in meta["features"]] == ["x1", "x2", "seg"]

    scores = tmp_path / "scores.csv"
    code, stdout, err = run(capsys, "model", "score", "--model", str(out), "--customers",
                            str(path), "--customer-col", "cid", "--batch-size", "1000",
                            "--out", str(scores))
    assert code == 0, err
    s = pd.read_csv(scores)
    assert list(s.columns) == ["customer_id", "base", "uplift_call", "uplift_mail"]
    assert len(s) == len(df) and (s.customer_id.to_numpy() == df.cid.to_numpy()).all()
    from upliftlab.uplift import load_model

    m = load_model(out)
    # scores are differences of predicted probabilities clipped to [0, 1] (the calibrated
    # uplift moves toward the arm's average effect, which can step past 1 for a high base)
    ref = m.predict_outcomes(df[["x1", "x2", "seg"]]).clip(0, 1)
    np.testing.assert_allclose(s["uplift_mail"], ref["mail"] - ref["none"], rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(s["base"], m.predict_outcomes(df[["x1", "x2", "seg"]])["none"],
                               rtol=1e-9)
    # ... and they are not the final model's in-sample predictions
    assert np.mean(np.isclose(oof["uplift_mail"].to_numpy(), ref["mail"].to_numpy())) < 0.5

    # a customers file without a feature: exit 2, one line, no output written
    df.drop(columns="seg").to_csv(tmp_path / "nofeat.csv", index=False)
    bad_out = tmp_path / "bad.csv"
    code, _, err = run(capsys, "model", "score", "--model", str(out), "--customers",
                       str(tmp_path / "nofeat.csv"), "--customer-col", "cid", "--out", str(bad_out))
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "seg" in err and not bad_out.exists()
    # a feature of another type: refused
    df.assign(x1="text").to_csv(tmp_path / "badtype.csv", index=False)
    code, _, err = run(capsys, "model", "score", "--model", str(out), "--customers",
                       str(tmp_path / "badtype.csv"), "--customer-col", "cid", "--out", str(bad_out))
    assert code == 2 and "'x1'" in err and not bad_out.exists()
    # a tampered pickle: refused before unpickling
    pkl = out / "model.pkl"
    pkl.write_bytes(pkl.read_bytes() + b"\0")
    code, _, err = run(capsys, "model", "score", "--model", str(out), "--customers", str(path),
                       "--customer-col", "cid", "--out", str(bad_out))
    assert code == 2 and "checksum" in err and not bad_out.exists()


@pytest.mark.slow
def test_auto_chooses_per_arm_by_budgeted_value_and_says_why(capsys, experiment_csv, tmp_path):
    path, _ = experiment_csv
    out = tmp_path / "auto"
    code, stdout, err = run(capsys, "model", "fit", "--data", str(path), *FIT, "--candidates",
                            "s,t", "--base-models", "small,large", "--out", str(out))
    assert code == 0, err
    table = pd.read_csv(out / "comparison.csv")
    singles = ["s/small", "s/large", "t/small", "t/large"]
    ensemble = f"mean({','.join(singles)})"
    sel = json.loads((out / "selection.json").read_text())
    # the options: each candidate, the mean of the two best and the mean of all for every arm,
    # and per arm its best; the mean of the two best unless the per-arm one beats it beyond
    # its paired interval
    rule = pd.DataFrame(sel["rule"]).set_index("option")
    by = table.set_index(["learner", "arm"]).budgeted_value
    total = {c: by[c, "mail"] + by[c, "call"] for c in table.learner.unique()}
    two = sorted(singles, key=lambda c: -total[c])[:2]
    default = f"mean({','.join(two)}) for every arm"
    assert set(rule.index) == {f"{c} for every arm" for c in total} | {
        "per arm, as chosen for each arm"} and ensemble in total
    assert rule.index[rule.default].tolist() == [default]
    won = rule.index[rule.chosen].tolist()
    per_arm = rule.loc["per arm, as chosen for each arm"]
    significant = per_arm.difference_to_default > 1.959964 * per_arm.difference_se
    assert won == ["per arm, as chosen for each arm" if significant else default]
    # the options' values are the candidates' per-arm values summed over the arms
    for c, v in total.items():
        assert rule.budgeted_value[f"{c} for every arm"] == pytest.approx(v, rel=1e-9)
    for arm in ("mail", "call"):
        rows = table[table.arm == arm].set_index("learner")
        assert bool(rows.chosen[sel["per_arm"][arm]]) and rows.chosen.sum() == 1
        assert f"  {arm}: {sel['per_arm'][arm]}: cross-fitted budgeted value" in stdout
    meta = json.loads((out / "model.json").read_text())
    assert meta["learner"] in {f"{sel['per_arm']['call']}"} or meta["learner"].startswith(
        "per arm: ")


@pytest.mark.slow
def test_fit_bad_input_leaves_output_untouched(capsys, experiment_csv, tmp_path):
    path, df = experiment_csv
    out = tmp_path / "model"
    out.mkdir()
    (out / "comparison.csv").write_text("old")  # an earlier model's file: the folder may be replaced
    cases = [
        (["--data", str(path), *FIT[:-4], "--feature", "nope"], "nope"),
        (["--data", str(path), *[a if a != "none" else "ctl" for a in FIT]], "control label 'ctl'"),
        (["--data", str(path), "--arm-col", "arm"], "missing --control"),
        (["--data", str(path), *FIT, "--candidates", "s,q"], "--candidates"),
        (["--data", str(path), *FIT, "--base-models", "huge"], "--base-models"),
        (["--data", str(path), *FIT, "--learner", "s/huge"], "unknown base model"),
    ]
    for args, needle in cases:
        code, _, err = run(capsys, "model", "fit", *args, "--out", str(out))
        assert code == 2 and err.startswith("error: ") and needle in err, err
        assert len(err.strip().splitlines()) == 1
        assert (out / "comparison.csv").read_text() == "old" and not (out / "model.pkl").exists()
    small = tmp_path / "small.csv"
    df[(df.arm != "call") | (df.index < 200)].to_csv(small, index=False)
    code, _, err = run(capsys, "model", "fit", "--data", str(small), *FIT, "--out", str(out))
    assert code == 2 and "too few customers" in err and "call" in err


def test_fit_spec_form_needs_a_store(capsys, tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text("")
    code, _, err = run(capsys, "model", "fit", str(spec), "--out", str(tmp_path / "m"))
    assert code == 2 and "--as-of" in err


@pytest.mark.slow
def test_fit_spec_form_on_a_designed_experiment(capsys, tmp_path):
    """simulate -> assign (store) -> respond -> model fit SPEC --as-of: outcomes and arms from
    the store, features from the spec's cohort, design weights as propensities."""
    import duckdb

    from upliftlab.uplift import read_metadata

    spec_src = (Path(__file__).resolve().parents[1] / "experiments" / "reactivation_2026q1.toml")
    assert run(capsys, "simulate", "--n-customers", "12000", "--seed", "1", "--out",
               str(tmp_path / "world"))[0] == 0
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_src.read_text().replace("../reports/demo/world/transactions.parquet",
                                                 "world/transactions.parquet")
                    .replace("capacity = 5000", "capacity = 1000"))
    store = tmp_path / "s.duckdb"
    code, _, err = run(capsys, "assign", str(spec), "--store", str(store))
    assert code == 0, err
    con = duckdb.connect(str(store), read_only=True)
    con.sql("SELECT customer_id, arm FROM assignments WHERE arm <> 'holdout'").write_parquet(
        str(tmp_path / "assigned.parquet"))
    con.close()
    code, _, err = run(capsys, "respond", "--world", str(tmp_path / "world"), "--assignments",
                       str(tmp_path / "assigned.parquet"), "--out", str(tmp_path / "post.parquet"))
    assert code == 0, err
    args = [str(spec), "--store", str(store), "--transactions", str(tmp_path / "post.parquet"),
            "--learner", "t", "--folds", "2", "--bootstrap", "20", "--out", str(tmp_path / "m")]
    # outcome windows still open: refused, nothing written
    code, _, err = run(capsys, "model", "fit", *args, "--as-of", "2026-02-01")
    assert code == 2 and "close on 2026-03-06" in err and not (tmp_path / "m").exists()
    code, out, err = run(capsys, "model", "fit", *args, "--as-of", "2026-03-09")
    assert code == 0, err
    meta = read_metadata(tmp_path / "m")
    assert meta["control"] == "control" and set(meta["arms"]) == {"control", "coupon", "content", "advisor"}
    names = {f["name"]: f["kind"] for f in meta["features"]}
    assert names["tier"] == "category" and names["days_since_last"] == "numeric"
    assert "customer_id" not in names
    # the design's weights (control 0.4, coupon 0.2 ...) are the propensities, not the counts
    assert meta["propensity"]["coupon"] == pytest.approx(0.2, abs=0.02)


@pytest.mark.slow
def test_fit_says_which_arm_cannot_be_told_from_zero(capsys, tmp_path):
    """`model fit` prints per arm the learner and why (its cross-fitted budgeted value with the
    interval); an arm with no true effect says so, and gets no normalised Qini (n/a, not a ratio
    over ~0)."""
    rng = np.random.default_rng(8)
    n = 6_000
    arm = rng.choice(["control", "real", "none"], n)
    x1 = rng.normal(size=n)
    y = rng.binomial(1, 0.1 + 0.15 * (arm == "real") * (x1 > 0))  # 'none': zero true effect
    path = tmp_path / "exp.csv"
    pd.DataFrame({"cid": np.arange(n), "arm": arm, "x1": x1, "x2": rng.normal(size=n),
                  "y": y}).to_csv(path, index=False)
    code, stdout, err = run(capsys, "model", "fit", "--data", str(path), "--arm-col", "arm",
                            "--control", "control", "--metric", "y", "--feature", "x1",
                            "--feature", "x2", "--folds", "2", "--bootstrap", "20",
                            "--candidates", "t", "--base-models", "small",
                            "--out", str(tmp_path / "m"))
    assert code == 0, err
    lines = {a: next(l for l in stdout.splitlines() if l.startswith(f"  {a}: "))
             for a in ("real", "none")}
    for line in lines.values():
        assert ": cross-fitted budgeted value for this arm" in line and "95% CI" in line
    assert "cannot be told from zero" in lines["none"]
    assert "cannot be told" not in lines["real"]
    table = pd.read_csv(tmp_path / "m" / "comparison.csv")
    none = table[table.arm == "none"]
    assert none.qini.isna().all() and np.isfinite(none.qini_area).all()
    assert table[table.arm == "real"].qini.notna().all()
