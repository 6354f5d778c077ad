"""Cost per incremental reactivation (Fieller's interval), incremental revenue and ROI.

Per customer cost_i = per_contact[arm] + per_conversion[arm]·y_i; a = mean cost difference,
b = reactivation-rate difference, CPIR = a/b (STATS-NOTES, Fieller 1954).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from upliftlab.stats.sufficient import CostStats, SampleStats


@dataclass(frozen=True)
class Ratio:
    """A ratio a/b with Fieller's interval; bounded False means the set is unbounded.

    When b² − z²Var(b) ≤ 0 the uplift b cannot be told from zero at this level, the
    confidence set is the whole line or two rays, and ci_low / ci_high are None.
    """

    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    bounded: bool


def fieller(a: float, b: float, var_a: float, var_b: float, cov_ab: float, z: float) -> Ratio:
    """Fieller's set {R: (b² − z²Vb)R² − 2(ab − z²Cov)R + (a² − z²Va) ≤ 0}."""
    estimate = a / b if b != 0 else None
    qa = b * b - z * z * var_b
    if not qa > 0:
        return Ratio(estimate, None, None, False)
    qb = a * b - z * z * cov_ab
    qc = a * a - z * z * var_a
    # qa > 0 implies a real discriminant (a/b satisfies the inequality), up to rounding
    disc = math.sqrt(max(qb * qb - qa * qc, 0.0))
    return Ratio(estimate, (qb - disc) / qa, (qb + disc) / qa, True)


def delta_ratio_se(a: float, b: float, var_a: float, var_b: float, cov_ab: float) -> float:
    """Delta-method SE of a/b: √(Va − 2R·Cov + R²Vb)/|b| (the large-sample limit of Fieller)."""
    r = a / b
    return math.sqrt(max(var_a - 2 * r * cov_ab + r * r * var_b, 0.0)) / abs(b)


@dataclass(frozen=True)
class CostResult:
    arm: str
    total_cost: float
    incremental_cost: float              # (mean cost_t − mean cost_c)·n_t
    incremental_reactivations: float     # (p_t − p_c)·n_t
    incremental_reactivations_ci: tuple[float, float]
    cpir: Ratio                          # cost per incremental reactivation
    incremental_revenue: float | None    # (mean rev_t − mean rev_c)·n_t
    incremental_revenue_ci: tuple[float, float] | None
    roi: float | None                    # (incremental revenue − incremental cost)/incremental cost
    roi_ci: tuple[float, float] | None


def _cov(sum_ab: float, sum_a: float, sum_b: float, n: int, ddof: int) -> float:
    return (sum_ab - sum_a * sum_b / n) / (n - ddof) if n - ddof > 0 else math.nan


def cost_analysis(arm: str, y_t: SampleStats, y_c: SampleStats, cost_t: CostStats,
                  cost_c: CostStats, z: float, ddof: int, uplift_ci: tuple[float, float],
                  rev_t: SampleStats | None = None, rev_c: SampleStats | None = None,
                  revenue_ci: tuple[float, float] | None = None) -> CostResult:
    """Cost block of one treatment arm against control.

    `z` is the critical value of the primary comparison (for a sequential analysis, the
    confidence sequence's half-width over SE), so the Fieller set is bounded exactly when the
    uplift interval excludes 0. `ddof` is the variance convention of the primary metric's test.
    """
    n_t = y_t.n
    a = cost_t.mean - cost_c.mean
    b = y_t.mean - y_c.mean
    var_a = sum(_cov(s.sum_cost_sq, s.sum_cost, s.sum_cost, s.n, ddof) / s.n for s in (cost_t, cost_c))
    var_b = y_t.variance(ddof) / y_t.n + y_c.variance(ddof) / y_c.n
    cov_ab = sum(_cov(s.sum_cost_y, s.sum_cost, y.sum, s.n, ddof) / s.n
                 for s, y in ((cost_t, y_t), (cost_c, y_c)))
    ratio = fieller(a, b, var_a, var_b, cov_ab, z)
    inc_rev = inc_rev_ci = roi = roi_ci = None
    if rev_t is not None and rev_c is not None:
        dr = rev_t.mean - rev_c.mean
        inc_rev = dr * n_t
        if revenue_ci is not None:
            inc_rev_ci = (revenue_ci[0] * n_t, revenue_ci[1] * n_t)
        if a != 0:
            roi = dr / a - 1
            var_r = rev_t.variance(1) / rev_t.n + rev_c.variance(1) / rev_c.n
            cov_ra = sum(_cov(s.sum_cost_rev, s.sum_cost, r.sum, s.n, 1) / s.n
                         for s, r in ((cost_t, rev_t), (cost_c, rev_c)))
            var_roi = var_r / a ** 2 + dr ** 2 * var_a / a ** 4 - 2 * dr * cov_ra / a ** 3
            se = math.sqrt(max(var_roi, 0.0))
            roi_ci = (roi - z * se, roi + z * se)
    return CostResult(arm, cost_t.sum_cost, a * n_t, b * n_t,
                      (uplift_ci[0] * n_t, uplift_ci[1] * n_t), ratio, inc_rev, inc_rev_ci,
                      roi, roi_ci)


MIN_DAYS_TO_PROJECT = 7


@dataclass(frozen=True)
class Projection:
    """Cost per incremental reactivation projected to the full outcome window, or why not.

    Assumptions (stated in the report): control's daily reactivation hazard so far stays
    constant for the rest of the window, every arm gains those baseline reactivations too, and
    the arm's lift so far does not grow. Conversion costs (a redeemed coupon) keep accruing for
    customers who would have come back anyway, so the projection is usually above the
    cost so far; it is a scenario, not an estimate with an interval.
    """

    arm: str
    estimate: float | None
    rate_treatment: float | None
    rate_control: float | None
    reason: str | None = None


def project_cpir(arm: str, p_t: float, p_c: float, cost_t: tuple[float, float],
                 cost_c: tuple[float, float], days: int, window: int, bounded: bool
                 ) -> Projection:
    """Project CPIR from rates p_t, p_c after `days` of a `window`-day window (see Projection)."""
    if days >= window:
        return Projection(arm, None, None, None, "the window is closed: nothing to project")
    if days < MIN_DAYS_TO_PROJECT:
        return Projection(arm, None, None, None, f"only {days} of {window} days observed; a "
                          f"projection needs at least {MIN_DAYS_TO_PROJECT}")
    if p_t - p_c <= 0:
        return Projection(arm, None, None, None, "no incremental reactivations so far")
    if not bounded:
        return Projection(arm, None, None, None, "the uplift so far cannot be told from zero, "
                          "so any projected cost would be a guess")
    if not 0 < p_c < 1:
        return Projection(arm, None, None, None, "control has no reactivations yet to show "
                          "the pace of customers who come back anyway")
    # constant daily hazard h: 1 - p_c = (1 - h)^days
    p_c_full = 1 - (1 - p_c) ** (window / days)
    p_t_full = min(p_t + (p_c_full - p_c), 1.0)
    a = (cost_t[0] + cost_t[1] * p_t_full) - (cost_c[0] + cost_c[1] * p_c_full)
    return Projection(arm, a / (p_t_full - p_c_full), p_t_full, p_c_full)
