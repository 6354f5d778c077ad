"""Calibration by simulation (seeded, seconds): weekly looks, interval coverage.

A/A experiments looked at every week for twelve weeks: the sequential analysis rejects at most
α of the time (within simulation error), fixed-horizon peeking clearly more often.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from upliftlab.stats import sequential
from upliftlab.stats.sufficient import SampleStats
from upliftlab.stats.tests import compare, fixed_inference

ALPHA = 0.05
REPS, WEEKS, PER_WEEK = 2000, 12, 500


def _weekly_aa(rng: np.random.Generator, p: float = 0.05):
    """Cumulative reactivation counts per arm at each weekly look: arrays (REPS, WEEKS)."""
    xt = rng.binomial(PER_WEEK, p, size=(REPS, WEEKS)).cumsum(axis=1)
    xc = rng.binomial(PER_WEEK, p, size=(REPS, WEEKS)).cumsum(axis=1)
    n = PER_WEEK * np.arange(1, WEEKS + 1)
    pt, pc = xt / n, xc / n
    d = pt - pc
    se = np.sqrt(pt * (1 - pt) / n + pc * (1 - pc) / n)
    return d, se, 2 * n


def _tolerance(rate: float, reps: int) -> float:
    return 3 * math.sqrt(rate * (1 - rate) / reps)


def test_sequential_aa_false_positive_rate_at_most_alpha_with_weekly_looks():
    d, se, n = _weekly_aa(np.random.default_rng(20))
    p_seq = sequential.p_value(d, se, n, ALPHA, n_star=n[-1])
    fpr_seq = np.mean((p_seq < ALPHA).any(axis=1))
    p_fix = 2 * stats.norm.sf(np.abs(d) / se)
    fpr_peek = np.mean((p_fix < ALPHA).any(axis=1))
    fpr_last = np.mean(p_fix[:, -1] < ALPHA)
    assert fpr_seq <= ALPHA + _tolerance(ALPHA, REPS)
    # one look at the end is fine, peeking every week is not
    assert abs(fpr_last - ALPHA) <= _tolerance(ALPHA, REPS)
    assert fpr_peek > 0.12
    assert fpr_peek > 2 * fpr_seq


def test_sequential_interval_is_the_inverted_p_value_at_every_look():
    d, se, n = _weekly_aa(np.random.default_rng(21))
    hw = sequential.halfwidth(se ** 2 * n, n, ALPHA, n_star=n[-1])
    p = sequential.p_value(d, se, n, ALPHA, n_star=n[-1])
    np.testing.assert_array_equal(np.abs(d) > hw, p < ALPHA)


def test_sequential_covers_true_effect_at_all_looks_simultaneously():
    rng = np.random.default_rng(22)
    pt_true, pc_true = 0.06, 0.045
    xt = rng.binomial(PER_WEEK, pt_true, size=(REPS, WEEKS)).cumsum(axis=1)
    xc = rng.binomial(PER_WEEK, pc_true, size=(REPS, WEEKS)).cumsum(axis=1)
    n = PER_WEEK * np.arange(1, WEEKS + 1)
    pt, pc = xt / n, xc / n
    se = np.sqrt(pt * (1 - pt) / n + pc * (1 - pc) / n)
    hw = sequential.halfwidth(se ** 2 * 2 * n, 2 * n, ALPHA, n_star=2 * n[-1])
    covered_always = np.all(np.abs(pt - pc - (pt_true - pc_true)) <= hw, axis=1)
    assert covered_always.mean() >= 1 - ALPHA - _tolerance(ALPHA, REPS)


@pytest.mark.slow
@pytest.mark.parametrize("binary", [True, False])
def test_fixed_95_intervals_cover_the_true_effect(binary):
    rng = np.random.default_rng(23 + binary)
    reps, n_t, n_c = 2000, 3000, 2500
    hits_abs = hits_rel = 0
    if binary:
        mt, mc = 0.06, 0.04
    else:
        mt, mc = 2.0 * 3.0, 2.0 * 2.5  # gamma(shape 2, scale 3 / 2.5): skewed like revenue
    for _ in range(reps):
        if binary:
            yt = SampleStats(n_t, *([float(rng.binomial(n_t, mt))] * 2))
            yc = SampleStats(n_c, *([float(rng.binomial(n_c, mc))] * 2))
        else:
            a, b = rng.gamma(2.0, 3.0, size=n_t), rng.gamma(2.0, 2.5, size=n_c)
            yt = SampleStats(n_t, float(a.sum()), float((a * a).sum()))
            yc = SampleStats(n_c, float(b.sum()), float((b * b).sum()))
        absolute, rel = compare(yt, yc, binary)
        inf = fixed_inference(absolute, ALPHA)
        rinf = fixed_inference(rel, ALPHA)
        hits_abs += inf.ci_low <= mt - mc <= inf.ci_high
        hits_rel += rinf.ci_low <= mt / mc - 1 <= rinf.ci_high
    for hits in (hits_abs, hits_rel):
        assert abs(hits / reps - 0.95) <= _tolerance(0.95, reps)
