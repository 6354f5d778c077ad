"""The README's Spark example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_spark_example_runs(spark, capsys, tmp_path, monkeypatch):
    """Its Python blocks, in order, in one namespace (the allocation uses the first's world)."""
    text = README.read_text()
    section = text[text.index("## On Apache Spark"):text.index("## What is where")]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__readme__"}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "arm='control'" in out and "arm='coupon'" in out
    assert "gap to the dual bound" in out and namespace["plan"].expected_cost <= 150
    # written where Python's working directory is (Spark's JVM has its own: paths absolute)
    assert list((tmp_path / "plan_spark").glob("part-*.parquet"))
