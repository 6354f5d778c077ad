"""The written plan's share of the oracle on the project's simulator, by experiment size: the
default model (`model fit`'s per-arm selection, out of fold), the feature ceiling (LightGBM
taught the TRUE effects on an independent world: about the best the cohort's features allow,
tests/test_policy_plan.py `feature_ceiling_scores`) and the true effects as scores.

    python benchmarks/bench_plan_oracle.py [--customers 60000 150000 300000]

The setting of tests/test_policy_plan.py (simulator seed 5, costs coupon 0.10 + 10 per
conversion, content 0.02, advisor 4.00; 5% exploration; the plan held under the one-sided 95%
bound of its off-policy cost): budget 3,000 and advisor capacity 400 per 33,000 dormant
customers, scaled with the population (the same problem per customer). Value = the written
plan's true incremental reactivations / the LP on the true effects (same budget, capacity).
Writes section `plan_oracle` of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from _common import machine, record  # noqa: E402

COSTS = {"coupon": (0.10, 10.0), "content": (0.02, 0.0), "advisor": (4.0, 0.0)}


def shares(n_customers: int) -> dict:
    import pandas as pd

    import test_policy_plan as T
    from upliftlab.policy.io import Scores
    from upliftlab.uplift.simdata import simulated_experiment

    e = simulated_experiment(n_customers, seed=5)
    t0 = time.perf_counter()
    model = T.fitted_scores(e.X, e.treatment, e.reactivated, e.customer_id, "control")
    fit = time.perf_counter() - t0
    arms = tuple(model.arms)
    P = e.true_p[["control", *arms]].to_numpy()
    truth = Scores(e.customer_id, P[:, 0], {a: P[:, j + 1] - P[:, 0] for j, a in enumerate(arms)},
                   "truth")
    exp = pd.DataFrame({"customer_id": e.customer_id, "arm": e.treatment,
                        "reactivated": e.reactivated.astype(int)})
    f = len(P) / 33_000
    setting = dict(budget=round(3_000.0 * f), capacity={"advisor": int(400 * f)}, costs=COSTS)
    out = {"dormant": len(P), "budget": setting["budget"],
           "capacity": setting["capacity"]["advisor"], "fit_seconds": fit}
    ceiling = T.feature_ceiling_scores(e.X, e.customer_id, arms)
    for name, scores in (("model", model), ("ceiling", ceiling), ("truth", truth)):
        # strict=False: a plan whose true cost lands above the budget (the 95% bound's 5%)
        # is printed, not an error, so that every size is recorded
        out[name] = T._check_world((scores, P, exp, setting, arms), "customer_id", "arm",
                                   "reactivated", min_share=0.0, strict=False)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--customers", type=int, nargs="+", default=[60_000, 150_000, 300_000])
    args = ap.parse_args()
    rows = []
    before = f"{os.getloadavg()[0]:.1f}"
    for n in args.customers:
        r = shares(n)
        print(n, r, flush=True)
        rows.append(f"| {n:,} | {r['dormant']:,} | {r['budget']:,} | {r['capacity']:,} | "
                    f"{100 * r['model']:.1f}% | {100 * r['ceiling']:.1f}% | "
                    f"{100 * r['model'] / r['ceiling']:.0f}% | {100 * r['truth']:.1f}% | "
                    f"{r['fit_seconds']:.0f} |")
    after = f"{os.getloadavg()[0]:.1f}"
    record("plan_oracle", (
        "### The written plan's share of the oracle on the simulator, by experiment size\n\n"
        f"Machine: {machine()}, shared (1-minute load average {before} before, {after} after). "
        "`python benchmarks/bench_plan_oracle.py`: the setting of "
        "tests/test_policy_plan.py, budget and advisor capacity scaled with the dormant "
        "population; 5% exploration; the plan held under the one-sided 95% bound of its "
        "off-policy cost. Issue 9 asks >= 85% with the default model. Feature ceiling: "
        "LightGBM taught the TRUE effects of 300,000 simulated customers of another world "
        "(seed 6): about the best any learner can do from the cohort's features, which only "
        "proxy the latent drivers the oracle knows.\n\n"
        "| simulated customers | dormant (randomised) | budget | advisor capacity | default "
        "model | feature ceiling | model / ceiling | true effects as scores | model fit s |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        + "\n".join(rows)))


if __name__ == "__main__":
    main()
