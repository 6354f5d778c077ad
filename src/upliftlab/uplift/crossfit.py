"""Cross-fitting: the folds (`fold_ids`, `random_folds`, `fold_splits`, used by the policy's
cross-fitting too), out-of-fold uplift predictions and the learner comparison table.

Out of fold, no score is measured on training rows; the comparison is learner x arm x AUUC/Qini
with intervals, fit time and peak memory.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd

from upliftlab.errors import InputError
from upliftlab.progress import progress


@dataclass(frozen=True)
class CrossFit:
    """Out-of-fold predictions: row i's values come from the model fitted without fold[i]."""

    uplift: pd.DataFrame             # one column per treatment arm, X's index
    outcomes: pd.DataFrame | None    # predicted outcome per arm (control first), or None
    fold: np.ndarray                 # fold id (0..K-1) of every row


@dataclass(frozen=True)
class Comparison:
    """Result of `compare_learners`: the table and the out-of-fold predictions per learner."""

    table: pd.DataFrame
    predictions: dict[str, pd.DataFrame] = field(default_factory=dict)
    fold: np.ndarray | None = None
    outcomes: dict[str, pd.DataFrame] = field(default_factory=dict)  # out-of-fold mu(x, a)

    def best(self, metric: str = "qini") -> str:
        """The learner with the highest mean `metric` over the treatment arms."""
        means = self.table.groupby("learner", sort=False)[metric].mean()
        return str(means.idxmax())


class PeakRSS:
    """Peak resident memory above the starting level, sampled every 20 ms from /proc (Linux).

    RSS rather than tracemalloc because LightGBM's buffers live outside the Python heap, which
    tracemalloc does not see; sampling can miss spikes shorter than the interval.
    """

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.peak = 0
        self.start = 0
        self._stop = threading.Event()

    @staticmethod
    def rss() -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> "PeakRSS":
        self.start = self.peak = self.rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def delta_mib(self) -> float:
        return (self.peak - self.start) / 2**20


def fold_ids(y: Any, treatment: Any, folds: int = 5, random_state: int = 0) -> np.ndarray:
    """Fold id per row, stratified by arm x outcome (outcome > 0 for continuous outcomes)."""
    from sklearn.model_selection import StratifiedKFold

    if not isinstance(folds, (int, np.integer)) or folds < 2:
        raise InputError(f"folds: need at least 2, got {folds!r}")
    y = np.asarray(y, dtype=float)
    labels = pd.Series(np.asarray(treatment, dtype=object)).astype(str).to_numpy()
    strata = pd.Series(labels + "|" + (y > 0).astype(int).astype(str))
    if strata.value_counts().min() < folds:
        # a rare arm x outcome cell: stratify by arm alone rather than fail
        strata = pd.Series(labels)
    out = np.empty(len(y), dtype=np.int64)
    skf = StratifiedKFold(folds, shuffle=True, random_state=random_state)
    for k, (_, test) in enumerate(skf.split(np.zeros(len(y)), strata)):
        out[test] = k
    return out


def random_folds(n: int, folds: int = 5, seed: int = 0) -> np.ndarray:
    """A fold id 0..folds-1 per row, balanced and shuffled by `seed` (not stratified: for
    callers that have no outcome to stratify by, such as the policy's cross-fitting)."""
    if not isinstance(folds, (int, np.integer)) or folds < 2:
        raise InputError(f"folds: need at least 2, got {folds!r}")
    return np.random.default_rng(seed).permutation(np.arange(n) % folds)


def fold_splits(fold: Any, n: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(fold id, training rows, held-out rows) per fold of the fold ids `fold` of `n` rows:
    the one loop of every cross-fitting here."""
    fold = np.asarray(fold)
    if fold.shape[0] != n:
        raise InputError(f"folds: {fold.shape[0]} fold ids for {n} rows")
    for k in np.unique(fold):
        yield int(k), np.flatnonzero(fold != k), np.flatnonzero(fold == k)


def subset_propensity(propensity: Any, rows: np.ndarray) -> Any:
    if isinstance(propensity, pd.DataFrame):
        return propensity.iloc[rows]
    if isinstance(propensity, dict):
        return {k: (v if np.ndim(v) == 0 else np.asarray(v)[rows]) for k, v in propensity.items()}
    return propensity


def cross_fit_predict(model: Any, X: pd.DataFrame, y: Any, treatment: Any, propensity: Any = None,
                      folds: int | np.ndarray = 5, random_state: int = 0, outcomes: bool = False,
                      desc: str | None = None) -> CrossFit:
    """Out-of-fold uplift (and optionally outcome) predictions of `model` (an unfitted UpliftModel).

    `folds` is a number of folds (stratified by arm x outcome, seeded) or an array of fold ids.
    For every fold k a clone of `model` is fitted on the other folds and predicts fold k.
    """
    from sklearn.base import clone

    if not isinstance(X, pd.DataFrame):
        raise InputError(f"X: expected a pandas DataFrame of features, got {type(X).__name__}")
    y = np.asarray(y)
    treatment = np.asarray(treatment, dtype=object)
    fold = (np.asarray(folds) if np.ndim(folds) else fold_ids(y, treatment, int(folds), random_state))
    up_parts, out_parts = [], []
    splits = list(fold_splits(fold, len(X)))
    for _, train, test in progress(splits, desc=desc or "cross-fitting", unit="fold"):
        m = clone(model).fit(X.iloc[train], y[train], treatment[train],
                             propensity=subset_propensity(propensity, train))
        Xt = X.iloc[test]
        up_parts.append(m.predict(Xt).set_axis(test))
        if outcomes:
            out_parts.append(m.predict_outcomes(Xt).set_axis(test))
    up = pd.concat(up_parts).sort_index().set_axis(X.index)
    out = pd.concat(out_parts).sort_index().set_axis(X.index) if outcomes else None
    return CrossFit(up, out, fold)


def compare_learners(X: pd.DataFrame, y: Any, treatment: Any, learners: Sequence[str] = ("s", "t", "x", "dr", "urf"),
                     folds: int = 5, control: Any = "control", outcome: str = "binary",
                     propensity: Any = None, n_bootstrap: int = 200, alpha: float = 0.05,
                     random_state: int = 0, n_jobs: int = 1, base_learner: Any = None) -> Comparison:
    """Cross-fit every learner on the same folds and score its out-of-fold uplift per arm.

    Returns a `Comparison`: `table` with one row per learner x arm (AUUC and Qini with causalml's
    normalisation and bootstrap percentile intervals, `fit_seconds` = wall time of the K fits and
    predictions, `peak_rss_mib` = peak resident memory above the starting level during them,
    sampled from /proc), and the out-of-fold predictions per learner.
    """
    from upliftlab.metrics import evaluate_uplift
    from upliftlab.uplift.model import UpliftModel

    learners = list(learners)
    if outcome != "binary" and "urf" in learners:
        learners.remove("urf")  # the uplift forest is for binary outcomes only
    if not learners:
        raise InputError("learners: nothing to compare")
    y = np.asarray(y)
    treatment = np.asarray(treatment, dtype=object)
    fold = fold_ids(y, treatment, folds, random_state)
    rows, preds, outs = [], {}, {}
    for name in progress(learners, desc="learners", unit="learner"):
        model = UpliftModel(control=control, learner=name, outcome=outcome,
                            base_learner=base_learner, random_state=random_state, n_jobs=n_jobs)
        t0 = time.perf_counter()
        with PeakRSS() as mem:
            cf = cross_fit_predict(model, X, y, treatment, propensity, fold, outcomes=True,
                                   desc=f"cross-fitting {name}")
        seconds = time.perf_counter() - t0
        preds[name] = cf.uplift
        outs[name] = cf.outcomes
        table = evaluate_uplift(y, cf.uplift, treatment, control=str(control),
                                n_bootstrap=n_bootstrap, alpha=alpha, random_state=random_state)
        table.insert(0, "learner", name)
        table["fit_seconds"] = seconds
        table["peak_rss_mib"] = mem.delta_mib
        rows.append(table)
    return Comparison(pd.concat(rows, ignore_index=True), preds, fold, outs)
