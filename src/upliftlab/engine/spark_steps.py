"""The cohort, the outcomes and the report's sufficient statistics on Spark, from the very
queries that DuckDB runs (`cohort_sql`, `outcomes_sql`, `stats.sql.aggregate_sql`) rendered by
engine/dialect.py. The customers stay on Spark; only input facts and per-arm sums are collected.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upliftlab.sources import ColumnMap

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from upliftlab.cohort import Tier
    from upliftlab.engine.spark import SparkEngine
    from upliftlab.stats.sql import Aggregates


def duckdb_types(frame: "DataFrame") -> dict[str, str]:
    """Column -> DuckDB type name of a Spark DataFrame (decimals as DECIMAL(p,s); other types,
    e.g. arrays, by their Spark name in capitals, which no check accepts as a number)."""
    from upliftlab.engine.spark import duckdb_type

    return {f.name: duckdb_type(f.dataType.simpleString()) for f in frame.schema.fields}


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
    from upliftlab import cohort_input as checks
    from upliftlab.errors import InputError
    from upliftlab.sources import describe, require_columns

    dormant_after = c.DEFAULT_DORMANT_AFTER if dormant_after is None else dormant_after
    d = c.as_date(as_of)
    resolved = c.resolve_tiers(tiers, dormant_after)
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
    engine.sql(checks.clean_view_sql(raw, types, columns, disc, label)
               ).createOrReplaceTempView(clean)
    facts = checks.input_facts(engine, clean, d, disc is not None, has_stats=False)
    checks.check_input(facts, d, label, columns, disc)
    return engine.sql(c.cohort_sql(clean, d, dormant_after=dormant_after, tiers=resolved,
                                   discount_col="discount_used" if disc else None,
                                   population=population))


def write_cohort_spark(transactions: Any, as_of: Any, out: str | Path, *,
                       master: str | None = None, dormant_after: int | None = None,
                       tiers: "str | tuple[Tier, ...] | None" = None,
                       columns: ColumnMap = ColumnMap(),
                       discount_col: str | None = "discount_used",
                       engine: "SparkEngine | None" = None) -> list[dict[str, Any]]:
    """`upliftlab.cohort.write_cohort` with Spark building the cohort: the file `out` (.parquet
    or .csv, one file, whole or not at all) and the tier summary records (computed on Spark).

    `master`: the Spark master (default: env UPLIFTLAB_SPARK_MASTER, else local[*]); an
    `engine` already running is used as it is. Without PySpark or Java: an EngineError that
    says what to install, before anything is written.
    """
    from upliftlab import cohort as c
    from upliftlab._files import staged_file
    from upliftlab.engine.spark import SparkEngine, local_session, master_from_env
    from upliftlab.engine.spark_cohort import require_parquet
    from upliftlab.errors import InputError

    out = Path(out)
    fmt = c.OUTPUT_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise InputError(f"{out}: unknown output type (expected .parquet or .csv)")
    if not out.parent.is_dir():
        raise InputError(f"{out}: directory {out.parent} does not exist")
    if engine is None:
        engine = SparkEngine(local_session(master_from_env(master)))
    dormant_after = c.DEFAULT_DORMANT_AFTER if dormant_after is None else dormant_after
    resolved = c.resolve_tiers(tiers, dormant_after)
    if isinstance(transactions, (str, os.PathLike)):
        require_parquet(transactions, "transactions")
    with spark_errors(str(transactions) if isinstance(transactions, (str, os.PathLike))
                      else "transactions"):
        source = str(transactions) if isinstance(transactions, os.PathLike) else transactions
        frame = cohort_spark(engine, source, as_of, dormant_after=dormant_after, tiers=resolved,
                             columns=columns, discount_col=discount_col).persist()
        view = "ul_spark_cohort_out"
        try:
            with staged_file(out) as tmp:
                write_one_file(frame, tmp, fmt)
                frame.createOrReplaceTempView(view)
                summary = c.tier_summary_rows(engine, view, [t.name for t in resolved])
        finally:
            engine.drop(view)
            frame.unpersist()
    return summary


def write_one_file(frame: "DataFrame", path: Path, fmt: str) -> None:
    """`frame` as one file `path` (fmt parquet or csv, with a header): Spark writes a folder of
    parts, so one partition is written beside `path` and its part moved there. For the CLI's
    single files; a cluster's users write a folder of parts with the Python API instead."""
    import shutil

    from upliftlab.engine.spark import spark_path

    parts = path.with_name(path.name + ".parts")
    try:
        writer = frame.coalesce(1).write.mode("overwrite")
        (writer.parquet(spark_path(parts)) if fmt == "parquet"
         else writer.option("header", True).csv(spark_path(parts)))
        [part] = sorted(parts.glob(f"part-*.{fmt}"))
        os.replace(part, path)
    finally:
        shutil.rmtree(parts, ignore_errors=True)


@contextmanager
def spark_errors(label: str) -> Iterator[None]:
    """A Spark error while reading or writing (a file missing or damaged, a path Spark cannot
    reach) becomes an InputError naming the input, one line; anything else stays a bug."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    from upliftlab.errors import InputError

    try:
        yield
    except (PySparkException, Py4JJavaError) as exc:
        # a JVM error that PySpark did not convert carries its message on the Java side
        text = (str(exc.java_exception.getMessage()) if isinstance(exc, Py4JJavaError)
                else str(exc))
        # upliftlab's own check failing on a worker (the model's feature checks): its message
        mine = [ln.split("InputError: ", 1)[1].strip() for ln in text.splitlines()
                if "upliftlab.errors.InputError: " in ln]
        if mine:
            raise InputError(f"{label}: {mine[-1]}") from None
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
        raise InputError(f"{label}: Spark could not run: {first}") from None


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


__all__ = ["aggregate_spark", "cohort_spark", "duckdb_types", "outcomes_spark",
           "spark_errors", "write_cohort_spark", "write_one_file"]
