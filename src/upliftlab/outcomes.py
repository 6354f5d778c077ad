"""Outcomes of a designed experiment and its weekly report: reactivation, revenue, orders per
assigned customer from the transactions after the campaign start, with the history in the store.

Open windows: every assigned customer is counted with the exposure so far (purchases from the
campaign start up to the report date, capped at the outcome window); as all arms start on the
same day, the arms are compared at equal exposure. The report says how many windows are closed.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upliftlab.errors import InputError, StoreError
from upliftlab.queries import (day_start_sql, outcomes_with_cohort_sql, source_facts_sql,
                               source_match_sql, text_id_sql, window_purchases_sql)
from upliftlab.session import CohortHandle, OutcomesHandle, Session, require_session, require_store
from upliftlab.sources import ColumnMap, parse_date, quote
from upliftlab.rules import HOLDOUT_ARM

if TYPE_CHECKING:
    import pandas as pd

    from upliftlab.store import Store

OUTCOME_METRICS = {"reactivation": "reactivated", "revenue": "revenue", "orders": "orders"}


def outcomes_sql(assigned: str, transactions: str, *, start: dt.date, as_of: dt.date,
                 window_days: int, columns: ColumnMap = ColumnMap()) -> str:
    """THE outcome query: one row per assigned customer.

    `assigned` has customer_id (text), arm, stratum; `transactions` the user's columns
    (`columns`). Purchases count from `start` (00:00) up to min(start + window, as_of 00:00):
    reactivated (0/1), revenue, orders, days_to_reactivation (NULL when not reactivated),
    exposure_days and window_closed.
    """
    end_day = min(start + dt.timedelta(days=window_days), as_of)
    closed = "TRUE" if start + dt.timedelta(days=window_days) <= as_of else "FALSE"
    return f"""
WITH t AS (
    {window_purchases_sql(transactions, start, end_day, columns)}
), per AS (
    SELECT customer_id, count(*) AS orders, sum(amount) AS revenue, min(ts) AS first_ts
    FROM t GROUP BY customer_id
)
SELECT a.customer_id, a.arm, a.stratum,
       CASE WHEN per.orders > 0 THEN 1 ELSE 0 END AS reactivated,
       COALESCE(per.revenue, 0.0) AS revenue,
       COALESCE(per.orders, 0) AS orders,
       datediff('day', {day_start_sql(start)}, per.first_ts) AS days_to_reactivation,
       {(end_day - start).days} AS exposure_days,
       {closed} AS window_closed
FROM {quote(assigned)} a LEFT JOIN per ON per.customer_id = a.customer_id"""


def compute_outcomes(assignments: Any, transactions: Any, *, start: Any, as_of: Any,
                     window_days: int, columns: ColumnMap = ColumnMap()) -> "pd.DataFrame":
    """Outcomes per assigned customer, for notebooks: the Python face of `outcomes_sql`.

    assignments: a table (DataFrame, file, relation) with customer_id and arm (and optionally
    stratum); transactions: the user's transactions (`columns` names them). Returns customer_id
    (text), arm, stratum, reactivated, revenue, orders, days_to_reactivation, exposure_days,
    window_closed, one row per assigned customer.
    """
    from upliftlab.sources import register, require_columns

    with Session() as session:
        con = session.con
        src, assigned, tx = (session.temp_name(x) for x in ("assignments_src", "assigned", "tx"))
        have = register(con, assignments, src)
        require_columns(have, ["customer_id", "arm"], "assignments")
        stratum = "CAST(stratum AS VARCHAR)" if "stratum" in have else "'all'"
        con.execute(f"CREATE TEMP VIEW {quote(assigned)} AS SELECT CAST(customer_id AS VARCHAR) "
                    f"AS customer_id, CAST(arm AS VARCHAR) AS arm, {stratum} AS stratum "
                    f"FROM {quote(src)}")
        tx_cols = register(con, transactions, tx)
        require_columns(tx_cols, [columns.customer_id, columns.timestamp, columns.amount],
                        "transactions")
        frame = con.execute(outcomes_sql(assigned, tx, start=parse_date(start, "start"),
                                         as_of=parse_date(as_of, "as_of"),
                                         window_days=int(window_days), columns=columns)
                            + " ORDER BY a.customer_id").df()
    # the design's name travels with the table, so `analyze` titles the report with it
    name = (getattr(assignments, "attrs", None) or {}).get("experiment")
    if name:
        frame.attrs["experiment"] = name
    return frame


@dataclass(frozen=True)
class WeeklyReport:
    path: Path
    result: Any  # AnalysisResult
    n_holdout: int
    window_closed: bool
    revision: int = 1


# the origin of an outcome source given as the `transactions` argument (the CLI's --transactions)
GIVEN = "--transactions"


@dataclass(frozen=True)
class OutcomeSource:
    """Where a report's outcomes come from and what was found there (for the report's notes)."""

    location: str
    columns: ColumnMap
    origin: str  # "transactions" (given), "[outcomes] transactions" or "cohort.transactions"
    rows_from_start: int = 0
    last_purchase: dt.date | None = None
    outside: int = 0  # purchases from the start by customers not in the experiment
    ignored_columns: tuple[str, ...] = ()


def outcome_source(spec: Any, transactions: str | None = None,
                   columns: ColumnMap | None = None) -> OutcomeSource:
    """The outcome source of `spec`: `transactions`, else [outcomes] transactions, else the
    cohort's transactions (stated in the report); columns from `columns`, else the spec."""
    if transactions:
        location, origin = transactions, GIVEN
    elif spec.outcomes.transactions:
        location, origin = spec.resolve(spec.outcomes.transactions), "[outcomes] transactions"
    elif spec.cohort.transactions:
        location, origin = spec.resolve(spec.cohort.transactions), "cohort.transactions"
    else:
        raise InputError(f"{spec.path or spec.name}: no outcome source; set [outcomes] "
                         "transactions in the spec or give {transactions} FILE with the purchases "
                         "after the campaign start", params=["transactions"])
    return OutcomeSource(location, columns or spec.outcome_columns(), origin)


def check_outcome_source(session: Session, source: OutcomeSource, assigned: str,
                         start: dt.date, *, engine: Any = None) -> OutcomeSource:
    """Refuse an outcome source that would give silent zeros; return it with what was found.

    `assigned` is the SQL of the experiment's customers (customer_id as text). Refused
    (InputError): no purchase on or after `start`; ids of another type than the store's
    (integers against text ids); no purchase from `start` on by any customer of the experiment.
    `engine`: a SparkEngine that runs the same queries (`assigned` then over its views).
    """
    from upliftlab.sources import register, require_columns

    if engine is None:
        con = require_session(session, "check_outcome_source").con
        tx = session.temp_name("tx")
        have = register(con, source.location, tx)
    else:
        con, tx = engine, "ul_spark_check_tx"
        have = engine.register(source.location, tx)
    cols = source.columns
    try:
        require_columns(have, [cols.customer_id, cols.timestamp, cols.amount],
                        f"outcome source {source.location} ({source.origin}; map the names with "
                        "{columns} or [outcomes.columns])")
    except InputError as exc:
        raise InputError(str(exc), params=["columns"]) from None
    try:
        n, first, last, n_after, last_after = con.execute(
            source_facts_sql(tx, cols.timestamp, start)).fetchone()
    except Exception as exc:  # noqa: BLE001 - a DuckDB conversion error names the bad value
        raise InputError(f"outcome source {source.location}: column {cols.timestamp!r} is not "
                         f"a timestamp ({str(exc).splitlines()[0]})") from None
    if not n_after:
        found = f"{n:,} rows from {first} to {last}" if n else "no rows"
        raise InputError(f"outcome source {source.location} ({source.origin}) has no purchases "
                         f"on or after the campaign start {start} (found {found}); give the "
                         "post-campaign transactions with [outcomes] transactions or "
                         "{transactions}", params=["transactions"])
    id_type = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {quote(tx)})"
                               ).fetchall())[cols.customer_id]
    text_id = con.execute(text_id_sql(assigned)).fetchone()
    if "INT" in id_type.upper() and text_id is not None:
        raise InputError(f"outcome source {source.location}: column {cols.customer_id!r} holds "
                         f"integers ({id_type}) but the experiment's customer ids are text "
                         f"(e.g. {text_id[0]!r}); map the right id column with {{customer_col}}",
                         params=["customer_col"])
    matched, outside, example = con.execute(
        source_match_sql(tx, cols, start, assigned)).fetchone()
    (engine.drop if engine is not None else session.drop)(tx)
    if not matched:
        sample = con.execute(f"SELECT customer_id FROM ({assigned}) a LIMIT 1").fetchone()
        raise InputError(f"outcome source {source.location}: none of its {outside:,} purchases "
                         f"from {start} on is by a customer of the experiment (ids such as "
                         f"{example!r} there, {sample[0] if sample else 'none'!r} in the store); "
                         "is it the right file and {customer_col}?", params=["customer_col"])
    ignored = tuple(c for c in have if c not in (cols.customer_id, cols.timestamp, cols.amount))
    return OutcomeSource(source.location, cols, source.origin, int(n_after),
                         last_after.date() if last_after is not None else None, int(outside),
                         ignored)


def report_spec(spec_path: str, *, as_of: Any, out: str | None, store_path: str,
                transactions: str | None = None, analysis: str | None = None,
                alpha: float | None = None, correction: str = "holm",
                history: bool = True, model: Any = None, policy: Any = None,
                columns: ColumnMap | None = None, touches: str | None = None,
                touch_columns: Any = None, engine: str = "duckdb") -> WeeklyReport:
    """The weekly report of the designed experiment `spec_path` as of `as_of` into `out`.

    Outcomes from the store's assignments and the outcome source (`transactions`, else the
    spec's [outcomes] transactions, else its cohort.transactions; columns from `columns`, else
    [outcomes.columns], else the cohort's) after the campaign start (cohort.as_of); covariates
    and tier from the spec's cohort; costs and design weights from the spec and the store.
    analysis None: sequential while outcome windows are open, fixed once all are closed. The
    week's report.json is appended to `weekly_results` (a re-run with other numbers adds a
    revision; equal numbers add nothing); the latest revision of earlier weeks gives the trend.
    `model` and `policy` (folders from `upliftlab model fit` / `upliftlab policy`) add the
    report's model and policy sections (see `upliftlab.report.write_report`); not stored.
    `touches` (default the spec's [touches] source) adds the funnel and the effects on the
    reached (`touch_columns`: a `TouchColumns`, default the spec's [touches.columns]).
    `engine="spark"`: the outcomes and the per-arm sufficient statistics are computed on Spark
    (Parquet sources; the touch section too); the statistics are the same code.
    """
    from upliftlab.analysis import analyze
    from upliftlab.report import load_model_section, load_policy_section, write_report
    from upliftlab.spec import load_spec
    from upliftlab.store import open_store

    spec = load_spec(spec_path)
    if as_of is None:
        raise InputError("report SPEC needs {as_of} DATE (YYYY-MM-DD)", params=["as_of"])
    report_day = parse_date(as_of, "{as_of}")
    start = spec.cohort.as_of
    if report_day <= start:
        raise InputError(f"{{as_of}} {report_day} is not after the campaign start {start} "
                         f"(cohort.as_of of {spec_path}): no outcomes yet", params=["as_of"])
    if out is None:
        raise InputError("report: missing {out} DIR", params=["out"])
    from upliftlab._files import claim
    from upliftlab.report import REPORT_FILES

    claim(out, "report", REPORT_FILES)  # a folder the report may not replace fails first
    # read the folders before the store is touched: a bad one changes nothing
    if model is not None and not isinstance(model, dict):
        model = load_model_section(model)
    if policy is not None and not isinstance(policy, dict):
        policy = load_policy_section(policy)
    if not Path(store_path).exists():
        raise StoreError(f"store {store_path} does not exist (run `upliftlab assign` first)")
    window_end = start + dt.timedelta(days=spec.outcome_window_days)
    closed = window_end <= report_day
    if analysis is None:
        analysis = "fixed" if closed else "sequential"
    source = outcome_source(spec, transactions, columns)
    if engine == "spark":  # what Spark cannot read is said before anything starts
        from upliftlab.engine.spark_cohort import check_spec_sources, require_parquet

        check_spec_sources(spec)
        require_parquet(source.location, "transactions")
        log = touches or (spec.resolve(spec.touches.source) if spec.touches else None)
        if log is not None:
            require_parquet(log, "touch logs")

    # every check of the outcome source runs on a read-only store: a refusal changes nothing
    with open_store(store_path, read_only=True) as store:
        if store.experiment(spec.name, spec.version) is None:
            raise StoreError(f"experiment '{spec.name}' v{spec.version} is not in {store_path} "
                             "(run `upliftlab assign` first)")
        assigned = store.assignments_sql(spec.name, spec.version, holdout=False)
        source = (check_outcome_source(store.session, source, assigned, start)
                  if engine != "spark" else _check_on_spark(store.session, source, assigned, start))

    with open_store(store_path) as store:
        session = store.session
        with store.transaction():
            store.ensure_report_schema()
            if engine == "spark":
                got, data, on_spark = _spark_outcomes(session, spec, source, start, report_day)
            else:
                got = spec_outcomes(session, spec, source, start, report_day)
                data, on_spark = got.relation(), None
            weights = design_weights(store, spec)
            past = store.weekly_history(spec.name, spec.version, before=report_day) \
                if history else []
            costs = {a.name: (a.cost_per_contact, a.cost_per_conversion) for a in spec.arms}
            metrics = [OUTCOME_METRICS["reactivation"]] + [
                OUTCOME_METRICS[m] for m in spec.metrics.secondary]
            n_assigned = sum(n for a, n in store.arm_counts(spec.name, spec.version).items()
                             if a != HOLDOUT_ARM)
            from contextlib import nullcontext

            from upliftlab.engine.spark_steps import spark_errors  # (PySpark on use only)

            reading = spark_errors(source.location) if on_spark is not None else nullcontext()
            try:
                with reading:
                    result = analyze(data, arm="arm", control=spec.control_arm.name,
                                     metrics=metrics, covariates=list(got.covariates),
                                     segments=list(got.segments), costs=costs,
                                     analysis=analysis,
                                     alpha=spec.alpha if alpha is None else alpha,
                                     correction=correction, planned_n=n_assigned or None,
                                     experiment=spec.name, as_of=report_day, weights=weights,
                                     revenue="revenue" if "revenue" in metrics else None,
                                     currency=spec.currency,
                                     engine=on_spark.engine if on_spark is not None else None)
                touch_result = spec_touches(session, spec, got, touches, touch_columns,
                                            start, min(window_end, report_day),
                                            spec.alpha if alpha is None else alpha,
                                            spark=on_spark)
            finally:
                if on_spark is not None:
                    on_spark.release()
            observed = min((report_day - start).days, spec.outcome_window_days)
            method = {**result.method,
                      "outcome_window_days": spec.outcome_window_days,
                      "campaign_start": start.isoformat(), "windows_closed": closed,
                      "days_observed": observed, "source": "experiment",
                      "outcome_source": source.location}
            notes = [*_source_notes(source, report_day), *result.method["notes"],
                     _window_note(spec, start, report_day, closed, got.n_holdout)]
            if not closed:
                method["projection"] = _projections(result, spec, observed)
                if result.cost_rows:
                    notes.append(
                        "Projection of the cost per incremental reactivation to the full "
                        f"{spec.outcome_window_days} days: control's daily reactivation rate so "
                        "far (a constant hazard) is assumed for the remaining days in every arm, "
                        "and each arm's lift so far is kept as it is; conversion costs of "
                        "customers who would have come back anyway keep accruing, so the "
                        "projection is usually above the cost to date. A scenario, not an "
                        "interval; it needs at least 7 observed days and a bounded cost interval.")
            if analysis == "fixed" and closed and past:
                notes.append(
                    "All outcome windows are closed: this final report is fixed-horizon; the "
                    "weekly reports before it were sequential.")
            result = replace(result, method={**method, "notes": notes})
            revision, earlier = _revision(store, spec, report_day, result)
            if earlier is not None:
                result = replace(result, method={
                    **result.method, "revision": revision, "notes": [
                        *result.method["notes"],
                        f"This week was reported before with other numbers (revision "
                        f"{revision - 1}, computed {earlier:%Y-%m-%d %H:%M} UTC); both are kept "
                        f"in the store and the trend uses this revision {revision}."]})
            if revision is not None:
                body = result.to_dict()
                store.add_weekly_result(spec.name, spec.version, report_day, revision, analysis,
                                        _fingerprint(body), body)
            # the row is committed when the folder is complete, right before the swap: a run
            # killed in between leaves the old report and a stored row whose re-run of the same
            # week adds nothing (same numbers), never a report without its row
            path = write_report(result, out, history=past, model=model, policy=policy,
                                touches=touch_result, before_swap=store.commit)
    if revision is None:
        with open_store(store_path, read_only=True) as store:
            latest = store.latest_week(spec.name, spec.version, report_day)
        revision = latest[0] if latest else 1
    return WeeklyReport(path, result, got.n_holdout, closed, revision)


def _projections(result: Any, spec: Any, days: int) -> list[dict[str, Any]]:
    """Each treatment's cost per incremental reactivation projected to the full window."""
    from dataclasses import asdict

    from upliftlab.stats.cost import project_cpir

    primary = result.method["primary_metric"]
    comps = {c["arm"]: c for c in result.comparison_rows if c["metric"] == primary}
    control = spec.control_arm
    out = []
    for row in result.cost_rows:
        c = comps[row["arm"]]
        p = project_cpir(row["arm"], c["mean_treatment"], c["mean_control"],
                         (row["cost_per_contact"], row["cost_per_conversion"]),
                         (control.cost_per_contact, control.cost_per_conversion), days,
                         spec.outcome_window_days, bool(row["bounded"]))
        out.append(asdict(p))
    return out


def _fingerprint(report: dict) -> str:
    """The week's numbers (arms, comparisons, costs), not when or how it was rendered."""
    import hashlib

    keep = {k: report.get(k) for k in ("arms", "comparisons", "cost", "srm")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()


def _revision(store: "Store", spec: Any, day: dt.date, result: Any):
    """(revision to write or None when the latest has the same numbers, computed_at of the
    latest earlier revision or None when there is none)."""
    latest = store.latest_week(spec.name, spec.version, day)
    if latest is None:
        return 1, None
    revision, fingerprint, computed_at = latest
    if fingerprint == _fingerprint(result.to_dict()):
        return None, None
    return revision + 1, computed_at


def spec_outcomes(session: Session, spec: Any, source: "OutcomeSource | str", start: dt.date,
                  report_day: dt.date, cohort: CohortHandle | None = None) -> OutcomesHandle:
    """The outcomes stage of a designed experiment: its assigned customers (the store of
    `session`; the holdout left out) with their outcomes from `source`, joined with the
    cohort's covariates and tier (`cohort`, else the spec's cohort built here)."""
    from upliftlab.sources import register
    from upliftlab.spec_cohort import spec_cohort

    store = require_store(session, "spec_outcomes")
    con = session.con
    n_holdout = store.arm_counts(spec.name, spec.version).get(HOLDOUT_ARM, 0)
    if isinstance(source, str):
        source = OutcomeSource(source, spec.outcome_columns(), GIVEN)
    assigned, tx = session.temp_name("assigned"), session.temp_name("tx")
    outcomes, table = session.temp_name("outcomes"), session.temp_name("report")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(assigned)} AS "
                + store.assignments_sql(spec.name, spec.version, holdout=False))
    register(con, source.location, tx)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(outcomes)} AS " + outcomes_sql(
        assigned, tx, start=start, as_of=report_day, window_days=spec.outcome_window_days,
        columns=source.columns))
    # covariates and tier come from the cohort as of the campaign start (pre-period only)
    cohort = cohort or spec_cohort(session, spec)
    covariates = [c for c in spec.covariates if c in cohort.columns]
    extra = [c for c in covariates + ["tier"] if c in cohort.columns]
    con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(table)} AS "
                + outcomes_with_cohort_sql(outcomes, cohort.name, extra))
    segments = (["tier"] if "tier" in cohort.columns else []) + ["stratum"]
    # a customer assigned earlier may have left the current cohort: no covariates, then
    missing = con.execute(f"SELECT count(*) FROM {quote(table)} WHERE " + " OR ".join(
        f"{quote(c)} IS NULL" for c in extra)).fetchone()[0] if extra else 0
    if missing:
        covariates = []
        segments = ["stratum"]
    return OutcomesHandle(session, outcomes, table, cohort, int(n_holdout), tuple(covariates),
                          tuple(segments))


def _check_on_spark(session: Session, source: "OutcomeSource", assigned: str,
                    start: dt.date) -> "OutcomeSource":
    """`check_outcome_source` with Spark reading the source: the store's rows (`assigned`)
    staged for it; everything made is released at once (the session stays up for the rest)."""
    from upliftlab.engine.spark_steps import spark_errors

    side = _SparkReport(session)
    try:
        view = side.stage(assigned, "ul_spark_check_assigned")
        with spark_errors(source.location):
            return check_outcome_source(session, source, f"SELECT * FROM {view}", start,
                                        engine=side.engine)
    finally:
        side.release()


class _SparkReport:
    """The report's Spark side: the engine, the Parquet it staged from the store (the store is
    the driver's), the spec's cohort built on Spark; `release` removes them all."""

    VIEWS = ("ul_spark_report_assigned", "ul_spark_report_tx", "ul_spark_report_outcomes",
             "ul_spark_report")

    def __init__(self, session: Session) -> None:
        import tempfile

        from upliftlab.engine.spark import SparkEngine, local_session, master_from_env

        self.engine = SparkEngine(local_session(master_from_env()))  # EngineError says why not
        self.session, self.cohort = session, None
        self.dir = Path(tempfile.mkdtemp(prefix="upliftlab-report-"))
        self.views: list[str] = list(self.VIEWS)

    def stage(self, sql: str, name: str) -> str:
        """The rows of the store's query `sql` as the Spark temp view `name`."""
        from upliftlab.engine.spark_cohort import stage_parquet

        self.engine.register(stage_parquet(self.session.con, sql, self.dir / f"{name}.parquet"),
                             name)
        self.views.append(name)
        return name

    def release(self) -> None:
        import shutil

        if self.cohort is not None:
            self.cohort.drop()
        self.engine.drop(*self.views)
        shutil.rmtree(self.dir, ignore_errors=True)


def _spark_outcomes(session: Session, spec: Any, source: "OutcomeSource", start: dt.date,
                    report_day: dt.date) -> tuple[Any, Any, _SparkReport]:
    """`spec_outcomes` with Spark computing the cohort (`spec_cohort_spark`) and the outcomes
    (engine/spark_steps.outcomes_spark) from the stored assignment. Returns what the report
    reads of the outcomes (n_holdout, covariates, segments, the Spark view `table`), the Spark
    DataFrame the statistics aggregate, and the Spark side (for the touch section and for the
    caller to release once the statistics are in)."""
    from types import SimpleNamespace

    from upliftlab.engine.spark_cohort import spec_cohort_spark
    from upliftlab.engine.spark_steps import spark_errors

    side = _SparkReport(session)
    store = require_store(session, "spec_outcomes")
    n_holdout = store.arm_counts(spec.name, spec.version).get(HOLDOUT_ARM, 0)
    try:
        assigned = side.stage(store.assignments_sql(spec.name, spec.version, holdout=False),
                              "ul_spark_report_assigned")
        side.cohort = cohort = spec_cohort_spark(side.engine, spec)
        covariates = [c for c in spec.covariates if c in cohort.columns]
        extra = [c for c in covariates + ["tier"] if c in cohort.columns]
        with spark_errors(source.location):
            table, missing = _spark_outcomes_table(side.engine, assigned, cohort.name, source,
                                                   start, report_day, spec.outcome_window_days,
                                                   extra)
        segments = (["tier"] if "tier" in extra else []) + ["stratum"]
        if missing:
            covariates, segments = [], ["stratum"]
    except BaseException:
        side.release()
        raise
    got = SimpleNamespace(n_holdout=int(n_holdout), covariates=tuple(covariates),
                          segments=tuple(segments), table="ul_spark_report")
    return got, table, side


def _spark_outcomes_table(engine: Any, assigned: str, cohort: str, source: "OutcomeSource",
                          start: dt.date, report_day: dt.date, window_days: int,
                          extra: list[str]) -> tuple[Any, int]:
    """The outcomes with the cohort's columns on Spark (`assigned`, `cohort`: Spark views),
    and how many rows lack them."""
    from upliftlab.engine.spark_steps import outcomes_spark

    engine.register(source.location, "ul_spark_report_tx")
    outcomes_spark(engine, assigned, "ul_spark_report_tx", start=start,
                   as_of=report_day, window_days=window_days,
                   columns=source.columns).createOrReplaceTempView("ul_spark_report_outcomes")
    table = engine.sql(outcomes_with_cohort_sql("ul_spark_report_outcomes", cohort, extra))
    table.createOrReplaceTempView("ul_spark_report")
    missing = engine.execute("SELECT count(*) FROM ul_spark_report WHERE " + " OR ".join(
        f"{quote(x)} IS NULL" for x in extra)).fetchone()[0] if extra else 0
    return table, int(missing)


def spec_touches(session: Session, spec: Any, outcomes: OutcomesHandle, source: str | None,
                 columns: Any, start: dt.date, cutoff: dt.date, alpha: float, *,
                 spark: Any = None) -> Any:
    """The touch section of a spec's report (None without a touch log): the log `source`
    (default the spec's [touches] source) against every assigned customer, holdout included.
    `spark`: the report's Spark side, which runs the same queries on Spark (a Parquet log)."""
    from contextlib import nullcontext

    from upliftlab.sources import register
    from upliftlab.touches import TouchColumns, analyze_touches

    store = require_store(session, "spec_touches")
    cfg = spec.touches
    if source is None and cfg is None:
        if columns is not None:
            raise InputError("touch_columns: given, but there is no touch log (give touches, "
                             "or a [touches] table in the spec)")
        return None
    source = source or spec.resolve(cfg.source)
    if columns is None:
        columns = cfg.columns.column_map() if cfg is not None else TouchColumns()
    assigned_sql = store.assignments_sql(spec.name, spec.version, columns=("customer_id", "arm"))
    if spark is None:
        con = session.con
        log, assigned = session.temp_name("touch_log"), session.temp_name("touch_assigned")
        have = register(con, source, log)
        con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(assigned)} AS " + assigned_sql)
        reading = nullcontext()
    else:
        from upliftlab.engine.spark_steps import spark_errors

        con, log = spark.engine, "ul_spark_touch_log"
        with spark_errors(source):
            have = con.register(source, log)
        spark.views.append(log)
        assigned = spark.stage(assigned_sql, "ul_spark_touch_assigned")
        reading = spark_errors(source)
    with reading:
        return analyze_touches(
            con, log=log, log_columns=have, columns=columns,
            assigned=assigned, outcomes=outcomes.table, arm="arm",
            control=spec.control_arm.name, covariates=outcomes.covariates,
            conversion_costs={a.name: a.cost_per_conversion for a in spec.arms},
            channels=tuple(cfg.channels) if cfg is not None and cfg.channels else None,
            start=start, cutoff=cutoff, alpha=alpha)


def design_weights(store: "Store", spec: Any) -> dict[str, float]:
    """Expected share per arm: each batch's effective weights (capacity applied) × its size;
    the spec's weights when nothing is allocated."""
    weights = store.allocated_weights(spec.name, spec.version)
    if not weights or sum(weights.values()) <= 0:
        weights = {a.name: a.weight for a in spec.arms}
    return weights


def stored_history(store_path: str, name: str, version: int = 1) -> list[dict]:
    """The stored weekly report.json dicts of an experiment (the latest revision of each
    week), oldest first."""
    from upliftlab.store import open_store

    with open_store(store_path, read_only=True) as store:
        return store.weekly_history(name, version)


def _source_notes(source: OutcomeSource, day: dt.date) -> list[str]:
    c = source.columns
    notes = [f"Outcomes read from {source.location} ({source.origin}; columns "
             f"{c.customer_id}, {c.timestamp}, {c.amount}): {source.rows_from_start:,} purchases "
             "from the campaign start on."]
    if source.origin == "cohort.transactions":
        notes.append("The spec names no [outcomes] transactions, so the cohort's transactions "
                     "were read for the outcomes too.")
    if source.ignored_columns:
        notes.append("Columns of the outcome source not used: "
                     + ", ".join(source.ignored_columns) + ".")
    if source.outside:
        notes.append(f"{source.outside:,} purchases from the campaign start on are by customers "
                     "outside the experiment (or in the holdout) and are not counted.")
    last_day = day - dt.timedelta(days=1)
    if source.last_purchase is not None and source.last_purchase < last_day:
        notes.append(f"The outcome source's latest purchase is on {source.last_purchase}, before "
                     f"{last_day}: if the export is older than the report date, the days after "
                     "it count as days without purchases.")
    return notes


def _window_note(spec: Any, start: dt.date, day: dt.date, closed: bool, n_holdout: int) -> str:
    w = spec.outcome_window_days
    if closed:
        text = (f"Outcomes: purchases in the {w}-day window after the campaign start {start}; "
                "every window is closed.")
    else:
        text = (f"Outcomes so far: purchases from the campaign start {start} up to {day} "
                f"({(day - start).days} of {w} days). Windows are still open for every customer "
                "and the same length in every arm, so arms are compared at equal exposure; "
                "rates will rise until the window closes.")
    if n_holdout:
        text += f" The {n_holdout:,} customers of the global holdout are left out."
    return text
