"""`upliftlab model fit|score`: fit uplift models with a cross-validated learner comparison, and
score customers in batches. A thin shell over `upliftlab.uplift` and `upliftlab.metrics`.
"""

from __future__ import annotations

import click

from upliftlab.cli._options import (arm_col, as_of, control, customer_col, engine,
                                    mapped_columns, parse_weights, store, weight)


@click.group("model")
def model() -> None:
    """Uplift models: per-customer uplift of each treatment against control.

    \b
    fit    cross-validate learners, fit the chosen one, write model + comparison + Qini plots
    score  score a customers file in batches: customer_id, base, uplift_<arm>...
    """


@model.command("fit")
@click.argument("spec", required=False, metavar="[SPEC]")
@as_of("With SPEC: the date (outcome windows closed) whose outcomes train the model.")
@store("With SPEC: the DuckDB store with the assignments (env UPLIFTLAB_STORE).")
@click.option("--transactions", metavar="FILE",
              help="With SPEC: the purchases after the campaign start (default: the spec's "
                   "[outcomes] transactions, else cohort.transactions).")
@mapped_columns("With SPEC and the outcome source")
@click.option("--data", metavar="FILE",
              help="An experiment table (CSV/Parquet/file.duckdb:table): arm, outcome, features.")
@arm_col("With --data: the arm column.", default=None)
@control("With --data: the control arm's label.")
@click.option("--metric", "outcome_col", metavar="COL",
              help="The outcome to model (with SPEC: reactivated [default], revenue or orders).")
@click.option("--feature", "features", multiple=True, metavar="COL",
              help="A feature column (repeat). With SPEC: default all cohort features.")
@click.option("--outcome-type", type=click.Choice(["auto", "binary", "continuous"]),
              default="auto", show_default=True,
              help="binary (0/1: classifiers) or continuous (regressors); auto from the values.")
@click.option("--learner", default="auto", show_default=True, metavar="auto|L[/BASE]",
              help="auto: the mean of the two candidates whose rankings earn the most out of "
                   "fold (cross-fitted doubly robust budgeted value), or per arm its best when "
                   "that earns significantly more; or one learner for every arm: s, t, x, "
                   "glm, dr, urf, optionally with a base-model capacity, e.g. s/small.")
@click.option("--candidates", default=None, metavar="L,L,...",
              help="With --learner auto: the learners to compare (default: s,t,x,glm; also "
                   "dr, urf - the uplift forest is slow - or explicit pairs like s/small).")
@click.option("--base-models", "base_models", default=None, metavar="B,B,...",
              help="Capacities of the LightGBM base models to compare: small (7 leaves, 300 "
                   "per leaf), medium (15, 100), large (LightGBM's defaults: 31, 20). Default "
                   "small,large.")
@click.option("--folds", default=3, show_default=True, type=click.IntRange(2, 20),
              help="Cross-fitting folds (every score is measured out of fold).")
@click.option("--bootstrap", "n_bootstrap", default=200, show_default=True,
              type=click.IntRange(10, 10_000), help="Bootstrap resamples for the intervals.")
@weight("With --data: the design's randomisation weight of an arm, e.g. control=0.25; "
        "repeat for every arm (default: the observed arm shares).")
@click.option("--seed", default=0, show_default=True, type=int, help="Folds, bootstrap, models.")
@click.option("--n-jobs", default=2, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes for the cross-fitting (each LightGBM model uses one "
                   "thread: more threads per model spin-wait on a busy machine).")
@click.option("--out", required=True, metavar="DIR",
              help="Output folder (replaced whole): model.pkl, model.json, comparison.csv/.json, "
                   "deciles.csv, qini_<arm>.png, oof_scores.parquet (out-of-fold scores of the "
                   "training rows, for `upliftlab policy --data`).")
def fit(spec: str | None, as_of: str | None, store_path: str, transactions: str | None,
        customer_col: str | None, time_col: str | None, amount_col: str | None,
        data: str | None, arm_col: str | None, control: str | None, outcome_col: str | None,
        features: tuple[str, ...], outcome_type: str, learner: str, candidates: str | None,
        base_models: str | None, folds: int, n_bootstrap: int, weights: tuple[str, ...],
        seed: int, n_jobs: int, out: str) -> None:
    """Cross-fit uplift learners, fit the mean of the two that earn most (or the one asked
    for) and save it.

    \b
    Examples:
      upliftlab model fit --data hillstrom.csv --arm-col segment --control "No E-Mail" \\
          --metric visit --feature recency --feature history --feature channel --out m/
      upliftlab model fit experiments/winback.toml --as-of 2026-03-09 --out m/
    """
    from upliftlab._files import claim
    from upliftlab.errors import InputError
    from upliftlab.progress import status
    from upliftlab.uplift.io import binary_or_continuous, read_experiment_table, spec_training_data
    from upliftlab.uplift.persist import MODEL_FILES

    claim(out, "model", MODEL_FILES)  # a folder that is not a model fails before any work

    if spec is not None:
        if data or arm_col or control or weights:
            raise InputError("model fit: give either SPEC --as-of DATE or --data FILE --arm-col "
                             "COL --control LABEL, not both (--weight goes with --data)")
        if not as_of:
            raise InputError("model fit SPEC: missing --as-of DATE")
        columns = None
        if customer_col or time_col or amount_col:
            from upliftlab.sources import ColumnMap
            from upliftlab.spec import load_spec

            base = load_spec(spec).outcome_columns()
            columns = ColumnMap(customer_col or base.customer_id, time_col or base.timestamp,
                                amount_col or base.amount)
        with status("reading outcomes and features"):
            X, y, t, prop, control = spec_training_data(spec, as_of, store_path,
                                                        outcome_col or "reactivated",
                                                        transactions, columns=columns)
        if features:
            from upliftlab.sources import require_columns

            require_columns(list(X.columns), list(features), f"cohort of {spec}")
            X = X[list(features)]
        where = spec
    else:
        if transactions or customer_col or time_col or amount_col:
            raise InputError("model fit --data: --transactions and the column mapping go with "
                             "a SPEC")
        missing = [name for name, v in (("--data", data), ("--arm-col", arm_col),
                                        ("--control", control), ("--metric", outcome_col))
                   if not v]
        if missing:
            raise InputError(f"model fit: missing {', '.join(missing)} (or give SPEC --as-of DATE)")
        if not features:
            raise InputError("model fit: give at least one --feature COL")
        if arm_col in features or outcome_col in features:
            raise InputError("model fit: the arm and outcome columns cannot be features")
        df = read_experiment_table(data, [arm_col, outcome_col, *features])
        if df[outcome_col].isna().any():
            raise InputError(f"{data}: column {outcome_col!r} has {int(df[outcome_col].isna().sum())} "
                             "missing outcomes")
        X = df[list(features)]
        y = df[outcome_col]
        t = df[arm_col].astype(str).to_numpy()
        prop = _propensities(weights)
        where = f"{data}, column {outcome_col!r}"
    import pandas as pd

    kind = binary_or_continuous(pd.Series(y), where) if outcome_type == "auto" else outcome_type
    if learner != "auto":
        from upliftlab.uplift.model import members

        members(learner)
    _fit_and_write(X, y, t, control, kind, learner, folds, n_bootstrap, prop, seed, n_jobs, out,
                   outcome_name=outcome_col or "reactivated",
                   learners=_parse_candidates(candidates) if candidates else None,
                   base_models=_parse_bases(base_models) if base_models else None)


def _propensities(weights: tuple[str, ...]) -> dict[str, float] | None:
    """The arms' assignment probabilities from repeated --weight ARM=W (normalised to sum 1)."""
    from upliftlab.errors import InputError

    parsed = parse_weights(weights)
    if not parsed:
        return None
    bad = [f"{a}={w:g}" for a, w in parsed.items() if not w > 0]  # also refuses nan
    if bad:
        raise InputError(f"--weight {', '.join(bad)}: an arm's weight must be > 0 (every "
                         "arm, control included, was assigned with some probability)")
    total = sum(parsed.values())
    return {a: w / total for a, w in parsed.items()}


def _parse_candidates(text: str) -> tuple[str, ...]:
    from upliftlab.errors import InputError
    from upliftlab.uplift import LEARNERS
    from upliftlab.uplift.model import members

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise InputError(f"--candidates {text!r}: expected learners from {', '.join(LEARNERS)}")
    for n in names:
        try:
            members(n)
        except InputError as exc:
            raise InputError(f"--candidates {text!r}: {exc}") from None
    return names


def _parse_bases(text: str) -> tuple[str, ...]:
    from upliftlab.errors import InputError
    from upliftlab.uplift.learners import BASE_MODELS

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in BASE_MODELS]
    if bad or not names:
        raise InputError(f"--base-models {text!r}: expected names from "
                         f"{', '.join(BASE_MODELS)}")
    return names


def _fit_and_write(X, y, t, control, kind, learner, folds, n_bootstrap, prop, seed, n_jobs,
                   out, outcome_name="y", learners=None, base_models=None) -> None:
    from upliftlab.progress import status
    from upliftlab.uplift.workflow import fit_and_save

    with status(f"model fit: cross-fitting ({folds} folds) and choosing a model per arm"):
        fit = fit_and_save(X, y, t, control=control, outcome=kind, out=out, learner=learner,
                           folds=folds, n_bootstrap=n_bootstrap, propensity=prop, seed=seed,
                           n_jobs=n_jobs, outcome_name=outcome_name, learners=learners,
                           base_models=base_models)
    tab = fit.table

    def ci(v, lo, hi, scale=100.0, unit=" pts"):
        if v != v:  # NaN: not shown, see the normalisation column
            return "n/a"
        return f"{scale * v:+.3f}{unit} ({scale * lo:+.3f} to {scale * hi:+.3f})"

    show = pd_frame({
        "learner": tab.learner, "arm": tab.arm,
        "budgeted value / customer (95% CI)": [ci(r.budgeted_value, r.budgeted_value_low,
                                                   r.budgeted_value_high)
                                                for r in tab.itertuples()],
        "policy value / customer (95% CI)": [ci(r.policy_value, r.policy_value_low,
                                                 r.policy_value_high) for r in tab.itertuples()],
        "Qini area / customer": [ci(r.qini_area, r.qini_area_low, r.qini_area_high)
                                 for r in tab.itertuples()],
        "Qini (causalml)": [ci(r.qini, r.qini_low, r.qini_high, 1.0, "")
                            for r in tab.itertuples()],
        "chosen": ["yes" if c else "" for c in tab.chosen],
        "fit s": [f"{v:.0f}" for v in tab.fit_seconds]})
    click.echo(f"cross-fitted ({folds} folds), {n_bootstrap} bootstrap resamples; budgeted "
               "value (what chooses the model) = doubly robust gain of the customers a budget "
               "treats with the arm (the top 5%, 10%, ..., 100% by predicted uplift) over as "
               "many at random, averaged over the budgets; policy value = doubly robust value "
               "of treating where the predicted uplift > 0, over treating nobody; Qini "
               "(causalml) only where the arm's effect can be told from zero:")
    click.echo(show.to_string(index=False))
    click.echo("learner per arm:")
    for arm, why in fit.reasons.items():
        click.echo(f"  {arm}: {why}")
    click.echo(f"model: {fit.chosen} -> {fit.out}/")


def pd_frame(columns: dict):
    import pandas as pd

    return pd.DataFrame(columns)


@model.command("score")
@click.option("--model", "model_dir", required=True, metavar="DIR",
              help="A model folder written by `upliftlab model fit` (load only your own: pickles "
                   "run code; the checksum in model.json is verified first).")
@click.option("--customers", required=True, metavar="FILE",
              help="Customers with the model's features (CSV/Parquet/file.duckdb:table).")
@customer_col("The customer id column of --customers.")
@click.option("--batch-size", default=200_000, show_default=True, type=click.IntRange(1000),
              help="Rows per batch (bounds memory).")
@click.option("--out", required=True, metavar="FILE",
              help="Scores, .parquet or .csv: customer_id, base, uplift_<arm>...")
@engine()
def score(model_dir: str, customers: str, customer_col: str, batch_size: int, out: str,
          engine: str | None) -> None:
    """Score customers in batches: predicted outcome under control and uplift per arm.

    \b
    Example:
      upliftlab model score --model m/ --customers cohort.parquet --out scores.parquet
    """
    from upliftlab.cli._engine import resolve_engine
    from upliftlab.uplift import load_model
    from upliftlab.uplift.io import score_file

    m = load_model(model_dir, trusted=True)
    if resolve_engine(engine) == "spark":
        from upliftlab.engine.spark_score import write_scores_spark
        from upliftlab.progress import status

        with status(f"scoring {customers} on Spark"):
            n = write_scores_spark(m, customers, out, id_col=customer_col)
    else:
        n = score_file(m, customers, out, id_col=customer_col, batch_size=batch_size)
    click.echo(f"scored {n:,} customers ({', '.join(m.treatment_arms_)} vs {m.control_}) -> {out}")


commands = [model]
