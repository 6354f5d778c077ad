"""The reports' shared page (`upliftlab.report.page`): one stylesheet and layout that the weekly,
programme and churn-risk pages extend, and policy.html's style; none keeps a copy."""

from __future__ import annotations

import pytest

from upliftlab.report.page import STYLE, render_page


def _templates() -> dict[str, str]:
    from upliftlab.report import programme
    from upliftlab.report._template import HTML
    from upliftlab.risk import report as risk_report

    return {"weekly": HTML, "programme": programme._HTML, "risk": risk_report._HTML}


@pytest.mark.parametrize("name", ["weekly", "programme", "risk"])
def test_every_report_page_extends_the_shared_page_and_keeps_no_copy_of_it(name):
    text = _templates()[name]
    assert text.startswith('{% extends "base.html" %}')
    for own in ("<style", "<html", "<head", "<body", "<h1>"):
        assert own not in text


def test_the_shared_page_renders_title_headlines_blocks_and_footer():
    from upliftlab import __version__

    html = render_page('{% extends "base.html" %}{% block content %}<p id="c">{{ x }}</p>'
                       '{% endblock %}', title="T <1>", subtitle="S", headlines=["h & 1"],
                       x="<b>")
    assert html.count(STYLE) == 1 and "<title>T &lt;1&gt;</title>" in html
    assert '<p class="headline">h &amp; 1</p>' in html and '<p id="c">&lt;b&gt;</p>' in html
    assert f"Written by upliftlab {__version__}." in html


def test_policy_html_takes_the_shared_style():
    from upliftlab.policy.render import report_style

    assert report_style() == STYLE and STYLE.startswith("<style>") and "th, td" in STYLE
