"""Survival statistics on life tables: Kaplan–Meier, log-rank and RMST against lifelines on the
raw rows, statsmodels, and a hand computation; ratio metrics against a direct computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from upliftlab.stats.ratio import RatioStats, ratio_difference
from upliftlab.stats.survival import LifeTable, kaplan_meier, logrank, rmst

# a small hand-made table: days until the event, 1 = event seen, 0 = censored at the data's end
A_T = [2, 3, 3, 5, 6, 6, 6, 8, 9, 12]
A_E = [1, 1, 0, 1, 1, 0, 1, 0, 1, 0]
B_T = [1, 2, 2, 4, 4, 7, 10, 11]
B_E = [1, 1, 1, 1, 0, 1, 1, 0]


def table(times, events) -> LifeTable:
    return LifeTable.from_rows([(t, e, 1) for t, e in zip(times, events)])


def test_kaplan_meier_equals_lifelines_and_a_hand_computation():
    from lifelines import KaplanMeierFitter

    km = kaplan_meier(table(A_T, A_E))
    ref = KaplanMeierFitter().fit(A_T, A_E).survival_function_.iloc[:, 0]
    assert km.times == tuple(float(t) for t in ref.index)
    assert np.allclose(km.survival, ref.to_numpy())
    # by hand: at risk 10 at t=2 (1 event), 9 at t=3 (1 event, 1 censored), 7 at t=5, 6 at t=6
    # (2 events, 1 censored), 3 at t=8 (censored), 2 at t=9 (1 event), 1 at t=12 (censored)
    hand = {2: 9 / 10, 3: 9 / 10 * 8 / 9, 5: 9 / 10 * 8 / 9 * 6 / 7,
            6: 9 / 10 * 8 / 9 * 6 / 7 * 4 / 6, 9: 9 / 10 * 8 / 9 * 6 / 7 * 4 / 6 * 1 / 2}
    for t, s in hand.items():
        assert km.at(t) == pytest.approx(s)
    assert km.at(1.5) == 1.0 and km.at(12) == pytest.approx(hand[9])


def test_kaplan_meier_equals_statsmodels():
    from statsmodels.duration.survfunc import SurvfuncRight

    km = kaplan_meier(table(B_T, B_E))
    sm = SurvfuncRight(np.array(B_T, float), np.array(B_E, float))
    for t, s in zip(sm.surv_times, sm.surv_prob):
        assert km.at(t) == pytest.approx(s)


def test_counts_equal_rows():
    """A life table with counts gives the same curve as the rows it counts."""
    rng = np.random.default_rng(4)
    t = rng.integers(1, 30, 500)
    e = (rng.random(500) < 0.7).astype(int)
    counted = LifeTable.from_rows([(tt, ee, 1) for tt, ee in zip(t, e)])
    half = LifeTable.from_rows([(tt, ee, 1) for tt, ee in zip(t[:250], e[:250])]) + \
        LifeTable.from_rows([(tt, ee, 1) for tt, ee in zip(t[250:], e[250:])])
    assert half == counted and counted.n == 500
    assert kaplan_meier(half).survival == kaplan_meier(counted).survival


def test_logrank_equals_lifelines_and_statsmodels():
    from lifelines.statistics import logrank_test
    from statsmodels.duration.survfunc import survdiff

    ours = logrank(table(A_T, A_E), table(B_T, B_E))
    ref = logrank_test(A_T, B_T, event_observed_A=A_E, event_observed_B=B_E)
    assert ours.statistic == pytest.approx(ref.test_statistic)
    assert ours.p_value == pytest.approx(ref.p_value)
    chi2, p = survdiff(np.array(A_T + B_T, float), np.array(A_E + B_E, float),
                       np.array([0] * len(A_T) + [1] * len(B_T)))
    assert ours.statistic == pytest.approx(chi2) and ours.p_value == pytest.approx(p)


def test_rmst_equals_lifelines_and_the_area_by_hand():
    from lifelines import KaplanMeierFitter
    from lifelines.utils import restricted_mean_survival_time

    r = rmst(table(A_T, A_E), 10)
    ref = restricted_mean_survival_time(KaplanMeierFitter().fit(A_T, A_E), t=10)
    s = [1, 0.9, 0.8, 0.8 * 6 / 7, 0.8 * 6 / 7 * 4 / 6, 0.8 * 6 / 7 * 4 / 6 / 2]
    edges = [0, 2, 3, 5, 6, 9, 10]
    hand = sum(si * (b - a) for si, a, b in zip(s, edges[:-1], edges[1:]))
    assert r.estimate == pytest.approx(ref) and r.estimate == pytest.approx(hand)


def test_rmst_variance_without_censoring_is_the_variance_of_the_mean():
    """Without censoring the KM curve is the empirical one and RMST(τ) the mean of min(T, τ):
    the Greenwood-type variance must equal its plug-in variance over n."""
    rng = np.random.default_rng(1)
    t = np.round(rng.exponential(20, 400), 1)
    r = rmst(LifeTable.from_rows([(x, 1, 1) for x in t]), 30)
    clipped = np.minimum(t, 30)
    assert r.estimate == pytest.approx(clipped.mean())
    assert r.se == pytest.approx(math.sqrt(clipped.var() / len(t)), rel=1e-9)


@pytest.mark.slow
def test_rmst_interval_covers_under_censoring():
    """Seeded repetitions with random censoring: the 95% interval of RMST(τ) covers the
    exponential's exact RMST about 95% of the time."""
    scale, tau, n, reps = 10.0, 15.0, 300, 300
    truth = scale * (1 - math.exp(-tau / scale))
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(reps):
        t = rng.exponential(scale, n)
        c = rng.uniform(5, 40, n)
        d = np.round(np.minimum(t, c), 2)
        r = rmst(LifeTable.from_rows([(x, int(a <= b), 1) for x, a, b in zip(d, t, c)]), tau)
        hits += abs(r.estimate - truth) <= 1.96 * r.se
    assert 0.92 <= hits / reps <= 0.98


def test_ratio_metric_delta_method_equals_direct_computation():
    rng = np.random.default_rng(3)
    x = (rng.random(2000) < 0.3).astype(float)
    y = x * rng.gamma(2.0, 30.0, 2000)
    st = RatioStats(len(x), x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum())
    est = st.estimate()
    r = y.mean() / x.mean()
    cov = np.cov(np.vstack([y, x]))  # ddof 1
    var = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / (x.mean() ** 2 * len(x))
    assert est.estimate == pytest.approx(r) and est.se == pytest.approx(math.sqrt(var))
    # linearisation: the same SE as the standard error of the mean of (y − R·x)/x̄
    lin = (y - r * x) / x.mean()
    assert est.se == pytest.approx(lin.std(ddof=1) / math.sqrt(len(x)))
    other = RatioStats(10, 0, 0, 0, 0, 0)
    assert other.estimate() is None and ratio_difference(st, other) is None
