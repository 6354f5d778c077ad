"""policy.md and policy.html with a hostile arm label: it stays text (no HTML element in either
file) and a `|` in it does not split a Markdown table cell; the same in the report's section."""

from __future__ import annotations

import numpy as np

from upliftlab.policy.io import Scores
from upliftlab.policy.render import section_html, section_markdown
from upliftlab.policy.run import run_policy

HOSTILE = "<script>alert(1)</script>|x"


def _plan(tmp_path):
    rng = np.random.default_rng(4)
    n = 600
    base = rng.beta(2, 30, n)
    up = {"coupon": np.clip(rng.normal(0.02, 0.02, n), -base, 1 - base),
          HOSTILE: np.clip(rng.normal(0.03, 0.03, n), -base, 1 - base)}
    scores = Scores(np.arange(n), base, up, "hostile.csv")
    out = tmp_path / "policy"
    result = run_policy(scores, budget=60.0, costs={"coupon": (0.1, 1.0), HOSTILE: (0.2, 0.0)},
                        explore_budget="10%", out=out)
    return result, out


def _table_rows(md: str, first_cell: str) -> list[str]:
    return [line for line in md.splitlines() if line.startswith(f"| {first_cell}")]


def test_a_hostile_arm_label_is_inert_in_policy_md_and_html(tmp_path):
    result, out = _plan(tmp_path)
    md = (out / "policy.md").read_text()
    html = (out / "policy.html").read_text()
    assert "<script" not in md and "<script" not in html
    assert "&lt;script>alert(1)&lt;/script>\\|x" in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;|x" in html
    # the "Who gets what" table: one row per arm, as many cells as the header has
    header = next(line for line in md.splitlines() if line.startswith("| arm |"))
    row = _table_rows(md, "&lt;script>")
    assert len(row) == 1
    cells = lambda line: len(line.replace("\\|", "").split("|"))  # noqa: E731
    assert cells(row[0]) == cells(header)
    # the report's policy section is the same rendering
    assert "<script" not in section_markdown(result) and "<script" not in section_html(result)
