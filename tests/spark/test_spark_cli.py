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
