"""A randomised experiment on the simulated world, with its ground truth, for tests, benchmarks
and the demo: dormant cohort features, a random arm per customer, outcomes from `World.respond`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

ARMS = ("control", "coupon", "content", "advisor")
CUSTOMER_FEATURES = ("channel", "region", "age_band", "email_opens_90d", "site_visits_90d")
COHORT_FEATURES = ("days_since_last", "tier", "orders_total", "orders_180d", "orders_365d",
                   "orders_730d", "revenue_total", "revenue_365d", "avg_order_value",
                   "tenure_days", "mean_gap_days", "overdue_ratio", "trend", "discount_share")


@dataclass(frozen=True)
class SimulatedExperiment:
    """Features X, arm labels, outcomes (reactivated 0/1, revenue) and the true per-arm values."""

    X: pd.DataFrame
    treatment: np.ndarray
    reactivated: np.ndarray
    revenue: np.ndarray
    true_uplift: pd.DataFrame    # p_arm - p_control per treatment arm, X's index
    true_p: pd.DataFrame         # p_arm for every arm (control first)
    customer_id: np.ndarray


def simulated_experiment(n_customers: int, seed: int = 0, weights: tuple[float, ...] | None = None
                         ) -> SimulatedExperiment:
    """Simulate `n_customers`, take the dormant cohort at the campaign date, randomise it over
    ARMS (equal weights unless given), and observe 60-day outcomes from the world's response."""
    from upliftlab.cohort import build_cohort
    from upliftlab.simulate import simulate_world

    world = simulate_world(n_customers, seed=seed)
    as_of = world.params["campaign_date"]
    cohort = build_cohort(world.transactions, as_of)
    cust = world.customers.set_index("customer_id").loc[cohort["customer_id"]]
    X = cohort[list(COHORT_FEATURES)].copy()
    for c in CUSTOMER_FEATURES:
        X[c] = cust[c].to_numpy()
    X.index = pd.RangeIndex(len(X))
    rng = np.random.default_rng(seed + 1)
    w = np.full(len(ARMS), 1 / len(ARMS)) if weights is None else np.asarray(weights) / np.sum(weights)
    arm = np.asarray(ARMS, dtype=object)[rng.choice(len(ARMS), size=len(X), p=w)]
    cid = cohort["customer_id"].to_numpy()
    post = world.respond(pd.DataFrame({"customer_id": cid, "arm": arm}), seed=seed)
    rev = post.groupby("customer_id")["amount"].sum()
    revenue = rev.reindex(cid, fill_value=0.0).to_numpy(dtype=float)
    reactivated = pd.Index(cid).isin(rev.index).astype(float)
    truth = world.truth.set_index("customer_id").loc[cid]
    true_p = pd.DataFrame({a: truth[f"p_{a}"].to_numpy() for a in ARMS})
    true_uplift = pd.DataFrame({a: true_p[a] - true_p["control"] for a in ARMS[1:]})
    return SimulatedExperiment(X, arm, reactivated, revenue, true_uplift, true_p, cid)


def policy_value(uplift: pd.DataFrame, true_uplift: pd.DataFrame) -> tuple[float, float]:
    """True value of "best predicted arm if its uplift is positive" and of the oracle policy.

    Value = sum over customers of the true uplift of the arm chosen (0 for no treatment); the
    oracle chooses the argmax of the true uplift when positive.
    """
    arms = list(true_uplift.columns)
    pred = uplift[arms].to_numpy()
    true = true_uplift.to_numpy()
    best = pred.argmax(axis=1)
    chosen = np.where(pred.max(axis=1) > 0, true[np.arange(len(true)), best], 0.0)
    oracle = np.maximum(true.max(axis=1), 0.0)
    return float(chosen.sum()), float(oracle.sum())
