"""Reading a live server into a `Snapshot` (imported lazily by `advisor.collect.collect`).

Everything is read in one read-only transaction that is rolled back. Each optional part runs
under a savepoint: a missing privilege, a missing extension, a lock_timeout or a
statement_timeout rolls back to the savepoint and is recorded in `Snapshot.skipped`; only the
connection itself, the server identity and pg_settings are required. Activity samples after the
first each run in a short transaction of their own (pg_stat_activity is frozen within a
transaction once read, and the advisor should not sit idle in transaction while it waits).
"""

from __future__ import annotations

import contextlib
import ipaddress
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import errors, sql
from psycopg.rows import DictRow

from advisor import __version__
from advisor.collect import CollectError, mark, queries
from advisor.collect.connect import (
    _one_sentence,
    connect,
    describe_error,
    redact_dsn,
    scrub,
    session_settings,
)
from advisor.collect.hardware import probe, storage_of
from advisor.collect.secrets import scrub_text, setting_value, statement_text
from advisor.snapshot import (
    ActivitySample,
    Backend,
    BgWorker,
    DatabaseStat,
    FunctionFact,
    FunctionSetting,
    HardwareFact,
    RelationFact,
    RoleDbSetting,
    SettingFact,
    Snapshot,
    StatementsInfo,
    StatementStat,
    TargetInfo,
    ToolInfo,
)

SAMPLE_INTERVAL_S = 0.5
OLDEST_SUPPORTED = 130000
# pg_stat_statements extension version -> the server version whose SQL file has its columns.
# The extension can lag the server (pg_upgrade without ALTER EXTENSION ... UPDATE).
# Catalog caps: the largest relations, and functions in (schema, name) order.
RELATIONS_LIMIT = 2000
FUNCTIONS_LIMIT = 5000
PGSS_COLUMNS_OF = {"1.8": 130000, "1.9": 140000, "1.10": 150000, "1.11": 170000, "1.12": 180000}

Query = str | sql.SQL | sql.Composed


def is_local(host: str | None, hostaddr: str | None = None) -> bool:
    """Unix socket (or no host: libpq's default socket) or a loopback address."""
    if not host or host.startswith(("/", "@")):
        return True
    for candidate in (hostaddr, host):
        if not candidate:
            continue
        if candidate == "localhost":
            return True
        try:
            return ipaddress.ip_address(candidate).is_loopback
        except ValueError:
            continue
    return False


class _Reader:
    """Runs the collector's queries inside the open transaction, each under a savepoint."""

    def __init__(
        self,
        conn: psycopg.Connection[DictRow],
        snap_skip: list[tuple[str, str]],
        dsn: str | None,
        statement_timeout_ms: int,
        lock_timeout_ms: int,
    ) -> None:
        self.conn = conn
        self.skipped = snap_skip
        self.dsn = dsn
        self.statement_timeout_ms = statement_timeout_ms
        self.lock_timeout_ms = lock_timeout_ms

    def reason(self, exc: psycopg.Error) -> str:
        diag = getattr(exc, "diag", None)
        primary = (diag.message_primary if diag is not None else None) or str(exc)
        primary = scrub(primary.splitlines()[0] if primary else "unknown error", self.dsn)
        if isinstance(exc, errors.QueryCanceled):
            if "statement timeout" in primary:
                return (
                    f"canceled by the advisor's statement_timeout ({self.statement_timeout_ms} ms)"
                )
            return f"canceled ({primary})"
        if isinstance(exc, errors.LockNotAvailable):
            return (
                f"gave up after the advisor's lock_timeout ({self.lock_timeout_ms} ms): "
                "another session holds a conflicting lock"
            )
        if isinstance(exc, errors.InsufficientPrivilege):
            return f"permission denied ({primary})"
        return primary

    def rows(
        self,
        what: str,
        query: Query,
        params: Mapping[str, Any] | None = None,
        *,
        required: bool = False,
    ) -> list[dict[str, Any]] | None:
        conn = self.conn
        try:
            with conn.cursor() as cur:
                cur.execute(mark("SAVEPOINT advisor_step"))
                cur.execute(query, params)
                rows = cur.fetchall()
                cur.execute(mark("RELEASE SAVEPOINT advisor_step"))
            return list(rows)
        except psycopg.Error as exc:
            if conn.broken or conn.closed:
                raise CollectError(
                    _one_sentence(
                        f"lost the connection to {redact_dsn(self.dsn)} while reading {what}: "
                        f"{self.reason(exc)}"
                    )
                ) from None
            if required:
                raise CollectError(
                    _one_sentence(
                        f"cannot read {what} from {redact_dsn(self.dsn)}: {self.reason(exc)}"
                    )
                ) from None
            conn.execute(mark("ROLLBACK TO SAVEPOINT advisor_step"))
            self.skipped.append((what, self.reason(exc)))
            return None


def collect_live(
    dsn: str | None,
    *,
    sample_seconds: float,
    cores: float | None,
    memory: int | None,
    statement_timeout_ms: int,
    lock_timeout_ms: int,
    statements_limit: int,
    progress: Callable[[str], None],
) -> Snapshot:
    progress("connecting")
    conn = connect(dsn, statement_timeout_ms=statement_timeout_ms, lock_timeout_ms=lock_timeout_ms)
    skipped: list[tuple[str, str]] = []
    try:
        reader = _Reader(conn, skipped, dsn, statement_timeout_ms, lock_timeout_ms)
        snap, backend_pid = _read_all(
            reader, statement_timeout_ms, lock_timeout_ms, statements_limit, progress
        )
        conn.rollback()
        _sample(reader, snap, sample_seconds, progress)
        snap.hardware = _hardware(snap, backend_pid, cores, memory)
    except CollectError:
        raise
    except psycopg.Error as exc:  # the connection went away between our own statements
        raise CollectError(
            _one_sentence(f"collection from {redact_dsn(dsn)} failed: {describe_error(dsn, exc)}")
        ) from None
    finally:
        # Also after Ctrl-C (psycopg has already cancelled the running query): end the
        # transaction and the session, and never let a failing rollback hide the real error.
        with contextlib.suppress(psycopg.Error):
            if not conn.closed and not conn.broken:
                conn.rollback()
        conn.close()
    for what, reason in skipped:
        snap.skip(what, reason)
    return snap


def _read_all(
    r: _Reader,
    statement_timeout_ms: int,
    lock_timeout_ms: int,
    statements_limit: int,
    progress: Callable[[str], None],
) -> tuple[Snapshot, int]:
    """Everything but the later activity samples, inside the open transaction; returns the
    snapshot and the advisor backend's pid (to find the server's cgroup)."""
    rows = r.rows("the server identity", queries.load("server", 0), required=True)
    assert rows
    server = rows[0]
    version = int(server["server_version_num"])
    info = r.conn.info
    try:
        hostaddr: str | None = info.hostaddr
    except psycopg.NotSupportedError:  # libpq < 12
        hostaddr = None
    snap = Snapshot(
        tool=ToolInfo(version=__version__),
        collected_at=datetime.now(UTC).isoformat(timespec="seconds"),
        target=TargetInfo(
            server_version=server["server_version"],
            server_version_num=version,
            host=info.host,
            port=info.port,
            database=server["database"],
            user=server["user"],
            local=is_local(info.host, hostaddr),
            in_recovery=server["in_recovery"],
            postmaster_start_time=server["postmaster_start_time"],
            superuser=server["superuser"],
            read_all_stats=server["read_all_stats"],
            read_all_settings=server["read_all_settings"],
        ),
        session_settings=session_settings(statement_timeout_ms, lock_timeout_ms),
    )
    if version < OLDEST_SUPPORTED:
        r.skipped.append(
            (
                "version support",
                f"PostgreSQL {server['server_version']} is older than 13, the oldest supported "
                "version; queries written for 13 may fail",
            )
        )

    progress("settings")
    settings = r.rows("pg_settings", queries.load("settings", version), required=True) or []
    for row in settings:
        name = row.pop("name")
        for key in ("setting", "boot_val", "reset_val"):
            row[key] = setting_value(name, row[key])
        snap.settings[name] = SettingFact.model_validate(row)
    if not server["read_all_settings"]:
        r.skipped.append(
            (
                "pg_settings sourcefile",
                "without pg_read_all_settings the configuration file and line of each setting "
                "are hidden, and superuser-only settings are not listed",
            )
        )

    got = r.rows("role and database settings", queries.load("role_db_settings", version))
    snap.role_db_settings = [RoleDbSetting.model_validate(_safe_value(x)) for x in got or []]
    got = r.rows("function settings", queries.load("function_settings", version))
    snap.function_settings = [FunctionSetting.model_validate(_safe_value(x)) for x in got or []]

    progress("activity")
    got = r.rows("pg_stat_activity", queries.load("activity", version))
    if got is not None:
        snap.activity = [Backend.model_validate(x) for x in got]
        hidden = sum(1 for b in snap.activity if b.backend_type is None)
        if hidden:
            r.skipped.append(
                (
                    "pg_stat_activity of other roles",
                    f"{hidden} of {len(snap.activity)} backends show no type, state or timings "
                    "without pg_read_all_stats; connection and worker counts cover only this "
                    "role's sessions",
                )
            )
    got = r.rows("activity sample", queries.load("activity_counts", version))
    if got:
        snap.activity_samples.append(ActivitySample(t=0.0, **got[0]))

    got = r.rows("background workers", queries.load("bgworkers", version))
    snap.bgworkers = [BgWorker.model_validate(x) for x in got or []]

    got = r.rows("pg_stat_database", queries.load("database_stats", version))
    snap.database_stats = [DatabaseStat.model_validate(x) for x in got or []]
    if version < 140000:
        r.skipped.append(("pg_stat_database session counters", "they exist from PostgreSQL 14 on"))
    if version < 180000:
        r.skipped.append(
            (
                "parallel worker counters",
                "pg_stat_database and pg_stat_statements count launched workers from "
                "PostgreSQL 18 on",
            )
        )

    progress("statements")
    _statements(r, snap, version, statements_limit)
    progress("catalog")
    _catalog(r, snap, version)
    return snap, int(server["backend_pid"])


def _safe_value(row: dict[str, Any]) -> dict[str, Any]:
    row["value"] = setting_value(row["name"], row["value"])
    return row


def _statements(r: _Reader, snap: Snapshot, version: int, limit: int) -> None:
    what = "pg_stat_statements"
    ext = r.rows(what, queries.load("statements_extension", version))
    if ext is None:
        return
    if not ext:
        preload = snap.setting("shared_preload_libraries") or ""
        hint = (
            "CREATE EXTENSION pg_stat_statements there"
            if "pg_stat_statements" in preload
            else "add it to shared_preload_libraries (restart) and CREATE EXTENSION "
            "pg_stat_statements there"
        )
        r.skipped.append(
            (what, f"the extension is not installed in database {snap.target.database}: {hint}")
        )
        return
    schema, ext_version = str(ext[0]["schema"]), str(ext[0]["version"])
    if not ext[0]["readable"]:
        r.skipped.append(
            (what, f"no EXECUTE privilege on {schema}.pg_stat_statements(boolean) for this role")
        )
        return
    columns_of = PGSS_COLUMNS_OF.get(ext_version)
    if columns_of is None:
        major, _, minor = ext_version.partition(".")
        newer = major.isdigit() and minor.isdigit() and (int(major), int(minor)) > (1, 12)
        if not newer:
            r.skipped.append(
                (
                    what,
                    f"extension version {ext_version} is older than 1.8; run ALTER EXTENSION "
                    "pg_stat_statements UPDATE",
                )
            )
            return
        columns_of = version
    sql_version = min(version, columns_of)
    text = queries.load("statements", sql_version)
    query = sql.SQL(text).format(pgss=sql.Identifier(schema, "pg_stat_statements"))
    got = r.rows(what, query, {"limit": limit})
    if got is None:
        return
    redacted = 0
    for row in got:
        row["query"], row["text_redacted"] = statement_text(row["query"])
        redacted += row["text_redacted"]
        snap.statements.append(StatementStat.model_validate(row))
    if redacted:
        r.skipped.append(
            (
                "statement texts with credentials",
                f"{redacted} pg_stat_statements texts were dropped or masked because they can "
                "carry passwords (roles, user mappings, servers, subscriptions, conninfo)",
            )
        )
    info = StatementsInfo(
        schema_name=schema,
        extension_version=ext_version,
        sql_version=queries.pick_version("statements", sql_version),
        limit=limit,
    )
    try:
        info_sql = queries.load("statements_info", sql_version)
    except queries.QueryUnavailable:
        info_sql = None
    if info_sql is not None:
        q = sql.SQL(info_sql).format(pgss_info=sql.Identifier(schema, "pg_stat_statements_info"))
        got = r.rows("pg_stat_statements_info", q)
        if got:
            info.dealloc, info.stats_reset = got[0]["dealloc"], got[0]["stats_reset"]
    snap.statements_info = info
    hidden = sum(1 for s in snap.statements if s.hidden)
    if hidden:
        r.skipped.append(
            (
                "pg_stat_statements of other roles",
                f"{hidden} of the {len(snap.statements)} statements read belong to other roles "
                "and show no text or queryid without pg_read_all_stats",
            )
        )


def _catalog(r: _Reader, snap: Snapshot, version: int) -> None:
    """User relations (the largest RELATIONS_LIMIT) and user functions (FUNCTIONS_LIMIT) of
    the connected database; a cap that was hit is recorded in `skipped`."""
    rels = r.rows(
        "relations (pg_class)", queries.load("relations", version), {"limit": RELATIONS_LIMIT}
    )
    if rels is not None:
        if len(rels) > RELATIONS_LIMIT:
            rels = rels[:RELATIONS_LIMIT]
            r.skipped.append(
                (
                    "relations beyond the cap",
                    f"only the {RELATIONS_LIMIT:,} largest relations of database "
                    f"{snap.target.database} were read; rules on smaller ones may miss them",
                )
            )
        snap.relations = [RelationFact.model_validate(x) for x in rels]
    funcs = r.rows(
        "functions (pg_proc)", queries.load("functions", version), {"limit": FUNCTIONS_LIMIT}
    )
    if funcs is not None:
        if len(funcs) > FUNCTIONS_LIMIT:
            funcs = funcs[:FUNCTIONS_LIMIT]
            r.skipped.append(
                (
                    "functions beyond the cap",
                    f"only {FUNCTIONS_LIMIT:,} user functions of database "
                    f"{snap.target.database} were read (by schema and name); a function "
                    "beyond them stays a suspicion in PQ101",
                )
            )
        for x in funcs:
            if x.get("source"):
                x["source"] = scrub_text(x["source"])
        snap.functions = [FunctionFact.model_validate(x) for x in funcs]
    snap.catalog = rels is not None and funcs is not None


def _sample(r: _Reader, snap: Snapshot, seconds: float, progress: Callable[[str], None]) -> None:
    """Further activity samples every 0.5 s, each in a short transaction of its own."""
    if seconds <= 0 or not snap.activity_samples:
        return
    counts = queries.load("activity_counts", snap.target.server_version_num)
    start = time.monotonic()
    n = 1
    while n * SAMPLE_INTERVAL_S <= seconds + 1e-9:
        progress(f"activity sample {n * SAMPLE_INTERVAL_S:g}/{seconds:g} s")
        delay = start + n * SAMPLE_INTERVAL_S - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        got = r.rows("activity sample", counts)
        r.conn.rollback()
        if not got:
            break
        snap.activity_samples.append(ActivitySample(t=round(time.monotonic() - start, 3), **got[0]))
        n += 1


def _hardware(
    snap: Snapshot, backend_pid: int, cores: float | None, memory: int | None
) -> HardwareFact:
    found = probe(
        local=snap.target.local,
        server_pid=backend_pid,
        cores=cores,
        memory=memory,
        host=snap.target.host,
    )
    hw = found.hardware
    data_dir = snap.setting("data_directory")
    if snap.target.local and data_dir:  # same machine: its block device can be asked
        storage = storage_of(data_dir)
        if storage is not None:
            found.details["storage"] = f"{storage[0]}: {storage[1]}"
    return HardwareFact(
        cores=hw.cores,
        cores_source=hw.cores_source,
        memory_bytes=hw.memory_bytes,
        memory_source=hw.memory_source,
        details=found.details,
    )
