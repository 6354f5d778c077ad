"""The programme report: report.json, report.md and a self-contained report.html over every
experiment, on the reports' shared page (`report.page`), with the weekly report's number
formats and inline SVG figures.

Written atomically into one folder, as the weekly report is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from upliftlab._files import claim, staged_dir
from upliftlab.errors import InputError
from upliftlab.report import REPORT_FILES

_HTML = r"""{% extends "base.html" %}
{% block content %}
<h2>Experiments</h2>
<table id="experiments">
<tr><th class="l">experiment</th><th class="l">start</th><th class="l">status</th><th>customers</th>
<th>holdout</th><th class="l">latest result (primary metric, vs control)</th></tr>
{% for e in r.experiments %}
<tr><td class="l">{{ e.name }} v{{ e.version }}</td><td class="l">{{ e.start }}</td>
<td class="l">{{ e.status }}</td><td>{{ '{:,}'.format(e.customers) }}</td>
<td>{{ '{:,}'.format(e.holdout) }}</td>
<td class="l">{% if e.latest_result %}{{ e.latest_report }}: {% for c in e.latest_result %}{{ c.arm }} {{ pts(c.estimate) }} pts ({{ pts(c.ci_low) }} to {{ pts(c.ci_high) }}){{ ' *' if c.significant else '' }}{{ '; ' if not loop.last else '' }}{% endfor %}{% else %}no weekly report stored{% endif %}</td></tr>
{% endfor %}
</table>
<p class="sub">* significant after the report's correction.</p>

<h2>The programme against the global holdout</h2>
<div class="fig">{{ fig_react | safe }}</div>
<div class="fig">{{ fig_revenue | safe }}</div>
<table id="monthly">
<tr><th class="l">month end</th><th>treated</th><th>holdout</th><th>reactivated (treated)</th>
<th>reactivated (holdout)</th><th>incremental reactivations</th><th>95% CI</th>
<th>incremental revenue</th><th>95% CI</th><th>cost</th></tr>
{% for m in r.monthly %}
<tr><td class="l">{{ m.month_end }}</td><td>{{ '{:,}'.format(m.customers) }}</td>
<td>{{ '{:,}'.format(m.customers_holdout) }}</td><td>{{ pct(m.reactivated_rate) }}</td>
<td>{{ pct(m.reactivated_rate_holdout) }}</td><td>{{ num(m.incremental_reactivations, 0) }}</td>
<td>{{ num(m.incremental_reactivations_ci_low, 0) }} to {{ num(m.incremental_reactivations_ci_high, 0) }}</td>
<td>{{ money(m.incremental_revenue) }}</td>
<td>{{ money(m.incremental_revenue_ci_low) }} to {{ money(m.incremental_revenue_ci_high) }}</td>
<td>{{ money(m.cost) }}</td></tr>
{% endfor %}
</table>
<p>{{ cost_text }}</p>

<h3>By strategy (arm), tier and channel, at {{ r.monthly[-1].month_end }}</h3>
{% if r.breakdown %}
<table id="breakdown">
<tr><th class="l">by</th><th class="l">value</th><th>treated</th><th>holdout</th>
<th>incremental reactivations</th><th>95% CI</th><th>incremental revenue</th><th>95% CI</th></tr>
{% for b in r.breakdown %}
<tr><td class="l">{{ b.by }}</td><td class="l">{{ b.value }}</td><td>{{ '{:,}'.format(b.customers) }}</td>
<td>{{ '{:,}'.format(b.customers_holdout) }}</td><td>{{ num(b.incremental_reactivations, 0) }}</td>
<td>{{ num(b.incremental_reactivations_ci_low, 0) }} to {{ num(b.incremental_reactivations_ci_high, 0) }}</td>
<td>{{ money(b.incremental_revenue) }}</td>
<td>{{ money(b.incremental_revenue_ci_low) }} to {{ money(b.incremental_revenue_ci_high) }}</td></tr>
{% endfor %}
</table>
{% else %}<p class="sub">No breakdown with customers on both sides.</p>{% endif %}

<h3>The population's structure over time</h3>
<div class="fig">{{ fig_structure | safe }}</div>

<h2>The long run of each experiment</h2>
{% for lr in r.long_run %}
<h3>{{ lr.experiment }}: {{ lr.follow_up_days }} days after {{ lr.start }} (censored at {{ lr.censored_at }})</h3>
{% if lr.analysis %}
<table class="longrun">
<tr><th class="l">arm</th><th class="l">metric</th><th>arm</th><th>control</th><th>effect</th>
<th>CI (Holm)</th><th>p adjusted</th></tr>
{% for c in lr.analysis.comparisons if c.metric != 'reactivated' %}
<tr><td class="l">{{ c.arm }}</td><td class="l">{{ c.metric }}</td><td>{{ num(c.mean_treatment) }}</td>
<td>{{ num(c.mean_control) }}</td><td>{{ signed(c.estimate) }}</td>
<td>{{ signed(c.ci_low) }} to {{ signed(c.ci_high) }}</td><td>{{ pv(c.p_value_adjusted) }}</td></tr>
{% endfor %}
</table>
{% for c in lr.analysis.cost %}<p>{{ c.arm }}: long-run ROI {% if c.roi is not none %}{{ pct(c.roi, 0) }}{% if c.roi_ci_low is not none %} ({{ pct(c.roi_ci_low, 0) }} to {{ pct(c.roi_ci_high, 0) }}){% endif %}{% else %}n/a{% endif %} on a cost of {{ money(c.total_cost) }}.</p>
{% endfor %}
{% endif %}
<div class="row">{% for name, fig in km_figs[lr.experiment] %}<div class="fig half">{{ fig | safe }}</div>{% endfor %}</div>
<table class="survival">
<tr><th class="l">time</th><th class="l">arm</th><th>RMST (days)</th><th>control</th>
<th>difference</th><th>95% CI</th><th>log-rank p</th></tr>
{% for kind, s in lr.survival.items() %}{% for c in s.comparisons %}
<tr><td class="l">{{ kind_label[kind] }} (τ = {{ num(s.tau_days, 0) }} days)</td><td class="l">{{ c.arm }}</td>
<td>{{ num(c.rmst, 1) }}</td><td>{{ num(c.rmst_control, 1) }}</td><td>{{ signed(c.difference, 1) }}</td>
<td>{{ signed(c.ci_low, 1) }} to {{ signed(c.ci_high, 1) }}</td><td>{{ pv(c.logrank_p_value) }}</td></tr>
{% endfor %}{% endfor %}
</table>
{% if lr.ratios %}
<table class="ratios">
<tr><th class="l">arm</th><th class="l">per customer who came back</th><th>arm</th><th>control</th>
<th>difference</th><th>95% CI (delta method)</th></tr>
{% for q in lr.ratios %}
<tr><td class="l">{{ q.arm }}</td><td class="l">{{ q.metric }}</td><td>{{ num(q.treatment) }}</td>
<td>{{ num(q.control_value) }}</td><td>{{ signed(q.difference) }}</td>
<td>{{ signed(q.ci_low) }} to {{ signed(q.ci_high) }}</td></tr>
{% endfor %}
</table>
{% endif %}
<ul class="notes">{% for n in lr.notes %}<li>{{ n }}</li>{% endfor %}</ul>
{% endfor %}

<h2>Method</h2>
<ul class="notes">{% for n in r.notes %}<li>{{ n }}</li>
{% endfor %}</ul>
{% endblock %}
"""

_MARKDOWN = r"""# {{ title }}

{{ subtitle }}

{% for h in headlines %}- {{ h }}
{% endfor %}
## Experiments

| experiment | start | status | customers | holdout |
|---|---|---|---:|---:|
{% for e in r.experiments %}| {{ e.name }} v{{ e.version }} | {{ e.start }} | {{ e.status }} | {{ '{:,}'.format(e.customers) }} | {{ '{:,}'.format(e.holdout) }} |
{% endfor %}
## The programme against the global holdout

| month end | incremental reactivations | 95% CI | incremental revenue | 95% CI | cost |
|---|---:|---|---:|---|---:|
{% for m in r.monthly %}| {{ m.month_end }} | {{ num(m.incremental_reactivations, 0) }} | {{ num(m.incremental_reactivations_ci_low, 0) }} to {{ num(m.incremental_reactivations_ci_high, 0) }} | {{ money(m.incremental_revenue) }} | {{ money(m.incremental_revenue_ci_low) }} to {{ money(m.incremental_revenue_ci_high) }} | {{ money(m.cost) }} |
{% endfor %}
{{ cost_text }}

| by | value | incremental reactivations | 95% CI | incremental revenue |
|---|---|---:|---|---:|
{% for b in r.breakdown %}| {{ b.by }} | {{ b.value }} | {{ num(b.incremental_reactivations, 0) }} | {{ num(b.incremental_reactivations_ci_low, 0) }} to {{ num(b.incremental_reactivations_ci_high, 0) }} | {{ money(b.incremental_revenue) }} |
{% endfor %}
## The long run of each experiment
{% for lr in r.long_run %}
### {{ lr.experiment }} (censored at {{ lr.censored_at }})

{% for kind, s in lr.survival.items() %}{% for c in s.comparisons %}- {{ kind_label[kind] }}, {{ c.arm }} vs {{ c.control }}: RMST difference {{ signed(c.difference, 1) }} days ({{ signed(c.ci_low, 1) }} to {{ signed(c.ci_high, 1) }}), log-rank p {{ pv(c.logrank_p_value) }}
{% endfor %}{% endfor %}{% if lr.analysis %}{% for c in lr.analysis.comparisons if c.metric.startswith('revenue_') %}- {{ c.arm }} {{ c.metric }}: {{ signed(c.estimate) }} per customer ({{ signed(c.ci_low) }} to {{ signed(c.ci_high) }})
{% endfor %}{% endif %}{% for n in lr.notes %}- {{ n }}
{% endfor %}{% endfor %}
## Method

{% for n in r.notes %}- {{ n }}
{% endfor %}"""

KIND_LABEL = {"back": "days to come back", "dormant_again": "days until dormant again"}


def check_target(out: str | os.PathLike) -> Path:
    """Refuse, before any work, an `--out` that is a file or a folder another command (or a
    person) wrote; the programme report replaces only its own folders."""
    return claim(out, "programme", REPORT_FILES)


def _headlines(r: dict[str, Any]) -> list[str]:
    from upliftlab.report._text import money, num

    m = r["monthly"][-1]
    out = [f"By {m['month_end']}, against the global holdout, the programme's incremental "
           f"reactivations are {num(m['incremental_reactivations'], 0)} customers (95% CI "
           f"{num(m['incremental_reactivations_ci_low'], 0)} to "
           f"{num(m['incremental_reactivations_ci_high'], 0)}): customers back who would not "
           "have come back without it.",
           f"Incremental revenue: {money(m['incremental_revenue'])} (95% CI "
           f"{money(m['incremental_revenue_ci_low'])} to {money(m['incremental_revenue_ci_high'])})."]
    return out


def _cost_text(r: dict[str, Any]) -> str:
    from upliftlab.report._text import money, pct

    c = r["cost"]
    text = f"Programme cost {money(c['total_cost'])}; cost per incremental reactivation "
    est = c["cost_per_incremental_reactivation"]
    if est is None or est <= 0:
        text += "not defined (no positive number of incremental reactivations)"
    elif c["bounded"]:
        text += (f"{money(est, 2)} (Fieller 95% CI {money(c['ci_low'], 2)} to "
                 f"{money(c['ci_high'], 2)})")
    else:
        text += (f"{money(est, 2)} (interval unbounded: the incremental reactivations cannot "
                 "be told from zero)")
    if c.get("roi") is not None:
        text += f"; ROI {pct(c['roi'], 0)}"
    return text + "."


def _status_labels(r: dict[str, Any]) -> list[str]:
    """The structure's legend: each status with the days since the last purchase it stands
    for (so 'at risk' reads as recency, not as the churn-risk model)."""
    days = {d["status"]: d for d in r.get("status_days", [])}
    out = []
    for s in r["statuses"]:
        d = days.get(s)
        if d is None:
            out.append(s.replace("_", " "))
        elif d["to_days"] is None:
            out.append(f"{s.replace('_', ' ')} ({d['from_days']}+ days)")
        else:
            out.append(f"{s.replace('_', ' ')} ({d['from_days']}–{d['to_days'] - 1} days)")
    return out


def _figures(r: dict[str, Any]) -> dict[str, Any]:
    from upliftlab.report.plots import pyplot, svg

    plt = pyplot()
    months = [m["month_end"] for m in r["monthly"]]
    x = range(len(months))
    figs: dict[str, Any] = {}
    for key, field, label in (("fig_react", "incremental_reactivations",
                               "cumulative incremental reactivations"),
                              ("fig_revenue", "incremental_revenue",
                               "cumulative incremental revenue")):
        fig, ax = plt.subplots(figsize=(7, 3.2))
        est = [m[field] for m in r["monthly"]]
        ax.fill_between(x, [m[f"{field}_ci_low"] for m in r["monthly"]],
                        [m[f"{field}_ci_high"] for m in r["monthly"]], alpha=0.2,
                        color="#1f4e9c", label="95% CI")
        ax.plot(x, est, "o-", color="#1f4e9c", label="estimate")
        if field == "incremental_revenue":
            ax.step(x, [m["cost"] for m in r["monthly"]], where="post", color="#b03a2e",
                    lw=1, ls="--", label="programme cost")
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(list(x))
        ax.set_xticklabels(months, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
        ax.set_title(f"The programme vs the global holdout: {label}", fontsize=10)
        figs[key] = svg(fig)
    statuses = r["statuses"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for ax, g in zip(axes, ("holdout", "rest")):
        rows = r["structure"][g]
        ax.stackplot(range(len(rows)), *[[row[s] * 100 for row in rows] for s in statuses],
                     labels=_status_labels(r))
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([row["month_end"] for row in rows], rotation=45, ha="right",
                           fontsize=7)
        ax.set_title("global holdout" if g == "holdout" else "treated by the programme",
                     fontsize=10)
    axes[0].set_ylabel("share of customers (%)")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    figs["fig_structure"] = svg(fig)
    km: dict[str, list[tuple[str, str]]] = {}
    for lr in r["long_run"]:
        km[lr["experiment"]] = []
        for kind, s in lr["survival"].items():
            if not s["curves"]:
                continue
            fig, ax = plt.subplots(figsize=(4.6, 3.2))
            for arm, c in s["curves"].items():
                line, = ax.step([0] + c["times"], [1.0] + c["survival"], where="post", label=arm)
                ax.fill_between([0] + c["times"], [1.0] + c["ci_low"], [1.0] + c["ci_high"],
                                step="post", alpha=0.12, color=line.get_color())
            ax.set_xlabel(KIND_LABEL[kind])
            ax.set_ylabel("share not yet" + (" back" if kind == "back" else " dormant"))
            ax.set_title(f"Kaplan–Meier: {KIND_LABEL[kind]}", fontsize=9)
            ax.legend(fontsize=7)
            km[lr["experiment"]].append((kind, svg(fig)))
    figs["km_figs"] = km
    return figs


def _context(r: dict[str, Any]) -> dict[str, Any]:
    from upliftlab import __version__
    from upliftlab.report import _text as t

    n_exp = len(r["experiments"])
    return {"r": r, "title": "Reactivation programme: long run and global holdout",
            "subtitle": f"as of {r['as_of']} · {n_exp} experiment{'s' * (n_exp != 1)} · data "
                        f"censored at {r['data_end']}",
            "headlines": _headlines(r), "cost_text": _cost_text(r), "pct": t.pct,
            "num": t.num, "money": t.money, "pv": t.pvalue, "signed": t.signed,
            "pts": t.points, "kind_label": KIND_LABEL, "version": __version__}


def render_programme_markdown(report: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(autoescape=False)
    return env.from_string(_MARKDOWN).render(**_context(report)).strip() + "\n"


def render_programme_html(report: dict[str, Any]) -> str:
    from upliftlab.report.page import render_page

    return render_page(_HTML, **_context(report), **_figures(report))


def write_programme_report(report: dict[str, Any], out: str | os.PathLike) -> Path:
    """report.json / report.md / report.html of the programme into `out`, atomically."""
    out = check_target(out)
    text_json = json.dumps(report, indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    texts = (text_json, render_programme_markdown(report), render_programme_html(report))
    with staged_dir(out, owner="programme", legacy=REPORT_FILES) as tmp:
        for name, text in zip(REPORT_FILES, texts):
            (tmp / name).write_text(text, encoding="utf-8")
    return Path(out)


__all__ = ["check_target", "render_programme_html", "render_programme_markdown",
           "write_programme_report"]
