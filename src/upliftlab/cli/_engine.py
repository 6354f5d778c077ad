"""Which engine a command runs on: the --engine flag, else the spec's `engine` key, else DuckDB.

One rule for every command that takes --engine (cli/_options.engine), so a spec that says
`engine = "spark"` runs on Spark unless the command line says otherwise.
"""

from __future__ import annotations

from upliftlab.engine.dialect import DUCKDB, check_dialect


def resolve_engine(flag: str | None, spec_engine: str | None = None) -> str:
    """The engine to run on: `flag` (--engine) if given, else `spec_engine`, else duckdb."""
    return check_dialect(flag or spec_engine or DUCKDB)
