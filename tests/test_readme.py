"""The README's Python quickstart runs as written (so the first thing a newcomer copies works)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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


@pytest.mark.slow
def test_cli_quickstart_runs_as_written(tmp_path, monkeypatch, capsys):
    """The README's command-line quickstart, command by command, on a smaller world."""
    import shlex
    import shutil

    from upliftlab.cli import main

    root = README.parent
    block = re.search(r"```sh\n# a simulated world(.*?)```", README.read_text(), flags=re.S)
    assert block, "README has no command-line quickstart"
    lines = block.group(0).splitlines()[1:-1]
    commands, current = [], ""
    for line in lines:
        line = re.sub(r"\s+#.*$|^#.*$", "", line).rstrip()  # comments (no '#' in arguments)
        current += line.rstrip("\\") + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            if current.strip():
                commands.append(current.strip())
            current = ""
    shutil.copytree(root / "experiments", tmp_path / "experiments")
    monkeypatch.chdir(tmp_path)
    shared = (root.parent / "shared" / "data").resolve()
    ran = []
    for command in commands:
        if command.startswith("export "):
            name, _, value = command.removeprefix("export ").partition("=")
            monkeypatch.setenv(name, value)
            continue
        args = shlex.split(command.replace("--n-customers 200000", "--n-customers 6000"))
        assert args[0] == "upliftlab", command
        if any("../shared/data" in a for a in args):
            if not shared.exists():
                continue  # the real data lives in ../shared (absent here)
            args = [a.replace("../shared/data", str(shared)) for a in args]
        try:
            main(args[1:])
        except SystemExit as exc:
            assert exc.code == 0, (command, capsys.readouterr().err)
        ran.append(args[1])
    assert {"simulate", "cohort", "power", "assign", "checks", "export", "respond", "report",
            "model", "policy"} <= set(ran)
    final = tmp_path / "reports" / "demo" / "report-final"
    assert {p.name for p in final.iterdir()} == {".upliftlab.json", "report.json", "report.md",
                                                "report.html"}
