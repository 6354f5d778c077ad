"""The engine's tests against independent references: statsmodels and scipy on the same rows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from upliftlab.stats import sequential
from upliftlab.stats.cuped import cuped, lin
from upliftlab.stats.multiple import adjust, adjusted_halfwidth
from upliftlab.stats.segments import cochran_q
from upliftlab.stats.sufficient import MomentStats, RegressionStats, SampleStats
from upliftlab.stats.tests import compare, fixed_inference, proportions, welch


def sample(y: np.ndarray) -> SampleStats:
    y = np.asarray(y, float)
    return SampleStats(len(y), float(y.sum()), float((y * y).sum()))


def regression(y: np.ndarray, x: np.ndarray) -> RegressionStats:
    x = np.atleast_2d(np.asarray(x, float).T).T  # (n, k)
    return RegressionStats(len(y), float(y.sum()), float((y * y).sum()), tuple(x.sum(0)),
                           tuple(map(tuple, x.T @ x)), tuple(x.T @ y))


def test_sample_stats_add_up_and_match_numpy():
    rng = np.random.default_rng(1)
    y = rng.gamma(2.0, 3.0, size=1000)
    parts = [sample(y[:300]), sample(y[300:650]), sample(y[650:])]
    total = parts[0] + parts[1] + parts[2]
    assert total.n == 1000
    assert total.mean == pytest.approx(y.mean(), rel=1e-12)
    assert total.variance(1) == pytest.approx(y.var(ddof=1), rel=1e-10)
    assert total.variance(0) == pytest.approx(y.var(ddof=0), rel=1e-10)
    assert total.sd == pytest.approx(y.std(ddof=1), rel=1e-10)


def test_regression_stats_add_up():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, 2))
    y = x @ [1.0, -2.0] + rng.normal(size=500)
    a, b = regression(y[:200], x[:200]), regression(y[200:], x[200:])
    whole = regression(y, x)
    s = a + b
    assert s.n == whole.n
    np.testing.assert_allclose(np.array(s.sum_xx), np.array(whole.sum_xx), rtol=1e-12)
    np.testing.assert_allclose(s.sum_xy, whole.sum_xy, rtol=1e-12)


@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_proportions_equal_statsmodels_wald(alpha):
    from statsmodels.stats.proportion import confint_proportions_2indep, test_proportions_2indep

    rng = np.random.default_rng(3)
    yt = (rng.random(4000) < 0.041).astype(float)
    yc = (rng.random(3800) < 0.029).astype(float)
    eff = proportions(sample(yt), sample(yc))
    inf = fixed_inference(eff, alpha)
    ref = test_proportions_2indep(yt.sum(), len(yt), yc.sum(), len(yc), method="wald",
                                  compare="diff")
    lo, hi = confint_proportions_2indep(yt.sum(), len(yt), yc.sum(), len(yc), method="wald",
                                        compare="diff", alpha=alpha)
    assert eff.estimate == pytest.approx(yt.mean() - yc.mean(), abs=1e-15)
    assert eff.estimate / eff.se == pytest.approx(ref.statistic, rel=1e-9)
    assert inf.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert inf.ci_low == pytest.approx(lo, rel=1e-6)
    assert inf.ci_high == pytest.approx(hi, rel=1e-6)


def test_welch_equals_scipy_and_statsmodels():
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

    rng = np.random.default_rng(4)
    yt = rng.lognormal(1.0, 1.2, size=700)
    yc = rng.lognormal(0.9, 1.0, size=1100)
    eff = welch(sample(yt), sample(yc))
    inf = fixed_inference(eff, 0.05)
    ref = stats.ttest_ind(yt, yc, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert eff.df == pytest.approx(ref.df, rel=1e-9)
    assert eff.estimate / eff.se == pytest.approx(ref.statistic, rel=1e-9)
    assert inf.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert (inf.ci_low, inf.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    cm = CompareMeans(DescrStatsW(yt), DescrStatsW(yc))
    lo, hi = cm.tconfint_diff(alpha=0.05, usevar="unequal")
    assert (inf.ci_low, inf.ci_high) == pytest.approx((lo, hi), rel=1e-9)


def test_compare_uses_n_for_binary_and_n_minus_1_for_continuous():
    y = np.array([0, 1, 1, 0, 1, 0, 0, 0], float)
    s = sample(y)
    abs_b, _ = compare(s, s, binary=True)
    abs_c, _ = compare(s, s, binary=False)
    p = y.mean()
    assert abs_b.se == pytest.approx(math.sqrt(2 * p * (1 - p) / 8))
    assert abs_c.se == pytest.approx(math.sqrt(2 * y.var(ddof=1) / 8))
    assert abs_b.df is None and abs_c.df == pytest.approx(14.0)


def test_relative_lift_delta_method_matches_monte_carlo():
    # the spread of p_t/p_c − 1 over 20,000 replications is the delta method's SE
    rng = np.random.default_rng(5)
    n_t, n_c, p_t, p_c = 20000, 20000, 0.041, 0.029
    rt = rng.binomial(n_t, p_t, size=20000) / n_t
    rc = rng.binomial(n_c, p_c, size=20000) / n_c
    mc_sd = np.std(rt / rc - 1)
    t = SampleStats(n_t, p_t * n_t, p_t * n_t)
    c = SampleStats(n_c, p_c * n_c, p_c * n_c)
    _, rel = compare(t, c, binary=True)
    assert rel.estimate == pytest.approx(p_t / p_c - 1)
    assert rel.se == pytest.approx(mc_sd, rel=0.04)
    # and not the naive absolute-SE / p_c, which ignores the control's noise
    naive = compare(t, c, binary=True)[0].se / p_c
    assert rel.se > naive * 1.1


def test_cuped_equals_welch_on_adjusted_rows_and_keeps_estimate_unbiased():
    rng = np.random.default_rng(6)
    n = 3000
    x = rng.gamma(2.0, 10.0, size=2 * n)
    arm = np.repeat([1, 0], n)
    y = 0.8 * x + 2.0 * arm + rng.normal(0, 8, size=2 * n)
    theta = np.cov(x, y, ddof=1)[0, 1] / np.var(x, ddof=1)
    yadj = y - theta * (x - x.mean())
    ref = stats.ttest_ind(yadj[arm == 1], yadj[arm == 0], equal_var=False)
    res = cuped(regression(y[arm == 1], x[arm == 1]), regression(y[arm == 0], x[arm == 0]))
    inf = fixed_inference(res.absolute, 0.05)
    assert res.absolute.estimate == pytest.approx(yadj[arm == 1].mean() - yadj[arm == 0].mean(),
                                                  rel=1e-9)
    assert res.absolute.df == pytest.approx(ref.df, rel=1e-6)
    assert inf.p_value == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-300)
    ci = ref.confidence_interval(0.95)
    assert (inf.ci_low, inf.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-7)
    raw = welch(sample(y[arm == 1]), sample(y[arm == 0]))
    rho2 = np.corrcoef(x, y)[0, 1] ** 2
    assert res.absolute.se < raw.se
    assert res.variance_reduction == pytest.approx(rho2, abs=0.03)


def test_cuped_unbiased_and_lower_variance_over_replications():
    rng = np.random.default_rng(7)
    reps, n, effect = 300, 400, 1.5
    est_raw, est_adj = [], []
    for _ in range(reps):
        x = rng.normal(50, 10, size=2 * n)
        y = 0.9 * x + rng.normal(0, 6, size=2 * n)
        y[:n] += effect
        t, c = regression(y[:n], x[:n]), regression(y[n:], x[n:])
        est_adj.append(cuped(t, c).absolute.estimate)
        est_raw.append(welch(t.y, c.y).estimate)
    est_adj, est_raw = np.array(est_adj), np.array(est_raw)
    # unbiased within 4 Monte Carlo SEs, and the variance falls by about corr² (~0.84)
    assert abs(est_adj.mean() - effect) < 4 * est_adj.std() / math.sqrt(reps)
    assert est_adj.var() < 0.35 * est_raw.var()


def test_lin_equals_statsmodels_per_arm_ols_and_interacted_hc2():
    import statsmodels.api as sm

    rng = np.random.default_rng(8)
    n_t, n_c = 1500, 1200
    x = rng.normal(size=(n_t + n_c, 3)) * [1.0, 2.0, 0.5] + [0.0, 1.0, 3.0]
    arm = np.r_[np.ones(n_t), np.zeros(n_c)]
    y = x @ [1.0, 0.5, -2.0] + arm * (0.7 + 0.3 * x[:, 0]) + rng.normal(size=len(arm)) * (1 + arm)
    xc = x - x.mean(0)
    res = lin(regression(y[arm == 1], x[arm == 1]), regression(y[arm == 0], x[arm == 0]))
    # exact: statsmodels OLS per arm (nonrobust) on the pooled-centred covariates
    fits = [sm.OLS(y[arm == g], sm.add_constant(xc[arm == g])).fit() for g in (1, 0)]
    assert res.absolute.estimate == pytest.approx(fits[0].params[0] - fits[1].params[0], rel=1e-9)
    assert res.absolute.se == pytest.approx(math.hypot(fits[0].bse[0], fits[1].bse[0]), rel=1e-9)
    # Lin's interacted regression: same coefficient, HC2 SE within 2%
    design = np.column_stack([np.ones_like(arm), arm, xc, xc * arm[:, None]])
    hc2 = sm.OLS(y, design).fit(cov_type="HC2")
    assert res.absolute.estimate == pytest.approx(hc2.params[1], rel=1e-9)
    assert res.absolute.se == pytest.approx(hc2.bse[1], rel=0.02)


@pytest.mark.slow
def test_holm_and_bh_equal_statsmodels():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(9)
    for _ in range(50):
        m = int(rng.integers(1, 12))
        p = rng.uniform(0, 0.2, size=m) ** rng.uniform(0.5, 3)
        p[rng.random(m) < 0.2] = p[0]  # ties
        for ours, theirs in (("holm", "holm"), ("bh", "fdr_bh")):
            np.testing.assert_allclose(adjust(p, ours), multipletests(p, method=theirs)[1],
                                       rtol=1e-12)


def test_adjusted_interval_agrees_with_adjusted_p():
    rng = np.random.default_rng(10)
    z_alpha = stats.norm.isf(0.025)
    for _ in range(200):
        d, se = rng.normal(0, 3), rng.uniform(0.5, 2)
        p = 2 * stats.norm.sf(abs(d) / se)
        p_adj = min(1.0, p * rng.integers(1, 6))
        crit_adj = stats.norm.isf(p_adj / 2) if p_adj < 1 else 0.0
        hw = adjusted_halfwidth(d, z_alpha * se, z_alpha, crit_adj)
        assert hw >= z_alpha * se - 1e-12
        assert (abs(d) > hw) == (p_adj < 0.05)


def test_sequential_formula_matches_paper_and_is_consistent():
    # eq. 161 and eq. 9 of Waudby-Smith et al. (2023), written out independently
    alpha, n_star, n, se, d = 0.05, 20000, 12000, 0.004, 0.009
    rho = math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / n_star)
    s2 = se ** 2 * n
    hw = math.sqrt(s2) * math.sqrt(2 * (n * rho ** 2 + 1) / (n * rho) ** 2
                                   * math.log(math.sqrt(n * rho ** 2 + 1) / alpha))
    assert sequential.rho(alpha, n_star) == pytest.approx(rho)
    assert float(sequential.halfwidth(s2, n, alpha, n_star)) == pytest.approx(hw, rel=1e-12)
    # wider than the fixed interval at every n
    assert hw > stats.norm.isf(alpha / 2) * se
    # the always-valid p-value is the level at which the sequence touches 0
    p = float(sequential.p_value(d, se, n, alpha, n_star))
    assert sequential.crit_at(p, n, alpha, n_star) * se == pytest.approx(abs(d), rel=1e-9)
    for dd in np.linspace(-0.02, 0.02, 41):
        pp = float(sequential.p_value(dd, se, n, alpha, n_star))
        assert (abs(dd) > hw) == (pp < alpha)


def test_cochran_q_equals_statsmodels_meta_analysis():
    from statsmodels.stats.meta_analysis import combine_effects

    d = np.array([0.012, 0.004, 0.009, -0.001])
    se = np.array([0.003, 0.004, 0.002, 0.005])
    h = cochran_q(d, se)
    ref = combine_effects(d, se ** 2)
    assert h.q == pytest.approx(ref.q, rel=1e-10)
    assert h.df == 3
    assert h.p_value == pytest.approx(stats.chi2.sf(ref.q, 3), rel=1e-10)
    assert cochran_q([0.1], [0.1]).p_value is None


def test_sql_aggregate_matches_pandas():
    from upliftlab.sources import connect, register
    from upliftlab.stats.sql import aggregate, needed_pairs

    rng = np.random.default_rng(11)
    df = pd.DataFrame({"arm": rng.choice(["a", "b", "c"], size=5000),
                       "y": (rng.random(5000) < 0.3).astype(int),
                       "rev": rng.gamma(1.0, 20.0, size=5000),
                       "x": rng.normal(size=5000),
                       "tier": rng.choice(["short", "long"], size=5000)})
    con = connect()
    register(con, df, "v")
    agg = aggregate(con, "v", "arm", ["y", "rev", "x"], needed_pairs(["y", "rev"], ["x"]),
                    binary_check=["y", "rev"], segments=["tier"])
    for a, g in df.groupby("arm"):
        s: MomentStats = agg.arms[a]
        assert s.n == len(g)
        assert s.sample("rev").mean == pytest.approx(g.rev.mean(), rel=1e-12)
        assert s.sample("rev").variance() == pytest.approx(g.rev.var(), rel=1e-9)
        assert s.cross_of("rev", "y") == pytest.approx((g.rev * g.y).sum(), rel=1e-12)
        assert s.cross_of("x", "rev") == pytest.approx((g.rev * g.x).sum(), rel=1e-10)
        assert s.n_not01 == (0, len(g), 0)  # y is 0/1, rev is not, x is not checked
        # segments add up to the arm
        parts = [agg.segments["tier"][v][a] for v in ("short", "long")]
        assert (parts[0] + parts[1]).sample("y") == s.sample("y")
    assert agg.arms["a"].n_not01[agg.arms["a"].columns.index("rev")] > 0


def test_overwhelming_effect_p_underflow_keeps_interval():
    # p-values that underflow to 0 must not break the adjusted interval
    assert sequential.crit_at(0.0, 1e7, 0.05, 1e7) == math.inf
    assert adjusted_halfwidth(0.5, 0.01, 1.96, math.inf) == 0.01
