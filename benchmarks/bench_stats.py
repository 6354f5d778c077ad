"""Benchmark: the statistics engine (`analyze`) on 1M and 10M customers x 4 arms x 3 metrics.

Baselines in the same run over the same Parquet file: the bare DuckDB aggregate (count, sum,
sum of squares per arm and metric: the floor) and a plain pandas groupby (mean/var/count).
Plus a whole weekly report (segments, costs, plots) for 10M customers. Each step runs in a
child process; the step's own time is measured inside it (imports excluded), the peak RSS is
the child's. Targets: engine within 3x of the floor; the whole report in under 30 s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import WORK, record, run_measured  # noqa: E402

ARMS = ["control", "content", "coupon", "advisor"]
METRICS = ["reactivated", "revenue", "orders"]

FLOOR = """
import duckdb, json, resource, sys, time
con = duckdb.connect()
con.execute("SET preserve_insertion_order = false")
times = []
for _ in range(3):
    _t0 = time.perf_counter()
    rows = con.execute(f'''SELECT arm, count(*),
        sum(reactivated), sum(reactivated * reactivated),
        sum(revenue), sum(revenue * revenue), sum(orders), sum(orders * orders)
      FROM read_parquet('{sys.argv[1]}') GROUP BY arm''').fetchall()
    times.append(time.perf_counter() - _t0)
print(json.dumps({"step": min(times), "first": times[0], "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

ENGINE = """
import json, resource, sys, time
from upliftlab.analysis import analyze
import duckdb, scipy.stats, upliftlab.stats.sequential, upliftlab.stats.multiple  # imports excluded
times = []
for _ in range(3):
    _t0 = time.perf_counter()
    res = analyze(sys.argv[1], arm="arm", control="control",
                  metrics=["reactivated", "revenue", "orders"], analysis="sequential")
    res.to_dict()
    times.append(time.perf_counter() - _t0)
print(json.dumps({"step": min(times), "first": times[0], "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

PANDAS = """
import json, resource, sys, time
import pandas as pd
_t0 = time.perf_counter()
df = pd.read_parquet(sys.argv[1], columns=["arm", "reactivated", "revenue", "orders"])
_t1 = time.perf_counter()
agg = df.groupby("arm")[["reactivated", "revenue", "orders"]].agg(["mean", "var", "count"])
print(json.dumps({"step": time.perf_counter() - _t0, "read": _t1 - _t0,
                  "groupby": time.perf_counter() - _t1, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

REPORT = """
import json, resource, sys, time
from upliftlab.analysis import analyze
from upliftlab.report import write_report
import duckdb, scipy.stats, jinja2, matplotlib.pyplot  # imports excluded
_t0 = time.perf_counter()
res = analyze(sys.argv[1], arm="arm", control="control",
              metrics=["reactivated", "revenue", "orders"], segments=["tier"],
              costs={"content": (0.05, 0.0), "coupon": (0.1, 10.0), "advisor": (4.0, 0.0)},
              analysis="sequential", experiment="bench", as_of="2026-03-02")
write_report(res, sys.argv[2])
print(json.dumps({"step": time.perf_counter() - _t0, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_data(path: Path, n: int, seed: int = 7) -> None:
    """n customers: arm (string), reactivated (0/1), revenue, orders, tier."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    writer = None
    arms = np.array(ARMS)
    tiers = np.array(["short", "mid", "long"])
    lift = np.array([0.0, 0.004, 0.012, 0.02])
    for lo in range(0, n, 1_000_000):
        m = min(1_000_000, n - lo)
        a = rng.integers(0, 4, m)
        y = (rng.random(m) < 0.03 + lift[a]).astype(np.int8)
        orders = y * (1 + rng.poisson(0.7, m)).astype(np.int32)
        revenue = np.round(orders * rng.gamma(2.0, 25.0, m), 2)
        table = pa.table({"customer_id": np.arange(lo, lo + m, dtype=np.int64),
                          "arm": arms[a], "reactivated": y, "revenue": revenue,
                          "orders": orders, "tier": tiers[rng.integers(0, 3, m)]})
        if writer is None:
            writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
        writer.write_table(table)
    writer.close()
    tmp.rename(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small smoke run (100k customers)")
    args = parser.parse_args()
    sizes = [100_000] if args.quick else [1_000_000, 10_000_000]
    lines, ratios = [], {}
    report_s = report_rss = None
    for n in sizes:
        path = WORK / "stats" / f"experiment_{n // 1000}k.parquet"
        make_data(path, n)
        floor = run_measured(FLOOR, str(path))
        engine = run_measured(ENGINE, str(path))
        pandas = run_measured(PANDAS, str(path))
        ratios[n] = engine["step"] / floor["step"]
        lines.append(f"| {n:,} | {floor['step']:.3f} ({floor['first']:.3f}) | "
                     f"{engine['step']:.3f} ({engine['first']:.3f}; **{ratios[n]:.1f}x**) | {pandas['step']:.2f} (read {pandas['read']:.2f} "
                     f"+ groupby {pandas['groupby']:.2f}) | {floor['rss']:.0f} / "
                     f"{engine['rss']:.0f} / {pandas['rss']:.0f} MiB |")
        if n == sizes[-1]:
            out = WORK / "stats" / f"report_{n // 1000}k"
            rep = run_measured(REPORT, str(path), str(out))
            report_s, report_rss = rep["step"], rep["rss"]
    big = sizes[-1]
    ok_ratio = ratios[big] <= 3.0
    ok_report = report_s < 30
    md = f"""## stats

`analyze` (sequential, 3 metrics: 0/1, revenue, orders; 4 arms) over a Parquet file, against the
bare DuckDB aggregate over the same file (count, sum, sum of squares per arm and metric: the
floor) and a plain pandas groupby (read the 4 columns + mean/var/count). Seconds of the step
itself, imports excluded (floor and engine: best of 3 runs in one process, the first run in
brackets; pandas: one run), each in its own process; peak RSS of that process.

| customers | floor (s) | engine `analyze` (s; / floor) | pandas (s) | peak RSS floor / engine / pandas |
|---:|---:|---:|---:|---:|
{chr(10).join(lines)}

Whole weekly report for {big:,} customers (`analyze` with a segment column and costs for three
arms, then `write_report`: json, md, html with four figures): **{report_s:.2f} s**, peak
{report_rss:.0f} MiB (target < 30 s: {'met' if ok_report else 'NOT met'}). Engine / floor at
{big:,}: {ratios[big]:.2f}x (target <= 3x: {'met' if ok_ratio else 'NOT met'}).
{'' if not args.quick else chr(10) + '_Quick smoke run (--quick), not the full benchmark._'}"""
    if args.quick:
        print(md)
    else:
        record("stats", md)


if __name__ == "__main__":
    main()
