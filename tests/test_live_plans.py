"""End to end on real servers: provoke a condition on PostgreSQL 18 and 15, take the plan the
server prints (JSON and text), run the advisor's CLI on it, and check what it says.

The saved sample plans pin the rules down in detail; this test makes sure the whole path still
holds against the servers as they are today."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import psycopg
import pytest

from advisor import cli
from advisor.pgserver import PgServer

ROWS = 600_000  # ~35 MB: two workers by the size rule at default settings
OPTIONS = "ANALYZE, VERBOSE, BUFFERS, SETTINGS"


@pytest.fixture(scope="module", params=[18, 15])
def server(request: pytest.FixtureRequest) -> Iterator[PgServer]:
    pg: PgServer = request.getfixturevalue(f"pg{request.param}")
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS facts")
        conn.execute(
            "CREATE TABLE facts AS SELECT g AS id, g % 1000 AS grp, md5(g::text) AS pad "
            f"FROM generate_series(1, {ROWS}) g"
        )
        conn.execute("VACUUM ANALYZE facts")
    yield pg


def explain(pg: PgServer, sql: str, fmt: str, *settings: str, setup: str = "") -> str:
    """The plan as the server prints it; the transaction is rolled back."""
    with psycopg.connect(pg.dsn) as conn:
        for s in settings:
            conn.execute(f"SET LOCAL {s}")
        if setup:
            conn.execute(setup)
        rows = conn.execute(f"EXPLAIN ({OPTIONS}, FORMAT {fmt}) {sql}").fetchall()
        conn.rollback()
    if fmt == "JSON":
        return json.dumps(rows[0][0])
    return "\n".join(r[0] for r in rows)


def findings(plan_text: str) -> dict[str, str]:
    """rule -> severity, as `advisor explain --json` reports them for a pasted plan."""
    out = io.StringIO()
    cli.run(["explain", "--json", "--fail-on", "never"], stdin=io.StringIO(plan_text), out=out)
    return {f["rule"]: f["severity"] for f in json.loads(out.getvalue())["findings"]}


COUNT = "SELECT grp, count(*) FROM facts GROUP BY grp"


@pytest.mark.parametrize("fmt", ["JSON", "TEXT"])
def test_exhausted_pool_is_critical(server: PgServer, fmt: str) -> None:
    plan = explain(
        server, COUNT, fmt, "max_parallel_workers_per_gather = 4", "max_parallel_workers = 0"
    )
    assert findings(plan).get("PQ201") == "critical"


@pytest.mark.parametrize("fmt", ["JSON", "TEXT"])
def test_healthy_parallel_aggregate_is_quiet(server: PgServer, fmt: str) -> None:
    found = findings(explain(server, COUNT, fmt))
    assert not {"PQ001", "PQ201", "PQ203", "PQ116"} & set(found), found


@pytest.mark.parametrize("fmt", ["JSON", "TEXT"])
def test_parallel_off_is_named(server: PgServer, fmt: str) -> None:
    found = findings(explain(server, COUNT, fmt, "max_parallel_workers_per_gather = 0"))
    assert "PQ001" in found


@pytest.mark.parametrize("fmt", ["JSON", "TEXT"])
def test_sort_spilling_in_workers(server: PgServer, fmt: str) -> None:
    sql = "SELECT id, pad FROM facts WHERE grp < 500 ORDER BY pad"
    plan = explain(server, sql, fmt, "work_mem = '64kB'", "parallel_tuple_cost = 0.01")
    assert "Disk" in plan, "the server did not spill: the test provokes nothing"
    assert "PQ203" in findings(plan)


def test_temp_table_scanned_serially(server: PgServer) -> None:
    setup = f"CREATE TEMP TABLE scratch ON COMMIT DROP AS SELECT * FROM facts LIMIT {ROWS // 2}"
    plan = explain(server, "SELECT grp, count(*) FROM scratch GROUP BY grp", "JSON", setup=setup)
    assert "PQ108" in findings(plan)
