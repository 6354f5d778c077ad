"""The simulated world runs on: twelve months of purchases after a campaign, in which a treatment
changes not only whether a dormant customer comes back but how long they then stay active,
with the exact truth of every long-run figure.

The story, per assigned customer i under arm a (parameters in `LongRunParams`):

1. **Coming back.** Naturally the customer returns after T_nat ~ Exp(λ_i), λ_i = rate_now/30
   per day, which gives the world's `p_control` for the outcome window. A treatment that helps
   (p_a > p_c) *causes* a return with probability c_a (after Exp(early_days) days); one that
   harms puts the customer off with probability h_a: their natural clock starts only after the
   outcome window (T_nat = W + Exp(λ_i)). c_a and h_a are set
   so that P(return within the outcome window) equals the world's p_a: the first window agrees
   with `World.respond` in distribution. T1 = min(T_nat, T_caused).
2. **Staying.** A returning customer is active for D ~ Exp(mean `active_days[a]`) days and
   orders at T1 and then at `active_rate` per day while active; after D they are silent for
   the rest of the horizon. The arm sets the mean active life: an advisor's customers stay
   longer than a coupon's. D does not depend on the customer's traits, so the time until the
   customer is dormant again (no purchase for `dormant_after` days) has one law per arm.
3. **Orders.** Amounts as in the world: lognormal around the customer's level, a natural
   discount with the customer's probability, a coupon discounting the first order back.

Truth (`long_run_truth`): per customer and arm the exact survival of T1, hence reactivation by
any day, the RMST of T1, the expected revenue and orders up to any day (closed forms in
exponentials); the RMST of the time until dormant again by Monte Carlo of its one law per arm
(`redormancy_rmst`, 400,000 draws: its error is far below any interval's width).
Draws are counter-based hashes of (customer, seed), as in `World.respond`: a customer's path
does not depend on who else is assigned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from upliftlab.errors import InputError
from upliftlab.simdraws import u01
from upliftlab.simulate import ARMS, CATEGORIES, World, world_params
from upliftlab.sources import parse_date


@dataclass(frozen=True)
class LongRunParams:
    """The long run's numbers (see the module docstring)."""

    horizon_days: int = 365
    active_days: dict[str, float] = field(default_factory=lambda: {
        "control": 90.0, "coupon": 60.0, "content": 90.0, "advisor": 180.0})
    """Mean active life after coming back, per arm (holdout customers behave as control)."""
    active_rate: float = 1 / 20
    """Orders per day while active (after the first one at the return)."""
    dormant_after: int = 90
    """Days without a purchase after which a customer counts as dormant again."""


@dataclass(frozen=True)
class _Drivers:
    """Per customer: natural daily rate, caused share, put-off share, mean active life, and
    the outcome window (a put-off customer's natural return starts only after it)."""

    lam: np.ndarray
    caused: np.ndarray
    put_off: np.ndarray
    mean_active: np.ndarray
    window: float


def _drivers(world: World, rows: np.ndarray, arm: np.ndarray, lp: LongRunParams) -> _Drivers:
    wp = world_params(world)
    W = float(world.params["outcome_window_days"])
    t = world.truth
    pmat = t[[f"p_{a}" for a in ARMS]].to_numpy()[rows]
    pc = pmat[:, 0]
    pa = pmat[np.arange(len(rows)), arm]
    lam = -np.log1p(-pc) / W  # so that P(T_nat < W) = p_control exactly
    f_early = 1 - math.exp(-W / wp.early_days)
    caused = np.clip(np.maximum(pa - pc, 0) / ((1 - pc) * f_early), 0, 1)
    put_off = np.maximum(pc - pa, 0) / pc
    means = np.array([lp.active_days.get(a, lp.active_days["control"]) for a in ARMS])
    return _Drivers(lam, caused, put_off, means[arm], W)


def _arm_codes(values: Any) -> np.ndarray:
    labels = pd.Series(values).astype(str).replace({"holdout": "control"})
    unknown = sorted(set(labels) - set(ARMS))
    if unknown:
        raise InputError(f"arm {unknown[0]!r} is not an arm of the simulated world "
                         f"({', '.join(ARMS)}; holdout responds as control)")
    return labels.map({a: i for i, a in enumerate(ARMS)}).to_numpy(np.int64)


def respond_long_run(world: World, assignment: pd.DataFrame, *, start: date | str | None = None,
                     horizon_days: int | None = None, seed: int = 0,
                     params: LongRunParams | None = None, customer_col: str = "customer_id",
                     arm_col: str = "arm") -> pd.DataFrame:
    """Every purchase of the assigned customers in [start, start + horizon) under their arms.

    `assignment`: customer -> arm (arms of the world, or holdout = untreated). Same columns as
    the world's transactions, sorted by customer_id, ts. Deterministic given the world's seed
    and `seed`; a customer's rows depend only on their own arm.
    """
    from scipy.special import ndtri
    from scipy.stats import poisson

    lp = params or LongRunParams()
    H = int(horizon_days if horizon_days is not None else lp.horizon_days)
    if H < 1:
        raise InputError(f"horizon days must be at least 1, got {H}")
    for col in (customer_col, arm_col):
        if col not in assignment.columns:
            raise InputError(f"assignment has no column {col!r}")
    t0 = parse_date(start if start is not None else world.params["campaign_date"], "start")
    cid = pd.to_numeric(assignment[customer_col], errors="raise").to_numpy(np.int64)
    n_world = int(world.params["n_customers"])
    if len(cid) and (cid.min() < 1 or cid.max() > n_world):
        raise InputError(f"customer ids must be the world's ids 1..{n_world}")
    arm = _arm_codes(assignment[arm_col])
    order = np.argsort(cid, kind="stable")
    cid, arm = cid[order], arm[order]
    rows = cid - 1
    wp = world_params(world)
    dr = _drivers(world, rows, arm, lp)
    salt = np.random.SeedSequence([int(world.params["seed"]), int(seed), 0x10E6]
                                  ).generate_state(1, np.uint64)[0]

    with np.errstate(divide="ignore"):
        t_nat = (-np.log1p(-u01(cid, salt, 2)) / dr.lam
                 + np.where(u01(cid, salt, 1) < dr.put_off, dr.window, 0.0))
        t_cause = np.where(u01(cid, salt, 3) < dr.caused,
                           -wp.early_days * np.log1p(-u01(cid, salt, 4)), np.inf)
    t1 = np.minimum(t_nat, t_cause)
    back = t1 < H
    cid, arm, rows, t1 = cid[back], arm[back], rows[back], t1[back]
    life = -dr.mean_active[back] * np.log1p(-u01(cid, salt, 5))
    span = np.minimum(life, H - t1)
    n_more = poisson.ppf(u01(cid, salt, 6), lp.active_rate * span).astype(np.int64)
    n_orders = 1 + n_more

    idx = np.repeat(np.arange(len(cid)), n_orders)
    j = np.arange(len(idx)) - np.repeat(np.cumsum(n_orders) - n_orders, n_orders)
    with np.errstate(over="ignore"):
        okey = (cid[idx].astype(np.uint64) * np.uint64(1 << 20)) + j.astype(np.uint64)
    day = np.where(j == 0, t1[idx], t1[idx] + u01(okey, salt, 7) * span[idx])
    sec = np.minimum(np.floor(day * 86_400).astype(np.int64), H * 86_400 - 1)
    value = world.truth["value"].to_numpy()[rows][idx]
    ps = world.truth["price_sensitivity"].to_numpy()[rows][idx]
    coupon_first = (arm[idx] == ARMS.index("coupon")) & (j == 0)
    disc = coupon_first | (u01(okey, salt, 8) < wp.discount_base + wp.discount_slope * ps)
    factor = np.where(coupon_first, 1 - wp.coupon_discount,
                      np.where(disc, 1 - wp.discount_depth, 1.0))
    z = ndtri(np.clip(u01(okey, salt, 9), 1e-12, 1 - 1e-12))
    amount = value * np.exp(wp.amount_sigma * z - wp.amount_sigma ** 2 / 2) * factor
    amount = np.maximum(np.round(amount, 2), 0.01)
    cat = np.minimum((u01(okey, salt, 10) * len(CATEGORIES)).astype(np.int8),
                     len(CATEGORIES) - 1)

    cust = cid[idx]
    srt = np.lexsort((sec, cust))
    return pd.DataFrame({
        "customer_id": cust[srt],
        "ts": np.datetime64(t0, "s") + sec[srt].astype("timedelta64[s]"),
        "amount": amount[srt],
        "discount_used": disc[srt],
        "category": pd.Categorical.from_codes(cat[srt], CATEGORIES),
    })


# ---------------------------------------------------------------------------------------------
# truth
# ---------------------------------------------------------------------------------------------

def _integral(beta: np.ndarray, lo: Any, hi: Any) -> np.ndarray:
    """∫_lo^hi e^{−βu} du (0 when hi ≤ lo), stable for β near 0 and for negative β."""
    beta = np.asarray(beta, dtype=float)
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    width = np.maximum(hi - lo, 0.0)
    small = np.abs(beta) < 1e-12
    safe = np.where(small, 1.0, beta)
    return np.exp(-beta * lo) * np.where(small, width, -np.expm1(-safe * width) / safe)


def _terms(dr: _Drivers, mu: float) -> list[tuple[np.ndarray, np.ndarray, Any, Any]]:
    """S(u) of T1 = min(T_nat, T_caused) as Σ w·e^{−βu} on [lo, hi), per customer:
    S = [(1−c) + c·e^{−u/μ}]·[(1−h)·e^{−λu} + h·S_off(u)], S_off = 1 before the window W and
    e^{−λ(u−W)} after it."""
    c, h, lam, W = dr.caused, dr.put_off, dr.lam, dr.window
    inf, e = np.inf, np.exp(lam * W)
    b_early = np.full_like(lam, 1 / mu)
    return [((1 - c) * (1 - h), lam, 0.0, inf), (c * (1 - h), lam + b_early, 0.0, inf),
            ((1 - c) * h, np.zeros_like(lam), 0.0, W), (c * h, b_early, 0.0, W),
            ((1 - c) * h * e, lam, W, inf), (c * h * e, lam + b_early, W, inf)]


def _first_order_amount(world: World, rows: np.ndarray, arm: np.ndarray) -> tuple[np.ndarray, ...]:
    wp = world_params(world)
    value = world.truth["value"].to_numpy()[rows]
    q = wp.discount_base + wp.discount_slope * world.truth["price_sensitivity"].to_numpy()[rows]
    natural = value * (1 - wp.discount_depth * q)
    first = np.where(arm == ARMS.index("coupon"), value * (1 - wp.coupon_discount), natural)
    return first, natural


def customer_truth(world: World, customer_ids: Any, arm: str, days: float,
                   params: LongRunParams | None = None) -> pd.DataFrame:
    """Per customer under `arm` (everyone), exactly: P(back by `days`), E[min(T1, days)] (the
    RMST of the time to come back), E[orders] and E[revenue] in [0, days)."""
    lp = params or LongRunParams()
    cid = np.asarray(customer_ids, dtype=np.int64)
    rows = cid - 1
    codes = np.full(len(cid), _arm_codes([arm])[0])
    dr = _drivers(world, rows, codes, lp)
    mu = world_params(world).early_days
    terms = _terms(dr, mu)
    surv = sum(np.where((lo <= days) & (days < hi), w * np.exp(-b * days), 0.0)
               for w, b, lo, hi in terms)
    rmst_t1 = sum(w * _integral(b, lo, np.minimum(hi, days)) for w, b, lo, hi in terms)
    m = dr.mean_active
    # E[min(D, days − T1); T1 < days] = ∫ f(u)·m·(1 − e^{−(days−u)/m}) du over [0, days),
    # f = −S' = Σ w·β·e^{−βu} on each piece
    span = m * ((1 - surv) - np.exp(-days / m) * sum(
        w * b * _integral(b - 1 / m, lo, np.minimum(hi, days)) for w, b, lo, hi in terms))
    first, natural = _first_order_amount(world, rows, codes)
    orders = (1 - surv) + lp.active_rate * span
    revenue = (1 - surv) * first + lp.active_rate * span * natural
    return pd.DataFrame({"customer_id": cid, "back": 1 - surv, "rmst_back": rmst_t1,
                         "orders": orders, "revenue": revenue})


def redormancy_rmst(arm: str, tau: float, params: LongRunParams | None = None,
                    draws: int = 400_000, seed: int = 12345) -> float:
    """E[min(R, τ)] of R, the days from coming back until dormant again under `arm`
    (Monte Carlo of its one law per arm: Poisson orders during an Exp active life; dormant
    `dormant_after` days after the last order before the first such gap)."""
    lp = params or LongRunParams()
    rng = np.random.default_rng([seed, ARMS.index(arm)])
    g = float(lp.dormant_after)
    life = rng.exponential(lp.active_days.get(arm, lp.active_days["control"]), draws)
    last = np.zeros(draws)
    r = np.full(draws, np.nan)
    live = np.arange(draws)
    while live.size:
        gap = rng.exponential(1 / lp.active_rate, live.size)
        nxt = last[live] + gap
        done = (nxt >= life[live]) | (gap >= g)
        r[live[done]] = last[live[done]] + g
        last[live[~done]] = nxt[~done]
        live = live[~done]
    return float(np.minimum(r, tau).mean())


@dataclass(frozen=True)
class ArmTruth:
    """Means over the given customers under one arm, up to `days`."""

    arm: str
    back: float
    rmst_back: float
    orders: float
    revenue: float


def long_run_truth(world: World, customer_ids: Any, days: float,
                   params: LongRunParams | None = None) -> dict[str, ArmTruth]:
    """The exact mean long-run outcomes of `customer_ids` under every arm, up to `days`."""
    out = {}
    for arm in ARMS:
        t = customer_truth(world, customer_ids, arm, days, params)
        out[arm] = ArmTruth(arm, float(t["back"].mean()), float(t["rmst_back"].mean()),
                            float(t["orders"].mean()), float(t["revenue"].mean()))
    return out


def programme_truth(world: World, assignment: pd.DataFrame, days: float,
                    params: LongRunParams | None = None) -> dict[str, float]:
    """What the programme truly added by `days` after the campaign: Σ over the treated
    (everyone not in the holdout) of E[outcome | their arm] − E[outcome | untreated], for
    reactivations (back at least once) and revenue."""
    cid = pd.to_numeric(assignment["customer_id"]).to_numpy(np.int64)
    arms = assignment["arm"].astype(str).to_numpy()
    rest = arms != "holdout"
    inc_back = inc_rev = 0.0
    base = customer_truth(world, cid[rest], "control", days, params)
    for arm in sorted(set(arms[rest])):
        sel = arms[rest] == arm
        t = customer_truth(world, cid[rest][sel], "control" if arm == "control" else arm, days,
                           params)
        inc_back += float((t["back"].to_numpy() - base["back"].to_numpy()[sel]).sum())
        inc_rev += float((t["revenue"].to_numpy() - base["revenue"].to_numpy()[sel]).sum())
    return {"incremental_reactivations": inc_back, "incremental_revenue": inc_rev}


__all__ = ["ArmTruth", "LongRunParams", "customer_truth", "long_run_truth", "programme_truth",
           "redormancy_rmst", "respond_long_run"]
