"""The project's queries rendered for Spark (engine/dialect.py): golden strings of the rendered
SQL, parsed back by SQLGlot's Spark reader, with none of the DuckDB-only spellings left.

The golden files are the review surface of the Spark port: a change to a query or to SQLGlot
shows up here as a diff to read. `UPLIFTLAB_UPDATE_GOLDEN=1` rewrites them (then read the diff).
That they also *run* on Spark with DuckDB's answers is tests/spark/.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import pytest

from upliftlab.assign import Design, hash_int, hash_sql, unit_sql
from upliftlab.cohort import cohort_sql
from upliftlab.cohort_input import detail_check_sql
from upliftlab.engine import render
from upliftlab.engine.dialect import check_dialect
from upliftlab.errors import InputError
from upliftlab.longrun import frame as longrun_frame
from upliftlab.longrun import longrun_sql
from upliftlab.outcomes import outcomes_sql
from upliftlab.sources import literal
from upliftlab.stats.sql import aggregate_sql, iv_sql, needed_pairs

GOLDEN = Path(__file__).parent / "golden" / "spark"
# spellings Spark does not run (or runs with another meaning), which the rewrites must remove
DUCKDB_ONLY = [r"'0x'", r"UNIX_TIMESTAMP\([^)]* - ", r"\bPERCENTILE_CONT\b", r"\bIS_?INF\b",
               r"IGNORE NULLS",
               r"DATEDIFF\(DAY", r"\bQUANTILE_CONT\b", r"(?<!LEFT )\bSEMI JOIN", r"\^"]


def _queries() -> dict[str, str]:
    from upliftlab.engine.spark_assign import assign_query

    design = Design.of("reactivation-2026q1",
                       {"control": 0.4, "coupon": 0.2, "content": 0.2, "advisor": 0.2},
                       strata=("tier",), holdout_share=0.05)
    return {
        "cohort": cohort_sql("tx", "2026-01-05", discount_col="discount_used"),
        "cohort_active": cohort_sql("tx", "2026-01-05", population="active"),
        "cohort_checks": detail_check_sql("tx", dt.date(2026, 1, 5), True),
        "outcomes": outcomes_sql("assigned", "tx", start=dt.date(2026, 1, 5),
                                 as_of=dt.date(2026, 2, 1), window_days=60),
        "stats_aggregate": aggregate_sql(
            "outcomes", "arm", ["reactivated", "revenue", "revenue_365d"],
            needed_pairs(["reactivated", "revenue"], ["revenue_365d"]), ["reactivated"],
            ["tier"]),
        "stats_iv": iv_sql("touches", "arm", "reached", "reactivated", ["revenue_365d"],
                           "cost"),
        "longrun": longrun_sql("assigned", "tx", longrun_frame(
            dt.date(2026, 1, 5), dt.date(2026, 12, 31), window_days=60)),
        "assignment_unit": "SELECT "
                           f"{unit_sql('reactivation-2026q1', 'CAST(customer_id AS VARCHAR)')}"
                           " AS u FROM cohort",
        "assignment_stratified": assign_query(
            "pool", design, quotas={"tier=long": [4, 6, 8], "tier=short": [3, 5, 7]}),
        "assignment_simple": assign_query("pool", Design.of(
            "s", {"control": 0.5, "coupon": 0.3, "advisor": 0.2}, mode="simple",
            capacity={"advisor": 100}, holdout_share=0.1), remaining={"advisor": 100}),
    }


@pytest.mark.parametrize("name", list(_queries()))
def test_rendered_spark_sql_is_golden(name):
    import sqlglot

    spark_sql = render(_queries()[name], "spark")
    path = GOLDEN / f"{name}.sql"
    if os.environ.get("UPLIFTLAB_UPDATE_GOLDEN"):
        path.write_text(spark_sql + "\n")
    assert spark_sql == path.read_text().rstrip("\n"), f"rendered Spark SQL of {name} changed"
    sqlglot.parse_one(spark_sql, read="spark")  # Spark's grammar as SQLGlot knows it
    for pattern in DUCKDB_ONLY:
        assert not re.search(pattern, spark_sql, re.IGNORECASE), (name, pattern)


def test_each_rewrite():
    def spark(sql):
        return render(sql, "spark")

    assert spark(f"SELECT {hash_sql('abc', literal('1'))}") == (
        "SELECT CAST(CONV(SUBSTRING(MD5('abc' || ':' || '1'), 1, 15), 16, 10) AS BIGINT)")
    assert spark("SELECT quantile_cont(x, [0.25, 0.5]) FROM t") == \
        "SELECT PERCENTILE(x, ARRAY(0.25, 0.5)) FROM t"
    assert spark("SELECT quantile_cont(x, 0.5) FROM t") == "SELECT PERCENTILE(x, 0.5) FROM t"
    assert spark("SELECT isinf(x) OR y FROM t") == \
        "SELECT (ABS(x) = CAST('Infinity' AS DOUBLE)) OR y FROM t"
    assert spark("SELECT any_value(x) FILTER (WHERE x > 0) FROM t") == \
        "SELECT ANY_VALUE(x, TRUE) FILTER(WHERE x > 0) FROM t"
    assert spark("SELECT datediff('day', a, b) FROM t") == \
        "SELECT DATEDIFF(CAST(b AS DATE), CAST(a AS DATE)) FROM t"
    assert spark("SELECT datediff('day', DATE '2020-01-01', b) FROM t") == \
        "SELECT DATEDIFF(CAST(b AS DATE), CAST('2020-01-01' AS DATE)) FROM t"
    assert spark("SELECT epoch(a - b) FROM t") == \
        "SELECT (TIMESTAMPDIFF(MICROSECOND, b, a) / CAST(1000000 AS DOUBLE)) FROM t"
    assert spark("SELECT a FROM t SEMI JOIN u ON t.a = u.a") == \
        "SELECT a FROM t LEFT SEMI JOIN u ON t.a = u.a"
    # other units and other casts are left to SQLGlot
    assert "DATEDIFF(MONTH" in spark("SELECT datediff('month', a, b) FROM t").upper()
    assert spark("SELECT CAST('12' AS BIGINT)") == "SELECT CAST('12' AS BIGINT)"
    assert hash_int("abc", 1) == 574961237917149514


def test_duckdb_is_unchanged_and_dialects_checked():
    sql = cohort_sql("tx", "2026-01-05")
    assert render(sql, "duckdb") is sql
    with pytest.raises(InputError, match="duckdb, spark"):
        check_dialect("postgres")
