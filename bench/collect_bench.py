"""Live collection + analysis against a busy-looking server (issue 3).

Starts a throwaway PostgreSQL 18 with pg_stat_statements preloaded
(pg_stat_statements.max=10000, max_connections=300), creates a few tables, runs 5,000
*distinct normalised* statements once each (the shapes differ: table, column list, predicate
structure, LIMIT or not; constants alone would normalise to one entry), then holds 200 idle
connections open while it times, as whole processes:
  advisor report --dsn DSN --json --fail-on never
  advisor collect --dsn DSN -o FILE
and, in-process, the parts: connect, `collect()` (default statements_limit and all
statements), `facts_from_snapshot` + `engine.analyse`, and the JSON rendering.
Target (issue 3): collection + analysis < 2 s, without ANALYZE.

    uv run python bench/collect_bench.py [--statements 5000] [--idle 200] [--runs 9] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))
import psycopg
from _timing import time_command

from advisor.pgserver import PgServer, SettingValue

T = TypeVar("T")

TABLES = 10
COLUMNS = ("a", "b", "c", "d", "e", "f", "g", "h")  # 255 non-empty column subsets per table
SETTINGS: dict[str, SettingValue] = {
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.max": 10000,
    "pg_stat_statements.track": "all",
    "max_connections": 300,
    "shared_buffers": "128MB",
}
TARGET_S = 2.0


# -- the workload ---------------------------------------------------------------------------------


def statements(n: int) -> Iterator[str]:
    """`n` statements that pg_stat_statements keeps apart: (table, column subset, predicate
    shape, LIMIT or not) is unique per statement. Aliases and constants would not do: query
    jumbling ignores both."""
    predicates = (
        "WHERE a = {k}",
        "WHERE b > {k} AND c < {k}",
        "WHERE d IN ({k}, {k2}) OR e IS NULL",
        "WHERE f BETWEEN {k} AND {k2} ORDER BY g",
    )
    per_table = (2 ** len(COLUMNS) - 1) * len(predicates) * 2
    if n > TABLES * per_table:
        raise SystemExit(f"at most {TABLES * per_table} distinct statements with this generator")
    for i in range(n):
        table = i % TABLES
        k = i // TABLES
        mask = k % 255 + 1
        shape = k // 255
        pred = predicates[shape % len(predicates)]
        limit = " LIMIT 10" if (shape // len(predicates)) % 2 else ""
        cols = ", ".join(c for bit, c in enumerate(COLUMNS) if mask >> bit & 1)
        where = pred.format(k=i, k2=i + 7)
        yield f"SELECT {cols} FROM t{table} {where}{limit}"


def prepare(pg: PgServer, n: int) -> int:
    with pg.connect(autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        cols = ", ".join(f"{c} int" for c in COLUMNS)
        vals = ", ".join(f"g % {p}" for p in (7, 11, 13, 17, 19, 23, 29, 31))
        for t in range(TABLES):
            conn.execute(f"CREATE TABLE t{t} (id serial PRIMARY KEY, {cols})")
            conn.execute(
                f"INSERT INTO t{t} ({', '.join(COLUMNS)}) "
                f"SELECT {vals} FROM generate_series(1, 1000) g"
            )
        conn.execute("VACUUM ANALYZE")
        conn.execute("SELECT pg_stat_statements_reset()")
        start = time.perf_counter()
        with conn.pipeline():  # one round trip per batch, not per statement
            for sql in statements(n):
                conn.execute(sql)
        took = time.perf_counter() - start
        row = conn.execute("SELECT count(*) FROM pg_stat_statements").fetchone()
    assert row is not None
    count = int(row[0])
    print(f"ran {n} statements in {took:.2f} s; pg_stat_statements holds {count} entries")
    if count < n:
        raise SystemExit(f"expected >= {n} pg_stat_statements entries, got {count}")
    return count


def open_idle(pg: PgServer, n: int) -> list[psycopg.Connection[Any]]:
    conns = [pg.connect(autocommit=True, application_name="bench_idle") for _ in range(n)]
    with pg.connect(autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = 'bench_idle' AND state = 'idle'"
        ).fetchone()
    assert row is not None
    print(f"{n} idle connections open; pg_stat_activity shows {row[0]} idle 'bench_idle'")
    if int(row[0]) < n:
        raise SystemExit(f"expected {n} idle sessions in pg_stat_activity, got {row[0]}")
    return conns


# -- in-process breakdown -------------------------------------------------------------------------


def _best(fn: Callable[[], T], runs: int) -> tuple[T, list[float]]:
    out: T = fn()  # warm-up (imports psycopg, pydantic, checks; fills caches)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        samples.append(time.perf_counter() - start)
    return out, samples


def _fmt(label: str, samples: list[float]) -> str:
    return (
        f"  {label}: median {statistics.median(samples) * 1000:.1f} ms "
        f"(min {min(samples) * 1000:.1f}, max {max(samples) * 1000:.1f}, n={len(samples)})"
    )


def breakdown(dsn: str, runs: int, all_statements: int) -> Callable[[], Any]:
    from advisor import engine, render
    from advisor.collect import DEFAULT_STATEMENTS_LIMIT, collect
    from advisor.collect.connect import connect
    from advisor.snapshot import facts_from_snapshot

    def _connect() -> None:
        connect(dsn).close()

    def _analyse(snap: Any) -> Any:
        return engine.analyse(facts_from_snapshot(snap))

    print("in-process (after one warm-up each):")
    _, s = _best(_connect, runs)
    print(_fmt("connect (advisor session)", s))
    snap, s = _best(lambda: collect(dsn), runs)
    print(_fmt(f"collect() default statements_limit={DEFAULT_STATEMENTS_LIMIT}", s))
    print(
        f"    -> {len(snap.statements)} statements collected, {len(snap.settings)} settings, "
        f"{len(snap.skipped)} skipped: {[x.what for x in snap.skipped]}"
    )
    big, s = _best(lambda: collect(dsn, statements_limit=all_statements), runs)
    print(_fmt(f"collect(statements_limit={all_statements})", s))
    print(f"    -> {len(big.statements)} statements collected")
    report, s = _best(lambda: _analyse(snap), runs)
    print(_fmt("facts_from_snapshot + engine.analyse", s))
    print(f"    -> {len(report.findings)} findings, {len(report.recommendations)} recommendations")
    _, s = _best(lambda: render.to_json(report), runs)
    print(_fmt("render.to_json", s))
    _, s = _best(lambda: _analyse(big), runs)
    print(_fmt(f"analyse on the {len(big.statements)}-statement snapshot", s))
    path = Path(tempfile.mkdtemp(prefix="collect_bench-")) / "snap.json"
    _, s = _best(lambda: snap.save(path), runs)
    print(_fmt(f"Snapshot.save ({path.stat().st_size / 1e3:.0f} kB)", s))

    def whole() -> None:
        engine.analyse(facts_from_snapshot(collect(dsn)))

    return whole


def profile(fn: Callable[[], Any], top: int = 25) -> None:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(top)
    print(out.getvalue())


# -- main -----------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--statements", type=int, default=5000)
    ap.add_argument("--idle", type=int, default=200)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--profile", action="store_true", help="cProfile one collect + analyse")
    args = ap.parse_args()

    cli = [str(Path(sys.executable).with_name("advisor"))]  # the console script users run
    with PgServer(18, settings=SETTINGS) as pg:
        print(f"server: {pg.version.split(',')[0]}")
        prepare(pg, args.statements)
        idle = open_idle(pg, args.idle)
        try:
            out = Path(tempfile.mkdtemp(prefix="collect_bench-")) / "snap.json"
            report = time_command(
                "advisor report --dsn DSN --json",
                [*cli, "report", "--dsn", pg.dsn, "--json", "--fail-on", "never"],
                args.runs,
            )
            coll = time_command(
                "advisor collect --dsn DSN -o FILE",
                [*cli, "collect", "--dsn", pg.dsn, "-o", str(out)],
                args.runs,
            )
            print(report.line())
            print(coll.line())
            print(f"report wall: {report.median:.2f} s (target < {TARGET_S:.0f} s)")
            whole = breakdown(pg.dsn, args.runs, args.statements + 1000)
            if args.profile or max(report.median, coll.median) > TARGET_S:
                print("cProfile of collect() + analyse, in-process:")
                profile(whole)
        finally:
            for c in idle:
                c.close()


if __name__ == "__main__":
    main()
