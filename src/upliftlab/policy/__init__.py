"""Policy for the next campaign: the best arm per customer under budget and capacity
(`allocate`), its off-policy value on a randomised experiment (`ope`), exploration (`explore`).
"""

from __future__ import annotations

from upliftlab.policy.allocate import (Allocation, BudgetCurve, BudgetedPolicy, Problem,
                                       allocate, budget_curve, check_feasible, make_problem,
                                       solve)
from upliftlab.policy.explore import (CampaignPlan, ExploreBudget, Hashes, hash_uniform,
                                      plan_campaign)
from upliftlab.policy.ope import (Comparison, CrossFit, Estimate, PolicyEvaluation, compare,
                                  cross_fit_policy, estimate_from_terms, evaluate_policy,
                                  make_folds, outcome_fitter, policy_terms, policy_value)

__all__ = ["Allocation", "BudgetCurve", "BudgetedPolicy", "Problem", "allocate", "budget_curve",
           "check_feasible", "make_problem", "solve", "CampaignPlan", "ExploreBudget",
           "Hashes", "hash_uniform", "plan_campaign", "Comparison", "CrossFit", "Estimate",
           "PolicyEvaluation", "compare", "cross_fit_policy", "estimate_from_terms",
           "evaluate_policy", "make_folds", "outcome_fitter", "policy_terms", "policy_value"]
