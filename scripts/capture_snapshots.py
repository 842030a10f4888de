"""Collect real snapshots from throwaway, deliberately mis-tuned servers into sample_snapshots/.

    uv run python scripts/capture_snapshots.py [--only NAME ...]

Each scenario starts a PostgreSQL server (advisor.pgserver) with the settings below, optionally
changes some with ALTER SYSTEM (so pg_settings.source shows postgresql.auto.conf), opens idle,
idle-in-transaction and active client connections, then runs `advisor.collect.collect` with
fixed --cores/--memory so the hardware facts (and so the findings) do not depend on the machine
that captured them. Rule cards point at the files with `[[examples]] snapshot = "..."`.
Writes sample_snapshots/<name>.json and sample_snapshots/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from advisor.collect import collect  # noqa: E402
from advisor.collect.explain import explain_live  # noqa: E402
from advisor.engine import Facts, run  # noqa: E402
from advisor.pgserver import AUTO_EXPLAIN, PgServer  # noqa: E402
from advisor.report import Report  # noqa: E402
from advisor.snapshot import CapturedPlan, facts_from_snapshot  # noqa: E402

OUT = ROOT / "sample_snapshots"
GiB = 1024**3
PRELOAD = "pg_stat_statements"


@dataclass(frozen=True)
class Scenario:
    name: str
    major: int
    settings: dict[str, Any]
    cores: float
    memory: int
    alter_system: dict[str, str] = field(default_factory=dict)
    subscription: bool = False  # a logical replication apply worker holds a worker slot
    connects: int = 0  # connect-and-disconnect cycles before collecting (churn)
    idle: int = 0
    idle_in_tx: int = 0
    active: int = 0
    setup: tuple[str, ...] = ()  # SQL run as postgres before the workload
    runs: tuple[Run, ...] = ()  # statements repeated before collecting (pg_stat_* counters)
    fires: tuple[str, ...] = ()
    quiet: tuple[str, ...] = ()
    # EXPLAIN (explain_live) of each query, stored in the snapshot's plans (plan + catalog rules)
    explain: tuple[str, ...] = ()
    # run under auto_explain (log_analyze, log_nested_statements); the logged JSON plans are
    # stored in the snapshot's plans (plans of statements inside functions)
    auto_explain: tuple[str, ...] = ()


@dataclass(frozen=True)
class Run:
    """`query` run `times` times in one session of `user`, after `session` SETs; the session
    is closed before collecting so its statistics reach pg_stat_database/pg_stat_statements."""

    user: str
    query: str
    times: int
    session: tuple[str, ...] = ()


_EVENTS = (
    "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
    "CREATE TABLE events AS SELECT g AS id, g % 100 AS grp, repeat('x', 40) AS pad "
    "FROM generate_series(1, 200000) g",
    "ANALYZE events",
    "CREATE TABLE ledger AS SELECT * FROM events",
    "ANALYZE ledger",
    "CREATE ROLE app LOGIN",
    "CREATE TABLE lookup AS SELECT g AS id, repeat('x', 40) AS pad FROM generate_series(1, 1000) g",
    "ANALYZE lookup",
    "GRANT SELECT ON lookup TO app",
)
_REPORT = Run(
    "postgres",
    "SELECT count(*) FROM ledger WHERE grp > 3",
    20,
    ("SET parallel_setup_cost = 0", "SET parallel_tuple_cost = 0"),
)
_LOOKUPS = Run("app", "SELECT pad FROM lookup WHERE id = 42", 600)
_CHEAP_APP = (
    "ALTER ROLE app SET parallel_setup_cost = 0",
    "ALTER ROLE app SET parallel_tuple_cost = 0",
    "ALTER ROLE app SET min_parallel_table_scan_size = 0",
)

_ORDERS = (
    "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
    "CREATE TABLE orders AS SELECT g AS id, g % 1000 AS customer, (g % 97)::numeric AS amount "
    "FROM generate_series(1, 50000) g",
    "ANALYZE orders",
    "CREATE SEQUENCE batch_seq",
    # PARALLEL SAFE with an EXCEPTION block: a run-time error risk up to 16 (PQ119).
    "CREATE FUNCTION safe_ratio(a numeric, b numeric) RETURNS numeric LANGUAGE plpgsql "
    "PARALLEL SAFE AS $$BEGIN RETURN a / b; EXCEPTION WHEN division_by_zero THEN RETURN NULL; "
    "END$$",
)
_SERIAL_PLPGSQL = (
    "CREATE FUNCTION order_total(c int) RETURNS TABLE (id int, amount numeric) "
    "LANGUAGE plpgsql AS $$\nDECLARE n bigint; r record;\nBEGIN\n"
    "  SELECT count(*) INTO n FROM orders o WHERE o.customer = c;\n"
    "  FOR r IN SELECT o.id, o.amount FROM orders o WHERE o.customer = c LOOP\n"
    "    id := r.id; amount := r.amount; RETURN NEXT;\n  END LOOP;\nEND\n$$"
)
_SET_BASED_PLPGSQL = (
    "CREATE FUNCTION order_total(c int) RETURNS TABLE (id int, amount numeric) "
    "LANGUAGE plpgsql AS $$\nDECLARE n bigint;\nBEGIN\n"
    "  EXECUTE 'SELECT count(*) FROM orders o WHERE o.customer = $1' INTO n USING c;\n"
    "  RETURN QUERY SELECT o.id, o.amount FROM orders o WHERE o.customer = c;\nEND\n$$"
)
_SERIAL_READS = (
    Run("postgres", "SELECT nextval('batch_seq') AS batch, count(*) FROM orders", 5),
    Run("postgres", "SELECT current_schema() AS s, sum(amount) FROM orders", 5),
    Run(
        "postgres",
        "BEGIN; DECLARE big CURSOR FOR SELECT id, amount FROM orders WHERE customer > 10; "
        "FETCH 100 FROM big; COMMIT",
        5,
    ),
    Run("postgres", "SELECT count(*) FROM order_total(7)", 5),
)
_FIXED_READS = (
    Run("postgres", "SELECT 42 AS batch, count(*) FROM orders", 5),
    Run("postgres", "SELECT current_schema AS s, sum(amount) FROM orders", 5),
    Run("postgres", "SELECT id, amount FROM orders WHERE customer > 10", 5),
    Run("postgres", "SELECT count(*) FROM order_total(7)", 5),
)
_WORKLOAD_RULES = ("PQ102", "PQ117", "PQ118", "PQ119")

SCENARIOS = [
    Scenario(
        "misbudgeted_pg18",
        18,
        {
            "wal_level": "logical",
            "max_worker_processes": 3,
            "max_parallel_workers_per_gather": 6,
            "superuser_reserved_connections": 0,
        },
        cores=2,
        memory=1 * GiB,
        alter_system={"max_parallel_workers": "4"},
        subscription=True,
        fires=("PQ002", "PQ003", "PQ004", "PQ005", "PQ006", "CN002", "CN006"),
        quiet=("PQ010", "CN001", "CN003", "CN004", "CN007"),
    ),
    Scenario(
        "misbudgeted_pg15",
        15,
        {
            "wal_level": "logical",
            "max_worker_processes": 3,
            "max_parallel_workers_per_gather": 6,
            "superuser_reserved_connections": 0,
        },
        cores=2,
        memory=1 * GiB,
        alter_system={"max_parallel_workers": "4"},
        subscription=True,
        fires=("PQ002", "PQ003", "PQ004", "PQ005", "PQ006", "CN002", "CN006"),
        quiet=("PQ010",),
    ),
    Scenario(
        "defaults_2cores_pg18",
        18,
        {},
        cores=2,
        memory=64 * GiB,
        fires=("PQ010", "CN002"),
        quiet=("PQ002", "PQ003", "PQ004", "PQ005", "PQ006", "CN006"),
    ),
    Scenario(
        "defaults_64cores_pg18",
        18,
        {},
        cores=64,
        memory=256 * GiB,
        fires=("PQ010",),
        quiet=("PQ002", "PQ003", "PQ004", "PQ005", "PQ006", "CN002", "CN006"),
    ),
    Scenario(
        "tuned_8cores_pg18",
        18,
        {"max_worker_processes": 12, "max_parallel_workers": 8, "max_connections": 40},
        cores=8,
        memory=32 * GiB,
        quiet=("PQ002", "PQ003", "PQ004", "PQ005", "PQ006", "PQ010", "CN002", "CN006"),
    ),
    Scenario(
        "busy_pg18",
        18,
        {"max_connections": 25, "superuser_reserved_connections": 3},
        cores=4,
        memory=64 * GiB,
        idle=14,
        idle_in_tx=2,
        active=3,
        fires=("CN001", "CN003", "CN004", "CN007", "PQ005"),
        quiet=("CN005",),
    ),
    Scenario(
        "churn_pg18",
        18,
        {},
        cores=8,
        memory=32 * GiB,
        connects=300,
        fires=("CN005",),
    ),
    Scenario(
        "calm_pg18",
        18,
        {"idle_in_transaction_session_timeout": "10min"},
        cores=64,
        memory=64 * GiB,
        idle=3,
        idle_in_tx=2,
        active=3,
        quiet=("CN001", "CN003", "CN004", "CN005", "CN007", "PQ005"),
    ),
    Scenario(
        "catalog_pg18",
        18,
        {"max_parallel_workers": 0},
        cores=8,
        memory=32 * GiB,
        setup=(*_EVENTS, "ALTER TABLE events SET (parallel_workers = 0)", *_CHEAP_APP),
        runs=(_REPORT, _LOOKUPS),
        fires=("PQ114", "PQ202", "PQ207"),
    ),
    Scenario(
        "catalog_quiet_pg18",
        18,
        {},
        cores=8,
        memory=32 * GiB,
        setup=_EVENTS,
        runs=(_REPORT, _LOOKUPS),
        quiet=("PQ114", "PQ202", "PQ207"),
    ),
    Scenario(
        "workload_pg15",
        15,
        {},
        cores=8,
        memory=32 * GiB,
        setup=(*_ORDERS, _SERIAL_PLPGSQL),
        runs=_SERIAL_READS,
        fires=_WORKLOAD_RULES,
    ),
    Scenario(
        "workload_fixed_pg18",
        18,
        {},
        cores=8,
        memory=32 * GiB,
        setup=(*_ORDERS, _SET_BASED_PLPGSQL),
        runs=_FIXED_READS,
        quiet=_WORKLOAD_RULES,
    ),
]


_BIG = (
    "CREATE TABLE big AS SELECT g AS id, g % 100 AS grp, repeat('x', 40) AS pad "
    "FROM generate_series(1, {rows}) g",
    "ANALYZE big",
)
_PICK = (
    "CREATE FUNCTION big_pick(i int) RETURNS boolean LANGUAGE plpgsql PARALLEL {label} "
    "AS $$BEGIN RETURN i % 7 = 0; END$$"
)
_REMOTE = (
    "CREATE EXTENSION postgres_fdw",
    # {port} is replaced by the server's port in capture().
    "CREATE SERVER loop FOREIGN DATA WRAPPER postgres_fdw "
    "OPTIONS (host '127.0.0.1', port '{port}', dbname 'postgres')",
    "CREATE USER MAPPING FOR postgres SERVER loop OPTIONS (user 'postgres')",
    "CREATE FOREIGN TABLE remote_big (id int, grp int, pad text) SERVER loop "
    "OPTIONS (table_name 'big')",
    "ANALYZE remote_big",
)
_COUNT_BIG = "SELECT count(*) FROM big WHERE grp > 3"

SCENARIOS += [
    Scenario(
        "restricted_pg18",
        18,
        {},
        cores=8,
        memory=32 * GiB,
        setup=(*(q.format(rows=300_000) for q in _BIG), _PICK.format(label="RESTRICTED")),
        explain=("SELECT count(*) FROM big WHERE big_pick(id)",),
        fires=("PQ103",),
        quiet=("PQ101", "PQ116"),
    ),
    Scenario(
        "restricted_quiet_pg18",
        18,
        {},
        cores=8,
        memory=32 * GiB,
        setup=(*(q.format(rows=300_000) for q in _BIG), _PICK.format(label="SAFE")),
        explain=("SELECT count(*) FROM big WHERE big_pick(id)",),
        quiet=("PQ101", "PQ103"),
    ),
    Scenario(
        "foreign_pg18",
        18,
        {},
        cores=8,
        memory=32 * GiB,
        setup=(*(q.format(rows=200_000) for q in _BIG), *_REMOTE),
        explain=("SELECT id, pad FROM remote_big WHERE grp > 3",),
        fires=("PQ109",),
    ),
    Scenario(
        "foreign_quiet_pg18",
        18,
        {},
        cores=8,
        memory=32 * GiB,
        setup=(*(q.format(rows=200_000) for q in _BIG), *_REMOTE),
        explain=("SELECT id, pad FROM big WHERE grp > 3",),
        quiet=("PQ109",),
    ),
    Scenario(
        "underprovisioned_pg18",
        18,
        {"max_parallel_workers_per_gather": 8},
        cores=8,
        memory=32 * GiB,
        setup=tuple(q.format(rows=500_000) for q in _BIG),
        explain=(_COUNT_BIG,),
        fires=("PQ115",),
    ),
    Scenario(
        "underprovisioned_quiet_pg18",
        18,
        {"max_parallel_workers_per_gather": 8},
        cores=2,
        memory=32 * GiB,
        setup=tuple(q.format(rows=500_000) for q in _BIG),
        explain=(_COUNT_BIG,),
        quiet=("PQ115",),
    ),
]

# pg_stat_statements texts against the catalog: PQ113 and the text half of PQ106/107/111/112.
_STATEMENT_TABLES = (
    "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
    *(q.format(rows=200_000) for q in _BIG),
    "CREATE TABLE audit (n bigint)",
    # 3 MB: below min_parallel_table_scan_size (8 MB)
    "CREATE TABLE codes AS SELECT g AS id, md5(g::text) AS pad FROM generate_series(1, 40000) g",
    "ANALYZE codes",
)
_SLOW_CODES = (
    "SELECT count(*) FROM codes WHERE regexp_replace(repeat(pad, 2), '[0-9]', 'x', 'g') "
    "LIKE '%abc%'"
)
_STATEMENT_RULES = ("PQ106", "PQ107", "PQ111", "PQ112", "PQ113")
SCENARIOS += [
    Scenario(
        "statements_pg15",
        15,
        {},
        cores=8,
        memory=32 * GiB,
        setup=_STATEMENT_TABLES,
        runs=(
            Run(
                "postgres",
                "WITH ins AS (INSERT INTO audit VALUES (1) RETURNING n) "
                "SELECT count(*) FROM big, ins WHERE big.grp > 3",
                2,
            ),
            Run("postgres", "SELECT id FROM big WHERE grp = 3 FOR UPDATE", 2),
            Run("postgres", "SELECT count(*) FROM (SELECT * FROM big LIMIT 150000) s", 2),
            Run("postgres", "SELECT count(DISTINCT pad), grp FROM big GROUP BY grp", 2),
            Run("postgres", _SLOW_CODES, 2),
        ),
        fires=_STATEMENT_RULES,
    ),
    Scenario(
        "statements_fixed_pg18",
        18,
        {},
        cores=8,
        memory=32 * GiB,
        setup=(*_STATEMENT_TABLES, "ALTER TABLE codes SET (parallel_workers = 2)"),
        runs=(
            Run("postgres", "SELECT count(*) FROM big WHERE big.grp > 3", 2),
            Run("postgres", "SELECT id FROM big WHERE grp = 3", 2),
            Run("postgres", "SELECT count(*) FROM big s", 2),
            Run(
                "postgres",
                "SELECT count(*), grp FROM (SELECT DISTINCT pad, grp FROM big) d GROUP BY grp",
                2,
            ),
            Run("postgres", _SLOW_CODES, 2),
        ),
        quiet=_STATEMENT_RULES,
    ),
]

# PQ117 from a plan: PL/pgSQL SELECT INTO runs its Gather without workers (current minors).
_INTO_TABLE = (*(q.format(rows=300_000) for q in _BIG),)
_INTO = (
    "CREATE FUNCTION big_count() RETURNS bigint LANGUAGE plpgsql AS $$DECLARE n bigint; "
    "BEGIN SELECT count(*) INTO n FROM big WHERE grp > 3; RETURN n; END$$"
)
_EXECUTE_INTO = (
    "CREATE FUNCTION big_count() RETURNS bigint LANGUAGE plpgsql AS $$DECLARE n bigint; "
    "BEGIN EXECUTE 'SELECT count(*) FROM big WHERE grp > 3' INTO n; RETURN n; END$$"
)
SCENARIOS += [
    Scenario(
        "select_into_pg18",
        18,
        {},
        cores=8,
        memory=32 * GiB,
        setup=(*_INTO_TABLE, _INTO),
        auto_explain=("SELECT big_count()",),
        fires=("PQ117",),
    ),
    Scenario(
        "select_into_fixed_pg18",
        18,
        {},
        cores=8,
        memory=32 * GiB,
        setup=(*_INTO_TABLE, _EXECUTE_INTO),
        auto_explain=("SELECT big_count()",),
        quiet=("PQ117",),
    ),
]


@contextmanager
def workload(dsn: str, idle: int, idle_in_tx: int, active: int) -> Iterator[None]:
    """Client connections: `idle` idle ones, `idle_in_tx` inside an open transaction, and
    `active` running pg_sleep for as long as the block lasts."""
    conns: list[psycopg.Connection[Any]] = []
    threads: list[threading.Thread] = []
    try:
        for _ in range(idle):
            conns.append(psycopg.connect(dsn, autocommit=True, application_name="app"))
        for _ in range(idle_in_tx):
            c = psycopg.connect(dsn, application_name="app")
            c.execute("SELECT 1")  # opens a transaction and leaves it open
            conns.append(c)
        for _ in range(active):
            c = psycopg.connect(dsn, autocommit=True, application_name="app")
            conns.append(c)

            def sleep(conn: psycopg.Connection[Any] = c) -> None:
                with suppress(psycopg.Error):
                    conn.execute("SELECT pg_sleep(30)")

            t = threading.Thread(target=sleep, daemon=True)
            t.start()
            threads.append(t)
        time.sleep(0.5 if conns else 0)
        yield
    finally:
        for c in conns:
            with suppress(psycopg.Error):
                c.cancel_safe() if hasattr(c, "cancel_safe") else c.cancel()
        for t in threads:
            t.join(timeout=5)
        for c in conns:
            c.close()


def capture(sc: Scenario) -> tuple[Path, list[str]]:
    with PgServer(sc.major, settings={"shared_preload_libraries": PRELOAD, **sc.settings}) as pg:
        if sc.subscription:
            pg.subscribe()
        for _ in range(sc.connects):
            psycopg.connect(pg.dsn, autocommit=True).close()
        with pg.connect(autocommit=True) as c:
            for statement in sc.setup:
                c.execute(statement.replace("{port}", str(pg.port)))  # type: ignore[arg-type]
        for run_ in sc.runs:
            dsn = pg.dsn.replace("user=postgres", f"user={run_.user}")
            with psycopg.connect(dsn, autocommit=True) as c:
                for statement in run_.session:
                    c.execute(statement)  # type: ignore[arg-type]
                for _ in range(run_.times):
                    c.execute(run_.query)  # type: ignore[arg-type]
        if sc.runs:
            time.sleep(0.3)
        if sc.alter_system:
            with pg.connect(autocommit=True) as c:
                for name, value in sc.alter_system.items():
                    c.execute(f"ALTER SYSTEM SET {name} = '{value}'")
                c.execute("SELECT pg_reload_conf()")
            time.sleep(0.3)
        with workload(pg.dsn, sc.idle, sc.idle_in_tx, sc.active):
            snap = collect(pg.dsn, sample_seconds=1, cores=sc.cores, memory=sc.memory)
        for query in sc.explain:
            for doc in explain_live(pg.dsn, query):
                snap.plans.append(CapturedPlan(query=query, document=doc))
        for doc in auto_explained(pg, sc.auto_explain):
            snap.plans.append(CapturedPlan(query=str(doc.get("Query Text", "")), document=doc))
    path = OUT / f"{sc.name}.json"
    snap.save(path)
    return path, check(sc, facts_from_snapshot(snap))


def auto_explained(pg: PgServer, statements: tuple[str, ...]) -> list[dict[str, Any]]:
    """Run `statements` under auto_explain; the JSON plans it logged for nested statements
    (the top-level call's own plan is left out)."""
    if not statements:
        return []
    before = len(pg.read_log())
    with pg.connect(autocommit=True) as c:
        for statement in (*AUTO_EXPLAIN, *statements):
            c.execute(statement)  # type: ignore[arg-type]
    time.sleep(0.3)
    docs = []
    for block in pg.read_log()[before:].split("plan:\n")[1:]:
        lines = []
        for line in block.splitlines():
            if not line.startswith("\t"):
                break
            lines.append(line[1:])
        doc = json.loads("\n".join(lines))
        if doc.get("Query Text") not in statements:
            docs.append(doc)
    return docs


def check(sc: Scenario, facts: Facts) -> list[str]:
    fired = {f.rule for f in run(facts, Report()).findings}
    problems = [f"{c} did not fire" for c in sc.fires if c not in fired]
    problems += [f"{c} fired" for c in sc.quiet if c in fired]
    return problems


def readme() -> str:
    lines = [
        "# sample_snapshots",
        "",
        "Generated by `scripts/capture_snapshots.py`; do not edit by hand. Regenerate with",
        "",
        "    uv run python scripts/capture_snapshots.py",
        "",
        "Each file is `advisor collect` output (`collect(dsn, sample_seconds=1, cores=..., "
        "memory=...)`)",
        "from a throwaway server started with the settings below; cores and memory are given so",
        "the hardware facts are the same on every machine. Client connections were open while",
        "pg_stat_activity was sampled. Every server also has shared_preload_libraries =",
        "pg_stat_statements. Rule cards use them as `[[examples]] snapshot = ...`; fires/quiet",
        "below are the rules the script checked on each file.",
        "",
        "`subscription`: a logical replication subscription between two databases of the same",
        "server, whose apply worker holds a max_worker_processes slot. `connects`: connect-and-",
        "disconnect cycles just before collecting.",
        "",
        "`catalog_pg18` / `catalog_quiet_pg18` (catalog and PG 18 worker-counter rules): database",
        "postgres gets tables `events` and `ledger` (200,000 rows, about 15 MB each; in",
        "`catalog_pg18` `events` has `ALTER TABLE events SET (parallel_workers = 0)`), table",
        "`lookup` (1,000 rows) and role `app` (in `catalog_pg18` with `ALTER ROLE app SET`",
        "parallel_setup_cost = 0, parallel_tuple_cost = 0, min_parallel_table_scan_size = 0).",
        "Then postgres runs `SELECT count(*) FROM ledger WHERE grp > 3` 20 times with",
        "parallel_setup_cost and parallel_tuple_cost 0 in its session, and app runs",
        "`SELECT pad FROM lookup WHERE id = 42` 600 times; both sessions are closed before",
        "collecting.",
        "",
        "`workload_pg15` / `workload_fixed_pg18` (PQ102, PQ117-PQ119): table `orders` (50,000",
        "rows), sequence `batch_seq`, `safe_ratio(numeric, numeric)` (plpgsql, PARALLEL SAFE,",
        "EXCEPTION WHEN division_by_zero) and `order_total(int)`: in `workload_pg15` with",
        "`SELECT count(*) INTO` and a FOR loop, in `workload_fixed_pg18` with `EXECUTE ... INTO`",
        "and RETURN QUERY. postgres then runs 5 times each: on 15 `SELECT nextval('batch_seq'),",
        "count(*) FROM orders`, `SELECT current_schema(), sum(amount) FROM orders`, `BEGIN;",
        "DECLARE big CURSOR FOR SELECT ... FROM orders; FETCH 100 FROM big; COMMIT` and",
        "`SELECT count(*) FROM order_total(7)`; on 18 the same reads with a constant for the",
        "sequence, the keyword `current_schema` and the cursor's query run directly.",
        "",
        "`restricted_pg18` / `restricted_quiet_pg18`, `foreign_pg18` / `foreign_quiet_pg18`,",
        "`underprovisioned_pg18` / `underprovisioned_quiet_pg18` (plan + catalog rules PQ103,",
        "PQ109, PQ115): table `big` (300,000, 200,000 or 500,000 rows of id, grp, 40-byte pad),",
        "and the snapshot also holds the EXPLAIN (VERBOSE, SETTINGS) of one query. `restricted`:",
        "`big_pick(int)` (plpgsql) PARALLEL RESTRICTED or SAFE, query `SELECT count(*) FROM big",
        "WHERE big_pick(id)`. `foreign`: postgres_fdw server `loop` pointing at the same",
        "instance, foreign table `remote_big` over `big` (analysed), query `SELECT id, pad FROM",
        "remote_big WHERE grp > 3` (quiet: the same on `big`). `underprovisioned`:",
        "`SELECT count(*) FROM big WHERE grp > 3` with max_parallel_workers_per_gather = 8.",
        "",
        "| file | PG | server settings | ALTER SYSTEM | subscription | cores | memory | "
        "connects | idle / idle in tx / active | fires | quiet |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for sc in SCENARIOS:
        settings = ", ".join(f"{k}={v}" for k, v in sc.settings.items()) or "defaults"
        alter = ", ".join(f"{k}={v}" for k, v in sc.alter_system.items())
        lines.append(
            f"| `{sc.name}.json` | {sc.major} | {settings} | {alter} | "
            f"{'yes' if sc.subscription else ''} | {sc.cores:g} | "
            f"{sc.memory // GiB} GB | {sc.connects or ''} | "
            f"{sc.idle} / {sc.idle_in_tx} / {sc.active} | "
            f"{', '.join(sc.fires)} | {', '.join(sc.quiet)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="scenario names")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    failed = False
    for sc in SCENARIOS:
        if args.only and sc.name not in args.only:
            continue
        path, problems = capture(sc)
        status = "ok" if not problems else "; ".join(problems)
        failed |= bool(problems)
        print(f"{path.relative_to(ROOT)}: {status}")
    (OUT / "README.md").write_text(readme(), encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
