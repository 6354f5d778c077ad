"""The dormant cohort: hand-computed features on small tables, edge cases, the as-of property,
bad input through the Python API and the CLI."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _helpers import cli, cli_process
from upliftlab.cohort import (
    DEFAULT_TIERS_TEXT,
    FEATURE_COLUMNS,
    Tier,
    build_cohort,
    build_cohort_relation,
    cohort_sql,
    format_tier_table,
    parse_tiers,
    tier_summary,
    write_cohort,
)
from upliftlab.errors import InputError, SpecError
from upliftlab.sources import ColumnMap

D = date(2025, 3, 1)  # the as-of date of the hand-made table
D0 = datetime(2025, 3, 1)


def at(days_before: int, hh: int = 0, mm: int = 0, ss: int = 0) -> datetime:
    """A timestamp `days_before` days before D (negative: after D), at hh:mm:ss."""
    return D0 - timedelta(days=days_before) + timedelta(hours=hh, minutes=mm, seconds=ss)


def day(days_before: int) -> pd.Timestamp:
    return pd.Timestamp(D - timedelta(days=days_before))


# (customer, timestamp, amount, discount_used)
ROWS = [
    (1, at(400), 10.0, False),
    (1, at(200, 15, 30), 20.0, True),
    (1, at(100, 23, 59), 30.0, False),
    (2, at(90), 5.0, True),                 # exactly 90 days before D: dormant
    (3, at(500), 50.0, False),
    (3, at(89, 23, 59, 59), 1.0, False),    # 89 days before D: not dormant
    (4, at(0), 7.0, False),                 # only on/after D: not in the cohort
    (4, at(-10), 9.0, False),
    (5, at(800), 5.0, False),
    (5, at(180, 12), 15.0, True),           # exactly 180 days: tier mid, inside the 180d window
    (5, at(0, 8), 1000.0, True),            # on the as-of day itself: ignored
    (6, at(730), 8.0, False),               # exactly 730 days: inside the 730d window
    (6, at(365), 12.0, False),              # exactly 365 days: tier long
    (7, at(364, 9), 1.0, True),             # two orders on one day: mean gap 0
    (7, at(364, 18), 2.0, True),
    (8, at(1000), 0.0, False),              # a free order long ago
    (9, at(400), 3.0, False),               # active customer
    (9, at(10), 3.0, False),
]

NAN = float("nan")
# Hand-computed, one row per dormant customer (days are "days before D"):
#  1: orders at 400, 200, 100 days; 180d window holds the 100-day order, 365d the 200 and 100;
#     mean gap (400-100)/2 = 150; overdue 100/150; trend (2 recent - 1 prior)/3; 1 of 3 discounted
#  2: one order at 90 days: mean gap and overdue NULL; trend (1-0)/1 = 1
#  5: orders at 800 and 180 (the as-of-day order is ignored): gap 620, overdue 180/620,
#     the 800-day order is outside the 730d window; 1 of 2 discounted
#  6: orders at 730 and 365: windows are ts >= D - N, so 730d holds both, 365d the later one;
#     gap 365, overdue 1, trend (1-1)/2 = 0
#  7: two orders 364 days before: gap 0, so overdue NULL; trend (2-0)/2 = 1
#  8: one free order 1000 days before: no order in 730 days, so trend 0
EXPECTED = pd.DataFrame(  # noqa: E501 - one customer a line reads best as a table
    [
        # id first      last      dsl  tier     tot o180 o365 o730 rev   r180  r365  r730  aov  ten  gap    overdue     trend  disc
        (1, day(400), day(100), 100, "short", 3, 1, 2, 3, 60.0, 30.0, 50.0, 60.0, 20.0, 400, 150.0, 100 / 150, 1 / 3, 1 / 3),
        (2, day(90), day(90), 90, "short", 1, 1, 1, 1, 5.0, 5.0, 5.0, 5.0, 5.0, 90, NAN, NAN, 1.0, 1.0),
        (5, day(800), day(180), 180, "mid", 2, 1, 1, 1, 20.0, 15.0, 15.0, 15.0, 10.0, 800, 620.0, 180 / 620, 1.0, 0.5),
        (6, day(730), day(365), 365, "long", 2, 0, 1, 2, 20.0, 0.0, 12.0, 20.0, 10.0, 730, 365.0, 1.0, 0.0, 0.0),
        (7, day(364), day(364), 364, "mid", 2, 0, 2, 2, 3.0, 0.0, 3.0, 3.0, 1.5, 364, 0.0, NAN, 1.0, 1.0),
        (8, day(1000), day(1000), 1000, "long", 1, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 1000, NAN, NAN, 0.0, 0.0),
    ],
    columns=[*FEATURE_COLUMNS, "discount_share"],
)


def transactions() -> pd.DataFrame:
    return pd.DataFrame(ROWS, columns=["customer_id", "ts", "amount", "discount_used"])


def plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Comparable form: tier as text, dates as midnight timestamps."""
    out = frame.assign(tier=frame["tier"].astype(str))
    for col in ("first_purchase", "last_purchase"):
        out[col] = pd.to_datetime(out[col]).astype("datetime64[us]")
    return out.reset_index(drop=True)


def assert_cohort(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(plain(actual), plain(expected), check_dtype=False,
                                  check_exact=False, rtol=1e-12)


@pytest.fixture(scope="module")
def tx() -> pd.DataFrame:
    return transactions()


# ------------------------------------------------------------------------------ features

def test_features_equal_hand_computed_values(tx):
    cohort = build_cohort(tx, D)
    assert list(cohort.columns) == [*FEATURE_COLUMNS, "discount_share"]
    assert_cohort(cohort, EXPECTED)


def test_edge_cases_named(tx):
    cohort = build_cohort(tx, D).set_index("customer_id")
    assert cohort.loc[2, "days_since_last"] == 90          # exactly N days: dormant
    assert 3 not in cohort.index                            # N - 1 days: not dormant
    assert 4 not in cohort.index                            # only future purchases
    assert cohort.loc[5, "orders_total"] == 2               # the as-of-day order is ignored
    assert cohort.loc[5, "revenue_total"] == 20.0
    assert math.isnan(cohort.loc[2, "mean_gap_days"])       # one purchase: no gap
    assert [cohort.loc[i, "tier"] for i in (5, 7, 6)] == ["mid", "mid", "long"]  # 180, 364, 365


def test_types_and_order(tx):
    cohort = build_cohort(tx, "2025-03-01")
    assert cohort["customer_id"].is_monotonic_increasing
    assert cohort["tier"].cat.categories.tolist() == ["short", "mid", "long"]
    assert cohort["tier"].cat.ordered
    for col in ("days_since_last", "orders_total", "orders_180d", "orders_365d", "orders_730d",
                "tenure_days"):
        assert cohort[col].dtype == np.int64, col
    assert cohort["trend"].between(-1, 1).all()


def test_trend_negative_when_activity_falls():
    # 3 orders 400-700 days before D (prior year), 1 order 100 days before (recent):
    # trend = (1 - 3) / (1 + 3) = -0.5
    tx = pd.DataFrame({"customer_id": [1, 1, 1, 1, 2],
                       "ts": [at(700), at(500), at(400), at(100), at(1)],
                       "amount": [1.0, 1.0, 1.0, 1.0, 1.0]})
    cohort = build_cohort(tx, D)
    assert cohort["customer_id"].tolist() == [1]
    assert cohort["trend"].iloc[0] == -0.5
    assert "discount_share" not in cohort.columns  # no discount column in the table
    assert cohort["mean_gap_days"].iloc[0] == 200.0  # (700 - 100) / 3


def test_dormant_after_and_custom_tiers(tx):
    cohort = build_cohort(tx, D, dormant_after=180, tiers="recent=365,old")
    assert cohort["customer_id"].tolist() == [5, 6, 7, 8]
    assert cohort["tier"].astype(str).tolist() == ["recent", "old", "recent", "old"]
    assert cohort["tier"].cat.categories.tolist() == ["recent", "old"]
    # 89 days after the last purchase is dormant once dormant-after is 89
    c89 = build_cohort(tx, D, dormant_after=89, tiers="a=100,b")
    assert c89["customer_id"].tolist() == [1, 2, 3, 5, 6, 7, 8]
    assert c89.set_index("customer_id")["tier"].astype(str).to_dict() == {
        1: "b", 2: "a", 3: "a", 5: "b", 6: "b", 7: "b", 8: "b"}
    # tiers as Tier objects
    tiers = (Tier("x", 90, 365), Tier("y", 365, None))
    cx = build_cohort(tx, D, tiers=tiers)
    assert cx["tier"].astype(str).tolist() == ["x", "x", "x", "y", "x", "y"]
    assert_cohort(build_cohort(tx, D, tiers=(("x", 90, 365), ("y", 365, None))), cx)
    with pytest.raises(SpecError, match="must start where"):
        build_cohort(tx, D, tiers=(Tier("x", 90, 200), Tier("y", 365, None)))


def test_string_ids(tx):
    names = {i: f"c{i:02d}" for i in range(1, 10)}
    cohort = build_cohort(tx.assign(customer_id=tx["customer_id"].map(names)), D)
    expected = EXPECTED.assign(customer_id=EXPECTED["customer_id"].map(names))
    assert_cohort(cohort, expected)


def test_csv_parquet_duckdb_and_frame_agree(tx, tmp_path):
    csv, parquet, db = tmp_path / "tx.csv", tmp_path / "tx.parquet", tmp_path / "tx.duckdb"
    tx.to_csv(csv, index=False, date_format="%Y-%m-%d %H:%M:%S")
    tx.to_parquet(parquet)
    with duckdb.connect(str(db)) as con:
        con.register("frame", tx)
        con.execute("CREATE TABLE orders AS SELECT * FROM frame")
    for source in (csv, str(parquet), f"{db}:orders"):
        assert_cohort(build_cohort(source, D), EXPECTED)


def test_column_mapping(tx, tmp_path):
    renamed = tx.rename(columns={"customer_id": "cust", "ts": "when", "amount": "value",
                                 "discount_used": "promo"})
    cohort = build_cohort(renamed, D, columns=ColumnMap("cust", "when", "value"),
                          discount_col="promo")
    assert_cohort(cohort, EXPECTED)
    # without the discount column: no discount_share, the rest unchanged
    no_disc = build_cohort(renamed, D, columns=ColumnMap("cust", "when", "value"))
    assert_cohort(no_disc, EXPECTED.drop(columns="discount_share"))


def test_string_timestamps_dates_and_01_discounts(tx):
    text = tx.assign(ts=tx["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S"),
                     discount_used=tx["discount_used"].astype(int))
    assert_cohort(build_cohort(text, D), EXPECTED)
    # a DATE column: every purchase at midnight, the same features here except nothing moves
    dates = tx.assign(ts=tx["ts"].dt.normalize())
    assert_cohort(build_cohort(dates, D), EXPECTED)


def test_relation_and_sql_agree_with_dataframe(tx):
    con = duckdb.connect()
    rel = build_cohort_relation(con, tx, D)
    assert_cohort(rel.df(), EXPECTED)
    # cohort_sql on a clean view of the standard names gives the same rows
    con.register("clean_tx", tx)
    sql = cohort_sql("clean_tx", D, discount_col="discount_used")
    assert_cohort(con.execute(sql).df(), EXPECTED)


def test_build_cohort_on_a_given_connection_cleans_up(tx):
    con = duckdb.connect()
    views = "SELECT count(*) FROM duckdb_views() WHERE NOT internal"
    before = con.execute(views).fetchall()[0][0]
    build_cohort(tx, D, con=con)
    after = con.execute(views).fetchall()[0][0]
    assert after == before


def test_empty_cohort_when_nobody_is_dormant():
    tx = pd.DataFrame({"customer_id": [1, 2, 3], "ts": [at(5), at(30), at(-3)],
                       "amount": [1.0, 2.0, 3.0]})
    cohort = build_cohort(tx, D)
    assert len(cohort) == 0
    assert list(cohort.columns) == list(FEATURE_COLUMNS)
    summary = tier_summary(cohort)
    assert summary["customers"].tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_empty_cohort_is_written_with_its_header(tmp_path, suffix):
    tx = pd.DataFrame({"customer_id": [1, 2], "ts": [at(1), at(30)], "amount": [1.0, 2.0]})
    out = tmp_path / f"cohort{suffix}"
    summary = write_cohort(tx, D, out)
    assert [r["customers"] for r in summary] == [0, 0, 0, 0]
    back = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
    assert len(back) == 0 and list(back.columns) == list(FEATURE_COLUMNS)


def test_recency_and_dormant_set_match_the_simulators_truth():
    # the simulator records each customer's fractional days from the last purchase to the
    # campaign date; whole days since the purchase date are its ceiling
    simulate = pytest.importorskip("upliftlab.simulate")
    world = simulate.simulate_world(3_000, seed=11)
    as_of = world.params["campaign_date"]
    cohort = build_cohort(world.transactions, as_of)
    truth = world.truth.set_index("customer_id")["recency_days"].dropna()
    days = np.ceil(truth.to_numpy() - 1e-9).astype(int)
    expected = truth.index[days >= 90].to_numpy()
    assert len(expected) > 100
    np.testing.assert_array_equal(cohort["customer_id"].to_numpy(), np.sort(expected))
    np.testing.assert_array_equal(cohort["days_since_last"].to_numpy(),
                                  days[days >= 90][np.argsort(truth.index[days >= 90])])


# ------------------------------------------------------------------------ the as-of property

@pytest.fixture(scope="module")
def base():
    """One connection for all examples, the hand-made table and its cohort."""
    con = duckdb.connect()
    tx = transactions()
    yield con, tx, build_cohort(tx, D, con=con)
    con.close()

future_rows = st.lists(
    st.tuples(st.integers(1, 12),                           # existing and new customers
              st.integers(0, 800),                          # days on/after D
              st.integers(0, 86_399),                       # second of that day
              st.floats(-1e4, 1e4, allow_nan=False),        # any amount, even negative
              st.booleans()),
    min_size=1, max_size=25)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=future_rows)
def test_rows_on_or_after_as_of_change_nothing(base, rows):
    con, tx, expected = base
    extra = pd.DataFrame(
        [(c, D0 + timedelta(days=d, seconds=s), a, b) for c, d, s, a, b in rows],
        columns=["customer_id", "ts", "amount", "discount_used"])
    combined = pd.concat([tx, extra], ignore_index=True)
    assert_cohort(build_cohort(combined, D, con=con), expected)


# ---------------------------------------------------------------------------------- tiers

def test_parse_tiers_default():
    assert parse_tiers(DEFAULT_TIERS_TEXT, 90) == (
        Tier("short", 90, 180), Tier("mid", 180, 365), Tier("long", 365, None))
    assert parse_tiers(" all ", 30) == (Tier("all", 30, None),)


@pytest.mark.parametrize("text, dormant_after, words", [
    ("short=180,mid=120,long", 90, ["120", "greater than the previous bound (180)"]),
    ("short=90,long", 90, ["90", "dormant-after (90 days)"]),
    ("a=100,a=200,b", 90, ["duplicate", "'a'"]),
    ("short=abc,long", 90, ["'abc'", "whole number"]),
    ("short=180,mid=365,long=500", 90, ["open-ended", "'long'"]),
    ("short,long", 90, ["'short'", "upper bound"]),
    ("", 90, ["empty"]),
    ("a=100,,b", 90, ["bad tier name"]),
])
def test_parse_tiers_errors(text, dormant_after, words):
    with pytest.raises(SpecError) as err:
        parse_tiers(text, dormant_after)
    for word in words:
        assert word in str(err.value)


def test_dormant_after_beyond_default_tiers_says_what_to_do(tx):
    with pytest.raises(SpecError, match="--tiers"):
        build_cohort(tx, D, dormant_after=200)
    with pytest.raises(SpecError, match="dormant-after"):
        build_cohort(tx, D, dormant_after=0)


def test_tier_summary_hand_computed(tx):
    summary = tier_summary(build_cohort(tx, D))
    assert summary["tier"].tolist() == ["short", "mid", "long", "total"]
    assert summary["customers"].tolist() == [2, 2, 2, 6]
    np.testing.assert_allclose(summary["share"], [1 / 3, 1 / 3, 1 / 3, 1.0])
    # recency: short (100 + 90) / 2, mid (180 + 364) / 2, long (365 + 1000) / 2, all 2099 / 6
    np.testing.assert_allclose(summary["mean_days_since_last"], [95, 272, 682.5, 2099 / 6])
    # revenue_365d: short (50 + 5) / 2, mid (15 + 3) / 2, long (12 + 0) / 2, all 85 / 6
    np.testing.assert_allclose(summary["mean_revenue_365d"], [27.5, 9, 6, 85 / 6])
    # overdue ignores NULLs: short only customer 1 (2/3); mid only 5 (180/620); long only 6 (1)
    np.testing.assert_allclose(summary["mean_overdue_ratio"],
                               [2 / 3, 180 / 620, 1.0, (2 / 3 + 180 / 620 + 1) / 3])
    table = format_tier_table(summary)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["tier", "customers", "share"]
    assert lines[-1].split()[:3] == ["total", "6", "100.0%"]
    assert len({len(ln) for ln in lines[:2]}) == 1  # header and rule aligned


# ---------------------------------------------------------------------------- writing files

@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_write_cohort_parquet_and_csv(tx, tmp_path, suffix):
    out = tmp_path / f"cohort{suffix}"
    summary = write_cohort(tx, D, out)
    back = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(
        out, parse_dates=["first_purchase", "last_purchase"])
    assert_cohort(back, EXPECTED)
    pd.testing.assert_frame_equal(pd.DataFrame(summary), tier_summary(back))
    assert [r["customers"] for r in summary] == [2, 2, 2, 6]
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temp file left


# ------------------------------------------------------------------------------ bad input

def _bad_frames():
    good = transactions()
    yield "missing", good.drop(columns="amount"), ["missing column 'amount'",
                                                   "found: customer_id, ts, discount_used"]
    yield "misnamed", good.rename(columns={"ts": "time"}), ["'ts'", "time", "--time-col"]
    bad_ts = good.assign(ts=good["ts"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    bad_ts.loc[3, "ts"] = "31/12/2024"
    bad_ts.loc[5, "ts"] = "31/12/2024"
    yield "bad ts", bad_ts, ["'ts'", "2 rows", "'31/12/2024'", "not timestamps"]
    neg = good.copy()
    neg.loc[2, "amount"] = -12.5
    yield "negative", neg, ["'amount'", "1 row", "-12.5", "customer 1"]
    null_id = good.assign(customer_id=good["customer_id"].astype("Int64"))
    null_id.loc[0, "customer_id"] = pd.NA
    yield "null id", null_id, ["'customer_id'", "empty in 1 row"]
    nan_amount = good.copy()
    nan_amount.loc[0, "amount"] = np.nan  # pandas NaN arrives as NULL
    yield "null amount", nan_amount, ["'amount'", "empty in 1 row"]
    inf_amount = good.copy()
    inf_amount.loc[0, "amount"] = np.inf
    yield "inf amount", inf_amount, ["'amount'", "not finite", "inf"]
    bad_disc = good.assign(discount_used=good["discount_used"].astype(int))
    bad_disc.loc[0, "discount_used"] = 7
    yield "bad discount", bad_disc, ["'discount_used'", "'7'"]
    yield "empty", good.iloc[:0], ["no transactions"]
    yield "numeric ts", good.assign(ts=1), ["'ts'", "type", "BIGINT"]


BAD_FRAMES = list(_bad_frames())


@pytest.mark.parametrize("name, frame, words", BAD_FRAMES, ids=[b[0] for b in BAD_FRAMES])
def test_bad_frames_raise_input_error(name, frame, words):
    with pytest.raises(InputError) as err:
        build_cohort(frame, D)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_problems_after_as_of_are_ignored(tx):
    later = pd.DataFrame({"customer_id": [None, 3], "ts": [at(-1), at(-2)],
                          "amount": [5.0, -40.0], "discount_used": [True, False]})
    combined = pd.concat([tx, later], ignore_index=True).astype({"customer_id": "Int64"})
    assert_cohort(build_cohort(combined, D), EXPECTED)


def test_nan_amount_in_parquet_is_refused(tx, tmp_path):
    # pyarrow from numpy keeps NaN as a value (pandas would write NULL), and Parquet statistics
    # leave NaN out: the checks must still see it
    import pyarrow as pa
    import pyarrow.parquet as pq

    amount = tx["amount"].to_numpy().copy()
    amount[2] = np.nan
    path = tmp_path / "nan.parquet"
    pq.write_table(pa.table({"customer_id": tx["customer_id"].to_numpy(),
                             "ts": pa.array(tx["ts"].to_numpy()),
                             "amount": pa.array(amount, from_pandas=False)}), path)
    with pytest.raises(InputError) as err:
        build_cohort(path, D)
    assert "'amount'" in str(err.value) and "not finite" in str(err.value)


def test_problems_after_as_of_in_parquet_are_ignored(tx, tmp_path):
    later = pd.DataFrame({"customer_id": [3, 10], "ts": [at(-2), at(-3)],
                          "amount": [-40.0, -1.0], "discount_used": [False, True]})
    path = tmp_path / "later.parquet"
    pd.concat([tx, later], ignore_index=True).to_parquet(path)
    assert_cohort(build_cohort(path, D), EXPECTED)


@pytest.mark.parametrize("as_of", ["2022-06-05", "2022-06-04", "2025-03-13"])
def test_as_of_outside_the_data(tx, as_of):
    # the data runs from D - 1000 days (2022-06-05) to D + 10 days (2025-03-11)
    with pytest.raises(InputError) as err:
        build_cohort(tx, as_of)
    assert "outside the data" in str(err.value)
    assert "2022-06-05 to 2025-03-11" in str(err.value)


def test_as_of_one_day_after_the_last_transaction_is_fine(tx):
    assert len(build_cohort(tx, "2025-03-12")) > 0
    # only customer 8's order (2022-06-05) is before 2022-06-06: one day ago
    first_day = build_cohort(tx, "2022-06-06", dormant_after=1, tiers="all")
    assert first_day["customer_id"].tolist() == [8]
    assert first_day["days_since_last"].tolist() == [1]


@pytest.mark.parametrize("as_of", ["2025-13-01", "yesterday", 20250301,
                                   datetime(2025, 3, 1, 12)])
def test_bad_as_of(tx, as_of):
    with pytest.raises(InputError, match="as-of"):
        build_cohort(tx, as_of)


def test_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        build_cohort(tmp_path / "nope.parquet", D)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"this is not parquet")
    with pytest.raises(InputError, match="junk.parquet"):
        build_cohort(junk, D)
    with duckdb.connect(str(tmp_path / "x.duckdb")) as con:
        con.execute("CREATE TABLE other (a INTEGER)")
    with pytest.raises(InputError, match="missing_table"):
        build_cohort(f"{tmp_path / 'x.duckdb'}:missing_table", D)


def test_bad_timestamp_beyond_the_csv_sniffer_sample(tmp_path):
    # 30,000 good rows, then 3 bad ones: DuckDB's sniffer types the column as TIMESTAMP from its
    # sample; the whole-file typing of `sources.register` names the first bad line and value
    path = tmp_path / "big.csv"
    n = 30_000
    frame = pd.DataFrame({"customer_id": np.arange(n) % 500,
                          "ts": pd.Timestamp("2024-01-01")
                          + pd.to_timedelta(np.arange(n) % 400, "D"),
                          "amount": 1.0})
    text = frame.to_csv(index=False, date_format="%Y-%m-%d %H:%M:%S")
    text += "1,2024-02-30 10:00:00,1.0\n2,soon,1.0\n3,soon,1.0\n"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        build_cohort(path, "2025-01-01")
    message = str(err.value)
    assert f"{path}, line 30002, column 'ts'" in message
    assert '"2024-02-30 10:00:00"' in message


def test_write_cohort_refuses_unknown_suffix_and_missing_dir(tx, tmp_path):
    with pytest.raises(InputError, match="unknown output type"):
        write_cohort(tx, D, tmp_path / "cohort.xlsx")
    with pytest.raises(InputError, match="does not exist"):
        write_cohort(tx, D, tmp_path / "no" / "cohort.parquet")


# -------------------------------------------------------------------------------------- CLI

def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    return cli(capsys, "cohort", *args)


def test_cli_writes_cohort_and_prints_tiers(tx, tmp_path, capsys):
    src, out = tmp_path / "tx.parquet", tmp_path / "cohort.parquet"
    tx.rename(columns={"customer_id": "cust", "ts": "when", "amount": "value"}).to_parquet(src)
    code, stdout, stderr = run_cli(capsys, "--transactions", str(src), "--as-of", "2025-03-01",
                                   "--customer-col", "cust", "--time-col", "when",
                                   "--amount-col", "value", "--out", str(out))
    assert code == 0, stderr
    assert "6 dormant customers" in stdout
    assert [ln.split()[0] for ln in stdout.splitlines()[1:] if not ln.startswith("-")] == [
        "tier", "short", "mid", "long", "total"]
    assert_cohort(pd.read_parquet(out), EXPECTED)


def test_cli_custom_tiers(tx, tmp_path, capsys):
    src, out = tmp_path / "tx.parquet", tmp_path / "cohort.csv"
    tx.to_parquet(src)
    code, stdout, _ = run_cli(capsys, "--transactions", str(src), "--as-of", "2025-03-01",
                              "--dormant-after", "180", "--tiers", "recent=365,old",
                              "--out", str(out))
    assert code == 0
    assert pd.read_csv(out)["tier"].tolist() == ["recent", "old", "recent", "old"]
    assert "4 dormant customers" in stdout


def _bad_cli_cases(tmp_path, tx):
    good = tmp_path / "good.parquet"
    tx.to_parquet(good)
    bad_ts = tmp_path / "bad_ts.csv"
    frame = tx.assign(ts=tx["ts"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    frame.loc[4, "ts"] = "not-a-date"
    frame.to_csv(bad_ts, index=False)
    neg = tmp_path / "neg.parquet"
    tx.assign(amount=tx["amount"].where(tx.index != 0, -3.0)).to_parquet(neg)
    misnamed = tmp_path / "misnamed.parquet"
    tx.rename(columns={"amount": "amt"}).to_parquet(misnamed)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"PAR1 nonsense")
    return [
        (["--transactions", str(misnamed), "--as-of", "2025-03-01"], ["'amount'", "amt"]),
        (["--transactions", str(bad_ts), "--as-of", "2025-03-01"], ["not-a-date"]),
        (["--transactions", str(neg), "--as-of", "2025-03-01"], ["-3", "customer 1"]),
        (["--transactions", str(good), "--as-of", "2030-01-01"], ["outside the data"]),
        (["--transactions", str(good), "--as-of", "01.03.2025"], ["as-of"]),
        (["--transactions", str(tmp_path / "missing.csv"), "--as-of", "2025-03-01"],
         ["no such file"]),
        (["--transactions", str(junk), "--as-of", "2025-03-01"], ["junk.parquet"]),
        (["--transactions", str(good), "--as-of", "2025-03-01", "--tiers", "a=50,b"],
         ["dormant-after"]),
        (["--transactions", str(good), "--as-of", "2025-03-01", "--dormant-after", "x"], ["x"]),
    ]


@pytest.mark.slow
def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(tx, tmp_path, capsys):
    for args, words in _bad_cli_cases(tmp_path, tx):
        out = tmp_path / "out" / "cohort.parquet"
        out.parent.mkdir(exist_ok=True)
        code, stdout, stderr = run_cli(capsys, *args, "--out", str(out))
        assert code == 2, (args, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, stderr)
        for word in words:
            assert word in lines[0], (word, lines[0])
        assert list(out.parent.iterdir()) == [], args


@pytest.mark.slow
def test_cli_bad_input_in_a_real_process_has_no_traceback(tx, tmp_path):
    src, out = tmp_path / "tx.csv", tmp_path / "cohort.parquet"
    frame = tx.assign(ts=tx["ts"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    frame.loc[0, "ts"] = "garbage"
    frame.to_csv(src, index=False)
    proc = cli_process("cohort", "--transactions", src, "--as-of", "2025-03-01", "--out", out)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr and "'garbage'" in proc.stderr
    assert not out.exists()
