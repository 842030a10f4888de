"""Real PgBouncer 1.18 in front of real PostgreSQL: the console reader, saturation provoked for
real and the sizing advice it moves, the state leak of a transaction pool shown live together
with the rule that warns about it, the CLI with --pgbouncer-ini / --pgbouncer-dsn, and the
limits of PB09 (database/user caps), PB17 (prepared-statement LRU) and PB20 (CPU ceiling)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from pathlib import Path
from typing import Any

import psycopg
import pytest
from poolers_bouncer import PgBouncer, cpu_quota, looping, make_bouncer

from advisor.collect import collect
from advisor.engine import analyse
from advisor.pgserver import PgServer
from advisor.pooler.pgbouncer import collect_pgbouncer, parse_ini, read_console
from advisor.snapshot import PgBouncerFacts, PgBouncerInstance, facts_from_snapshot
from tests.conftest import run_advisor as advisor
from tests.conftest import unavailable

__all__ = ["make_bouncer"]  # the fixture
ROOT = Path(__file__).resolve().parent.parent
MakeBouncer = Callable[..., PgBouncer]


def clients(dsn: str, n: int, sql: str) -> AbstractContextManager[None]:
    """`n` connections running `sql` in a loop until the block ends."""
    return looping([dsn] * n, lambda c: c.execute(sql))


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


def _roles(pg: PgServer, *names: str) -> None:
    with pg.connect(autocommit=True) as c:
        for n in names:
            with suppress(psycopg.errors.DuplicateObject):
                c.execute(f"CREATE ROLE {n} LOGIN")


@pytest.mark.parametrize("cap", ["max_db_connections", "max_user_connections"])
def test_cross_pool_starvation_at_a_cap_pb09(
    pg18: PgServer, make_bouncer: MakeBouncer, cap: str
) -> None:
    """Two pools of pool_size 2 share a cap of 2: the first pool's clients keep both servers
    busy with 2.5 s statements that span the whole sample window (nothing idle to evict, even
    on a loaded machine where shorter statements left gaps), so the second pool's clients wait
    with no server of their own. With the cap at the sum of the pool sizes, nobody waits."""
    _roles(pg18, "pb09_a", "pb09_b")
    if cap == "max_db_connections":  # same database, two users
        settings: dict[str, str | int] = {}
        databases = {"app": "max_db_connections={cap}"}
        heavy, starved = ("app", "pb09_a"), ("app", "pb09_b")
    else:  # same user, two databases
        settings = {"max_user_connections": "{cap}"}
        databases = {"app": "", "app2": ""}
        heavy, starved = ("app", "pb09_a"), ("app2", "pb09_a")
    for limit, fires in ((2, True), (4, False)):
        b = make_bouncer(
            pg18,
            settings={"pool_mode": "transaction", "default_pool_size": 2}
            | {k: str(v).format(cap=limit) for k, v in settings.items()},
            databases={k: v.format(cap=limit) for k, v in databases.items()},
            logins=("pb09_a", "pb09_b"),
        )
        with clients(b.dsn(*heavy), 2, "SELECT pg_sleep(2.5)"):
            time.sleep(0.3)
            with clients(b.dsn(*starved), 2, "SELECT 1"):
                time.sleep(0.4)
                facts = collect_pgbouncer([str(b.ini_path)], [b.admin_dsn], sample_seconds=1.5)
        console = facts.instances[0].console
        assert console is not None
        mine = [s for s in console.samples if (s.database, s.user) == starved]
        report = analyse(_with_server(pg18, facts), select=["PB05", "PB09"])
        if fires:
            assert sum(s.cl_waiting > 0 and s.sv_active == 0 for s in mine) >= 2, mine
            (f,) = report.findings  # PB09 only: PB05's "raise pool_size" would not help
            assert f.rule == "PB09"
            if cap == "max_db_connections":  # nor does the sizing ask for larger pools
                assert _pool_rec(report, "app") is None
            assert f.evidence["cap_name"] == cap and f.evidence["cap"] == 2
            assert f.evidence["user"] == starved[1] and "2 active, 0 idle" in f.message
            if cap == "max_db_connections":  # the cap as PgBouncer counts it
                (row,) = [d for d in console.databases if d["name"] == "app"]
                assert (row["current_connections"], row["max_connections"]) == (2, 2)
        else:
            assert "PB09" not in {f.rule for f in report.findings}


def test_prepared_cache_below_the_hot_statements_pb17(
    make_pg: Callable[..., PgServer], tmp_path: Path
) -> None:
    """psycopg 3 prepares 120 distinct statements (one column each of a wide table) on a real
    server; pg_stat_statements holds them. An ini with max_prepared_statements = 50 read
    without a version (as on a workstation) fires PB17; 200 does not; and with the 1.18
    binary on this machine PB17 leaves the key to PB02."""
    pg = make_pg(18, shared_preload_libraries="pg_stat_statements")
    with pg.connect(autocommit=True) as c:
        c.execute("CREATE EXTENSION pg_stat_statements")
    with psycopg.connect(pg.dsn, autocommit=True, prepare_threshold=0) as c:
        c.execute("CREATE TABLE wide (" + ", ".join(f"c{i} int" for i in range(120)) + ")")
        for rep in range(2):
            for i in range(120):
                c.execute(f"SELECT c{i} FROM wide WHERE c{i} = %s", (rep,))
    snap = collect(pg.dsn)

    def run_with(limit: int, *, with_binary: bool) -> Any:
        ini = tmp_path / f"pgbouncer-{limit}.ini"
        ini.write_text(
            f"[databases]\napp = host=127.0.0.1 port={pg.port} dbname=postgres\n"
            f"[pgbouncer]\npool_mode = transaction\nmax_prepared_statements = {limit}\n"
        )
        if with_binary:
            snap.pgbouncer = collect_pgbouncer([str(ini)], [])
        else:
            snap.pgbouncer = PgBouncerFacts(instances=[PgBouncerInstance(ini=parse_ini(str(ini)))])
        return analyse(facts_from_snapshot(snap), select=["PB02", "PB17"])

    (f,) = run_with(50, with_binary=False).findings
    assert f.rule == "PB17" and f.evidence["limit"] == 50
    assert 110 <= f.evidence["hot"] <= f.evidence["distinct"], f.evidence  # 95 % of calls
    assert "unknown" in f.evidence["version"] and "cannot see" in f.message
    assert run_with(200, with_binary=False).findings == []
    assert {x.rule for x in run_with(50, with_binary=True).findings} == {"PB02"}


def test_cpu_bound_at_a_cgroup_quota_pb20(pg18: PgServer, make_bouncer: MakeBouncer) -> None:
    """pgbench SELECT 1 with 48 clients through a pool of 4 while PgBouncer sits in a cgroup
    with a 0.2-core quota: it uses all of it and PB20 fires against the quota. A light load
    without a quota stays far below one core."""
    import shutil

    pgbench = shutil.which("pgbench")
    if pgbench is None:
        unavailable("pgbench is not installed: apt-get install postgresql-client-15")
    b = make_bouncer(
        pg18, settings={"pool_mode": "transaction", "default_pool_size": 4, "max_client_conn": 100}
    )
    assert b.proc is not None and b.tmp is not None
    script = b.tmp / "select1.sql"
    script.write_text("SELECT 1;\n")
    env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(b.port), PGUSER="postgres")
    cmd = [pgbench, "-n", "-M", "simple", "-f", str(script), "-c", "48", "-j", "2", "-T", "4"]
    with cpu_quota(b.proc.pid, 0.2):
        bench = subprocess.Popen([*cmd, "postgres"], env=env, stdout=subprocess.DEVNULL)
        try:
            time.sleep(1.0)
            facts = collect_pgbouncer([str(b.ini_path)], [b.admin_dsn], sample_seconds=2)
        finally:
            bench.wait(30)
    proc = facts.instances[0].process
    assert proc is not None and proc.cpu_limit == 0.2 and proc.cpu_share is not None  # v1 or v2
    assert proc.cpu_share > 0.15, proc  # used (nearly) its whole quota
    report = analyse(_with_server(pg18, facts), select=["PB20"])
    (f,) = report.findings
    assert "cgroup's CPU quota" in f.message
    assert _pool_rec(report, "postgres") is None  # larger pools would not help

    with clients(b.dsn(), 4, "SELECT pg_sleep(0.05)"):
        facts = collect_pgbouncer([str(b.ini_path)], [b.admin_dsn], sample_seconds=1.5)
    proc = facts.instances[0].process
    assert proc is not None and proc.cpu_share is not None and proc.cpu_limit != 0.2
    assert analyse(_with_server(pg18, facts), select=["PB20"]).findings == []
