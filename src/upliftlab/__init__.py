"""upliftlab: A/B experiments and uplift measurement for reactivating dormant customers.

The public API is imported lazily so that `import upliftlab` (and the CLI) start fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it; resolved on first attribute access (PEP 562)
_API = {
    "UpliftlabError": "upliftlab.errors",
    "ColumnMap": "upliftlab.sources",
    # issue flow: simulate -> cohort -> design/assign -> outcomes -> analyze/report -> policy
    "simulate_world": "upliftlab.simulate",
    "load_world": "upliftlab.simulate",
    "World": "upliftlab.simulate",
    "build_cohort": "upliftlab.cohort",
    "tier_summary": "upliftlab.cohort",
    "load_spec": "upliftlab.spec",
    "power_table": "upliftlab.power",
    "Design": "upliftlab.assign",
    "assign_experiment": "upliftlab.assign",
    "open_store": "upliftlab.store",
    "compute_outcomes": "upliftlab.outcomes",
    "report_spec": "upliftlab.outcomes",
    "analyze": "upliftlab.analysis",
    "AnalysisResult": "upliftlab.analysis",
    "write_report": "upliftlab.report",
    "allocate": "upliftlab.policy",
    "BudgetedPolicy": "upliftlab.policy",
    "evaluate_policy": "upliftlab.policy",
    "cross_fit_policy": "upliftlab.policy",
    "plan_campaign": "upliftlab.policy",
    # the long run: the simulator's twelve months on, one experiment's long run, the programme
    "respond_long_run": "upliftlab.lifecycle_sim",
    "long_run": "upliftlab.longrun",
    "programme_report": "upliftlab.programme",
}


# Submodule names (assign, cohort, power, policy, report, ...) are not re-bound to functions:
# `import upliftlab.assign` would shadow such a name. Call `upliftlab.assign.assign(...)`.


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'upliftlab' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))


__all__ = sorted(_API) + ["__version__"]
