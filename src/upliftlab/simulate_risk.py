"""The simulator's truth for churn risk: each customer's true probability of going dormant (no
purchase) within H days of a date, untreated and, at the campaign date, under each treatment.

Before the campaign date the truth comes from the customer's latent rate path (orders are a
Poisson process at rate/30 per day, so P(no order in [s, s+H)) = exp(-integral of the rate));
the path is re-drawn from the world's own per-block random streams, exactly as `simulate._block`
draws it (a test checks that the re-drawn path ends at the world's `rate_now`). At the campaign
date, with H equal to the outcome window, it is 1 - p_<arm> of the world's truth, the
probability that `World.respond` gives the customer no purchase under that arm: a preventive
touch lowers it where its effect on the logit is positive.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from upliftlab.errors import InputError
from upliftlab.simdraws import Streams
from upliftlab.simulate import (ARMS, BLOCK, World, WorldParams, rate_drivers, rate_path_months,
                                world_params)
from upliftlab.sources import parse_date


def true_dormancy(world: World, as_of: date | str, horizon: int) -> pd.DataFrame:
    """customer_id and p_dormant_<arm>: P(no purchase in [as_of, as_of + horizon)).

    Before the campaign date (as_of + horizon <= campaign date): untreated only
    (``p_dormant_control``). At the campaign date with horizon = the outcome window: every arm.
    """
    d = parse_date(as_of, "as-of date")
    campaign = parse_date(world.params["campaign_date"], "campaign date")
    window = int(world.params["outcome_window_days"])
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon <= 0:
        raise InputError(f"horizon must be a whole number of days > 0, got {horizon!r}")
    ids = world.truth["customer_id"].to_numpy()
    if d == campaign:
        if horizon != window:
            raise InputError(f"horizon {horizon}: at the campaign date the truth covers the "
                             f"outcome window of {window} days")
        return pd.DataFrame({"customer_id": ids, **{
            f"p_dormant_{a}": 1.0 - world.truth[f"p_{a}"].to_numpy() for a in ARMS}})
    if d + timedelta(days=horizon) > campaign:
        raise InputError(f"as-of {d} + horizon {horizon} days runs past the campaign date "
                         f"{campaign}, beyond the simulated history")
    H = int(world.params["history_days"])
    start = campaign - timedelta(days=H)
    s0 = (d - start).days
    if s0 < 0:
        raise InputError(f"as-of {d} is before the simulated history (from {start})")
    wp = world_params(world)
    n, seed = int(world.params["n_customers"]), int(world.params["seed"])
    out = np.empty(n)
    for b in range(-(-n // BLOCK)):
        m = min(BLOCK, n - b * BLOCK)
        rate, lo, hi = rate_path(wp, seed, b, m, H)
        # days of each month's exposed part that fall in [s0, s0 + horizon)
        overlap = np.clip(np.minimum(hi, s0 + horizon) - np.maximum(lo, s0), 0, None)
        out[b * BLOCK:b * BLOCK + m] = np.exp(-(rate * overlap).sum(axis=1) / wp.period_days)
    return pd.DataFrame({"customer_id": ids, "p_dormant_control": out})


def rate_path(wp: WorldParams, seed: int, block: int, m: int, H: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The monthly purchase rates of block `block` (m x K) and each month's exposed days
    [lo, hi), re-drawn from the same streams and in the same way as `simulate._block`."""
    rs = Streams(seed, block)
    L = wp.period_days
    K = -(-H // L)
    _, act, log_r0, r0, hazard = rate_drivers(wp, rs, m, H)
    rate, k = rate_path_months(wp, rs, m, K, act // L, log_r0, r0, hazard)
    lo = np.maximum(k * L, act[:, None])
    hi = np.minimum((k + 1) * L, H)
    hi = np.broadcast_to(hi, lo.shape)
    return rate.astype(np.float64), lo.astype(np.float64), hi.astype(np.float64)


__all__ = ["rate_path", "true_dormancy"]
