"""The interaction model on a boosted baseline (`upliftlab.uplift.glm`, learner "glm") and the
budgeted value that chooses the model (`upliftlab.uplift.select`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from upliftlab.uplift import UpliftModel
from upliftlab.uplift.glm import LinearDesign, arm_design, penalty_mask, fit_arm_terms
from upliftlab.uplift.select import budgeted_weights, linear_value


def _offset_data(n: int, seed: int):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    t = rng.integers(0, 3, n)
    offset = -3.0 + np.sin(2 * z[:, 0])  # a non-linear baseline, given
    coef = np.array([[0.0, 0.0, 0.0], [0.3, 0.5, 0.0], [0.1, -0.4, 0.2]])
    eta = offset + np.einsum("ij,ij->i", np.column_stack([np.ones(n), z]), coef[t])
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    return z, t, offset, y


@pytest.mark.parametrize("binary", [True, False])
def test_arm_terms_without_penalty_equal_statsmodels_glm_with_offset(binary):
    """Penalty 0: the arm terms are the maximum-likelihood GLM with the offset (statsmodels'
    logit-link Binomial GLM, or OLS on the outcome minus the offset)."""
    import statsmodels.api as sm

    z, t, offset, y = _offset_data(20_000, 1)
    if not binary:
        y = y * 10.0 + offset  # a continuous outcome around the offset
    W = arm_design(z, t, 2)
    got = fit_arm_terms(W, y, offset, 0.0, penalty_mask(2, 2), binary)
    if binary:
        ref = sm.GLM(y, W, family=sm.families.Binomial(), offset=offset).fit().params
    else:
        ref = sm.OLS(y - offset, W).fit().params
    assert got == pytest.approx(ref, abs=2e-4)


def test_penalty_shrinks_slopes_not_intercepts():
    z, t, offset, y = _offset_data(20_000, 2)
    W = arm_design(z, t, 2)
    mask = penalty_mask(2, 2)
    free = fit_arm_terms(W, y, offset, 0.0, mask, True).reshape(3, 3)
    tight = fit_arm_terms(W, y, offset, 1e6, mask, True).reshape(3, 3)
    assert np.abs(tight[:, 1:]).max() < 1e-3 < np.abs(free[:, 1:]).max()
    # with the slopes gone, each arm's intercept still fits its own level
    assert np.abs(tight[:, 0] - free[:, 0]).max() < 0.2


def test_linear_design_one_hots_categories_and_flags_missing_values():
    X = np.array([[0.0, 1.0], [1.0, np.nan], [2.0, 3.0], [0.0, 100.0], [0.0, 2.0]])
    d = LinearDesign().fit(X, np.array([True, False]))
    Z = d.transform(X)
    # category 0 is the most frequent (reference): columns for 1 and 2; a numeric column
    # (skewed, non-negative: log1p) and its missing flag
    assert Z.shape == (5, 4)
    assert np.allclose(Z.mean(axis=0), 0.0)
    unseen = d.transform(np.array([[7.0, np.nan]]))
    assert np.isfinite(unseen).all()


def test_glm_learner_recovers_a_logit_linear_effect_through_the_model():
    """End to end through `UpliftModel(learner="glm")`: a category, a missing value and a rare
    outcome; the uplift is scored against the truth."""
    rng = np.random.default_rng(4)
    n = 40_000
    x1 = rng.normal(size=n)
    seg = rng.choice(["a", "b", "c"], n)
    x2 = np.where(rng.random(n) < 0.1, np.nan, rng.gamma(2.0, 2.0, n))
    arm = rng.choice(["control", "mail"], n)
    base = -3.2 + 0.8 * np.cos(x1) + 0.4 * (seg == "b")
    tau = 0.1 + 0.6 * x1 - 0.5 * (seg == "c")
    p0, p1 = 1 / (1 + np.exp(-base)), 1 / (1 + np.exp(-(base + tau)))
    y = (rng.random(n) < np.where(arm == "mail", p1, p0)).astype(float)
    X = pd.DataFrame({"x1": x1, "seg": seg, "x2": x2})
    m = UpliftModel(learner="glm/small").fit(X, y, arm)
    up = m.predict(X)["mail"].to_numpy()
    assert np.corrcoef(up, p1 - p0)[0, 1] > 0.9
    assert up.mean() == pytest.approx((p1 - p0).mean(), abs=0.006)
    out = m.predict_outcomes(X)
    assert np.allclose(out["mail"] - out["control"], up)


def test_budgeted_value_is_the_mean_over_budgets_of_the_top_customers_gain():
    """The linear weights give the Qini area computed budget by budget, and its standard error
    matches the spread over repeated draws of the per-customer gains."""
    rng = np.random.default_rng(5)
    n = 2_001
    score = rng.normal(size=n)
    d = rng.normal(size=n) + 0.5 * score
    shares = np.arange(1, 21) / 20
    order = np.argsort(-score, kind="stable")
    direct = np.mean([d[order[:int(np.ceil(q * n))]].sum() - q * d.sum() for q in shares]) / n
    w = budgeted_weights(score, shares)
    assert w @ d == pytest.approx(direct, rel=1e-12)
    # the standard error: repeated draws of gains with one mean (with means that differ by
    # customer it is conservative, as sum (d_i - mean d)^2 also counts their spread)
    draws = [w @ (0.3 + rng.normal(size=n)) for _ in range(2_000)]
    _, se, lo, hi = linear_value(w, 0.3 + rng.normal(size=n), 1.96)
    assert se == pytest.approx(np.std(draws), rel=0.1)
    assert linear_value(w, d, 1.96)[1] >= se
    assert hi - lo == pytest.approx(2 * 1.96 * se)


def test_glm_learner_on_a_continuous_outcome_and_through_save_and_load(tmp_path):
    """Revenue-like outcome (identity link, least squares around the boosted baseline); the
    fitted model survives `write_model_files` / `load_model` with the same predictions."""
    from upliftlab.uplift.persist import load_model, write_model_files

    rng = np.random.default_rng(6)
    n = 20_000
    x1 = rng.normal(size=n)
    arm = rng.choice(["control", "mail"], n)
    tau = 2.0 + 3.0 * x1
    y = 10 + 5 * np.abs(x1) + (arm == "mail") * tau + rng.normal(0, 5, n)
    X = pd.DataFrame({"x1": x1, "x2": rng.normal(size=n)})
    m = UpliftModel(learner="glm", outcome="continuous").fit(X, y, arm)
    up = m.predict(X)["mail"].to_numpy()
    assert np.corrcoef(up, tau)[0, 1] > 0.95
    assert up.mean() == pytest.approx(tau.mean(), abs=0.3)
    write_model_files(m, tmp_path)
    again = load_model(tmp_path)
    assert np.allclose(again.predict(X).to_numpy(), m.predict(X).to_numpy())


def test_budgeted_value_of_tied_scores_does_not_depend_on_row_order():
    """Equal scores share their places: a constant score is worth exactly 0, and reordering
    rows within a tie does not change the value."""
    rng = np.random.default_rng(6)
    n = 1_000
    d = rng.normal(size=n) + np.linspace(1, -1, n)  # the first rows gain most
    assert budgeted_weights(np.zeros(n)) @ d == pytest.approx(0.0, abs=1e-12)
    score = np.repeat([3.0, 2.0, 1.0, 0.0], n // 4)
    flipped = np.r_[d[:n // 4][::-1], d[n // 4:]]  # the first tie block reversed
    w = budgeted_weights(score)
    assert w @ d == pytest.approx(w @ flipped, rel=1e-12)


@pytest.mark.parametrize("base", ["small", "large"])
def test_glm_without_any_effect_predicts_none_and_the_right_level(base):
    """Small data, rare outcome, no effect at all: the baseline that new rows get is the one
    the arm terms were fitted against, so the predicted control rate is the observed one and
    the uplift is about zero (a full-data baseline at prediction, against half-data ones in
    the fit, put the control rate at twice the truth and the uplift at +1 point)."""
    rng = np.random.default_rng(10)
    n = 5_000
    X = pd.DataFrame(rng.normal(size=(n, 5)), columns=[f"x{i}" for i in range(5)])
    arm = rng.choice(["control", "mail"], n)
    y = (rng.random(n) < 0.034).astype(float)
    m = UpliftModel(learner=f"glm/{base}").fit(X, y, arm)
    fresh = pd.DataFrame(rng.normal(size=(n, 5)), columns=X.columns)
    out = m.predict_outcomes(fresh)
    assert out["control"].mean() == pytest.approx(y[arm == "control"].mean(), abs=0.008)
    assert abs(m.predict(fresh)["mail"].mean()) < 0.004
