"""Catalog facts and the rules that read them (PQ101 confirmed by pg_proc, PQ114) and the
PG 18 worker counters (PQ202, PQ207), provoked on real servers: create the table, function or
workload, `collect()` (plus EXPLAIN through `explain_live` for PQ101), run the engine, then
apply the fix and check the rule goes quiet.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
import pytest

from advisor.collect import collect
from advisor.collect.explain import explain_live
from advisor.engine import Facts, analyse, run
from advisor.pgserver import PgServer
from advisor.plan import build_plan
from advisor.report import Finding, Report
from advisor.snapshot import Snapshot, facts_from_snapshot

pytestmark = pytest.mark.server

MakePg = Callable[..., PgServer]
BIG = (
    "CREATE TABLE {name} AS SELECT g AS id, g % 100 AS grp, repeat('x', 40) AS pad "
    "FROM generate_series(1, {rows}) g"
)
LUCKY = (
    "CREATE FUNCTION {name}(i int) RETURNS boolean LANGUAGE plpgsql {label} "
    "AS $$BEGIN RETURN i % 7 = 0; END$$"
)


def findings(snap: Snapshot, *codes: str) -> dict[str, Finding]:
    report = run(facts_from_snapshot(snap), Report(), select=codes)
    return {f.rule: f for f in report.findings}


def sql(pg: PgServer, *statements: str) -> None:
    with pg.connect(autocommit=True) as c:
        for s in statements:
            c.execute(s)  # type: ignore[arg-type]


def test_catalog_facts_are_collected(pg18: PgServer) -> None:
    sql(
        pg18,
        BIG.format(name="cat_facts", rows=1000),
        "ALTER TABLE cat_facts SET (parallel_workers = 3)",
        LUCKY.format(name="cat_lucky", label=""),
        "CREATE FUNCTION cat_lucky(t text) RETURNS boolean LANGUAGE plpgsql PARALLEL SAFE "
        "AS $$BEGIN RETURN t = 'x'; EXCEPTION WHEN others THEN RETURN false; END$$",
    )
    try:
        snap = collect(pg18.dsn)
        assert snap.catalog and "catalog" in facts_from_snapshot(snap).available()
        rel = next(r for r in snap.relations if r.name == "cat_facts")
        assert (rel.schema_name, rel.relkind, rel.relpersistence) == ("public", "r", "p")
        assert rel.reloption_workers == 3 and rel.blocks > 0
        funcs = {f.identity: f for f in snap.functions if f.name == "cat_lucky"}
        assert set(funcs) == {"cat_lucky(integer)", "cat_lucky(text)"}
        assert funcs["cat_lucky(integer)"].proparallel == "u"
        assert not funcs["cat_lucky(integer)"].has_exception_block
        assert funcs["cat_lucky(text)"].proparallel == "s"
        assert funcs["cat_lucky(text)"].has_exception_block
        assert funcs["cat_lucky(text)"].language == "plpgsql"
        # A snapshot written before the catalog fields still loads, without "catalog".
        old = snap.model_dump(exclude={"catalog", "relations", "functions"})
        again = Snapshot.model_validate(old)
        assert "catalog" not in facts_from_snapshot(again).available()
    finally:
        sql(pg18, "DROP TABLE cat_facts", "DROP FUNCTION cat_lucky(integer), cat_lucky(text)")


def test_pq114_fires_on_parallel_workers_zero_and_quiet_after_reset(pg18: PgServer) -> None:
    sql(
        pg18,
        BIG.format(name="pq114_big", rows=200_000),
        "ALTER TABLE pq114_big SET (parallel_workers = 0)",
        BIG.format(name="pq114_small", rows=1000),
        "ALTER TABLE pq114_small SET (parallel_workers = 0)",
    )
    try:
        found = findings(collect(pg18.dsn), "PQ114")
        assert "PQ114" in found
        f = found["PQ114"]
        assert f.evidence["relation"] == "public.pq114_big"  # the small one is below 8 MB
        assert f.evidence["size_rule_workers"] >= 1
        assert "ALTER TABLE public.pq114_big RESET (parallel_workers);" in f.fix
        sql(pg18, "ALTER TABLE pq114_big RESET (parallel_workers)")
        assert "PQ114" not in findings(collect(pg18.dsn), "PQ114")
    finally:
        sql(pg18, "DROP TABLE pq114_big", "DROP TABLE pq114_small")


def _pq101(pg: PgServer, query: str) -> list[Finding]:
    docs = explain_live(pg.dsn, query)
    facts = facts_from_snapshot(collect(pg.dsn))
    facts.plans = [build_plan(d, source="query", index=i) for i, d in enumerate(docs, 1)]
    return [f for f in analyse(facts, select=["PQ101"]).findings if f.rule == "PQ101"]


def test_pq101_certain_from_pg_proc_and_quiet_when_safe(pg18: PgServer) -> None:
    sql(
        pg18,
        BIG.format(name="pq101_big", rows=300_000),
        "ANALYZE pq101_big",
        LUCKY.format(name="pq101_lucky", label=""),
    )
    query = "SELECT count(*) FROM pq101_big WHERE pq101_lucky(id)"
    try:
        found = _pq101(pg18, query)
        assert len(found) == 1, found
        ev = found[0].evidence
        assert ev["certain"] is True and ev["suspected"] == []
        assert ev["pg_proc"] == [{"function": "pq101_lucky(integer)", "proparallel": "u"}]
        assert "pq101_lucky(integer) is PARALLEL UNSAFE" in found[0].message
        assert "suspicion" not in found[0].message
        assert "ALTER FUNCTION pq101_lucky(integer) PARALLEL SAFE;" in found[0].fix

        # An overload that is SAFE: the finding names both and says it cannot tell which.
        sql(
            pg18,
            "CREATE FUNCTION pq101_lucky(t text) RETURNS boolean LANGUAGE sql PARALLEL SAFE "
            "AS $$SELECT t = 'x'$$",
        )
        found = _pq101(pg18, query)
        assert len(found) == 1
        assert "pq101_lucky(text) is PARALLEL SAFE" in found[0].message
        assert "which overload" in found[0].message
        assert "ALTER FUNCTION pq101_lucky(integer) PARALLEL SAFE;" in found[0].fix
        assert "pq101_lucky(text) PARALLEL SAFE;" not in found[0].fix

        # The fix: the function PARALLEL SAFE -> a parallel plan, and the rule is quiet.
        sql(pg18, "ALTER FUNCTION pq101_lucky(integer) PARALLEL SAFE")
        assert _pq101(pg18, query) == []
    finally:
        sql(pg18, "DROP TABLE pq101_big", "DROP FUNCTION pq101_lucky(integer)")
        sql(pg18, "DROP FUNCTION IF EXISTS pq101_lucky(text)")


def test_pq101_offline_stays_suspected(pg18: PgServer) -> None:
    """Without catalog facts the same plan is only a suspicion (offline behaviour unchanged)."""
    sql(
        pg18,
        BIG.format(name="pq101_off", rows=300_000),
        "ANALYZE pq101_off",
        LUCKY.format(name="pq101_off_fn", label=""),
    )
    try:
        docs = explain_live(pg18.dsn, "SELECT count(*) FROM pq101_off WHERE pq101_off_fn(id)")
        plans = [build_plan(d, source="query") for d in docs]
        report = analyse(Facts(plans=plans), select=["PQ101"])
        (f,) = report.findings
        assert f.evidence["certain"] is False and f.evidence["suspected"] == ["pq101_off_fn"]
        assert "suspicion" in f.message
    finally:
        sql(pg18, "DROP TABLE pq101_off", "DROP FUNCTION pq101_off_fn(integer)")


def _parallel_workload(pg: PgServer, runs: int) -> None:
    """`runs` parallel-planned count(*) over a 200,000-row table; the connection is closed so
    its statistics are flushed to pg_stat_database and pg_stat_statements."""
    with pg.connect(autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        c.execute(BIG.format(name="shortage", rows=200_000))  # type: ignore[arg-type]
        c.execute("ANALYZE shortage")
        c.execute("SET parallel_setup_cost = 0")
        c.execute("SET parallel_tuple_cost = 0")
        c.execute("SET max_parallel_workers_per_gather = 2")
        for _ in range(runs):
            c.execute("SELECT count(*) FROM shortage WHERE grp > 3")
    time.sleep(0.3)


def test_pq202_fires_without_pool_and_quiet_with_it(make_pg: MakePg) -> None:
    pg = make_pg(18, max_parallel_workers=0)
    _parallel_workload(pg, 20)
    found = findings(collect(pg.dsn), "PQ202")
    assert "PQ202" in found, found
    f = found["PQ202"]
    assert f.evidence["database"] == "postgres" and f.evidence["launched"] == 0
    assert f.evidence["to_launch"] >= 20 and f.severity == "critical"
    assert "max_parallel_workers = 0" in f.message
    assert "queryid" in f.evidence["statements"]
    assert "pg_reload_conf" in f.fix

    quiet = make_pg(18)
    _parallel_workload(quiet, 20)
    assert "PQ202" not in findings(collect(quiet.dsn), "PQ202")


def _tiny_workload(pg: PgServer, calls: int, *, cheap: bool) -> None:
    """Role app runs a one-row lookup on a 1,000-row table `calls` times; with `cheap`, the
    role's parallel costs and size threshold are 0 (ALTER ROLE), so each lookup plans a Gather."""
    statements = [
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
        "CREATE ROLE app LOGIN",
        BIG.format(name="lookup", rows=1000),
        "ANALYZE lookup",
        "GRANT SELECT ON lookup TO app",
    ]
    if cheap:
        statements += [
            "ALTER ROLE app SET parallel_setup_cost = 0",
            "ALTER ROLE app SET parallel_tuple_cost = 0",
            "ALTER ROLE app SET min_parallel_table_scan_size = 0",
        ]
    sql(pg, *statements)
    dsn = pg.dsn.replace("user=postgres", "user=app")
    with psycopg.connect(dsn, autocommit=True) as c:
        for i in range(calls):
            c.execute("SELECT pad FROM lookup WHERE id = %s", (i % 1000,))
    time.sleep(0.3)


def test_pq207_fires_for_a_role_with_cheap_parallelism(make_pg: MakePg) -> None:
    pg = make_pg(18, max_parallel_workers=0)  # to_launch is counted without starting workers
    _tiny_workload(pg, 600, cheap=True)
    found = findings(collect(pg.dsn), "PQ207")
    assert "PQ207" in found, found
    f = found["PQ207"]
    assert f.evidence["role"] == "app" and f.evidence["calls"] >= 500
    assert "ALTER ROLE app IN DATABASE postgres SET max_parallel_workers_per_gather = 0;" in (f.fix)

    quiet = make_pg(18, max_parallel_workers=0)
    _tiny_workload(quiet, 600, cheap=False)
    assert "PQ207" not in findings(collect(quiet.dsn), "PQ207")


def _live(pg: PgServer, query: str, *codes: str, cores: float = 8, dsn: str = "") -> set[str]:
    """Rules among `codes` that fire on the EXPLAIN of `query` with the server's catalog."""
    docs = explain_live(dsn or pg.dsn, query)
    facts = facts_from_snapshot(collect(pg.dsn, cores=cores))
    facts.plans = [build_plan(d, source="query", index=i) for i, d in enumerate(docs, 1)]
    return {f.rule for f in analyse(facts, select=list(codes)).findings}


def test_pq109_fires_on_postgres_fdw_and_quiet_on_local_table(pg18: PgServer) -> None:
    sql(
        pg18,
        BIG.format(name="pq109_local", rows=200_000),
        "ANALYZE pq109_local",
        "CREATE EXTENSION postgres_fdw",
        "CREATE SERVER pq109_loop FOREIGN DATA WRAPPER postgres_fdw "
        f"OPTIONS (host '127.0.0.1', port '{pg18.port}', dbname 'postgres')",
        "CREATE USER MAPPING FOR postgres SERVER pq109_loop OPTIONS (user 'postgres')",
        "CREATE FOREIGN TABLE pq109_remote (id int, grp int, pad text) SERVER pq109_loop "
        "OPTIONS (table_name 'pq109_local')",
        "ANALYZE pq109_remote",
    )
    try:
        snap = collect(pg18.dsn)
        rel = next(r for r in snap.relations if r.name == "pq109_remote")
        assert (rel.relkind, rel.fdw) == ("f", "postgres_fdw")
        assert "PQ109" in _live(pg18, "SELECT id, pad FROM pq109_remote WHERE grp > 3", "PQ109")
        assert "PQ109" not in _live(pg18, "SELECT id, pad FROM pq109_local WHERE grp > 3", "PQ109")
    finally:
        sql(pg18, "DROP EXTENSION postgres_fdw CASCADE", "DROP TABLE pq109_local")


def test_pq115_fires_with_idle_cores_and_quiet_with_two(pg18: PgServer) -> None:
    sql(pg18, BIG.format(name="pq115_big", rows=500_000), "ANALYZE pq115_big")
    dsn = pg18.dsn + " options='-c max_parallel_workers_per_gather=8'"
    query = "SELECT count(*) FROM pq115_big WHERE grp > 3"
    try:
        assert "PQ115" in _live(pg18, query, "PQ115", cores=8, dsn=dsn)
        assert "PQ115" not in _live(pg18, query, "PQ115", cores=2, dsn=dsn)
    finally:
        sql(pg18, "DROP TABLE pq115_big")


def test_pq103_owns_restricted_functions(pg18: PgServer) -> None:
    sql(
        pg18,
        BIG.format(name="pq103_big", rows=300_000),
        "ANALYZE pq103_big",
        LUCKY.format(name="pq103_pick", label="PARALLEL RESTRICTED"),
    )
    query = "SELECT count(*) FROM pq103_big WHERE pq103_pick(id)"
    try:
        assert _live(pg18, query, "PQ101", "PQ103", "PQ116") == {"PQ103"}
        assert _live(pg18, "SELECT count(*) FROM pq103_big WHERE random() < 0.5", "PQ103") == {
            "PQ103"
        }
        sql(pg18, "ALTER FUNCTION pq103_pick(integer) PARALLEL SAFE")
        assert "PQ103" not in _live(pg18, query, "PQ101", "PQ103")
    finally:
        sql(pg18, "DROP TABLE pq103_big", "DROP FUNCTION pq103_pick(integer)")
