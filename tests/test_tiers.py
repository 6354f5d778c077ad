"""The two test tiers: `pytest` runs everything, `pytest -m "not slow"` the fast tier (under a
minute). The marker is registered and strictly checked, real-data tests are always slow, and the
fast tier keeps at least one test of every test file that is not slow by nature."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
# files whose every test is slow by nature: they read the real data, or all share a fixture that
# fits models or simulates large worlds (their areas keep fast tests in other files)
ALL_SLOW = {"test_hillstrom.py", "test_uplift_hillstrom.py", "test_faults.py",
            "test_policy_plan.py", "test_risk_sim.py", "test_programme.py",
            "test_progress_tty.py"}


def test_slow_is_registered_and_markers_are_strict(request):
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--strict-markers" in ini["addopts"].split()
    names = {m.split(":")[0] for m in ini["markers"]}
    assert {"slow", "realdata"} <= names
    assert any(m.startswith("slow:") for m in request.config.getini("markers"))


def test_a_test_reading_the_real_data_is_marked_slow():
    import importlib.util

    # by path: the name `conftest` may be tests/spark's in a whole run
    spec = importlib.util.spec_from_file_location("_root_conftest", ROOT / "tests" / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)

    items = [SimpleNamespace(fixturenames=names, marks=[]) for names in
             (["tmp_path", "hillstrom"], ["hillstrom_path"], ["tmp_path"])]
    for it in items:
        it.add_marker = it.marks.append
    conftest.pytest_collection_modifyitems(items)
    assert [sorted(m.name for m in it.marks) for it in items] == [
        ["realdata", "slow"], ["realdata", "slow"], []]


@pytest.mark.slow
def test_the_fast_tier_keeps_a_test_of_every_test_file():
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "not slow",
                          "-p", "no:cacheprovider", str(ROOT / "tests")],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    fast = {Path(m).name for m in re.findall(r"^(tests/[^:]+\.py)::", out.stdout, re.M)}
    files = {p.name for p in (ROOT / "tests").glob("test_*.py")}
    assert files - ALL_SLOW - fast == set()
    assert fast & ALL_SLOW == set()
