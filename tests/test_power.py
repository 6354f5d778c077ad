"""Power: fixed-horizon figures equal statsmodels (NormalIndPower on Cohen's h, unequal ratio),
Bonferroni, the sequential inflation, and baselines measured from history."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from _helpers import AS_OF, RATES, cli_process, spec_toml, two_arms
from upliftlab.power import (cohens_h, cs_half_width, detectable_h, h_to_rate,
                             measure_baseline, power_table, power_two_proportions, required_n,
                             sequential_inflation)
from upliftlab.session import Session

SM = NormalIndPower()


@pytest.mark.parametrize("p0, mde", [(0.05, 0.01), (0.02, 0.005), (0.3, 0.05), (0.6, -0.1)])
@pytest.mark.parametrize("ratio", [1.0, 2.0, 0.5, 2.7632])
@pytest.mark.parametrize("alpha", [0.05, 0.05 / 3])
def test_sample_size_equals_statsmodels(p0, mde, ratio, alpha):
    h = cohens_h(p0 + mde, p0)
    assert h == pytest.approx(proportion_effectsize(p0 + mde, p0), rel=1e-14)
    want = SM.solve_power(effect_size=h, nobs1=None, alpha=alpha, power=0.8, ratio=ratio)
    assert required_n(h, ratio, alpha, 0.8) == pytest.approx(want, rel=1e-8)
    for n in (100, 2500, 40000):
        assert power_two_proportions(h, n, ratio, alpha) == pytest.approx(
            SM.power(effect_size=h, nobs1=n, alpha=alpha, ratio=ratio), rel=1e-12)


@pytest.mark.parametrize("n, ratio", [(500, 1.0), (5000, 2.0), (20000, 0.25)])
def test_detectable_effect_equals_statsmodels(n, ratio):
    h = detectable_h(n, ratio, 0.05, 0.8)
    # statsmodels' own root-finder stops at ~1e-6; the defining equation holds to 1e-10 here
    sm_h = SM.solve_power(effect_size=None, nobs1=n, alpha=0.05, power=0.8, ratio=ratio)
    assert h == pytest.approx(sm_h, rel=1e-4)
    assert SM.power(effect_size=h, nobs1=n, alpha=0.05, ratio=ratio) == pytest.approx(0.8, abs=1e-10)
    p1 = h_to_rate(0.04, h)
    assert cohens_h(p1, 0.04) == pytest.approx(h, rel=1e-12)


def test_hand_values():
    # n = 2 (z_{0.975} + z_{0.8})^2 / h^2 per arm ignoring the far tail, which adds ~1e-6 power
    h = cohens_h(0.06, 0.05)
    assert h == pytest.approx(0.0439073, abs=1e-7)
    approx = 2 * (1.959964 + 0.841621) ** 2 / 0.0439073 ** 2
    assert required_n(h, 1.0, 0.05, 0.8) == pytest.approx(approx, rel=1e-5)
    assert math.ceil(required_n(h, 1.0, 0.05, 0.8)) == 8143


def test_cs_half_width_matches_formula_and_inflation():
    # the STATS-NOTES formula by hand at n = 1000, sigma = 2, alpha = 0.05, N* = 800
    a = -2 * math.log(0.05)
    rho2 = (a + math.log(a + 1)) / 800
    hand = 2 * math.sqrt(2 * (1000 * rho2 + 1) / (1000 ** 2 * rho2)
                         * math.log(math.sqrt(1000 * rho2 + 1) / 0.05))
    assert cs_half_width(1000, 2.0, 0.05, 800) == pytest.approx(hand, rel=1e-14)
    for alpha, power in [(0.05, 0.8), (0.05 / 3, 0.8), (0.01, 0.9)]:
        f = sequential_inflation(alpha, power)
        # with N* = n the CS is sigma/sqrt(n) times a constant K: closed form of the inflation
        c = a_ = -2 * math.log(alpha)
        c = a_ + math.log(a_ + 1)
        k = math.sqrt(2 * (c + 1) / c * math.log(math.sqrt(c + 1) / alpha))
        closed = ((k + norm.ppf(power)) / (norm.isf(alpha / 2) + norm.ppf(power))) ** 2
        assert f == pytest.approx(closed, rel=1e-9)
        assert 1.3 < f < 2.5
    # at the sequential n, the CS half-width plus z_beta SE equals the effect
    n_fixed = (norm.isf(0.025) + norm.ppf(0.8)) ** 2
    n_seq = n_fixed * sequential_inflation(0.05, 0.8)
    assert cs_half_width(n_seq, 1.0, 0.05, n_seq) + norm.ppf(0.8) / math.sqrt(n_seq) == \
        pytest.approx(1.0, rel=1e-9)


def test_power_table_bonferroni_unequal_weights_and_pooled_baseline():
    weights = {"control": 0.5, "coupon": 0.3, "advisor": 0.2}
    rep = power_table(baselines={"short": 0.06, "long": 0.01}, tier_counts={"short": 2000,
                      "long": 8000}, weights=weights, control="control", alpha=0.05, power=0.8,
                      mde=0.01, holdout_share=0.1, capacities={"advisor": 500})
    assert rep.alpha_per_comparison == pytest.approx(0.025)
    assert rep.correction == "bonferroni"
    rows = {(r.arm, r.scope): r for r in rep.rows}
    pooled = (2000 * 0.06 + 8000 * 0.01) / 10000
    r = rows[("advisor", "all")]
    assert r.baseline == pytest.approx(pooled)
    assert r.ratio == pytest.approx(0.5 / 0.2)
    h = proportion_effectsize(pooled + 0.01, pooled)
    want = SM.solve_power(effect_size=h, nobs1=None, alpha=0.025, power=0.8, ratio=2.5)
    assert r.n_treatment_required == math.ceil(want)
    assert r.n_control_required == math.ceil(want * 2.5)
    assert r.cohort_required == math.ceil(want / (0.9 * 0.2))
    assert r.capacity_short            # 500 advisors cannot reach the required sample
    assert r.n_treatment_sequential == math.ceil(want * rep.sequential_inflation)
    assert r.n_treatment == int(10000 * 0.9 * 0.2)
    sm_h = SM.solve_power(effect_size=None, nobs1=r.n_treatment, alpha=0.025, power=0.8,
                          ratio=r.n_control / r.n_treatment * 0 + 2.5)
    assert cohens_h(pooled + r.mde_available, pooled) == pytest.approx(sm_h, rel=1e-4)
    assert r.mde_available_sequential > r.mde_available
    short = rows[("coupon", "short")]
    assert short.baseline == 0.06 and short.n_treatment == int(2000 * 0.9 * 0.3)
    # relative MDE converts per scope
    rel = power_table(baselines={"all": 0.04}, tier_counts={"all": 1000}, weights=weights,
                      control="control", alpha=0.05, power=0.8, mde_relative=0.25)
    assert rel.rows[0].mde == pytest.approx(0.01)


def _tx(rows):
    return pd.DataFrame(rows, columns=["customer_id", "ts", "amount"]).astype(
        {"customer_id": "int64", "amount": "float64"})


def test_baseline_measured_from_history():
    """Cohort as of H, reactivation = a purchase in [H, H + window); nothing later counts."""
    h = date(2025, 7, 1)
    rows = []
    rng = np.random.default_rng(0)
    expected = {"short": [0, 0], "long": [0, 0]}
    cid = 0
    for tier, days_before in [("short", 120), ("long", 500)]:
        for i in range(40):
            cid += 1
            rows.append((cid, datetime.combine(h - timedelta(days=days_before), datetime.min.time()),
                         20.0))
            back = rng.random() < (0.3 if tier == "short" else 0.1)
            if back:       # inside the window: counts
                rows.append((cid, datetime.combine(h + timedelta(days=int(rng.integers(0, 30))),
                                                   datetime.min.time()), 10.0))
            elif i % 3 == 0:   # just after the window: must not count
                rows.append((cid, datetime.combine(h + timedelta(days=30), datetime.min.time()),
                             10.0))
            expected[tier][0] += 1
            expected[tier][1] += back
    # active customers (bought 10 days before H) are not in the dormant cohort
    rows.append((999, datetime.combine(h - timedelta(days=10), datetime.min.time()), 5.0))
    with Session() as session:
        got = measure_baseline(session, _tx(rows), h, 30, tiers="short=180,mid=365,long")
    assert set(got) == {"short", "long"}
    for tier, (n, k) in expected.items():
        assert got[tier][0] == n
        assert got[tier][1] == pytest.approx(k / n)


@pytest.mark.slow
def test_cli_power_with_given_rates(tmp_path):
    rng = np.random.default_rng(1)
    n = 3000
    cohort = pd.DataFrame({"customer_id": np.arange(n),
                           "tier": rng.choice(["short", "mid", "long"], n, p=[0.2, 0.3, 0.5]),
                           "revenue_365d": rng.gamma(2, 40, n)})
    cohort.to_parquet(tmp_path / "cohort.parquet")
    (tmp_path / "p.toml").write_text(spec_toml(
        "pw", "pw", mde=0.02, cohort={"table": "cohort.parquet", "as_of": AS_OF},
        arms=two_arms("email"), tables={"baseline": {"rates": RATES}}))
    out = cli_process("power", tmp_path / "p.toml", "--store", tmp_path / "none.duckdb")
    assert out.returncode == 0, out.stderr
    pooled = (cohort["tier"].map({"short": 0.05, "mid": 0.025, "long": 0.01})).mean()
    h = proportion_effectsize(pooled + 0.02, pooled)
    want = math.ceil(SM.solve_power(effect_size=h, nobs1=None, alpha=0.05, power=0.8, ratio=1))
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("email") and " all " in ln)
    assert f"{want:,}" in line
    assert not (tmp_path / "none.duckdb").exists()
