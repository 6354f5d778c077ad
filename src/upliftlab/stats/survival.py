"""Survival by arm on a life table: Kaplan–Meier curves, the log-rank test and the difference in
restricted mean survival time (RMST), all from counts per (time, event) fed by one SQL GROUP BY.

lifelines does the curves, the test and the RMST; the variance of the RMST *estimate* is
computed here (see `rmst`), because lifelines' `return_variance` is the variance of the
restricted time itself, not of its estimate.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LifeTable:
    """Counts per distinct duration: events (the end of interest happened at that time) and
    censored (still going when the data ended). Durations in days, ascending, unique."""

    durations: tuple[float, ...]
    events: tuple[int, ...]
    censored: tuple[int, ...]

    @classmethod
    def from_rows(cls, rows) -> "LifeTable":
        """From (duration, event 0/1, count) rows, in any order and with repeats."""
        acc: dict[float, list[int]] = {}
        for d, e, n in rows:
            slot = acc.setdefault(float(d), [0, 0])
            slot[0 if e else 1] += int(n)
        keys = sorted(acc)
        return cls(tuple(keys), tuple(acc[k][0] for k in keys), tuple(acc[k][1] for k in keys))

    def __add__(self, other: "LifeTable") -> "LifeTable":
        rows = [(d, 1, e) for d, e in zip(self.durations, self.events)]
        rows += [(d, 0, c) for d, c in zip(self.durations, self.censored)]
        rows += [(d, 1, e) for d, e in zip(other.durations, other.events)]
        rows += [(d, 0, c) for d, c in zip(other.durations, other.censored)]
        return LifeTable.from_rows(rows)

    @property
    def n(self) -> int:
        return int(sum(self.events) + sum(self.censored))

    def weighted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(durations, event flags, weights) with one row per non-empty (duration, kind)."""
        d = np.asarray(self.durations, dtype=float)
        e = np.asarray(self.events, dtype=float)
        c = np.asarray(self.censored, dtype=float)
        dur = np.concatenate([d[e > 0], d[c > 0]])
        flag = np.concatenate([np.ones(int((e > 0).sum())), np.zeros(int((c > 0).sum()))])
        w = np.concatenate([e[e > 0], c[c > 0]])
        return dur, flag, w


@dataclass(frozen=True)
class Curve:
    """A Kaplan–Meier curve: S(t) just after each event time (a step function), with
    Greenwood's pointwise interval (lifelines' exponential Greenwood bounds)."""

    times: tuple[float, ...]
    survival: tuple[float, ...]
    ci_low: tuple[float, ...]
    ci_high: tuple[float, ...]
    n: int

    def at(self, t: float) -> float:
        i = int(np.searchsorted(np.asarray(self.times), t, side="right")) - 1
        return 1.0 if i < 0 else float(self.survival[i])


@dataclass(frozen=True)
class RMST:
    estimate: float
    se: float
    tau: float


@dataclass(frozen=True)
class LogRank:
    statistic: float
    p_value: float


@functools.lru_cache(maxsize=32)  # curve, RMST and test of one arm share one fit
def _fitter(table: LifeTable, alpha: float = 0.05):
    from lifelines import KaplanMeierFitter

    if table.n == 0:
        raise ValueError("a life table without rows has no survival curve")
    dur, flag, w = table.weighted()
    # weights are whole counts here, so lifelines' non-integer-weights warning does not apply
    return KaplanMeierFitter(alpha=alpha).fit(dur, flag, weights=w)


def kaplan_meier(table: LifeTable, alpha: float = 0.05) -> Curve:
    """The Kaplan–Meier curve of `table` (lifelines' KaplanMeierFitter on the counts)."""
    kmf = _fitter(table, alpha)
    sf = kmf.survival_function_.iloc[:, 0]
    ci = kmf.confidence_interval_survival_function_
    return Curve(tuple(float(t) for t in sf.index), tuple(float(s) for s in sf.to_numpy()),
                 tuple(float(x) for x in ci.iloc[:, 0].to_numpy()),
                 tuple(float(x) for x in ci.iloc[:, 1].to_numpy()), table.n)


def rmst(table: LifeTable, tau: float) -> RMST:
    """RMST(τ) = ∫₀^τ S(t) dt of the Kaplan–Meier curve (lifelines), with the delta-method
    (Greenwood) variance of the estimate: Σ_{t_j ≤ τ} A_j² d_j / (n_j (n_j − d_j)), where
    A_j = ∫_{t_j}^τ S(u) du (Klein & Moeschberger 2003, §4.5)."""
    from lifelines.utils import restricted_mean_survival_time

    est = float(restricted_mean_survival_time(_fitter(table, 0.05), t=tau))
    d = np.asarray(table.durations, dtype=float)
    e = np.asarray(table.events, dtype=float)
    c = np.asarray(table.censored, dtype=float)
    at_risk = (e + c)[::-1].cumsum()[::-1]
    hazard = np.divide(e, at_risk, out=np.zeros_like(e), where=at_risk > 0)
    surv = np.cumprod(1 - hazard)
    keep = (d <= tau) & (e > 0)
    # area under S from each event time to τ: S is constant between event times
    edges = np.append(d[d <= tau], tau)
    s_left = surv[: len(edges) - 1]
    area = np.diff(edges) * s_left  # ∫ over [t_k, t_{k+1}) with S(t_k)
    tail = np.concatenate([area[::-1].cumsum()[::-1], [0.0]])[: len(edges) - 1]
    a_j = tail[keep[: len(edges) - 1]]
    ej, nj = e[keep], at_risk[keep]
    denom = nj * (nj - ej)
    terms = np.divide(a_j ** 2 * ej, denom, out=np.zeros_like(a_j), where=denom > 0)
    return RMST(est, math.sqrt(float(terms.sum())), float(tau))


def logrank(a: LifeTable, b: LifeTable) -> LogRank:
    """The log-rank test of equal survival in two groups (lifelines' `logrank_test`)."""
    from lifelines.statistics import logrank_test

    da, ea, wa = a.weighted()
    db, eb, wb = b.weighted()
    res = logrank_test(da, db, event_observed_A=ea, event_observed_B=eb, weights_A=wa,
                       weights_B=wb)
    return LogRank(float(res.test_statistic), float(res.p_value))


__all__ = ["Curve", "LifeTable", "LogRank", "RMST", "kaplan_meier", "logrank", "rmst"]
