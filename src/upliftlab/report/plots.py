"""Figures of the reports as inline SVG: `pyplot()` and `svg(fig)` for every report's figures
(weekly, programme, churn risk), and the weekly report's forest plot, trend, cost and segments.

matplotlib with the Agg backend, imported here only (the CLI and library stay light).
"""

from __future__ import annotations

import io
from typing import Any

from upliftlab.report._text import is_rate


def pyplot():
    """matplotlib.pyplot on the Agg backend, set up for inline SVG."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    # text as <text>, not glyph paths: smaller, and no clashing glyph ids between inlined SVGs
    plt.rcParams["svg.fonttype"] = "none"
    return plt


def svg(fig) -> str:
    """The figure as an inline <svg> element (closed afterwards); the same figure gives the same
    bytes."""
    buf = io.StringIO()
    # no creation date in the SVG metadata: the same report renders to the same bytes
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    pyplot().close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE for inlining


def forest(report: dict[str, Any]) -> str:
    """Relative lift with its (adjusted) interval per arm and metric."""
    plt = pyplot()
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
    return svg(fig)


def trend(report: dict[str, Any], history: list[dict[str, Any]]) -> str | None:
    """Primary-metric effect and interval per arm over the looks, on a date axis: the weekly
    always-valid looks as a band, a fixed-horizon (final) look as a separate point with its
    interval, set apart by a dashed line, since it is not one more point of the same sequence."""
    import datetime as dt

    primary = report["method"]["primary_metric"]
    weeks = [h for h in history if h.get("comparisons")] + [report]
    if len(weeks) < 2:
        return None

    def day(w: dict[str, Any]) -> dt.date | None:
        try:
            return dt.date.fromisoformat(str(w.get("as_of")))
        except ValueError:
            return None

    def analysis(w: dict[str, Any]) -> str:
        return w.get("analysis") or (w.get("method") or {}).get("analysis") or "sequential"

    dated = all(day(w) is not None for w in weeks)
    plt = pyplot()
    scale = 100 if is_rate(report, primary) else 1
    fig, ax = plt.subplots(figsize=(7, 3.2))
    arms = [c["arm"] for c in report["comparisons"] if c["metric"] == primary]
    for j, arm in enumerate(arms):
        seq, fixed = ([], [], [], []), ([], [], [], [])
        for i, w in enumerate(weeks):
            c = next((c for c in w["comparisons"] if c["arm"] == arm and c["metric"] == primary),
                     None)
            if c is None or c.get("estimate") is None:
                continue
            x = day(w) + dt.timedelta(hours=8 * j) if dated else i + 0.06 * j
            target = fixed if analysis(w) == "fixed" else seq
            target[0].append(x)
            target[1].append(scale * c["estimate"])
            target[2].append(scale * (c["ci_low"] if c["ci_low"] is not None else c["estimate"]))
            target[3].append(scale * (c["ci_high"] if c["ci_high"] is not None else c["estimate"]))
        color = None
        if seq[0]:
            line, = ax.plot(seq[0], seq[1], "o-", label=arm)
            color = line.get_color()
            ax.fill_between(seq[0], seq[2], seq[3], color=color, alpha=0.15)
        if fixed[0]:
            err = [[e - lo for e, lo in zip(fixed[1], fixed[2])],
                   [hi - e for e, hi in zip(fixed[1], fixed[3])]]
            ax.errorbar(fixed[0], fixed[1], yerr=err, fmt="s", capsize=4, color=color,
                        label=None if seq[0] else arm)
    finals = [day(w) if dated else i for i, w in enumerate(weeks) if analysis(w) == "fixed"]
    if finals:
        seq_days = [day(w) if dated else i for i, w in enumerate(weeks)
                    if analysis(w) != "fixed"]
        if seq_days:
            last = max(seq_days)
            mid = last + (min(finals) - last) / 2
            ax.axvline(mid, color="#888", ls="--", lw=0.8)
        ax.annotate("final, fixed-horizon", (min(finals), 1), xycoords=("data", "axes fraction"),
                    xytext=(0, -12), textcoords="offset points", ha="center", fontsize=8,
                    color="#555")
    ax.axhline(0, color="black", lw=0.8)
    if dated:
        import matplotlib.dates as mdates

        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
        ax.set_xticks(sorted({day(w) for w in weeks}))
    else:
        ax.set_xticks(range(len(weeks)))
        ax.set_xticklabels([f"look {i + 1}" for i in range(len(weeks))])
    for label in ax.get_xticklabels():
        label.set_rotation(30)
        label.set_ha("right")
        label.set_fontsize(8)
    ax.set_ylabel(f"{primary} effect" + (" (points)" if scale == 100 else ""))
    ax.legend(fontsize=8)
    ax.set_title("Effect on the primary metric: weekly always-valid looks (bands)"
                 + (" and the final fixed-horizon analysis (squares)" if finals else ""),
                 fontsize=9)
    return svg(fig)


def cost(report: dict[str, Any]) -> str | None:
    from upliftlab.money import symbol
    from upliftlab.report._text import currency, primary_noun

    rows = [c for c in report.get("cost") or [] if c["cost_per_incremental_reactivation"] is not None
            and (c["incremental_reactivations"] or 0) > 0]
    if not rows:
        return None
    plt = pyplot()
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
    ax.set_xlabel(f"cost per incremental {primary_noun(report)} "
                  f"({symbol(currency(report)).strip()}), Fieller interval")
    return svg(fig)


def segments(report: dict[str, Any]) -> list[tuple[str, str]]:
    """One figure per segment column: primary-metric effect per value and arm."""
    primary = report["method"]["primary_metric"]
    scale = 100 if is_rate(report, primary) else 1
    out = []
    for block in report.get("segments") or []:
        rows = [r for r in block["rows"] if r["metric"] == primary]
        if not rows:
            continue
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(7, 0.4 * len(rows) + 1.2))
        for i, r in enumerate(reversed(rows)):
            ax.plot([scale * r["ci_low"], scale * r["ci_high"]], [i, i], color="#555", lw=2)
            ax.plot(scale * r["estimate"], i, "o", color="#1f4e9c")
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([f"{r['value']} · {r['arm']}" for r in reversed(rows)], fontsize=8)
        ax.set_xlabel(f"{primary} effect" + (" (points)" if scale == 100 else ""))
        ax.set_title(f"By {block['column']}", fontsize=10)
        out.append((block["column"], svg(fig)))
    return out
