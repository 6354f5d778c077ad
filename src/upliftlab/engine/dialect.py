"""One query, several engines: the project writes its SQL once, in DuckDB's dialect, and
`render` turns it into the dialect of the engine that runs it (Spark SQL by SQLGlot plus the
rewrites below, for what SQLGlot does not map or maps to a different meaning).

Every query that should run on a second engine goes through `render`; a DuckDB-only spelling
that a rewrite here does not cover is a bug of that query, found by the golden tests
(tests/test_engine_dialect.py) and the Spark tests (tests/spark/).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from upliftlab.errors import InputError

if TYPE_CHECKING:
    from sqlglot import exp

DUCKDB = "duckdb"
SPARK = "spark"
DIALECTS = (DUCKDB, SPARK)


def check_dialect(dialect: str) -> str:
    """`dialect` if upliftlab can render to it, else an InputError naming the choices."""
    if dialect not in DIALECTS:
        raise InputError(f"engine {dialect!r}: expected one of {', '.join(DIALECTS)}")
    return dialect


def render(sql: str, dialect: str = DUCKDB) -> str:
    """The query `sql` (DuckDB SQL, as the project writes it) as `dialect` runs it.

    DuckDB gets it unchanged; Spark gets SQLGlot's transpilation with the project's rewrites.
    Several statements separated by ';' are rendered one by one and joined the same way.
    """
    if check_dialect(dialect) == DUCKDB:
        return sql
    return _to_spark(sql)


@lru_cache(maxsize=256)
def _to_spark(sql: str) -> str:
    import sqlglot

    trees = sqlglot.parse(sql, read=DUCKDB)
    out = []
    for tree in trees:
        if tree is None:
            continue
        for rewrite in SPARK_REWRITES:
            tree = tree.transform(rewrite)
        out.append(tree.sql(dialect=SPARK))
    return ";\n".join(out)


# ---- rewrites for Spark (each: one node in, the node Spark needs out) ----------------------------
def _hex_cast(node: "exp.Expression") -> "exp.Expression":
    """CAST('0x' || h AS BIGINT) -> CAST(conv(h, 16, 10) AS BIGINT).

    Spark does not read '0x' hex text as a number: with ANSI mode on the cast fails, with it off
    it is silently NULL (and every customer would land in the last arm).
    """
    from sqlglot import exp

    if not (isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.BIGINT)):
        return node
    inner = node.this.unnest()
    if not (isinstance(inner, exp.DPipe) and isinstance(inner.this, exp.Literal)
            and inner.this.is_string and inner.this.this.lower() == "0x"):
        return node
    conv = exp.Anonymous(this="conv", expressions=[inner.expression.copy(),
                                                   exp.Literal.number(16), exp.Literal.number(10)])
    return exp.Cast(this=conv, to=exp.DataType.build("BIGINT"))


def _quantiles(node: "exp.Expression") -> "exp.Expression":
    """quantile_cont(x, [p, ...]) -> percentile(x, array(p, ...)): both interpolate linearly
    between the closest ranks (SQLGlot writes PERCENTILE_CONT(x, ARRAY(..)), not Spark SQL)."""
    from sqlglot import exp

    if not isinstance(node, exp.PercentileCont) or node.expression is None:
        return node
    q = node.expression
    if isinstance(q, exp.Array):
        q = exp.Anonymous(this="array", expressions=[e.copy() for e in q.expressions])
    else:
        q = q.copy()
    return exp.Anonymous(this="percentile", expressions=[node.this.copy(), q])


def _isinf(node: "exp.Expression") -> "exp.Expression":
    """isinf(x) -> abs(x) = CAST('Infinity' AS DOUBLE) (Spark has no isinf; NaN stays false)."""
    from sqlglot import exp

    if not isinstance(node, exp.IsInf):
        return node
    return exp.Paren(this=exp.EQ(this=exp.Abs(this=node.this.copy()),
                                 expression=exp.Cast(this=exp.Literal.string("Infinity"),
                                                     to=exp.DataType.build("DOUBLE"))))


def _any_value(node: "exp.Expression") -> "exp.Expression":
    """DuckDB's any_value skips NULLs; Spark's does only when asked: any_value(x, true).
    (SQLGlot writes ANY_VALUE(x) IGNORE NULLS FILTER(...), which Spark does not parse.)"""
    from sqlglot import exp

    if isinstance(node, exp.IgnoreNulls) and isinstance(node.this, exp.AnyValue):
        node = node.this
    elif not isinstance(node, exp.AnyValue):
        return node
    return exp.Anonymous(this="any_value", expressions=[node.this.copy(), exp.true()])


def _day_diff(node: "exp.Expression") -> "exp.Expression":
    """datediff('day', a, b) -> datediff(CAST(b AS DATE), CAST(a AS DATE)).

    DuckDB counts the day boundaries crossed; Spark's DATEDIFF(DAY, a, b) counts whole 24-hour
    periods between timestamps. On dates both are the difference of the calendar days.
    """
    from sqlglot import exp

    if not isinstance(node, exp.DateDiff):
        return node
    unit = node.args.get("unit")
    if unit is not None and unit.name.upper() not in ("DAY", "DAYS", "D"):
        return node

    def day(e: "exp.Expression") -> "exp.Expression":
        if isinstance(e, exp.Cast) and e.to.is_type(exp.DataType.Type.DATE):
            return e.copy()
        return exp.Cast(this=e.copy(), to=exp.DataType.build("DATE"))

    return exp.Anonymous(this="datediff", expressions=[day(node.this), day(node.expression)])


def _epoch(node: "exp.Expression") -> "exp.Expression":
    """epoch(a - b) (seconds of a time difference) -> timestampdiff(MICROSECOND, b, a) / 10^6.

    In Spark a difference of timestamps is an INTERVAL, which unix_timestamp (SQLGlot's
    rendering of epoch) does not take.
    """
    from sqlglot import exp

    if not (isinstance(node, exp.TimeToUnix) and isinstance(node.this.unnest(), exp.Sub)):
        return node
    diff = node.this.unnest()
    micros = exp.Anonymous(this="timestampdiff", expressions=[
        exp.var("MICROSECOND"), diff.expression.copy(), diff.this.copy()])
    million = exp.Cast(this=exp.Literal.number(1000000), to=exp.DataType.build("DOUBLE"))
    return exp.Paren(this=exp.Div(this=micros, expression=million))


def _semi_join(node: "exp.Expression") -> "exp.Expression":
    """x SEMI JOIN y -> x LEFT SEMI JOIN y (Spark's spelling)."""
    from sqlglot import exp

    if isinstance(node, exp.Join) and (node.kind or "").upper() in ("SEMI", "ANTI") \
            and not node.side:
        node = node.copy()
        node.set("side", "LEFT")
    return node


def _full_match(node: "exp.Expression") -> "exp.Expression":
    """regexp_full_match(s, 'p') -> s RLIKE '^(?:p)$' (Spark's RLIKE finds the pattern anywhere
    in the text; the anchors make it match the whole text, as DuckDB's function does)."""
    from sqlglot import exp

    if not isinstance(node, exp.RegexpFullMatch):
        return node
    text, pattern = node.this, node.expression
    if not (isinstance(pattern, exp.Literal) and pattern.is_string):
        return node
    return exp.Paren(this=exp.RegexpLike(this=text.copy(), expression=exp.Literal.string(
        f"^(?:{pattern.this})$")))


SPARK_REWRITES: tuple[Callable[["exp.Expression"], "exp.Expression"], ...] = (
    _hex_cast, _quantiles, _isinf, _any_value, _day_diff, _epoch, _semi_join, _full_match)

__all__ = ["DIALECTS", "DUCKDB", "SPARK", "SPARK_REWRITES", "check_dialect", "render"]
