"""Benchmark: simulate a 1M-customer world and write its Parquet files, against the bare cost of
drawing as many random transaction rows with numpy and writing them with pyarrow.

Leaves the world in benchmarks/_work/world_1m/ for the cohort benchmark (--quick: a 50k world
in benchmarks/_work/world_quick/, results printed, not recorded).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import WORK, record, run_measured  # noqa: E402

SIMULATE = """
import sys, time, json, resource
from upliftlab.simulate import simulate_world
n, out = int(sys.argv[1]), sys.argv[2]
t0 = time.perf_counter()
world = simulate_world(n, seed=0)
t1 = time.perf_counter()
world.write(out, force=True)
t2 = time.perf_counter()
print(json.dumps({"generate_s": t1 - t0, "write_s": t2 - t1, "rows": len(world.transactions),
                  "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

# peak RSS is measured in the snippet itself (ru_maxrss is KiB on Linux): _common.run_measured
# reports it in GiB under the name peak_mib at the time of writing
# the floor: the same number of rows of plain random numbers in the same schema, one pass,
# written with the same Parquet settings
BASELINE = """
import sys, time, json, resource
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
n, rows, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
t0 = time.perf_counter()
rng = np.random.default_rng(0)
cust = np.sort(rng.integers(1, n + 1, rows))
ts = np.datetime64("2024-01-06", "s") + rng.integers(0, 730 * 86400, rows).astype("timedelta64[s]")
table = pa.table({
    "customer_id": cust,
    "ts": pa.array(ts, pa.timestamp("s")),
    "amount": np.round(rng.lognormal(3.8, 0.6, rows), 2),
    "discount_used": rng.random(rows) < 0.2,
    "category": pa.DictionaryArray.from_arrays(
        rng.integers(0, 5, rows).astype(np.int8),
        pa.array(["apparel", "home", "beauty", "electronics", "grocery"])),
})
t1 = time.perf_counter()
pq.write_table(table, out, compression="zstd", row_group_size=1 << 20)
print(json.dumps({"generate_s": t1 - t0, "write_s": time.perf_counter() - t1, "rows": rows,
                  "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="50k customers, print only")
    args = ap.parse_args()
    n = 50_000 if args.quick else 1_000_000
    out = WORK / ("world_quick" if args.quick else "world_1m")
    WORK.mkdir(parents=True, exist_ok=True)

    sim = run_measured(SIMULATE, str(n), str(out))
    base = run_measured(BASELINE, str(n), str(sim["rows"]), str(WORK / "baseline_tx.parquet"))
    (WORK / "baseline_tx.parquet").unlink(missing_ok=True)

    size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    md = "\n".join([
        f"### simulate: {n:,} customers, {sim['rows']:,} transactions ({size:,.0f} MiB of files)",
        "",
        "| run | total s | generate s | write s | peak memory |",
        "|---|---:|---:|---:|---:|",
        f"| `simulate_world` + `World.write` (4 files) | {sim['seconds']:.1f} | "
        f"{sim['generate_s']:.1f} | {sim['write_s']:.1f} | {sim['maxrss_mib']:,.0f} MiB |",
        "| baseline: same rows of numpy random numbers -> pyarrow Parquet | "
        f"{base['seconds']:.1f} | "
        f"{base['generate_s']:.1f} | {base['write_s']:.1f} | {base['maxrss_mib']:,.0f} MiB |",
        "",
        f"Simulator / baseline: {sim['seconds'] / base['seconds']:.1f}x time. "
        f"Target: 1M customers in under 60 s.",
    ])
    if args.quick:
        print(md)
    else:
        record("simulate", md)


if __name__ == "__main__":
    main()
