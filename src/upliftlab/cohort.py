"""The dormant cohort: who has gone quiet as of a date, in which tier, with which features.

One SQL query (`cohort_sql`) over a transactions table, run by DuckDB on CSV, Parquet, a
`file.duckdb:table` or a DataFrame, so tens of millions of rows never pass through pandas.

Semantics (as-of date D, "as known at the start of day D"):

* Only transactions with ``ts < D 00:00`` are used. Rows dated on D or later never change the
  cohort: they are left out of every feature, and of the value checks (NULL ids, negative or
  missing amounts). They do count for the as-of range check (the data must reach to D - 1 day
  or beyond) and their timestamps must parse, since a bad timestamp cannot be placed before or
  after D.
* ``days_since_last = D - date(last purchase)``, in whole days, at least 1. A customer is
  dormant iff ``days_since_last >= dormant_after`` (default 90): a purchase exactly
  ``dormant_after`` days before D counts as dormant, one ``dormant_after - 1`` days before does
  not. At least one purchase before D is required, so customers with only later purchases are
  not in the cohort.
* Tiers split ``days_since_last`` into half-open ranges ``[lower, upper)``: the default
  ``"short=180,mid=365,long"`` gives short [90, 180), mid [180, 365), long [365, inf).
* Windows: "the N days before D" means ``ts >= D - N days`` (and ``ts < D``), for N in
  `WINDOWS`.

Output columns, one row per dormant customer, sorted by ``customer_id`` (int or str):
``customer_id, first_purchase, last_purchase`` (dates), ``days_since_last, tier,
orders_total, orders_180d, orders_365d, orders_730d, revenue_total, revenue_180d,
revenue_365d`` (the pre-period covariate), ``revenue_730d, avg_order_value`` (revenue_total /
orders_total), ``tenure_days`` (D - first purchase), ``mean_gap_days`` ((last - first) /
(orders_total - 1) in days, NULL for one-purchase customers), ``overdue_ratio``
(days_since_last / mean_gap_days, NULL when mean_gap_days is NULL or 0), ``trend`` ((recent -
prior) / (recent + prior) with recent = orders in the 365 days before D and prior = orders in
the 365 days before those, in [-1, 1], 0 when both are 0), and, when the table has a discount
column (boolean or 0/1, default name ``discount_used``), ``discount_share`` (share of the
customer's orders before D that used a discount; a price-sensitivity signal for coupons).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upliftlab._files import staged_file
from upliftlab.errors import InputError, SpecError
from upliftlab.sources import (ColumnMap, connect, describe, literal, parse_date, quote, register,
                               require_columns)
from upliftlab.spec import DEFAULT_TIERS_TEXT, Tier, parse_tiers  # the one tier rule
from upliftlab.spec import check_dormant_after as _check_dormant_after
from upliftlab.spec import check_tiers as _check_tiers

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

DEFAULT_DORMANT_AFTER = 90
DEFAULT_DISCOUNT_COL = "discount_used"
# who `cohort_sql` selects: the dormant (the cohort) or the still active (churn-risk features)
POPULATIONS = ("dormant", "active")
# the look-back windows (days before D) of the orders_Nd / revenue_Nd features; trend needs 365
# and 730, so they must stay in the list
WINDOWS: tuple[int, ...] = (180, 365, 730)

FEATURE_COLUMNS: tuple[str, ...] = (
    "customer_id", "first_purchase", "last_purchase", "days_since_last", "tier", "orders_total",
    *(f"orders_{n}d" for n in WINDOWS), "revenue_total", *(f"revenue_{n}d" for n in WINDOWS),
    "avg_order_value", "tenure_days", "mean_gap_days", "overdue_ratio", "trend",
)

# what `tier_summary` averages per tier (discount_share too, when present)
SUMMARY_FEATURES: tuple[str, ...] = ("days_since_last", "orders_total", "revenue_365d",
                                     "tenure_days", "overdue_ratio", "trend")

_OUTPUT_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
_TS_TYPES = ("TIMESTAMP", "DATE")  # prefixes: TIMESTAMP_NS, TIMESTAMP WITH TIME ZONE, ...
_NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                  "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL")
_INT_TYPES = _NUMERIC_TYPES[:10]
_CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".txt", ".csv.zst")
_view_ids = itertools.count()


# --------------------------------------------------------------------------------------- tiers

def _resolve_tiers(tiers: str | tuple[Tier, ...] | None, dormant_after: int) -> tuple[Tier, ...]:
    _check_dormant_after(dormant_after)
    if tiers is None:
        try:
            return parse_tiers(DEFAULT_TIERS_TEXT, dormant_after)
        except SpecError:
            raise SpecError(f"dormant-after is {dormant_after} days, which does not fit the "
                            f"default tiers {DEFAULT_TIERS_TEXT!r}; give tiers whose first bound "
                            f"is above {dormant_after} (e.g. --tiers "
                            f"'short={dormant_after * 2},long')") from None
    if isinstance(tiers, str):
        return parse_tiers(tiers, dormant_after)
    # (name, lower, upper) tuples are accepted too
    return _check_tiers(tuple(t if isinstance(t, Tier) else Tier(*t) for t in tiers),
                        dormant_after)


def _as_date(as_of: Any) -> date:
    """The as-of date from a date, a midnight datetime/Timestamp or an ISO string."""
    if isinstance(as_of, datetime) and (as_of.hour, as_of.minute, as_of.second,
                                        as_of.microsecond) != (0, 0, 0, 0):
        raise InputError(f"as-of {as_of} must be a date (midnight), not a time of day")
    return parse_date(as_of, "as-of date")


# ----------------------------------------------------------------------------------- the query

def cohort_sql(view: str, as_of: date | str, *, dormant_after: int = DEFAULT_DORMANT_AFTER,
               tiers: str | tuple[Tier, ...] | None = None, columns: ColumnMap = ColumnMap(),
               discount_col: str | None = None, population: str = "dormant") -> str:
    """THE cohort query over `view` (clean, typed columns: see the module docstring).

    `population="active"` selects the customers who are NOT dormant (a purchase in the
    `dormant_after` days before D) with the same features and ``tier = 'active'``: the
    point-in-time features of the churn-risk model (`upliftlab.risk`) come from this one query.

    `view` must have the customer id, a TIMESTAMP and a numeric amount (names from `columns`)
    and, when `discount_col` is given, a BOOLEAN discount flag. Cut-off dates are inlined as
    literals and the SQL is plain (CTEs, CASE, count/count_if/sum/min/max/avg, DATE/TIMESTAMP
    literals, CAST), which Spark SQL also runs; the one DuckDB spelling, the day difference of
    two dates, lives in `_days_between` for a second engine to swap.
    """
    d = _as_date(as_of)
    tiers = _resolve_tiers(tiers, dormant_after)
    if population not in POPULATIONS:
        raise InputError(f"population {population!r}: expected one of {', '.join(POPULATIONS)}")
    cid, ts, amt = quote(columns.customer_id), quote(columns.timestamp), quote(columns.amount)

    def ts_at(day: date) -> str:
        return f"TIMESTAMP '{day.isoformat()} 00:00:00'"

    since = {n: ts_at(d - timedelta(days=n)) for n in WINDOWS}
    aggs = [f"min({ts}) AS first_ts", f"max({ts}) AS last_ts", "count(*) AS orders_total"]
    aggs += [f"CAST(count_if({ts} >= {since[n]}) AS BIGINT) AS orders_{n}d" for n in WINDOWS]
    aggs += [f"sum({amt}) AS revenue_total"]
    aggs += [f"sum(CASE WHEN {ts} >= {since[n]} THEN {amt} ELSE 0.0 END) AS revenue_{n}d"
             for n in WINDOWS]
    extra = ""
    if discount_col is not None:
        disc = quote(discount_col)
        # NULL flags are left out of the share rather than counted as "no discount"
        aggs += [f"count_if({disc}) AS discount_orders", f"count({disc}) AS flagged_orders"]
        extra = (",\n  CAST(discount_orders AS DOUBLE) / NULLIF(flagged_orders, 0) "
                 "AS discount_share")
    tier_case = "\n".join(
        f"    WHEN days_since_last < {t.upper} THEN {literal(t.name)}" for t in tiers[:-1])
    tier_expr = (f"CASE\n{tier_case}\n    ELSE {literal(tiers[-1].name)}\n  END"
                 if len(tiers) > 1 else literal(tiers[-1].name))
    dormant_cut = ts_at(d - timedelta(days=dormant_after - 1))
    having = f"max({ts}) < {dormant_cut}"
    if population == "active":
        tier_expr, having = literal("active"), f"max({ts}) >= {dormant_cut}"
    day = f"DATE '{d.isoformat()}'"
    agg_sql = ",\n    ".join(aggs)
    orders_cols = ", ".join(f"orders_{n}d" for n in WINDOWS)
    revenue_cols = ", ".join(f"revenue_{n}d" for n in WINDOWS)
    return f"""WITH per_customer AS (
  SELECT
    {cid} AS customer_id,
    {agg_sql}
  FROM {quote(view)}
  WHERE {ts} < {ts_at(d)}
  GROUP BY {cid}
  -- dormant: days_since_last >= {dormant_after}, i.e. the last purchase is before the start of
  -- day D - {dormant_after} + 1 (active: the complement)
  HAVING {having}
),
dated AS (
  SELECT *,
    CAST(first_ts AS DATE) AS first_purchase,
    CAST(last_ts AS DATE) AS last_purchase
  FROM per_customer
),
features AS (
  SELECT *,
    {_days_between("last_purchase", day)} AS days_since_last,
    {_days_between("first_purchase", day)} AS tenure_days,
    CASE WHEN orders_total > 1
      THEN CAST({_days_between("first_purchase", "last_purchase")} AS DOUBLE) / (orders_total - 1)
    END AS mean_gap_days
  FROM dated
)
SELECT
  customer_id, first_purchase, last_purchase, days_since_last,
  {tier_expr} AS tier,
  orders_total, {orders_cols},
  revenue_total, {revenue_cols},
  revenue_total / orders_total AS avg_order_value,
  tenure_days, mean_gap_days,
  CAST(days_since_last AS DOUBLE) / NULLIF(mean_gap_days, 0.0) AS overdue_ratio,
  -- orders in the last 365 days (recent) against the 365 before (prior = 730d - 365d)
  CASE WHEN orders_730d = 0 THEN 0.0
    ELSE CAST(2 * orders_365d - orders_730d AS DOUBLE) / orders_730d
  END AS trend{extra}
FROM features
ORDER BY customer_id"""


def _days_between(start: str, end: str) -> str:
    """Whole days from DATE `start` to DATE `end` (Spark SQL: ``datediff(end, start)``)."""
    return f"datediff('day', {start}, {end})"


# ------------------------------------------------------------------------------ input handling

@dataclass(frozen=True)
class _Prepared:
    sql: str                # the cohort query over the clean view
    label: str              # the input, for messages
    tiers: tuple[Tier, ...]
    views: tuple[str, ...]  # every view created, to drop afterwards


def _types(con: "duckdb.DuckDBPyConnection", view: str) -> dict[str, str]:
    rows = con.execute(f"DESCRIBE SELECT * FROM {quote(view)}").fetchall()
    return {row[0]: row[1] for row in rows}


def _is_csv(source: Any) -> bool:
    return isinstance(source, (str, Path)) and str(source).lower().endswith(_CSV_SUFFIXES)


def _clean_view_sql(raw: str, types: dict[str, str], columns: ColumnMap, disc: str | None,
                    label: str) -> str:
    """SELECT over the raw view with typed columns customer_id, ts, amount[, discount_used] and
    the raw values beside them (ts_raw, amount_raw, discount_raw) for the checks."""
    c, t, a = columns.customer_id, columns.timestamp, columns.amount
    t_type, a_type = types[t].upper(), types[a].upper()
    if t_type.startswith(_TS_TYPES):
        ts = f"CAST({quote(t)} AS TIMESTAMP)"
    elif t_type == "VARCHAR":
        # trim() keeps DuckDB (2.0) from pushing the cast into the CSV reader, where it
        # becomes a strict cast that fails on the first bad value (duckdb/duckdb#23818)
        ts = f"TRY_CAST(trim({quote(t)}) AS TIMESTAMP)"
    else:
        raise InputError(f"{label}: column {t!r} has type {types[t]}; expected timestamps or dates "
                         "(e.g. 2024-03-31 14:05:00)")
    if a_type.startswith(_NUMERIC_TYPES):
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
        elif d_type.startswith(_INT_TYPES):
            # 0/1 only: anything else becomes NULL here and is reported by the checks
            flag = f"CASE WHEN {quote(disc)} = 1 THEN TRUE WHEN {quote(disc)} = 0 THEN FALSE END"
        elif d_type == "VARCHAR":
            flag = f"TRY_CAST(trim({quote(disc)}) AS BOOLEAN)"  # trim(): see ts above
        else:
            raise InputError(f"{label}: column {disc!r} has type {types[disc]}; expected "
                             "true/false or 0/1")
        cols += [f"{flag} AS discount_used", f"{quote(disc)} AS discount_raw"]
    return f"SELECT {', '.join(cols)} FROM {quote(raw)}"


def _quick_check_sqls(view: str, has_disc: bool, has_stats: bool) -> list[str]:
    """Whole-table facts from plain count/min/max aggregates, which DuckDB answers from Parquet
    (or DuckDB table) statistics without reading the data, but only when every aggregate of a
    query can be: so the sum goes in a query of its own there. Clean input then costs almost
    nothing; any doubt sends it to `_detail_check_sql`, which looks at the rows before D."""
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


def _clean(facts: dict[str, Any]) -> bool:
    n = facts["n_rows"]
    return (n == 0 or (facts["n_ts"] == n and facts["n_ids"] == n and facts["n_amount"] == n
                       and facts["min_amount"] >= 0 and math.isfinite(facts["sum_amount"]))
            ) and facts.get("n_disc_raw") == facts.get("n_disc")


def _detail_check_sql(view: str, as_of: date, has_disc: bool) -> str:
    """Every fact the error messages need: counts and one example of each problem. On Parquet,
    isnan() may be folded away (see `_quick_check_sqls`); sum_before still shows NaN then."""
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


def _facts(con: "duckdb.DuckDBPyConnection", view: str, as_of: date, has_disc: bool,
           has_stats: bool) -> dict[str, Any]:
    def one(sql: str) -> dict[str, Any]:
        cur = con.execute(sql)
        # fetchall: DuckDB 2.0 refuses other work on a connection with an unfinished result
        return dict(zip([x[0] for x in cur.description], cur.fetchall()[0]))

    facts: dict[str, Any] = {}
    for sql in _quick_check_sqls(view, has_disc, has_stats):
        facts.update(one(sql))
    if not _clean(facts):
        facts.update(one(_detail_check_sql(view, as_of, has_disc)))
    return facts


def _check(facts: dict[str, Any], as_of: date, label: str, columns: ColumnMap,
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


def _prepare(con: "duckdb.DuckDBPyConnection", transactions: Any, as_of: Any, *,
             dormant_after: int, tiers: str | tuple[Tier, ...] | None, columns: ColumnMap,
             discount_col: str | None, population: str = "dormant") -> _Prepared:
    """Register `transactions`, check them, and return the cohort query over a clean view."""
    import duckdb

    d = _as_date(as_of)
    resolved = _resolve_tiers(tiers, dormant_after)
    label = describe(transactions)
    k = next(_view_ids)
    raw, clean = f"upliftlab_cohort_raw_{k}", f"upliftlab_cohort_tx_{k}"
    views = (clean, raw, f"{raw}__src")
    try:
        names = register(con, transactions, raw)
        required = [columns.customer_id, columns.timestamp, columns.amount]
        try:
            require_columns(names, required, label)
        except InputError as exc:
            raise InputError(f"{exc}; map the names with --customer-col/--time-col/--amount-col, "
                             "with customer_col/time_col/amount_col under [cohort.columns] in "
                             "a spec, or ColumnMap in Python") from None
        disc = discount_col if discount_col in names else None
        # Parquet files and DuckDB tables carry min/max/count statistics
        has_stats = isinstance(transactions, (str, Path)) and not _is_csv(transactions)
        if discount_col is not None and disc is None and discount_col != DEFAULT_DISCOUNT_COL:
            require_columns(names, [discount_col], label)

        def build() -> dict[str, Any]:
            sql = _clean_view_sql(raw, _types(con, raw), columns, disc, label)
            con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(clean)} AS {sql}")
            return _facts(con, clean, d, disc is not None, has_stats)

        try:
            facts = build()
        except duckdb.Error as exc:
            if not _is_csv(transactions):
                raise InputError(f"cannot read {label}: {_duck_message(exc)}") from None
            # a bad value beyond the CSV sniffer's sample: re-read these columns as text so the
            # checks can count the bad values and show one
            text_cols = [*required, *([disc] if disc else [])]
            types = ", ".join(f"{literal(n)}: 'VARCHAR'" for n in text_cols)
            con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(raw)} AS SELECT * FROM read_csv("
                        f"{literal(str(transactions))}, header = true, types = {{{types}}})")
            try:
                facts = build()
            except duckdb.Error as exc2:
                raise InputError(f"cannot read {label}: {_duck_message(exc2)}") from None
        _check(facts, d, label, columns, disc)
        sql = cohort_sql(clean, d, dormant_after=dormant_after, tiers=resolved,
                         discount_col="discount_used" if disc else None, population=population)
        return _Prepared(sql, label, resolved, views)
    except BaseException:
        _drop(con, views)  # leave a caller's connection as it was
        raise


def _duck_message(exc: BaseException) -> str:
    """The useful lines of a DuckDB error (its first line, plus the CSV line/value if any)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    keep = lines[:1] + [ln for ln in lines[1:4] if ln.startswith(("Original Line", "Error when"))]
    return " ".join(keep) if keep else type(exc).__name__


@contextmanager
def _reading(label: str) -> Iterator[None]:
    """Data errors that surface only while the cohort query reads (a file changed or damaged
    after the checks) become InputError; anything else stays a bug with its traceback."""
    import duckdb

    try:
        yield
    except (duckdb.ConversionException, duckdb.InvalidInputException) as exc:
        raise InputError(f"cannot read {label}: {_duck_message(exc)}") from None


def _drop(con: "duckdb.DuckDBPyConnection", views: tuple[str, ...]) -> None:
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


def _connection() -> "duckdb.DuckDBPyConnection":
    con = connect()
    # time-zone-aware timestamps are taken in UTC, whatever the machine's zone
    con.execute("SET TimeZone = 'UTC'")
    return con


# ----------------------------------------------------------------------------------- public API

def build_cohort_relation(con: "duckdb.DuckDBPyConnection", transactions: Any, as_of: Any, *,
                          dormant_after: int = DEFAULT_DORMANT_AFTER,
                          tiers: str | tuple[Tier, ...] | None = None,
                          columns: ColumnMap = ColumnMap(),
                          discount_col: str | None = DEFAULT_DISCOUNT_COL,
                          population: str = "dormant") -> "duckdb.DuckDBPyRelation":
    """The cohort as a lazy DuckDB relation on `con`, for callers who stay in DuckDB.

    The input is checked now (InputError on bad data); the relation reads temp views that stay
    registered on `con` for as long as the connection lives. `population="active"`: the
    customers still active, with the same features (see `cohort_sql`).
    """
    prep = _prepare(con, transactions, as_of, dormant_after=dormant_after, tiers=tiers,
                    columns=columns, discount_col=discount_col, population=population)
    return con.sql(prep.sql)


def build_cohort(transactions: Any, as_of: Any, *, dormant_after: int = DEFAULT_DORMANT_AFTER,
                 tiers: str | tuple[Tier, ...] | None = None, columns: ColumnMap = ColumnMap(),
                 discount_col: str | None = DEFAULT_DISCOUNT_COL,
                 con: "duckdb.DuckDBPyConnection | None" = None) -> "pd.DataFrame":
    """The dormant cohort of `transactions` as of `as_of`, one row per customer (see module doc).

    `transactions`: a CSV/Parquet path, ``file.duckdb:table``, a DataFrame or a DuckDB relation.
    `discount_col` is used when the table has it (an explicitly named other column must exist);
    None ignores discounts. `tier` comes back as an ordered Categorical of the tier names.
    """
    import pandas as pd

    own = con is None
    con = _connection() if own else con
    prep = None
    try:
        prep = _prepare(con, transactions, as_of, dormant_after=dormant_after, tiers=tiers,
                        columns=columns, discount_col=discount_col)
        with _reading(prep.label):
            frame = con.execute(prep.sql).df()
    finally:
        if own:
            con.close()
        elif prep is not None:
            _drop(con, prep.views)
    frame["tier"] = pd.Categorical(frame["tier"], categories=[t.name for t in prep.tiers],
                                   ordered=True)
    return frame


def write_cohort(transactions: Any, as_of: Any, out: str | Path, *,
                 dormant_after: int = DEFAULT_DORMANT_AFTER,
                 tiers: str | tuple[Tier, ...] | None = None, columns: ColumnMap = ColumnMap(),
                 discount_col: str | None = DEFAULT_DISCOUNT_COL,
                 con: "duckdb.DuckDBPyConnection | None" = None) -> list[dict[str, Any]]:
    """Build the cohort and write it to `out` (.parquet or .csv) by DuckDB COPY, without pandas.

    Returns the tier summary as records (the rows of `tier_summary`, total last; pass them to
    `pandas.DataFrame` or `format_tier_table`). The file appears whole or not at all: it is
    written to a temp file beside `out`, then renamed.
    """
    out = Path(out)
    fmt = _OUTPUT_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise InputError(f"{out}: unknown output type (expected .parquet or .csv)")
    if not out.parent.is_dir():
        raise InputError(f"{out}: directory {out.parent} does not exist")
    import duckdb

    own = con is None
    con = _connection() if own else con
    prep = None
    written = f"upliftlab_cohort_out_{next(_view_ids)}"
    try:
        with staged_file(out) as tmp:
            prep = _prepare(con, transactions, as_of, dormant_after=dormant_after, tiers=tiers,
                            columns=columns, discount_col=discount_col)
            options = "FORMAT parquet" if fmt == "parquet" else "FORMAT csv, HEADER"
            try:
                with _reading(prep.label):
                    con.execute(f"COPY ({prep.sql}) TO {literal(str(tmp))} ({options})")
            except duckdb.IOException as exc:
                raise InputError(f"{out}: cannot write ({_duck_message(exc)})") from None
            # the summary reads the few columns it needs back from the file just written, which
            # is cheaper than keeping the whole cohort in a table
            reader = "read_parquet" if fmt == "parquet" else "read_csv"
            con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(written)} AS "
                        f"SELECT * FROM {reader}({literal(str(tmp))})")
            summary = _summary(con, written, [t.name for t in prep.tiers])
    except OSError as exc:
        raise InputError(f"{out}: cannot write ({exc.strerror})") from None
    finally:
        if own:
            con.close()
        else:
            con.execute(f"DROP VIEW IF EXISTS {quote(written)}")
            if prep is not None:
                _drop(con, prep.views)
    return summary


def tier_summary(cohort: "pd.DataFrame", tiers: str | tuple[Tier, ...] | None = None,
                 ) -> "pd.DataFrame":
    """Per tier: customers, share of the cohort and mean features; a last row ``total``.

    Tiers are listed in order (from `tiers`, the Categorical's categories, or by recency), also
    those without customers. Mean columns are named ``mean_<feature>``.
    """
    import pandas as pd

    if isinstance(tiers, str):
        # only the names and their order matter here; 1 day is below any valid first bound
        names = [t.name for t in parse_tiers(tiers, 1)]
    elif tiers is not None:
        names = [t.name for t in tiers]
    elif isinstance(cohort["tier"].dtype, pd.CategoricalDtype):
        names = [str(c) for c in cohort["tier"].cat.categories]
    else:
        names = None
    frame = cohort.assign(tier=cohort["tier"].astype("str"))
    con = _connection()
    try:
        con.register("cohort_frame", frame)
        records = _summary(con, "cohort_frame", names)
    finally:
        con.close()
    frame = pd.DataFrame.from_records(records)
    return frame.astype({c: "float64" for c in frame.columns if c not in ("tier", "customers")})


def _summary(con: "duckdb.DuckDBPyConnection", table: str, names: list[str] | None,
             ) -> list[dict[str, Any]]:
    """Tier summary records of the cohort in `table`: one per tier (in `names` order, or by
    recency), then ``total``. Plain records, so writing a cohort never needs pandas."""
    cols = [d[0] for d in con.execute(f"SELECT * FROM {quote(table)} LIMIT 0").description]
    feats = [f for f in (*SUMMARY_FEATURES, "discount_share") if f in cols]
    # CAST: a CSV read back with no rows has text columns
    means = ", ".join(f"avg(CAST({quote(f)} AS DOUBLE)) AS {quote('mean_' + f)}" for f in feats)
    cur = con.execute(f"""
        SELECT CAST(tier AS VARCHAR) AS tier, count(*) AS customers, {means},
               min(days_since_last) AS first_day
        FROM {quote(table)} GROUP BY tier
        UNION ALL
        SELECT NULL, count(*), {means}, NULL FROM {quote(table)}""")
    keys = [d[0] for d in cur.description]
    found = [dict(zip(keys, row)) for row in cur.fetchall()]
    total = next(r for r in found if r["tier"] is None)
    per_tier = {r["tier"]: r for r in found if r["tier"] is not None}
    if names is None:
        names = sorted(per_tier, key=lambda t: per_tier[t]["first_day"])
    empty = {"customers": 0, **{f"mean_{f}": None for f in feats}}
    records = [{**empty, **per_tier.get(name, {}), "tier": name} for name in names]
    records.append({**total, "tier": "total"})
    n = total["customers"]
    return [{"tier": r["tier"], "customers": int(r["customers"]),
             "share": r["customers"] / n if n else None,
             **{f"mean_{f}": r[f"mean_{f}"] for f in feats}} for r in records]


_TABLE_COLUMNS = (  # summary column, header, format
    ("customers", "customers", "{:,.0f}"), ("share", "share", "{:.1%}"),
    ("mean_days_since_last", "recency d", "{:.0f}"), ("mean_orders_total", "orders", "{:.2f}"),
    ("mean_revenue_365d", "revenue 365d", "{:,.2f}"), ("mean_tenure_days", "tenure d", "{:.0f}"),
    ("mean_overdue_ratio", "overdue", "{:.2f}"), ("mean_trend", "trend", "{:+.2f}"),
    ("mean_discount_share", "discount", "{:.1%}"),
)


def format_tier_table(summary: "pd.DataFrame | list[dict[str, Any]]") -> str:
    """The tier summary (a `tier_summary` frame or `write_cohort` records) as an aligned
    plain-text table for a terminal; the feature columns are means per customer."""
    import math

    records = summary if isinstance(summary, list) else summary.to_dict("records")
    cols = [c for c in _TABLE_COLUMNS if c[0] in records[0]]
    header = ["tier", *(h for _, h, _ in cols)]
    rows = []
    for rec in records:
        cells = [str(rec["tier"])]
        for name, _, fmt in cols:
            value = rec[name]
            missing = value is None or (isinstance(value, float) and math.isnan(value))
            cells.append("-" if missing else fmt.format(value))
        rows.append(cells)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join([cells[0].ljust(widths[0]),
                          *(c.rjust(w) for c, w in zip(cells[1:], widths[1:]))]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    body = [line(r) for r in rows]
    return "\n".join([line(header), rule, *body[:-1], rule, body[-1]])
