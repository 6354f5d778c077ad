"""Shared helpers for benchmarks: timing, peak memory of a child process, and recording.

Each benchmark writes its own section of benchmarks/RESULTS.md between markers, so benchmarks
can be re-run one at a time without touching the others' results.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
WORK = HERE / "_work"  # generated data, git-ignored


def machine() -> str:
    """One line describing this machine, written beside every result."""
    cores = os.cpu_count()
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{platform.machine()}, {cores} cores, {mem_gib:.0f} GiB, "
            f"Python {platform.python_version()}")


def run_measured(code: str, *args: str) -> dict:
    """Run `code` (a Python snippet) in a fresh interpreter; return its wall time and peak RSS.

    The snippet may print one JSON object on its last stdout line; it is merged into the result.
    A child process gives an honest peak-memory figure (ru_maxrss of that process alone).
    """
    # VmHWM of the child itself: ru_maxrss would carry the parent's peak across fork+exec
    wrapper = (
        "import time, json, sys\n"
        "def _hwm_mib():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1]) / 1024\n"
        "    return float('nan')\n"
        "t0 = time.perf_counter()\n"
        f"exec(compile({code!r}, 'bench', 'exec'), {{'__name__': '__bench__'}})\n"
        "elapsed = time.perf_counter() - t0\n"
        "peak = _hwm_mib()\n"
        "print(json.dumps({'seconds': elapsed, 'peak_gib': peak / 1024, 'peak_mib': peak}))\n"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *args], check=True,
                         capture_output=True, text=True, env={**os.environ, "UPLIFTLAB_QUIET": "1"})
    lines = [ln for ln in out.stdout.strip().splitlines() if ln.startswith("{")]
    result: dict = {}
    for ln in lines:
        result.update(json.loads(ln))
    return result


def timed(fn, *args, repeat: int = 1, **kwargs) -> float:
    """Best wall-clock seconds of `repeat` calls."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args, **kwargs)
        best = min(best, time.perf_counter() - t0)
    return best


def record(section: str, markdown: str) -> None:
    """Replace (or append) the section `section` of RESULTS.md with `markdown`."""
    stamp = time.strftime("%Y-%m-%d")
    body = f"<!-- begin:{section} -->\n{markdown.rstrip()}\n\n_Recorded {stamp} on {machine()}._\n<!-- end:{section} -->"
    text = RESULTS.read_text() if RESULTS.exists() else (
        "# Benchmark results\n\nEach section is written by `benchmarks/bench_<name>.py` "
        "(`make bench` runs them all). Baselines are measured in the same run.\n")
    pattern = re.compile(rf"<!-- begin:{re.escape(section)} -->.*?<!-- end:{re.escape(section)} -->",
                         re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: body, text)
    else:
        text = text.rstrip() + "\n\n" + body + "\n"
    RESULTS.write_text(text)
    print(body)
