"""The README's Spark example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_spark_example_runs(spark, capsys):
    text = README.read_text()
    section = text[text.index("## On Apache Spark"):text.index("## What is where")]
    [block] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    exec(compile(block, "README.md", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert "arm='control'" in out and "arm='coupon'" in out
