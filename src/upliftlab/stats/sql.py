"""The one SQL aggregate behind the engine: per arm (and per segment) sums in a single pass.

All SQL of the statistics engine lives here, so a second engine (Spark) has one query to port.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from upliftlab.sources import quote
from upliftlab.stats.sufficient import MomentStats

if TYPE_CHECKING:
    import duckdb

    from upliftlab.stats.iv import IVStats

TOTAL = "__all__"  # the segment column name of the un-segmented (per arm only) rows


@dataclass(frozen=True)
class Aggregates:
    """Result of `aggregate`: MomentStats per arm, and per (segment column, value, arm)."""

    arms: dict[str, MomentStats]
    segments: dict[str, dict[str, dict[str, MomentStats]]]  # column -> value -> arm -> stats
    arm_missing: int


def needed_pairs(metrics: Sequence[str], covariates: Sequence[str]) -> list[tuple[str, str]]:
    """The cross-products the tests need: squares, primary × each metric (cost, ROI),
    covariate × covariate and metric × covariate (CUPED / Lin)."""
    pairs: list[tuple[str, str]] = []

    def add(a: str, b: str) -> None:
        if (a, b) not in pairs and (b, a) not in pairs:
            pairs.append((a, b))

    for m in metrics:
        add(m, m)
    for m in metrics[1:]:
        add(metrics[0], m)
    for i, a in enumerate(covariates):
        for b in covariates[i:]:
            add(a, b)
    for m in metrics:
        for x in covariates:
            add(m, x)
    return pairs


def aggregate_sql(view: str, arm: str, columns: Sequence[str], pairs: Sequence[tuple[str, str]],
                  binary_check: Sequence[str], segments: Sequence[str] = ()) -> str:
    """SELECT arm, segment, value, n, sums, cross-products, NULL counts, non-0/1 counts.

    GROUPING SETS give the per-arm rows and every segment breakdown in one scan of the source.
    """
    a = f"CAST({quote(arm)} AS VARCHAR)"
    val = {c: f"CAST({quote(c)} AS DOUBLE)" for c in columns}
    sel = [f"{a} AS arm__"]
    if segments:
        seg_case = " ".join(f"WHEN GROUPING({quote(s)}) = 0 THEN {_lit(s)}" for s in segments)
        val_case = " ".join(
            f"WHEN GROUPING({quote(s)}) = 0 THEN COALESCE(CAST({quote(s)} AS VARCHAR), '(missing)')"
            for s in segments)
        sel.append(f"CASE {seg_case} ELSE {_lit(TOTAL)} END AS segcol__")
        sel.append(f"CASE {val_case} ELSE NULL END AS segval__")
    else:
        sel += [f"{_lit(TOTAL)} AS segcol__", "NULL AS segval__"]
    sel.append("COUNT(*) AS n__")
    sel += [f"SUM({val[c]}) AS {quote('s_' + c)}" for c in columns]
    sel += [f"SUM({val[x]} * {val[y]}) AS {quote('x_' + x + '_' + y)}" for x, y in pairs]
    sel += [f"COUNT(*) - COUNT({quote(c)}) AS {quote('m_' + c)}" for c in columns]
    sel += [f"COUNT(*) FILTER (WHERE {val[c]} NOT IN (0, 1)) AS {quote('b_' + c)}"
            for c in binary_check]
    if segments:
        sets = ", ".join([f"({a})"] + [f"({a}, {quote(s)})" for s in segments])
        group = f"GROUP BY GROUPING SETS ({sets})"
    else:
        group = f"GROUP BY {a}"
    return f"SELECT {', '.join(sel)} FROM {quote(view)} {group}"


def aggregate(con: "duckdb.DuckDBPyConnection", view: str, arm: str, columns: Sequence[str],
              pairs: Sequence[tuple[str, str]], binary_check: Sequence[str] = (),
              segments: Sequence[str] = ()) -> Aggregates:
    """Run `aggregate_sql` and turn its rows into MomentStats (a few rows: one per group)."""
    columns = list(dict.fromkeys(columns))
    sql = aggregate_sql(view, arm, columns, pairs, binary_check, segments)
    rows = con.execute(sql).fetchall()
    nc, npair, nb = len(columns), len(pairs), len(binary_check)
    arms: dict[str, MomentStats] = {}
    segs: dict[str, dict[str, dict[str, MomentStats]]] = {s: {} for s in segments}
    arm_missing = 0
    for row in rows:
        arm_label, segcol, segval, n = row[0], row[1], row[2], int(row[3])
        i = 4
        sums = tuple(float(v or 0.0) for v in row[i:i + nc]); i += nc
        cross = tuple(float(v or 0.0) for v in row[i:i + npair]); i += npair
        missing = tuple(int(v) for v in row[i:i + nc]); i += nc
        not01 = dict(zip(binary_check, (int(v) for v in row[i:i + nb])))
        stats = MomentStats(n, tuple(columns), sums, tuple(pairs), cross, missing,
                            tuple(not01.get(c, 0) for c in columns))
        if arm_label is None:
            if segcol == TOTAL:
                arm_missing += n
            continue
        if segcol == TOTAL:
            arms[arm_label] = stats
        else:
            segs[segcol].setdefault(segval, {})[arm_label] = stats
    return Aggregates(arms, segs, arm_missing)


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def iv_sql(view: str, arm: str, reach: str, outcome: str, covariates: Sequence[str] = (),
           cost: str | None = None) -> str:
    """Per arm: n, Σ of every product of up to four of (1, reach, outcome, covariates), Σcost,
    Σcost², Σcost·outcome, and the NULLs per covariate (`stats.iv.IVStats`), in one pass.

    Covariates are centred and scaled by their pooled mean and sd first (a scalar subquery):
    the fourth-order sums then stay well conditioned, and the effect of reach and its SE are
    unchanged by such a shift (the intercept absorbs it).
    """
    from upliftlab.stats.iv import monomials

    k = len(covariates)
    var = ["1", f"CAST({quote(reach)} AS DOUBLE)", f"CAST({quote(outcome)} AS DOUBLE)"]
    scale = []
    for j, x in enumerate(covariates):
        xx = f"CAST({quote(x)} AS DOUBLE)"
        scale.append(f"avg({xx}) AS m{j}__, stddev_pop({xx}) AS s{j}__")
        var.append(f"({xx} - sc__.m{j}__) / COALESCE(NULLIF(sc__.s{j}__, 0), 1)")
    sel = [f"CAST({quote(arm)} AS VARCHAR) AS arm__"]
    sel += [f"v{i}__" if i else "1.0 AS v0__" for i in range(1, k + 3)]
    c = f"CAST({quote(cost)} AS DOUBLE)" if cost else "0.0"
    sums = []
    for mono in monomials(k):
        factors = [f"v{i}__" for i in mono if i]
        sums.append(f"SUM({' * '.join(factors)})" if factors else "CAST(COUNT(*) AS DOUBLE)")
    inner = ", ".join([sel[0]] + [f"{var[i]} AS v{i}__" for i in range(1, k + 3)]
                      + [f"{c} AS c__"])
    src = quote(view)
    if scale:
        src += f", (SELECT {', '.join(scale)} FROM {quote(view)}) sc__"
    missing = [f"COUNT(*) - COUNT(v{3 + j}__)" for j in range(k)]
    return (f"SELECT arm__, COUNT(*), {', '.join(sums)}, SUM(c__), SUM(c__ * c__), "
            f"SUM(c__ * v2__){''.join(', ' + m for m in missing)} "
            f"FROM (SELECT {inner} FROM {src}) GROUP BY arm__")


def iv_aggregate(con: "duckdb.DuckDBPyConnection", view: str, arm: str, reach: str,
                 outcome: str, covariates: Sequence[str] = (),
                 cost: str | None = None) -> dict[str, "IVStats"]:
    """Run `iv_sql`; IVStats per arm label. A NULL in a covariate is an InputError."""
    from upliftlab.errors import InputError
    from upliftlab.stats.iv import IVStats, monomials

    covariates = tuple(covariates)
    rows = con.execute(iv_sql(view, arm, reach, outcome, covariates, cost)).fetchall()
    nm = len(monomials(len(covariates)))
    out = {}
    for row in rows:
        miss = row[2 + nm + 3:]
        for x, m in zip(covariates, miss):
            if m:
                raise InputError(f"covariates: {x!r} is missing for {m:,} customers")
        if row[0] is None:
            continue
        sums = tuple(float(v or 0.0) for v in row[2:2 + nm])
        c = [float(v or 0.0) for v in row[2 + nm:2 + nm + 3]]
        out[row[0]] = IVStats(int(row[1]), covariates, sums, *c)
    return out
