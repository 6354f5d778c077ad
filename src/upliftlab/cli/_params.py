"""Library errors name parameters (`as_of`, `transactions`, ...); the CLI's one boundary
(`cli.main`) renames them to the flags that set them, so its `error: ...` line says what to type.
"""

from __future__ import annotations

# the library's parameter names -> the flags of the commands that set them
FLAGS = {
    "as_of": "--as-of",
    "out": "--out",
    "transactions": "--transactions",
    "columns": "--customer-col/--time-col/--amount-col",
    "customer_col": "--customer-col",
    "outcome": "--metric",
    "fmt": "--format",
    "store": "--store",
    "capacity": "--capacity",
    "costs": "--cost",
    "budget": "--budget",
    "explore_budget": "--explore-budget",
    "weights": "--weight",
    "model_dir": "--model",
    "scores": "--scores",
    "engine": "--engine",
    "force": "--force",
}
