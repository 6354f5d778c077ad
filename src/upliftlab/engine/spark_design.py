"""The Spark side of `assign`, `export` and the store: `assign`'s run on Spark (`SparkAssignRun`:
the spec's cohort, the new customers' arms, the checks), an assignment made on Spark written as
Parquet and read back by the store's DuckDB connection as a relation, so the store records it by
its own method, and the contact lists per treatment arm.

The customers never pass through Python: Spark writes Parquet parts, DuckDB reads them; only the
store's own rows go the other way (see README "On Apache Spark": what `assign`, `export` and
`report` do with `--engine spark`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upliftlab.errors import InputError
from upliftlab.sources import literal, quote

if TYPE_CHECKING:
    import duckdb
    from pyspark.sql import DataFrame

    from upliftlab.engine.spark import SparkEngine

# the columns of an assignment, as the store's `assignments` table holds them (all text)
ASSIGNMENT_COLUMNS = ("customer_id", "arm", "stratum")


@dataclass(frozen=True)
class SparkAssignment:
    """An assignment made on Spark: `path` is a folder of Parquet parts (customer_id, arm,
    stratum as text); `allocation` is what the run allocated (`assign_spark`'s answer)."""

    path: Path
    allocation: Any
    counts: dict[str, int]

    def relation(self, con: "duckdb.DuckDBPyConnection", name: str) -> str:
        """The assignment as the temp view `name` of a DuckDB connection (the store's), which
        the store records as it records DuckDB's own assignment; returns `name`."""
        con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(name)} AS SELECT "
                    + ", ".join(f"CAST({c} AS VARCHAR) AS {c}" for c in ASSIGNMENT_COLUMNS)
                    + f" FROM read_parquet({literal(os.path.abspath(self.path / '*.parquet'))})")
        return name


def assign_to_parquet(engine: "SparkEngine", pool: Any, design: Any, out: str | os.PathLike,
                      *, existing: Mapping[str, int] | None = None) -> SparkAssignment:
    """Assign `pool` (customer_id and the design's strata columns: a Parquet path, a Spark or
    pandas DataFrame; the customers not yet assigned) on Spark and write the assignment as
    the Parquet folder `out` (which must not exist: the caller stages it and removes it)."""
    from upliftlab.engine.spark import spark_path
    from upliftlab.engine.spark_assign import assign_spark
    from upliftlab.engine.spark_steps import spark_errors

    out = Path(out)
    if out.exists():
        raise InputError(f"{out}: already exists (an assignment is written to a new folder)")
    with spark_errors(str(pool) if isinstance(pool, (str, os.PathLike)) else "cohort"):
        frame, allocation = assign_spark(engine, str(pool) if isinstance(pool, os.PathLike)
                                         else pool, design, existing=existing)
        frame.select(*ASSIGNMENT_COLUMNS).write.parquet(spark_path(out))
        counts = {r["arm"]: int(r["n"]) for r in
                  engine.spark.read.parquet(spark_path(out)).groupBy("arm").count()
                  .withColumnRenamed("count", "n").collect()}
        engine.drop("ul_spark_pool", "ul_spark_pool_src")  # assign_spark's views
    return SparkAssignment(out, allocation, counts)


class SparkAssignRun:
    """`assign`'s work on Spark for a spec and its store (`upliftlab assign --engine spark`): the
    spec's cohort built on Spark (`spec_cohort_spark`), the customers not yet in the store
    assigned there (`assign_new`), and the checks over all of the experiment's customers
    (`checks`). The customers never reach the driver: only the store's own rows (the ids
    already assigned, then every assigned customer for the checks) go to Spark, as Parquet
    staged in a temporary folder that `close` removes with everything made on Spark."""

    def __init__(self, session: Any, store: Any, spec: Any) -> None:
        import tempfile

        from upliftlab.engine.spark import SparkEngine, local_session, master_from_env
        from upliftlab.engine.spark_cohort import check_spec_sources, spec_cohort_spark

        check_spec_sources(spec)  # a CSV source is refused before the JVM starts
        self.engine = SparkEngine(local_session(master_from_env()))  # EngineError says why not
        self.session, self.store, self.spec = session, store, spec
        self.dir = Path(tempfile.mkdtemp(prefix="upliftlab-assign-"))
        self.views: list[str] = []
        self.cohort = None
        try:
            self.cohort = spec_cohort_spark(self.engine, spec)
        except BaseException:
            self.close()
            raise

    def _stage(self, sql: str, name: str) -> str:
        """The store's rows of `sql` as the Spark temp view `name` (staged as Parquet)."""
        from upliftlab.engine.spark_cohort import stage_parquet

        path = stage_parquet(self.session.con, sql, self.dir / f"{name}.parquet")
        self.engine.register(path, name)
        self.views.append(name)
        return name

    def assign_new(self, existing: Mapping[str, int]) -> Any:
        """Assign the cohort's customers not yet in the store, on Spark; the handle has the
        allocation (`quotas`), a temp view of the store's connection with the arms (`name`),
        which the store records as DuckDB's, and `drop`."""
        from types import SimpleNamespace

        from upliftlab.assignment.formula import Design

        spec, store = self.spec, self.store
        before = self._stage(store.assignments_sql(spec.name, spec.version, columns=(
            "experiment", "version", "customer_id")), "ul_spark_assigned_before")
        cols = "".join(f", c.{quote(s)}" for s in spec.strata)
        pool = self.engine.sql(
            f"SELECT c.customer_id{cols} FROM {quote(self.cohort.name)} c WHERE "
            + store.not_assigned_sql(spec.name, spec.version, "c.customer_id", table=before))
        got = assign_to_parquet(self.engine, pool, Design.from_spec(spec), self.dir / "assigned",
                                existing=dict(existing))
        name = got.relation(self.session.con, self.session.temp_name("spark_assigned"))
        return SimpleNamespace(quotas=got.allocation, name=name,
                               drop=lambda: self.session.drop(name))

    def checks(self) -> list[Any]:
        """`checks.run_checks` on Spark over every stored customer of the experiment (this
        run's too, inside the store's transaction) against the cohort on Spark."""
        from upliftlab.checks import run_checks

        spec, store, con = self.spec, self.store, self.session.con
        columns = ("customer_id", "stratum", "arm", "batch")
        duck = self.session.temp_name("all")
        con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(duck)} AS "
                    + store.assignments_sql(spec.name, spec.version, columns=columns))
        try:
            k = len(self.views)
            everyone = self._stage(f"SELECT * FROM {quote(duck)}", f"ul_spark_all{k}")
            expected = self._stage(store.expected_sql(spec.name, spec.version, duck),
                                   f"ul_spark_expected{k}")
        finally:
            self.session.drop(duck)
        return run_checks(self.engine, assigned=everyone, expected=expected,
                          cohort=self.cohort.name, control=spec.control_arm.name,
                          treatments=[a.name for a in spec.treatment_arms],
                          holdout_share=spec.holdout.share)

    def close(self) -> None:
        import shutil

        if self.cohort is not None:
            self.cohort.drop()
        self.engine.drop(*self.views)
        shutil.rmtree(self.dir, ignore_errors=True)


def write_contacts_spark(assignment: "DataFrame | str | os.PathLike", out_dir: str | os.PathLike,
                         *, experiment: str, version: int, treatment_arms: Sequence[str],
                         engine: "SparkEngine", cohort: Any = None,
                         features: Sequence[str] = (), id_name: str = "customer_id",
                         id_type: str | None = None) -> list[str]:
    """`upliftlab export` on Spark: one contact list per treatment arm, then the full assignment
    (control and the holdout too), as `<experiment>_v<version>_<arm>.parquet` folders of parts
    in the folder `out_dir` (staged and swapped in whole; a folder `export` did not write is
    refused). With `cohort` (customer_id and `features`), those columns are joined on.
    The id is the first column, named `id_name`, as text or cast to `id_type` (a DuckDB type
    name: `upliftlab export` gives the source's own name and type). Returns the paths, the
    full assignment last."""
    from upliftlab._files import staged_dir
    from upliftlab.engine.spark import spark_path
    from upliftlab.engine.spark_steps import spark_errors

    legacy = (f"{experiment}_v*.csv", f"{experiment}_v*.parquet")
    names = [*treatment_arms, "assignment"]
    with spark_errors(str(assignment) if isinstance(assignment, (str, os.PathLike))
                      else "assignment"):
        frame = (engine.spark.read.parquet(spark_path(assignment))
                 if isinstance(assignment, (str, os.PathLike)) else assignment)
        view, cview = "ul_spark_contacts", "ul_spark_contacts_cohort"
        frame.createOrReplaceTempView(view)
        cid = f"CAST(a.customer_id AS {id_type})" if id_type else "a.customer_id"
        select = (f"SELECT {cid} AS {quote(id_name)}, {literal(experiment)} AS experiment, "
                  f"CAST({int(version)} AS INTEGER) AS version, a.arm, a.stratum")
        source = f"{quote(view)} a"
        if cohort is not None:
            have = engine.register(cohort, cview)
            missing = [f for f in features if f not in have]
            if missing:
                raise InputError(f"cohort: no column {', '.join(map(repr, missing))} to export")
            select += "".join(f", c.{quote(f)}" for f in features)
            source += (f" LEFT JOIN {quote(cview)} c "
                       "ON CAST(c.customer_id AS VARCHAR) = a.customer_id")
        try:
            with staged_dir(out_dir, owner="export", legacy=legacy) as tmp:
                for label in names:
                    where = "" if label == "assignment" else f" WHERE a.arm = {literal(label)}"
                    engine.sql(f"{select} FROM {source}{where}").write.parquet(
                        spark_path(tmp / f"{experiment}_v{version}_{label}.parquet"))
        finally:
            engine.drop(view, *([cview] if cohort is not None else []))
    out = Path(out_dir)
    return [str(out / f"{experiment}_v{version}_{label}.parquet") for label in names]


__all__ = ["ASSIGNMENT_COLUMNS", "SparkAssignRun", "SparkAssignment", "assign_to_parquet",
           "write_contacts_spark"]
