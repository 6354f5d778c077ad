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


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A small fitted uplift model saved as `model fit` saves it, and customers to score."""
    from upliftlab.uplift import UpliftModel, save_model

    rng = np.random.default_rng(8)
    n = 2500
    X = pd.DataFrame({"recency": rng.exponential(200, n), "orders": rng.poisson(3, n),
                      "channel": rng.choice(["web", "app", "store"], n)})
    t = rng.choice(["control", "coupon", "advisor"], n)
    y = (rng.random(n) < 0.1 + 0.05 * (t == "coupon") + 0.08 * (t == "advisor")).astype(int)
    model = UpliftModel(learner="t", base_learner=dict(n_estimators=20, num_leaves=7,
                                                      min_child_samples=50)).fit(X, y, t)
    base = tmp_path_factory.mktemp("model_cli")
    save_model(model, base / "model")
    X.assign(customer_id=np.arange(n) * 7 + 3).to_parquet(base / "customers.parquet",
                                                          index=False)
    return base


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_model_score_engine_spark_equals_duckdb(spark, model_dir, tmp_path, capsys, fmt):
    """`model score --engine spark` writes the scores `model score` writes (same ids, values
    to 1e-12) and says the same line."""
    outs, said = {}, {}
    for engine in ("duckdb", "spark"):
        out = tmp_path / f"scores_{engine}.{fmt}"
        code, io = _run(capsys, "model", "score", "--model", str(model_dir / "model"),
                        "--customers", str(model_dir / "customers.parquet"), "--out", str(out),
                        "--engine", engine)
        assert code == 0, io.err
        said[engine] = io.out.replace(str(out), "OUT")
        read = pd.read_parquet if fmt == "parquet" else pd.read_csv
        outs[engine] = read(out).sort_values("customer_id").reset_index(drop=True)
    assert said["spark"] == said["duckdb"] and "scored 2,500 customers" in said["spark"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"scores_duckdb.{fmt}",
                                                          f"scores_spark.{fmt}"]
    d, s = outs["duckdb"], outs["spark"]
    assert list(s.columns) == list(d.columns)
    assert set(d.columns) == {"customer_id", "base", "uplift_advisor", "uplift_coupon"}
    assert s["customer_id"].tolist() == d["customer_id"].tolist()
    np.testing.assert_allclose(s[d.columns[1:]].to_numpy(), d[d.columns[1:]].to_numpy(),
                               rtol=0, atol=1e-12)


def test_model_score_engine_spark_bad_input(spark, model_dir, tmp_path, capsys):
    """A CSV (Spark reads Parquet) and a file without a feature: exit 2, one line, no output."""
    csv = tmp_path / "customers.csv"
    pd.read_parquet(model_dir / "customers.parquet").to_csv(csv, index=False)
    short = tmp_path / "short.parquet"
    pd.read_parquet(model_dir / "customers.parquet").drop(columns="orders").to_parquet(short)
    for source, words in ((csv, "reads Parquet customers"), (short, "orders")):
        out = tmp_path / "scores.parquet"
        code, io = _run(capsys, "model", "score", "--model", str(model_dir / "model"),
                        "--customers", str(source), "--out", str(out), "--engine", "spark")
        lines = io.err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), io.err
        assert words in lines[0], lines[0]
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["customers.csv", "short.parquet"]


def test_relative_paths_are_the_working_directory_s(spark, model_dir, tmp_path, capsys,
                                                      monkeypatch):
    """Spark's JVM resolves a relative path against its own working directory: upliftlab gives
    it absolute paths, so relative names mean what they mean to the user."""
    import shutil

    shutil.copy(model_dir / "customers.parquet", tmp_path / "customers.parquet")
    monkeypatch.chdir(tmp_path)
    code, io = _run(capsys, "model", "score", "--model", str(model_dir / "model"),
                    "--customers", "customers.parquet", "--out", "scores.parquet",
                    "--engine", "spark")
    assert code == 0, io.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["customers.parquet", "scores.parquet"]
    assert len(pd.read_parquet(tmp_path / "scores.parquet")) == 2500
