"""`--engine spark` without PySpark or Java: exit 2 and one `error:` line that says what to
install, nothing written and no fall-back to DuckDB (the Spark run itself: tests/spark/)."""

from __future__ import annotations

import sys

import pytest

from upliftlab.cli import main


@pytest.fixture()
def tx(tmp_path):
    import upliftlab as ul

    path = tmp_path / "tx.parquet"
    ul.simulate_world(200, seed=1).transactions.to_parquet(path, index=False)
    return path


def _run(capsys, *args):
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    return exit_.value.code, capsys.readouterr()


@pytest.mark.parametrize("missing", ["pyspark", "java"])
def test_engine_spark_without_its_needs_is_an_error(tmp_path, tx, capsys, monkeypatch, missing):
    import upliftlab.engine.spark as spark_mod

    if missing == "pyspark":
        monkeypatch.setitem(sys.modules, "pyspark", None)  # import fails as if not installed
        want = "pip install 'upliftlab[spark]'"
    else:
        monkeypatch.delenv("JAVA_HOME", raising=False)
        monkeypatch.setattr(spark_mod.shutil, "which", lambda name: None)
        want = "openjdk-17-jre-headless"
    out = tmp_path / "cohort.parquet"
    out.write_bytes(b"before")
    code, io = _run(capsys, "cohort", "--transactions", str(tx), "--as-of", "2026-01-05",
                    "--out", str(out), "--engine", "spark")
    assert code == 2
    lines = io.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --engine spark: ")
    assert want in lines[0]
    assert out.read_bytes() == b"before"  # nothing written, no DuckDB fall-back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort.parquet", "tx.parquet"]


def test_unknown_engine_is_a_usage_error(tmp_path, tx, capsys):
    code, io = _run(capsys, "cohort", "--transactions", str(tx), "--as-of", "2026-01-05",
                    "--out", str(tmp_path / "c.parquet"), "--engine", "postgres")
    assert code == 2 and "error:" in io.err and "duckdb" in io.err


def _spec(tmp_path, line: str):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "experiments"
    path = tmp_path / "exp.toml"
    path.write_text(line + "\n" + (root / "reactivation_2026q1.toml").read_text())
    return path


def test_spec_engine_key_is_validated_and_not_part_of_the_experiment(tmp_path):
    """`engine = "spark"` in a spec: accepted, anything else refused naming the key; where the
    steps run changes neither the spec's hash nor the randomisation's."""
    from upliftlab.errors import SpecError
    from upliftlab.spec import load_spec, randomisation_hash, spec_hash

    plain = load_spec(_spec(tmp_path, ""))
    spark = load_spec(_spec(tmp_path, 'engine = "spark"'))
    assert plain.engine == "duckdb" and spark.engine == "spark"
    assert spec_hash(spark) == spec_hash(plain)
    assert randomisation_hash(spark) == randomisation_hash(plain)
    with pytest.raises(SpecError, match="engine"):
        load_spec(_spec(tmp_path, 'engine = "postgres"'))


def test_engine_flag_over_spec_over_duckdb():
    from upliftlab.cli._engine import resolve_engine
    from upliftlab.errors import InputError

    assert resolve_engine(None) == "duckdb"
    assert resolve_engine(None, "spark") == "spark"
    assert resolve_engine("duckdb", "spark") == "duckdb"
    assert resolve_engine("spark", None) == "spark"
    with pytest.raises(InputError, match="engine 'postgres'"):
        resolve_engine(None, "postgres")


def test_the_cli_starts_without_pyspark_or_sqlglot():
    """--engine exists on commands, yet PySpark (and SQLGlot) load only on the Spark path."""
    import subprocess

    code = ("import sys; from upliftlab.cli import main\n"
            "try:\n    main(['model', 'score', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('pyspark', 'py4j', 'sqlglot') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "--engine" in out and out.strip().endswith("[]")
