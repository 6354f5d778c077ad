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
    "simulate_world": "upliftlab.simulate",
    "load_world": "upliftlab.simulate",
    "World": "upliftlab.simulate",
    "build_cohort": "upliftlab.cohort",
    "ColumnMap": "upliftlab.sources",
    "analyze": "upliftlab.analysis",
    "AnalysisResult": "upliftlab.analysis",
    "write_report": "upliftlab.report",
}


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'upliftlab' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))


__all__ = sorted(_API) + ["__version__"]
