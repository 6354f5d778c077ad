"""Scoring on Spark (engine/spark_score.py): a fitted uplift model applied in partitions gives
the scores `upliftlab model score` (uplift.io.score_file) writes, with the same input checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from upliftlab.errors import InputError

FAST = dict(n_estimators=30, num_leaves=7, min_child_samples=50)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    from upliftlab.uplift import UpliftModel

    rng = np.random.default_rng(5)
    n = 3000
    X = pd.DataFrame({"recency": rng.exponential(200, n), "orders": rng.poisson(3, n),
                      "channel": rng.choice(["web", "app", "store"], n)})
    t = rng.choice(["control", "coupon", "advisor"], n)
    p = 0.1 + 0.05 * (t == "coupon") + 0.1 * (t == "advisor") * (X["orders"] > 3)
    y = (rng.random(n) < p).astype(int)
    model = UpliftModel(learner="t", base_learner=FAST).fit(X, y, t)
    customers = X.assign(customer_id=np.arange(10_000, 10_000 + n))
    customers.loc[5, "channel"] = "phone"  # a category the model never saw
    path = tmp_path_factory.mktemp("score") / "customers.parquet"
    customers.to_parquet(path, index=False)
    return model, customers, path


def test_scores_equal_model_score(engine, fitted, tmp_path):
    from upliftlab.engine.spark_score import score_spark
    from upliftlab.uplift.io import score_file

    model, _, path = fitted
    out = tmp_path / "scores.parquet"
    n = score_file(model, str(path), str(out))
    want = pd.read_parquet(out).sort_values("customer_id").reset_index(drop=True)
    got = score_spark(engine, model, str(path)).toPandas().sort_values(
        "customer_id").reset_index(drop=True)
    assert len(got) == n == len(want)
    assert list(got.columns) == list(want.columns)
    assert set(got.columns) == {"customer_id", "base", "uplift_coupon", "uplift_advisor"}
    assert got["customer_id"].tolist() == want["customer_id"].tolist()
    np.testing.assert_allclose(got.drop(columns="customer_id").to_numpy(),
                               want.drop(columns="customer_id").to_numpy(), rtol=0, atol=1e-12)


def test_score_input_checked(engine, fitted):
    from upliftlab.engine.spark_score import score_spark

    model, customers, _ = fitted
    dup = pd.concat([customers, customers.head(2)], ignore_index=True)
    with pytest.raises(InputError, match="duplicate customer_id"):
        score_spark(engine, model, dup)
    inf = customers.astype({"recency": float})
    inf.loc[3, "recency"] = np.inf
    with pytest.raises(InputError, match="infinite values in 'recency'"):
        score_spark(engine, model, inf)
    with pytest.raises(InputError, match="orders"):
        score_spark(engine, model, customers.drop(columns="orders"))
