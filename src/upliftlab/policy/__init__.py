"""Policy for the next campaign: the best arm per customer under budget and capacity
(`solver`), its off-policy value on a randomised experiment (`ope`), exploration (`explore`).

Modules: `problem` (inputs, `Allocation`), `lagrangian` (prices, repair), `exact` (LP/MILP),
`solver` (`allocate`, `solve`), `curve` (budget curve), `estimator` (`BudgetedPolicy`), `ope`,
`explore`, `run` (what `upliftlab policy` does), `render`, `io`. Arms as column indices: 0 =
control / none, 1..k the treatments (`BudgetedPolicy.predict`, the off-policy code).
"""

from __future__ import annotations

from upliftlab.policy.curve import BudgetCurve, budget_curve
from upliftlab.policy.estimator import BudgetedPolicy
from upliftlab.policy.explore import (CampaignPlan, ExploreBudget, Hashes, hash_uniform,
                                      plan_campaign)
from upliftlab.policy.ope import (BaselineComparison, Estimate, PolicyCrossFit,
                                  PolicyEvaluation, compare, cross_fit_policy,
                                  estimate_from_terms, evaluate_policy, off_policy_value,
                                  outcome_fitter, policy_terms)
from upliftlab.policy.problem import Allocation, Problem, check_feasible, make_problem
from upliftlab.policy.solver import allocate, solve

__all__ = ["Allocation", "BudgetCurve", "BudgetedPolicy", "Problem", "allocate", "budget_curve",
           "check_feasible", "make_problem", "solve", "CampaignPlan", "ExploreBudget",
           "Hashes", "hash_uniform", "plan_campaign", "BaselineComparison", "PolicyCrossFit",
           "Estimate", "PolicyEvaluation", "compare", "cross_fit_policy", "estimate_from_terms",
           "evaluate_policy", "off_policy_value", "outcome_fitter", "policy_terms"]
