"""Cost per incremental reactivation: Fieller's interval, incremental revenue and ROI."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from upliftlab.stats.cost import cost_analysis, delta_ratio_se, fieller
from upliftlab.stats.sufficient import MomentStats

Z = stats.norm.isf(0.025)


def quad(r, a, b, va, vb, cab, z=Z):
    return (b * b - z * z * vb) * r * r - 2 * (a * b - z * z * cab) * r + (a * a - z * z * va)


def test_fieller_bounded_contains_estimate_and_solves_the_quadratic():
    a, b, va, vb, cab = 2.0, 0.012, 0.01, 0.000009, 0.00002
    r = fieller(a, b, va, vb, cab, Z)
    assert r.bounded
    assert r.ci_low < a / b < r.ci_high
    assert r.estimate == pytest.approx(a / b)
    # endpoints are the roots; inside the quadratic is negative, outside positive
    for end in (r.ci_low, r.ci_high):
        assert quad(end, a, b, va, vb, cab) == pytest.approx(0, abs=1e-9 * a * a)
    assert quad(a / b, a, b, va, vb, cab) < 0
    assert quad(r.ci_low * 0.99, a, b, va, vb, cab) > 0
    assert quad(r.ci_high * 1.01, a, b, va, vb, cab) > 0
    # Fieller is asymmetric: longer towards small b
    assert r.ci_high - a / b > a / b - r.ci_low


def test_fieller_unbounded_when_uplift_not_distinguishable_from_zero():
    # b / SE(b) = 1.5 < 1.96: the set is unbounded
    b, vb = 0.003, 0.002 ** 2
    r = fieller(2.0, b, 0.01, vb, 0.0, Z)
    assert not r.bounded and r.ci_low is None and r.ci_high is None
    assert r.estimate == pytest.approx(2.0 / b)
    # the boundary: b² − z²Var(b) ≤ 0 exactly at |b| = z·SE
    assert fieller(2.0, Z * 0.002 * 1.001, 0.01, vb, 0.0, Z).bounded
    assert not fieller(2.0, Z * 0.002 * 0.999, 0.01, vb, 0.0, Z).bounded
    assert fieller(2.0, 0.0, 0.01, vb, 0.0, Z).estimate is None


def test_fieller_approaches_delta_method_for_large_n():
    a, b = 1.5, 0.02
    for n, tol in ((1e4, 0.2), (1e6, 0.02), (1e8, 0.002)):
        va, vb, cab = 4.0 / n, 0.05 / n, 0.1 / n
        r = fieller(a, b, va, vb, cab, Z)
        se = delta_ratio_se(a, b, va, vb, cab)
        assert r.ci_low == pytest.approx(a / b - Z * se, rel=tol)
        assert r.ci_high == pytest.approx(a / b + Z * se, rel=tol)


def _stats(y: np.ndarray, rev: np.ndarray) -> MomentStats:
    return MomentStats(len(y), ("y", "rev"), (float(y.sum()), float(rev.sum())),
                       (("y", "y"), ("rev", "rev"), ("y", "rev")),
                       (float(y @ y), float(rev @ rev), float(y @ rev)), (0, 0), (0, 0))


def test_cost_analysis_against_row_level_computation():
    rng = np.random.default_rng(30)
    n_t, n_c = 20000, 19000
    yt = (rng.random(n_t) < 0.045).astype(float)
    yc = (rng.random(n_c) < 0.030).astype(float)
    rt = yt * rng.gamma(2.0, 40.0, n_t)
    rc = yc * rng.gamma(2.0, 40.0, n_c)
    c0, c1, c0c = 0.5, 10.0, 0.1
    st, sc = _stats(yt, rt), _stats(yc, rc)
    ct, cc = st.cost(c0, c1, "y", "rev"), sc.cost(c0c, 0.0, "y", "rev")
    cost_t, cost_c = c0 + c1 * yt, c0c + 0.0 * yc
    assert ct.sum_cost == pytest.approx(cost_t.sum())
    assert ct.sum_cost_sq == pytest.approx(cost_t @ cost_t)
    assert ct.sum_cost_y == pytest.approx(cost_t @ yt)
    assert ct.sum_cost_rev == pytest.approx(cost_t @ rt)
    res = cost_analysis("t", st.sample("y"), sc.sample("y"), ct, cc, Z, 0, (0.0, 0.0),
                        st.sample("rev"), sc.sample("rev"), (0.0, 0.0))
    # the same numbers straight from the rows (plug-in variances, ddof=0, for the 0/1 metric)
    a = cost_t.mean() - cost_c.mean()
    b = yt.mean() - yc.mean()
    va = cost_t.var() / n_t + cost_c.var() / n_c
    vb = yt.var() / n_t + yc.var() / n_c
    cab = np.cov(cost_t, yt, ddof=0)[0, 1] / n_t + np.cov(cost_c, yc, ddof=0)[0, 1] / n_c
    ref = fieller(a, b, va, vb, cab, Z)
    assert res.total_cost == pytest.approx(cost_t.sum())
    assert res.incremental_reactivations == pytest.approx(b * n_t)
    assert res.cpir.estimate == pytest.approx(a / b)
    assert res.cpir.bounded
    assert (res.cpir.ci_low, res.cpir.ci_high) == pytest.approx((ref.ci_low, ref.ci_high), rel=1e-6)
    dr = rt.mean() - rc.mean()
    assert res.incremental_revenue == pytest.approx(dr * n_t)
    assert res.roi == pytest.approx((dr * n_t - a * n_t) / (a * n_t))
    # ROI interval by the delta method on the rows: Var(Δrev/a)
    vr = rt.var(ddof=1) / n_t + rc.var(ddof=1) / n_c
    cra = np.cov(rt, cost_t)[0, 1] / n_t + np.cov(rc, cost_c)[0, 1] / n_c
    va1 = cost_t.var(ddof=0) / n_t + cost_c.var(ddof=0) / n_c
    se = math.sqrt(vr / a ** 2 + dr ** 2 * va1 / a ** 4 - 2 * dr * cra / a ** 3)
    assert res.roi_ci == pytest.approx((res.roi - Z * se, res.roi + Z * se), rel=1e-6)
