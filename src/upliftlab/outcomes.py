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

REPORT_SCHEMA_VERSION = 2
REPORT_DDL = [
    # append-only: one row per experiment version, report date and revision, holding the week's
    # report.json (so the trend needs no re-computation of old weeks). A re-run of a week with
    # other numbers adds a revision beside the earlier ones; the trend reads the latest.
    """CREATE TABLE IF NOT EXISTS weekly_results (
        experiment VARCHAR NOT NULL,
        version INTEGER NOT NULL,
        as_of DATE NOT NULL,
        revision INTEGER NOT NULL,
        computed_at TIMESTAMP NOT NULL,
        analysis VARCHAR NOT NULL,
        fingerprint VARCHAR NOT NULL,
        report_json JSON NOT NULL,
        PRIMARY KEY (experiment, version, as_of, revision)
    )""",
]
# the latest revision of each week: what the trend and `stored_history` read
LATEST_WEEKS = """SELECT * FROM weekly_results w WHERE experiment = ? AND version = ?
    AND revision = (SELECT max(revision) FROM weekly_results v WHERE v.experiment = w.experiment
                    AND v.version = w.version AND v.as_of = w.as_of)"""
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
        frame = con.execute(outcomes_sql("ul_a", "ul_t", start=parse_date(start, "start"),
                                         as_of=parse_date(as_of, "as_of"),
                                         window_days=int(window_days), columns=columns)
                            + " ORDER BY a.customer_id").df()
    finally:
        con.close()
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


@dataclass(frozen=True)
class OutcomeSource:
    """Where a report's outcomes come from and what was found there (for the report's notes)."""

    location: str
    columns: ColumnMap
    origin: str  # "--transactions", "[outcomes] transactions" or "cohort.transactions"
    rows_from_start: int = 0
    last_purchase: dt.date | None = None
    outside: int = 0  # purchases from the start by customers not in the experiment
    ignored_columns: tuple[str, ...] = ()


def outcome_source(spec: Any, transactions: str | None = None,
                   columns: ColumnMap | None = None) -> OutcomeSource:
    """The outcome source of `spec`: --transactions, else [outcomes] transactions, else the
    cohort's transactions (stated in the report); columns from `columns`, else the spec."""
    if transactions:
        location, origin = transactions, "--transactions"
    elif spec.outcomes.transactions:
        location, origin = spec.resolve(spec.outcomes.transactions), "[outcomes] transactions"
    elif spec.cohort.transactions:
        location, origin = spec.resolve(spec.cohort.transactions), "cohort.transactions"
    else:
        raise InputError(f"{spec.path or spec.name}: no outcome source; set [outcomes] "
                         "transactions in the spec or give --transactions FILE with the purchases "
                         "after the campaign start")
    return OutcomeSource(location, columns or spec.outcome_columns(), origin)


def check_outcome_source(con: "duckdb.DuckDBPyConnection", source: OutcomeSource,
                         assigned: str, start: dt.date) -> OutcomeSource:
    """Refuse an outcome source that would give silent zeros; return it with what was found.

    `assigned` is a view of the experiment's customer_id (text). Refused (InputError): no
    purchase on or after `start`; ids of another type than the store's (integers against text
    ids); no purchase from `start` on by any customer of the experiment.
    """
    from upliftlab.sources import register, require_columns

    have = register(con, source.location, "ul_tx")
    cols = source.columns
    require_columns(have, [cols.customer_id, cols.timestamp, cols.amount],
                    f"outcome source {source.location} ({source.origin}; map the names with "
                    "--customer-col/--time-col/--amount-col or [outcomes.columns])")
    cid, ts = quote(cols.customer_id), quote(cols.timestamp)
    s = f"TIMESTAMP '{start.isoformat()} 00:00:00'"
    try:
        n, first, last, n_after, last_after = con.execute(
            f"SELECT count(*), min(CAST({ts} AS TIMESTAMP)), max(CAST({ts} AS TIMESTAMP)), "
            f"count(*) FILTER (WHERE CAST({ts} AS TIMESTAMP) >= {s}), "
            f"max(CAST({ts} AS TIMESTAMP)) FROM ul_tx").fetchone()
    except Exception as exc:  # noqa: BLE001 - a DuckDB conversion error names the bad value
        raise InputError(f"outcome source {source.location}: column {cols.timestamp!r} is not "
                         f"a timestamp ({str(exc).splitlines()[0]})") from None
    if not n_after:
        found = f"{n:,} rows from {first} to {last}" if n else "no rows"
        raise InputError(f"outcome source {source.location} ({source.origin}) has no purchases "
                         f"on or after the campaign start {start} (found {found}); give the "
                         "post-campaign transactions with [outcomes] transactions or "
                         "--transactions")
    id_type = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE ul_tx)").fetchall()
                   )[cols.customer_id]
    text_id = con.execute(f"SELECT customer_id FROM {quote(assigned)} WHERE NOT "
                          "regexp_full_match(customer_id, '-?[0-9]+') LIMIT 1").fetchone()
    if "INT" in id_type.upper() and text_id is not None:
        raise InputError(f"outcome source {source.location}: column {cols.customer_id!r} holds "
                         f"integers ({id_type}) but the experiment's customer ids are text "
                         f"(e.g. {text_id[0]!r}); map the right id column with --customer-col")
    matched, outside, example = con.execute(f"""
        SELECT count(*) FILTER (WHERE a.customer_id IS NOT NULL),
               count(*) FILTER (WHERE a.customer_id IS NULL),
               any_value(t.cid) FILTER (WHERE a.customer_id IS NULL)
        FROM (SELECT CAST({cid} AS VARCHAR) AS cid FROM ul_tx
              WHERE CAST({ts} AS TIMESTAMP) >= {s}) t
        LEFT JOIN {quote(assigned)} a ON a.customer_id = t.cid""").fetchone()
    if not matched:
        sample = con.execute(f"SELECT customer_id FROM {quote(assigned)} LIMIT 1").fetchone()
        raise InputError(f"outcome source {source.location}: none of its {outside:,} purchases "
                         f"from {start} on is by a customer of the experiment (ids such as "
                         f"{example!r} there, {sample[0] if sample else 'none'!r} in the store); "
                         "is it the right file and --customer-col?")
    ignored = tuple(c for c in have if c not in (cols.customer_id, cols.timestamp, cols.amount))
    return OutcomeSource(source.location, cols, source.origin, int(n_after),
                         last_after.date() if last_after is not None else None, int(outside),
                         ignored)


def report_spec(spec_path: str, *, as_of: Any, out: str | None, store_path: str,
                transactions: str | None = None, analysis: str | None = None,
                alpha: float | None = None, correction: str = "holm",
                history: bool = True, model: Any = None, policy: Any = None,
                columns: ColumnMap | None = None, touches: str | None = None,
                touch_columns: Any = None) -> WeeklyReport:
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

    # every check of the outcome source runs on a read-only store: a refusal changes nothing
    with open_store(store_path, read_only=True) as store:
        if store.experiment(spec.name, spec.version) is None:
            raise StoreError(f"experiment '{spec.name}' v{spec.version} is not in {store_path} "
                             "(run `upliftlab assign` first)")
        _assigned_view(store.con, spec)
        source = check_outcome_source(store.con, source, "ul_assigned", start)

    with open_store(store_path) as store:
        con = store.con
        with store.transaction():
            _ensure_report_schema(store)
            rel, n_holdout, covariates, segments = outcome_relation(
                con, spec, source, start, report_day)
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
                             revenue="revenue" if "revenue" in metrics else None,
                             currency=spec.currency)
            observed = min((report_day - start).days, spec.outcome_window_days)
            result.method.update(
                outcome_window_days=spec.outcome_window_days, campaign_start=start.isoformat(),
                windows_closed=closed, days_observed=observed, source="experiment",
                outcome_source=source.location)
            result.method["notes"][:0] = _source_notes(source, report_day)
            result.method["notes"].append(_window_note(spec, start, report_day, closed,
                                                       n_holdout))
            if not closed:
                result.method["projection"] = _projections(result, spec, observed)
                if result.cost_rows:
                    result.method["notes"].append(
                        "Projection of the cost per incremental reactivation to the full "
                        f"{spec.outcome_window_days} days: control's daily reactivation rate so "
                        "far (a constant hazard) is assumed for the remaining days in every arm, "
                        "and each arm's lift so far is kept as it is; conversion costs of "
                        "customers who would have come back anyway keep accruing, so the "
                        "projection is usually above the cost to date. A scenario, not an "
                        "interval; it needs at least 7 observed days and a bounded cost interval.")
            if analysis == "fixed" and closed and past:
                result.method["notes"].append(
                    "All outcome windows are closed: this final report is fixed-horizon; the "
                    "weekly reports before it were sequential.")
            touch_result = spec_touches(con, spec, rel, touches, touch_columns, covariates,
                                        start, min(window_end, report_day),
                                        spec.alpha if alpha is None else alpha)
            revision, earlier = _revision(con, spec, report_day, result)
            if earlier is not None:
                result.method["revision"] = revision
                result.method["notes"].append(
                    f"This week was reported before with other numbers (revision {revision - 1}, "
                    f"computed {earlier:%Y-%m-%d %H:%M} UTC); both are kept in the store and the "
                    f"trend uses this revision {revision}.")
            if revision is not None:
                body = result.to_dict()
                con.execute("INSERT INTO weekly_results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            [spec.name, spec.version, report_day, revision, _now(), analysis,
                             _fingerprint(body), json.dumps(body, allow_nan=False)])
            # the row is committed when the folder is complete, right before the swap: a run
            # killed in between leaves the old report and a stored row whose re-run of the same
            # week adds nothing (same numbers), never a report without its row
            path = write_report(result, out, history=past, model=model, policy=policy,
                                touches=touch_result, before_swap=store.commit)
    return WeeklyReport(path, result, n_holdout, closed, revision or _latest_revision(
        store_path, spec, report_day))


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


def _assigned_view(con: "duckdb.DuckDBPyConnection", spec: Any) -> None:
    con.execute(f"""CREATE OR REPLACE TEMP VIEW ul_assigned AS
        SELECT customer_id, arm, stratum FROM assignments
        WHERE experiment = {literal(spec.name)} AND version = {int(spec.version)}
          AND arm <> 'holdout'""")


def _ensure_report_schema(store: Any) -> None:
    """Create `weekly_results`, or move a version-1 table (one row per week, replaced on a
    re-run) to the append-only version 2, its rows becoming revision 1."""
    con = store.con
    old = store.has_table("schema_version") and con.execute(
        "SELECT version FROM schema_version WHERE module = 'report'").fetchone()
    if old and old[0] == 1 and store.has_table("weekly_results"):
        con.execute("ALTER TABLE weekly_results RENAME TO weekly_results_v1")
        con.execute(REPORT_DDL[0])
        con.execute("""INSERT INTO weekly_results SELECT experiment, version, as_of, 1,
            computed_at, analysis, md5(CAST(report_json AS VARCHAR)), report_json
            FROM weekly_results_v1""")
        con.execute("DROP TABLE weekly_results_v1")
    store.ensure_schema("report", REPORT_SCHEMA_VERSION, REPORT_DDL)


def _fingerprint(report: dict) -> str:
    """The week's numbers (arms, comparisons, costs), not when or how it was rendered."""
    import hashlib

    keep = {k: report.get(k) for k in ("arms", "comparisons", "cost", "srm")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()


def _revision(con: "duckdb.DuckDBPyConnection", spec: Any, day: dt.date, result: Any):
    """(revision to write or None when the latest has the same numbers, computed_at of the
    latest earlier revision or None when there is none)."""
    row = con.execute(
        "SELECT revision, fingerprint, computed_at FROM weekly_results WHERE experiment = ? AND "
        "version = ? AND as_of = ? ORDER BY revision DESC LIMIT 1",
        [spec.name, spec.version, day]).fetchone()
    if row is None:
        return 1, None
    if row[1] == _fingerprint(result.to_dict()):
        return None, None
    return row[0] + 1, row[2]


def _latest_revision(store_path: str, spec: Any, day: dt.date) -> int:
    from upliftlab.store import open_store

    with open_store(store_path, read_only=True) as store:
        return int(store.con.execute(
            "SELECT max(revision) FROM weekly_results WHERE experiment = ? AND version = ? AND "
            "as_of = ?", [spec.name, spec.version, day]).fetchone()[0] or 1)


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


def outcome_relation(con: "duckdb.DuckDBPyConnection", spec: Any, source: "OutcomeSource | str",
                     start: dt.date, report_day: dt.date):
    """Outcomes joined with the cohort's covariates and tier, as a relation on `con`."""
    from upliftlab.assign import cohort_view
    from upliftlab.sources import register

    name, version = literal(spec.name), int(spec.version)
    _assigned_view(con, spec)
    n_holdout = con.execute(
        f"SELECT count(*) FROM assignments WHERE experiment = {name} AND version = {version} "
        "AND arm = 'holdout'").fetchone()[0]
    if isinstance(source, str):
        source = OutcomeSource(source, spec.outcome_columns(), "--transactions")
    register(con, source.location, "ul_tx")
    con.execute("CREATE OR REPLACE TEMP VIEW ul_outcomes AS " + outcomes_sql(
        "ul_assigned", "ul_tx", start=start, as_of=report_day,
        window_days=spec.outcome_window_days, columns=source.columns))
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
    rows = con.execute(f"SELECT report_json FROM ({LATEST_WEEKS}) WHERE as_of < ? ORDER BY as_of",
                       [spec.name, spec.version, report_day]).fetchall()
    return [json.loads(r[0]) if isinstance(r[0], str) else r[0] for r in rows]


def stored_history(store_path: str, name: str, version: int = 1) -> list[dict]:
    """The stored weekly report.json dicts of an experiment (the latest revision of each
    week), oldest first."""
    from upliftlab.store import open_store

    with open_store(store_path, read_only=True) as store:
        if not store.has_table("weekly_results"):
            return []
        cols = [d[0] for d in store.con.execute("SELECT * FROM weekly_results LIMIT 0")
                .description]
        # a store of schema version 1 (one row per week) is read as it is, never migrated here
        query = LATEST_WEEKS if "revision" in cols else (
            "SELECT * FROM weekly_results WHERE experiment = ? AND version = ?")
        rows = store.con.execute(f"SELECT report_json FROM ({query}) ORDER BY as_of",
                                 [name, version]).fetchall()
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
