"""The one JSON cleaner (`upliftlab.jsonsafe.json_safe`): what every written JSON file goes
through, so that `allow_nan=False` never fails and NaN is never written."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from upliftlab.jsonsafe import json_safe


def test_non_finite_numbers_become_null_and_numpy_values_plain_python():
    obj = {"a": float("nan"), "b": np.float64(np.inf), "c": -math.inf, "d": np.int64(3),
           "e": (np.float32(0.5), np.bool_(True), None, "x"), 7: [np.nan, 1.25]}
    out = json_safe(obj)
    assert out == {"a": None, "b": None, "c": None, "d": 3, "e": [0.5, True, None, "x"],
                   "7": [None, 1.25]}
    assert type(out["d"]) is int and type(out["e"][1]) is bool
    arr = json_safe({"x": np.array([[1.5, np.nan], [np.inf, 2.0]]), "n": np.arange(3),
                     "f": np.float64(0.25), "p": pd.Series([1.0, np.nan])})
    assert arr == {"x": [[1.5, None], [None, 2.0]], "n": [0, 1, 2], "f": 0.25, "p": [1.0, None]}
    assert type(arr["f"]) is float and type(arr["n"][0]) is int
    json.dumps(out, allow_nan=False)  # would raise on NaN


def test_a_frame_becomes_its_records():
    frame = pd.DataFrame({"arm": ["t1", "t2"], "qini": [0.1, np.nan], "n": [3, 4]})
    assert json_safe({"evaluation": frame}) == {"evaluation": [
        {"arm": "t1", "qini": 0.1, "n": 3}, {"arm": "t2", "qini": None, "n": 4}]}


@pytest.mark.slow
def test_model_metadata_goes_through_the_one_cleaner(tmp_path):
    from upliftlab.uplift import UpliftModel, read_metadata, save_model

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(400, 3)), columns=["a", "b", "c"])
    t = np.where(rng.random(400) < 0.5, "t1", "control")
    y = (rng.random(400) < 0.3).astype(int)
    model = UpliftModel(learner="s", base_learner=dict(n_estimators=10, num_leaves=4)).fit(X, y, t)
    d = save_model(model, tmp_path / "m",
                   evaluation=pd.DataFrame({"arm": ["t1"], "qini": [np.nan], "auuc": [0.5]}))
    text = (d / "model.json").read_text()
    assert "NaN" not in text
    assert read_metadata(d)["evaluation"] == [{"arm": "t1", "qini": None, "auuc": 0.5}]
