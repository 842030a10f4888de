"""pg_stat_statements texts resolved against the catalog, on real PostgreSQL 15 and 18 servers:
PQ113 (a slow statement over a table below min_parallel_table_scan_size) and the text half of
PQ106, PQ107, PQ111 and PQ112. Each statement really runs so it lands in pg_stat_statements;
`collect()` reads it with the catalog; the engine reports. The quiet counterparts are the same
reads rewritten the way the fixes say (or PQ113's own ALTER TABLE), which must not be reported.
Also: the advisor's own statements never show up among the statements it reports.
"""

from __future__ import annotations

import time

import pytest

from advisor.collect import ADVISOR_MARKER, collect, is_advisor_text
from advisor.engine import run
from advisor.pgserver import AUTO_EXPLAIN, PgServer
from advisor.plan import Plan, parse_plans
from advisor.report import Finding, Report
from advisor.snapshot import Snapshot, facts_from_snapshot

pytestmark = pytest.mark.server

SETUP = (
    "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
    # 16 MB: big enough for 2 workers by the size rule
    "CREATE TABLE st_big AS SELECT g AS id, g % 100 AS grp, repeat('x', 40) AS pad "
    "FROM generate_series(1, 200000) g",
    "ANALYZE st_big",
    "CREATE TABLE st_log (n bigint)",
    # 3 MB: below min_parallel_table_scan_size (8 MB)
    "CREATE TABLE st_small AS SELECT g AS id, md5(g::text) AS pad FROM generate_series(1, 40000) g",
    "ANALYZE st_small",
)
TEARDOWN = ("DROP TABLE st_big, st_log, st_small",)
HAZARDS = {
    "PQ106": "WITH ins AS (INSERT INTO st_log VALUES (1) RETURNING n) "
    "SELECT count(*) FROM st_big, ins WHERE st_big.grp > 3",
    "PQ107": "SELECT id FROM st_big WHERE grp = 3 FOR UPDATE",
    "PQ111": "SELECT count(*) FROM (SELECT * FROM st_big LIMIT 150000) s WHERE s.grp > 3",
    "PQ112": "SELECT count(DISTINCT pad), grp FROM st_big GROUP BY grp",
}
FIXED = (
    "SELECT count(*) FROM st_big WHERE st_big.grp > 7",
    "SELECT id FROM st_big WHERE grp = 4",
    "SELECT count(*) FROM st_big s WHERE s.grp > 5",
    "SELECT count(*), grp FROM (SELECT DISTINCT pad, grp FROM st_big) d GROUP BY grp",
)
SLOW_SMALL = (
    "SELECT count(*) FROM st_small WHERE regexp_replace(repeat(pad, 2), '[0-9]', 'x', 'g') "
    "LIKE '%abc%'"
)
FAST_SMALL = "SELECT count(*) FROM st_small WHERE pad LIKE '%abc%'"
CODES = ("PQ106", "PQ107", "PQ111", "PQ112", "PQ113")


def _sql(pg: PgServer, *statements: str) -> None:
    with pg.connect(autocommit=True) as c:
        for s in statements:
            c.execute(s)  # type: ignore[arg-type]


def _mine(snap: Snapshot) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in run(facts_from_snapshot(snap), Report(), select=CODES).findings:
        if "st_" in str(f.evidence.get("query")):
            out.setdefault(f.rule, []).append(f)
    return out


@pytest.mark.parametrize("major", [15, 18])
def test_statement_texts_against_the_catalog(major: int, request: pytest.FixtureRequest) -> None:
    pg: PgServer = request.getfixturevalue(f"pg{major}")
    _sql(pg, *SETUP)
    try:
        _sql(pg, *HAZARDS.values(), *FIXED, SLOW_SMALL, FAST_SMALL)
        time.sleep(0.3)
        snap = collect(pg.dsn, cores=8)
        found = _mine(snap)
        assert set(found) == set(CODES), sorted(found)
        for code, text in HAZARDS.items():
            (f,) = found[code]
            assert f.where.startswith("statement ") and f.evidence["calls"] == 1
            assert f.evidence["relation"] == "public.st_big", f.evidence
            assert "Seen in pg_stat_statements" in f.message and "1 calls" in f.message
            assert text.split()[0].lower() in str(f.evidence["query"]).lower()
        assert found["PQ106"][0].evidence["cte"] == "ins"
        assert found["PQ106"][0].evidence["operation"] == "INSERT"
        assert "FOR UPDATE in its text" in found["PQ107"][0].message
        assert found["PQ111"][0].evidence["limit"] == "LIMIT $1"
        assert "no ORDER BY" in found["PQ111"][0].message
        assert "count(DISTINCT ...)" in found["PQ112"][0].evidence["causes"]
        assert "Deduplicate first" in found["PQ112"][0].fix

        (small,) = found["PQ113"]
        assert small.evidence["relation"] == "public.st_small"
        assert "regexp_replace" in str(small.evidence["query"])
        assert small.evidence["min_size"] == "8MB"
        assert (
            small.evidence["alter_table"]
            == "ALTER TABLE public.st_small SET (parallel_workers = 2);"
        )
        assert small.severity == "info" and small.evidence["alter_table"] in small.fix
        assert "ALTER ROLE postgres SET min_parallel_table_scan_size" in small.fix

        # The advisor's own statements (marked) are in pg_stat_statements, but not reported.
        assert _marked(pg) > 0
        assert not any(is_advisor_text(s.query) for s in snap.statements)

        # PQ113's own fix makes it quiet; the rewritten reads were quiet from the start.
        _sql(pg, str(small.evidence["alter_table"]))
        after = _mine(collect(pg.dsn, cores=8))
        assert "PQ113" not in after, after.get("PQ113")
        assert {c: len(v) for c, v in after.items()} == {c: 1 for c in HAZARDS}
    finally:
        _sql(pg, *TEARDOWN)


def _marked(pg: PgServer) -> int:
    """How many pg_stat_statements texts carry the advisor's marker."""
    with pg.connect(autocommit=True) as c:
        row = c.execute(
            "SELECT count(*) FROM pg_stat_statements WHERE strpos(query, %s) > 0",
            (ADVISOR_MARKER,),
        ).fetchone()
    return int(row[0]) if row is not None else 0


# -- PQ117 from plans: a Gather that launched nothing while the pool was idle ---------------------

INTO = (
    "CREATE FUNCTION st_into() RETURNS bigint LANGUAGE plpgsql AS $$DECLARE n bigint; "
    "BEGIN SELECT count(*) INTO n FROM st_big WHERE grp > 3; RETURN n; END$$"
)
EXECUTE_INTO = (
    "CREATE FUNCTION st_into() RETURNS bigint LANGUAGE plpgsql AS $$DECLARE n bigint; "
    "BEGIN EXECUTE 'SELECT count(*) FROM st_big WHERE grp > 3' INTO n; RETURN n; END$$"
)


def _nested_plans(pg: PgServer, *session: str) -> list[Plan]:
    """Run SELECT st_into() under auto_explain; the plans of its nested SELECT from the log."""
    before = len(pg.read_log())
    with pg.connect(autocommit=True) as c:
        for s in (*AUTO_EXPLAIN, *session):
            c.execute(s)  # type: ignore[arg-type]
        c.execute("SELECT st_into()")
    time.sleep(0.3)
    plans = parse_plans(pg.read_log()[before:], source="server.log")
    return [p for p in plans if "st_big" in (p.query_text or "")]


def _pq117(pg: PgServer, plans: list[Plan]) -> list[Finding]:
    facts = facts_from_snapshot(collect(pg.dsn, cores=8))
    facts.plans = plans
    # only the plan half: the session's server may hold other tests' DECLARE CURSOR texts
    found = run(facts, Report(), select=["PQ117"]).findings
    return [f for f in found if f.where.startswith("server.log")]


@pytest.mark.parametrize("major", [15, 18])
def test_pq117_from_a_plan_that_launched_nothing(
    major: int, request: pytest.FixtureRequest
) -> None:
    pg: PgServer = request.getfixturevalue(f"pg{major}")
    # Other tests on this session server ran pools dry; PG 18's counters would rightly say the
    # pool may have been short. Start this database's counters afresh.
    _sql(pg, *SETUP[:3], INTO, "SELECT pg_stat_reset()")
    try:
        (plan,) = _nested_plans(pg)
        (gather,) = plan.gathers()
        assert gather.workers_planned and gather.workers_launched == 0
        (f,) = _pq117(pg, [plan])
        assert f.severity == "warning" and f.evidence["launched"] == 0
        assert "launched none although the pool had room" in f.message
        assert "parallel workers busy in 1 pg_stat_activity sample" in f.evidence["pool"]
        assert "EXECUTE '...' INTO" in f.fix

        # The pool itself is empty in that session: PQ201's case, not this one.
        (empty,) = _nested_plans(pg, "SET max_parallel_workers = 0")
        assert _pq117(pg, [empty]) == []

        # The fix: EXECUTE ... INTO launches the worker.
        _sql(pg, "DROP FUNCTION st_into()", EXECUTE_INTO)
        (fixed,) = _nested_plans(pg)
        assert [g.workers_launched for g in fixed.gathers()] == [gather.workers_planned]
        assert _pq117(pg, [fixed]) == []
    finally:
        _sql(pg, "DROP FUNCTION st_into()", "DROP TABLE st_big")


# -- every major: the advisor's own rows stay out, $n texts get a generic plan ---------------------


def test_marker_and_generic_plans_on_every_major(pg_any: PgServer) -> None:
    """13-15 take the PREPARE + force_generic_plan path, 16-18 EXPLAIN (GENERIC_PLAN); on every
    version the marked statements are in pg_stat_statements but never in the snapshot."""
    from advisor.collect.explain import explain_top

    _sql(
        pg_any,
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
        "CREATE TABLE st_gen AS SELECT g AS id, g % 10 AS grp FROM generate_series(1, 1000) g",
    )
    try:
        with pg_any.connect(autocommit=True) as c:
            for i in range(3):  # server-side binding: pg_stat_statements keeps "grp = $1"
                c.execute("SELECT count(*) FROM st_gen WHERE grp = %s AND id > %s", (i, i))
        collect(pg_any.dsn)  # leaves its own marked rows behind
        snap = collect(pg_any.dsn)
        assert not any(is_advisor_text(s.query) for s in snap.statements)
        mine = [s for s in snap.statements if "FROM st_gen WHERE" in (s.query or "")]
        assert mine and "$2" in str(mine[0].query), [s.query for s in mine]
        snap.statements = mine
        explain_top(pg_any.dsn, snap, 1)
        (plan,) = snap.plans
        assert plan.generic and plan.queryid == mine[0].queryid
        assert plan.document["Plan"]["Node Type"] == "Aggregate", plan.document
        assert _marked(pg_any) > 0
    finally:
        _sql(pg_any, "DROP TABLE st_gen")


def test_pq113_from_analysed_plans_alone(pg15: PgServer) -> None:
    """Offline (plans only, no snapshot): EXPLAIN (ANALYZE, BUFFERS) shows the table's size."""
    from advisor.collect.explain import explain_live
    from advisor.engine import Facts
    from advisor.plan import build_plan

    _sql(pg15, *SETUP)
    try:

        def pq113(query: str) -> list[Finding]:
            (doc,) = explain_live(pg15.dsn, query, analyze=True)
            facts = Facts(plans=[build_plan(doc, source="live")])
            return run(facts, Report(), select=["PQ113"]).findings

        (slow,) = pq113(SLOW_SMALL)
        assert slow.evidence["relation"] == "public.st_small" and "EXPLAIN ANALYZE" in slow.message
        assert slow.evidence["alter_table"] == (
            "ALTER TABLE public.st_small SET (parallel_workers = 2);"
        )
        assert pq113(FAST_SMALL) == []  # a few milliseconds: nothing to gain
        assert pq113("SELECT count(*) FROM st_big WHERE pad LIKE '%y%'") == []  # big enough
    finally:
        _sql(pg15, *TEARDOWN)


@pytest.mark.parametrize("major", [15, 18])
def test_pq112_user_aggregate_without_combine_function(
    major: int, request: pytest.FixtureRequest
) -> None:
    pg: PgServer = request.getfixturevalue(f"pg{major}")
    _sql(
        pg,
        *SETUP[:3],
        "CREATE AGGREGATE st_total(int) (SFUNC = int4pl, STYPE = int, PARALLEL = SAFE)",
        "CREATE AGGREGATE st_split(int) "
        "(SFUNC = int4pl, STYPE = int, COMBINEFUNC = int4pl, PARALLEL = SAFE)",
    )
    try:
        _sql(pg, "SELECT st_total(grp) FROM st_big", "SELECT st_split(grp) FROM st_big")
        time.sleep(0.3)
        snap = collect(pg.dsn, cores=8)
        (total,) = [f for f in snap.functions if f.name == "st_total"]
        (split,) = [f for f in snap.functions if f.name == "st_split"]
        assert (total.partial_agg, split.partial_agg) == (False, True)
        found = _mine(snap).get("PQ112", [])
        (f,) = [x for x in found if "st_total" in str(x.evidence["query"])]
        assert "st_total(integer), a user aggregate that cannot be split" in f.message
        assert "COMBINEFUNC" in f.fix
        assert not [x for x in found if "st_split" in str(x.evidence["query"])]
    finally:
        _sql(
            pg, "DROP AGGREGATE st_total(int)", "DROP AGGREGATE st_split(int)", "DROP TABLE st_big"
        )
