"""Scoring on Spark: a fitted uplift model applied partition by partition (`mapInPandas`), with
`model score`'s checks and its very scoring code (`uplift.io.scores_frame`), so the scores are
those of `upliftlab model score`. The customers never reach the driver.

The workers run the model: they need the driver's Python with upliftlab and the model's
libraries installed (in local mode PYSPARK_PYTHON is this Python).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from upliftlab.engine.spark import SparkEngine


def score_spark(engine: "SparkEngine", model: Any, customers: Any,
                id_col: str = "customer_id", view: str = "ul_spark_score") -> "DataFrame":
    """Scores of `customers` (a Parquet path, a Spark or pandas DataFrame with `id_col` and the
    model's features): customer_id, base, uplift_<arm>... as a lazy Spark DataFrame.

    The ids and features are checked first on Spark as `model score` checks them (every id
    present and once, no infinite feature), so a bad input is an InputError on the driver.
    """
    from upliftlab.sources import require_columns
    from upliftlab.uplift.io import check_customers, scores_frame

    features = [str(c) for c in model.feature_names_in_]
    have = engine.register(customers, view)
    where = str(customers) if isinstance(customers, str) else "customers"
    require_columns(have, [id_col, *features], where)
    check_customers(engine, view, id_col, features, where)
    frame = engine.spark.table(view).select(*dict.fromkeys([id_col, *features]))
    id_type = frame.schema[id_col].dataType.simpleString()
    arms = list(model.treatment_arms_)
    schema = ", ".join([f"customer_id {id_type}", "base double",
                        *(f"`uplift_{a}` double" for a in arms)])
    control, outcome = model.control_, model.outcome

    def score(batches):
        for df in batches:
            pred = model.predict_outcomes(df[features])
            yield scores_frame(df[id_col].to_numpy(), pred, control, arms, outcome)

    return frame.mapInPandas(score, schema)


def write_scores_spark(model: Any, customers: str | os.PathLike, out: str | os.PathLike, *,
                       id_col: str = "customer_id", master: str | None = None,
                       engine: "SparkEngine | None" = None) -> int:
    """`upliftlab model score` on Spark: the scores of the Parquet `customers` written to `out`
    (.parquet or .csv, one file, whole or not at all), as `uplift.io.score_file` writes them.
    Returns the number of customers scored.

    `master`: the Spark master (default: env UPLIFTLAB_SPARK_MASTER, else local[*]); an
    `engine` already running is used as it is. Spark reads Parquet (a file, a folder of parts
    or a glob); a CSV is refused with the reason.
    """
    from upliftlab._files import staged_file
    from upliftlab.engine.spark import SparkEngine, local_session, master_from_env
    from upliftlab.engine.spark_cohort import require_parquet
    from upliftlab.engine.spark_steps import spark_errors, write_one_file
    from upliftlab.errors import InputError

    out = Path(out)
    fmt = {".parquet": "parquet", ".csv": "csv"}.get(out.suffix.lower())
    if fmt is None:
        raise InputError(f"{{out}} {out}: expected a .parquet or .csv file", params=["out"])
    source = str(customers)
    require_parquet(source, "customers")
    if engine is None:
        engine = SparkEngine(local_session(master_from_env(master)))
    with spark_errors(source):
        frame = score_spark(engine, model, source, id_col=id_col).persist()
        try:
            with staged_file(out) as tmp:
                write_one_file(frame, tmp, fmt)
                n = frame.count()
                if n == 0:
                    raise InputError(f"{source}: no rows to score")
        finally:
            frame.unpersist()
    return int(n)


__all__ = ["score_spark", "write_scores_spark"]
