"""Big-plan analysis against the JSON-parse floor, and a small plan's end-to-end CLI time.

Starts a throwaway PostgreSQL 18, builds a table with 1,500 partitions, captures
`EXPLAIN (ANALYZE, VERBOSE, BUFFERS, SETTINGS, FORMAT JSON)` of an aggregate over all of them,
then times, as whole processes:
  floor:  python -c "import json; json.load(open(F))"
  advisor explain --json F
  advisor explain SMALL   (text output, a small real plan)
Targets (issue 2): big plan <= 3x the floor; small plan < 0.4 s wall.

    uv run python bench/big_plan.py [--partitions 1500] [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import time_command

from advisor.pgserver import PgServer

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
SMALL = ROOT / "sample_plans" / "pg18" / "pq201_fires_pool_exhausted.txt"


def capture(partitions: int) -> Path:
    out = CACHE / f"partitioned_{partitions}.json"
    if out.exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    settings = {"max_locks_per_transaction": 1024, "shared_buffers": "256MB"}
    with PgServer(18, settings=settings) as pg, pg.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE m (id bigint, k int, v numeric) PARTITION BY RANGE (id)")
        for i in range(partitions):
            lo, hi = i * 1000, (i + 1) * 1000
            conn.execute(f"CREATE TABLE m_{i} PARTITION OF m FOR VALUES FROM ({lo}) TO ({hi})")
        last = partitions * 1000 - 1
        conn.execute(f"INSERT INTO m SELECT g, g % 97, g * 1.5 FROM generate_series(0, {last}) g")
        conn.execute("VACUUM ANALYZE m")
        # Favour a parallel plan so the document carries Workers arrays, as real ones do.
        conn.execute("SET parallel_setup_cost = 0")
        conn.execute("SET parallel_tuple_cost = 0")
        row = conn.execute(
            "EXPLAIN (ANALYZE, VERBOSE, BUFFERS, SETTINGS, FORMAT JSON) "
            "SELECT k, count(*), sum(v) FROM m WHERE v > 10 GROUP BY k"
        ).fetchone()
        assert row is not None
        out.write_text(json.dumps(row[0], indent=2))
    return out


def _count_nodes(node: dict[str, Any]) -> int:
    return 1 + sum(_count_nodes(c) for c in node.get("Plans", []))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--partitions", type=int, default=1500)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()

    big = capture(args.partitions)
    size_mb = big.stat().st_size / 1e6
    nodes = _count_nodes(json.loads(big.read_text())[0]["Plan"])
    print(f"big plan: {big.name}, {size_mb:.1f} MB, {nodes} nodes")

    py = sys.executable
    cli = [str(Path(sys.executable).with_name("advisor"))]  # the console script users run
    floor = time_command(
        "floor json.load", [py, "-c", f"import json; json.load(open({str(big)!r}))"], args.runs
    )
    ours = time_command(
        "advisor explain --json (big)",
        [*cli, "explain", "--json", "--fail-on", "never", str(big)],
        args.runs,
    )
    small = time_command(
        "advisor explain (small, text)",
        [*cli, "explain", "--fail-on", "never", str(SMALL)],
        args.runs,
    )
    small_json = time_command(
        "advisor explain --json (small)",
        [*cli, "explain", "--json", "--fail-on", "never", str(SMALL)],
        args.runs,
    )
    for t in (floor, ours, small, small_json):
        print(t.line())
    print(f"ratio big/floor: {ours.median / floor.median:.2f}x (target <= 3x)")
    print(f"small plan wall: {small.median * 1000:.0f} ms (target < 400 ms)")


if __name__ == "__main__":
    main()
