"""`upliftlab.analyze` (module `upliftlab.analysis`): the API on DataFrames, files and relations; corrections; bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from upliftlab.analysis import COMPARISON_COLUMNS, analyze
from upliftlab.errors import InputError


def make_experiment(n: int = 6000, seed: int = 40, effects=(0.0, 0.012, 0.02)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arms = np.array(["control", "content", "coupon"])
    arm = arms[rng.integers(0, 3, size=n)]
    base = 0.03
    pre = rng.gamma(2.0, 30.0, size=n)  # pre-period spend
    p = base + np.select([arm == a for a in arms], effects) + 0.0002 * (pre - 60)
    reactivated = (rng.random(n) < np.clip(p, 0, 1)).astype(int)
    revenue = reactivated * (0.5 * pre + rng.gamma(2.0, 20.0, size=n))
    tier = rng.choice(["short", "mid", "long"], size=n)
    return pd.DataFrame({"arm": arm, "reactivated": reactivated, "revenue": revenue,
                         "pre_spend": pre, "pre_orders": rng.poisson(3, size=n), "tier": tier})


@pytest.fixture(scope="module")
def exp() -> pd.DataFrame:
    return make_experiment()


def test_comparisons_columns_and_reference_values(exp):
    res = analyze(exp, arm="arm", control="control", metrics=["reactivated", "revenue"],
                  analysis="fixed", correction="none")
    comp = res.comparisons
    assert list(comp.columns[:len(COMPARISON_COLUMNS)]) == COMPARISON_COLUMNS
    assert len(comp) == 4
    row = comp[(comp.arm == "coupon") & (comp.metric == "revenue")].iloc[0]
    yt = exp.revenue[exp.arm == "coupon"]
    yc = exp.revenue[exp.arm == "control"]
    ref = stats.ttest_ind(yt, yc, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert row.estimate == pytest.approx(yt.mean() - yc.mean(), rel=1e-9)
    assert row.p_value == pytest.approx(ref.pvalue, rel=1e-6)
    assert (row.ci_low, row.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-7)
    assert row.relative_lift == pytest.approx(yt.mean() / yc.mean() - 1, rel=1e-9)
    arms = res.arms.set_index("arm")
    assert arms.loc["coupon", "n"] == len(yt)
    assert arms.loc["coupon", "revenue_sd"] == pytest.approx(yt.std(ddof=1), rel=1e-9)


def test_sources_dataframe_parquet_csv_relation_agree(exp, tmp_path):
    import duckdb

    pq, csv = tmp_path / "e.parquet", tmp_path / "e.csv"
    exp.to_parquet(pq)
    exp.to_csv(csv, index=False)
    kw = dict(arm="arm", control="control", metrics=["reactivated", "revenue"], analysis="fixed")
    ref = analyze(exp, **kw).comparisons
    con = duckdb.connect()
    for src in (str(pq), csv, con.sql(f"SELECT * FROM read_parquet('{pq}')")):
        got = analyze(src, **kw).comparisons
        pd.testing.assert_frame_equal(got, ref, rtol=1e-9)


def test_to_dict_is_report_json(exp):
    res = analyze(exp, arm="arm", control="control", metrics=["reactivated", "revenue"],
                  segments=["tier"], costs={"coupon": (0.5, 10.0), "content": 0.2},
                  experiment="winback", as_of="2026-03-02")
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert {"experiment", "as_of", "method", "srm", "arms", "comparisons", "cost",
            "segments"} <= set(d)
    assert d["experiment"] == "winback" and d["as_of"] == "2026-03-02"
    assert {"tests", "correction", "analysis", "alpha"} <= set(d["method"])
    assert d["method"]["analysis"] == "sequential" and d["method"]["correction"] == "holm"
    assert set(d["srm"]) >= {"p_value", "ok"}
    assert [a["name"] for a in d["arms"]][0] == "control"
    assert set(d["arms"][0]["metrics"]["revenue"]) == {"mean", "sd"}
    assert set(d["comparisons"][0]) >= set(COMPARISON_COLUMNS)
    assert {c["arm"] for c in d["cost"]} == {"coupon", "content"}
    assert set(d["cost"][0]) >= {"arm", "total_cost", "incremental_reactivations",
                                 "cost_per_incremental_reactivation", "ci_low", "ci_high",
                                 "incremental_revenue", "roi"}
    coupon = next(c for c in d["cost"] if c["arm"] == "coupon")
    n_t = int((exp.arm == "coupon").sum())
    conv = int(exp.reactivated[exp.arm == "coupon"].sum())
    assert coupon["total_cost"] == pytest.approx(0.5 * n_t + 10.0 * conv)
    assert d["segments"][0]["column"] == "tier"


@pytest.mark.parametrize("analysis", ["fixed", "sequential"])
@pytest.mark.parametrize("correction", ["holm", "bh"])
def test_adjusted_p_and_intervals_agree(exp, analysis, correction):
    from statsmodels.stats.multitest import multipletests

    res = analyze(exp, arm="arm", control="control", metrics=["reactivated", "revenue"],
                  analysis=analysis, correction=correction, alpha=0.05)
    c = res.comparisons
    ref = multipletests(c.p_value, method={"holm": "holm", "bh": "fdr_bh"}[correction])[1]
    np.testing.assert_allclose(c.p_value_adjusted, ref, rtol=1e-12)
    excludes_zero = (c.ci_low > 0) | (c.ci_high < 0)
    assert (excludes_zero == (c.p_value_adjusted < 0.05)).all()
    assert (c.significant == (c.p_value_adjusted < 0.05)).all()
    assert (c.ci_high - c.ci_low >= c.ci_high_unadjusted - c.ci_low_unadjusted - 1e-12).all()


def test_sequential_is_wider_than_fixed_and_planned_n_tunes_it(exp):
    kw = dict(arm="arm", control="control", metrics=["reactivated"], correction="none")
    fixed = analyze(exp, analysis="fixed", **kw).comparisons
    seq = analyze(exp, analysis="sequential", **kw).comparisons
    far = analyze(exp, analysis="sequential", planned_n=200_000, **kw).comparisons
    assert ((seq.ci_high - seq.ci_low) > (fixed.ci_high - fixed.ci_low)).all()
    assert (seq.p_value >= fixed.p_value).all()
    # tuned for a sample far beyond today's, the sequence is wider now
    assert ((far.ci_high - far.ci_low) > (seq.ci_high - seq.ci_low)).all()


def test_covariates_reduce_se_and_keep_estimate(exp):
    kw = dict(arm="arm", control="control", metrics=["revenue"], analysis="fixed")
    raw = analyze(exp, **kw).comparisons
    one = analyze(exp, covariates=["pre_spend"], **kw).comparisons
    two = analyze(exp, covariates=["pre_spend", "pre_orders"], **kw).comparisons
    assert (one.se < raw.se).all() and (two.se < raw.se).all()
    assert one.test.iloc[0].startswith("CUPED") and two.test.iloc[0].startswith("Lin")
    np.testing.assert_allclose(one.estimate, raw.estimate, atol=4 * raw.se.max())


def test_unbounded_cost_is_explicit():
    df = make_experiment(n=3000, seed=41, effects=(0.0, 0.0, 0.002))
    res = analyze(df, arm="arm", control="control", metrics=["reactivated"], analysis="fixed",
                  costs={"coupon": (0.5, 10.0)})
    row = res.to_dict()["cost"][0]
    assert row["bounded"] is False and row["ci_low"] is None and row["ci_high"] is None
    comp = res.comparisons.set_index("arm").loc["coupon"]
    assert comp.ci_low_unadjusted < 0 < comp.ci_high_unadjusted


def test_segments_add_up_and_have_heterogeneity(exp):
    res = analyze(exp, arm="arm", control="control", metrics=["reactivated"], analysis="fixed",
                  segments=["tier"])
    seg = res.segments
    coupon = seg[(seg.arm == "coupon")]
    assert coupon.n_treatment.sum() == (exp.arm == "coupon").sum()
    assert set(coupon.value) == {"short", "mid", "long"}
    het = res.heterogeneity
    assert (het.df == 2).all() and het.p_value.between(0, 1).all()


# --- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(control="nobody"), "control 'nobody' is not a value of arm column 'arm'"),
    (dict(metrics=["tier"]), "metric column 'tier' is not numeric"),
    (dict(metrics=["nope"]), "missing column 'nope'"),
    (dict(costs={"voucher": (1, 2)}), "cost given for unknown arm 'voucher'"),
    (dict(costs={"coupon": (-1, 2)}), "non-negative"),
    (dict(analysis="bayesian"), "analysis must be"),
    (dict(alpha=1.5), "alpha must be between 0 and 1"),
    (dict(correction="bonferroni"), "correction must be"),
    (dict(metrics=[]), "at least one metric"),
    (dict(covariates=["reactivated"]), "cannot be a metric and a covariate"),
])
def test_bad_input_raises_input_error(exp, kwargs, match):
    kw = dict(arm="arm", control="control", metrics=["reactivated"]) | kwargs
    with pytest.raises(InputError, match=match):
        analyze(exp, **kw)


def test_one_arm_and_missing_values_are_refused(exp):
    one = exp[exp.arm == "control"]
    with pytest.raises(InputError, match="only one arm"):
        analyze(one, arm="arm", control="control", metrics=["reactivated"])
    holes = exp.copy()
    holes["revenue"] = holes["revenue"].astype(float)
    holes.loc[holes.index[:7], "revenue"] = np.nan
    with pytest.raises(InputError, match=r"'revenue' has 7 missing values \(of 6,000 rows\)"):
        analyze(holes, arm="arm", control="control", metrics=["reactivated", "revenue"])
    noarm = exp.astype({"arm": object})
    noarm.loc[noarm.index[:3], "arm"] = None
    with pytest.raises(InputError, match="arm column 'arm' has 3 missing values"):
        analyze(noarm, arm="arm", control="control", metrics=["reactivated"])


@pytest.mark.parametrize("analysis", ["fixed", "sequential"])
def test_cost_interval_bounded_exactly_when_primary_significant(analysis):
    seen = set()
    for seed in range(42, 48):
        df = make_experiment(n=12000, seed=seed, effects=(0.0, 0.008, 0.015))
        res = analyze(df, arm="arm", control="control", metrics=["reactivated", "revenue"],
                      analysis=analysis, costs={"coupon": (0.5, 10.0), "content": (0.1, 0.0)})
        comp = res.comparisons.set_index(["arm", "metric"])
        for row in res.cost_rows:
            primary = comp.loc[(row["arm"], "reactivated")]
            assert row["bounded"] == bool(primary.significant)
            seen.add(row["bounded"])
            if row["bounded"]:
                assert row["ci_low"] < row["cost_per_incremental_reactivation"] < row["ci_high"]
    assert seen == {True, False}  # both cases occurred


def test_upliftlab_analyze_is_callable_from_the_package(exp):
    import upliftlab
    import upliftlab.analysis  # noqa: F401 - importing the module must not shadow the function

    res = upliftlab.analyze(exp, arm="arm", control="control", metrics=["reactivated"],
                            analysis="fixed")
    assert res.comparisons.shape[0] == 2


def test_srm_overall_and_per_segment(exp):
    from upliftlab.stats.srm import srm_test

    res = analyze(exp, arm="arm", control="control", metrics=["reactivated"], segments=["tier"])
    counts = exp.arm.value_counts().to_dict()
    assert res.srm.p_value == pytest.approx(srm_test(counts, {a: 1 for a in counts}).p_value)
    by = {b["value"]: b for b in res.to_dict()["srm"]["by_segment"]}
    short = exp[exp.tier == "short"].arm.value_counts().to_dict()
    assert by["short"]["p_value"] == pytest.approx(srm_test(short, {a: 1 for a in short}).p_value)
    # a broken pipeline that lost most coupon customers is flagged
    lost = exp.drop(exp[(exp.arm == "coupon")].index[:800])
    bad = analyze(lost, arm="arm", control="control", metrics=["reactivated"])
    assert not bad.srm.ok
    from upliftlab.report import render_markdown

    assert "SAMPLE RATIO MISMATCH" in render_markdown(bad)
