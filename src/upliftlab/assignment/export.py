"""The contact lists of an assigned experiment (what `upliftlab export` writes): one file per
treatment arm and the full assignment, joined with useful cohort features, as one folder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from upliftlab.errors import InputError
from upliftlab.sources import FLOAT_TYPES, literal, quote

if TYPE_CHECKING:
    from upliftlab.spec import ExperimentSpec
    from upliftlab.store import Store

EXPORT_FEATURES = ("tier", "value_band", "days_since_last", "last_purchase", "orders_total",
                   "revenue_total", "revenue_365d", "avg_order_value")
# money columns of the cohort: exported rounded to cents
_MONEY_PREFIXES = ("revenue_", "avg_order_value")
FORMATS = ("csv", "parquet")


def export_contacts(spec: "ExperimentSpec", store: "Store", out_dir: str, fmt: str = "csv",
                    *, engine: str = "duckdb") -> list[str]:
    """Write one contact list per treatment arm, then the full assignment (every customer:
    control and the global holdout too) as `<name>_v<version>_assignment.<fmt>`, as the folder
    `out_dir`.

    Columns: the customer id under the source's own id column name (the spec's
    `[cohort.columns] customer_col`) and with the cohort's id type, experiment, version, arm,
    stratum and useful cohort features, money rounded to cents. The folder is staged beside
    `out_dir` and swapped in whole (`upliftlab._files.staged_dir`); a folder that `upliftlab
    export` did not write is refused. Returns the paths, the full assignment last.
    `engine="spark"`: the cohort is built on Spark and Spark writes the lists (Parquet only,
    each a folder of parts), the same rows and columns.
    """
    from upliftlab._files import claim, staged_dir
    from upliftlab.errors import StoreError
    from upliftlab.spec_cohort import spec_cohort

    if fmt not in FORMATS:
        raise InputError(f"fmt must be csv or parquet, got {fmt!r}")
    if engine == "spark" and fmt != "parquet":
        raise InputError("{engine} spark writes the contact lists as Parquet (folders of parts): "
                         "use {fmt} parquet", params=["engine", "fmt"])
    # a folder from before the marker holds only contact lists of this experiment
    legacy = (f"{spec.name}_v*.csv", f"{spec.name}_v*.parquet")
    out = claim(out_dir, "export", legacy)
    counts = store.arm_counts(spec.name, spec.version)
    if not counts:
        raise StoreError(f"experiment '{spec.name}' v{spec.version} has no assignments in store "
                         f"{store.path}; run `upliftlab assign` first")
    id_name = spec.cohort.columns.customer_col if spec.cohort.transactions else "customer_id"
    if engine == "spark":
        return _export_on_spark(spec, store, out, id_name)
    session = store.session
    con = session.con
    cohort = spec_cohort(session, spec)
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {cohort.sql})"
                             ).fetchall())
    feats = ", ".join(feature_sql(types, "c."))
    id_sql = f"CAST(a.customer_id AS {types['customer_id']}) AS {quote(id_name)}"
    assigned = store.assignments_sql(spec.name, spec.version, columns=(
        "experiment", "version", "customer_id", "arm", "stratum"))
    lists = [(arm.name, f"a.arm = {literal(arm.name)}") for arm in spec.treatment_arms]
    lists.append(("assignment", "TRUE"))
    names = [f"{spec.name}_v{spec.version}_{label}.{fmt}" for label, _ in lists]
    options = "(FORMAT csv, HEADER true)" if fmt == "csv" else "(FORMAT parquet)"
    try:
        with staged_dir(out, owner="export", legacy=legacy) as tmp:
            for (_, where), name in zip(lists, names):
                con.execute(f"""COPY (
                    SELECT {id_sql}, a.experiment, a.version, a.arm, a.stratum
                           {', ' + feats if feats else ''}
                    FROM ({assigned}) a LEFT JOIN {cohort.sql} c
                      ON CAST(c.customer_id AS VARCHAR) = a.customer_id
                    WHERE {where}
                    ORDER BY a.customer_id) TO {literal(str(tmp / name))} {options}""")
    finally:
        cohort.drop()
    return [str(out / name) for name in names]


def feature_sql(types: dict[str, str], prefix: str = "") -> list[str]:
    """The exported cohort features that the cohort has (`types`: column -> DuckDB type name),
    as SQL over the cohort (`prefix`: its alias and a dot): money rounded to cents by one
    expression that DuckDB and Spark compute alike (their round(x, 2) differ at a half cent:
    DuckDB rounds the binary value, Spark its shortest decimal text)."""
    return [f"round({prefix}{quote(f)} * 100) / 100 AS {quote(f)}"
            if f.startswith(_MONEY_PREFIXES) and types[f] in FLOAT_TYPES
            else f"{prefix}{quote(f)}" for f in EXPORT_FEATURES if f in types]


def _export_on_spark(spec: "ExperimentSpec", store: "Store", out, id_name: str  # noqa: ANN001
                     ) -> list[str]:
    """The lists written by Spark (engine/spark_design.write_contacts_spark) from the stored
    assignment (staged as Parquet: the store is the driver's) and the spec's cohort built on
    Spark (`spec_cohort_spark`): the customers' features never reach the driver."""
    import shutil
    import tempfile
    from pathlib import Path

    from upliftlab.engine.spark import SparkEngine, local_session, master_from_env
    from upliftlab.engine.spark_cohort import check_spec_sources, spec_cohort_spark, stage_parquet
    from upliftlab.engine.spark_design import write_contacts_spark
    from upliftlab.engine.spark_steps import duckdb_types

    check_spec_sources(spec)  # a CSV source is refused before the JVM starts
    engine = SparkEngine(local_session(master_from_env()))  # an EngineError says why not
    tmp = Path(tempfile.mkdtemp(prefix="upliftlab-export-"))
    cohort = None
    try:
        a = stage_parquet(store.session.con, store.assignments_sql(
            spec.name, spec.version, columns=("customer_id", "arm", "stratum")),
            tmp / "assignment.parquet")
        cohort = spec_cohort_spark(engine, spec)
        types = duckdb_types(cohort.frame)
        picks = ", ".join(["customer_id", *feature_sql(types)])
        features = engine.sql(f"SELECT {picks} FROM {quote(cohort.name)}")
        return write_contacts_spark(a, out, experiment=spec.name, version=spec.version,
                                    treatment_arms=[x.name for x in spec.treatment_arms],
                                    engine=engine, cohort=features,
                                    features=[f for f in EXPORT_FEATURES if f in types],
                                    id_name=id_name, id_type=types["customer_id"])
    finally:
        if cohort is not None:
            cohort.drop()
        shutil.rmtree(tmp, ignore_errors=True)
