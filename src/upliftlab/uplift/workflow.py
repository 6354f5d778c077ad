"""Fit, cross-validate and save an uplift model in one call: what `upliftlab model fit` does.

Compares learners on the same folds, refits the chosen one on all rows, and writes the model
with its comparison table, calibration deciles, Qini plots and out-of-fold scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


OOF_SCORES = "oof_scores.parquet"


@dataclass(frozen=True)
class FitSummary:
    """What `fit_and_save` did: the comparison table, the chosen learner and the folder."""

    table: pd.DataFrame
    chosen: str
    out: Path
    folds: int
    n_bootstrap: int


def fit_and_save(X: pd.DataFrame, y: Any, treatment: Any, *, control: Any, outcome: str,
                 out: str | Path, learner: str = "auto", folds: int = 5,
                 n_bootstrap: int = 200, propensity: Any = None, seed: int = 0,
                 n_jobs: int = 1, outcome_name: str = "y",
                 learners: tuple[str, ...] | None = None) -> FitSummary:
    """Cross-fit the candidate learners, keep the best by mean Qini (or `learner`), refit it on
    all rows and write the model folder (replaced whole, atomically).

    The folder holds model.pkl + model.json, comparison.csv/.json (learner x arm, Qini/AUUC with
    bootstrap intervals, fit time, memory), deciles.csv (predicted vs observed uplift, out of
    fold), qini_<arm>.png, and oof_scores.parquet: for every training row its out-of-fold scores
    (customer_id = X's index, base, uplift_<arm>), its arm and its outcome, which is what an
    honest off-policy evaluation (`upliftlab policy --data`) needs.
    """
    from upliftlab._files import claim, staged_dir
    from upliftlab.metrics import uplift_by_decile
    from upliftlab.uplift import LEARNERS, UpliftModel, compare_learners
    from upliftlab.uplift.persist import MODEL_FILES, write_model_files
    from upliftlab.uplift.io import scores_frame

    y = np.asarray(y, dtype=float)
    treatment = np.asarray(treatment).astype(str)
    # refuse a folder that is not a model (a world, a report) before the long cross-fitting
    out = claim(out, "model", MODEL_FILES)
    # validate the data (arms, outcome, features) once, before the long cross-fitting
    UpliftModel(control=control, outcome=outcome)._check_y(y, len(y))
    if learner == "auto":
        pool = learners or LEARNERS
        candidates = [name for name in pool if outcome == "binary" or name != "urf"]
    else:
        candidates = [learner]
    comp = compare_learners(X, y, treatment, learners=candidates, folds=folds, control=control,
                            outcome=outcome, propensity=propensity, n_bootstrap=n_bootstrap,
                            random_state=seed, n_jobs=n_jobs)
    chosen = comp.best("qini") if learner == "auto" else learner
    final = UpliftModel(control=control, learner=chosen, outcome=outcome, random_state=seed,
                        n_jobs=n_jobs).fit(X, y, treatment, propensity=propensity)
    table = comp.table.copy()
    table["chosen"] = table["learner"] == chosen
    deciles = uplift_by_decile(y, comp.predictions[chosen], treatment, control=str(control))
    oof = scores_frame(X.index.to_numpy(), comp.outcomes[chosen], final.control_,
                       final.treatment_arms_, outcome)
    oof["arm"] = treatment
    oof[outcome_name] = y
    oof["fold"] = comp.fold

    with staged_dir(out, owner="model", legacy=MODEL_FILES) as stage:
        write_model_files(final, stage, evaluation=table,
                          training_data=(X, pd.Series(y), pd.Series(treatment)))
        table.to_csv(stage / "comparison.csv", index=False)
        table.to_json(stage / "comparison.json", orient="records", indent=2)
        deciles.to_csv(stage / "deciles.csv", index=False)
        oof.to_parquet(stage / OOF_SCORES, index=False)
        qini_plots(y, treatment, str(control), comp.predictions, stage)
    return FitSummary(table, chosen, out, folds, n_bootstrap)


def qini_plots(y: np.ndarray, treatment: np.ndarray, control: str,
               predictions: dict[str, pd.DataFrame], folder: Path) -> list[Path]:
    """One Qini plot per treatment arm (every learner's out-of-fold curve, and random)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from upliftlab.metrics import qini_curve

    written = []
    arms = list(next(iter(predictions.values())).columns)
    for arm in arms:
        rows = np.isin(treatment, [arm, control])
        # causalml sets a global matplotlib style on import: draw in the default one
        with plt.style.context("default"):
            fig, ax = plt.subplots(figsize=(6.4, 4.2))
            for name, pred in predictions.items():
                c = qini_curve(y[rows], pred[arm].to_numpy()[rows],
                               (treatment[rows] == arm).astype(int))
                ax.plot(c.x / c.x[-1], c.y, lw=1.2, label=name)
            ax.plot([0, 1], [0, c.y[-1]], "k--", lw=1, label="random")
            ax.set_xlabel("fraction targeted (by predicted uplift, out of fold)")
            ax.set_ylabel("incremental outcomes (Qini)")
            ax.set_title(f"{arm} vs {control}", fontsize=11)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=9)
            fig.tight_layout()
            safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(arm))
            path = folder / f"qini_{safe}.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
            written.append(path)
    return written
