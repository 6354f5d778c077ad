"""Touch logs: the funnel against hand-computed counts, contamination counted and left out, the
effect on the reached (Wald and 2SLS) equal to linearmodels' IV2SLS, and on the simulator the
CACE interval covering the true complier effect in about 95% of seeded repetitions."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from upliftlab.errors import InputError
from upliftlab.simulate import ARMS, simulate_world
from upliftlab.sources import connect, register
from upliftlab.stats.iv import reached_cost, tsls, wald
from upliftlab.stats.sql import iv_aggregate
from upliftlab.touches import TouchColumns, analyze_touches, wilson

T = pd.Timestamp("2026-01-05 09:00")


def _run(experiment: pd.DataFrame, log: pd.DataFrame, **kw):
    con = connect()
    cols = register(con, log, "log")
    register(con, experiment, "exp")
    kw.setdefault("control", "control")
    return analyze_touches(con, log="log", log_columns=cols, columns=TouchColumns(),
                           assigned="exp", outcomes="exp", arm="arm", **kw)


def _log(rows):
    cols = ["customer_id", "arm", "channel", "sent_at", "delivered_at", "opened_at",
            "clicked_at", "redeemed_at", "cost"]
    df = pd.DataFrame(rows, columns=cols)
    for c in cols[3:8]:
        df[c] = pd.to_datetime(df[c])
    return df


def h(hours):
    return T + pd.Timedelta(hours=hours)


EXPERIMENT = pd.DataFrame({
    "customer_id": [str(i) for i in range(1, 13)],
    "arm": ["control"] * 4 + ["sms"] * 5 + ["holdout"] + ["control"] * 2,
    "reactivated": [0, 1, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0],
})

HAND_LOG = _log([
    # customer 5: sms delivered, opened, clicked, redeemed; plus an e-mail only sent
    ("5", "sms", "sms", h(0), h(0.01), h(2), h(2.1), h(30), 0.10),
    ("5", "sms", "email", h(0), None, None, None, None, 0.02),
    # customer 6: sms delivered and opened; e-mail delivered
    ("6", "sms", "sms", h(0), h(0.01), h(5), None, None, 0.10),
    ("6", "sms", "email", h(1), h(1.01), None, None, None, 0.02),
    # customer 7: sms twice (the second delivered), never opened
    ("7", "sms", "sms", h(0), None, None, None, None, 0.10),
    ("7", "sms", "sms", h(24), h(24.01), None, None, None, 0.10),
    # customer 8: sms never delivered; customer 9: nothing
    ("8", "sms", "sms", h(0), None, None, None, None, 0.10),
    # contamination: a control customer and a holdout customer got the sms
    ("2", "control", "sms", h(0), h(0.01), None, None, None, 0.10),
    ("10", "holdout", "sms", h(0), h(0.01), h(1), None, None, 0.10),
    ("10", "holdout", "sms", h(3), None, None, None, None, 0.10),
])


def test_funnel_counts_equal_hand_computed_values():
    r = _run(EXPERIMENT, HAND_LOG)
    rows = {(f.arm, f.channel): f for f in r.funnel}
    assert set(rows) == {("sms", "sms"), ("sms", "email"), ("sms", "(all)")}
    sms = rows[("sms", "sms")]
    assert sms.assigned == 5 and sms.touches == 5
    assert sms.customers == {"sent": 4, "delivered": 3, "opened": 2, "clicked": 1, "redeemed": 1}
    # reactivated: customers 5 and 6 (y=1), 7 and 8 (y=0), 9 (y=1, never touched)
    assert sms.reactivated == {"sent": 2, "delivered": 2, "opened": 2, "clicked": 1,
                               "redeemed": 1, "assigned": 3}
    email = rows[("sms", "email")]
    assert email.customers == {"sent": 2, "delivered": 1, "opened": 0, "clicked": 0,
                               "redeemed": 0}
    assert email.cost == pytest.approx(0.04)
    every = rows[("sms", "(all)")]  # a customer counts once per step over all channels
    assert every.customers == {"sent": 4, "delivered": 3, "opened": 2, "clicked": 1,
                               "redeemed": 1}
    assert every.touches == 7 and every.cost == pytest.approx(0.54)
    d = r.to_dict()
    f = next(x for x in d["funnel"] if x["channel"] == "sms")
    delivered = next(s for s in f["steps"] if s["step"] == "delivered")
    assert delivered["rate"] == pytest.approx(3 / 5)
    assert delivered["of_previous"] == pytest.approx(3 / 4)
    assert delivered["reactivation_rate"] == pytest.approx(2 / 3)
    lo, hi = stats_wilson(3, 5)
    assert (delivered["ci_low"], delivered["ci_high"]) == pytest.approx((lo, hi))
    assert f["not_delivered"] == {"customers": 2, "reactivation_rate": pytest.approx(1 / 2)}
    assert f["response_rates"] == {"open": pytest.approx(2 / 3), "click": pytest.approx(1 / 2),
                                   "conversion": pytest.approx(2 / 3)}


def stats_wilson(k, n):
    from statsmodels.stats.proportion import proportion_confint

    return proportion_confint(k, n, alpha=0.05, method="wilson")


def test_wilson_equals_statsmodels():
    for k, n in ((0, 7), (3, 5), (40, 41), (512, 2000)):
        assert wilson(k, n, stats.norm.ppf(0.975)) == pytest.approx(stats_wilson(k, n), abs=1e-12)


def test_contamination_counted_and_excluded():
    r = _run(EXPERIMENT, HAND_LOG)
    c = r.checks
    assert c.touches == 10 and c.customers == 6
    assert c.contamination == {"control": 1, "holdout": 2} and c.contaminated_customers == 2
    assert any("Contamination: 3 touches" in n for n in r.notes)
    # left out: no funnel row for control or holdout, and control's reach is 0
    assert {f.arm for f in r.funnel} == {"sms"}
    e = next(e for e in r.effects if e.exposure == "delivered")
    assert e.wald.itt_d == pytest.approx(3 / 5)  # 3 of 5 sms customers, control counts 0
    # the arm's touch spend over its delivered messages (3 sms + 1 e-mail)
    assert e.cost.cost_per_delivered == pytest.approx(0.54 / 4)
    # the estimate is the same as with a log that never had the contaminated rows
    clean = HAND_LOG[~HAND_LOG["customer_id"].isin(["2", "10"])]
    e2 = next(e for e in _run(EXPERIMENT, clean).effects if e.exposure == "delivered")
    assert (e.wald.estimate, e.wald.se) == (e2.wald.estimate, e2.wald.se)


def test_cutoff_hides_later_steps_and_says_so():
    r = _run(EXPERIMENT, HAND_LOG, cutoff=dt.date(2026, 1, 6))
    sms = next(f for f in r.funnel if (f.arm, f.channel) == ("sms", "sms"))
    # customer 7's delivery (day 2) and customer 5's redemption (day 2) are not yet seen
    assert sms.customers["delivered"] == 2 and sms.customers["redeemed"] == 0
    assert r.checks.late_steps == 3  # 7's second sent and delivered, 5's redeemed
    assert any("not yet counted" in n for n in r.notes)


@pytest.mark.parametrize("change, match", [
    (lambda d: d.assign(opened_at=d["delivered_at"] - pd.Timedelta(minutes=1)), "out of order"),
    (lambda d: pd.concat([d, d.iloc[:1]]), "duplicate touches"),
    (lambda d: pd.concat([d, d.iloc[[4, 4]]]), "2 duplicate touches"),  # 4 touches, 2 the same
    (lambda d: pd.concat([d, d.iloc[[4]].assign(sent_at=h(48))] * 1 + [d.iloc[[5]]]),
     "1 duplicate touches"),  # customer 7: three sms, two with the same sent time
    (lambda d: d.assign(customer_id=d["customer_id"].replace({"5": "99"})), "outside the exp"),
    (lambda d: d.assign(arm=d["arm"].replace({"sms": "sms_v2"})), "unknown arm"),
    (lambda d: d.assign(arm=np.where(d["customer_id"] == "6", "control", d["arm"])),
     "another arm than"),
    (lambda d: d.assign(sent_at=d["sent_at"] - pd.Timedelta(days=3)), "before the campaign"),
    (lambda d: d.drop(columns=["delivered_at"]), "missing column 'delivered_at'"),
    (lambda d: d.assign(cost=np.where(d.index == 2, np.nan, d["cost"])), "no value in column"),
])
def test_bad_logs_are_refused_naming_touches(change, match):
    with pytest.raises(InputError, match=match):
        _run(EXPERIMENT, change(HAND_LOG.copy()), start=dt.date(2026, 1, 5))


def test_unknown_channel_refused_when_channels_given():
    with pytest.raises(InputError, match="channel not in"):
        _run(EXPERIMENT, HAND_LOG, channels=("sms",))
    assert _run(EXPERIMENT, HAND_LOG, channels=("sms", "email")).funnel


# -- the estimators against linearmodels ------------------------------------------------------

def _iv_frame(seed, n=6000):
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 2, n)
    x1 = rng.lognormal(5, 1, n)
    x2 = rng.poisson(3, n).astype(float)
    reach = rng.random(n) < 0.4 + 0.3 * (x2 > 2)
    d = z * reach
    y = (rng.random(n) < 0.05 + 0.04 * d + 0.00005 * x1 + 0.01 * x2).astype(int)
    return pd.DataFrame({"customer_id": np.arange(n).astype(str),
                         "arm": np.where(z == 1, "coupon", "control"), "reactivated": y,
                         "revenue_365d": x1, "orders_730d": x2, "d": d, "z": z})


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_wald_and_2sls_equal_linearmodels(seed):
    from linearmodels.iv import IV2SLS

    df = _iv_frame(seed)
    log = df[df["d"] == 1]
    log = pd.DataFrame({"customer_id": log["customer_id"], "arm": "coupon", "channel": "sms",
                        "sent_at": T, "delivered_at": T + pd.Timedelta(minutes=1),
                        "cost": 0.1})
    exp = df.drop(columns=["d", "z"])
    r = _run(exp, log, covariates=("revenue_365d", "orders_730d"))
    e = next(e for e in r.effects if e.exposure == "delivered")
    df["const"] = 1.0
    plain = IV2SLS(df["reactivated"], df[["const"]], df["d"], df[["z"]]).fit(cov_type="robust")
    adj = IV2SLS(df["reactivated"], df[["const", "revenue_365d", "orders_730d"]], df["d"],
                 df[["z"]]).fit(cov_type="robust")
    assert e.wald.estimate == pytest.approx(plain.params["d"], rel=1e-9, abs=1e-12)
    assert e.wald.se == pytest.approx(plain.std_errors["d"], rel=1e-9, abs=1e-12)
    assert e.tsls.estimate == pytest.approx(adj.params["d"], rel=1e-9, abs=1e-12)
    assert e.tsls.se == pytest.approx(adj.std_errors["d"], rel=1e-9, abs=1e-12)
    # the log has no 'opened' column: no effect for opened, and the report says so
    assert [x.exposure for x in r.effects] == ["delivered"]
    assert "opened_at" in r.checks.absent_columns


def test_2sls_with_an_overidentified_first_stage_still_matches():
    """Two treatment arms share one control: each comparison is its own just-identified IV,
    computed from the same per-arm sums."""
    from linearmodels.iv import IV2SLS

    df = _iv_frame(7)
    con = connect()
    register(con, df, "df")
    st = iv_aggregate(con, "df", "arm", "d", "reactivated", ("orders_730d",))
    df["const"] = 1.0
    ref = IV2SLS(df["reactivated"], df[["const", "orders_730d"]], df["d"], df[["z"]]).fit(
        cov_type="robust")
    got = tsls(st["coupon"], st["control"], 1.96)
    assert got.estimate == pytest.approx(ref.params["d"], rel=1e-9)
    assert got.se == pytest.approx(ref.std_errors["d"], rel=1e-9)


def test_reached_cost_is_touch_cost_over_incremental_reactivations():
    df = _iv_frame(4, n=20_000)
    df["cost"] = df["d"] * 0.1 + df["z"] * 0.05
    con = connect()
    register(con, df, "df")
    st = iv_aggregate(con, "df", "arm", "d", "reactivated", (), "cost")
    c = reached_cost(st["coupon"], st["control"], 1.96)
    t, k = df["z"] == 1, df["z"] == 0
    itt = df.loc[t, "reactivated"].mean() - df.loc[k, "reactivated"].mean()
    assert c.ratio.estimate == pytest.approx(df.loc[t, "cost"].mean() / itt)
    assert c.cost_per_delivered == pytest.approx(df.loc[t, "cost"].sum() / df.loc[t, "d"].sum())
    assert c.ratio.bounded and c.ratio.ci_low < c.ratio.estimate < c.ratio.ci_high


# -- the simulator -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world():
    return simulate_world(20_000, seed=5)


def test_simulated_log_follows_its_truth(world):
    ids = world.truth["customer_id"].to_numpy()
    rng = np.random.default_rng(0)
    asg = pd.DataFrame({"customer_id": ids, "arm": np.array(ARMS)[rng.integers(0, 4, len(ids))]})
    tx, log = world.respond_with_touches(asg, seed=2)
    truth = world.truth.set_index("customer_id")
    assert set(log["arm"]) == set(ARMS[1:]) and len(log) == (asg["arm"] != "control").sum()
    for arm in ARMS[1:]:
        sub = log[log["arm"] == arm]
        reach = truth.loc[sub["customer_id"], f"reach_{arm}"].to_numpy()
        got = sub["delivered_at"].notna().to_numpy()
        assert abs(got.mean() - reach.mean()) < 4 * np.sqrt((reach * (1 - reach)).sum()) / len(reach)
    # opens rise with engagement among the delivered
    d = log[log["delivered_at"].notna() & (log["channel"] != "call")]
    eng = truth.loc[d["customer_id"], "engagement"].to_numpy()
    assert stats.spearmanr(eng, d["opened_at"].notna())[0] > 0.2
    # steps in order; the truth's ITT is reach x effect on the reached
    got = log[log["delivered_at"].notna()]
    assert (got["delivered_at"] >= got["sent_at"]).all()
    assert (log["opened_at"].dropna() >= log.loc[log["opened_at"].notna(), "delivered_at"]).all()
    te = world.true_effects()
    tc = world.true_complier_effects()
    for _, row in tc.iterrows():
        assert row["itt"] == pytest.approx(te.set_index("arm").at[row["arm"], "effect_p"])
        assert row["cace"] * row["reach"] == pytest.approx(row["itt"])


@pytest.mark.slow
def test_cace_interval_covers_true_complier_effect(world):
    """Seeded repetitions (new assignment and response each): the delivered-CACE interval
    covers the world's true complier effect in about 95% of them."""
    ids = world.truth["customer_id"].to_numpy()
    truth = world.true_complier_effects().set_index("arm")
    reps, hits, hits_f = 160, {a: 0 for a in ARMS[1:]}, 0
    con = connect()
    for rep in range(reps):
        rng = np.random.default_rng(1000 + rep)
        asg = pd.DataFrame({"customer_id": ids,
                            "arm": np.array(ARMS)[rng.integers(0, 4, len(ids))]})
        tx, log = world.respond_with_touches(asg, seed=rep)
        frame = pd.DataFrame({
            "arm": asg["arm"],
            "y": asg["customer_id"].isin(tx["customer_id"]).astype(float),
            "d": asg["customer_id"].isin(log.loc[log["delivered_at"].notna(), "customer_id"])
            .astype(float)})
        register(con, frame, "f")
        st = iv_aggregate(con, "f", "arm", "d", "y")
        for a in ARMS[1:]:
            w = wald(st[a], st["control"], 1.959964)
            hits[a] += w.ci_low <= truth.at[a, "cace"] <= w.ci_high
            if a == "coupon":
                hits_f += (w.fieller.bounded
                           and w.fieller.ci_low <= truth.at[a, "cace"] <= w.fieller.ci_high)
    for a, k in hits.items():
        assert 0.89 <= k / reps <= 0.995, (a, k / reps)
    assert 0.89 <= hits_f / reps <= 0.995


def test_spec_touches_table():
    import tomllib

    from upliftlab.errors import SpecError
    from upliftlab.spec import load_spec, parse_spec
    from upliftlab.touches import TouchColumns

    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    spec = load_spec(root / "experiments" / "reactivation_2026q1.toml")
    assert spec.touches.channels == ["sms", "push", "email", "call"]
    assert spec.touches.columns.column_map() == TouchColumns()
    data = tomllib.loads((root / "experiments" / "reactivation_2026q1.toml").read_text())
    data["touches"]["columns"] = {"delivered": "dlv_ts"}
    assert parse_spec(data).touches.columns.column_map().delivered == "dlv_ts"
    data["touches"]["sorce"] = "x.csv"
    with pytest.raises(SpecError, match="unknown key 'sorce' in touches"):
        parse_spec(data)
    with pytest.raises(InputError, match="unknown touch-log key 'sent_time'"):
        TouchColumns.parse({"sent_time": "s"})


def test_simulate_prints_the_effect_on_the_reached(world):
    from upliftlab.cli.simulate import format_summary

    s = world.summary()
    dormant = world.truth.loc[world.truth["recency_days"] >= 90, "customer_id"]
    want = world.true_complier_effects(dormant).set_index("arm")
    for r in s["dormant_reached"]:
        assert r["cace"] == pytest.approx(want.at[r["arm"], "cace"])
        assert r["reach"] < 1 and r["cace"] * r["reach"] == pytest.approx(r["itt"])
    assert "effect on the customers reached: coupon" in format_summary(s, "w")


@pytest.mark.parametrize("kind", ["csv", "duckdb", "parquet"])
def test_log_from_files(tmp_path, kind):
    """The same hand-made log read from CSV, a DuckDB table and Parquet gives the same funnel;
    the experiment table is a file as well."""
    from upliftlab.touches import experiment_touches

    if kind == "csv":
        HAND_LOG.to_csv(tmp_path / "log.csv", index=False)
        source = str(tmp_path / "log.csv")
    elif kind == "parquet":
        HAND_LOG.to_parquet(tmp_path / "log.parquet")
        source = str(tmp_path / "log.parquet")
    else:
        import duckdb

        con = duckdb.connect(str(tmp_path / "t.duckdb"))
        con.register("h", HAND_LOG)
        con.execute("CREATE TABLE touch_log AS SELECT * FROM h")
        con.close()
        source = f"{tmp_path / 't.duckdb'}:touch_log"
    EXPERIMENT.to_csv(tmp_path / "exp.csv", index=False)
    got = experiment_touches(str(tmp_path / "exp.csv"), source, arm="arm", control="control",
                             outcome="reactivated")
    want = _run(EXPERIMENT, HAND_LOG)
    assert got.funnel == want.funnel and got.checks == want.checks
