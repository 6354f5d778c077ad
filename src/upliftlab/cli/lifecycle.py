"""`upliftlab respond-long-run`: the simulated world lives on for months after a campaign, with
treatments that change how long a reactivated customer stays active."""

from __future__ import annotations

import click

from upliftlab.cli import _options


@click.command("respond-long-run")
@click.option("--world", "world_dir", type=click.Path(), required=True,
              help="World directory written by `upliftlab simulate`.")
@_options.store("The store with the experiment's assignments (env UPLIFTLAB_STORE).")
@click.option("--experiment", required=True, metavar="NAME",
              help="Experiment in --store (its latest version). Holdout customers are "
                   "untreated: they live on as control.")
@click.option("--days", type=int, default=365, show_default=True,
              help="Days after the campaign start to simulate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Response seed.")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True,
              help="Output transactions file (.parquet or .csv).")
def respond_long_run(world_dir: str, store_path: str, experiment: str, days: int, seed: int,
                     out: str) -> None:
    """Every purchase of the experiment's customers in the DAYS after its start.

    A fresh draw of the whole period (its first outcome window has the same distribution as
    `upliftlab respond`'s): who comes back, when, and how long they then stay active, which
    depends on the arm (an advisor's customers stay longer than a coupon's).
    """
    from pathlib import Path

    from upliftlab.errors import InputError
    from upliftlab.lifecycle_sim import respond_long_run as run_on
    from upliftlab.simulate import load_world, write_transactions
    from upliftlab.store import open_store

    if not out.lower().endswith((".parquet", ".pq", ".csv", ".csv.gz")):
        raise InputError(f"--out {out}: unknown output type (expected .parquet or .csv)")
    if days < 1:
        raise InputError(f"--days must be at least 1, got {days}")
    if not Path(store_path).exists():
        raise InputError(f"--store {store_path}: no such store")
    world = load_world(world_dir)
    with open_store(store_path, read_only=True) as store:
        found = {f["name"]: f for f in store.experiment_specs()}
        if experiment not in found:
            raise InputError(f"--experiment {experiment!r} is not in {store_path} (found: "
                             f"{', '.join(found) or 'none'})")
        f = found[experiment]
        table = store.assignments(experiment, f["version"])
    start = f["spec"]["cohort"]["as_of"]
    try:
        table["customer_id"] = table["customer_id"].astype("int64")
    except ValueError:
        raise InputError(f"{store_path}: customer ids of {experiment!r} are not the world's "
                         "integer ids") from None
    rows = run_on(world, table[["customer_id", "arm"]], start=start, horizon_days=days,
                  seed=seed)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_transactions(rows, out)
    click.echo(f"{len(table):,} assigned customers over {days} days from {start}: "
               f"{rows['customer_id'].nunique():,} came back, {len(rows):,} transactions -> {out}")


commands = [respond_long_run]
