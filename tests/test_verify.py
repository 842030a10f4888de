"""`advisor verify` against real mis-tuned servers (PostgreSQL 18 and 15).

The servers have parallel query switched off (max_parallel_workers_per_gather = 0), a raised
parallel_setup_cost (PQ007), a tiny work_mem and a max_worker_processes too small for the pool
(a restart-level recommendation that a session cannot try). No timing is asserted: the plan
change, that numbers are there and consistent, refusals, rollback and the timeout are.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from advisor.pgserver import PgServer
from advisor.verify import StatementResult, VerifyRefused, verify
from tests.conftest import advisor_env, default_sigint, require_server, server_settings
from tests.conftest import run_advisor as advisor

ROOT = Path(__file__).resolve().parent.parent
AGG = "SELECT k, count(*), sum(v) FROM vt GROUP BY k"
SORT = "SELECT id, v FROM vt ORDER BY v DESC, id LIMIT 100000"
MISTUNED = {
    "max_parallel_workers_per_gather": 0,
    "parallel_setup_cost": 50_000,
    "work_mem": "64kB",
    "max_worker_processes": 3,
}


@pytest.fixture(scope="module", params=[18, 15], ids=lambda m: f"pg{m}")
def mistuned(request: pytest.FixtureRequest) -> Iterator[PgServer]:
    major: int = request.param
    pg = PgServer(bin_dir=require_server(major), settings=server_settings(major, **MISTUNED))
    pg.start()
    with pg.connect(autocommit=True) as c:
        c.execute("CREATE EXTENSION pg_stat_statements")
        c.execute(
            "CREATE TABLE vt AS SELECT g AS id, g % 100 AS k, (g::bigint * 7919) % 100003 AS v "
            "FROM generate_series(1, 400000) g"
        )
        c.execute("CREATE SEQUENCE vseq")
        c.execute("CREATE TABLE vlog (i int)")
        c.execute(
            "CREATE FUNCTION vwrite() RETURNS int LANGUAGE sql AS "
            "'INSERT INTO vlog VALUES (1) RETURNING i'"
        )
        c.execute("VACUUM ANALYZE vt")
    yield pg
    pg.stop()


def state(pg: PgServer) -> tuple[object, ...]:
    """What a verify run must leave as it was."""
    with pg.connect(autocommit=True) as c:
        return tuple(
            c.execute(q).fetchone()[0]  # type: ignore[index]
            for q in (
                "SHOW max_parallel_workers_per_gather",
                "SHOW work_mem",
                "SELECT count(*) FROM vlog",
                "SELECT last_value FROM vseq",
                "SELECT count(*) FROM vt",
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'advisor'",
            )
        )


def measured(r: StatementResult, repeat: int) -> None:
    """Numbers present and consistent with each other (never their size)."""
    assert r.mode == "measured", r.reason
    assert r.current is not None and r.recommended is not None
    for side in (r.current, r.recommended):
        assert len(side.runs_ms) == repeat and all(t > 0 for t in side.runs_ms)
        assert side.min_ms is not None and side.max_ms is not None and side.median_ms is not None
        assert side.min_ms <= side.median_ms <= side.max_ms
    assert r.ratio == round(r.current.median_ms / r.recommended.median_ms, 2)  # type: ignore[operator]


def test_gather_appears_spill_goes_and_ratio_is_reported(mistuned: PgServer) -> None:
    before = state(mistuned)
    result = verify(mistuned.dsn, queries=[AGG, SORT], repeat=3)
    tried = {t.name: (t.current, t.value) for t in result.settings}
    assert tried["max_parallel_workers_per_gather"] == ("0", "2")  # 2 cores: the default 2
    assert tried["parallel_setup_cost"] == ("50000", "1000")  # PQ007's reset
    restart = {n.name: n.requires for n in result.not_verified}
    assert restart.get("max_worker_processes") == "restart"

    agg, sort = result.statements
    measured(agg, 3)
    assert agg.current is not None and agg.recommended is not None
    assert agg.current.gathers == 0 and agg.current.workers_planned == 0
    # the 17MB table gets 1 worker by the size rule (knowledge §2.3), below per-gather 2
    assert agg.recommended.gathers >= 1 and agg.recommended.workers_planned == 1
    assert agg.recommended.workers_launched == 1
    assert agg.changes[0] == "Gather appeared: 1 workers planned, 1 launched"

    measured(sort, 3)
    assert sort.current is not None and sort.recommended is not None
    assert sort.current.spills and not sort.recommended.spills
    # work_mem 64kB set in postgresql.conf: the memory budget is far more than 4x it, so the
    # server-wide advice raises it and already holds the spill (no per-statement extra)
    assert tried["work_mem"][0] == "64kB" and tried["work_mem"][1].endswith("MB")
    assert sort.extra == []
    assert any(c.startswith("spills gone") for c in sort.changes), sort.changes
    assert state(mistuned) == before


def test_cli_text_json_markdown(mistuned: PgServer) -> None:
    proc = advisor("verify", "--dsn", mistuned.dsn, "--query", AGG, "--repeat", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    (stmt,) = doc["statements"]
    assert stmt["mode"] == "measured" and stmt["ratio"] > 0
    assert len(stmt["current"]["runs_ms"]) == 2 and stmt["recommended"]["median_ms"] > 0
    assert doc["server_version"].startswith(str(mistuned.major))

    text = advisor("verify", "--dsn", mistuned.dsn, "--query", AGG, "--repeat", "1")
    assert text.returncode == 0, text.stderr
    assert "max_parallel_workers_per_gather: 0 -> 2" in text.stdout
    assert "needs restart: not verified" in text.stdout
    assert "Gather appeared" in text.stdout and "ratio:" in text.stdout

    md = advisor(
        "verify", "--dsn", mistuned.dsn, "--query", AGG, "--repeat", "1", "--format", "markdown"
    )
    assert md.returncode == 0, md.stderr
    assert "| # | statement | current | advised | ratio | plan change |" in md.stdout


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO vlog VALUES (1)",
        "UPDATE vt SET v = 0",
        "DELETE FROM vt",
        "SELECT 1; SELECT 2",
        "SELECT * FROM vt FOR UPDATE",
        "WITH d AS (DELETE FROM vt RETURNING *) SELECT count(*) FROM d",
        "SELECT * INTO vcopy FROM vt",
        "SELEC oops",
    ],
)
def test_refuses_anything_but_a_plain_select(mistuned: PgServer, sql: str) -> None:
    before = state(mistuned)
    proc = advisor("verify", "--dsn", mistuned.dsn, "--query", sql)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert state(mistuned) == before


@pytest.mark.parametrize("sql", ["SELECT nextval('vseq')", "SELECT vwrite() FROM vt LIMIT 1"])
def test_a_select_that_writes_is_stopped_by_the_read_only_session(
    mistuned: PgServer, sql: str
) -> None:
    before = state(mistuned)
    proc = advisor("verify", "--dsn", mistuned.dsn, "--query", sql)
    assert proc.returncode == 2, proc.stderr
    assert "read-only transaction" in proc.stderr and "Traceback" not in proc.stderr
    assert state(mistuned) == before


def test_parameters(mistuned: PgServer) -> None:
    sql = "SELECT count(*), sum(v) FROM vt WHERE k = $1 AND v > $2"
    result = verify(mistuned.dsn, queries=[sql], params=["7", "10"], repeat=2)
    (r,) = result.statements
    measured(r, 2)
    assert r.recommended is not None and r.recommended.gathers >= 1

    with pytest.raises(VerifyRefused, match="2 \\$n placeholders; 1 --param"):
        verify(mistuned.dsn, queries=[sql], params=["7"])

    (shape,) = verify(mistuned.dsn, queries=[sql]).statements
    if mistuned.major >= 16:  # EXPLAIN (GENERIC_PLAN): plan shape only, nothing timed
        assert shape.mode == "plan_only" and shape.ratio is None
        assert shape.current is not None and not shape.current.runs_ms
        assert shape.changes[0].startswith("Gather appeared")
    else:
        assert shape.mode == "skipped" and "--param" in shape.reason


def test_top_statements_from_pg_stat_statements(mistuned: PgServer) -> None:
    with mistuned.connect(autocommit=True) as c:
        c.execute("SELECT pg_stat_statements_reset()")
        for k in range(3):
            c.execute("SELECT count(*), max(v) FROM vt WHERE k = %s", (k,))
        c.execute("INSERT INTO vlog VALUES (2)")
    result = verify(mistuned.dsn, top=5, repeat=1)
    texts = [s.query for s in result.statements]
    assert any("FROM vt WHERE k = $1" in t for t in texts), texts
    assert not any(t.upper().startswith("INSERT") for t in texts)
    # the advisor's own collector queries (catalogs, pg_stat_*) are in pg_stat_statements too
    assert not any("pg_settings" in t or "pg_stat_activity" in t for t in texts), texts
    assert all(s.queryid is not None for s in result.statements)


def test_statement_timeout_is_honoured(mistuned: PgServer) -> None:
    proc = advisor(
        "verify", "--dsn", mistuned.dsn, "--query", "SELECT pg_sleep(5)",
        "--statement-timeout", "200",
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert "statement_timeout (200 ms)" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_ctrl_c_cancels_the_server_query(mistuned: PgServer) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "advisor", "verify", "--dsn", mistuned.dsn, "--query",
         "SELECT pg_sleep(60)"],
        cwd=ROOT, env=advisor_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_sigint,
    )  # fmt: skip
    query = (
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()"
    )
    with mistuned.connect(autocommit=True) as c:
        deadline = time.monotonic() + 30
        while c.execute(query).fetchone()[0] == 0:  # type: ignore[index]
            assert time.monotonic() < deadline, "the statement never reached the server"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
        deadline = time.monotonic() + 5  # the backend may take a moment to go away
        while c.execute(query).fetchone()[0] != 0:  # type: ignore[index]
            assert time.monotonic() < deadline, "the server still runs the statement"
            time.sleep(0.1)
