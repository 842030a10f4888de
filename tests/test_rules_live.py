"""Server and connection rules (PQ002-PQ006, PQ010, CN001-CN004, CN006, CN007) provoked on real
servers: start PostgreSQL with the mis-tuned settings, open idle / idle-in-transaction / active
client connections, `collect()` a snapshot while they are open, run the engine on it, and check
which rules fire; then put the server right (with the fixes' own statements where they need
only a reload) or change the hardware facts, and check that they go quiet.

Several rules share one server start to keep the suite fast.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
import pytest

from advisor.collect import collect
from advisor.engine import run
from advisor.pgserver import PgServer
from advisor.report import Finding, Report
from advisor.snapshot import Snapshot, facts_from_snapshot

pytestmark = pytest.mark.server

GiB = 1024**3
RULES = ("PQ002", "PQ003", "PQ004", "PQ005", "PQ006", "PQ010")
RULES += ("CN001", "CN002", "CN003", "CN004", "CN005", "CN006", "CN007")
MakePg = Callable[..., PgServer]


def findings(snap: Snapshot) -> dict[str, Finding]:
    report = run(facts_from_snapshot(snap), Report(), select=RULES)
    return {f.rule: f for f in report.findings}


def alter_system(pg: PgServer, **settings: str) -> None:
    with pg.connect(autocommit=True) as c:
        for name, value in settings.items():
            c.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        c.execute("SELECT pg_reload_conf()")
    time.sleep(0.3)


@contextmanager
def workload(pg: PgServer, idle: int = 0, idle_in_tx: int = 0, active: int = 0) -> Iterator[None]:
    """Client connections held open for the block: idle, idle in transaction, and active
    (running pg_sleep until the block ends)."""
    conns: list[psycopg.Connection[Any]] = []
    threads: list[threading.Thread] = []
    try:
        for _ in range(idle):
            conns.append(psycopg.connect(pg.dsn, autocommit=True, application_name="app"))
        for _ in range(idle_in_tx):
            c = psycopg.connect(pg.dsn, application_name="app")
            c.execute("SELECT 1")  # opens a transaction and leaves it open
            conns.append(c)
        sleepers = [
            psycopg.connect(pg.dsn, autocommit=True, application_name="app") for _ in range(active)
        ]
        conns += sleepers
        for c in sleepers:

            def sleep(conn: psycopg.Connection[Any] = c) -> None:
                with suppress(psycopg.Error):
                    conn.execute("SELECT pg_sleep(60)")

            threads.append(threading.Thread(target=sleep, daemon=True))
            threads[-1].start()
        if conns:
            time.sleep(0.5)
        yield
    finally:
        for c in conns:
            with suppress(psycopg.Error):
                c.cancel()
        for t in threads:
            t.join(timeout=10)
        for c in conns:
            c.close()


def test_worker_budget_rules_fire_then_quiet_after_the_fix(make_pg: MakePg) -> None:
    """PQ002, PQ003, PQ004, PQ005, PQ006, CN002, CN006 on one mis-tuned PG 18 server."""
    pg = make_pg(
        18,
        wal_level="logical",
        max_worker_processes=3,
        max_parallel_workers_per_gather=6,
        superuser_reserved_connections=0,
    )
    pg.subscribe()
    alter_system(pg, max_parallel_workers="4")

    small = collect(pg.dsn, sample_seconds=0, cores=2, memory=1 * GiB)
    found = findings(small)
    fired = {"PQ002", "PQ003", "PQ004", "PQ005", "PQ006", "CN002", "CN006"}
    assert fired <= set(found), sorted(found)
    assert "PQ010" not in found  # the pool was set by hand: PQ005's, not a default

    pq002 = found["PQ002"]
    assert "max_parallel_workers_per_gather = 6" in pq002.message
    assert "max_parallel_workers = 4 (set in postgresql.auto.conf by ALTER SYSTEM)" in (
        pq002.message
    )
    assert "ALTER SYSTEM SET max_parallel_workers = 6;" in pq002.fix
    assert "restart" in pq002.fix
    assert found["PQ003"].evidence["excess"] == 1
    pq004 = found["PQ004"]
    assert "logical replication apply worker" in pq004.evidence["workers"]
    assert "logical replication launcher" in pq004.evidence["workers"]
    assert pq004.evidence["left"] == 1 and pq004.evidence["shortfall"] == 2
    assert "ALTER SYSTEM SET max_worker_processes = 7;" in pq004.fix
    assert "2 cores (given with --cores)" in found["PQ005"].message
    pq006 = found["PQ006"]
    assert pq006.severity == "critical"
    assert pq006.evidence["worst"] == "1.6GB" and pq006.evidence["shared_buffers"] == "128MB"
    assert "ALTER SYSTEM SET work_mem = '2MB';" in pq006.fix
    assert "pg_reload_conf" in pq006.fix
    assert "superuser_reserved_connections = 0" in found["CN006"].message
    assert "restart" in found["CN006"].fix
    assert found["CN002"].evidence["factor"] == 25

    # The same server on a big machine: the hardware rules go quiet, the settings rules stay.
    big = findings(collect(pg.dsn, sample_seconds=0, cores=64, memory=256 * GiB))
    assert not {"PQ005", "PQ006", "CN002"} & set(big), sorted(big)
    assert {"PQ002", "PQ003", "PQ004", "CN006"} <= set(big)

    # The reload-only fixes, as the findings print them: pool and per-gather within budget.
    alter_system(pg, max_parallel_workers="1", max_parallel_workers_per_gather="1")
    fixed = findings(collect(pg.dsn, sample_seconds=0, cores=2, memory=64 * GiB))
    assert not {"PQ002", "PQ003", "PQ004", "PQ005", "PQ006"} & set(fixed), sorted(fixed)


def test_connection_rules_fire_under_load_and_quiet_when_calm(make_pg: MakePg) -> None:
    """CN001, CN003, CN004, CN005, CN007, PQ005 (concurrency) and PQ010 on one PG 18 server."""
    pg = make_pg(18, max_connections=25, superuser_reserved_connections=3)
    for _ in range(250):  # connect per request
        psycopg.connect(pg.dsn, autocommit=True).close()
    with workload(pg, idle=14, idle_in_tx=2, active=3):
        busy = collect(pg.dsn, sample_seconds=1, cores=4, memory=64 * GiB)
    found = findings(busy)
    fired = {"CN001", "CN003", "CN004", "CN005", "CN007", "PQ005", "PQ010"}
    assert fired <= set(found), sorted(found)
    assert "CN006" not in found and "PQ006" not in found

    cn001 = found["CN001"]
    assert cn001.severity == "warning"
    assert cn001.evidence["client_backends"] == 19 and cn001.evidence["capacity"] == 22
    assert "superuser_reserved_connections 3" in cn001.message
    assert found["CN003"].evidence["idle"] >= 10
    cn004 = found["CN004"]
    assert "2 backends idle in transaction" in cn004.message
    assert "(the built-in default)" in cn004.message
    assert "idle_in_transaction_session_timeout" in cn004.fix
    cn007 = found["CN007"]
    assert cn007.evidence["peak_active"] == 3 and cn007.evidence["processes"] == 9
    assert "max_parallel_workers_per_gather = 0" in cn007.fix
    assert "fewer" in found["PQ010"].message
    cn005 = found["CN005"]
    assert cn005.evidence["sessions"] >= 250 and cn005.evidence["avg_ms"] < 1000
    assert "since the server started" in cn005.message

    # Calm: few idle connections, a timeout for idle transactions, a 64-core machine. (CN005's
    # counters keep the churn above; its quiet case is the PG 15 test.)
    alter_system(pg, idle_in_transaction_session_timeout="10min")
    with workload(pg, idle=3, idle_in_tx=2, active=3):
        calm = collect(pg.dsn, sample_seconds=1, cores=64, memory=64 * GiB)
    quiet = findings(calm)
    assert not {"CN001", "CN002", "CN003", "CN004", "CN007", "PQ005"} & set(quiet), sorted(quiet)
    assert "more" in quiet["PQ010"].message  # 2 per gather, 8 workers on 64 cores


def test_pg15_slots_exhausted_is_critical(make_pg: MakePg) -> None:
    """CN001 critical and CN003 on PostgreSQL 15 (no reserved_connections there)."""
    pg = make_pg(15, max_connections=25, superuser_reserved_connections=3)
    with workload(pg, idle=21):
        snap = collect(pg.dsn, sample_seconds=1, cores=8, memory=64 * GiB)
    found = findings(snap)
    assert found["CN001"].severity == "critical", found["CN001"].message
    cn001 = found["CN001"].evidence
    assert cn001["capacity_text"] == "max_connections 25 - superuser_reserved_connections 3"
    assert cn001["client_backends"] == 21 and cn001["capacity"] == 22
    assert "CN003" in found
    assert not {"CN004", "CN005", "CN007"} & set(found), sorted(found)  # 21 long sessions
