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
from conftest import in_ci

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
        # remain-on-exit keeps the pane after the app quits, so its exit status can be read.
        self("set-option", "-t", self.session, "remain-on-exit", "on")
        self("respawn-pane", "-k", "-t", self.session, command)

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", self.session, *keys)

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", self.session)

    def wait_for(self, text: str, *, gone: bool = False) -> str:
        deadline = time.monotonic() + WAIT_S
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if (text in screen) != gone:
                return screen
            time.sleep(0.2)
        what = "did not go away" if gone else "did not appear"
        raise AssertionError(f"{text!r} {what}; the pane shows:\n{screen}")

    def exit_status(self) -> str:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            out = self(
                "display-message", "-p", "-t", self.session, "#{pane_dead} #{pane_dead_status}"
            )
            dead, _, status = out.strip().partition(" ")
            if dead == "1":
                return status
            time.sleep(0.2)
        raise AssertionError(f"the app did not exit; the pane shows:\n{self.screen()}")


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        message = "tmux is not installed (apt-get install tmux)"
        if in_ci():
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    t = Tmux()
    yield t
    t("kill-session", "-t", t.session)


def test_tui_in_a_real_terminal(tmux: Tmux) -> None:
    command = shlex.join([sys.executable, "-m", "advisor", "tui", str(SNAPSHOT)])
    # COLUMNS/LINES from the test runner would override the pane size.
    tmux.start(
        f"cd {shlex.quote(str(ROOT))} && env -u COLUMNS -u LINES TERM=xterm-256color {command}"
    )
    tmux.wait_for("7 findings")
    screen = tmux.wait_for("Connection budget")
    assert "Worker budget" in screen and "1 critical" in screen
    tmux.keys("2")
    screen = tmux.wait_for("Parallel memory overcommit")
    assert "PQ006" in screen and "critical" in screen
    tmux.keys("3")
    screen = tmux.wait_for("ALTER SYSTEM SET max_worker_processes")
    tmux.keys("?")
    tmux.wait_for("esc closes")
    tmux.keys("Escape")  # alone: Escape and q sent together read as Alt+q
    tmux.wait_for("esc closes", gone=True)
    tmux.keys("q")
    assert tmux.exit_status() == "0"
    assert "Traceback" not in tmux.screen()
