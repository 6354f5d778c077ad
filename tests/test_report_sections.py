"""The report's model and policy sections: the numbers of the model and policy folders in
report.json, report.md and a self-contained report.html; bad folders refused before writing."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from _helpers import cli_process
from upliftlab.analysis import analyze
from upliftlab.errors import InputError
from upliftlab.report import load_model_section, load_policy_section, write_report
from upliftlab.report._text import num

from test_analyze import make_experiment
from test_report import designed  # noqa: F401  (fixture: a simulated experiment in a store)

ARMS = ["coupon", "content"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A small model folder (T-learner, 2 folds) and a policy folder planned from its
    out-of-fold scores, with the off-policy estimate and the (known) truth."""
    from upliftlab.policy.io import read_scores
    from upliftlab.policy.run import run_policy
    from upliftlab.uplift.workflow import fit_and_save

    d = tmp_path_factory.mktemp("sections")
    rng = np.random.default_rng(7)
    n = 8000  # LightGBM's leaves need 300 rows (upliftlab's default): enough to split on x1
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    arm = rng.choice(["control"] + ARMS, n, p=[0.4, 0.3, 0.3])
    p0 = 0.10 + 0.04 * (x2 > 0)
    p = {"control": p0, "coupon": p0 + 0.12 * (x1 > 0), "content": p0 + 0.03}
    pick = np.select([arm == a for a in p], [p[a] for a in p])
    y = rng.binomial(1, pick)
    X = pd.DataFrame({"x1": x1, "x2": x2}, index=pd.Index(np.arange(1, n + 1), name="cid"))
    fit_and_save(X, y, arm, control="control", outcome="binary", out=d / "model", learner="t",
                 folds=2, n_bootstrap=20, outcome_name="reactivated")
    truth = pd.DataFrame({"customer_id": X.index.astype(str),
                          **{f"p_{a}": p[a] for a in p}})
    oof = d / "model" / "oof_scores.parquet"
    run_policy(read_scores(oof), budget=400.0, costs={"coupon": (0.1, 1.0), "content": (0.02, 0)},
               capacity={"coupon": 800}, experiment=oof, truth=truth, out=d / "policy")
    return d


@pytest.fixture(scope="module")
def result():
    return analyze(make_experiment(n=3000, seed=50), arm="arm", control="control",
                   metrics=["reactivated"], analysis="fixed", experiment="winback")


@pytest.fixture(scope="module")
def report(folders, result, tmp_path_factory):
    out = tmp_path_factory.mktemp("r") / "report"
    write_report(result, out, model=folders / "model", policy=folders / "policy")
    return {"json": json.loads((out / "report.json").read_text()),
            "md": (out / "report.md").read_text(), "html": (out / "report.html").read_text()}


@pytest.mark.slow
def test_json_model_section_is_the_model_folder(folders, report):
    m = report["json"]["model"]
    meta = json.loads((folders / "model" / "model.json").read_text())
    assert m["learner"] == meta["learner"] == "t/large"
    assert m["outcome"] == "binary" and m["control"] == "control"
    assert m["arms"] == meta["treatment_arms"] and sorted(m["arms"]) == sorted(ARMS)
    comp = pd.read_csv(folders / "model" / "comparison.csv")
    assert len(m["comparison"]) == len(comp)
    for row, (_, ref) in zip(m["comparison"], comp.iterrows()):
        assert (row["learner"], row["arm"]) == (ref.learner, ref.arm)
        for k in ("qini", "qini_low", "qini_high", "auuc", "auuc_low", "auuc_high",
                  "budgeted_value", "policy_value", "qini_area"):
            assert row[k] == pytest.approx(ref[k], rel=1e-12, nan_ok=True)
        # causalml's normalisation only where the arm's effect can be told from zero
        assert (row["qini"] is None) == (not ref.distinguishable)
    chosen = {r["arm"]: r["policy_value"] for r in m["chosen"]}
    assert chosen == pytest.approx({r.arm: r.policy_value
                                    for r in comp[comp.chosen].itertuples()})
    dec = pd.read_csv(folders / "model" / "deciles.csv")
    assert [(r["arm"], r["bin"]) for r in m["deciles"]] == list(zip(dec.arm, dec.bin))
    got = pd.DataFrame(m["deciles"])
    for k in ("predicted", "observed", "ci_low", "ci_high", "n_treated", "n_control"):
        assert got[k].to_numpy() == pytest.approx(dec[k].to_numpy(), rel=1e-12, nan_ok=True)


def test_targeting_share_matches_a_hand_computed_qini(folders, report):
    """Q(k) = Yt - Yc·Nt/Nc among the top k by predicted uplift, out of fold, by numpy; tied
    scores form one block, inside which the curve is linear (so Q(20%) is interpolated)."""
    oof = pd.read_parquet(folders / "model" / "oof_scores.parquet")
    rows = {t["arm"]: t for t in report["json"]["model"]["targeting"]}
    assert sorted(rows) == sorted(ARMS)
    for arm in ARMS:
        sub = oof[oof.arm.isin([arm, "control"])].sort_values(f"uplift_{arm}", ascending=False)
        t = (sub.arm == arm).to_numpy()
        yy = sub.reactivated.to_numpy()
        nt, nc = np.cumsum(t), np.cumsum(~t)
        yt, yc = np.cumsum(yy * t), np.cumsum(yy * ~t)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = yt - yc * nt / nc
        score = sub[f"uplift_{arm}"].to_numpy()
        ends = np.flatnonzero(np.r_[score[1:] != score[:-1], True])  # last row of each block
        top = np.interp(0.2 * len(sub), np.r_[0, ends + 1], np.r_[0.0, q[ends]])
        r = rows[arm]
        assert r["incremental_top"] == pytest.approx(top, rel=1e-9)
        assert r["incremental_all"] == pytest.approx(q[-1])
        if r["distinguishable"]:
            assert r["share_captured"] == pytest.approx(r["incremental_top"] / q[-1])
        else:  # a share of a total that cannot be told from zero is not shown
            assert r["share_captured"] is None
    # the coupon works only for x1 > 0 (half the customers): its top 20% capture well above 20%
    assert rows["coupon"]["share_captured"] > 0.3


def test_json_policy_section_is_the_policy_json(folders, report):
    p = report["json"]["policy"]
    pj = json.loads((folders / "policy" / "policy.json").read_text())
    a, ref = p["allocation"], pj["allocation"]
    assert a["counts"] == ref["counts"]
    for k in ("expected_incremental_reactivations", "expected_cost", "budget", "budget_used",
              "cost_per_incremental_reactivation", "optimality_gap", "n_customers"):
        assert a[k] == ref[k]
    assert a["counts"]["coupon"] <= 800 and a["expected_cost"] <= 400 + 1e-6
    assert p["budget_curve"]["reactivations"] == pj["budget_curve"]["reactivations"]
    assert p["exploration"]["customers"] == pj["exploration"]["customers"]
    ope, ref_ope = p["off_policy"], pj["off_policy"]
    assert ope["incremental_reactivations"] == ref_ope["incremental_reactivations"]
    assert [b["name"] for b in ope["baselines"]] == list(ref_ope["baselines"])
    by_name = {c["baseline"]: c for c in ref_ope["comparisons"]}
    for b in ope["baselines"]:
        assert b["significant"] == by_name[b["name"]]["significant"]
        assert b["difference"] == by_name[b["name"]]["difference"]
        assert b["reactivation"] == ref_ope["baselines"][b["name"]]["reactivation"]
    assert p["truth"] == pj["truth"]


def test_markdown_has_both_sections_with_the_numbers(folders, report):
    md, j = report["md"], report["json"]
    assert "## Whom to treat: uplift model" in md and "## Next campaign: policy" in md
    assert md.index("## Next campaign: policy") < md.index("## Method")
    assert "Qini curves per arm are in report.html" in md and "![" not in md
    for r in j["model"]["comparison"]:
        assert (f"| {r['learner']} | {r['arm']} | {100 * r['budgeted_value']:+.3f} | "
                f"{100 * r['budgeted_value_low']:+.3f} to {100 * r['budgeted_value_high']:+.3f}"
                f" | {100 * r['policy_value']:+.3f} | ") in md
    assert re.search(r"top 20% of customers by predicted coupon uplift captures \d+% of the "
                     r"coupon's incremental reactivations", md)
    a = j["policy"]["allocation"]
    for arm, n in a["counts"].items():  # the profile: who gets what
        assert f"| {arm} | {n:,} | " in md
    assert f"| none | {a['n_customers'] - a['n_treated']:,} | " in md
    pv = j["policy"]["plan_value"]  # one reconciled value of the written plan
    assert f"| expected (uplift model) | {pv['expected']:,.1f} | " in md
    assert f"| off-policy, doubly robust (95% CI) | {pv['off_policy']['estimate']:,.1f} | " in md
    for b in j["policy"]["off_policy"]["baselines"]:
        assert b["statement"] in md
        assert f"| {b['name']} | " in md
    assert "True value (from" in md and "by the interval" in md
    # the plain statement names what the policy does and does not significantly beat
    sig = {b["name"]: b["significant"] for b in j["policy"]["off_policy"]["baselines"]}
    assert set(sig.values()) == {True, False}  # this fixture has both
    better = re.search(r"Significantly better than: ([^.]*)\.", md).group(1).split("; ")
    worse = re.search(r"Not significantly better than: (.*) \(the difference", md).group(1)
    assert sorted(better) == sorted(n for n, s in sig.items() if s)
    assert sorted(worse.split("; ")) == sorted(n for n, s in sig.items() if not s)
    assert len(re.findall(r"^\| \$[\d,]+\.\d\d \| ", md, flags=re.M)) == len(
        j["policy"]["budget_curve"]["budget"])


def test_html_is_self_contained_with_the_folders_pngs(folders, report):
    html = report["html"]
    assert "Whom to treat: uplift model" in html and "Next campaign: policy" in html
    assert "<script" not in html and "<link" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    srcs = re.findall(r"""<img[^>]*\ssrc="([^"]*)\"""", html)
    assert len(srcs) == len(ARMS) + 1
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    pngs = {base64.b64decode(s.split(",", 1)[1]) for s in srcs}
    want = {(folders / "model" / f"qini_{a}.png").read_bytes() for a in ARMS}
    want.add((folders / "policy" / "budget_curve.png").read_bytes())
    assert pngs == want
    m = report["json"]["model"]
    for r in m["chosen"]:
        assert f"<td>{num(r['qini'], 3)}</td>" in html
    assert html.count("<th>decile</th>") == len(ARMS)
    for b in report["json"]["policy"]["off_policy"]["baselines"]:
        assert b["statement"].replace("'", "&#39;") in html


@pytest.mark.slow
def test_loaded_sections_and_folders_give_the_same_report(folders, result, tmp_path):
    a = write_report(result, tmp_path / "a", model=folders / "model", policy=folders / "policy")
    b = write_report(result, tmp_path / "b", model=load_model_section(folders / "model"),
                     policy=load_policy_section(folders / "policy"))
    for name in ("report.json", "report.md"):
        assert (a / name).read_text() == (b / name).read_text()

    def html(folder):  # the new sections only: matplotlib's SVG ids above differ per run
        text = (folder / "report.html").read_text()
        return text[text.index("<h2>Whom to treat"):text.index("<h2>Method")]

    assert html(a) == html(b)
    plain = write_report(result, tmp_path / "c")
    d = json.loads((plain / "report.json").read_text())
    assert "model" not in d and "policy" not in d
    assert "Whom to treat" not in (plain / "report.html").read_text()


@pytest.mark.slow
def test_policy_without_off_policy_or_truth(folders, result, tmp_path):
    from upliftlab.policy.io import read_scores
    from upliftlab.policy.run import run_policy

    run_policy(read_scores(folders / "model" / "oof_scores.parquet"), budget=100.0,
               costs={"coupon": (0.1, 1.0), "content": (0.02, 0)}, out=tmp_path / "pol")
    out = write_report(result, tmp_path / "r", policy=tmp_path / "pol")
    d = json.loads((out / "report.json").read_text())
    assert d["policy"]["off_policy"] is None and d["policy"]["truth"] is None
    md = (out / "report.md").read_text()
    assert "No off-policy estimate" in md and "True value" not in md


def test_bad_folders_raise_input_error_naming_folder_and_file(folders, result, tmp_path):
    broken = tmp_path / "model"
    shutil.copytree(folders / "model", broken)
    (broken / "deciles.csv").unlink()
    with pytest.raises(InputError, match=r"--model .*model: missing deciles\.csv"):
        write_report(result, tmp_path / "r", model=broken)
    with pytest.raises(InputError, match=r"--policy .*model: missing policy\.json"):
        write_report(result, tmp_path / "r", policy=folders / "model")
    assert not (tmp_path / "r").exists()


def run(*args: str) -> subprocess.CompletedProcess:
    return cli_process("report", *args)


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("csv") / "exp.csv"
    make_experiment(n=3000, seed=50).to_csv(p, index=False)
    return p


@pytest.mark.slow
def test_cli_data_form_with_model_and_policy(folders, csv_path, tmp_path):
    out = tmp_path / "r"
    proc = run("--data", str(csv_path), "--arm-col", "arm", "--control", "control", "--metric",
               "reactivated", "--analysis", "fixed", "--model", str(folders / "model"),
               "--policy", str(folders / "policy"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    d = json.loads((out / "report.json").read_text())
    assert d["model"]["learner"] == "t/large"
    assert d["policy"]["allocation"]["counts"] == json.loads(
        (folders / "policy" / "policy.json").read_text())["allocation"]["counts"]


def _bad_model_folders(folders, tmp_path):
    no_json = tmp_path / "no_json"
    shutil.copytree(folders / "model", no_json)
    (no_json / "model.json").unlink()
    bad_csv = tmp_path / "bad_csv"
    shutil.copytree(folders / "model", bad_csv)
    (bad_csv / "comparison.csv").write_text("learner,arm\nt,coupon\n")
    bad_policy = tmp_path / "bad_policy"
    shutil.copytree(folders / "policy", bad_policy)
    (bad_policy / "policy.json").write_text("{not json")
    bad_oof = tmp_path / "bad_oof"
    shutil.copytree(folders / "model", bad_oof)
    (bad_oof / "oof_scores.parquet").write_bytes(b"not parquet")
    # the damaged files are read as from a folder of an upliftlab before the marker; with the
    # marker kept, the changed file is caught first
    tampered = tmp_path / "tampered"
    shutil.copytree(folders / "model", tampered)
    (tampered / "deciles.csv").write_text((tampered / "deciles.csv").read_text() + "\n")
    for folder in (bad_csv, bad_policy, bad_oof):
        (folder / ".upliftlab.json").unlink()
    return [
        (["--model", str(tampered)], "deciles.csv is missing or differs from the folder's"),
        (["--model", str(tmp_path / "nowhere")], "nowhere: no such folder"),
        (["--model", str(bad_oof)], "oof_scores.parquet: not a readable Parquet file"),
        (["--model", str(no_json)], "no_json: missing model.json"),
        (["--model", str(bad_csv)], "comparison.csv: missing column(s) n_treated"),
        (["--policy", str(folders / "model")], "model: missing policy.json"),
        (["--policy", str(bad_policy)], "policy.json: not readable JSON"),
    ]


@pytest.mark.slow
def test_cli_bad_folder_exit_2_one_line_nothing_written(folders, csv_path, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for args, message in _bad_model_folders(folders, bad):
        out = tmp_path / "out"
        proc = run("--data", str(csv_path), "--arm-col", "arm", "--control", "control", "--metric",
                   "reactivated", *args, "--out", str(out))
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]


# --- the designed-experiment form: SPEC --as-of ... --model ... --policy ... ------------------


@pytest.mark.slow
def test_cli_spec_form_with_model_and_policy(designed, folders, tmp_path):  # noqa: F811
    import hashlib

    d, _, _ = designed
    store = d / "s.duckdb"
    before = hashlib.sha256(store.read_bytes()).hexdigest()
    out = tmp_path / "w"
    proc = run(str(d / "spec.toml"), "--as-of", "2026-01-12", "--store", str(store),
               "--model", str(tmp_path / "nowhere"), "--out", str(out))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "nowhere: no such folder" in proc.stderr
    assert not out.exists() and hashlib.sha256(store.read_bytes()).hexdigest() == before

    proc = run(str(d / "spec.toml"), "--as-of", "2026-01-12", "--store", str(store),
               "--model", str(folders / "model"), "--policy", str(folders / "policy"),
               "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    rep = json.loads((out / "report.json").read_text())
    assert rep["experiment"] == "winback_test"
    assert rep["model"]["learner"] == "t/large"
    assert rep["policy"]["allocation"]["counts"] == json.loads(
        (folders / "policy" / "policy.json").read_text())["allocation"]["counts"]
    html = (out / "report.html").read_text()
    assert "Whom to treat: uplift model" in html and "Next campaign: policy" in html
