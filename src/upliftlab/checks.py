"""Checks of an assignment: sample-ratio mismatch, covariate balance, counts per arm and stratum.

Aggregates are computed in DuckDB SQL; the tests themselves are pure functions of those
aggregates (SRM is `upliftlab.stats.srm.srm_test`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from upliftlab.sources import is_number, quote
from upliftlab.rules import HOLDOUT_ARM
from upliftlab.stats.srm import SRM_THRESHOLD, srm_test

if TYPE_CHECKING:
    import duckdb

SMD_THRESHOLD = 0.1


@dataclass(frozen=True)
class Check:
    """One check result as stored: kind (srm, srm_holdout, smd, count), scope (overall or
    stratum:<label>), its statistic and p-value, whether it passed, and details."""

    kind: str
    scope: str
    statistic: float | None
    p_value: float | None
    ok: bool
    details: dict[str, Any] = field(default_factory=dict)


def smd(mean_t: float, var_t: float, mean_c: float, var_c: float) -> float:
    """Standardised mean difference (mean_t - mean_c) / sqrt((var_t + var_c) / 2).

    Sample variances (n - 1); 0 when both means are equal, +-inf when only the means differ.
    """
    diff = mean_t - mean_c
    pooled = math.sqrt(max((var_t + var_c) / 2, 0.0))
    if pooled == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / pooled


def srm_checks(counts: Mapping[tuple[str, str], int],
               expected: Mapping[tuple[str, str], float]) -> list[Check]:
    """SRM overall and per stratum; `counts`/`expected` are keyed by (stratum, arm), holdout out."""
    checks = []
    strata = sorted({s for s, _ in expected})
    arms = sorted({a for _, a in expected})
    total_c = {a: sum(n for (s, b), n in counts.items() if b == a) for a in arms}
    total_e = {a: sum(e for (s, b), e in expected.items() if b == a) for a in arms}
    scopes = [("overall", total_c, total_e)] + [
        (f"stratum:{s}", {a: counts.get((s, a), 0) for a in arms},
         {a: expected.get((s, a), 0.0) for a in arms}) for s in strata]
    for scope, c, e in scopes:
        if sum(e.values()) <= 0:
            continue
        r = srm_test(c, e)
        checks.append(Check("srm", scope, r.chi2, r.p_value, r.ok,
                            {"df": r.df, "counts": r.counts,
                             "expected": {k: round(v, 3) for k, v in r.expected.items()},
                             "threshold": SRM_THRESHOLD}))
    return checks


def holdout_check(n_holdout: int, n_other: int, share: float) -> Check:
    r = srm_test({"holdout": n_holdout, "rest": n_other}, {"holdout": share, "rest": 1 - share})
    return Check("srm_holdout", "overall", r.chi2, r.p_value, r.ok,
                 {"counts": r.counts, "share": share})


def balance_checks(stats: Mapping[str, Mapping[str, tuple[int, float, float]]], control: str,
                   treatments: Sequence[str]) -> list[Check]:
    """|SMD| of every feature, each treatment vs control; `stats[arm][feature]` = (n, mean, var)."""
    checks = []
    ctrl = stats.get(control, {})
    for arm in treatments:
        for feature, (n_t, m_t, v_t) in stats.get(arm, {}).items():
            if feature not in ctrl or n_t < 2 or ctrl[feature][0] < 2:
                continue
            n_c, m_c, v_c = ctrl[feature]
            d = smd(m_t, v_t, m_c, v_c)
            checks.append(Check("smd", "overall", d, None, abs(d) <= SMD_THRESHOLD,
                                {"arm": arm, "control": control, "feature": feature,
                                 "mean_arm": m_t, "mean_control": m_c, "n_arm": n_t,
                                 "n_control": n_c, "threshold": SMD_THRESHOLD}))
    return checks


def count_checks(counts: Mapping[tuple[str, str], int]) -> list[Check]:
    """Counts per arm overall and per (stratum, arm), holdout included; always ok."""
    out = []
    arms = sorted({a for _, a in counts})
    for a in arms:
        out.append(Check("count", "overall", float(sum(n for (s, b), n in counts.items()
                                                       if b == a)), None, True, {"arm": a}))
    for (s, a), n in sorted(counts.items()):
        out.append(Check("count", f"stratum:{s}", float(n), None, True, {"arm": a}))
    return out


def numeric_features(con: "duckdb.DuckDBPyConnection", table: str,
                     exclude: Sequence[str] = ("customer_id",)) -> list[str]:
    """Numeric (and boolean) columns of `table`, except the ids."""
    rows = con.execute(f"DESCRIBE {quote(table)}").fetchall()
    return [r[0] for r in rows
            if r[0] not in exclude and is_number(r[1], boolean=True)]


def feature_stats(con: "duckdb.DuckDBPyConnection", assigned: str, cohort: str,
                  features: Sequence[str]) -> dict[str, dict[str, tuple[int, float, float]]]:
    """Per arm (holdout left out) and feature: (n, mean, sample variance), in one SQL pass."""
    if not features:
        return {}
    cols = []
    for i, f in enumerate(features):
        x = f"CAST(c.{quote(f)} AS DOUBLE)"
        cols += [f"count({x}) AS n{i}", f"avg({x}) AS m{i}", f"var_samp({x}) AS v{i}"]
    rows = con.execute(f"""
        SELECT a.arm, {', '.join(cols)}
        FROM {quote(assigned)} a JOIN {quote(cohort)} c
          ON CAST(c.customer_id AS VARCHAR) = a.customer_id
        WHERE a.arm <> '{HOLDOUT_ARM}' GROUP BY a.arm
    """).fetchall()
    out: dict[str, dict[str, tuple[int, float, float]]] = {}
    for row in rows:
        arm, vals = row[0], row[1:]
        out[arm] = {f: (int(vals[3 * i] or 0), float(vals[3 * i + 1] or 0.0),
                        float(vals[3 * i + 2] or 0.0)) for i, f in enumerate(features)}
    return out


def run_checks(con: "duckdb.DuckDBPyConnection", *, assigned: str, expected: str, cohort: str,
               control: str, treatments: Sequence[str], holdout_share: float,
               features: Sequence[str] | None = None) -> list[Check]:
    """All checks of an assignment.

    `assigned` has customer_id (text), stratum, arm; `expected` has stratum, arm, expected (the
    design's count for that cell from the effective weights); `cohort` has the features.
    """
    counts = {(s, a): int(n) for s, a, n in con.execute(
        f"SELECT stratum, arm, count(*) FROM {quote(assigned)} GROUP BY ALL").fetchall()}
    exp = {(s, a): float(e) for s, a, e in con.execute(
        f"SELECT stratum, arm, expected FROM {quote(expected)}").fetchall()}
    no_holdout = {k: v for k, v in counts.items() if k[1] != HOLDOUT_ARM}
    checks = srm_checks(no_holdout, exp)
    if holdout_share > 0:
        n_h = sum(v for k, v in counts.items() if k[1] == HOLDOUT_ARM)
        checks.append(holdout_check(n_h, sum(no_holdout.values()), holdout_share))
    if features is None:
        features = numeric_features(con, cohort)
    checks += balance_checks(feature_stats(con, assigned, cohort, features), control, treatments)
    checks += count_checks(counts)
    return checks


def check_assignment(assignment: Any, cohort: Any, design: Any,
                     features: Sequence[str] | None = None) -> list[Check]:
    """Checks of an `upliftlab.assign.Assignment` against its cohort (a DataFrame), for notebooks;
    the SRM expects each stratum's count times the run's effective weights."""
    from upliftlab.sources import connect, register

    con = connect()
    try:
        register(con, assignment.frame, "ul_a")
        register(con, cohort, "ul_c")
        weights = assignment.allocation.effective_weights()
        con.execute("CREATE TEMP TABLE ul_w (arm VARCHAR, w DOUBLE)")
        con.executemany("INSERT INTO ul_w VALUES (?, ?)", list(weights.items()))
        con.execute(f"""CREATE TEMP VIEW ul_e AS SELECT s.stratum, w.arm, s.n * w.w AS expected
            FROM (SELECT stratum, count(*) AS n FROM ul_a WHERE arm <> '{HOLDOUT_ARM}'
                  GROUP BY stratum) s CROSS JOIN ul_w w""")
        return run_checks(con, assigned="ul_a", expected="ul_e", cohort="ul_c",
                          control=design.control.name,
                          treatments=[a.name for a in design.arms if not a.control],
                          holdout_share=design.holdout_share, features=features)
    finally:
        con.close()
