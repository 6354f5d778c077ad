"""The one vocabulary of the CLI: each concept has one option, defined here and used by every
command that needs it (the README's table lists them; tests/test_cli_vocabulary.py enforces it).

A spec key of the same concept has the same name with `_` (`--customer-col` is `customer_col`
in `[cohort.columns]` and `[outcomes.columns]`, `--as-of` is `as_of`).
"""

from __future__ import annotations

import math
from typing import Any

import click


class DateType(click.ParamType):
    """A calendar date YYYY-MM-DD; passed on as its ISO text, so `--as-of soon` fails at the
    command line with the option's name."""

    name = "date"

    def get_metavar(self, param: click.Parameter, ctx: Any = None) -> str:  # noqa: ARG002
        return "DATE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> str:
        import datetime as dt

        if isinstance(value, dt.date):
            return value.isoformat()
        try:
            return dt.date.fromisoformat(str(value).strip()).isoformat()
        except ValueError:
            self.fail(f"{value!r} is not a date (expected YYYY-MM-DD)", param, ctx)


DATE = DateType()


def customer_col(help: str = "Name of the customer id column.") -> Any:
    return click.option("--customer-col", default="customer_id", show_default=True,
                        metavar="COL", help=help)


def time_col(help: str = "Name of the transaction timestamp column.") -> Any:
    return click.option("--time-col", default="ts", show_default=True, metavar="COL", help=help)


def amount_col(help: str = "Name of the transaction amount column.") -> Any:
    return click.option("--amount-col", default="amount", show_default=True, metavar="COL",
                        help=help)


def mapped_columns(what: str) -> Any:
    """--customer-col/--time-col/--amount-col without defaults: unset means 'from the spec'."""
    def deco(f: Any) -> Any:
        for flag, key, noun in (("--amount-col", "amount_col", "amount"),
                                ("--time-col", "time_col", "timestamp"),
                                ("--customer-col", "customer_col", "customer id")):
            f = click.option(flag, key, default=None, metavar="COL",
                             help=f"{what}: the {noun} column (default: the spec's "
                                  f"[outcomes.columns] {key}, else [cohort.columns]).")(f)
        return f
    return deco


def arm_col(help: str = "Name of the arm column.", default: str | None = "arm") -> Any:
    return click.option("--arm-col", default=default, show_default=default is not None,
                        metavar="COL", help=help)


def control(help: str = "Label of the control arm.") -> Any:
    return click.option("--control", metavar="LABEL", help=help)


def store(help: str = "The DuckDB store file (env UPLIFTLAB_STORE).") -> Any:
    return click.option("--store", "store_path", default="upliftlab.duckdb", show_default=True,
                        envvar="UPLIFTLAB_STORE", type=click.Path(dir_okay=False),
                        metavar="FILE", help=help)


def as_of(help: str, required: bool = False) -> Any:
    return click.option("--as-of", "as_of", type=DATE, required=required, help=help)


def weight(help: str) -> Any:
    return click.option("--weight", "weights", multiple=True, metavar="ARM=WEIGHT", help=help)


def parse_pairs(values: tuple[str, ...], option: str, value: str = "VALUE"
                ) -> list[tuple[str, str]]:
    """(arm, text) from repeated `option ARM=VALUE` (InputError naming the option)."""
    from upliftlab.errors import InputError

    out = []
    for v in values:
        arm, sep, text = v.rpartition("=")
        if not sep or not arm.strip() or not text.strip():
            raise InputError(f"{option} {v!r}: expected ARM={value}")
        out.append((arm.strip(), text.strip()))
    return out


def parse_number(text: str, option: str) -> float:
    """A number given to `option` (InputError naming it)."""
    from upliftlab.errors import InputError

    try:
        return float(text)
    except ValueError:
        raise InputError(f"{option}: {text!r} is not a number") from None


def parse_weights(values: tuple[str, ...]) -> dict[str, float] | None:
    """{arm: weight} from repeated --weight ARM=WEIGHT (None when none given)."""
    from upliftlab.errors import InputError

    if not values:
        return None
    out = {}
    for v in values:
        try:
            ((arm, text),) = parse_pairs((v,), "--weight")
            out[arm] = parse_number(text, "--weight")
            if not math.isfinite(out[arm]) or out[arm] < 0:
                raise ValueError
        except (InputError, ValueError):
            raise InputError(f"--weight {v!r}: expected ARM=WEIGHT with a finite weight >= 0, "
                             "e.g. 'control=0.5'") from None
    return out


def currency() -> Any:
    return click.option("--currency", default="USD", show_default=True, metavar="CODE",
                        help="Currency of the money figures: an ISO 4217 code (EUR) or a "
                             "symbol (€). With SPEC: the spec's `currency`.")


def engine() -> Any:
    """--engine: where the heavy steps run (DuckDB here, or Spark: a local session or the master
    in env UPLIFTLAB_SPARK_MASTER). Without PySpark or Java, Spark is an error, never DuckDB.
    Unset, it is the spec's `engine` where the command reads a spec, else duckdb
    (`cli._engine.resolve_engine`)."""
    return click.option("--engine", type=click.Choice(["duckdb", "spark"]), default=None,
                        help="Run on DuckDB (the default, or the spec's `engine`), or on Apache "
                             "Spark (pip install 'upliftlab[spark]' and Java >= 17; master from "
                             "env UPLIFTLAB_SPARK_MASTER, default local[*]).")
