"""Experiment statistics: sufficient statistics that add up, and the tests run on them.

Pure functions of their inputs; the one SQL aggregate lives in `stats/sql.py`, I/O in callers.
Modules: sufficient (SampleStats, RegressionStats, CostStats, MomentStats), sql (the per-arm /
per-segment aggregate), tests (Wald proportions, Welch, delta-method relative lift), cuped
(CUPED, Lin), sequential (confidence sequences), multiple (Holm, BH, adjusted intervals),
cost (Fieller, ROI), segments (Cochran's Q), srm (sample-ratio mismatch).
"""
