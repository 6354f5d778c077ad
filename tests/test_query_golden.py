"""Every query of the query layer, written once in DuckDB SQL by a function of its inputs: its
DuckDB text is golden (tests/golden/duckdb/), and rendered for Spark (engine/dialect.py) it is
golden too (tests/golden/spark/), parses with Spark's grammar and keeps none of the DuckDB-only
spellings. `UPLIFTLAB_UPDATE_GOLDEN=1` rewrites the files (then read the diff).

(The queries that tests/test_engine_dialect.py already renders for Spark -- cohort, outcomes,
sufficient statistics, long run, the portable assignment -- get their DuckDB golden here; their
Spark golden is that test's.)
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest

from upliftlab.engine import render

GOLDEN = Path(__file__).parent / "golden"
START, AS_OF = dt.date(2026, 1, 5), dt.date(2026, 2, 1)
# spellings Spark does not run (or runs with another meaning), which the rewrites must remove
DUCKDB_ONLY = [r"CAST\(\(?'' \|\|", r"\bPERCENTILE_CONT\b", r"\bIS_?INF\b", r"IGNORE NULLS", r"DATEDIFF\(DAY",
               r"\bQUANTILE_CONT\b", r"(?<!LEFT )\bSEMI JOIN", r"\^", r"\bARG_MIN\b",
               r"REGEXP_FULL_MATCH", r"::", r"INSERT OR REPLACE"]


def _design(mode: str = "stratified"):
    from upliftlab.assign import Design

    return Design.of("reactivation-2026q1",
                     {"control": 0.4, "coupon": 0.2, "content": 0.2, "advisor": 0.2},
                     strata=("tier",), holdout_share=0.05, mode=mode,
                     capacity={"advisor": 100} if mode == "simple" else None)


def new_queries() -> dict[str, str]:
    """The queries this layer added or named (DuckDB and Spark golden here)."""
    from upliftlab import queries as q
    from upliftlab.assignment import sql as a
    from upliftlab.cohort_input import clean_view_sql, quick_check_sqls
    from upliftlab.sources import ColumnMap
    from upliftlab.risk.workflow import at_risk_cut_sql, at_risk_select
    from upliftlab.spec_cohort import duplicate_ids_sql, value_band_cuts_sql, value_band_sql
    from upliftlab.store import Store

    # a risk model's saved levels are all the at-risk query reads of it
    risk_model = SimpleNamespace(metadata_={"levels": {"high": 0.7, "medium": 0.3}})
    crm = ColumnMap("client", "bought_at", "net")
    quick, total = quick_check_sqls("tx_clean", True, True)
    return {
        "assignment_hash": f"SELECT {a.hash_sql('s', 'CAST(customer_id AS VARCHAR)')} AS x FROM c",
        "assignment_strata_codes": a.strata_codes_sql("pool"),
        "assignment_hashed_stratified": a.hashed_sql("pool", _design(), "hash(p.stratum)",
                                                     keep_h=True),
        "assignment_hashed_simple": a.hashed_sql("pool", _design("simple"), "hash(p.stratum)",
                                                 keep_h=True),
        "assignment_boundary_need": a.boundary_need_sql("hashed", "scode"),
        "assignment_boundary_rows": a.boundary_rows_sql("hashed", "scode", "NOT holdout", "need",
                                                        ["3f", "66", "99"]),
        "assignment_arms_stratified": a.arms_sql("hashed", "keys",
                                                 a.stratified_arms_case(_design())),
        "assignment_arms_simple": a.arms_sql("hashed", "keys", a.simple_arms_case(
            _design("simple"), {3: ("0ccccccccccccd0", "1234")})),
        "window_purchases": q.window_purchases_sql("tx", START, AS_OF, crm),
        "baseline": q.baseline_sql("cohort", "tx", START, AS_OF, crm),
        "outcome_source_facts": q.source_facts_sql("tx", "bought_at", START),
        "outcome_source_text_id": q.text_id_sql("SELECT customer_id FROM assigned"),
        "outcome_source_match": q.source_match_sql("tx", crm, START,
                                                   "SELECT customer_id FROM assigned"),
        "outcomes_with_cohort": q.outcomes_with_cohort_sql("outcomes", "cohort",
                                                           ["revenue_365d", "tier"]),
        "cohort_clean_view": clean_view_sql(
            "tx_raw", {"client": "BIGINT", "bought_at": "VARCHAR", "net": "DOUBLE",
                       "coupon": "INTEGER"}, crm, "coupon", "tx.csv"),
        "cohort_quick_checks": quick,
        "cohort_quick_sum": total,
        "cohort_duplicate_ids": duplicate_ids_sql("cohort"),
        "value_band_cuts": value_band_cuts_sql("cohort", "revenue_365d", [1 / 3, 2 / 3]),
        "value_band": value_band_sql("cohort", ["customer_id", "tier", "revenue_365d"],
                                     "revenue_365d", [40.0, 120.0], ["low", "mid", "high"]),
        "at_risk_cut": at_risk_cut_sql("scored", 0.2),
        "at_risk_levels": at_risk_select(None, "scored", ["customer_id", "tier", "risk"],
                                         risk_model, min_level="medium"),
        # the experiment's customers already in the store, as a second engine reads a copy
        "not_assigned": "SELECT c.customer_id FROM cohort c WHERE "
                        + Store.not_assigned_sql(None, "exp", 1, "c.customer_id",
                                                 table="assigned_before"),
    }


def known_queries() -> dict[str, str]:
    """Queries already rendered for Spark by tests/test_engine_dialect.py."""
    from upliftlab.assign import unit_sql
    from upliftlab.cohort import cohort_sql
    from upliftlab.cohort_input import detail_check_sql
    from upliftlab.outcomes import outcomes_sql

    return {
        "cohort": cohort_sql("tx", "2026-01-05", discount_col="discount_used"),
        "cohort_active": cohort_sql("tx", "2026-01-05", population="active"),
        "cohort_checks": detail_check_sql("tx", START, True),
        "outcomes": outcomes_sql("assigned", "tx", start=START, as_of=AS_OF, window_days=60),
        "assignment_unit": "SELECT "
                           f"{unit_sql('reactivation-2026q1', 'CAST(customer_id AS VARCHAR)')}"
                           " AS u FROM cohort",
    }


def _golden(path: Path, text: str) -> str:
    if os.environ.get("UPLIFTLAB_UPDATE_GOLDEN"):
        path.write_text(text + "\n")
    return path.read_text().rstrip("\n")


@pytest.mark.parametrize("name", [*new_queries(), *known_queries()])
def test_duckdb_sql_is_golden_and_parses(name):
    sql = {**new_queries(), **known_queries()}[name]
    assert sql.strip() == _golden(GOLDEN / "duckdb" / f"{name}.sql", sql.strip()), (
        f"DuckDB SQL of {name} changed")
    duckdb.connect().extract_statements(sql)  # DuckDB's own parser


@pytest.mark.parametrize("name", list(new_queries()))
def test_spark_sql_is_golden_and_portable(name):
    import sqlglot

    spark_sql = render(new_queries()[name], "spark")
    assert spark_sql == _golden(GOLDEN / "spark" / f"{name}.sql", spark_sql), (
        f"rendered Spark SQL of {name} changed")
    sqlglot.parse_one(spark_sql, read="spark")
    code = re.sub(r"'[^']*'", "''", spark_sql)  # text literals (a pattern's ^) are data
    for pattern in DUCKDB_ONLY:
        assert not re.search(pattern, code, re.IGNORECASE), (name, pattern)


def test_the_expressions_of_the_formula_render_per_dialect():
    """`hash_sql` / `unit_sql` take the dialect: Spark gets conv(..., 16, 10), not '0x'."""
    from upliftlab.assign import hash_sql, unit_sql

    duck = hash_sql("s", "cid")
    spark = hash_sql("s", "cid", dialect="spark")
    assert "'0x'" in duck and "'0x'" not in spark and "CONV(" in spark.upper()
    assert "^" not in unit_sql("s", "cid", dialect="spark")


def test_full_match_keeps_its_meaning_on_spark():
    """RLIKE finds a pattern anywhere; the rewrite anchors it, as DuckDB's full match is."""
    import sqlglot

    spark_sql = render("SELECT regexp_full_match(x, '-?[0-9]+') AS m FROM t", "spark")
    assert "RLIKE '^(?:-?[0-9]+)$'" in spark_sql
    sqlglot.parse_one(spark_sql, read="spark")
    con = duckdb.connect()
    for text, want in (("123", True), ("-5", True), ("12a", False), ("a12", False)):
        assert con.execute("SELECT regexp_matches(?, '^(?:-?[0-9]+)$')", [text]
                           ).fetchone()[0] is want
