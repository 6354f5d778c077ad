"""Queries shared by stages, each defined once: "the purchases within a window" (read by the
outcomes and by the baseline measured from history). Written in DuckDB SQL; engine/dialect.py
renders them for another engine (golden strings in tests/golden/).
"""

from __future__ import annotations

import datetime as dt

from upliftlab.sources import ColumnMap, quote


def day_start_sql(day: dt.date) -> str:
    """The timestamp literal of `day` at 00:00 (an as-of date D means "before D 00:00")."""
    return f"TIMESTAMP '{day.isoformat()} 00:00:00'"


def window_purchases_sql(transactions: str, start: dt.date, end: dt.date,
                         columns: ColumnMap = ColumnMap()) -> str:
    """One row per purchase in [start 00:00, end 00:00) of the relation `transactions` (the
    user's columns, named by `columns`): customer_id (text), ts (TIMESTAMP), amount (DOUBLE)."""
    cid, ts, amt = quote(columns.customer_id), quote(columns.timestamp), quote(columns.amount)
    return (f"SELECT CAST({cid} AS VARCHAR) AS customer_id, CAST({ts} AS TIMESTAMP) AS ts, "
            f"CAST({amt} AS DOUBLE) AS amount\n    FROM {quote(transactions)}\n"
            f"    WHERE CAST({ts} AS TIMESTAMP) >= {day_start_sql(start)} "
            f"AND CAST({ts} AS TIMESTAMP) < {day_start_sql(end)}")
