"""`upliftlab cohort --engine spark` writes the cohort DuckDB writes (the same rows and values)
and prints the same tier table; the file appears whole, as with DuckDB."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from upliftlab.cli import main


def _run(capsys, *args):
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr()


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_cohort_engine_spark_equals_duckdb(spark, tmp_path, capsys, fmt):
    import upliftlab as ul

    tx = tmp_path / "tx.parquet"
    ul.simulate_world(1500, seed=4).transactions.to_parquet(tx, index=False)
    outs = {}
    printed = {}
    for engine in ("duckdb", "spark"):
        out = tmp_path / f"cohort_{engine}.{fmt}"
        code, io = _run(capsys, "cohort", "--transactions", str(tx), "--as-of", "2026-01-05",
                        "--out", str(out), "--engine", engine)
        assert code == 0, io.err
        printed[engine] = io.out.replace(str(out), "OUT")
        outs[engine] = (pd.read_parquet(out) if fmt == "parquet" else pd.read_csv(out))
    assert printed["spark"] == printed["duckdb"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["tx.parquet", f"cohort_duckdb.{fmt}", f"cohort_spark.{fmt}"])  # no staging left
    d, s = outs["duckdb"], outs["spark"]
    assert list(s.columns) == list(d.columns) and len(s) == len(d) > 100
    for col in d.columns:
        if pd.api.types.is_float_dtype(d[col]):
            assert np.allclose(s[col].astype(float), d[col], rtol=1e-9, atol=1e-9,
                               equal_nan=True), col
        else:
            assert s[col].astype(str).tolist() == d[col].astype(str).tolist(), col


def test_cohort_engine_spark_bad_input(spark, tmp_path, capsys):
    """A file Spark cannot read, and a CSV (Parquet only on Spark): exit 2, one `error:` line,
    no output and no staging left behind."""
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"not parquet at all")
    csv = tmp_path / "tx.csv"
    csv.write_text("customer_id,ts,amount\n1,2025-01-01,3.0\n")
    # (the CLI's column check reads the broken file first; Spark's own error: below)
    for source, words in ((bad, "broken.parquet"), (csv, "reads Parquet")):
        out = tmp_path / "cohort.parquet"
        code, io = _run(capsys, "cohort", "--transactions", str(source), "--as-of", "2026-01-05",
                        "--out", str(out), "--engine", "spark")
        assert code == 2, io.err
        lines = io.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], io.err
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.parquet", "tx.csv"]


def test_spark_read_error_is_an_input_error(engine, tmp_path):
    from upliftlab.engine.spark_steps import write_cohort_spark
    from upliftlab.errors import InputError

    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="broken.parquet: Spark could not run: "):
        write_cohort_spark(bad, "2026-01-05", tmp_path / "c.parquet", engine=engine)
    assert [p.name for p in tmp_path.iterdir()] == ["broken.parquet"]
