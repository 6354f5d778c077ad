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
