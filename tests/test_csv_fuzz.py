"""Fuzz: a bad value at a random row beyond DuckDB's type sample (20,480 rows) of a CSV input is
one clear error naming the file, the line and the column, never a failure later in a query; a
clean file reads with the types of all its rows."""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from upliftlab.errors import InputError
from upliftlab.sources import connect, register

SAMPLE = 20_480
N = 26_000
NUMERIC = ("orders", "revenue", "score")
NOT_BAD = {"nan", "inf", "infinity", "true", "false", "null", "e", "t", "f"}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    return pd.DataFrame({"customer_id": np.arange(N), "arm": rng.choice(["control", "coupon"], N),
                         "orders": rng.poisson(2, N), "revenue": rng.gamma(1, 30, N).round(2),
                         "score": rng.normal(size=N).round(5)})


bad_values = st.text(alphabet=string.ascii_letters + "?!-_/ ", min_size=1, max_size=8).filter(
    lambda s: s.strip().lower() not in NOT_BAD and any(ch.isalpha() for ch in s)
    and s == s.strip())


@pytest.mark.slow
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=st.integers(SAMPLE + 1, N), column=st.sampled_from(NUMERIC), value=bad_values,
       gz=st.booleans())
def test_bad_value_beyond_the_sample_names_file_line_and_column(frame, tmp_path, row, column,
                                                                value, gz):
    path = Path(tmp_path) / ("data.csv.gz" if gz else "data.csv")
    bad = frame.astype({column: object})
    bad.iloc[row - 1, bad.columns.get_loc(column)] = value
    bad.to_csv(path, index=False)
    con = connect()
    try:
        with pytest.raises(InputError) as err:
            register(con, str(path), "t")
    finally:
        con.close()
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message and f"line {row + 1}" in message and repr(column) in message, \
        message


@settings(max_examples=5, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=st.integers(SAMPLE + 1, N), value=st.floats(-1e6, 1e6, allow_nan=False))
def test_a_late_decimal_in_an_integer_column_is_read_not_refused(frame, tmp_path, row, value):
    """Not every late surprise is an error: a decimal after 20,480 whole numbers widens the
    column to DOUBLE (the whole file decides the types) and every row is read."""
    # a whole number written as "2.0" is read losslessly as an integer: not a late decimal
    assume(not float(value + 0.5).is_integer())
    path = Path(tmp_path) / "data.csv"
    late = frame.astype({"orders": object})
    late.iloc[row - 1, late.columns.get_loc("orders")] = value + 0.5
    late.to_csv(path, index=False)
    con = connect()
    try:
        register(con, str(path), "t")
        kind = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE t)").fetchall())
        total = con.execute("SELECT count(*), sum(orders) FROM t").fetchone()
    finally:
        con.close()
    assert kind["orders"] == "DOUBLE"
    assert total[0] == N and total[1] == pytest.approx(late["orders"].sum())
