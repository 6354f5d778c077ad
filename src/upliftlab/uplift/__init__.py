"""Uplift models: per-customer incremental response to each treatment arm, with honest evaluation.

`UpliftModel` (fit/predict, many arms), cross-fitting and learner comparison (`crossfit`), and
saving/loading with metadata checks (`persist`).
"""

from __future__ import annotations

from upliftlab.uplift.crossfit import Comparison, compare_learners, cross_fit_predict
from upliftlab.uplift.learners import LEARNERS
from upliftlab.uplift.model import DEFAULT_LEARNER, UpliftModel
from upliftlab.uplift.persist import load_model, read_metadata, save_model

__all__ = ["UpliftModel", "DEFAULT_LEARNER", "LEARNERS", "cross_fit_predict", "compare_learners",
           "Comparison", "save_model", "load_model", "read_metadata"]
