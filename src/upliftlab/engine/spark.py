"""Running upliftlab's queries on Apache Spark: the session (ANSI on, UTC), its checks, and the
one entry point `SparkEngine.sql` that renders a query written once (DuckDB SQL) for Spark.

PySpark is imported only here and only when a Spark session is asked for: `pip install
'upliftlab[spark]'` and a Java runtime (>= 17) are needed then, and their absence is an error
that says what to install, never a silent fall-back to DuckDB.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from upliftlab.engine.dialect import SPARK, render
from upliftlab.errors import UpliftlabError

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

INSTALL_PYSPARK = "pip install 'upliftlab[spark]'"
INSTALL_JAVA = ("a Java runtime >= 17, e.g. apt-get install openjdk-17-jre-headless, "
                "or set JAVA_HOME")

# Settings every upliftlab Spark session runs with, checked by `check_session`:
# ANSI mode, because without it CAST of text that is not a number is silently NULL (the hash of
# the assignment formula would put every customer in the last arm), and UTC, because timestamps
# with a zone (Parquet) are read as DuckDB reads them only in UTC.
REQUIRED_CONF = {"spark.sql.ansi.enabled": "true", "spark.sql.session.timeZone": "UTC"}

# A small local session starts in seconds rather than a minute: the JIT's first tier only
# (short jobs never reach the second), no UI, few shuffle partitions for small data.
LOCAL_CONF = {
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "4",
    "spark.sql.adaptive.enabled": "true",
    "spark.driver.memory": "2g",
    # a local session talks to itself: on the loopback address, whatever the host name resolves to
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
}


# Spark's simple type names -> DuckDB's (decimal(p,s) -> DECIMAL(p,s); others in capitals)
_SPARK_TO_DUCKDB = {"string": "VARCHAR", "boolean": "BOOLEAN", "tinyint": "TINYINT",
                    "smallint": "SMALLINT", "int": "INTEGER", "bigint": "BIGINT",
                    "float": "FLOAT", "double": "DOUBLE", "date": "DATE",
                    "timestamp": "TIMESTAMP WITH TIME ZONE", "timestamp_ntz": "TIMESTAMP"}


def duckdb_type(spark_type: str) -> str:
    """DuckDB's name for a Spark column type, so the project's checks of column types (written
    against DuckDB's names) read a Spark schema as they read DuckDB's."""
    name = str(spark_type).strip().lower()
    return _SPARK_TO_DUCKDB.get(name) or name.upper()


def spark_path(path: "str | os.PathLike") -> str:
    """A path as Spark must be given it: a URL (s3://, hdfs://, file:) as it is, a local path
    absolute, because the JVM resolves a relative path against its own working directory,
    which is not the Python process's after a chdir."""
    text = str(path)
    if "://" in text or text.startswith("file:"):
        return text
    return os.path.abspath(text)


class EngineError(UpliftlabError):
    """The engine cannot run: PySpark or Java missing, a cluster not reached, a session with the
    wrong settings. The message says what to install or change."""


def spark_available() -> str | None:
    """None when a local Spark session can start; else why not (what to install)."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return f"PySpark is not installed ({INSTALL_PYSPARK})"
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and os.path.exists(os.path.join(java_home, "bin", "java"))) \
            and shutil.which("java") is None:
        return f"no Java runtime found for Spark ({INSTALL_JAVA})"
    return None


MASTER_ENV = "UPLIFTLAB_SPARK_MASTER"
DEFAULT_MASTER = "local[*]"
# how long to wait for a cluster's master to answer before saying it cannot be reached: Spark
# itself retries a standalone master for a minute or more, then leaves the job waiting forever
CONNECT_TIMEOUT = 10.0


def master_from_env(master: str | None = None) -> str:
    """The Spark master: `master` if given, else env UPLIFTLAB_SPARK_MASTER, else local[*]."""
    return master or os.environ.get(MASTER_ENV, "").strip() or DEFAULT_MASTER


def _endpoints(master: str) -> list[tuple[str, int]]:
    """The (host, port) pairs a master URL names: spark://h:7077[,h2:7077] (standalone, with
    standby masters), sc://h:15002 (Spark Connect), k8s://https://h:443; none for local/yarn."""
    from urllib.parse import urlsplit

    scheme, _, rest = master.partition("://")
    scheme = scheme.lower()
    if scheme == "k8s":
        url = urlsplit(rest if "://" in rest else "https://" + rest)
        return [(url.hostname or "", url.port or (443 if url.scheme == "https" else 80))]
    default = {"spark": 7077, "sc": 15002}.get(scheme)
    if default is None:
        return []
    hosts = rest.split("/", 1)[0].split(";", 1)[0]
    out = []
    for part in hosts.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep:
            host, port = part.strip(), ""
        try:
            out.append((host.strip("[]"), int(port) if port else default))
        except ValueError:
            raise EngineError(f"{{engine}} spark: Spark master {master!r}: port {port!r} is not "
                              f"a number (check {MASTER_ENV})", params=["engine"]) from None
    return out


def check_reachable(master: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """An EngineError naming `master` unless one of the hosts its URL names accepts a TCP
    connection within `timeout` seconds. Spark would otherwise retry for minutes, or start and
    leave every job waiting for executors that never come."""
    endpoints = _endpoints(master)
    why = ""
    for host, port in endpoints:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return
        except OSError as exc:
            why = (f"timed out after {timeout:g} s" if isinstance(exc, TimeoutError)
                   else (exc.strerror or str(exc)))
    if endpoints:
        raise EngineError(f"{{engine}} spark: cannot reach the Spark master {master} ({why}); "
                          f"check the URL ({MASTER_ENV} or the spec's engine settings) and "
                          "that the master is running and reachable from here",
                          params=["engine"])


def local_session(master: str = "local[2]", conf: Mapping[str, str] | None = None,
                  app_name: str = "upliftlab") -> "SparkSession":
    """A Spark session with upliftlab's settings (`REQUIRED_CONF`, and `LOCAL_CONF` for a local
    master), `conf` on top. Workers run this Python (PYSPARK_PYTHON) unless it is already set.
    An EngineError says what is missing when PySpark or Java is, or when Spark cannot start."""
    reason = spark_available()
    if reason is not None:
        raise EngineError(f"{{engine}} spark: {reason}", params=["engine"])
    check_reachable(master)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    settings = {**(LOCAL_CONF if master.startswith("local") else {}), **REQUIRED_CONF,
                **dict(conf or {})}
    connect = master.lower().startswith("sc://")
    if connect:
        # Spark Connect: a client only (no JVM here); its own extra packages
        try:
            import grpc  # noqa: F401
        except ImportError:
            raise EngineError(f"{{engine}} spark: the Spark Connect URL {master} needs "
                              "pip install 'pyspark[connect]'", params=["engine"]) from None
    builder = (SparkSession.builder.remote(master) if connect
               else SparkSession.builder.master(master)).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - py4j / JVM start-up errors have many types
        raise EngineError(f"{{engine}} spark: cannot start Spark at {master}: "
                          f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}",
                          params=["engine"]) from None
    if not connect:
        spark.sparkContext.setLogLevel("ERROR")
    # PySpark also logs a failed query's JVM stack trace as JSON on stderr; upliftlab turns the
    # errors it expects into one `error:` line, which that dump would bury
    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
    check_session(spark)
    return spark


def check_session(spark: "SparkSession") -> None:
    """Refuse a session whose settings would change the answers (`REQUIRED_CONF`)."""
    for key, want in REQUIRED_CONF.items():
        got = str(spark.conf.get(key, None)).lower()
        if got != want.lower():
            why = ("with ANSI mode off Spark casts bad text to NULL silently, and the assignment "
                   "hash would put every customer in the last arm"
                   if key == "spark.sql.ansi.enabled" else
                   "timestamps with a zone are read as DuckDB reads them only in UTC")
            raise EngineError(f"Spark session has {key}={got}; upliftlab needs {want} ({why})")


@dataclass
class SparkEngine:
    """A Spark session that runs upliftlab's queries: `sql` renders a query written once in
    DuckDB SQL for Spark and runs it; `register` makes a table available under a name."""

    spark: "SparkSession"

    def __post_init__(self) -> None:
        check_session(self.spark)

    def sql(self, query: str) -> "DataFrame":
        """Run one query written in DuckDB SQL (checked again: a setting may have changed)."""
        check_session(self.spark)
        if "DESCRIBE" in query.upper() and not query.lstrip()[:8].upper() == "DESCRIBE":
            query = self._describe_relations(query)
        return self.spark.sql(render(query, SPARK))

    def _describe_relations(self, query: str) -> str:
        """DuckDB reads `(DESCRIBE t)` as a relation (column_name, column_type, ...); Spark does
        not, so each becomes an inline table of t's columns with DuckDB's type names."""
        import sqlglot
        from sqlglot import exp

        from upliftlab.sources import literal

        tree = sqlglot.parse_one(query, read="duckdb")

        def replace(node: exp.Expression) -> exp.Expression:
            if not (isinstance(node, exp.Subquery) and isinstance(node.this, exp.Describe)
                    and isinstance(node.this.this, exp.Table)):
                return node
            table = node.this.this.name
            rows = [(f.name, duckdb_type(f.dataType.simpleString()))
                    for f in self.spark.table(table).schema.fields]
            values = ", ".join(f"({literal(n)}, {literal(t)})" for n, t in rows)
            return sqlglot.parse_one(f"(SELECT * FROM (VALUES {values}) AS d(column_name, "
                                     "column_type))", read="duckdb")

        return tree.transform(replace).sql(dialect="duckdb")

    def execute(self, query: str) -> "Result":
        """Run a query and collect its (small) answer, with the DB-API face of a DuckDB cursor
        (`fetchall`, `fetchone`, `description`): the project's code that reads aggregates from
        a connection (stats.sql.aggregate, the cohort's input checks) runs on Spark unchanged.

        Spark has no temporary tables: DuckDB's `CREATE [OR REPLACE] TEMP TABLE t AS <query>`
        becomes the cached temp view t (computed once, when first read) and `DROP TABLE
        [IF EXISTS] t` drops it and its cache."""
        temp = _temp_table(query)
        if temp is not None:
            name, select = temp
            if select is None:
                self.drop(name)
            else:
                self.sql(select).createOrReplaceTempView(name)
                self.spark.catalog.cacheTable(name)
            return Result([], [])
        frame = self.sql(query)
        rows = [tuple(r) for r in frame.collect()]
        if query.lstrip()[:8].upper() == "DESCRIBE":
            # column types by DuckDB's names, which the project's type checks read
            rows = [(r[0], duckdb_type(r[1]), *r[2:]) for r in rows]
        return Result(rows, [(c,) for c in frame.columns])

    def register(self, data: "Any", name: str) -> list[str]:
        """A Spark DataFrame, a pandas DataFrame or a Parquet path as the temp view `name`;
        returns its column names."""
        from pyspark.sql import DataFrame as SparkFrame

        if isinstance(data, SparkFrame):
            frame = data
        elif isinstance(data, (str, os.PathLike)):
            frame = self.spark.read.parquet(spark_path(data))
        else:
            frame = self.spark.createDataFrame(_plain(data))
        frame.createOrReplaceTempView(name)
        return list(frame.columns)

    def drop(self, *names: str) -> None:
        """Drop the temp views `names` (and their caches); a name that is not there is skipped."""
        for name in names:
            if self.spark.catalog.tableExists(name):
                self.spark.catalog.uncacheTable(name)
            self.spark.catalog.dropTempView(name)


def _temp_table(query: str) -> tuple[str, str | None] | None:
    """(name, its query in DuckDB SQL) of `CREATE [OR REPLACE] TEMP TABLE name AS query`,
    (name, None) of `DROP TABLE [IF EXISTS] name`, else None."""
    head = " ".join(query.split()[:6]).upper()
    if not (head.startswith("DROP TABLE") or ("TEMP" in head and "TABLE" in head
                                               and head.startswith("CREATE"))):
        return None
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(query, read="duckdb")
    if isinstance(tree, exp.Drop) and str(tree.args.get("kind")).upper() == "TABLE":
        target = tree.this or (tree.args.get("tables") or [None])[0]
        return (target.name, None) if target is not None else None
    props = tree.args.get("properties")
    if (isinstance(tree, exp.Create) and str(tree.args.get("kind")).upper() == "TABLE"
            and props is not None and tree.expression is not None
            and any(isinstance(p, exp.TemporaryProperty) for p in props.expressions)):
        return tree.this.name, tree.expression.sql(dialect="duckdb")
    return None


@dataclass
class Result:
    """A collected answer: rows as tuples and `description` as DB-API (name first)."""

    rows: list[tuple]
    description: list[tuple[str]]

    def fetchall(self) -> list[tuple]:
        return list(self.rows)

    def fetchone(self) -> tuple | None:
        return self.rows[0] if self.rows else None


def _plain(frame: "pd.DataFrame") -> "pd.DataFrame":
    """A pandas frame Spark can take: categoricals as their values (text)."""
    import pandas as pd

    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out


__all__ = ["CONNECT_TIMEOUT", "DEFAULT_MASTER", "EngineError", "INSTALL_JAVA", "INSTALL_PYSPARK",
           "LOCAL_CONF", "MASTER_ENV", "REQUIRED_CONF", "Result", "SparkEngine",
           "check_reachable", "check_session", "duckdb_type", "local_session", "master_from_env",
           "spark_available", "spark_path"]
