"""The CLI shell: help works, usage errors are one line with exit code 2."""

from __future__ import annotations

import subprocess
import sys

from _helpers import cli_process
from upliftlab.cli import main


def test_help_lists_commands():
    out = cli_process("--help")
    assert out.returncode == 0
    assert "Usage" in out.stdout


def test_unknown_option_is_one_line_exit_2():
    out = cli_process("--no-such-option")
    assert out.returncode == 2
    assert out.stderr.startswith("error: ")
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr


def test_main_callable_in_process(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:  # pragma: no cover - click may exit on --version
        assert exc.code in (0, None)
    assert "upliftlab" in capsys.readouterr().out


def test_cli_start_up_imports_no_heavy_library():
    # every command imports pandas, DuckDB, causalml, ... inside itself, so `--help` stays fast
    heavy = ("pandas", "numpy", "duckdb", "scipy", "matplotlib", "causalml", "lightgbm",
             "statsmodels", "sklearn")
    out = subprocess.run([sys.executable, "-c",
                          "import sys, upliftlab.cli; "
                          f"print(','.join(m for m in {heavy!r} if m in sys.modules))"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
