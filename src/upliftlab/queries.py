"""Queries of the outcome side, each defined once: "the purchases within a window" (read by the
outcomes and by the baseline measured from history), the baseline per tier, the checks of an
outcome source, and the outcomes joined with the cohort. Written in DuckDB SQL; engine/dialect.py
renders them for another engine (golden strings of both in tests/golden/).
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


def baseline_sql(cohort: str, transactions: str, start: dt.date, end: dt.date,
                 columns: ColumnMap = ColumnMap()) -> str:
    """Per tier of `cohort`: customers, and how many of them bought in [start, end)."""
    return f"""
        SELECT CAST(c.tier AS VARCHAR), count(*), count(r.customer_id)
        FROM {quote(cohort)} c LEFT JOIN (
            SELECT DISTINCT customer_id FROM ({window_purchases_sql(transactions, start, end,
                                                                    columns)})
        ) r ON r.customer_id = CAST(c.customer_id AS VARCHAR)
        GROUP BY 1"""


def source_facts_sql(transactions: str, timestamp: str, start: dt.date) -> str:
    """Rows, first and last timestamp, rows from `start` on and the last of them."""
    ts = f"CAST({quote(timestamp)} AS TIMESTAMP)"
    return (f"SELECT count(*), min({ts}), max({ts}), count(*) FILTER (WHERE {ts} >= "
            f"{day_start_sql(start)}), max({ts}) FROM {quote(transactions)}")


def text_id_sql(assigned: str) -> str:
    """One customer id of `assigned` (SQL of a relation with customer_id text) that is not an
    integer's text, if any."""
    return (f"SELECT customer_id FROM ({assigned}) a WHERE NOT "
            "regexp_full_match(customer_id, '-?[0-9]+') LIMIT 1")


def source_match_sql(transactions: str, columns: ColumnMap, start: dt.date, assigned: str) -> str:
    """Purchases from `start` on by customers of `assigned` (SQL), by others, and one other id."""
    cid, ts = quote(columns.customer_id), quote(columns.timestamp)
    return f"""
        SELECT count(*) FILTER (WHERE a.customer_id IS NOT NULL),
               count(*) FILTER (WHERE a.customer_id IS NULL),
               any_value(t.cid) FILTER (WHERE a.customer_id IS NULL)
        FROM (SELECT CAST({cid} AS VARCHAR) AS cid FROM {quote(transactions)}
              WHERE CAST({ts} AS TIMESTAMP) >= {day_start_sql(start)}) t
        LEFT JOIN ({assigned}) a ON a.customer_id = t.cid"""


def outcomes_with_cohort_sql(outcomes: str, cohort: str, columns: list[str]) -> str:
    """The outcomes with the cohort's `columns` (covariates, tier) of each customer (NULL for
    one no longer in the cohort)."""
    sel = ", ".join(f"c.{quote(c)}" for c in columns)
    return f"""
        SELECT o.*{', ' + sel if sel else ''} FROM {quote(outcomes)} o
        LEFT JOIN {quote(cohort)} c ON CAST(c.customer_id AS VARCHAR) = o.customer_id"""
