"""`upliftlab cohort`: the dormant cohort of a transactions file as of a date, written to a file.

A thin shell over `upliftlab.cohort.write_cohort`; prints the tier table.
"""

from __future__ import annotations

import click

from upliftlab.cli._options import as_of as as_of_option
from upliftlab.cli._engine import resolve_engine
from upliftlab.cli._options import amount_col, customer_col, engine, time_col


@click.command("cohort")
@click.option("--transactions", "transactions", required=True, metavar="FILE",
              help="Transactions: .parquet, .csv(.gz) or file.duckdb:table.")
@as_of_option("Cohort date; only transactions before this day are used.", required=True)
@click.option("--dormant-after", type=int, default=90, show_default=True, metavar="DAYS",
              help="Dormant when the last purchase is at least this many days before --as-of.")
@click.option("--tiers", default=None, metavar="TEXT",
              help="Tiers by days since last purchase, e.g. 'short=180,mid=365,long' "
                   "(the default): exclusive upper bounds, the last open-ended.")
@customer_col()
@time_col()
@amount_col()
@click.option("--discount-col", default="discount_used", show_default=True, metavar="COL",
              help="Boolean/0-1 discount column, used for discount_share when present (its "
                   "absence is stated; pass '' to ignore it).")
@click.option("--out", required=True, metavar="FILE",
              help="Output file, .parquet or .csv (written whole or not at all).")
@engine()
def cohort(transactions: str, as_of: str, dormant_after: int, tiers: str | None,
           customer_col: str, time_col: str, amount_col: str, discount_col: str,
           out: str, engine: str | None) -> None:
    """Find the dormant customers as of a date, with their tier and features.

    \b
    Example:
      upliftlab cohort --transactions world/transactions.parquet \\
          --as-of 2026-01-05 --out cohort.parquet
    """
    from upliftlab.cohort import format_tier_table, write_cohort
    from upliftlab.sources import ColumnMap, column_notes

    notes = column_notes(transactions, [customer_col, time_col, amount_col],
                         {discount_col: "--discount-col: discount_share not computed"}
                         if discount_col else {})
    from upliftlab.progress import status

    engine = resolve_engine(engine)
    write = write_cohort
    if engine == "spark":
        from upliftlab.engine.spark_steps import write_cohort_spark as write
    with status(f"building the cohort of {transactions}" + (" on Spark" if engine == "spark"
                                                             else "")):
        summary = write(transactions, as_of, out, dormant_after=dormant_after,
                        tiers=tiers, columns=ColumnMap(customer_col, time_col, amount_col),
                        discount_col=discount_col or None)
    total = summary[-1]["customers"]
    click.echo(f"{total:,} dormant customers (last purchase at least {dormant_after} days before "
               f"{as_of}) -> {out}")
    click.echo(format_tier_table(summary))
    for line in notes:
        click.echo(line)


commands = [cohort]
