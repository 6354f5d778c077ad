"""Choosing the model by what the campaign earns: per treatment arm, the learner and the
capacity of its base models with the highest cross-fitted doubly robust budgeted value.

STATS-NOTES "Choosing a learner by what the policy earns". Every candidate ("s/small",
"glm/small", ...) is cross-fitted on the same folds. The doubly robust scores
Gamma_ia = mu_a(x_i) + 1{A_i = a} (Y_i - mu_a(x_i)) / e_a use one common nuisance mu (the mean
of all candidates' out-of-fold outcome predictions, so that no candidate is judged by its own
model alone), and the design's propensities e. A candidate's **budgeted value** for arm a is what a
budget buys with its ranking: the mean, over budgets that treat 5%, 10%, ..., 100% of the
customers with arm a (those the candidate ranks highest), of the doubly robust gain of those
customers (Gamma_ia - Gamma_i0) over treating as many customers at random. It is the Qini area
of the doubly robust uplift curve in incremental outcomes per customer of the experiment:
unnormalised (it does not explode when the arm's overall effect is near zero), linear in the
per-customer terms (so, given the rankings, its standard error and paired comparisons are
sums over customers), and it judges the ranking, which is what a budget or a capacity uses,
where "treat wherever the predicted uplift > 0" (`policy_value`, also reported) judges only
the sign. The budgets are weighted equally: `model fit` does not know the campaign's budget or
capacities. The model is the mean of the two candidates with the highest budgeted value
summed over the arms, or per arm its best option when that beats the mean of the two by more
than its paired 95% interval (a guard against noise, not a formal test: the per-arm option is
itself chosen on these data; why two: see `select_per_arm`). An arm whose average effect (the
mean of Gamma_ia - Gamma_i0) cannot be told from zero says so.

The chosen uplift is then calibrated per arm toward the arm's average effect (`calibrate`):
the best linear predictor of Gamma_ia - Gamma_i0 from the out-of-fold uplift (Chernozhukov,
Demirer, Duflo and Fernandez-Val 2018, "BLP"), its slope kept in [0, 1]. A model whose
ranking carries no signal out of fold (slope ~ 0) falls back to the arm's average effect; a
noisy one is shrunk toward it, so that a budget split across arms does not chase noise.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from upliftlab.errors import InputError

DEFAULT_LEARNERS = ("s", "t", "x", "glm")
DEFAULT_BASE_MODELS = ("small", "large")
# the budgets of the budgeted value: treating 5%, 10%, ..., 100% of the customers with an arm
BUDGET_SHARES = np.arange(1, 21) / 20


@dataclass(frozen=True)
class Selection:
    """Per arm the chosen candidate, the table of every candidate's value, and the out-of-fold
    predictions of the chosen combination (uplift per arm, outcomes control first)."""

    chosen: dict[str, str]
    table: pd.DataFrame                 # candidate x arm: policy value with interval, chosen
    effects: pd.DataFrame               # arm: DR average effect with interval, distinguishable
    uplift: pd.DataFrame                # out of fold, the chosen candidate per arm
    outcomes: pd.DataFrame              # out of fold, control first (base from `base_from`)
    fold: np.ndarray
    base_from: str
    predictions: dict[str, pd.DataFrame] = field(default_factory=dict)
    rule: pd.DataFrame | None = None    # the best-arm rule of each option, valued (chooses)
    calibration: pd.DataFrame | None = None  # per arm: ate, center, beta (+ se), slope used
    raw_uplift: pd.DataFrame | None = None   # out of fold, the chosen candidate, uncalibrated

    def calibration_map(self) -> dict[str, dict[str, float]] | None:
        """Per arm {ate, center, slope}: what `UpliftModel(calibration=...)` applies."""
        if self.calibration is None:
            return None
        return {str(r.arm): {"ate": float(r.ate), "center": float(r.center),
                             "slope": float(r.slope)} for r in self.calibration.itertuples()}

    def reasons(self) -> dict[str, str]:
        """Per arm, one line saying which candidate it uses and why."""
        out = {}
        win = self.rule[self.rule.chosen].iloc[0] if self.rule is not None else None
        per_arm = None if self.rule is None else \
            self.rule.set_index("option").loc["per arm, as chosen for each arm"]
        for arm, cand in self.chosen.items():
            rows = self.table[self.table.arm == arm].sort_values("budgeted_value",
                                                                 ascending=False)
            best = rows.iloc[0]
            eff = self.effects.set_index("arm").loc[arm]
            mine = rows[rows.learner == cand].iloc[0]
            text = (f"{cand}: cross-fitted budgeted value for this arm "
                    f"{100 * mine.budgeted_value:+.3f} pts per customer (95% CI "
                    f"{100 * mine.budgeted_value_low:+.3f} to "
                    f"{100 * mine.budgeted_value_high:+.3f}); highest for this arm: {best.learner} "
                    f"{100 * best.budgeted_value:+.3f}"
                    )
            if best.learner != cand and per_arm is not None:
                text += (f"; taking the best option for each arm would add "
                         f"{100 * per_arm.difference_to_default:+.3f} pts per customer summed "
                         f"over the arms (paired SE {100 * per_arm.difference_se:.3f}): "
                         + ("taken" if per_arm.chosen else "within noise, the default is kept"))
            if win is not None:
                text += (f"; '{win.option}', summed over the arms: "
                         f"{100 * win.budgeted_value:+.3f} pts per customer")
            if self.calibration is not None:
                cal = self.calibration.set_index("arm").loc[arm]
                text += (f"; calibrated out of fold: uplift = {100 * cal.ate:+.3f} pts + "
                         f"{cal.slope:.2f} x (model - its mean) (fitted slope {cal.beta:.2f}, "
                         f"SE {cal.beta_se:.2f}" + (", no signal beyond the arm's average: "
                                                    "the arm's average effect is used"
                                                    if cal.slope == 0 else "") + ")")
            if not eff.distinguishable:
                text += (f"; the arm's average uplift ({100 * eff.effect:+.3f} pts, 95% CI "
                         f"{100 * eff.ci_low:+.3f} to {100 * eff.ci_high:+.3f}) cannot be told "
                         "from zero")
            out[arm] = text
        return out


def candidates(learners: Sequence[str] = DEFAULT_LEARNERS,
               base_models: Sequence[str] = DEFAULT_BASE_MODELS) -> list[str]:
    """'learner/base' for every pair; a name already given as 'learner/base' is kept as it is
    (the uplift forest has no LightGBM base: 'urf')."""
    out = []
    for name in learners:
        if name == "urf" or "/" in name:
            out.append(name)
            continue
        out.extend(f"{name}/{b}" for b in base_models)
    return list(dict.fromkeys(out))


def dr_scores(y: np.ndarray, arm_code: np.ndarray, mu: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Gamma (n x (k+1)): mu_a + 1{A = a} (Y - mu_a) / e_a (control first)."""
    n, k1 = mu.shape
    hit = arm_code[:, None] == np.arange(k1)[None, :]
    return mu + hit * (y[:, None] - mu) / e[None, :]


def budgeted_weights(score: np.ndarray, shares: np.ndarray = BUDGET_SHARES) -> np.ndarray:
    """w with sum_i w_i d_i = the mean over `shares` q of (the sum of d over the ceil(q n)
    customers with the highest `score` minus q times the sum of d over everyone), divided by
    n: the budgeted value of a ranking as a linear function of the per-customer gains d (so
    its variance given the ranking is sum_i w_i^2 Var d_i). Customers with equal scores share
    their places equally (the mean over their orderings): a constant score is worth 0."""
    score = np.asarray(score, dtype=float)
    n = len(score)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(-score, kind="stable")] = np.arange(n)
    top = np.ceil(np.asarray(shares) * n).astype(np.int64)
    in_top = (rank[:, None] < top[None, :]).mean(axis=1)
    _, tie, size = np.unique(score, return_inverse=True, return_counts=True)
    if len(size) < n:
        in_top = (np.bincount(tie, weights=in_top) / size)[tie]
    return (in_top - float(np.mean(shares))) / n


def _sum_se(t: np.ndarray) -> float:
    """Standard error of the sum of independent per-customer terms t."""
    return float(np.sqrt(np.sum((t - t.mean()) ** 2)))


def linear_value(w: np.ndarray, d: np.ndarray, z: float) -> tuple[float, float, float, float]:
    """sum_i w_i d_i with its standard error (the d_i independent, the weights, i.e. the
    ranking, taken as given) and z-interval."""
    est = float(w @ d)
    se = float(np.sqrt(np.sum((w * (d - d.mean())) ** 2)))
    return est, se, est - z * se, est + z * se


def calibrate(uplift: pd.DataFrame, effect: np.ndarray) -> pd.DataFrame:
    """Per arm (column of `uplift`, out of fold) the best linear predictor of the doubly robust
    effect `effect[:, j]` (Gamma_a - Gamma_0): effect = ate + beta (uplift - center). Returns
    arm, ate, center, beta, beta_se (heteroskedasticity-robust) and the slope used,
    clip(beta, 0, 1): a slope above 1 would stretch the model's ranking beyond what it was
    fitted to, one below 0 would reverse it."""
    rows = []
    for j, arm in enumerate(uplift.columns):
        tau = uplift[arm].to_numpy(dtype=float)
        d = np.asarray(effect[:, j], dtype=float)
        center, ate = float(tau.mean()), float(d.mean())
        tc = tau - center
        ss = float((tc ** 2).sum())
        if ss <= 0:  # a constant prediction: nothing to calibrate but its level
            beta, se = 0.0, float("inf")
        else:
            beta = float((tc * (d - ate)).sum() / ss)
            resid = d - ate - beta * tc
            se = float(np.sqrt(((tc * resid) ** 2).sum()) / ss)
        rows.append({"arm": str(arm), "ate": ate, "center": center, "beta": beta,
                     "beta_se": se, "slope": float(np.clip(beta, 0.0, 1.0))})
    return pd.DataFrame(rows)


def apply_calibration(uplift: pd.DataFrame, calibration: Any) -> pd.DataFrame:
    """uplift_a -> ate_a + slope_a (uplift_a - center_a) per arm (a `calibrate` table or a
    mapping arm -> {ate, center, slope})."""
    cal = calibration
    if isinstance(cal, pd.DataFrame):
        cal = {r.arm: {"ate": r.ate, "center": r.center, "slope": r.slope}
               for r in cal.itertuples()}
    out = uplift.copy()
    for arm, c in cal.items():
        out[arm] = c["ate"] + c["slope"] * (uplift[arm].to_numpy(dtype=float) - c["center"])
    return out


def select_per_arm(X: pd.DataFrame, y: Any, treatment: Any, *, control: Any = "control",
                   outcome: str = "binary", learners: Sequence[str] = DEFAULT_LEARNERS,
                   base_models: Sequence[str] = DEFAULT_BASE_MODELS, folds: int = 3,
                   propensity: Any = None, random_state: int = 0, n_jobs: int = 1,
                   alpha: float = 0.05, calibrated: bool = True) -> Selection:
    """Cross-fit every candidate on the same folds, choose per arm and calibrate the chosen
    uplift toward each arm's average effect (see the module doc; `calibrated=False` keeps the
    chosen model's raw uplift). `n_jobs`: worker processes for the cross-fits, each LightGBM
    model on one thread (`cross_fit_candidates`)."""
    from scipy.stats import norm

    from upliftlab.uplift.crossfit import fold_ids

    cands = candidates(learners, base_models)
    if outcome != "binary":
        cands = [c for c in cands if c != "urf"]
    if not cands:
        raise InputError("learners: nothing to compare")
    if not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1:
        raise InputError(f"n_jobs: need a whole number >= 1, got {n_jobs!r}")
    y = np.asarray(y, dtype=float)
    labels = np.asarray(treatment).astype(str)
    fold = fold_ids(y, labels, folds, random_state)
    outs, secs, mem = cross_fit_candidates(X, y, labels, cands, fold, control=control,
                                           outcome=outcome, propensity=propensity,
                                           random_state=random_state, n_jobs=n_jobs)
    preds = {c: uplift_of(o) for c, o in outs.items()}
    first = outs[cands[0]]
    names = [str(c) for c in first.columns]           # control first
    arms = names[1:]
    code = pd.Series(labels).map({a: j for j, a in enumerate(names)}).to_numpy()
    e = _propensities(propensity, labels, names)
    mu = np.mean([o[names].to_numpy(dtype=float) for o in outs.values()], axis=0)
    if outcome == "binary":
        mu = np.clip(mu, 0.0, 1.0)
    gamma = dr_scores(y, code, mu, e)
    n = len(y)
    z = float(norm.ppf(1 - alpha / 2))
    gains = gamma[:, 1:] - gamma[:, [0]]  # per customer and treatment arm: Gamma_a - Gamma_0
    effects = []
    for j, a in enumerate(arms):
        est, se = float(gains[:, j].mean()), float(gains[:, j].std(ddof=1) / np.sqrt(n))
        effects.append({"arm": a, "effect": est, "se": se, "ci_low": est - z * se,
                        "ci_high": est + z * se, "distinguishable": abs(est) > z * se})
    rows, weights = [], {}

    def value(cand: str) -> None:  # the table's rows of one option, and its weights per arm
        up = preds[cand]
        for j, a in enumerate(arms):
            w = weights[cand, a] = budgeted_weights(up[a].to_numpy(dtype=float))
            bv, bse, blo, bhi = linear_value(w, gains[:, j], z)
            d = (up[a].to_numpy(dtype=float) > 0) * gains[:, j]
            est, se = float(d.mean()), float(d.std(ddof=1) / np.sqrt(n))
            rows.append({"learner": cand, "arm": a, "budgeted_value": bv,
                         "budgeted_value_se": bse, "budgeted_value_low": blo,
                         "budgeted_value_high": bhi,
                         "policy_value": est, "policy_value_se": se,
                         "policy_value_low": est - z * se, "policy_value_high": est + z * se,
                         "treated_share": float((up[a] > 0).mean()),
                         "fit_seconds": secs[cand], "peak_rss_mib": mem[cand]})

    def mean_of(members: list[str]) -> str:  # an ensemble option (out of fold, same folds)
        name = f"mean({','.join(members)})"
        if name not in preds:
            preds[name] = sum(preds[c] for c in members) / len(members)
            outs[name] = sum(outs[c][names] for c in members) / len(members)
            secs[name] = sum(secs[c] for c in members)
            mem[name] = max(mem[c] for c in members)
            value(name)
        return name

    for cand in cands:
        value(cand)

    def terms(combo: dict) -> np.ndarray:  # per customer: its share of the summed value
        return sum(weights[combo[a], a] * gains[:, j] for j, a in enumerate(arms))

    every = pd.DataFrame(rows).groupby("learner").budgeted_value.sum()
    ranked = sorted(cands, key=lambda c: -every[c])
    # the default: the mean of the two candidates worth most over all arms. The best alone
    # chases noise where candidates are about equal (causalml's generator: 0.5 to 1 point of
    # the oracle lost against the mean of all), the mean of all is dragged down by the weak
    # ones where one kind is much better (the simulator: 10 points lost); the two best give
    # most of both (benchmarks/RESULTS.md `causalml_synth`, `plan_oracle`)
    default = mean_of(ranked[:2]) if len(ranked) > 1 else ranked[0]
    if len(cands) > 2:
        mean_of(cands)
    options = list(preds)
    table = pd.DataFrame(rows)
    by = table.set_index(["learner", "arm"]).budgeted_value
    # per arm its best option, taken only when it beats the default by more than its paired
    # 95% interval (the arms' budgeted values add up: sums over customers, exact differences)
    per_arm = {a: max(options, key=lambda c: by[c, a]) for a in arms}
    combos = {**{f"{c} for every arm": {a: c for a in arms} for c in options},
              "per arm, as chosen for each arm": per_arm}
    per_customer = {label: terms(combo) for label, combo in combos.items()}
    default_label, per_arm_label = f"{default} for every arm", "per arm, as chosen for each arm"
    rule = []
    for label, t in per_customer.items():
        d = t - per_customer[default_label]
        rule.append({"option": label, "budgeted_value": float(t.sum()),
                     "budgeted_value_low": float(t.sum()) - z * _sum_se(t),
                     "budgeted_value_high": float(t.sum()) + z * _sum_se(t),
                     "difference_to_default": float(d.sum()), "difference_se": _sum_se(d),
                     "default": label == default_label})
    rule = pd.DataFrame(rule)
    switch = rule.iloc[-1]  # the per-arm option
    win = per_arm_label if switch.difference_to_default > z * switch.difference_se \
        else default_label
    rule["chosen"] = rule.option == win
    chosen = dict(combos[win])
    table["chosen"] = [chosen[r.arm] == r.learner for r in table.itertuples()]
    # the control outcome comes from the candidate serving the most arms (as the fitted model)
    counts = pd.Series(list(chosen.values())).value_counts(sort=False)
    base_from = str(counts.idxmax())
    raw = pd.DataFrame({a: preds[chosen[a]][a] for a in arms}, index=X.index)
    cal = calibrate(raw, gains) if calibrated else None
    uplift = apply_calibration(raw, cal) if calibrated else raw
    base = outs[base_from][names[0]].to_numpy(dtype=float)
    outcomes = pd.DataFrame({names[0]: base, **{a: base + uplift[a].to_numpy() for a in arms}},
                            index=X.index)
    return Selection(chosen, table, pd.DataFrame(effects), uplift, outcomes, fold, base_from,
                     preds, rule, cal, raw)


# Below this many rows the cross-fits run in this process whatever n_jobs says: starting a
# worker (a fresh interpreter importing LightGBM and causalml) takes seconds, more than small
# fits save.
MIN_ROWS_FOR_WORKERS = 20_000


def uplift_of(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Uplift per treatment arm from predicted outcomes (control first): mu_a - mu_control,
    exactly what `UpliftModel.predict` returns (its `predict_outcomes` is built that way)."""
    base = outcomes.iloc[:, 0].to_numpy(dtype=float)
    return pd.DataFrame({a: outcomes[a].to_numpy(dtype=float) - base
                         for a in outcomes.columns[1:]}, index=outcomes.index)


def cross_fit_candidates(X: pd.DataFrame, y: np.ndarray, labels: np.ndarray,
                         cands: Sequence[str], fold: np.ndarray, *, control: Any = "control",
                         outcome: str = "binary", propensity: Any = None, random_state: int = 0,
                         n_jobs: int = 1) -> tuple[dict, dict, dict]:
    """Out-of-fold predicted outcomes (control first, X's index) of every candidate on the same
    folds, with each candidate's fit + predict seconds (summed over its folds) and peak memory
    (the largest fold's, in the process that fitted it).

    Every (candidate, fold) fit is one job; `n_jobs` > 1 runs them in that many worker
    processes (from MIN_ROWS_FOR_WORKERS rows), each LightGBM model on ONE thread. Processes rather than LightGBM threads because
    LightGBM's OpenMP threads spin-wait for each other: on a machine whose cores are busy with
    other work, 2 threads per model were measured 10-20x slower than 1 (20k rows, 3 arms, load
    ~7: S-learner fit 26 s against 2 s; the selection on 30k rows took 1,951 s before, 90 s
    after, benchmarks/RESULTS.md `causalml_synth`), while single-threaded processes at worst
    share the cores.
    """
    from upliftlab.progress import progress
    from upliftlab.uplift.crossfit import fold_splits

    splits = list(fold_splits(fold, len(X)))
    jobs = [(c, train, test) for c in cands for _, train, test in splits]
    common = dict(control=control, outcome=outcome, random_state=random_state)
    data = (X, y, labels, propensity)
    bar = progress(total=len(jobs), desc="cross-fitting candidates", unit="fit")
    done = []
    if n_jobs == 1 or len(X) < MIN_ROWS_FOR_WORKERS:
        _init_worker(*data)
        try:
            for c, train, test in jobs:
                done.append(_fit_fold(c, train, test, **common))
                bar.update()
        finally:
            _init_worker(None, None, None, None)  # hold no reference to the data
    else:
        # a pool of spawned processes that ends with this block: no worker outlives the call
        # (a lingering worker would keep the caller's stdout open and hang whoever reads it);
        # the data goes to each worker once, not with every job
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=min(n_jobs, len(jobs)),
                                 mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_init_worker, initargs=data) as pool:
            futures = [pool.submit(_fit_fold, c, train, test, **common)
                       for c, train, test in jobs]
            try:
                for f in futures:
                    done.append(f.result())
                    bar.update()
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    bar.close()
    outs, secs, mem = {}, {}, {}
    for (cand, _, test), (frame, seconds, peak) in zip(jobs, done):
        if cand not in outs:
            outs[cand] = pd.DataFrame(np.nan, index=X.index, columns=frame.columns)
            secs[cand], mem[cand] = 0.0, 0.0
        outs[cand].iloc[test] = frame.to_numpy()
        secs[cand] += seconds
        mem[cand] = max(mem[cand], peak)
    return outs, secs, mem


_DATA: tuple = ()  # (X, y, labels, propensity) of the cross-fitting, set once per worker


def _init_worker(X: pd.DataFrame, y: np.ndarray, labels: np.ndarray, propensity: Any) -> None:
    global _DATA
    _DATA = (X, y, labels, propensity)


def _fit_fold(cand: str, train: np.ndarray, test: np.ndarray, *, control: Any, outcome: str,
              random_state: int) -> tuple[pd.DataFrame, float, float]:
    """One candidate fitted on rows `train` of the worker's data (one thread per LightGBM
    model), its predicted outcomes on rows `test`; with the seconds and the peak memory above
    the start (MiB) it took."""
    from upliftlab.uplift.crossfit import PeakRSS, subset_propensity
    from upliftlab.uplift.model import UpliftModel

    X, y, labels, propensity = _DATA
    t0 = time.perf_counter()
    with PeakRSS() as peak:
        model = UpliftModel(control=control, learner=cand, outcome=outcome,
                            random_state=random_state, n_jobs=1)
        model.fit(X.iloc[train], y[train], labels[train],
                  propensity=subset_propensity(propensity, train))
        frame = model.predict_outcomes(X.iloc[test])
    return frame, time.perf_counter() - t0, peak.delta_mib


def _propensities(propensity: Any, labels: np.ndarray, names: list[str]) -> np.ndarray:
    """The design's probability of each arm (control first); observed shares when None."""
    if propensity is None:
        share = pd.Series(labels).value_counts(normalize=True)
        return np.array([float(share.get(a, 0.0)) for a in names])
    if isinstance(propensity, pd.DataFrame):
        propensity = {str(c): propensity[c].to_numpy() for c in propensity.columns}
    prop = {str(k): float(np.mean(v)) for k, v in dict(propensity).items()}
    missing = [a for a in names if a not in prop]
    if missing:
        raise InputError(f"propensity: no probability for arm(s) {', '.join(missing)}")
    e = np.array([prop[a] for a in names])
    return e / e.sum()
