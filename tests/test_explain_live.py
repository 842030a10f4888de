"""`advisor explain --query` and `advisor collect --explain-top` against real PostgreSQL 18 and 15.

Each major gets a server of its own for this module (roles and pg_stat_statements are changed).
Exit codes: a refused or rejected statement is 2; a statement_timeout is 3 (the server run
failed, like a failed collection), with one line on stderr either way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from advisor import cli
from advisor.collect import ADVISOR_MARKER
from advisor.pgserver import BinDir, PgServer
from tests.conftest import default_sigint

ROOT = Path(__file__).resolve().parent.parent
ROWS = 200_000
SECRET = "Sup3rS3cretPw"
SERIAL_ROLE = "adv_serial"


@pytest.fixture
def advisor(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """The CLI's entry point in-process (a subprocess costs 0.5 s): exit code, stdout, stderr."""

    def run(*args: str) -> Result:
        try:
            code = cli.main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return run


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module", params=[18, 15])
def pg(request: pytest.FixtureRequest, pg_bins: Callable[[int], BinDir]) -> Iterator[PgServer]:
    settings = {"shared_preload_libraries": "pg_stat_statements"}
    with PgServer(bin_dir=pg_bins(request.param), settings=settings) as server:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
            conn.execute(
                "CREATE TABLE big AS SELECT g AS id, g % 1000 AS grp, md5(g::text) AS pad "
                f"FROM generate_series(1, {ROWS}) g"
            )
            conn.execute("VACUUM ANALYZE big")
            conn.execute("CREATE TABLE small (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO small SELECT g, 'x' FROM generate_series(1, 10) g")
            conn.execute(f"CREATE ROLE {SERIAL_ROLE} LOGIN")
            conn.execute(f"ALTER ROLE {SERIAL_ROLE} SET max_parallel_workers_per_gather = 0")
            conn.execute(f"GRANT SELECT ON big TO {SERIAL_ROLE}")
        yield server


def advisor_backends(pg: PgServer, wait_s: float = 5.0) -> int:
    """advisor sessions still in pg_stat_activity (waits briefly for exiting backends)."""
    deadline = time.monotonic() + wait_s
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'advisor'"
            ).fetchone()
            assert row is not None
            if row[0] == 0 or time.monotonic() > deadline:
                return int(row[0])
            time.sleep(0.1)


def small_rows(pg: PgServer) -> list[tuple[int, str]]:
    with psycopg.connect(pg.dsn) as conn:
        return [(r[0], r[1]) for r in conn.execute("SELECT id, v FROM small ORDER BY id")]


def one_line_error(proc: Result) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


WRITES = [
    "INSERT INTO small VALUES (100, 'new')",
    "UPDATE small SET v = 'changed'",
    "DELETE FROM small",
    "WITH d AS (DELETE FROM small RETURNING *) SELECT count(*) FROM d",
    "SELECT * FROM small FOR UPDATE",
]


@pytest.mark.parametrize("sql", WRITES)
def test_analyze_of_a_write_needs_allow_writes(
    advisor: Callable[..., Result], pg: PgServer, sql: str
) -> None:
    proc = advisor("explain", "--dsn", pg.dsn, "--query", sql, "--analyze")
    assert proc.returncode == 2, proc.stderr
    assert "--allow-writes" in one_line_error(proc)
    # EXPLAIN alone executes nothing, so the same statement may be explained.
    plain = advisor("explain", "--dsn", pg.dsn, "--query", sql, "--json", "--fail-on", "never")
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["plans"][0]["execution_ms"] is None


def test_allow_writes_runs_and_rolls_back(advisor: Callable[..., Result], pg: PgServer) -> None:
    before = small_rows(pg)
    for sql in WRITES[:3]:
        proc = advisor(
            "explain",
            "--dsn",
            pg.dsn,
            "--query",
            sql,
            "--analyze",
            "--allow-writes",
            "--json",
            "--fail-on",
            "never",
        )
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["plans"][0]["execution_ms"] is not None  # it ran
    assert small_rows(pg) == before
    assert advisor_backends(pg) == 0


def test_read_only_session_stops_a_write_hidden_in_a_function(
    advisor: Callable[..., Result], pg: PgServer
) -> None:
    """The parser cannot see into functions; the read-only transaction still refuses."""
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE OR REPLACE FUNCTION sneaky() RETURNS int LANGUAGE sql VOLATILE "
            "AS $$ DELETE FROM small RETURNING 1 $$"
        )
    before = small_rows(pg)
    proc = advisor("explain", "--dsn", pg.dsn, "--query", "SELECT sneaky()", "--analyze")
    assert proc.returncode == 2
    assert "read-only transaction" in one_line_error(proc)
    assert small_rows(pg) == before


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("SELECT 1; DELETE FROM small", "2 statements"),
        ("SELEC 1", "does not parse"),
        ("DROP TABLE small", "EXPLAIN cannot take"),
        ("SELECT * FROM no_such_table", "does not exist"),
    ],
)
def test_bad_sql_is_refused_in_one_line(
    advisor: Callable[..., Result], pg: PgServer, sql: str, says: str
) -> None:
    proc = advisor("explain", "--dsn", pg.dsn, "--query", sql)
    assert proc.returncode == 2
    assert says in one_line_error(proc)
    assert [r[0] for r in small_rows(pg)] == list(range(1, 11))


def test_statement_timeout_is_exit_3_and_leaves_nothing(
    advisor: Callable[..., Result], pg: PgServer
) -> None:
    dsn = f"{pg.dsn} password={SECRET}"
    start = time.monotonic()
    proc = advisor(
        "explain", "--dsn", dsn, "--statement-timeout", "200", "--analyze",
        "--query", "SELECT pg_sleep(10)",
    )  # fmt: skip
    assert time.monotonic() - start < 8
    assert proc.returncode == 3
    line = one_line_error(proc)
    assert "statement_timeout (200 ms)" in line
    assert SECRET not in proc.stdout + proc.stderr
    assert advisor_backends(pg) == 0


def test_ctrl_c_cancels_the_server_query(pg: PgServer) -> None:
    env = {**os.environ, "NO_COLOR": "1"}
    cmd = [sys.executable, "-m", "advisor", "explain", "--dsn", pg.dsn, "--analyze"]
    proc = subprocess.Popen(
        [*cmd, "--query", "SELECT pg_sleep(60)"],
        cwd=ROOT,
        env=env,
        preexec_fn=default_sigint,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'advisor' "
                    "AND state = 'active' AND query LIKE '%pg_sleep%'"
                ).fetchone()
                if row and row[0]:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the advisor never started the statement")
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert advisor_backends(pg) == 0


def test_query_finds_pq001_for_a_serial_role(advisor: Callable[..., Result], pg: PgServer) -> None:
    dsn = pg.dsn.replace("user=postgres", f"user={SERIAL_ROLE}") + f" password={SECRET}"
    proc = advisor(
        "explain", "--dsn", dsn, "--query", "SELECT grp, count(*) FROM big GROUP BY grp", "--json"
    )
    assert proc.returncode == 1, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["target"]["mode"] == "live"
    assert report["plans"][0]["source"] == "query plan 1"
    assert "PQ001" in {f["rule"] for f in report["findings"]}
    assert advisor_backends(pg) == 0


def test_pasted_plan_with_live_facts(
    advisor: Callable[..., Result], pg: PgServer, tmp_path: Path
) -> None:
    with psycopg.connect(pg.dsn) as conn:
        row = conn.execute("EXPLAIN (FORMAT JSON) SELECT count(*) FROM big").fetchone()
    assert row is not None
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(row[0]))
    proc = advisor("explain", str(plan), "--dsn", pg.dsn, "--json", "--fail-on", "never")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["target"]["mode"] == "live" and len(report["plans"]) == 1


def test_collect_explain_top(advisor: Callable[..., Result], pg: PgServer, tmp_path: Path) -> None:
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        for i in range(15):  # server-side binding: pg_stat_statements keeps "grp = $1"
            conn.execute("SELECT count(*) FROM big WHERE grp = %s", (i,))
    snap_path = tmp_path / "snap.json"
    proc = advisor("collect", "--dsn", pg.dsn, "-o", str(snap_path), "--explain-top", "5")
    assert proc.returncode == 0, proc.stderr
    snap = json.loads(snap_path.read_text())
    ours = [p for p in snap["plans"] if "FROM big WHERE grp = $1" in p["query"]]
    skips = [s for s in snap["skipped"] if s["what"].startswith("EXPLAIN of statement")]
    # 16+: EXPLAIN (GENERIC_PLAN); before: PREPARE + EXPLAIN EXECUTE under force_generic_plan
    assert ours and ours[0]["generic"], (snap["plans"], skips)
    assert ours[0]["document"]["Plan"]["Node Type"] in ("Aggregate", "Finalize Aggregate")
    if pg.major < 16:
        assert ours[0]["document"]["Settings"]["plan_cache_mode"] == "force_generic_plan"
    source = f"statement {ours[0]['queryid']} plan 1"
    report = advisor("report", str(snap_path), "--json", "--fail-on", "never")
    assert report.returncode == 0, report.stderr
    assert source in [p["source"] for p in json.loads(report.stdout)["plans"]]
    # The advisor's own statements are neither listed nor explained.
    mine = [s["query"] for s in snap["statements"] if ADVISOR_MARKER in (s["query"] or "")]
    assert not mine, mine
    assert not any(ADVISOR_MARKER in p["query"] for p in snap["plans"])
    assert all(p["document"].get("Execution Time") is None for p in snap["plans"])
    assert advisor_backends(pg) == 0
