"""Value bands: band i holds the values with exactly i cuts strictly below them, and a value
that equals a cut up to the rounding of a sum (a few units in the last place, which differ with
the order of the additions: Spark's partitions, DuckDB's threads) is on the cut, in the band
below, whichever engine added it up."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from upliftlab.engine import render
from upliftlab.spec_cohort import BAND_TOLERANCE, band_edge_sql, value_band_sql


def test_a_sum_equal_to_a_cut_is_on_it_in_either_order():
    # 0.1 + 0.2 + 0.3 is 0.6000000000000001, 0.3 + 0.2 + 0.1 is 0.6: the same money
    a, b = (0.1 + 0.2) + 0.3, (0.3 + 0.2) + 0.1
    assert a != b
    frame = pd.DataFrame({"customer_id": [1, 2, 3, 4, 5, 6],
                          "x": [a, b, 0.61, 0.0, -2.0, np.nan]})
    con = duckdb.connect()
    con.register("v", frame)
    sql = value_band_sql("v", ["customer_id", "x"], "x", [0.0, 0.6], ["low", "mid", "high"])
    got = {r[0]: r[2] for r in con.execute(sql).fetchall()}
    # on the cut 0.6 -> mid (bins (0, 0.6]); above it -> high; zero, negative and NULL -> low
    assert got == {1: "mid", 2: "mid", 3: "high", 4: "low", 5: "low", 6: "low"}


def test_the_edge_is_a_double_literal_read_alike_by_both_engines():
    con = duckdb.connect()
    for cut in (0.0, 0.6, 50.0, 123.45678901234567, 1e7, -3.5):
        edge = band_edge_sql(cut)
        assert "e" in edge and render(edge, "spark") == edge
        typ, value = con.execute(f"SELECT typeof({edge}), {edge}").fetchone()
        assert typ == "DOUBLE"
        assert value == cut + BAND_TOLERANCE * max(1.0, abs(cut))
