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
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upliftlab._files import staged_file
from upliftlab.errors import InputError, SpecError
from upliftlab.cohort_input import (check_input, clean_view_sql, column_types, drop_views,
                                    engine_error_text, input_facts, is_csv, reading)
from upliftlab.sources import (ColumnMap, connect, describe, literal, parse_date, quote, register,
                               require_columns)
from upliftlab.rules import DEFAULT_TIERS_TEXT, Tier, parse_tiers  # the one tier rule
from upliftlab.rules import check_dormant_after as _check_dormant_after
from upliftlab.rules import check_tiers as _check_tiers

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

OUTPUT_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
_view_ids = itertools.count()


# --------------------------------------------------------------------------------------- tiers

def resolve_tiers(tiers: str | tuple[Tier, ...] | None, dormant_after: int) -> tuple[Tier, ...]:
    """The tiers as given (text or Tier tuples), checked; the default tiers when None."""
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


def as_date(as_of: Any) -> date:
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
    d = as_date(as_of)
    tiers = resolve_tiers(tiers, dormant_after)
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


def _prepare(con: "duckdb.DuckDBPyConnection", transactions: Any, as_of: Any, *,
             dormant_after: int, tiers: str | tuple[Tier, ...] | None, columns: ColumnMap,
             discount_col: str | None, population: str = "dormant") -> _Prepared:
    """Register `transactions`, check them, and return the cohort query over a clean view."""
    import duckdb

    d = as_date(as_of)
    resolved = resolve_tiers(tiers, dormant_after)
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
        has_stats = isinstance(transactions, (str, Path)) and not is_csv(transactions)
        if discount_col is not None and disc is None and discount_col != DEFAULT_DISCOUNT_COL:
            require_columns(names, [discount_col], label)

        def build() -> dict[str, Any]:
            sql = clean_view_sql(raw, column_types(con, raw), columns, disc, label)
            con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(clean)} AS {sql}")
            return input_facts(con, clean, d, disc is not None, has_stats)

        try:
            facts = build()
        except duckdb.Error as exc:
            if not is_csv(transactions):
                raise InputError(f"cannot read {label}: {engine_error_text(exc)}") from None
            # a bad value beyond the CSV sniffer's sample: re-read these columns as text so the
            # checks can count the bad values and show one
            text_cols = [*required, *([disc] if disc else [])]
            types = ", ".join(f"{literal(n)}: 'VARCHAR'" for n in text_cols)
            con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(raw)} AS SELECT * FROM read_csv("
                        f"{literal(str(transactions))}, header = true, types = {{{types}}})")
            try:
                facts = build()
            except duckdb.Error as exc2:
                raise InputError(f"cannot read {label}: {engine_error_text(exc2)}") from None
        check_input(facts, d, label, columns, disc)
        sql = cohort_sql(clean, d, dormant_after=dormant_after, tiers=resolved,
                         discount_col="discount_used" if disc else None, population=population)
        return _Prepared(sql, label, resolved, views)
    except BaseException:
        drop_views(con, views)  # leave a caller's connection as it was
        raise


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
        with reading(prep.label):
            frame = con.execute(prep.sql).df()
    finally:
        if own:
            con.close()
        elif prep is not None:
            drop_views(con, prep.views)
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
    fmt = OUTPUT_FORMATS.get(out.suffix.lower())
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
                with reading(prep.label):
                    con.execute(f"COPY ({prep.sql}) TO {literal(str(tmp))} ({options})")
            except duckdb.IOException as exc:
                raise InputError(f"{out}: cannot write ({engine_error_text(exc)})") from None
            # the summary reads the few columns it needs back from the file just written, which
            # is cheaper than keeping the whole cohort in a table
            reader = "read_parquet" if fmt == "parquet" else "read_csv"
            con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(written)} AS "
                        f"SELECT * FROM {reader}({literal(str(tmp))})")
            summary = tier_summary_rows(con, written, [t.name for t in prep.tiers])
    except OSError as exc:
        raise InputError(f"{out}: cannot write ({exc.strerror})") from None
    finally:
        if own:
            con.close()
        else:
            con.execute(f"DROP VIEW IF EXISTS {quote(written)}")
            if prep is not None:
                drop_views(con, prep.views)
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
        records = tier_summary_rows(con, "cohort_frame", names)
    finally:
        con.close()
    frame = pd.DataFrame.from_records(records)
    return frame.astype({c: "float64" for c in frame.columns if c not in ("tier", "customers")})


def tier_summary_rows(con: "duckdb.DuckDBPyConnection", table: str, names: list[str] | None,
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
