"""Out-of-time evaluation of risk scores: ROC-AUC and PR-AUC with bootstrap intervals, Brier
score, calibration by decile with Wilson intervals, capture and lift at the top shares.

The bootstrap is a Poisson bootstrap over rows on scores sorted once: every resample's AUC and
average precision are weighted sums over the distinct score values (numpy, no per-row Python),
the same quantities as scikit-learn's `roc_auc_score` / `average_precision_score` on the full
data (a test checks the point estimates against them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

TOP_SHARES = (0.1, 0.2, 0.3)


def _grouped(score: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct scores, descending, as group ids per row."""
    order = np.argsort(-score, kind="stable")
    s = score[order]
    new = np.r_[True, s[1:] != s[:-1]]
    group = np.empty(len(s), dtype=np.int64)
    group[order] = np.cumsum(new) - 1
    return group, order


def _auc_ap(group: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUC and average precision for each weight vector (rows of w), groups descending."""
    k = group.max() + 1
    aucs, aps = [], []
    for wi in w:
        pos = np.bincount(group, weights=wi * y, minlength=k)
        neg = np.bincount(group, weights=wi * (1 - y), minlength=k)
        P, N = pos.sum(), neg.sum()
        # descending scores: a positive outranks the negatives in later groups (ties count half)
        neg_below = N - np.cumsum(neg)
        aucs.append(np.sum(pos * (neg_below + 0.5 * neg)) / (P * N))
        tp, fp = np.cumsum(pos), np.cumsum(neg)
        precision = tp / np.maximum(tp + fp, 1e-300)
        aps.append(np.sum(pos / P * precision))
    return np.asarray(aucs), np.asarray(aps)


@dataclass(frozen=True)
class Scores:
    """Summary of one scorer on one labelled snapshot (intervals are percentile bootstrap)."""

    name: str
    n: int
    base_rate: float
    auc: float
    auc_low: float
    auc_high: float
    pr_auc: float
    pr_auc_low: float
    pr_auc_high: float
    brier: float | None
    capture: dict[str, float]
    lift: dict[str, float]

    def row(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("capture", "lift")}
        out.update({f"capture_{k}": v for k, v in self.capture.items()})
        out.update({f"lift_{k}": v for k, v in self.lift.items()})
        return out


def evaluate_scores(name: str, score: Any, y: Any, *, probability: bool = True,
                    n_bootstrap: int = 200, level: float = 0.95, seed: int = 0) -> Scores:
    """AUC / PR-AUC (with intervals), Brier (probabilities only), capture and lift at the top
    10/20/30% of `score` against the 0/1 labels `y`."""
    s = np.asarray(score, dtype=np.float64)
    yv = np.asarray(y, dtype=np.float64)
    group, order = _grouped(s, yv)
    rng = np.random.default_rng(seed)
    w = np.vstack([np.ones(len(s)), rng.poisson(1.0, size=(n_bootstrap, len(s)))])
    aucs, aps = _auc_ap(group, yv, w)
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    auc_lo, auc_hi = np.quantile(aucs[1:], q)
    ap_lo, ap_hi = np.quantile(aps[1:], q)
    total = yv.sum()
    capture, lift = {}, {}
    for share in TOP_SHARES:
        top = order[:max(1, int(round(share * len(s))))]
        key = f"{int(share * 100)}"
        capture[key] = float(yv[top].sum() / total) if total else float("nan")
        lift[key] = float(yv[top].mean() / yv.mean()) if total else float("nan")
    return Scores(name, len(s), float(yv.mean()), float(aucs[0]), float(auc_lo), float(auc_hi),
                  float(aps[0]), float(ap_lo), float(ap_hi),
                  float(np.mean((s - yv) ** 2)) if probability else None, capture, lift)


def calibration_table(p: Any, y: Any, bins: int = 10, level: float = 0.95) -> "Any":
    """Per decile of the predicted probability: n, mean predicted, observed rate and its Wilson
    interval, and whether the mean predicted lies inside it."""
    import pandas as pd
    from statsmodels.stats.proportion import proportion_confint

    pv = np.asarray(p, dtype=np.float64)
    yv = np.asarray(y, dtype=np.float64)
    ranks = np.argsort(np.argsort(pv, kind="stable"), kind="stable")
    decile = (ranks * bins // len(pv)) + 1
    frame = pd.DataFrame({"decile": decile, "p": pv, "y": yv})
    t = frame.groupby("decile").agg(n=("y", "size"), predicted=("p", "mean"),
                                    observed=("y", "mean"), events=("y", "sum")).reset_index()
    lo, hi = proportion_confint(t["events"].to_numpy(), t["n"].to_numpy(), alpha=1 - level,
                                method="wilson")
    t["observed_low"], t["observed_high"] = lo, hi
    t["within"] = (t["predicted"] >= lo) & (t["predicted"] <= hi)
    return t.drop(columns="events")


def lift_curve(score: Any, y: Any, points: int = 50) -> "Any":
    """Cumulative capture of the events by share of customers targeted (highest risk first)."""
    import pandas as pd

    s = np.asarray(score, dtype=np.float64)
    yv = np.asarray(y, dtype=np.float64)[np.argsort(-s, kind="stable")]
    cum = np.cumsum(yv) / max(yv.sum(), 1e-300)
    share = np.linspace(0, 1, points + 1)[1:]
    idx = np.maximum((share * len(s)).astype(int) - 1, 0)
    return pd.DataFrame({"share": share, "capture": cum[idx], "lift": cum[idx] / share})


__all__ = ["Scores", "TOP_SHARES", "calibration_table", "evaluate_scores", "lift_curve"]
