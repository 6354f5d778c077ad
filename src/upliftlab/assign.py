"""Deterministic assignment of customers to arms: salted md5, stratified quotas, capacity, holdout.

The core (`assign_sql`, `assign`) is DuckDB SQL over temp tables (ten million ids in seconds), with
a formula any warehouse can reproduce (docs/assignment.md); `assign_experiment` and
`export_contacts` are the shell that applies a spec to the store and writes contact lists.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from upliftlab.errors import InputError, SpecError
from upliftlab.sources import literal, quote

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from upliftlab.spec import ExperimentSpec, ValueBandSpec

TWO60 = 1 << 60
HOLDOUT_ARM = "holdout"
METHOD_VERSION = "md5-60/v1"
_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                  "UINTEGER", "UBIGINT", "UHUGEINT"}
_TEXT_TYPES = {"VARCHAR", "UUID"}


# ---- the formula ----------------------------------------------------------------------------
def hash_sql(salt: str | None, id_sql: str, *, salt_sql: str | None = None) -> str:
    """SQL for the 60-bit integer behind u: the first 15 hex digits of md5(salt || ':' || id).

    `id_sql` must already be text; `salt_sql` replaces the literal salt by an SQL expression.
    """
    s = salt_sql if salt_sql is not None else literal(salt)
    return f"CAST(('0x' || substr(md5({s} || ':' || {id_sql}), 1, 15)) AS BIGINT)"


def unit_sql(salt: str, id_sql: str) -> str:
    """SQL for u in [0, 1) as documented: the 60-bit integer / 2^60 (a DOUBLE)."""
    return f"({hash_sql(salt, id_sql)} / 2^60)"


def hash_int(salt: str, customer_id: object) -> int:
    """Python reference of `hash_sql` for one id (its decimal or text form)."""
    return int(hashlib.md5(f"{salt}:{customer_id}".encode()).hexdigest()[:15], 16)


def unit_hash(salt: str, customer_id: object) -> float:
    """Python reference of u = hash_int / 2^60."""
    return hash_int(salt, customer_id) / TWO60


def thresholds(weights: Sequence[float]) -> list[int]:
    """Integer cut points T_a = ceil(C_a * 2^60) of the cumulative weights C_a (floats, summed in
    arm order): `u < C_a` and `hash < T_a` are the same test, and the integer one has no rounding.
    """
    return [math.ceil(Fraction(c) * TWO60) for c in accumulate(float(w) for w in weights)]


def simple_arm(salt: str, customer_id: object, names: Sequence[str],
               weights: Sequence[float]) -> str:
    """Python reference of simple mode: the first arm whose cumulative weight exceeds u."""
    x = hash_int(salt, customer_id)
    last = [n for n, w in zip(names, weights) if w > 0][-1]
    for name, w, t in zip(names, weights, thresholds(weights)):
        if w > 0 and x < t:
            return name
    return last


def holdout_threshold(share: float) -> int:
    """Customers whose holdout hash is below this integer (u_h < share) are the holdout."""
    return math.ceil(Fraction(share) * TWO60)


# ---- the design -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Arm:
    name: str
    weight: float
    control: bool = False
    capacity: int | None = None


@dataclass(frozen=True)
class Design:
    """What decides the arms: salt, arms (in order), mode, strata columns and the holdout."""

    salt: str
    arms: tuple[Arm, ...]
    mode: str = "stratified"
    strata: tuple[str, ...] = ()
    holdout_share: float = 0.0
    holdout_salt: str = "global-holdout"
    # the experiment's name for reports (not part of the randomisation); default: the salt
    name: str | None = None

    def __post_init__(self) -> None:
        if not self.salt:
            raise SpecError("design: salt must not be empty")
        if self.mode not in ("simple", "stratified"):
            raise SpecError(f"design: mode must be 'simple' or 'stratified', got {self.mode!r}")
        if len(self.arms) < 2:
            raise SpecError("design: needs at least two arms")
        if sum(a.control for a in self.arms) != 1:
            raise SpecError("design: exactly one arm must be the control")
        if any(a.weight < 0 for a in self.arms) or abs(sum(a.weight for a in self.arms) - 1) > 1e-9:
            raise SpecError("design: weights must be >= 0 and sum to 1")
        if len({a.name for a in self.arms}) != len(self.arms) or any(
                a.name == HOLDOUT_ARM for a in self.arms):
            raise SpecError("design: arm names must be distinct and not 'holdout'")
        if not 0 <= self.holdout_share <= 0.5:
            raise SpecError("design: holdout share must be in [0, 0.5]")

    @classmethod
    def from_spec(cls, spec: "ExperimentSpec") -> "Design":
        return cls(salt=spec.salt,
                   arms=tuple(Arm(a.name, a.weight, a.control, a.capacity) for a in spec.arms),
                   mode=spec.assignment.mode, strata=tuple(spec.strata),
                   holdout_share=spec.holdout.share, holdout_salt=spec.holdout.salt,
                   name=spec.name)

    @classmethod
    def of(cls, salt: str, weights: Mapping[str, float], *, control: str | None = None,
           capacity: Mapping[str, int] | None = None, **kwargs: Any) -> "Design":
        """A design from {arm: weight}; the control is `control` or the first arm."""
        control = control or next(iter(weights))
        capacity = capacity or {}
        return cls(salt=salt, arms=tuple(Arm(n, w, n == control, capacity.get(n))
                                         for n, w in weights.items()), **kwargs)

    @property
    def control(self) -> Arm:
        return next(a for a in self.arms if a.control)

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.arms]

    def exact_weights(self) -> dict[str, Fraction]:
        """Weights as exact fractions of their decimal text, normalised to sum to exactly 1."""
        raw = {a.name: Fraction(repr(float(a.weight))) for a in self.arms}
        total = sum(raw.values())
        return {k: v / total for k, v in raw.items()}


@dataclass(frozen=True)
class ArmAllocation:
    arm: str
    weight: float
    effective_weight: float
    capacity: int | None
    existing: int
    assigned: int


@dataclass(frozen=True)
class Allocation:
    """What one assignment run did: pool size, holdout, and per arm the weights and counts."""

    mode: str
    n_pool: int
    n_holdout: int
    arms: tuple[ArmAllocation, ...] = field(default_factory=tuple)

    @property
    def n_assigned(self) -> int:
        return self.n_pool - self.n_holdout

    def effective_weights(self) -> dict[str, float]:
        return {a.arm: a.effective_weight for a in self.arms}


# ---- capacity ---------------------------------------------------------------------------------
def capped_weights(design: Design, n: int, existing: Mapping[str, int] | None = None
                   ) -> dict[str, Fraction]:
    """Effective weights when capacities bind: w_a' = min(w_a, remaining_a / n), excess to control.

    Why control and not spread over the other treatments: control contacts cost nothing, so the
    other arms keep exactly the contacts (and the budget) they were designed with, and every
    comparison against control gains power from the larger control arm.
    """
    existing = existing or {}
    w = design.exact_weights()
    out = dict(w)
    excess = Fraction(0)
    for arm in design.arms:
        if arm.capacity is None:
            continue
        remaining = max(arm.capacity - int(existing.get(arm.name, 0)), 0)
        if n > 0 and w[arm.name] * n > remaining:
            out[arm.name] = Fraction(remaining, n)
            excess += w[arm.name] - out[arm.name]
    out[design.control.name] += excess
    return out


def stratum_phase(salt: str, stratum: str) -> Fraction:
    """The per-stratum rounding offset in [0, 1) (a hash, so no arm is favoured by rounding)."""
    return Fraction(hash_int(salt, f"stratum:{stratum}"), TWO60)


def cumulative_quotas(weights: Sequence[Fraction], n: int, phase: Fraction) -> list[int]:
    """Systematic rounding: Q_a = floor(C_a * n + phase), Q_last = n. Arm a gets Q_a - Q_{a-1},
    which is floor or ceil of w_a * n (so within 1 of it), and w_a * n on average over phases."""
    cum = list(accumulate(weights))
    return [math.floor(c * n + phase) for c in cum[:-1]] + [n]


def _fit_capacity(design: Design, weights: dict[str, Fraction], sizes: Mapping[str, int],
                  remaining: Mapping[str, int]) -> tuple[dict[str, Fraction], dict[str, list[int]]]:
    """Quotas per stratum whose per-arm totals never exceed the remaining capacity.

    Rounding up in many strata could overshoot a capacity by up to one per stratum, so a capped
    arm's weight is lowered by the overshoot (and given to control) until the totals fit.
    """
    names = design.names
    control = design.control.name
    n = sum(sizes.values())
    w = dict(weights)
    for _ in range(64):
        quotas = {s: cumulative_quotas([w[a] for a in names], m, stratum_phase(design.salt, s))
                  for s, m in sizes.items()}
        over = {}
        for i, a in enumerate(names):
            if a in remaining:
                total = sum(q[i] - (q[i - 1] if i else 0) for q in quotas.values())
                if total > remaining[a]:
                    over[a] = total - remaining[a]
        if not over:
            return w, quotas
        for a, extra in over.items():
            cut = min(w[a], Fraction(extra, max(n, 1)))
            w[a] -= cut
            w[control] += cut
    # unreachable in practice; a weight of (remaining - strata) / n can never overshoot
    for a in remaining:
        cut = w[a] - Fraction(max(remaining[a] - len(sizes), 0), max(n, 1))
        if cut > 0:
            w[a] -= cut
            w[control] += cut
    quotas = {s: cumulative_quotas([w[a] for a in names], m, stratum_phase(design.salt, s))
              for s, m in sizes.items()}
    return w, quotas


# ---- SQL core ---------------------------------------------------------------------------------
def stratum_sql(strata: Sequence[str], alias: str = "") -> str:
    """SQL of the stratum label 'col=value|col=value' ('all' without strata)."""
    if not strata:
        return "'all'"
    prefix = f"{alias}." if alias else ""
    parts = [f"{literal(c + '=')} || coalesce(CAST({prefix}{quote(c)} AS VARCHAR), 'null')"
             for c in strata]
    return " || '|' || ".join(parts)


def _arm_case(design: Design, below: Any, *, index: bool = False) -> str:
    """CASE of simple mode: the first arm whose cumulative weight exceeds u, where `below(T)`
    is the SQL test "u < T" (the arm's name, or its index in spec order when `index`)."""
    positive = [a for a in design.arms if a.weight > 0]
    cuts = thresholds([a.weight for a in design.arms])
    label = (lambda a: str(design.arms.index(a))) if index else (lambda a: literal(a.name))
    whens = [f"WHEN {below(t)} THEN {label(a)}"
             for a, t in zip(design.arms, cuts) if a.weight > 0 and a is not positive[-1]]
    return f"CASE {' '.join(whens)} ELSE {label(positive[-1])} END"


def _simple_case(design: Design, ui: str = "ui", *, index: bool = False) -> str:
    """`_arm_case` on the 60-bit integer `ui`."""
    return _arm_case(design, lambda t: f"{ui} < {t}", index=index)


def md5_sql(salt: str, id_sql: str) -> str:
    """SQL of md5(salt || ':' || id) as lower-case hex text."""
    return f"md5({literal(salt)} || ':' || {id_sql})"


def hex_key(x: int) -> str:
    """A text key that compares with md5 hex text h as x compares with h's 60-bit integer:
    h < hex_key(T) exactly when int(h[:15], 16) < T.

    Fixed-width lower-case hex orders like the numbers it writes, and h (32 digits) is greater
    than its own 15-digit prefix; so the formula runs on the md5 text without converting it to an
    integer (a third of the cost of the md5 itself). 'g' sorts after every hex digit.
    """
    if x <= 0:
        return ""
    if x >= TWO60:
        return "g"
    return format(x, "015x")


def _simple_case_hex(design: Design, h: str, *, index: bool = False) -> str:
    """`_simple_case` on the md5 text `h` (the same arms)."""
    return _arm_case(design, lambda t: f"{h} < {literal(hex_key(t))}", index=index)


def _order_keys(con: "duckdb.DuckDBPyConnection", table: str, group: str, where: str,
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
    if hist is None:
        hist = {}
        for g, b, n in con.execute(f"SELECT {group}, substr(h, 1, 2), count(*) FROM {table} "
                                   f"WHERE {where} GROUP BY ALL").fetchall():
            hist.setdefault(g, []).append((str(b), int(n)))
        hist = {g: sorted(v) for g, v in hist.items()}
    need = []
    for g, ranks in targets.items():
        buckets = hist.get(g, [])
        starts = [0, *accumulate(n for _, n in buckets)]
        for r in ranks:
            i = next(i for i in range(len(buckets)) if starts[i + 1] > r)
            need.append((g, buckets[i][0], r - starts[i], r))
    # the group column keeps its own type, so the filter below compares without casts
    con.execute(f"CREATE OR REPLACE TEMP TABLE ul_need AS SELECT {group} AS g, "
                f"CAST(NULL AS VARCHAR) AS b, 0::BIGINT AS off, 0::BIGINT AS rnk FROM {table} "
                "LIMIT 0")
    con.executemany("INSERT INTO ul_need VALUES (?, ?, ?, ?)", need)
    # a range test per distinct prefix reads the string's inlined first bytes only; boundaries
    # sit at the same cumulative weights in every stratum, so there are few distinct prefixes
    ranges = " OR ".join(f"(x.h >= {literal(b)} AND x.h < {literal(_next_prefix(b))})"
                         for b in sorted({b for _, b, _, _ in need}))
    rows = con.execute(f"""
        WITH cand AS (
            SELECT x.{group} AS g, substr(x.h, 1, 2) AS b, x.h, x.customer_id
            FROM {table} x
            SEMI JOIN (SELECT DISTINCT g, b FROM ul_need) p
              ON x.{group} = p.g AND substr(x.h, 1, 2) = p.b
            WHERE ({ranges}) AND {where}
        ), ranked AS (
            SELECT g, b, substr(h, 1, 15) AS k, CAST(customer_id AS VARCHAR) AS cid,
                   row_number() OVER (PARTITION BY g, b ORDER BY substr(h, 1, 15),
                                      CAST(customer_id AS VARCHAR)) - 1 AS off
            FROM cand
        )
        SELECT n.g, n.rnk, r.k, r.cid FROM ranked r JOIN ul_need n USING (g, b, off)
    """).fetchall()
    con.execute("DROP TABLE IF EXISTS ul_need")
    return {(int(g), int(r)): (str(k), str(cid)) for g, r, k, cid in rows}


def _next_prefix(prefix: str) -> str:
    """The smallest hex text above every text starting with `prefix` ('ff' -> 'g')."""
    value = int(prefix, 16) + 1
    return "g" if value >= 16 ** len(prefix) else format(value, f"0{len(prefix)}x")


def _before(h: str, cid: str, key: str, key_cid: str) -> str:
    """(hash, id text) < (key's hash, key's id text), on md5 text; the id is cast only for the
    (never seen) rows whose 60-bit hash equals the key's."""
    return (f"({h} < {key} OR (starts_with({h}, {key}) AND length({key}) = 15 "
            f"AND CAST({cid} AS VARCHAR) < {key_cid}))")


def assign_sql(con: "duckdb.DuckDBPyConnection", pool: str, design: Design, *,
               out: str = "ul_assigned", existing: Mapping[str, int] | None = None) -> Allocation:
    """Assign the customers of `pool` (columns customer_id, stratum) and return what was
    allocated. The result is the temp view `out` (customer_id as text, stratum, arm) over temp
    tables named `out`__h / __k; read it (e.g. INSERT ... SELECT) and then `drop_assigned`.

    `existing` counts customers already in each arm (they count against capacities). Simple
    mode: arm = first arm whose cumulative weight exceeds u. Stratified mode: within each stratum,
    customers ranked by (u, id text) fill the arms in order up to quotas exact up to rounding.
    The global holdout (arm 'holdout') is taken out first, by its own salt.

    Cost: one md5 pass that materialises (id, stratum code, md5 text), one aggregation over that
    table (stratified), and a sort of the few rows at the quota boundaries; reading the view costs
    a join with a table of one row per stratum.
    """
    existing = dict(existing or {})
    base, strata, keys = f"{out}__h", f"{out}__s", f"{out}__k"
    share = design.holdout_share
    holdout = (f"{md5_sql(design.holdout_salt, 'cid')} < "
               f"{literal(hex_key(holdout_threshold(share)))}" if share > 0 else "FALSE")
    names = design.names
    k = len(names)
    control = design.control.name
    remaining = {a.name: max(a.capacity - existing.get(a.name, 0), 0)
                 for a in design.arms if a.capacity is not None}
    # strata travel as a 64-bit code (hash of the label) and get their label back at the end:
    # materialising ten million long label strings costs more than the md5 itself
    con.execute(f"CREATE OR REPLACE TEMP TABLE {strata} AS SELECT stratum, hash(stratum) AS scode "
                f"FROM (SELECT DISTINCT stratum FROM {pool})")
    n_strata, n_codes = con.execute(f"SELECT count(*), count(DISTINCT scode) FROM {strata}"
                                    ).fetchone()
    if n_strata != n_codes:  # a 64-bit collision among a handful of labels: number them instead
        con.execute(f"CREATE OR REPLACE TEMP TABLE {strata} AS SELECT stratum, CAST(row_number() "
                    f"OVER (ORDER BY stratum) AS UBIGINT) AS scode FROM {strata}")
        code = f"(SELECT s.scode FROM {strata} s WHERE s.stratum = p.stratum)"
    else:
        code = "hash(p.stratum)"
    simple = design.mode == "simple"
    # simple mode keeps the md5 text only when a capacity may have to cut an arm
    keep_h = not simple or bool(remaining)
    # the id is kept as the text the hash read: the store wants text, and it breaks hash ties
    cols = ["cid AS customer_id", "scode"] + (["h"] if keep_h else [])
    if simple:
        cols.append(f"CASE WHEN {holdout} THEN -1 ELSE {_simple_case_hex(design, 'h', index=True)}"
                    " END AS a")
    else:
        cols.append(f"{holdout} AS holdout")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {base} AS
        SELECT {', '.join(cols)}
        FROM (SELECT customer_id, scode, cid, {md5_sql(design.salt, 'cid')} AS h
              FROM (SELECT p.customer_id, {code} AS scode, CAST(p.customer_id AS VARCHAR) AS cid
                    FROM {pool} p))
    """)
    labels = {int(c): s for s, c in con.execute(f"SELECT stratum, scode FROM {strata}").fetchall()}
    counts: dict[str, int] = {}
    if simple:
        by_arm = dict(con.execute(f"SELECT a, count(*) FROM {base} GROUP BY a").fetchall())
        n_hold = int(by_arm.get(-1, 0))
        counts = {names[i]: int(by_arm.get(i, 0)) for i in range(k)}
        n = sum(counts.values())
        weights = capped_weights(design, n, existing)
        # capacity: within a capped arm, the `remaining` customers with the smallest (u, id)
        # keep it and the rest go to control; which ones is still random
        over = {names.index(a): r for a, r in remaining.items() if counts[a] > r}
        found = _order_keys(con, base, "a", "a >= 0", {i: [r] for i, r in over.items()})
        whens = ["WHEN h.a = -1 THEN 'holdout'"]
        for i, r in over.items():
            key, key_cid = found[(i, r)]
            whens.append(f"WHEN h.a = {i} AND NOT "
                         f"{_before('h.h', 'h.customer_id', literal(key), literal(key_cid))} "
                         f"THEN {literal(control)}")
            counts[control] += counts[names[i]] - r
            counts[names[i]] = r
        whens += [f"WHEN h.a = {i} THEN {literal(a)}" for i, a in enumerate(names)]
        con.execute(f"CREATE OR REPLACE TEMP TABLE {keys} AS SELECT * FROM {strata}")
        arm_sql = f"CASE {' '.join(whens)} END"
    else:
        hist: dict[int, list[tuple[str, int]]] = {}
        n_hold = 0
        hold_col = "holdout" if share > 0 else "FALSE"
        for g, is_hold, b, c in con.execute(f"SELECT scode, {hold_col}, substr(h, 1, 2), "
                                            f"count(*) FROM {base} GROUP BY ALL").fetchall():
            if is_hold:
                n_hold += int(c)
            else:
                hist.setdefault(int(g), []).append((str(b), int(c)))
        hist = {g: sorted(v) for g, v in hist.items()}
        sizes = {labels[g]: sum(c for _, c in v) for g, v in hist.items()}
        n = sum(sizes.values())
        weights, quotas = _fit_capacity(design, capped_weights(design, n, existing), sizes,
                                        remaining)
        code_of = {s: g for g, s in labels.items()}
        targets = {code_of[s]: sorted({q[i] for i in range(k - 1) if 0 < q[i] < sizes[s]})
                   for s, q in quotas.items()}
        found = _order_keys(con, base, "scode", "NOT holdout", targets, hist)
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
        con.execute(f"CREATE OR REPLACE TEMP TABLE {keys} (scode UBIGINT, stratum VARCHAR"
                    f"{', ' + key_cols if key_cols else ''})")
        if rows:
            con.executemany(f"INSERT INTO {keys} VALUES ({', '.join(['?'] * (2 * k))})", rows)
        whens = " ".join(f"WHEN {_before('h.h', 'h.customer_id', f'k.k{i}', f'k.c{i}')} "
                         f"THEN {literal(names[i])}" for i in range(k - 1))
        arm_sql = f"CASE WHEN h.holdout THEN 'holdout' {whens} ELSE {literal(names[-1])} END"
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW {out} AS
        SELECT h.customer_id, k.stratum, {arm_sql} AS arm
        FROM {base} h JOIN {keys} k USING (scode)
    """)
    con.execute(f"DROP TABLE IF EXISTS {strata}")
    arms = tuple(ArmAllocation(a.name, float(a.weight), float(weights[a.name]), a.capacity,
                               int(existing.get(a.name, 0)), int(counts.get(a.name, 0)))
                 for a in design.arms)
    return Allocation(design.mode, n + n_hold, n_hold, arms)



def drop_assigned(con: "duckdb.DuckDBPyConnection", out: str = "ul_assigned") -> None:
    """Drop the view made by `assign_sql` and the tables behind it."""
    con.execute(f"DROP VIEW IF EXISTS {out}")
    for suffix in ("__h", "__k", "__s"):
        con.execute(f"DROP TABLE IF EXISTS {out}{suffix}")


# ---- inputs -----------------------------------------------------------------------------------
def validate_cohort(con: "duckdb.DuckDBPyConnection", view: str, where: str,
                    required: Sequence[str] = ()) -> list[str]:
    """Check the cohort has usable, unique customer ids and the required columns."""
    from upliftlab.sources import require_columns

    described = con.execute(f"DESCRIBE {quote(view)}").fetchall()
    types = {row[0]: str(row[1]).upper() for row in described}
    require_columns(list(types), ["customer_id", *required], where)
    kind = types["customer_id"]
    if kind not in _INTEGER_TYPES and kind not in _TEXT_TYPES:
        raise InputError(f"{where}: customer_id must be integers or text, not {kind} "
                         "(1 and 1.0 would hash differently)")
    nulls = con.execute(f"SELECT count(*) FROM {quote(view)} WHERE customer_id IS NULL"
                        ).fetchone()[0]
    if nulls:
        raise InputError(f"{where}: {nulls} rows have no customer_id")
    dup = con.execute(f"""
        SELECT CAST(customer_id AS VARCHAR) AS id, count(*) AS n, count(*) OVER () AS ids
        FROM {quote(view)} GROUP BY customer_id HAVING count(*) > 1 ORDER BY n DESC, id LIMIT 1
    """).fetchone()
    if dup:
        raise InputError(f"{where}: customer_id {dup[0]!r} appears {dup[1]} times "
                         f"({dup[2]} ids are duplicated); each customer must appear once")
    return list(types)


def add_value_band(con: "duckdb.DuckDBPyConnection", view: str, spec: "ValueBandSpec",
                   out: str, where: str) -> list[float]:
    """Create `out` = `view` plus the column value_band; return the cut points used.

    Cuts are the spec's thresholds, or its quantiles of the column over the whole cohort (as it
    is at this run). Band i holds values with exactly i cuts strictly below them; NULL -> lowest.
    """
    from upliftlab.sources import require_columns

    cols = [r[0] for r in con.execute(f"DESCRIBE {quote(view)}").fetchall()]
    require_columns(cols, [spec.column], f"{where} (value_band)")
    if spec.thresholds is not None:
        cuts = [float(t) for t in spec.thresholds]
    else:
        qs = ", ".join(repr(float(q)) for q in spec.quantiles or spec.cuts())
        got = con.execute(f"SELECT quantile_cont({quote(spec.column)}, [{qs}]) "
                          f"FROM {quote(view)}").fetchone()[0]
        cuts = [float(x) if x is not None else 0.0 for x in (got or [0.0] * len(spec.cuts()))]
    labels = spec.band_labels()
    col = quote(spec.column)
    whens = " ".join(f"WHEN {col} > {cuts[i - 1]!r} THEN {literal(labels[i])}"
                     for i in range(len(cuts), 0, -1))
    others = ", ".join(quote(c) for c in cols if c != "value_band")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(out)} AS SELECT {others}, "
                f"CASE {whens} ELSE {literal(labels[0])} END AS value_band FROM {quote(view)}")
    return cuts


def cohort_view(con: "duckdb.DuckDBPyConnection", spec: "ExperimentSpec",
                view: str = "ul_cohort") -> list[str]:
    """Build the spec's cohort into the temp table `view` (plus value_band when it is a stratum);
    validate ids, duplicates, strata and covariates; return the column names."""
    from upliftlab.sources import register

    c = spec.cohort
    if c.table is not None:
        source = spec.resolve(c.table)
        register(con, source, f"{view}_src")
    elif c.kind == "at_risk":
        from upliftlab.risk.workflow import at_risk_view

        source = spec.resolve(c.transactions)
        con.execute("SET TimeZone = 'UTC'")
        at_risk_view(con, spec.resolve(c.model), source, c.as_of, f"{view}_src",
                     min_level=c.min_level or "high", share=c.share,
                     columns=c.columns.column_map(), discount_col=c.columns.discount_col)
    else:
        source = spec.resolve(c.transactions)
        from upliftlab.cohort import build_cohort_relation

        # timestamps with a zone are read in UTC, as build_cohort does on its own connection
        con.execute("SET TimeZone = 'UTC'")
        rel = build_cohort_relation(con, source, c.as_of, dormant_after=c.dormant_after,
                                    tiers=c.tiers, columns=c.columns.column_map(),
                                    discount_col=c.columns.discount_col)
        # (a relation of this connection: its SQL reads the temp views it registered)
        con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(view + '_src')} AS {rel.sql_query()}")
    where = f"cohort of {source}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(view + '_raw')} AS "
                f"SELECT * FROM {quote(view + '_src')}")
    if not con.execute(f"SELECT count(*) FROM {quote(view + '_raw')}").fetchone()[0]:
        raise InputError(f"{where}: no customers (the cohort is empty)")
    _check_covariates(con, view + "_raw", spec, where)
    if "value_band" in spec.strata:
        add_value_band(con, f"{view}_raw", spec.value_band, f"{view}_banded", where)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(view)} AS "
                    f"SELECT * FROM {quote(view + '_banded')}")
        con.execute(f"DROP VIEW IF EXISTS {quote(view + '_banded')}")
        con.execute(f"DROP TABLE IF EXISTS {quote(view + '_raw')}")
    else:
        con.execute(f"ALTER TABLE {quote(view + '_raw')} RENAME TO {quote(view)}")
    return validate_cohort(con, view, where, [*spec.strata, *spec.covariates])


def _check_covariates(con: "duckdb.DuckDBPyConnection", view: str, spec: "ExperimentSpec",
                      where: str) -> None:
    """The spec's covariates must be numeric columns of the cohort: they adjust the outcome
    (CUPED / Lin) and are checked for balance, which a text column cannot do."""
    from upliftlab.errors import SpecError

    types = {r[0]: str(r[1]).upper() for r in con.execute(f"DESCRIBE {quote(view)}").fetchall()}
    for c in spec.covariates:
        kind = types.get(c)
        if kind is not None and (kind in _TEXT_TYPES or kind.startswith(("BOOL", "DATE", "TIME"))):
            raise SpecError(f"{spec.path or spec.name}: covariate {c!r} is a {kind} column of the "
                            f"{where}, not a number (covariates adjust the outcome; use it as a "
                            "stratum instead)")


# ---- the notebook API ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Assignment:
    """Result of `assign`: one row per customer (customer_id with the cohort's id type,
    stratum, arm; `frame.attrs["experiment"]` is the design's name) and what the run
    allocated."""

    frame: "pd.DataFrame"
    allocation: Allocation


def assign(cohort: Any, design: Design, *, existing: "pd.DataFrame | None" = None) -> Assignment:
    """Assign a cohort (DataFrame, file path or DuckDB relation with `customer_id` and the strata
    columns) to arms. `existing` (customer_id, arm) are kept out of the pool and count against
    capacities, as for late joiners."""
    from upliftlab.sources import connect, register

    con = connect()
    try:
        register(con, cohort, "ul_cohort")
        validate_cohort(con, "ul_cohort", "cohort", list(design.strata))
        counts: dict[str, int] = {}
        anti = ""
        if existing is not None and len(existing):
            con.execute("SELECT 1").fetchall()  # DuckDB 2 refuses register() with a result pending
            con.register("ul_existing_src", existing[["customer_id", "arm"]])
            con.execute("CREATE TEMP TABLE ul_existing AS SELECT CAST(customer_id AS VARCHAR) AS "
                        "customer_id, arm FROM ul_existing_src")
            counts = dict(con.execute("SELECT arm, count(*) FROM ul_existing GROUP BY arm"
                                      ).fetchall())
            anti = ("WHERE CAST(c.customer_id AS VARCHAR) NOT IN "
                    "(SELECT customer_id FROM ul_existing)")
        con.execute(f"CREATE TEMP VIEW ul_pool AS SELECT c.customer_id, "
                    f"{stratum_sql(design.strata, 'c')} AS stratum FROM ul_cohort c {anti}")
        allocation = assign_sql(con, "ul_pool", design, existing=counts)
        id_type = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE ul_cohort)"
                                   ).fetchall())["customer_id"]
        # ids come back with the type they came in (integers stay integers)
        frame = con.execute(f"SELECT CAST(customer_id AS {id_type}) AS customer_id, stratum, arm "
                            "FROM ul_assigned ORDER BY customer_id").df()
        drop_assigned(con, "ul_assigned")
    finally:
        con.close()
    frame.attrs["experiment"] = design.name or design.salt
    return Assignment(frame, allocation)


# ---- a spec against the store (the shell that the CLI calls) ----------------------------------
@dataclass(frozen=True)
class AssignRun:
    """What `assign_experiment` did: the allocation of this run's new customers, how many were
    there before, the checks over all of the experiment's customers, and whether it wrote."""

    experiment: str
    version: int
    allocation: Allocation
    n_existing: int
    n_new: int
    checks: tuple[Any, ...]
    written: bool
    spec_updated: bool


def _existing_pool_sql(spec: "ExperimentSpec", cohort: str) -> str:
    return (f"SELECT c.customer_id, {stratum_sql(spec.strata, 'c')} AS stratum "
            f"FROM {quote(cohort)} c WHERE NOT EXISTS (SELECT 1 FROM assignments a "
            f"WHERE a.experiment = {literal(spec.name)} AND a.version = {int(spec.version)} "
            f"AND a.customer_id = CAST(c.customer_id AS VARCHAR))")


def assign_experiment(spec: "ExperimentSpec", store: Any) -> AssignRun:
    """Assign the spec's cohort in `store`, in one transaction.

    Customers already assigned keep their arm; new cohort customers are assigned among
    themselves by the same formula; a changed randomisation on an experiment that has
    assignments is refused. Nothing is written when nothing is new (idempotent).
    """
    import json

    from upliftlab.errors import StoreError
    from upliftlab.spec import (randomisation_diff, randomisation_fields, randomisation_hash,
                                spec_hash, spec_json)
    from upliftlab.store import _now

    con = store.con
    name, version = spec.name, spec.version
    with store.transaction():
        store.ensure_schema()
        exp = store.experiment(name, version)
        existing = store.arm_counts(name, version)
        n_existing = sum(existing.values())
        r_hash = randomisation_hash(spec)
        changed = []
        if exp is not None and exp["randomisation_hash"] != r_hash and n_existing:
            stored = exp["randomisation_json"]
            fields = randomisation_fields(spec)
            if "tiers" not in stored:  # recorded before the tiers were part of it: unknown
                fields.pop("tiers", None)
            changed = randomisation_diff(stored, fields)
        if changed:
            raise StoreError(
                f"experiment '{name}' v{version} already has {n_existing} assignments; its "
                f"{', '.join(changed)} changed — re-randomising a running "
                "experiment destroys it; bump `version` to start a new one")
        cohort_view(con, spec, "ul_cohort")
        con.execute(f"CREATE OR REPLACE TEMP VIEW ul_pool AS {_existing_pool_sql(spec, 'ul_cohort')}")
        design = Design.from_spec(spec)
        allocation = assign_sql(con, "ul_pool", design, out="ul_new",
                                existing={a: n for a, n in existing.items() if a != HOLDOUT_ARM})
        n_new = allocation.n_pool
        now = _now()
        s_hash = spec_hash(spec)
        path = str(spec.path) if spec.path is not None else None
        updated = False
        if exp is None:
            con.execute("INSERT INTO experiments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [name, version, json.dumps(spec_json(spec)), s_hash, r_hash,
                         json.dumps(randomisation_fields(spec)), path, now, now])
        elif exp["spec_hash"] != s_hash or exp["randomisation_hash"] != r_hash:
            # costs, descriptions, covariates may change while it runs; the refusal above
            # already stopped any change to who gets which arm
            con.execute("UPDATE experiments SET spec_json = ?, spec_hash = ?, randomisation_hash"
                        " = ?, randomisation_json = ?, spec_path = ?, updated_at = ? WHERE name"
                        " = ? AND version = ?",
                        [json.dumps(spec_json(spec)), s_hash, r_hash,
                         json.dumps(randomisation_fields(spec)), path, now, name, version])
            updated = True
        if n_new:
            batch = store.next_batch(name, version)
            con.execute(
                "INSERT INTO assignments SELECT ?, ?, customer_id, arm, stratum, ?, ?, ? "
                "FROM ul_new", [name, version, batch, now, f"{spec.assignment.mode}/{METHOD_VERSION}"])
            con.executemany(
                "INSERT INTO allocations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [[name, version, batch, a.arm, a.weight, a.effective_weight, a.capacity,
                  allocation.n_pool, allocation.n_holdout, a.assigned, now]
                 for a in allocation.arms])
        checks = _experiment_checks(con, spec)
        if n_new:
            con.executemany("INSERT INTO checks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [[name, version, now, c.kind, c.scope, _finite(c.statistic),
                              _finite(c.p_value), c.ok, json.dumps(c.details, default=str)]
                             for c in checks])
        drop_assigned(con, "ul_new")
        con.execute("DROP TABLE IF EXISTS ul_cohort")
        con.execute("DROP VIEW IF EXISTS ul_pool")
    return AssignRun(name, version, allocation, n_existing, n_new, tuple(checks),
                     bool(n_new) or updated or exp is None, updated)


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def check_experiment(spec: "ExperimentSpec", store: Any) -> list[Any]:
    """Run the checks of an assigned experiment now (SRM overall and per stratum, holdout share,
    balance, counts) and append them to the store's `checks` table, in one transaction."""
    import json

    from upliftlab.errors import StoreError
    from upliftlab.store import _now

    if store.experiment(spec.name, spec.version) is None or not store.arm_counts(
            spec.name, spec.version):
        raise StoreError(f"experiment '{spec.name}' v{spec.version} has no assignments in store "
                         f"{store.path}; run `upliftlab assign` first")
    con = store.con
    with store.transaction():
        cohort_view(con, spec, "ul_cohort")
        checks = _experiment_checks(con, spec)
        now = _now()
        con.executemany("INSERT INTO checks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [[spec.name, spec.version, now, c.kind, c.scope, _finite(c.statistic),
                          _finite(c.p_value), c.ok, json.dumps(c.details, default=str)]
                         for c in checks])
        con.execute("DROP TABLE IF EXISTS ul_cohort")
    return checks


def _experiment_checks(con: "duckdb.DuckDBPyConnection", spec: "ExperimentSpec") -> list[Any]:
    """Checks over all of the experiment's stored customers; SRM expects, per stratum, the sum
    over runs of (customers of that run) x (that run's effective weight)."""
    from upliftlab.checks import run_checks

    key = f"experiment = {literal(spec.name)} AND version = {int(spec.version)}"
    con.execute(f"CREATE OR REPLACE TEMP VIEW ul_all AS SELECT customer_id, stratum, arm, batch "
                f"FROM assignments WHERE {key}")
    con.execute(f"""CREATE OR REPLACE TEMP VIEW ul_expected AS
        SELECT n.stratum, al.arm, sum(n.n * al.effective_weight) AS expected
        FROM (SELECT batch, stratum, count(*) AS n FROM ul_all WHERE arm <> '{HOLDOUT_ARM}'
              GROUP BY ALL) n
        JOIN (SELECT * FROM allocations WHERE {key}) al USING (batch)
        GROUP BY ALL""")
    checks = run_checks(con, assigned="ul_all", expected="ul_expected", cohort="ul_cohort",
                        control=spec.control_arm.name,
                        treatments=[a.name for a in spec.treatment_arms],
                        holdout_share=spec.holdout.share)
    con.execute("DROP VIEW IF EXISTS ul_expected")
    con.execute("DROP VIEW IF EXISTS ul_all")
    return checks


EXPORT_FEATURES = ("tier", "value_band", "days_since_last", "last_purchase", "orders_total",
                   "revenue_total", "revenue_365d", "avg_order_value")
# money columns of the cohort: exported rounded to cents
_MONEY_PREFIXES = ("revenue_", "avg_order_value")


def export_contacts(spec: "ExperimentSpec", store: Any, out_dir: str, fmt: str = "csv"
                    ) -> list[str]:
    """Write one contact list per treatment arm, then the full assignment (every customer:
    control and the global holdout too) as `<name>_v<version>_assignment.<fmt>`, as the folder
    `out_dir`.

    Columns: the customer id under the source's own id column name (the spec's
    `[cohort.columns] customer_col`) and with the cohort's id type, experiment, version, arm,
    stratum and useful cohort features, money rounded to cents. The folder is staged beside
    `out_dir` and swapped in whole (`upliftlab._files.staged_dir`); a folder that `upliftlab
    export` did not write is refused. Returns the paths, the full assignment last.
    """
    from upliftlab._files import claim, staged_dir
    from upliftlab.errors import StoreError

    if fmt not in ("csv", "parquet"):
        raise InputError(f"--format must be csv or parquet, got {fmt!r}")
    # a folder from before the marker holds only contact lists of this experiment
    legacy = (f"{spec.name}_v*.csv", f"{spec.name}_v*.parquet")
    out = claim(out_dir, "export", legacy)
    con = store.con
    counts = store.arm_counts(spec.name, spec.version)
    if not counts:
        raise StoreError(f"experiment '{spec.name}' v{spec.version} has no assignments in store "
                         f"{store.path}; run `upliftlab assign` first")
    cohort_view(con, spec, "ul_cohort")
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE ul_cohort)"
                             ).fetchall())
    feats = ", ".join(
        f"round(c.{quote(f)}, 2) AS {quote(f)}" if f.startswith(_MONEY_PREFIXES)
        and types[f] in ("DOUBLE", "FLOAT", "REAL") else f"c.{quote(f)}"
        for f in EXPORT_FEATURES if f in types)
    id_name = spec.cohort.columns.customer_col if spec.cohort.transactions else "customer_id"
    id_sql = f"CAST(a.customer_id AS {types['customer_id']}) AS {quote(id_name)}"
    lists = [(arm.name, f"a.arm = {literal(arm.name)}") for arm in spec.treatment_arms]
    lists.append(("assignment", "TRUE"))
    names = [f"{spec.name}_v{spec.version}_{label}.{fmt}" for label, _ in lists]
    options = "(FORMAT csv, HEADER true)" if fmt == "csv" else "(FORMAT parquet)"
    try:
        with staged_dir(out, owner="export", legacy=legacy) as tmp:
            for (_, where), name in zip(lists, names):
                con.execute(f"""COPY (
                    SELECT {id_sql}, a.experiment, a.version, a.arm, a.stratum
                           {', ' + feats if feats else ''}
                    FROM assignments a LEFT JOIN ul_cohort c
                      ON CAST(c.customer_id AS VARCHAR) = a.customer_id
                    WHERE a.experiment = {literal(spec.name)} AND a.version = {int(spec.version)}
                      AND {where}
                    ORDER BY a.customer_id) TO {literal(str(tmp / name))} {options}""")
    finally:
        con.execute("DROP TABLE IF EXISTS ul_cohort")
    return [str(out / name) for name in names]
