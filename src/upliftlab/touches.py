"""Touch logs (sent -> delivered -> opened -> clicked -> redeemed, per channel): read and checked
against the experiment, turned into the funnel per arm and channel and the effect on the reached.

The effect on the reached is estimated with the assignment as the instrument (stats/iv.py), never
by filtering on exposure. Touches for control or holdout customers are contamination: counted,
shown and left out; everything else that is wrong with a log is an InputError naming `touches`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from upliftlab.errors import InputError
from upliftlab.sources import literal, quote
from upliftlab.rules import HOLDOUT_ARM

if TYPE_CHECKING:
    import duckdb

    from upliftlab.stats.iv import IVEstimate, ReachedCost

STEPS = ("sent", "delivered", "opened", "clicked", "redeemed")
REACH = ("delivered", "opened")  # the exposures an effect on the reached is estimated for
ALL_CHANNELS = "(all)"
UNTOUCHED_ARMS = (HOLDOUT_ARM,)  # besides control: touches for these customers are contamination
_PREFIX = "ul_touch_"


@dataclass(frozen=True)
class TouchColumns:
    """Names of the touch log's columns (the spec's [touches.columns], `--touch-col KEY=COL`).

    customer_id, channel, sent and delivered are required; arm (checked against the
    assignment), the other steps and cost may be absent from the log, which the report states.
    """

    customer_id: str = "customer_id"
    channel: str = "channel"
    sent: str = "sent_at"
    delivered: str = "delivered_at"
    opened: str = "opened_at"
    clicked: str = "clicked_at"
    redeemed: str = "redeemed_at"
    arm: str = "arm"
    cost: str = "cost"

    REQUIRED = ("customer_id", "channel", "sent", "delivered")

    @classmethod
    def parse(cls, pairs: dict[str, str]) -> "TouchColumns":
        """From KEY=COL pairs; an unknown key is an InputError naming `columns`."""
        known = [f.name for f in fields(cls)]
        bad = [k for k in pairs if k not in known]
        if bad:
            raise InputError(f"columns: unknown touch-log key {bad[0]!r} "
                             f"(known: {', '.join(known)})")
        return cls(**pairs)


@dataclass(frozen=True)
class TouchChecks:
    """What the checks found in a log (counts of touches unless named customers)."""

    touches: int
    customers: int
    contamination: dict[str, int]            # control/holdout arm -> touches
    contaminated_customers: int
    late_steps: int                          # step times on or after the cut-off: not yet seen
    absent_columns: tuple[str, ...]          # optional steps / cost / arm the log lacks


@dataclass(frozen=True)
class FunnelRow:
    """One arm and channel (or all channels): customers reaching each step, and of those how
    many reactivated; `assigned` customers in the arm (the denominator of every rate)."""

    arm: str
    channel: str
    assigned: int
    customers: dict[str, int]
    reactivated: dict[str, int]
    touches: int
    cost: float


@dataclass(frozen=True)
class ReachedEffect:
    """The effect of an arm on the customers it reached (`exposure`: delivered or opened)."""

    arm: str
    exposure: str
    wald: "IVEstimate"
    tsls: "IVEstimate | None"
    covariates: tuple[str, ...]
    cost: "ReachedCost | None"


@dataclass(frozen=True)
class TouchResult:
    checks: TouchChecks
    funnel: tuple[FunnelRow, ...]
    effects: tuple[ReachedEffect, ...]
    control: str
    control_rate: float
    alpha: float
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """The report.json `touches` section."""
        from scipy import stats as st

        from upliftlab.jsonsafe import json_safe

        z = float(st.norm.ppf(1 - self.alpha / 2))
        funnel = []
        for f in self.funnel:
            steps = []
            prev = None
            for s in STEPS:
                if s not in f.customers:
                    continue
                k = f.customers[s]
                lo, hi = wilson(k, f.assigned, z)
                step = {"step": s, "customers": k, "rate": k / f.assigned if f.assigned else None,
                        "ci_low": lo, "ci_high": hi,
                        "of_previous": (k / prev if prev else None),
                        "reactivated": f.reactivated[s],
                        "reactivation_rate": f.reactivated[s] / k if k else None}
                steps.append(step)
                prev = k
            d = f.customers.get("delivered", 0)
            not_d = f.assigned - d
            funnel.append({
                "arm": f.arm, "channel": f.channel, "assigned": f.assigned, "touches": f.touches,
                "cost": f.cost, "steps": steps,
                "not_delivered": {"customers": not_d,
                                  "reactivation_rate": ((f.reactivated["assigned"]
                                                         - f.reactivated["delivered"]) / not_d
                                                        if not_d else None)},
                "response_rates": response_rates(f)})
        effects = []
        for e in self.effects:
            row = {"arm": e.arm, "exposure": e.exposure, "control": self.control,
                   "reach": e.wald.itt_d, "reach_se": e.wald.itt_d_se, "itt": e.wald.itt_y,
                   "cace": e.wald.estimate, "se": e.wald.se, "ci_low": e.wald.ci_low,
                   "ci_high": e.wald.ci_high, "fieller_low": e.wald.fieller.ci_low,
                   "fieller_high": e.wald.fieller.ci_high, "fieller_bounded":
                   e.wald.fieller.bounded, "n_treatment": e.wald.n_treatment,
                   "n_control": e.wald.n_control,
                   "stronger_assumptions": e.exposure != "delivered",
                   "tsls": None, "cost": None}
            if e.tsls is not None:
                row["tsls"] = {"cace": e.tsls.estimate, "se": e.tsls.se,
                               "ci_low": e.tsls.ci_low, "ci_high": e.tsls.ci_high,
                               "covariates": list(e.covariates)}
            if e.cost is not None:
                r = e.cost.ratio
                row["cost"] = {"cost_per_delivered": e.cost.cost_per_delivered,
                               "cost_per_incremental_reactivation": r.estimate,
                               "ci_low": r.ci_low, "ci_high": r.ci_high, "bounded": r.bounded}
            effects.append(row)
        c = self.checks
        return json_safe({
            "control": self.control, "control_reactivation_rate": self.control_rate,
            "confidence": 1 - self.alpha,
            "checks": {"touches": c.touches, "customers": c.customers,
                       "contamination": c.contamination,
                       "contaminated_customers": c.contaminated_customers,
                       "late_steps": c.late_steps, "absent_columns": list(c.absent_columns)},
            "funnel": funnel, "effects": effects, "notes": list(self.notes),
            "assumptions": ASSUMPTIONS})


ASSUMPTIONS = (
    "Effects on the reached are complier average causal effects (Angrist, Imbens & Rubin "
    "1996) with the random assignment as the instrument: effect of assignment on reactivation "
    "divided by its effect on reach (Wald), and two-stage least squares with the pre-period "
    "covariates; robust (HC0) standard errors, a delta-method and Fieller's interval. They "
    "never compare the reached with control directly, which would be biased: being reached "
    "happens after assignment and depends on the customer. They rest on (1) exclusion: "
    "assignment moves reactivation only through reach (broken if e.g. the coupon code leaks, "
    "or for 'opened', when a delivered but unopened message still acts: its subject line, a "
    "push banner); (2) monotonicity / one-sided non-compliance: no control or holdout "
    "customer is reached (broken by contamination, which is counted and excluded: the "
    "estimate then understates the effect if those customers were in fact reached); (3) the "
    "log records delivery correctly (an unlogged delivery makes the reach share too low and "
    "the effect on the reached too high).")


def wilson(k: int, n: int, z: float) -> tuple[float | None, float | None]:
    """Wilson score interval of k/n (as statsmodels' proportion_confint(method="wilson"))."""
    if n <= 0:
        return None, None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / denom
    return max(centre - half, 0.0), min(centre + half, 1.0)


def response_rates(f: FunnelRow) -> dict[str, float | None]:
    """The touch response rates: open = opened / delivered, click = clicked / opened,
    conversion = reactivated among the delivered (descriptive, not an effect)."""
    c = f.customers
    d, o, k = c.get("delivered", 0), c.get("opened"), c.get("clicked")
    return {"open": (o / d if d and o is not None else None),
            "click": (k / o if o and k is not None else None),
            "conversion": (f.reactivated["delivered"] / d if d else None)}


def touches_to_dict(result: TouchResult | dict | None) -> dict | None:
    if result is None or isinstance(result, dict):
        return result
    return result.to_dict()


# ---------------------------------------------------------------------------------------------
# the analysis
# ---------------------------------------------------------------------------------------------

def analyze_touches(con: "duckdb.DuckDBPyConnection", *, log: str, log_columns: list[str],
                    columns: TouchColumns, assigned: str, outcomes: str, arm: str, control: str,
                    outcome: str = "reactivated", covariates: tuple[str, ...] = (),
                    conversion_costs: dict[str, float] | None = None,
                    channels: tuple[str, ...] | None = None, start: dt.date | None = None,
                    cutoff: dt.date | None = None, alpha: float = 0.05) -> TouchResult:
    """The funnel and the effects on the reached of the touch log `log` (a view on `con`).

    `assigned`: view of every customer of the experiment (customer_id as text, `arm`; holdout
    included); `outcomes`: view with customer_id (text), `arm`, the 0/1 `outcome` and the
    `covariates`, one row per analysed customer. Touches sent before `start`, for customers not
    in `assigned`, with steps out of order, under an unknown or another arm, duplicated, or on
    a channel outside `channels` raise InputError; step times on or after `cutoff` are not yet
    observed (counted, ignored). Costs per customer: the log's cost plus `conversion_costs[arm]`
    per reactivation.
    """
    from scipy import stats as st

    from upliftlab.sources import require_columns
    from upliftlab.stats.iv import reached_cost, tsls, wald
    from upliftlab.stats.sql import iv_aggregate

    required = [getattr(columns, k) for k in TouchColumns.REQUIRED]
    require_columns(log_columns, required, "touches")
    present = {k: getattr(columns, k) in log_columns
               for k in ("opened", "clicked", "redeemed", "arm", "cost")}
    absent = tuple(getattr(columns, k) for k, ok in present.items() if not ok)
    steps = [s for s in STEPS if s in ("sent", "delivered") or present[s]]
    arms = [r[0] for r in con.execute(
        f"SELECT DISTINCT CAST({quote(arm)} AS VARCHAR) FROM {quote(assigned)}").fetchall()]
    untouched = [control] + [a for a in UNTOUCHED_ARMS if a != control]
    joined, cust, src = (f"{_PREFIX}{n}" for n in ("joined", "cust", "iv"))
    unt = ", ".join(literal(a) for a in untouched)
    try:
        # each (customer, channel) with the customer's assigned arm (NULL: not in the experiment)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE {quote(joined)} AS
            SELECT s.*, CAST(a.{quote(arm)} AS VARCHAR) AS arm__,
                   CAST(o.{quote(outcome)} AS DOUBLE) AS y__
            FROM ({steps_sql(log, columns, steps, present, start, cutoff)}) s
            LEFT JOIN {quote(assigned)} a ON CAST(a.customer_id AS VARCHAR) = s.customer_id
            LEFT JOIN {quote(outcomes)} o ON CAST(o.customer_id AS VARCHAR) = s.customer_id""")
        checks = _check(con, log, joined, columns, present, absent, arms, untouched, channels)
        # the treated customers' touches only: contamination is left out from here on
        clean = f"(SELECT * FROM {quote(joined)} WHERE arm__ NOT IN ({unt}))"
        flag = ", ".join(f"max(CASE WHEN {s} IS NOT NULL THEN 1 ELSE 0 END) AS {s}"
                         for s in steps)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE {quote(cust)} AS
            SELECT arm__, customer_id, {flag}, sum(touches) AS touches, sum(cost) AS cost,
                   max(y__) AS y__
            FROM {clean} GROUP BY arm__, customer_id""")
        # customers in the log: the treated ones touched (one row each) and the contaminated
        n_cust = con.execute(f"SELECT count(*) FROM {quote(cust)}").fetchone()[0]
        checks = replace(checks, customers=int(n_cust) + checks.contaminated_customers)
        funnel = _funnel(con, clean, cust, steps, outcomes, arm, outcome)
        conv = conversion_costs or {}
        conv_case = " ".join(f"WHEN {literal(a)} THEN {float(v)!r}" for a, v in conv.items())
        conv_sql = f"(CASE CAST(o.{quote(arm)} AS VARCHAR) {conv_case} ELSE 0.0 END)" \
            if conv_case else "0.0"
        con.execute(f"""CREATE OR REPLACE TEMP TABLE {quote(src)} AS
            SELECT o.*, {', '.join(f'COALESCE(e.{s}, 0) AS {quote("d_" + s)}'
                                   for s in REACH if s in steps)},
                   COALESCE(e.cost, 0.0) + {conv_sql} * CAST(o.{quote(outcome)} AS DOUBLE)
                       AS cost__
            FROM {quote(outcomes)} o LEFT JOIN {quote(cust)} e
              ON e.customer_id = CAST(o.customer_id AS VARCHAR)""")
        z = float(st.norm.ppf(1 - alpha / 2))
        effects = []
        for s in REACH:
            if s not in steps:
                continue
            # one aggregate gives both: the plain sums are a subset of the adjusted ones
            adj = iv_aggregate(con, src, arm, "d_" + s, outcome, covariates, "cost__")
            plain = {a: st_.without_covariates() for a, st_ in adj.items()}
            adj = adj if covariates else None
            if control not in plain:
                raise InputError(f"control: no customer of the control arm {control!r} in the "
                                 "experiment")
            for a in sorted(plain):
                if a == control or plain[a].s(1) == 0:
                    continue
                effects.append(ReachedEffect(
                    a, s, wald(plain[a], plain[control], z),
                    tsls(adj[a], adj[control], z) if adj else None, tuple(covariates),
                    reached_cost(plain[a], plain[control], z, *_spend(funnel, a))
                    if s == "delivered" else None))
        crow = con.execute(f"SELECT avg(CAST({quote(outcome)} AS DOUBLE)) FROM {quote(outcomes)} "
                           f"WHERE CAST({quote(arm)} AS VARCHAR) = {literal(control)}").fetchone()
    finally:
        for name in (src, cust, joined):
            con.execute(f"DROP TABLE IF EXISTS {quote(name)}")
    notes = _notes(checks, cutoff)
    return TouchResult(checks, funnel, tuple(effects), control, float(crow[0] or 0.0), alpha,
                       notes)


def _spend(funnel: tuple[FunnelRow, ...], arm: str) -> tuple[float, float]:
    """An arm's spend on touches (the log's cost) and its delivered messages (one per
    customer and channel)."""
    rows = [f for f in funnel if f.arm == arm and f.channel != ALL_CHANNELS]
    return sum(f.cost for f in rows), sum(f.customers["delivered"] for f in rows)


def steps_sql(log: str, columns: TouchColumns, steps: list[str], present: dict[str, bool],
              start: dt.date | None, cutoff: dt.date | None) -> str:
    """THE touch aggregate: one row per (customer, channel) with the first time of each step
    seen before `cutoff`, touches, cost, and the counts the checks need."""
    ts = {s: f"CAST({quote(getattr(columns, s))} AS TIMESTAMP)" for s in steps}
    cut = f"TIMESTAMP '{cutoff.isoformat()} 00:00:00'" if cutoff else None
    # grouped by the ids as they are: the cast to text (the ids' common form) runs per group
    sel = [f"{quote(columns.customer_id)} AS cid__", f"{quote(columns.channel)} AS ch__",
           "count(*) AS touches"]
    for s in steps:
        keep = f" FILTER (WHERE {ts[s]} < {cut})" if cut else ""
        sel.append(f"min({ts[s]}){keep} AS {s}")
    late = [f"count(*) FILTER (WHERE {ts[s]} >= {cut})" for s in steps] if cut else []
    sel.append(f"{' + '.join(late) if late else '0'} AS late")
    order = [("sent", "delivered"), ("delivered", "opened"), ("opened", "clicked"),
             ("delivered", "redeemed")]
    bad = [f"{ts[b]} < {ts[a]}" for a, b in order if a in ts and b in ts]
    sel.append(f"count(*) FILTER (WHERE {' OR '.join(bad)}) AS out_of_order")
    # duplicates (same sent time twice): exact here for up to two touches per customer and
    # channel; larger groups are checked by `_duplicates` (a count DISTINCT over every group
    # would double the cost of this aggregate)
    sel.append(f"CASE WHEN count({ts['sent']}) = 2 AND min({ts['sent']}) = max({ts['sent']}) "
               "THEN 1 ELSE 0 END AS duplicates")
    sel.append(f"count({ts['sent']}) > 2 AS many_sent")
    first = f"LEAST({', '.join(ts.values())})"
    sel.append(f"count(*) FILTER (WHERE {first} < TIMESTAMP '{start.isoformat()} 00:00:00')"
               " AS before_start" if start else "0 AS before_start")
    cost = f"CAST({quote(columns.cost)} AS DOUBLE)" if present.get("cost") else "0.0"
    sel.append(f"COALESCE(sum({cost}), 0.0) AS cost")
    sel.append(f"count(*) - count({cost}) AS cost_missing" if present.get("cost")
               else "0 AS cost_missing")
    if present.get("arm"):
        a = f"CAST({quote(columns.arm)} AS VARCHAR)"
        # one logged arm per group and whether the group names more than one (hashes: min/max
        # of strings cost a third of this aggregate)
        sel += [f"any_value({a}) AS logged_arm",
                f"min(hash({a})) <> max(hash({a})) AS arm_varies"]
    else:
        sel += ["NULL AS logged_arm", "FALSE AS arm_varies"]
    return (f"SELECT CAST(cid__ AS VARCHAR) AS customer_id, CAST(ch__ AS VARCHAR) AS channel, "
            f"* EXCLUDE (cid__, ch__) FROM (SELECT {', '.join(sel)} FROM {quote(log)} "
            "GROUP BY cid__, ch__)")


def _check(con, log, joined, columns, present, absent, arms, untouched,
           channels) -> TouchChecks:
    """Count what is wrong with the log; raise InputError for what cannot be used."""
    known = ", ".join(literal(x) for x in arms)
    unt = ", ".join(literal(x) for x in untouched)
    chan = (f"count(*) FILTER (WHERE channel NOT IN ({', '.join(map(literal, channels))}))"
            if channels else "0")
    mismatch = (f"count(*) FILTER (WHERE arm__ NOT IN ({unt}) AND (logged_arm <> arm__ OR "
                "arm_varies))") if present["arm"] else "0"
    unknown_arm = (f"count(*) FILTER (WHERE logged_arm NOT IN ({known}))"
                   if present["arm"] else "0")
    row = con.execute(f"""SELECT
        COALESCE(sum(touches), 0), 0,
        COALESCE(sum(touches) FILTER (WHERE customer_id IS NULL OR channel IS NULL), 0),
        COALESCE(sum(touches) FILTER (WHERE arm__ IS NULL AND customer_id IS NOT NULL), 0),
        sum(out_of_order), sum(duplicates), sum(before_start), {chan}, {unknown_arm},
        {mismatch}, sum(late), sum(cost_missing)
        FROM {quote(joined)}""").fetchone()
    (n, n_cust, empty, outside, ooo, dup, before, chan_bad, arm_bad, mism, late,
     cost_missing) = (int(v or 0) for v in row)

    def customers(where: str) -> int:
        return int(con.execute(f"SELECT count(DISTINCT customer_id) FROM {quote(joined)} "
                               f"WHERE {where}").fetchone()[0])

    dup_example = None
    if not dup:
        dup, dup_example = _duplicates(con, log, joined, columns)

    def example(where: str) -> str:
        row = con.execute(f"SELECT customer_id, channel FROM {quote(joined)} WHERE {where} "
                          "ORDER BY 1, 2 LIMIT 1").fetchone()
        return f"{row[0]}, channel {row[1]!r}" if row else "?"

    if empty:
        raise InputError(f"touches: {empty:,} touches have an empty "
                         f"{columns.customer_id!r} or {columns.channel!r}")
    if outside:
        raise InputError(f"touches: {outside:,} touches for {customers('arm__ IS NULL'):,} "
                         "customers outside the "
                         f"experiment (e.g. customer {example('arm__ IS NULL')}); "
                         "refused: is it the log of another campaign?")
    if before:
        raise InputError(f"touches: {before:,} touches before the campaign start "
                         "(e.g. customer " + example("before_start > 0") + ")")
    if ooo:
        raise InputError(f"touches: {ooo:,} touches with steps out of order (a step before "
                         "the one it follows, e.g. opened before delivered; customer "
                         + example("out_of_order > 0") + ")")
    if dup:
        raise InputError(f"touches: {dup:,} duplicate touches (same customer, channel and "
                         f"{columns.sent!r} time; e.g. customer "
                         + (dup_example or example("duplicates > 0"))
                         + "): de-duplicate the log first")
    if chan_bad:
        raise InputError(f"touches: {chan_bad:,} touches on a channel not in the spec's "
                         f"[touches] channels ({', '.join(channels)}; e.g. customer "
                         + example("channel NOT IN (" + ", ".join(map(literal, channels))
                                   + ")") + ")")
    if arm_bad:
        raise InputError(f"touches: {arm_bad:,} customers' touches name an unknown arm in "
                         f"column {columns.arm!r} (arms: {', '.join(sorted(arms))})")
    if mism:
        raise InputError(f"touches: {mism:,} customers' touches name another arm than the one "
                         f"they were assigned in column {columns.arm!r}")
    if cost_missing:
        raise InputError(f"touches: {cost_missing:,} touches have no value in column "
                         f"{columns.cost!r}")
    rows = con.execute(f"""SELECT arm__, sum(touches) FROM {quote(joined)}
        WHERE arm__ IN ({unt}) GROUP BY 1 ORDER BY 1""").fetchall()
    contaminated = customers(f"arm__ IN ({unt})") if rows else 0
    return TouchChecks(n, n_cust, {r[0]: int(r[1]) for r in rows}, contaminated, late, absent)


def _duplicates(con, log, joined, columns) -> tuple[int, str | None]:
    """Duplicate sent times within the (customer, channel) groups of more than two touches."""
    if not con.execute(f"SELECT count(*) FROM {quote(joined)} WHERE many_sent").fetchone()[0]:
        return 0, None
    cid = f"CAST({quote(columns.customer_id)} AS VARCHAR)"
    ch = f"CAST({quote(columns.channel)} AS VARCHAR)"
    rows = con.execute(f"""SELECT l.customer_id, l.channel, count(*) - count(DISTINCT l.sent)
        FROM (SELECT {cid} AS customer_id, {ch} AS channel,
                     CAST({quote(columns.sent)} AS TIMESTAMP) AS sent FROM {quote(log)}) l
        SEMI JOIN (SELECT customer_id, channel FROM {quote(joined)} WHERE many_sent) g
          ON g.customer_id = l.customer_id AND g.channel = l.channel
        WHERE l.sent IS NOT NULL GROUP BY 1, 2 HAVING count(*) > count(DISTINCT l.sent)
        ORDER BY 1, 2""").fetchall()
    if not rows:
        return 0, None
    return sum(int(r[2]) for r in rows), f"{rows[0][0]}, channel {rows[0][1]!r}"


def _funnel(con, clean, cust, steps, outcomes, arm, outcome) -> tuple[FunnelRow, ...]:
    """Customers at each step and reactivated among them (`y__`), per arm and channel
    (`clean`: one row per customer and channel) and per arm over all channels (`cust`: one
    row per customer, so a customer counts once per step), with the arm's assigned count."""
    flag = ", ".join(f"CASE WHEN {s} IS NOT NULL THEN 1 ELSE 0 END AS {s}" for s in steps)
    names = ", ".join(steps)
    cnt = ", ".join(f"sum({s})" for s in steps)
    react = ", ".join(f"sum({s} * y)" for s in steps)
    rows = con.execute(f"""
        WITH j AS (
            SELECT arm__, channel, {flag}, touches, cost, y__ AS y FROM {clean}
            UNION ALL
            SELECT arm__, {literal(ALL_CHANNELS)}, {names}, touches, cost, y__ FROM {quote(cust)}
        )
        SELECT arm__, channel, {cnt}, {react}, sum(touches), sum(cost)
        FROM j GROUP BY arm__, channel ORDER BY arm__, channel = {literal(ALL_CHANNELS)} DESC,
                 channel""").fetchall()
    assigned = {r[0]: (int(r[1]), int(r[2] or 0)) for r in con.execute(
        f"SELECT CAST({quote(arm)} AS VARCHAR), count(*), sum(CAST({quote(outcome)} AS DOUBLE)) "
        f"FROM {quote(outcomes)} GROUP BY 1").fetchall()}
    k = len(steps)
    out = []
    for r in rows:
        n, y_all = assigned.get(r[0], (0, 0))
        customers = dict(zip(steps, (int(v) for v in r[2:2 + k])))
        reactivated = dict(zip(steps, (int(v) for v in r[2 + k:2 + 2 * k])))
        reactivated["assigned"] = y_all
        out.append(FunnelRow(r[0], r[1], n, customers, reactivated, int(r[2 + 2 * k]),
                             float(r[3 + 2 * k] or 0.0)))
    return tuple(out)


def _notes(c: TouchChecks, cutoff: dt.date | None) -> tuple[str, ...]:
    notes = [f"Touch log: {c.touches:,} touches for {c.customers:,} customers."]
    if c.contamination:
        parts = ", ".join(f"{n:,} for {a}" for a, n in c.contamination.items())
        notes.append(f"Contamination: {sum(c.contamination.values()):,} touches ({parts}; "
                     f"{c.contaminated_customers:,} customers) reached customers who should "
                     "not be touched; they are left out of the funnel and of reach (those "
                     "customers stay in their arm).")
    else:
        notes.append("Contamination: no touches for control or holdout customers.")
    if c.late_steps:
        notes.append(f"{c.late_steps:,} step times fall on or after {cutoff} (the report date "
                     "or the end of the outcome window): not yet counted.")
    if c.absent_columns:
        notes.append("The log has no column " + ", ".join(map(repr, c.absent_columns))
                     + ": those steps (or costs, or the arm check) are not reported.")
    return tuple(notes)




def experiment_touches(data: Any, log: Any, *, arm: str, control: str, outcome: str,
                       customer_col: str = "customer_id", covariates: tuple[str, ...] = (),
                       conversion_costs: dict[str, float] | None = None,
                       columns: TouchColumns = TouchColumns(),
                       channels: tuple[str, ...] | None = None, start: Any = None,
                       cutoff: Any = None, alpha: float = 0.05) -> TouchResult:
    """`analyze_touches` for an experiment table (DataFrame, file, relation) with one row per
    customer: `customer_col`, the `arm` column, the 0/1 `outcome` and the covariates. The
    notebook and `report --data ... --touches LOG` face of the touch analysis."""
    from upliftlab.sources import connect, parse_date, register, require_columns

    con = connect()
    try:
        have = register(con, data, "ul_touch_data")
        require_columns(have, [customer_col, arm, outcome, *covariates], "data")
        keep = ", ".join(quote(c) for c in dict.fromkeys([arm, outcome, *covariates]))
        con.execute(f"CREATE TEMP TABLE ul_touch_exp AS SELECT CAST({quote(customer_col)} AS "
                    f"VARCHAR) AS customer_id, {keep} FROM ul_touch_data")
        dup = con.execute("SELECT customer_id, count(*) FROM ul_touch_exp GROUP BY 1 "
                          "HAVING count(*) > 1 LIMIT 1").fetchone()
        if dup:
            raise InputError(f"data: customer {dup[0]} appears {dup[1]} times in column "
                             f"{customer_col!r}; the touch analysis needs one row per customer")
        log_cols = register(con, log, "ul_touch_log")
        return analyze_touches(
            con, log="ul_touch_log", log_columns=log_cols, columns=columns,
            assigned="ul_touch_exp", outcomes="ul_touch_exp", arm=arm, control=control,
            outcome=outcome, covariates=tuple(covariates), conversion_costs=conversion_costs,
            channels=channels, start=None if start is None else parse_date(start, "start"),
            cutoff=None if cutoff is None else parse_date(cutoff, "cutoff"), alpha=alpha)
    finally:
        con.close()


__all__ = ["ALL_CHANNELS", "STEPS", "TouchColumns", "TouchChecks", "FunnelRow", "ReachedEffect",
           "TouchResult", "analyze_touches", "experiment_touches", "steps_sql", "wilson"]
