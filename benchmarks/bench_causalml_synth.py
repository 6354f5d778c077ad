"""Benchmark the default uplift model against every causalml learner with its defaults, on
causalml's own synthetic generator: the best-arm policy's true value as a share of the oracle.

    python benchmarks/bench_causalml_synth.py [--rows 60000 300000] [--quick]

Data: `causalml.dataset.make_uplift_classification` with its defaults (3 treatments + control,
19 features), `rows` customers in total. The generator draws, for every customer and every
treatment, a 0/1 "uplift" label; a customer's true effect of treatment a is
clip(Y0 + U_a, 0, 1) - Y0 = U_a (1 - Y0). The generator does not return U_a for the arms a
customer was not given, so they are captured by recording the generator's calls to
`make_classification` (the random stream is unchanged). Same data and the same 50/50
train/test split for every learner; policy = the best predicted arm if its uplift > 0, valued
on the test half with the true effects, as a share of the oracle (the best true arm if > 0).

"default" is what `upliftlab model fit` does: the mean of the two candidates with the highest
cross-fitted budgeted value, or per arm its best where significantly better
(`upliftlab.uplift.select`, default candidates), its uplift
calibrated out of fold toward the arm's average effect, refitted on the training half; the
candidates' cross-fits run in 2 worker processes, every LightGBM model on one thread.
causalml learners: S, T, X, R and DR classifiers with LightGBM at its default parameters but
one thread (n_jobs=1: LightGBM's threads spin-wait on this shared machine, 2 threads per model
measured 10-20x slower, which would make the baselines look slower than they are), and the
uplift random forest / uplift tree at their defaults. The 1-minute load average (`uptime`)
is recorded before and after each size.

Writes section `causalml_synth` of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine, record  # noqa: E402

ARMS = ["control", "treatment1", "treatment2", "treatment3"]


def synthetic(rows: int, seed: int = 20190101):
    """(X, arm labels, y, true effect per treatment (n x 3)) from causalml's generator."""
    import causalml.dataset.classification as gen

    calls = []
    real = gen.make_classification

    def recording(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(out)
        return out

    gen.make_classification = recording
    try:
        df, names = gen.make_uplift_classification(n_samples=rows // len(ARMS),
                                                   treatment_name=ARMS, random_seed=seed)
    finally:
        gen.make_classification = real
    y0 = calls[0][1]                                     # the base label, every customer
    ups = [c[1] for c in calls[1:1 + len(ARMS) - 1]]     # one uplift label per treatment
    tau = np.column_stack([u * (1 - y0) for u in ups]).astype(float)
    return df[names], df["treatment_group_key"].to_numpy(), df["conversion"].to_numpy(), tau


def share_of_oracle(pred: np.ndarray, tau: np.ndarray) -> float:
    best = pred.argmax(1)
    chosen = np.where(pred.max(1) > 0, tau[np.arange(len(tau)), best], 0.0)
    return float(chosen.sum() / np.maximum(tau.max(1), 0).sum())


def causalml_learner(kind: str, Xtr, ttr, ytr, Xte) -> np.ndarray:
    """Predicted uplift (n_test x 3) of a causalml learner at its defaults."""
    from causalml.inference.meta import (BaseDRClassifier, BaseRClassifier, BaseSClassifier,
                                         BaseTClassifier, BaseXClassifier)
    from causalml.inference.tree import UpliftRandomForestClassifier, UpliftTreeClassifier
    from lightgbm import LGBMClassifier, LGBMRegressor

    clf = lambda: LGBMClassifier(n_jobs=1, verbose=-1)  # noqa: E731
    reg = lambda: LGBMRegressor(n_jobs=1, verbose=-1)  # noqa: E731
    treated = [a for a in ARMS if a != "control"]
    if kind in ("urf", "tree"):
        m = (UpliftRandomForestClassifier(control_name="control", n_jobs=2) if kind == "urf"
             else UpliftTreeClassifier(control_name="control"))
        m.fit(Xtr, treatment=ttr, y=ytr)
        full = m.predict(Xte, full_output=True) if kind == "urf" else None
        if full is None:
            p = m.predict(Xte)
            groups = m.classes_
            return np.column_stack([p[:, groups.index(a)] - p[:, groups.index("control")]
                                    for a in treated])
        return np.column_stack([full[a].to_numpy() - full["control"].to_numpy()
                                for a in treated])
    p_tr = {a: np.full(len(ytr), 0.5) for a in treated}
    p_te = {a: np.full(len(Xte), 0.5) for a in treated}
    if kind == "s":
        m = BaseSClassifier(learner=clf(), control_name="control")
    elif kind == "t":
        m = BaseTClassifier(learner=clf(), control_name="control")
    elif kind == "x":
        m = BaseXClassifier(outcome_learner=clf(), effect_learner=reg(),
                            control_name="control")
    elif kind == "r":
        m = BaseRClassifier(outcome_learner=clf(), effect_learner=reg(),
                            control_name="control")
    else:
        m = BaseDRClassifier(learner=clf(), control_name="control")
    if kind == "s" or kind == "t":
        m.fit(X=Xtr, treatment=ttr, y=ytr)
        out = m.predict(X=Xte)
    else:
        m.fit(X=Xtr, treatment=ttr, y=ytr, p=p_tr)
        out = m.predict(X=Xte, p=p_te) if kind != "dr" else m.predict(X=Xte)
    out = np.asarray(out, dtype=float)
    # causalml orders the columns by its sorted treatment names, which are ARMS[1:] here
    return out


def default_model(Xtr, ttr, ytr, Xte, n_jobs: int = 2, folds: int = 3
                  ) -> tuple[np.ndarray, dict, dict]:
    """What `model fit` does (selection in `n_jobs` processes, refit at one thread): the test
    half's uplift, the learner per arm, and the seconds of selection and refit."""
    from upliftlab.uplift import UpliftModel
    from upliftlab.uplift.select import select_per_arm

    prop = {a: 0.25 for a in ARMS}
    t0 = time.perf_counter()
    sel = select_per_arm(Xtr, ytr, ttr, control="control", propensity=prop, n_jobs=n_jobs,
                         folds=folds)
    t1 = time.perf_counter()
    model = UpliftModel(control="control", learner=sel.chosen, n_jobs=1,
                        calibration=sel.calibration_map()).fit(Xtr, ytr, ttr, propensity=prop)
    t2 = time.perf_counter()
    up = model.predict(Xte)[ARMS[1:]].to_numpy()
    return up, sel.chosen, {"selection": t1 - t0, "refit": t2 - t1}


def load() -> str:
    """The 1-minute load average (other work on the machine while measuring)."""
    import os

    return f"{os.getloadavg()[0]:.1f}"


def run(rows: int, learners: list[str], seed: int = 0) -> tuple[list[tuple], dict]:
    import pandas as pd

    X, t, y, tau = synthetic(rows)
    X = pd.DataFrame(X).reset_index(drop=True).astype("float64")
    rng = np.random.default_rng(seed)
    train = rng.random(len(y)) < 0.5
    Xtr, Xte = X[train].reset_index(drop=True), X[~train].reset_index(drop=True)
    results = []
    t0 = time.perf_counter()
    up, chosen, parts = default_model(Xtr, t[train], y[train], Xte)
    results.append(("upliftlab default (per-arm selection)", share_of_oracle(up, tau[~train]),
                    time.perf_counter() - t0))
    print(results[-1], chosen, parts, flush=True)
    for kind in learners:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            up = causalml_learner(kind, Xtr.to_numpy(), t[train], y[train], Xte.to_numpy())
        results.append((f"causalml {kind}", share_of_oracle(up, tau[~train]),
                        time.perf_counter() - t0))
        print(results[-1], flush=True)
    return results, chosen, parts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, nargs="+", default=[60_000, 300_000])
    ap.add_argument("--learners", default="s,t,x,r,dr,urf,tree",
                    help="causalml learners to run beside the default")
    ap.add_argument("--quick", action="store_true", help="12k rows, S/T only (smoke run)")
    ap.add_argument("--fit-time", type=int, metavar="ROWS",
                    help="instead: time what `upliftlab model fit` does at its defaults on ROWS "
                         "customers (section uplift_fit_time)")
    ap.add_argument("--n-jobs", type=int, default=2, help="with --fit-time: worker processes")
    args = ap.parse_args()
    if args.fit_time:
        record("uplift_fit_time", fit_time(args.fit_time, args.n_jobs))
        return
    sizes = [12_000] if args.quick else args.rows
    learners = ["s", "t"] if args.quick else args.learners.split(",")
    parts = []
    for n in sizes:
        before = load()
        res, chosen, secs = run(n, [k for k in learners
                                    if not (k in ("urf", "tree") and n > 100_000)])
        after = load()
        best_cml = max(r[1] for r in res[1:])
        ok = res[0][1] >= best_cml - 1e-12
        table = ("| model | share of the oracle's true value | seconds (fit + predict) |\n"
                 "|---|---:|---:|\n" + "\n".join(f"| {r[0]} | {100 * r[1]:.1f}% | {r[2]:.0f} |"
                                                  for r in res))
        parts.append(f"**{n:,} rows** (train {n // 2:,} / test {n // 2:,}); the default chose "
                     f"{', '.join(f'{a} {c}' for a, c in chosen.items())}. Default at least "
                     f"as good as the best causalml learner: **{'yes' if ok else 'NO'}** "
                     f"({100 * res[0][1]:.2f}% vs {100 * best_cml:.2f}%). The default's "
                     f"time: selection ({n_candidates()} candidates x 3 folds) {secs['selection']:.0f} s + "
                     f"refit {secs['refit']:.0f} s on {n // 2:,} training rows. 1-minute load "
                     f"average {before} before, {after} after.\n\n" + table)
        skipped = [k for k in learners if k in ("urf", "tree") and n > 100_000]
        if skipped:
            parts[-1] += (f"\n\n(causalml {', '.join(skipped)} skipped above 100k rows: tens of "
                          "minutes per fit here.)")
        record("causalml_synth", _head(args.quick) + "\n\n".join(parts))


def n_candidates() -> int:
    from upliftlab.uplift.select import candidates

    return len(candidates())


def fit_time(rows: int, n_jobs: int) -> str:
    """`fit_and_save` (what `upliftlab model fit` runs: the default candidates, 3 folds, 200
    bootstrap resamples, selection, calibration, refit, the model folder) on `rows` customers,
    beside causalml's S-learner (LightGBM defaults, one thread) fitted once on the same rows."""
    import tempfile

    import pandas as pd

    from upliftlab.uplift.workflow import fit_and_save

    X, t, y, _ = synthetic(rows)
    X = pd.DataFrame(X).reset_index(drop=True).astype("float64")
    before = load()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        fit = fit_and_save(X, y, t, control="control", outcome="binary", out=Path(tmp) / "m",
                           propensity={a: 0.25 for a in ARMS}, n_jobs=n_jobs, folds=3)
    ours = time.perf_counter() - t0
    mid = load()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        causalml_learner("s", X.to_numpy(), t, y, X.to_numpy()[:10])
    base = time.perf_counter() - t0
    after = load()
    n_cands = fit.table.learner.nunique()
    return (f"### `model fit` at its defaults: {len(y):,} customers x {X.shape[1]} features x "
            f"3 treatments + control\n\nMachine: {machine()}, shared (1-minute load average "
            f"{before} before, {mid} between, {after} after: timings are noisy). `python "
            f"benchmarks/bench_causalml_synth.py --fit-time {rows} --n-jobs {n_jobs}`, at "
            f"niceness {os.nice(0)}.\n\n"
            "| what | seconds |\n|---|---:|\n"
            f"| upliftlab `fit_and_save` ({n_cands} options incl. the ensembles, 3 folds, "
            f"{n_jobs} worker processes x 1 LightGBM thread, 200 bootstrap resamples, refit, "
            f"model folder; chose {fit.chosen}) | {ours:.0f} |\n"
            f"| causalml S-learner, LightGBM defaults (1 thread), one fit, same rows | "
            f"{base:.0f} |\n\nBefore the cross-fits ran as single-threaded jobs in worker "
            "processes (LightGBM at 2 threads per model, whose threads spin-wait on a busy "
            "machine) the same selection took 1,951 s on 30,000 rows (this file's "
            "`causalml_synth` section, previous run), and `model fit` with 5 folds 487 s on "
            "these 100,000 rows at load 12-14 (processes already, 5 folds: 4 training sets' "
            "worth of rows per candidate against 2 with 3 folds).\n")


def _head(quick: bool) -> str:
    return (f"### Uplift models on causalml's synthetic generator{' (quick run)' if quick else ''}"
            f"\n\nMachine: {machine()} (shared with other work while measured: timings are "
            "noisy, the shares are what matter). `make_uplift_classification` defaults (3 "
            "treatments, 19 features); true per-arm effects captured from the generator; "
            "50/50 train/test split, the same for every model; best-arm policy valued on the "
            "test half with the true effects. `python benchmarks/bench_causalml_synth.py`.\n\n")


if __name__ == "__main__":
    main()
