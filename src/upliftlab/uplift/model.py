"""`UpliftModel`: per-customer uplift of every treatment arm against control, scikit-learn style.

Validates and encodes the features (categories to stored codes, NaN kept for LightGBM), checks
the arms and the outcome, and delegates to one of the meta-learners in `learners.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from upliftlab.errors import InputError
from upliftlab.uplift.learners import (BASE_MODELS, LEARNERS, ArmwiseLearner, MeanLearner,
                                       make_learner)

# The learner of a bare `UpliftModel()` (with LightGBM's own defaults as base models). What
# `upliftlab model fit` uses is chosen per arm on the data at hand (`upliftlab.uplift.select`):
# no single learner or capacity is right for every world (benchmarks/RESULTS.md, sections
# `uplift` and `causalml_synth`).
DEFAULT_LEARNER = "s"
MIN_ARM_SIZE = 50


def members(text: Any) -> list[str]:
    """The simple learners of a spec: 'mean(s/small,t/large)' -> ['s/small', 't/large'] (an
    ensemble: the mean of their predictions); 's' -> ['s']. Each is validated."""
    text = str(text)
    if text.startswith("mean(") and text.endswith(")"):
        out = [m.strip() for m in text[5:-1].split(",") if m.strip()]
        if not out:
            raise InputError(f"learner {text!r}: an ensemble needs members")
    else:
        out = [text]
    for m in out:
        parse_learner(m)
    return out


def make_adapter(text: str, binary: bool, base_learner: Any, random_state: int,
                 n_jobs: int, categorical: Any = None) -> Any:
    """The fitted-to-be adapter of a spec (a simple learner, or the mean of several)."""
    parts = []
    for m in members(text):
        name, base = parse_learner(m)
        parts.append(make_learner(name, binary, base or base_learner, random_state, n_jobs,
                                  categorical))
    return parts[0] if len(parts) == 1 else MeanLearner(parts)


def parse_learner(text: Any) -> tuple[str, str | None]:
    """'s' -> ('s', None); 's/small' -> ('s', 'small'); InputError for unknown names."""
    name, _, base = str(text).partition("/")
    if name not in LEARNERS:
        raise InputError(f"learner: unknown {name!r} (choose from {', '.join(LEARNERS)})")
    if base and base not in BASE_MODELS:
        raise InputError(f"learner {text!r}: unknown base model {base!r} (choose from "
                         f"{', '.join(BASE_MODELS)})")
    return name, (base or None)


def feature_kind(series: pd.Series) -> str:
    """'numeric' (numbers, booleans) or 'category' (pandas category, text); else InputError."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        return "category"
    raise InputError(f"feature {series.name!r}: unsupported type {dtype} (use numbers, "
                     "booleans, text or pandas categories; convert dates to e.g. days)")


def _text_keys(series: pd.Series) -> pd.Series:
    """Category values as text (NaN stays NaN), so 1 and '1' are the same category."""
    obj = series.astype(object)
    return obj.where(obj.isna(), obj.astype(str))


class UpliftModel(BaseEstimator):
    """Uplift of each treatment arm against control, one model for many arms.

    Parameters
    ----------
    control : label of the control arm in `treatment` (labels are compared as text).
    learner : "s", "t", "x", "dr" (doubly robust, on probabilities) or "urf" (causalml's
        uplift random forest, binary outcomes only), optionally with a base-model preset
        after a slash ("s/small", see `learners.BASE_MODELS`); or a mapping treatment arm ->
        such a name, one learner per arm (what `upliftlab.uplift.select` chooses);
        None = DEFAULT_LEARNER.
    outcome : "binary" (0/1, e.g. reactivation: classifiers, uplift in probability) or
        "continuous" (e.g. revenue: regressors, uplift in the outcome's units).
    base_learner : None (LightGBM with `learners.DEFAULT_LGBM`, LightGBM's own defaults), a
        preset name of `learners.BASE_MODELS`, a dict of LightGBM parameters overriding the
        defaults, or a scikit-learn estimator cloned for every outcome model.
    min_arm_size : an arm (control included) with fewer customers is refused (InputError).
    unseen_categories : "missing" (default: a category not seen in training is scored as a
        missing value, which LightGBM sends down the branch it learned for missing values) or
        "error" (InputError naming the column and values).
    random_state, n_jobs : passed to every base model (keep n_jobs small on shared machines).
    calibration : None, or per treatment arm {ate, center, slope}: predictions become
        ate + slope (uplift - center), the out-of-fold calibration toward the arm's average
        effect that `upliftlab.uplift.select` fits (`Selection.calibration_map()`).

    Missing values in numeric features are kept as NaN: LightGBM learns where to send them
    (the uplift forest, which cannot, gets the training median).

    Fitted attributes: `arms_` (control first), `treatment_arms_`, `control_`,
    `feature_names_in_`, `feature_dtypes_` (name -> 'numeric'|'category'), `categories_`,
    `propensity_` (arm -> design probability), `estimators_` (the fitted learner),
    `n_features_in_`, `learner_`.
    """

    def __init__(self, control: Any = "control", learner: str | None = None,
                 outcome: str = "binary", base_learner: Any = None, random_state: int = 0,
                 n_jobs: int = 1, min_arm_size: int = MIN_ARM_SIZE,
                 unseen_categories: str = "missing",
                 calibration: Mapping[str, Mapping[str, float]] | None = None):
        self.control = control
        self.learner = learner
        self.outcome = outcome
        self.base_learner = base_learner
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.min_arm_size = min_arm_size
        self.unseen_categories = unseen_categories
        self.calibration = calibration

    # ------------------------------------------------------------------ fit
    def fit(self, X: pd.DataFrame, y: Any, treatment: Any, propensity: Any = None) -> "UpliftModel":
        """Fit on features X (DataFrame), outcomes y and arm labels `treatment`.

        `propensity`: the design's randomisation probabilities, either a dict arm -> probability
        (or arm -> per-row array, e.g. for stratified designs), or a DataFrame with one column
        per arm. None = the observed arm shares (fine for a simple randomised experiment).
        They are used by the X-learner (to weight its two effect models) and the DR-learner
        (inverse-propensity terms).
        """
        spec = self.learner or DEFAULT_LEARNER
        if self.outcome not in ("binary", "continuous"):
            raise InputError(f"outcome: must be 'binary' or 'continuous', got {self.outcome!r}")
        per_arm = dict(spec) if isinstance(spec, Mapping) else None
        for text in (per_arm.values() if per_arm else [spec]):
            for m in members(text):
                if parse_learner(m)[0] == "urf" and self.outcome != "binary":
                    raise InputError("learner 'urf' (uplift random forest) needs a binary "
                                     "outcome")
        if self.unseen_categories not in ("missing", "error"):
            raise InputError("unseen_categories: must be 'missing' or 'error'")
        X = self._check_frame(X)
        n = len(X)
        y = self._check_y(y, n)
        labels = self._check_treatment(treatment, n)

        self.control_ = str(self.control)
        arms = sorted(set(labels) - {self.control_})
        if self.control_ not in set(labels):
            raise InputError(f"treatment: no rows with the control label {self.control_!r} "
                             f"(found: {', '.join(sorted(set(labels))[:10])})")
        if not arms:
            raise InputError("treatment: only the control arm is present; need a treatment arm")
        self.treatment_arms_ = arms
        self.arms_ = [self.control_] + arms
        counts = pd.Series(labels).value_counts()
        small = [f"{a!r} ({counts[a]})" for a in self.arms_ if counts[a] < self.min_arm_size]
        if small:
            raise InputError(f"treatment: too few customers to fit in arm {', '.join(small)}; "
                             f"each arm needs at least {self.min_arm_size}")
        for a in self.arms_:
            ya = y[labels == a]
            if self.outcome == "binary" and (ya.min() == ya.max()):
                raise InputError(f"outcome is constant ({ya[0]:g}) in arm {a!r}: cannot fit a "
                                 "model of its response")
        codes = pd.Series(labels).map({a: i for i, a in enumerate(self.arms_)}).to_numpy(np.int64)
        self.propensity_ = self._propensity(propensity, labels, n)
        cond = {}
        for j, a in enumerate(arms, start=1):
            ea, ec = self._prop_vector(propensity, a, labels, n), \
                self._prop_vector(propensity, self.control_, labels, n)
            cond[j] = ea / (ea + ec)

        self.feature_names_in_ = np.array(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        self.feature_dtypes_ = {c: feature_kind(X[c]) for c in X.columns}
        self.categories_ = {}
        for c, kind in self.feature_dtypes_.items():
            if kind == "category":
                s = X[c]
                cats = [str(v) for v in s.cat.categories] if isinstance(s.dtype, pd.CategoricalDtype) \
                    else sorted(_text_keys(s).dropna().unique().tolist())
                self.categories_[c] = cats
        Xn = self._encode(X, check_unseen=False)
        if per_arm is None:
            self.learner_ = str(spec)
            self.arm_learners_ = {a: str(spec) for a in arms}
            est = make_adapter(spec, self.outcome == "binary", self.base_learner,
                               self.random_state, self.n_jobs, self._categorical())
            est.fit(Xn, y, codes, cond)
        else:
            est = self._fit_per_arm(per_arm, arms, Xn, y, codes, cond)
        self.estimators_ = est
        if self.calibration is not None:
            unknown = sorted(set(map(str, self.calibration)) - set(arms))
            if unknown:
                raise InputError(f"calibration: unknown arm(s) {', '.join(unknown)} (arms: "
                                 f"{', '.join(arms)})")
        return self

    def _fit_per_arm(self, per_arm: dict, arms: list[str], Xn: np.ndarray, y: np.ndarray,
                     codes: np.ndarray, cond: dict) -> ArmwiseLearner:
        """One adapter per distinct learner, each on control + the arms it serves."""
        keys = {str(k): str(v) for k, v in per_arm.items()}
        missing = [a for a in arms if a not in keys]
        unknown = [a for a in keys if a not in arms]
        if missing or unknown:
            raise InputError(f"learner: the per-arm mapping must name every treatment arm "
                             f"({', '.join(arms)}); missing {missing or 'none'}, unknown "
                             f"{unknown or 'none'}")
        groups: dict[str, list[int]] = {}
        for j, a in enumerate(arms, start=1):
            groups.setdefault(keys[a], []).append(j)
        parts = []
        for text, group in groups.items():
            rows = np.isin(codes, [0] + group)
            local = np.zeros(len(codes), dtype=np.int64)
            for i, c in enumerate(group, start=1):
                local[codes == c] = i
            est = make_adapter(text, self.outcome == "binary", self.base_learner,
                               self.random_state, self.n_jobs, self._categorical())
            est.fit(Xn[rows], y[rows], local[rows],
                    {i: np.asarray(cond[c])[rows] for i, c in enumerate(group, start=1)})
            parts.append((est, group))
        base_part = int(np.argmax([len(g) for _, g in parts]))
        self.arm_learners_ = {a: keys[a] for a in arms}
        self.learner_ = "per arm: " + ", ".join(f"{a} {keys[a]}" for a in arms)
        return ArmwiseLearner(parts, len(arms), base_part)

    def _categorical(self) -> np.ndarray:
        """Per encoded column: True where it holds category codes."""
        return np.array([self.feature_dtypes_[c] == "category" for c in self.feature_names_in_])

    # ------------------------------------------------------------------ predict
    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """Estimated uplift (arm minus control) per treatment arm: one column per arm, X's index."""
        self._check_fitted()
        Xn = self._encode(self._check_predict_frame(X))
        up = self._calibrated(self.estimators_.uplift(Xn))
        return pd.DataFrame(up, index=X.index, columns=list(self.treatment_arms_))

    def predict_outcomes(self, X: pd.DataFrame) -> pd.DataFrame:
        """Predicted outcome under every arm, control first: mu(x, a) = mu(x, control) + uplift_a.

        Built this way so that outcome differences equal `predict` exactly (what a policy and its
        doubly-robust evaluation need). For binary outcomes these are probabilities, not clipped
        to [0, 1] (the X- and DR-learners' uplift can push them slightly outside).
        """
        self._check_fitted()
        Xn = self._encode(self._check_predict_frame(X))
        base = self.estimators_.base(Xn)
        up = self._calibrated(self.estimators_.uplift(Xn))
        data = np.column_stack([base, base[:, None] + up])
        return pd.DataFrame(data, index=X.index, columns=list(self.arms_))

    def _calibrated(self, up: np.ndarray) -> np.ndarray:
        cal = getattr(self, "calibration", None)  # models pickled before it existed
        if not cal:
            return up
        out = np.array(up, dtype=float)
        for j, arm in enumerate(self.treatment_arms_):
            c = cal.get(arm)
            if c is not None:
                out[:, j] = c["ate"] + c["slope"] * (out[:, j] - c["center"])
        return out

    # ------------------------------------------------------------------ helpers
    def _check_fitted(self) -> None:
        if not hasattr(self, "estimators_"):
            raise InputError("this UpliftModel is not fitted yet: call fit(X, y, treatment) first")

    @staticmethod
    def _check_frame(X: Any) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise InputError(f"X: expected a pandas DataFrame of features, got {type(X).__name__}")
        if X.shape[1] == 0:
            raise InputError("X: no feature columns")
        if len(X) == 0:
            raise InputError("X: no rows")
        if X.columns.duplicated().any():
            dup = X.columns[X.columns.duplicated()].tolist()
            raise InputError(f"X: duplicate feature columns {dup}")
        return X

    def _check_y(self, y: Any, n: int) -> np.ndarray:
        arr = np.asarray(y)
        if arr.ndim != 1 or len(arr) != n:
            raise InputError(f"y: expected {n} outcomes (one per row of X), got shape {arr.shape}")
        try:
            arr = arr.astype(float)
        except (TypeError, ValueError):
            raise InputError("y: outcomes must be numbers") from None
        if not np.isfinite(arr).all():
            raise InputError(f"y: {int((~np.isfinite(arr)).sum())} missing or infinite outcomes")
        if self.outcome == "binary" and not np.isin(arr, (0.0, 1.0)).all():
            bad = np.unique(arr[~np.isin(arr, (0.0, 1.0))])[:3].tolist()
            raise InputError(f"y: a binary outcome must be 0/1, found {bad} "
                             "(use outcome='continuous' for amounts)")
        if arr.min() == arr.max():
            raise InputError(f"y: the outcome is constant ({arr[0]:g}) in every row: nothing to model")
        return arr

    @staticmethod
    def _check_treatment(treatment: Any, n: int) -> np.ndarray:
        s = pd.Series(np.asarray(treatment, dtype=object)) if not isinstance(treatment, pd.Series) \
            else treatment.reset_index(drop=True)
        if s.ndim != 1 or len(s) != n:
            raise InputError(f"treatment: expected {n} arm labels (one per row of X), got {len(s)}")
        if s.isna().any():
            raise InputError(f"treatment: {int(s.isna().sum())} rows without an arm label")
        return s.astype(str).to_numpy(dtype=object)

    def _prop_vector(self, propensity: Any, arm: str, labels: np.ndarray, n: int) -> np.ndarray:
        if propensity is None:
            return np.full(n, float(np.mean(labels == arm)))
        if isinstance(propensity, pd.DataFrame):
            propensity = {str(c): propensity[c].to_numpy() for c in propensity.columns}
        if not isinstance(propensity, dict):
            raise InputError("propensity: expected a dict arm -> probability or a DataFrame "
                             "with one column per arm")
        prop = {str(k): v for k, v in propensity.items()}
        if arm not in prop:
            raise InputError(f"propensity: no probability for arm {arm!r} "
                             f"(given: {', '.join(prop)})")
        v = np.asarray(prop[arm], dtype=float)
        if v.ndim == 0:
            v = np.full(n, float(v))
        if v.shape != (n,):
            raise InputError(f"propensity[{arm!r}]: expected a number or {n} values, got {v.shape}")
        if not ((v > 0) & (v < 1)).all():
            raise InputError(f"propensity[{arm!r}]: probabilities must be strictly between 0 and 1")
        return v

    def _propensity(self, propensity: Any, labels: np.ndarray, n: int) -> dict[str, float]:
        return {a: float(self._prop_vector(propensity, a, labels, n).mean()) for a in self.arms_}

    def _check_predict_frame(self, X: Any) -> pd.DataFrame:
        X = self._check_frame(X)
        names = list(self.feature_names_in_)
        missing = [c for c in names if c not in X.columns]
        if missing:
            raise InputError(f"features missing for this model: {', '.join(map(repr, missing))} "
                             f"(the model was fitted on {', '.join(names)})")
        for c in names:
            kind = feature_kind(X[c])
            if kind != self.feature_dtypes_[c]:
                want = "numbers" if self.feature_dtypes_[c] == "numeric" else "categories/text"
                raise InputError(f"feature {c!r}: the model was fitted on {want}, got {X[c].dtype}")
        return X

    def _encode(self, X: pd.DataFrame, check_unseen: bool = True) -> np.ndarray:
        """Features as a float matrix: numbers as they are, categories as training codes, NaN kept."""
        out = np.empty((len(X), len(self.feature_names_in_)), dtype=np.float64)
        for j, c in enumerate(self.feature_names_in_):
            s = X[c]
            if self.feature_dtypes_[c] == "numeric":
                out[:, j] = s.to_numpy(dtype=np.float64, na_value=np.nan)
                continue
            keys = _text_keys(s)
            # -1 for unseen values and NaN (pd.Categorical with unknown values is deprecated)
            codes = pd.Index(self.categories_[c]).get_indexer(keys)
            unseen = (codes < 0) & keys.notna().to_numpy()
            if check_unseen and unseen.any() and self.unseen_categories == "error":
                vals = sorted(set(keys[unseen].tolist()))[:5]
                raise InputError(f"feature {c!r}: categories not seen in training: {vals}")
            out[:, j] = np.where(codes < 0, np.nan, codes)
        return out
