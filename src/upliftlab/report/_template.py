"""The jinja2 templates of report.html and report.md (kept in Python, so no package data to ship).

Self-contained: inline CSS and SVG figures, no scripts, no network. report.html extends the
reports' shared page (`report.page`: stylesheet, title, headline block, footer).
"""

HTML = r"""{% extends "base.html" %}
{% block headline %}{{ super() }}<p class="{{ 'ok' if r.srm.ok else 'bad' }}">{{ srm_text }}</p>
{% endblock %}
{% block content %}
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

{% if campaign or trend %}<h2>Trend over the weekly looks</h2>
{% if trend %}<div class="fig">{{ trend | safe }}</div>
{% else %}<p class="sub">This is the first look: the trend appears from the second weekly report on.</p>{% endif %}{% endif %}

<h2>Cost per incremental {{ noun }}{% if interim %} (to date: {{ interim }}){% endif %}</h2>
{% if r.cost %}
{% for c in r.cost %}<p>{{ c.arm }}: {{ cpir(c) }}.</p>
{% endfor %}
{% if cost_fig %}<div class="fig">{{ cost_fig | safe }}</div>{% endif %}
<table>
<tr><th class="l">arm</th><th>total cost</th><th>incremental {{ noun }}s</th>
<th>cost per incremental {{ noun }}</th><th>Fieller CI</th><th>incremental revenue</th>
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
{{ touches_html }}
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

{% if model %}
<h2>Whom to treat: uplift model</h2>
<p>{{ model_text(model) }}</p>
{% for t in model.targeting %}<p class="headline">{{ targeting_text(model, t) }}</p>
{% endfor %}
<div class="row">{% for arm in model.arms %}{% if qini_figs[arm] %}<figure class="png half"><img alt="Qini curve, {{ arm }} vs {{ model.control }}" src="{{ qini_figs[arm] }}"></figure>{% endif %}{% endfor %}</div>
{% if not qini_figs %}<p class="sub">No Qini plots in {{ model.folder }}.</p>{% endif %}
<p class="sub">Qini curves: incremental outcomes of treating customers in the order of their
predicted uplift, out of fold (every score comes from a model not fitted on that customer);
the dashed line is random targeting.</p>
<h3>Learner comparison (out of fold)</h3>
{% if model.selection %}<ul class="notes">{% for arm, why in model.selection.reasons.items() %}<li><b>{{ arm }}</b>: {{ why }}</li>{% endfor %}</ul>{% endif %}
<table>
<tr><th class="l">learner</th><th class="l">arm</th><th>budgeted value (pts per customer)</th><th>95% CI</th><th>policy value (pts per customer)</th><th>95% CI</th>
<th>Qini area (pts per customer)</th><th>Qini (causalml)</th><th>Qini CI</th><th>AUUC</th>
<th>fit (s)</th><th>peak memory (MiB)</th><th class="l">chosen</th></tr>
{% for c in model.comparison %}
<tr><td class="l">{{ c.learner }}</td><td class="l">{{ c.arm }}</td>
<td>{{ pts(c.budgeted_value, 3) if c.budgeted_value is defined and c.budgeted_value is not none else 'n/a' }}</td>
<td>{% if c.budgeted_value_low is defined and c.budgeted_value_low is not none %}{{ pts(c.budgeted_value_low, 3) }} to {{ pts(c.budgeted_value_high, 3) }}{% endif %}</td>
<td>{{ pts(c.policy_value, 3) if c.policy_value is defined and c.policy_value is not none else 'n/a' }}</td>
<td>{% if c.policy_value_low is defined and c.policy_value_low is not none %}{{ pts(c.policy_value_low, 3) }} to {{ pts(c.policy_value_high, 3) }}{% endif %}</td>
<td>{{ pts(c.qini_area, 3) if c.qini_area is defined and c.qini_area is not none else 'n/a' }}</td>
<td>{{ num(c.qini, 3) }}</td>
<td>{{ num(c.qini_low, 3) }} to {{ num(c.qini_high, 3) }}</td><td>{{ num(c.auuc, 3) }}</td>
<td>{{ num(c.fit_seconds, 1) }}</td>
<td>{{ num(c.peak_rss_mib, 0) }}</td><td class="l {{ 'sig' if c.chosen else '' }}">{{ 'yes' if c.chosen else '' }}</td></tr>
{% endfor %}
</table>
<p class="sub">Policy value: what treating with the arm exactly the customers the candidate predicts
to gain earns over treating nobody, cross-fitted doubly robust, per customer; it chooses the
learner per arm. Qini area: the area between the Qini curve and random, in incremental
outcomes per customer, unnormalised. Qini and AUUC as causalml computes them (the curve divided
by the arm's overall effect |Q(N)|; random Qini ≈ 0, AUUC ≈ 0.5) are shown only where that effect
can be told from zero (n/a otherwise: dividing by it would explode). Intervals by bootstrap.</p>
<h3>Calibration: predicted against observed uplift by decile</h3>
<div class="row">{% for arm in model.arms %}<div>
<p><b>{{ arm }}</b> vs {{ model.control }}{{ ' (percentage points)' if model.outcome == 'binary' else '' }}</p>
<table>
<tr><th>decile</th><th>treated</th><th>control</th><th>predicted</th><th>observed</th><th>95% CI</th></tr>
{% for d in model.deciles if d.arm == arm %}
<tr><td>{{ d.bin }}</td><td>{{ num(d.n_treated, 0) }}</td><td>{{ num(d.n_control, 0) }}</td>
<td>{{ dval(model, d.predicted) }}</td><td>{{ dval(model, d.observed) }}</td>
<td>{{ dval(model, d.ci_low) }} to {{ dval(model, d.ci_high) }}</td></tr>
{% endfor %}
</table></div>
{% endfor %}</div>
<p class="sub">Decile 1 = the highest predicted uplift. A calibrated model's observed uplift
falls as the decile rises and its intervals cover the predicted values. Model folder: {{ model.folder }}.</p>
{% endif %}

{% if policy %}
<h2>Next campaign: policy</h2>
{{ policy_html(policy) | safe }}
{% if budget_fig %}<figure class="png"><img alt="Incremental reactivations against budget" src="{{ budget_fig }}"></figure>
<p class="sub">The curve is the written plan at each budget: the same exploration reserve, then the
optimised allocation; the marked point is this plan.</p>{% endif %}
{% if policy.off_policy %}{% set ope = policy.off_policy %}
<h3>How much better than the alternatives (off-policy, on the last experiment)</h3>
<p>{{ ope_text(policy) }}</p>
<table>
<tr><th class="l">policy or baseline</th><th>reactivations (95% CI)</th><th>cost</th>
<th>policy minus baseline (95% CI)</th><th>p</th><th class="l">significant</th></tr>
<tr><td class="l"><b>the written plan</b></td><td>{{ total_ci(ope.reactivation) }}</td><td>{{ money(ope.cost.total) }}</td><td></td><td></td><td></td></tr>
{% for b in ope.baselines %}
<tr><td class="l">{{ b.name }}</td><td>{{ total_ci(b.reactivation) }}</td><td>{{ money(b.cost.total) }}</td>
<td>{{ total_ci(b.difference, 1, True) }}</td><td>{{ pv(b.p_value) }}</td>
<td class="l {{ 'sig' if b.significant else '' }}">{{ 'yes' if b.significant else 'no' }}</td></tr>
{% endfor %}
</table>
<ul class="notes">{% for b in ope.baselines %}{% if b.statement %}<li>{{ b.statement }}</li>{% endif %}{% endfor %}</ul>
{% else %}<p class="sub">No off-policy estimate: the policy was run without --data (an experiment).</p>{% endif %}
{% if truth_text(policy) %}<p class="headline">{{ truth_text(policy) }}</p>{% endif %}
<p class="sub">Policy folder: {{ policy.folder }}.</p>
{% endif %}

<h2>Method</h2>
<ul class="notes">
<li>Analysis: {{ r.method.analysis }}; α = {{ r.method.alpha }}; correction: {{ r.method.correction }}.</li>
{% for m, t in r.method.tests.items() %}<li>{{ m }}{{ ' (primary)' if m == r.method.primary_metric else '' }}: {{ t }}</li>
{% endfor %}
{% for n in r.method.notes %}<li>{{ n }}</li>
{% endfor %}
</ul>
{% endblock %}
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
## Trend over the weekly looks ({{ r.method.primary_metric }})

| look | analysis | arm | effect | interval |
|---|---|---|---:|---|
{% for h in history_rows %}| {{ h.as_of }} | {{ h.analysis or '' }} | {{ h.arm }} | {{ eff(r.method.primary_metric, h.estimate) }} | {{ eff(r.method.primary_metric, h.ci_low) }} to {{ eff(r.method.primary_metric, h.ci_high) }} |
{% endfor %}{% endif %}
{% if r.cost %}
## Cost per incremental {{ noun }}{% if interim %} (to date: {{ interim }}){% endif %}

{% for c in r.cost %}- {{ c.arm }}: {{ cpir(c) }}.
{% endfor %}
| arm | total cost | incremental {{ noun }}s | cost per incremental {{ noun }} | Fieller CI | incremental revenue | ROI |
|---|---:|---:|---:|---|---:|---:|
{% for c in r.cost %}| {{ c.arm }} | {{ money(c.total_cost) }} | {{ num(c.incremental_reactivations, 1) }} | {{ money(c.cost_per_incremental_reactivation, 2) }} | {% if c.bounded %}{{ money(c.ci_low, 2) }} to {{ money(c.ci_high, 2) }}{% else %}unbounded{% endif %} | {{ money(c.incremental_revenue) }} | {{ pct(c.roi, 0) if c.roi is not none else 'n/a' }} |
{% endfor %}
ROI = (incremental revenue − incremental cost) / incremental cost.
{% endif %}{{ touches_md }}{% if r.segments %}
## Segments (heterogeneity: Cochran's Q)

| segment | arm | metric | Q | df | p |
|---|---|---|---:|---:|---:|
{% for b in r.segments %}{% for h in b.heterogeneity %}| {{ b.column }} | {{ h.arm }} | {{ h.metric }} | {{ num(h.q) }} | {{ h.df }} | {{ pv(h.p_value) }} |
{% endfor %}{% endfor %}{% endif %}{% if model %}
## Whom to treat: uplift model

{{ model_text(model) }}

{% for t in model.targeting %}- {{ targeting_text(model, t) }}
{% endfor %}
The Qini curves per arm are in report.html.

{% if model.selection %}{% for arm, why in model.selection.reasons.items() %}- {{ arm }}: {{ why }}
{% endfor %}
{% endif %}| learner | arm | budgeted value (pts per customer) | 95% CI | policy value (pts per customer) | 95% CI | Qini area (pts per customer) | Qini (causalml) | Qini CI | AUUC | fit (s) | peak memory (MiB) | chosen |
|---|---|---:|---|---:|---|---:|---:|---|---:|---:|---:|---|
{% for c in model.comparison %}| {{ c.learner }} | {{ c.arm }} | {{ pts(c.budgeted_value, 3) if c.budgeted_value is defined and c.budgeted_value is not none else 'n/a' }} | {% if c.budgeted_value_low is defined and c.budgeted_value_low is not none %}{{ pts(c.budgeted_value_low, 3) }} to {{ pts(c.budgeted_value_high, 3) }}{% endif %} | {{ pts(c.policy_value, 3) if c.policy_value is defined and c.policy_value is not none else 'n/a' }} | {% if c.policy_value_low is defined and c.policy_value_low is not none %}{{ pts(c.policy_value_low, 3) }} to {{ pts(c.policy_value_high, 3) }}{% endif %} | {{ pts(c.qini_area, 3) if c.qini_area is defined and c.qini_area is not none else 'n/a' }} | {{ num(c.qini, 3) }} | {{ num(c.qini_low, 3) }} to {{ num(c.qini_high, 3) }} | {{ num(c.auuc, 3) }} | {{ num(c.fit_seconds, 1) }} | {{ num(c.peak_rss_mib, 0) }} | {{ 'yes' if c.chosen else '' }} |
{% endfor %}
Policy value chooses the learner per arm (cross-fitted doubly robust, over treating nobody); Qini (causalml's normalisation) only where the arm's effect can be told from zero.

### Calibration: predicted against observed uplift by decile{{ ' (percentage points)' if model.outcome == 'binary' else '' }}

| arm | decile | treated | control | predicted | observed | 95% CI |
|---|---:|---:|---:|---:|---:|---|
{% for d in model.deciles %}| {{ d.arm }} | {{ d.bin }} | {{ num(d.n_treated, 0) }} | {{ num(d.n_control, 0) }} | {{ dval(model, d.predicted) }} | {{ dval(model, d.observed) }} | {{ dval(model, d.ci_low) }} to {{ dval(model, d.ci_high) }} |
{% endfor %}
Decile 1 = the highest predicted uplift; out of fold. Model folder: {{ model.folder }}.
{% endif %}{% if policy %}
## Next campaign: policy

{{ policy_md(policy) }}
{% if policy.off_policy %}{% set ope = policy.off_policy %}
### How much better than the alternatives (off-policy, on the last experiment)

{{ ope_text(policy) }}

| policy or baseline | reactivations (95% CI) | cost | policy minus baseline (95% CI) | p | significant |
|---|---:|---:|---:|---:|---|
| the written plan | {{ total_ci(ope.reactivation) }} | {{ money(ope.cost.total) }} | | | |
{% for b in ope.baselines %}| {{ b.name }} | {{ total_ci(b.reactivation) }} | {{ money(b.cost.total) }} | {{ total_ci(b.difference, 1, True) }} | {{ pv(b.p_value) }} | {{ 'yes' if b.significant else 'no' }} |
{% endfor %}
{% for b in ope.baselines %}{% if b.statement %}- {{ b.statement }}
{% endif %}{% endfor %}{% else %}
No off-policy estimate: the policy was run without --data (an experiment).
{% endif %}{% if truth_text(policy) %}
{{ truth_text(policy) }}
{% endif %}
### Budget curve (the plot is in report.html)

| budget | cost | expected incremental reactivations |
|---:|---:|---:|
{% for b in policy.budget_curve.budget %}| {{ money(b) }} | {{ money(policy.budget_curve.cost[loop.index0]) if policy.budget_curve.cost else 'n/a' }} | {{ num(policy.budget_curve.reactivations[loop.index0], 1) }} |
{% endfor %}
Each point is the written plan at that budget (the same exploration reserve, then the optimised allocation). Policy folder: {{ policy.folder }}.
{% endif %}
## Method

- Analysis: {{ r.method.analysis }}; α = {{ r.method.alpha }}; correction: {{ r.method.correction }}.
{% for m, t in r.method.tests.items() %}- {{ m }}{{ ' (primary)' if m == r.method.primary_metric else '' }}: {{ t }}
{% endfor %}{% for n in r.method.notes %}- {{ n }}
{% endfor %}"""
