"""The README's Python quickstart runs as written (so the first thing a newcomer copies works)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_python_quickstart_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python block"
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "README.md", "exec"), {"__name__": "__readme__"})
    assert "coupon" in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "reports" / "api-demo").iterdir()} == {
        "report.json", "report.md", "report.html", ".upliftlab.json"}


def test_readme_opens_with_the_two_commands():
    head = README.read_text().split("## ")[0]
    assert "make demo" in head and "make test" in head
