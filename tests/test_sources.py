"""Reading user tables: every supported source gives the same view; bad paths give InputError."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from upliftlab.errors import InputError
from upliftlab.sources import connect, register, require_columns


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [1, 2, 3], "amount": [1.5, 2.0, 3.25]})


def _total(con, view: str) -> float:
    return con.execute(f'SELECT sum(amount) FROM "{view}"').fetchall()[0][0]


def test_every_source_kind_reads_the_same_rows(tmp_path, frame):
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    db = duckdb.connect(str(tmp_path / "s.duckdb"))
    db.execute("CREATE TABLE txn AS SELECT * FROM frame")
    db.close()
    con = connect()
    sources = [frame, str(tmp_path / "t.csv"), tmp_path / "t.parquet",
               f"{tmp_path / 's.duckdb'}:txn", con.from_df(frame)]
    for i, source in enumerate(sources):
        assert register(con, source, f"v{i}") == ["customer_id", "amount"]
        assert _total(con, f"v{i}") == pytest.approx(6.75)


def test_glob_reads_all_matching_files(tmp_path, frame):
    frame.to_parquet(tmp_path / "part1.parquet")
    frame.to_parquet(tmp_path / "part2.parquet")
    con = connect()
    register(con, str(tmp_path / "part*.parquet"), "v")
    assert _total(con, "v") == pytest.approx(13.5)


@pytest.mark.parametrize("name,message", [
    ("missing.parquet", "no such file"),
    ("data.xlsx", "unknown file type"),
    ("nothing*.parquet", "no file matches"),
])
def test_bad_paths_name_the_file(tmp_path, name, message):
    if name.endswith(".xlsx"):
        (tmp_path / name).write_text("x")
    with pytest.raises(InputError, match=message) as err:
        register(connect(), str(tmp_path / name), "v")
    assert name.split("*")[0] in str(err.value)


def test_corrupt_parquet_is_an_input_error(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="cannot read"):
        register(connect(), str(tmp_path / "bad.parquet"), "v")


def test_require_columns_lists_missing_and_present():
    with pytest.raises(InputError, match=r"missing column 'ts' \(found: customer_id, amount\)"):
        require_columns(["customer_id", "amount"], ["customer_id", "ts"], "t.csv")


def test_reversed_frame_is_readable():
    # DuckDB 2.0 cannot scan numpy columns with negative strides (std::bad_cast)
    frame = pd.DataFrame({"customer_id": [1, 2, 3], "amount": [1.0, 2.0, 3.0],
                          "ts": pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-03"])})
    con = connect()
    register(con, frame.iloc[::-1], "v")
    assert con.execute("SELECT list(customer_id) FROM v").fetchall()[0][0] == [3, 2, 1]


def test_connections_print_no_duckdb_progress_bar():
    """DuckDB's progress bar writes to stdout even when piped (a scheduler's log, a JSON
    consumer): every upliftlab connection turns it off."""
    from upliftlab.sources import connect

    con = connect()
    assert con.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0] is False
