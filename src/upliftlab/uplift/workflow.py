"""Fit, cross-validate and save an uplift model in one call: what `upliftlab model fit` does.

Compares candidates (learner x base-model capacity) on the same folds, chooses per arm by the
cross-fitted policy value, refits on all rows, and writes the model with its comparison table,
the choice and its reasons, calibration deciles, Qini plots and out-of-fold scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


OOF_SCORES = "oof_scores.parquet"


@dataclass(frozen=True)
class FitSummary:
    """What `fit_and_save` did: the comparison table, the learner per arm and why, the folder."""

    table: pd.DataFrame
    chosen: str
    out: Path
    folds: int
    n_bootstrap: int
    per_arm: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    effects: pd.DataFrame | None = None


def fit_and_save(X: pd.DataFrame, y: Any, treatment: Any, *, control: Any, outcome: str,
                 out: str | Path, learner: str = "auto", folds: int = 3,
                 n_bootstrap: int = 200, propensity: Any = None, seed: int = 0,
                 n_jobs: int = 2, outcome_name: str = "y",
                 learners: tuple[str, ...] | None = None,
                 base_models: tuple[str, ...] | None = None) -> FitSummary:
    """Cross-fit the candidates (learners x base-model capacities, `upliftlab.uplift.select`),
    choose per arm the one whose induced policy earns the most out of fold (or use `learner`),
    refit the per-arm model on all rows and write the model folder (replaced whole,
    atomically). `n_jobs` worker processes run the cross-fits (one LightGBM thread each).

    3 folds by default: every candidate is fitted once per fold, so 5 folds cost twice the
    fits of 3 (4 vs 2 training sets' worth of rows); 3 folds keep `model fit` within minutes at
    100k customers (benchmarks/RESULTS.md `uplift_fit_time`).

    The folder holds model.pkl + model.json, selection.json (the learner per arm, why, and
    each arm's average effect), comparison.csv/.json (candidate x arm: cross-fitted policy
    value, the unnormalised Qini area and Qini/AUUC with causalml's normalisation where the
    arm's effect can be told from zero, bootstrap intervals, fit time, memory), deciles.csv
    (predicted vs observed uplift of the chosen model, out of fold), qini_<arm>.png, and
    oof_scores.parquet: for every training row its out-of-fold scores of the chosen model
    (customer_id = X's index, base, uplift_<arm>), its arm and outcome, and its fold, which
    is what an honest off-policy evaluation (`upliftlab policy --data`) needs.
    """
    import json

    from upliftlab._files import claim, staged_dir
    from upliftlab.metrics import evaluate_uplift, uplift_by_decile
    from upliftlab.uplift import UpliftModel
    from upliftlab.uplift.persist import MODEL_FILES, write_model_files
    from upliftlab.uplift.io import scores_frame
    from upliftlab.uplift.learners import DEFAULT_BASE
    from upliftlab.uplift.select import DEFAULT_BASE_MODELS, DEFAULT_LEARNERS, select_per_arm

    y = np.asarray(y, dtype=float)
    treatment = np.asarray(treatment).astype(str)
    # refuse a folder that is not a model (a world, a report) before the long cross-fitting
    out = claim(out, "model", MODEL_FILES)
    # validate the data (arms, outcome, features) once, before the long cross-fitting
    UpliftModel(control=control, outcome=outcome)._check_y(y, len(y))
    if learner == "auto":
        pool = tuple(learners or DEFAULT_LEARNERS)
        grid = tuple(base_models or DEFAULT_BASE_MODELS)
    else:
        pool, grid = (learner,), tuple(base_models or (DEFAULT_BASE,))
    pool = tuple(name for name in pool if outcome == "binary" or name != "urf")
    sel = select_per_arm(X, y, treatment, control=control, outcome=outcome, learners=pool,
                         base_models=grid, folds=folds, propensity=propensity,
                         random_state=seed, n_jobs=n_jobs)
    parts = []
    for cand, pred in sel.predictions.items():
        q = evaluate_uplift(y, pred, treatment, control=str(control), n_bootstrap=n_bootstrap,
                            random_state=seed)
        q.insert(0, "learner", cand)
        parts.append(q)
    table = pd.concat(parts, ignore_index=True).merge(sel.table, on=["learner", "arm"])
    same = set(sel.chosen.values())
    final = UpliftModel(control=control, learner=same.pop() if len(same) == 1 else sel.chosen,
                        outcome=outcome, calibration=sel.calibration_map(),
                        random_state=seed, n_jobs=1).fit(X, y, treatment,
                                                              propensity=propensity)
    deciles = uplift_by_decile(y, sel.uplift, treatment, control=str(control))
    oof = scores_frame(X.index.to_numpy(), sel.outcomes, final.control_,
                       final.treatment_arms_, outcome)
    oof["arm"] = treatment
    oof[outcome_name] = y
    oof["fold"] = sel.fold
    reasons = sel.reasons()
    selection = {"per_arm": sel.chosen, "reasons": reasons, "base_from": sel.base_from,
                 "candidates": list(sel.predictions), "folds": folds,
                 "criterion": ("cross-fitted doubly robust budgeted value: per arm, the mean "
                               "over budgets treating 5%, 10%, ..., 100% of the customers (those "
                               "ranked highest) of their doubly robust gain over as many treated "
                               "at random, per customer; summed over the arms "
                               "(upliftlab.uplift.select; STATS-NOTES, Choosing a learner)"),
                 "effects": sel.effects.to_dict(orient="records"),
                 "rule": sel.rule.to_dict(orient="records"),
                 "calibration": (None if sel.calibration is None else
                                 sel.calibration.to_dict(orient="records")),
                 "calibration_note": ("per arm, uplift = ate + slope x (model uplift - center): "
                                      "the best linear predictor of the doubly robust effect from "
                                      "the out-of-fold uplift, slope kept in [0, 1] (0: the "
                                      "model's ranking carries no signal out of fold, the arm's "
                                      "average effect is used)")}

    with staged_dir(out, owner="model", legacy=MODEL_FILES) as stage:
        write_model_files(final, stage, evaluation=table,
                          training_data=(X, pd.Series(y), pd.Series(treatment)))
        table.to_csv(stage / "comparison.csv", index=False)
        table.to_json(stage / "comparison.json", orient="records", indent=2)
        (stage / "selection.json").write_text(json.dumps(selection, indent=2, default=float))
        deciles.to_csv(stage / "deciles.csv", index=False)
        oof.to_parquet(stage / OOF_SCORES, index=False)
        qini_plots(y, treatment, str(control), {**sel.predictions, "chosen": sel.uplift}, stage)
    return FitSummary(table, final.learner_, out, folds, n_bootstrap, sel.chosen, reasons,
                      sel.effects)


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
                ax.plot(c.x / c.x[-1], c.y, lw=2.4 if name == "chosen" else 1.0, label=name)
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
