"""Helpers shared by the test modules: running the CLI (in process or in a fresh interpreter) and
writing experiment specs (TOML) from values, so no test file keeps its own copy of either."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from upliftlab.cli import main

PYTHON_CLI = [sys.executable, "-c", "from upliftlab.cli import main; main()"]


def cli(capsys: Any, *args: Any) -> tuple[int, str, str]:
    """`upliftlab ARGS` in this process: (exit code, stdout, stderr)."""
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def cli_code(*args: Any) -> int:
    """`upliftlab ARGS` in this process, its exit code only (the output is left to capsys)."""
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def cli_process(*args: Any) -> subprocess.CompletedProcess:
    """`upliftlab ARGS` in a fresh interpreter (imports and exit codes as a user sees them)."""
    return subprocess.run([*PYTHON_CLI, *(str(a) for a in args)], capture_output=True, text=True)


# ------------------------------------------------------------------------------ specs (TOML)

AS_OF = dt.date(2026, 1, 5)
RATES = {"short": 0.05, "mid": 0.025, "long": 0.01}


def two_arms(treatment: str = "coupon", **costs: float) -> list[dict[str, Any]]:
    """Control and one treatment, half each; `costs` (cost_per_contact, ...) on the treatment."""
    return [{"name": "control", "weight": 0.5, "control": True},
            {"name": treatment, "weight": 0.5, **costs}]


def three_arms(advisor_capacity: int | None = None) -> list[dict[str, Any]]:
    """Control 40%, a coupon 30% (0.10 a contact, 10 a conversion), an advisor 30% (4 a call)."""
    return [{"name": "control", "weight": 0.4, "control": True},
            {"name": "coupon", "weight": 0.3, "cost_per_contact": 0.1, "cost_per_conversion": 10.0},
            {"name": "advisor", "weight": 0.3, "cost_per_contact": 4.0,
             "capacity": advisor_capacity}]


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string is a JSON string
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, Sequence):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {v!r}")


def _keys(values: Mapping[str, Any]) -> str:
    return "".join(f"{k} = {_value(v)}\n" for k, v in values.items() if v is not None)


def spec_toml(name: str, salt: str, *, cohort: Mapping[str, Any], arms: Sequence[Mapping[str, Any]],
              tables: Mapping[str, Mapping[str, Any]] | None = None, **top: Any) -> str:
    """An experiment spec: top-level keys (`name`, `salt`, then `top` in order), `[cohort]`, one
    `[[arms]]` per arm, then the other `tables` (e.g. `{"baseline": {"rates": RATES}}`); a key
    whose value is None is left out."""
    text = "\n" + _keys({"name": name, "salt": salt, **top})
    text += "\n[cohort]\n" + _keys(cohort)
    for arm in arms:
        text += "\n[[arms]]\n" + _keys(arm)
    for table, values in (tables or {}).items():
        text += f"\n[{table}]\n" + _keys(values)
    return text
