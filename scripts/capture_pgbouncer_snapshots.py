"""Collect real snapshots of PgBouncer setups into sample_snapshots/ (the PB cards' examples).

    uv run python scripts/capture_pgbouncer_snapshots.py [--only NAME ...]

Each scenario starts PostgreSQL 18 (advisor.pgserver) and, except `misconfigured` (whose ini
PgBouncer would refuse to load), Debian's PgBouncer in front of it (tests/poolers_bouncer.py),
drives a real workload through it, then runs `advisor.collect.collect` plus
`collect_pgbouncer` (ini + console + process) with fixed --cores/--memory.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from poolers_bouncer import PgBouncer, cpu_quota, looping  # noqa: E402

from advisor.collect import collect  # noqa: E402
from advisor.engine import run  # noqa: E402
from advisor.pgserver import PgServer  # noqa: E402
from advisor.pooler.pgbouncer import collect_pgbouncer  # noqa: E402
from advisor.report import Report  # noqa: E402
from advisor.snapshot import Snapshot, facts_from_snapshot  # noqa: E402

OUT = ROOT / "sample_snapshots"
GiB = 1024**3
SETTINGS = {"shared_preload_libraries": "pg_stat_statements"}


def pgss(pg: PgServer) -> None:
    with pg.connect(autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        c.execute("SELECT pg_stat_statements_reset()")


def snapshot(pg: PgServer, inis: list[str], dsns: list[str], sample: float, **kw: Any) -> Snapshot:
    snap = collect(pg.dsn, cores=2, memory=4 * GiB)
    snap.pgbouncer = collect_pgbouncer(inis, dsns, sample_seconds=sample, **kw)
    return snap


MISCONFIGURED = """\
; an application's pgbouncer.ini, copied from current docs onto Debian 12 (PgBouncer 1.18)
[databases]
appdb = host=127.0.0.1 port={port} dbname=postgres
reports = host=127.0.0.1 port={port} dbname=postgres reserve_pool_size=2

[users]
app = pool_mode=transaction pool_size=10

[pgbouncer]
listen_addr = *
listen_port = 6432
auth_type = trust
auth_file = /etc/pgbouncer/userlist.txt
auth_user = pgbouncer_auth
auth_query = SELECT usename, passwd FROM pg_shadow WHERE usename=$1
default_pool_size = 50 ; per db
reserve_pool_size = 10
max_prepared_statements = 100
"""


def misconfigured(tmp: Path) -> Snapshot:
    with PgServer(18, settings={**SETTINGS, "max_connections": 40}) as pg:
        ini = tmp / "misconfigured.ini"
        ini.write_text(MISCONFIGURED.format(port=pg.port))
        return snapshot(pg, [str(ini)], [], 0, instance_count=3)


def clean(tmp: Path) -> Snapshot:
    with (
        PgServer(18, settings=SETTINGS) as pg,
        PgBouncer(pg, settings={"pool_mode": "session", "default_pool_size": 5}) as b,
    ):
        pgss(pg)
        with psycopg.connect(b.dsn(), autocommit=True) as c:
            for i in range(50):
                c.execute("SELECT count(*) FROM pg_class WHERE relpages >= %s", (i,))
        return snapshot(pg, [str(b.ini_path)], [b.admin_dsn], 1.0)


def busy(tmp: Path) -> Snapshot:
    with (
        PgServer(18, settings=SETTINGS) as pg,
        PgBouncer(
            pg,
            settings={"pool_mode": "transaction", "stats_period": 1, "max_client_conn": 200},
            databases={
                "app": "pool_size=1",
                "slow": "pool_size=4",
                "sess": "pool_mode=session pool_size=1",
            },
            nofile=64,
        ) as b,
    ):
        pgss(pg)

        def sleepy(conn: psycopg.Connection[Any]) -> None:
            conn.execute("SELECT pg_sleep(0.05)")

        def chatty(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute("SELECT 1")
                time.sleep(0.05)  # client work inside the transaction

        def holder(conn: psycopg.Connection[Any]) -> None:
            conn.execute("SELECT 1")
            time.sleep(0.5)  # keeps its session (and so its server) while idle

        app = [b.dsn("app")] * 8
        slow = [b.dsn("slow")] * 2
        sess = [b.dsn("sess")] * 3
        with looping(app, sleepy), looping(slow, chatty), looping(sess, holder):
            # 1.18 counts wait_time only for a client's first wait, so the console's
            # first SHOW STATS must fall in the first seconds for avg_wait_time (PB07).
            time.sleep(0.8)
            return snapshot(pg, [str(b.ini_path)], [b.admin_dsn], 4.0)


HAZARDS = (
    "SET search_path = public, pg_catalog",
    "SET work_mem = '77MB'",
    "LISTEN jobs",
    "SELECT pg_advisory_lock(42)",
    "SELECT pg_advisory_unlock(42)",
    "PREPARE p1 AS SELECT 42",
    "EXECUTE p1",
    "DEALLOCATE p1",
    "DECLARE c1 CURSOR WITH HOLD FOR SELECT 7",
    "CLOSE c1",
    "CREATE TEMP TABLE scratch (i int)",
    "DROP TABLE scratch",
    "LOAD 'auto_explain'",
)


def hazards(tmp: Path) -> Snapshot:
    with (
        PgServer(18, settings=SETTINGS) as pg,
        PgBouncer(
            pg,
            settings={"pool_mode": "transaction", "default_pool_size": 1},
            databases={"postgres": "", "batch": "pool_mode=statement"},
        ) as b,
    ):
        pgss(pg)
        with pg.connect(autocommit=True) as c:
            for _ in range(3):  # the batch job, before its pool went to statement mode
                c.execute("BEGIN")
                c.execute("SELECT 1")
                c.execute("COMMIT")
        with psycopg.connect(b.dsn(), autocommit=True) as c:
            for sql in HAZARDS:
                c.execute(sql)
            for i in range(20):
                c.execute("SELECT %s::int + 1", (i,))
        return snapshot(pg, [str(b.ini_path)], [b.admin_dsn], 0.5)


def starved(tmp: Path) -> Snapshot:
    with PgServer(18, settings=SETTINGS) as pg:
        with pg.connect(autocommit=True) as c:
            c.execute("CREATE ROLE u1 LOGIN")
            c.execute("CREATE ROLE u2 LOGIN")
        with PgBouncer(
            pg,
            settings={"pool_mode": "transaction", "default_pool_size": 2},
            databases={"app": "max_db_connections=2"},
            logins=("u1", "u2"),
        ) as b:
            long = [b.dsn("app", "u1")] * 2
            short = [b.dsn("app", "u2")] * 2
            with looping(long, lambda c: c.execute("SELECT pg_sleep(0.8)")):
                time.sleep(0.3)
                with looping(short, lambda c: c.execute("SELECT 1")):
                    time.sleep(0.5)
                    return snapshot(pg, [str(b.ini_path)], [b.admin_dsn], 2.0)


def cpu_quota_snapshot(tmp: Path) -> Snapshot:
    import os
    import subprocess

    with (
        PgServer(18, settings=SETTINGS) as pg,
        PgBouncer(
            pg,
            settings={"pool_mode": "transaction", "default_pool_size": 4, "max_client_conn": 200},
        ) as b,
    ):
        assert b.proc is not None
        script = tmp / "select1.sql"
        script.write_text("SELECT 1;\n")
        env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(b.port), PGUSER="postgres")
        cmd = ["pgbench", "-n", "-M", "simple", "-f", str(script), "-c", "48", "-j", "2"]
        with cpu_quota(b.proc.pid, 0.2):
            bench = subprocess.Popen(
                [*cmd, "-T", "6", "postgres"], env=env, stdout=subprocess.PIPE, text=True
            )
            time.sleep(1.5)
            snap = snapshot(pg, [str(b.ini_path)], [b.admin_dsn], 3.0)
            print(bench.communicate()[0].strip().splitlines()[-1])
            return snap


PREPARED_INI = """\
; a 1.22 deployment's pgbouncer.ini, analysed where no PgBouncer runs (version unknown)
[databases]
app = host=127.0.0.1 port={port} dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = 6432
auth_type = scram-sha-256
auth_file = /etc/pgbouncer/userlist.txt
pool_mode = transaction
default_pool_size = 20
max_prepared_statements = 100
"""


def prepared(tmp: Path) -> Snapshot:
    """300 distinct statements prepared by psycopg 3 (prepare_threshold=0) on the server."""
    from advisor.pooler.pgbouncer import parse_ini
    from advisor.snapshot import PgBouncerFacts, PgBouncerInstance

    with PgServer(18, settings=SETTINGS) as pg:
        pgss(pg)
        with psycopg.connect(pg.dsn, autocommit=True, prepare_threshold=0) as c:
            cols = ", ".join(f"c{i} int" for i in range(300))
            c.execute(f"CREATE TABLE wide ({cols})")  # pgss merges constants, not columns
            for rep in range(3):
                for i in range(300):
                    c.execute(f"SELECT c{i} FROM wide WHERE c{i} = %s", (rep,))
        ini = tmp / "pgbouncer.ini"
        ini.write_text(PREPARED_INI.format(port=pg.port))
        snap = collect(pg.dsn, cores=2, memory=4 * GiB)

        snap.pgbouncer = PgBouncerFacts(instances=[PgBouncerInstance(ini=parse_ini(str(ini)))])
        return snap


SCENARIOS: dict[str, Callable[[Path], Snapshot]] = {
    "pgbouncer_misconfigured_pg18": misconfigured,
    "pgbouncer_clean_pg18": clean,
    "pgbouncer_busy_pg18": busy,
    "pgbouncer_hazards_pg18": hazards,
    "pgbouncer_starved_pg18": starved,
    "pgbouncer_cpu_quota_pg18": cpu_quota_snapshot,
    "pgbouncer_prepared_pg18": prepared,
}


README = """\
# PgBouncer snapshots

Generated by `scripts/capture_pgbouncer_snapshots.py`; do not edit by hand. Each file is
`collect(dsn, cores=2, memory=4GB)` of a throwaway PostgreSQL 18 plus `collect_pgbouncer`
(ini, admin console sampled for the time given, the local process) of Debian's PgBouncer
1.18 in front of it, with a real workload running through it:

* `pgbouncer_misconfigured_pg18`: an ini PgBouncer refuses (inline comment, [users]
  pool_size, reserve_pool_size on a database line, max_prepared_statements, trust on `*`,
  unqualified auth_query), read without a running PgBouncer, 3 instances, max_connections 40.
* `pgbouncer_clean_pg18`: session pooling, pool 5, 50 queries, 1 s console sample.
* `pgbouncer_busy_pg18`: ulimit -n 64 with max_client_conn 200; 8 clients of 50 ms
  transactions on a transaction pool of 1 (`app`); 2 clients with 50 ms of client work
  inside each transaction (`slow`); 3 clients holding a session pool of 1 (`sess`);
  stats_period 1; 4 s console sample.
* `pgbouncer_hazards_pg18`: a transaction pool of 1 running session SET, LISTEN, advisory
  locks, SQL PREPARE/EXECUTE/DEALLOCATE, WITH HOLD cursor, temp table, LOAD and a
  parameterised query 20 times; a `batch` database in statement mode while BEGIN ... COMMIT
  ran directly on the server.
* `pgbouncer_starved_pg18`: users u1 and u2 on database `app` (pool_size 2 each) under
  max_db_connections 2; two u1 clients run 0.8 s statements, two u2 clients SELECT 1;
  2 s console sample.
* `pgbouncer_cpu_quota_pg18`: PgBouncer in a cgroup (v1 cpu) with a 0.2-core quota, pool 4,
  pgbench -M simple SELECT 1 with 48 clients and -j 2; 3 s console sample (needs root).
* `pgbouncer_prepared_pg18`: 300 distinct statements (one column each of a 300-column
  table) run 3 times each with psycopg 3 protocol prepares; an ini of a transaction pool with
  max_prepared_statements 100, read without a running PgBouncer and without a binary version
  (as on a workstation): no console.

Last capture, PB rules that fired:

"""


def main() -> int:
    import tempfile

    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", default=[])
    args = ap.parse_args()
    fired: dict[str, str] = {}
    for name, fn in SCENARIOS.items():
        if args.only and name not in args.only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            snap = fn(Path(tmp))
        path = OUT / f"{name}.json"
        snap.save(path)
        report = run(facts_from_snapshot(snap), Report(), select=["PB"])
        codes = sorted({f.rule for f in report.findings})
        fired[name] = ", ".join(codes) or "none"
        print(f"{path.name}: {fired[name]}")
    if not args.only:
        lines = [f"* `{name}`: {codes}" for name, codes in fired.items()]
        (OUT / "README-pgbouncer.md").write_text(README + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
