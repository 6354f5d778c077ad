"""The Spark session's guards: ANSI mode and UTC are required, because without ANSI the
assignment hash silently becomes NULL (every customer in the last arm)."""

from __future__ import annotations

import pytest

from upliftlab.assign import hash_int, hash_sql
from upliftlab.engine.spark import EngineError, SparkEngine, check_session
from upliftlab.sources import literal


def test_session_runs_with_ansi_and_utc(spark):
    assert spark.conf.get("spark.sql.ansi.enabled") == "true"
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    check_session(spark)


def test_hash_pitfall_guarded(spark, engine):
    """With ANSI off the DuckDB hex cast is NULL on Spark (the pitfall); the engine refuses such
    a session, and with ANSI on the rendered formula gives Python's md5 integer."""
    raw = "SELECT CAST('0x' || substr(md5('abc:1'), 1, 15) AS BIGINT) AS x"
    spark.conf.set("spark.sql.ansi.enabled", "false")
    try:
        # the pitfall itself, on Spark's own reading of the un-rewritten cast
        assert spark.sql(raw).collect()[0]["x"] is None
        with pytest.raises(EngineError, match="ANSI"):
            check_session(spark)
        with pytest.raises(EngineError, match="ANSI"):
            engine.sql(raw)
        with pytest.raises(EngineError, match="ANSI"):
            SparkEngine(spark)
    finally:
        spark.conf.set("spark.sql.ansi.enabled", "true")
    # with ANSI on Spark refuses the raw cast rather than returning NULL
    with pytest.raises(Exception, match="(?i)cast|number|format"):
        spark.sql(raw).collect()
    ids = ["1", "42", "abc", "x'y", "éß"]
    sql = " UNION ALL ".join(f"SELECT {literal(i)} AS id, {hash_sql('abc', literal(i))} AS x"
                             for i in ids)
    got = {r["id"]: r["x"] for r in engine.sql(sql).collect()}
    assert got == {i: hash_int("abc", i) for i in ids}
    assert got["1"] == 574961237917149514


def test_time_zone_guarded(spark):
    spark.conf.set("spark.sql.session.timeZone", "Europe/Berlin")
    try:
        with pytest.raises(EngineError, match="UTC"):
            check_session(spark)
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")


def test_documented_spark_formula(engine, spark):
    """docs/assignment.md's Spark SQL line, run as written, gives the DuckDB/Python integer, and
    its worked example (`md5('abc:1')`) is right."""
    import hashlib
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "assignment.md").read_text()
    prefix, x = re.search(r"`md5\('abc:1'\)` starts with `([0-9a-f]{15})`, so `x = (\d+)`",
                          doc).groups()
    assert hashlib.md5(b"abc:1").hexdigest()[:15] == prefix
    assert int(prefix, 16) == int(x) == hash_int("abc", 1)
    line = next(ln for ln in doc.splitlines() if ln.startswith("| Spark SQL |"))
    formula = line.split("|")[2].strip().strip("`")
    ids = ["1", "42", "abc", "éß"]
    rows = ", ".join(f"({literal(i)})" for i in ids)
    got = spark.sql(f"SELECT customer_id, {formula} AS u FROM (SELECT 'abc' AS salt, customer_id "
                    f"FROM VALUES {rows} AS t(customer_id))").collect()
    assert {r["customer_id"]: r["u"] for r in got} == {i: hash_int("abc", i) / 2**60 for i in ids}


REWRITTEN = {
    # each query needs one rewrite of engine/dialect.py to give DuckDB's answer on Spark
    "hex_cast": "SELECT CAST(('0x' || substr(md5('abc:1'), 1, 15)) AS BIGINT) AS v",
    "quantiles": "SELECT quantile_cont(CAST(x AS DOUBLE), [0.1, 0.5, 0.9]) AS v FROM "
                 "(SELECT unnest([1.0, 2.0, 4.0, 8.0, 16.0]) AS x)",
    "isinf": "SELECT count(*) FILTER (WHERE isinf(x)) AS v FROM "
             "(SELECT unnest([1.0, CAST('inf' AS DOUBLE), CAST('-inf' AS DOUBLE), "
             "CAST('nan' AS DOUBLE)]) AS x)",
    "any_value": "SELECT any_value(x) FILTER (WHERE k > 0) AS v FROM (SELECT unnest([NULL, NULL, "
                 "'b']) AS x, unnest([1, 2, 3]) AS k)",
    "day_diff": "SELECT datediff('day', TIMESTAMP '2026-01-04 23:00:00', "
                "TIMESTAMP '2026-01-05 01:00:00') AS v",
    "epoch": "SELECT epoch(TIMESTAMP '2026-01-06 12:00:01.5' - TIMESTAMP '2026-01-05 00:00:00') "
             "/ 86400.0 AS v",
    "semi_join": "SELECT count(*) AS v FROM (SELECT unnest([1, 2, 3]) AS a) t "
                 "SEMI JOIN (SELECT unnest([2, 3, 3]) AS a) u ON t.a = u.a",
}


@pytest.mark.parametrize("name", list(REWRITTEN))
def test_rewrites_give_duckdb_answers(engine, name, monkeypatch):
    """The rendered query gives DuckDB's answer on Spark; without its rewrite it does not (an
    error or another number), so each rewrite is needed."""
    import upliftlab.engine.dialect as dialect
    from upliftlab.sources import connect

    sql = REWRITTEN[name]
    con = connect()
    want = con.execute(sql).fetchone()[0]
    con.close()
    got = engine.execute(sql).fetchone()[0]
    assert got == want
    monkeypatch.setattr(dialect, "SPARK_REWRITES",
                        tuple(r for r in dialect.SPARK_REWRITES if r.__name__ != f"_{name}"))
    dialect._to_spark.cache_clear()
    try:
        assert engine.execute(sql).fetchone()[0] != want
    except Exception:  # noqa: BLE001 - Spark refuses it: also not DuckDB's answer
        pass
    finally:
        monkeypatch.undo()
        dialect._to_spark.cache_clear()
