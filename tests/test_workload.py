"""PQ102, PQ117, PQ118, PQ119: statement texts and PL/pgSQL bodies parsed with pglast.

The parsing helpers are checked on literal texts; the rules on real PostgreSQL 15 and 18
servers: the statements run (a DECLARE CURSOR inside a transaction) so they land in
pg_stat_statements, the functions are created, `collect()` reads both, the engine reports.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from advisor.collect import collect
from advisor.engine import run
from advisor.pgserver import PgServer
from advisor.report import Finding, Report
from advisor.snapshot import Snapshot, facts_from_snapshot
from advisor.workload import plpgsql_shape, statement_shape

CODES = ("PQ102", "PQ117", "PQ118", "PQ119")


# -- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "calls"),
    [
        ("SELECT nextval($1), count(*) FROM t", ("nextval",)),
        ("SELECT current_schema(), x FROM t WHERE y = $1", ("current_schema",)),
        ("SELECT current_schema, x FROM t", ()),
        ("SELECT pg_catalog.set_config('a', 'b', true) FROM t", ("set_config",)),
        ("SELECT lo_get(oid) FROM t", ("lo_get",)),
        ("SELECT myschema.nextval(1) FROM t", ()),
        (
            "SELECT txid_current(), pg_current_xact_id() FROM t",
            ("txid_current", "pg_current_xact_id"),
        ),
    ],
)
def test_unsafe_calls(text: str, calls: tuple[str, ...]) -> None:
    shape = statement_shape(text)
    assert shape is not None and shape.kind == "SelectStmt" and shape.reads_tables
    assert shape.unsafe_calls == calls


def test_cursor_and_unparsable_texts() -> None:
    shape = statement_shape("DECLARE c CURSOR WITH HOLD FOR SELECT * FROM t")
    assert shape is not None and shape.kind == "DeclareCursorStmt"
    assert (shape.cursor_name, shape.cursor_hold) == ("c", True)
    plain = statement_shape("DECLARE d NO SCROLL CURSOR FOR SELECT 1")
    assert plain is not None and not plain.cursor_hold
    assert statement_shape("SELECT count(*) FROM t WHERE x IN ($1, $2, $3") is None


BODY = """CREATE FUNCTION f(a int) RETURNS int LANGUAGE plpgsql AS $fn$
DECLARE v int; r record; c refcursor;
BEGIN
  SELECT count(*) INTO v FROM t;
  SELECT 1 INTO v;
  v := (SELECT count(*) FROM t);
  v := a + 1;
  FOR r IN SELECT * FROM t LOOP v := v + 1; END LOOP;
  OPEN c FOR SELECT * FROM t;
  PERFORM count(*) FROM t;
  RETURN v;
END
$fn$"""


def test_plpgsql_constructs() -> None:
    shape = plpgsql_shape(BODY)
    assert shape is not None and not shape.has_exception_block
    found = [(c.kind, c.line) for c in shape.constructs]
    assert found == [
        ("SELECT INTO", 4),
        ("assignment from a query", 6),
        ("FOR-IN-query loop", 8),
        ("OPEN cursor", 9),
    ]
    caught = plpgsql_shape(BODY.replace("RETURN v;", "RETURN v; EXCEPTION WHEN others THEN NULL;"))
    assert caught is not None and caught.has_exception_block
    assert plpgsql_shape(BODY[:-20]) is None  # a body cut at the collector's cap


def test_engine_import_does_not_load_pglast() -> None:
    code = (
        "import sys, advisor.cli, advisor.engine, advisor.checks; "
        "assert 'pglast' not in sys.modules and 'advisor.workload' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- real servers -----------------------------------------------------------------------------

SETUP = (
    "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
    "CREATE TABLE wl_orders AS SELECT g AS id, g % 100 AS customer, g::numeric AS amount "
    "FROM generate_series(1, 5000) g",
    "CREATE SEQUENCE wl_seq",
    """CREATE FUNCTION wl_loop(c int) RETURNS SETOF int LANGUAGE plpgsql AS $$
DECLARE n bigint; r record;
BEGIN
  SELECT count(*) INTO n FROM wl_orders o WHERE o.customer = c;
  FOR r IN SELECT o.id FROM wl_orders o WHERE o.customer = c LOOP
    RETURN NEXT r.id;
  END LOOP;
END
$$""",
    """CREATE FUNCTION wl_set(c int) RETURNS SETOF int LANGUAGE plpgsql AS $$
BEGIN
  PERFORM count(*) FROM wl_orders;
  RETURN QUERY SELECT o.id FROM wl_orders o WHERE o.customer = c;
END
$$""",
    "CREATE FUNCTION wl_ratio(a numeric, b numeric) RETURNS numeric LANGUAGE plpgsql "
    "PARALLEL SAFE AS $$BEGIN RETURN a / b; "
    "EXCEPTION WHEN division_by_zero THEN RETURN NULL; END$$",
    "CREATE FUNCTION wl_ratio_r(a numeric, b numeric) RETURNS numeric LANGUAGE plpgsql "
    "PARALLEL RESTRICTED AS $$BEGIN RETURN a / b; "
    "EXCEPTION WHEN division_by_zero THEN RETURN NULL; END$$",
)
TEARDOWN = (
    "DROP FUNCTION wl_loop(int), wl_set(int), wl_ratio(numeric, numeric), "
    "wl_ratio_r(numeric, numeric)",
    "DROP SEQUENCE wl_seq",
    "DROP TABLE wl_orders",
)
WORKLOAD = (
    "SELECT nextval('wl_seq') AS batch, count(*) FROM wl_orders",
    "SELECT current_schema() AS s, sum(amount) FROM wl_orders",
    "SELECT current_schema AS s, max(amount) FROM wl_orders",  # the keyword form: quiet
    # One simple-protocol string: the DECLARE runs inside the transaction it needs.
    "BEGIN; DECLARE wl_big CURSOR FOR SELECT id FROM wl_orders WHERE customer > 3; "
    "FETCH 10 FROM wl_big; COMMIT",
)


def _findings(snap: Snapshot) -> list[Finding]:
    return run(facts_from_snapshot(snap), Report(), select=CODES).findings


@pytest.mark.server
@pytest.mark.parametrize("major", [15, 18])
def test_workload_rules_on_real_servers(major: int, request: pytest.FixtureRequest) -> None:
    pg: PgServer = request.getfixturevalue(f"pg{major}")
    with pg.connect(autocommit=True) as c:
        for statement in SETUP:
            c.execute(statement)  # type: ignore[arg-type]
    try:
        with pg.connect(autocommit=True) as c:
            for statement in WORKLOAD:
                c.execute(statement)  # type: ignore[arg-type]
        time.sleep(0.3)
        snap = collect(pg.dsn)
        found = _findings(snap)
        mine = [f for f in found if "wl_" in f.where or "wl_" in str(f.evidence.get("query"))]
        by_rule: dict[str, list[Finding]] = {}
        for f in mine:
            by_rule.setdefault(f.rule, []).append(f)

        pq102 = {str(f.evidence["query"]): f for f in by_rule["PQ102"]}
        assert len(pq102) == 2, pq102
        nextval = next(f for q, f in pq102.items() if "nextval" in q)
        assert nextval.evidence["functions"] == "nextval()" and nextval.evidence["calls"] == 1
        assert nextval.evidence["queryid"] is not None and "%" in nextval.evidence["share"]
        schema = next(f for q, f in pq102.items() if "current_schema()" in q)
        assert "without parentheses" in schema.fix
        assert not any("max(amount)" in q for q in pq102)

        (cursor,) = by_rule["PQ117"]
        assert cursor.evidence["cursor"] == "wl_big" and cursor.severity == "warning"

        (loop,) = by_rule["PQ118"]
        assert loop.where == "function wl_loop(integer)"
        kinds = [(c["kind"], c["line"]) for c in loop.evidence["constructs"]]
        assert kinds == [("SELECT INTO", 4), ("FOR-IN-query loop", 5)]

        source = next(f for f in snap.functions if f.name == "wl_loop").source
        assert source is not None and source.startswith("CREATE OR REPLACE FUNCTION")

        if major < 17:
            (ratio,) = by_rule["PQ119"]
            assert ratio.severity == "critical"
            assert ratio.where == "function wl_ratio(numeric,numeric)"
            assert "PARALLEL RESTRICTED" in ratio.fix and "parsed body" in ratio.message
        else:
            assert "PQ119" not in by_rule
    finally:
        with pg.connect(autocommit=True) as c:
            for statement in TEARDOWN:
                c.execute(statement)  # type: ignore[arg-type]


def test_statements_with_a_captured_plan_are_judged_from_the_plan() -> None:
    """The text half of PQ107 stays out of a statement whose plan collect --explain-top
    captured (the plan detector reports that one), on the saved real snapshot."""
    from pathlib import Path

    from advisor.plan import parse_plans

    root = Path(__file__).resolve().parent.parent
    snap = Snapshot.load(root / "sample_snapshots" / "statements_pg15.json")
    facts = facts_from_snapshot(snap)
    (text_only,) = run(facts, Report(), select=["PQ107"]).findings
    assert text_only.where.startswith("statement ") and "pg_stat_statements" in text_only.message
    qid = str(text_only.evidence["queryid"])
    sample = root / "sample_plans" / "pg15" / "pq107_fires_for_update.json"
    facts.plans = parse_plans(sample.read_text(encoding="utf-8"), source=f"statement {qid}")
    (from_plan,) = run(facts, Report(), select=["PQ107"]).findings
    assert from_plan.where.startswith(f"statement {qid} plan 1 ›"), from_plan.where
    assert "shown as LockRows" in from_plan.message and "pg_stat_statements" not in (
        from_plan.message
    )
