"""The snapshot: facts collected from a live server, saved as JSON and analysed offline.

Facts only, no judgement: the rules decide what the numbers mean. A saved snapshot analysed
later gives the report a live run gives (`facts_from_snapshot`). Anything that could not be
collected is listed in `skipped` with the reason (missing privilege, missing extension, a
timeout), so a partial snapshot says what it lacks.

No psycopg here; pydantic only (imported by `advisor collect`, `advisor report SNAPSHOT`).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from advisor.report import Hardware

if TYPE_CHECKING:
    from advisor.engine import Facts

SCHEMA_VERSION = 1
Source = Literal["cgroup", "host", "user", "unknown"]


class SnapshotError(ValueError):
    """A snapshot file that cannot be read; the message is one sentence naming the file."""


class _Model(BaseModel):
    # Unknown keys are ignored so a newer advisor's additions within schema 1 still load.
    model_config = ConfigDict(extra="ignore")


class ToolInfo(_Model):
    name: str = "pg-parallel-advisor"
    version: str


class TargetInfo(_Model):
    """What was examined. `host` is what libpq connected to; never a password."""

    server_version: str
    server_version_num: int
    host: str | None = None
    port: int | None = None
    database: str
    user: str
    local: bool = False  # unix socket or loopback: hardware numbers can be trusted
    in_recovery: bool | None = None
    postmaster_start_time: datetime | None = None
    superuser: bool = False
    read_all_stats: bool = False  # member of pg_read_all_stats (or superuser)
    read_all_settings: bool = False


class HardwareFact(_Model):
    cores: float | None = None
    cores_source: Source = "unknown"
    memory_bytes: int | None = None
    memory_source: Source = "unknown"
    details: dict[str, str] = Field(default_factory=dict)  # where each number came from

    def to_report(self) -> Hardware:
        return Hardware(self.cores, self.cores_source, self.memory_bytes, self.memory_source)


class SettingFact(_Model):
    """One pg_settings row (`setting` in the base unit, as pg_settings shows it)."""

    setting: str | None
    unit: str | None = None
    category: str | None = None
    vartype: str | None = None
    source: str | None = None
    sourcefile: str | None = None
    sourceline: int | None = None
    context: str | None = None
    boot_val: str | None = None
    reset_val: str | None = None
    pending_restart: bool = False


class RoleDbSetting(_Model):
    """ALTER ROLE / ALTER DATABASE ... SET; None = every role / every database."""

    role: str | None
    database: str | None
    name: str
    value: str


class FunctionSetting(_Model):
    function: str  # regprocedure text, e.g. "public.f(integer)"
    name: str
    value: str


class Backend(_Model):
    """One pg_stat_activity row (never the query text). Fields are None when hidden."""

    pid: int
    backend_type: str | None = None
    state: str | None = None
    leader_pid: int | None = None
    wait_event_type: str | None = None
    wait_event: str | None = None
    application_name: str | None = None
    usename: str | None = None
    datname: str | None = None
    client_addr: str | None = None
    backend_age_s: float | None = None
    xact_age_s: float | None = None
    state_age_s: float | None = None
    query_id: int | None = None  # 14+


class ActivitySample(_Model):
    """Counts at one moment (`t` seconds after the first sample); the advisor's own session is
    not counted. `hidden` = backends whose type this role may not see."""

    t: float
    client_backends: int
    active: int
    idle: int
    idle_in_transaction: int
    idle_in_transaction_aborted: int
    parallel_workers: int
    parallel_leaders: int
    hidden: int


class ActivityPeaks(_Model):
    samples: int
    seconds: float
    client_backends: int
    active: int
    idle: int
    idle_in_transaction: int
    parallel_workers: int


class DatabaseStat(_Model):
    datname: str
    numbackends: int | None = None
    xact_commit: int | None = None
    xact_rollback: int | None = None
    blks_read: int | None = None
    blks_hit: int | None = None
    temp_files: int | None = None
    temp_bytes: int | None = None
    deadlocks: int | None = None
    session_time: float | None = None  # 14+, ms
    active_time: float | None = None  # 14+, ms
    idle_in_transaction_time: float | None = None  # 14+, ms
    sessions: int | None = None  # 14+
    sessions_abandoned: int | None = None
    sessions_fatal: int | None = None
    sessions_killed: int | None = None
    parallel_workers_to_launch: int | None = None  # 18+
    parallel_workers_launched: int | None = None  # 18+
    stats_reset: datetime | None = None


class StatementStat(_Model):
    """One pg_stat_statements row, columns normalised across extension versions 1.8-1.12
    (None = the installed version has no such column)."""

    queryid: int | None
    role: str | None = None
    database: str | None = None
    toplevel: bool | None = None  # 1.9+
    hidden: bool = False  # another role's row without pg_read_all_stats: no text, no queryid
    query: str | None = None
    text_redacted: bool = False  # credentials masked, or the whole text dropped
    calls: int
    total_exec_time: float
    mean_exec_time: float
    min_exec_time: float
    max_exec_time: float
    stddev_exec_time: float
    rows: int
    plans: int | None = None
    total_plan_time: float | None = None
    shared_blks_hit: int | None = None
    shared_blks_read: int | None = None
    shared_blks_dirtied: int | None = None
    shared_blks_written: int | None = None
    local_blks_read: int | None = None
    local_blks_written: int | None = None
    temp_blks_read: int | None = None
    temp_blks_written: int | None = None
    blk_read_time: float | None = None  # 17+: shared + local
    blk_write_time: float | None = None
    temp_blk_read_time: float | None = None  # 1.10+
    temp_blk_write_time: float | None = None
    wal_bytes: float | None = None
    jit_functions: int | None = None  # 1.10+
    jit_generation_time: float | None = None
    jit_inlining_time: float | None = None
    jit_optimization_time: float | None = None
    jit_emission_time: float | None = None
    jit_deform_time: float | None = None  # 1.11+
    parallel_workers_to_launch: int | None = None  # 1.12+ (PG 18)
    parallel_workers_launched: int | None = None
    stats_since: datetime | None = None  # 1.11+


class StatementsInfo(_Model):
    schema_name: str  # where the extension lives
    extension_version: str
    sql_version: int  # which statements_post_NNNNNN.sql was used (0 = statements.sql)
    limit: int
    dealloc: int | None = None  # 1.9+: entries evicted since stats_reset
    stats_reset: datetime | None = None


class BgWorker(_Model):
    backend_type: str
    count: int
    core: bool  # logical replication launcher/workers, parallel apply workers


class CapturedPlan(_Model):
    """One EXPLAIN (FORMAT JSON) document captured live (`collect --explain-top`), with the
    pg_stat_statements entry it explains. `generic`: planned with EXPLAIN (GENERIC_PLAN)."""

    queryid: int | None = None
    query: str
    generic: bool = False
    document: dict[str, Any]


class RelationFact(_Model):
    """One user relation from pg_class (relkind r, m, p or f), for the catalog rules."""

    schema_name: str
    name: str
    relkind: str  # r table, m materialized view, p partitioned table, f foreign table
    relpersistence: str = "p"  # p permanent, u unlogged, t temporary
    blocks: int = 0  # main fork, current size (pg_relation_size / block_size)
    reltuples: float | None = None  # -1 = never analysed (14+)
    reloption_workers: int | None = None  # ALTER TABLE ... SET (parallel_workers = N)
    fdw: str | None = None  # foreign tables: the foreign data wrapper's name

    @property
    def qualified(self) -> str:
        return f"{self.schema_name}.{self.name}"


class FunctionFact(_Model):
    """One function, procedure or aggregate outside the system schemas (pg_proc)."""

    schema_name: str
    name: str
    identity: str  # regprocedure text, e.g. "public.risky_flag(numeric)"
    proparallel: str  # s safe, r restricted, u unsafe
    provolatile: str | None = None  # i immutable, s stable, v volatile
    language: str | None = None
    prokind: str | None = None  # f function, p procedure, a aggregate, w window
    proconfig: list[str] | None = None
    has_exception_block: bool = False  # plpgsql body matches EXCEPTION ... WHEN (a hint)
    # plpgsql only: pg_get_functiondef() text, first 20 kB, password literals masked (PQ118/119)
    source: str | None = None
    # aggregates only: can be split into Partial/Finalize (combine function, and serial/deserial
    # functions for an `internal` state); None for other functions (PQ112)
    partial_agg: bool | None = None


class SkippedItem(_Model):
    what: str
    reason: str


class PgpoolSetting(_Model):
    """One pgpool.conf key as written (`*_password` keys: only how it is stored)."""

    value: str
    line: int


class PgpoolNode(_Model):
    """One SHOW POOL_NODES row (pg_status/pg_role: 4.3+)."""

    node_id: int
    hostname: str
    port: int
    status: str
    pg_status: str | None = None
    lb_weight: float = 0.0
    role: str
    pg_role: str | None = None
    select_cnt: int = 0
    load_balance_node: bool = False
    replication_delay: str | None = None
    replication_state: str | None = None


class PgpoolSample(_Model):
    """SHOW POOL_PROCESSES / POOL_POOLS at `t` seconds; counts include the advisor's own
    console session (one child). `waiting`: the kernel accept queue of a local pgpool."""

    t: float
    children: int
    busy: int
    idle: int
    idle_in_transaction: int
    executing: int
    idle_seconds: list[float] = Field(default_factory=list)  # client_idle_duration of idle ones
    waiting: int | None = None


class PgpoolBackendLimit(_Model):
    """Connection limits of one backend node, read directly from that server."""

    node_id: int
    address: str
    max_connections: int
    superuser_reserved_connections: int = 0
    reserved_connections: int = 0  # PostgreSQL 16+ (not pgpool's parameter of the same name)


class PgpoolFacts(_Model):
    """pgpool-II: its file (`--pgpool-conf`) and/or its console (`--pgpool-dsn`)."""

    conf_file: str | None = None
    settings: dict[str, PgpoolSetting] = Field(default_factory=dict)
    console: bool = False
    dsn_host: str | None = None
    version: str | None = None  # SHOW POOL_VERSION
    live_settings: dict[str, str] = Field(default_factory=dict)  # PGPOOL SHOW ALL (item -> value)
    nodes: list[PgpoolNode] = Field(default_factory=list)
    samples: list[PgpoolSample] = Field(default_factory=list)
    sample_seconds: float = 0.0
    backend_limits: list[PgpoolBackendLimit] = Field(default_factory=list)
    unreachable: list[str] = Field(default_factory=list)  # backend nodes whose limits are unknown


# -- PgBouncer (advisor.pooler.pgbouncer fills these; the PB rules judge them) --------------------


class IniEntry(_Model):
    """One `key = value` line of a pgbouncer.ini (or a file it %includes), as PgBouncer reads
    it: the value runs to the end of the line. Passwords in connection strings are masked."""

    section: str  # "pgbouncer", "databases", "users", or whatever the file says
    key: str
    value: str
    file: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


class PgBouncerIniFact(_Model):
    path: str
    files: list[str] = Field(default_factory=list)  # the file, then its %includes in order
    entries: list[IniEntry] = Field(default_factory=list)  # in file order; later lines win
    sections: list[IniEntry] = Field(default_factory=list)  # one per [section] header


class PoolSample(_Model):
    """One SHOW POOLS row at `t` seconds after the console reading started."""

    t: float
    database: str
    user: str
    cl_active: int
    cl_waiting: int
    sv_active: int
    sv_idle: int
    sv_used: int
    maxwait_s: float  # maxwait + maxwait_us / 1e6
    pool_mode: str | None = None


class PgBouncerConsoleFact(_Model):
    """The admin console (`SHOW ...`, simple protocol). Rows keep the version's column names;
    times are in microseconds as PgBouncer reports them."""

    dsn: str  # redacted: host, port, dbname, user only
    version: str  # "1.18.0"
    config: dict[str, str] = Field(default_factory=dict)
    databases: list[dict[str, Any]] = Field(default_factory=list)
    users: list[dict[str, Any]] = Field(default_factory=list)
    pools: list[dict[str, Any]] = Field(default_factory=list)
    lists: dict[str, int] = Field(default_factory=dict)
    clients: list[dict[str, Any]] = Field(default_factory=list)
    servers: list[dict[str, Any]] = Field(default_factory=list)
    stats_start: list[dict[str, Any]] = Field(default_factory=list)  # SHOW STATS at the start
    stats: list[dict[str, Any]] = Field(default_factory=list)  # ... and after the sample
    seconds: float = 0.0  # between the two SHOW STATS
    samples: list[PoolSample] = Field(default_factory=list)


class PgBouncerProcessFact(_Model):
    """The local PgBouncer process found through the ini's pidfile (and its logfile)."""

    pid: int
    nofile_soft: int | None = None
    nofile_hard: int | None = None
    cpu_share: float | None = None  # of one core, over the sample window
    cpu_limit: float | None = None  # cores its cgroup's CPU quota allows (None: no quota)
    log_fd_line: str | None = None  # "kernel file descriptor limit: ..." from the logfile


class PgBouncerInstance(_Model):
    # "1.18.0" from SHOW VERSION, else `--version` of the pidfile's process or of the
    # pgbouncer on PATH; version_source says which.
    version: str | None = None
    version_source: str | None = None
    ini: PgBouncerIniFact | None = None
    console: PgBouncerConsoleFact | None = None
    process: PgBouncerProcessFact | None = None


class PgBouncerFacts(_Model):
    instances: list[PgBouncerInstance] = Field(default_factory=list)
    # PgBouncer processes with this configuration behind one address (so_reuseport, a TCP
    # load balancer, k8s replicas): each one opens its own server connections.
    instance_count: int = 1


class Snapshot(_Model):
    schema_version: Literal[1] = 1
    tool: ToolInfo
    collected_at: str  # ISO 8601, UTC
    target: TargetInfo
    hardware: HardwareFact = Field(default_factory=HardwareFact)
    settings: dict[str, SettingFact] = Field(default_factory=dict)
    # What the advisor set for its own session: pg_settings shows these, not the server's.
    session_settings: dict[str, str] = Field(default_factory=dict)
    role_db_settings: list[RoleDbSetting] = Field(default_factory=list)
    function_settings: list[FunctionSetting] = Field(default_factory=list)
    activity: list[Backend] = Field(default_factory=list)
    activity_samples: list[ActivitySample] = Field(default_factory=list)
    database_stats: list[DatabaseStat] = Field(default_factory=list)
    statements_info: StatementsInfo | None = None
    statements: list[StatementStat] = Field(default_factory=list)
    bgworkers: list[BgWorker] = Field(default_factory=list)
    plans: list[CapturedPlan] = Field(default_factory=list)
    # Catalog facts (pg_class, pg_proc); `catalog` is True once both were read.
    catalog: bool = False
    relations: list[RelationFact] = Field(default_factory=list)
    functions: list[FunctionFact] = Field(default_factory=list)
    pgpool: PgpoolFacts | None = None
    skipped: list[SkippedItem] = Field(default_factory=list)
    pgbouncer: PgBouncerFacts | None = None

    # -- conveniences ---------------------------------------------------------------------------

    def setting(self, name: str) -> str | None:
        fact = self.settings.get(name)
        return fact.setting if fact is not None else None

    def skip(self, what: str, reason: str) -> None:
        self.skipped.append(SkippedItem(what=what, reason=reason))

    def activity_peaks(self) -> ActivityPeaks | None:
        s = self.activity_samples
        if not s:
            return None
        return ActivityPeaks(
            samples=len(s),
            seconds=s[-1].t - s[0].t,
            client_backends=max(x.client_backends for x in s),
            active=max(x.active for x in s),
            idle=max(x.idle for x in s),
            idle_in_transaction=max(
                x.idle_in_transaction + x.idle_in_transaction_aborted for x in s
            ),
            parallel_workers=max(x.parallel_workers for x in s),
        )

    # -- files ----------------------------------------------------------------------------------

    def to_json(self) -> str:
        return self.model_dump_json(indent=1) + "\n"

    def save(self, path: str | Path) -> None:
        p = Path(path)
        try:
            p.write_text(self.to_json(), encoding="utf-8")
        except OSError as exc:
            raise SnapshotError(f"cannot write snapshot {p}: {exc.strerror or exc}.") from None

    @classmethod
    def load(cls, path: str | Path) -> Snapshot:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise SnapshotError(f"cannot read snapshot {p}: {exc.strerror or exc}.") from None
        except UnicodeDecodeError:
            raise SnapshotError(f"{p} is not an advisor snapshot (not UTF-8 text).") from None
        return cls.from_json(text, str(p))

    @classmethod
    def from_json(cls, text: str, name: str = "<snapshot>") -> Snapshot:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SnapshotError(
                f"{name} is not an advisor snapshot: invalid JSON at line {exc.lineno} "
                f"column {exc.colno} ({exc.msg})."
            ) from None
        if not isinstance(raw, dict) or "schema_version" not in raw:
            raise SnapshotError(
                f"{name} is not an advisor snapshot (no schema_version; "
                "write one with `advisor collect`)."
            )
        if raw["schema_version"] != SCHEMA_VERSION:
            raise SnapshotError(
                f"{name} has snapshot schema_version {raw['schema_version']!r}; this advisor "
                f"reads version {SCHEMA_VERSION}."
            )
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(x) for x in err["loc"]) or "top level"
            more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
            raise SnapshotError(
                f"{name} is not a valid advisor snapshot: {loc}: {err['msg']}{more}."
            ) from None


def facts_from_snapshot(snap: Snapshot) -> Facts:
    """The engine's view of a snapshot. Today: settings (name -> pg_settings.setting), the
    server version and the plans captured by `collect --explain-top` (source "statement
    <queryid>"); the other facts wait for Facts fields (see the collector's notes)."""
    from advisor.engine import Facts
    from advisor.plan import Plan, build_plan

    plans: list[Plan] = []
    for captured in snap.plans:
        source = f"statement {captured.queryid}" if captured.queryid is not None else "statement"
        try:
            plans.append(build_plan(captured.document, source=source))
        except (ValueError, TypeError, AttributeError):  # a hand-edited snapshot
            continue
    return Facts(
        plans=plans,
        settings={name: s.setting for name, s in snap.settings.items() if s.setting is not None},
        server_version_num=snap.target.server_version_num,
        snapshot=snap,
        pgpool=snap.pgpool,
        pgbouncer=snap.pgbouncer,
    )
