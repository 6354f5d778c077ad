"""Shared fixtures: paths to the real data in ../shared/data (skipped, with the reason, when absent).

The two tiers: `pytest` runs everything (`make test`); `pytest -m "not slow"` the fast tier for the
edit-run loop. A test that reads the real data is marked `realdata` and `slow` here, so no real-data
test lands in the fast tier by accident; helpers shared by the test files are in `_helpers.py`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("UPLIFTLAB_SHARED_DATA", ROOT.parent / "shared" / "data"))
HILLSTROM = SHARED_DATA / "Kevin_Hillstrom_MineThatData_E-MailAnalytics_DataMiningChallenge_2008.03.20.csv.gz"


REAL_DATA_FIXTURES = {"hillstrom", "hillstrom_path"}


def pytest_collection_modifyitems(items):
    """Every test that reads ../shared/data (through the fixtures below): realdata and slow."""
    for item in items:
        if REAL_DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.realdata)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    """No progress bars in tests."""
    monkeypatch.setenv("UPLIFTLAB_QUIET", "1")


@pytest.fixture(scope="session")
def hillstrom_path() -> Path:
    """The Hillstrom e-mail experiment (64,000 customers, 3 arms) from ../shared/data."""
    if not HILLSTROM.exists():
        pytest.skip(f"real data not found at {HILLSTROM} (CI has ../shared/data beside the repo)")
    return HILLSTROM


@pytest.fixture(scope="session")
def hillstrom(hillstrom_path):
    import pandas as pd

    return pd.read_csv(hillstrom_path)
