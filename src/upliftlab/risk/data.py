"""Point-in-time training data for the churn-risk model: active customers at past snapshots,
their features from rows strictly before each snapshot, and the label "no purchase in H days".

The purchase features are the dormant cohort's own query (`cohort.cohort_sql` with
``population="active"``), so the risk model and the cohort never disagree on a definition.
Engagement events (optional) add counts per event type over 7/30/90 days and days since the last.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from upliftlab.cohort import DEFAULT_DISCOUNT_COL, DEFAULT_DORMANT_AFTER, build_cohort_relation
from upliftlab.errors import InputError
from upliftlab.session import Session, require_session
from upliftlab.sources import (ColumnMap, describe, literal, parse_date, quote, register,
                               require_columns)

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

EVENT_WINDOWS: tuple[int, ...] = (7, 30, 90)
LABEL = "dormant"
# cohort columns that are identifiers or dates, not model features
NON_FEATURES = ("customer_id", "first_purchase", "last_purchase", "tier", "snapshot", LABEL)
_ids = itertools.count()


@dataclass(frozen=True)
class EventColumns:
    """Names of the columns of an engagement events table."""

    customer_id: str = "customer_id"
    timestamp: str = "ts"
    event_type: str = "event_type"


def event_feature_name(event_type: str, suffix: str) -> str:
    """``ev_<type>_<suffix>``, the type reduced to a safe identifier."""
    slug = re.sub(r"[^a-z0-9]+", "_", str(event_type).lower()).strip("_") or "other"
    return f"ev_{slug}_{suffix}"


def _ts_at(day: date) -> str:
    return f"TIMESTAMP '{day.isoformat()} 00:00:00'"


def check_horizon(horizon: Any) -> int:
    """The label horizon in whole days (> 0), or InputError naming `horizon`."""
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon <= 0:
        raise InputError(f"horizon must be a whole number of days > 0, got {horizon!r}")
    return horizon


def data_range(con: "duckdb.DuckDBPyConnection", transactions: Any,
               columns: ColumnMap = ColumnMap()) -> tuple[date, date]:
    """First and last purchase day of `transactions` (InputError when it has none)."""
    view = f"upliftlab_risk_range_{next(_ids)}"
    names = register(con, transactions, view)
    require_columns(names, [columns.customer_id, columns.timestamp], describe(transactions))
    ts = f"TRY_CAST({quote(columns.timestamp)} AS TIMESTAMP)"
    first, last = con.execute(f"SELECT min({ts}), max({ts}) FROM {quote(view)}").fetchall()[0]
    con.execute(f"DROP VIEW IF EXISTS {quote(view)}")
    if first is None:
        raise InputError(f"{describe(transactions)}: no transactions")
    return first.date(), last.date()


def check_snapshot(snapshot: date, first: date, last: date, *, horizon: int | None,
                   min_history_days: int, label: str) -> None:
    """Refuse a snapshot with less than `min_history_days` of history before it, or (when a
    `horizon` is given) whose label window [snapshot, snapshot + horizon) runs past the data."""
    history = (snapshot - first).days
    if history < min_history_days:
        have = f"only {history} days of history" if history > 0 else "no history"
        raise InputError(f"snapshot {snapshot}: {have} in "
                         f"{label} (first purchase {first}); the model needs at least "
                         f"{min_history_days}")
    if horizon is not None and snapshot + timedelta(days=horizon) > last + timedelta(days=1):
        raise InputError(f"snapshot {snapshot}: its label window of {horizon} days ends "
                         f"{snapshot + timedelta(days=horizon)}, after the data ({label} runs to "
                         f"{last}); the label is not observed yet")


def event_features_sql(view: str, as_of: date, event_types: list[str],
                       columns: EventColumns = EventColumns()) -> str:
    """Per customer: count of each event type over `EVENT_WINDOWS` days before `as_of` and days
    since the last one (NULL if none), from rows with ts < as_of only."""
    cid, ts, kind = quote(columns.customer_id), quote(columns.timestamp), quote(columns.event_type)
    tsx = f"CAST({ts} AS TIMESTAMP)"
    day = f"DATE '{as_of.isoformat()}'"
    parts = []
    for t in event_types:
        is_t = f"CAST({kind} AS VARCHAR) = {literal(t)}"
        for n in EVENT_WINDOWS:
            parts.append(f"count_if({is_t} AND {tsx} >= {_ts_at(as_of - timedelta(days=n))}) "
                         f"AS {quote(event_feature_name(t, f'{n}d'))}")
        parts.append(f"datediff('day', CAST(max({tsx}) FILTER (WHERE {is_t}) AS DATE), {day}) "
                     f"AS {quote(event_feature_name(t, 'days_since'))}")
    select = ",\n  ".join([f"{cid} AS customer_id", *parts])
    return (f"SELECT\n  {select}\nFROM {quote(view)}\nWHERE {tsx} < {_ts_at(as_of)}\n"
            f"GROUP BY {cid}")


def event_types(con: "duckdb.DuckDBPyConnection", view: str,
                columns: EventColumns = EventColumns()) -> list[str]:
    rows = con.execute(f"SELECT DISTINCT CAST({quote(columns.event_type)} AS VARCHAR) FROM "
                       f"{quote(view)} WHERE {quote(columns.event_type)} IS NOT NULL "
                       "ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def active_features(con: "duckdb.DuckDBPyConnection", transactions: Any, as_of: Any, *,
                    dormant_after: int = DEFAULT_DORMANT_AFTER, columns: ColumnMap = ColumnMap(),
                    discount_col: str | None = DEFAULT_DISCOUNT_COL, events: Any = None,
                    event_columns: EventColumns = EventColumns(),
                    types: list[str] | None = None) -> "duckdb.DuckDBPyRelation":
    """The active customers at `as_of` with their point-in-time features, a lazy relation on
    `con`: the cohort's features (same SQL) plus, with `events`, the engagement features of
    `types` (default: every type in the table). Counts of customers without events are 0."""
    d = parse_date(as_of, "as-of date")
    rel = build_cohort_relation(con, transactions, d, dormant_after=dormant_after,
                                columns=columns, discount_col=discount_col, population="active")
    if events is None:
        return rel
    k = next(_ids)
    ev = f"upliftlab_risk_events_{k}"
    names = register(con, events, ev)
    require_columns(names, [event_columns.customer_id, event_columns.timestamp,
                            event_columns.event_type], describe(events))
    types = event_types(con, ev, event_columns) if types is None else list(types)
    if not types:
        raise InputError(f"{describe(events)}: no events")
    feats = f"upliftlab_risk_evfeat_{k}"
    con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(feats)} AS "
                f"{event_features_sql(ev, d, types, event_columns)}")
    cols = [c for c in con.sql(f"SELECT * FROM {quote(feats)} LIMIT 0").columns
            if c != "customer_id"]
    # customers without any event: counts are 0, days-since stays NULL (never)
    picks = ", ".join(f"coalesce(e.{quote(c)}, 0) AS {quote(c)}" if not c.endswith("days_since")
                      else f"e.{quote(c)}" for c in cols)
    base = f"upliftlab_risk_base_{k}"
    con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(base)} AS {rel.sql_query()}")
    return con.sql(f"SELECT b.*, {picks} FROM {quote(base)} b LEFT JOIN {quote(feats)} e "
                   "ON b.customer_id = e.customer_id ORDER BY b.customer_id")


def label_sql(features_view: str, tx_view: str, snapshot: date, horizon: int,
              columns: ColumnMap = ColumnMap()) -> str:
    """The features with the label: 1 when the customer has no purchase in
    [snapshot, snapshot + horizon), else 0."""
    cid, ts = quote(columns.customer_id), quote(columns.timestamp)
    tsx = f"TRY_CAST({ts} AS TIMESTAMP)"
    end = snapshot + timedelta(days=horizon)
    return (f"SELECT f.*, DATE '{snapshot.isoformat()}' AS snapshot,\n"
            f"  CAST(f.customer_id NOT IN (SELECT {cid} FROM {quote(tx_view)} WHERE {tsx} >= "
            f"{_ts_at(snapshot)} AND {tsx} < {_ts_at(end)}) AS INTEGER) AS {LABEL}\n"
            f"FROM {quote(features_view)} f")


def training_data(transactions: Any, snapshots: list[Any], horizon: int, *,
                  dormant_after: int = DEFAULT_DORMANT_AFTER, columns: ColumnMap = ColumnMap(),
                  discount_col: str | None = DEFAULT_DISCOUNT_COL, events: Any = None,
                  event_columns: EventColumns = EventColumns(), types: list[str] | None = None,
                  min_history_days: int | None = None,
                  session: Session | None = None) -> "pd.DataFrame":
    """Stacked point-in-time rows: one per (snapshot, active customer), features from rows
    before the snapshot, `snapshot`, and the label `dormant` (no purchase in the `horizon`
    days from the snapshot on). Every snapshot needs `min_history_days` (default
    `dormant_after`) of history and a fully observed label window, else InputError.

    Runs in `session` (its settings: UTC), else in a session of its own; never on a bare
    connection, whose settings (time zone) are the caller's."""
    import pandas as pd

    horizon = check_horizon(horizon)
    if not snapshots:
        raise InputError("snapshots: give at least one snapshot date")
    days = sorted({parse_date(s, "snapshot") for s in snapshots})
    min_history = dormant_after if min_history_days is None else min_history_days
    own = session is None
    session = Session() if own else require_session(session, "training_data")
    con = session.con
    try:
        label = describe(transactions)
        first, last = data_range(con, transactions, columns)
        for s in days:
            check_snapshot(s, first, last, horizon=horizon, min_history_days=min_history,
                           label=label)
        k = next(_ids)
        tx = f"upliftlab_risk_tx_{k}"
        register(con, transactions, tx)
        if events is not None and types is None:
            ev = f"upliftlab_risk_types_{k}"
            register(con, events, ev)
            types = event_types(con, ev, event_columns)
        frames = []
        for s in days:
            rel = active_features(con, con.view(tx), s, dormant_after=dormant_after,
                                  columns=columns, discount_col=discount_col, events=events,
                                  event_columns=event_columns, types=types)
            fv = f"upliftlab_risk_feat_{k}"
            con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(fv)} AS {rel.sql_query()}")
            frames.append(con.execute(label_sql(fv, tx, s, horizon, columns)).df())
    finally:
        if own:
            session.close()
    out = pd.concat(frames, ignore_index=True)
    out["tier"] = out["tier"].astype("str")
    return out


def feature_columns(frame: "pd.DataFrame") -> list[str]:
    """The model's feature columns of a training or scoring frame (numeric, not identifiers)."""
    return [c for c in frame.columns if c not in NON_FEATURES]
