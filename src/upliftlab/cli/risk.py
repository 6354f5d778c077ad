"""`upliftlab risk fit|score`: churn early warning. Train the risk model on past snapshots and
compare it out of time with the baselines; score the active customers at a date into risk levels.
A thin shell over `upliftlab.risk`.
"""

from __future__ import annotations

import click

from upliftlab.cli._options import DATE, amount_col, as_of, customer_col, time_col


@click.group("risk")
def risk() -> None:
    """Churn early warning: who is still active but on the way to dormancy.

    \b
    fit    train on past snapshots, compare out of time with the overdue rule and BG/NBD,
           write the model and the risk report (report.html)
    score  the active customers at --as-of with their risk and level (high/medium/low)
    """


def _columns(command):
    """The column options of both commands: events' type, customer, time, amount, discount."""
    for option in reversed([
            click.option("--event-type-col", default="event_type", show_default=True,
                         help="With --events: the event type column."),
            customer_col(), time_col(), amount_col(),
            click.option("--discount-col", default="discount_used", show_default=True,
                         help="Boolean/0-1 discount column for discount_share (pass '' to "
                              "ignore).")]):
        command = option(command)
    return command


def _levels_option(text: str | None, flag: str) -> tuple[float, float] | None:
    from upliftlab.risk.levels import parse_levels

    if text is None:
        return None
    got = parse_levels(text, flag)
    return got["high"], got["medium"]


@risk.command("fit")
@click.option("--transactions", required=True, metavar="FILE",
              help="Transactions: .parquet, .csv(.gz) or file.duckdb:table.")
@as_of("The evaluation snapshot (out of time): later than every training snapshot's label "
       "window; its own window must be in the data.", required=True)
@click.option("--horizon", type=click.IntRange(min=1), default=60, show_default=True,
              metavar="DAYS", help="Label: no purchase in this many days after the snapshot.")
@click.option("--snapshot", "snapshots", multiple=True, type=DATE,
              help="A training snapshot (repeat). Default: --snapshots dates --every days apart, "
                   "the last one --horizon days before --as-of.")
@click.option("--snapshots", "n_snapshots", type=click.IntRange(1, 52), default=4,
              show_default=True, help="Number of default training snapshots.")
@click.option("--every", type=click.IntRange(min=1), default=30, show_default=True,
              metavar="DAYS", help="Days between default training snapshots.")
@click.option("--dormant-after", type=click.IntRange(min=1), default=90, show_default=True,
              metavar="DAYS", help="Active: a purchase within this many days before a snapshot.")
@click.option("--events", metavar="FILE",
              help="Optional engagement events (customer, ts, event_type): counts per type over "
                   "7/30/90 days and days since the last become features.")
@_columns
@click.option("--level-shares", metavar="high=S,medium=S", default="high=0.1,medium=0.2",
              show_default=True, help="Risk levels by shares of the evaluation snapshot's active "
                                      "customers, saved as thresholds with the model.")
@click.option("--level-thresholds", metavar="high=P,medium=P",
              help="Risk levels by probability thresholds instead of shares.")
@click.option("--bootstrap", "n_bootstrap", default=200, show_default=True,
              type=click.IntRange(10, 10_000), help="Bootstrap resamples for the intervals.")
@click.option("--world", metavar="DIR",
              help="A simulated world (upliftlab simulate): adds the true probabilities as a "
                   "scorer, for checking the model against the truth.")
@click.option("--seed", default=0, show_default=True, type=int, help="Folds, bootstrap, model.")
@click.option("--out", required=True, metavar="DIR",
              help="Output folder (replaced whole): model.pkl, model.json, report.json/.md/.html.")
def fit(transactions: str, as_of: str, horizon: int, snapshots: tuple[str, ...],
        n_snapshots: int, every: int, dormant_after: int, events: str | None,
        event_type_col: str, customer_col: str, time_col: str, amount_col: str,
        discount_col: str, level_shares: str, level_thresholds: str | None,
        n_bootstrap: int, world: str | None, seed: int, out: str) -> None:
    """Train the churn-risk model on past snapshots and compare it out of time.

    \b
    Example:
      upliftlab risk fit --transactions world/transactions.parquet --as-of 2025-11-06 \\
          --horizon 60 --out risk-model
    """
    from upliftlab.risk.data import EventColumns
    from upliftlab.risk.workflow import fit_risk, save_risk_model
    from upliftlab.sources import ColumnMap

    columns = ColumnMap(customer_col, time_col, amount_col)
    shares = _levels_option(level_shares, "--level-shares")
    thresholds = _levels_option(level_thresholds, "--level-thresholds")
    truth = None
    if world is not None:
        from upliftlab.simulate import load_world
        from upliftlab.simulate_risk import true_dormancy

        truth = true_dormancy(load_world(world), as_of, horizon)
    result = fit_risk(transactions, as_of, horizon=horizon, train_snapshots=list(snapshots),
                      n_snapshots=n_snapshots, every=every, dormant_after=dormant_after,
                      columns=columns, discount_col=discount_col or None, events=events,
                      event_columns=EventColumns(customer_col, time_col, event_type_col),
                      level_shares=shares, level_thresholds=thresholds,
                      n_bootstrap=n_bootstrap, seed=seed, truth=truth)
    save_risk_model(result, out, columns=columns)
    table = result.comparison[["name", "auc", "auc_low", "auc_high", "pr_auc", "brier",
                               "capture_10", "lift_10"]]
    click.echo(f"trained on {', '.join(d.isoformat() for d in result.train_snapshots)} "
               f"({result.n_train:,} rows); out of time on {result.eval_snapshot}:")
    click.echo(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    click.echo(f"levels: high at risk >= {result.levels.high:.3f}, medium >= "
               f"{result.levels.medium:.3f} -> {out}/ (report.html)")


@risk.command("score")
@click.option("--model", "model_dir", required=True, metavar="DIR",
              help="A folder written by `upliftlab risk fit` (load only your own: pickles run "
                   "code; the checksum in model.json is verified first).")
@click.option("--transactions", required=True, metavar="FILE",
              help="Transactions up to --as-of (.parquet, .csv(.gz), file.duckdb:table).")
@as_of("Score the customers active on this date, from transactions before it.", required=True)
@click.option("--events", metavar="FILE", help="Engagement events, when the model uses them.")
@_columns
@click.option("--level-shares", metavar="high=S,medium=S",
              help="Levels by shares of these customers (default: the model's thresholds).")
@click.option("--level-thresholds", metavar="high=P,medium=P",
              help="Levels by probability thresholds (default: the model's).")
@click.option("--batch-size", default=200_000, show_default=True, type=click.IntRange(1000),
              help="Rows per batch (bounds memory).")
@click.option("--memory-limit", metavar="SIZE", default="1GB", show_default=True,
              help="DuckDB memory limit (it spills to disk beyond it): bounds the memory of scoring.")
@click.option("--out", required=True, metavar="FILE",
              help="Scores, .parquet or .csv: customer_id, features, risk, risk_level.")
def score(model_dir: str, transactions: str, as_of: str, events: str | None,
          event_type_col: str, customer_col: str, time_col: str, amount_col: str,
          discount_col: str, level_shares: str | None, level_thresholds: str | None,
          batch_size: int, memory_limit: str | None, out: str) -> None:
    """Score the customers active at --as-of: their risk of going dormant and level.

    \b
    Example:
      upliftlab risk score --model risk-model --transactions world/transactions.parquet \\
          --as-of 2026-01-05 --out at_risk.parquet
    """
    from upliftlab.errors import InputError
    from upliftlab.risk.data import EventColumns
    from upliftlab.risk.levels import RiskLevels
    from upliftlab.risk.workflow import load_risk_model, score_active
    from upliftlab.sources import ColumnMap

    if level_shares and level_thresholds:
        raise InputError("give --level-shares or --level-thresholds, not both")
    thresholds = _levels_option(level_thresholds, "--level-thresholds")
    model = load_risk_model(model_dir)
    try:
        levels, summary = score_active(
            model, transactions, as_of, out,
            levels=RiskLevels(*thresholds) if thresholds else None,
            level_shares=_levels_option(level_shares, "--level-shares"),
            columns=ColumnMap(customer_col, time_col, amount_col),
            discount_col=discount_col or None, events=events,
            event_columns=EventColumns(customer_col, time_col, event_type_col),
            batch_size=batch_size, memory_limit=memory_limit)
    except InputError as exc:
        # the library names its parameter; on the command line it is a flag
        raise InputError(str(exc).replace("events: ", "--events: ", 1)) from None
    total = summary[-1]["customers"]
    click.echo(f"{total:,} active customers at {as_of} scored (risk of no purchase in "
               f"{model.metadata_['horizon_days']} days) -> {out}")
    click.echo(format_levels(summary, levels))


def format_levels(summary: list[dict], levels) -> str:
    """The level table for a terminal."""
    lines = [f"{'level':<7} {'customers':>10} {'share':>7} {'mean risk':>9} {'recency d':>9} "
             f"{'overdue':>8}   (high: risk >= {levels.high:.3f}, medium: >= {levels.medium:.3f})"]
    for r in summary:
        def f(key: str, fmt: str) -> str:
            v = r.get(key)
            return "-" if v is None else fmt.format(v)
        lines.append(f"{r['level']:<7} {r['customers']:>10,} {f('share', '{:.1%}'):>7} "
                     f"{f('mean_risk', '{:.3f}'):>9} {f('mean_days_since_last', '{:.1f}'):>9} "
                     f"{f('mean_overdue_ratio', '{:.2f}'):>8}")
    return "\n".join(lines)


commands = [risk]
