"""Power and sample size per treatment arm vs control for the reactivation rate.

Two-proportion z-test on Cohen's h (the arcsine transform), as statsmodels' NormalIndPower with
proportion_effectsize; Bonferroni over the treatment arms; and the larger sample the always-valid
confidence sequence of the weekly report needs (docs/assignment.md, "Power").

Method, precisely:
* Effect size h = 2 asin(sqrt(p1)) - 2 asin(sqrt(p0)); the statistic h_hat * sqrt(n_eff) is
  N(h sqrt(n_eff), 1) with n_eff = 1 / (1/n_t + 1/n_c). Power (two-sided, both tails counted) =
  Phi(|h| sqrt(n_eff) - z) + Phi(-|h| sqrt(n_eff) - z), z = Phi^-1(1 - alpha/2). The same
  formula as statsmodels' NormalIndPower(ratio = n_c / n_t); solved numerically (brentq).
* k treatment arms vs one control: each comparison at alpha / k (Bonferroni; Holm's first step,
  the worst case, is the same, so the figures hold for Holm too).
* Whole cohort: one population whose rate is the tier-mix weighted mean sum_t pi_t p_t. Its
  Bernoulli variance p(1-p) is at least the within-tier average sum_t pi_t p_t (1 - p_t), so the
  figure is conservative for a tier-stratified analysis.
* Sequential: the asymptotic confidence sequence (Waudby-Smith et al. 2023, as GrowthBook) has
  half-width HW(n) = sigma sqrt(2 (n rho^2 + 1) / (n^2 rho^2) ln(sqrt(n rho^2 + 1) / alpha)) with
  rho tuned to the planned total N* = n. The design needs HW(n) + z_beta sigma / sqrt(n) = delta
  (the effect clears the interval with probability `power` at the last look), where the fixed
  design needs (z_{1-alpha/2} + z_beta) sigma / sqrt(n) = delta. The inflation factor is the
  ratio of the two n, solved numerically; it depends on alpha and power only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from upliftlab.errors import InputError, SpecError

if TYPE_CHECKING:
    from upliftlab.session import Session
    from upliftlab.spec import ExperimentSpec
    from upliftlab.store import Store


# ---- the formulas -------------------------------------------------------------------------------
def cohens_h(p1: float, p0: float) -> float:
    """Cohen's h = 2 asin(sqrt(p1)) - 2 asin(sqrt(p0)) (statsmodels' proportion_effectsize)."""
    return 2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p0))


def power_two_proportions(h: float, n_treatment: float, ratio: float, alpha: float) -> float:
    """Power of the two-sided test for effect size h, n_treatment and n_control = ratio x that."""
    from scipy.stats import norm

    n_eff = 1.0 / (1.0 / n_treatment + 1.0 / (n_treatment * ratio))
    z = norm.isf(alpha / 2)
    d = abs(h) * math.sqrt(n_eff)
    return float(norm.sf(z - d) + norm.cdf(-z - d))


def required_n(h: float, ratio: float, alpha: float, power: float) -> float:
    """n_treatment (real, not rounded) at which the power reaches `power`."""
    from scipy.optimize import brentq

    if h == 0:
        return math.inf
    f = lambda n: power_two_proportions(h, n, ratio, alpha) - power  # noqa: E731
    hi = 2.0
    while f(hi) < 0:
        hi *= 2
    return float(brentq(f, 1e-9, hi, xtol=1e-10, rtol=1e-14, maxiter=500))


def detectable_h(n_treatment: float, ratio: float, alpha: float, power: float) -> float:
    """The smallest |h| detected with `power` at these sizes."""
    from scipy.optimize import brentq

    if n_treatment <= 0 or ratio <= 0:
        return math.inf
    f = lambda h: power_two_proportions(h, n_treatment, ratio, alpha) - power  # noqa: E731
    if f(math.pi) < 0:
        return math.inf
    return float(brentq(f, 1e-12, math.pi, xtol=1e-14, rtol=1e-14, maxiter=500))


def h_to_rate(p0: float, h: float) -> float:
    """The treated rate p1 > p0 at effect size h (inverse of `cohens_h`), capped at 1."""
    angle = math.asin(math.sqrt(p0)) + h / 2
    return 1.0 if angle >= math.pi / 2 else math.sin(angle) ** 2


def cs_half_width(n: float, sigma: float, alpha: float, n_star: float) -> float:
    """Half-width of the asymptotic confidence sequence at total sample n (STATS-NOTES); the
    one definition is `upliftlab.stats.sequential.halfwidth` (s² = sigma² per observation)."""
    from upliftlab.stats.sequential import halfwidth

    return float(halfwidth(sigma * sigma, n, alpha, n_star))


def sequential_inflation(alpha: float, power: float) -> float:
    """n_sequential / n_fixed for the same effect, alpha and power (see the module doc)."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    z_b = norm.ppf(power)
    n_fixed = (norm.isf(alpha / 2) + z_b) ** 2  # sigma = delta = 1
    f = lambda log_n: (cs_half_width(math.exp(log_n), 1.0, alpha, math.exp(log_n))  # noqa: E731
                       + z_b / math.sqrt(math.exp(log_n)) - 1.0)
    log_n = brentq(f, math.log(n_fixed) - 5, math.log(n_fixed) + 10, xtol=1e-13)
    return math.exp(log_n) / n_fixed


# ---- the report ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ComparisonPower:
    """One treatment arm vs control within one scope (a tier, or 'all' for the whole cohort)."""

    arm: str
    scope: str
    baseline: float
    ratio: float                 # n_control / n_treatment, from the effective weights
    alpha: float                 # per comparison, after Bonferroni
    n_treatment: int             # available (expected from the cohort, or assigned)
    n_control: int
    mde: float | None            # absolute target from the spec (probability points)
    n_treatment_required: int | None
    n_control_required: int | None
    cohort_required: int | None  # cohort size (holdout included) that yields those n
    n_treatment_sequential: int | None
    n_control_sequential: int | None
    cohort_sequential: int | None
    mde_available: float         # absolute MDE at the available sizes (fixed horizon)
    mde_available_sequential: float
    capacity_short: bool = False  # the capped arm cannot reach n_treatment_required


@dataclass(frozen=True)
class PowerReport:
    experiment: str
    alpha: float
    power: float
    n_treatments: int
    alpha_per_comparison: float
    correction: str
    sequential_inflation: float
    baseline_source: str
    baselines: dict[str, float]
    tier_counts: dict[str, int]
    effective_weights: dict[str, float]
    holdout_share: float
    sizes_source: str
    rows: tuple[ComparisonPower, ...] = field(default_factory=tuple)

    def frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame([r.__dict__ for r in self.rows])


def _ceil(x: float) -> int | None:
    return None if not math.isfinite(x) else int(math.ceil(x - 1e-9))


def power_table(*, baselines: Mapping[str, float], tier_counts: Mapping[str, int],
                weights: Mapping[str, float], control: str, alpha: float, power: float,
                mde: float | None = None, mde_relative: float | None = None,
                holdout_share: float = 0.0, capacities: Mapping[str, int] | None = None,
                arm_counts: Mapping[str, Mapping[str, int]] | None = None,
                experiment: str = "", baseline_source: str = "spec") -> PowerReport:
    """Power figures per treatment arm and scope (each tier, then 'all').

    `weights` are the effective weights (capacity applied). `arm_counts[scope][arm]`, when given,
    are actual assigned counts; otherwise available sizes are tier count x (1 - holdout) x weight.
    """
    capacities = capacities or {}
    treatments = [a for a in weights if a != control and weights[a] > 0]
    k = max(len(treatments), 1)
    a_k = alpha / k
    inflation = sequential_inflation(a_k, power)
    total = sum(tier_counts.values())
    missing = [t for t in tier_counts if t not in baselines]
    if missing:
        raise SpecError(f"baseline: no rate for tier(s) {', '.join(map(repr, missing))}")
    pooled = (sum(tier_counts[t] * baselines[t] for t in tier_counts) / total if total
              else sum(baselines.values()) / max(len(baselines), 1))
    scopes = [(t, baselines[t], tier_counts[t]) for t in tier_counts] + [("all", pooled, total)]
    rows = []
    for scope, p0, n_scope in scopes:
        for arm in treatments:
            ratio = weights[control] / weights[arm]
            if arm_counts is not None:
                n_t = int(arm_counts.get(scope, {}).get(arm, 0))
                n_c = int(arm_counts.get(scope, {}).get(control, 0))
            else:
                n_t = int(n_scope * (1 - holdout_share) * weights[arm])
                n_c = int(n_scope * (1 - holdout_share) * weights[control])
            target = mde if mde is not None else (mde_relative * p0 if mde_relative else None)
            req_t = req_c = cohort = seq_t = seq_c = seq_cohort = None
            short = False
            if target is not None and 0 < p0 < 1 and p0 + target <= 1:
                n_req = required_n(cohens_h(p0 + target, p0), ratio, a_k, power)
                req_t, req_c = _ceil(n_req), _ceil(n_req * ratio)
                seq_t, seq_c = _ceil(n_req * inflation), _ceil(n_req * ratio * inflation)
                per = (1 - holdout_share) * weights[arm]
                cohort = _ceil(n_req / per) if per > 0 else None
                seq_cohort = _ceil(n_req * inflation / per) if per > 0 else None
                cap = capacities.get(arm)
                short = cap is not None and req_t is not None and req_t > cap
            r = ratio if arm_counts is None or n_t == 0 else (n_c / n_t if n_c else ratio)
            h_av = detectable_h(n_t, r, a_k, power) if 0 < p0 < 1 else math.inf
            h_seq = detectable_h(n_t / inflation, r, a_k, power) if 0 < p0 < 1 else math.inf
            mde_av = h_to_rate(p0, h_av) - p0 if math.isfinite(h_av) else math.inf
            mde_seq = h_to_rate(p0, h_seq) - p0 if math.isfinite(h_seq) else math.inf
            rows.append(ComparisonPower(arm, scope, p0, ratio, a_k, n_t, n_c, target, req_t, req_c,
                                        cohort, seq_t, seq_c, seq_cohort, mde_av, mde_seq, short))
    return PowerReport(experiment, alpha, power, len(treatments), a_k, "bonferroni", inflation,
                       baseline_source, dict(baselines), dict(tier_counts), dict(weights),
                       holdout_share, "assigned" if arm_counts is not None else "cohort",
                       tuple(rows))


# ---- baselines from history ---------------------------------------------------------------------
def measure_baseline(session: "Session", transactions: Any, history_as_of: Any,
                     window_days: int, *, dormant_after: int = 90,
                     tiers: str = "short=180,mid=365,long", columns: Any = None,
                     discount_col: str | None = None) -> dict[str, tuple[int, float]]:
    """Each tier's reactivation rate in history: the cohort as of `history_as_of`, and the share
    of it with a purchase in [history_as_of, history_as_of + window_days). Only transactions
    before the end of that window are read. Returns {tier: (customers, rate)}."""
    import datetime as dt

    from upliftlab.cohort import build_cohort_relation
    from upliftlab.queries import baseline_sql
    from upliftlab.session import require_session
    from upliftlab.sources import ColumnMap, quote, register

    con = require_session(session, "measure_baseline").con
    columns = columns or ColumnMap()
    start = history_as_of if isinstance(history_as_of, dt.date) else dt.date.fromisoformat(
        str(history_as_of))
    end = start + dt.timedelta(days=window_days)
    cohort, tx = session.temp_name("hist_cohort"), session.temp_name("hist_tx")
    rel = build_cohort_relation(con, transactions, start, dormant_after=dormant_after,
                                tiers=tiers, columns=columns, discount_col=discount_col)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(cohort)} AS {rel.sql_query()}")
    register(con, transactions, tx)
    rows = con.execute(baseline_sql(cohort, tx, start, end, columns)).fetchall()
    session.drop(cohort, tx)
    return {str(t): (int(n), (int(k) / int(n)) if n else 0.0) for t, n, k in rows}


def spec_power(spec: "ExperimentSpec", session: "Session",
               arm_counts: Mapping[str, Mapping[str, int]] | None = None) -> PowerReport:
    """The power report of a spec: cohort sizes from its cohort (the cohort stage, on
    `session`), baselines from the spec or from history, effective weights from its
    capacities."""
    from upliftlab.assignment.formula import Design, capped_weights
    from upliftlab.session import require_session
    from upliftlab.spec_cohort import spec_cohort

    cohort = spec_cohort(require_session(session, "spec_power"), spec)
    has_tier = "tier" in cohort.columns
    tier_expr = "CAST(tier AS VARCHAR)" if has_tier else "'all'"
    tier_counts = {str(t): int(n) for t, n in session.con.execute(
        f"SELECT {tier_expr}, count(*) FROM {cohort.sql} GROUP BY 1").fetchall()}
    order = spec.cohort.tier_names() if has_tier else ["all"]
    tier_counts = {t: tier_counts[t] for t in sorted(tier_counts, key=lambda t: (
        order.index(t) if t in order else len(order), t))}
    if not tier_counts:
        raise InputError(f"the cohort of {spec.name} is empty: nobody is dormant as of "
                         f"{spec.cohort.as_of}")
    if spec.baseline is None:
        raise SpecError(f"{spec.path or spec.name}: baseline: needed for power; give "
                        "[baseline] rates or history_as_of")
    if spec.baseline.rates is not None:
        baselines = dict(spec.baseline.rates)
        source = "spec"
        missing = [t for t in tier_counts if t not in baselines]
        if missing:
            raise SpecError(f"{spec.path or spec.name}: baseline.rates: no rate for tier "
                            f"{', '.join(missing)} of the cohort")
    else:
        c = spec.cohort
        measured = measure_baseline(session, spec.resolve(c.transactions),
                                    spec.baseline.history_as_of,
                                    spec.outcome_window_days, dormant_after=c.dormant_after,
                                    tiers=c.tiers, columns=c.columns.column_map(),
                                    discount_col=c.columns.discount_col)
        baselines = {t: r for t, (n, r) in measured.items()}
        for t in tier_counts:
            if t not in baselines:
                raise InputError(f"baseline: nobody in tier {t!r} as of "
                                 f"{spec.baseline.history_as_of}, cannot measure its rate")
        source = f"history as of {spec.baseline.history_as_of}"
    design = Design.from_spec(spec)
    n_cohort = sum(tier_counts.values())
    n_assign = int(round(n_cohort * (1 - spec.holdout.share)))
    weights = {a: float(w) for a, w in capped_weights(design, n_assign).items()}
    if arm_counts is not None:
        arm_counts = dict(arm_counts)
    cohort.drop()
    return power_table(baselines={t: baselines[t] for t in tier_counts}, tier_counts=tier_counts,
                       weights=weights, control=spec.control_arm.name, alpha=spec.alpha,
                       power=spec.power, mde=spec.mde, mde_relative=spec.mde_relative,
                       holdout_share=spec.holdout.share,
                       capacities={a.name: a.capacity for a in spec.arms if a.capacity},
                       arm_counts=arm_counts, experiment=spec.name, baseline_source=source)


def assigned_counts(store: "Store", spec: "ExperimentSpec"
                    ) -> dict[str, dict[str, int]] | None:
    """Assigned customers per tier and arm (and 'all') from the store, or None when there are
    none. The tier is read from the stored stratum label when it has one."""
    rows = store.stratum_counts(spec.name, spec.version)
    if not rows:
        return None
    out: dict[str, dict[str, int]] = {"all": {}}
    for stratum, arm, n in rows:
        parts = dict(p.split("=", 1) for p in str(stratum).split("|") if "=" in p)
        tier = parts.get("tier")
        if tier is not None:
            out.setdefault(tier, {})
            out[tier][arm] = out[tier].get(arm, 0) + int(n)
        out["all"][arm] = out["all"].get(arm, 0) + int(n)
    return out
