"""One vocabulary: every command's options are enumerated; a concept has one option name.

The README's table "One vocabulary" is the reference: each row names a concept, its option, its
spec key and the commands that take it. This test fails when a command uses a synonym of a
concept's option (--arm for --arm-col, --id-col for --customer-col, --outcome for --metric, ...),
when two options differ only by a suffix (--arm and --arm-col), when a date is read as plain
text, or when the table and the commands disagree.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from upliftlab.cli import app
from upliftlab.cli._options import DateType

README = Path(__file__).resolve().parents[1] / "README.md"

# synonyms seen in the wild (and in this project's history) for each concept of the table
SYNONYMS = {
    "--arm-col": {"--arm", "--arm-column", "--treatment-col", "--group-col", "--variant-col"},
    "--control": {"--control-label", "--control-arm", "--baseline-arm"},
    "--customer-col": {"--id-col", "--customer-id-col", "--customer-id", "--id", "--member-col"},
    "--time-col": {"--ts-col", "--timestamp-col", "--date-col"},
    "--amount-col": {"--value-col", "--revenue-col", "--spend-col"},
    "--metric": {"--outcome", "--outcome-col", "--metric-col", "--target", "--y"},
    "--store": {"--db", "--database", "--store-path", "--duckdb"},
    "--experiment": {"--experiment-name", "--name"},
    "--data": {"--experiment-data", "--experiment-table", "--table", "--input"},
    "--weight": {"--propensity", "--weights", "--propensities", "--allocation"},
    "--as-of": {"--date", "--asof", "--report-date", "--cohort-date"},
    "--campaign-date": {"--start", "--start-date", "--campaign-start"},
    "--outcome-window-days": {"--window-days", "--window"},
    "--currency": {"--currency-code", "--ccy"},
    "--engine": {"--backend", "--executor", "--runner"},
}
_SUFFIXES = ("-col", "-column", "-name", "-file", "-path", "-dir", "-label")


def commands() -> dict[str, click.Command]:
    out = {}

    def walk(cmd: click.Command, path: list[str]) -> None:
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
        else:
            out[" ".join(path)] = cmd

    walk(app, [])
    return out


def options() -> list[tuple[str, str, click.Option]]:
    """(command, long flag, option) for every option of every command."""
    return [(name, flag, p) for name, cmd in commands().items() for p in cmd.params
            if isinstance(p, click.Option) for flag in p.opts if flag.startswith("--")
            and flag != "--help"]


def readme_table() -> list[dict[str, str]]:
    text = README.read_text()
    block = text[text.index("## One vocabulary"):]
    rows = []
    for line in block.splitlines()[1:]:
        if line.startswith("## "):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].startswith("`--"):
            rows.append({"concept": cells[0], "option": cells[1].strip("`"),
                         "spec": cells[2], "commands": cells[3]})
    return rows


def test_every_command_is_enumerated():
    names = set(commands())
    assert {"report", "cohort", "assign", "checks", "export", "power", "simulate", "respond",
            "policy", "model fit", "model score"} <= names
    assert len(options()) > 60


def test_no_synonym_of_a_concept_is_an_option():
    used = {flag: sorted(c for c, f, _ in options() if f == flag) for _, flag, _ in options()}
    found = [f"{syn} (in {', '.join(used[syn])}) is a synonym of {canon}"
             for canon, syns in SYNONYMS.items() for syn in syns if syn in used]
    assert not found, "; ".join(found)


def test_no_two_options_differ_only_by_a_suffix():
    def stem(flag: str) -> str:
        for s in _SUFFIXES:
            if flag.endswith(s):
                return flag[: -len(s)]
        return flag

    by_stem: dict[str, set[str]] = {}
    for _, flag, _ in options():
        by_stem.setdefault(stem(flag), set()).add(flag)
    clashes = {k: v for k, v in by_stem.items() if len(v) > 1}
    assert not clashes, clashes


def test_dates_are_dates_and_the_store_reads_the_environment():
    for command, flag, opt in options():
        if flag.endswith("-date") or flag == "--as-of":
            assert isinstance(opt.type, DateType), f"{command} {flag} is not a DATE"
        if flag == "--store":
            assert opt.envvar == "UPLIFTLAB_STORE", f"{command} --store ignores UPLIFTLAB_STORE"


def test_the_readme_table_matches_the_commands():
    rows = readme_table()
    assert {r["option"] for r in rows} == set(SYNONYMS)
    for row in rows:
        having = sorted(c for c, f, _ in options() if f == row["option"])
        listed = sorted(re.findall(r"`([a-z -]+)`", row["commands"]))
        assert listed == having, (row["option"], listed, having)


@pytest.mark.parametrize("flag", sorted(SYNONYMS))
def test_a_synonym_is_refused_at_the_command_line(flag, capsys):
    """An old spelling is an unknown option: exit 2 with one line (no silent alias)."""
    from upliftlab.cli import main

    old = sorted(SYNONYMS[flag])[0]
    with pytest.raises(SystemExit) as exc:
        main(["report", old, "x"])
    assert exc.value.code == 2
    assert "no such option" in capsys.readouterr().err.lower()
