"""Outcomes of a designed experiment and its weekly report: reactivation, revenue, orders per
assigned customer from the transactions after the campaign start, with the history in the store.

Open windows: every assigned customer is counted with the exposure so far (purchases from the
campaign start up to the report date, capped at the outcome window); as all arms start on the
same day, the arms are compared at equal exposure. The report says how many windows are closed.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upliftlab.errors import InputError, StoreError
from upliftlab.sources import ColumnMap, literal, parse_date, quote

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

REPORT_SCHEMA_VERSION = 1
REPORT_DDL = [
    # one row per experiment version and report date: the week's report.json, so the trend of
    # later reports needs no re-computation of old weeks
    """CREATE TABLE IF NOT EXISTS weekly_results (
        experiment VARCHAR NOT NULL,
        version INTEGER NOT NULL,
        as_of DATE NOT NULL,
        computed_at TIMESTAMP NOT NULL,
        analysis VARCHAR NOT NULL,
        report_json JSON NOT NULL,
        PRIMARY KEY (experiment, version, as_of)
    )""",
]
OUTCOME_METRICS = {"reactivation": "reactivated", "revenue": "revenue", "orders": "orders"}


def outcomes_sql(assigned: str, transactions: str, *, start: dt.date, as_of: dt.date,
                 window_days: int, columns: ColumnMap = ColumnMap()) -> str:
    """THE outcome query: one row per assigned customer.

    `assigned` has customer_id (text), arm, stratum; `transactions` the user's columns
    (`columns`). Purchases count from `start` (00:00) up to min(start + window, as_of 00:00):
    reactivated (0/1), revenue, orders, days_to_reactivation (NULL when not reactivated),
    exposure_days and window_closed.
    """
    s = f"TIMESTAMP '{start.isoformat()} 00:00:00'"
    end_day = min(start + dt.timedelta(days=window_days), as_of)
    e = f"TIMESTAMP '{end_day.isoformat()} 00:00:00'"
    cid, ts, amt = quote(columns.customer_id), quote(columns.timestamp), quote(columns.amount)
    closed = "TRUE" if start + dt.timedelta(days=window_days) <= as_of else "FALSE"
    return f"""
WITH t AS (
    SELECT CAST({cid} AS VARCHAR) AS customer_id, CAST({ts} AS TIMESTAMP) AS ts,
           CAST({amt} AS DOUBLE) AS amount
    FROM {quote(transactions)}
    WHERE CAST({ts} AS TIMESTAMP) >= {s} AND CAST({ts} AS TIMESTAMP) < {e}
), per AS (
    SELECT customer_id, count(*) AS orders, sum(amount) AS revenue, min(ts) AS first_ts
    FROM t GROUP BY customer_id
)
SELECT a.customer_id, a.arm, a.stratum,
       CASE WHEN per.orders > 0 THEN 1 ELSE 0 END AS reactivated,
       COALESCE(per.revenue, 0.0) AS revenue,
       COALESCE(per.orders, 0) AS orders,
       datediff('day', {s}, per.first_ts) AS days_to_reactivation,
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
    from upliftlab.sources import connect, register, require_columns

    con = connect()
    try:
        have = register(con, assignments, "ul_a_src")
        require_columns(have, ["customer_id", "arm"], "assignments")
        stratum = "CAST(stratum AS VARCHAR)" if "stratum" in have else "'all'"
        con.execute("CREATE TEMP VIEW ul_a AS SELECT CAST(customer_id AS VARCHAR) AS customer_id, "
                    f"CAST(arm AS VARCHAR) AS arm, {stratum} AS stratum FROM ul_a_src")
        tx_cols = register(con, transactions, "ul_t")
        require_columns(tx_cols, [columns.customer_id, columns.timestamp, columns.amount],
                        "transactions")
        return con.execute(outcomes_sql("ul_a", "ul_t", start=parse_date(start, "start"),
                                        as_of=parse_date(as_of, "as_of"), window_days=int(window_days),
                                        columns=columns) + " ORDER BY a.customer_id").df()
    finally:
        con.close()


@dataclass(frozen=True)
class WeeklyReport:
    path: Path
    result: Any  # AnalysisResult
    n_holdout: int
    window_closed: bool


def report_spec(spec_path: str, *, as_of: Any, out: str | None, store_path: str,
                transactions: str | None = None, analysis: str | None = None,
                alpha: float | None = None, correction: str = "holm",
                history: bool = True, model: Any = None, policy: Any = None,
                touches: str | None = None, touch_columns: Any = None) -> WeeklyReport:
    """The weekly report of the designed experiment `spec_path` as of `as_of` into `out`.

    Outcomes from the store's assignments and the transactions (`transactions`, default the
    spec's cohort.transactions) after the campaign start (cohort.as_of); covariates and tier
    from the spec's cohort; costs and design weights from the spec and the store. analysis
    None: sequential while outcome windows are open, fixed once all are closed. The week's
    report.json is stored in `weekly_results`; earlier weeks give the trend. `model` and
    `policy` (folders from `upliftlab model fit` / `upliftlab policy`) add the report's model
    and policy sections (see `upliftlab.report.write_report`); they are not stored. `touches`
    (default the spec's [touches] source) adds the funnel and the effects on the reached
    (`touch_columns`: a `TouchColumns`, default the spec's [touches.columns]).
    """
    from upliftlab.analysis import analyze
    from upliftlab.report import load_model_section, load_policy_section, write_report
    from upliftlab.spec import load_spec
    from upliftlab.store import open_store

    spec = load_spec(spec_path)
    if as_of is None:
        raise InputError("report SPEC needs --as-of DATE (YYYY-MM-DD)")
    report_day = parse_date(as_of, "--as-of")
    start = spec.cohort.as_of
    if report_day <= start:
        raise InputError(f"--as-of {report_day} is not after the campaign start {start} "
                         f"(cohort.as_of of {spec_path}): no outcomes yet")
    if out is None:
        raise InputError("report: missing --out DIR")
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
    tx_source = transactions or (spec.resolve(spec.cohort.transactions)
                                 if spec.cohort.transactions else None)
    if tx_source is None:
        raise InputError(f"{spec_path}: the cohort has no transactions table; give "
                         "--transactions FILE with the purchases after the campaign start")

    with open_store(store_path) as store:
        con = store.con
        if store.experiment(spec.name, spec.version) is None:
            raise StoreError(f"experiment '{spec.name}' v{spec.version} is not in {store_path} "
                             "(run `upliftlab assign` first)")
        with store.transaction():
            store.ensure_schema("report", REPORT_SCHEMA_VERSION, REPORT_DDL)
            rel, n_holdout, covariates, segments = outcome_relation(
                con, spec, tx_source, start, report_day)
            weights = design_weights(con, spec)
            past = _history(con, spec, report_day) if history else []
            costs = {a.name: (a.cost_per_contact, a.cost_per_conversion) for a in spec.arms}
            metrics = [OUTCOME_METRICS["reactivation"]] + [
                OUTCOME_METRICS[m] for m in spec.metrics.secondary]
            n_assigned = sum(n for a, n in store.arm_counts(spec.name, spec.version).items()
                             if a != "holdout")
            result = analyze(rel, arm="arm", control=spec.control_arm.name, metrics=metrics,
                             covariates=covariates, segments=segments, costs=costs,
                             analysis=analysis, alpha=spec.alpha if alpha is None else alpha,
                             correction=correction, planned_n=n_assigned or None,
                             experiment=spec.name, as_of=report_day, weights=weights,
                             revenue="revenue" if "revenue" in metrics else None)
            result.method["notes"].append(_window_note(spec, start, report_day, closed,
                                                       n_holdout))
            result.method["outcome_window_days"] = spec.outcome_window_days
            result.method["campaign_start"] = start.isoformat()
            result.method["windows_closed"] = closed
            if analysis == "fixed" and closed and past:
                result.method["notes"].append(
                    "All outcome windows are closed: this final report is fixed-horizon; the "
                    "weekly reports before it were sequential.")
            touch_result = spec_touches(con, spec, rel, touches, touch_columns, covariates,
                                        start, min(window_end, report_day),
                                        spec.alpha if alpha is None else alpha)
            path = write_report(result, out, history=past, model=model, policy=policy,
                                touches=touch_result)
            con.execute("INSERT OR REPLACE INTO weekly_results VALUES (?, ?, ?, ?, ?, ?)",
                        [spec.name, spec.version, report_day, _now(), analysis,
                         json.dumps(result.to_dict(), allow_nan=False)])
    return WeeklyReport(path, result, n_holdout, closed)


def outcome_relation(con: "duckdb.DuckDBPyConnection", spec: Any, tx_source: str,
                      start: dt.date, report_day: dt.date):
    """Outcomes joined with the cohort's covariates and tier, as a relation on `con`."""
    from upliftlab.assign import cohort_view
    from upliftlab.sources import register

    name, version = literal(spec.name), int(spec.version)
    con.execute(f"""CREATE OR REPLACE TEMP VIEW ul_assigned AS
        SELECT customer_id, arm, stratum FROM assignments
        WHERE experiment = {name} AND version = {version} AND arm <> 'holdout'""")
    n_holdout = con.execute(
        f"SELECT count(*) FROM assignments WHERE experiment = {name} AND version = {version} "
        "AND arm = 'holdout'").fetchone()[0]
    register(con, tx_source, "ul_tx")
    cols = spec.cohort.columns.column_map()
    con.execute("CREATE OR REPLACE TEMP VIEW ul_outcomes AS " + outcomes_sql(
        "ul_assigned", "ul_tx", start=start, as_of=report_day,
        window_days=spec.outcome_window_days, columns=cols))
    # covariates and tier come from the cohort as of the campaign start (pre-period only)
    cohort_cols = cohort_view(con, spec, "ul_cohort")
    covariates = [c for c in spec.covariates if c in cohort_cols]
    extra = [c for c in covariates + ["tier"] if c in cohort_cols]
    sel = ", ".join(f"c.{quote(c)}" for c in extra)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE ul_report AS
        SELECT o.*{', ' + sel if sel else ''} FROM ul_outcomes o
        LEFT JOIN ul_cohort c ON CAST(c.customer_id AS VARCHAR) = o.customer_id""")
    segments = (["tier"] if "tier" in cohort_cols else []) + ["stratum"]
    # a customer assigned earlier may have left the current cohort: no covariates, then
    missing = con.execute("SELECT count(*) FROM ul_report WHERE " + " OR ".join(
        f"{quote(c)} IS NULL" for c in extra)).fetchone()[0] if extra else 0
    if missing:
        covariates = []
        segments = ["stratum"]
    return con.table("ul_report"), n_holdout, covariates, segments


def spec_touches(con: "duckdb.DuckDBPyConnection", spec: Any, outcomes: Any,
                 source: str | None, columns: Any, covariates: list[str], start: dt.date,
                 cutoff: dt.date, alpha: float) -> Any:
    """The touch section of a spec's report (None without a touch log): the log `source`
    (default the spec's [touches] source) against every assigned customer, holdout included."""
    from upliftlab.sources import register
    from upliftlab.touches import TouchColumns, analyze_touches

    cfg = spec.touches
    if source is None and cfg is None:
        if columns is not None:
            raise InputError("touch_columns: given, but there is no touch log (give touches, "
                             "or a [touches] table in the spec)")
        return None
    source = source or spec.resolve(cfg.source)
    if columns is None:
        columns = cfg.columns.column_map() if cfg is not None else TouchColumns()
    have = register(con, source, "ul_touch_log")
    con.execute(f"""CREATE OR REPLACE TEMP VIEW ul_touch_assigned AS
        SELECT customer_id, arm FROM assignments
        WHERE experiment = {literal(spec.name)} AND version = {int(spec.version)}""")
    outcomes.create_view("ul_touch_outcomes", replace=True)
    return analyze_touches(
        con, log="ul_touch_log", log_columns=have, columns=columns,
        assigned="ul_touch_assigned", outcomes="ul_touch_outcomes", arm="arm",
        control=spec.control_arm.name, covariates=tuple(covariates),
        conversion_costs={a.name: a.cost_per_conversion for a in spec.arms},
        channels=tuple(cfg.channels) if cfg is not None and cfg.channels else None,
        start=start, cutoff=cutoff, alpha=alpha)


def design_weights(con: "duckdb.DuckDBPyConnection", spec: Any) -> dict[str, float]:
    """Expected share per arm: each batch's effective weights (capacity applied) × its size."""
    rows = con.execute(
        "SELECT arm, sum(effective_weight * n) FROM allocations JOIN (SELECT batch AS b, "
        "sum(assigned) AS n FROM allocations WHERE experiment = ? AND version = ? GROUP BY batch)"
        " ON batch = b WHERE experiment = ? AND version = ? GROUP BY arm",
        [spec.name, spec.version, spec.name, spec.version]).fetchall()
    weights = {a: float(w) for a, w in rows if a != "holdout"}
    if not weights or sum(weights.values()) <= 0:
        weights = {a.name: a.weight for a in spec.arms}
    return weights


def _history(con: "duckdb.DuckDBPyConnection", spec: Any, report_day: dt.date) -> list[dict]:
    rows = con.execute(
        "SELECT report_json FROM weekly_results WHERE experiment = ? AND version = ? AND "
        "as_of < ? ORDER BY as_of", [spec.name, spec.version, report_day]).fetchall()
    return [json.loads(r[0]) if isinstance(r[0], str) else r[0] for r in rows]


def stored_history(store_path: str, name: str, version: int = 1) -> list[dict]:
    """The stored weekly report.json dicts of an experiment, oldest first."""
    from upliftlab.store import open_store

    with open_store(store_path, read_only=True) as store:
        if not store.has_table("weekly_results"):
            return []
        rows = store.con.execute(
            "SELECT report_json FROM weekly_results WHERE experiment = ? AND version = ? "
            "ORDER BY as_of", [name, version]).fetchall()
    return [json.loads(r[0]) if isinstance(r[0], str) else r[0] for r in rows]


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


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
