"""The assignment formula's SQL, written once in DuckDB SQL (engine/dialect.py renders it for
another engine): the hash, u, the stratum label, the arm of simple mode and the rank tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from upliftlab.assignment.formula import TWO60, Design, hex_key, thresholds
from upliftlab.engine.dialect import DUCKDB, render
from upliftlab.sources import literal, quote
from upliftlab.rules import HOLDOUT_ARM


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


# ---- the steps of the DuckDB run (assignment.engine) ------------------------------------------
def strata_codes_sql(pool: str) -> str:
    """Each stratum label of `pool` with a 64-bit code (a hash of the label): strata travel as
    codes and get their labels back at the end (ten million long labels cost more than md5)."""
    return (f"SELECT stratum, hash(stratum) AS scode FROM (SELECT DISTINCT stratum "
            f"FROM {quote(pool)})")


def hashed_sql(pool: str, design: Design, code: str, *, keep_h: bool) -> str:
    """The one md5 pass over `pool`: the id as the text the hash read (the store wants text and
    it breaks hash ties), the stratum code (SQL `code` over `p`), the md5 text h (`keep_h`), and
    the arm index of simple mode (-1: the holdout) or the holdout flag of stratified mode."""
    cols = ["cid AS customer_id", "scode"] + (["h"] if keep_h else [])
    holdout = holdout_sql(design, "cid")
    if design.mode == "simple":
        cols.append(f"CASE WHEN {holdout} THEN -1 ELSE {simple_case_hex(design, 'h', index=True)}"
                    " END AS a")
    else:
        cols.append(f"{holdout} AS holdout")
    return f"""SELECT {', '.join(cols)}
        FROM (SELECT customer_id, scode, cid, {md5_sql(design.salt, 'cid')} AS h
              FROM (SELECT p.customer_id, {code} AS scode, CAST(p.customer_id AS VARCHAR) AS cid
                    FROM {quote(pool)} p))"""


def boundary_need_sql(table: str, group: str) -> str:
    """The empty table of wanted ranks (g with the group column's own type, so the filter of
    `boundary_rows_sql` compares without casts; b the bucket, off its offset, rnk the rank)."""
    return (f"SELECT {group} AS g, CAST(NULL AS VARCHAR) AS b, CAST(0 AS BIGINT) AS off, "
            f"CAST(0 AS BIGINT) AS rnk FROM {quote(table)} LIMIT 0")


def boundary_rows_sql(table: str, group: str, where: str, need: str,
                      prefixes: Sequence[str]) -> str:
    """(group, rank, hex key, id text) of the wanted ranks (`need`): only the rows of the wanted
    hash buckets are ranked. A range test per distinct prefix reads the string's inlined first
    bytes only; boundaries sit at the same cumulative weights in every stratum, so there are
    few distinct prefixes."""
    ranges = " OR ".join(f"(x.h >= {literal(b)} AND x.h < {literal(next_prefix(b))})"
                         for b in prefixes)
    return f"""
        WITH cand AS (
            SELECT x.{group} AS g, substr(x.h, 1, 2) AS b, x.h, x.customer_id
            FROM {quote(table)} x
            SEMI JOIN (SELECT DISTINCT g, b FROM {quote(need)}) p
              ON x.{group} = p.g AND substr(x.h, 1, 2) = p.b
            WHERE ({ranges}) AND {where}
        ), ranked AS (
            SELECT g, b, substr(h, 1, 15) AS k, CAST(customer_id AS VARCHAR) AS cid,
                   row_number() OVER (PARTITION BY g, b ORDER BY substr(h, 1, 15),
                                      CAST(customer_id AS VARCHAR)) - 1 AS off
            FROM cand
        )
        SELECT n.g, n.rnk, r.k, r.cid FROM ranked r JOIN {quote(need)} n USING (g, b, off)
    """


def simple_arms_case(design: Design, capped: dict[int, tuple[str, str]]) -> str:
    """The arm of simple mode from the index `a` of the md5 pass: the holdout, control for the
    customers of a capped arm at or after its boundary key (`capped`: arm index -> (hex key, id
    text) of the first customer over capacity), else the arm of the index."""
    control = design.control.name
    whens = [f"WHEN h.a = -1 THEN {literal(HOLDOUT_ARM)}"]
    for i, (key, key_cid) in capped.items():
        whens.append(f"WHEN h.a = {i} AND NOT "
                     f"{before_sql('h.h', 'h.customer_id', literal(key), literal(key_cid))} "
                     f"THEN {literal(control)}")
    whens += [f"WHEN h.a = {i} THEN {literal(a)}" for i, a in enumerate(design.names)]
    return f"CASE {' '.join(whens)} END"


def stratified_arms_case(design: Design) -> str:
    """The arm of stratified mode: the first arm whose boundary key (k.k_i, k.c_i of the
    customer's stratum) the customer's (hash, id) is below; the last arm otherwise."""
    names = design.names
    whens = " ".join(f"WHEN {before_sql('h.h', 'h.customer_id', f'k.k{i}', f'k.c{i}')} "
                     f"THEN {literal(names[i])}" for i in range(len(names) - 1))
    return (f"CASE WHEN h.holdout THEN {literal(HOLDOUT_ARM)} {whens} "
            f"ELSE {literal(names[-1])} END")


def arms_sql(hashed: str, keys: str, arm_case: str) -> str:
    """customer_id (text), stratum and arm: the md5 pass joined with the stratum keys."""
    return (f"SELECT h.customer_id, k.stratum, {arm_case} AS arm "
            f"FROM {quote(hashed)} h JOIN {quote(keys)} k USING (scode)")


def _expr(sql: str, dialect: str) -> str:
    """An expression in `dialect` (rendered through a SELECT, the unit the renderer reads)."""
    if dialect == DUCKDB:
        return sql
    rendered = render(f"SELECT {sql} AS x", dialect)
    return rendered[len("SELECT "):rendered.rindex(" AS x")]


__all__ = ["TWO60", "arm_case", "arms_sql", "before_sql", "boundary_need_sql",
           "boundary_rows_sql", "hash_sql", "hashed_sql", "holdout_sql", "md5_sql", "next_prefix",
           "simple_arms_case", "simple_case", "simple_case_hex", "strata_codes_sql",
           "stratified_arms_case", "stratum_sql", "unit_sql"]
