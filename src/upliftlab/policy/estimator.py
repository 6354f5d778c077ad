"""`BudgetedPolicy`: the allocation as a scikit-learn style estimator: prices learned by `fit`
on one set of customers, applied by `predict` to others (arm 0 = none, 1..k the treatments).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from upliftlab.errors import InputError
from upliftlab.policy.lagrangian import price_rule
from upliftlab.policy.problem import Problem, make_problem
from upliftlab.policy.solver import solve


class BudgetedPolicy:
    """Learns budget and capacity prices on one set of customers and applies them to others.

    scikit-learn's estimator contract: the parameters of `__init__` are stored unchanged (so
    `get_params`, `set_params` and `sklearn.base.clone` work); `fit(base, uplift)` solves the
    allocation and keeps `lambda_`, `mu_`, `arms_` and `allocation_`; `predict(base, uplift)`
    returns the arm per customer as a column index, 0 = none and j = the j-th treatment arm
    (the convention of the off-policy code), by the price rule argmax_a (g_ia - lambda_ c_ia -
    mu_a) if positive, without re-solving. Budget and capacities are totals for the customers
    passed to `fit`.

    Not a subclass of `sklearn.base.BaseEstimator`: importing scikit-learn would cost the
    `upliftlab policy` command seconds of start-up for two small methods.
    """

    def __init__(self, *, arms: Sequence[str] | None = None, budget: float | None = None,
                 capacity: Mapping[str, float] | Sequence[float] | None = None,
                 cost_per_contact: Mapping[str, float] | Sequence[float] | None = None,
                 cost_per_conversion: Mapping[str, float] | Sequence[float] | None = None,
                 objective: str = "reactivations", value_per_reactivation: float | None = None,
                 method: str = "lagrangian", lp_bound: bool | str = False, seed: int = 0):
        self.arms = arms
        self.budget = budget
        self.capacity = capacity
        self.cost_per_contact = cost_per_contact
        self.cost_per_conversion = cost_per_conversion
        self.objective = objective
        self.value_per_reactivation = value_per_reactivation
        self.method = method
        self.lp_bound = lp_bound
        self.seed = seed

    def _problem(self, base: Any, uplift: Any, revenue_uplift: Any = None,
                 budget: float | None = None, capacity: Any = None) -> Problem:
        return make_problem(base, uplift, arms=self.arms,
                            budget=self.budget if budget is None else budget,
                            capacity=self.capacity if capacity is None else capacity,
                            cost_per_contact=self.cost_per_contact,
                            cost_per_conversion=self.cost_per_conversion,
                            objective=self.objective,
                            value_per_reactivation=self.value_per_reactivation,
                            revenue_uplift=revenue_uplift)

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values() if p.name != "self")

    def get_params(self, deep: bool = True) -> dict[str, Any]:  # noqa: ARG002 (no sub-estimators)
        """The `__init__` parameters as given (scikit-learn's contract)."""
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params: Any) -> "BudgetedPolicy":
        """Set `__init__` parameters (scikit-learn's contract); learned state is kept until the
        next `fit`."""
        valid = self._param_names()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"BudgetedPolicy has no parameter {key!r} (parameters: "
                                 f"{', '.join(valid)})")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        return f"BudgetedPolicy({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    def scaled(self, factor: float) -> "BudgetedPolicy":
        """An unfitted copy whose budget and capacities are multiplied by `factor` (a fold is a
        fraction of the population the budget was set for)."""
        params = self.get_params()
        if params["budget"] is not None:
            params["budget"] = float(params["budget"]) * factor
        cap = params["capacity"]
        if isinstance(cap, Mapping):
            params["capacity"] = {a: (None if v is None else np.floor(float(v) * factor))
                                  for a, v in cap.items()}
        elif cap is not None:
            params["capacity"] = np.floor(np.asarray(cap, dtype=float) * factor)
        return type(self)(**params)

    def fit(self, base: Any, uplift: Any, revenue_uplift: Any = None) -> "BudgetedPolicy":
        problem = self._problem(base, uplift, revenue_uplift)
        self.allocation_ = solve(problem, method=self.method, lp_bound=self.lp_bound,
                                 seed=self.seed)
        self.lambda_ = self.allocation_.lambda_
        self.mu_ = np.array([self.allocation_.mu_[a] for a in problem.arms])
        self.arms_ = problem.arms
        return self

    def predict(self, base: Any, uplift: Any, revenue_uplift: Any = None) -> np.ndarray:
        """Arm per customer by the learned prices: 0 = none, j = the j-th treatment arm."""
        if not hasattr(self, "lambda_"):
            raise InputError("BudgetedPolicy.predict: the policy is not fitted (call fit first)")
        problem = self._problem(base, uplift, revenue_uplift, budget=np.inf, capacity={})
        return price_rule(problem, self.lambda_, self.mu_)
