"""Coverage against the simulator's ground truth: over repeated randomised campaigns on one
simulated world, the 95% intervals of `analyze` cover each arm's true average effect (from the
world's per-customer truth) about 95% of the time, for reactivation and for revenue.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from upliftlab.analysis import analyze
from upliftlab.simulate import ARMS, simulate_world

REPS = 120


@pytest.fixture(scope="module")
def world():
    return simulate_world(12_000, seed=11)


def _campaign(world, rng: np.random.Generator, seed: int) -> pd.DataFrame:
    """One randomised campaign: every customer to an arm at random, outcomes from `respond`."""
    ids = world.customers["customer_id"].to_numpy()
    arms = rng.choice(np.array(ARMS), size=len(ids))
    assignment = pd.DataFrame({"customer_id": ids, "arm": arms})
    post = world.respond(assignment, seed=seed)
    per = post.groupby("customer_id")["amount"].agg(["size", "sum"])
    out = assignment.set_index("customer_id")
    out["reactivated"] = per["size"].reindex(out.index).notna().astype(int)
    out["revenue"] = per["sum"].reindex(out.index).fillna(0.0)
    return out.reset_index()


@pytest.mark.slow
def test_fixed_intervals_cover_the_true_effects(world):
    truth = world.truth.set_index("customer_id")
    rng = np.random.default_rng(2026)
    hits: dict[str, list[bool]] = {"reactivated": [], "revenue": []}
    for rep in range(REPS):
        data = _campaign(world, rng, seed=rep)
        res = analyze(data, arm="arm", control="control", metrics=["reactivated", "revenue"],
                      analysis="fixed", correction="none")
        for row in res.comparisons.itertuples():
            # the estimand: the average effect over the customers of this campaign (all arms)
            col = "p" if row.metric == "reactivated" else "revenue"
            true = float((truth[f"{col}_{row.arm}"] - truth[f"{col}_control"]).mean())
            hits[row.metric].append(row.ci_low <= true <= row.ci_high)
    for metric, h in hits.items():
        rate = float(np.mean(h))
        tolerance = 3 * math.sqrt(0.95 * 0.05 / len(h))
        # Neyman's variance is conservative for a population effect: allow a little over-coverage
        assert 0.95 - tolerance <= rate <= 0.95 + tolerance + 0.01, (metric, rate, len(h))


def test_weekly_looks_at_growing_exposure_keep_the_sequential_false_positive_rate(world):
    """The designed weekly report looks at the same customers every week while their outcomes
    accumulate (exposure grows; n does not). An A/A split of the simulated world's response,
    looked at weekly for eight weeks with the confidence sequence tuned to the assigned total,
    rejects at most alpha of the time, while fixed-horizon peeking exceeds it clearly."""
    from scipy import stats as st

    from upliftlab.stats import sequential

    alpha, weeks, reps = 0.05, 8, 1000
    ids = world.customers["customer_id"].to_numpy()
    post = world.respond(pd.DataFrame({"customer_id": ids, "arm": "control"}), seed=1)
    first = post.groupby("customer_id")["ts"].min()
    day = (first - pd.Timestamp(world.params["campaign_date"])).dt.days
    day = day.reindex(ids).to_numpy(dtype=float)                      # NaN: never reactivated
    y = np.stack([day < 7 * t for t in range(1, weeks + 1)]).astype(float)  # weeks x n
    split = np.random.default_rng(7).random((reps, len(ids))) < 0.5      # reps x n, A/A arms
    n_a = split.sum(axis=1)[:, None]
    n_b = len(ids) - n_a
    sum_a = split.astype(float) @ y.T                                   # reps x weeks
    sum_b = y.sum(axis=1)[None, :] - sum_a
    p_a, p_b = sum_a / n_a, sum_b / n_b
    se = np.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    d = p_a - p_b
    n = len(ids)
    p_seq = sequential.p_value(d, se, np.full_like(d, n), alpha, n_star=n)
    p_fix = 2 * st.norm.sf(np.abs(d) / se)
    fpr_seq = np.mean((p_seq < alpha).any(axis=1))
    fpr_peek = np.mean((p_fix < alpha).any(axis=1))
    tolerance = 3 * math.sqrt(alpha * (1 - alpha) / reps)
    assert fpr_seq <= alpha + tolerance, fpr_seq
    assert fpr_peek > alpha + tolerance, fpr_peek
