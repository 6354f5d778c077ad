"""Reading scores for a policy: a fitted model's predictions are turned into scores by the one
rule of `upliftlab model score` (`uplift.io.scores_frame`): a binary outcome's probabilities
clipped to [0, 1], a revenue model's predictions never."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from upliftlab.errors import InputError
from upliftlab.policy import make_problem
from upliftlab.policy.io import scores_from_model
from upliftlab.uplift import UpliftModel, save_model
from upliftlab.uplift.io import scores_frame

SMALL = dict(n_estimators=20, num_leaves=4, min_child_samples=30)


def _experiment(n: int = 1500, seed: int = 2):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    t = np.array(["control", "coupon"], dtype=object)[rng.integers(0, 2, n)]
    return X, t, rng


def _customers(tmp_path, X):
    path = tmp_path / "customers.csv"
    X.assign(customer_id=np.arange(len(X))).to_csv(path, index=False)
    return str(path)


def test_a_revenue_model_read_by_the_policy_is_not_clipped(tmp_path):
    X, t, rng = _experiment()
    revenue = np.maximum(0, rng.normal(40 + 10 * (t == "coupon") * (X.x1 > 0), 15))
    model = UpliftModel(learner="t", outcome="continuous", base_learner=SMALL).fit(X, revenue, t)
    save_model(model, tmp_path / "model")

    scores = scores_from_model(str(tmp_path / "model"), _customers(tmp_path, X))
    mu = model.predict_outcomes(X)
    # revenue in currency units, far above 1: read as predicted, not as a probability
    assert scores.base.max() > 10
    np.testing.assert_allclose(scores.base, mu["control"].to_numpy())
    np.testing.assert_allclose(scores.uplift["coupon"],
                               (mu["coupon"] - mu["control"]).to_numpy())
    # the same rule as the scores file `upliftlab model score` writes
    table = scores_frame(np.arange(len(X)), mu, "control", ["coupon"], "continuous")
    np.testing.assert_allclose(scores.base, table["base"].to_numpy())
    # and a budgeted allocation of reactivations refuses it, saying why, instead of clipping
    with pytest.raises(InputError, match=r"base must be a probability in \[0, 1\]"):
        make_problem(scores.base, scores.uplift)


def test_a_binary_model_read_by_the_policy_is_clipped_to_probabilities(tmp_path):
    X, t, rng = _experiment(seed=3)
    y = (rng.random(len(X)) < 0.1 + 0.05 * (t == "coupon")).astype(int)
    model = UpliftModel(learner="t", base_learner=SMALL).fit(X, y, t)
    save_model(model, tmp_path / "model")

    scores = scores_from_model(str(tmp_path / "model"), _customers(tmp_path, X))
    mu = np.clip(model.predict_outcomes(X).to_numpy(dtype=float), 0, 1)
    np.testing.assert_allclose(scores.base, mu[:, 0])
    np.testing.assert_allclose(scores.uplift["coupon"], mu[:, 1] - mu[:, 0])
    assert 0 <= scores.base.min() and (scores.base + scores.uplift["coupon"]).max() <= 1
