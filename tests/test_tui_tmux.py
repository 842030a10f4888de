"""Smoke test of the real `advisor tui` in a real terminal: tmux runs it at 120x40, the test
sends keys and reads the pane. tmux missing: FAILS under CI=true, skips locally with the
install hint (like the PostgreSQL fixtures)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "sample_snapshots" / "misbudgeted_pg18.json"
WAIT_S = 60.0  # an upper bound for a loaded machine; each wait ends as soon as the text shows


class Tmux:
    def __init__(self) -> None:
        self.session = f"advisor-test-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args: str) -> str:
        done = subprocess.run(["tmux", *args], capture_output=True, text=True, check=False)
        return done.stdout

    def start(self, command: str) -> None:
        # Size the window first with a placeholder, then run the app in it: without a client,
        # tmux may keep 80x24 for a moment whatever -x/-y said, and the app would start there.
        self("new-session", "-d", "-s", self.session, "-x", "120", "-y", "40", "cat")
        self("set-option", "-t", self.session, "window-size", "manual")
        self("resize-window", "-t", self.session, "-x", "120", "-y", "40")
        size = self("display", "-p", "-t", self.session, "#{pane_width}x#{pane_height}")
        assert size.strip() == "120x40", size
        self("respawn-pane", "-k", "-t", self.session, command)

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", self.session, *keys)

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", self.session)

    def wait_for(self, *texts: str, gone: bool = False) -> str:
        """The pane once it shows all `texts` (or none of them, with `gone`) in one capture:
        a capture can catch a frame half drawn."""
        deadline = time.monotonic() + WAIT_S
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if all((t in screen) != gone for t in texts):
                return screen
            time.sleep(0.2)
        what = "did not go away" if gone else "did not appear"
        raise AssertionError(f"{texts!r} {what}; the pane shows:\n{screen}")


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        unavailable("tmux is not installed (apt-get install tmux)")
    t = Tmux()
    yield t
    t("kill-session", "-t", t.session)


def test_tui_in_a_real_terminal(tmux: Tmux) -> None:
    command = shlex.join([sys.executable, "-m", "advisor", "tui", str(SNAPSHOT)])
    # COLUMNS/LINES from the test runner would override the pane size.
    tmux.start(
        f"cd {shlex.quote(str(ROOT))} && env -u COLUMNS -u LINES TERM=xterm-256color {command}; "
        'echo "advisor exited with $?"; sleep 600'
    )
    tmux.wait_for("7 findings", "Worker budget", "Connection budget", "1 critical")
    tmux.keys("2")
    tmux.wait_for("Parallel memory overcommit", "PQ006", "s sort")
    tmux.keys("3")
    # The footer shows the tab's own keys.
    tmux.wait_for("x export script", "ALTER SYSTEM SET", "max_worker_processes")
    tmux.keys("?")
    tmux.wait_for("esc closes")
    tmux.keys("Escape")  # alone: Escape and q sent together read as Alt+q
    tmux.wait_for("esc closes", gone=True)
    tmux.keys("q")
    # The shell prints the exit status (tmux's own pane_dead_status is sometimes left empty).
    screen = tmux.wait_for("advisor exited with 0")
    assert "Traceback" not in screen


def test_bare_advisor_in_a_terminal_opens_the_tui_and_shows_errors_there(tmux: Tmux) -> None:
    """No command and stdout a terminal: the TUI on the libpq environment's server; nothing
    listens on port 1, so the error shows in the status line, not as a traceback."""
    command = shlex.join([sys.executable, "-m", "advisor"])
    env = "env -u COLUMNS -u LINES TERM=xterm-256color PGHOST=127.0.0.1 PGPORT=1"
    tmux.start(
        f"cd {shlex.quote(str(ROOT))} && {env} PGCONNECT_TIMEOUT=3 {command}; "
        'echo "advisor exited with $?"; sleep 600'
    )
    screen = tmux.wait_for("Error: ", "(r: retry)", "Overview")
    assert "127.0.0.1" in screen and "Traceback" not in screen
    tmux.keys("q")
    tmux.wait_for("advisor exited with 0")


def test_bare_advisor_into_a_pipe_prints_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "advisor"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0 and "usage: advisor" in done.stdout and "tui" in done.stdout
