"""Benchmark: the touch funnel and the effects on the reached (`experiment_touches`: checks,
funnel per arm and channel, Wald and 2SLS for delivered and opened) for N assigned customers and
3N touches, against bare DuckDB aggregates over the same Parquet files in the same run.

Baselines: (1) the funnel floor: the least SQL that gives the same customer-level funnel (first
time of each step per customer and channel, joined to the arms, counted per arm and channel:
one GROUP BY over the touches and one over its result); (2) a flat scan: touches counted per
arm and channel without de-duplicating customers (not the same numbers; the I/O floor). Each
step runs in its own process; its own time is measured inside it (imports excluded).

    python benchmarks/bench_touches.py --customers 10000000   # 30M touches; ~8 GiB peak, ~10 min
Target: within 3x of the funnel floor.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import WORK, record, run_measured  # noqa: E402

GENERATE = """
import sys, duckdb
n, exp, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
con = duckdb.connect()
con.execute("SET preserve_insertion_order = false")
# the experiment: 40% control, 20% each of coupon / content / advisor (by the id's hash)
con.execute(f'''COPY (
    SELECT i AS customer_id,
           CASE WHEN h < 40 THEN 'control' WHEN h < 60 THEN 'coupon' WHEN h < 80 THEN 'content'
                ELSE 'advisor' END AS arm,
           CAST(hash(i, 1) % 1000 < CASE WHEN h >= 40 THEN 40 ELSE 30 END AS INTEGER) AS reactivated,
           CAST(hash(i, 2) % 100000 AS DOUBLE) / 100 AS revenue_365d,
           CAST(hash(i, 3) % 40 AS DOUBLE) AS orders_730d
    FROM (SELECT i, hash(i) % 100 AS h FROM range({n}) t(i))
) TO '{exp}' (FORMAT parquet)''')
# 3 touches per assigned customer on average: 5 per treated customer (60% of them), channel
# by touch number, each step present with a hashed probability, in order
con.execute(f'''COPY (
    WITH t AS (SELECT customer_id, arm FROM read_parquet('{exp}') WHERE arm <> 'control'),
    k AS (SELECT * FROM range(5) k(k)),
    x AS (SELECT customer_id, arm, k, hash(customer_id, k) AS h FROM t, k)
    SELECT customer_id, arm, ['sms', 'email', 'push', 'call'][k % 4 + 1] AS channel,
           TIMESTAMP '2026-01-05 08:00:00' + to_seconds(k * 86400 + h % 3600) AS sent_at,
           CASE WHEN h % 100 < 85 THEN sent_at + INTERVAL 30 SECOND END AS delivered_at,
           CASE WHEN h % 100 < 40 THEN delivered_at + INTERVAL 2 HOUR END AS opened_at,
           CASE WHEN h % 100 < 12 THEN opened_at + INTERVAL 5 MINUTE END AS clicked_at,
           CASE WHEN h % 100 < 3 AND arm = 'coupon' THEN clicked_at + INTERVAL 1 DAY END
               AS redeemed_at,
           CASE k % 4 WHEN 3 THEN 4.0 ELSE 0.05 END AS cost
    FROM x
) TO '{log}' (FORMAT parquet)''')
print('{"touches": %d}' % con.execute(f"SELECT count(*) FROM read_parquet('{log}')").fetchone()[0])
"""

def _duckdb_step(sql: str) -> str:
    """A child-process snippet timing one DuckDB query over the two files (argv 1, 2)."""
    return f"""
import duckdb, json, sys, time
con = duckdb.connect()
con.execute("SET preserve_insertion_order = false")
con.execute("SET enable_progress_bar = false")
exp, log = sys.argv[1], sys.argv[2]
times = []
for _ in range(2):
    _t0 = time.perf_counter()
    con.execute({sql!r}.format(exp=exp, log=log)).fetchall()
    times.append(time.perf_counter() - _t0)
print(json.dumps({{"step": min(times), "first": times[0]}}))
"""


FUNNEL_FLOOR = _duckdb_step("""
    WITH s AS (SELECT customer_id, channel, min(sent_at) AS sent, min(delivered_at) AS d,
                      min(opened_at) AS o, min(clicked_at) AS c, min(redeemed_at) AS r
               FROM read_parquet('{log}') GROUP BY ALL)
    SELECT e.arm, s.channel, count(sent), count(d), count(o), count(c), count(r),
           sum(e.reactivated * (d IS NOT NULL)::INT)
    FROM s JOIN read_parquet('{exp}') e USING (customer_id) GROUP BY ALL""")

FLAT = _duckdb_step("""
    SELECT e.arm, t.channel, count(*), count(delivered_at), count(opened_at),
           count(clicked_at), count(redeemed_at), sum(cost)
    FROM read_parquet('{log}') t JOIN read_parquet('{exp}') e USING (customer_id)
    GROUP BY ALL""")

OURS = """
import json, sys, time
from upliftlab.touches import experiment_touches
import duckdb, scipy.stats  # imports excluded
times = []
for _ in range(2):
    _t0 = time.perf_counter()
    r = experiment_touches(sys.argv[1], sys.argv[2], arm="arm", control="control",
                           outcome="reactivated", covariates=("revenue_365d", "orders_730d"),
                           start="2026-01-05")
    r.to_dict()
    times.append(time.perf_counter() - _t0)
print(json.dumps({"step": min(times), "first": times[0], "effects": len(r.effects)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=10_000_000)
    ap.add_argument("--shared", action="store_true",
                    help="Say in RESULTS.md that other work ran on the machine meanwhile.")
    args = ap.parse_args()
    n = args.customers
    WORK.mkdir(exist_ok=True)
    exp, log = WORK / f"touch_exp_{n}.parquet", WORK / f"touch_log_{n}.parquet"
    if not (exp.exists() and log.exists()):
        print(f"generating {n:,} customers ...", flush=True)
        run_measured(GENERATE, str(n), str(exp), str(log))
    import duckdb

    touches = duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{log}')").fetchone()[0]
    rows = []
    for name, code in (("funnel floor", FUNNEL_FLOOR), ("flat scan", FLAT),
                       ("experiment_touches", OURS)):
        print(f"running {name} ...", flush=True)
        r = run_measured(code, str(exp), str(log))
        rows.append((name, r))
        print(name, r, flush=True)
    floor = rows[0][1]["step"]
    ours = rows[2][1]["step"]
    lines = [
        f"### touches: {n:,} assigned customers, {touches:,} touches",
        "",
        "`experiment_touches` (read and check the log, funnel per arm and channel with the "
        "reactivation of each stage, Wald + Fieller and 2SLS with 2 covariates for delivered "
        "and opened, cost per incremental reactivation) against bare DuckDB aggregates over "
        "the same two Parquet files. Seconds of the step itself (best of 2 runs in one "
        "process; the first run in brackets), imports excluded; peak RSS of the process.",
        "",
        "| step | s (first) | / funnel floor | peak RSS |",
        "|---|---:|---:|---:|",
    ]
    for name, r in rows:
        lines.append(f"| {name} | {r['step']:.2f} ({r['first']:.2f}) | "
                     f"{r['step'] / floor:.1f}x | {r['peak_mib']:,.0f} MiB |")
    lines += ["", f"experiment_touches / funnel floor: **{ours / floor:.1f}x** (target: within 3x)."]
    if args.shared:
        lines += ["", "The machine (2 cores) was shared with other work during this run: the "
                  "figures are noisy; the ratio, measured in the same run, less so."]
    record(f"touches-{n}", "\n".join(lines))


if __name__ == "__main__":
    main()
