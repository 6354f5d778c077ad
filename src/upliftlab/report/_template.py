"""The jinja2 templates of report.html and report.md (kept in Python, so no package data to ship).

Self-contained: inline CSS and SVG figures, no scripts, no network.
"""

HTML = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{ title }}</title>
<style>
 body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
        max-width: 60em; color: #222; line-height: 1.45; padding: 0 1em; }
 h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 1.8em;
      border-bottom: 1px solid #ddd; }
 .sub { color: #666; } .headline { font-size: 1.08em; margin: 0.4em 0; }
 .ok { color: #1b7f3b; } .bad { color: #b03a2e; font-weight: bold; }
 table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
 th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
 th { background: #f4f4f4; } td.l, th.l { text-align: left; }
 .sig { color: #1b7f3b; font-weight: bold; } .fig svg { max-width: 100%; height: auto; }
 ul.notes li { margin: 0.3em 0; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<div class="sub">{{ subtitle }}</div>

<h2>Headline</h2>
{% for h in headlines %}<p class="headline">{{ h }}</p>
{% endfor %}
<p class="{{ 'ok' if r.srm.ok else 'bad' }}">{{ srm_text }}</p>

<h2>Lift per arm and metric</h2>
<div class="fig">{{ forest | safe }}</div>
<table>
<tr><th class="l">arm</th><th class="l">metric</th><th>treatment</th><th>control</th>
<th>effect</th><th>{{ ci }}</th><th>relative lift</th><th>relative CI</th><th>p</th>
<th>p adjusted</th><th class="l">significant</th></tr>
{% for c in r.comparisons %}
<tr><td class="l">{{ c.arm }}</td><td class="l">{{ c.metric }}</td>
<td>{{ val(c.metric, c.mean_treatment) }}</td><td>{{ val(c.metric, c.mean_control) }}</td>
<td>{{ eff(c.metric, c.estimate) }}</td>
<td>{{ eff(c.metric, c.ci_low) }} to {{ eff(c.metric, c.ci_high) }}</td>
<td>{{ pct(c.relative_lift) }}</td><td>{{ pct(c.relative_ci_low) }} to {{ pct(c.relative_ci_high) }}</td>
<td>{{ pv(c.p_value) }}</td><td>{{ pv(c.p_value_adjusted) }}</td>
<td class="l {{ 'sig' if c.significant else '' }}">{{ 'yes' if c.significant else 'no' }}</td></tr>
{% endfor %}
</table>
<p class="sub">Effects of 0/1 metrics are in percentage points. Intervals and adjusted p-values
are corrected for {{ r.comparisons | length }} comparisons ({{ r.method.correction }}).</p>

<h2>Trend over the weeks so far</h2>
{% if trend %}<div class="fig">{{ trend | safe }}</div>
{% else %}<p class="sub">This is the first look: the trend appears from the second weekly report on.</p>{% endif %}

<h2>Cost per incremental reactivation</h2>
{% if r.cost %}
{% for c in r.cost %}<p>{{ c.arm }}: {{ cpir(c) }}.</p>
{% endfor %}
{% if cost_fig %}<div class="fig">{{ cost_fig | safe }}</div>{% endif %}
<table>
<tr><th class="l">arm</th><th>total cost</th><th>incremental reactivations</th>
<th>cost per incremental reactivation</th><th>Fieller CI</th><th>incremental revenue</th>
<th>ROI</th></tr>
{% for c in r.cost %}
<tr><td class="l">{{ c.arm }}</td><td>{{ money(c.total_cost) }}</td>
<td>{{ num(c.incremental_reactivations, 1) }} ({{ num(c.incremental_reactivations_ci_low, 1) }} to {{ num(c.incremental_reactivations_ci_high, 1) }})</td>
<td>{{ money(c.cost_per_incremental_reactivation, 2) }}</td>
<td>{% if c.bounded %}{{ money(c.ci_low, 2) }} to {{ money(c.ci_high, 2) }}{% else %}unbounded{% endif %}</td>
<td>{{ money(c.incremental_revenue) }}</td>
<td>{% if c.roi is not none %}{{ pct(c.roi, 0) }}{% if c.roi_ci_low is not none %} ({{ pct(c.roi_ci_low, 0) }} to {{ pct(c.roi_ci_high, 0) }}){% endif %}{% else %}n/a{% endif %}</td></tr>
{% endfor %}
</table>
<p class="sub">ROI = (incremental revenue − incremental cost) / incremental cost. "Unbounded" means
the uplift cannot yet be told from zero, so no finite range of costs is supported by the data.</p>
{% else %}<p class="sub">No costs given.</p>{% endif %}

<h2>Segments</h2>
{% if r.segments %}
{% for col, fig in seg_figs %}<div class="fig">{{ fig | safe }}</div>{% endfor %}
{% for b in r.segments %}
<p><b>{{ b.column }}</b>: is the effect the same in every segment? (Cochran's Q)</p>
<table><tr><th class="l">arm</th><th class="l">metric</th><th>Q</th><th>df</th><th>p</th></tr>
{% for h in b.heterogeneity %}<tr><td class="l">{{ h.arm }}</td><td class="l">{{ h.metric }}</td>
<td>{{ num(h.q) }}</td><td>{{ h.df }}</td><td>{{ pv(h.p_value) }}</td></tr>{% endfor %}
</table>
{% endfor %}
{% else %}<p class="sub">No segment columns given.</p>{% endif %}

<h2>Sample ratio and balance</h2>
<p class="{{ 'ok' if r.srm.ok else 'bad' }}">{{ srm_text }}</p>
{% if r.balance %}
<table><tr><th class="l">covariate</th><th class="l">arm</th><th>mean</th><th>control mean</th>
<th>standardised difference</th></tr>
{% for b in r.balance %}<tr><td class="l">{{ b.covariate }}</td><td class="l">{{ b.arm }}</td>
<td>{{ num(b.mean) }}</td><td>{{ num(b.mean_control) }}</td><td>{{ num(b.smd, 3) }}</td></tr>{% endfor %}
</table>
<p class="sub">Standardised differences above 0.1 in absolute value deserve a look.</p>
{% endif %}

<h2>Method</h2>
<ul class="notes">
<li>Analysis: {{ r.method.analysis }}; α = {{ r.method.alpha }}; correction: {{ r.method.correction }}.</li>
{% for m, t in r.method.tests.items() %}<li>{{ m }}{{ ' (primary)' if m == r.method.primary_metric else '' }}: {{ t }}</li>
{% endfor %}
{% for n in r.method.notes %}<li>{{ n }}</li>
{% endfor %}
</ul>
<p class="sub">Written by upliftlab {{ version }}.</p>
</body>
</html>
"""

MARKDOWN = r"""# {{ title }}

{{ subtitle }}

## Headline

{% for h in headlines %}- {{ h }}
{% endfor %}
{{ srm_text }}

## Lift per arm and metric

| arm | metric | treatment | control | effect | {{ ci }} | relative lift | relative CI | p | p adjusted | significant |
|---|---|---:|---:|---:|---|---:|---|---:|---:|---|
{% for c in r.comparisons %}| {{ c.arm }} | {{ c.metric }} | {{ val(c.metric, c.mean_treatment) }} | {{ val(c.metric, c.mean_control) }} | {{ eff(c.metric, c.estimate) }} | {{ eff(c.metric, c.ci_low) }} to {{ eff(c.metric, c.ci_high) }} | {{ pct(c.relative_lift) }} | {{ pct(c.relative_ci_low) }} to {{ pct(c.relative_ci_high) }} | {{ pv(c.p_value) }} | {{ pv(c.p_value_adjusted) }} | {{ 'yes' if c.significant else 'no' }} |
{% endfor %}
Effects of 0/1 metrics are in percentage points.
{% if history_rows %}
## Trend over the weeks so far ({{ r.method.primary_metric }})

| look | arm | effect | interval |
|---|---|---:|---|
{% for h in history_rows %}| {{ h.as_of }} | {{ h.arm }} | {{ eff(r.method.primary_metric, h.estimate) }} | {{ eff(r.method.primary_metric, h.ci_low) }} to {{ eff(r.method.primary_metric, h.ci_high) }} |
{% endfor %}{% endif %}
{% if r.cost %}
## Cost per incremental reactivation

{% for c in r.cost %}- {{ c.arm }}: {{ cpir(c) }}.
{% endfor %}
| arm | total cost | incremental reactivations | cost per incremental reactivation | Fieller CI | incremental revenue | ROI |
|---|---:|---:|---:|---|---:|---:|
{% for c in r.cost %}| {{ c.arm }} | {{ money(c.total_cost) }} | {{ num(c.incremental_reactivations, 1) }} | {{ money(c.cost_per_incremental_reactivation, 2) }} | {% if c.bounded %}{{ money(c.ci_low, 2) }} to {{ money(c.ci_high, 2) }}{% else %}unbounded{% endif %} | {{ money(c.incremental_revenue) }} | {{ pct(c.roi, 0) if c.roi is not none else 'n/a' }} |
{% endfor %}
ROI = (incremental revenue − incremental cost) / incremental cost.
{% endif %}{% if r.segments %}
## Segments (heterogeneity: Cochran's Q)

| segment | arm | metric | Q | df | p |
|---|---|---|---:|---:|---:|
{% for b in r.segments %}{% for h in b.heterogeneity %}| {{ b.column }} | {{ h.arm }} | {{ h.metric }} | {{ num(h.q) }} | {{ h.df }} | {{ pv(h.p_value) }} |
{% endfor %}{% endfor %}{% endif %}
## Method

- Analysis: {{ r.method.analysis }}; α = {{ r.method.alpha }}; correction: {{ r.method.correction }}.
{% for m, t in r.method.tests.items() %}- {{ m }}{{ ' (primary)' if m == r.method.primary_metric else '' }}: {{ t }}
{% endfor %}{% for n in r.method.notes %}- {{ n }}
{% endfor %}"""
