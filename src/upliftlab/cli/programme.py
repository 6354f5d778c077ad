"""`upliftlab programme`: the quarterly view over every experiment in the store: status, long
run (lifecycle extension, LTV lift) and the programme against the global holdout."""

from __future__ import annotations

import click

from upliftlab.cli import _options


@click.command()
@_options.store("The DuckDB store with the experiments (read only; env UPLIFTLAB_STORE).")
@_options.as_of("Report date (YYYY-MM-DD): purchases before this day count.", required=True)
@click.option("--transactions", "transactions", multiple=True, metavar="FILE",
              help="Purchases before and after the campaigns (CSV / Parquet / glob; repeat for "
                   "several files).  [default: each spec's cohort.transactions]")
@click.option("--customers", default=None, metavar="FILE",
              help="Customer table with customer_id and channel: adds the channel breakdown.")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True, metavar="DIR",
              help="Folder for report.json, report.md and report.html.")
def programme(store_path: str, as_of: str, transactions: tuple[str, ...], customers: str | None,
              out: str) -> None:
    """The programme report over all experiments of the store.

    Each experiment's status and latest result; its long run (90/180/365-day outcomes, ROI,
    survival curves of the time to come back and until dormant again); the whole programme
    against the global holdout month by month, by arm, tier and channel; the population's
    structure over time. Horizons the data does not cover yet are stated, not guessed.
    """
    from upliftlab.programme import programme_report

    result = programme_report(store_path, as_of=as_of, out=out,
                              transactions=list(transactions) or None, customers=customers)
    m = result.monthly[-1]
    click.echo(f"programme: {len(result.experiments)} experiment(s), data censored at "
               f"{result.data_end}; incremental reactivations vs the global holdout "
               f"{m['incremental_reactivations']:,.0f} (95% CI "
               f"{m['incremental_reactivations_ci_low']:,.0f} to "
               f"{m['incremental_reactivations_ci_high']:,.0f}) -> {out}/report.html")


commands = [programme]
