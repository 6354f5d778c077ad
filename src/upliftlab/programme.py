"""The programme over every experiment in the store: each experiment's status, latest result and
long run, and the whole programme's effect against the global holdout, month by month.

Customers ever assigned by an experiment with a global holdout are split into the holdout
(never treated by any campaign) and everyone else; from each customer's first campaign start,
cumulative reactivations (a purchase) and revenue are compared at every month end. Effects are
totals over the treated: n_rest × (mean_rest − mean_holdout), with Wald / Welch intervals from
SQL sums. The population's structure at each month end (active, at risk, dormant tiers, lost)
is read from the days since each customer's last purchase ('at risk' is recency, not the
churn-risk model). The transactions are read twice in all (before and after the campaigns),
for every experiment at once; everything after works on those two small tables in SQL.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from upliftlab.errors import InputError
from upliftlab.sources import ColumnMap, literal, quote
from upliftlab.rules import HOLDOUT_ARM

if TYPE_CHECKING:
    import duckdb

# status by days since the last purchase at a month end: active below AT_RISK_AFTER, at risk
# until the spec's dormancy threshold, then the spec's dormant tiers, lost from LOST_AFTER on
AT_RISK_AFTER = 60
LOST_AFTER = 730
STATUSES_HEAD = ("active", "at_risk")
STATUSES_TAIL = ("lost",)
# the customer-id types whose values match a text id exactly when that text is their spelling
_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT",
                  "UINTEGER")


@dataclass(frozen=True)
class Experiment:
    """What the programme needs of one experiment, read from its stored spec."""

    name: str
    version: int
    start: dt.date
    window_days: int
    control: str
    costs: dict[str, tuple[float, float]]
    holdout_share: float
    dormant_after: int
    tiers: tuple[tuple[str, int | None], ...]
    columns: ColumnMap = ColumnMap()

    @classmethod
    def from_spec(cls, name: str, version: int, spec: dict[str, Any]) -> "Experiment":
        cohort = spec.get("cohort") or {}
        arms = spec.get("arms") or []
        tiers = []
        for part in str(cohort.get("tiers", "short=180,mid=365,long")).split(","):
            nm, _, bound = part.strip().partition("=")
            tiers.append((nm.strip(), int(bound) if bound.strip() else None))
        cols = cohort.get("columns") or {}
        return cls(
            name, int(version), dt.date.fromisoformat(str(cohort["as_of"])),
            int(spec.get("outcome_window_days", 60)),
            next(a["name"] for a in arms if a.get("control")),
            {a["name"]: (float(a.get("cost_per_contact", 0.0)),
                         float(a.get("cost_per_conversion", 0.0))) for a in arms},
            float((spec.get("holdout") or {}).get("share", 0.0)),
            int(cohort.get("dormant_after", 90)), tuple(tiers),
            ColumnMap(cols.get("customer_id", "customer_id"), cols.get("timestamp", "ts"),
                      cols.get("amount", "amount")))


def month_ends(start: dt.date, as_of: dt.date) -> list[dt.date]:
    """The first day of every month after `start` up to `as_of`, and `as_of` itself (each a
    boundary: data before it counts)."""
    out, d = [], dt.date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    while d < as_of:
        out.append(d)
        d = dt.date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return out + [as_of]


def _ts(day: dt.date) -> str:
    return f"TIMESTAMP '{day.isoformat()} 00:00:00'"


def _bucket_sql(ts: str, ends: Sequence[dt.date]) -> str:
    """Index of the first month end after `ts` (0-based)."""
    whens = " ".join(f"WHEN {ts} < {_ts(e)} THEN {i}" for i, e in enumerate(ends))
    return f"CASE {whens} END"


def eligible_sql(assignments: str, experiments: Sequence[Experiment],
                 programme: Sequence[Experiment]) -> str:
    """One row per customer ever assigned by `experiments`: `read_from`, their first start
    (their purchases are read from there on); and for the customers of the holdout view (the
    experiments `programme`, those with a global holdout) `first_start`, the holdout flag and
    the experiment, arm and tier of their first campaign among them (NULL for the others)."""
    in_view = {e.name for e in programme}
    starts = ", ".join(f"({literal(e.name)}, DATE '{e.start.isoformat()}', "
                       f"{str(e.name in in_view).lower()})" for e in experiments)
    f = "FILTER (WHERE in_view)"
    return f"""
SELECT customer_id, min(start) AS read_from, min(start) {f} AS first_start,
       bool_or(arm = '{HOLDOUT_ARM}') {f} AS holdout, arg_min(experiment, start) {f} AS experiment,
       arg_min(arm, start) {f} AS arm, arg_min(tier, start) {f} AS tier
FROM ({assignments}) a JOIN (VALUES {starts}) s(experiment, start, in_view) USING (experiment)
GROUP BY customer_id"""


def _join_key(con: "duckdb.DuckDBPyConnection", transactions: str, column: str) -> str | None:
    """BIGINT when the transactions' customer id is an integer column: the customers' text ids
    are then matched as integers (a text id matches only in its canonical spelling, as the text
    comparison would), which spares casting every transaction's id to text."""
    kind = con.execute(f"SELECT typeof({quote(column)}) FROM {quote(transactions)} "
                       "LIMIT 1").fetchall()
    return "BIGINT" if kind and kind[0][0].upper() in _INTEGER_TYPES else None


def extract_sql(eligible: str, transactions: str, end: dt.date,
                columns: ColumnMap = ColumnMap(), key: str | None = None,
                starts: tuple[dt.date, dt.date] | None = None) -> dict[str, str]:
    """The two reads of the transactions, over the customers of `eligible_sql`: `pre`, per
    customer the revenue in the 365 days before `read_from` (the CUPED covariate of the long
    runs) and their last purchase before `first_start` (the holdout view's status); `post`,
    every purchase from `read_from` up to `end` (customer_id, ts, amount, `prog`: from
    `first_start` on, and the customer's `holdout` flag). Everything after reads these two
    small tables. `key`: the integer type to join on (`_join_key`), else the ids are compared
    as text; `starts`: the first and last
    experiment start, so that each read drops the purchases it cannot use before the join
    (the post-campaign read then probes a few percent of the transactions)."""
    cid, ts, amt = quote(columns.customer_id), quote(columns.timestamp), quote(columns.amount)
    # each customer's period bounds as timestamps, computed once per customer rather than
    # once per purchase
    bounds = ("CAST(read_from AS TIMESTAMP) AS read_ts, CAST(first_start AS TIMESTAMP) AS first_ts, "
              "CAST(read_from AS TIMESTAMP) - INTERVAL 365 DAY AS lo_ts")
    if key:
        ek = f"TRY_CAST(customer_id AS {key})"
        keyed = (f"(SELECT *, CASE WHEN CAST({ek} AS VARCHAR) = customer_id THEN {ek} END AS k__, "
                 f"{bounds} FROM {quote(eligible)})")
        on = f"e.k__ = x.{cid}"
    else:
        keyed = f"(SELECT *, {bounds} FROM {quote(eligible)})"
        on = f"e.customer_id = CAST(x.{cid} AS VARCHAR)"
    x_ts = f"CAST(x.{ts} AS TIMESTAMP)"

    def src(where: str, payload: str = "e.customer_id") -> str:
        return f"""SELECT {payload}, e.read_ts, e.first_ts, e.lo_ts,
           {x_ts} AS ts, CAST(x.{amt} AS DOUBLE) AS amount
    FROM (SELECT * FROM {quote(transactions)} x WHERE {x_ts} < {_ts(end)}{where}) x
    JOIN {keyed} e ON {on}"""

    first, last = starts if starts else (None, None)
    pre_where = f" AND {x_ts} < {_ts(last)}" if last else ""
    pre_aggs = """COALESCE(sum(amount) FILTER (WHERE ts >= lo_ts AND ts < read_ts),
                0.0) AS pre_revenue_365d,
       max(ts) FILTER (WHERE ts < first_ts) AS last_pre"""
    # the periods are the aggregates' filters alone (no join condition on the time): a customer
    # without a purchase in them gets 0 and NULL, as a missing row would be read
    if key:
        # grouped by the integer id, the text id joined back to the 10M-odd groups after: the
        # 200M purchases then carry no text column through the join and the aggregate
        pre = f"""SELECT e.customer_id, g.pre_revenue_365d, g.last_pre
FROM (SELECT k__, {pre_aggs} FROM ({src(pre_where, "e.k__")}) GROUP BY k__) g
JOIN {keyed} e USING (k__)"""
    else:
        pre = f"""SELECT customer_id, {pre_aggs}
FROM ({src(pre_where)}) GROUP BY customer_id"""
    post = f"""SELECT customer_id, ts, amount, COALESCE(ts >= first_ts, false) AS prog, holdout
FROM ({src(f" AND {x_ts} >= {_ts(first)}" if first else "", "e.customer_id, e.holdout")})
WHERE ts >= read_ts"""
    return {"pre": pre, "post": post}


def programme_sql(eligible: str, pre: str, post: str, ends: Sequence[dt.date],
                  months: str = "ul_prog_months") -> dict[str, str]:
    """The programme's queries over `eligible` (the customers of `eligible_sql` in the holdout
    view) and the tables of `extract_sql`, in order:

    - months, to be materialised as `months`: each customer's purchase months since their
      first start (month index k), with the month's revenue r, last purchase and the
      customer's holdout flag; over each customer's months in order, the cumulative revenue,
      whether it is their first month and the index of their next one (len(ends): none);
    - flow, grouped by holdout/rest and by arm, tier and channel (GROUPING SETS), per month:
      n, the customers whose first purchase since their first start is in that month (month
      len(ends): never); Σ revenue and Σ (cum² − previous cum²) of each customer's cumulative
      revenue (so that Σ R² at every month end follows by a cumulative sum);
    - status: counts by (day of the last purchase, months in which it is the last one),
      each customer from the first month end after their first start.
    """
    k = len(ends)
    groups = ("GROUPING SETS ((g, kk), (g, experiment, arm, kk), (g, tier, kk), "
              "(g, channel, kk))")
    # one grouping and one window over the purchases serve both aggregates
    months_sql = f"""SELECT customer_id, k, r, last_ts, holdout, sum(r) OVER w AS cum,
       row_number() OVER w = 1 AS first, lead(k, 1, {k}) OVER w AS k_next
FROM (SELECT customer_id, {_bucket_sql('ts', ends)} AS k, sum(amount) AS r, max(ts) AS last_ts,
             any_value(holdout) AS holdout
      FROM {quote(post)} WHERE prog GROUP BY ALL)
WINDOW w AS (PARTITION BY customer_id ORDER BY k)"""
    labels = ("CASE WHEN e.holdout THEN 'holdout' ELSE 'rest' END AS g, e.experiment, e.arm, "
              "e.tier, e.channel")
    dims = "g, experiment, arm, tier, channel, GROUPING(experiment, arm, tier, channel) AS gid"
    # back and revenue in one pass: each customer's purchase months (their first one marked)
    # and one row for each customer who never came back (month index len(ends))
    flow = f"""SELECT {dims}, kk AS k, count(*) FILTER (WHERE first IS NOT FALSE) AS n,
       sum(r) AS r, sum(cum * cum - (cum - r) * (cum - r)) AS dsq
FROM (SELECT {labels}, COALESCE(c.k, {k}) AS kk, c.r, c.cum, c.first FROM {quote(eligible)} e
      LEFT JOIN {quote(months)} c USING (customer_id))
GROUP BY {groups}"""
    # each customer's last purchase before their first start holds from the month of that
    # start until their first purchase month (no purchase month precedes it), then each
    # purchase month's last purchase until the next purchase month
    status = f"""SELECT CASE WHEN holdout THEN 'holdout' ELSE 'rest' END AS g, last_day, k, k_next,
       count(*) AS n
FROM (SELECT e.holdout, CAST(pre.last_pre AS DATE) AS last_day,
             COALESCE({_bucket_sql('CAST(e.first_start AS TIMESTAMP)', ends)}, {k}) AS k,
             COALESCE(f.k, {k}) AS k_next
      FROM {quote(eligible)} e LEFT JOIN {quote(pre)} pre USING (customer_id)
      LEFT JOIN (SELECT customer_id, k FROM {quote(months)} WHERE first) f USING (customer_id)
      UNION ALL
      SELECT holdout, CAST(last_ts AS DATE), k, k_next FROM {quote(months)})
WHERE k_next > k
GROUP BY ALL"""
    return {"months": months_sql, "flow": flow, "status": status}


@dataclass(frozen=True)
class GroupSeries:
    """Cumulative sums of one group at every month end: n, reactivated (0/1) and revenue."""

    n: int
    back: tuple[float, ...]
    revenue: tuple[float, ...]
    revenue_sq: tuple[float, ...]


def _series(back_rows, revenue_rows, n_ends) -> dict[tuple, GroupSeries]:
    """GroupSeries per (group, breakdown, value) from the back and revenue aggregates."""
    import numpy as np

    n: dict[tuple, int] = {}
    first = {}
    for *kk, k, cnt in back_rows:
        kk = tuple(kk)
        n[kk] = n.get(kk, 0) + int(cnt)
        first.setdefault(kk, np.zeros(n_ends + 1))[int(k)] += cnt
    r, dsq = {}, {}
    for *kk, k, rr, dd in revenue_rows:
        kk = tuple(kk)
        r.setdefault(kk, np.zeros(n_ends))[int(k)] += rr
        dsq.setdefault(kk, np.zeros(n_ends))[int(k)] += dd
    out = {}
    for kk, total in n.items():
        zero = np.zeros(n_ends)
        out[kk] = GroupSeries(total, tuple(np.cumsum(first[kk][:n_ends])),
                              tuple(np.cumsum(r.get(kk, zero))), tuple(np.cumsum(dsq.get(kk, zero))))
    return out


def _effect(rest: GroupSeries, hold: GroupSeries, i: int, alpha: float) -> dict[str, Any]:
    from upliftlab.stats.sufficient import SampleStats
    from upliftlab.stats.tests import fixed_inference, proportions, welch

    n = rest.n
    pr = SampleStats(rest.n, rest.back[i], rest.back[i])
    ph = SampleStats(hold.n, hold.back[i], hold.back[i])
    rr = SampleStats(rest.n, rest.revenue[i], rest.revenue_sq[i])
    rh = SampleStats(hold.n, hold.revenue[i], hold.revenue_sq[i])
    eb, er = proportions(pr, ph), welch(rr, rh)
    ib, ir = fixed_inference(eb, alpha), fixed_inference(er, alpha)
    return {"customers": n, "customers_holdout": hold.n,
            "reactivated_rate": pr.mean, "reactivated_rate_holdout": ph.mean,
            "incremental_reactivations": n * eb.estimate,
            "incremental_reactivations_ci_low": n * ib.ci_low,
            "incremental_reactivations_ci_high": n * ib.ci_high,
            "incremental_reactivations_se": n * eb.se,
            "revenue_per_customer": rr.mean, "revenue_per_customer_holdout": rh.mean,
            "incremental_revenue": n * er.estimate,
            "incremental_revenue_ci_low": n * ir.ci_low,
            "incremental_revenue_ci_high": n * ir.ci_high,
            "p_value_reactivations": ib.p_value, "p_value_revenue": ir.p_value}


def _statuses(exp: Experiment) -> list[tuple[str, int]]:
    """(status, lower bound in days) in order: active, at risk, the spec's tiers, lost."""
    out = [("active", 0), ("at_risk", AT_RISK_AFTER), (exp.tiers[0][0], exp.dormant_after)]
    for (_, upper), (name, _) in zip(exp.tiers[:-1], exp.tiers[1:]):
        out.append((name, int(upper)))
    out.append(("lost", LOST_AFTER))
    return [(n, lo) for n, lo in out if lo <= LOST_AFTER]


def _structure(rows, ends, statuses) -> dict[str, list[dict[str, Any]]]:
    """Shares per status at every month end, from (group, last purchase day, first and
    one-past-last month index, count) rows."""
    import numpy as np

    bounds = np.array([lo for _, lo in statuses])
    names = [n for n, _ in statuses]
    end_days = np.array([e.toordinal() for e in ends])
    out = {}
    for g in ("holdout", "rest"):
        sel = [r for r in rows if r[0] == g]
        counts = np.zeros((len(ends), len(names) + 1))
        if sel:
            last = np.array([r[1].toordinal() if r[1] is not None else -1 for r in sel])
            k0 = np.array([int(r[2]) for r in sel])
            k1 = np.array([int(r[3]) for r in sel])
            n = np.array([float(r[4]) for r in sel])
            for j in range(len(ends)):  # a dozen or two month ends: vectorised over rows
                on = (k0 <= j) & (j < k1)
                days = end_days[j] - last[on]
                col = np.where(last[on] < 0, len(names),
                               np.searchsorted(bounds, days, side="right") - 1)
                counts[j] += np.bincount(col, weights=n[on], minlength=len(names) + 1)
        tot = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, tot, out=np.zeros_like(counts), where=tot > 0)
        out[g] = [{"month_end": ends[j].isoformat(), "customers": int(tot[j, 0]),
                   **{nm: float(share[j, i]) for i, nm in enumerate(names)},
                   "never_bought": float(share[j, -1])} for j in range(len(ends))]
    return out


@dataclass(frozen=True)
class ProgrammeResult:
    """report.json of `upliftlab programme` (`to_dict`)."""

    as_of: dt.date
    data_end: dt.date
    experiments: list[dict[str, Any]]
    monthly: list[dict[str, Any]]
    breakdown: list[dict[str, Any]]
    structure: dict[str, list[dict[str, Any]]]
    statuses: list[str]
    cost: dict[str, Any]
    long_run: list[dict[str, Any]]
    notes: tuple[str, ...] = field(default_factory=tuple)
    # how each status is read: days since the last purchase at the month end, [from, to)
    status_days: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        from upliftlab.jsonsafe import json_safe

        return json_safe({"kind": "programme", "as_of": self.as_of.isoformat(),
                          "data_end": self.data_end.isoformat(),
                          "experiments": self.experiments, "monthly": self.monthly,
                          "breakdown": self.breakdown, "structure": self.structure,
                          "statuses": self.statuses, "cost": self.cost,
                          "long_run": self.long_run, "notes": list(self.notes),
                          "status_days": list(self.status_days)})


def _cost_by_month(con, assigned: str, experiments: Sequence[Experiment],
                   ends: Sequence[dt.date], data_end: dt.date) -> list[float]:
    """Cumulative cost at every month end: contacts when an experiment starts, a conversion's
    cost in the month of the customer's first purchase in that experiment's outcome window
    (the cost is incurred, not estimated: no interval of its own). One query over every
    experiment: customers per (experiment, arm, month of that first purchase)."""
    by_name = {e.name: e for e in experiments}
    windows = ", ".join(
        f"({literal(e.name)}, {_ts(e.start)}, "
        f"{_ts(min(e.start + dt.timedelta(days=e.window_days), data_end))})"
        for e in experiments)
    rows = con.execute(f"""
        WITH w(experiment, w0, w1) AS (VALUES {windows}),
        f AS (SELECT a.experiment, a.customer_id, min(p.ts) AS ts
              FROM {quote(assigned)} a JOIN w USING (experiment)
              JOIN ul_prog_post p ON p.customer_id = a.customer_id AND p.ts >= w.w0
                                     AND p.ts < w.w1
              GROUP BY ALL)
        SELECT a.experiment, a.arm, {_bucket_sql('f.ts', ends)} AS k, count(*) AS n,
               count(f.customer_id) AS conv
        FROM {quote(assigned)} a JOIN w USING (experiment)
        LEFT JOIN f USING (experiment, customer_id)
        GROUP BY ALL""").fetchall()
    cost = [0.0] * len(ends)
    for name, arm, k, n, conv in rows:
        e = by_name[name]
        first_k = next((j for j, end in enumerate(ends) if e.start < end), None)
        if first_k is None:
            continue
        c0, c1 = e.costs.get(arm, (0.0, 0.0))
        for j in range(first_k, len(ends)):
            cost[j] += c0 * n
        if k is not None:
            for j in range(int(k), len(ends)):
                cost[j] += c1 * conv
    return cost


def _experiment_rows(experiments: Sequence[Experiment], counts: dict[str, dict[str, int]],
                     latest: dict[tuple[str, int], dict[str, Any]], as_of: dt.date
                     ) -> list[dict[str, Any]]:
    """Each experiment's status as of `as_of`, its customers and its latest stored result."""
    rows = []
    for e in experiments:
        n = counts.get(e.name, {})
        w_end = e.start + dt.timedelta(days=e.window_days)
        status = ("not started" if as_of <= e.start else
                  "outcome window closed" if w_end <= as_of else
                  f"running (day {(as_of - e.start).days} of {e.window_days})")
        rep = latest.get((e.name, e.version))
        primary = []
        if rep:
            pm = rep.get("method", {}).get("primary_metric")
            primary = [{k: c.get(k) for k in ("arm", "metric", "estimate", "ci_low", "ci_high",
                                               "p_value_adjusted", "significant")}
                       for c in rep.get("comparisons", []) if c.get("metric") == pm]
        rows.append({"name": e.name, "version": e.version, "start": e.start.isoformat(),
                     "window_days": e.window_days, "status": status,
                     "holdout": int(n.get(HOLDOUT_ARM, 0)),
                     "customers": int(sum(v for k, v in n.items() if k != HOLDOUT_ARM)),
                     "arms": {k: int(v) for k, v in sorted(n.items())},
                     "latest_report": rep.get("as_of") if rep else None,
                     "latest_result": primary})
    return rows


def _long_runs(con, assigned: str, experiments: Sequence[Experiment], data_end: dt.date,
               alpha: float) -> list[dict[str, Any]]:
    """The long run of every experiment that has started, from the assignments with their
    CUPED covariate (`assigned`, sorted by experiment) and the purchases of the treated, cut
    once and sorted likewise: each experiment's query (`longrun.longrun_sql`) reads only its
    own blocks of those and turns into sufficient statistics per arm in SQL
    (`longrun.long_run_stats`); the statistics follow from those."""
    from concurrent.futures import ThreadPoolExecutor

    from upliftlab.longrun import analyze_long_run, frame, long_run_stats, longrun_sql

    started = [e for e in experiments if e.start < data_end]
    if not started:
        return []
    names = ", ".join(literal(e.name) for e in started)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE ul_prog_lr_t AS
        SELECT a.experiment, p.customer_id, p.ts, p.amount
        FROM ul_prog_post p JOIN {quote(assigned)} a USING (customer_id)
        WHERE a.arm <> '{HOLDOUT_ARM}' AND a.experiment IN ({names}) ORDER BY a.experiment""")
    # each experiment's statistics (Python: the engine, lifelines) are worked out in a second
    # thread while DuckDB computes the next experiment's sufficient statistics
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = []
        for e in started:
            fr = frame(e.start, data_end, window_days=e.window_days,
                       dormant_after=e.dormant_after)
            con.execute(f"""CREATE OR REPLACE TEMP VIEW ul_prog_assigned AS
                SELECT customer_id, arm, tier, pre_revenue_365d FROM {quote(assigned)}
                WHERE experiment = {literal(e.name)} AND arm <> '{HOLDOUT_ARM}'""")
            con.execute(f"""CREATE OR REPLACE TEMP VIEW ul_prog_lr_tx AS
                SELECT customer_id, ts, amount FROM ul_prog_lr_t
                WHERE experiment = {literal(e.name)}""")
            con.execute("CREATE OR REPLACE TEMP TABLE ul_prog_lr AS " + longrun_sql(
                "ul_prog_assigned", "ul_prog_lr_tx", fr, pre="ul_prog_assigned"))
            stats = long_run_stats(con, "ul_prog_lr", fr)
            pending.append(pool.submit(analyze_long_run, stats, fr, experiment=e.name,
                                       control=e.control, costs=e.costs, alpha=alpha))
        runs = [p.result().to_dict() for p in pending]
    con.execute("DROP TABLE ul_prog_lr; DROP TABLE ul_prog_lr_t")
    return runs


def programme(con: "duckdb.DuckDBPyConnection", assignments_sql: str, transactions: str,
              experiments: Sequence[Experiment], *, as_of: dt.date,
              latest: dict[tuple[str, int], dict[str, Any]] | None = None,
              counts: dict[str, dict[str, int]] | None = None,
              channel: str | None = None, alpha: float = 0.05,
              long_run: bool = True) -> ProgrammeResult:
    """The programme report's numbers. `assignments_sql`: the store's assignments of
    `experiments`; `transactions`: a view on `con` with the purchases (before and after the
    campaigns); `channel`: a view with customer_id and channel (optional); `latest`: the newest
    weekly report.json per experiment (status and latest result); `counts`: customers per arm
    per experiment (the store's `arm_counts`)."""
    from upliftlab.stats.cost import fieller
    from upliftlab.stats.tests import critical

    if not experiments:
        raise InputError("the store holds no experiments with assignments (run `upliftlab "
                         "assign` first)")
    notes = []
    with_holdout = [e for e in experiments if e.holdout_share > 0]
    without = [e for e in experiments if e.holdout_share <= 0]
    if not with_holdout:
        raise InputError("no experiment in the store has a global holdout ([holdout] share = 0 "
                         f"in {', '.join(e.name for e in experiments)}): the programme has "
                         "nothing to compare against")
    if without:
        notes.append("Left out of the holdout view (no global holdout): "
                     + ", ".join(e.name for e in without) + ".")
    if len({e.holdout_share for e in with_holdout}) > 1:
        notes.append("The experiments' holdout shares differ; the holdout is every customer "
                      "held out by any of them.")
    cols = experiments[0].columns
    last = con.execute(f"SELECT CAST(max(CAST({quote(cols.timestamp)} AS TIMESTAMP)) AS DATE) "
                       f"FROM {quote(transactions)}").fetchone()[0]
    if last is None:
        raise InputError("the transactions are empty")
    data_end = min(as_of, last + dt.timedelta(days=1))
    first_start = min(e.start for e in with_holdout)
    if data_end <= first_start:
        raise InputError(f"the data ends {data_end}, before the first campaign start "
                         f"{first_start}: nothing to measure yet")
    if data_end < as_of:
        notes.append(f"The transactions end {last}: everything is censored at {data_end}, "
                     f"not at --as-of {as_of}.")
    ends = month_ends(first_start, data_end)

    chan = (f"(SELECT CAST(customer_id AS VARCHAR) AS customer_id, any_value(CAST(channel AS "
            f"VARCHAR)) AS channel FROM {quote(channel)} GROUP BY 1)") if channel else None
    con.execute(
        "CREATE OR REPLACE TEMP TABLE ul_prog_everyone AS SELECT el.*, "
        + ("COALESCE(ch.channel, 'unknown')" if chan else "'all'") + " AS channel FROM ("
        + eligible_sql(assignments_sql, experiments, with_holdout)
        + ") el" + (f" LEFT JOIN {chan} ch USING (customer_id)" if chan else ""))
    con.execute("CREATE OR REPLACE TEMP VIEW ul_prog_eligible AS SELECT * FROM ul_prog_everyone "
                "WHERE first_start IS NOT NULL")
    reads = extract_sql("ul_prog_everyone", transactions, data_end, cols,
                        _join_key(con, transactions, cols.customer_id),
                        (min(e.start for e in experiments), max(e.start for e in experiments)))
    con.execute("CREATE OR REPLACE TEMP TABLE ul_prog_pre AS " + reads["pre"])
    con.execute("CREATE OR REPLACE TEMP TABLE ul_prog_post AS " + reads["post"])
    q = programme_sql("ul_prog_eligible", "ul_prog_pre", "ul_prog_post", ends)
    con.execute("CREATE OR REPLACE TEMP TABLE ul_prog_months AS " + q["months"])
    flow = con.execute(q["flow"]).fetchall()
    status_rows = con.execute(q["status"]).fetchall()
    con.execute("DROP VIEW ul_prog_eligible; DROP TABLE ul_prog_everyone; "
                "DROP TABLE ul_prog_months")
    # each assignment with its customer's CUPED covariate: the cost's and long runs' input,
    # sorted by experiment so that each long run's reads skip the other experiments' blocks
    con.execute(f"""CREATE OR REPLACE TEMP TABLE ul_prog_assigned_pre AS
        SELECT a.experiment, a.customer_id, a.arm, a.tier,
               COALESCE(pre.pre_revenue_365d, 0.0) AS pre_revenue_365d
        FROM ({assignments_sql}) a LEFT JOIN ul_prog_pre pre USING (customer_id)
        ORDER BY a.experiment""")
    con.execute("DROP TABLE ul_prog_pre")
    back = [r[:8] for r in flow if r[7]]
    revenue = [r[:7] + r[8:] for r in flow if r[6] < len(ends)]

    # GROUPING(experiment, arm, tier, channel): a set bit = that column is rolled up
    dims_of = {15: lambda r: ("all", "all"), 3: lambda r: ("arm", f"{r[1]}:{r[2]}"),
               13: lambda r: ("tier", r[3]), 14: lambda r: ("channel", r[4])}

    def key(row, size):  # (g, experiment, arm, tier, channel, gid, ...) -> (g, dim, value)
        return (row[0], *dims_of[int(row[5])](row)), row[6:6 + size]

    backs = [(*key(r, 2)[0], *key(r, 2)[1]) for r in back]
    revs = [(*key(r, 3)[0], *key(r, 3)[1]) for r in revenue]
    series = _series(backs, revs, len(ends))
    hold_all = series.get(("holdout", "all", "all"))
    rest_all = series.get(("rest", "all", "all"))
    if hold_all is None or rest_all is None:
        raise InputError("the experiments' assignments hold no "
                         + ("holdout customers" if hold_all is None else "treated customers"))
    monthly = [{"month_end": e.isoformat(), **_effect(rest_all, hold_all, i, alpha)}
               for i, e in enumerate(ends)]

    breakdown = []
    for (g, dim, value), s in sorted(series.items()):
        if g != "rest" or dim == "all" or (dim == "channel" and channel is None):
            continue
        if dim == "arm":
            ex = value.split(":", 1)[0]
            hold = series.get(("holdout", "arm", f"{ex}:{HOLDOUT_ARM}"))
        else:
            hold = series.get(("holdout", dim, value))
        if hold is None or hold.n < 2 or s.n < 2:
            continue
        breakdown.append({"by": dim, "value": value, **_effect(s, hold, len(ends) - 1, alpha)})

    cost_by_month = _cost_by_month(con, "ul_prog_assigned_pre", with_holdout, ends, data_end)
    for m, c in zip(monthly, cost_by_month):
        m["cost"] = c
    cost_total = cost_by_month[-1]
    lastm = monthly[-1]
    z = critical(alpha, None)
    se_b = lastm["incremental_reactivations_se"]
    ratio = fieller(cost_total, lastm["incremental_reactivations"], 0.0, se_b ** 2, 0.0, z)
    cost = {"total_cost": cost_total, "incremental_reactivations":
            lastm["incremental_reactivations"],
            "cost_per_incremental_reactivation": ratio.estimate, "ci_low": ratio.ci_low,
            "ci_high": ratio.ci_high, "bounded": ratio.bounded,
            "incremental_revenue": lastm["incremental_revenue"],
            "roi": (lastm["incremental_revenue"] - cost_total) / cost_total
            if cost_total > 0 else None}
    statuses = _statuses(with_holdout[0])
    structure = _structure(status_rows, ends, statuses)

    exp_rows = _experiment_rows(experiments, counts or {}, latest or {}, as_of)
    runs = (_long_runs(con, "ul_prog_assigned_pre", experiments, data_end, alpha)
            if long_run else [])
    con.execute("DROP TABLE ul_prog_post; DROP TABLE ul_prog_assigned_pre")
    notes += [
        "Programme view: every customer ever assigned by an experiment with a global holdout, "
        "from their first campaign start; the holdout was never treated. Effects are totals "
        "over the treated (n × difference of means vs the holdout), 95% Wald (reactivations) "
        "and Welch (revenue) intervals at each month end; the month ends are looks at a "
        "cumulative outcome, not independent tests.",
        "Cost per incremental reactivation of the programme: the cost incurred (contacts, and "
        "conversions in each outcome window) over the incremental reactivations, with "
        "Fieller's interval treating the cost as known.",
        f"Status at a month end by days since the last purchase: active < {AT_RISK_AFTER}, at "
        f"risk < {with_holdout[0].dormant_after} (the dormancy threshold), then the dormant "
        f"tiers of {with_holdout[0].name}, lost from {LOST_AFTER} days or never bought. "
        f"'At risk' is recency alone ({AT_RISK_AFTER} to {with_holdout[0].dormant_after} days "
        "without a purchase), not the churn-risk model of `upliftlab risk`."]
    if channel is None:
        notes.append("No customer table with a channel column was given: no breakdown by "
                     "channel (--customers FILE adds it).")
    bounds = [lo for _, lo in statuses[1:]] + [None]
    status_days = tuple({"status": n, "from_days": lo, "to_days": hi}
                        for (n, lo), hi in zip(statuses, bounds))
    return ProgrammeResult(as_of, data_end, exp_rows, monthly, breakdown, structure,
                           [n for n, _ in statuses] + ["never_bought"], cost, runs,
                           tuple(notes), status_days)


__all__ = ["Experiment", "ProgrammeResult", "eligible_sql", "extract_sql", "month_ends",
           "programme", "programme_report", "programme_sql"]


def programme_report(store_path: str, *, as_of: Any, out: str | None,
                     transactions: Sequence[str] | None = None, customers: str | None = None,
                     alpha: float = 0.05) -> ProgrammeResult:
    """`upliftlab programme`: read every experiment of the store (read-only), measure, and
    write report.json / report.md / report.html into `out` (atomically).

    `transactions`: files (or globs) with the purchases before and after the campaigns,
    default each experiment's spec `cohort.transactions`; `customers`: a table with customer_id and channel for the channel breakdown.
    """
    from pathlib import Path

    from upliftlab.errors import StoreError
    from upliftlab.report.programme import check_target, write_programme_report
    from upliftlab.sources import connect, parse_date, register, require_columns
    from upliftlab.store import open_store

    day = parse_date(as_of, "{as_of}")
    if out is None:
        raise InputError("programme: missing {out} DIR", params=["out"])
    check_target(out)
    if not Path(store_path).exists():
        raise StoreError(f"store {store_path} does not exist (run `upliftlab assign` first)")
    with open_store(store_path, read_only=True) as store:
        found = store.experiment_specs()
        if not found:
            raise InputError(f"store {store_path} holds no experiments with assignments "
                             "(run `upliftlab assign` first)")
        exps = [Experiment.from_spec(f["name"], f["version"], f["spec"]) for f in found]
        sources = list(transactions or [])
        if not sources:
            sources = _spec_transactions(found)
        con = store.con
        cols = exps[0].columns
        parts = []
        for i, src in enumerate(sources):
            have = register(con, src, f"ul_prog_tx{i}")
            require_columns(have, [cols.customer_id, cols.timestamp, cols.amount], str(src))
            parts.append(f"SELECT {quote(cols.customer_id)}, {quote(cols.timestamp)}, "
                         f"{quote(cols.amount)} FROM ul_prog_tx{i}")
        con.execute("CREATE OR REPLACE TEMP VIEW ul_prog_tx AS " + " UNION ALL ".join(parts))
        channel = None
        if customers is not None:
            have = register(con, customers, "ul_prog_customers")
            require_columns(have, ["customer_id", "channel"], str(customers))
            channel = "ul_prog_customers"
        assignments = store.programme_assignments_sql([(e.name, e.version) for e in exps])
        counts = {e.name: store.arm_counts(e.name, e.version) for e in exps}
        result = programme(con, assignments, "ul_prog_tx", exps, as_of=day,
                           latest=store.latest_results(), counts=counts, channel=channel,
                           alpha=alpha)
    write_programme_report(result.to_dict(), out)
    return result


def _spec_transactions(found: list[dict[str, Any]]) -> list[str]:
    """Each spec's cohort.transactions (relative to its spec file), once each."""
    from pathlib import Path

    out: list[str] = []
    for f in found:
        src = (f["spec"].get("cohort") or {}).get("transactions")
        if not src:
            continue
        base = Path(f["spec_path"]).parent if f.get("spec_path") else Path(".")
        path = str(Path(src) if Path(src).is_absolute() else base / src)
        if path not in out:
            out.append(path)
    if not out:
        raise InputError("no {transactions} given and no experiment's spec names a "
                         "transactions table", params=["transactions"])
    return out
