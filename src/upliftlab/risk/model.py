"""The churn-risk model and the overdue-ratio rule, both scikit-learn estimators.

`RiskModel`: LightGBM with cross-fitted probability calibration (scikit-learn's
`CalibratedClassifierCV`: each fold's booster is calibrated on the fold it did not see, the
calibrated folds are averaged). `OverdueRule`: days since the last purchase / mean gap, the rule
a team uses without a model. Both give ``predict_risk(X)``: P(going dormant) per row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from upliftlab.errors import InputError


def check_features(X: Any, names: list[str], what: str = "X") -> None:
    """InputError naming the missing feature columns of `X`."""
    cols = set(getattr(X, "columns", ()))
    missing = [c for c in names if c not in cols]
    if missing:
        raise InputError(f"{what}: missing feature column {', '.join(map(repr, missing))} "
                         f"that the risk model was trained on")


def _as_frame(X: Any, names: list[str]) -> Any:
    import pandas as pd

    return pd.DataFrame({c: pd.to_numeric(X[c], errors="coerce").astype("float64") for c in names})


class RiskModel(ClassifierMixin, BaseEstimator):
    """P(no purchase in the horizon) from point-in-time features.

    Parameters are LightGBM's (`n_estimators`, `learning_rate`, `num_leaves`,
    `min_child_samples`), the calibration (`method`: isotonic or sigmoid, over `cv` folds),
    `random_state` and `n_jobs` (threads per booster: 1 by default, because LightGBM's OpenMP
    threads slow down badly on shared cores: 4M rows took 686 s with every core against 144 s
    with one, on a busy 2-core machine).
    Learned: ``feature_names_in_``, ``calibrated_``, ``classes_``, ``feature_importances_``
    (share of total gain).
    """

    def __init__(self, n_estimators: int = 100, learning_rate: float = 0.1,
                 num_leaves: int = 31, min_child_samples: int = 100, method: str = "isotonic",
                 cv: int = 2, random_state: int = 0, n_jobs: int | None = 1):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.method = method
        self.cv = cv
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X: Any, y: Any) -> "RiskModel":
        from lightgbm import LGBMClassifier
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.model_selection import StratifiedKFold

        if self.method not in ("isotonic", "sigmoid"):
            raise InputError(f"method {self.method!r}: expected 'isotonic' or 'sigmoid'")
        if not hasattr(X, "columns"):
            raise InputError("X: expected a table (DataFrame) of features")
        yv = np.asarray(y, dtype=np.float64)
        if len(yv) != len(X):
            raise InputError(f"y: {len(yv)} labels for {len(X)} rows of X")
        if not np.isin(yv, (0.0, 1.0)).all() or len(np.unique(yv)) < 2:
            raise InputError("y: labels must be 0/1 with both present")
        names = [str(c) for c in X.columns]
        booster = LGBMClassifier(n_estimators=self.n_estimators, learning_rate=self.learning_rate,
                                 num_leaves=self.num_leaves,
                                 min_child_samples=self.min_child_samples,
                                 subsample=0.8, subsample_freq=1, colsample_bytree=0.9,
                                 random_state=self.random_state, n_jobs=self.n_jobs, verbose=-1)
        folds = StratifiedKFold(self.cv, shuffle=True, random_state=self.random_state)
        self.calibrated_ = CalibratedClassifierCV(booster, method=self.method, cv=folds)
        self.calibrated_.fit(_as_frame(X, names), yv.astype(int))
        self.feature_names_in_ = np.asarray(names, dtype=object)
        self.classes_ = np.array([0, 1])
        gains = np.mean([c.estimator.booster_.feature_importance("gain")
                         for c in self.calibrated_.calibrated_classifiers_], axis=0)
        self.feature_importances_ = gains / gains.sum() if gains.sum() > 0 else gains
        return self

    def predict_risk(self, X: Any) -> np.ndarray:
        """P(going dormant) per row."""
        names = list(self.feature_names_in_)
        check_features(X, names)
        return self.calibrated_.predict_proba(_as_frame(X, names))[:, 1]

    def predict_proba(self, X: Any) -> np.ndarray:
        p = self.predict_risk(X)
        return np.column_stack([1 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        return (self.predict_risk(X) >= 0.5).astype(int)


class OverdueRule(BaseEstimator):
    """Risk by overdue ratio: days since the last purchase / mean gap between purchases.

    One-purchase customers have no gap; they get the median gap of the training rows
    (``fill_gap_``). Higher ratio, higher risk; it ranks, it is not a probability.
    """

    def fit(self, X: Any, y: Any = None) -> "OverdueRule":
        check_features(X, ["days_since_last", "mean_gap_days"])
        gaps = X["mean_gap_days"].to_numpy(np.float64)
        gaps = gaps[np.isfinite(gaps) & (gaps > 0)]
        self.fill_gap_ = float(np.median(gaps)) if len(gaps) else 30.0
        return self

    def predict_risk(self, X: Any) -> np.ndarray:
        check_features(X, ["days_since_last", "mean_gap_days"])
        gap = X["mean_gap_days"].to_numpy(np.float64)
        gap = np.where(np.isfinite(gap) & (gap > 0), gap, self.fill_gap_)
        return X["days_since_last"].to_numpy(np.float64) / gap


__all__ = ["OverdueRule", "RiskModel", "check_features"]
