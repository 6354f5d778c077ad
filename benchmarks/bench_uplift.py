"""Benchmark uplift models: learner comparison on the simulated world (cross-fitted Qini and the
true value of the best-arm policy), the Hillstrom experiment, fit/score time and peak memory at
100k and 1M customers x 20 features x 3 treatments beside causalml's defaults, and scoring 10M
customers in batches.

    python benchmarks/bench_uplift.py [--quick]

Writes section `uplift` of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import WORK, record, run_measured  # noqa: E402

N_FEATURES = 20
ARMS = ["control", "t1", "t2", "t3"]


def make_data(n_rows: int, path: Path, seed: int = 0) -> None:
    """causalml's synthetic generator: n_rows customers over 4 arms, 20 features, to Parquet."""
    import numpy as np
    from causalml.dataset import make_uplift_classification

    if path.exists():
        return
    per_arm = n_rows // len(ARMS)
    df, feats = make_uplift_classification(
        n_samples=per_arm, treatment_name=ARMS, random_seed=seed,
        n_classification_features=11, n_classification_informative=6,
        n_classification_repeated=0,
        n_uplift_increase_dict={"t1": 2, "t2": 2, "t3": 3},
        n_uplift_decrease_dict={"t1": 0, "t2": 1, "t3": 1},
        delta_uplift_increase_dict={"t1": 0.02, "t2": 0.05, "t3": 0.08},
        delta_uplift_decrease_dict={"t1": 0.0, "t2": 0.01, "t3": 0.02},
        n_uplift_increase_mix_informative_dict={"t1": 1, "t2": 1, "t3": 1},
        n_uplift_decrease_mix_informative_dict={"t1": 0, "t2": 1, "t3": 1})
    feats = feats[:N_FEATURES]
    out = df[feats].astype("float32")
    out.columns = [f"f{i:02d}" for i in range(len(feats))]
    out["arm"] = df["treatment_group_key"].to_numpy()
    out["y"] = df["conversion"].to_numpy().astype("int8")
    out["customer_id"] = np.arange(len(out))
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_parquet(path, index=False)


FIT_CODE = r"""
import json, sys, time, warnings
import numpy as np, pandas as pd
warnings.filterwarnings("ignore")
path, learner = sys.argv[1], sys.argv[2]
df = pd.read_parquet(path)
feats = [c for c in df.columns if c.startswith("f")]
X, y, t = df[feats], df["y"].to_numpy(), df["arm"].to_numpy()
t0 = time.perf_counter()
if learner.startswith("causalml-"):
    # causalml with its documented usage: LightGBM at its defaults (n_jobs=2 on this machine),
    # or the uplift forest at its defaults (10 trees, depth 5)
    from lightgbm import LGBMClassifier, LGBMRegressor
    from causalml.inference.meta import BaseSClassifier, BaseTClassifier, BaseXClassifier
    from causalml.inference.tree import UpliftRandomForestClassifier
    kind = learner.split("-", 1)[1]
    Xn = X.to_numpy()
    if kind == "urf":
        m = UpliftRandomForestClassifier(control_name="control", n_jobs=2)
    elif kind == "x":
        m = BaseXClassifier(outcome_learner=LGBMClassifier(n_jobs=2, verbose=-1),
                            effect_learner=LGBMRegressor(n_jobs=2, verbose=-1), control_name="control")
    else:
        cls = {"s": BaseSClassifier, "t": BaseTClassifier}[kind]
        m = cls(learner=LGBMClassifier(n_jobs=2, verbose=-1), control_name="control")
    if kind == "x":
        p = {a: np.full(len(y), 0.5) for a in ["t1", "t2", "t3"]}
        m.fit(X=Xn, treatment=t, y=y, p=p)
        fit_s = time.perf_counter() - t0; t1 = time.perf_counter()
        m.predict(X=Xn, p={a: np.full(len(y), 0.5) for a in ["t1", "t2", "t3"]})
    else:
        m.fit(X=Xn, treatment=t, y=y)
        fit_s = time.perf_counter() - t0; t1 = time.perf_counter()
        m.predict(X=Xn) if kind != "urf" else m.predict(Xn)
else:
    from upliftlab.uplift import UpliftModel
    m = UpliftModel(learner=learner, n_jobs=2).fit(X, y, t, propensity={a: 0.25 for a in np.unique(t)})
    fit_s = time.perf_counter() - t0; t1 = time.perf_counter()
    m.predict_outcomes(X)
print(json.dumps({"fit_s": fit_s, "predict_s": time.perf_counter() - t1}))
"""

GEN_CODE = r"""
import sys
sys.path.insert(0, sys.argv[1])
from bench_uplift import make_data
from pathlib import Path
make_data(int(sys.argv[2]), Path(sys.argv[3]))
"""

SAVE_CODE = r"""
import sys
import pandas as pd
from upliftlab.uplift import UpliftModel, save_model
df = pd.read_parquet(sys.argv[1])
feats = [c for c in df.columns if c.startswith("f")]
model = UpliftModel(n_jobs=2).fit(df[feats], df["y"], df["arm"])
save_model(model, sys.argv[2])
"""


def ensure_data(n: int, path: Path) -> None:
    """Generate in a child process, so this (parent) process stays small (see main)."""
    if not path.exists():
        run_measured(GEN_CODE, str(HERE), str(n), str(path))


SCORE_CODE = r"""
import json, sys, time
from upliftlab.uplift import load_model
from upliftlab.uplift.io import score_file
m = load_model(sys.argv[1])
t0 = time.perf_counter()
n = score_file(m, sys.argv[2], sys.argv[3], batch_size=int(sys.argv[4]))
print(json.dumps({"rows": n, "score_s": time.perf_counter() - t0}))
"""


def bench_learners(sizes: list[int], learners: list[str], baselines: list[str],
                   skip: dict[str, int]) -> tuple[str, dict]:
    rows, raw = [], {}
    for n in sizes:
        path = WORK / f"uplift_{n}.parquet"
        ensure_data(n, path)
        for name in learners + baselines:
            if n > skip.get(name, 10**12):
                rows.append(f"| {n:,} | {name} | (skipped: too slow at this size) | | | |")
                continue
            r = run_measured(FIT_CODE, str(path), name)
            raw[f"{n}:{name}"] = r
            rows.append(f"| {n:,} | {name} | {r['fit_s']:.1f} | {r['predict_s']:.1f} | "
                        f"{r['seconds']:.1f} | {r['peak_mib']:.0f} |")
            print(rows[-1], flush=True)
    table = ("| customers | learner | fit s | predict s (all arms) | total s (incl. load) | "
             "peak RSS MiB |\n|---|---|---|---|---|---|\n" + "\n".join(rows))
    return table, raw


def bench_simulated(n_customers: int, folds: int, n_bootstrap: int) -> tuple[str, str]:
    import numpy as np

    from upliftlab.uplift import LEARNERS, compare_learners
    from upliftlab.uplift.simdata import policy_value, simulated_experiment

    e = simulated_experiment(n_customers, seed=3)
    prop = {a: 0.25 for a in np.unique(e.treatment)}
    comp = compare_learners(e.X, e.reactivated, e.treatment, learners=list(LEARNERS),
                            folds=folds, propensity=prop, n_bootstrap=n_bootstrap, n_jobs=2)
    lines = []
    summary = []
    for name, pred in comp.predictions.items():
        value, oracle = policy_value(pred, e.true_uplift)
        corr = np.mean([np.corrcoef(pred[a], e.true_uplift[a])[0, 1] for a in e.true_uplift])
        sub = comp.table[comp.table.learner == name]
        summary.append((name, sub.qini.mean(), value / oracle, corr, sub.fit_seconds.iloc[0],
                        sub.peak_rss_mib.iloc[0]))
        for _, r in sub.iterrows():
            lines.append(f"| {name} | {r.arm} | {r.qini:.3f} [{r.qini_low:.3f}, {r.qini_high:.3f}] "
                         f"| {r.auuc:.3f} [{r.auuc_low:.3f}, {r.auuc_high:.3f}] |")
    best = max(summary, key=lambda s: s[1])[0]
    best_policy = max(summary, key=lambda s: s[2])[0]
    head = (f"Simulated world, {len(e.X):,} dormant customers randomised over 4 arms (seed 3), "
            f"reactivation within 60 days; {folds}-fold cross-fitted, {n_bootstrap} bootstrap "
            "resamples. Qini/AUUC with causalml's normalisation (random: Qini 0, AUUC 0.5). "
            "Policy = best predicted arm if its uplift > 0, valued with the simulator's true "
            "uplift, as a share of the oracle policy's value.\n\n"
            "| learner | mean Qini | policy value / oracle | corr(pred, true uplift) | "
            "cross-fit s | peak RSS above start, MiB* |\n|---|---|---|---|---|---|\n"
            + "\n".join(f"| {s[0]} | {s[1]:.3f} | {s[2]:.0%} | {s[3]:.2f} | {s[4]:.0f} | {s[5]:.0f} |"
                        for s in summary)
            + f"\n\nBest mean Qini: **{best}**; best policy value: **{best_policy}**. "
            "*In-process, sampled from /proc: memory freed by an earlier learner is reused, so "
            "later rows understate; the per-process figures above are the honest ones.\n\n"
            "| learner | arm | Qini [95% CI] | AUUC [95% CI] |\n|---|---|---|---|\n"
            + "\n".join(lines))
    return head, f"{best_policy}** (true policy value); best mean cross-fitted Qini: **{best}"


def bench_hillstrom(folds: int, n_bootstrap: int) -> str:
    import numpy as np
    import pandas as pd

    sys.path.insert(0, str(HERE.parent / "tests"))
    from conftest import HILLSTROM

    from upliftlab.uplift import compare_learners

    if not HILLSTROM.exists():
        return f"Hillstrom data not found at {HILLSTROM}: skipped."
    df = pd.read_csv(HILLSTROM)
    feats = ["recency", "history", "mens", "womens", "zip_code", "newbie", "channel"]
    comp = compare_learners(df[feats], df["visit"].to_numpy(), df["segment"].to_numpy(),
                            control="No E-Mail", folds=folds, n_bootstrap=n_bootstrap, n_jobs=2,
                            propensity={a: 1 / 3 for a in df["segment"].unique()})
    t = comp.table
    return ("Hillstrom e-mail experiment (64,000 customers; outcome `visit`; each e-mail vs "
            f"No E-Mail; features {', '.join(feats)}), {folds}-fold cross-fitted (out of fold), "
            f"{n_bootstrap} bootstrap resamples, causalml's normalisation.\n\n"
            "| learner | arm | Qini [95% CI] | AUUC [95% CI] | cross-fit s |\n|---|---|---|---|---|\n"
            + "\n".join(f"| {r.learner} | {r.arm} | {r.qini:.3f} [{r.qini_low:.3f}, {r.qini_high:.3f}] "
                        f"| {r.auuc:.3f} [{r.auuc_low:.3f}, {r.auuc_high:.3f}] | {r.fit_seconds:.0f} |"
                        for r in t.itertuples()))


def bench_scoring(n_rows: int, batch: int) -> str:
    from upliftlab.uplift import read_metadata

    src = WORK / f"uplift_{100_000}.parquet"
    ensure_data(100_000, src)
    mdir = WORK / "uplift_model"
    run_measured(SAVE_CODE, str(src), str(mdir))
    meta = read_metadata(mdir)
    feats = [f["name"] for f in meta["features"]]
    big = WORK / f"uplift_score_{n_rows}.parquet"
    if not big.exists():
        cols = ", ".join(f"CAST(random() * 4 - 2 AS FLOAT) AS {f}" for f in feats)
        run_measured(
            "import duckdb, sys\ncon = duckdb.connect()\n"
            "con.execute('SET preserve_insertion_order = false')\n"
            f"con.execute(\"COPY (SELECT range AS customer_id, {cols} FROM range({n_rows})) "
            f"TO '{big}' (FORMAT parquet)\")\n")
    out = WORK / "uplift_scores.parquet"
    r = run_measured(SCORE_CODE, str(mdir), str(big), str(out), str(batch))
    return (f"Scoring {r['rows']:,} customers x {len(feats)} features with the default learner "
            f"({meta['learner']}, 3 arms) in batches of {batch:,} (DuckDB -> Arrow batches -> "
            f"Parquet): {r['score_s']:.0f} s, peak RSS {r['peak_mib']:.0f} MiB "
            f"(target < 2 GiB).")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    from upliftlab.uplift import DEFAULT_LEARNER, LEARNERS

    if args.quick:
        sim_n, folds, boot, sizes, n_score = 30_000, 2, 50, [20_000], 200_000
        skip = {}
    else:
        sim_n, folds, boot, sizes, n_score = 150_000, 3, 200, [100_000, 1_000_000], 10_000_000
        skip = {"urf": 100_000, "causalml-urf": 100_000}  # minutes per fit at 1M rows
    t0 = time.perf_counter()
    parts: dict[str, str] = {}

    def write(final: bool = False) -> None:
        """Record what is measured so far (a long run that is stopped still leaves results)."""
        head = (f"### Uplift models{' (quick run)' if args.quick else ''}"
                f"{'' if final else ' (partial: run in progress or stopped)'}\n\n"
                f"Learner of a bare `UpliftModel()`: **{DEFAULT_LEARNER}** with LightGBM's own "
                "defaults; `upliftlab model fit` chooses the learner and base capacity per arm "
                "by cross-fitted policy value (`upliftlab.uplift.select`; section "
                "`causalml_synth` compares it with causalml's learners)"
                + (". This run, on the simulated world: best learner **"
                   f"{parts['best']}**" if "best" in parts else "") + ".\n\n")
        body = "\n\n".join(parts[k] for k in ("fit", "target", "scoring", "sim", "hill")
                             if parts.get(k))
        record("uplift", head + body + f"\n\nBenchmark time {time.perf_counter() - t0:.0f} s.")

    # child-process measurements first: a child started by a big parent inherits the parent's
    # peak RSS (Linux keeps ru_maxrss across fork+exec), so the parent must still be small
    fit_head = (f"#### Fit and score, causalml synthetic data ({N_FEATURES} features, 3 "
                "treatments + control, equal arms)\n\nEach cell is a fresh process "
                "(`run_measured`); LightGBM n_jobs=2. `causalml-*` = causalml 0.18 with LightGBM "
                "at its default parameters / the uplift forest at its defaults, same data.\n\n")
    order = [DEFAULT_LEARNER] + [x for x in LEARNERS if x != DEFAULT_LEARNER]
    raw: dict = {}
    for i, n in enumerate(sizes):
        if i == 1:  # the scoring target before the long 1M fits
            parts["scoring"] = "#### Scoring in batches\n\n" + bench_scoring(n_score, 200_000)
            write()
        table, r = bench_learners([n], order, ["causalml-s", "causalml-t", "causalml-x",
                                               "causalml-urf"], skip)
        raw.update(r)
        parts["fit"] = (parts.get("fit", fit_head) + ("" if n == sizes[0] else "\n\n")
                        + table)
        key = f"{n}:{DEFAULT_LEARNER}"
        if key in raw:
            parts["target"] = (f"Default learner `{DEFAULT_LEARNER}` at {n:,} x {N_FEATURES} x 3: "
                               f"fit {raw[key]['fit_s']:.0f} s (target < 120 s at 1M).")
        write()
    if "scoring" not in parts:
        parts["scoring"] = "#### Scoring in batches\n\n" + bench_scoring(n_score, 200_000)
        write()
    sim, best = bench_simulated(sim_n, folds, boot)
    parts["sim"], parts["best"] = "#### Learner comparison on the simulated world\n\n" + sim, best
    write()
    parts["hill"] = "#### Hillstrom\n\n" + bench_hillstrom(folds, boot)
    write(final=True)

if __name__ == "__main__":
    main()
