"""The spec's cohort on Spark: the stage `spec_cohort` runs on DuckDB (a ready table, the dormant
cohort of the transactions or the at-risk customers of a risk model; value bands; the id, strata
and covariate checks), from the same queries and checks, handed on as a Spark temp view.

The customers stay on Spark: only counts, cut points and a check's one example reach the driver;
the at-risk model scores them in partitions (`mapInPandas`), as `model score --engine spark` does.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upliftlab.errors import InputError
from upliftlab.sources import ColumnMap, quote

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from upliftlab.engine.spark import SparkEngine
    from upliftlab.spec import ExperimentSpec

_ids = itertools.count()


@dataclass
class SparkCohort:
    """The spec's cohort as the (cached) Spark temp view `name`: `columns` in order; `where`
    names it in messages ("cohort of <source>"), as `session.CohortHandle` does on DuckDB."""

    engine: "SparkEngine"
    name: str
    columns: tuple[str, ...]
    where: str
    views: tuple[str, ...] = field(default=(), repr=False)   # every view made, to drop

    @property
    def frame(self) -> "DataFrame":
        return self.engine.spark.table(self.name)

    def drop(self) -> None:
        """Release the cache and every temp view the stage made."""
        self.engine.drop(*dict.fromkeys((self.name, *self.views)))


def require_parquet(location: Any, what: str) -> None:
    """Spark reads the spec's sources as Parquet (a file, a folder of parts, a glob, a URL): a
    CSV or a DuckDB table is refused, saying what to do, before Spark starts."""
    from upliftlab.cohort_input import is_csv

    text = str(location)
    if is_csv(text) or ".duckdb:" in text or text.endswith(".duckdb"):
        raise InputError(f"{text}: {{engine}} spark reads Parquet {what} (a file, a folder of "
                         "parts, a glob or a URL); convert it with DuckDB first, or use the "
                         "default engine", params=["engine"])


def check_spec_sources(spec: "ExperimentSpec") -> None:
    """The spec's cohort sources as Spark reads them (see `require_parquet`)."""
    c = spec.cohort
    if c.table is not None:
        require_parquet(spec.resolve(c.table), "cohort tables")
    else:
        require_parquet(spec.resolve(c.transactions), "transactions")


def spec_cohort_spark(engine: "SparkEngine", spec: "ExperimentSpec") -> SparkCohort:
    """`spec_cohort` on Spark: the spec's cohort built from its source with the same queries
    (`cohort_sql`, the at-risk query, `value_band_sql`) and checked by the same functions
    (`check_covariates`, `validate_cohort`), kept as a cached Spark temp view."""
    from upliftlab.engine.spark_steps import cohort_spark, spark_errors
    from upliftlab.spec_cohort import add_value_band, check_covariates, validate_cohort

    check_spec_sources(spec)
    c = spec.cohort
    k = next(_ids)
    src, raw = f"ul_spark_cohort{k}_src", f"ul_spark_cohort{k}_raw"
    views: list[str] = [src]
    source = spec.resolve(c.table if c.table is not None else c.transactions)
    where = f"cohort of {source}"
    try:
        with spark_errors(source):
            if c.table is not None:
                engine.register(source, src)
            elif c.kind == "at_risk":
                views += at_risk_spark(engine, spec.resolve(c.model), source, c.as_of, src,
                                       min_level=c.min_level or "high", share=c.share,
                                       columns=c.columns.column_map(),
                                       discount_col=c.columns.discount_col)
            else:
                cohort_spark(engine, source, c.as_of, dormant_after=c.dormant_after,
                             tiers=c.tiers, columns=c.columns.column_map(),
                             discount_col=c.columns.discount_col,
                             view=f"ul_spark_cohort{k}_tx").createOrReplaceTempView(src)
                views += [f"ul_spark_cohort{k}_tx_raw", f"ul_spark_cohort{k}_tx_clean"]
            # computed once, read by every check and step after (DuckDB: a TEMP TABLE)
            engine.spark.table(src).createOrReplaceTempView(raw)
            engine.spark.catalog.cacheTable(raw)
            views.append(raw)
            if not engine.execute(f"SELECT count(*) FROM {quote(raw)}").fetchone()[0]:
                raise InputError(f"{where}: no customers (the cohort is empty)")
            check_covariates(engine, raw, spec, where)
            name = raw
            if "value_band" in spec.strata:
                name = f"ul_spark_cohort{k}"
                add_value_band(engine, raw, spec.value_band, name, where)
                engine.spark.catalog.cacheTable(name)  # raw stays cached until the drop
                views.append(name)
            columns = validate_cohort(engine, name, where, [*spec.strata, *spec.covariates])
    except BaseException:
        engine.drop(*views)
        raise
    return SparkCohort(engine, name, tuple(columns), where, tuple(v for v in views if v != name))


def at_risk_spark(engine: "SparkEngine", model_dir: str | os.PathLike, transactions: Any,
                  as_of: Any, view: str, *, min_level: str | None = "high",
                  share: float | None = None, columns: ColumnMap = ColumnMap(),
                  discount_col: str | None = "discount_used") -> list[str]:
    """`risk.workflow.at_risk_view` on Spark: the active customers' features (`cohort_sql`,
    population active), the risk model applied in partitions, and the at-risk query
    (`at_risk_select`) as the temp view `view`. Returns the other views it made."""
    from upliftlab.engine.spark_steps import cohort_spark
    from upliftlab.risk.model import check_features
    from upliftlab.risk.workflow import at_risk_select, load_risk_model, model_inputs

    model = load_risk_model(model_dir)
    dormant_after, _ = model_inputs(model, None)  # a model of engagement events: refused
    k = next(_ids)
    tx, scored = f"ul_spark_risk{k}_tx", f"ul_spark_risk{k}_scored"
    feats = cohort_spark(engine, transactions, as_of, dormant_after=dormant_after,
                         columns=columns, discount_col=discount_col, population="active",
                         view=tx)
    names = list(model.feature_names_in_)
    check_features(type("F", (), {"columns": feats.columns})(), names, str(transactions))
    score_risk(feats, model).createOrReplaceTempView(scored)
    have = [f.name for f in engine.spark.table(scored).schema.fields]
    engine.sql(at_risk_select(engine, scored, have, model, min_level=min_level, share=share)
               ).createOrReplaceTempView(view)
    return [scored, f"{tx}_raw", f"{tx}_clean"]


def score_risk(features: "DataFrame", model: Any) -> "DataFrame":
    """`features` with the model's `risk` (`predict_risk`, the code `risk score` runs),
    partition by partition on the workers."""
    from pyspark.sql.types import DoubleType, StructField, StructType

    names = list(model.feature_names_in_)
    schema = StructType([*features.schema.fields, StructField("risk", DoubleType(), True)])

    def score(batches):
        for df in batches:
            yield df.assign(risk=model.predict_risk(df[names]).astype("float64"))

    return features.mapInPandas(score, schema)


def stage_parquet(con: Any, sql: str, path: Path) -> Path:
    """The answer of a DuckDB query (the store's: a few columns of the assignment) written as
    Parquet for Spark to read; `path` in a folder the caller removes."""
    from upliftlab.sources import literal

    con.execute(f"COPY ({sql}) TO {literal(str(path))} (FORMAT parquet)")
    return path


__all__ = ["SparkCohort", "at_risk_spark", "check_spec_sources", "require_parquet",
           "score_risk", "spec_cohort_spark", "stage_parquet"]
