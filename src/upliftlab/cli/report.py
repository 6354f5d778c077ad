"""`upliftlab report`: the uplift report (json, md, html) of an experiment into one folder.

Thin shell over `upliftlab.analyze` (module `upliftlab.analysis`) and `upliftlab.report.write_report`.
"""

from __future__ import annotations

import click

from upliftlab.cli._options import (arm_col, as_of, control, currency, engine, mapped_columns,
                                    store, weight)


def _parse_costs(values: tuple[str, ...]) -> dict[str, tuple[float, float]] | None:
    from upliftlab.errors import InputError

    if not values:
        return None
    out: dict[str, tuple[float, float]] = {}
    for v in values:
        arm, sep, amounts = v.rpartition("=")
        parts = amounts.split(":")
        try:
            if not sep or not arm or len(parts) > 2:
                raise ValueError
            nums = (float(parts[0]), float(parts[1]) if len(parts) == 2 else 0.0)
        except ValueError:
            raise InputError(f"--cost {v!r}: expected ARM=PER_CONTACT[:PER_CONVERSION], "
                             "e.g. 'Coupon=0.5:10'") from None
        out[arm] = nums
    return out


@click.command("report")
@click.argument("spec", required=False, type=click.Path(dir_okay=False))
@as_of("With SPEC: the report date; outcomes up to the start of this day.")
@click.option("--data", metavar="FILE",
              help="Experiment table (CSV, Parquet, file.duckdb:table) with an arm column and "
                   "outcome columns.")
@arm_col("With --data: the arm column.", default=None)
@control("With --data: the label of the control arm.")
@click.option("--metric", "metrics", multiple=True, metavar="COL",
              help="Outcome column; repeat. The first is the primary (reactivation, 0/1).")
@click.option("--covariate", "covariates", multiple=True, metavar="COL",
              help="Pre-period covariate for variance reduction (CUPED / Lin); repeat.")
@click.option("--segment", "segments", multiple=True, metavar="COL",
              help="Column to break the effects down by (with a heterogeneity test); repeat.")
@click.option("--cost", "costs", multiple=True, metavar="ARM=PER_CONTACT[:PER_CONVERSION]",
              help="Cost of an arm; repeat. Arms without a cost cost nothing.")
@click.option("--revenue", metavar="COL",
              help="The metric that is revenue (default: one named revenue/spend/sales/amount).")
@weight("With --data: design weight of an arm for the sample-ratio check; repeat "
        "(default: equal).")
@click.option("--analysis", type=click.Choice(["sequential", "fixed"]),
              help="sequential: always-valid under weekly looks (running experiments); fixed: "
                   "fixed-horizon (finished experiments). Default: sequential with --data; with "
                   "SPEC, sequential while outcome windows are open, fixed once all are closed.")
@click.option("--planned-n", type=int, metavar="N",
              help="Planned total customers (tunes the sequential intervals).")
@click.option("--alpha", type=float,
              help="Significance level (default 0.05, or the spec's alpha with SPEC).")
@click.option("--correction", type=click.Choice(["holm", "bh", "none"]), default="holm",
              show_default=True, help="Multiple-testing correction over arms x metrics.")
@click.option("--experiment", metavar="NAME",
              help="With --data: the experiment's name (the report's title).")
@currency()
@click.option("--transactions", metavar="FILE",
              help="With SPEC: the purchases after the campaign start (path or glob; default: "
                   "the spec's [outcomes] transactions, else cohort.transactions).")
@mapped_columns("With SPEC and the outcome source")
@store("With SPEC: the DuckDB store (env UPLIFTLAB_STORE); the weekly results are kept there.")
@click.option("--model", "model_dir", metavar="DIR",
              help="A folder from `upliftlab model fit`: adds the uplift model's section (Qini "
                   "curves, learner comparison, calibration by decile).")
@click.option("--policy", "policy_dir", metavar="DIR",
              help="A folder from `upliftlab policy`: adds the next campaign's section (plan, "
                   "budget curve, off-policy estimate against the baselines).")
@click.option("--touches", "touches", metavar="FILE",
              help="Touch log (CSV, Parquet, file.duckdb:table; sent/delivered/opened/clicked/"
                   "redeemed per channel): adds the funnel and the effect on the customers "
                   "reached. With SPEC, default: the spec's [touches] source.")
@click.option("--touch-col", "touch_cols", multiple=True, metavar="KEY=COL",
              help="Touch-log column for KEY (customer_id, channel, sent, delivered, opened, "
                   "clicked, redeemed, arm, cost); repeat. Default: the spec's "
                   "[touches.columns], else customer_id, channel, sent_at, ..., cost.")
@click.option("--out", "out", metavar="DIR", help="Folder for report.json, report.md, report.html.")
@engine()
def report(spec, as_of, data, arm_col, control, metrics, covariates, segments, costs, revenue,
           weights, analysis, planned_n, alpha, correction, experiment, currency, transactions,
           customer_col, time_col, amount_col, store_path, model_dir, policy_dir, touches, touch_cols, out,
           engine):
    """Write the uplift report of an experiment into DIR.

    \b
    An experiment run elsewhere (a table with an arm column and outcome columns):
      upliftlab report --data hillstrom.csv --arm-col segment --control "No E-Mail" \\
        --metric conversion --metric visit --metric spend --analysis fixed --out reports/h
    \b
    A designed experiment (outcomes from the store's assignments and transactions):
      upliftlab report experiments/winback.toml --as-of 2026-03-02 --out reports/w
    \b
    Either form takes --model DIR (from `upliftlab model fit`) and --policy DIR (from
    `upliftlab policy`) to add the uplift model's and the next campaign's sections.
    """
    from upliftlab.errors import InputError

    touch_columns = _touch_columns(touch_cols)
    if spec is not None:
        given = [f"--{n}" for n, v in (("data", data), ("arm-col", arm_col),
                                       ("control", control), ("metric", metrics), ("cost", costs),
                                       ("experiment", experiment), ("weight", weights)) if v]
        if currency != "USD":
            given.append("--currency")
        if given:
            raise InputError(f"report {spec}: {', '.join(given)} go with --data, not with a SPEC "
                             "(the spec defines arms, metrics, costs, its name and currency)")
        from upliftlab.outcomes import report_spec

        columns = None
        if customer_col or time_col or amount_col:
            from upliftlab.sources import ColumnMap
            from upliftlab.spec import load_spec

            base = load_spec(spec).outcome_columns()
            columns = ColumnMap(customer_col or base.customer_id, time_col or base.timestamp,
                                amount_col or base.amount)
        from upliftlab.progress import status

        from upliftlab.cli._engine import resolve_engine
        from upliftlab.spec import load_spec

        engine = resolve_engine(engine, load_spec(spec).engine)
        with status(f"weekly report as of {as_of}" + (" on Spark" if engine == "spark" else "")):
            week = report_spec(spec, as_of=as_of, out=out, store_path=store_path,
                               transactions=transactions, analysis=analysis, alpha=alpha,
                               correction=correction, model=model_dir, policy=policy_dir,
                               columns=columns, touches=touches,
                               touch_columns=touch_columns, engine=engine)
        from upliftlab.report import headlines

        for line in headlines(week.result.to_dict()):
            click.echo(line)
        click.echo(f"report written to {week.path}")
        return
    missing = [name for name, v in (("--data", data), ("--arm-col", arm_col),
                                    ("--control", control), ("--metric", metrics), ("--out", out))
               if not v]
    spec_only = [n for n, v in (("--transactions", transactions), ("--customer-col", customer_col),
                                ("--time-col", time_col), ("--amount-col", amount_col),
                                ("--engine spark", engine == "spark")) if v]
    if spec_only:
        raise InputError(f"report --data: {', '.join(spec_only)} go with a SPEC (the outcomes "
                         "of a designed experiment)")
    if missing:
        raise InputError(f"report: missing {', '.join(missing)} (or give an experiment SPEC)")

    from upliftlab._files import claim
    from upliftlab.analysis import analyze
    from upliftlab.report import REPORT_FILES, load_model_section, load_policy_section, write_report
    from upliftlab.sources import parse_date

    as_of = parse_date(as_of, "--as-of").isoformat() if as_of is not None else None
    claim(out, "report", REPORT_FILES)  # a folder the report may not replace fails first

    # read the folders first: a bad one fails before the analysis, and nothing is written
    model = load_model_section(model_dir) if model_dir else None
    policy = load_policy_section(policy_dir) if policy_dir else None
    from upliftlab.cli._options import parse_weights

    result = analyze(data, arm=arm_col, control=control, metrics=list(metrics),
                     covariates=list(covariates), segments=list(segments),
                     costs=_parse_costs(costs), analysis=analysis or "sequential",
                     alpha=0.05 if alpha is None else alpha,
                     correction=correction, planned_n=planned_n, experiment=experiment,
                     as_of=as_of, weights=parse_weights(weights), revenue=revenue,
                     currency=currency)
    touch_result = None
    if touches:
        from upliftlab.touches import TouchColumns, experiment_touches

        conversion = {a: c[1] for a, c in (_parse_costs(costs) or {}).items()}
        touch_result = experiment_touches(
            data, touches, arm=arm_col, control=control, outcome=metrics[0],
            customer_col=customer_col or "customer_id", covariates=tuple(covariates),
            conversion_costs=conversion, columns=touch_columns or TouchColumns(),
            alpha=0.05 if alpha is None else alpha)
    elif touch_cols:
        raise InputError("--touch-col goes with --touches FILE")
    path = write_report(result, out, model=model, policy=policy, touches=touch_result)
    from upliftlab.report import headlines

    for line in headlines(result.to_dict()):
        click.echo(line)
    click.echo(f"report written to {path}")


def _touch_columns(values: tuple[str, ...]):
    from upliftlab.errors import InputError

    if not values:
        return None
    from upliftlab.touches import TouchColumns

    pairs = {}
    for v in values:
        key, sep, col = v.partition("=")
        if not sep or not key or not col:
            raise InputError(f"--touch-col {v!r}: expected KEY=COL, e.g. 'delivered=dlv_ts'")
        pairs[key.strip()] = col.strip()
    try:
        return TouchColumns.parse(pairs)
    except InputError as exc:
        raise InputError(f"--touch-col: {str(exc).partition(': ')[2]}") from None


commands = [report]
