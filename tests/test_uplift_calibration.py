"""The out-of-fold calibration of the chosen uplift toward each arm's average effect
(`upliftlab.uplift.select.calibrate`, the BLP of Chernozhukov et al. 2018) and the model that
applies it (`UpliftModel(calibration=...)`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from upliftlab.errors import InputError
from upliftlab.uplift import UpliftModel
from upliftlab.uplift.select import apply_calibration, calibrate, dr_scores


def _experiment(n: int, seed: int):
    """Two arms against control; arm 'a' has heterogeneous uplift tau(x), arm 'b' none."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    p0 = np.full(n, 0.10)
    tau = 0.05 * np.tanh(x)
    P = np.column_stack([p0, p0 + 0.02 + tau, p0 + 0.01])
    arm = rng.integers(0, 3, n)
    y = (rng.random(n) < P[np.arange(n), arm]).astype(float)
    return x, P, arm, y


def test_calibration_keeps_a_real_signal_and_flattens_noise():
    """Scored against the truth: a model equal to the true uplift keeps slope ~1; a model of
    pure noise gets slope ~0 (the arm's average effect), whose level is the DR effect."""
    x, P, arm, y = _experiment(60_000, 1)
    n = len(y)
    rng = np.random.default_rng(2)
    mu = P.copy()  # the nuisance: any fixed predictions work for the DR effect's mean
    gamma = dr_scores(y, arm, mu, np.full(3, 1 / 3))
    effect = gamma[:, 1:] - gamma[:, [0]]
    up = pd.DataFrame({"a": P[:, 1] - P[:, 0], "b": rng.normal(0, 0.05, n)})
    cal = calibrate(up, effect).set_index("arm")
    assert cal.loc["a", "beta"] == pytest.approx(1.0, abs=3 * cal.loc["a", "beta_se"])
    assert cal.loc["a", "slope"] > 0.6
    assert cal.loc["b", "slope"] < 0.2  # noise: (almost) the arm's average effect
    true_ate = (P[:, 1:] - P[:, [0]]).mean(axis=0)
    se = effect.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(cal[["ate"]].to_numpy().ravel() - true_ate) < 4 * se)
    out = apply_calibration(up, cal.reset_index())
    assert out["b"].std() < 0.2 * up["b"].std()
    # within an arm the order is kept (a slope >= 0 never reverses the model's ranking)
    assert np.all(np.diff(out["a"].to_numpy()[np.argsort(up["a"].to_numpy())]) >= -1e-12)


def test_slope_is_kept_in_zero_to_one():
    x, P, arm, y = _experiment(30_000, 3)
    gamma = dr_scores(y, arm, P, np.full(3, 1 / 3))
    effect = gamma[:, 1:] - gamma[:, [0]]
    truth = P[:, 1] - P[:, 0]
    # a reversed model (beta < 0) and a model shrunk 5-fold (beta ~ 5)
    cal = calibrate(pd.DataFrame({"a": -truth, "b": truth / 5}), effect)
    assert cal.slope.tolist()[0] == 0.0 and cal.beta.tolist()[0] < 0
    assert 0.0 <= cal.slope.tolist()[1] <= 1.0


def test_model_applies_its_calibration():
    x, P, arm, y = _experiment(3_000, 4)
    X = pd.DataFrame({"x": x})
    labels = np.array(["control", "a", "b"])[arm]
    fast = dict(n_estimators=20, num_leaves=7, min_child_samples=50)
    raw = UpliftModel(learner="t", base_learner=fast).fit(X, y, labels)
    cal = {"a": {"ate": 0.03, "center": 0.0, "slope": 0.5}, "b": {"ate": 0.01, "center": 0.0,
                                                                "slope": 0.0}}
    m = UpliftModel(learner="t", base_learner=fast, calibration=cal).fit(X, y, labels)
    r, c = raw.predict(X), m.predict(X)
    assert np.allclose(c["a"], 0.03 + 0.5 * r["a"])
    assert np.allclose(c["b"], 0.01)
    out = m.predict_outcomes(X)
    assert np.allclose(out["a"] - out["control"], c["a"])
    with pytest.raises(InputError, match="calibration: unknown arm"):
        UpliftModel(learner="t", base_learner=fast, calibration={"zzz": cal["a"]}).fit(
            X, y, labels)
