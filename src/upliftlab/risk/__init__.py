"""Churn early warning: point-in-time training data, the risk model and its baselines, risk
levels, scoring and the at-risk cohort (`upliftlab risk fit|score`, `[cohort] kind = "at_risk"`).
"""

from upliftlab.risk.bgnbd import BetaGeoRisk
from upliftlab.risk.data import EventColumns, active_features, training_data
from upliftlab.risk.levels import RiskLevels
from upliftlab.risk.model import OverdueRule, RiskModel
from upliftlab.risk.workflow import (RiskFit, fit_risk, load_risk_model, save_risk_model,
                                     score_active)

__all__ = ["BetaGeoRisk", "EventColumns", "OverdueRule", "RiskFit", "RiskLevels", "RiskModel",
           "active_features", "fit_risk", "load_risk_model", "save_risk_model", "score_active",
           "training_data"]
