"""Figures of the report as inline SVG: forest plot, weekly trend, cost, segments.

matplotlib with the Agg backend, imported here only (the CLI and library stay light).
"""

from __future__ import annotations

import io
from typing import Any

from upliftlab.report._text import is_rate


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    # text as <text>, not glyph paths: smaller, and no clashing glyph ids between inlined SVGs
    plt.rcParams["svg.fonttype"] = "none"
    return plt


def _svg(fig) -> str:
    buf = io.StringIO()
    # no creation date in the SVG metadata: the same report renders to the same bytes
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    _plt().close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE for inlining


def forest(report: dict[str, Any]) -> str:
    """Relative lift with its (adjusted) interval per arm and metric."""
    plt = _plt()
    rows = [c for c in report["comparisons"] if c["relative_lift"] is not None]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
    for i, c in enumerate(reversed(rows)):
        lo, hi = c["relative_ci_low"], c["relative_ci_high"]
        color = "#1b7f3b" if c["significant"] else "#777777"
        if lo is not None and hi is not None:
            ax.plot([100 * lo, 100 * hi], [i, i], color=color, lw=2)
        ax.plot(100 * c["relative_lift"], i, "o", color=color)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{c['arm']} · {c['metric']}" for c in reversed(rows)])
    ax.set_xlabel("relative lift vs control (%)")
    ax.set_title("Lift with intervals (green: significant after correction)", fontsize=10)
    return _svg(fig)


def trend(report: dict[str, Any], history: list[dict[str, Any]]) -> str | None:
    """Primary-metric effect and interval per arm over the weekly looks (history + this week)."""
    primary = report["method"]["primary_metric"]
    weeks = [h for h in history if h.get("comparisons")] + [report]
    if len(weeks) < 2:
        return None
    plt = _plt()
    scale = 100 if is_rate(report, primary) else 1
    fig, ax = plt.subplots(figsize=(7, 3.2))
    arms = [c["arm"] for c in report["comparisons"] if c["metric"] == primary]
    labels = [str(w.get("as_of") or ("this look" if w is report else f"look {i + 1}"))
              for i, w in enumerate(weeks)]
    for j, arm in enumerate(arms):
        xs, est, lo, hi = [], [], [], []
        for i, w in enumerate(weeks):
            c = next((c for c in w["comparisons"] if c["arm"] == arm and c["metric"] == primary),
                     None)
            if c is None or c.get("estimate") is None:
                continue
            xs.append(i + 0.06 * j)
            est.append(scale * c["estimate"])
            lo.append(scale * (c["ci_low"] if c["ci_low"] is not None else c["estimate"]))
            hi.append(scale * (c["ci_high"] if c["ci_high"] is not None else c["estimate"]))
        line, = ax.plot(xs, est, "o-", label=arm)
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(weeks)))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"{primary} effect" + (" (points)" if scale == 100 else ""))
    ax.legend(fontsize=8)
    ax.set_title("Effect on the primary metric, week by week", fontsize=10)
    return _svg(fig)


def cost(report: dict[str, Any]) -> str | None:
    rows = [c for c in report.get("cost") or [] if c["cost_per_incremental_reactivation"] is not None
            and (c["incremental_reactivations"] or 0) > 0]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.2))
    for i, c in enumerate(rows):
        est = c["cost_per_incremental_reactivation"]
        if c["bounded"]:
            ax.plot([c["ci_low"], c["ci_high"]], [i, i], color="#1f4e9c", lw=2)
            ax.plot(est, i, "o", color="#1f4e9c")
        else:
            ax.plot(est, i, "o", color="#b03a2e")
            ax.annotate("interval unbounded", (est, i), textcoords="offset points",
                        xytext=(8, 4), fontsize=8, color="#b03a2e")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([c["arm"] for c in rows])
    ax.set_xlabel("cost per incremental reactivation ($), Fieller interval")
    return _svg(fig)


def segments(report: dict[str, Any]) -> list[tuple[str, str]]:
    """One figure per segment column: primary-metric effect per value and arm."""
    primary = report["method"]["primary_metric"]
    scale = 100 if is_rate(report, primary) else 1
    out = []
    for block in report.get("segments") or []:
        rows = [r for r in block["rows"] if r["metric"] == primary]
        if not rows:
            continue
        plt = _plt()
        fig, ax = plt.subplots(figsize=(7, 0.4 * len(rows) + 1.2))
        for i, r in enumerate(reversed(rows)):
            ax.plot([scale * r["ci_low"], scale * r["ci_high"]], [i, i], color="#555", lw=2)
            ax.plot(scale * r["estimate"], i, "o", color="#1f4e9c")
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([f"{r['value']} · {r['arm']}" for r in reversed(rows)], fontsize=8)
        ax.set_xlabel(f"{primary} effect" + (" (points)" if scale == 100 else ""))
        ax.set_title(f"By {block['column']}", fontsize=10)
        out.append((block["column"], _svg(fig)))
    return out
