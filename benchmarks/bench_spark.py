"""Benchmark: the heavy steps on Apache Spark (local mode) beside DuckDB, on the same data in the
same run, each step's outputs checked equal: cohort, assignment, outcomes + the report's
sufficient statistics, scoring, allocation.

On this machine (2 cores) Spark runs `local[2]`: it proves that the two engines give the same
answers at a size beyond the tests, not that Spark is fast; Spark pays off when the data does not
fit one machine, or when executors outnumber one machine's cores. Size: --customers (default
1M here: about ten minutes with the world's simulation); the issue's 10M:

    PYTHONPATH=src .venv/bin/python benchmarks/bench_spark.py --customers 10000000 \\
        --master local[*]          # or spark://host:7077 (the data path must be shared)

The world is simulated once into benchmarks/_work/world_<n>/ (kept for the next run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import WORK, record  # noqa: E402

ARMS = {"control": 0.4, "coupon": 0.2, "content": 0.2, "advisor": 0.2}
COSTS = dict(cost_per_contact={"coupon": 0.10, "content": 0.02, "advisor": 4.0},
             cost_per_conversion={"coupon": 10.0, "content": 0.0, "advisor": 0.0})
FEATURES = ["days_since_last", "orders_total", "revenue_365d", "tenure_days"]


def _hwm_mib(pid: int | str = "self") -> float:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _jvm_pids() -> list[int]:
    """The JVMs this process started (Spark's driver in local mode), by walking /proc."""
    me, out = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            cmd = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if b"java" in cmd and ppid in (me, *out):
            out.append(int(entry.name))
    return out


def world(n: int) -> tuple[Path, str]:
    from upliftlab.cli import main

    folder = WORK / f"world_{n}"
    if not (folder / "world.json").exists():
        try:
            main(["simulate", "--n-customers", str(n), "--seed", "0", "--out", str(folder),
                  "--force"])
        except SystemExit as exc:
            if exc.code:
                raise
    return folder, json.loads((folder / "world.json").read_text())["campaign_date"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="2g",
                        help="spark.driver.memory (in local mode the executors' memory too)")
    parser.add_argument("--quick", action="store_true", help="20k customers, printed only")
    args = parser.parse_args()
    n = 20_000 if args.quick else args.customers
    os.environ.setdefault("UPLIFTLAB_QUIET", "1")

    import numpy as np
    import pandas as pd

    import upliftlab as ul
    from upliftlab.assign import Design, assign
    from upliftlab.cli import main as cli
    from upliftlab.cohort import write_cohort
    from upliftlab.engine.spark import SparkEngine, local_session
    from upliftlab.engine.spark_allocate import allocate_spark, write_plan_spark
    from upliftlab.engine.spark_assign import assign_spark
    from upliftlab.engine.spark_score import write_scores_spark
    from upliftlab.engine.spark_steps import aggregate_spark, outcomes_spark, write_cohort_spark
    from upliftlab.policy import BudgetedPolicy, allocate
    from upliftlab.sources import connect
    from upliftlab.stats.sql import aggregate, needed_pairs
    from upliftlab.uplift import UpliftModel, save_model
    from upliftlab.uplift.io import score_file

    load = os.getloadavg()[0]
    t = time.perf_counter()
    folder, as_of = world(n)
    simulate_s = time.perf_counter() - t
    tx = folder / "transactions.parquet"
    out = WORK / f"spark_{n}"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        if old.is_file():
            old.unlink()
    rows: list[tuple[str, float, float, str]] = []

    t = time.perf_counter()
    engine = SparkEngine(local_session(args.master, app_name="upliftlab-bench",
                                         conf={"spark.driver.memory": args.driver_memory}))
    engine.spark.sparkContext.setLogLevel("OFF")
    startup = time.perf_counter() - t

    def both(step: str, duck, spark, check) -> None:
        t0 = time.perf_counter()
        d = duck()
        t1 = time.perf_counter()
        s = spark()
        t2 = time.perf_counter()
        rows.append((step, t1 - t0, t2 - t1, check(d, s)))
        print(f"{step}: duckdb {t1 - t0:.1f} s, spark {t2 - t1:.1f} s, {rows[-1][3]}",
              flush=True)

    # 1. cohort
    def cohort_check(_d, _s) -> str:
        d = pd.read_parquet(out / "cohort_duckdb.parquet").sort_values("customer_id")
        s = pd.read_parquet(out / "cohort_spark.parquet").sort_values("customer_id")
        assert list(d.columns) == list(s.columns) and len(d) == len(s)
        worst = 0.0
        for col in d.columns:
            if pd.api.types.is_float_dtype(d[col]):
                diff = np.abs(s[col].to_numpy(float) - d[col].to_numpy(float))
                worst = max(worst, float(np.nanmax(diff / np.maximum(1, np.abs(d[col])))))
            else:
                assert s[col].astype(str).tolist() == d[col].astype(str).tolist(), col
        assert worst <= 1e-9, worst
        return f"{len(d):,} customers, equal (floats within {worst:.0e})"

    both("cohort", lambda: write_cohort(str(tx), as_of, out / "cohort_duckdb.parquet"),
         lambda: write_cohort_spark(str(tx), as_of, out / "cohort_spark.parquet", engine=engine),
         cohort_check)
    cohort = pd.read_parquet(out / "cohort_duckdb.parquet")

    # 2. assignment (stratified by tier, capacity, 5% global holdout)
    design = Design.of("bench-2026q1", ARMS, strata=("tier",),
                       capacity={"advisor": len(cohort) // 8}, holdout_share=0.05)

    def assign_spark_run():
        frame, _ = assign_spark(engine, str(out / "cohort_spark.parquet"), design)
        frame.write.mode("overwrite").parquet(str(out / "assigned_spark"))

    def assign_check(d, _s) -> str:
        s = pd.read_parquet(out / "assigned_spark").set_index("customer_id").sort_index()
        w = d.frame.assign(customer_id=d.frame["customer_id"].astype(str)).set_index(
            "customer_id").sort_index()
        assert s.index.equals(w.index) and s["arm"].tolist() == w["arm"].tolist()
        return f"{len(s):,} customers, every arm equal"

    both("assignment", lambda: assign(cohort[["customer_id", "tier"]], design),
         assign_spark_run, assign_check)
    assigned = assign(cohort[["customer_id", "tier"]], design).frame
    assigned.to_parquet(out / "assigned.parquet", index=False)
    # the simulator answers for treated and control customers; the holdout is not contacted
    assigned[assigned["arm"] != "holdout"].to_parquet(out / "contacted.parquet", index=False)

    # 3. outcomes and the report's sufficient statistics (per arm and tier)
    try:
        cli(["respond", "--world", str(folder), "--assignments", str(out / "contacted.parquet"),
             "--out", str(out / "post.parquet")])
    except SystemExit as exc:
        if exc.code:
            raise
    start = dt.date.fromisoformat(as_of)
    end = start + dt.timedelta(days=60)
    metrics, covs = ["reactivated", "revenue", "orders"], ["revenue_365d"]
    cov = cohort[["customer_id", "revenue_365d"]].astype({"customer_id": str})

    def stats_duck():
        o = ul.compute_outcomes(str(out / "assigned.parquet"), str(out / "post.parquet"),
                                start=start, as_of=end, window_days=60).merge(cov)
        con = connect()
        con.register("o", o)
        res = aggregate(con, "o", "arm", metrics + covs, needed_pairs(metrics, covs),
                        binary_check=metrics, segments=["stratum"])
        con.close()
        return res

    def stats_spark():
        engine.register(str(out / "assigned_spark"), "b_assigned")
        engine.register(str(out / "post.parquet"), "b_tx")
        engine.register(str(out / "cohort_spark.parquet"), "b_cohort")
        o = outcomes_spark(engine, "b_assigned", "b_tx", start=start, as_of=end, window_days=60)
        o.createOrReplaceTempView("b_o")
        engine.sql("SELECT o.*, c.revenue_365d FROM b_o o JOIN b_cohort c "
                   "ON o.customer_id = CAST(c.customer_id AS VARCHAR)"
                   ).createOrReplaceTempView("b_oc")
        return aggregate_spark(engine, "b_oc", "arm", metrics, covs, segments=["stratum"])

    def stats_check(d, s) -> str:
        pairs = [(s.arms[a], d.arms[a]) for a in d.arms]
        pairs += [(s.segments["stratum"][v][a], d.segments["stratum"][v][a])
                  for v in d.segments["stratum"] for a in d.segments["stratum"][v]]
        for x, y in pairs:
            assert (x.n, x.n_missing) == (y.n, y.n_missing)
            assert np.allclose(x.sums, y.sums, rtol=1e-9) and np.allclose(x.cross, y.cross,
                                                                            rtol=1e-9)
        return f"{len(pairs)} arm x segment groups, counts equal, sums within 1e-9"

    both("outcomes + sufficient statistics", stats_duck, stats_spark, stats_check)

    # 4. scoring: a small model fitted on a sample of the experiment, applied to everyone
    o = ul.compute_outcomes(str(out / "assigned.parquet"), str(out / "post.parquet"),
                            start=start, as_of=end, window_days=60)
    train = o[o["arm"] != "holdout"].merge(
        cohort.astype({"customer_id": str})[["customer_id", *FEATURES]])
    train = train.sample(min(len(train), 30_000), random_state=0)
    model = UpliftModel(learner="t", base_learner=dict(n_estimators=60, num_leaves=15)).fit(
        train[FEATURES], train["reactivated"], train["arm"].to_numpy())
    save_model(model, out / "model")
    customers = out / "cohort_duckdb.parquet"

    def score_check(_d, _s) -> str:
        d = pd.read_parquet(out / "scores_duckdb.parquet").sort_values("customer_id")
        s = pd.read_parquet(out / "scores_spark.parquet").sort_values("customer_id")
        assert d["customer_id"].tolist() == s["customer_id"].tolist()
        worst = float(np.abs(d.drop(columns="customer_id").to_numpy()
                             - s.drop(columns="customer_id").to_numpy()).max())
        assert worst <= 1e-12, worst
        return f"{len(d):,} customers, scores within {worst:.0e}"

    both("scoring", lambda: score_file(model, str(customers), str(out / "scores_duckdb.parquet")),
         lambda: write_scores_spark(model, customers, out / "scores_spark.parquet",
                                    engine=engine), score_check)

    # 5. allocation: budget for a tenth of the customers' best arm, advisor capped
    scores = pd.read_parquet(out / "scores_duckdb.parquet")
    arms = tuple(c[len("uplift_"):] for c in scores.columns if c.startswith("uplift_"))
    budget = 0.05 * len(scores)
    cap = {"advisor": len(scores) // 100}
    policy = BudgetedPolicy(arms=arms, budget=budget, capacity=cap, **COSTS)

    def alloc_duck():
        return allocate(scores["base"].to_numpy(), {a: scores[f"uplift_{a}"].to_numpy()
                                                    for a in arms}, arms=arms, budget=budget,
                        capacity=cap, lp_bound=False, **COSTS)

    def alloc_spark():
        res = allocate_spark(engine, str(out / "scores_spark.parquet"), policy)
        write_plan_spark(res, out / "plan_spark.parquet")
        return res

    def alloc_check(d, s) -> str:
        ratio = s.expected_value / d.expected_value
        assert ratio >= 1 - 5e-3 and s.expected_cost <= budget * (1 + 1e-12)
        return (f"value {ratio:.4%} of one machine's, gap to the dual bound "
                f"{s.gap_to_dual_bound:.1e} (one machine {d.gap_to_dual_bound:.1e}), "
                f"{s.passes} passes")

    both("allocation", alloc_duck, alloc_spark, alloc_check)

    jvm = [_hwm_mib(p) for p in _jvm_pids()]
    py_peak = _hwm_mib()
    engine.spark.stop()
    table = "\n".join(f"| {step} | {d:.1f} | {s:.1f} | {s / d:.1f}x | {check} |"
                      for step, d, s, check in rows)
    end_load = os.getloadavg()[0]
    if n >= 10_000_000:
        scale_note = (f"1-minute load average at the end: {end_load:.1f}. On a cluster: "
                      "`--master spark://host:7077` with benchmarks/_work on storage the "
                      "workers share.")
    else:
        scale_note = ("For the issue's 10M customers: `PYTHONPATH=src .venv/bin/python "
                      "benchmarks/bench_spark.py --customers 10000000 --driver-memory 8g` "
                      "(about 10x these times here), or `--master spark://host:7077` with "
                      "benchmarks/_work on storage the workers share.")
    section = "spark" if n < 10_000_000 else f"spark-{n // 1_000_000}M"
    md = f"""## {section}

The heavy steps on Spark `{args.master}` beside DuckDB, on the same simulated world in the same
run ({n:,} customers, {len(cohort):,} dormant; `benchmarks/bench_spark.py --customers {n}`),
every output checked equal. Seconds of each step (Spark's session start-up, {startup:.1f} s, not
included; the world's simulation took {simulate_s:.0f} s or was reused). 1-minute load
average {load:.1f} at the start: other engineers' work (and tests) shared the 2 cores, so the
times are noisy. **On 2 cores local mode proves equality, not speed**: Spark's overheads (planning, the
JVM and Python workers sharing two cores, Arrow transfers for `mapInPandas`, shuffles to local
disk) dominate here; DuckDB is one vectorised process.

| step | DuckDB s | Spark s | Spark / DuckDB | outputs |
|---|---:|---:|---:|---|
{table}

Peak memory: this Python process {py_peak / 1024:.2f} GiB (DuckDB and the driver's share),
Spark's JVM {max(jvm) / 1024 if jvm else float('nan'):.2f} GiB (driver memory {args.driver_memory} in local
mode). How the steps scale with executors: cohort, outcomes, statistics and scoring are one
pass over partitioned data plus a small aggregate (linear in data / executors); assignment is
two passes (counts, then a ranking window per stratum: a shuffle by stratum); allocation is a
sample on the driver plus up to 6 passes of per-candidate sums. Spark pays off when the
transactions exceed one machine's disk or memory, or with tens of executors; below that DuckDB
on one machine is faster. {scale_note}"""
    if args.quick:
        print(md)
    else:
        record(section, md)


if __name__ == "__main__":
    main()
