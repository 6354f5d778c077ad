"""`upliftlab power`, `assign`, `checks` and `export`: size, randomise, check and hand out an
experiment described by a spec file, with the store as the record."""

from __future__ import annotations

import click

from upliftlab.cli._engine import resolve_engine
from upliftlab.cli._options import engine as engine_option
from upliftlab.cli._options import store

store_option = store()


def _pct(x: float) -> str:
    return "inf" if x != x or x == float("inf") else f"{100 * x:.2f}%"


def _n(x: int | None) -> str:
    return "-" if x is None else f"{x:,}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                       for i, (c, w) in enumerate(zip(r, widths))) for r in [header, *rows]]
    return "\n".join(lines)


def format_power(report) -> str:  # noqa: ANN001 - a PowerReport
    r = report
    out = [f"power: {r.experiment}  alpha {r.alpha:g}, power {r.power:g}; {r.n_treatments} "
           f"treatment(s) vs control -> Bonferroni alpha {r.alpha_per_comparison:.4g} per "
           "comparison (= Holm's worst case)"]
    base = ", ".join(f"{t} {_pct(p)} ({r.tier_counts.get(t, 0):,})" for t, p in r.baselines.items())
    pooled = next((x.baseline for x in r.rows if x.scope == "all"), float("nan"))
    out.append(f"baseline reactivation ({r.baseline_source}): {base}; all {_pct(pooled)} "
               "(tier-mix weighted)")
    weights = ", ".join(f"{a} {w:.3f}" for a, w in r.effective_weights.items())
    out.append(f"effective weights (capacity applied, excess to control): {weights}; holdout "
               f"{r.holdout_share:g}")
    out.append(f"sequential (always-valid confidence sequence): x{r.sequential_inflation:.2f} "
               "the fixed-horizon sample for the same MDE and power")
    out.append(f"available sizes: {'assigned customers in the store' if r.sizes_source == 'assigned' else 'expected from the cohort and the weights'}")
    header = ["arm", "scope", "baseline", "n arm", "n ctrl", "MDE fixed", "MDE seq", "target MDE",
              "need arm", "need ctrl", "need cohort", "seq arm", "seq ctrl", "seq cohort"]
    rows = []
    for x in r.rows:
        rows.append([x.arm, x.scope, _pct(x.baseline), _n(x.n_treatment), _n(x.n_control),
                     _pts(x.mde_available), _pts(x.mde_available_sequential),
                     "-" if x.mde is None else _pts(x.mde),
                     _n(x.n_treatment_required) + ("!" if x.capacity_short else ""),
                     _n(x.n_control_required), _n(x.cohort_required),
                     _n(x.n_treatment_sequential), _n(x.n_control_sequential),
                     _n(x.cohort_sequential)])
    out.append(_table(header, rows))
    out.append("MDE: the smallest absolute lift in reactivation (percentage points) detectable "
               "at this power; need/seq: customers needed for the target MDE, fixed-horizon / "
               "sequential")
    if any(x.capacity_short for x in r.rows):
        out.append("! the arm's capacity is below the sample it needs for the target MDE")
    return "\n".join(out)


def _pts(p: float) -> str:
    """An absolute difference of proportions in percentage points, e.g. +0.45pt."""
    return f"+{100 * p:.2f}pt"


def format_assign(run, spec) -> str:  # noqa: ANN001 - an AssignRun and its spec
    a = run.allocation
    out = []
    if run.n_new:
        out.append(f"assigned {run.experiment} v{run.version}: {a.n_pool:,} new customers "
                   f"({run.n_existing:,} before), {a.mode} mode, {a.n_holdout:,} to the global "
                   "holdout")
    else:
        out.append(f"{run.experiment} v{run.version}: no new customers ({run.n_existing:,} "
                   "assigned before); assignments unchanged")
    if run.spec_updated:
        out.append("note: spec changed outside the randomisation (costs, descriptions, ...); "
                   "the stored spec was updated")
    if run.n_new:
        rows = [[x.arm, f"{x.weight:.3f}", f"{x.effective_weight:.4f}", _n(x.capacity),
                 _n(x.existing), _n(x.assigned)] for x in a.arms]
        out.append(_table(["arm", "weight", "effective", "capacity", "before", "new"], rows))
    out.append(format_checks(run.checks, spec))
    return "\n".join(out)


def format_checks(checks, spec) -> str:  # noqa: ANN001 - Check records and their spec
    """Counts per stratum and arm, SRM, holdout share and balance, as printed by assign/checks."""
    from upliftlab.spec import HOLDOUT_ARM

    out = []
    counts = [c for c in checks if c.kind == "count"]
    arms = [x.name for x in spec.arms] + [HOLDOUT_ARM]
    strata = sorted({c.scope.removeprefix("stratum:") for c in counts if c.scope != "overall"})
    cell = {(c.scope.removeprefix("stratum:"), c.details["arm"]): int(c.statistic) for c in counts}
    rows = [[s] + [_n(cell.get((s, arm), 0)) for arm in arms] for s in strata]
    rows.append(["all"] + [_n(sum(cell.get((s, arm), 0) for s in strata)) for arm in arms])
    out.append("customers per stratum and arm (all runs):")
    out.append(_table(["stratum", *arms], rows))
    srm = [c for c in checks if c.kind == "srm"]
    overall = next((c for c in srm if c.scope == "overall"), None)
    if overall is not None:
        per = [c for c in srm if c.scope != "overall"]
        out.append(f"SRM vs effective weights: overall chi2 {overall.statistic:.3f}, p "
                   f"{overall.p_value:.4g} {'ok' if overall.ok else 'FLAGGED'}; "
                   f"{sum(not c.ok for c in per)} of {len(per)} strata flagged (p < 0.001)"
                   + (f", smallest p {min(c.p_value for c in per):.4g}" if per else ""))
    for c in checks:
        if c.kind == "srm_holdout":
            out.append(f"holdout share: {c.details['counts']['holdout']:,} of "
                       f"{sum(c.details['counts'].values()):,} (design {c.details['share']:g}), "
                       f"p {c.p_value:.4g} {'ok' if c.ok else 'FLAGGED'}")
    smd = [c for c in checks if c.kind == "smd"]
    if smd:
        worst = max(smd, key=lambda c: abs(c.statistic))
        out.append(f"balance: {len(smd)} arm x feature SMDs, {sum(not c.ok for c in smd)} with "
                   f"|SMD| > 0.1; largest {worst.statistic:+.3f} ({worst.details['arm']}, "
                   f"{worst.details['feature']})")
    for c in checks:
        if not c.ok:
            what = c.details.get("feature") or ""
            out.append(f"  FLAGGED {c.kind} {c.scope} {c.details.get('arm', '')} {what} "
                       f"statistic {c.statistic:.4g}"
                       + (f" p {c.p_value:.4g}" if c.p_value is not None else ""))
    return "\n".join(out)


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@store_option
def power(spec_path: str, store_path: str) -> None:
    """Sample size and MDE per treatment arm vs control for the spec SPEC.

    Baselines per tier come from the spec or are measured from history; sizes are those the
    cohort gives (or, when the experiment is already assigned in --store, the assigned counts).
    """
    from pathlib import Path

    from upliftlab.power import assigned_counts, spec_power
    from upliftlab.session import Session
    from upliftlab.spec import load_spec
    from upliftlab.store import open_store

    spec = load_spec(spec_path)
    counts = None
    if Path(store_path).exists():
        with open_store(store_path, read_only=True) as store:
            counts = assigned_counts(store, spec)
    from upliftlab.progress import status

    with Session() as session, status(f"sizing {spec.name}"):
        report = spec_power(spec, session, arm_counts=counts)
    click.echo(format_power(report))


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@store_option
@engine_option()
def assign(spec_path: str, store_path: str, engine: str | None) -> None:
    """Randomise the cohort of SPEC into its arms and record it in the store.

    Idempotent: customers keep their arms; new cohort customers are added. A changed
    randomisation (arms, weights, salt, strata, mode, holdout) of an experiment that has
    assignments is refused: bump `version`. Prints counts, SRM and balance checks.
    """
    from upliftlab.assign import assign_experiment
    from upliftlab.spec import load_spec
    from upliftlab.store import open_store

    from upliftlab.progress import status

    spec = load_spec(spec_path)
    engine = resolve_engine(engine, spec.engine)
    with open_store(store_path) as store, status(
            f"assigning {spec.name}" + (" on Spark" if engine == "spark" else "")):
        run = assign_experiment(spec, store, engine=engine)
    click.echo(format_assign(run, spec))
    if spec.cohort.transactions:  # name what the cohort did not use (never a quiet zero)
        from upliftlab.sources import column_notes

        c = spec.cohort.columns
        source = spec.resolve(spec.cohort.transactions)
        have = None
        if engine == "spark":  # its columns as Spark reads them (a URL DuckDB may not read)
            from upliftlab.engine.spark import local_session, master_from_env, spark_path

            have = local_session(master_from_env()).read.parquet(spark_path(source)).columns
        for line in column_notes(source, [c.customer_col, c.time_col, c.amount_col],
                                 {c.discount_col: "[cohort.columns] discount_col: "
                                                  "discount_share not computed"}, have):
            click.echo(line)


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@store_option
def checks(spec_path: str, store_path: str) -> None:
    """Run the checks of SPEC's assignment now, print them and append them to the store.

    Sample-ratio mismatch overall and per stratum, the global holdout's share, covariate
    balance (standardised differences) and counts per stratum and arm; the same checks that
    `upliftlab assign` prints, at any time while the experiment runs.
    """
    from pathlib import Path

    from upliftlab.assign import check_experiment
    from upliftlab.errors import StoreError
    from upliftlab.spec import load_spec
    from upliftlab.store import open_store

    spec = load_spec(spec_path)
    if not Path(store_path).exists():
        raise StoreError(f"store {store_path} does not exist (run `upliftlab assign` first)")
    from upliftlab.progress import status

    with open_store(store_path) as store, status(f"checking {spec.name}"):
        found = check_experiment(spec, store)
    click.echo(f"checks of {spec.name} v{spec.version} (stored in {store_path}):")
    click.echo(format_checks(found, spec))
    flagged = sum(not c.ok for c in found if c.kind != "count")
    click.echo(f"{flagged} check(s) flagged" if flagged else "all checks passed")


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@store_option
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the contact lists (one file per treatment arm) and the full "
                   "assignment (every arm, control and holdout included).")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default=None,
              help="File format: csv (the default), or parquet (the only one, and the "
                   "default, with --engine spark: folders of parts).")
@engine_option()
def export(spec_path: str, store_path: str, out_dir: str, fmt: str | None,
           engine: str | None) -> None:
    """Write the contact list of each treatment arm of SPEC, and the full assignment.

    The contact lists hold the treatment arms only; <name>_v<version>_assignment.<format> holds
    every assigned customer (control and the global holdout too), for joining outcomes
    elsewhere. The id column keeps the source's name and type; money is in cents.
    """
    from upliftlab.assign import export_contacts
    from upliftlab.spec import load_spec
    from upliftlab.store import open_store

    spec = load_spec(spec_path)
    from upliftlab.progress import status

    engine = resolve_engine(engine, spec.engine)
    fmt = fmt or ("parquet" if engine == "spark" else "csv")
    with open_store(store_path, read_only=True) as store, status(
            "writing the lists" + (" on Spark" if engine == "spark" else "")):
        files = export_contacts(spec, store, out_dir, fmt, engine=engine)
        counts = store.arm_counts(spec.name, spec.version)
    for f, arm in zip(files, spec.treatment_arms):
        click.echo(f"{arm.name}: {counts.get(arm.name, 0):,} customers -> {f}")
    click.echo(f"full assignment: {sum(counts.values()):,} customers ("
               + ", ".join(f"{a} {n:,}" for a, n in sorted(counts.items()))
               + f") -> {files[-1]}")


commands = [power, assign, checks, export]
