"""What `upliftlab risk fit|score` do: train on past snapshots and compare out of time with the
baselines; save with the uplift models' persistence; score the active customers at a date in
batches, with risk levels; the at-risk cohort of a spec.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from upliftlab.cohort import DEFAULT_DISCOUNT_COL, DEFAULT_DORMANT_AFTER
from upliftlab.errors import InputError
from upliftlab.risk.data import (EventColumns, active_features, check_horizon, check_snapshot,
                                 data_range, feature_columns, training_data)
from upliftlab.risk.levels import LEVELS, RiskLevels
from upliftlab.sources import ColumnMap, connect, describe, literal, parse_date, quote

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

KIND = "churn_risk"
SUMMARY_FEATURES = ("risk", "days_since_last", "orders_365d", "revenue_365d", "mean_gap_days",
                    "overdue_ratio", "trend")
_ids = itertools.count()


@dataclass(frozen=True)
class RiskFit:
    """A fitted risk model and its out-of-time evaluation against the baselines."""

    model: Any
    horizon: int
    dormant_after: int
    train_snapshots: tuple[date, ...]
    eval_snapshot: date
    levels: RiskLevels
    comparison: "pd.DataFrame"        # one row per scorer (model, overdue rule, BG/NBD[, truth])
    calibration: "pd.DataFrame"       # by decile of the model's risk
    lift: "pd.DataFrame"              # capture / lift curves, column `scorer`
    importance: "pd.DataFrame"        # feature, importance (share of gain)
    level_summary: list[dict[str, Any]]
    n_train: int
    holdout: "pd.DataFrame"           # the evaluation snapshot: customer_id, dormant, risk
    event_types: tuple[str, ...] | None = None
    bgnbd_params: tuple[float, ...] = field(default=())


def default_snapshots(eval_snapshot: date, horizon: int, count: int, every: int) -> list[date]:
    """`count` training snapshots `every` days apart, the last one `horizon` days before the
    evaluation snapshot (so its label window closes before the evaluation starts)."""
    last = eval_snapshot - timedelta(days=horizon)
    return [last - timedelta(days=every * k) for k in reversed(range(count))]


def fit_risk(transactions: Any, eval_snapshot: Any, *, horizon: int = 60,
             train_snapshots: list[Any] | None = None, n_snapshots: int = 4, every: int = 30,
             dormant_after: int = DEFAULT_DORMANT_AFTER, columns: ColumnMap = ColumnMap(),
             discount_col: str | None = DEFAULT_DISCOUNT_COL, events: Any = None,
             event_columns: EventColumns = EventColumns(),
             level_shares: tuple[float, float] = (0.1, 0.2),
             level_thresholds: tuple[float, float] | None = None, n_bootstrap: int = 200,
             seed: int = 0, model: Any = None, truth: "pd.DataFrame | None" = None) -> RiskFit:
    """Train `model` (default `RiskModel`) on the training snapshots, evaluate it out of time
    on `eval_snapshot` with the overdue rule and BG/NBD, fix the risk levels (thresholds, or
    the shares of the evaluation snapshot's customers). `truth` (customer_id,
    p_dormant_control at the evaluation snapshot, from the simulator) is added as a scorer."""
    import pandas as pd

    from upliftlab.risk.bgnbd import BetaGeoRisk
    from upliftlab.risk.evaluate import calibration_table, evaluate_scores, lift_curve
    from upliftlab.risk.model import OverdueRule, RiskModel

    horizon = check_horizon(horizon)
    ev_day = parse_date(eval_snapshot, "evaluation snapshot")
    days = ([parse_date(s, "snapshot") for s in train_snapshots] if train_snapshots
            else default_snapshots(ev_day, horizon, n_snapshots, every))
    late = [s for s in days if s + timedelta(days=horizon) > ev_day]
    if late:
        raise InputError(f"snapshot {late[0]}: its label window ({horizon} days) runs past the "
                         f"evaluation snapshot {ev_day}; training must end before it (out of time)")
    from upliftlab.progress import progress

    bar = progress(total=4, desc="risk fit: features", unit="step")
    try:
        types = _event_types(events, event_columns) if events is not None else None
        data = training_data(transactions, [*days, ev_day], horizon, dormant_after=dormant_after,
                             columns=columns, discount_col=discount_col, events=events,
                             event_columns=event_columns, types=types)
        is_eval = (pd.to_datetime(data["snapshot"]).dt.date == ev_day).to_numpy()
        train, test = data[~is_eval], data[is_eval].reset_index(drop=True)
        if train["dormant"].nunique() < 2 or test["dormant"].nunique() < 2:
            raise InputError("training or evaluation snapshot has only one label value (everyone "
                             "or no one went dormant): choose other snapshots or horizon")
        feats = feature_columns(data)
        bar.update()
        bar.set_description("risk fit: model")
        model = model if model is not None else RiskModel(random_state=seed)
        model.fit(train[feats], train["dormant"])
        risk = model.predict_risk(test[feats])
        bar.update()
        bar.set_description("risk fit: baselines")
        overdue = OverdueRule().fit(train).predict_risk(test)
        bg = BetaGeoRisk(horizon_days=horizon, random_state=seed).fit(train)
        y = test["dormant"].to_numpy()
        scorers = [("model", risk, True), ("overdue rule", overdue, False),
                   ("BG/NBD", bg.predict_risk(test), True)]
        if truth is not None:
            t = test[["customer_id"]].merge(truth, on="customer_id", how="left")
            scorers.append(("truth (simulator)", t["p_dormant_control"].to_numpy(), True))
        bar.update()
        bar.set_description("risk fit: evaluation")
        rows = [evaluate_scores(name, s, y, probability=prob, n_bootstrap=n_bootstrap,
                                seed=seed).row() for name, s, prob in scorers]
        lift = pd.concat([lift_curve(s, y).assign(scorer=name) for name, s, _ in scorers],
                         ignore_index=True)
        bar.update()
    finally:
        bar.close()
    levels = (RiskLevels(*level_thresholds) if level_thresholds is not None
              else RiskLevels.from_shares(risk, *level_shares))
    imp = pd.DataFrame({"feature": feats,
                        "importance": getattr(model, "feature_importances_", np.nan)})
    return RiskFit(model=model, horizon=horizon, dormant_after=dormant_after,
                   train_snapshots=tuple(sorted(days)), eval_snapshot=ev_day, levels=levels,
                   comparison=pd.DataFrame(rows), calibration=calibration_table(risk, y),
                   lift=lift, importance=imp.sort_values("importance", ascending=False,
                                                         ignore_index=True),
                   level_summary=level_summary(test.assign(risk=risk), levels), n_train=len(train),
                   holdout=test[["customer_id", "dormant"]].assign(risk=risk),
                   event_types=tuple(types) if types else None,
                   bgnbd_params=tuple(map(float, bg.params_)))


def _event_types(events: Any, event_columns: EventColumns) -> list[str]:
    """The event types of the events table: the model's engagement features, fixed at fit."""
    from upliftlab.risk.data import event_types
    from upliftlab.sources import register, require_columns

    con = connect()
    try:
        names = register(con, events, "upliftlab_risk_event_types")
        require_columns(names, [event_columns.customer_id, event_columns.timestamp,
                                event_columns.event_type], describe(events))
        types = event_types(con, "upliftlab_risk_event_types", event_columns)
    finally:
        con.close()
    if not types:
        raise InputError(f"{describe(events)}: no events")
    return types


def level_summary(frame: "pd.DataFrame", levels: RiskLevels) -> list[dict[str, Any]]:
    """Per level (high, medium, low, then total): customers, share, observed dormancy when the
    frame has labels, and mean features."""
    lab = levels.label(frame["risk"].to_numpy())
    feats = [f for f in (*SUMMARY_FEATURES, "dormant") if f in frame.columns]
    out = []
    for name, mask in [*((lv, lab == lv) for lv in LEVELS), ("total", np.ones(len(lab), bool))]:
        part = frame.loc[mask, feats]
        out.append({"level": name, "customers": int(mask.sum()),
                    "share": float(mask.mean()) if len(mask) else None,
                    **{f"mean_{f}": (float(part[f].mean()) if len(part) else None) for f in feats}})
    return out


# ------------------------------------------------------------------------------- persistence

def save_risk_model(fit: RiskFit, out: str | Path, *, columns: ColumnMap = ColumnMap(),
                    report: bool = True) -> Path:
    """Save the model (model.pkl + model.json, the uplift models' persistence and checks) and
    its risk report (report.json/md/html) into `out`, replaced whole."""
    from upliftlab.report import REPORT_FILES
    from upliftlab.risk.report import risk_report, write_report_files
    from upliftlab.uplift.persist import MODEL_FILES, save_fitted

    feats = list(fit.model.feature_names_in_)
    fields = {"kind": KIND, "horizon_days": fit.horizon, "dormant_after": fit.dormant_after,
              "features": [{"name": f, "kind": "numeric"} for f in feats],
              "event_types": list(fit.event_types) if fit.event_types else None,
              "levels": fit.levels.to_dict(), "eval_snapshot": fit.eval_snapshot.isoformat(),
              "train_snapshots": [d.isoformat() for d in fit.train_snapshots],
              "columns": {"customer_id": columns.customer_id, "timestamp": columns.timestamp,
                          "amount": columns.amount}}
    content = risk_report(fit)
    return save_fitted(fit.model, out, fields, owner="risk fit",
                       legacy=(*MODEL_FILES, *REPORT_FILES), evaluation=fit.comparison,
                       extra=(lambda folder: write_report_files(content, folder)) if report
                       else None)


def load_risk_model(path: str | Path) -> Any:
    """A risk model saved by `save_risk_model` (checksum checked before unpickling), with its
    metadata in ``metadata_``. InputError if the folder holds another kind of model."""
    from upliftlab.risk.model import RiskModel
    from upliftlab.uplift.persist import load_model, read_metadata

    if read_metadata(path).get("kind") != KIND:
        raise InputError(f"{path}: not a churn-risk model (written by `upliftlab risk fit`)")
    return load_model(path, trusted=True, expect=RiskModel)


# ------------------------------------------------------------------------------------ scoring

def model_inputs(model: Any, events: Any) -> tuple[int, list[str] | None]:
    """The `dormant_after` a risk model was fitted with and its event types (None without);
    an InputError when it needs engagement events and `events` is None."""
    meta = getattr(model, "metadata_", {}) or {}
    types = meta.get("event_types")
    if types and events is None:
        raise InputError("events: the risk model uses engagement features "
                         f"({', '.join(types)}); give the events table it was trained with")
    return int(meta.get("dormant_after", DEFAULT_DORMANT_AFTER)), types


def score_relation(con: "duckdb.DuckDBPyConnection", model: Any, transactions: Any, as_of: Any,
                   *, columns: ColumnMap = ColumnMap(),
                   discount_col: str | None = DEFAULT_DISCOUNT_COL, events: Any = None,
                   event_columns: EventColumns = EventColumns(), batch_size: int = 200_000,
                   progress_desc: str | None = "risk score") -> tuple[str, int]:
    """Score the active customers of `transactions` at `as_of` in batches; returns the name of a
    temp view (features + `risk`) and its number of rows. Memory: one batch of features at a time
    in Python plus 16 bytes (id, risk) per customer."""
    import pyarrow as pa

    from upliftlab.progress import progress
    from upliftlab.risk.model import check_features

    dormant_after, types = model_inputs(model, events)
    rel = active_features(con, transactions, as_of, dormant_after=dormant_after, columns=columns,
                          discount_col=discount_col, events=events, event_columns=event_columns,
                          types=types)
    k = next(_ids)
    feats_view, table = f"upliftlab_risk_scorefeat_{k}", f"upliftlab_risk_scored_{k}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(feats_view)} AS {rel.sql_query()}")
    n = con.execute(f"SELECT count(*) FROM {quote(feats_view)}").fetchall()[0][0]
    cols = con.sql(f"SELECT * FROM {quote(feats_view)} LIMIT 0").columns
    names = list(model.feature_names_in_)
    check_features(type("F", (), {"columns": cols})(), names, describe(transactions))
    # a relation streams its batches; con.execute(...) would materialise every row first
    reader = con.sql(f"SELECT customer_id, {', '.join(quote(c) for c in names)} FROM "
                     f"{quote(feats_view)}").to_arrow_reader(batch_size)
    scored = []
    for batch in progress(reader, total=-(-n // batch_size) if n else 0, desc=progress_desc,
                          unit="batch"):
        frame = batch.to_pandas()
        scored.append(pa.table({"customer_id": batch.column(0),
                                "risk": pa.array(model.predict_risk(frame), pa.float64())}))
    risk = pa.concat_tables(scored) if scored else pa.table(
        {"customer_id": pa.array([], reader.schema.field(0).type),
         "risk": pa.array([], pa.float64())})
    con.register(f"{table}_arrow", risk)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(table + '_risk')} AS SELECT * FROM "
                f"{quote(table + '_arrow')}")
    con.unregister(f"{table}_arrow")
    del scored, risk
    # a view, not a second copy of every feature: the join is paid once by whoever reads it,
    # and peak memory stays one feature table (the 10M-customer scoring target is < 2 GiB)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(table)} AS SELECT f.*, r.risk FROM "
                f"{quote(feats_view)} f JOIN {quote(table + '_risk')} r USING (customer_id)")
    return table, int(n)


def score_active(model: Any, transactions: Any, as_of: Any, out: str | Path, *,
                 levels: RiskLevels | None = None, level_shares: tuple[float, float] | None = None,
                 columns: ColumnMap = ColumnMap(), discount_col: str | None = DEFAULT_DISCOUNT_COL,
                 events: Any = None, event_columns: EventColumns = EventColumns(),
                 batch_size: int = 200_000, memory_limit: str | None = None,
                 ) -> tuple[RiskLevels, list[dict[str, Any]]]:
    """Write the active customers at `as_of` with their features, `risk` and `risk_level` to
    `out` (.parquet/.csv, atomically). Levels: `levels`, else `level_shares` of these customers,
    else the thresholds saved with the model. Returns the levels and their summary records."""
    from upliftlab._files import staged_file

    out = Path(out)
    fmt = {".parquet": "FORMAT parquet", ".pq": "FORMAT parquet", ".csv": "FORMAT csv, HEADER"}
    if out.suffix.lower() not in fmt:
        raise InputError(f"{out}: unknown output type (expected .parquet or .csv)")
    if not out.parent.is_dir():
        raise InputError(f"{out}: directory {out.parent} does not exist")
    con = connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        if memory_limit:
            con.execute(f"SET memory_limit = {literal(memory_limit)}")
        table, n = score_relation(con, model, transactions, as_of, columns=columns,
                                  discount_col=discount_col, events=events,
                                  event_columns=event_columns, batch_size=batch_size)
        if n == 0:
            raise InputError(f"{describe(transactions)}: no active customers at {as_of}")
        levels = _levels(con, table, model, levels, level_shares)
        with staged_file(out) as tmp:
            con.execute(f"COPY (SELECT *, {levels.sql('risk')} AS risk_level FROM {quote(table)} "
                        f"ORDER BY customer_id) TO {literal(str(tmp))} ({fmt[out.suffix.lower()]})")
        summary = _sql_level_summary(con, table, levels)
    finally:
        con.close()
    return levels, summary


def _levels(con: "duckdb.DuckDBPyConnection", table: str, model: Any, levels: RiskLevels | None,
            level_shares: tuple[float, float] | None) -> RiskLevels:
    if levels is not None:
        return levels
    if level_shares is not None:
        high, medium = level_shares
        if not (0 < high and 0 <= medium and high + medium < 1):
            raise InputError(f"level shares: need high > 0, medium >= 0 and high + medium < 1, "
                             f"got high={high}, medium={medium}")
        t_high, t_med = con.execute(f"SELECT quantile_cont(risk, {1 - high}), quantile_cont(risk, "
                                    f"{1 - high - medium}) FROM {quote(table)}").fetchall()[0]
        return RiskLevels(float(t_high), float(t_med))
    saved = (getattr(model, "metadata_", {}) or {}).get("levels")
    if not saved:
        raise InputError("levels: give thresholds or shares (the model has none saved)")
    return RiskLevels(saved["high"], saved["medium"])


def _sql_level_summary(con: "duckdb.DuckDBPyConnection", table: str, levels: RiskLevels,
                       ) -> list[dict[str, Any]]:
    cols = set(con.sql(f"SELECT * FROM {quote(table)} LIMIT 0").columns)
    feats = [f for f in SUMMARY_FEATURES if f in cols]
    means = ", ".join(f"avg(CAST({quote(f)} AS DOUBLE)) AS {quote('mean_' + f)}" for f in feats)
    cur = con.execute(f"SELECT {levels.sql('risk')} AS level, count(*) AS customers, {means} "
                      f"FROM {quote(table)} GROUP BY ALL UNION ALL SELECT 'total', count(*), "
                      f"{means} FROM {quote(table)}")
    keys = [d[0] for d in cur.description]
    found = {r[0]: dict(zip(keys, r)) for r in cur.fetchall()}
    total = found["total"]["customers"]
    out = []
    for name in (*LEVELS, "total"):
        rec = found.get(name, {"level": name, "customers": 0, **{f"mean_{f}": None for f in feats}})
        out.append({**rec, "customers": int(rec["customers"]),
                    "share": rec["customers"] / total if total else None})
    return out


def at_risk_view(con: "duckdb.DuckDBPyConnection", model_dir: str | Path, transactions: Any,
                 as_of: Any, view: str, *, min_level: str | None = "high",
                 share: float | None = None, columns: ColumnMap = ColumnMap(),
                 discount_col: str | None = DEFAULT_DISCOUNT_COL) -> None:
    """The at-risk cohort of a spec as the temp view `view`: the active customers at `as_of`
    whose risk level is at least `min_level` (levels saved with the model), or the top `share`
    by risk; ``tier`` is their risk level, so strata and reports read it as the dormant
    cohort's tier. Columns: the cohort's features, `risk`, `risk_level`."""
    model = load_risk_model(model_dir)
    table, n = score_relation(con, model, transactions, as_of, columns=columns,
                              discount_col=discount_col, progress_desc=None)
    names = list(con.sql(f"SELECT * FROM {quote(table)} LIMIT 0").columns)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(view)} AS "
                + at_risk_select(con, table, names, model, min_level=min_level, share=share))


def at_risk_select(con: Any, table: str, names: list[str], model: Any, *,
                   min_level: str | None = "high", share: float | None = None) -> str:
    """The query of the at-risk cohort over `table` (the scored active customers: `names`,
    `risk` among them), for DuckDB or Spark (`con`: a connection or a SparkEngine, which
    computes the share's cut): one definition for both engines."""
    levels = _levels(con, table, model, None, None)
    level = levels.sql("risk")
    if share is not None:
        if not 0 < share <= 1:
            raise InputError(f"share {share}: expected a share of the active customers in (0, 1]")
        cut = con.execute(at_risk_cut_sql(table, share)).fetchall()[0][0]
        where = f"risk >= {float(cut)!r}"
    else:
        if min_level not in LEVELS:
            raise InputError(f"min_level {min_level!r}: expected one of {', '.join(LEVELS)}")
        keep = LEVELS[:LEVELS.index(min_level) + 1]
        where = f"({level}) IN ({', '.join(literal(x) for x in keep)})"
    picks = ", ".join(quote(c) for c in names if c not in ("tier", "risk_level"))
    return (f"SELECT {picks}, {level} AS tier, {level} AS risk_level FROM {quote(table)} "
            f"WHERE {where}")


def at_risk_cut_sql(table: str, share: float) -> str:
    """The risk above which the top `share` of `table`'s customers lie (linear interpolation)."""
    return f"SELECT quantile_cont(risk, {1 - share!r}) FROM {quote(table)}"


def training_range_check(transactions: Any, snapshot: Any, horizon: int | None,
                         min_history_days: int, columns: ColumnMap = ColumnMap()) -> None:
    """Refuse a snapshot without enough history (or an unobserved label window) before work."""
    con = connect()
    try:
        first, last = data_range(con, transactions, columns)
    finally:
        con.close()
    check_snapshot(parse_date(snapshot, "snapshot"), first, last, horizon=horizon,
                   min_history_days=min_history_days, label=describe(transactions))


__all__ = ["KIND", "RiskFit", "at_risk_cut_sql", "at_risk_select", "at_risk_view",
           "default_snapshots", "fit_risk", "level_summary", "load_risk_model", "model_inputs",
           "save_risk_model", "score_active", "score_relation"]
