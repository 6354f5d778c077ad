"""Where upliftlab's queries run: `dialect` renders a query written once (DuckDB SQL) for the
engine at hand; `spark` is the Spark session and its checks; `spark_assign` the assignment there.

Nothing here imports PySpark at import time (the CLI stays fast; PySpark is optional).
"""

from upliftlab.engine.dialect import DIALECTS, DUCKDB, SPARK, check_dialect, render

__all__ = ["DIALECTS", "DUCKDB", "SPARK", "check_dialect", "render"]
