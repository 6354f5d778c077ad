"""The long run on the simulator: its continuation agrees with its exact truth, and the long-run
intervals (RMST difference of the time until dormant again, 365-day revenue lift) cover the
truth in about 95% of seeded repetitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import upliftlab as ul
from upliftlab.errors import InputError
from upliftlab.lifecycle_sim import (customer_truth, long_run_truth, redormancy_rmst,
                                     respond_long_run)
from upliftlab.longrun import frame, long_run


@pytest.fixture(scope="module")
def world():
    return ul.simulate_world(20_000, seed=3)


@pytest.fixture(scope="module")
def cohort(world):
    rec = world.truth["recency_days"].to_numpy()
    return world.truth["customer_id"].to_numpy()[(rec >= 90) & (rec < 365)]


@pytest.mark.slow
def test_continuation_matches_its_exact_truth(world, cohort):
    """Averaged over seeds, revenue and the share back by day 365 and the window's reactivation
    rate equal the closed-form truth; the window's rate is the world's p_arm."""
    t0 = np.datetime64("2026-01-05")
    for arm in ("control", "coupon", "advisor"):
        a = pd.DataFrame({"customer_id": cohort, "arm": arm})
        runs = [respond_long_run(world, a, seed=s) for s in range(8)]
        truth = long_run_truth(world, cohort, 365)[arm]
        rev = np.mean([r["amount"].sum() / len(cohort) for r in runs])
        back = np.mean([r["customer_id"].nunique() / len(cohort) for r in runs])
        win = np.mean([r.loc[r["ts"] < t0 + np.timedelta64(60, "D"), "customer_id"].nunique()
                       / len(cohort) for r in runs])
        n = 8 * len(cohort)
        assert abs(back - truth.back) < 4 * np.sqrt(truth.back * (1 - truth.back) / n)
        assert rev == pytest.approx(truth.revenue, rel=0.06)
        p = world.truth[f"p_{arm}"].to_numpy()[cohort - 1].mean()
        assert customer_truth(world, cohort, arm, 60)["back"].mean() == pytest.approx(p)
        assert abs(win - p) < 4 * np.sqrt(p * (1 - p) / n)
    # the lifecycle differs by arm: an advisor's customers stay longer than a coupon's
    assert redormancy_rmst("advisor", 180) > redormancy_rmst("control", 180) \
        > redormancy_rmst("coupon", 180)


def test_horizon_longer_than_the_data():
    import datetime as dt

    start, end = dt.date(2026, 1, 5), dt.date(2026, 9, 30)
    fr = frame(start, end, window_days=60)
    assert fr.horizons == (90, 180) and fr.skipped == (365,)
    with pytest.raises(InputError, match="horizon 365 days needs data until 2027-01-05"):
        frame(start, end, window_days=60, horizons=[90, 365], strict=True)
    with pytest.raises(InputError, match="no data after the campaign start"):
        frame(start, start, window_days=60)


def test_uncovered_horizon_is_stated(world, cohort):
    a = pd.DataFrame({"customer_id": cohort, "arm": np.where(cohort % 2 == 0, "control",
                                                             "advisor")})
    tx = respond_long_run(world, a, seed=1, horizon_days=200)
    r = long_run(a, tx, start="2026-01-05", end="2026-07-24", window_days=60).to_dict()
    assert r["horizons"] == [90, 180] and r["horizons_not_covered"] == [365]
    assert any("365-day horizon (needs data until 2027-01-05)" in n for n in r["notes"])
    assert r["censored_at"] == "2026-07-24"
    metrics = {c["metric"] for c in r["analysis"]["comparisons"]}
    assert "revenue_180" in metrics and "revenue_365" not in metrics


@pytest.mark.slow
def test_long_run_intervals_cover_the_truth(world, cohort):
    tau = 180
    rmst_truth = redormancy_rmst("advisor", tau) - redormancy_rmst("control", tau)
    truth = long_run_truth(world, cohort, 365)
    rev_truth = truth["advisor"].revenue - truth["control"].revenue
    hist = world.transactions[world.transactions["customer_id"].isin(cohort)]
    reps, hit_rmst, hit_rev = 100, 0, 0
    for rep in range(reps):
        rng = np.random.default_rng(rep)
        a = pd.DataFrame({"customer_id": cohort,
                          "arm": rng.choice(["control", "advisor"], len(cohort))})
        tx = respond_long_run(world, a, seed=rep)
        r = long_run(a, pd.concat([hist, tx]), start="2026-01-05", end="2027-01-05",
                     window_days=60, horizons=[365], tau_days=tau).to_dict()
        s = r["survival"]["dormant_again"]["comparisons"][0]
        hit_rmst += s["ci_low"] <= rmst_truth <= s["ci_high"]
        c = next(c for c in r["analysis"]["comparisons"] if c["metric"] == "revenue_365")
        hit_rev += c["ci_low_unadjusted"] <= rev_truth <= c["ci_high_unadjusted"]
    assert 0.89 <= hit_rmst / reps <= 0.995
    assert 0.89 <= hit_rev / reps <= 0.995


@pytest.mark.slow
def test_readme_long_run_block_runs(capsys):
    """The README's long-run Python block runs as written."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S)
                 if "long_run" in b)
    exec(compile(block, "README.md", "exec"), {"__name__": "__readme__"})
    assert "advisor stays active" in capsys.readouterr().out
