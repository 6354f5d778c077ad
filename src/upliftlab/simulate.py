"""A seeded customer world with known per-customer uplift: CRM attributes, two years of
transactions before a campaign date, the ground truth under every arm, and its response to any
assignment.

The generative story (all parameters live in `WorldParams`):

1. **Customers.** Each customer has a channel (web/app/store), region and age band, and signs up
   either before the history window (tenure of years) or during it. From sign-up (or the window
   start) they buy.
2. **Purchase rate.** A latent base rate (lognormal, orders per 30-day "month") drifts as a
   monthly log-rate random walk with negative drift. A churn hazard (Beta per customer) ends the
   active life: from the churn month on, the rate is a small residual that decays further, so
   dormancy arises naturally and a long-dormant customer is less likely to come back than a
   recently lapsed one. Orders per customer-month are Poisson(rate × exposure), placed
   uniformly within the month.
3. **Orders.** A customer's order-value level (`value`, lognormal) sets the mean amount; each
   order is lognormal around it. Price sensitivity (Beta) sets how often an order uses a
   discount (`discount_used`, amount lowered by `discount_depth`). Category preferences are a
   Dirichlet draw per customer.
4. **Engagement.** The latent `engagement` in (0, 1) rises with the customer's activity over the
   last three months plus a personal digital affinity (app users higher); the observable
   `email_opens_90d` and `site_visits_90d` are Poisson counts driven by it (and visits also by
   recent activity).
5. **Natural reactivation.** `p_control` = P(>= 1 purchase in the outcome window) of a Poisson
   process at the customer's rate at the campaign date: a few percent for the recently lapsed,
   about one to two percent for the long dormant, high for active customers.
6. **Treatments** act on the logit of that probability:
   coupon  = coupon_0  + coupon_ps  · price_sensitivity          (harms the price-insensitive),
   content = content_0 + content_eng · engagement                (annoys the disengaged),
   advisor = advisor_0 + advisor_value · z(value) + advisor_long · L(dormancy)
   where z(value) is the standardised log order value and L = clip((days since the last
   purchase - 180) / 365, -0.5, 1.5) (0 without any purchase): an advisor's call wins back
   high-value long-dormant customers and annoys low-value recently lapsed ones. Within the
   dormant (90+ days) the average effects are about +1.1 (coupon), +0.6 (content) and +1.0
   (advisor) points on a natural rate near 3%, each arm harms 25-40% of them, and the best arm
   differs across customers (a per-customer choice beats every single arm).
7. **Revenue.** A reactivated customer places 1 + Geometric orders (mean `orders`, more after an
   advisor's call); a coupon discounts the first order by `coupon_discount`. The truth's
   `revenue_<arm>` is the exact expectation of the window's revenue under that arm.

Randomness is drawn per block of `BLOCK` customers, and within a block from a separate stream per
variable (`SeedSequence(seed, spawn_key=(block, variable))`): the output does not depend on how
the work is chunked, and a world of N customers is the first N customers of a larger world with
the same seed. `World.respond` draws from counter-based hashes of (customer, order, seeds), so a
customer's response does not depend on who else is in the assignment or on row order, and the
arms share random numbers (a customer who reactivates under control also does under any arm
with a higher probability).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from upliftlab._files import staged_dir, staged_file
from upliftlab.errors import InputError
from upliftlab.simdraws import Streams, expit, mix, u01
from upliftlab.simtouch import (Touches, customer_reach, draw_touches, reach_matrix,
                                touch_frame)
from upliftlab.sources import parse_date

ARMS = ("control", "coupon", "content", "advisor")
CHANNELS = ("web", "app", "store")
REGIONS = ("north", "south", "east", "west")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
CATEGORIES = ("apparel", "home", "beauty", "electronics", "grocery")
TIERS = (("short", 90, 180), ("mid", 180, 365), ("long", 365, None))
VERSION = "1"
BLOCK = 32_768  # customers per seeding block; fixed, so output never depends on chunking
FILES = ("customers.parquet", "transactions.parquet", "truth.parquet", "world.json")
_DAY = 86_400


@dataclass(frozen=True)
class WorldParams:
    """Every number of the generative model, in one place (see the module docstring)."""

    period_days: int = 30
    """Length of a 'month' of the rate process, in days; rates are orders per month."""
    pre_window_share: float = 0.5
    """Share of customers who signed up before the history window."""
    pre_window_mean_days: float = 700.0
    """Mean extra tenure (exponential) of those who signed up before the window."""
    base_rate_median: float = 2.4
    """Median base purchase rate, orders per month."""
    base_rate_sigma: float = 0.4
    """Log-sd of the base rate across customers."""
    drift: float = -0.01
    """Monthly drift of the log rate (customers slowly buy less)."""
    walk_sd: float = 0.06
    """Monthly sd of the log-rate random walk."""
    churn_a: float = 2.0
    """Beta(a, b) of the monthly churn hazard per customer."""
    churn_b: float = 22.0
    dead_factor: float = 0.01
    """Rate after churn, as a fraction of the base rate..."""
    dead_decay: float = 0.06
    """...decaying by this much per month dormant (log scale)."""
    value_median: float = 45.0
    """Median order-value level (the truth's `value`), currency units."""
    value_sigma: float = 0.5
    """Log-sd of the order-value level across customers."""
    amount_sigma: float = 0.45
    """Log-sd of single order amounts around the customer's level."""
    ps_a: float = 2.0
    """Beta(a, b) of price sensitivity."""
    ps_b: float = 5.0
    discount_base: float = 0.03
    """P(order uses a discount) = discount_base + discount_slope * price_sensitivity."""
    discount_slope: float = 0.6
    discount_depth: float = 0.15
    """A (natural) discount lowers the order amount by this share."""
    category_alpha: tuple[float, ...] = (1.0, 0.7, 0.6, 0.3, 0.9)
    """Dirichlet concentration of category preferences (order of CATEGORIES)."""
    eng_intercept: float = -0.3
    """engagement = expit(eng_intercept + eng_slope*log(recent rate + 0.05) + eng_sd*Z + app)."""
    eng_slope: float = 0.45
    eng_sd: float = 0.9
    eng_app: float = 0.4
    opens_per_engagement: float = 14.0
    """email_opens_90d ~ Poisson(0.5 + opens_per_engagement * engagement)."""
    visits_per_engagement: float = 8.0
    """site_visits_90d ~ Poisson(0.5 + visits_per_engagement * engagement + 3 * recent rate)."""
    extra_orders_per_rate: float = 0.35
    """Expected extra orders after reactivating = min(this * base rate, extra_orders_max)."""
    extra_orders_max: float = 2.0
    coupon_0: float = -0.45
    """Coupon effect on the logit: coupon_0 + coupon_ps * price_sensitivity."""
    coupon_ps: float = 2.6
    coupon_discount: float = 0.2
    """A coupon discounts the first order after the campaign by this share."""
    content_0: float = -0.35
    """Content effect on the logit: content_0 + content_eng * engagement."""
    content_eng: float = 2.2
    advisor_0: float = -0.05
    """Advisor effect: advisor_0 + advisor_value * z(value) + advisor_long * L(days dormant)."""
    advisor_value: float = 0.45
    advisor_long: float = 0.55
    advisor_extra_orders: float = 0.2
    """Extra expected orders of a customer reactivated by an advisor's call."""
    early_days: float = 6.0
    """Mean day (exponential) of first orders caused by a treatment; natural ones are uniform."""


@dataclass(frozen=True, eq=False)
class World:
    """A simulated customer world: its tables, its ground truth and its parameters.

    `customers`: customer_id (1..N), signup_date, channel, region, age_band, email_opens_90d,
    site_visits_90d (the 90 days before the campaign date). `transactions`: customer_id, ts,
    amount, discount_used, category, sorted by customer_id, ts, all before the campaign date.
    `truth`, one row per customer: p_<arm> (P(>= 1 purchase in the outcome window) under each
    arm), revenue_<arm> (expected window revenue), the latent drivers price_sensitivity,
    engagement and value (mean order value), orders (expected orders once reactivated, without
    an advisor), recency_days (fractional days from the last purchase to the campaign date, NaN
    if none) and rate_now (latent orders per 30 days at the campaign date). Low-cardinality
    strings are pandas categoricals (string dictionaries in Parquet).
    """

    customers: pd.DataFrame
    transactions: pd.DataFrame
    truth: pd.DataFrame
    params: dict = field(default_factory=dict)

    # -- files ---------------------------------------------------------------------------------
    def write(self, out_dir: str | os.PathLike, *, force: bool = False) -> None:
        """Write customers/transactions/truth Parquet and world.json into `out_dir`, atomically.

        The files go to a temporary directory beside `out_dir`, which then replaces it. A
        non-empty `out_dir` that is not a previous world is refused unless `force`.
        """
        out = Path(out_dir)
        check_world_target(out, force)
        with staged_dir(out, owner="simulate", legacy=WORLD_FILES, force=force) as tmp:
            _write_parquet(_customers_arrow(self.customers), tmp / "customers.parquet")
            _write_parquet(_transactions_arrow(self.transactions), tmp / "transactions.parquet")
            _write_parquet(_plain_arrow(self.truth), tmp / "truth.parquet")
            meta = json.dumps(self.params, indent=2, sort_keys=True)
            (tmp / "world.json").write_text(meta + "\n")

    # -- truth ---------------------------------------------------------------------------------
    def true_effects(self, customer_ids: Any = None) -> pd.DataFrame:
        """Mean true reactivation probability and revenue per arm, and their effect vs control.

        Over all customers, or over `customer_ids` (e.g. the dormant cohort). One row per arm:
        `arm, n, p, revenue, effect_p, effect_revenue`.
        """
        truth = self.truth if customer_ids is None else self.truth.iloc[self._rows(customer_ids)]
        rows = []
        for arm in ARMS:
            p = float(truth[f"p_{arm}"].mean())
            rev = float(truth[f"revenue_{arm}"].mean())
            rows.append({"arm": arm, "n": len(truth), "p": p, "revenue": rev})
        out = pd.DataFrame(rows)
        out["effect_p"] = out["p"] - out.loc[0, "p"]
        out["effect_revenue"] = out["revenue"] - out.loc[0, "revenue"]
        return out

    def summary(self) -> dict:
        """Counts, share of customers per dormancy tier, and true effects within the dormant."""
        rec = self.truth["recency_days"].to_numpy()
        n = len(rec)
        tiers = {}
        for name, lo, hi in TIERS:
            m = (rec >= lo) if hi is None else ((rec >= lo) & (rec < hi))
            tiers[name] = float(np.mean(m)) if n else 0.0
        dormant = self.truth["customer_id"].to_numpy()[rec >= TIERS[0][1]]
        eff = self.true_effects(dormant) if len(dormant) else None
        return {
            "customers": n,
            "transactions": len(self.transactions),
            "never_purchased": float(np.mean(np.isnan(rec))) if n else 0.0,
            "tiers": tiers,
            "dormant": int(len(dormant)),
            "window_days": int(self.params.get("outcome_window_days", 0)),
            "dormant_effects": None if eff is None else eff.to_dict(orient="records"),
            "dormant_reached": (None if eff is None else
                                self.true_complier_effects(dormant).to_dict(orient="records")),
        }

    # -- response ------------------------------------------------------------------------------
    def respond(self, assignment: pd.DataFrame, *, start: date | str | None = None,
                seed: int | None = None, customer_col: str = "customer_id",
                arm_col: str = "arm") -> pd.DataFrame:
        """The post-campaign transactions of the assigned customers under their arms.

        For each row of `assignment` (customer -> arm, arms any subset of ARMS): reactivation ~
        Bernoulli(p_arm); if reactivated, 1 + Geometric further orders in [start, start + window),
        the first one early when the treatment caused it; amounts around the customer's level, a
        coupon discounting the first order. Customers not in the assignment get nothing. Same
        schema as `transactions`, sorted by customer_id, ts. Deterministic given the world's seed
        and `seed`; a customer's rows depend only on their own arm.
        """
        cid, arm = self._validate_assignment(assignment, customer_col, arm_col)
        t0 = parse_date(start if start is not None else self.params["campaign_date"], "start")
        return _respond(self, cid, arm, t0, 0 if seed is None else int(seed))

    def respond_with_touches(self, assignment: pd.DataFrame, *, start: date | str | None = None,
                             seed: int | None = None, customer_col: str = "customer_id",
                             arm_col: str = "arm") -> tuple[pd.DataFrame, pd.DataFrame]:
        """`respond`'s transactions (the same rows) and the campaign's touch log.

        The log has one touch per treated customer (see `upliftlab.simtouch`): customer_id,
        arm, channel (coupon: sms; content: push with the app, else email; advisor: call),
        sent_at, delivered_at, opened_at, clicked_at, redeemed_at (NaT when the step did not
        happen) and cost. Treatments act only through delivery.
        """
        cid, arm = self._validate_assignment(assignment, customer_col, arm_col)
        t0 = parse_date(start if start is not None else self.params["campaign_date"], "start")
        return _respond(self, cid, arm, t0, 0 if seed is None else int(seed), touches=True)

    def true_complier_effects(self, customer_ids: Any = None) -> pd.DataFrame:
        """Per treatment arm: mean P(delivered) (`reach`), the intention-to-treat effect on
        reactivation (`itt`) and the effect on the customers the message reaches (`cace`),
        over all customers or over `customer_ids`."""
        from upliftlab.simtouch import true_complier_effects

        truth = self.truth if customer_ids is None else self.truth.iloc[self._rows(customer_ids)]
        return true_complier_effects(truth, ARMS)

    # -- helpers -------------------------------------------------------------------------------
    def _rows(self, customer_ids: Any) -> np.ndarray:
        raw = pd.Series(np.asarray(customer_ids) if not isinstance(customer_ids, pd.Series)
                        else customer_ids)
        num = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        n = len(self.truth)
        bad = ~np.isfinite(num) | (num != np.round(num)) | (num < 1) | (num > n)
        if bad.any():
            raise InputError(f"unknown customer id {str(raw[bad].iloc[0])!r} "
                             f"(this world has integer ids 1..{n})")
        return num.astype(np.int64) - 1

    def _validate_assignment(self, assignment: pd.DataFrame, customer_col: str,
                             arm_col: str) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(assignment, pd.DataFrame):
            raise InputError(f"assignment must be a table, got {type(assignment).__name__}")
        missing = [c for c in (customer_col, arm_col) if c not in assignment.columns]
        if missing:
            raise InputError(f"assignment: missing column {', '.join(map(repr, missing))} "
                             f"(found: {', '.join(map(str, assignment.columns))})")
        for col in (customer_col, arm_col):
            if assignment[col].isna().any():
                raise InputError(f"assignment: empty value in column {col!r}")
        rows = self._rows(assignment[customer_col])
        labels = assignment[arm_col].astype("str").to_numpy()
        codes = np.full(len(labels), -1, dtype=np.int8)
        for k, a in enumerate(ARMS):
            codes[labels == a] = k
        if (codes < 0).any():
            bad = labels[codes < 0][0]
            raise InputError(f"assignment: unknown arm {bad!r} in column {arm_col!r} "
                             f"(known arms: {', '.join(ARMS)})")
        if len(np.unique(rows)) != len(rows):
            dup = pd.Series(rows + 1).loc[pd.Series(rows).duplicated()].iloc[0]
            raise InputError(f"assignment: customer {dup} appears more than once")
        return rows + 1, codes


# ---------------------------------------------------------------------------------------------
# generation
# ---------------------------------------------------------------------------------------------

def simulate_world(n_customers: int, seed: int = 0, *, campaign_date: str | date = "2026-01-05",
                   history_days: int = 730, outcome_window_days: int = 60,
                   world_params: WorldParams | None = None) -> World:
    """Simulate `n_customers` customers with `history_days` of transactions before
    `campaign_date` and the ground truth over the `outcome_window_days` after it."""
    n = _check_int(n_customers, "number of customers", minimum=1)
    seed = _check_int(seed, "seed", minimum=0)
    history_days = _check_int(history_days, "history days", minimum=30)
    window = _check_int(outcome_window_days, "outcome window days", minimum=1)
    campaign = parse_date(campaign_date, "campaign date")
    wp = world_params or WorldParams()
    from upliftlab.progress import progress

    n_blocks = -(-n // BLOCK)
    parts = []
    for b in progress(range(n_blocks), total=n_blocks, desc="simulate", unit="block"):
        m = min(BLOCK, n - b * BLOCK)
        parts.append(_block(wp, seed, b, m, history_days, window))
    world = _assemble(parts, campaign, history_days)
    params = {"seed": seed, "n_customers": n, "campaign_date": campaign.isoformat(),
              "history_days": history_days, "outcome_window_days": window,
              "version": VERSION, "world_params": _params_json(wp)}
    return World(world[0], world[1], world[2], params)


def _block(wp: WorldParams, seed: int, b: int, m: int, H: int, W: int) -> dict:
    rs = Streams(seed, b)
    L = wp.period_days
    K = -(-H // L)
    f32 = np.float32

    channel = rs("channel").choice(3, size=m, p=[0.5, 0.3, 0.2]).astype(np.int8)
    region = rs("region").choice(4, size=m, p=[0.3, 0.25, 0.25, 0.2]).astype(np.int8)
    age = rs("age").choice(5, size=m, p=[0.12, 0.27, 0.25, 0.2, 0.16]).astype(np.int8)

    signup, act, log_r0, r0, hazard = rate_drivers(wp, rs, m, H)
    act_period = act // L

    # latent traits; store buyers spend more, the young are more price sensitive
    log_value = (np.log(wp.value_median) + wp.value_sigma * rs("value").standard_normal(m)
                 + np.where(channel == 2, 0.12, 0.0) + 0.04 * (age - 2))
    value = np.exp(log_value)
    ps = rs("ps").beta(wp.ps_a, wp.ps_b, m)
    ps = np.clip(ps + np.where(age == 0, 0.08, 0.0) - np.where(age == 4, 0.04, 0.0), 0.0, 1.0)
    prefs = rs("prefs").gamma(np.asarray(wp.category_alpha), size=(m, len(CATEGORIES)))
    prefs /= prefs.sum(axis=1, keepdims=True)

    rate, k = rate_path_months(wp, rs, m, K, act_period, log_r0, r0, hazard)
    lo = np.maximum(k * L, act[:, None])
    exposure = np.clip(np.minimum((k + 1) * L, H) - lo, 0, None).astype(f32)
    counts = rs("counts").poisson(rate * exposure / L).astype(np.int32)

    # expand customer-months into orders, uniform within the exposed part of the month
    flat = counts.ravel()
    total = int(flat.sum())
    cell = np.repeat(np.arange(flat.size, dtype=np.int64), flat)
    cust = (cell // K).astype(np.int32)
    sec = (lo.ravel()[cell].astype(np.float64)
           + rs("when").random(total) * exposure.ravel()[cell]) * _DAY
    sec = np.floor(sec).astype(np.int64)
    order = np.argsort(cust.astype(np.int64) * (H * _DAY + 1) + sec, kind="stable")
    cust, sec = cust[order], sec[order]
    q = wp.discount_base + wp.discount_slope * ps
    disc = rs("disc").random(total) < q[cust]
    amount = value[cust] * np.exp(wp.amount_sigma * rs("amount").standard_normal(total)
                                  - wp.amount_sigma ** 2 / 2)
    amount = np.maximum(np.round(amount * np.where(disc, 1 - wp.discount_depth, 1.0), 2), 0.01)
    cum = np.cumsum(prefs, axis=1)
    cat = (rs("category").random(total)[:, None] > cum[cust, :-1]).sum(axis=1).astype(np.int8)

    # state at the campaign date
    n_orders = counts.sum(axis=1)
    last_idx = np.cumsum(n_orders) - 1
    last_sec = np.where(n_orders > 0, sec[np.maximum(last_idx, 0)] if total else 0, -1)
    recency = np.where(n_orders > 0, H - last_sec / _DAY, np.nan)
    rate_now = rate[:, -1].astype(np.float64)
    recent = rate[:, -3:].astype(np.float64).mean(axis=1)
    engagement = expit(wp.eng_intercept + wp.eng_slope * np.log(recent + 0.05)
                        + wp.eng_sd * rs("eng").standard_normal(m)
                        + np.where(channel == 1, wp.eng_app, 0.0))
    opens = rs("opens").poisson(0.5 + wp.opens_per_engagement * engagement).astype(np.int32)
    visits = rs("visits").poisson(0.5 + wp.visits_per_engagement * engagement + 3 * recent
                                  ).astype(np.int32)

    p_control = np.clip(1 - np.exp(-rate_now * W / L), 1e-6, 1 - 1e-6)
    logit_c = np.log(p_control) - np.log1p(-p_control)
    z_value = (np.log(value) - np.log(wp.value_median)) / wp.value_sigma
    long = np.where(np.isnan(recency), 0.0, np.clip((recency - 180) / 365, -0.5, 1.5))
    tau = {
        "coupon": wp.coupon_0 + wp.coupon_ps * ps,
        "content": wp.content_0 + wp.content_eng * engagement,
        "advisor": wp.advisor_0 + wp.advisor_value * z_value + wp.advisor_long * long,
    }
    extra = np.minimum(wp.extra_orders_per_rate * r0, wp.extra_orders_max)
    natural = value * (1 - wp.discount_depth * q)
    # treatments act only through delivery: an undelivered customer responds as under control
    reach = customer_reach(rs, m, channel, engagement)
    reached = {arm: expit(logit_c + tau[arm]) for arm in ARMS[1:]}
    truth = {"p_control": p_control}
    for arm in ARMS[1:]:
        truth[f"p_{arm}"] = p_control + reach[f"reach_{arm}"] * (reached[arm] - p_control)
    rev_c = p_control * natural * (1 + extra)
    truth["revenue_control"] = rev_c
    coupon_orders = value * (1 - wp.coupon_discount) + natural * extra
    advisor_orders = natural * (1 + extra + wp.advisor_extra_orders)
    for arm, orders_value in (("coupon", coupon_orders), ("content", natural * (1 + extra)),
                              ("advisor", advisor_orders)):
        r = reach[f"reach_{arm}"]
        truth[f"revenue_{arm}"] = r * reached[arm] * orders_value + (1 - r) * rev_c
    truth.update(price_sensitivity=ps, engagement=engagement, value=value, orders=1 + extra,
                 recency_days=recency, rate_now=rate_now)
    truth.update(reach)
    truth.update({f"p_reached_{arm}": reached[arm] for arm in ARMS[1:]})

    return {"m": m, "channel": channel, "region": region, "age": age, "signup": signup,
            "opens": opens, "visits": visits, "tx_cust": cust, "tx_sec": sec, "amount": amount,
            "disc": disc, "cat": cat, "truth": truth}


def rate_drivers(wp: WorldParams, rs: Streams, m: int, H: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per customer of a block: the sign-up day relative to the history window's start
    (negative: before the window), the day buying starts (not before the window), the log and
    level of the base rate and the monthly churn hazard. The one definition of what drives the
    rate process, used by the world's history and by the churn truth (`simulate_risk`)."""
    pre = rs("pre").random(m) < wp.pre_window_share
    pre_days = np.ceil(rs("pre_days").exponential(wp.pre_window_mean_days, m))
    in_days = np.floor(rs("in_days").random(m) * (H - 1))
    signup = np.where(pre, -pre_days, in_days).astype(np.int32)
    act = np.maximum(signup, 0).astype(np.int32)
    log_r0 = (np.log(wp.base_rate_median) + wp.base_rate_sigma * rs("rate").standard_normal(m))
    hazard = rs("hazard").beta(wp.churn_a, wp.churn_b, m)
    return signup, act, log_r0, np.exp(log_r0), hazard


def rate_path_months(wp: WorldParams, rs: Any, m: int, K: int, act_period: np.ndarray,
                     log_r0: np.ndarray, r0: np.ndarray, hazard: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Monthly purchase rates (m x K, float32) and the month index row: a log random walk from
    the activation month, then churn to a decaying residual. The one definition of the rate
    process, used by the world's history and by the churn truth (`simulate_risk`)."""
    f32 = np.float32
    steps = (wp.drift + wp.walk_sd * rs("walk").standard_normal((m, K))).astype(f32)
    walk = np.cumsum(steps, axis=1)
    walk -= np.take_along_axis(walk, act_period[:, None], axis=1)
    k = np.arange(K, dtype=np.int32)[None, :]
    churn_at = act_period + rs("churn").geometric(hazard).astype(np.int32)
    dead_months = (k - churn_at[:, None]).astype(f32)
    rate = np.where(dead_months >= 0,
                    (r0[:, None] * wp.dead_factor).astype(f32)
                    * np.exp(-wp.dead_decay * np.maximum(dead_months, 0)),
                    np.exp(log_r0[:, None].astype(f32) + walk)).astype(f32)
    return rate, k


def _assemble(parts: list[dict], campaign: date, H: int) -> tuple[pd.DataFrame, ...]:
    cat = np.concatenate
    offsets = np.cumsum([0] + [p["m"] for p in parts])
    n = int(offsets[-1])
    ids = np.arange(1, n + 1, dtype=np.int64)
    start = np.datetime64(campaign, "s") - np.timedelta64(H, "D")
    signup = start + cat([p["signup"] for p in parts]).astype("timedelta64[D]")
    signup = signup.astype("datetime64[s]")
    customers = pd.DataFrame({
        "customer_id": ids,
        "signup_date": signup,
        "channel": pd.Categorical.from_codes(cat([p["channel"] for p in parts]), CHANNELS),
        "region": pd.Categorical.from_codes(cat([p["region"] for p in parts]), REGIONS),
        "age_band": pd.Categorical.from_codes(cat([p["age"] for p in parts]), AGE_BANDS),
        "email_opens_90d": cat([p["opens"] for p in parts]),
        "site_visits_90d": cat([p["visits"] for p in parts]),
    })
    def column(key: str) -> np.ndarray:
        # concatenate one column and drop its pieces at once, so peak memory stays near one copy
        return cat([p.pop(key) for p in parts])

    for p, off in zip(parts, offsets):
        p["tx_cust"] = p["tx_cust"].astype(np.int64) + (off + 1)
    tx = {"customer_id": column("tx_cust")}
    ts = column("tx_sec")
    ts += start.astype(np.int64)  # in place: seconds since the epoch
    tx["ts"] = ts.view("datetime64[s]")
    tx["amount"] = column("amount")
    tx["discount_used"] = column("disc")
    tx["category"] = pd.Categorical.from_codes(column("cat"), CATEGORIES)
    transactions = pd.DataFrame(tx, copy=False)
    cols = list(parts[0]["truth"])
    truth = pd.DataFrame({"customer_id": ids,
                          **{c: cat([p["truth"][c] for p in parts]).astype(np.float64)
                             for c in cols}})
    return customers, transactions, truth


# ---------------------------------------------------------------------------------------------
# response
# ---------------------------------------------------------------------------------------------

def _respond(world: World, cid: np.ndarray, arm: np.ndarray, t0: date, seed: int,
             *, touches: bool = False) -> Any:
    from scipy.special import ndtri

    wp = world_params(world)
    W = int(world.params["outcome_window_days"])
    wseed = int(world.params["seed"])
    salt = np.random.SeedSequence([wseed, seed, 0x5E5]).generate_state(1, np.uint64)[0]
    order = np.argsort(cid, kind="stable")
    cid, arm = cid[order], arm[order]
    t = world.truth
    rows = cid - 1
    # the message of a treated customer is delivered or not; only a delivered one acts
    touch, delivered, dsec = _touches(t, cid, arm, rows, salt)
    treated = arm > 0
    reach, p_reached = reach_matrix(t, rows, ARMS)
    pc = p_reached[:, 0]
    p = np.where(delivered, p_reached[np.arange(len(rows)), arm], pc)
    react = u01(cid, salt, 1) < p
    react_idx = np.flatnonzero(react)
    cid, arm, rows, p, pc = cid[react], arm[react], rows[react], p[react], pc[react]
    delivered, dsec = delivered[react], dsec[react]

    value = t["value"].to_numpy()[rows]
    ps = t["price_sensitivity"].to_numpy()[rows]
    extra = t["orders"].to_numpy()[rows] - 1 + np.where((arm == 3) & delivered,
                                                        wp.advisor_extra_orders, 0.0)
    theta = extra / (1 + extra)  # geometric on {0, 1, ...} with mean `extra`
    u = u01(cid, salt, 2)
    log_theta = np.log(np.where(theta > 0, theta, 0.5))
    n_extra = np.where(theta > 0, np.floor(np.log1p(-u) / log_theta), 0)
    n_orders = (1 + n_extra).astype(np.int64)

    # first order: early if the treatment caused it (share (p_a - p_c)/p_a), else uniform
    caused = u01(cid, salt, 3) < np.maximum(p - pc, 0) / p
    u4 = u01(cid, salt, 4)
    mu = wp.early_days
    first = np.where(caused, -mu * np.log1p(-u4 * (1 - np.exp(-W / mu))), u4 * W)
    # a delivered coupon is redeemed on the first order, which cannot precede its arrival
    coupon = (arm == 1) & delivered
    first = np.where(coupon, np.maximum(first, (np.nan_to_num(dsec) + 1) / _DAY), first)

    idx = np.repeat(np.arange(len(cid)), n_orders)
    j = np.arange(len(idx)) - np.repeat(np.cumsum(n_orders) - n_orders, n_orders)
    okey = mix(mix(cid[idx].astype(np.uint64) ^ salt) + j.astype(np.uint64))
    day = np.where(j == 0, first[idx], first[idx] + u01(okey, salt, 5) * (W - first[idx]))
    sec = np.minimum(np.floor(day * _DAY).astype(np.int64), W * _DAY - 1)
    coupon_first = coupon[idx] & (j == 0)
    q = wp.discount_base + wp.discount_slope * ps[idx]
    disc = coupon_first | (u01(okey, salt, 6) < q)
    factor = np.where(coupon_first, 1 - wp.coupon_discount,
                      np.where(disc, 1 - wp.discount_depth, 1.0))
    z = ndtri(np.clip(u01(okey, salt, 7), 1e-12, 1 - 1e-12))
    amount = value[idx] * np.exp(wp.amount_sigma * z - wp.amount_sigma ** 2 / 2) * factor
    amount = np.maximum(np.round(amount, 2), 0.01)
    prefs = _prefs(world, cid, wp)
    cum = np.cumsum(prefs, axis=1)
    cat = (u01(okey, salt, 8)[:, None] > cum[idx, :-1]).sum(axis=1).astype(np.int8)

    cust = cid[idx].astype(np.int64)
    srt = np.lexsort((sec, cust))
    base = np.datetime64(t0, "s")
    out = pd.DataFrame({
        "customer_id": cust[srt],
        "ts": base + sec[srt].astype("timedelta64[s]"),
        "amount": amount[srt],
        "discount_used": disc[srt],
        "category": pd.Categorical.from_codes(cat[srt], CATEGORIES),
    })
    if not touches:
        return out
    redeemed = np.full(len(order), np.nan)
    redeemed[react_idx[coupon]] = np.minimum(np.floor(first[coupon] * _DAY), W * _DAY - 1)
    return out, touch_frame(touch, ARMS, t0, redeemed[treated], W)


def _touches(t: pd.DataFrame, cid: np.ndarray, arm: np.ndarray, rows: np.ndarray,
             salt: np.uint64) -> tuple[Touches, np.ndarray, np.ndarray]:
    """The touches of the treated among (cid, arm), and per customer whether the message was
    delivered and when (seconds from the window start; NaN if not)."""
    reach, _ = reach_matrix(t, rows, ARMS)
    eng = t["engagement"].to_numpy()[rows]
    has_app = (t["has_app"].to_numpy()[rows] if "has_app" in t.columns
               else np.zeros(len(rows)))
    touch = draw_touches(cid, arm, reach[np.arange(len(rows)), arm], eng, has_app,
                         lambda key, stream: u01(key, salt, stream))
    delivered = np.zeros(len(cid), dtype=bool)
    dsec = np.full(len(cid), np.nan)
    delivered[arm > 0] = touch.delivered
    dsec[arm > 0] = touch.delivered_sec
    return touch, delivered, dsec


def _prefs(world: World, cid: np.ndarray, wp: WorldParams) -> np.ndarray:
    """Category preferences of `cid`, re-drawn from the world's own per-block stream."""
    out = np.empty((len(cid), len(CATEGORIES)))
    blocks = (cid - 1) // BLOCK
    seed = int(world.params["seed"])
    for b in np.unique(blocks):
        rs = Streams(seed, int(b))
        m = min(BLOCK, int(world.params["n_customers"]) - int(b) * BLOCK)
        g = rs("prefs").gamma(np.asarray(wp.category_alpha), size=(m, len(CATEGORIES)))
        sel = blocks == b
        g = g[(cid[sel] - 1) - b * BLOCK]
        out[sel] = g / g.sum(axis=1, keepdims=True)
    return out


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------

def load_world(path: str | os.PathLike, *, transactions: bool = True) -> World:
    """Read a world written by `World.write` (or `upliftlab simulate`). `transactions=False`
    leaves its pre-campaign history on disk (an empty frame of the same columns): responding
    needs only the customers and the truth, and the history is most of a large world's memory
    (about 17 GB at 10M customers)."""
    import pyarrow.parquet as pq

    root = Path(path)
    if not root.is_dir():
        raise InputError(f"{root}: no such world directory")
    missing = [f for f in FILES if not (root / f).is_file()]
    if missing:
        raise InputError(f"{root}: not a world, missing {', '.join(missing)}")
    try:
        params = json.loads((root / "world.json").read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{root / 'world.json'}: unreadable ({exc})") from None
    for key in ("seed", "n_customers", "campaign_date", "outcome_window_days"):
        if key not in params:
            raise InputError(f"{root / 'world.json'}: missing field {key!r}")
    tables = {}
    for name in ("customers", "transactions", "truth"):
        try:
            if name == "transactions" and not transactions:
                tables[name] = pq.read_schema(root / f"{name}.parquet").empty_table().to_pandas(
                    date_as_object=False)
                continue
            tables[name] = pq.read_table(root / f"{name}.parquet").to_pandas(date_as_object=False)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise InputError(f"{root / name}.parquet: unreadable ({first})") from None
    customers = tables["customers"]
    customers["signup_date"] = customers["signup_date"].astype("datetime64[s]")
    tables["transactions"]["ts"] = tables["transactions"]["ts"].astype("datetime64[s]")
    if len(tables["truth"]) != int(params["n_customers"]):
        raise InputError(f"{root / 'truth.parquet'}: {len(tables['truth'])} rows, "
                         f"world.json says {params['n_customers']} customers")
    return World(customers, tables["transactions"], tables["truth"], params)


# a world folder: what `simulate` writes and what `respond` adds beside it
WORLD_FILES = ("customers.parquet", "transactions.parquet", "truth.parquet", "world.json",
               "transactions_*.parquet")


def check_world_target(out: Path, force: bool = False) -> None:
    """Refuse to write a world over a file, or over a non-empty directory that holds no world."""
    from upliftlab._files import read_marker

    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory")
    if (out.is_dir() and any(out.iterdir()) and not (out / "world.json").is_file()
            and read_marker(out) is None and not force):
        raise InputError(f"{out}: directory is not empty and holds no world (use {{force}})",
                         params=["force"])


def _write_parquet(table: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    # fixed row groups and no pandas metadata: the same world gives the same bytes
    pq.write_table(table, path, compression="zstd", row_group_size=1 << 20)


def _dict_array(values: pd.Categorical) -> Any:
    import pyarrow as pa

    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(values.codes)),
                                          pa.array(list(values.categories), pa.string()))


def _as_categorical(col: pd.Series) -> pd.Categorical:
    return col.array if isinstance(col.dtype, pd.CategoricalDtype) else pd.Categorical(col)


def _customers_arrow(df: pd.DataFrame) -> Any:
    import pyarrow as pa

    days = df["signup_date"].to_numpy().astype("datetime64[D]")
    return pa.table({
        "customer_id": pa.array(df["customer_id"].to_numpy(np.int64)),
        "signup_date": pa.array(days, pa.date32()),
        **{c: _dict_array(_as_categorical(df[c])) for c in ("channel", "region", "age_band")},
        "email_opens_90d": pa.array(df["email_opens_90d"].to_numpy(np.int32)),
        "site_visits_90d": pa.array(df["site_visits_90d"].to_numpy(np.int32)),
    })


def _transactions_arrow(df: pd.DataFrame) -> Any:
    import pyarrow as pa

    return pa.table({
        "customer_id": pa.array(df["customer_id"].to_numpy(np.int64)),
        "ts": pa.array(df["ts"].to_numpy().astype("datetime64[s]", copy=False),
                       pa.timestamp("s")),
        "amount": pa.array(df["amount"].to_numpy(np.float64)),
        "discount_used": pa.array(df["discount_used"].to_numpy(bool)),
        "category": _dict_array(_as_categorical(df["category"])),
    })


def _plain_arrow(df: pd.DataFrame) -> Any:
    import pyarrow as pa

    return pa.table({c: pa.array(df[c].to_numpy()) for c in df.columns})


def write_transactions(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a transactions table (e.g. a `respond` result) as Parquet or CSV by suffix,
    atomically."""
    _write_table(df, path, _transactions_arrow)


def write_touches(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a touch log (`World.respond_with_touches`) as Parquet or CSV by suffix, atomically."""
    import pyarrow as pa

    _write_table(df, path, lambda d: pa.Table.from_pandas(d, preserve_index=False))


def _write_table(df: pd.DataFrame, path: str | os.PathLike, arrow: Any) -> None:
    out = Path(path)
    lower = out.name.lower()
    if not lower.endswith((".parquet", ".pq", ".csv", ".csv.gz")):
        raise InputError(f"{out}: unknown output type (expected .parquet or .csv)")
    with staged_file(out) as tmp:
        if lower.endswith((".parquet", ".pq")):
            _write_parquet(arrow(df), tmp)
        else:
            df.to_csv(tmp, index=False, compression="gzip" if lower.endswith(".gz") else None)


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------

def _check_int(value: Any, what: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{what} must be an integer, got {value!r}")
    if value < minimum:
        raise InputError(f"{what} must be at least {minimum}, got {value}")
    return int(value)


def _params_json(wp: WorldParams) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(wp).items()}


def world_params(world: World) -> WorldParams:
    """The `WorldParams` a world was simulated with (as written in its world.json; a key this
    version does not know is left out, a missing one takes its default)."""
    d = world.params.get("world_params", {})
    known = {f for f in WorldParams.__dataclass_fields__}
    return WorldParams(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()
                          if k in known})


__all__ = ["ARMS", "World", "WorldParams", "check_world_target", "load_world", "rate_drivers",
           "rate_path_months", "simulate_world", "world_params", "write_touches",
           "write_transactions"]
