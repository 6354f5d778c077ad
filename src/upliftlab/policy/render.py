"""policy.md and policy.html, and the same plan-value table and profile inside the report's
policy section: one rendering of a policy.json dict, in Markdown and in HTML.

The HTML uses the report's stylesheet (taken from the report template, so there is one copy).
"""

from __future__ import annotations

import math
from typing import Any

_MD = r"""{% if heading %}## Policy for the next campaign

{% endif %}{{ headline }}

{{ exploration }}
{% if warning %}
**{{ warning }}**
{% endif %}
### The value of the plan as written

| figure | incremental reactivations | 95% CI | cost | what it means |
|---|---:|---:|---:|---|
{% for r in rows %}| {{ r.figure }} | {{ r.value }} | {{ r.ci }} | {{ r.cost }} | {{ r.meaning }} |
{% endfor %}
{{ why }}
{% if comparisons %}
### Against the alternatives (paired on the same customers of the last experiment)

{% for c in comparisons %}- {{ c }}
{% endfor %}{% endif %}
### Who gets what

| arm | customers | explored | mean predicted uplift | expected cost |{% for s in segcols %} {{ s }} |{% endfor %}
|---|---:|---:|---:|---:|{% for s in segcols %}---|{% endfor %}
{% for a in arms %}| {{ a.arm }} | {{ a.customers }} | {{ a.explored }} | {{ a.uplift }} | {{ a.cost }} |{% for s in a.segs %} {{ s }} |{% endfor %}
{% endfor %}
Customers the plan spares (not treated, outside exploration):

| reason | customers | mean P(reactivate) untreated | mean best predicted uplift |{% for s in segcols %} {{ s }} |{% endfor %} what it means |
|---|---:|---:|---:|{% for s in segcols %}---|{% endfor %}---|
{% for s in spared %}| {{ s.reason }} | {{ s.customers }} | {{ s.base }} | {{ s.uplift }} |{% for x in s.segs %} {{ x }} |{% endfor %} {{ s.meaning }} |
{% endfor %}{% if figure %}
![budget curve](budget_curve.png)
{% endif %}"""

_HTML_SECTION = r"""<p class="headline">{{ headline }}</p>
<p>{{ exploration }}</p>
{% if warning %}<p class="bad">{{ warning }}</p>{% endif %}
<h3>The value of the plan as written</h3>
<table>
<tr><th class="l">figure</th><th>incremental reactivations</th><th>95% CI</th><th>cost</th><th class="l">what it means</th></tr>
{% for r in rows %}<tr><td class="l">{{ r.figure }}</td><td>{{ r.value }}</td><td>{{ r.ci }}</td><td>{{ r.cost }}</td><td class="l">{{ r.meaning }}</td></tr>
{% endfor %}</table>
<p class="sub">{{ why }}</p>
{% if comparisons %}<h3>Against the alternatives (paired on the same customers of the last experiment)</h3>
<ul class="notes">{% for c in comparisons %}<li>{{ c }}</li>{% endfor %}</ul>{% endif %}
<h3>Who gets what</h3>
<table>
<tr><th class="l">arm</th><th>customers</th><th>explored</th><th>mean predicted uplift</th><th>expected cost</th>{% for s in segcols %}<th class="l">{{ s }}</th>{% endfor %}</tr>
{% for a in arms %}<tr><td class="l">{{ a.arm }}</td><td>{{ a.customers }}</td><td>{{ a.explored }}</td><td>{{ a.uplift }}</td><td>{{ a.cost }}</td>{% for s in a.segs %}<td class="l">{{ s }}</td>{% endfor %}</tr>
{% endfor %}</table>
<p>Customers the plan spares (not treated, outside exploration):</p>
<table>
<tr><th class="l">reason</th><th>customers</th><th>mean P(reactivate) untreated</th><th>mean best predicted uplift</th>{% for s in segcols %}<th class="l">{{ s }}</th>{% endfor %}<th class="l">what it means</th></tr>
{% for s in spared %}<tr><td class="l">{{ s.reason }}</td><td>{{ s.customers }}</td><td>{{ s.base }}</td><td>{{ s.uplift }}</td>{% for x in s.segs %}<td class="l">{{ x }}</td>{% endfor %}<td class="l">{{ s.meaning }}</td></tr>
{% endfor %}</table>
"""

_HTML_PAGE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Policy for the next campaign</title>
{{ style | safe }}
</head>
<body>
<h1>Policy for the next campaign</h1>
<div class="sub">Scores: {{ source }}</div>
{{ section | safe }}
{% if figure %}<figure class="png"><img alt="Incremental reactivations against budget" src="{{ figure }}"></figure>{% endif %}
</body>
</html>
"""


def money(x: float | None, currency: str = "USD", digits: int = 2) -> str:
    """Money rounded to cents in the policy's currency (`upliftlab.money`): '$1,234.50'."""
    from upliftlab.money import money as shown

    return shown(x, digits, currency)


def _num(x: float | None, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:,.{digits}f}"


def _seg(d: dict | None) -> str:
    if not d:
        return ""
    return ", ".join(f"{k} {v:,}" for k, v in sorted(d.items()))


def context(policy: dict[str, Any]) -> dict[str, Any]:
    """The plain strings both templates show, from a policy.json dict (or the report's policy
    section, which carries the same keys)."""
    cur = policy.get("currency", "USD")
    if cur is None:
        cur = "$"
    m = lambda x: money(x, cur)  # noqa: E731
    a = policy["allocation"]
    pv = policy.get("plan_value") or {}
    ex = policy.get("exploration") or {}
    budget = a.get("budget")
    counts = ", ".join(f"{arm} {c:,}" for arm, c in a["counts"].items())
    none = a["n_customers"] - a["n_treated"]
    headline = (f"Plan for {a['n_customers']:,} customers: {counts}, nothing {none:,}; "
                f"expected cost {m(pv.get('cost', a.get('expected_cost')))} of the "
                f"{m(budget)} budget.")
    if pv.get("planning_note"):
        headline += f" The plan was {pv['planning_note']}."
    if pv.get("cost_bound"):  # policy/margin.py
        headline += (f" Budget held against the {pv['cost_bound']['method']}: "
                     f"{m(pv['cost_bound']['upper'])}.")
    if ex.get("customers"):
        cnt = ", ".join(f"{k} {v:,}" for k, v in (ex.get("counts") or {}).items())
        exploration = (f"Exploration, inside the budget: {ex['customers']:,} customers "
                       f"({100 * ex.get('share', 0):.1f}%) assigned at random ({cnt}) for an "
                       f"expected {m(ex.get('cost'))}, {_share(ex.get('cost'), budget)} of the "
                       f"budget (reserve {ex.get('budget')}: {m(ex.get('reserved'))}, and the "
                       f"same share of each capacity). Every arm keeps a known propensity "
                       f"(weights {_weights(ex.get('weights'))}); targeting records each "
                       "customer's propensity of every arm.")
    else:
        exploration = ("No exploration (--explore-budget 0): the next experiment cannot "
                       "re-measure arms the plan does not use.")
    warning = None
    if pv.get("over_budget"):
        warning = ("OVER BUDGET (soft budget: written anyway): "
                   + "; ".join(pv.get("over_budget_reasons") or []))
    elif pv.get("may_exceed_budget"):
        warning = ("The off-policy cost estimate is above the budget, within its interval: "
                   "the plan may overspend.")
    rows = []
    for r in pv.get("table") or []:
        ci = (f"{_num(r['ci_low'])} to {_num(r['ci_high'])}" if r.get("ci_low") is not None
              else "")
        rows.append({"figure": r["figure"], "value": _num(r.get("reactivations")), "ci": ci,
                     "cost": m(r.get("cost")) if r.get("cost") is not None else "",
                     "meaning": r["meaning"]})
    why = ("All figures are of the written plan (targeting), exploration included, in "
           "incremental reactivations over treating nobody. They differ because the expected "
           "value trusts the model that chose the plan (and so inherits its optimism), while "
           "the off-policy estimate checks the plan against the randomised outcomes of the last "
           "experiment.")
    comps = []  # policy.json's; the report lists them in its own off-policy table
    ope = policy.get("off_policy") or {}
    for c in ope.get("comparisons") or []:
        if isinstance(c, dict) and c.get("statement"):
            comps.append(c["statement"])
    prof = policy.get("profile") or {"arms": [], "spared": [], "segments": []}
    segcols = [("by " + s.replace("_", " ")) for s in prof.get("segments", [])]
    keys = ["by_" + s for s in prof.get("segments", [])]
    arms = [{"arm": r["arm"], "customers": f"{r['customers']:,}",
             "explored": f"{r['explored']:,}",
             "uplift": (f"{100 * r['mean_predicted_uplift']:+.2f} pts"
                        if r.get("mean_predicted_uplift") is not None else ""),
             "cost": m(r.get("expected_cost")), "segs": [_seg(r.get(k)) for k in keys]}
            for r in prof.get("arms", [])]
    spared = [{"reason": s["reason"], "customers": f"{s['customers']:,}",
               "base": (f"{100 * s['mean_base']:.2f}%" if s.get("mean_base") is not None
                        else ""),
               "uplift": (f"{100 * s['mean_best_uplift']:+.2f} pts"
                          if s.get("mean_best_uplift") is not None else ""),
               "segs": [_seg(s.get(k)) for k in keys], "meaning": s["meaning"]}
              for s in prof.get("spared", [])]
    return {"headline": headline, "exploration": exploration, "warning": warning,
            "rows": rows, "why": why, "comparisons": comps, "arms": arms, "spared": spared,
            "segcols": segcols}


def _share(x: float | None, total: float | None) -> str:
    if x is None or not total:
        return "n/a"
    return f"{100 * x / total:.1f}%"


def _weights(w: dict | None) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in (w or {}).items()) or "n/a"


def section_markdown(policy: dict[str, Any], heading: bool = False, figure: bool = False) -> str:
    """The policy in Markdown; every value passes the weekly report's inert-text filter
    (`report.markdown_text`), so an arm label can neither become HTML nor split a table."""
    from jinja2 import Environment

    from upliftlab.report import markdown_text

    env = Environment(keep_trailing_newline=True, finalize=markdown_text)
    return env.from_string(_MD).render(heading=heading, figure=figure, **context(policy))


def section_html(policy: dict[str, Any]) -> str:
    from jinja2 import Environment

    env = Environment(autoescape=True)
    return env.from_string(_HTML_SECTION).render(**context(policy))


def report_style() -> str:
    """The report's <style> block (one stylesheet for report.html and policy.html)."""
    from upliftlab.report.page import STYLE

    return STYLE


def render_markdown(result: dict) -> str:
    """policy.md."""
    return section_markdown(result, heading=True, figure=True)


def render_html(result: dict, png: Any = None) -> str:
    """policy.html: self-contained, the report's styling, the budget curve inlined."""
    import base64
    from pathlib import Path

    from jinja2 import Environment

    figure = None
    if png is not None and Path(png).is_file():
        figure = "data:image/png;base64," + base64.b64encode(Path(png).read_bytes()).decode()
    env = Environment(autoescape=True)
    return env.from_string(_HTML_PAGE).render(style=report_style(), source=result.get("scores"),
                                              section=section_html(result), figure=figure)
