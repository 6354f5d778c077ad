"""Off-policy evaluation on a randomised experiment: what a targeting policy would have
delivered (reactivations, cost), by inverse-propensity weighting and doubly robust estimates.

Conventions: arms are column indices 0..k with 0 = control (no treatment); `mu_hat` is an
n x (k+1) array of cross-fitted predictions of P(reactivate | x, arm); propensities e(a) come
from the design (a (k+1,) vector or an n x (k+1) array for stratified designs). A policy is an
(n,) array of column indices, or an n x (k+1) array of probabilities for a random policy.
Estimators (Dudik et al. 2011; Athey & Wager 2021): IPW psi_i = 1{A_i = pi_i} Y_i / e(A_i);
DR psi_i = mu(x_i, pi_i) + 1{A_i = pi_i} (Y_i - mu(x_i, A_i)) / e(A_i); the estimate is the mean
of psi and its standard error sd(psi) / sqrt(n) (normal approximation); two policies on the same
customers are compared by the paired difference of their psi.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from upliftlab.errors import InputError
from upliftlab.policy.problem import per_arm


@dataclass(frozen=True)
class Estimate:
    """A per-customer mean with its normal interval, and the same scaled to `population`."""

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    n: int
    population: float
    total: float
    total_ci_low: float
    total_ci_high: float

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                for k, v in asdict(self).items()}


@dataclass(frozen=True)
class BaselineComparison:
    """Policy minus a baseline, paired on the same customers, with a plain statement."""

    name: str
    metric: str
    difference: Estimate
    p_value: float
    significant: bool
    statement: str

    def to_dict(self) -> dict:
        return {"baseline": self.name, "metric": self.metric,
                "difference": self.difference.to_dict(), "p_value": self.p_value,
                "significant": self.significant, "statement": self.statement}


def estimate_from_terms(terms: np.ndarray, population: float | None = None,
                        alpha: float = 0.05) -> Estimate:
    """Mean of per-customer influence terms, SE = sd / sqrt(n), normal CI; totals x population."""
    from scipy.stats import norm

    terms = np.asarray(terms, dtype=float)
    n = terms.shape[0]
    est = float(terms.mean()) if n else float("nan")
    se = float(terms.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    z = float(norm.ppf(1 - alpha / 2))
    pop = float(n if population is None else population)
    return Estimate(est, se, est - z * se, est + z * se, n, pop, est * pop,
                    (est - z * se) * pop, (est + z * se) * pop)


def _policy_matrix(policy: Any, n: int, k1: int) -> np.ndarray:
    """(n, k+1) probabilities from column indices or a probability array."""
    pol = np.asarray(policy)
    if pol.ndim == 1:
        if pol.shape[0] != n:
            raise InputError(f"policy has {pol.shape[0]} entries for {n} customers")
        idx = pol.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= k1):
            raise InputError(f"policy arms must be column indices 0..{k1 - 1} (0 = control)")
        out = np.zeros((n, k1))
        out[np.arange(n), idx] = 1.0
        return out
    pol = pol.astype(float)
    if pol.shape != (n, k1):
        raise InputError(f"policy probabilities must be {n} x {k1} (got {pol.shape})")
    if (pol < -1e-12).any() or not np.allclose(pol.sum(1), 1.0, atol=1e-9):
        raise InputError("policy probabilities must be >= 0 and sum to 1 per customer")
    return pol


def _propensity_matrix(propensity: Any, n: int, k1: int) -> np.ndarray:
    e = np.asarray(propensity, dtype=float)
    if e.ndim == 1:
        if e.shape[0] != k1:
            raise InputError(f"propensity has {e.shape[0]} arms, expected {k1}")
        e = np.broadcast_to(e, (n, k1))
    if e.shape != (n, k1):
        raise InputError(f"propensity must be ({k1},) or {n} x {k1} (got {e.shape})")
    if (e <= 0).any() or (e > 1).any():
        raise InputError("propensities must be in (0, 1] (an arm with no chance cannot be "
                         "evaluated off-policy)")
    return e


def policy_terms(policy: Any, arm: Any, y: Any, propensity: Any, mu_hat: Any = None) -> np.ndarray:
    """Per-customer influence terms psi_i of the policy's value: DR when `mu_hat` is given,
    else IPW. Their mean is the estimate; their spread gives the standard error."""
    arm = np.asarray(arm, dtype=np.int64)
    y = np.asarray(y, dtype=float)
    n = arm.shape[0]
    if y.shape[0] != n:
        raise InputError(f"outcome has {y.shape[0]} rows, arm has {n}")
    if mu_hat is not None:
        mu = np.asarray(mu_hat, dtype=float)
        if mu.ndim != 2 or mu.shape[0] != n:
            raise InputError(f"mu_hat must be {n} x (k+1) (got {mu.shape})")
        k1 = mu.shape[1]
    else:
        k1 = int(np.asarray(propensity).shape[-1])
    if n and (arm.min() < 0 or arm.max() >= k1):
        raise InputError(f"observed arms must be column indices 0..{k1 - 1}")
    pi = _policy_matrix(policy, n, k1)
    e = _propensity_matrix(propensity, n, k1)
    rows = np.arange(n)
    w = pi[rows, arm] / e[rows, arm]  # probability the policy picks the observed arm, reweighted
    if mu_hat is None:
        return w * y
    return (pi * mu).sum(1) + w * (y - mu[rows, arm])


def off_policy_value(policy: Any, arm: Any, y: Any, propensity: Any, mu_hat: Any = None, *,
                     population: float | None = None, alpha: float = 0.05) -> Estimate:
    """IPW (no `mu_hat`) or doubly robust estimate of the mean outcome under `policy`."""
    return estimate_from_terms(policy_terms(policy, arm, y, propensity, mu_hat), population, alpha)


def compare(terms_policy: np.ndarray, terms_baseline: np.ndarray, *, name: str, metric: str,
            population: float | None = None, alpha: float = 0.05, unit: str = "per customer"
            ) -> BaselineComparison:
    """Paired difference policy - baseline on the same customers, with a plain statement."""
    from scipy.stats import norm

    d = estimate_from_terms(np.asarray(terms_policy) - np.asarray(terms_baseline), population,
                            alpha)
    p = float(2 * norm.sf(abs(d.estimate) / d.se)) if d.se > 0 else (
        0.0 if d.estimate != 0 else 1.0)
    sig = p < alpha
    level = f"{100 * (1 - alpha):.0f}%"
    body = (f"policy vs {name}: {d.total:+,.1f} {metric} in total ({level} CI "
            f"{d.total_ci_low:+,.1f} to {d.total_ci_high:+,.1f}), p = {p:.3g}")
    if sig:
        better = "better" if d.estimate > 0 else "worse"
        statement = f"{body}; the policy is significantly {better} than {name}."
    else:
        statement = (f"{body}; not significant at {100 * alpha:g}%: this experiment cannot tell "
                     f"the policy from {name}.")
    return BaselineComparison(name, metric, d, p, sig, statement)


# --------------------------------------------------------------------------------------------
# evaluation of a policy against the baselines


@dataclass(frozen=True)
class PolicyEvaluation:
    """Off-policy value of a policy and its comparison with the baselines."""

    method: str
    arms: tuple[str, ...]                 # column names, control first
    reactivation: Estimate                # P(reactivate) under the policy (per customer)
    incremental: Estimate                 # policy - treat nobody (reactivations)
    cost: Estimate                        # expected cost under the policy
    cost_per_incremental_reactivation: float | None
    baselines: dict[str, dict]            # name -> reactivation / cost estimates
    comparisons: tuple[BaselineComparison, ...]
    shares: dict[str, float]              # share of customers per arm under the policy
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "method": self.method, "arms": list(self.arms),
            "reactivation": self.reactivation.to_dict(),
            "incremental_reactivations": self.incremental.to_dict(),
            "cost": self.cost.to_dict(),
            "cost_per_incremental_reactivation": self.cost_per_incremental_reactivation,
            "shares": self.shares,
            "baselines": self.baselines,
            "comparisons": [c.to_dict() for c in self.comparisons],
            **self.extra,
        }


def _costs(values: Any, arms: Sequence[str], what: str) -> np.ndarray:
    """A cost per arm, control first (`problem.per_arm`'s rule); a sequence may leave out the
    control, which then costs nothing."""
    if values is not None and not isinstance(values, Mapping):
        vals = np.asarray(values, dtype=float).ravel()
        values = np.concatenate([[0.0], vals]) if vals.shape[0] == len(arms) - 1 else vals
    return per_arm(values, tuple(arms), what, default=0.0)


def evaluate_policy(policy: Any, arm: Any, y: Any, propensity: Any, mu_hat: Any = None, *,
                    arms: Sequence[str] | None = None, cost_per_contact: Any = None,
                    cost_per_conversion: Any = None, budget_per_customer: float | None = None,
                    capacity_share: Mapping[str, float] | None = None,
                    population: float | None = None, alpha: float = 0.05) -> PolicyEvaluation:
    """Value of `policy` (reactivations and cost) against the baselines, with intervals.

    Baselines: treat nobody; the best single arm (each treatment arm given to a random share
    of customers that fits `budget_per_customer` and `capacity_share`, the arm with the highest
    estimated reactivations chosen - on this same data, which flatters the baseline, so the
    comparison is conservative); random allocation with the policy's own arm shares; and what
    the experiment did (its observed mean). Costs: a customer given arm a costs
    cost_per_contact[a] + cost_per_conversion[a] * Y (control costs nothing unless given).
    """
    arm = np.asarray(arm, dtype=np.int64)
    y = np.asarray(y, dtype=float)
    n = arm.shape[0]
    k1 = np.asarray(mu_hat).shape[1] if mu_hat is not None else np.asarray(propensity).shape[-1]
    arms = tuple(arms) if arms is not None else ("control",) + tuple(
        f"arm{j}" for j in range(1, k1))
    if len(arms) != k1:
        raise InputError(f"arms {list(arms)} do not match {k1} columns")
    cpc = _costs(cost_per_contact, arms, "cost_per_contact")
    cpv = _costs(cost_per_conversion, arms, "cost_per_conversion")
    pop = float(n if population is None else population)
    mu = None if mu_hat is None else np.clip(np.asarray(mu_hat, dtype=float), 0.0, 1.0)
    cost_obs = cpc[arm] + cpv[arm] * y
    mu_cost = None if mu is None else cpc[None, :] + cpv[None, :] * mu

    def terms(pol: Any) -> tuple[np.ndarray, np.ndarray]:
        return (policy_terms(pol, arm, y, propensity, mu),
                policy_terms(pol, arm, cost_obs, propensity, mu_cost))

    pi = _policy_matrix(policy, n, k1)
    t_react, t_cost = terms(pi)
    nobody = np.zeros(n, dtype=np.int64)
    b_react, b_cost = terms(nobody)
    shares = pi.mean(0)

    base_terms: dict[str, tuple[np.ndarray, np.ndarray]] = {"treat nobody": (b_react, b_cost)}
    # best single arm within the budget and capacity
    best = None
    for j in range(1, k1):
        exp_cost = float(policy_terms(np.full(n, j), arm, cost_obs, propensity, mu_cost).mean())
        share = 1.0
        if budget_per_customer is not None and exp_cost > 0:
            share = min(share, budget_per_customer / exp_cost)
        if capacity_share and arms[j] in capacity_share:
            share = min(share, float(capacity_share[arms[j]]))
        pol = np.zeros((n, k1))
        pol[:, j], pol[:, 0] = share, 1 - share
        tr, tc = terms(pol)
        if best is None or tr.mean() > best[1][0].mean():
            best = (f"best single arm ({arms[j]}, {100 * share:.0f}% of customers)", (tr, tc))
    if best is not None:
        base_terms[best[0]] = best[1]
    base_terms["random allocation, same counts"] = terms(np.broadcast_to(shares, (n, k1)).copy())
    base_terms["what we did"] = (y, cost_obs)

    method = "doubly robust" if mu is not None else "inverse propensity"
    comps = []
    baselines = {}
    for name, (tr, tc) in base_terms.items():
        baselines[name] = {"reactivation": estimate_from_terms(tr, pop, alpha).to_dict(),
                           "cost": estimate_from_terms(tc, pop, alpha).to_dict()}
        comps.append(compare(t_react, tr, name=name, metric="reactivations", population=pop,
                             alpha=alpha))
    inc = estimate_from_terms(t_react - b_react, pop, alpha)
    cost = estimate_from_terms(t_cost, pop, alpha)
    extra_cost = estimate_from_terms(t_cost - b_cost, pop, alpha)
    cpir = extra_cost.estimate / inc.estimate if inc.estimate > 0 else None
    return PolicyEvaluation(method, arms, estimate_from_terms(t_react, pop, alpha), inc, cost,
                            cpir, baselines, tuple(comps),
                            {a: float(shares[j]) for j, a in enumerate(arms)})


# --------------------------------------------------------------------------------------------
# cross-fitting


OutcomeFitter = Callable[[Any, np.ndarray, np.ndarray], Callable[[Any], np.ndarray]]


@dataclass(frozen=True, eq=False)
class PolicyCrossFit:
    """Out-of-fold policy arms (column indices, 0 = control) and outcome predictions."""

    policy: np.ndarray
    mu_hat: np.ndarray
    folds: np.ndarray
    prices: tuple[dict, ...]
    evaluation: PolicyEvaluation | None


def _take(x: Any, idx: np.ndarray) -> Any:
    return x.iloc[idx] if hasattr(x, "iloc") else np.asarray(x)[idx]


def cross_fit_policy(features: Any, arm: Any, y: Any, propensity: Any, *,
                     fit_outcome: OutcomeFitter, policy: Any, folds: Any = 5,
                     population: float | None = None, seed: int = 0, evaluate: bool = True,
                     **evaluate_kwargs: Any) -> PolicyCrossFit:
    """Learn the policy on the other folds, apply it to each held-out fold, then evaluate.

    `fit_outcome(X_train, arm_train, y_train)` returns `predict(X) -> (m, k+1)` predictions of
    P(reactivate | x, arm) (control first); any learner plugs in here. `policy` is a
    `BudgetedPolicy` whose budget and capacities are for `population` customers (default: the
    experiment's size); they are scaled to each training fold. On the held-out fold the policy
    applies the learned prices to the predictions of the model fitted without that fold, and
    the doubly robust terms use those same out-of-fold predictions.
    """
    from upliftlab.uplift.crossfit import fold_splits, random_folds

    arm = np.asarray(arm, dtype=np.int64)
    y = np.asarray(y, dtype=float)
    n = arm.shape[0]
    folds = random_folds(n, int(folds), seed) if np.isscalar(folds) else np.asarray(folds)
    pop = float(n if population is None else population)
    pol_out = np.zeros(n, dtype=np.int64)
    mu_out: np.ndarray | None = None
    prices = []
    for f, train, test in fold_splits(folds, n):
        predict = fit_outcome(_take(features, train), arm[train], y[train])
        mu_tr = np.clip(np.asarray(predict(_take(features, train)), dtype=float), 0.0, 1.0)
        mu_te = np.clip(np.asarray(predict(_take(features, test)), dtype=float), 0.0, 1.0)
        if mu_out is None:
            mu_out = np.zeros((n, mu_te.shape[1]))
        learner = policy.scaled(train.size / pop)
        learner.fit(mu_tr[:, 0], mu_tr[:, 1:] - mu_tr[:, [0]])
        pol_out[test] = learner.predict(mu_te[:, 0], mu_te[:, 1:] - mu_te[:, [0]])
        mu_out[test] = mu_te
        prices.append({"fold": f, "lambda": learner.lambda_,
                       "mu": learner.mu_.tolist()})
    ev = None
    if evaluate:
        arms = evaluate_kwargs.pop("arms", None)
        if arms is None and getattr(policy, "arms", None) is not None:
            arms = ("control",) + tuple(policy.arms)
        ev = evaluate_policy(pol_out, arm, y, propensity, mu_out, arms=arms, population=pop,
                             **evaluate_kwargs)
    return PolicyCrossFit(pol_out, mu_out, folds, tuple(prices), ev)


def outcome_fitter(make_model: Callable[[], Any], arms: Sequence[str]) -> OutcomeFitter:
    """A `fit_outcome` for `cross_fit_policy` from any estimator with
    `fit(X, y, treatment_labels)` and `predict_outcomes(X)` (a frame with one column per arm,
    e.g. `upliftlab.uplift.UpliftModel`); `arms` are the labels of columns 0..k, control first.
    """
    labels = np.asarray(list(arms), dtype=object)

    def fit(X: Any, arm: np.ndarray, y: np.ndarray) -> Callable[[Any], np.ndarray]:
        model = make_model().fit(X, y, labels[arm])
        return lambda Z: np.asarray(model.predict_outcomes(Z)[list(arms)], dtype=float)

    return fit
