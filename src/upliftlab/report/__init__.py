"""The weekly report: report.json, report.md and a self-contained report.html in one folder,
with the uplift model's and the next campaign's sections when their folders are given.

Written atomically: everything goes to a temporary folder beside DIR, which then replaces DIR.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from upliftlab._files import claim, staged_dir

REPORT_FILES = ("report.json", "report.md", "report.html")

__all__ = ["REPORT_FILES", "headlines", "load_model_section", "load_policy_section",
           "render_html", "render_markdown", "write_report"]


def headlines(report: Mapping[str, Any]) -> list[str]:
    """The report's headlines (report.json as a dict): one sentence per treatment arm on the
    primary metric, with its cost when known (what `upliftlab report` prints)."""
    from upliftlab.report._text import headlines as lines

    return lines(dict(report))


def load_model_section(folder: str | os.PathLike) -> dict[str, Any]:
    """The report.json `model` section of a model folder (InputError if it is not one)."""
    from upliftlab.report._sections import load_model

    return load_model(folder)


def load_policy_section(folder: str | os.PathLike) -> dict[str, Any]:
    """The report.json `policy` section of a policy folder (InputError if it is not one)."""
    from upliftlab.report._sections import load_policy

    return load_policy(folder)


# a model / policy folder, or the section already loaded from one
Section = str | os.PathLike | Mapping[str, Any] | None


def _as_dict(result: Any, history: Sequence[Mapping[str, Any]] | None,
             model: Any = None, policy: Any = None, touches: Any = None) -> dict[str, Any]:
    from upliftlab.jsonsafe import json_safe
    from upliftlab.report._sections import load_model, load_policy, section

    report = result.to_dict() if hasattr(result, "to_dict") else json_safe(dict(result))
    if history is not None:
        report["history"] = [compact(h) for h in history]
    elif report.get("history"):
        report["history"] = [compact(h) for h in report["history"]]
    if model is not None:
        report["model"] = json_safe(section(model, load_model))
    if policy is not None:
        report["policy"] = json_safe(section(policy, load_policy))
    if touches is not None:
        from upliftlab.touches import ASSUMPTIONS, touches_to_dict

        report["touches"] = touches_to_dict(touches)
        report["method"]["notes"] = list(report["method"]["notes"]) + [
            "Touches: " + ASSUMPTIONS]
    return report


def compact(week: Mapping[str, Any]) -> dict[str, Any]:
    """What the trend needs of a past week: its date and its comparisons."""
    from upliftlab.jsonsafe import json_safe

    keep = ("arm", "control", "metric", "estimate", "ci_low", "ci_high", "p_value",
            "p_value_adjusted", "significant", "relative_lift")
    return json_safe({"as_of": week.get("as_of"),
                      "analysis": (week.get("method") or {}).get("analysis")
                      or week.get("analysis"),
                      "comparisons": [{k: c.get(k) for k in keep} for c in
                                      week.get("comparisons", [])]})


def _context(report: dict[str, Any]) -> dict[str, Any]:
    from upliftlab import __version__
    from upliftlab.report import _text as t

    def val(metric, x):
        return t.value_text(report, metric, x)

    def eff(metric, x):
        return t.points(x) + " pts" if t.is_rate(report, metric) and x is not None else t.signed(x)

    name = report.get("experiment") or "Experiment"
    cur = t.currency(report)
    interim = t.coverage(report)
    sub = [f"as of {report['as_of']}" if report.get("as_of") else None,
           f"{interim} of the outcome window observed; effects and costs to date"
           if interim else None,
           f"{sum(a['n'] for a in report['arms']):,} customers in {len(report['arms'])} arms",
           f"{report['method']['analysis']} analysis"]
    history_rows = []
    primary = report["method"]["primary_metric"]
    for week in list(report.get("history") or []) + [report]:
        for c in week.get("comparisons", []):
            if c["metric"] == primary:
                history_rows.append({"as_of": week.get("as_of") or "this look",
                                     "analysis": week.get("analysis") or (
                                         week.get("method") or {}).get("analysis"), **c})
    return {
        "r": report, "title": f"{name}: uplift report", "subtitle": " · ".join(s for s in sub if s),
        "headlines": t.headlines(report), "srm_text": t.srm_text(report), "ci": t.ci_label(report),
        "val": val, "eff": eff, "pct": t.pct, "pv": t.pvalue, "num": t.num,
        "money": lambda x, digits=2: t.money(x, digits, cur), "interim": interim,
        "campaign": t.from_experiment(report), "noun": t.primary_noun(report),
        "cpir": lambda c: t.cpir_text(report, c), "version": __version__,
        "history_rows": history_rows if report.get("history") else [],
        "pts": t.points, "signed": t.signed, "model_text": t.model_text,
        "targeting_text": t.targeting_text, "dval": t.decile_value,
        "total_ci": t.total_ci, "ope_text": lambda p: t.ope_text(p, cur),
        "truth_text": lambda p: t.truth_text(p, cur), "model": report.get("model"),
        "policy": report.get("policy"), "policy_html": _policy_html, "policy_md": _policy_md,
    }


def _policy_html(policy: dict[str, Any]) -> str:
    from upliftlab.policy.render import section_html

    return section_html(policy)


def _policy_md(policy: dict[str, Any]) -> str:
    from markupsafe import Markup

    from upliftlab.policy.render import section_markdown

    # already Markdown (its own cells are escaped by the renderer): not escaped again
    return Markup(section_markdown(policy))


def render_markdown(result: Any, history: Sequence[Mapping[str, Any]] | None = None, *,
                    model: Section = None, policy: Section = None) -> str:
    """report.md: the same content as the HTML, without figures (see `write_report` for
    `model` and `policy`)."""
    import jinja2

    from upliftlab.report._template import MARKDOWN

    from markupsafe import Markup

    from upliftlab.report._touches import render as touch_section

    report = _as_dict(result, history, model, policy)
    env = jinja2.Environment(autoescape=False, trim_blocks=False, undefined=jinja2.Undefined,
                             finalize=markdown_text)
    # the touch section is rendered Markdown already: not escaped again
    touches_md = Markup(touch_section(report, "md"))
    return env.from_string(MARKDOWN).render(**_context(report),
                                            touches_md=touches_md).strip() + "\n"


_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def markdown_text(value: Any) -> Any:
    """A value as inert Markdown text: an arm label such as `<script>` must not become HTML in a
    Markdown viewer (`&lt;script>`), and a `|` must not split a table cell."""
    from markupsafe import Markup

    if not isinstance(value, str) or isinstance(value, Markup):  # Markup: a rendered section
        return value
    return _TAG_START.sub("&lt;", value).replace("|", "\\|")


def render_html(result: Any, history: Sequence[Mapping[str, Any]] | None = None, *,
                model: Section = None, policy: Section = None) -> str:
    """report.html: self-contained (inline CSS, SVG figures and the model's and policy's PNGs
    as data: URIs; no scripts, no network)."""
    from upliftlab.report import plots
    from upliftlab.report._sections import model_figures, policy_figure
    from upliftlab.report._template import HTML
    from upliftlab.report.page import render_page

    report = _as_dict(result, history, model, policy)
    ctx = _context(report)
    ctx.update(qini_figs=model_figures(report["model"]) if report.get("model") else {},
               budget_fig=policy_figure(report["policy"]) if report.get("policy") else None)
    from upliftlab.report._touches import render as touch_section

    ctx.update(touches_html=touch_section(report, "html"))
    ctx.update(forest=plots.forest(report),
               trend=plots.trend(report, report.get("history") or []),
               cost_fig=plots.cost(report), seg_figs=plots.segments(report))
    return render_page(HTML, **ctx)


def write_report(result: Any, out: str | os.PathLike, *,
                 history: Sequence[Mapping[str, Any]] | None = None,
                 model: Section = None, policy: Section = None, touches: Any = None,
                 before_swap: Callable[[], None] | None = None) -> Path:
    """Write report.json, report.md and report.html into `out`, replacing an earlier report.

    `result` is an AnalysisResult (or its `.to_dict()`); `history` the earlier weeks'
    report.json dicts (for the trend). A folder holding anything but a report is refused.

    `model`: a folder written by `upliftlab model fit` (or the section `load_model_section`
    returned) adds "Whom to treat: uplift model" (Qini plots, learner comparison, calibration
    deciles); `policy`: a folder written by `upliftlab policy` (or `load_policy_section`'s
    dict) adds "Next campaign: policy" (plan, budget curve, off-policy estimate vs baselines).
    Only JSON, CSV, Parquet and PNG files are read, never model.pkl. A missing or invalid
    folder raises InputError before anything is written. `touches` (a `TouchResult` from
    `upliftlab.touches.analyze_touches`, or its dict) adds the funnel and the effects on the
    reached, and their assumptions to the method section. `before_swap` runs when the new
    folder is complete, just before it replaces `out` (the weekly report commits its store row
    there, so a report on disk always has its row).
    """
    out = claim(out, "report", REPORT_FILES)
    report = _as_dict(result, history, model, policy, touches)
    text_json = json.dumps(report, indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    text_md = render_markdown(report)
    text_html = render_html(report)
    with staged_dir(out, owner="report", legacy=REPORT_FILES, before_swap=before_swap) as tmp:
        for name, text in zip(REPORT_FILES, (text_json, text_md, text_html)):
            (tmp / name).write_text(text, encoding="utf-8")
    return out
