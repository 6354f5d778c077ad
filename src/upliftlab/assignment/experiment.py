"""A spec's assignment in the store (what `upliftlab assign` and `upliftlab checks` do): the
spec's cohort from the cohort stage, the new customers' arms from the engine, the rows written by
the store, and the checks over every customer of the experiment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from upliftlab.assignment.engine import assign_sql
from upliftlab.assignment.formula import METHOD_VERSION, AssignmentQuotas, Design
from upliftlab.assignment.sql import stratum_sql
from upliftlab.session import CohortHandle, Session
from upliftlab.sources import quote
from upliftlab.rules import HOLDOUT_ARM

if TYPE_CHECKING:
    from upliftlab.spec import ExperimentSpec
    from upliftlab.store import Store


@dataclass(frozen=True)
class AssignRun:
    """What `assign_experiment` did: the allocation of this run's new customers, how many were
    there before, the checks over all of the experiment's customers, and whether it wrote."""

    experiment: str
    version: int
    allocation: AssignmentQuotas
    n_existing: int
    n_new: int
    checks: tuple[Any, ...]
    written: bool
    spec_updated: bool


def assign_experiment(spec: "ExperimentSpec", store: "Store", *,
                      engine: str = "duckdb") -> AssignRun:
    """Assign the spec's cohort in `store`, in one transaction.

    Customers already assigned keep their arm; new cohort customers are assigned among
    themselves by the same formula; a changed randomisation on an experiment that has
    assignments is refused. Nothing is written when nothing is new (idempotent).
    `engine="spark"`: the spec's cohort is built on Spark, the new customers' arms (the same
    arms) and the checks are computed there; the arms are recorded in this store all the same.
    """
    from upliftlab.errors import StoreError
    from upliftlab.spec import randomisation_diff, randomisation_fields, randomisation_hash
    from upliftlab.spec_cohort import spec_cohort
    from upliftlab.store import now

    session = store.session
    name, version = spec.name, spec.version
    with store.transaction():
        store.ensure_schema()
        exp = store.experiment(name, version)
        existing = store.arm_counts(name, version)
        n_existing = sum(existing.values())
        changed = []
        if exp is not None and exp["randomisation_hash"] != randomisation_hash(spec) and n_existing:
            stored = exp["randomisation_json"]
            fields = randomisation_fields(spec)
            if "tiers" not in stored:  # recorded before the tiers were part of it: unknown
                fields.pop("tiers", None)
            changed = randomisation_diff(stored, fields)
        if changed:
            raise StoreError(
                f"experiment '{name}' v{version} already has {n_existing} assignments; its "
                f"{', '.join(changed)} changed — re-randomising a running "
                "experiment destroys it; bump `version` to start a new one")
        before = {a: n for a, n in existing.items() if a != HOLDOUT_ARM}
        on_spark = None
        if engine == "spark":  # the cohort, the new arms and the checks on Spark
            from upliftlab.engine.spark_design import SparkAssignRun

            on_spark = SparkAssignRun(session, store, spec)
        try:
            if on_spark is not None:
                assigned = on_spark.assign_new(before)
            else:
                cohort = spec_cohort(session, spec)
                pool = session.temp_name("pool")
                session.con.execute(
                    f"CREATE OR REPLACE TEMP VIEW {quote(pool)} AS SELECT c.customer_id, "
                    f"{stratum_sql(spec.strata, 'c')} AS stratum FROM {cohort.sql} c "
                    f"WHERE {store.not_assigned_sql(name, version, 'c.customer_id')}")
                assigned = assign_sql(session, pool, Design.from_spec(spec), existing=before)
                session.drop(pool)
            allocation = assigned.quotas
            n_new = allocation.n_pool
            at = now()
            # costs, descriptions, covariates may change while it runs; the refusal above
            # already stopped any change to who gets which arm
            updated = store.record_experiment(spec, exp, at)
            if n_new:
                store.add_assignments(name, version, assigned.name, allocation,
                                      f"{spec.assignment.mode}/{METHOD_VERSION}", at)
            checks = (on_spark.checks() if on_spark is not None
                      else _experiment_checks(session, store, spec, cohort))
            if n_new:
                store.add_checks(name, version, checks, at)
            assigned.drop()
            if on_spark is None:
                cohort.drop()
        finally:
            if on_spark is not None:
                on_spark.close()
    return AssignRun(name, version, allocation, n_existing, n_new, tuple(checks),
                     bool(n_new) or updated or exp is None, updated)


def check_experiment(spec: "ExperimentSpec", store: "Store") -> list[Any]:
    """Run the checks of an assigned experiment now (SRM overall and per stratum, holdout share,
    balance, counts) and append them to the store's `checks` table, in one transaction."""
    from upliftlab.errors import StoreError
    from upliftlab.spec_cohort import spec_cohort
    from upliftlab.store import now

    if store.experiment(spec.name, spec.version) is None or not store.arm_counts(
            spec.name, spec.version):
        raise StoreError(f"experiment '{spec.name}' v{spec.version} has no assignments in store "
                         f"{store.path}; run `upliftlab assign` first")
    with store.transaction():
        cohort = spec_cohort(store.session, spec)
        checks = _experiment_checks(store.session, store, spec, cohort)
        store.add_checks(spec.name, spec.version, checks, now())
        cohort.drop()
    return checks


def _experiment_checks(session: Session, store: "Store", spec: "ExperimentSpec",
                       cohort: CohortHandle) -> list[Any]:
    """Checks over all of the experiment's stored customers; SRM expects, per stratum, the sum
    over runs of (customers of that run) x (that run's effective weight)."""
    from upliftlab.checks import run_checks

    con = session.con
    everyone, expected = session.temp_name("all"), session.temp_name("expected")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(everyone)} AS " + store.assignments_sql(
        spec.name, spec.version, columns=("customer_id", "stratum", "arm", "batch")))
    con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(expected)} AS "
                + store.expected_sql(spec.name, spec.version, everyone))
    checks = run_checks(con, assigned=everyone, expected=expected, cohort=cohort.name,
                        control=spec.control_arm.name,
                        treatments=[a.name for a in spec.treatment_arms],
                        holdout_share=spec.holdout.share)
    session.drop(expected, everyone)
    return checks
