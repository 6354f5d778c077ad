"""Assignment: the formula against an independent hashlib implementation and the documented SQL,
shares, exact balance per stratum, capacity, holdout, late joiners, bad input."""

from __future__ import annotations

import hashlib
import math
import re
from fractions import Fraction
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from upliftlab.assign import (Design, assign, hash_sql, simple_arm, simple_case, thresholds,
                              unit_sql)
from upliftlab.checks import check_assignment, smd
from upliftlab.errors import InputError
from upliftlab.stats.srm import srm_test

ROOT = Path(__file__).resolve().parents[1]
DOC_WEIGHTS = {"control": 0.4, "coupon": 0.2, "content": 0.2, "advisor": 0.2}
DOC_SALT = "reactivation-2026q1"


# ---- independent references (plain Python + hashlib, no upliftlab code) ----------------------
def ref_x(salt: str, cid: str) -> int:
    return int(hashlib.md5(f"{salt}:{cid}".encode()).hexdigest()[:15], 16)


def ref_simple(salt: str, cid: str, weights: dict[str, float]) -> str:
    u = Fraction(ref_x(salt, cid), 2**60)
    c = Fraction(0)
    for arm, w in weights.items():
        c += Fraction(str(w))
        if u < c:
            return arm
    return list(weights)[-1]


def ref_stratified(frame: pd.DataFrame, salt: str, weights: dict[str, float]) -> dict[str, str]:
    """Rank by (x, id) within stratum; arm = first a with rank < floor(C_a n + phi)."""
    out = {}
    names = list(weights)
    cum, c = [], Fraction(0)
    for w in weights.values():
        c += Fraction(str(w))
        cum.append(c)
    for label, group in frame.groupby("stratum"):
        ids = sorted(group["cid"], key=lambda i: (ref_x(salt, i), i))
        n = len(ids)
        phi = Fraction(ref_x(salt, f"stratum:{label}"), 2**60)
        quotas = [math.floor(cc * n + phi) for cc in cum[:-1]] + [n]
        for r, cid in enumerate(ids):
            out[cid] = names[next(a for a, q in enumerate(quotas) if r < q)]
    return out


def doc_sql(tag: str) -> str:
    text = (ROOT / "docs" / "assignment.md").read_text()
    m = re.search(rf"<!-- sql:{tag} .*?-->\s*```sql\n(.*?)```", text, re.S)
    assert m, f"docs/assignment.md has no sql:{tag} block"
    return m.group(1)


def cohort_frame(n: int, seed: int = 0, n_strata: int = 3, start: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": np.arange(start, start + n, dtype="int64"),
        "tier": rng.choice(["short", "mid", "long"][:n_strata], n),
        "revenue_365d": rng.gamma(2.0, 50.0, n),
        "orders_total": rng.poisson(4, n),
    })


# ---- the formula ------------------------------------------------------------------------------
def test_hash_sql_equals_hashlib():
    con = duckdb.connect()
    assert con.execute("select ('0x'||substr(md5('abc:1'),1,15))::BIGINT").fetchone()[0] \
        == 574961237917149514 == ref_x("abc", "1")
    ids = [str(i) for i in range(0, 3000, 7)] + ["C-001", "é", "用户42", "a:b", ""]
    con.execute("CREATE TABLE ids (cid VARCHAR)")
    con.executemany("INSERT INTO ids VALUES (?)", [[i] for i in ids])
    rows = con.execute(f"SELECT cid, {hash_sql('salt α', 'cid')}, {unit_sql('salt α', 'cid')} "
                       "FROM ids").fetchall()
    got = {c: (x, u) for c, x, u in rows}
    assert len(got) == len(ids)
    for cid in ids:
        x, u = got[cid]
        assert x == ref_x("salt α", cid)
        assert u == ref_x("salt α", cid) / 2**60
        assert 0 <= u < 1


def test_thresholds_are_exact():
    # T_a = ceil(C_a 2^60): x < T_a exactly when x / 2^60 < C_a
    t = thresholds([0.4, 0.2, 0.2, 0.2])
    for c, ta in zip([0.4, 0.4 + 0.2, 0.4 + 0.2 + 0.2, 1.0], t):
        assert Fraction(ta - 1, 2**60) < Fraction(c) <= Fraction(ta, 2**60)


@pytest.mark.slow
def test_simple_mode_equals_hashlib_and_documented_sql():
    cohort = cohort_frame(20000, seed=1)
    design = Design.of(DOC_SALT, DOC_WEIGHTS, mode="simple", holdout_share=0.05)
    got = assign(cohort, design).frame.astype({"customer_id": str}).set_index("customer_id")["arm"]
    # independent Python: holdout first, then the first arm whose cumulative weight exceeds u
    ref = {str(i): ("holdout" if Fraction(ref_x("global-holdout", str(i)), 2**60) < Fraction("0.05")
                    else ref_simple(DOC_SALT, str(i), DOC_WEIGHTS))
           for i in cohort["customer_id"]}
    assert got.to_dict() == ref
    assert {simple_arm(DOC_SALT, i, list(DOC_WEIGHTS), list(DOC_WEIGHTS.values()))
            for i in range(50)} <= set(DOC_WEIGHTS)
    # the plain SQL of docs/assignment.md (DOUBLE u) gives the same arms
    con = duckdb.connect()
    con.register("cohort", cohort[["customer_id"]])
    doc = dict(con.execute(doc_sql("simple")).fetchall())
    assert doc == ref


def test_stratified_equals_reference_and_documented_sql():
    cohort = cohort_frame(6000, seed=2)
    design = Design.of(DOC_SALT, DOC_WEIGHTS, mode="stratified", strata=("tier",))
    got = assign(cohort, design).frame.astype({"customer_id": str})
    frame = pd.DataFrame({"cid": cohort["customer_id"].astype(str),
                          "stratum": "tier=" + cohort["tier"]})
    ref = ref_stratified(frame, DOC_SALT, DOC_WEIGHTS)
    assert dict(zip(got["customer_id"], got["arm"])) == ref
    con = duckdb.connect()
    con.register("cohort", cohort[["customer_id", "tier"]])
    doc = {cid: arm for cid, _s, arm in con.execute(doc_sql("stratified")).fetchall()}
    assert doc == ref
    # most customers get the arm simple mode would give them
    simple = {str(i): ref_simple(DOC_SALT, str(i), DOC_WEIGHTS) for i in cohort["customer_id"]}
    assert np.mean([simple[c] == a for c, a in ref.items()]) > 0.95


@pytest.mark.parametrize("mode", ["simple", "stratified"])
def test_same_arms_whatever_the_row_order(mode):
    cohort = cohort_frame(5000, seed=3)
    design = Design.of("order", {"c": 0.5, "t1": 0.3, "t2": 0.2}, mode=mode, strata=("tier",),
                       holdout_share=0.1, capacity={"t2": 600})
    a = assign(cohort, design).frame
    shuffled = cohort.sample(frac=1.0, random_state=7).reset_index(drop=True)
    b = assign(shuffled, design).frame
    pd.testing.assert_frame_equal(a, b)
    # string ids behave the same way
    text = cohort.assign(customer_id="C" + cohort["customer_id"].astype(str))
    c = assign(text, design).frame
    d = assign(text.sample(frac=1.0, random_state=3), design).frame
    pd.testing.assert_frame_equal(c, d)


def test_arm_shares_match_weights_over_many_salts():
    """SRM p-values of simple mode over 200 salts are uniform: rejection at 5% is about 5%."""
    weights = {"control": 0.4, "a": 0.3, "b": 0.2, "c": 0.1}
    design = Design.of("unused", weights, mode="simple")
    con = duckdb.connect()
    con.execute("CREATE TABLE salts AS SELECT 'salt-' || CAST(range AS VARCHAR) AS salt "
                "FROM range(200)")
    x = hash_sql(None, "CAST(i.range AS VARCHAR)", salt_sql="s.salt")
    rows = con.execute(f"""
        SELECT salt, arm, count(*) FROM (
            SELECT s.salt, {simple_case(design)} AS arm
            FROM (SELECT s.salt, {x} AS ui FROM salts s, range(3000) i) s)
        GROUP BY ALL""").fetchall()
    counts: dict[str, dict[str, int]] = {}
    for salt, arm, n in rows:
        counts.setdefault(salt, {})[arm] = n
    pvals = np.array([srm_test(c, weights).p_value for c in counts.values()])
    assert len(pvals) == 200
    rejected = (pvals < 0.05).mean()
    assert 0.01 <= rejected <= 0.10, rejected
    assert stats.kstest(pvals, "uniform").pvalue > 0.001
    pooled = {a: sum(c.get(a, 0) for c in counts.values()) / (200 * 3000) for a in weights}
    for a, w in weights.items():
        assert abs(pooled[a] - w) < 4 * math.sqrt(w * (1 - w) / 600000)


@pytest.mark.parametrize("weights", [
    {"control": 0.35, "a": 0.25, "b": 0.25, "c": 0.15},
    {"control": 0.3333333333, "a": 0.3333333333, "b": 0.3333333334},
    {"control": 0.5, "a": 0.5},
    {"control": 0.6, "zero": 0.0, "a": 0.4},
])
def test_stratified_exact_balance_per_stratum(weights):
    rng = np.random.default_rng(4)
    sizes = rng.integers(1, 1500, 12)
    cohort = pd.DataFrame({
        "customer_id": np.arange(sizes.sum()),
        "seg": np.repeat([f"s{i}" for i in range(12)], sizes),
    })
    design = Design.of("balance", weights, strata=("seg",), holdout_share=0.1)
    res = assign(cohort, design)
    f = res.frame[res.frame["arm"] != "holdout"]
    table = f.groupby(["stratum", "arm"]).size().unstack(fill_value=0)
    for stratum, row in table.iterrows():
        n = row.sum()
        for arm, w in weights.items():
            got = row.get(arm, 0)
            assert abs(got - w * n) < 1, (stratum, arm, got, w * n)
    assert "zero" not in set(f["arm"])
    # holdout is by its own hash, not balanced: about 10%
    share = (res.frame["arm"] == "holdout").mean()
    assert abs(share - 0.1) < 4 * math.sqrt(0.09 / len(cohort))


@pytest.mark.parametrize("mode", ["simple", "stratified"])
def test_capacity_respected_and_excess_goes_to_control(mode):
    cohort = cohort_frame(8000, seed=5)
    weights = {"control": 0.4, "coupon": 0.2, "content": 0.2, "advisor": 0.2}
    design = Design.of("cap", weights, mode=mode, strata=("tier",), capacity={"advisor": 700})
    res = assign(cohort, design)
    counts = res.frame["arm"].value_counts()
    assert counts["advisor"] == 700
    eff = res.allocation.effective_weights()
    assert eff["advisor"] <= 700 / 8000 + 1e-12
    assert eff["coupon"] == eff["content"] == 0.2      # other treatments keep their share
    assert abs(sum(eff.values()) - 1) < 1e-12
    assert abs(eff["control"] - (0.4 + 0.2 - eff["advisor"])) < 1e-12
    if mode == "stratified":
        # still balanced against the effective weights in every stratum
        for _, g in res.frame.groupby("stratum"):
            for arm, w in eff.items():
                assert abs((g["arm"] == arm).sum() - w * len(g)) < 1
    # capacity counts what earlier runs assigned: 650 advisors exist, only 50 more fit
    existing = pd.DataFrame({"customer_id": [f"old{i}" for i in range(650)], "arm": "advisor"})
    later = assign(cohort_frame(3000, seed=6, start=10**6), design, existing=existing)
    assert (later.frame["arm"] == "advisor").sum() == 50
    assert later.allocation.arms[3].existing == 650


def test_capacity_not_binding_changes_nothing():
    cohort = cohort_frame(3000, seed=8)
    free = Design.of("cap2", DOC_WEIGHTS, mode="simple")
    roomy = Design.of("cap2", DOC_WEIGHTS, mode="simple", capacity={"advisor": 10**6})
    pd.testing.assert_frame_equal(assign(cohort, free).frame, assign(cohort, roomy).frame)


def test_holdout_disjoint_and_shared_across_experiments():
    cohort = cohort_frame(10000, seed=9)
    a = assign(cohort, Design.of("exp-a", {"c": 0.5, "t": 0.5}, holdout_share=0.1,
                                 strata=("tier",))).frame
    b = assign(cohort, Design.of("exp-b", {"c": 0.2, "x": 0.4, "y": 0.4}, mode="simple",
                                 holdout_share=0.1)).frame
    other = assign(cohort, Design.of("exp-b", {"c": 0.2, "x": 0.4, "y": 0.4}, mode="simple",
                                     holdout_share=0.1, holdout_salt="another")).frame
    ha = set(a.loc[a["arm"] == "holdout", "customer_id"])
    hb = set(b.loc[b["arm"] == "holdout", "customer_id"])
    assert ha == hb and len(ha) > 0
    assert abs(len(ha) / len(cohort) - 0.1) < 0.015
    # every customer has exactly one label, so holdout customers are in no arm
    assert a["customer_id"].is_unique and len(a) == len(cohort)
    assert set(a.loc[a["customer_id"].isin(ha), "arm"]) == {"holdout"}
    ref = {i for i in cohort["customer_id"]
           if Fraction(ref_x("global-holdout", str(i)), 2**60) < Fraction("0.1")}
    assert ha == ref
    ho = set(other.loc[other["arm"] == "holdout", "customer_id"])
    assert len(ho & ha) < 0.3 * len(ha)


def test_late_joiners_assigned_among_themselves():
    design = Design.of("late", DOC_WEIGHTS, strata=("tier",), holdout_share=0.05)
    first = cohort_frame(4000, seed=10)
    joiners = cohort_frame(1000, seed=11, start=4000)
    a = assign(first, design).frame
    b = assign(pd.concat([first, joiners]), design, existing=a).frame.astype({"customer_id": str})
    assert set(b["customer_id"]) == {str(i) for i in joiners["customer_id"]}
    ref = ref_stratified(
        pd.DataFrame({"cid": joiners["customer_id"].astype(str),
                      "stratum": "tier=" + joiners["tier"]}).assign(
            keep=lambda d: [Fraction(ref_x("global-holdout", c), 2**60) >= Fraction("0.05")
                            for c in d["cid"]]).query("keep"),
        "late", DOC_WEIGHTS)
    got = dict(zip(b["customer_id"], b["arm"]))
    assert {c: got[c] for c in ref} == ref
    # simple mode: a late joiner gets exactly the arm the formula gives
    s = Design.of("late", DOC_WEIGHTS, mode="simple")
    late = assign(pd.concat([first, joiners]), s, existing=assign(first, s).frame).frame
    assert all(arm == ref_simple("late", str(cid), DOC_WEIGHTS)
               for cid, arm in zip(late["customer_id"], late["arm"]))


def test_bad_cohort_input():
    design = Design.of("bad", {"c": 0.5, "t": 0.5})
    dup = pd.DataFrame({"customer_id": [1, 2, 2, 3, 3, 3]})
    with pytest.raises(InputError, match=r"customer_id '3' appears 3 times \(2 ids are dup"):
        assign(dup, design)
    with pytest.raises(InputError, match="integers or text, not DOUBLE"):
        assign(pd.DataFrame({"customer_id": [1.0, 2.0]}), design)
    with pytest.raises(InputError, match="have no customer_id"):
        assign(pd.DataFrame({"customer_id": ["a", None]}), design)
    with pytest.raises(InputError, match="missing column 'tier'"):
        assign(pd.DataFrame({"customer_id": [1]}), Design.of("b", {"c": 0.5, "t": 0.5},
                                                             strata=("tier",)))


def test_checks_against_hand_computation():
    cohort = cohort_frame(4000, seed=12)
    design = Design.of("chk", {"control": 0.5, "t": 0.5}, strata=("tier",))
    res = assign(cohort, design)
    checks = check_assignment(res, cohort, design)
    merged = cohort.merge(res.frame)
    x_t = merged.loc[merged["arm"] == "t", "revenue_365d"]
    x_c = merged.loc[merged["arm"] == "control", "revenue_365d"]
    want = (x_t.mean() - x_c.mean()) / math.sqrt((x_t.var(ddof=1) + x_c.var(ddof=1)) / 2)
    got = next(c for c in checks if c.kind == "smd" and c.details["feature"] == "revenue_365d")
    assert got.statistic == pytest.approx(want, rel=1e-9)
    assert got.ok == (abs(want) <= 0.1)
    srm = {c.scope: c for c in checks if c.kind == "srm"}
    assert set(srm) == {"overall", "stratum:tier=long", "stratum:tier=mid", "stratum:tier=short"}
    counts = merged["arm"].value_counts().to_dict()
    obs = np.array([counts["control"], counts["t"]])
    chi2, p = stats.chisquare(obs, [obs.sum() / 2] * 2)
    assert srm["overall"].statistic == pytest.approx(chi2) and srm["overall"].p_value == \
        pytest.approx(p)
    assert smd(1.0, 0.0, 1.0, 0.0) == 0.0 and smd(2.0, 0.0, 1.0, 0.0) == math.inf
    n_count = [c for c in checks if c.kind == "count" and c.scope == "overall"]
    assert {c.details["arm"]: c.statistic for c in n_count} == {k: float(v)
                                                                for k, v in counts.items()}
