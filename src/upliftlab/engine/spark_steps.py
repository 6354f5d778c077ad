"""The cohort, the outcomes and the report's sufficient statistics on Spark, from the very
queries that DuckDB runs (`cohort_sql`, `outcomes_sql`, `stats.sql.aggregate_sql`) rendered by
engine/dialect.py. The customers stay on Spark; only input facts and per-arm sums are collected.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from upliftlab.sources import ColumnMap

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from upliftlab.cohort import Tier
    from upliftlab.engine.spark import SparkEngine
    from upliftlab.stats.sql import Aggregates

# Spark's simple type names -> DuckDB's, so the project's input checks read Spark's schema
_SPARK_TO_DUCKDB = {"string": "VARCHAR", "boolean": "BOOLEAN", "tinyint": "TINYINT",
                    "smallint": "SMALLINT", "int": "INTEGER", "bigint": "BIGINT",
                    "float": "FLOAT", "double": "DOUBLE", "date": "DATE",
                    "timestamp": "TIMESTAMP WITH TIME ZONE", "timestamp_ntz": "TIMESTAMP"}


def duckdb_types(frame: "DataFrame") -> dict[str, str]:
    """Column -> DuckDB type name of a Spark DataFrame (decimals as DECIMAL(p,s); other types,
    e.g. arrays, by their Spark name in capitals, which no check accepts as a number)."""
    out = {}
    for f in frame.schema.fields:
        name = f.dataType.simpleString()
        out[f.name] = _SPARK_TO_DUCKDB.get(name) or name.upper()
    return out


def cohort_spark(engine: "SparkEngine", transactions: Any, as_of: Any, *,
                 dormant_after: int | None = None, tiers: "str | tuple[Tier, ...] | None" = None,
                 columns: ColumnMap = ColumnMap(), discount_col: str | None = "discount_used",
                 population: str = "dormant", view: str = "ul_spark_tx") -> "DataFrame":
    """The cohort of `transactions` (a Parquet path, a Spark or pandas DataFrame) as of `as_of`
    on Spark, one row per customer with the columns of `upliftlab.build_cohort` (tier as text).

    The input is checked as `build_cohort` checks it (the same queries and messages); a bad input
    is an InputError before the cohort is built. The answer is a lazy Spark DataFrame.
    """
    from upliftlab import cohort as c
    from upliftlab.errors import InputError
    from upliftlab.sources import describe, require_columns

    dormant_after = c.DEFAULT_DORMANT_AFTER if dormant_after is None else dormant_after
    d = c._as_date(as_of)
    resolved = c._resolve_tiers(tiers, dormant_after)
    label = describe(transactions) if not hasattr(transactions, "schema") else "transactions"
    raw, clean = f"{view}_raw", f"{view}_clean"
    names = engine.register(transactions, raw)
    try:
        require_columns(names, [columns.customer_id, columns.timestamp, columns.amount], label)
    except InputError as exc:
        raise InputError(f"{exc}; map the names with ColumnMap") from None
    disc = discount_col if discount_col in names else None
    if discount_col is not None and disc is None and discount_col != c.DEFAULT_DISCOUNT_COL:
        require_columns(names, [discount_col], label)
    types = duckdb_types(engine.spark.table(raw))
    engine.sql(c._clean_view_sql(raw, types, columns, disc, label)).createOrReplaceTempView(clean)
    facts = c._facts(engine, clean, d, disc is not None, has_stats=False)
    c._check(facts, d, label, columns, disc)
    return engine.sql(c.cohort_sql(clean, d, dormant_after=dormant_after, tiers=resolved,
                                   discount_col="discount_used" if disc else None,
                                   population=population))


def outcomes_spark(engine: "SparkEngine", assigned: str, transactions: str, *, start: dt.date,
                   as_of: dt.date, window_days: int,
                   columns: ColumnMap = ColumnMap()) -> "DataFrame":
    """`outcomes_sql` on Spark: one row per assigned customer (views `assigned`: customer_id
    as text, arm, stratum; `transactions`: the user's columns), lazily."""
    from upliftlab.outcomes import outcomes_sql

    return engine.sql(outcomes_sql(assigned, transactions, start=start, as_of=as_of,
                                   window_days=window_days, columns=columns))


def aggregate_spark(engine: "SparkEngine", view: str, arm: str, metrics: Sequence[str],
                    covariates: Sequence[str] = (), segments: Sequence[str] = ()) -> "Aggregates":
    """The report's sufficient statistics of the Spark view `view`: `stats.sql.aggregate` (the
    query the weekly report runs, `analyze`'s pairs and 0/1 checks) with Spark running it;
    a few rows (one per arm and segment value) reach the driver."""
    from upliftlab.stats.sql import aggregate, needed_pairs

    metrics, covariates = list(metrics), list(covariates)
    values = list(dict.fromkeys(metrics + covariates))
    return aggregate(engine, view, arm, values,
                     needed_pairs(metrics, covariates), binary_check=metrics,
                     segments=list(segments))


__all__ = ["aggregate_spark", "cohort_spark", "duckdb_types", "outcomes_spark"]
