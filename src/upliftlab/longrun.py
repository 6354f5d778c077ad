"""The long run of one experiment: intention-to-treat outcomes 90/180/365 days after the campaign
start, conversion after reactivation, and lifecycle extension (survival by arm).

One SQL query (`longrun_sql`) turns assignments and transactions into one row per assigned
customer, inside DuckDB; two aggregates of it (`long_run_stats`) give the sufficient statistics
per arm, and only those reach Python: the report's engine (`analysis.analyze_aggregates`:
intervals, CUPED, Holm) compares the arms on the long-horizon columns, `stats.ratio` the
conversion after reactivation and `stats.survival` the time to come back and the time until
dormant again. Horizons the data does not cover yet are left out with a stated line; every
survival time is censored at the data's end.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from upliftlab.errors import InputError
from upliftlab.sources import ColumnMap, quote

if TYPE_CHECKING:
    import duckdb

    from upliftlab.stats.ratio import RatioStats
    from upliftlab.stats.sql import Aggregates
    from upliftlab.stats.survival import LifeTable

HORIZONS = (90, 180, 365)
# durations are rounded to whole days: at most 365 distinct times a year per arm, so the life
# tables (and the library's fits on them) stay small however many customers there are
DURATION_STEP = 1.0


@dataclass(frozen=True)
class Frame:
    """Where the long run of an experiment starts and ends (data's end: exclusive)."""

    start: dt.date
    end: dt.date
    window_days: int
    dormant_after: int
    horizons: tuple[int, ...]
    skipped: tuple[int, ...] = ()

    @property
    def follow_up(self) -> int:
        return (self.end - self.start).days


def frame(start: dt.date, end: dt.date, *, window_days: int, dormant_after: int = 90,
          horizons: Sequence[int] | None = None, strict: bool = False) -> Frame:
    """The horizons the data covers by `end`; with `strict` (horizons asked for explicitly) an
    uncovered horizon is an error, else it is skipped and said so."""
    if end <= start:
        raise InputError(f"no data after the campaign start {start} (the data ends {end})")
    asked = tuple(sorted(set(int(h) for h in (horizons or HORIZONS))))
    if any(h < 1 for h in asked):
        raise InputError(f"horizons must be positive days, got {', '.join(map(str, asked))}")
    covered = tuple(h for h in asked if start + dt.timedelta(days=h) <= end)
    skipped = tuple(h for h in asked if h not in covered)
    if strict and skipped:
        h = skipped[0]
        raise InputError(f"horizon {h} days needs data until {start + dt.timedelta(days=h)}, "
                         f"but the data ends {end} (the campaign started {start})")
    return Frame(start, end, int(window_days), int(dormant_after), covered, skipped)


def _ts(day: dt.date) -> str:
    return f"TIMESTAMP '{day.isoformat()} 00:00:00'"


def longrun_sql(assigned: str, transactions: str, fr: Frame,
                columns: ColumnMap = ColumnMap(), pre: str | None = None) -> str:
    """THE long-run query: one row per assigned customer (`assigned`: customer_id text, arm,
    tier). Columns: reactivated (a purchase in the outcome window), pre_revenue_365d (CUPED
    covariate), per covered horizon h revenue_h, orders_h, back_h (a purchase in [start,
    start+h)) and active_h (a purchase in the `dormant_after` days before start+h); t_back /
    back_event (days to the first purchase, censored at the end), t_dormant / dormant_event
    (for those back: days from the first purchase until `dormant_after` days pass without one,
    censored at the end; NULL for the others). `pre`: a relation with customer_id and
    pre_revenue_365d computed elsewhere (the programme reads the transactions once), else the
    365 days before the start are read from `transactions`."""
    cid, ts, amt = quote(columns.customer_id), quote(columns.timestamp), quote(columns.amount)
    s, e = _ts(fr.start), _ts(fr.end)
    first = _ts(fr.start - dt.timedelta(days=365)) if pre is None else s
    g = fr.dormant_after
    step = DURATION_STEP
    per_h, out_h = [], []
    for h in fr.horizons:
        per_h.append(f"sum(CASE WHEN day < {h} THEN amount ELSE 0 END) AS revenue_{h}, "
                     f"count(CASE WHEN day < {h} THEN 1 END) AS orders_{h}, "
                     f"max(CASE WHEN day >= {h - g} AND day < {h} THEN 1 ELSE 0 END) "
                     f"AS active_{h}, max(CASE WHEN day < {h} THEN 1 ELSE 0 END) AS back_{h}")
        out_h.append(f"COALESCE(p.revenue_{h}, 0.0) AS revenue_{h}, "
                     f"COALESCE(p.orders_{h}, 0) AS orders_{h}, "
                     f"COALESCE(p.active_{h}, 0) AS active_{h}, COALESCE(p.back_{h}, 0) AS back_{h}")
    follow = fr.follow_up
    pre_sql = (f"SELECT customer_id, sum(amount) AS pre_revenue_365d FROM t WHERE ts < {s} "
               "GROUP BY customer_id") if pre is None else \
        f"SELECT customer_id, pre_revenue_365d FROM {quote(pre)}"
    return f"""
WITH t AS (
    SELECT CAST(x.{cid} AS VARCHAR) AS customer_id, CAST(x.{ts} AS TIMESTAMP) AS ts,
           CAST(x.{amt} AS DOUBLE) AS amount
    FROM {quote(transactions)} x
    WHERE CAST(x.{ts} AS TIMESTAMP) >= {first} AND CAST(x.{ts} AS TIMESTAMP) < {e}
      AND CAST(x.{cid} AS VARCHAR) IN (SELECT customer_id FROM {quote(assigned)})
), post AS (
    SELECT customer_id, amount, epoch(ts - {s}) / 86400.0 AS day,
           epoch(COALESCE(lead(ts) OVER (PARTITION BY customer_id ORDER BY ts), {e}) - ts)
               / 86400.0 AS gap
    FROM t WHERE ts >= {s}
), p AS (
    SELECT customer_id, max(CASE WHEN day < {fr.window_days} THEN 1 ELSE 0 END) AS reactivated,
           {', '.join(per_h)},
           min(day) AS first_day, min(CASE WHEN gap >= {g} THEN day + {g} END) AS dormant_day
    FROM post GROUP BY customer_id
), pre AS ({pre_sql})
SELECT a.customer_id, a.arm, a.tier, COALESCE(p.reactivated, 0) AS reactivated,
       COALESCE(pre.pre_revenue_365d, 0.0) AS pre_revenue_365d,
       {', '.join(out_h)},
       round(COALESCE(p.first_day, {follow}) / {step}) * {step} AS t_back,
       CASE WHEN p.first_day IS NULL THEN 0 ELSE 1 END AS back_event,
       round(CASE WHEN p.first_day IS NULL THEN NULL
             ELSE COALESCE(p.dormant_day, {follow}) - p.first_day END / {step}) * {step}
           AS t_dormant,
       CASE WHEN p.first_day IS NULL THEN NULL WHEN p.dormant_day IS NULL THEN 0 ELSE 1 END
           AS dormant_event
FROM {quote(assigned)} a LEFT JOIN p ON p.customer_id = a.customer_id
LEFT JOIN pre ON pre.customer_id = a.customer_id"""


COVARIATE = "pre_revenue_365d"


def metrics_of(fr: Frame) -> list[str]:
    """The long run's ITT metrics: the window's reactivation, then per covered horizon its
    revenue, orders and active status (the report's order)."""
    out = ["reactivated"]
    for h in fr.horizons:
        out += [f"revenue_{h}", f"orders_{h}", f"active_{h}"]
    return out


@dataclass(frozen=True)
class LongRunStats:
    """The sufficient statistics of one experiment's long run, per arm: the ITT moments (for
    `analysis.analyze_aggregates`), the ratio sums per covered horizon (orders and revenue over
    the customers back by then) and the life tables of the two survival times."""

    moments: "Aggregates"
    ratios: dict[int, dict[str, tuple["RatioStats", "RatioStats"]]]
    back: dict[str, "LifeTable"]
    dormant: dict[str, "LifeTable"]


def _life_table_sql(duration: str, event: str) -> str:
    """Two histograms (duration -> customers): of the events and of the censored times."""
    d, e = quote(duration), quote(event)
    return ", ".join(f"histogram({d}) FILTER (WHERE {d} IS NOT NULL AND {e} = {v}) "
                     f"AS {quote(f'{duration}_{v}')}" for v in (1, 0))


def stats_sql(per_customer: str, fr: Frame) -> str:
    """Per arm of the per-customer table (`longrun_sql`): for each covered horizon h, n and the
    sums of the ratios orders_h and revenue_h over back_h; and the life tables of t_back and
    t_dormant as histograms (duration -> customers) of events and of censored times (a NULL
    duration is not at risk)."""
    parts = ["count(*) AS n"]
    for h in fr.horizons:
        x = quote(f"back_{h}")
        parts.append(f"sum({x}) AS {quote(f'sx_{h}')}, sum({x} * {x}) AS {quote(f'sxx_{h}')}")
        for y in (f"orders_{h}", f"revenue_{h}"):
            q = f"CAST({quote(y)} AS DOUBLE)"
            parts.append(f"sum({q}) AS {quote(f'sy_{y}')}, sum({q} * {q}) AS {quote(f'syy_{y}')}, "
                         f"sum({q} * {x}) AS {quote(f'sxy_{y}')}")
    parts += [_life_table_sql("t_back", "back_event"),
              _life_table_sql("t_dormant", "dormant_event")]
    return f"SELECT arm, {', '.join(parts)} FROM {quote(per_customer)} GROUP BY arm"


def long_run_stats(con: "duckdb.DuckDBPyConnection", per_customer: str, fr: Frame
                   ) -> LongRunStats:
    """Two aggregates of the per-customer table `per_customer` (from `longrun_sql`): the
    engine's moments per arm (`stats.sql.aggregate`) and `stats_sql`; a few rows each."""
    from upliftlab.stats.ratio import RatioStats
    from upliftlab.stats.sql import aggregate, needed_pairs
    from upliftlab.stats.survival import LifeTable

    metrics = metrics_of(fr)
    moments = aggregate(con, per_customer, "arm", metrics + [COVARIATE],
                        needed_pairs(metrics, [COVARIATE]), binary_check=metrics)
    cur = con.execute(stats_sql(per_customer, fr))
    names = [d[0] for d in cur.description]
    ratios: dict[int, dict[str, tuple[RatioStats, RatioStats]]] = {h: {} for h in fr.horizons}
    tables: dict[str, dict[str, LifeTable]] = {"t_back": {}, "t_dormant": {}}
    for row in cur.fetchall():
        r = dict(zip(names, row))
        arm, n = r["arm"], int(r["n"])
        if arm is None:
            continue

        def f(key: str) -> float:
            return float(r[key] or 0)

        for h in fr.horizons:
            ratios[h][arm] = tuple(
                RatioStats(n, f(f"sx_{h}"), f(f"sy_{y}"), f(f"sxx_{h}"), f(f"syy_{y}"),
                           f(f"sxy_{y}")) for y in (f"orders_{h}", f"revenue_{h}"))
        for duration in tables:
            rows = [(d, v, c) for v in (1, 0) for d, c in (r[f"{duration}_{v}"] or {}).items()]
            if rows:
                tables[duration][arm] = LifeTable.from_rows(rows)
    return LongRunStats(moments, ratios, tables["t_back"], tables["t_dormant"])


@dataclass(frozen=True)
class LongRunResult:
    """The long run of one experiment, JSON-ready through `to_dict`."""

    experiment: str
    frame: Frame
    analysis: dict[str, Any]
    ratios: list[dict[str, Any]]
    survival: dict[str, Any]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        from upliftlab.jsonsafe import json_safe

        fr = self.frame
        return json_safe({
            "experiment": self.experiment, "start": fr.start.isoformat(),
            "censored_at": fr.end.isoformat(), "follow_up_days": fr.follow_up,
            "horizons": list(fr.horizons), "horizons_not_covered": list(fr.skipped),
            "dormant_after_days": fr.dormant_after, "analysis": self.analysis,
            "ratios": self.ratios, "survival": self.survival, "notes": list(self.notes)})


def analyze_long_run(stats: LongRunStats, fr: Frame, *, experiment: str, control: str,
                     costs: Mapping[str, tuple[float, float]] | None = None,
                     alpha: float = 0.05, correction: str = "holm",
                     tau_days: float | None = None) -> LongRunResult:
    """Compare the arms of one experiment's long run from its sufficient statistics.

    ITT per horizon through `analysis.analyze_aggregates` (fixed horizon, CUPED on the
    pre-period revenue, Holm over arms × metrics); the cost block sets the costs (per contact,
    per conversion in the outcome window) against the revenue of the longest covered horizon
    (long-run ROI). Ratios: orders and revenue per customer back by each horizon (delta
    method). Survival: Kaplan–Meier per arm, log-rank and RMST difference vs control of the
    days to come back (τ = the follow-up) and of the days until dormant again (τ = `tau_days`,
    default half the follow-up, at most 180).
    """
    from upliftlab.analysis import analyze_aggregates

    arms = sorted(stats.moments.arms)
    if control not in arms:
        raise InputError(f"experiment {experiment!r}: no customers in the control arm "
                         f"{control!r} (arms: {', '.join(arms) or 'none'})")
    if len(arms) < 2:
        raise InputError(f"experiment {experiment!r}: only the control arm has customers")
    notes = [f"Intention-to-treat over every assigned customer (holdout left out); data "
             f"censored at {fr.end} ({fr.follow_up} days after the start {fr.start})."]
    if fr.skipped:
        notes.append("Not covered by the data yet: " + ", ".join(
            f"{h}-day horizon (needs data until {fr.start + dt.timedelta(days=h)})"
            for h in fr.skipped) + ".")
    analysis: dict[str, Any] = {}
    if fr.horizons:
        longest = f"revenue_{fr.horizons[-1]}"
        used_costs = {a: c for a, c in (costs or {}).items() if a in arms} or None
        result = analyze_aggregates(
            stats.moments, arm="arm", control=control, metrics=metrics_of(fr),
            covariates=[COVARIATE], costs=used_costs, analysis="fixed", alpha=alpha,
            correction=correction, experiment=experiment, as_of=fr.end, revenue=longest,
            where=f"the long run of {experiment}")
        analysis = result.to_dict()
        notes.append(f"Long-run ROI sets each arm's cost against its incremental revenue over "
                     f"{fr.horizons[-1]} days; active_h = a purchase in the {fr.dormant_after} "
                     "days before day h.")
    ratios = _ratios(stats, fr, control, arms, alpha)
    if ratios:
        notes.append("Orders and revenue per customer who came back compare groups that differ "
                     "by arm (a treatment also brings back customers who buy less), so their "
                     "difference is not a causal effect; the ITT rows above are.")
    tau_back = float(fr.follow_up)
    tau_dormant = float(tau_days if tau_days is not None else min(180, fr.follow_up // 2))
    survival = {
        "back": _survival(stats.back, control, arms, tau_back, alpha),
        "dormant_again": _survival(stats.dormant, control, arms, tau_dormant, alpha),
    }
    notes.append(f"Survival: Kaplan–Meier per arm (lifelines), censored at {fr.end}; log-rank "
                 f"test and RMST difference vs control (Greenwood-type variance), unadjusted "
                 f"for multiple arms. Days until dormant again: from the first purchase after "
                 f"the start until {fr.dormant_after} days pass without one, among those who "
                 "came back (again groups that differ by arm).")
    return LongRunResult(experiment, fr, analysis, ratios, survival, tuple(notes))


def _ratios(stats: LongRunStats, fr, control, arms, alpha) -> list[dict[str, Any]]:
    from upliftlab.stats.ratio import ratio_difference
    from upliftlab.stats.tests import fixed_inference

    rows = []
    for h in fr.horizons:
        ys = [f"orders_{h}", f"revenue_{h}"]
        by_arm = stats.ratios[h]
        for arm in arms:
            if arm == control:
                continue
            for i, y in enumerate(ys):
                t, c = by_arm[arm][i], by_arm[control][i]
                diff = ratio_difference(t, c)
                et, ec = t.estimate(), c.estimate()
                inf = fixed_inference(diff, alpha) if diff is not None else None
                rows.append({
                    "arm": arm, "control": control, "horizon": h,
                    "metric": f"{y.split('_')[0]}_per_customer_back_{h}",
                    "treatment": et.estimate if et else None,
                    "control_value": ec.estimate if ec else None,
                    "customers_back_treatment": int(t.sum_x),
                    "customers_back_control": int(c.sum_x),
                    "difference": diff.estimate if diff else None, "se": diff.se if diff else None,
                    "ci_low": inf.ci_low if inf else None, "ci_high": inf.ci_high if inf else None,
                    "p_value": inf.p_value if inf else None})
    return rows


def _survival(tables, control, arms, tau, alpha) -> dict[str, Any]:
    from upliftlab.stats.survival import kaplan_meier, logrank, rmst
    from upliftlab.stats.tests import Effect, fixed_inference

    tables = {a: tables[a] for a in arms if a in tables}
    curves, out_rows = {}, []
    for a, tbl in tables.items():
        km = kaplan_meier(tbl, alpha)
        curves[a] = {"times": list(km.times), "survival": list(km.survival),
                     "ci_low": list(km.ci_low), "ci_high": list(km.ci_high), "n": km.n,
                     "events": int(sum(tbl.events)), "censored": int(sum(tbl.censored))}
    if control in tables:
        rc = rmst(tables[control], tau)
        for a in arms:
            if a == control or a not in tables:
                continue
            ra = rmst(tables[a], tau)
            lr = logrank(tables[a], tables[control])
            eff = Effect(ra.estimate - rc.estimate, (ra.se ** 2 + rc.se ** 2) ** 0.5, None,
                         tables[a].n + tables[control].n)
            inf = fixed_inference(eff, alpha)
            out_rows.append({"arm": a, "control": control, "rmst": ra.estimate,
                             "rmst_control": rc.estimate, "difference": eff.estimate,
                             "se": eff.se, "ci_low": inf.ci_low, "ci_high": inf.ci_high,
                             "p_value": inf.p_value, "logrank_statistic": lr.statistic,
                             "logrank_p_value": lr.p_value})
    return {"tau_days": tau, "curves": curves, "comparisons": out_rows}


def long_run(assignments: Any, transactions: Any, *, start: Any, end: Any, window_days: int,
             control: str = "control", experiment: str = "experiment",
             costs: Mapping[str, Any] | None = None, horizons: Sequence[int] | None = None,
             dormant_after: int = 90, tau_days: float | None = None, alpha: float = 0.05,
             columns: ColumnMap = ColumnMap()) -> LongRunResult:
    """The long run of one experiment from pandas/files: `assignments` (customer_id, arm,
    optionally tier) and `transactions` (before and after the start). `end`: the data's end
    (exclusive); horizons given explicitly must be covered by it (else InputError)."""
    from upliftlab.sources import connect, parse_date, register, require_columns

    fr = frame(parse_date(start, "start"), parse_date(end, "end"), window_days=window_days,
               dormant_after=dormant_after, horizons=horizons, strict=horizons is not None)
    con = connect()
    try:
        have = register(con, assignments, "ul_lr_a_src")
        require_columns(have, ["customer_id", "arm"], "assignments")
        tier = "CAST(tier AS VARCHAR)" if "tier" in have else "'all'"
        con.execute("CREATE TEMP VIEW ul_lr_a AS SELECT CAST(customer_id AS VARCHAR) AS "
                    f"customer_id, CAST(arm AS VARCHAR) AS arm, {tier} AS tier FROM ul_lr_a_src "
                    "WHERE CAST(arm AS VARCHAR) <> 'holdout'")
        tx = register(con, transactions, "ul_lr_t")
        require_columns(tx, [columns.customer_id, columns.timestamp, columns.amount],
                        "transactions")
        con.execute("CREATE TEMP TABLE ul_lr AS " + longrun_sql("ul_lr_a", "ul_lr_t", fr, columns))
        stats = long_run_stats(con, "ul_lr", fr)
    finally:
        con.close()
    return analyze_long_run(stats, fr, experiment=experiment, control=control, costs=costs,
                            alpha=alpha, tau_days=tau_days)


__all__ = ["HORIZONS", "Frame", "LongRunResult", "LongRunStats", "analyze_long_run", "frame",
           "long_run", "long_run_stats", "longrun_sql", "metrics_of", "stats_sql"]
