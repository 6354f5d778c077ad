"""scikit-learn's estimator contract, checked as `check_estimator` does, for the two estimators a
policy is built from: `BudgetedPolicy` and `UpliftModel` (clone, get_params, set_params, learned
state only in trailing-underscore attributes); and the arm convention of `predict`."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import check_get_params_invariance, check_set_params

from upliftlab.errors import InputError
from upliftlab.policy import BudgetedPolicy, allocate
from upliftlab.uplift import UpliftModel

ARMS = ("coupon", "content", "advisor")


def _policy_data(n: int = 3000, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = rng.beta(1.2, 40, n)
    up = np.clip(rng.normal([0.01, 0.004, 0.03], [0.012, 0.006, 0.04], (n, 3)),
                 -base[:, None], 1 - base[:, None])
    return base, up


def _uplift_data(n: int = 1200, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    t = np.array(["control", "coupon"], dtype=object)[rng.integers(0, 2, n)]
    p = 0.1 + 0.05 * (t == "coupon") * (X.x1 > 0)
    return X, (rng.random(n) < p).astype(int), t


def _fit(est):
    if isinstance(est, BudgetedPolicy):
        return est.fit(*_policy_data())
    return est.fit(*_uplift_data())


ESTIMATORS = [
    pytest.param(BudgetedPolicy(arms=ARMS, budget=120.0, capacity={"advisor": 30},
                                cost_per_contact={"coupon": 0.1, "content": 0.02, "advisor": 2.0},
                                cost_per_conversion={"coupon": 5.0}),
                 {"budget": 60.0, "seed": 3}, id="BudgetedPolicy"),
    pytest.param(UpliftModel(learner="t", base_learner=dict(n_estimators=10, num_leaves=4,
                                                              min_child_samples=50)),
                 {"learner": "s", "random_state": 7}, id="UpliftModel"),
]


@pytest.mark.parametrize("est, change", ESTIMATORS)
def test_clone_get_params_set_params_round_trip(est, change):
    names = [p for p in inspect.signature(type(est).__init__).parameters if p != "self"]
    params = est.get_params(deep=False)
    # every __init__ parameter, stored unchanged (the same object, as clone requires)
    assert sorted(params) == sorted(names)
    assert all(params[k] is getattr(est, k) for k in names)
    assert est.get_params(deep=True).items() >= params.items()
    # scikit-learn's own checks of the contract
    check_get_params_invariance(type(est).__name__, est)
    check_set_params(type(est).__name__, est)

    before = set(vars(est))
    fresh = clone(est)
    given = fresh.get_params(deep=False)
    fitted = _fit(fresh)
    learned = set(vars(fitted)) - before
    assert learned and all(a.endswith("_") and not a.startswith("_") for a in learned), learned
    assert all(vars(fitted)[k] is given[k] for k in names)  # fit leaves the parameters alone

    copy = clone(fitted)
    assert type(copy) is type(est) and copy is not fitted
    assert not (set(vars(copy)) - before)  # an unfitted copy: no learned state
    assert repr(copy.get_params(deep=False)) == repr(params)

    assert copy.set_params(**change) is copy
    assert {k: copy.get_params()[k] for k in change} == change
    assert all(est.get_params()[k] is params[k] for k in change)  # the original untouched
    with pytest.raises(ValueError, match="no_such_parameter"):
        copy.set_params(no_such_parameter=1)


def test_budgeted_policy_predicts_column_indices_zero_for_none():
    """predict: 0 = none, j = arms[j - 1]; the same arms as the allocation of the fit data
    (the prices learned there, applied by the price rule, choose what the solver chose up to
    the customers the repair and fill moved)."""
    base, up = _policy_data(20_000, 1)
    kw = dict(arms=ARMS, budget=800.0, capacity={"advisor": 150},
              cost_per_contact={"coupon": 0.1, "content": 0.02, "advisor": 2.0},
              cost_per_conversion={"coupon": 5.0})
    pol = BudgetedPolicy(**kw).fit(base, up)
    arm = pol.predict(base, up)
    assert arm.dtype == np.int64 and arm.min() == 0 and arm.max() == 3
    alloc = allocate(base, up, **kw, lp_bound=False)
    assert np.mean(arm == alloc.arm) > 0.99  # one arm index: 0 = none, j = ARMS[j - 1]
    assert (pol.allocation_.labels == np.array(("none",) + ARMS, dtype=object)[
        pol.allocation_.arm]).all()
    with pytest.raises(InputError, match="not fitted"):
        BudgetedPolicy(**kw).predict(base, up)
