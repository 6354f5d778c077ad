"""The `upliftlab policy` pipeline as one function: scores in, the written plan (exploration
included), its one reconciled value (`plan_value`), profile and budget curve out.

Every figure about the plan is about the plan as written to targeting.*: the stochastic policy
pi(a | x) with the exploration reserve inside the budget (STATS-NOTES "The value of the plan as
written"). Given `out`, the policy folder is written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from upliftlab.errors import InputError
from upliftlab.policy.curve import BudgetCurve, plan_curve, plan_expectation
from upliftlab.policy.problem import Problem, make_problem
from upliftlab.policy.explore import (DEFAULT_EXPLORE_BUDGET, DEFAULT_SALT, ExploreBudget,
                                      Hashes, explore_weights, plan_campaign)
from upliftlab.policy.margin import cost_bound
from upliftlab.policy.io import (Scores, align, plot_budget_curve, read_experiment, to_json,
                                 write_folder, write_targeting)
from upliftlab.policy.ope import estimate_from_terms, evaluate_policy, policy_terms
from upliftlab.policy.render import render_html, render_markdown

_RTOL = 1e-9  # floating-point slack of the budget check
# "would come back anyway": predicted reactivation without treatment at least this many times
# the best predicted uplift (a treatment would mostly pay for customers who return on their own)
ANYWAY_RATIO = 5.0


def run_policy(scores: Scores, *, budget: float,
               costs: Mapping[str, tuple[float, float]],
               capacity: Mapping[str, float] | None = None,
               value_per_reactivation: float | None = None,
               explore_budget: Any = DEFAULT_EXPLORE_BUDGET,
               weights: Mapping[str, float] | None = None, salt: str = DEFAULT_SALT,
               method: str = "lagrangian", seed: int = 0, experiment: Any = None,
               arm_col: str = "arm", outcome_col: str = "reactivated",
               customer_col: str = "customer_id", curve_points: int = 20,
               truth: Any = None, customers: Any = None, soft_budget: bool = False,
               currency: str = "", out: str | os.PathLike | None = None,
               fmt: str = "csv") -> dict:
    """Plan the next campaign from `scores`; return the policy.json content (and write `out`).

    `costs` maps every scored arm to (cost per contact, cost per conversion). With
    `value_per_reactivation` the objective is net value (value x uplift - cost), else
    incremental reactivations. `explore_budget` ('5%' of the budget and of each capacity, or an
    amount) is reserved inside the budget for customers assigned at random by `weights`
    (default equal over control and the arms). `experiment` (a file or frame with customer id,
    arm, 0/1 outcome; its customers must be scored, out of fold) adds the off-policy estimate of
    the written plan. `truth` (the simulator's truth: customer_id, p_control, p_<arm>) adds the
    true values. `customers` (with `tier` and `value_band` or revenue columns) adds them to the
    plan's profile. A plan whose expected cost, or whose off-policy cost interval, lies above
    the budget is refused (InputError) unless `soft_budget`, where it is flagged.
    """
    arms = scores.arms
    _check_costs(scores, costs)
    if fmt not in ("csv", "parquet"):
        raise InputError(f"format must be csv or parquet (got {fmt!r})")
    if capacity:
        unknown = sorted(set(capacity) - set(arms))
        if unknown:
            raise InputError(f"{{capacity}} for unknown arm {', '.join(unknown)} (arms in "
                             f"{scores.source}: {', '.join(arms)})", params=["capacity"])
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
    eb = ExploreBudget.parse(explore_budget)
    w = explore_weights(weights, arms)
    hashes = Hashes.of(scores.customer_id, w, salt)
    # with an experiment, the plan is fitted so that the one-sided 95% upper bound of its
    # off-policy cost (policy/margin.py: only conversions are uncertain, so the bound is tight)
    # stays within a hard budget too: the model's conversion costs are predictions, and the
    # customers a plan picks are those it is most wrong about. A few re-plans at most
    planning = float(budget)
    ope = None
    fitted = planning
    for step in range(12):
        part = problem if planning == budget else replace(problem, budget=planning)
        try:
            plan = plan_campaign(part, scores.customer_id, explore_budget=eb,
                                 explore_weights_=weights, salt=salt, method=method, seed=seed,
                                 hashes=hashes)
        except InputError:
            if ope is None:
                raise
            # the cost bound (a small experiment) leaves too little for the exploration: the
            # last plan stays, flagged as one that may exceed the budget (policy/margin.py)
            planning = fitted
            break
        fitted = planning
        if experiment is None:
            break
        ope = _off_policy(problem, scores, experiment, plan.propensity, weights, budget, costs,
                          arm_col=arm_col, outcome_col=outcome_col, customer_col=customer_col)
        est = ope["cost_bound"]["upper"]  # policy/margin.py: hold the budget against the truth
        if soft_budget or est is None or not np.isfinite(budget) or est <= budget:
            break
        # from what the plan spends by the model (the budget may not bind), scaled down
        spent = max(plan_expectation(problem, plan.propensity)["cost"],
                    float(plan.expected_cost.sum()))
        planning = min(planning, spent) * budget / est * (1 - 1e-6)
        if step >= 3:
            # the bound is not proportional to the plan (its SE grows more slowly, and the plan
            # changes in steps): when the proportional step stalls just above the budget, shrink
            # by a growing margin (0.1%, 0.2%, 0.4%, ...) so the loop ends within the budget
            planning *= 1 - 1e-3 * 2 ** (step - 3)
    opt = plan.allocation
    expected = plan_expectation(problem, plan.propensity)
    written_cost = float(plan.expected_cost.sum())
    alloc = opt.to_dict()
    alloc.update({k: v for k, v in plan.summary.items() if k in (
        "counts", "expected_incremental_reactivations", "expected_value", "expected_cost",
        "cost_per_incremental_reactivation")})
    alloc["n_customers"] = problem.n
    alloc["n_treated"] = int((plan.arm > 0).sum())
    alloc["budget"] = float(budget)
    alloc["budget_used"] = (written_cost / budget) if budget > 0 else None
    alloc["optimality_gap"] = (opt.gap_to_lp_bound if opt.gap_to_lp_bound is not None
                               else opt.gap_to_dual_bound)
    alloc["optimised_part"] = opt.to_dict()
    alloc["note"] = ("the written plan, exploration included; optimality_gap is of the "
                     "optimised part (the customers outside exploration)")
    curve = plan_curve(problem, scores.customer_id, budget, eb, weights, hashes, salt,
                       curve_points, seed, plan_budget=planning,
                       plan_point=(expected["reactivations"],
                                                       expected["cost"], expected["value"]))
    n_explore = int(plan.explore.sum())
    result: dict = {
        "scores": scores.source,
        "objective": objective,
        "currency": currency,
        "costs": {a: {"per_contact": costs[a][0], "per_conversion": costs[a][1]} for a in arms},
        "capacity": {a: (None if not np.isfinite(c) else int(c))
                     for a, c in zip(arms, problem.capacity)},
        "allocation": alloc,
        "exploration": {
            "budget": eb.describe(), "reserved": plan.explore_money,
            "share_of_budget": (plan.explore_money / budget) if budget > 0 else None,
            "capacity_share": eb.capacity_share(budget),
            "customers": n_explore,
            "share": n_explore / problem.n if problem.n else 0.0,
            "cost": plan.summary["explore_cost"],
            "cost_expected_over_weights": plan.summary["explore_cost_expected"],
            "weights": plan.explore_weights, "counts": plan.explore_counts,
            "salt": salt, "threshold": plan.explore_threshold,
            "rule": (f"a customer explores when md5('{salt}:' || id) / 2^60 < threshold and "
                     f"then gets the arm drawn by md5('{salt}:arm:' || id) / 2^60 against the "
                     "cumulative weights (control first), as in docs/assignment.md"),
        },
        "budget_curve": curve.to_dict(),
        "budget_curve_note": ("each point is the written plan at that budget: the same "
                              "exploration reserve, then the optimised allocation; the point "
                              "at the chosen budget is this plan"),
    }
    if ope is not None:
        result["off_policy"] = ope
    if truth is not None:
        result["truth"] = _true_values(scores, truth, plan, costs, customer_col=customer_col)
    result["plan_value"] = _plan_value(expected, written_cost, budget, curve, ope,
                                       result.get("truth"), soft_budget, planning)
    result["profile"] = profile(problem, scores, plan, customers, customer_col=customer_col)
    _enforce_budget(result["plan_value"], soft_budget)
    if out is not None:
        md = render_markdown(result)

        def png(path: Path) -> None:
            plot_budget_curve(curve, budget, path, expected["reactivations"])

        def html(path: Path) -> None:
            path.write_text(render_html(result, path.parent / "budget_curve.png"))

        ext = "parquet" if fmt == "parquet" else "csv"
        write_folder(out, {
            f"targeting.{ext}": lambda p: write_targeting(p, scores.customer_id, plan.labels,
                                                          plan.expected_uplift,
                                                          plan.expected_cost, plan.explore,
                                                          plan.propensity,
                                                          ("none",) + arms, fmt),
            "policy.json": to_json(result),
            "budget_curve.png": png,
            "policy.md": md,
            "policy.html": html,
        })
    return result


def _check_costs(scores: Scores, costs: Mapping[str, tuple[float, float]]) -> None:
    arms = scores.arms
    if set(costs) == set(arms):
        return
    missing = sorted(set(arms) - set(costs))
    extra = sorted(set(costs) - set(arms))
    parts = []
    if missing:
        parts.append(f"no {{costs}} for {', '.join(missing)}")
    if extra:
        parts.append(f"{{costs}} for {', '.join(extra)} which has no uplift column")
    raise InputError(f"{scores.source}: uplift columns ({', '.join(arms)}) do not match the "
                     f"cost arms ({', '.join(sorted(costs))}): {'; '.join(parts)}",
                     params=["costs"])


def _off_policy(problem: Problem, scores: Scores, experiment: Any, prop: np.ndarray,
                weights: Mapping[str, float] | None, budget: float,
                costs: Mapping[str, tuple[float, float]], *, arm_col: str,
                outcome_col: str, customer_col: str) -> dict:
    """Doubly robust and IPW estimates of the written plan (its per-customer propensities of
    every arm) on the experiment's customers, scaled to the scored population, with the
    baselines paired on the same customers."""
    exp = read_experiment(experiment, scores.arms, customer_col=customer_col, arm_col=arm_col,
                          outcome_col=outcome_col)
    rows = align(exp, scores)
    k1 = len(exp.arms)
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
    pi = prop[rows]
    cpc = {a: costs[a][0] for a in problem.arms}
    cpv = {a: costs[a][1] for a in problem.arms}
    ev = evaluate_policy(pi, exp.arm, exp.y, e, mu, arms=exp.arms, cost_per_contact=cpc,
                         cost_per_conversion=cpv, budget_per_customer=budget / n,
                         capacity_share={a: float(c) / n for a, c in zip(problem.arms,
                                                                          problem.capacity)
                                         if np.isfinite(c)},
                         population=n)
    nobody = np.zeros(rows.shape[0], dtype=np.int64)
    ipw = estimate_from_terms(policy_terms(pi, exp.arm, exp.y, e)
                              - policy_terms(nobody, exp.arm, exp.y, e), n)
    out = ev.to_dict()
    out["cost_bound"] = cost_bound(pi, exp.arm, exp.y, e, mu, arms=exp.arms, cost_per_contact=cpc,
                                   cost_per_conversion=cpv, population=n).to_dict()
    out["ipw_incremental_reactivations"] = ipw.to_dict()
    out["experiment"] = exp.source
    out["customers"] = int(exp.arm.shape[0])
    out["propensities"] = {a: float(v) for a, v in zip(exp.arms, e)}
    out["propensity_source"] = source
    out["population"] = n
    out["policy"] = ("the written plan: each experiment customer's propensities of every arm "
                     "in targeting (exploration included)")
    out["note"] = ("honest only if the scores of the experiment customers are out of fold "
                   "(oof_scores.parquet of `upliftlab model fit`)")
    return out


def _true_values(scores: Scores, truth: Any, plan: Any,
                 costs: Mapping[str, tuple[float, float]], *, customer_col: str) -> dict:
    """The written plan's true incremental reactivations and cost (as the stochastic plan,
    and for the arms written)."""
    import pandas as pd

    from upliftlab.sources import connect, describe, quote, register, require_columns

    where = describe(truth)
    con = connect()
    try:
        cols = register(con, truth, "truth")
        need = [customer_col, "p_control"] + [f"p_{a}" for a in scores.arms]
        require_columns(cols, need, where)
        frame = con.execute("SELECT " + ", ".join(quote(c) for c in need) + " FROM truth").df()
    finally:
        con.close()
    pos = pd.Index(frame[customer_col].astype(str)).get_indexer(
        pd.Series(scores.customer_id).astype(str))
    if (pos < 0).any():
        raise InputError(f"{where}: {int((pos < 0).sum())} scored customers have no truth")
    P = frame[need[1:]].to_numpy(dtype=float)[pos]
    cpc = np.array([0.0] + [costs[a][0] for a in scores.arms])
    cpv = np.array([0.0] + [costs[a][1] for a in scores.arms])
    value = true_plan_value(P, plan.propensity, cpc, cpv)
    onehot = np.zeros_like(P)
    onehot[np.arange(P.shape[0]), plan.arm] = 1.0
    return {"source": where, "plan": value,
            "arms_written": true_plan_value(P, onehot, cpc, cpv),
            "note": "plan = the written plan as a stochastic policy (exploration at its "
                    "weights), which the off-policy estimate estimates; arms_written = the "
                    "arms drawn in targeting"}


def true_plan_value(P: np.ndarray, prop: np.ndarray, cpc: np.ndarray, cpv: np.ndarray) -> dict:
    """True incremental reactivations and cost of a stochastic plan from the true response
    probabilities P (n x (k+1), control first)."""
    inc = float((prop * (P - P[:, [0]])).sum())
    cost = float((prop * (cpc[None, :] + cpv[None, :] * P)).sum())
    return {"incremental_reactivations": inc, "cost": cost, "per_customer": inc / P.shape[0]}


def _plan_value(expected: dict, written_cost: float, budget: float, curve: BudgetCurve,
                ope: dict | None, truth: dict | None, soft: bool, planning: float) -> dict:
    """One value for the written plan, from the model, the curve and the experiment, with a
    small table of what each figure means."""
    at = int(np.argmin(np.abs(curve.budget - planning))) if curve.budget.size else None
    curve_val = float(curve.reactivations[at]) if at is not None else None
    off = None
    rows = [
        {"figure": "expected (uplift model)", "reactivations": expected["reactivations"],
         "cost": expected["cost"],
         "meaning": "what the model predicts for the written plan, exploration included; "
                    "optimistic, because the plan picks the customers whose predictions are "
                    "highest (noise included)"},
        {"figure": "budget curve at this budget", "reactivations": curve_val,
         "cost": float(curve.cost[at]) if at is not None else None,
         "meaning": "the same plan on the curve of budgets (same model, same exploration "
                    "rule): equal to the expected value by construction"},
    ]
    over = expected["cost"] > budget * (1 + _RTOL) + 1e-9 or \
        written_cost > budget * (1 + _RTOL) + 1e-9
    over_reasons = []
    if over:
        over_reasons.append(f"expected cost {max(expected['cost'], written_cost):,.2f} > "
                            f"budget {budget:,.2f}")
    may_exceed = False
    if ope:
        inc = ope["incremental_reactivations"]
        cost = ope["cost"]
        ipw = ope["ipw_incremental_reactivations"]
        off = {"method": ope["method"], "estimate": inc["total"], "ci_low": inc["total_ci_low"],
               "ci_high": inc["total_ci_high"],
               "cost": {"estimate": cost["total"], "ci_low": cost["total_ci_low"],
                        "ci_high": cost["total_ci_high"]},
               "ipw": {"estimate": ipw["total"], "ci_low": ipw["total_ci_low"],
                       "ci_high": ipw["total_ci_high"]}}
        rows.append({"figure": "off-policy, doubly robust (95% CI)",
                     "reactivations": inc["total"], "ci_low": inc["total_ci_low"],
                     "ci_high": inc["total_ci_high"], "cost": cost["total"],
                     "meaning": "what the last experiment's outcomes say the written plan "
                                "delivers (randomised arms reweighted; out-of-fold model as "
                                "the control variate): the figure to plan with"})
        rows.append({"figure": "off-policy, inverse propensity (95% CI)",
                     "reactivations": ipw["total"], "ci_low": ipw["total_ci_low"],
                     "ci_high": ipw["total_ci_high"], "cost": None,
                     "meaning": "the same without the model: unbiased, wider"})
        if cost["total_ci_low"] is not None and cost["total_ci_low"] > budget * (1 + _RTOL):
            over = True
            over_reasons.append(f"off-policy cost {cost['total']:,.2f} (95% CI from "
                                f"{cost['total_ci_low']:,.2f}) is above the budget "
                                f"{budget:,.2f}")
        elif cost["total"] is not None and cost["total"] > budget:
            may_exceed = True
        if ope["cost_bound"]["upper"] > budget * (1 + _RTOL):  # policy/margin.py
            may_exceed = True
    if truth:
        rows.append({"figure": "true value (simulator)",
                     "reactivations": truth["plan"]["incremental_reactivations"],
                     "cost": truth["plan"]["cost"],
                     "meaning": "known only in a simulation: what the plan really delivers"})
    return {"what": "incremental reactivations in total of the written plan (targeting), "
                    "exploration included, over all scored customers",
            "expected": expected["reactivations"], "budget_curve": curve_val,
            "cost": expected["cost"], "cost_written_arms": written_cost, "budget": budget,
            "planning_budget": planning,
            "planning_note": (None if planning == budget else
                              f"fitted to {planning:,.2f} so that the one-sided "
                              f"{ope['cost_bound']['level']:.0%} upper bound of its off-policy "
                              f"cost stays within the budget {budget:,.2f}"),
            "cost_bound": ope["cost_bound"] if ope else None,
            "off_policy": off, "over_budget": bool(over), "over_budget_reasons": over_reasons,
            "may_exceed_budget": may_exceed, "soft_budget": bool(soft), "table": rows}


def _enforce_budget(pv: dict, soft: bool) -> None:
    if pv["over_budget"] and not soft:
        raise InputError("the plan would exceed its budget: " + "; ".join(
            pv["over_budget_reasons"]) + " (lower --budget's use with a smaller plan, or pass "
            "--soft-budget to write it flagged)")


def profile(problem: Problem, scores: Scores, plan: Any, customers: Any = None, *,
            customer_col: str = "customer_id") -> dict:
    """Who gets what: per arm of the written plan, customers (explored among them), by tier
    and value band when `customers` has them, mean predicted uplift and expected cost; and
    the customers the plan spares, by reason."""
    tier, band = _segments(scores, customers, customer_col)
    arms = []
    for j, name in enumerate(("none",) + problem.arms):
        m = plan.arm == j
        row = {"arm": name, "customers": int(m.sum()), "explored": int((m & plan.explore).sum()),
               "mean_predicted_uplift": float(plan.expected_uplift[m].mean()) if m.any() and j
               else None,
               "expected_cost": float(plan.expected_cost[m].sum()),
               "mean_base": float(scores.base[m].mean()) if m.any() else None}
        if tier is not None:
            row["by_tier"] = _counts(tier[m])
        if band is not None:
            row["by_value_band"] = _counts(band[m])
        arms.append(row)
    best = problem.uplift.max(0)
    spared_rows = (plan.arm == 0) & ~plan.explore
    harm = spared_rows & (best < 0)
    anyway = spared_rows & ~harm & (scores.base >= ANYWAY_RATIO * np.maximum(best, 1e-12))
    rest = spared_rows & ~harm & ~anyway
    spared = []
    for reason, m, meaning in (
            ("predicted harm", harm, "every treatment is predicted to lower their reactivation"),
            ("would come back anyway", anyway,
             f"predicted reactivation without treatment at least {ANYWAY_RATIO:g} times the "
             "best predicted uplift"),
            ("not worth the price", rest, "a positive predicted uplift, below what the budget "
             "and capacities buy elsewhere")):
        row = {"reason": reason, "customers": int(m.sum()), "meaning": meaning,
               "mean_base": float(scores.base[m].mean()) if m.any() else None,
               "mean_best_uplift": float(best[m].mean()) if m.any() else None}
        if tier is not None:
            row["by_tier"] = _counts(tier[m])
        if band is not None:
            row["by_value_band"] = _counts(band[m])
        spared.append(row)
    return {"arms": arms, "spared": spared,
            "segments": [s for s, v in (("tier", tier), ("value_band", band)) if v is not None]}


def _counts(values: np.ndarray) -> dict[str, int]:
    keys, counts = np.unique(values.astype(str), return_counts=True)
    return {str(k): int(c) for k, c in zip(keys, counts)}


def _segments(scores: Scores, customers: Any, customer_col: str
              ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Tier and value band per scored customer from `customers` (None where absent): value
    band = the `value_band` column, else tertiles (low / mid / high) of the first revenue
    column present."""
    if customers is None:
        return None, None
    import pandas as pd

    from upliftlab.sources import connect, describe, quote, register, require_columns

    where = describe(customers)
    con = connect()
    try:
        cols = register(con, customers, "customers")
        require_columns(cols, [customer_col], where)
        rev = next((c for c in ("revenue_730d", "revenue_total", "revenue_365d") if c in cols),
                   None)
        pick = [c for c in ("tier", "value_band") if c in cols] + ([rev] if rev else [])
        if not pick:
            raise InputError(f"{where}: no tier, value_band or revenue column to profile the "
                             "plan by")
        frame = con.execute(f"SELECT CAST({quote(customer_col)} AS VARCHAR) AS cid, "
                            + ", ".join(quote(c) for c in pick) + " FROM customers").df()
    finally:
        con.close()
    frame = frame.drop_duplicates("cid").set_index("cid")
    pos = frame.index.get_indexer(pd.Series(scores.customer_id).astype(str))
    missing = int((pos < 0).sum())
    if missing:
        raise InputError(f"{where}: {missing} scored customers are not in it")
    tier = frame["tier"].astype(str).to_numpy()[pos] if "tier" in frame else None
    if "value_band" in frame:
        band = frame["value_band"].astype(str).to_numpy()[pos]
    elif rev:
        v = frame[rev].to_numpy(dtype=float)[pos]
        lo, hi = np.nanquantile(v, [1 / 3, 2 / 3])
        band = np.where(v <= lo, "low", np.where(v <= hi, "mid", "high")).astype(object)
    else:
        band = None
    return tier, band
