"""Churn risk: point-in-time features (property test), BG/NBD against its formula, the
evaluation metrics against scikit-learn, the estimator contract, and the simulator's truth."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from upliftlab.risk.bgnbd import BetaGeoRisk, fit_bgnbd, p_alive
from upliftlab.risk.data import active_features, event_feature_name, training_data
from upliftlab.risk.evaluate import calibration_table, evaluate_scores
from upliftlab.risk.levels import RiskLevels
from upliftlab.risk.model import OverdueRule, RiskModel
from upliftlab.sources import connect

SNAP = date(2025, 6, 1)


def _features(tx: pd.DataFrame, events: pd.DataFrame | None = None) -> pd.DataFrame:
    con = connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        return active_features(con, tx, SNAP, dormant_after=90, events=events).df()
    finally:
        con.close()


rows = st.lists(st.tuples(st.integers(1, 8), st.integers(-800, -1), st.integers(0, 86_399),
                          st.floats(0.01, 500, allow_nan=False), st.booleans()),
                min_size=1, max_size=40)
later = st.lists(st.tuples(st.integers(1, 12), st.integers(0, 120), st.integers(0, 86_399),
                           st.floats(0, 1e6, allow_nan=False), st.booleans()),
                 min_size=1, max_size=30)


def _frame(items) -> pd.DataFrame:
    base = datetime.combine(SNAP, datetime.min.time())
    return pd.DataFrame({
        "customer_id": [c for c, *_ in items],
        "ts": [base + timedelta(days=d, seconds=s) for _, d, s, *_ in items],
        "amount": [a for *_, a, _ in items],
        "discount_used": [f for *_, f in items],
    })


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=rows, after=later)
def test_rows_on_or_after_the_snapshot_change_no_feature(before, after):
    # the data reach the day before the snapshot (the cohort's own rule for an as-of date)
    base = _frame([*before, (1, -1, 0, 5.0, False)])
    with_later = pd.concat([base, _frame(after)], ignore_index=True).sample(frac=1, random_state=0)
    events = pd.DataFrame({"customer_id": base["customer_id"], "ts": base["ts"],
                           "event_type": "visit"})
    later_events = pd.DataFrame({"customer_id": [c for c, *_ in after],
                                 "ts": _frame(after)["ts"], "event_type": "visit"})
    a = _features(base, events)
    b = _features(with_later, pd.concat([events, later_events], ignore_index=True))
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def test_active_population_is_the_complement_of_the_dormant_cohort():
    from upliftlab.cohort import build_cohort

    rng = np.random.default_rng(1)
    n = 2000
    base = datetime(2024, 1, 1)
    tx = pd.DataFrame({"customer_id": rng.integers(1, 300, n),
                       "ts": [base + timedelta(days=int(d)) for d in rng.integers(0, 560, n)],
                       "amount": rng.uniform(1, 100, n), "discount_used": rng.random(n) < 0.3})
    active = _features(tx)
    dormant = build_cohort(tx, SNAP)
    before = set(tx.loc[tx["ts"] < datetime(2025, 6, 1), "customer_id"])
    assert set(active["customer_id"]).isdisjoint(dormant["customer_id"])
    assert set(active["customer_id"]) | set(dormant["customer_id"]) == before
    assert (active["days_since_last"] < 90).all() and (active["tier"] == "active").all()
    # the same columns as the cohort, computed by the same query
    assert list(active.columns) == list(dormant.columns)


def test_event_features_count_per_type_and_window():
    tx = pd.DataFrame({"customer_id": [1, 2], "ts": [datetime(2025, 5, 20), datetime(2025, 5, 31)],
                       "amount": [10.0, 20.0], "discount_used": [False, True]})
    ev = pd.DataFrame({"customer_id": [1, 1, 1, 2], "event_type": ["visit", "visit", "complaint",
                                                                     "visit"],
                       "ts": [datetime(2025, 5, 30), datetime(2025, 4, 1), datetime(2025, 5, 1),
                              datetime(2025, 6, 1)]})  # the last is on the snapshot: ignored
    f = _features(tx, ev).set_index("customer_id")
    assert f.loc[1, event_feature_name("visit", "7d")] == 1
    assert f.loc[1, event_feature_name("visit", "90d")] == 2
    assert f.loc[1, event_feature_name("visit", "days_since")] == 2
    assert f.loc[1, event_feature_name("complaint", "30d")] == 0
    assert f.loc[1, event_feature_name("complaint", "90d")] == 1
    assert f.loc[2, event_feature_name("visit", "90d")] == 0
    assert pd.isna(f.loc[2, event_feature_name("visit", "days_since")])


def test_label_is_no_purchase_in_the_horizon():
    tx = pd.DataFrame({"customer_id": [1, 1, 2, 2, 3],
                       "ts": [datetime(2025, 5, 1), datetime(2025, 7, 30, 23), datetime(2025, 5, 1),
                              datetime(2025, 7, 31), datetime(2025, 5, 2)],
                       "amount": [1.0] * 5})
    d = training_data(tx, [SNAP], 60, min_history_days=20).set_index("customer_id")
    # window [2025-06-01, 2025-07-31): customer 1 bought inside, 2 on its first day after
    assert d.loc[1, "dormant"] == 0 and d.loc[2, "dormant"] == 1 and d.loc[3, "dormant"] == 1


def test_training_data_runs_in_its_session_and_keeps_the_callers_time_zone():
    """Timestamps with a zone are read in UTC (the session's setting), never by changing the
    settings of the caller's connection; a bare connection is refused, not adopted."""
    import duckdb

    from upliftlab.session import Session

    caller = duckdb.connect()
    caller.execute("SET TimeZone = 'America/New_York'")
    # 22:30 in New York on 30 July is 02:30 UTC on 31 July: after the window [06-01, 07-31)
    tx = pd.DataFrame({"customer_id": [1, 1, 2],
                       "ts": pd.to_datetime(["2025-05-01 12:00", "2025-07-30 22:30",
                                             "2025-05-01 12:00"]).tz_localize("America/New_York"),
                       "amount": [1.0] * 3})
    rel = caller.from_df(tx)  # a relation of the caller's connection
    zone = "SELECT current_setting('TimeZone')"
    for d in (training_data(rel, [SNAP], 60, min_history_days=20),
              training_data(tx, [SNAP], 60, min_history_days=20, session=Session())):
        d = d.set_index("customer_id")
        assert d.loc[1, "dormant"] == 1 and d.loc[2, "dormant"] == 1
        assert caller.execute(zone).fetchone()[0] == "America/New_York"
    # in New York's time the purchase falls inside the window: the reading really is UTC's
    local = caller.execute("SELECT count(*) FROM rel WHERE customer_id = 1 AND "
                           "CAST(ts AS TIMESTAMP) < TIMESTAMP '2025-07-31'").fetchone()[0]
    assert local == 2
    with pytest.raises(TypeError, match="needs an upliftlab Session"):
        training_data(tx, [SNAP], 60, min_history_days=20, session=caller)
    assert caller.execute(zone).fetchone()[0] == "America/New_York"


# ----------------------------------------------------------------------------------- BG/NBD

def _p_alive_formula(r, alpha, a, b, x, t_x, T):
    """STATS-NOTES, "Churn risk, point in time", written out term by term."""
    if x == 0:
        return 1.0
    return 1.0 / (1.0 + (a / (b + x - 1)) * ((alpha + T) / (alpha + t_x)) ** (r + x))


def test_p_alive_matches_the_formula():
    params = np.array([0.243, 4.414, 0.793, 2.426])  # Fader, Hardie & Lee (2005), CDNOW
    cases = [(0, 0.0, 38.86), (1, 30.43, 38.86), (2, 6.0, 30.0), (7, 35.0, 38.0), (5, 10.0, 39.0)]
    x, t_x, T = (np.array(v, dtype=float) for v in zip(*cases))
    got = p_alive(params, x, t_x, T)
    want = [_p_alive_formula(*params, *c) for c in cases]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def _simulate_bgnbd(n, r, alpha, a, b, T, rng):
    """Customers from the BG/NBD story: Poisson purchases at a gamma rate, a beta chance of
    dropping out after each purchase, observed over (0, T]."""
    lam = rng.gamma(r, 1 / alpha, n)
    p = rng.beta(a, b, n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1 / lam[i])
            if t > T:
                break
            x[i] += 1
            t_x[i] = t
            if rng.random() < p[i]:
                break
    return x, t_x, np.full(n, T)


def test_bgnbd_maximum_likelihood_recovers_its_parameters():
    rng = np.random.default_rng(5)
    truth = (0.8, 6.0, 0.7, 3.0)
    x, t_x, T = _simulate_bgnbd(6000, *truth, T=52.0, rng=rng)
    got = fit_bgnbd(x, t_x, T)
    # the population's P(alive) is what the baseline uses: compare it, and the parameters
    np.testing.assert_allclose(got, truth, rtol=0.35)
    pa_fit, pa_true = p_alive(got, x, t_x, T), p_alive(np.array(truth), x, t_x, T)
    assert np.abs(pa_fit - pa_true).mean() < 0.03


# ------------------------------------------------------------------------------ evaluation

def test_auc_and_average_precision_match_scikit_learn():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(2)
    y = rng.random(3000) < 0.3
    s = np.round(rng.normal(size=3000) + y, 1)  # ties
    r = evaluate_scores("s", s, y, n_bootstrap=50)
    assert r.auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert r.pr_auc == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert r.auc_low < r.auc < r.auc_high
    assert r.brier == pytest.approx(np.mean((s - y) ** 2))
    top = np.argsort(-s, kind="stable")[:300]
    assert r.capture["10"] == pytest.approx(y[top].sum() / y.sum())


def test_calibration_table_finds_a_miscalibrated_score():
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 1, 20000)
    y = rng.random(20000) < p
    assert calibration_table(p, y, level=0.999)["within"].all()
    assert not calibration_table(np.clip(p + 0.1, 0, 1), y)["within"].all()


def test_levels_by_share_and_threshold():
    r = np.linspace(0, 1, 1001)
    lv = RiskLevels.from_shares(r, 0.1, 0.2)
    lab = lv.label(r)
    assert (lab == "high").mean() == pytest.approx(0.1, abs=0.002)
    assert (lab == "medium").mean() == pytest.approx(0.2, abs=0.002)
    assert list(RiskLevels(0.5, 0.2).label([0.1, 0.2, 0.6])) == ["low", "medium", "high"]


# ---------------------------------------------------------------------- estimator contract

def test_risk_model_follows_the_estimator_contract():
    from sklearn.base import clone

    m = RiskModel(n_estimators=20, num_leaves=7, random_state=3)
    c = clone(m)
    assert c.get_params() == m.get_params()
    c.set_params(n_estimators=5)
    assert c.n_estimators == 5 and m.n_estimators == 20
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=600), "b": rng.normal(size=600)})
    y = (rng.random(600) < 1 / (1 + np.exp(-2 * X["a"]))).astype(int)
    assert c.fit(X, y) is c
    assert set(c.feature_names_in_) == {"a", "b"} and hasattr(c, "calibrated_")
    p = c.predict_proba(X)
    assert p.shape == (600, 2) and np.allclose(p.sum(axis=1), 1)
    assert clone(OverdueRule()).get_params() == {}
    assert clone(BetaGeoRisk(horizon_days=30)).get_params()["horizon_days"] == 30


# ------------------------------------------------------------------------- simulator truth

def test_simulator_truth_of_dormancy():
    import upliftlab as ul
    from upliftlab.simulate import WorldParams
    from upliftlab.simulate_risk import rate_path, true_dormancy

    world = ul.simulate_world(8000, seed=11)
    # the re-drawn rate path is the world's: it ends at the truth's rate_now
    rate, _, _ = rate_path(WorldParams(), 11, 0, 8000, 730)
    np.testing.assert_array_equal(rate[:, -1], world.truth["rate_now"].to_numpy())
    snap = "2025-09-01"
    labels = training_data(world.transactions, [snap], 60)
    t = labels.merge(true_dormancy(world, snap, 60), on="customer_id")
    se = math.sqrt((t["p_dormant_control"] * (1 - t["p_dormant_control"])).sum()) / len(t)
    assert abs(t["dormant"].mean() - t["p_dormant_control"].mean()) < 4 * se
    at_campaign = true_dormancy(world, "2026-01-05", 60)
    np.testing.assert_allclose(at_campaign["p_dormant_coupon"], 1 - world.truth["p_coupon"])
