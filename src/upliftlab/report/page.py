"""The page every HTML report shares (weekly, programme, churn risk; policy.html takes its
stylesheet): one stylesheet, title and subtitle, the headline block and the footer, as a jinja2
base template that each report's page extends (`{% extends "base.html" %}`).
"""

from __future__ import annotations

from typing import Any

STYLE = """<style>
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
 figure.png { margin: 0.6em 0; } figure.png img { max-width: 100%; height: auto; }
 .row { display: flex; flex-wrap: wrap; gap: 0 1.2em; align-items: flex-start; }
 figure.half { flex: 0 1 48%; margin: 0.4em 0; }
 h3 { font-size: 1.02em; margin-top: 1.2em; }
</style>"""

BASE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{ title }}</title>
""" + STYLE + r"""
</head>
<body>
<h1>{{ title }}</h1>
<div class="sub">{% block subtitle %}{{ subtitle }}{% endblock %}</div>
{% block headline %}
<h2>Headline</h2>
{% for h in headlines %}<p class="headline">{{ h }}</p>
{% endfor %}{% endblock %}
{% block content %}{% endblock %}
<p class="sub">Written by upliftlab {{ version }}.</p>
</body>
</html>
"""


def render_page(template: str, **context: Any) -> str:
    """A report page (`template` extends "base.html"), autoescaped; `version` is filled in."""
    import jinja2

    from upliftlab import __version__

    env = jinja2.Environment(loader=jinja2.DictLoader({"base.html": BASE}), autoescape=True)
    return env.from_string(template).render(**{"version": __version__, **context})


__all__ = ["BASE", "STYLE", "render_page"]
