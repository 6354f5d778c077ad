"""Meta-learners behind `UpliftModel`: causalml's S-, T-, X-learners and uplift forest, and a
DR-learner on probabilities, all on a numeric matrix with arms coded 0 (control), 1..k.

Each adapter has the same small interface: `fit(X, y, t, prop)`, `uplift(X)` -> (n, k) array,
`base(X)` -> (n,) predicted outcome under control. Base models are LightGBM (NaN handled natively).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

# causalml's forestci dependency logs "Failed to import duecredit" at ERROR on every import: it
# is an optional citation tool, not a problem, so that logger is silenced
logging.getLogger("duecredit").setLevel(logging.CRITICAL)

LEARNERS = ("s", "t", "x", "dr", "glm", "urf")

# The capacity of the base models is chosen on the data at hand (`upliftlab.uplift.select`:
# by the cross-fitted doubly robust budgeted value of each candidate's ranking), from this
# small grid. "large" is LightGBM's own defaults and the default when nothing is chosen:
# the old default ("small", tuned on the project's simulator: rare outcome, small uplift) lost
# 3 points of the oracle's value on causalml's synthetic data (benchmarks/RESULTS.md), so a
# setting tuned on one world is only a candidate, not the default.
BASE_MODELS = {
    "small": dict(n_estimators=100, learning_rate=0.05, num_leaves=7, min_child_samples=300,
                  subsample=0.8, subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0),
    "medium": dict(n_estimators=100, learning_rate=0.1, num_leaves=15, min_child_samples=100,
                   reg_lambda=1.0),
    "large": dict(n_estimators=100, learning_rate=0.1, num_leaves=31, min_child_samples=20),
}
DEFAULT_BASE = "large"
DEFAULT_LGBM = {**BASE_MODELS[DEFAULT_BASE], "verbose": -1}


def base_params(base_learner: Any) -> dict | None:
    """LightGBM parameters of a preset name (BASE_MODELS) or a dict; None for an estimator."""
    if isinstance(base_learner, str):
        if base_learner not in BASE_MODELS:
            from upliftlab.errors import InputError

            raise InputError(f"base model {base_learner!r}: choose from "
                             f"{', '.join(BASE_MODELS)} (or give LightGBM parameters)")
        return dict(BASE_MODELS[base_learner])
    return base_learner if isinstance(base_learner, dict) else None


def lgbm(kind: str, params: dict | None, random_state: int, n_jobs: int) -> Any:
    """A LightGBM classifier ('classifier') or regressor ('regressor') with our defaults."""
    from lightgbm import LGBMClassifier, LGBMRegressor

    p = {**DEFAULT_LGBM, **(params or {}), "random_state": random_state, "n_jobs": n_jobs}
    return (LGBMClassifier if kind == "classifier" else LGBMRegressor)(**p)


class _Base:
    """Common state: the outcome type and the factory for base models."""

    def __init__(self, binary: bool, base_learner: Any, random_state: int, n_jobs: int,
                 categorical: Any = None):
        self.binary = binary
        self.base_learner = base_learner
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.categorical = categorical  # per column: True for category codes (glm one-hots them)

    def outcome_model(self) -> Any:
        """A model of the outcome: a classifier for binary outcomes, else a regressor."""
        if self.base_learner is not None and not isinstance(self.base_learner, (dict, str)):
            from sklearn.base import clone

            return clone(self.base_learner)
        return lgbm("classifier" if self.binary else "regressor", base_params(self.base_learner),
                    self.random_state, self.n_jobs)

    def effect_model(self) -> Any:
        return lgbm("regressor", base_params(self.base_learner), self.random_state, self.n_jobs)

    def _predict_outcome(self, model: Any, X: np.ndarray) -> np.ndarray:
        return model.predict_proba(X)[:, 1] if self.binary else model.predict(X)

    def _fit_control(self, X: np.ndarray, y: np.ndarray, t: np.ndarray) -> None:
        self.control_model_ = self.outcome_model().fit(X[t == 0], y[t == 0])

    def base(self, X: np.ndarray) -> np.ndarray:
        return self._predict_outcome(self.control_model_, X)


class SLearner(_Base):
    """causalml's S-learner: one model per arm on (arm indicator, X) for arm + control rows."""

    def fit(self, X, y, t, prop):
        from causalml.inference.meta import BaseSClassifier, BaseSRegressor

        cls = BaseSClassifier if self.binary else BaseSRegressor
        self.est_ = cls(learner=self.outcome_model(), control_name=0)
        self.est_.fit(X=X, treatment=t, y=y)
        self._fit_control(X, y, t)
        return self

    def uplift(self, X):
        return np.asarray(self.est_.predict(X=X), dtype=float)


class TLearner(_Base):
    """causalml's T-learner: an outcome model per arm; uplift = mu_a(x) - mu_control(x)."""

    def fit(self, X, y, t, prop):
        from causalml.inference.meta import BaseTClassifier, BaseTRegressor

        cls = BaseTClassifier if self.binary else BaseTRegressor
        self.est_ = cls(learner=self.outcome_model(), control_name=0)
        self.est_.fit(X=X, treatment=t, y=y)
        return self

    def uplift(self, X):
        return np.asarray(self.est_.predict(X=X), dtype=float)

    def base(self, X):
        return self._predict_outcome(self.est_.model_c, X)


class XLearner(_Base):
    """causalml's X-learner with the design's (known) propensities for the weighting."""

    def fit(self, X, y, t, prop):
        from causalml.inference.meta import BaseXClassifier, BaseXRegressor

        if self.binary:
            self.est_ = BaseXClassifier(outcome_learner=self.outcome_model(),
                                        effect_learner=self.effect_model(), control_name=0)
        else:
            self.est_ = BaseXRegressor(learner=self.outcome_model(), control_name=0)
        # p[a] = P(arm a | arm a or control): the X-learner mixes the two effect models with it
        self.prop_ = {a: float(np.mean(p)) for a, p in prop.items()}
        p = {a: np.broadcast_to(np.asarray(prop[a], float), (len(y),)).copy() for a in prop}
        self.est_.fit(X=X, treatment=t, y=y, p=p)
        return self

    def uplift(self, X):
        p = {a: np.full(len(X), v) for a, v in self.prop_.items()}
        return np.asarray(self.est_.predict(X=X, p=p), dtype=float)

    def base(self, X):
        model = self.est_.model_mu_c if hasattr(self.est_, "model_mu_c") else \
            next(iter(self.est_.models_mu_c.values()))
        return self._predict_outcome(model, X)


class DRLearner(_Base):
    """Doubly-robust learner (Kennedy 2023) on cross-fitted outcome probabilities.

    Written here rather than causalml's `BaseDRClassifier` because that one (0.18) builds the
    pseudo-outcomes from hard 0/1 predictions of the outcome models, which throws away the
    probability and makes the pseudo-outcome mostly noise; here mu_a, mu_c are predicted
    probabilities (or means), fitted on other folds than the rows they are used on, and with
    the design's known propensity pi = P(arm a | arm a or control):
        phi = mu_a - mu_c + w (y - mu_a)/pi - (1 - w)(y - mu_c)/(1 - pi),
    regressed on X with a LightGBM regressor (the final model, one per arm).
    """

    n_folds = 2

    def fit(self, X, y, t, prop):
        from sklearn.model_selection import StratifiedKFold

        self.final_ = {}
        for a in sorted(prop):
            rows = np.flatnonzero((t == a) | (t == 0))
            Xa, ya, wa = X[rows], y[rows], (t[rows] == a).astype(int)
            pi = np.broadcast_to(np.asarray(prop[a], float), (len(t),))[rows]
            mu1, mu0 = np.empty(len(rows)), np.empty(len(rows))
            strata = wa * 2 + (ya > np.median(ya)).astype(int)
            skf = StratifiedKFold(self.n_folds, shuffle=True, random_state=self.random_state)
            for train, test in skf.split(Xa, strata):
                tr1, tr0 = train[wa[train] == 1], train[wa[train] == 0]
                mu1[test] = self._predict_outcome(self.outcome_model().fit(Xa[tr1], ya[tr1]), Xa[test])
                mu0[test] = self._predict_outcome(self.outcome_model().fit(Xa[tr0], ya[tr0]), Xa[test])
            phi = mu1 - mu0 + wa * (ya - mu1) / pi - (1 - wa) * (ya - mu0) / (1 - pi)
            self.final_[a] = self.effect_model().fit(Xa, phi)
        self._fit_control(X, y, t)
        return self

    def uplift(self, X):
        return np.column_stack([self.final_[a].predict(X) for a in sorted(self.final_)])


class GLMLearner(_Base):
    """Lo (2002)'s interaction model on a boosted baseline (`upliftlab.uplift.glm`): the base
    models (LightGBM, one per half of the training rows) predict the outcome from the features
    alone, each on the half it did not see, and enter with a common free coefficient (which
    corrects an over- or under-confident baseline); every arm (control included) gets an
    intercept and ridge-penalised slopes on the standardised features, on the logit scale
    (binary outcomes) or the outcome's scale, with the prior `glm.PENALTY` on the slopes. New
    rows get the mean of the two base models, the baseline the terms were fitted against."""

    n_folds = 2

    def fit(self, X, y, t, prop):
        from upliftlab.uplift.glm import (PENALTY, LinearDesign, arm_design, penalty_mask,
                                          check_categorical, fit_arm_terms)

        mask = check_categorical(self.categorical, X.shape[1])
        self.k_ = int(t.max())
        fold = np.random.default_rng(self.random_state).permutation(np.arange(len(y)) % self.n_folds)
        self.offset_models_ = []
        offset = np.empty(len(y))
        for k in range(self.n_folds):
            model = self.outcome_model().fit(X[fold != k], y[fold != k])
            self.offset_models_.append(model)
            offset[fold == k] = self._offset(X[fold == k], [model])
        self.design_ = LinearDesign().fit(X, mask)
        Z = self.design_.transform(X)
        W = np.hstack([arm_design(Z, t, self.k_), offset[:, None]])
        pen = np.r_[penalty_mask(Z.shape[1], self.k_), 0.0]
        coef = fit_arm_terms(W, y, np.zeros(len(y)), PENALTY, pen, self.binary)
        self.coef_ = coef[:-1].reshape(self.k_ + 1, Z.shape[1] + 1)
        self.offset_coef_ = float(coef[-1])
        return self

    def _offset(self, X: np.ndarray, models: list) -> np.ndarray:
        """The baseline on the link scale: the mean of `models`' logits (or predictions)."""
        from upliftlab.uplift.glm import to_offset

        return np.mean([to_offset(self._predict_outcome(m, X), self.binary) for m in models],
                       axis=0)

    def _outcomes(self, X: np.ndarray) -> np.ndarray:
        """Predicted outcome under every arm (n x (k+1), control first)."""
        from scipy.special import expit

        off = self.offset_coef_ * self._offset(X, self.offset_models_)
        Z1 = np.hstack([np.ones((X.shape[0], 1)), self.design_.transform(X)])
        eta = off[:, None] + Z1 @ self.coef_.T
        return expit(eta) if self.binary else eta

    def uplift(self, X):
        out = self._outcomes(X)
        return out[:, 1:] - out[:, [0]]

    def base(self, X):
        return self._outcomes(X)[:, 0]


class UpliftForest(_Base):
    """causalml's `UpliftRandomForestClassifier` (binary outcomes only; KL criterion).

    The forest does not take missing values: NaN is replaced by the training median of the
    column (stored), so scoring rows with missing values works the same way.
    """

    params = dict(n_estimators=20, max_depth=5, min_samples_leaf=100, min_samples_treatment=10,
                  n_reg=10, evaluationFunction="KL")

    def _fill(self, X: np.ndarray) -> np.ndarray:
        if not np.isnan(X).any():
            return X
        return np.where(np.isnan(X), self.fill_, X)

    def fit(self, X, y, t, prop):
        from causalml.inference.tree import UpliftRandomForestClassifier

        self.fill_ = np.nan_to_num(np.nanmedian(X, axis=0)) if np.isnan(X).any() else \
            np.zeros(X.shape[1])
        Xf = self._fill(X)
        self.est_ = UpliftRandomForestClassifier(control_name="0", random_state=self.random_state,
                                                 n_jobs=self.n_jobs, **self.params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.est_.fit(X=Xf, treatment=t.astype(str), y=y.astype(int))
        self.groups_ = [str(a) for a in sorted(prop)]
        return self

    def _full(self, X):
        return self.est_.predict(self._fill(X), full_output=True)

    def uplift(self, X):
        full = self._full(X)
        return np.column_stack([full[g].to_numpy() - full["0"].to_numpy() for g in self.groups_])

    def base(self, X):
        return self._full(X)["0"].to_numpy()


class MeanLearner:
    """An ensemble: the mean of its members' uplift and control outcome (each member an
    adapter above, all fitted on the same rows)."""

    def __init__(self, members: list[Any]):
        self.members = members

    def fit(self, X, y, t, prop):
        for m in self.members:
            m.fit(X, y, t, prop)
        return self

    def uplift(self, X):
        return np.mean([m.uplift(X) for m in self.members], axis=0)

    def base(self, X):
        return np.mean([m.base(X) for m in self.members], axis=0)


class ArmwiseLearner:
    """Per treatment arm its own learner (and base models): `parts` are (fitted adapter, arm
    codes 1..k it predicts, in its own column order); the control outcome comes from
    `parts[base_part]`."""

    def __init__(self, parts: list[tuple[Any, list[int]]], k: int, base_part: int = 0):
        self.parts = parts
        self.k = k
        self.base_part = base_part

    def uplift(self, X: np.ndarray) -> np.ndarray:
        out = np.empty((X.shape[0], self.k))
        for est, codes in self.parts:
            out[:, np.asarray(codes) - 1] = est.uplift(X)
        return out

    def base(self, X: np.ndarray) -> np.ndarray:
        return self.parts[self.base_part][0].base(X)


def make_learner(name: str, binary: bool, base_learner: Any, random_state: int, n_jobs: int,
                 categorical: Any = None) -> _Base:
    """The adapter for `name` (one of LEARNERS); `categorical` flags the columns that hold
    category codes."""
    cls = {"s": SLearner, "t": TLearner, "x": XLearner, "dr": DRLearner, "glm": GLMLearner,
           "urf": UpliftForest}[name]
    return cls(binary, base_learner, random_state, n_jobs, categorical)

