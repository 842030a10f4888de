"""`advisor demo` for real: a PostgreSQL 18 server from the wheel, the planted workload, the
report, and nothing left behind afterwards, also when the demo is interrupted."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from advisor.demo import PLANTED
from tests.conftest import default_sigint

ROOT = Path(__file__).resolve().parent.parent

# Written out again on purpose: the demo's own list must not be able to shrink unnoticed.
EXPECTED = {
    "PQ001",  # role analyst: max_parallel_workers_per_gather = 0
    "PQ002",  # per gather 4 above the pool of 2
    "PQ201",  # a Gather planned 3 workers and got 2
    "PQ202",  # pg_stat_database: fewer workers launched than planned
    "PQ101",  # fiscal_quarter() left PARALLEL UNSAFE
    "PQ108",  # the ETL job's temporary staging table
    "PQ203",  # a sort spilled in every worker
    "PQ102",  # nextval() in a report
    "PQ117",  # an export through a cursor
    "PQ114",  # sales_archive: parallel_workers = 0
    "PQ118",  # customer_total(): a row-by-row FOR loop
    "CN003",  # 12 idle connections held open
    "CN004",  # 2 transactions left open
}


def _env() -> dict[str, str]:
    env = {**os.environ, "NO_COLOR": "1"}
    for var in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE", "PGPASSWORD"):
        env.pop(var, None)
    return env


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "advisor", "demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=ROOT,
        preexec_fn=default_sigint,
    )


def _server_of(stderr: str) -> tuple[Path, int]:
    """The demo server's temp dir and port, from the line the demo prints for psql."""
    m = re.search(r" in (/\S+) \(removed on exit\); connect meanwhile with\n.*port=(\d+) ", stderr)
    assert m, stderr
    return Path(m.group(1)), int(m.group(2))


def _server_pids(tmpdir: Path) -> set[int]:
    """The postmaster (from postmaster.pid) and all its children."""
    pid = int((tmpdir / "data" / "postmaster.pid").read_text().splitlines()[0])
    return {pid} | {c.pid for c in psutil.Process(pid).children(recursive=True)}


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _assert_gone(tmpdir: Path, port: int, pids: Collection[int] = ()) -> None:
    assert not tmpdir.exists(), f"{tmpdir} left behind"
    assert not [p for p in pids if _alive(p)], "server processes left running"
    leftover = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if str(tmpdir) in " ".join(p.info["cmdline"] or [])
    ]
    assert not leftover, f"processes still using {tmpdir}: {leftover}"
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still listening"


def _reap(tmpdir: Path | None, pids: Collection[int]) -> None:
    """After a failed test: do not leave its server behind for the next one."""
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
    if tmpdir is not None:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _watch(proc: subprocess.Popen[str], when: str) -> tuple[str, Path, int, set[int]]:
    """Read the demo's stderr up to the progress line holding `when`: what it printed, and its
    server's temp dir, port and processes at that moment."""
    assert proc.stderr is not None
    seen = ""
    for line in proc.stderr:
        seen += line
        if when in line:
            tmpdir, port = _server_of(seen)
            return seen, tmpdir, port, _server_pids(tmpdir)
    raise AssertionError(f"no {when!r} in:\n{seen}")


def test_demo_report_names_every_planted_problem(pg_bins: Callable[[int], object]) -> None:
    pg_bins(18)
    assert set(PLANTED) == EXPECTED
    proc = _start("--no-tui", "--json")
    tmpdir: Path | None = None
    pids: set[int] = set()
    try:
        seen, tmpdir, port, pids = _watch(proc, "collecting")
        out, rest = proc.communicate(timeout=180)
        err = seen + rest
        assert proc.returncode == 1, err  # warnings found: exit 1, as `advisor report`
        assert "Traceback" not in err
        _assert_gone(tmpdir, port, pids)
    finally:
        if proc.poll() is None:
            proc.kill()
        _reap(tmpdir, [p for p in pids if _alive(p)])
    report = json.loads(out)
    fired = {f["rule"] for f in report["findings"]}
    assert fired >= EXPECTED, f"missing {sorted(EXPECTED - fired)}; fired {sorted(fired)}"
    assert report["target"]["mode"] == "live"
    assert report["target"]["server_version_num"] >= 180000
    # The plans are the workload's own EXPLAIN ANALYZE: the pool cut 3 planned workers to 2.
    assert any(p["workers_planned"] == 3 and p["workers_launched"] == 2 for p in report["plans"])
    pq001 = next(f for f in report["findings"] if f["rule"] == "PQ001")
    assert "sales" in pq001["message"]


@pytest.mark.parametrize(
    ("sig", "when", "code"),
    [
        (signal.SIGINT, "running the workload: dashboard", 130),  # mid-query
        (signal.SIGTERM, "collecting", 143),  # connections held, dashboard thread running
    ],
)
def test_demo_cleans_up_when_interrupted(
    pg_bins: Callable[[int], object], sig: signal.Signals, when: str, code: int
) -> None:
    pg_bins(18)
    proc = _start("--no-tui")
    pids: set[int] = set()
    tmpdir: Path | None = None
    try:
        seen, tmpdir, port, pids = _watch(proc, when)
        with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres") as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity").fetchone()
        assert row is not None and row[0] > 0
        proc.send_signal(sig)
        rest_out, rest_err = proc.communicate(timeout=60)
        err = seen + rest_err
        assert proc.returncode == code, err
        assert "Traceback" not in err
        assert rest_out == ""  # interrupted before the report
        _assert_gone(tmpdir, port, pids)
    finally:
        if proc.poll() is None:
            proc.kill()
        _reap(tmpdir, [p for p in pids if _alive(p)])


def test_demo_keeps_the_server_and_connections_while_the_tui_runs(
    pg_bins: Callable[[int], object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TUI is a stand-in here (this test is about the demo, not the app): while it runs,
    the live server holds the demo's connections and a refresh collects from it; when it
    returns, everything is gone."""
    pg_bins(18)
    from advisor import cli
    from advisor.tui.source import live_source

    seen: dict[str, Any] = {}

    def run_tui(*, dsn: str, title: str, plans: Any) -> int:
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(
                "SELECT state, count(*) FROM pg_stat_activity "
                "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() GROUP BY 1"
            ).fetchall()
            row = conn.execute(
                "SELECT current_setting('data_directory'), current_setting('port')::int"
            ).fetchone()
            assert row is not None
            seen["server"] = (Path(row[0]).parent, row[1])
        seen["states"] = dict(rows)
        # What the real TUI's refresh does: collect live, with the workload's captured plans.
        seen["refresh"] = live_source(dsn, plans=plans)().report
        seen["title"] = title
        return 0

    monkeypatch.setitem(sys.modules, "advisor.tui", type(sys)("advisor.tui"))
    monkeypatch.setattr(sys.modules["advisor.tui"], "run_tui", run_tui, raising=False)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    assert cli.run(["demo"], out=out) == 0
    assert out.getvalue() == ""  # the TUI shows the findings, nothing is printed
    assert seen["title"] == "advisor demo"
    states = seen["states"]
    assert states.get("idle", 0) >= 12 and states.get("idle in transaction") == 2, states
    # Plan-based planted problems reach the TUI too, not only the ones seen in the catalogs.
    assert {"PQ001", "PQ101", "PQ108", "PQ201", "PQ203", "CN003"} <= {
        f.rule for f in seen["refresh"].findings
    }
    tmpdir, port = seen["server"]
    _assert_gone(tmpdir, port)


def test_demo_without_postgres_18_is_one_line_exit_3(tmp_path: Path) -> None:
    env = {**_env(), "ADVISOR_PG_BIN_18": str(tmp_path / "nowhere")}
    proc = subprocess.run(
        [sys.executable, "-m", "advisor", "demo", "--no-tui"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("advisor: demo: PostgreSQL 18 not found"), proc.stderr
    assert proc.stdout == ""
