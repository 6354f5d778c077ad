"""The real Hillstrom e-mail experiment: exact counts and means, and p-values and intervals equal
to an independent statsmodels / scipy computation (fixed horizon, Holm over arms × metrics)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from _helpers import cli_process

pytestmark = pytest.mark.realdata

CONTROL = "No E-Mail"
METRICS = ["conversion", "visit", "spend"]


@pytest.fixture(scope="module")
def result(hillstrom):
    from upliftlab.analysis import analyze

    return analyze(hillstrom, arm="segment", control=CONTROL, metrics=METRICS, analysis="fixed",
                   experiment="Hillstrom")


def test_counts_and_means_are_exact(result):
    d = result.to_dict()
    arms = {a["name"]: a for a in d["arms"]}
    assert {k: v["n"] for k, v in arms.items()} == {
        "Mens E-Mail": 21307, "Womens E-Mail": 21387, "No E-Mail": 21306}
    expected = {"visit": (18.2757, 15.1400, 10.6167), "conversion": (1.2531, 0.8837, 0.5726)}
    for metric, (mens, womens, none) in expected.items():
        got = [100 * arms[a]["metrics"][metric]["mean"] for a in
               ("Mens E-Mail", "Womens E-Mail", "No E-Mail")]
        assert got == pytest.approx([mens, womens, none], abs=5e-5)
    spend = [arms[a]["metrics"]["spend"]["mean"] for a in ("Mens E-Mail", "Womens E-Mail", "No E-Mail")]
    assert spend == pytest.approx([1.4226, 1.0772, 0.6528], abs=5e-5)
    assert d["srm"]["ok"] is True


def test_p_values_and_intervals_equal_independent_computation(result, hillstrom):
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.proportion import confint_proportions_2indep, test_proportions_2indep

    comp = result.comparisons
    ref = []
    for arm in ("Mens E-Mail", "Womens E-Mail"):
        t, c = hillstrom[hillstrom.segment == arm], hillstrom[hillstrom.segment == CONTROL]
        for m in METRICS:
            if m == "spend":
                r = stats.ttest_ind(t[m], c[m], equal_var=False)
                ci = r.confidence_interval(0.95)
                crit_fn = lambda p, df=r.df: stats.t.isf(p / 2, df)  # noqa: E731
                ref.append((arm, m, t[m].mean() - c[m].mean(), r.pvalue, ci.low, ci.high, crit_fn))
            else:
                r = test_proportions_2indep(t[m].sum(), len(t), c[m].sum(), len(c),
                                            method="wald", compare="diff")
                lo, hi = confint_proportions_2indep(t[m].sum(), len(t), c[m].sum(), len(c),
                                                    method="wald", compare="diff")
                ref.append((arm, m, t[m].mean() - c[m].mean(), r.pvalue, lo, hi,
                            lambda p: stats.norm.isf(p / 2)))
    p_adj = multipletests([r[3] for r in ref], method="holm")[1]
    assert len(comp) == len(ref) == 6
    for (arm, m, est, p, lo, hi, crit_fn), pa in zip(ref, p_adj):
        row = comp[(comp.arm == arm) & (comp.metric == m)].iloc[0]
        assert row.estimate == pytest.approx(est, rel=1e-10)
        assert row.p_value == pytest.approx(p, rel=1e-6)
        assert (row.ci_low_unadjusted, row.ci_high_unadjusted) == pytest.approx((lo, hi), rel=1e-6)
        assert row.p_value_adjusted == pytest.approx(pa, rel=1e-9)
        # the adjusted interval by GrowthBook's recipe: SE_adj = |d| / crit(p_adj)
        half = (hi - lo) / 2
        crit = crit_fn(0.05)
        half_adj = max(half, crit * abs(est) / crit_fn(pa)) if pa < 1 else max(half, abs(est))
        assert (row.ci_low, row.ci_high) == pytest.approx((est - half_adj, est + half_adj),
                                                          rel=1e-6)
        assert bool(row.significant) == (pa < 0.05)


def test_cli_writes_the_report(hillstrom_path, tmp_path):
    out = tmp_path / "hillstrom"
    proc = cli_process(
        "report", "--data", hillstrom_path, "--arm-col", "segment", "--control", CONTROL,
        "--metric", "conversion", "--metric", "visit", "--metric", "spend",
        "--segment", "zip_code", "--cost", "Mens E-Mail=0.1:2", "--cost", "Womens E-Mail=0.1:2",
        "--analysis", "fixed", "--experiment", "Hillstrom", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [".upliftlab.json", "report.html",
                                                     "report.json", "report.md"]
    d = json.loads((out / "report.json").read_text())
    assert d["method"]["analysis"] == "fixed"
    assert {a["name"]: a["n"] for a in d["arms"]}["Mens E-Mail"] == 21307
    mens = next(c for c in d["cost"] if c["arm"] == "Mens E-Mail")
    # 21,307 contacts at $0.10 and 267 conversions at $2
    assert mens["total_cost"] == pytest.approx(21307 * 0.1 + 267 * 2)
    assert "Mens E-Mail: conversion 1.25% vs 0.57%" in proc.stdout
    assert "reactivat" not in proc.stdout and "so far" not in proc.stdout
    html = (out / "report.html").read_text()
    assert "<svg" in html and "Mens E-Mail" in html
    assert np.isfinite(mens["ci_high"])
