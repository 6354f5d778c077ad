"""The assignment run on DuckDB: the customers of a pool (customer_id, stratum) get their arms
by the formula (`assignment.formula`) in a few set-based passes; the arms are a temporary view
of the session, handed on as an `AssignedHandle`. `assign` is the notebook face.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from upliftlab.assignment.formula import (ArmQuota, AssignmentQuotas, Design, capped_weights,
                                          fit_capacity)
from upliftlab.assignment.sql import (arms_sql, boundary_need_sql, boundary_rows_sql, hashed_sql,
                                      simple_arms_case, strata_codes_sql, stratified_arms_case,
                                      stratum_sql)
from upliftlab.session import Session, require_session
from upliftlab.sources import quote

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class AssignedHandle:
    """The arms of a pool: `name` is a temporary view of `session` (customer_id as text,
    stratum, arm) over the tables in `parts`; `quotas` what the run allocated. Read it (e.g.
    INSERT ... SELECT), then `drop()` it."""

    session: Session
    name: str
    parts: tuple[str, ...]
    quotas: AssignmentQuotas

    def drop(self) -> None:
        self.session.drop(self.name, *self.parts)


def _order_keys(session: Session, table: str, group: str, where: str,
                targets: Mapping[Any, Sequence[int]],
                hist: Mapping[Any, list[tuple[str, int]]] | None = None,
                ) -> dict[tuple[Any, int], tuple[str, str]]:
    """(hex key, customer id text) of the row of rank r (0-based, by the 60-bit hash, then the id
    text) in each group of `table` (columns customer_id, h = md5 text, and `group`).

    Instead of sorting all rows, a histogram of the hash's first 2 hex digits per group (`hist`,
    or one pass here) locates the bucket that holds each wanted rank; only those buckets' rows
    are sorted (1/256 of a group per wanted rank). Same answer as a full sort.
    """
    if not any(targets.values()):
        return {}
    con, need_table = session.con, session.temp_name("need")
    if hist is None:
        hist = {}
        for g, b, n in con.execute(f"SELECT {group}, substr(h, 1, 2), count(*) FROM "
                                   f"{quote(table)} WHERE {where} GROUP BY ALL").fetchall():
            hist.setdefault(g, []).append((str(b), int(n)))
        hist = {g: sorted(v) for g, v in hist.items()}
    need = []
    for g, ranks in targets.items():
        buckets = hist.get(g, [])
        starts = [0, *accumulate(n for _, n in buckets)]
        for r in ranks:
            i = next(i for i in range(len(buckets)) if starts[i + 1] > r)
            need.append((g, buckets[i][0], r - starts[i], r))
    con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(need_table)} AS "
                + boundary_need_sql(table, group))
    con.executemany(f"INSERT INTO {quote(need_table)} VALUES (?, ?, ?, ?)", need)
    rows = con.execute(boundary_rows_sql(table, group, where, need_table,
                                         sorted({b for _, b, _, _ in need}))).fetchall()
    session.drop(need_table)
    return {(int(g), int(r)): (str(k), str(cid)) for g, r, k, cid in rows}


def assign_sql(session: Session, pool: str, design: Design, *,
               existing: Mapping[str, int] | None = None) -> AssignedHandle:
    """Assign the customers of `pool` (a relation of `session` with columns customer_id,
    stratum) and return the handle of the arms (customer_id as text, stratum, arm) with what
    was allocated.

    `existing` counts customers already in each arm (they count against capacities). Simple
    mode: arm = first arm whose cumulative weight exceeds u. Stratified mode: within each stratum,
    customers ranked by (u, id text) fill the arms in order up to quotas exact up to rounding.
    The global holdout (arm 'holdout') is taken out first, by its own salt.

    Cost: one md5 pass that materialises (id, stratum code, md5 text), one aggregation over that
    table (stratified), and a sort of the few rows at the quota boundaries; reading the view costs
    a join with a table of one row per stratum.
    """
    session = require_session(session, "assign_sql")
    con = session.con
    existing = dict(existing or {})
    out = session.temp_name("assigned")
    base, strata, keys = (f"{out}__{x}" for x in "hsk")
    share = design.holdout_share
    names = design.names
    k = len(names)
    remaining = {a.name: max(a.capacity - existing.get(a.name, 0), 0)
                 for a in design.arms if a.capacity is not None}
    # strata travel as a 64-bit code (hash of the label) and get their label back at the end:
    # materialising ten million long label strings costs more than the md5 itself
    con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(strata)} AS {strata_codes_sql(pool)}")
    n_strata, n_codes = con.execute(f"SELECT count(*), count(DISTINCT scode) FROM "
                                    f"{quote(strata)}").fetchone()
    if n_strata != n_codes:  # a 64-bit collision among a handful of labels: number them instead
        con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(strata)} AS SELECT stratum, "
                    f"CAST(row_number() OVER (ORDER BY stratum) AS UBIGINT) AS scode "
                    f"FROM {quote(strata)}")
        code = f"(SELECT s.scode FROM {quote(strata)} s WHERE s.stratum = p.stratum)"
    else:
        code = "hash(p.stratum)"
    simple = design.mode == "simple"
    # simple mode keeps the md5 text only when a capacity may have to cut an arm
    keep_h = not simple or bool(remaining)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(base)} AS "
                + hashed_sql(pool, design, code, keep_h=keep_h))
    labels = {int(c): s for s, c in con.execute(f"SELECT stratum, scode FROM {quote(strata)}"
                                                ).fetchall()}
    counts: dict[str, int] = {}
    if simple:
        by_arm = dict(con.execute(f"SELECT a, count(*) FROM {quote(base)} GROUP BY a").fetchall())
        n_hold = int(by_arm.get(-1, 0))
        counts = {names[i]: int(by_arm.get(i, 0)) for i in range(k)}
        n = sum(counts.values())
        weights = capped_weights(design, n, existing)
        # capacity: within a capped arm, the `remaining` customers with the smallest (u, id)
        # keep it and the rest go to control; which ones is still random
        over = {names.index(a): r for a, r in remaining.items() if counts[a] > r}
        found = _order_keys(session, base, "a", "a >= 0", {i: [r] for i, r in over.items()})
        control = design.control.name
        for i, r in over.items():
            counts[control] += counts[names[i]] - r
            counts[names[i]] = r
        con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(keys)} AS SELECT * FROM {quote(strata)}")
        arm_case = simple_arms_case(design, {i: found[(i, r)] for i, r in over.items()})
    else:
        hist: dict[int, list[tuple[str, int]]] = {}
        n_hold = 0
        hold_col = "holdout" if share > 0 else "FALSE"
        for g, is_hold, b, c in con.execute(f"SELECT scode, {hold_col}, substr(h, 1, 2), "
                                            f"count(*) FROM {quote(base)} GROUP BY ALL"
                                            ).fetchall():
            if is_hold:
                n_hold += int(c)
            else:
                hist.setdefault(int(g), []).append((str(b), int(c)))
        hist = {g: sorted(v) for g, v in hist.items()}
        sizes = {labels[g]: sum(c for _, c in v) for g, v in hist.items()}
        n = sum(sizes.values())
        weights, quotas = fit_capacity(design, capped_weights(design, n, existing), sizes,
                                        remaining)
        code_of = {s: g for g, s in labels.items()}
        targets = {code_of[s]: sorted({q[i] for i in range(k - 1) if 0 < q[i] < sizes[s]})
                   for s, q in quotas.items()}
        found = _order_keys(session, base, "scode", "NOT holdout", targets, hist)
        rows = []
        for g, s in labels.items():
            q = quotas.get(s, [0] * k)
            m = sizes.get(s, 0)
            row: list[Any] = [g, s]
            for i in range(k - 1):
                if q[i] <= 0:
                    row += ["", ""]          # nobody before this boundary
                elif q[i] >= m:
                    row += ["g", ""]         # everybody before it
                else:
                    row += list(found[(g, q[i])])
            rows.append(row)
        for i, a in enumerate(names):
            counts[a] = sum(q[i] - (q[i - 1] if i else 0) for q in quotas.values())
        key_cols = ", ".join(f"k{i} VARCHAR, c{i} VARCHAR" for i in range(k - 1))
        con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(keys)} (scode UBIGINT, stratum VARCHAR"
                    f"{', ' + key_cols if key_cols else ''})")
        if rows:
            con.executemany(f"INSERT INTO {quote(keys)} VALUES ({', '.join(['?'] * (2 * k))})",
                            rows)
        arm_case = stratified_arms_case(design)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(out)} AS {arms_sql(base, keys, arm_case)}")
    session.drop(strata)
    arms = tuple(ArmQuota(a.name, float(a.weight), float(weights[a.name]), a.capacity,
                               int(existing.get(a.name, 0)), int(counts.get(a.name, 0)))
                 for a in design.arms)
    summary = AssignmentQuotas(design.mode, n + n_hold, n_hold, arms)
    return AssignedHandle(session, out, (base, keys), summary)


@dataclass(frozen=True)
class Assignment:
    """Result of `assign`: one row per customer (customer_id with the cohort's id type,
    stratum, arm; `frame.attrs["experiment"]` is the design's name) and what the run
    allocated."""

    frame: "pd.DataFrame"
    allocation: AssignmentQuotas


def assign(cohort: Any, design: Design, *, existing: "pd.DataFrame | None" = None) -> Assignment:
    """Assign a cohort (DataFrame, file path or DuckDB relation with `customer_id` and the strata
    columns) to arms. `existing` (customer_id, arm) are kept out of the pool and count against
    capacities, as for late joiners."""
    from upliftlab.sources import register
    from upliftlab.spec_cohort import validate_cohort

    with Session() as session:
        con = session.con
        cohort_name, pool = session.temp_name("cohort"), session.temp_name("pool")
        register(con, cohort, cohort_name)
        validate_cohort(con, cohort_name, "cohort", list(design.strata))
        counts: dict[str, int] = {}
        anti = ""
        if existing is not None and len(existing):
            src, kept = session.temp_name("existing_src"), session.temp_name("existing")
            con.execute("SELECT 1").fetchall()  # DuckDB 2 refuses register() with a result pending
            con.register(src, existing[["customer_id", "arm"]])
            con.execute(f"CREATE TEMP TABLE {quote(kept)} AS SELECT CAST(customer_id AS VARCHAR) "
                        f"AS customer_id, arm FROM {quote(src)}")
            counts = dict(con.execute(f"SELECT arm, count(*) FROM {quote(kept)} GROUP BY arm"
                                      ).fetchall())
            anti = ("WHERE CAST(c.customer_id AS VARCHAR) NOT IN "
                    f"(SELECT customer_id FROM {quote(kept)})")
        con.execute(f"CREATE TEMP VIEW {quote(pool)} AS SELECT c.customer_id, "
                    f"{stratum_sql(design.strata, 'c')} AS stratum FROM {quote(cohort_name)} c "
                    f"{anti}")
        assigned = assign_sql(session, pool, design, existing=counts)
        id_type = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE "
                                   f"{quote(cohort_name)})").fetchall())["customer_id"]
        # ids come back with the type they came in (integers stay integers)
        frame = con.execute(f"SELECT CAST(customer_id AS {id_type}) AS customer_id, stratum, arm "
                            f"FROM {quote(assigned.name)} ORDER BY customer_id").df()
        assigned.drop()
    frame.attrs["experiment"] = design.name or design.salt
    return Assignment(frame, assigned.quotas)
