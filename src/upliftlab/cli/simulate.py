"""`upliftlab simulate` and `upliftlab respond`: a simulated customer world and its response
to an assignment, as files."""

from __future__ import annotations

import click

from upliftlab.cli._options import DATE, arm_col, customer_col, store


@click.command()
@click.option("--n-customers", "n_customers", type=int, required=True, metavar="N",
              help="Number of customers to simulate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True, metavar="DIR",
              help="Directory for customers/transactions/truth.parquet and world.json.")
@click.option("--campaign-date", type=DATE, default="2026-01-05", show_default=True,
              help="Campaign date; history ends the day before.")
@click.option("--history-days", type=int, default=730, show_default=True,
              help="Days of transaction history before the campaign date.")
@click.option("--outcome-window-days", "window_days", type=int, default=60, show_default=True,
              metavar="DAYS", help="Outcome window after the campaign date, in days.")
@click.option("--force", is_flag=True, help="Replace a non-empty DIR that is not a world.")
def simulate(n_customers: int, seed: int, out: str, campaign_date: str, history_days: int,
             window_days: int, force: bool) -> None:
    """Simulate customers, their transactions and the true uplift of each arm.

    Writes customers.parquet, transactions.parquet, truth.parquet and world.json into OUT
    (atomically) and prints the share of dormant customers by tier and the mean true effects
    of coupon, content and advisor within the dormant.
    """
    from pathlib import Path

    from upliftlab.progress import status
    from upliftlab.simulate import check_world_target, simulate_world

    check_world_target(Path(out), force)
    world = simulate_world(n_customers, seed, campaign_date=campaign_date,
                           history_days=history_days, outcome_window_days=window_days)
    # after the generation bar: writing four files and the summary take seconds at 1M customers
    with status(f"writing the world to {out}"):
        world.write(out, force=force)
        summary = world.summary()
    click.echo(format_summary(summary, out))


@click.command()
@click.option("--world", "world_dir", type=click.Path(), required=True,
              help="World directory written by `upliftlab simulate`.")
@click.option("--assignments", type=click.Path(), default=None,
              help="Assignment table (CSV or Parquet) with a customer and an arm column.")
@store("With --experiment: the store to read its assignments from (env UPLIFTLAB_STORE).")
@click.option("--experiment", default=None, metavar="NAME[:VERSION]",
              help="Experiment in --store (latest version unless given). Holdout customers "
                   "are untreated: they respond as control.")
@customer_col("With --assignments: the customer id column.")
@arm_col("With --assignments: the arm column.")
@click.option("--campaign-date", "start", type=DATE, default=None,
              help="First day of the outcome window.  [default: the world's campaign date]")
@click.option("--seed", type=int, default=0, show_default=True, help="Response seed.")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True,
              help="Output transactions file (.parquet or .csv).")
@click.option("--touches", "touches_out", type=click.Path(dir_okay=False), default=None,
              metavar="FILE", help="Also write the campaign's touch log (.parquet or .csv): "
                                   "sent, delivered, opened, clicked, redeemed per channel.")
def respond(world_dir: str, assignments: str | None, store_path: str,
            experiment: str | None, customer_col: str, arm_col: str,
            start: str | None, seed: int, out: str, touches_out: str | None) -> None:
    """Generate the post-campaign transactions of assigned customers under their arms.

    The assignments come from a table (--assignments) or from an experiment in the store
    (--store and --experiment).
    """
    from upliftlab.errors import InputError
    from upliftlab.simulate import load_world, write_transactions
    from upliftlab.sources import connect, register, require_columns

    for path in (out, touches_out):
        if path is not None and not path.lower().endswith((".parquet", ".pq", ".csv", ".csv.gz")):
            raise InputError(f"{path}: unknown output type (expected .parquet or .csv)")
    if (assignments is None) == (experiment is None):
        raise InputError("give either --assignments FILE or --experiment NAME (with --store)")
    from upliftlab.progress import status

    with status("loading the world"):
        world = load_world(world_dir, transactions=False)  # responding needs no history
    if assignments is None:
        table = _stored_assignments(store_path, experiment)
        customer_col, arm_col = "customer_id", "arm"
    else:
        con = connect()
        columns = register(con, assignments, "ul_assignments")
        require_columns(columns, [customer_col, arm_col], assignments)
        table = con.execute("SELECT * FROM ul_assignments").df()
    with status(f"responding ({len(table):,} customers) and writing {out}"):
        if touches_out is None:
            rows = world.respond(table, start=start, seed=seed, customer_col=customer_col,
                                 arm_col=arm_col)
        else:
            from upliftlab.simulate import write_touches

            rows, log = world.respond_with_touches(table, start=start, seed=seed,
                                                   customer_col=customer_col, arm_col=arm_col)
            write_touches(log, touches_out)
        write_transactions(rows, out)
    if touches_out is not None:
        delivered = int(log["delivered_at"].notna().sum())
        click.echo(f"{len(log):,} touches, {delivered:,} delivered -> {touches_out}")
    click.echo(f"{len(table):,} assigned customers, {rows['customer_id'].nunique():,} reactivated, "
               f"{len(rows):,} transactions -> {out}")


def _stored_assignments(store_path: str, experiment: str):
    """customer_id (int64, as in the world) and arm of one experiment in the store; holdout
    customers are not treated, so they respond as control."""
    from pathlib import Path

    from upliftlab.errors import InputError
    from upliftlab.store import open_store

    if not Path(store_path).exists():
        raise InputError(f"{store_path}: no such store")
    name, _, version = experiment.partition(":")
    with open_store(store_path, read_only=True) as store:
        if not store.has_table("assignments"):
            raise InputError(f"{store_path}: no assignments in this store")
        if version:
            if not version.isdigit():
                raise InputError(f"--experiment {experiment}: version must be a number")
            v = int(version)
        else:
            v = store.latest_version(name)
            if v is None:
                raise InputError(f"{store_path}: no experiment named {name!r}")
        table = store.assignments(name, v, holdout_as="control")
    if table.empty:
        raise InputError(f"{store_path}: experiment {name!r} v{v} has no assignments")
    try:
        table["customer_id"] = table["customer_id"].astype("int64")
    except ValueError:
        raise InputError(f"{store_path}: customer ids of {name!r} are not the world's "
                         "integer ids") from None
    return table


def format_summary(s: dict, out: str) -> str:
    """The few lines `upliftlab simulate` prints."""
    tiers = s["tiers"]
    lines = [
        f"world: {s['customers']:,} customers, {s['transactions']:,} transactions -> {out}",
        f"dormant (no purchase for 90+ days): {sum(tiers.values()):.1%} "
        f"(short 90-180 {tiers['short']:.1%}, mid 180-365 {tiers['mid']:.1%}, "
        f"long 365+ {tiers['long']:.1%}); never purchased {s['never_purchased']:.1%}",
    ]
    if s["dormant_effects"]:
        lines.append(f"true effects within the {s['dormant']:,} dormant customers "
                     f"({s['window_days']}-day window):")
        lines.append(f"  {'arm':<8} {'p':>7} {'effect':>8} {'revenue':>8} {'effect':>8}")
        for r in s["dormant_effects"]:
            ep = "" if r["arm"] == "control" else f"{100 * r['effect_p']:+.2f}pt"
            er = "" if r["arm"] == "control" else f"{r['effect_revenue']:+.2f}"
            lines.append(f"  {r['arm']:<8} {r['p']:>7.2%} {ep:>8} {r['revenue']:>8.2f} {er:>8}")
    if s.get("dormant_reached"):
        lines.append("  treatments act only through delivery; effect on the customers reached: "
                     + ", ".join(f"{r['arm']} {100 * r['cace']:+.2f}pt ({r['reach']:.0%} "
                                 "delivered)" for r in s["dormant_reached"]))
    return "\n".join(lines)


commands = [simulate, respond]
