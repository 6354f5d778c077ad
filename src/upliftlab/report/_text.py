"""Plain-words text for the report: headlines per arm, number formats, method notes.

Works on the report.json dict only, so Markdown and HTML say exactly the same thing.
"""

from __future__ import annotations

import math
from typing import Any


def is_rate(report: dict[str, Any], metric: str) -> bool:
    """A 0/1 metric: shown as % and percentage points."""
    return report["method"].get("metric_types", {}).get(metric) == "binary"


def num(x: float | None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def pct(x: float | None, digits: int | None = None) -> str:
    """A rate in percent; two decimals below 10% (1.25%), one above (18.3%)."""
    if x is None:
        return "n/a"
    if digits is None:
        digits = 2 if abs(x) < 0.1 else 1
    return f"{100 * x:.{digits}f}%"


def points(x: float | None, digits: int | None = None) -> str:
    """A difference of rates in percentage points; two decimals below one point."""
    if x is None:
        return "n/a"
    if digits is None:
        digits = 2 if abs(x) < 0.01 else 1
    return f"{100 * x:+.{digits}f}"


def signed(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:+,.{digits}f}"


def currency(report: dict[str, Any] | None) -> str:
    """The report's currency (an ISO code or a symbol); USD for reports written before it."""
    return ((report or {}).get("method") or {}).get("currency") or "USD"


def money(x: float | None, digits: int = 2, cur: str = "USD") -> str:
    """An amount in cents and the currency: '$1,234.50', '€12.00'."""
    from upliftlab.money import money as fmt

    return fmt(x, digits, cur)


def pvalue(p: float | None) -> str:
    """A p-value for a table cell: '0.0123', or '< 0.001' below the SRM threshold."""
    if p is None:
        return "n/a"
    return "< 0.001" if p < 1e-3 else f"{p:.4f}"


def p_is(p: float | None) -> str:
    """A p-value in a sentence: 'p = 0.0123' or 'p < 0.001'."""
    text = pvalue(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def from_experiment(report: dict[str, Any]) -> bool:
    """A designed experiment's report (campaign wording) rather than a table from --data."""
    return report["method"].get("source") == "experiment"


def coverage(report: dict[str, Any]) -> str | None:
    """'7 of 60 days' while the outcome windows are open; None once closed or for --data."""
    m = report["method"]
    if not from_experiment(report) or m.get("windows_closed", True):
        return None
    return f"{m['days_observed']} of {m['outcome_window_days']} days"


def primary_noun(report: dict[str, Any]) -> str:
    """What one unit of the primary metric is: a reactivation, or the metric's own name."""
    primary = report["method"]["primary_metric"]
    return "reactivation" if from_experiment(report) or primary == "reactivated" else primary


def projection_text(report: dict[str, Any], arm: str) -> str | None:
    """The cost per incremental reactivation projected to the full window, or why not."""
    proj = next((p for p in report["method"].get("projection") or [] if p["arm"] == arm), None)
    if proj is None:
        return None
    w = report["method"]["outcome_window_days"]
    if proj["estimate"] is None:
        return f"no projection to the full {w} days: {proj['reason']}"
    return (f"projected to the full {w} days: about "
            f"{money(proj['estimate'], 2, currency(report))} if control's pace so far continues "
            "and the lift does not grow (see Method)")


def level(report: dict[str, Any]) -> str:
    return f"{100 * (1 - report['method']['alpha']):g}%"


def ci_label(report: dict[str, Any]) -> str:
    seq = report["method"]["analysis"] == "sequential"
    return f"{level(report)} {'always-valid ' if seq else ''}CI"


def effect_text(report: dict[str, Any], c: dict[str, Any]) -> str:
    """'+1.2 points (95% CI +0.8 to +1.6)' or '+0.42 (95% CI +0.17 to +0.68)'."""
    if is_rate(report, c["metric"]):
        vals = [abs(v) for v in (c["estimate"], c["ci_low"], c["ci_high"]) if v is not None]
        d = 2 if vals and max(vals) < 0.01 else 1  # one format for the three numbers
        return (f"{points(c['estimate'], d)} points ({ci_label(report)} {points(c['ci_low'], d)} "
                f"to {points(c['ci_high'], d)})")
    return (f"{signed(c['estimate'])} ({ci_label(report)} {signed(c['ci_low'])} to "
            f"{signed(c['ci_high'])})")


def value_text(report: dict[str, Any], metric: str, x: float | None) -> str:
    return pct(x) if is_rate(report, metric) else num(x)


def cpir_text(report: dict[str, Any], cost: dict[str, Any], *, headline: bool = False) -> str:
    """The cost per incremental reactivation in words (to date while windows are open, with
    its projection); `headline`: inside a headline that already says the coverage."""
    cur, noun = currency(report), primary_noun(report)
    interim = coverage(report)
    when = f" in the first {interim}" if interim else ""
    if cost.get("incremental_reactivations") is not None and cost["incremental_reactivations"] <= 0:
        return (f"no incremental {noun}s{when} (the arm had no more than control), so there is "
                f"no cost per incremental {noun}")
    est = money(cost["cost_per_incremental_reactivation"], 2, cur)
    lead = f"to date ({interim}), each" if interim and not headline else "each"
    if not cost.get("bounded"):
        yet = " yet" if report["method"]["analysis"] == "sequential" else ""
        text = (f"{lead} incremental {noun} cost {est}, but the interval is unbounded: the "
                f"uplift cannot{yet} be told from zero")
    else:
        text = (f"{lead} incremental {noun} cost {est} (CI {money(cost['ci_low'], 2, cur)}–"
                f"{money(cost['ci_high'], 2, cur)})")
    projection = projection_text(report, cost["arm"]) if interim else None
    return text + (f"; {projection}" if projection else "")


def headlines(report: dict[str, Any]) -> list[str]:
    """One sentence per treatment arm on the primary metric, plus its cost when known; while
    outcome windows are open each says how much of the window it covers."""
    primary = report["method"]["primary_metric"]
    costs = {c["arm"]: c for c in report.get("cost") or []}
    interim = coverage(report)
    out = []
    for c in report["comparisons"]:
        if c["metric"] != primary:
            continue
        if c["significant"]:
            verdict = "significant"
        else:
            verdict = "not significant"
            if report["method"]["analysis"] == "sequential":
                verdict += " yet"
        values = (f"{value_text(report, primary, c['mean_treatment'])} vs "
                  f"{value_text(report, primary, c['mean_control'])} in {c['control']}")
        if from_experiment(report):
            verb = "reactivated" if is_rate(report, primary) else f"averaged {primary}"
            when = f" in the first {interim} (effects and costs to date)" if interim else ""
            s = f"{c['arm']} {verb} {values}{when}: {effect_text(report, c)}, {verdict}"
        else:
            s = f"{c['arm']}: {primary} {values}: {effect_text(report, c)}, {verdict}"
        if c["arm"] in costs:
            s += "; " + cpir_text(report, costs[c["arm"]], headline=True)
        out.append(s + ".")
    return out


def srm_text(report: dict[str, Any]) -> str:
    srm = report["srm"]
    counts = ", ".join(f"{a} {n:,}" for a, n in srm["counts"].items())
    flagged = [f"{b['segment']}={b['value']}" for b in srm.get("by_segment") or [] if not b["ok"]]
    if srm["ok"]:
        text = (f"Arm sizes match the design (sample-ratio check {p_is(srm['p_value'])}; "
                f"{counts}).")
        if flagged:
            text += (f" Within segments the arm sizes are off in {', '.join(flagged)} "
                     "(p < 0.001): check how those customers were assigned.")
        return text
    return (f"SAMPLE RATIO MISMATCH: the arm sizes ({counts}) do not match the design weights "
            f"(sample-ratio check {p_is(srm['p_value'])}, flagged below 0.001). The assignment or the data pipeline is "
            "broken; do not trust the effects until this is explained.")


# --- the model and policy sections (dicts from upliftlab.report._sections) --------------------

def unit(model: dict[str, Any]) -> str:
    """What the model's outcome counts: reactivations for 0/1 outcomes."""
    return "reactivations" if model.get("outcome") == "binary" else "outcome"


def model_text(model: dict[str, Any]) -> str:
    learners = sorted({str(r["learner"]) for r in model["comparison"]})
    how = (f"per arm, the candidate whose policy earns the most out of fold (cross-fitted "
           f"doubly robust value) among {', '.join(learners)}" if len(learners) > 1
           else "the learner asked for; no other was compared")
    n = f" on {model['n_rows']:,} customers" if model.get("n_rows") else ""
    return (f"Learner: {model['learner']} ({how}), fitted{n} for the arms "
            f"{', '.join(model['arms'])} against {model['control']}.")


def targeting_text(model: dict[str, Any], t: dict[str, Any]) -> str:
    """'Out of fold, treating the top 20% ... captures 63% of the coupon's incremental ...'."""
    arm, what = t["arm"], unit(model)
    share = t.get("share_captured")
    top = f"the top {100 * t['fraction']:.0f}% of customers by predicted {arm} uplift"
    if t.get("distinguishable") is False:
        return (f"Out of fold, {arm}'s overall effect against {model['control']} cannot be told "
                f"from zero ({num(t['incremental_all'], 1)} incremental {what} in the "
                f"experiment), so no share of it is shown; treating {top} gives "
                f"{num(t['incremental_top'], 1)}.")
    if share is None:
        return (f"Out of fold, {arm} produced no incremental {what} overall against "
                f"{model['control']} ({num(t['incremental_all'], 1)}), so there is nothing for "
                f"{top} to capture.")
    s = (f"Out of fold, treating {top} captures {100 * share:.0f}% of the {arm}'s incremental "
         f"{what} ({num(t['incremental_top'], 1)} of {num(t['incremental_all'], 1)} in the "
         "experiment)")
    if share > 1:
        s += "; above 100% because the other customers, taken together, respond negatively"
    elif share < t["fraction"]:
        s += "; no better than treating at random"
    return s + "."


def decile_value(model: dict[str, Any], x: float | None) -> str:
    return points(x, 2) if model.get("outcome") == "binary" else signed(x, 3)


def total_ci(e: dict[str, Any] | None, digits: int = 1, sign: bool = False,
             label: str = "") -> str:
    """'693.0 (413.9 to 972.2)' from an estimate dict with total/total_ci_* ('label' goes
    inside the parentheses, e.g. '95% CI ')."""
    if not e:
        return "n/a"
    f = (lambda x: signed(x, digits)) if sign else (lambda x: num(x, digits))
    return (f"{f(e.get('total'))} ({label}{f(e.get('total_ci_low'))} to "
            f"{f(e.get('total_ci_high'))})")


def ope_text(policy: dict[str, Any], cur: str = "USD") -> str | None:
    ope = policy.get("off_policy")
    if not ope:
        return None
    n = f" on the {ope['customers']:,} customers of the last experiment" if ope.get(
        "customers") else ""
    if ope.get("population") and ope.get("population") != ope.get("customers"):
        n += f", scaled to {num(ope['population'], 0)} customers"
    better = [b["name"] for b in ope["baselines"] if b.get("significant")]
    not_better = [b["name"] for b in ope["baselines"] if b.get("significant") is False]
    s = (f"Off-policy estimate ({ope['method']}{n}): "
         f"{total_ci(ope['incremental_reactivations'], label='95% CI ')} incremental reactivations "
         f"over treating nobody, at a cost of {money((ope.get('cost') or {}).get('total'), 2, cur)}.")
    if better:
        s += f" Significantly better than: {'; '.join(better)}."
    if not_better:
        s += (f" Not significantly better than: {'; '.join(not_better)} (the difference could "
              "be chance).")
    return s


def truth_text(policy: dict[str, Any], cur: str = "USD") -> str | None:
    tv = policy.get("truth")
    if not tv:
        return None
    plan = tv.get("plan") or {}
    s = (f"True value (from {tv.get('source')}): the written plan, exploration included, "
         f"delivers {num(plan.get('incremental_reactivations'), 1)} incremental reactivations "
         f"at a cost of {money(plan.get('cost'))}")
    inc = (policy.get("off_policy") or {}).get("incremental_reactivations")
    if inc and inc.get("total_ci_low") is not None and plan.get("incremental_reactivations") \
            is not None:
        covered = inc["total_ci_low"] <= plan["incremental_reactivations"] <= inc["total_ci_high"]
        s += (f" (off-policy estimate {total_ci(inc, label='95% CI ')}: "
              f"{'covered' if covered else 'NOT covered'} by the interval)")
    return s + "."
