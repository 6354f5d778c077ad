"""The interaction model of Lo (2002) on a boosted baseline: per arm (control included) an
intercept and a slope on every centred feature, on the logit scale, around a LightGBM model of
the outcome.

Why a linear effect model: reactivation uplift is often about one point on a base of a few
percent, too little signal for trees to find effect modifiers at experiment sizes (their uplift is
mostly noise), while the baseline is strongly non-linear. So the baseline is LightGBM's (an
offset, cross-fitted within the training rows so that it does not absorb the arms' signal, with
a free common coefficient gamma) and the effect is a ridge-penalised GLM:
    logit P(y = 1 | x, arm a) = gamma offset(x) + alpha_a + x' beta_a      (a = 0 is control)
(identity link and least squares for a continuous outcome). The penalty is a prior, not a fit:
see PENALTY. The penalised log-likelihood and its gradient go to scipy's L-BFGS here: a dozen
lines, where scikit-learn's LogisticRegression takes no offset and statsmodels' general
penalised GLM would need the offset and a per-parameter penalty wired in for the same result
(its unpenalised fit is the reference in tests/test_uplift_glm.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# The ridge penalty on the slopes (the log-likelihood is summed over rows): a normal prior with
# standard deviation 1/sqrt(PENALTY) = 0.1 on how much one standard deviation of a number (or
# the presence of a category level or missing value) moves an arm's effect on the logit.
# Chosen as a prior because held-out likelihood cannot choose it: the arms' terms move the
# held-out log-likelihood of a rare outcome by a few nats across penalties from 300 to 3,000
# (noise), while the policy they induce was best near 100 on the simulator at 33k and 83k
# customers (69% and 75% of the oracle against 68% and 72% at 30 or 1,000).
PENALTY = 100.0
MAX_LEVELS = 20  # one-hot columns per categorical feature besides the reference level


class LinearDesign:
    """The features of the effect model, centred: numbers median-imputed with a missing flag,
    log1p of skewed non-negative ones, standardised and clipped at +-5 sd; categories one-hot,
    the most frequent level the reference and the next MAX_LEVELS levels a column each (rarer
    and unseen levels share the reference), with a missing flag. A number's slope is per
    standard deviation, a level's or a flag's per presence, so the prior is N(0, 0.1^2) on the
    logit effect of either. Standardising the 0/1 columns too (a rare level's slope per
    standard deviation) let rare levels and flags carry noise: on the simulator at 83k
    customers the plan fell from 75% to 70% of the oracle. Fitted on the training rows,
    applied to any rows."""

    def fit(self, X: np.ndarray, categorical: np.ndarray) -> "LinearDesign":
        from scipy.stats import skew

        self.steps_ = []
        for j in range(X.shape[1]):
            col = X[:, j]
            seen = col[~np.isnan(col)]
            if categorical[j]:
                values, counts = np.unique(seen, return_counts=True)
                order = np.argsort(-counts, kind="stable")
                self.steps_.append(("cat", j, values[order][1:MAX_LEVELS + 1]))
            elif len(seen):
                med = float(np.median(seen))
                filled = np.where(np.isnan(col), med, col)
                log = bool(filled.min() >= 0 and len(np.unique(filled)) > 2
                           and skew(filled) > 1)
                v = np.log1p(filled) if log else filled
                if v.std() > 0:
                    self.steps_.append(("num", j, (med, log, float(v.mean()), float(v.std()))))
            if np.isnan(col).any() and len(seen):
                self.steps_.append(("missing", j, None))
        Z = self._raw(X)
        self.keep_ = Z.std(axis=0) > 0  # a level or flag constant in training carries nothing
        self.mean_ = Z[:, self.keep_].mean(axis=0)
        return self

    def _raw(self, X: np.ndarray) -> np.ndarray:
        cols = []
        for kind, j, info in self.steps_:
            col = X[:, j]
            if kind == "cat":
                cols.extend((col == level).astype(float) for level in info)
            elif kind == "missing":
                cols.append(np.isnan(col).astype(float))
            else:
                med, log, mean, sd = info
                v = np.where(np.isnan(col), med, col)
                v = np.log1p(np.maximum(v, 0.0)) if log else v
                cols.append(np.clip((v - mean) / sd, -5.0, 5.0))
        return np.column_stack(cols) if cols else np.zeros((X.shape[0], 0))

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Centred design (one row per row of X)."""
        return self._raw(X)[:, self.keep_] - self.mean_


def arm_design(Z: np.ndarray, t: np.ndarray, k: int) -> np.ndarray:
    """[1{t=a} (1, z)] for a = 0..k (n x (k+1)(p+1))."""
    Z1 = np.hstack([np.ones((Z.shape[0], 1)), Z])
    return np.hstack([(t == a)[:, None] * Z1 for a in range(k + 1)])


# the intercepts' prior relative to the slopes': N(0, 10^2) on the logit at PENALTY = 100, so
# an arm without a single positive outcome stays finite instead of drifting to -infinity
INTERCEPT_PRIOR = 1e-4


def penalty_mask(p: int, k: int) -> np.ndarray:
    """Intercepts nearly free, slopes penalised."""
    return np.tile(np.r_[INTERCEPT_PRIOR, np.ones(p)], k + 1)


def fit_arm_terms(W: np.ndarray, y: np.ndarray, offset: np.ndarray, lam: float,
                  mask: np.ndarray, binary: bool) -> np.ndarray:
    """Coefficients of the arm terms: ridge-penalised logistic (binary) or least squares."""
    if not binary:
        # in units of the outcome's standard deviation, so the prior means the same as on the
        # logit scale: one feature's sd moves the effect by about 0.1 sd of the outcome
        scale = float(np.std(y)) or 1.0
        A = W.T @ W + lam * np.diag(mask) + 1e-9 * np.eye(W.shape[1])
        return np.linalg.solve(A, W.T @ ((y - offset) / scale)) * scale
    from scipy.optimize import minimize
    from scipy.special import expit

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        eta = offset + W @ w
        value = float(np.sum(np.logaddexp(0.0, eta) - y * eta)) + 0.5 * lam * float(mask @ (w * w))
        return value, W.T @ (expit(eta) - y) + lam * mask * w

    result = minimize(loss, np.zeros(W.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": 2_000})
    if not result.success:
        import warnings

        warnings.warn(f"glm: the arm terms did not converge ({result.message})", stacklevel=2)
    return result.x


def to_offset(p: np.ndarray, binary: bool) -> np.ndarray:
    if not binary:
        return np.asarray(p, dtype=float)
    from scipy.special import logit

    return logit(np.clip(p, 1e-5, 1 - 1e-5))


def check_categorical(categorical: Any, n_features: int) -> np.ndarray:
    mask = np.zeros(n_features, dtype=bool) if categorical is None else \
        np.asarray(categorical, dtype=bool)
    if mask.shape != (n_features,):
        from upliftlab.errors import InputError

        raise InputError(f"categorical: expected {n_features} flags, got {mask.shape}")
    return mask

