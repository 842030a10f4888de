"""The live collector against real servers (PostgreSQL 13 to 18), plus its pure helpers.

Everything a test creates on the shared session servers lives in its own databases
(advisor_collect, advisor_bare) and roles (advisor_*), so other test modules see nothing new.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from advisor.collect import ADVISOR_MARKER, CollectError, collect, parse_size
from advisor.collect.connect import connect, redact_dsn, scrub
from advisor.collect.hardware import parse_cpu_list, probe, read_cgroup_limits
from advisor.collect.live import is_local
from advisor.collect.queries import QueryUnavailable, load, names, pick, pick_version, versions
from advisor.collect.secrets import scrub_text, setting_value, statement_text
from advisor.pgserver import PgServer
from advisor.snapshot import Snapshot, SnapshotError, facts_from_snapshot

PASSWORD = "S3cr3t-pa55-word"
DBS = ("advisor_collect", "advisor_bare")
ROLES = {
    "advisor_app": "NOLOGIN",
    "advisor_nopriv": "LOGIN",
    "advisor_pw": f"LOGIN PASSWORD '{PASSWORD}'",
}
PARALLEL_QUERY = "SELECT count(*) FROM advisor_t"


def dsn(pg: PgServer, db: str = "advisor_collect", user: str = "postgres", **extra: str) -> str:
    parts = {"host": "127.0.0.1", "port": str(pg.port), "user": user, "dbname": db, **extra}
    return " ".join(f"{k}={v}" for k, v in parts.items())


def _prepare(pg: PgServer) -> None:
    """Idempotent: databases, roles, overrides, the extension, a table, scram for advisor_pw."""
    with pg.connect(autocommit=True) as c:
        for db in DBS:
            if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone():
                c.execute(f"CREATE DATABASE {db}")
        for role, attrs in ROLES.items():
            if not c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
                c.execute(f"CREATE ROLE {role} {attrs}")
        c.execute("ALTER ROLE advisor_app SET max_parallel_workers_per_gather = 0")
        c.execute("ALTER ROLE advisor_app IN DATABASE advisor_bare SET work_mem = '8MB'")
        c.execute("ALTER DATABASE advisor_bare SET jit = off")
    with psycopg.connect(dsn(pg), autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        c.execute(
            "CREATE TABLE IF NOT EXISTS advisor_t AS SELECT g AS i FROM generate_series(1, 20000) g"
        )
        c.execute(
            "CREATE OR REPLACE FUNCTION advisor_f() RETURNS int LANGUAGE sql "
            "SET max_parallel_workers_per_gather = 0 AS 'SELECT 1'"
        )
    # Real password authentication for one role over TCP (the rest of the cluster stays trust).
    hba = pg.datadir / "pg_hba.conf"
    text = hba.read_text()
    line = "host all advisor_pw 127.0.0.1/32 scram-sha-256\n"
    if line not in text:
        hba.write_text(line + text)
        with pg.connect(autocommit=True) as c:
            c.execute("SELECT pg_reload_conf()")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def server(pg_any: PgServer) -> PgServer:
    """Every major of conftest.ALL_MAJORS (13-18) in turn, prepared for these tests."""
    _prepare(pg_any)
    return pg_any


@pytest.fixture(scope="module")
def snap(server: PgServer) -> Snapshot:
    """One superuser snapshot of advisor_collect taken after a parallel query ran."""
    with psycopg.connect(dsn(server), autocommit=True) as c:
        for setting in (
            "parallel_setup_cost",
            "parallel_tuple_cost",
            "min_parallel_table_scan_size",
        ):
            c.execute(f"SET {setting} = 0")
        c.execute(PARALLEL_QUERY)
        if server.major >= 15:
            c.execute("SELECT pg_stat_force_next_flush()")
        c.execute("SELECT 1")  # going idle flushes the pending database counters
        # Up to 14 a separate statistics collector receives the counters asynchronously
        # (about every 500 ms): wait until they arrived, or the snapshot may still show 0.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            c.execute("SELECT pg_stat_clear_snapshot()")
            row = c.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()
            if row and row[0]:
                break
            time.sleep(0.1)
    return collect(dsn(server))


# -- against the servers ------------------------------------------------------------------------


@pytest.mark.server
def test_target_and_session(snap: Snapshot, server: PgServer) -> None:
    assert snap.target.server_version_num == server.version_num
    assert snap.target.database == "advisor_collect"
    assert snap.target.host == "127.0.0.1" and snap.target.port == server.port
    assert snap.target.local and snap.target.superuser and snap.target.read_all_stats
    assert snap.session_settings["default_transaction_read_only"] == "on"
    assert snap.settings["statement_timeout"].setting == "30000"
    assert snap.settings["statement_timeout"].source == "client"
    assert snap.settings["application_name"].setting == "advisor"
    facts = facts_from_snapshot(snap)
    assert facts.server_version_num == server.version_num
    assert facts.settings is not None and facts.settings["max_parallel_workers_per_gather"] == "2"
    assert "settings" in facts.available()


@pytest.mark.server
def test_settings_have_sources(snap: Snapshot, server: PgServer) -> None:
    preload = snap.settings["shared_preload_libraries"]
    assert preload.setting == "pg_stat_statements"
    assert preload.source == "configuration file" and preload.context == "postmaster"
    assert preload.sourcefile is not None and preload.sourcefile.endswith("postgresql.conf")
    per_gather = snap.settings["max_parallel_workers_per_gather"]
    assert (per_gather.source, per_gather.boot_val, per_gather.context) == ("default", "2", "user")
    assert snap.settings["min_parallel_table_scan_size"].unit == "8kB"
    force = "debug_parallel_query" if server.major >= 16 else "force_parallel_mode"
    assert force in snap.settings
    # ALTER SYSTEM + reload shows up as the auto.conf file (a setting no other test looks at).
    with server.connect(autocommit=True) as c:
        c.execute("ALTER SYSTEM SET log_autovacuum_min_duration = '12345ms'")
        c.execute("SELECT pg_reload_conf()")
    try:
        for _ in range(50):
            fact = collect(dsn(server)).settings["log_autovacuum_min_duration"]
            if fact.setting == "12345":
                break
            time.sleep(0.1)
        assert (fact.setting, fact.source) == ("12345", "configuration file")
        assert fact.sourcefile is not None and fact.sourcefile.endswith("postgresql.auto.conf")
    finally:
        with server.connect(autocommit=True) as c:
            c.execute("ALTER SYSTEM RESET log_autovacuum_min_duration")
            c.execute("SELECT pg_reload_conf()")


@pytest.mark.server
def test_role_database_and_function_overrides(snap: Snapshot) -> None:
    rows = {(r.role, r.database, r.name): r.value for r in snap.role_db_settings}
    assert rows[("advisor_app", None, "max_parallel_workers_per_gather")] == "0"
    assert rows[("advisor_app", "advisor_bare", "work_mem")] == "8MB"
    assert rows[(None, "advisor_bare", "jit")] == "off"
    funcs = {(f.function, f.name): f.value for f in snap.function_settings}
    assert funcs[("advisor_f()", "max_parallel_workers_per_gather")] == "0"


# pg_stat_statements that each major ships: (extension version, statements_*.sql picked).
PGSS = {
    13: ("1.8", 0),
    14: ("1.9", 140000),
    15: ("1.10", 150000),
    16: ("1.10", 150000),
    17: ("1.11", 170000),
    18: ("1.12", 180000),
}


@pytest.mark.server
def test_statements_and_parallel_counters(snap: Snapshot, server: PgServer) -> None:
    major = server.major
    info = snap.statements_info
    assert info is not None and info.schema_name == "public" and info.limit == 500
    assert (info.extension_version, info.sql_version) == PGSS[major]
    assert (info.dealloc is not None) == (major >= 14)  # pg_stat_statements_info: 1.9+
    row = next(s for s in snap.statements if s.query == PARALLEL_QUERY)
    assert row.calls >= 1 and row.total_exec_time > 0 and row.queryid is not None
    assert row.plans is not None and row.wal_bytes is not None and not row.hidden  # 1.8+
    assert row.toplevel is (True if major >= 14 else None)  # 1.9+
    assert (row.jit_functions is not None) == (major >= 15)  # 1.10+
    assert (row.temp_blk_read_time is not None) == (major >= 15)
    assert (row.jit_deform_time is not None) == (major >= 17)  # 1.11+
    assert (row.stats_since is not None) == (major >= 17)
    ours = next(d for d in snap.database_stats if d.datname == "advisor_collect")
    skipped = {s.what for s in snap.skipped}
    if major >= 14:
        # The column is there; its value may still be 0 on 14, whose statistics collector
        # counts ended sessions asynchronously.
        assert ours.sessions is not None and ours.sessions >= 0
        assert ours.session_time is not None and ours.sessions_killed is not None
        assert "pg_stat_database session counters" not in skipped
    else:
        assert ours.sessions is None and ours.session_time is None
        assert "pg_stat_database session counters" in skipped
    assert ours.xact_commit is not None and ours.xact_commit >= 1
    if major >= 18:
        assert row.parallel_workers_to_launch is not None and row.parallel_workers_to_launch >= 1
        assert row.parallel_workers_launched is not None
        assert ours.parallel_workers_to_launch is not None and ours.parallel_workers_to_launch >= 1
        assert ours.parallel_workers_launched is not None
        assert "parallel worker counters" not in skipped
    else:
        assert row.parallel_workers_to_launch is None and row.parallel_workers_launched is None
        assert ours.parallel_workers_to_launch is None
        assert "parallel worker counters" in skipped
    assert "pg_stat_statements" not in skipped


@pytest.mark.server
def test_activity_and_bgworkers(snap: Snapshot, server: PgServer) -> None:
    types = {b.backend_type for b in snap.activity}
    assert {"checkpointer", "logical replication launcher"} <= types
    assert all(b.pid != 0 for b in snap.activity)
    assert not any(b.application_name == "advisor" for b in snap.activity)  # not ourselves
    assert snap.bgworkers and all(w.count >= 1 for w in snap.bgworkers)
    launcher = next(w for w in snap.bgworkers if w.backend_type == "logical replication launcher")
    assert launcher.core
    assert not any(w.backend_type in ("checkpointer", "io worker") for w in snap.bgworkers)
    assert len(snap.activity_samples) == 1 and snap.activity_samples[0].hidden == 0
    assert "query" not in Snapshot.model_json_schema()["$defs"]["Backend"]["properties"]


@pytest.mark.server
def test_sampling_sees_connections_and_parallel_workers(server: PgServer) -> None:
    force = "debug_parallel_query" if server.major >= 16 else "force_parallel_mode"
    idle_tx = psycopg.connect(dsn(server))
    idle_tx.execute("SELECT 1")  # now idle in transaction
    sleeper = psycopg.connect(dsn(server), autocommit=True)
    sleeper.execute(f"SET {force} = on")
    pid = sleeper.info.backend_pid
    errors: list[BaseException] = []

    def sleep() -> None:
        try:
            sleeper.execute("SELECT pg_sleep(30)")
        except psycopg.errors.QueryCanceled:
            pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=sleep)
    thread.start()
    try:
        with server.connect(autocommit=True) as watch:
            for _ in range(100):
                row = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE leader_pid = %s", [pid]
                ).fetchone()
                if row and row[0] >= 1:
                    break
                time.sleep(0.05)
        started = time.monotonic()
        got = collect(dsn(server), sample_seconds=1)
        assert time.monotonic() - started < 5
    finally:
        with server.connect(autocommit=True) as c:
            c.execute("SELECT pg_cancel_backend(%s)", [pid])
        thread.join(10)
        sleeper.close()
        idle_tx.close()
    assert not errors
    assert len(got.activity_samples) == 3
    assert got.activity_samples[0].t == 0.0
    assert got.activity_samples[-1].t == pytest.approx(1.0, abs=0.4)
    peaks = got.activity_peaks()
    assert peaks is not None and peaks.samples == 3
    assert peaks.parallel_workers >= 1 and peaks.active >= 1 and peaks.idle_in_transaction >= 1
    workers = [b for b in got.activity if b.backend_type == "parallel worker"]
    assert workers and all(w.leader_pid == pid for w in workers)  # leader_pid: 13+
    leader = next(b for b in got.activity if b.pid == pid)
    if server.major >= 14:  # pg_stat_activity.query_id, computed as pg_stat_statements is loaded
        assert leader.query_id is not None and all(w.query_id == leader.query_id for w in workers)
    else:
        assert all(b.query_id is None for b in got.activity)


@pytest.mark.server
def test_unprivileged_role_without_extension(server: PgServer) -> None:
    got = collect(dsn(server, "advisor_bare", "advisor_nopriv"))
    assert not got.target.superuser and not got.target.read_all_stats
    assert got.settings["max_connections"].setting == "100"
    assert got.settings["max_connections"].sourcefile is None
    assert got.statements == [] and got.statements_info is None
    reasons = {s.what: s.reason for s in got.skipped}
    assert "not installed in database advisor_bare" in reasons["pg_stat_statements"]
    assert "pg_read_all_stats" in reasons["pg_stat_activity of other roles"]
    assert "pg_read_all_settings" in reasons["pg_settings sourcefile"]
    assert got.activity and any(b.backend_type is None for b in got.activity)
    assert got.activity_samples[0].hidden >= 1
    assert got.bgworkers == []  # their types are hidden too
    # With the extension installed, other roles' statements come back without text.
    got = collect(dsn(server, "advisor_collect", "advisor_nopriv"))
    reasons = {s.what: s.reason for s in got.skipped}
    assert "pg_stat_statements" not in reasons
    assert "pg_read_all_stats" in reasons["pg_stat_statements of other roles"]
    hidden = [s for s in got.statements if s.hidden]
    assert hidden and all(s.query is None and s.queryid is None for s in hidden)


@pytest.mark.server
def test_session_is_read_only_and_named(server: PgServer) -> None:
    conn = connect(dsn(server))
    try:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == {
            "default_transaction_read_only": "on"
        }
        assert conn.execute("SHOW statement_timeout").fetchone() == {"statement_timeout": "30s"}
        assert conn.execute("SHOW lock_timeout").fetchone() == {"lock_timeout": "2s"}
        with server.connect(autocommit=True) as other:
            row = other.execute(
                "SELECT application_name FROM pg_stat_activity WHERE pid = %s",
                [conn.info.backend_pid],
            ).fetchone()
        assert row == ("advisor",)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TABLE advisor_must_not_exist (i int)")
        conn.rollback()
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("UPDATE advisor_t SET i = i")
        conn.rollback()
    finally:
        conn.close()
    # A role setting cannot switch it back on: startup options beat ALTER ROLE ... SET.
    with server.connect(autocommit=True) as c:
        c.execute("ALTER ROLE advisor_nopriv SET default_transaction_read_only = off")
    try:
        conn = connect(dsn(server, user="advisor_nopriv"))
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TEMP TABLE advisor_tmp (i int)")
        conn.close()
    finally:
        with server.connect(autocommit=True) as c:
            c.execute("ALTER ROLE advisor_nopriv RESET default_transaction_read_only")


@pytest.mark.server
def test_statement_timeout_honoured(server: PgServer) -> None:
    conn = connect(dsn(server), statement_timeout_ms=100)
    try:
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(5)")
        assert time.monotonic() - started < 2
    finally:
        conn.close()


@pytest.mark.server
def test_lock_and_statement_timeouts_are_recorded(server: PgServer) -> None:
    """Another session locks the pg_stat_statements view: the collector gives up on it, says
    why, and collects everything else."""
    locker = psycopg.connect(dsn(server))
    try:
        locker.execute("LOCK TABLE pg_stat_statements IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        got = collect(dsn(server), lock_timeout_ms=200)
        reasons = {s.what: s.reason for s in got.skipped}
        assert "lock_timeout (200 ms)" in reasons["pg_stat_statements"]
        assert got.settings and got.database_stats and got.statements == []
        got = collect(dsn(server), statement_timeout_ms=400, lock_timeout_ms=0)
        reasons = {s.what: s.reason for s in got.skipped}
        assert "statement_timeout (400 ms)" in reasons["pg_stat_statements"]
        assert got.settings and got.role_db_settings
        assert time.monotonic() - started < 5
    finally:
        locker.rollback()
        locker.close()


@pytest.mark.server
def test_server_side_secrets_stay_out_of_snapshots(server: PgServer) -> None:
    """pg_stat_statements keeps CREATE/ALTER ROLE ... PASSWORD texts verbatim, and settings can
    hold conninfo strings: a superuser snapshot must still carry no password."""
    conninfo_pw = "Hidden-conninfo-pw"
    with server.connect(autocommit=True) as c:
        c.execute(f"ALTER ROLE advisor_pw PASSWORD '{PASSWORD}'")
        c.execute(f"ALTER ROLE advisor_app SET advisor.remote = 'host=x password={conninfo_pw}'")
    got = collect(dsn(server))
    text = got.to_json()
    assert PASSWORD not in text and conninfo_pw not in text
    remote = next(r for r in got.role_db_settings if r.name == "advisor.remote")
    assert remote.value == "host=x password=***"
    assert any(s.text_redacted and s.query is None for s in got.statements)
    assert "statement texts with credentials" in {s.what for s in got.skipped}


@pytest.mark.server
def test_password_never_in_snapshot_or_errors(server: PgServer, tmp_path: Path) -> None:
    # scram over TCP: the password is really used, not waved through by trust.
    kw = dsn(server, user="advisor_pw", password=PASSWORD)
    uri = f"postgresql://advisor_pw:{PASSWORD}@127.0.0.1:{server.port}/advisor_collect"
    for good in (kw, uri):
        got = collect(good)
        assert got.target.user == "advisor_pw"
        got.save(tmp_path / "s.json")
        assert PASSWORD not in (tmp_path / "s.json").read_text()
        assert PASSWORD not in redact_dsn(good)
        assert "advisor_pw" in redact_dsn(good) and "127.0.0.1" in redact_dsn(good)
    with pytest.raises(CollectError) as bad:
        collect(dsn(server, user="advisor_pw", password=PASSWORD + "x"))
    message = str(bad.value)
    assert "password authentication failed" in message and PASSWORD not in message
    assert "\n" not in message and message.endswith(".")
    with pytest.raises(CollectError) as none:
        collect(dsn(server, user="advisor_pw"), statement_timeout_ms=1000)
    assert "no password" in str(none.value)


def test_unreachable_server_is_one_sentence() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        with pytest.raises(CollectError) as err:
            collect(f"host=127.0.0.1 port={port} user=u dbname=d password={PASSWORD}")
    message = str(err.value)
    assert message.startswith(f"cannot connect to host=127.0.0.1 port={port} dbname=d user=u")
    assert "Connection refused" in message
    assert "\n" not in message and message.endswith(".") and PASSWORD not in message
    with pytest.raises(CollectError) as err:
        collect("host=/nonexistent-advisor-dir port=5")
    assert "No such file or directory" in str(err.value) and "\n" not in str(err.value)


def test_invalid_dsn_hides_password_fragments() -> None:
    with pytest.raises(CollectError) as err:
        connect("host=h password=my secret")
    message = str(err.value)
    assert message.startswith("the connection string is not valid")
    assert "secret" not in message and "\n" not in message
    assert "secret" not in redact_dsn("host=h password=my secret")


def test_redact_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE", "PGHOSTADDR"):
        monkeypatch.delenv(var, raising=False)
    full = "host=db1 port=6432 dbname=app user=alice password=pw123 sslmode=require"
    assert redact_dsn(full) == "host=db1 port=6432 dbname=app user=alice"
    assert redact_dsn("postgresql://alice:pw123@db1:6432/app?sslmode=require") == (
        "host=db1 port=6432 dbname=app user=alice"
    )
    assert redact_dsn("") == "the libpq defaults (local socket, current user)"
    monkeypatch.setenv("PGHOST", "envhost")
    monkeypatch.setenv("PGUSER", "envuser")
    assert redact_dsn(None) == "host=envhost user=envuser"
    assert scrub("failed for pw123 and pw123", "user=a password=pw123") == "failed for *** and ***"
    monkeypatch.setenv("PGPASSWORD", "fromenv")
    assert scrub("x fromenv y", "") == "x *** y"


def test_secret_scrubbing() -> None:
    assert statement_text("CREATE ROLE a LOGIN PASSWORD 'x'") == (None, True)
    assert statement_text("/* app */ -- hi\n alter user a with password 'x'") == (None, True)
    assert statement_text("CREATE USER MAPPING FOR a SERVER s OPTIONS (password 'x')")[0] is None
    assert statement_text("SELECT $1 FROM t") == ("SELECT $1 FROM t", False)
    assert statement_text(None) == (None, False)
    masked, changed = statement_text("SELECT dblink_connect('host=h password=pw9 user=u')")
    assert changed and masked == "SELECT dblink_connect('host=h password=*** user=u')"
    assert scrub_text("COPY t FROM PROGRAM 'curl postgresql://u:pw9@h/db'") == (
        "COPY t FROM PROGRAM 'curl postgresql://u:***@h/db'"
    )
    assert scrub_text("DO $$ ... PASSWORD 'it''s' ... $$") == "DO $$ ... PASSWORD '***' ... $$"
    assert setting_value("primary_conninfo", "host=p user=r password='a b'") == (
        "host=p user=r password=***"
    )
    assert setting_value("ssl_passphrase_command", "echo hunter2") == "***"
    assert setting_value("work_mem", "4096") == "4096" and setting_value("x", "") == ""


def test_is_local() -> None:
    assert is_local("/var/run/postgresql") and is_local(None) and is_local("")
    assert is_local("localhost") and is_local("127.0.0.1") and is_local("::1")
    assert is_local("db.example", "127.0.0.1")
    assert not is_local("10.0.0.5") and not is_local("db.example", "192.0.2.7")


# -- snapshot files ---------------------------------------------------------------------------


@pytest.mark.server
def test_snapshot_round_trip(snap: Snapshot, tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    snap.save(path)
    again = Snapshot.load(path)
    assert again == snap
    assert again.to_json() == snap.to_json()
    raw = json.loads(path.read_text())
    assert raw["schema_version"] == 1 and raw["tool"]["name"] == "pg-parallel-advisor"


def _minimal() -> dict[str, Any]:
    return {
        "schema_version": 1,
        "tool": {"name": "pg-parallel-advisor", "version": "0.1.0"},
        "collected_at": "2026-01-01T00:00:00+00:00",
        "target": {
            "server_version": "18.1",
            "server_version_num": 180001,
            "database": "d",
            "user": "u",
        },
        "settings": {"work_mem": {"setting": "4096", "unit": "kB", "source": "default"}},
    }


def test_snapshot_load_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_minimal()))
    loaded = Snapshot.load(good)
    assert loaded.setting("work_mem") == "4096" and loaded.hardware.cores_source == "unknown"
    assert facts_from_snapshot(loaded).settings == {"work_mem": "4096"}

    cases = {
        "trunc.json": (json.dumps(_minimal())[:40], "invalid JSON at line 1"),
        "list.json": ("[1, 2]", "no schema_version"),
        "v2.json": (json.dumps({**_minimal(), "schema_version": 2}), "schema_version 2"),
        "bad.json": (
            json.dumps({**_minimal(), "target": {"server_version": "18"}}),
            "target.server_version_num: Field required",
        ),
        "bin.json": (b"\xff\xfe\x00", "not UTF-8"),
    }
    for name, (content, expected) in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        with pytest.raises(SnapshotError) as err:
            Snapshot.load(path)
        message = str(err.value)
        assert str(path) in message and expected in message, message
        assert "\n" not in message and message.endswith(".")
    with pytest.raises(SnapshotError, match=r"cannot read snapshot .*missing\.json"):
        Snapshot.load(tmp_path / "missing.json")


# -- version-specific SQL files -----------------------------------------------------------------


def test_sql_files_pick_by_version() -> None:
    assert pick("statements", 130012).name == "statements.sql"
    assert pick("statements", 140000).name == "statements_post_140000.sql"
    assert pick("statements", 160004).name == "statements_post_150000.sql"
    assert pick("statements", 170000).name == "statements_post_170000.sql"
    assert pick("statements", 190000).name == "statements_post_180000.sql"
    assert pick_version("database_stats", 150018) == 140000
    assert pick_version("database_stats", 180006) == 180000
    assert pick_version("activity", 130000) == 0
    assert versions("statements") == [0, 140000, 150000, 170000, 180000]
    with pytest.raises(QueryUnavailable, match="needs PostgreSQL 14"):
        load("statements_info", 130016)
    with pytest.raises(KeyError):
        load("no_such_query", 180000)


def test_every_sql_file_opens_with_what_changed() -> None:
    for name in names():
        for num in versions(name):
            text = pick(name, num or 1).read_text(encoding="utf-8")
            first = text.splitlines()[0]
            assert first.startswith(f"-- {name}:"), (name, num, first)
            if num:
                assert any(w in text.split("SELECT")[0] for w in ("NEW", "CHANGED")), (name, num)
            # What is sent: the header dropped, the advisor's marker after the first keyword.
            assert load(name, num or 1).startswith(f"SELECT {ADVISOR_MARKER} "), (name, num)


def test_collector_modules_stay_out_of_the_offline_path() -> None:
    code = (
        "import sys, advisor.engine, advisor.report, advisor.plan, advisor.cli, "
        "advisor.collect, advisor.collect.hardware, advisor.collect.queries; "
        "assert 'psycopg' not in sys.modules, 'psycopg'; "
        "assert 'pydantic' not in sys.modules, 'pydantic'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- hardware -------------------------------------------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content + "\n")


def test_cgroup_v2_limits(tmp_path: Path) -> None:
    root, proc = tmp_path / "cg", tmp_path / "proc"
    _write(
        root,
        {
            "cgroup.controllers": "cpuset cpu memory",
            "kubepods/cpu.max": "max 100000",
            "kubepods/pod1/cpu.max": "50000 100000",
            "kubepods/pod1/memory.max": str(256 * 1024**2),
            "kubepods/pod1/ctr/cpu.max": "max 100000",
            "kubepods/pod1/ctr/memory.max": "max",
            "kubepods/pod1/ctr/cpuset.cpus.effective": "0-3,6",
        },
    )
    _write(proc, {"self/cgroup": "0::/kubepods/pod1/ctr"})
    limits = read_cgroup_limits(root=root, proc=proc)
    assert limits is not None and limits.version == 2
    assert (limits.cpu_quota, limits.cpuset, limits.memory_bytes) == (0.5, 5, 256 * 1024**2)
    assert limits.cores == 0.5
    found = probe(local=True, root=root, proc=proc)
    assert (found.hardware.cores, found.hardware.cores_source) == (0.5, "cgroup")
    assert found.hardware.memory_bytes == 256 * 1024**2
    assert found.hardware.memory_source == "cgroup"
    assert "cpu.max" in found.details["cgroup_files"]
    # Inside a cgroup namespace the process sees "/" and the mount is its own cgroup.
    ns = tmp_path / "ns"
    _write(ns, {"cgroup.controllers": "cpu", "cpu.max": "25000 100000", "memory.max": "max"})
    _write(proc, {"self/cgroup": "0::/"})
    limits = read_cgroup_limits(root=ns, proc=proc)
    assert limits is not None and (limits.cpu_quota, limits.memory_bytes) == (0.25, None)


def test_cgroup_v1_limits_and_server_pid(tmp_path: Path) -> None:
    root, proc = tmp_path / "cg", tmp_path / "proc"
    _write(
        root,
        {
            "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "50000",
            "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000",
            "cpu,cpuacct/cpu.cfs_quota_us": "-1",
            "cpu,cpuacct/cpu.cfs_period_us": "100000",
            "cpuset/docker/abc/cpuset.cpus": "0-1",
            "memory/docker/abc/memory.limit_in_bytes": str(512 * 1024**2),
            "memory/memory.limit_in_bytes": "9223372036854771712",
            "memory/other/memory.limit_in_bytes": str(128 * 1024**2),
        },
    )
    _write(
        proc,
        {
            "self/cgroup": "4:cpu,cpuacct:/\n3:cpuset:/\n2:memory:/other\n0::/",
            "4242/comm": "postgres",
            "4242/cgroup": "4:cpu,cpuacct:/docker/abc\n3:cpuset:/docker/abc\n2:memory:/docker/abc",
        },
    )
    limits = read_cgroup_limits(4242, root=root, proc=proc)
    assert limits is not None and limits.version == 1
    assert (limits.cpu_quota, limits.cpuset, limits.memory_bytes) == (0.5, 2, 512 * 1024**2)
    # The server's cgroup is used when its pid is visible, else the advisor's own.
    found = probe(local=True, server_pid=4242, root=root, proc=proc)
    assert found.hardware.memory_bytes == 512 * 1024**2
    assert "pid 4242" in found.details["memory"]
    found = probe(local=True, server_pid=999, root=root, proc=proc)
    assert found.hardware.memory_bytes == 128 * 1024**2
    assert found.hardware.cores_source == "host"  # no quota in the advisor's own cgroup
    assert "not visible" in found.details["cores"]


def test_hardware_of_this_machine() -> None:
    found = probe(local=True, server_pid=os.getpid())
    hw = found.hardware
    assert hw.cores_source in ("cgroup", "host") and hw.memory_source in ("cgroup", "host")
    assert hw.cores is not None and 0 < hw.cores <= (os.cpu_count() or 1)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert hw.memory_bytes is not None and 0 < hw.memory_bytes <= total
    assert "cores" in found.details and "memory" in found.details


def test_remote_and_user_hardware() -> None:
    found = probe(local=False, host="db.example")
    assert (found.hardware.cores, found.hardware.cores_source) == (None, "unknown")
    assert (found.hardware.memory_bytes, found.hardware.memory_source) == (None, "unknown")
    assert "--cores" in found.details["cores"] and "db.example" in found.details["cores"]
    found = probe(local=False, cores=16, memory=parse_size("64GB"))
    assert (found.hardware.cores, found.hardware.cores_source) == (16.0, "user")
    assert (found.hardware.memory_bytes, found.hardware.memory_source) == (64 * 1024**3, "user")


def test_parse_size_and_cpu_list() -> None:
    assert parse_size("16GB") == 16 * 1024**3
    assert parse_size("512MB") == parse_size("512 MiB") == 512 * 1024**2
    assert parse_size("1.5TB") == int(1.5 * 1024**4)
    assert parse_size("8kB") == 8192 and parse_size("1024") == 1024 and parse_size("2g") == 2 << 30
    for bad in ("", "GB", "16 parsecs", "-1GB", "0"):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert parse_cpu_list("0-3,8,10-11") == 7 and parse_cpu_list("0") == 1


@pytest.fixture(autouse=True)
def _no_libpq_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The developer's PG* variables must not leak into these DSNs."""
    for var in ("PGPASSWORD", "PGSERVICE", "PGOPTIONS", "PGCONNECT_TIMEOUT", "PGSSLMODE"):
        monkeypatch.delenv(var, raising=False)
    yield
