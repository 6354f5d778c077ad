"""Benchmark: the programme report (`upliftlab programme`) over 20 experiments, 10M customers and
200M transactions, against a bare scan of the same tables in the same run.

The data is synthetic and made with DuckDB SQL (the simulator would take far longer at this
size): customers 1..N, each in one of 20 experiments (starts two weeks apart from 2025-06-01,
arms control/coupon/advisor and a 5% global holdout, tiers short/mid/long), and T transactions
spread evenly over the customers: 95% in the history before 2025-06-01, 5% after. The report is
as of 2026-06-01 (the 365-day horizon is covered for the earliest start only; the others say so).
Both runs are child processes (wall time, peak RSS). --quick: 200k customers, 4M transactions,
printed, not recorded.

    .venv/bin/python benchmarks/bench_programme.py [--customers N] [--transactions T] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import WORK, record, run_measured  # noqa: E402

N_EXPERIMENTS = 20
AS_OF = "2026-06-01"

FLOOR = """
import duckdb, sys
tx, store, out = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect(store, read_only=True)
con.execute("SET preserve_insertion_order = false")
con.execute(f"COPY (SELECT customer_id, count(*), sum(amount), max(ts) FROM read_parquet('{tx}') "
            f"GROUP BY ALL) TO '{out}' (FORMAT parquet)")
con.execute("SELECT experiment, arm, count(*) FROM assignments GROUP BY ALL").fetchall()
import json, resource
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"cpu_s": ru.ru_utime + ru.ru_stime}))
"""

PROGRAMME = """
import sys
from upliftlab.programme import programme_report
programme_report(sys.argv[2], as_of=sys.argv[4], out=sys.argv[3], transactions=[sys.argv[1]])
import json, resource
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"cpu_s": ru.ru_utime + ru.ru_stime}))
"""


def make_data(root: Path, n: int, t: int) -> tuple[Path, Path]:
    """tx.parquet and store.duckdb under `root` (kept between runs; made when missing)."""
    import datetime as dt

    import duckdb

    from upliftlab.spec import ExperimentSpec, spec_json
    from upliftlab.store import DESIGN_DDL, Store

    tx, store_path = root / "tx.parquet", root / "store.duckdb"
    if tx.exists() and store_path.exists():
        return tx, store_path
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    hist = 517 * 86400  # 2024-01-01 .. 2025-06-01
    con.execute(f"""COPY (
        SELECT (i % {n}) + 1 AS customer_id,
               CASE WHEN hash(i) % 100 < 95
                    THEN TIMESTAMP '2024-01-01' + to_seconds(CAST(hash(i * 3) % {hist} AS BIGINT))
                    ELSE TIMESTAMP '2025-06-01'
                         + to_seconds(CAST(hash(i * 5) % {365 * 86400} AS BIGINT)) END AS ts,
               round(5 + (hash(i * 7) % 10000) / 100.0, 2) AS amount
        FROM range({t}) r(i)) TO '{tx}' (FORMAT parquet, ROW_GROUP_SIZE 1048576)""")
    con.close()
    store_path.unlink(missing_ok=True)
    store = Store(store_path)
    store.ensure_schema("design", 1, DESIGN_DDL)
    now = dt.datetime(2025, 5, 1)
    for e in range(N_EXPERIMENTS):
        start = dt.date(2025, 6, 1) + dt.timedelta(days=14 * e)
        spec = ExperimentSpec.model_validate({
            "name": f"exp_{e:02d}", "salt": f"bench-{e}",
            "cohort": {"table": "cohort.parquet", "as_of": start},
            "arms": [{"name": "control", "weight": 0.4, "control": True},
                     {"name": "coupon", "weight": 0.3, "cost_per_contact": 0.1,
                      "cost_per_conversion": 10.0},
                     {"name": "advisor", "weight": 0.3, "cost_per_contact": 4.0}],
            "baseline": {"rates": {"short": 0.05, "mid": 0.03, "long": 0.01}},
            "mde": 0.01, "holdout": {"share": 0.05}})
        store.con.execute("INSERT INTO experiments VALUES (?, 1, ?, 'x', 'x', '{}', NULL, ?, ?)",
                          [spec.name, json.dumps(spec_json(spec)), now, now])
    store.con.execute(f"""INSERT INTO assignments
        SELECT 'exp_' || lpad(CAST(i % {N_EXPERIMENTS} AS VARCHAR), 2, '0'), 1,
               CAST(i + 1 AS VARCHAR),
               CASE WHEN hash(i * 11) % 100 < 5 THEN 'holdout'
                    WHEN hash(i * 13) % 100 < 40 THEN 'control'
                    WHEN hash(i * 13) % 100 < 70 THEN 'coupon' ELSE 'advisor' END,
               'tier=' || ['short', 'mid', 'long'][CAST(hash(i * 17) % 3 AS INTEGER) + 1],
               1, TIMESTAMP '2025-05-01', 'bench'
        FROM range({n}) r(i)""")
    store.close()
    print(f"data made in {time.perf_counter() - t0:.0f} s", flush=True)
    return tx, store_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=10_000_000)
    parser.add_argument("--transactions", type=int, default=200_000_000)
    parser.add_argument("--quick", action="store_true", help="200k customers, 4M transactions")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    n, t = (200_000, 4_000_000) if args.quick else (args.customers, args.transactions)
    root = WORK / f"programme_{n}_{t}"
    tx, store = make_data(root, n, t)
    out = root / "report"
    floor = run_measured(FLOOR, str(tx), str(store), str(root / "floor.parquet"))
    shutil.rmtree(out, ignore_errors=True)
    prog = run_measured(PROGRAMME, str(tx), str(store), str(out), AS_OF)
    size = (out / "report.html").stat().st_size / 2**20
    rows = [
        "| step | wall s | CPU s | peak RSS GiB |", "|---|---:|---:|---:|",
        f"| bare scan: transactions grouped by customer + assignments by arm | "
        f"{floor['seconds']:.1f} | {floor['cpu_s']:.1f} | {floor['peak_gib']:.2f} |",
        f"| `upliftlab programme` (long run of each experiment, holdout view, structure, "
        f"report triple) | {prog['seconds']:.1f} | {prog['cpu_s']:.1f} | {prog['peak_gib']:.2f} |",
    ]
    load_after = os.getloadavg()[0]
    # CPU seconds (user + system, all threads) are inflated less than wall time when the
    # machine is shared: the ratio of those is the steadier comparison
    text = (f"{N_EXPERIMENTS} experiments, {n:,} customers, {t:,} transactions (synthetic, "
            f"DuckDB-made; see the script), as of {AS_OF}; report.html {size:.1f} MiB.\n\n"
            + "\n".join(rows) + "\n\nRatio to the bare scan: "
            f"{prog['seconds'] / floor['seconds']:.1f}x wall, "
            f"{prog['cpu_s'] / floor['cpu_s']:.1f}x CPU. "
            f"Load average before the run: {load:.2f}, after: {load_after:.2f} (above ~0.5 the "
            "machine was shared and the times are high; re-run on a quiet machine with "
            "`PYTHONPATH=src .venv/bin/python benchmarks/bench_programme.py`).")
    if args.quick:
        print(text)
    else:
        record("programme", "### Programme report\n\n" + text)


if __name__ == "__main__":
    main()
