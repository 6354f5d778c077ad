"""The assignment formula's SQL, written once in DuckDB SQL (engine/dialect.py renders it for
another engine): the hash, u, the stratum label, the arm of simple mode and the rank tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from upliftlab.assignment.formula import TWO60, Design, hex_key, thresholds
from upliftlab.engine.dialect import DUCKDB, render
from upliftlab.sources import literal, quote


def hash_sql(salt: str | None, id_sql: str, *, salt_sql: str | None = None,
             dialect: str = DUCKDB) -> str:
    """SQL for the 60-bit integer behind u: the first 15 hex digits of md5(salt || ':' || id).

    `id_sql` must already be text; `salt_sql` replaces the literal salt by an SQL expression.
    """
    s = salt_sql if salt_sql is not None else literal(salt)
    return _expr(f"CAST(('0x' || substr(md5({s} || ':' || {id_sql}), 1, 15)) AS BIGINT)",
                 dialect)


def unit_sql(salt: str, id_sql: str, *, dialect: str = DUCKDB) -> str:
    """SQL for u in [0, 1) as documented: the 60-bit integer / 2^60 (a DOUBLE)."""
    return _expr(f"({hash_sql(salt, id_sql)} / 2^60)", dialect)


def md5_sql(salt: str, id_sql: str) -> str:
    """SQL of md5(salt || ':' || id) as lower-case hex text."""
    return f"md5({literal(salt)} || ':' || {id_sql})"


def stratum_sql(strata: Sequence[str], alias: str = "") -> str:
    """SQL of the stratum label 'col=value|col=value' ('all' without strata)."""
    if not strata:
        return "'all'"
    prefix = f"{alias}." if alias else ""
    parts = [f"{literal(c + '=')} || coalesce(CAST({prefix}{quote(c)} AS VARCHAR), 'null')"
             for c in strata]
    return " || '|' || ".join(parts)


def arm_case(design: Design, below: Callable[[int], str], *, index: bool = False) -> str:
    """CASE of simple mode: the first arm whose cumulative weight exceeds u, where `below(T)`
    is the SQL test "u < T" (the arm's name, or its index in spec order when `index`)."""
    positive = [a for a in design.arms if a.weight > 0]
    cuts = thresholds([a.weight for a in design.arms])
    label = (lambda a: str(design.arms.index(a))) if index else (lambda a: literal(a.name))
    whens = [f"WHEN {below(t)} THEN {label(a)}"
             for a, t in zip(design.arms, cuts) if a.weight > 0 and a is not positive[-1]]
    return f"CASE {' '.join(whens)} ELSE {label(positive[-1])} END"


def simple_case(design: Design, ui: str = "ui", *, index: bool = False) -> str:
    """`arm_case` on the 60-bit integer `ui`."""
    return arm_case(design, lambda t: f"{ui} < {t}", index=index)


def simple_case_hex(design: Design, h: str, *, index: bool = False) -> str:
    """`simple_case` on the md5 text `h` (the same arms, compared as text: see `hex_key`)."""
    return arm_case(design, lambda t: f"{h} < {literal(hex_key(t))}", index=index)


def holdout_sql(design: Design, id_sql: str) -> str:
    """SQL of "the global holdout takes this id" (its own salt; FALSE without a holdout)."""
    from upliftlab.assignment.formula import holdout_threshold

    if design.holdout_share <= 0:
        return "FALSE"
    return (f"{md5_sql(design.holdout_salt, id_sql)} < "
            f"{literal(hex_key(holdout_threshold(design.holdout_share)))}")


def next_prefix(prefix: str) -> str:
    """The smallest hex text above every text starting with `prefix` ('ff' -> 'g')."""
    value = int(prefix, 16) + 1
    return "g" if value >= 16 ** len(prefix) else format(value, f"0{len(prefix)}x")


def before_sql(h: str, cid: str, key: str, key_cid: str) -> str:
    """(hash, id text) < (key's hash, key's id text), on md5 text; the id is cast only for the
    (never seen) rows whose 60-bit hash equals the key's."""
    return (f"({h} < {key} OR (starts_with({h}, {key}) AND length({key}) = 15 "
            f"AND CAST({cid} AS VARCHAR) < {key_cid}))")


def _expr(sql: str, dialect: str) -> str:
    """An expression in `dialect` (rendered through a SELECT, the unit the renderer reads)."""
    if dialect == DUCKDB:
        return sql
    rendered = render(f"SELECT {sql} AS x", dialect)
    return rendered[len("SELECT "):rendered.rindex(" AS x")]


__all__ = ["TWO60", "arm_case", "before_sql", "hash_sql", "holdout_sql", "md5_sql", "next_prefix",
           "simple_case", "simple_case_hex", "stratum_sql", "unit_sql"]
