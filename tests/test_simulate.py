"""The simulator: reproducible files, schema, natural dormancy, heterogeneous effects in the
documented directions, and a response to assignments that agrees with its own ground truth."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from _helpers import cli_process
from upliftlab.errors import InputError
from upliftlab.simulate import ARMS, BLOCK, load_world, simulate_world

N = 40_000


@pytest.fixture(scope="module")
def world():
    return simulate_world(N, seed=7)


@pytest.fixture(scope="module")
def dormant(world):
    t = world.truth
    return t[t["recency_days"] >= 90]


def assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Frames equal column by column (fast on categoricals, unlike assert_frame_equal)."""
    assert list(a.columns) == list(b.columns) and a.dtypes.equals(b.dtypes) and len(a) == len(b)
    for col in a.columns:
        x, y = a[col], b[col]
        if isinstance(x.dtype, pd.CategoricalDtype):
            assert list(x.cat.categories) == list(y.cat.categories), col
            x, y = x.cat.codes, y.cat.codes
        x, y = x.to_numpy(), y.to_numpy()
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), col


def files(d) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


# -- reproducibility ------------------------------------------------------------------------------

def test_same_seed_byte_identical_and_different_seed_differs(tmp_path):
    simulate_world(3000, seed=1).write(tmp_path / "a")
    simulate_world(3000, seed=1).write(tmp_path / "b")
    simulate_world(3000, seed=2).write(tmp_path / "c")
    a, b, c = files(tmp_path / "a"), files(tmp_path / "b"), files(tmp_path / "c")
    assert set(a) == {"customers.parquet", "transactions.parquet", "truth.parquet", "world.json",
                      ".upliftlab.json"}
    assert a == b
    for name in ("customers.parquet", "transactions.parquet", "truth.parquet"):
        assert a[name] != c[name]


@pytest.mark.slow
def test_output_independent_of_size_prefix(world):
    # randomness is drawn per fixed block and per variable: a smaller world (a partial block,
    # then a partial second block) is exactly the first customers of a larger one
    for n in (2_500, BLOCK + 1_000):
        small = simulate_world(n, seed=7)
        assert_same(small.customers, world.customers.iloc[:n])
        assert_same(small.truth, world.truth.iloc[:n])
        tx = world.transactions
        assert_same(small.transactions, tx[tx["customer_id"] <= n])


def test_write_load_round_trip(world, tmp_path):
    world.write(tmp_path / "w")
    back = load_world(tmp_path / "w")
    for name in ("customers", "transactions", "truth"):
        assert_same(getattr(back, name), getattr(world, name))
    assert back.params == world.params


def test_load_without_history_responds_alike(world, tmp_path):
    # `respond` loads a world without its transactions (most of a large world's memory): the
    # history's columns are kept, its rows are not read, the response is the same
    world.write(tmp_path / "w")
    light = load_world(tmp_path / "w", transactions=False)
    assert list(light.transactions.columns) == list(world.transactions.columns)
    assert len(light.transactions) == 0 and len(world.transactions) > 0
    asg = pd.DataFrame({"customer_id": world.customers["customer_id"].iloc[:3_000],
                        "arm": np.resize(["control", "coupon", "advisor"], 3_000)})
    assert_same(light.respond(asg), world.respond(asg))


# -- schema and ranges -----------------------------------------------------------------------------

@pytest.mark.slow
def test_schema_and_ranges(world):
    c, tx, t = world.customers, world.transactions, world.truth
    assert list(c.columns) == ["customer_id", "signup_date", "channel", "region", "age_band",
                               "email_opens_90d", "site_visits_90d"]
    assert np.array_equal(c["customer_id"].to_numpy(), np.arange(1, N + 1))
    assert c["customer_id"].dtype == np.int64
    assert set(c["channel"].astype(str)) == {"web", "app", "store"}
    assert set(c["region"].astype(str)) == {"north", "south", "east", "west"}
    assert set(c["age_band"].astype(str)) == {"18-24", "25-34", "35-44", "45-54", "55+"}
    assert (c["email_opens_90d"] >= 0).all() and (c["site_visits_90d"] >= 0).all()
    campaign = pd.Timestamp(world.params["campaign_date"])
    assert (c["signup_date"] < campaign).all()
    assert (c["signup_date"] == c["signup_date"].dt.normalize()).all()

    assert list(tx.columns) == ["customer_id", "ts", "amount", "discount_used", "category"]
    assert tx["customer_id"].dtype == np.int64 and tx["ts"].dtype == "datetime64[s]"
    assert tx["amount"].dtype == np.float64 and tx["discount_used"].dtype == bool
    assert (tx["amount"] > 0).all()
    assert np.allclose(tx["amount"], tx["amount"].round(2))
    assert (tx["ts"] < campaign).all()
    assert (tx["ts"] >= campaign - pd.Timedelta(days=world.params["history_days"])).all()
    assert set(tx["category"].astype(str)) == {"apparel", "home", "beauty", "electronics",
                                               "grocery"}
    # sorted by customer, then time; no purchase before sign-up
    key = tx["customer_id"].to_numpy() * 10**10 + tx["ts"].astype("int64").to_numpy()
    assert (np.diff(key) >= 0).all()
    signup = c["signup_date"].to_numpy()[tx["customer_id"].to_numpy() - 1]
    assert (tx["ts"].to_numpy() >= signup).all()
    # tens of orders per customer over two years on average
    assert 15 <= len(tx) / N <= 30

    for arm in ARMS:
        assert t[f"p_{arm}"].between(0, 1).all()
        assert (t[f"revenue_{arm}"] >= 0).all()
    for col in ("price_sensitivity", "engagement", "value"):
        assert col in t.columns
    assert t["price_sensitivity"].between(0, 1).all() and t["engagement"].between(0, 1).all()
    assert (t["value"] > 0).all()


# -- dormancy and natural reactivation -------------------------------------------------------------

def test_dormancy_arises_in_every_tier(world):
    tiers = world.summary()["tiers"]
    assert tiers["short"] > 0.04 and tiers["mid"] > 0.06 and tiers["long"] > 0.1
    assert sum(tiers.values()) < 0.75  # and plenty of active customers remain
    # the truth's recency agrees with the transactions
    last = world.transactions.groupby("customer_id")["ts"].max()
    campaign = pd.Timestamp(world.params["campaign_date"])
    rec = (campaign - last).dt.total_seconds() / 86_400
    assert np.allclose(world.truth["recency_days"].to_numpy()[last.index - 1], rec.to_numpy())


def test_natural_reactivation_falls_with_time_dormant(world):
    t = world.truth
    rec = t["recency_days"]
    p = [t.loc[(rec >= lo) & (rec < hi), "p_control"].mean()
         for lo, hi in ((0, 90), (90, 180), (180, 365), (365, np.inf))]
    assert p[0] > 0.3
    assert 0.03 <= p[1] <= 0.10
    assert 0.005 <= p[3] <= 0.03
    assert p[0] > p[1] > p[2] > p[3]


def test_engagement_observables_track_latent_engagement(world):
    rho_opens = stats.spearmanr(world.customers["email_opens_90d"], world.truth["engagement"])[0]
    rho_visits = stats.spearmanr(world.customers["site_visits_90d"], world.truth["engagement"])[0]
    assert rho_opens > 0.5 and rho_visits > 0.5
    # price sensitivity shows in the discount share of a customer's orders
    tx = world.transactions
    share = tx.groupby("customer_id")["discount_used"].mean()
    ps = world.truth["price_sensitivity"].to_numpy()[share.index - 1]
    assert stats.spearmanr(share, ps)[0] > 0.4


# -- treatment effects -----------------------------------------------------------------------------

def test_effects_have_documented_directions_and_harm_some(dormant):
    eff = {a: dormant[f"p_{a}"] - dormant["p_control"] for a in ARMS[1:]}
    for arm, e in eff.items():
        assert (e < 0).mean() > 0.05, f"{arm} should harm some customers"
        assert (e > 0).mean() > 0.3, f"{arm} should help many customers"
        assert 0.001 < e.mean() < 0.03, f"{arm}: average effect of a fraction of a point to a few"
    assert stats.spearmanr(eff["coupon"], dormant["price_sensitivity"])[0] > 0.5
    assert stats.spearmanr(eff["content"], dormant["engagement"])[0] > 0.5
    long = dormant["recency_days"] >= 365
    assert stats.spearmanr(eff["advisor"][long], dormant.loc[long, "value"])[0] > 0.5
    # the advisor annoys low-value recently lapsed customers and wins back high-value long-dormant
    low_recent = ((dormant["value"] < dormant["value"].quantile(0.25))
                  & (dormant["recency_days"] < 180))
    high_long = (dormant["value"] > dormant["value"].quantile(0.75)) & long
    assert eff["advisor"][low_recent].mean() < 0 < eff["advisor"][high_long].mean()
    # content annoys the disengaged
    assert eff["content"][dormant["engagement"] < 0.1].mean() < 0


def test_targeting_beats_every_single_arm(dormant):
    p = dormant[[f"p_{a}" for a in ARMS]].to_numpy()
    best = np.bincount(p.argmax(axis=1), minlength=4) / len(p)
    assert (best[1:] > 0.1).all(), best  # each treatment is best for a real share
    assert p.max(axis=1).mean() > p.mean(axis=0).max() + 0.005


def test_true_effects_over_subset(world, dormant):
    eff = world.true_effects(dormant["customer_id"])
    assert list(eff["arm"]) == list(ARMS)
    assert eff["n"].eq(len(dormant)).all()
    for _, row in eff.iterrows():
        assert row["p"] == pytest.approx(dormant[f"p_{row['arm']}"].mean())
        assert row["effect_p"] == pytest.approx(dormant[f"p_{row['arm']}"].mean()
                                                - dormant["p_control"].mean())
        assert row["effect_revenue"] == pytest.approx(dormant[f"revenue_{row['arm']}"].mean()
                                                      - dormant["revenue_control"].mean())


# -- response ------------------------------------------------------------------------------------

def outcomes(world, assignment, seed):
    """Per assigned customer: reactivated (0/1) and window revenue, from `respond`."""
    rows = world.respond(assignment, seed=seed)
    by = rows.groupby("customer_id")["amount"].sum()
    y = assignment["customer_id"].isin(by.index).to_numpy().astype(float)
    rev = by.reindex(assignment["customer_id"]).fillna(0.0).to_numpy()
    return y, rev


@pytest.mark.parametrize("seed", [11, 12])
def test_random_assignment_recovers_true_effects(world, seed):
    rng = np.random.default_rng(seed)
    asg = pd.DataFrame({"customer_id": world.truth["customer_id"],
                        "arm": np.array(ARMS)[rng.integers(0, 4, N)]})
    y, rev = outcomes(world, asg, seed)
    truth = world.truth.set_index("customer_id").loc[asg["customer_id"]]
    arm = asg["arm"].to_numpy()
    c = arm == "control"
    for a in ARMS[1:]:
        t = arm == a
        for yy, col in ((y, "p"), (rev, "revenue")):
            est = yy[t].mean() - yy[c].mean()
            se = np.sqrt(yy[t].var(ddof=1) / t.sum() + yy[c].var(ddof=1) / c.sum())
            true = truth.loc[t, f"{col}_{a}"].mean() - truth.loc[c, f"{col}_control"].mean()
            assert abs(est - true) < 3 * se, (a, col, est, true, se)


@pytest.mark.slow
def test_response_levels_match_truth_tightly(world, dormant):
    # every dormant customer under one arm, several response seeds: levels within 3 SE
    ids = dormant["customer_id"].to_numpy()
    for a in ARMS:
        asg = pd.DataFrame({"customer_id": ids, "arm": a})
        ys, revs = zip(*(outcomes(world, asg, s) for s in range(4)))
        y, rev = np.concatenate(ys), np.concatenate(revs)
        p = np.tile(dormant[f"p_{a}"].to_numpy(), 4)
        assert abs(y.mean() - p.mean()) < 3 * np.sqrt((p * (1 - p)).sum()) / len(p)
        r = np.tile(dormant[f"revenue_{a}"].to_numpy(), 4)
        assert abs(rev.mean() - r.mean()) < 3 * (rev - r).std() / np.sqrt(len(r))


def test_response_schema_window_and_coupon(world, dormant):
    ids = dormant["customer_id"].to_numpy()[:8000]
    start = date(2026, 2, 1)
    rows = world.respond(pd.DataFrame({"customer_id": ids, "arm": "coupon"}), start=start, seed=3)
    assert list(rows.columns) == list(world.transactions.columns)
    assert rows.dtypes.equals(world.transactions.dtypes)
    w = world.params["outcome_window_days"]
    assert (rows["ts"] >= pd.Timestamp(start)).all()
    assert (rows["ts"] < pd.Timestamp(start) + pd.Timedelta(days=w)).all()
    assert (rows["amount"] > 0).all() and set(rows["customer_id"]) <= set(ids)
    key = rows["customer_id"].to_numpy() * 10**10 + rows["ts"].astype("int64").to_numpy()
    assert (np.diff(key) >= 0).all()
    first = rows.groupby("customer_id").head(1).set_index("customer_id")
    # a delivered coupon is redeemed on the first order; an undelivered one never is
    same, touches = world.respond_with_touches(pd.DataFrame({"customer_id": ids, "arm": "coupon"}),
                                               start=start, seed=3)
    assert_same(same, rows)
    got = touches.set_index("customer_id")["delivered_at"].notna()
    assert 0.5 < got.mean() < 1.0
    assert first.loc[got.reindex(first.index)].discount_used.all()
    redeemed = touches.dropna(subset=["redeemed_at"]).set_index("customer_id")["redeemed_at"]
    assert set(redeemed.index) == set(first.index[got.reindex(first.index).to_numpy()])
    assert (redeemed == first.loc[redeemed.index, "ts"]).all()


def test_treatment_caused_orders_arrive_early(world, dormant):
    ids = dormant["customer_id"].to_numpy()
    day = {}
    for a in ("control", "coupon"):
        rows = pd.concat([world.respond(pd.DataFrame({"customer_id": ids, "arm": a}), seed=s)
                          for s in range(3)])
        first = rows.groupby("customer_id")["ts"].min()
        day[a] = ((first - pd.Timestamp(world.params["campaign_date"])).dt.total_seconds()
                  / 86_400).mean()
    assert day["control"] == pytest.approx(world.params["outcome_window_days"] / 2, rel=0.15)
    assert day["coupon"] < day["control"] - 2


def test_response_deterministic_and_per_customer(world):
    rng = np.random.default_rng(0)
    asg = pd.DataFrame({"customer_id": np.arange(1, 20_001),
                        "arm": np.array(ARMS)[rng.integers(0, 4, 20_000)]})
    a = world.respond(asg, seed=5)
    assert_same(a, world.respond(asg.sample(frac=1.0, random_state=1), seed=5))
    assert not a.equals(world.respond(asg, seed=6))
    # a customer's rows depend only on their own arm: a 2-arm subset gives the same rows
    sub = asg[asg["arm"].isin(["control", "coupon"])]
    b = world.respond(sub, seed=5)
    assert_same(b, a[a["customer_id"].isin(sub["customer_id"])])
    # customers not assigned get nothing; empty assignment gives an empty table
    assert set(b["customer_id"]) <= set(sub["customer_id"])
    empty = world.respond(asg.iloc[:0], seed=5)
    assert len(empty) == 0 and list(empty.columns) == list(a.columns)


def test_response_shares_random_numbers_across_arms(world):
    # a customer who reactivates under control also does under an arm with a higher probability
    ids = np.arange(1, 20_001)
    ctrl = set(world.respond(pd.DataFrame({"customer_id": ids, "arm": "control"}), seed=2)
               ["customer_id"])
    cou = set(world.respond(pd.DataFrame({"customer_id": ids, "arm": "coupon"}), seed=2)
              ["customer_id"])
    t = world.truth.set_index("customer_id")
    helped = {i for i in ctrl if t.at[i, "p_coupon"] >= t.at[i, "p_control"]}
    assert helped <= cou


@pytest.mark.parametrize("asg, match", [
    (pd.DataFrame({"customer_id": [1, 2], "arm": ["control", "sms"]}), "unknown arm 'sms'"),
    (pd.DataFrame({"customer_id": [1, N + 1], "arm": ["control", "coupon"]}), f"{N + 1}"),
    (pd.DataFrame({"customer_id": [0], "arm": ["control"]}), "unknown customer id '0'"),
    (pd.DataFrame({"customer_id": ["x"], "arm": ["control"]}), "unknown customer id 'x'"),
    (pd.DataFrame({"customer_id": [3, 3], "arm": ["control", "coupon"]}), "more than once"),
    (pd.DataFrame({"customer_id": [3, 4], "arm": ["control", None]}), "empty value in column 'arm'"),
    (pd.DataFrame({"id": [3], "arm": ["control"]}), "missing column 'customer_id'"),
])
def test_respond_bad_input(world, asg, match):
    with pytest.raises(InputError, match=match):
        world.respond(asg)


def test_respond_custom_columns_and_bad_start(world):
    asg = pd.DataFrame({"cid": [5, 6], "group": ["advisor", "content"]})
    world.respond(asg, customer_col="cid", arm_col="group")
    with pytest.raises(InputError, match="start"):
        world.respond(asg, customer_col="cid", arm_col="group", start="2026-02-30")


@pytest.mark.parametrize("kwargs, match", [
    ({"n_customers": 0}, "at least 1"),
    ({"n_customers": -3}, "at least 1"),
    ({"n_customers": 10, "campaign_date": "yesterday"}, "campaign date"),
    ({"n_customers": 10, "history_days": 5}, "history days"),
    ({"n_customers": 10, "outcome_window_days": 0}, "outcome window"),
])
def test_simulate_bad_input(kwargs, match):
    with pytest.raises(InputError, match=match):
        simulate_world(**kwargs)


def test_load_world_errors(tmp_path):
    with pytest.raises(InputError, match="no such world"):
        load_world(tmp_path / "missing")
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "world.json").write_text("{}")
    with pytest.raises(InputError, match="missing customers.parquet"):
        load_world(tmp_path / "w")


def test_write_refuses_foreign_directory(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "notes.txt").write_text("keep me")
    w = simulate_world(500, seed=1)
    with pytest.raises(InputError, match="not empty"):
        w.write(d)
    assert files(d) == {"notes.txt": b"keep me"}
    w.write(tmp_path / "w")
    simulate_world(400, seed=2).write(tmp_path / "w")  # a previous world is replaced
    assert len(load_world(tmp_path / "w").customers) == 400
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# -- CLI -----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_cli_simulate_and_respond(tmp_path):
    out = cli_process("simulate", "--n-customers", "4000", "--seed", "3", "--out",
                      str(tmp_path / "w"), "--outcome-window-days", "30")
    assert out.returncode == 0, out.stderr
    assert "4,000 customers" in out.stdout and "dormant" in out.stdout
    assert "coupon" in out.stdout and "advisor" in out.stdout
    world = load_world(tmp_path / "w")
    assert world.params["outcome_window_days"] == 30 and world.params["seed"] == 3
    asg = pd.DataFrame({"cid": np.arange(1, 4001), "group": ["control", "content"] * 2000})
    asg.to_csv(tmp_path / "asg.csv", index=False)
    out = cli_process("respond", "--world", str(tmp_path / "w"), "--assignments",
                      str(tmp_path / "asg.csv"), "--customer-col", "cid", "--arm-col", "group", "--seed", "4",
                      "--out", str(tmp_path / "resp.parquet"))
    assert out.returncode == 0, out.stderr
    got = pd.read_parquet(tmp_path / "resp.parquet")
    expected = world.respond(asg, customer_col="cid", arm_col="group", seed=4)
    assert np.array_equal(got["customer_id"], expected["customer_id"])
    assert np.array_equal(got["amount"], expected["amount"])
    assert np.array_equal(got["ts"].to_numpy().astype("datetime64[s]"), expected["ts"].to_numpy())
    out = cli_process("respond", "--world", str(tmp_path / "w"), "--assignments",
                      str(tmp_path / "asg.csv"), "--customer-col", "cid", "--arm-col", "group", "--seed", "4",
                      "--out", str(tmp_path / "resp.csv"))
    assert out.returncode == 0, out.stderr
    assert len(pd.read_csv(tmp_path / "resp.csv")) == len(expected)


@pytest.fixture(scope="module")
def cli_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    simulate_world(300, seed=1).write(tmp / "w")
    pd.DataFrame({"customer_id": [1, 2], "arm": ["control", "coupon"]}).to_csv(tmp / "asg.csv",
                                                                              index=False)
    pd.DataFrame({"customer_id": [1, 2], "arm": ["control", "sms"]}).to_csv(tmp / "bad_arm.csv",
                                                                           index=False)
    (tmp / "foreign").mkdir()
    (tmp / "foreign" / "keep.txt").write_text("x")
    return tmp


@pytest.mark.parametrize("args, match", [
    (["simulate", "--n-customers", "-5", "--out", "{tmp}/new"], "at least 1"),
    (["simulate", "--n-customers", "10", "--out", "{tmp}/new", "--campaign-date", "2026-13-01"],
     "campaign-date"),
    (["simulate", "--n-customers", "10", "--out", "{tmp}/foreign"], "not empty"),
    (["respond", "--world", "{tmp}/nope", "--assignments", "{tmp}/asg.csv", "--out",
      "{tmp}/new.parquet"], "no such world"),
    (["respond", "--world", "{tmp}/w", "--assignments", "{tmp}/bad_arm.csv", "--out",
      "{tmp}/new.parquet"], "unknown arm 'sms'"),
    (["respond", "--world", "{tmp}/w", "--assignments", "{tmp}/asg.csv", "--arm-col", "grp",
      "--out", "{tmp}/new.parquet"], "missing column 'grp'"),
    (["respond", "--world", "{tmp}/w", "--assignments", "{tmp}/asg.csv", "--campaign-date",
      "2026-99-01",
      "--out", "{tmp}/new.parquet"], "campaign-date"),
    (["respond", "--world", "{tmp}/w", "--assignments", "{tmp}/asg.csv", "--out",
      "{tmp}/new.xlsx"], "unknown output type"),
])
def test_cli_bad_input_exit_2_one_line(cli_dir, capsys, args, match):
    # in-process through the same entry point as the console script (a subprocess each is slow)
    from upliftlab.cli import main

    before = sorted(str(p.relative_to(cli_dir)) for p in cli_dir.rglob("*"))
    with pytest.raises(SystemExit) as exc:
        main([a.format(tmp=cli_dir) for a in args])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.startswith("error: ") and match in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert sorted(str(p.relative_to(cli_dir)) for p in cli_dir.rglob("*")) == before
    assert (cli_dir / "foreign" / "keep.txt").read_text() == "x"


@pytest.mark.slow
def test_cli_bad_input_subprocess(cli_dir):
    out = cli_process("simulate", "--n-customers", "-1", "--out", str(cli_dir / "new"))
    assert out.returncode == 2 and out.stderr.startswith("error: ")
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (cli_dir / "new").exists()
