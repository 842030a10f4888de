"""The progress line of `advisor collect` / `advisor report --dsn`: on stderr only when it is a
terminal (a real pseudo-terminal here), never with --quiet or when redirected, dim unless
NO_COLOR, cleared before the output; and the collector names its steps in order."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from advisor.collect import collect
from advisor.collect.progress import Progress
from advisor.pgserver import PgServer

ROOT = Path(__file__).resolve().parent.parent


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    tty = _Tty()
    p = Progress(tty)
    p("settings")
    p("catalog")
    p.done()
    out = tty.getvalue()
    assert "\x1b[2madvisor: settings ...\x1b[0m" in out and out.endswith("\r\x1b[2K")
    assert "\n" not in out  # one line, overwritten

    monkeypatch.setenv("NO_COLOR", "1")
    plain = _Tty()
    Progress(plain)("statements")
    assert plain.getvalue() == "\r\x1b[2Kadvisor: statements ..."

    for stream, quiet in ((io.StringIO(), False), (_Tty(), True)):
        q = Progress(stream, quiet=quiet)
        q("settings")
        q.done()
        assert stream.getvalue() == ""


@pytest.mark.server
def test_collector_names_its_steps(pg18: PgServer) -> None:
    steps: list[str] = []
    collect(pg18.dsn, sample_seconds=1, progress=steps.append)
    assert steps[:5] == ["connecting", "settings", "activity", "statements", "catalog"]
    assert steps[5:] == ["activity sample 0.5/1 s", "activity sample 1/1 s"]


def _run_on_a_pty(*args: str, quiet: bool = False) -> str:
    """`advisor ARGS` with stderr on a pseudo-terminal; what it wrote there."""
    master, slave = pty.openpty()
    env = {**os.environ, "NO_COLOR": "1"}
    cmd = [sys.executable, "-m", "advisor", *args, *(["--quiet"] if quiet else [])]
    try:
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=slave, env=env, cwd=ROOT, timeout=120
        )
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
    assert proc.returncode in (0, 1), proc
    return b"".join(chunks).decode()


@pytest.mark.server
def test_cli_progress_on_a_terminal_and_quiet(pg18: PgServer, tmp_path: Path) -> None:
    with pg18.connect(autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        c.execute("SELECT count(*) FROM pg_class")
    snap = tmp_path / "s.json"
    shown = _run_on_a_pty("collect", "--dsn", pg18.dsn, "-o", str(snap), "--explain-top", "1")
    for step in ("connecting", "settings", "statements", "catalog", "explain 1/1"):
        assert f"advisor: {step} ..." in shown, shown
    assert "\x1b[2m" not in shown  # NO_COLOR
    assert "Wrote" in shown
    quiet = _run_on_a_pty("report", "--dsn", pg18.dsn, "--fail-on", "never", quiet=True)
    assert quiet == ""
    piped = subprocess.run(
        [sys.executable, "-m", "advisor", "report", "--dsn", pg18.dsn, "--fail-on", "never"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert piped.returncode == 0 and "advisor:" not in piped.stderr, piped.stderr
