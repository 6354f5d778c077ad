"""Deterministic assignment of customers to arms: salted md5, stratified quotas, capacity, holdout.

The public face of `upliftlab.assignment` (one job per module: `formula`, `sql`, `engine`,
`experiment`, `export`); the formula any warehouse can reproduce is docs/assignment.md.
`assign(cohort, design)` is the notebook API; `assign_experiment` / `export_contacts` apply a spec
to the store and write contact lists.
"""

from __future__ import annotations

from upliftlab.assignment.engine import AssignedHandle, Assignment, assign, assign_sql
from upliftlab.assignment.experiment import AssignRun, assign_experiment, check_experiment
from upliftlab.assignment.export import EXPORT_FEATURES, export_contacts
from upliftlab.assignment.formula import (METHOD_VERSION, TWO60, Arm, ArmQuota, AssignmentQuotas,
                                          Design, capped_weights, cumulative_quotas, fit_capacity,
                                          hash_int, hex_key, holdout_threshold, simple_arm,
                                          stratum_phase, thresholds, unit_hash)
from upliftlab.assignment.sql import (arm_case, before_sql, hash_sql, holdout_sql, md5_sql,
                                      simple_case, simple_case_hex, stratum_sql, unit_sql)
from upliftlab.rules import HOLDOUT_ARM
from upliftlab.spec_cohort import add_value_band, validate_cohort

__all__ = ["EXPORT_FEATURES", "HOLDOUT_ARM", "METHOD_VERSION", "TWO60", "Arm", "ArmQuota",
           "AssignRun", "AssignedHandle", "Assignment", "AssignmentQuotas", "Design",
           "add_value_band", "arm_case", "assign", "assign_experiment", "assign_sql", "before_sql",
           "capped_weights", "check_experiment", "cumulative_quotas", "export_contacts",
           "fit_capacity", "hash_int", "hash_sql", "hex_key", "holdout_sql", "holdout_threshold",
           "md5_sql", "simple_arm", "simple_case", "simple_case_hex", "stratum_phase",
           "stratum_sql", "thresholds", "unit_hash", "unit_sql", "validate_cohort"]
