"""The BG/NBD buy-till-you-die baseline (Fader, Hardie & Lee 2005), fitted by maximum likelihood.

Why not a library: pymc-marketing's `BetaGeoModel` pulls pymc, pytensor and numba (~30
packages, a compiler at import) into the shared environment, `lifetimes` is unmaintained and
breaks on current pandas/scipy, `btyd` is its stale fork. The model is four parameters with a
closed-form likelihood (their eq. 6), so scipy's L-BFGS on log-parameters is the whole fit;
`tests/test_risk_model.py` checks P(alive) against the formula in STATS-NOTES and the fit against
parameters it simulated from.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln
from sklearn.base import BaseEstimator

from upliftlab.errors import InputError

# model time unit: weeks, as in the paper; keeps alpha of order 1-10
_UNIT_DAYS = 7.0


def rfm_from_features(X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T) in weeks from the cohort features: repeat purchases, first to last purchase,
    first purchase to the snapshot."""
    missing = [c for c in ("orders_total", "first_purchase", "last_purchase", "tenure_days")
               if c not in getattr(X, "columns", ())]
    if missing:
        raise InputError(f"X: missing column {', '.join(map(repr, missing))} for BG/NBD")
    x = X["orders_total"].to_numpy(np.float64) - 1.0
    span = (X["last_purchase"] - X["first_purchase"]).dt.days.to_numpy(np.float64)
    return x, span / _UNIT_DAYS, X["tenure_days"].to_numpy(np.float64) / _UNIT_DAYS


def log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood (Fader, Hardie & Lee 2005, eq. 6)."""
    r, alpha, a, b = params
    base = (gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b))
    t1 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        t2 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300))
                      - (r + x) * np.log(alpha + t_x), -np.inf)
    return base + np.logaddexp(t1, t2)


def p_alive(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(alive | x, t_x, T) = 1 / (1 + [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))."""
    r, alpha, a, b = params
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = np.where(x > 0, a / np.maximum(b + x - 1, 1e-300)
                        * np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + t_x))), 0.0)
    return 1.0 / (1.0 + odds)


class BetaGeoRisk(BaseEstimator):
    """P(no purchase in the next `horizon_days`) under BG/NBD: a dead customer never buys, a live
    one with posterior rate Gamma(r + x, alpha + T) buys none with ((alpha+T)/(alpha+T+h))^(r+x).

    Fitted on at most `max_rows` customers (a random subset; the likelihood has four
    parameters). Learned: ``params_`` = (r, alpha, a, b), alpha in weeks.
    """

    def __init__(self, horizon_days: int = 60, max_rows: int = 30_000, random_state: int = 0):
        self.horizon_days = horizon_days
        self.max_rows = max_rows
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> "BetaGeoRisk":
        x, t_x, T = rfm_from_features(X)
        if len(x) > self.max_rows:
            keep = np.random.default_rng(self.random_state).choice(len(x), self.max_rows,
                                                                   replace=False)
            x, t_x, T = x[keep], t_x[keep], T[keep]
        self.params_ = fit_bgnbd(x, t_x, T)
        return self

    def predict_risk(self, X: Any) -> np.ndarray:
        x, t_x, T = rfm_from_features(X)
        r, alpha, _, _ = self.params_
        h = self.horizon_days / _UNIT_DAYS
        alive = p_alive(self.params_, x, t_x, T)
        none_if_alive = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + h)))
        return 1.0 - alive * (1.0 - none_if_alive)


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Maximum-likelihood (r, alpha, a, b) by L-BFGS on their logarithms."""
    def nll(theta: np.ndarray) -> float:
        return -float(np.mean(log_likelihood(np.exp(theta), x, t_x, T)))

    res = minimize(nll, np.log([0.5, max(float(np.mean(T)), 1.0), 0.8, 2.5]), method="L-BFGS-B",
                   bounds=[(-8, 8)] * 4)
    return np.exp(res.x)


__all__ = ["BetaGeoRisk", "fit_bgnbd", "log_likelihood", "p_alive", "rfm_from_features"]
