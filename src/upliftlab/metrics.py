"""Uplift evaluation: gain and Qini curves, AUUC and Qini scores, bootstrap intervals, deciles.

Per treatment against control, vectorised numpy (one sort, cumulative sums), equal to causalml's
`auuc_score` / `qini_score` on untied input, with tied scores grouped and sample weights.

Definitions (causalml 0.18, `causalml/metrics/visualize.py`). Rows are sorted by predicted uplift,
descending. At depth k (the top k rows; with weights, the top k units of weight), with treated
and control weights Nt, Nc and outcome sums Yt, Yc among them:

* gain (uplift curve)  G(k) = (Yt/Nt - Yc/Nc) * k          (`get_cumgain`)
* Qini curve           Q(k) = Yt - Yc * Nt/Nc               (`get_qini`)

Both curves start with a point (0, 0). Where the curve is not yet defined (no treated or no
control row in the top k) causalml interpolates linearly from 0: the *lift* G/k for the gain
(so the gain is quadratic there) and Q itself for the Qini curve; we do the same.

Scores, normalisation (`normalize=True`, causalml's default): the curve is divided by the
absolute value of its last point |G(N)| (|Q(N)|), so it ends at +1 (or -1 when the overall
effect is negative).

* `auuc_score` = mean of the (normalised) gain over the N+1 points k = 0..N. A random ranking
  scores about 0.5 (the diagonal), a good one more; it is *not* centred at 0.
* `qini_score` = mean of the (normalised) Qini curve over k = 0..N minus the mean of the straight
  line from (0, 0) to (N, Q(N)), i.e. mean(Q) - Q(N)/2: the area between the model and random,
  per unit of population. Random scores about 0; a perfect ranking scores the most.

These are *not* comparable with scikit-uplift's `uplift_auc_score` / `qini_auc_score`, which
normalise by the area of the perfect (oracle) curve instead; always name the normalisation.
causalml requires the treatment column to be 0/1; the functions here take a 0/1 (or boolean)
vector for one treatment against control, and `evaluate_uplift` / `uplift_by_decile` take arm
labels and a control label for many arms.

Ties: rows with equal predicted uplift form one block; the curve is computed at block ends only
and is linear inside a block (the expected curve over the orders of the tied rows, to first
order), so the score does not depend on how tied rows happen to be ordered. causalml instead
sorts tied rows in an arbitrary order. On untied input the two agree to floating precision.

Weights: a row of weight w counts as w rows with the same score; the depth axis is cumulative
weight, and the mean over the N+1 points becomes the Riemann sum below divided by W+1 (W the
total weight). Integer weights therefore give exactly the score of the data with each row
duplicated w times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from upliftlab.errors import InputError

__all__ = [
    "Curve", "uplift_curve", "qini_curve", "auuc_score", "qini_score", "bootstrap_scores",
    "evaluate_uplift", "uplift_by_decile",
]

_BOOT_BATCH_CELLS = 4_000_000  # resamples x rows per batch: bounds bootstrap memory (~32 MB/array)


@dataclass(frozen=True)
class Curve:
    """A gain or Qini curve at the ends of the tied blocks, starting at (0, 0).

    `x` is the depth (number of rows, or cumulative weight), `y` the curve value, `random` the
    straight line from (0, 0) to the last point (the curve of a random ranking).
    """

    kind: str
    x: np.ndarray
    y: np.ndarray
    normalized: bool

    @property
    def random(self) -> np.ndarray:
        return self.y[-1] * self.x / self.x[-1] if self.x[-1] > 0 else np.zeros_like(self.x)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"depth": self.x, "fraction": self.x / self.x[-1],
                             self.kind: self.y, "random": self.random})


# --------------------------------------------------------------------------- input checks

def _as_1d(name: str, values: Any, n: int | None = None) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InputError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise InputError(f"{name}: has {len(arr)} rows, expected {n}")
    return arr


def _check_inputs(y: Any, uplift: Any, treatment: Any, sample_weight: Any
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    y = _as_1d("y", y).astype(float)
    n = len(y)
    if n == 0:
        raise InputError("y: no rows to evaluate")
    uplift = _as_1d("uplift", uplift, n).astype(float)
    t = _as_1d("treatment", treatment, n)
    if t.dtype == bool:
        t = t.astype(float)
    else:
        try:
            t = t.astype(float)
        except (TypeError, ValueError):
            raise InputError("treatment: must be 0/1 (1 = treated, 0 = control); for arm labels "
                             "use evaluate_uplift(..., control=LABEL)") from None
        if not np.isin(t, (0.0, 1.0)).all():
            bad = np.unique(t[~np.isin(t, (0.0, 1.0))])[:3]
            raise InputError(f"treatment: must be 0/1 (1 = treated, 0 = control), found {bad.tolist()}")
    for name, arr in (("y", y), ("uplift", uplift)):
        if not np.isfinite(arr).all():
            raise InputError(f"{name}: contains missing or infinite values")
    w = None
    if sample_weight is not None:
        w = _as_1d("sample_weight", sample_weight, n).astype(float)
        if not np.isfinite(w).all() or (w < 0).any():
            raise InputError("sample_weight: must be finite and non-negative")
    return y, uplift, t, w


# --------------------------------------------------------------------------- core (vectorised)

def _order_and_ends(uplift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort order (descending, stable) and the index of the last row of each tied block."""
    order = np.argsort(-uplift, kind="stable")
    s = uplift[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    return order, ends


def _block_sums(y: np.ndarray, t: np.ndarray, w: np.ndarray, ends: np.ndarray
                ) -> tuple[np.ndarray, ...]:
    """Cumulative Nt, Nc, Yt, Yc at block ends, with a leading 0 column; w is (B, n) sorted."""
    wt = w * t
    wc = w - wt
    out = []
    for arr in (wt, wc, wt * y, wc * y):
        cs = np.cumsum(arr, axis=-1)[..., ends]
        out.append(np.concatenate([np.zeros(cs.shape[:-1] + (1,)), cs], axis=-1))
    return tuple(out)


def _curve_values(kind: str, nt, nc, yt, yc):
    """Curve at block ends, the depth K, and the index of the first defined point (B,)."""
    k = nt + nc
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "gain":
            defined = (nt > 0) & (nc > 0)
            g = (yt / nt - yc / nc) * k
        else:
            defined = nc > 0
            g = yt - yc * nt / nc
    defined[..., 0] = False
    j0 = np.argmax(defined, axis=-1)  # first defined point (0 when never defined)
    ok = defined.any(axis=-1)
    g = np.where(defined, g, 0.0)
    g0 = np.take_along_axis(g, j0[..., None], axis=-1)
    k0 = np.take_along_axis(k, j0[..., None], axis=-1)
    idx = np.arange(g.shape[-1])
    before = idx < j0[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(k0 > 0, k / k0, 0.0)
    # causalml interpolates the lift (gain) or the Qini value linearly from 0 before the first
    # defined point
    prefix = g0 * (ratio ** 2 if kind == "gain" else ratio)
    g = np.where(before, prefix, g)
    g[..., 0] = 0.0
    return g, k, j0, ok


def _scores_from_sums(kind: str, nt, nc, yt, yc, normalize: bool) -> np.ndarray:
    """AUUC (kind='gain') or Qini score for each row of the (B, m+1) block sums."""
    g, k, j0, ok = _curve_values(kind, nt, nc, yt, yc)
    last = g[..., -1]
    total = k[..., -1]
    if normalize:
        with np.errstate(divide="ignore", invalid="ignore"):
            g = g / np.abs(last)[..., None]
        last = g[..., -1]
    # Riemann sum over integer depths, with the curve linear inside each block of width m:
    # sum_{j=1..m} (G0 + (G1-G0) j/m) = m (G0+G1)/2 + (G1-G0)/2; on untied data this is sum G(k)
    width = np.diff(k, axis=-1)
    contrib = width * (g[..., 1:] + g[..., :-1]) / 2 + np.diff(g, axis=-1) / 2
    idx = np.arange(1, g.shape[-1])
    contrib = np.where(idx <= j0[..., None], 0.0, contrib)
    g0 = np.take_along_axis(g, j0[..., None], axis=-1)[..., 0]
    k0 = np.take_along_axis(k, j0[..., None], axis=-1)[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "gain":  # sum_{k=1..K} G1 k^2/K^2
            prefix = g0 * (k0 + 1) * (2 * k0 + 1) / (6 * k0)
        else:               # sum_{k=1..K} Q1 k/K
            prefix = g0 * (k0 + 1) / 2
        score = (contrib.sum(axis=-1) + prefix) / (total + 1)
    if kind == "qini":
        score = score - last / 2
    with np.errstate(invalid="ignore"):
        return np.where(ok & np.isfinite(score), score, np.nan)


def _curve(kind: str, y, uplift, treatment, sample_weight, normalize: bool) -> Curve:
    y, uplift, t, w = _check_inputs(y, uplift, treatment, sample_weight)
    order, ends = _order_and_ends(uplift)
    ww = np.ones(len(y)) if w is None else w[order]
    nt, nc, yt, yc = _block_sums(y[order], t[order], ww, ends)
    g, k, _, ok = _curve_values(kind, nt, nc, yt, yc)
    if not ok:
        g = np.full_like(g, np.nan)
    if normalize:
        with np.errstate(divide="ignore", invalid="ignore"):
            g = g / abs(g[-1])
    return Curve(kind, k, g, normalize)


def uplift_curve(y: Any, uplift: Any, treatment: Any, sample_weight: Any = None,
                 normalize: bool = False) -> Curve:
    """The cumulative gain curve G(k) = (Yt/Nt - Yc/Nc)·k (causalml's `get_cumgain`).

    `treatment` is 0/1 (1 = the treatment, 0 = control). Points are at (0, 0) and at the end
    of every block of tied scores. `normalize=True` divides by |G(N)|.
    """
    return _curve("gain", y, uplift, treatment, sample_weight, normalize)


def qini_curve(y: Any, uplift: Any, treatment: Any, sample_weight: Any = None,
               normalize: bool = False) -> Curve:
    """The Qini curve Q(k) = Yt - Yc·Nt/Nc (causalml's `get_qini`); see `uplift_curve`."""
    return _curve("qini", y, uplift, treatment, sample_weight, normalize)


def _score(kind: str, y, uplift, treatment, sample_weight, normalize: bool) -> float:
    y, uplift, t, w = _check_inputs(y, uplift, treatment, sample_weight)
    order, ends = _order_and_ends(uplift)
    ww = np.ones(len(y)) if w is None else w[order]
    sums = _block_sums(y[order], t[order], ww, ends)
    return float(_scores_from_sums(kind, *sums, normalize))


def auuc_score(y: Any, uplift: Any, treatment: Any, sample_weight: Any = None,
               normalize: bool = True) -> float:
    """Area under the gain curve, as causalml's `auuc_score` (mean over k = 0..N).

    With `normalize=True` (causalml's default) the curve is divided by |G(N)| first: a random
    ranking scores ~0.5 (about -0.5 when the overall effect is negative), better rankings more.
    Not comparable with scikit-uplift's `uplift_auc_score` (normalised by the perfect curve).
    `treatment` is 0/1. NaN when the sample has no treated or no control rows, or G(N) = 0.
    """
    return _score("gain", y, uplift, treatment, sample_weight, normalize)


def qini_score(y: Any, uplift: Any, treatment: Any, sample_weight: Any = None,
               normalize: bool = True) -> float:
    """Area between the Qini curve and the random line, as causalml's `qini_score`.

    = mean over k = 0..N of Q(k) minus Q(N)/2 (the mean of the straight line), after dividing
    by |Q(N)| when `normalize=True` (causalml's default). Random ~0; higher is better.
    Not comparable with scikit-uplift's `qini_auc_score` (normalised by the perfect curve).
    `treatment` is 0/1. NaN when the sample has no control rows or Q(N) = 0.
    """
    return _score("qini", y, uplift, treatment, sample_weight, normalize)


def bootstrap_scores(y: Any, uplift: Any, treatment: Any, sample_weight: Any = None,
                     n_bootstrap: int = 200, random_state: int = 0, normalize: bool = True
                     ) -> dict[str, np.ndarray]:
    """Bootstrap replicates of the AUUC and Qini scores (Poisson(1) weights, vectorised).

    Each replicate reweights every row by an independent Poisson(1) count (times its sample
    weight): the Poisson bootstrap, which for large n is the multinomial bootstrap without the
    fixed total. The sort is shared by all replicates, so B replicates cost B cumulative sums.
    Returns {"auuc": (B,), "qini": (B,)}; seeded by `random_state`.
    """
    y, uplift, t, w = _check_inputs(y, uplift, treatment, sample_weight)
    if n_bootstrap < 1:
        raise InputError(f"n_bootstrap: must be at least 1, got {n_bootstrap}")
    order, ends = _order_and_ends(uplift)
    ys, ts = y[order], t[order]
    base = np.ones(len(y)) if w is None else w[order]
    rng = np.random.default_rng(random_state)
    batch = max(1, _BOOT_BATCH_CELLS // len(y))
    out = {"auuc": [], "qini": []}
    for start in range(0, n_bootstrap, batch):
        b = min(batch, n_bootstrap - start)
        ww = rng.poisson(1.0, size=(b, len(y))).astype(np.float64)
        ww *= base
        sums = _block_sums(ys, ts, ww, ends)
        out["auuc"].append(_scores_from_sums("gain", *sums, normalize))
        out["qini"].append(_scores_from_sums("qini", *sums, normalize))
    return {key: np.concatenate(val) for key, val in out.items()}


# --------------------------------------------------------------------------- many arms

def _arm_views(y: Any, uplift: Any, treatment: Any, control: Any, sample_weight: Any):
    """Yield (arm, y, score, t01, weight) for each treatment arm against control."""
    if isinstance(uplift, pd.Series):
        uplift = uplift.to_frame()
    if not isinstance(uplift, pd.DataFrame):
        raise InputError("uplift: expected a DataFrame with one column per treatment arm")
    y = _as_1d("y", y).astype(float)
    n = len(y)
    labels = _as_1d("treatment", treatment, n)
    if len(uplift) != n:
        raise InputError(f"uplift: has {len(uplift)} rows, expected {n}")
    w = None if sample_weight is None else _as_1d("sample_weight", sample_weight, n)
    labels = labels.astype(str)  # arm labels are compared as text, as in UpliftModel
    is_control = labels == str(control)
    if not is_control.any():
        raise InputError(f"treatment: no rows with the control label {control!r}")
    for col in uplift.columns:
        arm = col[len("uplift_"):] if isinstance(col, str) and col.startswith("uplift_") else col
        in_arm = labels == str(arm)
        if not in_arm.any():
            raise InputError(f"treatment: no rows with arm {arm!r} (column {col!r} of uplift)")
        mask = in_arm | is_control
        yield (arm, y[mask], np.asarray(uplift[col], dtype=float)[mask],
               in_arm[mask].astype(float), None if w is None else np.asarray(w, float)[mask])


def evaluate_uplift(y: Any, uplift: Any, treatment: Any, control: Any = "control",
                    sample_weight: Any = None, n_bootstrap: int = 200, alpha: float = 0.05,
                    random_state: int = 0, normalize: bool = True) -> pd.DataFrame:
    """Per treatment arm against control: the arm's overall effect, the unnormalised Qini area
    and AUUC / Qini with causalml's normalisation, each with an interval.

    `uplift` is a DataFrame with one column per treatment arm (as `UpliftModel.predict`
    returns), `treatment` the arm labels, `control` the control label. Each arm is scored on
    its own rows plus the control rows. Intervals are bootstrap percentiles (Poisson weights,
    `n_bootstrap` replicates, seeded). Returns one row per arm.

    causalml's normalisation divides by the curve's end |Q(N)|, i.e. by the arm's overall
    effect: when that effect cannot be told from zero (its Wald interval contains 0) the ratio
    explodes, so `qini` / `auuc` and their intervals are NaN there and `normalisation` says
    why; `qini_area` (mean of Q(k) minus the random line, divided by the number of customers:
    incremental outcomes per customer, unnormalised) is always given.
    """
    from scipy.stats import norm

    z = float(norm.ppf(1 - alpha / 2))
    rows = []
    for arm, ya, sa, ta, wa in _arm_views(y, uplift, treatment, control, sample_weight):
        row = {"arm": arm, "n_treated": int(ta.sum()), "n_control": int((1 - ta).sum())}
        w = np.ones(len(ya)) if wa is None else np.asarray(wa, float)
        t, c = ta == 1, ta == 0
        mt, mc = np.average(ya[t], weights=w[t]), np.average(ya[c], weights=w[c])
        vt = np.average((ya[t] - mt) ** 2, weights=w[t]) / max(w[t].sum() - 1, 1)
        vc = np.average((ya[c] - mc) ** 2, weights=w[c]) / max(w[c].sum() - 1, 1)
        eff, se = float(mt - mc), float(np.sqrt(vt + vc))
        distinguishable = bool(abs(eff) > z * se)
        row.update({"effect": eff, "effect_low": eff - z * se, "effect_high": eff + z * se,
                    "distinguishable": distinguishable})
        total = float(w.sum())
        raw = bootstrap_scores(ya, sa, ta, wa, n_bootstrap=n_bootstrap,
                               random_state=random_state, normalize=False)
        area = raw["qini"][np.isfinite(raw["qini"])] / total
        row["qini_area"] = qini_score(ya, sa, ta, wa, normalize=False) / total
        row["qini_area_low"], row["qini_area_high"] = (
            (float(np.quantile(area, alpha / 2)), float(np.quantile(area, 1 - alpha / 2)))
            if len(area) else (np.nan, np.nan))
        normalise = normalize and distinguishable
        row["normalisation"] = (
            "causalml: curve divided by |Q(N)| (the arm's overall effect)" if normalise else
            ("none asked" if not normalize else
             "none: the arm's overall effect cannot be told from zero, dividing by it would "
             "explode; see qini_area"))
        boot = bootstrap_scores(ya, sa, ta, wa, n_bootstrap=n_bootstrap,
                                random_state=random_state, normalize=normalize) \
            if normalise else None
        for key, fn in (("auuc", auuc_score), ("qini", qini_score)):
            if boot is None and normalize:
                row[key] = row[f"{key}_low"] = row[f"{key}_high"] = row[f"{key}_se"] = np.nan
                continue
            reps = boot[key] if boot is not None else raw[key]
            rep = reps[np.isfinite(reps)]
            row[key] = fn(ya, sa, ta, wa, normalize=normalize)
            lo, hi = (np.quantile(rep, [alpha / 2, 1 - alpha / 2]) if len(rep)
                      else (np.nan, np.nan))
            row[f"{key}_low"], row[f"{key}_high"] = float(lo), float(hi)
            row[f"{key}_se"] = float(rep.std(ddof=1)) if len(rep) > 1 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def uplift_by_decile(y: Any, uplift: Any, treatment: Any, control: Any = "control",
                     sample_weight: Any = None, n_bins: int = 10, alpha: float = 0.05
                     ) -> pd.DataFrame:
    """Calibration table: per arm and bin of predicted uplift, predicted vs observed uplift.

    Rows of the arm and of control are sorted by predicted uplift (descending) and cut into
    `n_bins` bins of equal weight (bin 1 = highest predicted uplift); tied scores stay in one bin
    (a tie block goes to the bin of its midpoint). Per bin: the mean predicted uplift, the
    observed difference (treated mean - control mean, weighted means when weighted) and its
    normal interval with the unpooled standard error sqrt(s_t²/n_t + s_c²/n_c) (s² with n-1;
    with weights, n is the summed weight). Bins with fewer than 2 rows in an arm get NaN.
    """
    from scipy.stats import norm

    z = norm.ppf(1 - alpha / 2)
    frames = []
    for arm, ya, sa, ta, wa in _arm_views(y, uplift, treatment, control, sample_weight):
        w = np.ones(len(ya)) if wa is None else wa
        order, ends = _order_and_ends(sa)
        cw = np.cumsum(w[order])
        starts = np.r_[0.0, cw[ends][:-1]]
        mid = (starts + cw[ends]) / 2
        block_bin = np.minimum((mid / cw[-1] * n_bins).astype(int), n_bins - 1)
        block_id = np.repeat(np.arange(len(ends)), np.diff(np.r_[-1, ends]))
        bins = np.empty(len(ya), dtype=int)
        bins[order] = block_bin[block_id]

        def agg(vals: np.ndarray, mask: np.ndarray) -> np.ndarray:
            return np.bincount(bins[mask], weights=vals[mask], minlength=n_bins)

        tmask, cmask = ta == 1, ta == 0
        nt, nc = agg(w, tmask), agg(w, cmask)
        with np.errstate(divide="ignore", invalid="ignore"):
            mt, mc = agg(w * ya, tmask) / nt, agg(w * ya, cmask) / nc
            vt = (agg(w * ya**2, tmask) - nt * mt**2) / (nt - 1)
            vc = (agg(w * ya**2, cmask) - nc * mc**2) / (nc - 1)
            se = np.sqrt(np.maximum(vt, 0) / nt + np.maximum(vc, 0) / nc)
            pred = np.bincount(bins, weights=w * sa, minlength=n_bins) / np.bincount(
                bins, weights=w, minlength=n_bins)
        small = (nt < 2) | (nc < 2)
        obs = np.where(small, np.nan, mt - mc)
        se = np.where(small, np.nan, se)
        frames.append(pd.DataFrame({
            "arm": arm, "bin": np.arange(1, n_bins + 1), "n_treated": nt, "n_control": nc,
            "predicted": pred, "observed": obs, "se": se,
            "ci_low": obs - z * se, "ci_high": obs + z * se,
            "treated_mean": mt, "control_mean": mc}))
    return pd.concat(frames, ignore_index=True)
