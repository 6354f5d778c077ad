"""The risk report: report.json, report.md and a self-contained report.html on the reports'
shared page (`report.page`), with the out-of-time comparison table, the calibration plot,
the lift chart, the importance of the features and the risk levels' sizes and mean features.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from upliftlab.report import REPORT_FILES


def risk_report(fit: Any) -> dict[str, Any]:
    """The report.json content of a `RiskFit` (stable field names)."""
    from upliftlab.jsonsafe import json_safe

    return json_safe({
        "kind": "churn_risk",
        "horizon_days": fit.horizon,
        "dormant_after": fit.dormant_after,
        "train_snapshots": [d.isoformat() for d in fit.train_snapshots],
        "eval_snapshot": fit.eval_snapshot.isoformat(),
        "n_train": fit.n_train,
        "comparison": fit.comparison.to_dict("records"),
        "calibration": fit.calibration.to_dict("records"),
        "lift": fit.lift.to_dict("records"),
        "importance": fit.importance.to_dict("records"),
        "levels": {"thresholds": fit.levels.to_dict(), "summary": fit.level_summary},
        "bgnbd_params": dict(zip(("r", "alpha_weeks", "a", "b"), fit.bgnbd_params)),
    })


def _figures(report: dict[str, Any]) -> tuple[str, str]:
    from upliftlab.report.plots import pyplot, svg

    plt = pyplot()
    cal = report["calibration"]
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for c in cal:
        ax.plot([c["predicted"]] * 2, [c["observed_low"], c["observed_high"]], color="#777", lw=1.5)
    ax.plot([c["predicted"] for c in cal], [c["observed"] for c in cal], "o", color="#1f5fa8")
    ax.plot([0, 1], [0, 1], "--", color="black", lw=0.8)
    ax.set_xlabel("predicted P(dormant), mean per decile")
    ax.set_ylabel("observed share dormant (95% interval)")
    ax.set_title("Calibration out of time", fontsize=10)
    calibration = svg(fig)
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for name in dict.fromkeys(r["scorer"] for r in report["lift"]):
        pts = [r for r in report["lift"] if r["scorer"] == name]
        ax.plot([0] + [100 * r["share"] for r in pts], [0] + [100 * r["capture"] for r in pts],
                label=name)
    ax.plot([0, 100], [0, 100], ":", color="black", lw=0.8, label="random")
    ax.set_xlabel("customers targeted, highest risk first (%)")
    ax.set_ylabel("of those who went dormant, captured (%)")
    ax.set_title("Capture (lift) chart", fontsize=10)
    ax.legend(fontsize=8)
    return calibration, svg(fig)


_HTML = r"""{% extends "base.html" %}
{% block subtitle %}Trained on {{ r.train_snapshots | join(", ") }} ({{ "{:,}".format(r.n_train) }}
rows); evaluated out of time on {{ r.eval_snapshot }}. Label: no purchase in the {{ r.horizon_days }}
days after the snapshot, among customers active (a purchase in the {{ r.dormant_after }} days before).{% endblock %}
{% block content %}
<h2>Model against the baselines (out of time)</h2>
{{ table | safe }}
<p class="sub">AUC and PR-AUC with 95% Poisson-bootstrap intervals. Brier only for probabilities
(the overdue rule ranks). Capture: share of those who went dormant found in the top k% by risk;
lift: their dormancy rate over the average.</p>
<div class="row"><figure class="half fig">{{ calibration | safe }}</figure>
<figure class="half fig">{{ lift | safe }}</figure></div>
<h2>Calibration by decile</h2>
{{ cal_table | safe }}
<h2>Risk levels</h2>
<p>Thresholds: high at risk ≥ {{ "%.3f" % r.levels.thresholds.high }}, medium at risk ≥
{{ "%.3f" % r.levels.thresholds.medium }} (customers of the evaluation snapshot).</p>
{{ level_table | safe }}
<h2>What drives the risk</h2>
{{ imp_table | safe }}
<p class="sub">Share of the boosted trees' total gain per feature.</p>
{% endblock %}
"""


def _fmt(v: Any, f: str) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    return f.format(v)


def _table(rows: list[dict[str, Any]], cols: list[tuple[str, str, str]], html: bool) -> str:
    head = [h for _, h, _ in cols]
    body = [[_fmt(r.get(k), f) for k, _, f in cols] for r in rows]
    if not html:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(b) + " |" for b in body])
    th = "".join(f'<th class="l">{h}</th>' if i == 0 else f"<th>{h}</th>"
                 for i, h in enumerate(head))
    trs = "".join("<tr>" + "".join(f'<td class="l">{c}</td>' if i == 0 else f"<td>{c}</td>"
                                   for i, c in enumerate(b)) + "</tr>" for b in body)
    return f"<table><tr>{th}</tr>{trs}</table>"


_COMPARISON = [("name", "scorer", "{}"), ("auc", "ROC-AUC", "{:.3f}"),
               ("auc_low", "low", "{:.3f}"), ("auc_high", "high", "{:.3f}"),
               ("pr_auc", "PR-AUC", "{:.3f}"), ("brier", "Brier", "{:.4f}"),
               ("capture_10", "capture 10%", "{:.1%}"), ("capture_20", "capture 20%", "{:.1%}"),
               ("capture_30", "capture 30%", "{:.1%}"), ("lift_10", "lift 10%", "{:.2f}"),
               ("lift_20", "lift 20%", "{:.2f}"), ("lift_30", "lift 30%", "{:.2f}")]
_CALIBRATION = [("decile", "decile", "{}"), ("n", "customers", "{:,}"),
                ("predicted", "predicted", "{:.3f}"), ("observed", "observed", "{:.3f}"),
                ("observed_low", "low", "{:.3f}"), ("observed_high", "high", "{:.3f}"),
                ("within", "within", "{}")]
_LEVELS = [("level", "level", "{}"), ("customers", "customers", "{:,}"),
           ("share", "share", "{:.1%}"), ("mean_risk", "mean risk", "{:.3f}"),
           ("mean_dormant", "went dormant", "{:.1%}"),
           ("mean_days_since_last", "recency d", "{:.0f}"),
           ("mean_orders_365d", "orders 365d", "{:.1f}"),
           ("mean_revenue_365d", "revenue 365d", "{:,.2f}"),
           ("mean_overdue_ratio", "overdue", "{:.2f}"), ("mean_trend", "trend", "{:+.2f}")]
_IMPORTANCE = [("feature", "feature", "{}"), ("importance", "importance", "{:.1%}")]


def headlines(report: dict[str, Any]) -> list[str]:
    rows = {r["name"]: r for r in report["comparison"]}
    m = rows["model"]
    out = [f"The model ranks who goes dormant within {report['horizon_days']} days with ROC-AUC "
           f"{m['auc']:.3f} ({m['auc_low']:.3f} to {m['auc_high']:.3f}) out of time; its top 10% "
           f"by risk hold {m['capture_10']:.0%} of those who went dormant."]
    for name in ("overdue rule", "BG/NBD"):
        if name in rows:
            out.append(f"{name}: ROC-AUC {rows[name]['auc']:.3f}.")
    hi = report["levels"]["summary"][0]
    out.append(f"High risk: {hi['customers']:,} customers ({_fmt(hi['share'], '{:.1%}')}).")
    return out


def render_markdown(report: dict[str, Any]) -> str:
    parts = [f"# Churn risk: {report['horizon_days']}-day dormancy",
             f"Evaluated out of time on {report['eval_snapshot']}; trained on "
             f"{', '.join(report['train_snapshots'])}.", "", *headlines(report), "",
             "## Model against the baselines (out of time)", "",
             _table(report["comparison"], _COMPARISON, False), "", "## Calibration by decile", "",
             _table(report["calibration"], _CALIBRATION, False), "", "## Risk levels", "",
             _table(report["levels"]["summary"], _LEVELS, False), "",
             "## What drives the risk", "", _table(report["importance"], _IMPORTANCE, False), ""]
    return "\n".join(parts)


def render_html(report: dict[str, Any]) -> str:
    from upliftlab.report.page import render_page

    calibration, lift = _figures(report)
    return render_page(
        _HTML, title=f"Churn risk: {report['horizon_days']}-day dormancy", r=report,
        headlines=headlines(report), calibration=calibration, lift=lift,
        table=_table(report["comparison"], _COMPARISON, True),
        cal_table=_table(report["calibration"], _CALIBRATION, True),
        level_table=_table(report["levels"]["summary"], _LEVELS, True),
        imp_table=_table(report["importance"], _IMPORTANCE, True))


def write_report_files(report: dict[str, Any], folder: Path) -> None:
    """report.json, report.md, report.html into `folder` (the caller stages it)."""
    texts = (json.dumps(report, indent=2, allow_nan=False, ensure_ascii=False) + "\n",
             render_markdown(report), render_html(report))
    for name, text in zip(REPORT_FILES, texts):
        (Path(folder) / name).write_text(text, encoding="utf-8")


__all__ = ["render_html", "render_markdown", "risk_report", "write_report_files"]
