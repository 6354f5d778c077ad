"""The cohort's input checks and DuckDB workarounds: the transactions' columns typed and cleaned
(one view), the facts every error message needs (cheap statistics first, the rows only when in
doubt), the one-line errors, and the cleanup of a caller's connection.

Public because a second engine runs the same checks (engine/spark_steps.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upliftlab.errors import InputError
from upliftlab.sources import INTEGER_TYPES, ColumnMap, is_number, quote

if TYPE_CHECKING:
    import duckdb

TS_TYPES = ("TIMESTAMP", "DATE")  # prefixes: TIMESTAMP_NS, TIMESTAMP WITH TIME ZONE, ...
CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".txt", ".csv.zst")


def column_types(con: "duckdb.DuckDBPyConnection", view: str) -> dict[str, str]:
    rows = con.execute(f"DESCRIBE SELECT * FROM {quote(view)}").fetchall()
    return {row[0]: row[1] for row in rows}


def is_csv(source: Any) -> bool:
    return isinstance(source, (str, Path)) and str(source).lower().endswith(CSV_SUFFIXES)


def clean_view_sql(raw: str, types: dict[str, str], columns: ColumnMap, disc: str | None,
                    label: str) -> str:
    """SELECT over the raw view with typed columns customer_id, ts, amount[, discount_used] and
    the raw values beside them (ts_raw, amount_raw, discount_raw) for the checks."""
    c, t, a = columns.customer_id, columns.timestamp, columns.amount
    t_type, a_type = types[t].upper(), types[a].upper()
    if t_type.startswith(TS_TYPES):
        ts = f"CAST({quote(t)} AS TIMESTAMP)"
    elif t_type == "VARCHAR":
        # trim() keeps DuckDB (2.0) from pushing the cast into the CSV reader, where it
        # becomes a strict cast that fails on the first bad value (duckdb/duckdb#23818)
        ts = f"TRY_CAST(trim({quote(t)}) AS TIMESTAMP)"
    else:
        raise InputError(f"{label}: column {t!r} has type {types[t]}; expected timestamps or dates "
                         "(e.g. 2024-03-31 14:05:00)")
    if is_number(a_type):
        amount = f"CAST({quote(a)} AS DOUBLE)"
    elif a_type == "VARCHAR":
        amount = f"TRY_CAST(trim({quote(a)}) AS DOUBLE)"  # trim(): see ts above
    else:
        raise InputError(f"{label}: column {a!r} has type {types[a]}; expected numbers")
    cols = [f"{quote(c)} AS customer_id", f"{ts} AS ts", f"{amount} AS amount",
            f"{quote(t)} AS ts_raw", f"{quote(a)} AS amount_raw"]
    if disc is not None:
        d_type = types[disc].upper()
        if d_type == "BOOLEAN":
            flag = quote(disc)
        elif d_type.startswith(INTEGER_TYPES):
            # 0/1 only: anything else becomes NULL here and is reported by the checks
            flag = f"CASE WHEN {quote(disc)} = 1 THEN TRUE WHEN {quote(disc)} = 0 THEN FALSE END"
        elif d_type == "VARCHAR":
            flag = f"TRY_CAST(trim({quote(disc)}) AS BOOLEAN)"  # trim(): see ts above
        else:
            raise InputError(f"{label}: column {disc!r} has type {types[disc]}; expected "
                             "true/false or 0/1")
        cols += [f"{flag} AS discount_used", f"{quote(disc)} AS discount_raw"]
    return f"SELECT {', '.join(cols)} FROM {quote(raw)}"


def quick_check_sqls(view: str, has_disc: bool, has_stats: bool) -> list[str]:
    """Whole-table facts from plain count/min/max aggregates, which DuckDB answers from Parquet
    (or DuckDB table) statistics without reading the data, but only when every aggregate of a
    query can be: so the sum goes in a query of its own there. Clean input then costs almost
    nothing; any doubt sends it to `detail_check_sql`, which looks at the rows before D."""
    parts = ["count(*) AS n_rows", "count(ts) AS n_ts", "min(ts) AS first_ts",
             "max(ts) AS last_ts", "count(customer_id) AS n_ids", "count(amount) AS n_amount",
             "min(amount) AS min_amount"]
    if has_disc:
        parts += ["count(discount_raw) AS n_disc_raw", "count(discount_used) AS n_disc"]
    # a sum, not isnan(): Parquet statistics leave NaN out, and DuckDB (2.0) then folds
    # isnan(amount) to false (duckdb/duckdb#25521); NaN and infinity always reach a sum
    total = "sum(amount) AS sum_amount"
    if not has_stats:  # a CSV or a frame is read in full anyway: once is enough
        return [f"SELECT {', '.join([*parts, total])} FROM {quote(view)}"]
    return [f"SELECT {', '.join(parts)} FROM {quote(view)}", f"SELECT {total} FROM {quote(view)}"]


def is_clean(facts: dict[str, Any]) -> bool:
    n = facts["n_rows"]
    return (n == 0 or (facts["n_ts"] == n and facts["n_ids"] == n and facts["n_amount"] == n
                       and facts["min_amount"] >= 0 and math.isfinite(facts["sum_amount"]))
            ) and facts.get("n_disc_raw") == facts.get("n_disc")


def detail_check_sql(view: str, as_of: date, has_disc: bool) -> str:
    """Every fact the error messages need: counts and one example of each problem. On Parquet,
    isnan() may be folded away (see `quick_check_sqls`); sum_before still shows NaN then."""
    before = f"ts < TIMESTAMP '{as_of.isoformat()} 00:00:00'"
    not_finite = "(amount IS NULL OR isnan(amount) OR isinf(amount))"
    parts = [
        "count(*) FILTER (WHERE ts_raw IS NULL) AS missing_ts",
        "count(*) FILTER (WHERE ts_raw IS NOT NULL AND ts IS NULL) AS bad_ts",
        "any_value(CAST(ts_raw AS VARCHAR)) FILTER (WHERE ts_raw IS NOT NULL AND ts IS NULL) "
        "AS bad_ts_example",
        f"count(*) FILTER (WHERE {before} AND customer_id IS NULL) AS null_ids",
        f"count(*) FILTER (WHERE {before} AND amount_raw IS NULL) AS missing_amount",
        f"count(*) FILTER (WHERE {before} AND amount_raw IS NOT NULL AND {not_finite}) "
        "AS bad_amount",
        f"any_value(CAST(amount_raw AS VARCHAR)) FILTER (WHERE {before} AND amount_raw IS NOT "
        f"NULL AND {not_finite}) AS bad_amount_example",
        f"count(*) FILTER (WHERE {before} AND amount < 0) AS neg_amount",
        f"min(amount) FILTER (WHERE {before} AND amount < 0) AS neg_example",
        f"arg_min(CAST(customer_id AS VARCHAR), amount) FILTER (WHERE {before} AND amount < 0) "
        "AS neg_customer",
        f"sum(amount) FILTER (WHERE {before}) AS sum_before",
    ]
    if has_disc:
        parts += [
            f"count(*) FILTER (WHERE {before} AND discount_raw IS NOT NULL "
            "AND discount_used IS NULL) AS bad_disc",
            f"any_value(CAST(discount_raw AS VARCHAR)) FILTER (WHERE {before} "
            "AND discount_raw IS NOT NULL AND discount_used IS NULL) AS bad_disc_example",
        ]
    return f"SELECT {', '.join(parts)} FROM {quote(view)}"


def input_facts(con: "duckdb.DuckDBPyConnection", view: str, as_of: date, has_disc: bool,
           has_stats: bool) -> dict[str, Any]:
    def one(sql: str) -> dict[str, Any]:
        cur = con.execute(sql)
        # fetchall: DuckDB 2.0 refuses other work on a connection with an unfinished result
        return dict(zip([x[0] for x in cur.description], cur.fetchall()[0]))

    facts: dict[str, Any] = {}
    for sql in quick_check_sqls(view, has_disc, has_stats):
        facts.update(one(sql))
    if not is_clean(facts):
        facts.update(one(detail_check_sql(view, as_of, has_disc)))
    return facts


def check_input(facts: dict[str, Any], as_of: date, label: str, columns: ColumnMap,
           disc: str | None) -> None:
    c, t, a = columns.customer_id, columns.timestamp, columns.amount

    def rows(n: int) -> str:
        return f"{n} row" if n == 1 else f"{n} rows"

    if facts["n_rows"] == 0:
        raise InputError(f"{label}: no transactions")
    if facts.get("bad_ts"):
        raise InputError(f"{label}: column {t!r} has {rows(facts['bad_ts'])} that are not "
                         f"timestamps, e.g. {facts['bad_ts_example']!r} "
                         "(expected e.g. 2024-03-31 or 2024-03-31 14:05:00)")
    if facts.get("missing_ts"):
        raise InputError(f"{label}: column {t!r} is empty in {rows(facts['missing_ts'])}")
    first, last = facts["first_ts"], facts["last_ts"]
    start = datetime.combine(as_of, datetime.min.time())
    if first >= start or as_of > last.date() + timedelta(days=1):
        raise InputError(f"{label}: as-of date {as_of} is outside the data, whose transactions "
                         f"run from {first.date()} to {last.date()}; choose a date after the "
                         "first transaction and at most one day after the last")
    if facts.get("null_ids"):
        raise InputError(f"{label}: column {c!r} is empty in {rows(facts['null_ids'])} before "
                         f"the as-of date {as_of}")
    if facts.get("missing_amount"):
        raise InputError(f"{label}: column {a!r} is empty in {rows(facts['missing_amount'])} "
                         f"before the as-of date {as_of}")
    if facts.get("bad_amount"):
        raise InputError(f"{label}: column {a!r} has {rows(facts['bad_amount'])} that are not "
                         f"finite numbers, e.g. {facts['bad_amount_example']!r}")
    if facts.get("neg_amount"):
        raise InputError(f"{label}: column {a!r} has {rows(facts['neg_amount'])} with a negative "
                         f"amount, e.g. {facts['neg_example']:g} for customer "
                         f"{facts['neg_customer']} (returns must be netted out before the cohort)")
    if facts.get("bad_disc"):
        raise InputError(f"{label}: column {disc!r} has {rows(facts['bad_disc'])} that are not "
                         f"true/false or 0/1, e.g. {facts['bad_disc_example']!r}")
    if facts.get("sum_before") is not None and not math.isfinite(facts["sum_before"]):
        raise InputError(f"{label}: column {a!r} has values that are not finite numbers "
                         f"(NaN or infinity) before the as-of date {as_of}")


def engine_error_text(exc: BaseException) -> str:
    """The useful lines of a DuckDB error (its first line, plus the CSV line/value if any)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    keep = lines[:1] + [ln for ln in lines[1:4] if ln.startswith(("Original Line", "Error when"))]
    return " ".join(keep) if keep else type(exc).__name__


@contextmanager
def reading(label: str) -> Iterator[None]:
    """Data errors that surface only while the cohort query reads (a file changed or damaged
    after the checks) become InputError; anything else stays a bug with its traceback."""
    import duckdb

    try:
        yield
    except (duckdb.ConversionException, duckdb.InvalidInputException) as exc:
        raise InputError(f"cannot read {label}: {engine_error_text(exc)}") from None


def drop_views(con: "duckdb.DuckDBPyConnection", views: tuple[str, ...]) -> None:
    import duckdb

    for v in views:
        try:
            con.execute(f"DROP VIEW IF EXISTS {quote(v)}")
        except duckdb.TransactionException:
            # the caller's transaction failed (the error being raised says why); its rollback
            # removes these views, and a second error here would hide the first
            return
        try:
            con.unregister(v)
        except Exception:  # noqa: BLE001 - not a registered object: nothing to undo
            pass
