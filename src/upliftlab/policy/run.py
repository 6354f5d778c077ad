"""The `upliftlab policy` pipeline as one function: scores in, plan + off-policy estimate +
budget curve out (and, given `out`, the policy folder written atomically).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from upliftlab.errors import InputError
from upliftlab.policy.allocate import _Pricer, budget_curve, evaluate, make_problem
from upliftlab.policy.explore import DEFAULT_SALT, plan_campaign
from upliftlab.policy.io import (Scores, align, plot_budget_curve, read_experiment, render_html,
                                 render_markdown, to_json, write_folder, write_targeting)
from upliftlab.policy.ope import evaluate_policy


def run_policy(scores: Scores, *, budget: float,
               costs: Mapping[str, tuple[float, float]],
               capacity: Mapping[str, float] | None = None,
               value_per_reactivation: float | None = None, explore_share: float = 0.10,
               weights: Mapping[str, float] | None = None, salt: str = DEFAULT_SALT,
               method: str = "lagrangian", seed: int = 0, experiment: Any = None,
               arm_col: str = "arm", outcome_col: str = "reactivated",
               customer_col: str = "customer_id", curve_points: int = 20,
               truth: Any = None, out: str | os.PathLike | None = None,
               fmt: str = "csv") -> dict:
    """Plan the next campaign from `scores`; return the policy.json content (and write `out`).

    `costs` maps every scored arm to (cost per contact, cost per conversion). With
    `value_per_reactivation` the objective is net value (value x uplift - cost), else
    incremental reactivations. `experiment` (a file or frame with customer id, arm, 0/1 outcome)
    adds the off-policy estimates: the learned prices are applied to the experiment customers'
    scores, which must therefore be out-of-fold predictions for them. `truth` (the simulator's
    truth table: customer_id, p_control, p_<arm>) adds the true values beside the estimates.
    """
    arms = scores.arms
    if set(costs) != set(arms):
        missing = sorted(set(arms) - set(costs))
        extra = sorted(set(costs) - set(arms))
        parts = []
        if missing:
            parts.append(f"no --cost for {', '.join(missing)}")
        if extra:
            parts.append(f"--cost for {', '.join(extra)} which has no uplift column")
        raise InputError(f"{scores.source}: uplift columns ({', '.join(arms)}) do not match the "
                         f"cost arms ({', '.join(sorted(costs))}): {'; '.join(parts)}")
    if fmt not in ("csv", "parquet"):
        raise InputError(f"format must be csv or parquet (got {fmt!r})")
    objective = "net_value" if value_per_reactivation is not None else "reactivations"
    try:
        problem = make_problem(scores.base, scores.uplift, arms=arms, budget=budget,
                               capacity=capacity,
                               cost_per_contact={a: costs[a][0] for a in arms},
                               cost_per_conversion={a: costs[a][1] for a in arms},
                               objective=objective,
                               value_per_reactivation=value_per_reactivation)
    except InputError as exc:
        raise InputError(f"{scores.source}: {exc}") from None
    plan = plan_campaign(problem, scores.customer_id, explore_share=explore_share,
                         explore_weights=weights, salt=salt, method=method, seed=seed)
    opt = plan.allocation
    total = evaluate(problem, plan.arm, method=opt.method)
    alloc = opt.to_dict()
    alloc.update({k: v for k, v in total.to_dict().items() if k in (
        "counts", "expected_incremental_reactivations", "expected_value", "expected_cost",
        "cost_per_incremental_reactivation", "budget_used", "n_treated", "n_customers")})
    alloc["budget"] = float(budget)
    alloc["budget_used"] = (total.expected_cost / budget) if budget > 0 else None
    alloc["optimality_gap"] = (opt.gap_to_lp_bound if opt.gap_to_lp_bound is not None
                               else opt.gap_to_dual_bound)
    alloc["optimised_part"] = opt.to_dict()
    curve = budget_curve(problem, np.linspace(0, 2 * budget, curve_points + 1)[1:]
                         if budget > 0 else [0.0], seed=seed)
    result: dict = {
        "scores": scores.source,
        "objective": objective,
        "costs": {a: {"per_contact": costs[a][0], "per_conversion": costs[a][1]} for a in arms},
        "capacity": {a: (None if not np.isfinite(c) else int(c))
                     for a, c in zip(arms, problem.capacity)},
        "allocation": alloc,
        "exploration": {"share": plan.explore_share, "customers": int(plan.explore.sum()),
                        "weights": plan.explore_weights, "counts": plan.explore_counts,
                        "salt": salt, "cost": plan.summary["explore_cost"]},
        "budget_curve": curve.to_dict(),
        "budget_curve_note": ("each point is the Lagrangian allocation at prices that fit that "
                              "budget, without the exploration share"),
    }
    if experiment is not None:
        result["off_policy"] = _off_policy(problem, scores, experiment, opt, weights, budget,
                                           costs, arm_col=arm_col, outcome_col=outcome_col,
                                           customer_col=customer_col)
    if truth is not None:
        result["truth"] = _true_values(problem, scores, truth, plan, opt, costs,
                                       customer_col=customer_col)
    if out is not None:
        labels = plan.labels
        md = render_markdown(result)

        def png(path: Path) -> None:
            plot_budget_curve(curve, budget, path, total.expected_incremental_reactivations)

        def html(path: Path) -> None:
            path.write_text(render_html(md, path.parent / "budget_curve.png"))

        ext = "parquet" if fmt == "parquet" else "csv"
        write_folder(out, {
            f"targeting.{ext}": lambda p: write_targeting(p, scores.customer_id, labels,
                                                          plan.expected_uplift,
                                                          plan.expected_cost, plan.explore, fmt),
            "policy.json": to_json(result),
            "budget_curve.png": png,
            "policy.md": md,
            "policy.html": html,
        })
    return result


def _off_policy(problem: Any, scores: Scores, experiment: Any, opt: Any,
                weights: Mapping[str, float] | None, budget: float,
                costs: Mapping[str, tuple[float, float]], *, arm_col: str,
                outcome_col: str, customer_col: str) -> dict:
    exp = read_experiment(experiment, scores.arms, customer_col=customer_col, arm_col=arm_col,
                          outcome_col=outcome_col)
    rows = align(exp, scores)
    k1 = len(exp.arms)
    sub = type(problem)(problem.arms, problem.gain[:, rows], problem.cost[:, rows],
                        problem.uplift[:, rows], np.inf, np.full(problem.k, np.inf),
                        problem.objective)
    if exp.fold is not None and len(np.unique(exp.fold)) > 1:
        policy = _cross_fitted_policy(problem, rows, exp.fold)
        learned = ("prices learned on the other folds of the experiment and applied to each "
                   "fold (cross-fitting, by the experiment's 'fold' column)")
    else:
        pr = _Pricer(sub.gain, sub.cost, np.inf, sub.capacity)
        pr(opt.lambda_, np.array([opt.mu_[a] for a in problem.arms]))
        policy = pr.arm.astype(np.int64) + 1
        learned = ("the prices learned on all scored customers, applied to the experiment "
                   "customers (no 'fold' column to cross-fit them)")
    base = scores.base[rows]
    mu = np.column_stack([base] + [base + scores.uplift[a][rows] for a in scores.arms])
    if weights:
        e = np.array([float(weights.get(a, weights.get("none", 0.0)) if a == "control"
                            else weights.get(a, 0.0)) for a in exp.arms])
        source = "design weights (--weight)"
    else:
        e = np.bincount(exp.arm, minlength=k1).astype(float)
        source = "observed arm shares (pass --weight to use the design's)"
    if (e <= 0).any():
        zero = [a for a, v in zip(exp.arms, e) if v <= 0]
        raise InputError(f"{exp.source}: arms {zero} have no customers / zero weight; every arm "
                         "needs a positive propensity for the off-policy estimate")
    e = e / e.sum()
    n = problem.n
    ev = evaluate_policy(policy, exp.arm, exp.y, e, mu, arms=exp.arms,
                         cost_per_contact={a: costs[a][0] for a in problem.arms},
                         cost_per_conversion={a: costs[a][1] for a in problem.arms},
                         budget_per_customer=budget / n,
                         capacity_share={a: float(c) / n for a, c in zip(problem.arms,
                                                                          problem.capacity)
                                         if np.isfinite(c)},
                         population=n)
    out = ev.to_dict()
    out["experiment"] = exp.source
    out["customers"] = int(exp.arm.shape[0])
    out["propensities"] = {a: float(v) for a, v in zip(exp.arms, e)}
    out["propensity_source"] = source
    out["population"] = n
    out["policy_learned"] = learned
    out["note"] = ("policy = the learned prices applied to the experiment customers' scores; "
                   "the estimate is honest only if those scores are out-of-fold for them")
    return out


def _cross_fitted_policy(problem: Any, rows: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """The policy (arm index, 0 = control) for each experiment customer, with the prices (budget
    and capacities scaled to the training share) learned on the other folds only, so that no
    customer's decision is tuned on that customer's own outcome."""
    from upliftlab.policy.allocate import solve_lagrangian

    policy = np.zeros(rows.shape[0], dtype=np.int64)
    n = problem.n
    for k in np.unique(fold):
        train = rows[fold != k]
        share = train.shape[0] / n
        part = type(problem)(problem.arms, problem.gain[:, train], problem.cost[:, train],
                             problem.uplift[:, train], problem.budget * share,
                             problem.capacity * share, problem.objective)
        _, lam, mu, _ = solve_lagrangian(part, core=0)
        test = fold == k
        pr = _Pricer(problem.gain[:, rows[test]], problem.cost[:, rows[test]], np.inf,
                     np.full(problem.k, np.inf))
        pr(lam, mu)
        policy[test] = pr.arm.astype(np.int64) + 1
    return policy


def _true_values(problem: Any, scores: Scores, truth: Any, plan: Any, opt: Any,
                 costs: Mapping[str, tuple[float, float]], *, customer_col: str) -> dict:
    """The plan's and the price rule's true incremental reactivations and cost."""
    import pandas as pd

    from upliftlab.sources import connect, describe, register, require_columns

    where = describe(truth)
    con = connect()
    try:
        cols = register(con, truth, "truth")
        need = [customer_col, "p_control"] + [f"p_{a}" for a in scores.arms]
        require_columns(cols, need, where)
        frame = con.execute("SELECT " + ", ".join(f'"{c}"' for c in need) + " FROM truth").df()
    finally:
        con.close()
    pos = pd.Index(frame[customer_col].astype(str)).get_indexer(
        pd.Series(scores.customer_id).astype(str))
    if (pos < 0).any():
        raise InputError(f"{where}: {int((pos < 0).sum())} scored customers have no truth")
    P = frame[[c for c in need[1:]]].to_numpy(dtype=float)[pos]

    def value(arm: np.ndarray) -> dict:
        col = arm + 1
        rows = np.arange(arm.shape[0])
        inc = float((P[rows, col] - P[:, 0]).sum())
        cpc = np.array([0.0] + [costs[a][0] for a in scores.arms])
        cpv = np.array([0.0] + [costs[a][1] for a in scores.arms])
        cost = float((cpc[col] + cpv[col] * P[rows, col]).sum())
        return {"incremental_reactivations": inc, "cost": cost,
                "per_customer": inc / arm.shape[0]}

    pr = _Pricer(problem.gain, problem.cost, np.inf, np.full(problem.k, np.inf))
    pr(opt.lambda_, np.array([opt.mu_[a] for a in problem.arms]))
    return {"source": where, "targeting": value(plan.arm),
            "price_rule": value(pr.arm.astype(np.int64)),
            "note": "targeting = the written plan (exploration included); price_rule = the "
                    "learned prices applied to every customer, which is what the off-policy "
                    "estimate (scaled to the population) estimates"}
