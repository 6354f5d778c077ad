"""Every `upliftlab` call written in benchmarks/*.py and scripts/*.sh names commands and flags
that exist today, checked against click's own command objects: a renamed option
(`simulate --customers` -> `--n-customers`) fails here, not in a benchmark run weeks later."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import click
import pytest

from upliftlab.cli import app

ROOT = Path(__file__).resolve().parents[1]
# how a benchmark spells "the CLI": a variable holding the console script, or `python -c` on main
_PY_ENTRY = "from upliftlab.cli import main; main()"


def _python_calls(path: Path) -> list[list[str | None]]:
    """The argument lists after the CLI in every list/tuple literal of a Python file (None for a
    value that is not a string literal, such as `str(n)`)."""
    calls = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, (ast.List, ast.Tuple)):
            continue
        for i, elt in enumerate(node.elts):
            if ((isinstance(elt, ast.Name) and elt.id == "CLI")
                    or (isinstance(elt, ast.Constant) and elt.value == _PY_ENTRY)):
                calls.append([e.value if isinstance(e, ast.Constant) and isinstance(e.value, str)
                              else None for e in node.elts[i + 1:]])
                break
    return calls


def _shell_calls(path: Path) -> list[list[str | None]]:
    """The arguments of every `"$CLI" ...` line of a shell script (continuations joined,
    comments dropped)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    calls = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["$CLI"]:
            calls.append(list(words[1:]))
    return calls


def _problems(args: list[str | None]) -> list[str]:
    """What in `args` does not exist on the command it calls (empty: all well)."""
    cmd: click.Command = app
    path = ["upliftlab"]
    out = []
    for word in args:
        if word is None:
            continue
        if word.startswith("-") and word != "-":
            flag = word.split("=", 1)[0]
            ctx = click.Context(cmd, info_name=path[-1])
            known = {o for p in cmd.get_params(ctx) for o in (*p.opts, *p.secondary_opts)}
            if flag not in known:
                out.append(f"{' '.join(path)}: no option {flag}")
        elif isinstance(cmd, click.Group):
            sub = cmd.get_command(click.Context(cmd), word)
            if sub is None:
                out.append(f"{' '.join(path)}: no command {word!r}")
                return out
            cmd, path = sub, [*path, word]
    return out


def _all_calls() -> list[tuple[str, list[str | None]]]:
    calls = [(p.name, c) for p in sorted((ROOT / "benchmarks").glob("*.py"))
             for c in _python_calls(p)]
    calls += [(p.name, c) for p in sorted((ROOT / "scripts").glob("*.sh"))
              for c in _shell_calls(p)]
    return calls


def test_every_cli_call_in_benchmarks_and_scripts_uses_existing_commands_and_flags():
    calls = _all_calls()
    # the demo's steps and the benchmarks' world builders are found (the parser is not blind)
    assert sum(name == "demo.sh" for name, _ in calls) >= 15
    assert {"bench_cohort.py", "bench_risk.py", "bench_demo.py"} <= {name for name, _ in calls}
    problems = [f"{name}: {p}" for name, args in calls for p in _problems(args)]
    assert problems == []


@pytest.mark.parametrize("args, expected", [
    (["simulate", "--customers", None], ["upliftlab simulate: no option --customers"]),
    (["simulate", "--n-customers", None, "--seed=3"], []),
    (["model", "fti", "--as-of", "2026-03-06"], ["upliftlab model: no command 'fti'"]),
    (["model", "fit", "x.toml", "--outcome", "y"], ["upliftlab model fit: no option --outcome"]),
    (["--help"], []),
])
def test_the_checker_finds_a_renamed_flag_or_command(args, expected):
    assert _problems(args) == expected


def test_the_parsers_read_python_lists_and_continued_shell_lines(tmp_path):
    py = tmp_path / "b.py"
    py.write_text('import subprocess, sys\nsubprocess.run([sys.executable, "-c", '
                  f'"{_PY_ENTRY}", "simulate", "--n-customers", str(5)])\n'
                  'subprocess.run([CLI, "model", "fit", "--as-of", d])\n')
    assert _python_calls(py) == [["simulate", "--n-customers", None],
                                 ["model", "fit", "--as-of", None]]
    sh = tmp_path / "s.sh"
    sh.write_text('"$CLI" cohort --transactions "$X" \\\n    --out y  # a comment --nope\n'
                  'echo "$CLI" --no\n')
    assert _shell_calls(sh) == [["cohort", "--transactions", "$X", "--out", "y"]]


def _library_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every `from upliftlab... import name` in a Python file."""
    return [(node.module, alias.name) for node in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("upliftlab")
            for alias in node.names]


@pytest.mark.slow
def test_every_library_name_the_benchmarks_import_exists():
    import importlib

    found = [(p.name, m, n) for p in sorted((ROOT / "benchmarks").glob("*.py"))
             for m, n in _library_imports(p)]
    assert len(found) >= 10
    missing = [f"{f}: {m}.{n}" for f, m, n in found
               if not hasattr(importlib.import_module(m), n)]
    assert missing == []
