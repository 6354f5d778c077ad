"""`analyze`: an experiment table (arm column + outcome columns) -> the report's numbers.

Imperative shell over `upliftlab.stats`: validates the input, runs the one SQL aggregate, and
assembles comparisons, cost, segments and SRM into an `AnalysisResult` (`.to_dict()` = report.json).
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from upliftlab.errors import InputError
from upliftlab.jsonsafe import json_safe
from upliftlab.sources import Source, connect, describe, is_number, register, require_columns
from upliftlab.stats.sufficient import MomentStats

if TYPE_CHECKING:
    from upliftlab.stats.sql import Aggregates

ANALYSES = ("sequential", "fixed")
CORRECTIONS = ("holm", "bh", "none")
MAX_SEGMENT_VALUES = 100
REVENUE_NAMES = ("revenue", "spend", "sales", "amount")

COMPARISON_COLUMNS = ["arm", "control", "metric", "estimate", "ci_low", "ci_high", "relative_lift",
                      "relative_ci_low", "relative_ci_high", "p_value", "p_value_adjusted",
                      "significant"]
_EXTRA_COLUMNS = ["mean_treatment", "mean_control", "se", "ci_low_unadjusted",
                  "ci_high_unadjusted", "test"]


@dataclass(frozen=True)
class AnalysisResult:
    """What `analyze` found; `.to_dict()` is the report.json structure (JSON-safe). Frozen: a
    caller that adds to it (the weekly report's notes) makes a new one (`dataclasses.replace`)."""

    experiment: str | None
    as_of: str | None
    method: dict[str, Any]
    srm: Any  # upliftlab.stats.srm.SRMResult
    arm_rows: list[dict[str, Any]]
    comparison_rows: list[dict[str, Any]]
    cost_rows: list[dict[str, Any]]
    segment_blocks: list[dict[str, Any]]
    metrics: list[str] = field(default_factory=list)
    control: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    balance: list[dict[str, Any]] = field(default_factory=list)
    srm_by_segment: list[dict[str, Any]] = field(default_factory=list)

    @property
    def comparisons(self):
        import pandas as pd

        return pd.DataFrame(self.comparison_rows, columns=COMPARISON_COLUMNS + _EXTRA_COLUMNS)

    @property
    def arms(self):
        """One row per arm: n, and <metric>_mean, <metric>_sd."""
        import pandas as pd

        rows = []
        for a in self.arm_rows:
            row = {"arm": a["name"], "n": a["n"]}
            for m, v in a["metrics"].items():
                row[f"{m}_mean"], row[f"{m}_sd"] = v["mean"], v["sd"]
            rows.append(row)
        return pd.DataFrame(rows)

    @property
    def cost(self):
        import pandas as pd

        return pd.DataFrame(self.cost_rows)

    @property
    def segments(self):
        """One row per segment value × treatment arm × metric (heterogeneity in `.heterogeneity`)."""
        import pandas as pd

        return pd.DataFrame([{"segment": b["column"], **r} for b in self.segment_blocks
                             for r in b["rows"]])

    @property
    def heterogeneity(self):
        import pandas as pd

        return pd.DataFrame([{"segment": b["column"], **h} for b in self.segment_blocks
                             for h in b["heterogeneity"]])

    def to_dict(self) -> dict[str, Any]:
        srm = self.srm
        out = {
            "experiment": self.experiment,
            "as_of": self.as_of,
            "method": self.method,
            "srm": {"p_value": srm.p_value, "ok": srm.ok, "chi2": srm.chi2, "df": srm.df,
                    "counts": srm.counts, "expected": srm.expected,
                    "by_segment": self.srm_by_segment},
            "arms": self.arm_rows,
            "comparisons": self.comparison_rows,
            "cost": self.cost_rows,
            "segments": self.segment_blocks,
            "balance": self.balance,
        }
        if self.history:
            out["history"] = self.history
        return json_safe(out)


def analyze(data: Source, *, arm: str, control: Any, metrics: Sequence[str] | str,
            covariates: Sequence[str] | None = None, segments: Sequence[str] | None = None,
            costs: Mapping[str, Any] | None = None, analysis: str = "sequential",
            alpha: float = 0.05, correction: str = "holm", planned_n: int | None = None,
            experiment: str | None = None, as_of: Any = None,
            weights: Mapping[str, float] | None = None, revenue: str | None = None,
            history: Sequence[Mapping[str, Any]] | None = None,
            currency: str = "USD", engine: Any = None) -> AnalysisResult:
    """Compare every arm with `control` on every metric (the first is the primary, 0/1
    reactivation), with cost, segments and the SRM check.

    data: DataFrame, DuckDB relation, or a file path (CSV / Parquet / file.duckdb:table).
    covariates: pre-period columns for variance reduction (one: CUPED with pooled θ; several:
      Lin's regression adjustment). costs: arm -> (per_contact, per_conversion) or per_contact;
      arms without an entry cost nothing. analysis: "sequential" (always-valid, the default for
      a running experiment; tuned for `planned_n` total customers, else for the sample so far)
      or "fixed" (fixed-horizon, for a finished experiment). correction: "holm" (default),
      "bh" or "none", over arms × metrics. weights: design weights per arm for the SRM check
      (equal by default). revenue: the metric that is revenue (default: a metric named
      revenue/spend/sales/amount). Missing values in the arm, a metric or a covariate are
      refused (InputError naming the column and the count). experiment: the report's title;
      default the `experiment` attribute of a DataFrame (`compute_outcomes` sets it from the
      assignment's design). currency: an ISO 4217 code or a symbol, for the report's money.
    engine: a `SparkEngine` to run the aggregate on Spark (`data` a Spark DataFrame): only the
      per-arm sums reach the driver; the statistics are the same code.
    """
    from upliftlab.money import check_currency
    from upliftlab.stats.sql import aggregate, needed_pairs

    as_of = _iso(as_of)  # a date or an error before any work
    metrics = [metrics] if isinstance(metrics, str) else list(metrics or [])
    covariates = [covariates] if isinstance(covariates, str) else list(covariates or [])
    segments = [segments] if isinstance(segments, str) else list(segments or [])
    _check_options(metrics, covariates, analysis, alpha, correction, planned_n)
    revenue = _pick_revenue(metrics, revenue)
    where = "outcomes" if engine is not None else describe(data)
    try:
        currency = check_currency(currency)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if experiment is None:
        experiment = (getattr(data, "attrs", None) or {}).get("experiment")

    con = connect() if engine is None else engine
    try:
        columns = (register(con, data, "upliftlab_analysis") if engine is None
                   else engine.register(data, "upliftlab_analysis"))
        require_columns(columns, [arm] + metrics + covariates + segments, where)
        if engine is None:
            types = {r[0]: str(r[1]).upper() for r in
                     con.execute('DESCRIBE "upliftlab_analysis"').fetchall()}
        else:
            from upliftlab.engine.spark_steps import duckdb_types

            types = {k: v.upper() for k, v in
                     duckdb_types(engine.spark.table("upliftlab_analysis")).items()}
        for c in metrics + covariates:
            if not is_number(types[c], boolean=True):
                kind = "metric" if c in metrics else "covariate"
                raise InputError(f"{where}: {kind} column {c!r} is not numeric (type {types[c]})")
        values = list(dict.fromkeys(metrics + covariates))
        agg = aggregate(con, "upliftlab_analysis", arm, values, needed_pairs(metrics, covariates),
                        binary_check=metrics, segments=segments)
    finally:
        con.close() if engine is None else engine.drop("upliftlab_analysis")
    return analyze_aggregates(
        agg, arm=arm, control=control, metrics=metrics, covariates=covariates,
        segments=segments, costs=costs, analysis=analysis, alpha=alpha, correction=correction,
        planned_n=planned_n, experiment=experiment, as_of=as_of, weights=weights,
        revenue=revenue, history=history, currency=currency, where=where)


def analyze_aggregates(agg: "Aggregates", *, arm: str, control: Any, metrics: Sequence[str],
                       covariates: Sequence[str] = (), segments: Sequence[str] = (),
                       costs: Mapping[str, Any] | None = None, analysis: str = "sequential",
                       alpha: float = 0.05, correction: str = "holm",
                       planned_n: int | None = None, experiment: str | None = None,
                       as_of: Any = None, weights: Mapping[str, float] | None = None,
                       revenue: str | None = None,
                       history: Sequence[Mapping[str, Any]] | None = None,
                       currency: str = "USD", where: str = "data") -> AnalysisResult:
    """`analyze` on sums already aggregated by `stats.sql.aggregate` (or by a query that
    returns the same sums, e.g. the long run's per experiment): the same checks and numbers,
    no rows read. `where` names the data in error messages."""
    from upliftlab.money import check_currency

    metrics, covariates = list(metrics), list(covariates)
    _check_options(metrics, covariates, analysis, alpha, correction, planned_n)
    revenue = _pick_revenue(metrics, revenue)
    try:
        currency = check_currency(currency)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    arms_stats = agg.arms
    total = sum(s.n for s in arms_stats.values()) + agg.arm_missing
    if total == 0:
        raise InputError(f"{where}: no rows")
    if agg.arm_missing:
        raise InputError(f"{where}: arm column {arm!r} has {agg.arm_missing:,} missing values "
                         f"(of {total:,} rows); drop or label them before the analysis")
    pooled = _sum(arms_stats.values())
    for c, miss in zip(pooled.columns, pooled.n_missing):
        if miss:
            raise InputError(f"{where}: column {c!r} has {miss:,} missing values (of {total:,} "
                             "rows); fill or drop them before the analysis")
    labels = sorted(arms_stats)
    if len(labels) < 2:
        raise InputError(f"{where}: arm column {arm!r} has only one arm ({labels[0]!r}); "
                         "a comparison needs a control and at least one treatment")
    control = str(control)
    if control not in arms_stats:
        raise InputError(f"{where}: control {control!r} is not a value of arm column {arm!r} "
                         f"(arms: {', '.join(labels)})")
    for s in segments:
        if len(agg.segments[s]) > MAX_SEGMENT_VALUES:
            raise InputError(f"{where}: segment column {s!r} has {len(agg.segments[s]):,} values "
                             f"(at most {MAX_SEGMENT_VALUES}); use a coarser column")
    cost_table = _check_costs(costs, labels, control)
    weights = _check_weights(weights, labels)
    treatments = [a for a in labels if a != control]
    binary = {m: pooled.n_not01[pooled.columns.index(m)] == 0 for m in metrics}

    from upliftlab.stats.srm import srm_test

    srm = srm_test({a: arms_stats[a].n for a in labels}, weights)
    srm_by_segment = [
        {"segment": col, "value": value, "p_value": r.p_value, "ok": r.ok}
        for col, by_value in agg.segments.items() for value in sorted(by_value)
        for r in [srm_test({a: by_value[value][a].n if a in by_value[value] else 0
                            for a in labels}, weights)]]
    engine = _Engine(analysis, alpha, planned_n, total)

    comp_rows, inferences = _comparisons(engine, arms_stats, control, treatments, metrics,
                                         covariates, binary)
    _adjust(engine, comp_rows, inferences, correction)
    cost_rows = _costs(arms_stats, control, treatments, metrics, binary, cost_table, revenue,
                       comp_rows)
    seg_blocks = _segments(engine, agg.segments, control, treatments, metrics, binary)

    arm_rows = [{"name": a, "n": arms_stats[a].n,
                 "metrics": {m: {"mean": arms_stats[a].sample(m).mean,
                                 "sd": arms_stats[a].sample(m).sd} for m in metrics}}
                for a in [control] + treatments]
    balance = _balance(arms_stats, control, treatments, covariates)
    method = _method(analysis, alpha, correction, metrics, covariates, binary, planned_n,
                     engine, cost_table, revenue, control)
    method["currency"] = currency
    method["source"] = "data"
    if analysis == "sequential":
        method["width_factor"] = _width_factor(inferences, metrics, alpha)
        if method["width_factor"]:
            method["notes"].insert(1, (
                "At this look the always-valid intervals of "
                f"{metrics[0]} are {method['width_factor']:.2f}× as wide as fixed-horizon ones "
                "on the same data (before the multiple-testing correction): the price of being "
                "allowed to look again as the data grow."))
    return AnalysisResult(experiment, _iso(as_of), method, srm, arm_rows, comp_rows, cost_rows,
                          seg_blocks, metrics, control, list(history or []), balance,
                          srm_by_segment)


# --- the pieces -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Engine:
    """Fixed-horizon or sequential inference with the experiment's α and planned sample."""

    analysis: str
    alpha: float
    planned_n: int | None
    total: int

    def n_star(self, n: int) -> float:
        # the planned total spread over comparisons by their share of the sample so far
        if self.planned_n:
            return max(self.planned_n * n / self.total, 1.0)
        return float(n)

    def infer(self, effect):
        from upliftlab.stats.sequential import sequential_inference
        from upliftlab.stats.tests import fixed_inference

        if self.analysis == "fixed":
            return fixed_inference(effect, self.alpha)
        return sequential_inference(effect, self.alpha, self.n_star(effect.n))

    def crit_at(self, p: float, effect) -> float:
        """Critical value (in SEs) whose level is p, for the adjusted intervals."""
        from upliftlab.stats import sequential
        from upliftlab.stats.tests import critical

        if p >= 1:
            return 0.0
        if self.analysis == "fixed":
            return critical(p, effect.df)
        return sequential.crit_at(p, effect.n, self.alpha, self.n_star(effect.n))


def _effects(t: MomentStats, c: MomentStats, metric: str, covariates: list[str], binary: bool):
    from upliftlab.stats.cuped import cuped, lin
    from upliftlab.stats.tests import compare

    if not covariates:
        absolute, rel = compare(t.sample(metric), c.sample(metric), binary)
        return absolute, rel, ("difference of proportions (Wald, unpooled)" if binary
                               else "Welch's t")
    rt, rc = t.regression(metric, covariates), c.regression(metric, covariates)
    if len(covariates) == 1:
        adj = cuped(rt, rc)
        name = "CUPED (pooled θ) + Welch's t"
    else:
        adj = lin(rt, rc)
        name = "Lin's regression adjustment"
    return adj.absolute, adj.relative, name


def _comparisons(engine, arms_stats, control, treatments, metrics, covariates, binary):
    rows, infs = [], []
    c = arms_stats[control]
    for a in treatments:
        t = arms_stats[a]
        for m in metrics:
            absolute, rel, test = _effects(t, c, m, covariates, binary[m])
            inf = engine.infer(absolute)
            rinf = engine.infer(rel) if rel is not None and rel.se > 0 else None
            rows.append({
                "arm": a, "control": control, "metric": m,
                "estimate": absolute.estimate, "ci_low": inf.ci_low, "ci_high": inf.ci_high,
                "relative_lift": rel.estimate if rel else None,
                "relative_ci_low": rinf.ci_low if rinf else None,
                "relative_ci_high": rinf.ci_high if rinf else None,
                "p_value": inf.p_value, "p_value_adjusted": inf.p_value, "significant": False,
                "mean_treatment": t.sample(m).mean, "mean_control": c.sample(m).mean,
                "se": absolute.se, "ci_low_unadjusted": inf.ci_low,
                "ci_high_unadjusted": inf.ci_high, "test": test,
            })
            infs.append((absolute, inf, rel, rinf))
    return rows, infs


def _width_factor(infs, metrics, alpha) -> float | None:
    """Mean ratio, over the primary metric's comparisons, of the always-valid interval's
    half-width to the fixed-horizon (normal) one on the same standard error."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1 - alpha / 2)
    per_comparison = len(infs) // max(len(metrics), 1)
    crits = [infs[i * len(metrics)][1].crit for i in range(per_comparison)]
    crits = [c for c in crits if math.isfinite(c)]
    return sum(crits) / len(crits) / z if crits else None


def _adjust(engine, rows, infs, correction):
    """Adjusted p-values over arms × metrics, and intervals that agree with them."""
    from upliftlab.stats.multiple import adjust, adjusted_halfwidth

    p_adj = adjust([r["p_value"] for r in rows], correction)
    for row, pa, (absolute, inf, rel, rinf) in zip(rows, p_adj, infs):
        pa = float(pa)
        row["p_value_adjusted"] = pa
        row["significant"] = bool(pa < engine.alpha)
        if correction == "none" or not absolute.se > 0:
            continue
        hw = (inf.ci_high - inf.ci_low) / 2
        hw_adj = adjusted_halfwidth(absolute.estimate, hw, inf.crit,
                                    engine.crit_at(pa, absolute))
        row["ci_low"], row["ci_high"] = absolute.estimate - hw_adj, absolute.estimate + hw_adj
        if rinf is not None and hw > 0:
            # the relative interval is widened by the same factor as the absolute one
            rhw = (rinf.ci_high - rinf.ci_low) / 2 * hw_adj / hw
            row["relative_ci_low"], row["relative_ci_high"] = rel.estimate - rhw, rel.estimate + rhw


def _costs(arms_stats, control, treatments, metrics, binary, cost_table, revenue, comp_rows):
    """Cost block per treatment arm with a cost, at the level of the (adjusted) comparisons.

    Fieller's critical value is the primary comparison's half-width over its SE, so the cost
    interval is bounded exactly when that comparison is significant (without covariates).
    """
    from upliftlab.stats.cost import cost_analysis

    if cost_table is None:
        return []
    primary = metrics[0]
    by_key = {(r["arm"], r["metric"]): r for r in comp_rows}
    c = arms_stats[control]
    c0c, c1c = cost_table.get(control, (0.0, 0.0))
    rows = []
    for a in treatments:
        if a not in cost_table:
            continue
        t = arms_stats[a]
        c0, c1 = cost_table[a]
        row = by_key[(a, primary)]
        z = (row["ci_high"] - row["ci_low"]) / (2 * row["se"]) if row["se"] > 0 else math.inf
        rev_args = {}
        if revenue is not None:
            rrow = by_key[(a, revenue)]
            rev_args = {"rev_t": t.sample(revenue), "rev_c": c.sample(revenue),
                        "revenue_ci": (rrow["ci_low"], rrow["ci_high"])}
        res = cost_analysis(a, t.sample(primary), c.sample(primary),
                            t.cost(c0, c1, primary, revenue), c.cost(c0c, c1c, primary, revenue),
                            z, 0 if binary[primary] else 1, (row["ci_low"], row["ci_high"]),
                            **rev_args)
        rows.append({
            "arm": a, "total_cost": res.total_cost,
            "incremental_reactivations": res.incremental_reactivations,
            "cost_per_incremental_reactivation": res.cpir.estimate,
            "ci_low": res.cpir.ci_low, "ci_high": res.cpir.ci_high, "bounded": res.cpir.bounded,
            "incremental_revenue": res.incremental_revenue, "roi": res.roi,
            "incremental_cost": res.incremental_cost,
            "incremental_reactivations_ci_low": res.incremental_reactivations_ci[0],
            "incremental_reactivations_ci_high": res.incremental_reactivations_ci[1],
            "incremental_revenue_ci_low": (res.incremental_revenue_ci or (None, None))[0],
            "incremental_revenue_ci_high": (res.incremental_revenue_ci or (None, None))[1],
            "roi_ci_low": (res.roi_ci or (None, None))[0],
            "roi_ci_high": (res.roi_ci or (None, None))[1],
            "cost_per_contact": c0, "cost_per_conversion": c1,
        })
    return rows


def _segments(engine, seg_stats, control, treatments, metrics, binary):
    from upliftlab.stats.segments import cochran_q
    from upliftlab.stats.tests import compare

    blocks = []
    for col, by_value in seg_stats.items():
        rows, het = [], []
        for a in treatments:
            for m in metrics:
                ests, ses = [], []
                for value in sorted(by_value):
                    st = by_value[value]
                    t, c = st.get(a), st.get(control)
                    if t is None or c is None or t.n < 2 or c.n < 2:
                        continue
                    absolute, _rel = compare(t.sample(m), c.sample(m), binary[m])
                    inf = engine.infer(absolute)
                    rows.append({"value": value, "arm": a, "metric": m, "n_treatment": t.n,
                                 "n_control": c.n, "mean_treatment": t.sample(m).mean,
                                 "mean_control": c.sample(m).mean,
                                 "estimate": absolute.estimate, "se": absolute.se,
                                 "ci_low": inf.ci_low, "ci_high": inf.ci_high,
                                 "p_value": inf.p_value})
                    ests.append(absolute.estimate)
                    ses.append(absolute.se)
                h = cochran_q(ests, ses)
                het.append({"arm": a, "metric": m, "q": h.q, "df": h.df, "p_value": h.p_value,
                            "segments_used": h.used})
        blocks.append({"column": col, "heterogeneity": het, "rows": rows})
    return blocks


def _balance(arms_stats, control, treatments, covariates):
    """Covariate means per arm and the standardised difference to control (pre-period balance)."""
    rows = []
    c = arms_stats[control]
    for x in covariates:
        sc = c.sample(x)
        for a in treatments:
            st = arms_stats[a].sample(x)
            pooled_sd = math.sqrt((st.variance(1) + sc.variance(1)) / 2)
            smd = (st.mean - sc.mean) / pooled_sd if pooled_sd > 0 else 0.0
            rows.append({"covariate": x, "arm": a, "mean": st.mean, "mean_control": sc.mean,
                         "smd": smd})
    return rows


def _method(analysis, alpha, correction, metrics, covariates, binary, planned_n, engine,
            cost_table, revenue, control):
    tests = {}
    for m in metrics:
        if covariates:
            tests[m] = ("CUPED (pooled θ) + Welch's t" if len(covariates) == 1
                        else "Lin's regression adjustment")
        else:
            tests[m] = ("difference of proportions (Wald, unpooled, s² = p(1−p))" if binary[m]
                        else "Welch's t (sample variance, n−1; Welch–Satterthwaite df)")
    notes = []
    if analysis == "sequential":
        tuned = (f"tuned for the planned {planned_n:,} customers" if planned_n
                 else "tuned for the sample at hand (no planned sample given)")
        notes.append("Sequential analysis: asymptotic always-valid confidence sequences "
                     f"(Waudby-Smith et al. 2023, as GrowthBook), {tuned}; p-values and "
                     "intervals stay valid however often the report is looked at.")
    else:
        notes.append("Fixed-horizon analysis: valid for one look at the end of the experiment; "
                     "looking every week with it would inflate false positives.")
    notes.append({"holm": "Holm step-down correction over arms × metrics (family-wise error).",
                  "bh": "Benjamini–Hochberg correction over arms × metrics (false discovery rate).",
                  "none": "No multiple-testing correction."}[correction]
                 + (" Intervals are widened to agree with the adjusted p-values (SE_adj = "
                    "|d|/z(p_adj)); cost intervals use the same level as their comparison; segment "
                    "intervals are unadjusted."
                    if correction != "none" else ""))
    if covariates:
        notes.append(("CUPED with pooled θ on " if len(covariates) == 1
                      else "Lin's regression adjustment (per-arm OLS on pooled-centred "
                           "covariates) on ") + ", ".join(covariates) +
                     "; segment breakdowns are unadjusted.")
    notes.append("Missing values in the arm, metric or covariate columns are refused, not "
                 "dropped.")
    if cost_table is not None:
        notes.append("Cost per customer = cost per contact + cost per conversion × "
                     f"{metrics[0]}; control costs "
                     f"{'as given' if control in cost_table else 'nothing'}. "
                     "Cost per incremental "
                     f"{'reactivation' if metrics[0] == 'reactivated' else metrics[0]} has "
                     "Fieller's interval (unbounded when "
                     "the uplift cannot be told from zero). ROI = (incremental revenue − "
                     "incremental cost) / incremental cost"
                     + (f", revenue = {revenue}." if revenue else "; no revenue metric given."))
    return {"tests": tests, "correction": correction,
            "metric_types": {m: "binary" if binary[m] else "continuous" for m in metrics}, "analysis": analysis, "alpha": alpha,
            "primary_metric": metrics[0], "covariates": covariates, "planned_n": planned_n,
            "revenue_metric": revenue, "notes": notes}


# --- input checks -----------------------------------------------------------------------------

def _check_options(metrics, covariates, analysis, alpha, correction, planned_n):
    if not metrics:
        raise InputError("analyze: at least one metric is needed (the first is the primary)")
    if len(set(metrics)) != len(metrics):
        raise InputError(f"analyze: metrics repeated: {', '.join(metrics)}")
    both = set(metrics) & set(covariates)
    if both:
        raise InputError(f"analyze: {', '.join(sorted(both))} cannot be a metric and a covariate")
    if analysis not in ANALYSES:
        raise InputError(f"analyze: analysis must be 'sequential' or 'fixed', not {analysis!r}")
    if correction not in CORRECTIONS:
        raise InputError(f"analyze: correction must be one of {', '.join(CORRECTIONS)}, "
                         f"not {correction!r}")
    if not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise InputError(f"analyze: alpha must be between 0 and 1, not {alpha!r}")
    if planned_n is not None and (not isinstance(planned_n, (int, float)) or planned_n <= 0):
        raise InputError(f"analyze: planned_n must be a positive number, not {planned_n!r}")


def _pick_revenue(metrics, revenue):
    if revenue is not None:
        if revenue not in metrics:
            raise InputError(f"analyze: revenue metric {revenue!r} is not among the metrics "
                             f"({', '.join(metrics)})")
        return revenue
    return next((m for m in metrics[1:] if m.lower() in REVENUE_NAMES), None)


def _check_costs(costs, labels, control):
    if costs is None:
        return None
    table: dict[str, tuple[float, float]] = {}
    for key, value in dict(costs).items():
        k = str(key)
        if k not in labels:
            raise InputError(f"cost given for unknown arm {k!r} (arms: {', '.join(labels)})")
        pair = value if isinstance(value, (tuple, list)) else (value, 0.0)
        if len(pair) == 1:
            pair = (pair[0], 0.0)
        try:
            c0, c1 = float(pair[0]), float(pair[1])
        except (TypeError, ValueError, IndexError):
            raise InputError(f"cost for arm {k!r} must be (per_contact, per_conversion), "
                             f"not {value!r}") from None
        if not (math.isfinite(c0) and math.isfinite(c1)) or c0 < 0 or c1 < 0 or len(pair) > 2:
            raise InputError(f"cost for arm {k!r} must be two non-negative numbers, not {value!r}")
        table[k] = (c0, c1)
    return table


def _check_weights(weights, labels):
    if weights is None:
        return {a: 1.0 for a in labels}
    out = {str(k): float(v) for k, v in dict(weights).items()}
    unknown = [k for k in out if k not in labels]
    if unknown:
        raise InputError(f"weight given for unknown arm {unknown[0]!r} (arms: {', '.join(labels)})")
    if any(v < 0 or not math.isfinite(v) for v in out.values()) or sum(out.values()) <= 0:
        raise InputError("arm weights must be non-negative with a positive sum")
    return {a: out.get(a, 0.0) for a in labels}


def _sum(stats):
    it = iter(stats)
    total = next(it)
    for s in it:
        total = total + s
    return total


def _iso(as_of: Any) -> str | None:
    if as_of is None:
        return None
    if isinstance(as_of, (_dt.date, _dt.datetime)):
        return as_of.isoformat()
    if hasattr(as_of, "isoformat"):
        return as_of.isoformat()
    from upliftlab.sources import parse_date

    # the text goes into report.json as the report's date: it must be one
    return parse_date(as_of, "as_of").isoformat()
