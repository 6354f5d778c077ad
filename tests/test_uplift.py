"""UpliftModel: the estimator contract, bad input, cross-fitting, persistence, and recovery of the
simulator's true per-customer uplift."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from upliftlab.errors import InputError
from upliftlab.uplift import (DEFAULT_LEARNER, UpliftModel, compare_learners, cross_fit_predict,
                              load_model, read_metadata, save_model)

FAST = dict(n_estimators=30, num_leaves=7, min_child_samples=50)


@pytest.fixture(scope="module")
def synth():
    """causalml's generator: 3 treatments, 2,000 rows per arm, plus a category and missing values."""
    from causalml.dataset import make_uplift_classification

    df, feats = make_uplift_classification(n_samples=2000, random_seed=3,
                                           treatment_name=["control", "t1", "t2", "t3"],
                                           n_uplift_increase_dict={"t1": 2, "t2": 2, "t3": 2},
                                           n_uplift_decrease_dict={"t1": 0, "t2": 0, "t3": 0},
                                           delta_uplift_increase_dict={"t1": 0.05, "t2": 0.08, "t3": 0.1},
                                           delta_uplift_decrease_dict={"t1": 0.0, "t2": 0.0, "t3": 0.0},
                                           n_uplift_increase_mix_informative_dict={"t1": 1, "t2": 1, "t3": 1},
                                           n_uplift_decrease_mix_informative_dict={"t1": 0, "t2": 0, "t3": 0})
    feats = [f for f in feats if not f.endswith("_irrelevant")][:10]
    X = df[feats].copy()
    rng = np.random.default_rng(0)
    X["colour"] = pd.Categorical(rng.choice(["red", "green", "blue"], len(X)))
    X["city"] = rng.choice(["a", "b"], len(X)).astype(object)
    X.loc[rng.random(len(X)) < 0.05, feats[0]] = np.nan
    return X, df["conversion"].to_numpy(), df["treatment_group_key"].to_numpy()


@pytest.mark.slow
@pytest.mark.parametrize("learner", ["s", "t", "x", "dr", "urf"])
def test_every_learner_fits_and_predicts_one_column_per_arm(synth, learner):
    X, y, t = synth
    m = UpliftModel(learner=learner, base_learner=FAST).fit(X, y, t,
                                                             propensity={a: 0.25 for a in np.unique(t)})
    up = m.predict(X.iloc[:500])
    assert list(up.columns) == ["t1", "t2", "t3"] and up.index.equals(X.index[:500])
    assert m.arms_ == ["control", "t1", "t2", "t3"] and m.treatment_arms_ == ["t1", "t2", "t3"]
    assert list(m.feature_names_in_) == list(X.columns)
    assert m.feature_dtypes_["colour"] == "category" and m.feature_dtypes_["city"] == "category"
    assert np.isfinite(up.to_numpy()).all()
    out = m.predict_outcomes(X.iloc[:500])
    assert list(out.columns) == m.arms_
    # outcome differences are the uplift, exactly
    np.testing.assert_allclose(out[["t1", "t2", "t3"]].to_numpy() - out[["control"]].to_numpy(),
                               up.to_numpy(), atol=1e-12)
    assert 0 <= out["control"].mean() <= 1


@pytest.mark.slow
def test_continuous_outcome_uses_regressors(synth):
    X, y, t = synth
    rng = np.random.default_rng(1)
    revenue = y * rng.gamma(2.0, 30.0, len(y)) + (t == "t1") * 5.0 * (X.iloc[:, 1] > 0)
    m = UpliftModel(learner="t", outcome="continuous",
                    base_learner=dict(n_estimators=200, learning_rate=0.1, num_leaves=7,
                                      min_child_samples=50)).fit(X, revenue, t)
    from lightgbm import LGBMRegressor

    assert isinstance(m.estimators_.est_.model_c, LGBMRegressor)
    up = m.predict(X)
    # the t1 effect of +5 where feature 1 > 0 is found (on average)
    def gap(arm):
        return up[arm][X.iloc[:, 1] > 0].mean() - up[arm][X.iloc[:, 1] <= 0].mean()

    assert gap("t1") > 3 and abs(gap("t2")) < 2


def test_unseen_categories_and_missing_values(synth):
    X, y, t = synth
    m = UpliftModel(learner="t", base_learner=FAST).fit(X, y, t)
    Xn = X.iloc[:100].copy()
    Xn["city"] = "zzz"  # unseen: scored as missing by default
    Xn.iloc[:10, 0] = np.nan
    assert np.isfinite(m.predict(Xn).to_numpy()).all()
    strict = UpliftModel(learner="t", base_learner=FAST, unseen_categories="error").fit(X, y, t)
    with pytest.raises(InputError, match="city.*not seen"):
        strict.predict(Xn)


def test_bad_input_is_refused(synth):
    X, y, t = synth
    keep = (t != "t3") | (np.arange(len(t)) % 200 == 0)
    n3 = int((t[keep] == "t3").sum())
    with pytest.raises(InputError, match=f"too few customers.*'t3' \\({n3}\\).*at least 50"):
        UpliftModel().fit(X[keep], y[keep], t[keep])
    with pytest.raises(InputError, match="constant"):
        UpliftModel().fit(X, np.zeros(len(y)), t)
    y2 = y.copy()
    y2[t == "t2"] = 0
    with pytest.raises(InputError, match="constant.*'t2'"):
        UpliftModel().fit(X, y2, t)
    with pytest.raises(InputError, match="control label 'ctl'"):
        UpliftModel(control="ctl").fit(X, y, t)
    with pytest.raises(InputError, match="0/1"):
        UpliftModel().fit(X, y * 3.5, t)
    with pytest.raises(InputError, match="DataFrame"):
        UpliftModel().fit(X.to_numpy(), y, t)
    m = UpliftModel(learner="t", base_learner=FAST).fit(X, y, t)
    with pytest.raises(InputError, match="missing.*'city'"):
        m.predict(X.drop(columns="city"))
    bad = X.copy()
    bad["colour"] = 1.0
    with pytest.raises(InputError, match="'colour'.*categories"):
        m.predict(bad)


@pytest.mark.slow
def test_cross_fit_is_out_of_fold(synth):
    X, y, t = synth
    model = UpliftModel(learner="t", base_learner=FAST)
    cf = cross_fit_predict(model, X, y, t, folds=3, random_state=0)
    assert sorted(np.unique(cf.fold)) == [0, 1, 2]
    # stratified: every arm in every fold
    assert pd.crosstab(cf.fold, t).min().min() > 500
    # row i's prediction is the one of a model fitted without fold[i]
    k = 1
    refit = UpliftModel(learner="t", base_learner=FAST).fit(X[cf.fold != k], y[cf.fold != k], t[cf.fold != k])
    np.testing.assert_allclose(refit.predict(X[cf.fold == k]).to_numpy(),
                               cf.uplift[cf.fold == k].to_numpy())
    inside = UpliftModel(learner="t", base_learner=FAST).fit(X, y, t).predict(X[cf.fold == k])
    assert not np.allclose(inside.to_numpy(), cf.uplift[cf.fold == k].to_numpy())


@pytest.mark.slow
def test_compare_learners_table(synth):
    X, y, t = synth
    comp = compare_learners(X, y, t, learners=["s", "t"], folds=2, n_bootstrap=30,
                            base_learner=FAST)
    tab = comp.table
    assert len(tab) == 6 and set(tab.learner) == {"s", "t"}
    for col in ("auuc", "auuc_low", "auuc_high", "qini", "qini_low", "qini_high", "fit_seconds",
                "peak_rss_mib"):
        assert col in tab
    assert (tab.qini_low <= tab.qini).all() and (tab.qini <= tab.qini_high).all()
    assert (tab.fit_seconds > 0).all()
    assert comp.best() in {"s", "t"}
    # the generator's effects are real: every arm's Qini is above random
    assert (tab.qini_low > 0).mean() >= 0.5


def test_save_load_round_trip_and_refusals(synth, tmp_path):
    X, y, t = synth
    m = UpliftModel(learner="x", base_learner=FAST).fit(X, y, t)
    d = save_model(m, tmp_path / "m", evaluation=pd.DataFrame({"arm": ["t1"], "qini": [0.1]}),
                   training_data=(X, y, t))
    meta = read_metadata(d)
    assert meta["arms"] == ["control", "t1", "t2", "t3"] and meta["learner"] == "x"
    assert {f["name"]: f["kind"] for f in meta["features"]}["colour"] == "category"
    assert len(meta["training"]["fingerprint_sha256"]) == 64 and meta["evaluation"][0]["qini"] == 0.1
    assert "causalml" in meta["versions"]
    loaded = load_model(d)
    pd.testing.assert_frame_equal(loaded.predict(X), m.predict(X), check_exact=True)
    with pytest.raises(InputError, match="missing.*'colour'"):
        loaded.predict(X.drop(columns="colour"))
    with pytest.raises(InputError, match="trusted"):
        load_model(d, trusted=False)
    # a changed pickle is refused before unpickling
    pkl = d / "model.pkl"
    data = bytearray(pkl.read_bytes())
    data[-5] ^= 0xFF
    pkl.write_bytes(bytes(data))
    with pytest.raises(InputError, match="checksum"):
        load_model(d)
    # a version mismatch warns
    save_model(m, d)
    meta = json.loads((d / "model.json").read_text())
    meta["versions"]["lightgbm"] = "0.1.0"
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="lightgbm"):
        load_model(d)


@pytest.fixture(scope="module")
def world_experiment():
    from upliftlab.uplift.simdata import simulated_experiment

    return simulated_experiment(150_000, seed=3)  # ~83k dormant customers over 4 arms


@pytest.mark.slow
def test_default_selection_recovers_true_uplift_on_the_simulator(world_experiment):
    """`model fit`'s selection: per arm the learner and base capacity chosen by cross-fitted
    budgeted value (no setting tuned to this world), refitted on all rows."""
    from upliftlab.uplift.select import select_per_arm
    from upliftlab.uplift.simdata import policy_value

    e = world_experiment
    assert 40_000 <= len(e.X) <= 100_000
    prop = {a: 0.25 for a in np.unique(e.treatment)}
    # the default grid of base capacities over the three fastest learners keeps this in minutes
    sel = select_per_arm(e.X, e.reactivated, e.treatment, propensity=prop, n_jobs=2,
                         learners=("s", "t", "glm"), folds=2)
    m = UpliftModel(learner=sel.chosen, n_jobs=1).fit(e.X, e.reactivated, e.treatment,
                                                       propensity=prop)
    # scored against the simulator's truth, which the model never saw (only 0/1 outcomes)
    up = m.predict(e.X)
    for arm in e.true_uplift.columns:
        assert np.corrcoef(up[arm], e.true_uplift[arm])[0, 1] > 0.3, arm
    value, oracle = policy_value(up, e.true_uplift)
    print(f"best-arm policy: {value / oracle:.3f} of the oracle")
    assert value >= 0.8 * oracle
    # and beats treating everyone with the arm that is best on average
    avg = e.true_uplift.mean()
    assert value > max(avg.max(), 0) * len(e.X)


@pytest.mark.slow
def test_selection_in_worker_processes_equals_one_process_and_leaves_none_behind(monkeypatch):
    """`n_jobs` worker processes give the same selection as one process, and none outlives the
    call (a lingering worker keeps the caller's stdout open: a piped `model fit` would hang)."""
    import multiprocessing

    from upliftlab.uplift import select
    from upliftlab.uplift.select import select_per_arm

    monkeypatch.setattr(select, "MIN_ROWS_FOR_WORKERS", 0)  # workers even for these few rows
    rng = np.random.default_rng(0)
    n = 4_000
    X = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n)})
    t = rng.choice(["control", "a", "b"], n)
    y = rng.binomial(1, 0.1 + 0.1 * (t == "a") * (X.x > 0))
    kw = dict(learners=("s", "t"), base_models=("small",), folds=2)
    one = select_per_arm(X, y, t, n_jobs=1, **kw)
    two = select_per_arm(X, y, t, n_jobs=2, **kw)
    assert multiprocessing.active_children() == []
    assert one.chosen == two.chosen
    pd.testing.assert_frame_equal(one.uplift, two.uplift)
    pd.testing.assert_frame_equal(one.table.drop(columns=["fit_seconds", "peak_rss_mib"]),
                                  two.table.drop(columns=["fit_seconds", "peak_rss_mib"]))
