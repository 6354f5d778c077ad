"""Experiment statistics: sufficient statistics that add up, and the tests run on them.

Pure functions of their inputs; SQL aggregation and I/O live in the callers.
"""
