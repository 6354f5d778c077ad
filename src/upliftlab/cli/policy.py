"""`upliftlab policy`: the best treatment per customer for the next campaign under a budget and
per-arm capacities, with an exploration share and (given an experiment) its off-policy value.
"""

from __future__ import annotations

import click

from upliftlab.cli._options import (arm_col, currency, customer_col, parse_number,
                                    parse_pairs, parse_weights, weight)


@click.command("policy")
@click.option("--scores", "scores_path", type=click.Path(dir_okay=False),
              help="Scores file (CSV/Parquet): customer_id, base, uplift_<arm> per arm.")
@click.option("--model", "model_dir", type=click.Path(),
              help="A fitted uplift model directory (`upliftlab model`), with --customers.")
@click.option("--customers", type=click.Path(),
              help="Customers (features) to score with --model; with either, their tier and "
                   "value_band (or revenue) columns profile the plan.")
@click.option("--budget", type=float, required=True, help="Total budget of the campaign.")
@click.option("--capacity", multiple=True, metavar="ARM=N",
              help="Maximum number of customers for an arm (repeatable).")
@click.option("--cost", multiple=True, metavar="ARM=PER_CONTACT[:PER_CONVERSION]",
              help="Cost of an arm per contact and per conversion (repeatable; every arm).")
@click.option("--value-per-reactivation", type=float, default=None,
              help="Maximise net value (value x uplift - cost) instead of reactivations.")
@click.option("--explore-budget", "explore_budget", default="5%", show_default=True,
              metavar="SHARE%|AMOUNT",
              help="Exploration reserved INSIDE the budget: a share of the budget (and the same "
                   "share of each capacity), e.g. 10%, or an amount, e.g. 500. Customers in it "
                   "get an arm at random by --weight, so every arm (control included) keeps a "
                   "known propensity > 0 for the next experiment; 0 = no exploration.")
@weight("Design weight of an arm (control included) for exploration and as the --data "
        "experiment's propensities; repeat (default equal / observed shares).")
@click.option("--soft-budget", is_flag=True,
              help="Write a plan whose expected or off-policy cost exceeds the budget, flagged "
                   "(default: refuse it, exit 2).")
@currency()
@click.option("--salt", default="upliftlab-explore", show_default=True,
              help="Salt of the exploration hash (md5(salt:customer_id)).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the subsamples used by the solver and the budget curve.")
@click.option("--method", type=click.Choice(["lagrangian", "lp", "milp"]), default="lagrangian",
              show_default=True, help="Solver: scalable Lagrangian, LP relaxation, exact MILP.")
@click.option("--data", "experiment", type=click.Path(dir_okay=False), metavar="FILE",
              help="A randomised experiment's table (customer id, arm, outcome) for the "
                   "off-policy estimate; its customers' scores must be out-of-fold.")
@click.option("--truth", type=click.Path(dir_okay=False),
              help="The simulator's truth (customer_id, p_control, p_<arm>): print the true "
                   "values beside the estimates.")
@arm_col("The arm column of --data.")
@click.option("--metric", "outcome_col", default="reactivated", show_default=True, metavar="COL",
              help="The 0/1 outcome column of --data.")
@customer_col("The customer id column of --scores, --customers and --data.")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv",
              show_default=True, help="Format of targeting.*")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output folder: targeting.csv, policy.json, budget_curve.png, policy.md/html.")
def policy(scores_path, model_dir, customers, budget, capacity, cost, value_per_reactivation,
           explore_budget, weights, soft_budget, currency, salt, seed, method, experiment, truth,
           arm_col, outcome_col, customer_col, fmt, out) -> None:
    """Choose who gets which treatment (or none) in the next campaign.

    \b
    Maximises expected incremental reactivations (or net value with
    --value-per-reactivation) within --budget and each --capacity; expected cost of
    treating a customer = per_contact + per_conversion x P(reactivate under the arm).
    Example:
      upliftlab policy --scores scores.csv --budget 50000 \\
        --cost coupon=0.10:10 --cost content=0.02 --cost advisor=4 \\
        --capacity advisor=2000 --out reports/policy
    """
    from upliftlab.errors import InputError
    from upliftlab.policy.io import read_scores, scores_from_model
    from upliftlab.policy.run import run_policy

    import math

    from upliftlab._files import claim
    from upliftlab.money import check_currency
    from upliftlab.policy.explore import ExploreBudget
    from upliftlab.policy.io import POLICY_FILES

    if not (math.isfinite(budget) and budget >= 0):
        raise InputError(f"--budget must be >= 0 and finite (got {budget:g})")
    explore = ExploreBudget.parse(explore_budget)
    if value_per_reactivation is not None and not (math.isfinite(value_per_reactivation)
                                                   and value_per_reactivation >= 0):
        raise InputError("--value-per-reactivation must be >= 0 and finite (got "
                         f"{value_per_reactivation:g})")
    try:
        currency = check_currency(currency)
    except ValueError as exc:
        raise InputError(f"--currency: {exc}") from None
    # a folder this command did not write is refused before any work
    claim(out, "policy", POLICY_FILES)
    if (scores_path is None) == (model_dir is None):
        raise InputError("give either --scores FILE or --model DIR --customers FILE")
    costs = {}
    for arm, text in parse_pairs(cost, "--cost", "PER_CONTACT[:PER_CONVERSION]"):
        contact, _, conversion = text.partition(":")
        costs[arm] = (parse_number(contact, "--cost"),
                      parse_number(conversion, "--cost") if conversion else 0.0)
        if not all(math.isfinite(c) and c >= 0 for c in costs[arm]):
            raise InputError(f"--cost {arm}: costs must be finite numbers >= 0 (got {text})")
    caps = {}
    for arm, text in parse_pairs(capacity, "--capacity", "N"):
        n = parse_number(text, "--capacity")
        if not math.isfinite(n) or n < 0 or n != int(n):
            raise InputError(f"--capacity {arm}: must be a whole number >= 0 (got {text})")
        caps[arm] = int(n)
    weights = parse_weights(weights)
    if model_dir is not None:
        if customers is None:
            raise InputError("--model needs --customers FILE (the customers to score)")
        scores = scores_from_model(model_dir, customers, customer_col=customer_col)
    else:
        scores = read_scores(scores_path, customer_col=customer_col)
    unknown = sorted(set(caps) - set(scores.arms))
    if unknown:
        raise InputError(f"--capacity for unknown arm {', '.join(unknown)} (arms in "
                         f"{scores.source}: {', '.join(scores.arms)})")
    from upliftlab.progress import status

    with status("planning the campaign and valuing it off-policy"):
        result = run_policy(scores, budget=budget, costs=costs, capacity=caps or None,
                            value_per_reactivation=value_per_reactivation,
                            explore_budget=explore, weights=weights or None, salt=salt,
                            method=method, seed=seed, experiment=experiment, arm_col=arm_col,
                            outcome_col=outcome_col, customer_col=customer_col, truth=truth,
                            customers=customers, soft_budget=soft_budget,
                            currency=currency, out=out, fmt=fmt)
    _echo(result, currency)
    click.echo(f"wrote {out}")


def _echo(result: dict, currency: str) -> None:
    """The plan, its exploration (money and customers) and its one value, reconciled."""
    from upliftlab.policy.render import money

    a, pv, ex = result["allocation"], result["plan_value"], result["exploration"]
    m = lambda x: money(x, currency)  # noqa: E731
    counts = ", ".join(f"{k} {v:,}" for k, v in a["counts"].items())
    click.echo(f"plan: {counts}, nothing {a['n_customers'] - a['n_treated']:,} "
               f"(of {a['n_customers']:,}); expected cost {m(pv['cost'])} of {m(pv['budget'])} "
               f"({100 * pv['cost'] / pv['budget'] if pv['budget'] else 0:.1f}%)")
    click.echo(f"exploration (inside the budget, reserve {ex['budget']}): {ex['customers']:,} "
               f"customers at random ({', '.join(f'{k} {v:,}' for k, v in ex['counts'].items())})"
               f", expected cost {m(ex['cost'])}")
    click.echo("value of the written plan (incremental reactivations, exploration included):")
    for r in pv["table"]:
        ci = (f" (95% CI {r['ci_low']:,.1f} to {r['ci_high']:,.1f})"
              if r.get("ci_low") is not None else "")
        cost = f", cost {m(r['cost'])}" if r.get("cost") is not None else ""
        click.echo(f"  {r['figure']}: {r['reactivations']:,.1f}{ci}{cost}")
    if pv.get("over_budget"):
        click.echo("  OVER BUDGET (soft budget): " + "; ".join(pv["over_budget_reasons"]))
    elif pv.get("may_exceed_budget"):
        click.echo("  note: the off-policy cost estimate is above the budget (within its "
                   "interval): the plan may overspend")
    ope = result.get("off_policy")
    if ope:
        for c in ope["comparisons"]:
            click.echo(f"  {c['statement']}")


commands = [policy]
