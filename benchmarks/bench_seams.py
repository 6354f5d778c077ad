"""The redesign of the seams (issues 12) against the code before it: each CLI step, old and new.

The same simulated data, each step in a fresh process (`PYTHONPATH=<tree>/src upliftlab ...`),
old and new interleaved step by step (the order alternating between repetitions), medians of
the repetitions. "Before" is the last commit on main before the session-3 branches (the seams
redesign among them) were merged; "after" is a commit of this branch (HEAD by default). Both are
checked out into temporary git worktrees, so the numbers are of committed code.

    nice -n -20 .venv/bin/python benchmarks/bench_seams.py [--reps 3] [--n-customers 30000]
        [--before d34978a] [--after HEAD]

The steps are those of scripts/demo.sh that both trees have (simulate, cohort, power, assign,
checks, export, respond, report, model fit on a small grid, model score, policy), and the
policy without --data: since "before", the policy with an experiment re-plans until the upper
bound of its off-policy cost fits the budget (policy/margin.py, a feature of session 3), so
only the step without --data does the same work in both trees. Each tree
runs the whole flow in its own folder, so neither reads what the other wrote; the world each
simulates is the same (same seed, checked equal). The load average before and after is recorded:
the machine is shared, and a step within ~15% of its old time is within noise there.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import record

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "upliftlab")
SPEC = "experiments/reactivation_2026q1.toml"
BEFORE = "d34978a"  # main before `Merge branch 's3-policy'`, the first session-3 merge
NOISE = 1.15        # ratio above which a step is called slower


def steps(n: int) -> list[tuple[str, list[str]]]:
    """(name, argv after `upliftlab`) per step; {d} is the run's folder, {spec} its spec, {b}
    the folder of the "before" tree's run of the same repetition."""
    return [
        ("simulate", ["simulate", "--n-customers", str(n), "--seed", "7", "--out", "{d}/world"]),
        ("cohort", ["cohort", "--transactions", "{d}/world/transactions.parquet", "--as-of",
                    "2026-01-05", "--out", "{d}/cohort.parquet"]),
        ("power", ["power", "{spec}", "--store", "{d}/s.duckdb"]),
        ("assign", ["assign", "{spec}", "--store", "{d}/s.duckdb"]),
        ("checks", ["checks", "{spec}", "--store", "{d}/s.duckdb"]),
        ("export", ["export", "{spec}", "--store", "{d}/s.duckdb", "--out", "{d}/contacts"]),
        ("respond", ["respond", "--world", "{d}/world", "--store", "{d}/s.duckdb",
                     "--experiment", "reactivation_2026q1", "--out",
                     "{d}/world/transactions_post.parquet", "--touches",
                     "{d}/world/touches.parquet"]),
        ("report", ["report", "{spec}", "--as-of", "2026-02-02", "--store", "{d}/s.duckdb",
                    "--out", "{d}/report"]),
        ("model fit", ["model", "fit", "{spec}", "--as-of", "2026-03-06", "--store",
                       "{d}/s.duckdb", "--candidates", "s,t", "--base-models", "large",
                       "--folds", "3", "--bootstrap", "20", "--out", "{d}/model"]),
        ("model score", ["model", "score", "--model", "{d}/model", "--customers",
                         "{d}/cohort.parquet", "--out", "{d}/scores.parquet"]),
        # the policy reads the same scores in both trees ({b}: the "before" run's folder), as
        # the models differ (session 3 calibrates each arm's uplift); without --data the same
        # work in both trees (the plan alone, no off-policy re-plans)
        ("policy, no --data", ["policy", "--scores", "{b}/model/oof_scores.parquet",
                               "--budget", "2000", "--cost", "coupon=0.10:10", "--cost",
                               "content=0.02", "--cost", "advisor=4", "--capacity", "advisor=300",
                               "--explore-budget", "5%", "--out", "{d}/policy-plain"]),
        ("policy", ["policy", "--scores", "{b}/model/oof_scores.parquet", "--data",
                    "{b}/model/oof_scores.parquet", "--budget", "2000", "--cost",
                    "coupon=0.10:10", "--cost", "content=0.02", "--cost", "advisor=4",
                    "--capacity", "advisor=300", "--explore-budget", "5%", "--customers",
                    "{b}/cohort.parquet", "--truth", "{b}/world/truth.parquet", "--out",
                    "{d}/policy"]),
    ]


def checkout(rev: str, where: Path) -> Path:
    """A detached temporary git worktree of `rev` at `where`."""
    subprocess.run(["git", "worktree", "add", "--detach", str(where), rev], cwd=ROOT,
                   check=True, capture_output=True)
    return where


def spec_for(tree: Path, d: Path) -> Path:
    """The tree's worked spec with its data paths pointed at the run folder `d`."""
    text = (tree / SPEC).read_text().replace("../reports/demo/world", str(d / "world"))
    out = d / "spec.toml"
    out.write_text(text)
    return out


def run_step(tree: Path, d: Path, b: Path, argv: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one CLI call with `tree`'s code, in a fresh
    process. CPU time hardly depends on what else the machine runs; wall time does."""
    args = [a.format(d=d, b=b, spec=d / "spec.toml") for a in argv]
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "UPLIFTLAB_QUIET": "1"}
    env.pop("UPLIFTLAB_STORE", None)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([CLI, *args], cwd=tree, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if proc.returncode != 0:  # counted as a failure of the step; the run goes on
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        print(f"{tree.name}: upliftlab {argv[0]} failed: {last}", flush=True)
        return float("nan"), float("nan")
    return seconds, cpu


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--n-customers", type=int, default=30_000)
    ap.add_argument("--before", default=BEFORE)
    ap.add_argument("--after", default="HEAD")
    a = ap.parse_args()
    revs = {name: subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True,
                                 capture_output=True, text=True).stdout.strip()
            for name, rev in (("before", a.before), ("after", a.after))}
    plan = steps(a.n_customers)
    times: dict[str, dict[str, list[float]]] = {s: {"before": [], "after": []} for s, _ in plan}
    cpus: dict[str, dict[str, list[float]]] = {s: {"before": [], "after": []} for s, _ in plan}
    tmp = Path(tempfile.mkdtemp(prefix="bench-seams-"))
    trees = {}
    load0 = os.getloadavg()
    t_start = time.perf_counter()
    try:
        for name, rev in revs.items():
            trees[name] = checkout(rev, tmp / f"tree-{name}")
        for rep in range(a.reps):
            order = ("before", "after") if rep % 2 == 0 else ("after", "before")
            dirs = {}
            for name in order:
                dirs[name] = tmp / f"run-{name}-{rep}"
                dirs[name].mkdir()
                spec_for(trees[name], dirs[name])
            for step, argv in plan:
                for name in order:
                    wall, cpu = run_step(trees[name], dirs[name], dirs["before"], argv)
                    times[step][name].append(wall)
                    cpus[step][name].append(cpu)
                print(f"rep {rep + 1}/{a.reps} {step}: " + ", ".join(
                    f"{n} {times[step][n][-1]:.2f} s (cpu {cpus[step][n][-1]:.2f})"
                    for n in order), flush=True)
            worlds = {n: digest(dirs[n] / "world" / "customers.parquet") for n in order}
            if len(set(worlds.values())) != 1:
                print("note: the two trees simulated different customers", flush=True)
            for name in order:
                shutil.rmtree(dirs[name])
    finally:
        for tree in trees.values():
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                           capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    load1 = os.getloadavg()
    total = time.perf_counter() - t_start

    rows, slower = [], []
    tot = {"before": 0.0, "after": 0.0, "cpu before": 0.0, "cpu after": 0.0}
    failed = {}
    for step, _ in plan:
        for k in ("before", "after"):
            bad = [t for t in times[step][k] if math.isnan(t)]
            if bad:
                failed[f"{step} ({k})"] = len(bad)
                times[step][k] = [t for t in times[step][k] if not math.isnan(t)] or [math.nan]
                cpus[step][k] = [t for t in cpus[step][k] if not math.isnan(t)] or [math.nan]
        b, n = (statistics.median(times[step][k]) for k in ("before", "after"))
        cb, cn = (statistics.median(cpus[step][k]) for k in ("before", "after"))
        tot["cpu before"] += cb
        tot["cpu after"] += cn
        tot["before"] += b
        tot["after"] += n
        ratio = n / b
        if ratio > NOISE and cn / cb > NOISE:  # slower by the clock and by the CPU
            slower.append(step)
        spread = (f"{min(times[step]['before']):.2f}-{max(times[step]['before']):.2f} / "
                  f"{min(times[step]['after']):.2f}-{max(times[step]['after']):.2f}")
        rows.append(f"| {step} | {b:.2f} | {n:.2f} | {ratio:.2f} | {cb:.2f} | {cn:.2f} | "
                    f"{cn / cb:.2f} | {spread} |")
    rows.append(f"| **all steps** | **{tot['before']:.2f}** | **{tot['after']:.2f}** | "
                f"**{tot['after'] / tot['before']:.2f}** | **{tot['cpu before']:.2f}** | "
                f"**{tot['cpu after']:.2f}** | **{tot['cpu after'] / tot['cpu before']:.2f}** | |")
    failures = ("" if not failed else " Calls that failed (left out of the medians): "
                + ", ".join(f"{k} x{v}" for k, v in failed.items()) + ".")
    verdict = ("no step slower than before beyond noise (wall or CPU ratio <= "
               f"{NOISE:.2f})" if not slower else
               f"slower beyond noise (wall and CPU ratio > {NOISE:.2f}): {', '.join(slower)}")
    record("seams", f"""### The seams redesign: each CLI step before and after (same run)

Before = `{revs['before']}` (main before the session-3 merges), after = `{revs['after']}`;
{a.n_customers:,} simulated customers, {a.reps} repetitions per step, old and new interleaved
step by step (order alternating), each call a fresh process; medians of the wall time and of
the CPU time (user + system of the process and its children; it hardly depends on the load)
(wall min-max in the last column). `nice -n -20 .venv/bin/python benchmarks/bench_seams.py --reps {a.reps}
--n-customers {a.n_customers}`.

| step | before s | after s | ratio | CPU before s | CPU after s | CPU ratio | wall min-max before / after |
|---|---:|---:|---:|---:|---:|---:|---|
{chr(10).join(rows)}

Verdict: {verdict}.{failures} Load average before {load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f}, after
{load1[0]:.2f} / {load1[1]:.2f} / {load1[2]:.2f} (1 / 5 / 15 min; the machine was shared with
other engineers' work and a Spark benchmark, so single steps vary by ~10-20% between calls);
whole run {total:.0f} s.""")


if __name__ == "__main__":
    main()
