"""The simulator's touches: whom each arm's message can reach (delivery by channel and customer)
and the touch log (sent -> delivered -> opened -> clicked -> redeemed) that a response emits.

Treatments act only through delivery: a customer whose message was not delivered responds as
under control, so the effect on the reached (the complier average causal effect) is known.
Channels: the coupon goes by SMS (a wrong phone number never receives it), the content by app
push to customers with the app and by e-mail to the others (bounced addresses never receive it),
the advisor calls (a wrong number or an unanswered call reaches no one; calls are answered more
often by engaged customers; web sign-ups mistype their phone number most). Opening (and clicking) rises with engagement and has no effect of
its own: the exclusion restriction holds for "delivered" and is broken for "opened".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Callable

import numpy as np

from upliftlab.simdraws import expit

TOUCH_ARMS = ("coupon", "content", "advisor")  # arms that send something; control sends nothing
CHANNELS = ("sms", "push", "email", "call")
STEPS = ("sent", "delivered", "opened", "clicked", "redeemed")
_DAY = 86_400


@dataclass(frozen=True)
class TouchParams:
    """Delivery, opening and cost of the simulated touches (see the module docstring)."""

    phone_ok: tuple[float, float, float] = (0.96, 0.995, 0.985)
    """Share of customers with a working phone number, by shopping channel (web, app, store):
    app users confirmed theirs, web sign-ups mistype it most."""
    app_other: float = 0.25
    """Share of web/store customers with the app installed (app customers always have it)."""
    email_ok: float = 0.97
    """Share of customers whose e-mail address does not bounce."""
    sms_delivery: float = 0.99
    push_delivery: float = 0.97
    email_delivery: float = 0.99
    call_answer_0: float = 2.0
    """P(call answered | working number) = expit(call_answer_0 + call_answer_eng·engagement)."""
    call_answer_eng: float = 1.5
    open_0: float = -1.0
    """P(opened | delivered) = expit(open_0 + open_eng·engagement) (SMS, push, e-mail)."""
    open_eng: float = 3.0
    click_0: float = -1.2
    """P(clicked | opened) = expit(click_0 + click_eng·engagement)."""
    click_eng: float = 1.5
    cost_sms: float = 0.10
    cost_push: float = 0.02
    cost_email: float = 0.02
    cost_call: float = 4.00


def customer_reach(streams: Callable[[str], np.random.Generator], m: int, channel: np.ndarray,
                   engagement: np.ndarray, tp: TouchParams = TouchParams()) -> dict[str, np.ndarray]:
    """Per-customer truth of one block: P(delivered) under each touching arm and `has_app`.

    `streams(name)` is the block's generator per variable, so these draws shift nothing else.
    `channel` codes the customer's shopping channel (1 = app).
    """
    phone_ok = streams("phone_ok").random(m) < np.asarray(tp.phone_ok)[channel]
    has_app = (channel == 1) | (streams("has_app").random(m) < tp.app_other)
    email_ok = streams("email_ok").random(m) < tp.email_ok
    answer = 1.0 / (1.0 + np.exp(-(tp.call_answer_0 + tp.call_answer_eng * engagement)))
    return {
        "reach_coupon": np.where(phone_ok, tp.sms_delivery, 0.0),
        "reach_content": np.where(has_app, tp.push_delivery,
                                  np.where(email_ok, tp.email_delivery, 0.0)),
        "reach_advisor": np.where(phone_ok, answer, 0.0),
        "has_app": has_app.astype(np.float64),
    }


def reach_matrix(truth: Any, rows: np.ndarray, arms: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(P(delivered), P(reactivated | delivered)) per row and arm, control column 0.

    A world written before touches existed has no reach columns: everyone is reached there.
    """
    reach = np.zeros((len(rows), len(arms)))
    p_reached = np.empty((len(rows), len(arms)))
    p_reached[:, 0] = truth["p_control"].to_numpy()[rows]
    for k, arm in enumerate(arms[1:], start=1):
        if f"reach_{arm}" in truth.columns:
            reach[:, k] = truth[f"reach_{arm}"].to_numpy()[rows]
            p_reached[:, k] = truth[f"p_reached_{arm}"].to_numpy()[rows]
        else:
            reach[:, k] = 1.0
            p_reached[:, k] = truth[f"p_{arm}"].to_numpy()[rows]
    return reach, p_reached


@dataclass(frozen=True)
class Touches:
    """One simulated touch per treated customer, as arrays (seconds from the window start;
    NaN = the step did not happen)."""

    cid: np.ndarray
    arm: np.ndarray          # arm index (>= 1)
    channel: np.ndarray      # index into CHANNELS
    delivered: np.ndarray    # bool: the effect acts through this
    sent_sec: np.ndarray
    delivered_sec: np.ndarray
    opened_sec: np.ndarray
    clicked_sec: np.ndarray
    cost: np.ndarray


def draw_touches(cid: np.ndarray, arm: np.ndarray, reach: np.ndarray, engagement: np.ndarray,
                 has_app: np.ndarray, u: Callable[[np.ndarray, int], np.ndarray],
                 tp: TouchParams = TouchParams()) -> Touches:
    """The touch of every customer in a touching arm (arm index >= 1): channel, delivery,
    opening, clicking and their times, from counter-based uniforms `u(cid, stream)`.

    Messages go out in the first two hours of the window, are delivered within a minute, opened
    after an exponential delay (mean half a day) and clicked within an hour of opening.
    """
    sel = arm > 0
    cid, arm, reach = cid[sel], arm[sel], reach[sel]
    eng, app = engagement[sel], has_app[sel] > 0
    channel = np.select([arm == 1, (arm == 2) & app, arm == 2], [0, 1, 2], 3).astype(np.int8)
    delivered = u(cid, 9) < reach
    sent = np.floor(u(cid, 10) * 7200.0)
    dsec = np.where(delivered, sent + 1 + np.floor(u(cid, 11) * 60.0), np.nan)
    p_open = np.where(channel == 3, 0.0, expit(tp.open_0 + tp.open_eng * eng))
    opened = delivered & (u(cid, 12) < p_open)
    osec = np.where(opened, dsec + np.floor(-43_200.0 * np.log1p(-u(cid, 13))), np.nan)
    clicked = opened & (u(cid, 14) < expit(tp.click_0 + tp.click_eng * eng))
    csec = np.where(clicked, osec + 1 + np.floor(u(cid, 15) * 3600.0), np.nan)
    cost = np.array([tp.cost_sms, tp.cost_push, tp.cost_email, tp.cost_call])[channel]
    return Touches(cid, arm, channel, delivered, sent, dsec, osec, csec, cost)


def touch_frame(t: Touches, arms: tuple[str, ...], start: date, redeemed_sec: np.ndarray,
                window_days: int) -> Any:
    """The touch log as a table: customer_id, arm, channel, sent_at, delivered_at, opened_at,
    clicked_at, redeemed_at (NaT = did not happen), cost; steps after the window are dropped
    (not yet observed), sorted by customer_id."""
    import pandas as pd

    base = np.datetime64(start, "s")
    end = window_days * _DAY

    def ts(sec: np.ndarray) -> np.ndarray:
        out = np.full(len(sec), np.datetime64("NaT"), dtype="datetime64[s]")
        ok = np.isfinite(sec) & (sec < end)
        out[ok] = base + sec[ok].astype(np.int64).astype("timedelta64[s]")
        return out

    order = np.argsort(t.cid, kind="stable")
    return pd.DataFrame({
        "customer_id": t.cid[order].astype(np.int64),
        "arm": pd.Categorical.from_codes(t.arm[order], list(arms)),
        "channel": pd.Categorical.from_codes(t.channel[order], list(CHANNELS)),
        "sent_at": ts(t.sent_sec)[order],
        "delivered_at": ts(t.delivered_sec)[order],
        "opened_at": ts(t.opened_sec)[order],
        "clicked_at": ts(t.clicked_sec)[order],
        "redeemed_at": ts(redeemed_sec)[order],
        "cost": t.cost[order],
    })


def true_complier_effects(truth: Any, arms: tuple[str, ...]) -> Any:
    """Per touching arm over the rows of `truth`: mean P(delivered), the intention-to-treat
    effect on reactivation and the complier average causal effect for "delivered",
    Σ reach·(p_reached − p_control) / Σ reach (the effect on the customers the message reaches).
    """
    import pandas as pd

    rows = np.arange(len(truth))
    reach, p_reached = reach_matrix(truth, rows, arms)
    pc = p_reached[:, 0]
    out = []
    for k, arm in enumerate(arms[1:], start=1):
        r = reach[:, k]
        itt = float(np.mean(r * (p_reached[:, k] - pc)))
        share = float(r.mean())
        out.append({"arm": arm, "n": len(truth), "reach": share, "itt": itt,
                    "cace": itt / share if share > 0 else float("nan")})
    return pd.DataFrame(out)
