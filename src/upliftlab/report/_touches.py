"""The report's touch section: the funnel per arm and channel (table and chart) and the effect
on the customers actually reached beside the intention-to-treat effect (report.json `touches`).
"""

from __future__ import annotations

from typing import Any

from upliftlab.report import _text as t

HTML = r"""
<h2>Touches: the funnel and the effect on those reached</h2>
{% for h in lines %}<p class="headline">{{ h }}</p>
{% endfor %}
{% if fig %}<div class="fig">{{ fig | safe }}</div>{% endif %}
<table>
<tr><th class="l">arm</th><th class="l">channel</th><th>assigned</th>{% for s in steps %}<th>{{ s }}</th>{% endfor %}
<th>open rate</th><th>click rate</th><th>conversion</th><th>touches</th><th>cost</th></tr>
{% for f in x.funnel %}<tr><td class="l">{{ f.arm }}</td><td class="l">{{ f.channel }}</td><td>{{ num(f.assigned, 0) }}</td>
{% for s in steps %}<td>{{ cell(f, s) }}</td>{% endfor %}
<td>{{ pct(f.response_rates.open, 1) }}</td><td>{{ pct(f.response_rates.click, 1) }}</td><td>{{ pct(f.response_rates.conversion, 1) }}</td>
<td>{{ num(f.touches, 0) }}</td><td>{{ money(f.cost) }}</td></tr>
{% endfor %}
</table>
<p class="sub">Each step: customers who reached it, share of the arm's assigned customers
({{ ci }} Wilson), and of them the share reactivated. Reactivation by stage describes who
responds; it is not an effect (the reached differ from the others). Open rate = opened /
delivered, click rate = clicked / opened, conversion = reactivated among the delivered.
Control reactivated at {{ pct(x.control_reactivation_rate, 2) }}.</p>
<table>
<tr><th class="l">arm</th><th class="l">reached =</th><th>reach</th><th>effect of assignment (ITT)</th>
<th>effect on the reached (Wald)</th><th>{{ ci }}</th><th>Fieller</th><th>2SLS with covariates</th>
<th>cost per delivered message</th><th>cost per incremental reactivation (Fieller)</th></tr>
{% for e in x.effects %}<tr><td class="l">{{ e.arm }}</td><td class="l">{{ e.exposure }}{{ ' *' if e.stronger_assumptions else '' }}</td>
<td>{{ pct(e.reach, 1) }}</td><td>{{ pts(e.itt) }} pts</td><td>{{ pts(e.cace) }} pts</td>
<td>{{ pts(e.ci_low) }} to {{ pts(e.ci_high) }}</td>
<td>{% if e.fieller_bounded %}{{ pts(e.fieller_low) }} to {{ pts(e.fieller_high) }}{% else %}unbounded{% endif %}</td>
<td>{% if e.tsls %}{{ pts(e.tsls.cace) }} ({{ pts(e.tsls.ci_low) }} to {{ pts(e.tsls.ci_high) }}){% else %}n/a{% endif %}</td>
<td>{{ money(e.cost.cost_per_delivered, 2) if e.cost else '' }}</td>
<td>{% if e.cost %}{{ money(e.cost.cost_per_incremental_reactivation, 2) }} ({% if e.cost.bounded %}{{ money(e.cost.ci_low, 2) }} to {{ money(e.cost.ci_high, 2) }}{% else %}unbounded{% endif %}){% endif %}</td></tr>
{% endfor %}
</table>
<p class="sub">Effects in percentage points of reactivation. * "opened" rests on stronger
assumptions: a delivered message that is not opened must have no effect at all. {{ x.assumptions }}</p>
<ul class="notes">{% for n in x.notes %}<li>{{ n }}</li>{% endfor %}</ul>
"""

MARKDOWN = r"""
## Touches: the funnel and the effect on those reached

{% for h in lines %}- {{ h }}
{% endfor %}
| arm | channel | assigned |{% for s in steps %} {{ s }} |{% endfor %} open rate | click rate | conversion | touches | cost |
|---|---|---:|{% for s in steps %}---:|{% endfor %}---:|---:|---:|---:|---:|
{% for f in x.funnel %}| {{ f.arm }} | {{ f.channel }} | {{ num(f.assigned, 0) }} |{% for s in steps %} {{ cell(f, s) }} |{% endfor %} {{ pct(f.response_rates.open, 1) }} | {{ pct(f.response_rates.click, 1) }} | {{ pct(f.response_rates.conversion, 1) }} | {{ num(f.touches, 0) }} | {{ money(f.cost) }} |
{% endfor %}
Each step: customers, share of the arm ({{ ci }} Wilson), share of them reactivated (descriptive, not an effect). Control reactivated at {{ pct(x.control_reactivation_rate, 2) }}.

| arm | reached = | reach | ITT | effect on the reached (Wald) | {{ ci }} | Fieller | 2SLS with covariates | cost per delivered message | cost per incremental reactivation (Fieller) |
|---|---|---:|---:|---:|---|---|---|---:|---|
{% for e in x.effects %}| {{ e.arm }} | {{ e.exposure }}{{ ' *' if e.stronger_assumptions else '' }} | {{ pct(e.reach, 1) }} | {{ pts(e.itt) }} pts | {{ pts(e.cace) }} pts | {{ pts(e.ci_low) }} to {{ pts(e.ci_high) }} | {% if e.fieller_bounded %}{{ pts(e.fieller_low) }} to {{ pts(e.fieller_high) }}{% else %}unbounded{% endif %} | {% if e.tsls %}{{ pts(e.tsls.cace) }} ({{ pts(e.tsls.ci_low) }} to {{ pts(e.tsls.ci_high) }}){% else %}n/a{% endif %} | {{ money(e.cost.cost_per_delivered, 2) if e.cost else '' }} | {% if e.cost %}{{ money(e.cost.cost_per_incremental_reactivation, 2) }} ({% if e.cost.bounded %}{{ money(e.cost.ci_low, 2) }} to {{ money(e.cost.ci_high, 2) }}{% else %}unbounded{% endif %}){% endif %} |
{% endfor %}
\* "opened" rests on stronger assumptions: a delivered message that is not opened must have no effect at all. {{ x.assumptions }}

{% for n in x.notes %}- {{ n }}
{% endfor %}"""


def headlines(x: dict[str, Any]) -> list[str]:
    """One line per arm: reach, the effect on the reached against the ITT."""
    out = []
    for e in x["effects"]:
        if e["exposure"] != "delivered":
            continue
        ci = (f"{t.points(e['ci_low'])} to {t.points(e['ci_high'])} pts")
        out.append(f"{e['arm']}: delivered to {t.pct(e['reach'], 1)} of the arm; effect on "
                   f"those reached {t.points(e['cace'])} pts ({ci}) against "
                   f"{t.points(e['itt'])} pts per assigned customer.")
    return out


def _cell(f: dict[str, Any], step: str) -> str:
    s = next((s for s in f["steps"] if s["step"] == step), None)
    if s is None:
        return "n/a"
    react = t.pct(s["reactivation_rate"], 1) if s["reactivation_rate"] is not None else "–"
    return (f"{s['customers']:,} ({t.pct(s['rate'], 1)}, {t.pct(s['ci_low'], 1)}–"
            f"{t.pct(s['ci_high'], 1)}); react. {react}")


def _context(report: dict[str, Any]) -> dict[str, Any]:
    x = report["touches"]
    steps = [s["step"] for s in x["funnel"][0]["steps"]] if x["funnel"] else []
    return {"x": x, "steps": steps, "lines": headlines(x), "cell": _cell, "num": t.num,
            "pct": t.pct, "pts": t.points, "money": t.money,
            "ci": f"{round(100 * x['confidence'])}% CI"}


def render(report: dict[str, Any], kind: str) -> str:
    """The section as HTML (with its chart) or Markdown; '' without a touch log."""
    import jinja2
    from markupsafe import Markup

    if not report.get("touches"):
        return ""
    ctx = _context(report)
    if kind == "html":
        ctx["fig"] = funnel_figure(report["touches"])
        html = jinja2.Environment(autoescape=True).from_string(HTML).render(**ctx)
        return Markup(html)
    return jinja2.Environment(autoescape=False).from_string(MARKDOWN).render(**ctx)


def funnel_figure(x: dict[str, Any]) -> str | None:
    """Horizontal funnel bars per arm and channel: share of the arm at each step."""
    from upliftlab.report.plots import pyplot, svg

    # an arm's "(all)" panel only when it used more than one channel (else it repeats one)
    channels = {}
    for f in x["funnel"]:
        channels[f["arm"]] = channels.get(f["arm"], 0) + (f["channel"] != "(all)")
    rows = [f for f in x["funnel"] if f["steps"]
            and (f["channel"] != "(all)" or channels[f["arm"]] > 1)]
    if not rows:
        return None
    plt = pyplot()
    steps = [s["step"] for s in rows[0]["steps"]]
    cols = min(len(rows), 3)
    nrow = -(-len(rows) // cols)
    fig, axes = plt.subplots(nrow, cols, figsize=(3.3 * cols, 0.35 * len(steps) * nrow + 1.2),
                             squeeze=False, sharex=True)
    for ax in axes.ravel()[len(rows):]:
        ax.set_visible(False)
    for ax, f in zip(axes.ravel(), rows):
        rates = [100 * (s["rate"] or 0) for s in f["steps"]]
        y = range(len(steps))[::-1]
        ax.barh(list(y), rates, color="#4a78a8")
        for yy, r in zip(y, rates):
            ax.text(r + 1, yy, f"{r:.0f}%", va="center", fontsize=7)
        ax.set_yticks(list(y))
        ax.set_yticklabels(steps, fontsize=8)
        ax.set_xlim(0, 115)
        ax.set_title(f"{f['arm']} · {f['channel']}", fontsize=9)
    fig.supxlabel("% of the arm's assigned customers", fontsize=9)
    fig.tight_layout()
    return svg(fig)
