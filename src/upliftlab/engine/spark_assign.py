"""The assignment as one portable query (docs/assignment.md's window form), run on Spark.

`assign_query` is DuckDB SQL written once and rendered for the engine (engine/dialect.py): the
md5 text of each id, ranked within its stratum by (first 15 hex digits, id text), and cut at
the quotas that `upliftlab.assign` computes on the driver from the per-stratum counts (the same
exact-fraction rule, capacity and rounding included). `assign_spark` runs it: two passes over
the customers (counts, then arms), and only the per-stratum counts reach the driver.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from upliftlab.assignment.formula import (ArmQuota, AssignmentQuotas, Design, capped_weights,
                                          fit_capacity, hex_key, holdout_threshold)
from upliftlab.assignment.sql import md5_sql, simple_case_hex, stratum_sql
from upliftlab.spec import HOLDOUT_ARM
from upliftlab.sources import literal, quote

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from upliftlab.engine.spark import SparkEngine


def hashed_query(pool: str, design: Design) -> str:
    """One row per customer of `pool` (customer_id, stratum): the id as text, its stratum, the
    md5 text h of salt:id, and whether the global holdout takes it (its own salt)."""
    cid = "CAST(customer_id AS VARCHAR)"
    holdout = (f"{md5_sql(design.holdout_salt, cid)} < "
               f"{literal(hex_key(holdout_threshold(design.holdout_share)))}"
               if design.holdout_share > 0 else "FALSE")
    return (f"SELECT {cid} AS customer_id, CAST(stratum AS VARCHAR) AS stratum, "
            f"{md5_sql(design.salt, cid)} AS h, {holdout} AS holdout FROM {quote(pool)}")


def counts_query(pool: str, design: Design) -> str:
    """Customers per (stratum, holdout, simple-mode arm index): all the driver needs."""
    simple = simple_case_hex(design, "h", index=True) if design.mode == "simple" else "0"
    return (f"WITH h AS ({hashed_query(pool, design)}) "
            f"SELECT stratum, holdout, {simple} AS a, count(*) AS n FROM h "
            "GROUP BY stratum, holdout, a")


def _quotas_relation(quotas: Mapping[str, Sequence[int]], k: int) -> str:
    """The per-stratum cumulative quotas Q_0..Q_{k-2} as an inline table (a few rows)."""
    cols = ["stratum", *(f"q{i}" for i in range(k - 1))]
    if not quotas:  # everyone is in the holdout: a typed empty table
        return ("(SELECT " + ", ".join(["CAST(NULL AS VARCHAR) AS stratum",
                                         *(f"CAST(NULL AS BIGINT) AS q{i}" for i in range(k - 1))])
                + " WHERE FALSE)")
    rows = ", ".join("(" + ", ".join([literal(s), *(str(int(x)) for x in q[:k - 1])]) + ")"
                     for s, q in sorted(quotas.items()))
    return f"(SELECT * FROM (VALUES {rows}) AS v({', '.join(cols)}))"


def assign_query(pool: str, design: Design, *, quotas: Mapping[str, Sequence[int]] | None = None,
                 remaining: Mapping[str, int] | None = None) -> str:
    """The arms of `pool` (customer_id, stratum) in one query: customer_id (text), stratum, arm.

    Stratified: rank r (0-based, by (x, id text)) within the stratum's non-holdout customers; the
    first arm with r < Q_a (`quotas`: stratum -> cumulative quotas, from `stratum_quotas`).
    Simple: the first arm whose cumulative weight exceeds u; an arm with `remaining` capacity
    keeps its customers of rank < remaining (by (x, id text)), the rest go to control.
    """
    names = design.names
    control = design.control.name
    rank = "row_number() OVER (PARTITION BY {0} ORDER BY substr(h, 1, 15), customer_id) - 1"
    if design.mode == "simple":
        remaining = dict(remaining or {})
        capped = [(names.index(a), r) for a, r in remaining.items()]
        rank_col = f", {rank.format('a')} AS r" if capped else ""
        whens = [f"WHEN a = -1 THEN {literal(HOLDOUT_ARM)}"]
        whens += [f"WHEN a = {i} AND r >= {int(r)} THEN {literal(control)}" for i, r in capped]
        whens += [f"WHEN a = {i} THEN {literal(a)}" for i, a in enumerate(names)]
        return (f"WITH h AS ({hashed_query(pool, design)}), "
                f"s AS (SELECT customer_id, stratum, h, CASE WHEN holdout THEN -1 ELSE "
                f"{simple_case_hex(design, 'h', index=True)} END AS a FROM h), "
                f"r AS (SELECT *{rank_col} FROM s) "
                f"SELECT customer_id, stratum, CASE {' '.join(whens)} END AS arm FROM r")
    k = len(names)
    whens = " ".join(f"WHEN r.r < q.q{i} THEN {literal(names[i])}" for i in range(k - 1))
    return (f"WITH h AS ({hashed_query(pool, design)}), "
            f"r AS (SELECT customer_id, stratum, holdout, "
            f"{rank.format('stratum, holdout')} AS r FROM h) "
            f"SELECT r.customer_id, r.stratum, CASE WHEN r.holdout THEN {literal(HOLDOUT_ARM)} "
            f"{whens} ELSE {literal(names[-1])} END AS arm "
            f"FROM r LEFT JOIN {_quotas_relation(quotas or {}, k)} q ON q.stratum = r.stratum")


def plan(design: Design, counts: Sequence[tuple[str, bool, int, int]],
         existing: Mapping[str, int] | None = None
         ) -> tuple[AssignmentQuotas, dict[str, list[int]], dict[str, int]]:
    """From the rows of `counts_query`: what the run allocates, the stratified quotas and the
    simple mode's remaining capacities; the arithmetic is `upliftlab.assign`'s own."""
    existing = {a: n for a, n in (existing or {}).items() if a != HOLDOUT_ARM}
    names = design.names
    remaining = {a.name: max(a.capacity - existing.get(a.name, 0), 0)
                 for a in design.arms if a.capacity is not None}
    n_hold = sum(int(n) for _, hold, _, n in counts if hold)
    quotas: dict[str, list[int]] = {}
    if design.mode == "simple":
        per_arm = {a: 0 for a in names}
        for _, hold, a, n in counts:
            if not hold:
                per_arm[names[int(a)]] += int(n)
        n = sum(per_arm.values())
        weights = capped_weights(design, n, existing)
        assigned = dict(per_arm)
        for a, r in remaining.items():
            if per_arm[a] > r:
                assigned[design.control.name] += per_arm[a] - r
                assigned[a] = r
    else:
        sizes: dict[str, int] = {}
        for s, hold, _, n in counts:
            if not hold:
                sizes[s] = sizes.get(s, 0) + int(n)
        n = sum(sizes.values())
        weights, quotas = fit_capacity(design, capped_weights(design, n, existing), sizes,
                                        remaining)
        assigned = {a: sum(q[i] - (q[i - 1] if i else 0) for q in quotas.values())
                    for i, a in enumerate(names)}
    arms = tuple(ArmQuota(a.name, float(a.weight), float(weights[a.name]), a.capacity,
                               int(existing.get(a.name, 0)), int(assigned.get(a.name, 0)))
                 for a in design.arms)
    return AssignmentQuotas(design.mode, n + n_hold, n_hold, arms), quotas, remaining


def assign_spark(engine: "SparkEngine", cohort: Any, design: Design, *,
                 existing: Mapping[str, int] | None = None,
                 view: str = "ul_spark_pool") -> tuple["DataFrame", AssignmentQuotas]:
    """Assign `cohort` (a Spark or pandas DataFrame or a Parquet path with customer_id and the
    design's strata columns) on Spark: a lazy DataFrame (customer_id as text, stratum, arm) and
    what was allocated. `existing` counts customers already in each arm (capacities)."""
    from upliftlab.errors import InputError
    from upliftlab.sources import require_columns

    src = f"{view}_src"
    columns = engine.register(cohort, src)
    require_columns(columns, ["customer_id", *design.strata], "cohort")
    engine.sql(f"SELECT customer_id, {stratum_sql(design.strata)} AS stratum FROM {quote(src)}"
               ).createOrReplaceTempView(view)
    bad = engine.sql(f"SELECT count(*) - count(customer_id) AS missing, "
                     f"count(customer_id) - count(DISTINCT customer_id) AS dup "
                     f"FROM {quote(view)}").collect()[0]
    if bad["missing"] or bad["dup"]:
        raise InputError(f"cohort: {bad['missing']} rows have no customer_id and "
                         f"{bad['dup']} ids are duplicated; each customer must appear once")
    counts = [(r["stratum"], bool(r["holdout"]), int(r["a"]), int(r["n"]))
              for r in engine.sql(counts_query(view, design)).collect()]
    allocation, quotas, remaining = plan(design, counts, existing)
    frame = engine.sql(assign_query(view, design, quotas=quotas, remaining=remaining))
    return frame, allocation


__all__ = ["assign_query", "assign_spark", "counts_query", "hashed_query", "plan"]
