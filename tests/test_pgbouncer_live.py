"""Real PgBouncer 1.18 in front of real PostgreSQL: the console reader, saturation provoked for
real and the sizing advice it moves, the state leak of a transaction pool shown live together
with the rule that warns about it, and the CLI with --pgbouncer-ini / --pgbouncer-dsn."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg
import pytest
from poolers_bouncer import PgBouncer, make_bouncer

from advisor.collect import collect
from advisor.engine import analyse
from advisor.pgserver import PgServer
from advisor.pooler.pgbouncer import collect_pgbouncer, read_console
from advisor.snapshot import facts_from_snapshot

__all__ = ["make_bouncer"]  # the fixture
ROOT = Path(__file__).resolve().parent.parent
MakeBouncer = Callable[..., PgBouncer]


@contextmanager
def clients(dsn: str, n: int, sql: str) -> Iterator[None]:
    """`n` connections running `sql` in a loop until the block ends."""
    stop = threading.Event()

    def work() -> None:
        with suppress(psycopg.Error), psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                conn.execute(sql)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(10)


def test_console_reader_on_1_18(pg18: PgServer, make_bouncer: MakeBouncer) -> None:
    b = make_bouncer(pg18, settings={"pool_mode": "transaction"})
    with psycopg.connect(b.dsn(), autocommit=True) as c:
        c.execute("SELECT 1")
        console = read_console(b.admin_dsn, sample_seconds=1.0, interval=0.25)
    assert console.version == "1.18.0"
    assert console.config["pool_mode"] == "transaction"
    assert "cl_active_cancel_req" in console.pools[0]  # the 1.18 column set
    assert {s.database for s in console.samples} == {"postgres"}
    assert len({s.t for s in console.samples}) >= 4
    assert console.seconds >= 1.0
    row = next(r for r in console.stats if r["database"] == "postgres")
    assert isinstance(row["total_xact_count"], int) and row["total_xact_count"] >= 1


def _pool_rec(report: Any, db: str) -> Any:
    return next(
        (
            r
            for r in report.recommendations
            if r.kind == "pgbouncer" and r.name.endswith("pool_size") and f" {db}" in r.scope
        ),
        None,
    )


def test_saturation_is_seen_and_sizing_moves_the_right_way(
    pg18: PgServer, make_bouncer: MakeBouncer
) -> None:
    """8 clients, each 50 ms per transaction, through a pool of 1: clients queue (cl_waiting,
    maxwait measured), PB05/PB06 fire and the advice raises pool_size. Through a pool of 12
    the same load does not queue and the advice does not ask for more."""
    load = "SELECT pg_sleep(0.05)"
    small = make_bouncer(
        pg18, settings={"pool_mode": "transaction"}, databases={"app": "pool_size=1"}
    )
    with clients(small.dsn("app"), 8, load):
        time.sleep(0.5)
        facts = collect_pgbouncer([str(small.ini_path)], [small.admin_dsn], sample_seconds=3)
    samples = facts.instances[0].console.samples  # type: ignore[union-attr]
    assert max(s.cl_waiting for s in samples) >= 5
    assert max(s.maxwait_s for s in samples) > 0.1
    report = analyse(_with_server(pg18, facts))
    rules = {f.rule for f in report.findings}
    assert "PB06" in rules, [f.message for f in report.findings]
    rec = _pool_rec(report, "app")
    assert rec is not None and int(rec.recommended) > 1, rec
    assert "Erlang C" in rec.formula and "cl_waiting" in rec.formula

    big = make_bouncer(
        pg18, settings={"pool_mode": "transaction"}, databases={"app": "pool_size=12"}
    )
    with clients(big.dsn("app"), 8, load):
        time.sleep(0.5)
        facts = collect_pgbouncer([str(big.ini_path)], [big.admin_dsn], sample_seconds=3)
    samples = facts.instances[0].console.samples  # type: ignore[union-attr]
    assert max(s.cl_waiting for s in samples) <= 2
    report = analyse(_with_server(pg18, facts))
    assert not {"PB05", "PB06"} & {f.rule for f in report.findings}
    rec = _pool_rec(report, "app")
    assert rec is None or int(rec.recommended) <= 12, rec


def _with_server(pg: PgServer, bouncer: Any) -> Any:
    snap = collect(pg.dsn, cores=2, memory=4 * 1024**3)
    snap.pgbouncer = bouncer
    return facts_from_snapshot(snap)


def test_session_state_leaks_through_a_transaction_pool_and_the_rules_say_so(
    make_pg: Callable[..., PgServer], make_bouncer: MakeBouncer
) -> None:
    """pool_size=1, transaction mode: whatever client A leaves on the server, client B gets
    (knowledge/poolers.md §2.1), and PB11-PB15 name each statement from pg_stat_statements."""
    pg = make_pg(18, shared_preload_libraries="pg_stat_statements")
    with pg.connect(autocommit=True) as c:
        c.execute("CREATE EXTENSION pg_stat_statements")
        c.execute("CREATE SCHEMA tenant_a")
    b = make_bouncer(
        pg,
        settings={"pool_mode": "transaction", "default_pool_size": 1},
        databases={"postgres": "", "batch": "pool_mode=statement"},
    )
    with psycopg.connect(b.dsn(), autocommit=True) as a:
        a.execute("SET search_path = tenant_a, public")
        a.execute("SET work_mem = '77MB'")
        a.execute("SELECT pg_advisory_lock(777)")
        a.execute("LISTEN jobs")
        a.execute("PREPARE p1 AS SELECT 42")
        a.execute("CREATE TEMP TABLE scratch AS SELECT 1 AS i")
        a.execute("DECLARE c1 CURSOR WITH HOLD FOR SELECT 7")
    with psycopg.connect(b.dsn(), autocommit=True) as other:  # an unrelated client
        assert other.execute("SHOW search_path").fetchone() == ("tenant_a, public",)
        assert other.execute("SHOW work_mem").fetchone() == ("77MB",)
        held = other.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 777 "
            "AND pid = pg_backend_pid()"
        ).fetchone()
        assert held == (1,)  # the first client's session lock sits on this client's backend
        assert other.execute("SELECT pg_listening_channels()").fetchone() == ("jobs",)
        assert other.execute("EXECUTE p1").fetchone() == (42,)
        assert other.execute("SELECT i FROM scratch").fetchone() == (1,)
        assert other.execute("FETCH c1").fetchone() == (7,)
    # statement pooling refuses explicit transactions outright
    with (
        psycopg.connect(b.dsn("batch"), autocommit=True) as st,
        pytest.raises(psycopg.Error, match="statement pooling"),
    ):
        st.execute("BEGIN")

    snap = collect(pg.dsn)
    snap.pgbouncer = collect_pgbouncer([str(b.ini_path)], [b.admin_dsn])
    report = analyse(facts_from_snapshot(snap), select=["PB11", "PB12", "PB13", "PB14", "PB15"])
    whats = {f.evidence["what"]: f for f in report.findings}
    assert {"SET search_path", "SET work_mem"} <= set(whats)
    assert whats["SET search_path"].severity == "critical"
    assert whats["SET work_mem"].severity == "warning"
    assert whats["SET work_mem"].evidence["calls"] == 1
    assert "postgres/postgres (transaction)" in whats["SET work_mem"].message
    by_rule = {f.rule for f in report.findings}
    assert {"PB11", "PB12", "PB13", "PB15"} <= by_rule
    assert {"LISTEN jobs", "pg_advisory_lock()", "CREATE TEMP TABLE scratch"} <= set(whats)
    assert "DECLARE c1 ... WITH HOLD" in whats
    # PG 18 counts EXECUTE under the inner query and drops PREPARE's own text, so the SQL
    # PREPARE shows up only when its DEALLOCATE ran (the capture script covers that case).


def advisor(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return subprocess.run(
        [sys.executable, "-m", "advisor", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
        timeout=120,
    )


MISCONFIGURED = """\
[databases]
appdb = host=127.0.0.1 port=5432 dbname=app password=hunter2secret
[pgbouncer]
listen_addr = 0.0.0.0
auth_type = trust
default_pool_size = 30 ; per database
"""


def test_cli_report_from_ini_alone(tmp_path: Path) -> None:
    ini = tmp_path / "pgbouncer.ini"
    ini.write_text(MISCONFIGURED)
    proc = advisor("report", "--pgbouncer-ini", str(ini), "--json", "--select", "PB")
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    rules = {f["rule"]: f for f in out["findings"]}
    assert set(rules) == {"PB01", "PB19"}
    assert rules["PB01"]["evidence"]["line"] == 6
    assert "hunter2secret" not in proc.stdout
    skipped = {s["rule"] for s in out["skipped"]}
    assert {"PB03", "PB05"} <= skipped  # need a server / a console

    ini.write_text("[pgbouncer]\npool_mode\n")
    proc = advisor("report", "--pgbouncer-ini", str(ini))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"advisor: {ini}:2: expected 'key = value'."


def test_cli_collect_and_report_with_console(
    pg18: PgServer, make_bouncer: MakeBouncer, tmp_path: Path
) -> None:
    b = make_bouncer(
        pg18,
        settings={"pool_mode": "session", "default_pool_size": 300},
        databases={"postgres": "password=hunter2secret"},
    )
    snap = tmp_path / "snap.json"
    proc = advisor(
        "collect",
        "--dsn",
        pg18.dsn,
        "--pgbouncer-ini",
        str(b.ini_path),
        "--pgbouncer-dsn",
        b.admin_dsn,
        "--pgbouncer-instances",
        "2",
        "--sample",
        "1",
        "--cores",
        "2",
        "-o",
        str(snap),
    )
    assert proc.returncode == 0, proc.stderr
    assert "hunter2secret" not in snap.read_text()
    data = json.loads(snap.read_text())
    assert data["pgbouncer"]["instance_count"] == 2
    console = data["pgbouncer"]["instances"][0]["console"]
    assert console["version"] == "1.18.0" and console["seconds"] >= 1.0
    assert data["activity_samples"]  # the server was sampled over the same window
    proc = advisor("report", str(snap), "--json", "--select", "PB")
    out = json.loads(proc.stdout)
    pb03 = next(f for f in out["findings"] if f["rule"] == "PB03")
    assert pb03["evidence"]["instances"] == 2 and pb03["evidence"]["total"] == 600
    names = {r["name"] for r in out["recommendations"] if r["kind"] == "pgbouncer"}
    assert {"default_pool_size", "max_db_connections"} <= names

    proc = advisor("report", "--pgbouncer-dsn", "host=127.0.0.1 port=1 dbname=pgbouncer")
    assert proc.returncode == 3 and proc.stderr.count("\n") == 1, proc.stderr


@pytest.mark.parametrize("ci", ["true", ""])
def test_missing_pgbouncer_fails_in_ci_and_skips_locally(ci: str) -> None:
    code = (
        "import os, pytest, poolers_bouncer as p; p.PGBOUNCER='/nonexistent/pgbouncer'\n"
        "try:\n    p.require_pgbouncer()\n"
        "except BaseException as e:\n    print(type(e).__name__, e)\n"
    )
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(ROOT / "tests")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout
    if ci:
        assert out.startswith("Failed") and "apt-get install pgbouncer" in out
    else:
        assert out.startswith("Skipped") and "apt-get install pgbouncer" in out


def test_named_prepares_break_without_tracking_and_pb16_warns(
    make_pg: Callable[..., PgServer], make_bouncer: MakeBouncer
) -> None:
    """psycopg 3 name-prepares a statement on its 5th execution; through a 1.18 transaction
    pool of one server, the second client's prepare collides with the first one's."""
    pg = make_pg(18, shared_preload_libraries="pg_stat_statements")
    with pg.connect(autocommit=True) as c:
        c.execute("CREATE EXTENSION pg_stat_statements")
    b = make_bouncer(pg, settings={"pool_mode": "transaction", "default_pool_size": 1})
    first = psycopg.connect(b.dsn(), autocommit=True)
    second = psycopg.connect(b.dsn(), autocommit=True)
    try:
        for i in range(6):
            first.execute("SELECT %s::int", (i,))
        with pytest.raises(psycopg.errors.DuplicatePreparedStatement):
            for i in range(6):
                second.execute("SELECT %s::int", (i,))
    finally:
        first.close()
        second.close()

    snap = collect(pg.dsn)
    snap.pgbouncer = collect_pgbouncer([str(b.ini_path)], [b.admin_dsn])
    report = analyse(facts_from_snapshot(snap), select=["PB16"])
    (pb16,) = report.findings
    assert "PgBouncer 1.18.0" in pb16.message and pb16.evidence["calls"] >= 11
