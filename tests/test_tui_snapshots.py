"""SVG snapshots of every tab at 120x40 on saved real snapshots (sample_snapshots/), each
chosen so its tab has content. Deterministic: the snapshots carry their own collection time,
the app shows no clock, and text cursors do not blink.

After an intended UI change: `uv run pytest tests/test_tui_snapshots.py --snapshot-update`,
look at the SVGs, and copy the README's ones to docs/screenshots/ (see README, TUI)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest
from pytest_textual_snapshot import SVGImageExtension
from textual import events
from textual.pilot import Pilot
from textual.widgets import TextArea
from textual.worker import WorkerFailed

from advisor.tui.app import AdvisorApp
from advisor.tui.source import snapshot_source

ROOT = Path(__file__).resolve().parent.parent
SNAPS = ROOT / "sample_snapshots"
PLAN = ROOT / "sample_plans" / "pg18" / "pq201_fires_pool_exhausted.txt"
SIZE = (120, 40)

Compare = Callable[..., bool]

# pytest-textual-snapshot 1.0 names its file extension the way syrupy 4 did; syrupy 7 reads
# `file_extension` (its 1.1 would pin pytest < 9 instead).
SVGImageExtension.file_extension = "svg"


async def settle(pilot: Pilot[int]) -> None:
    """Wait until the screen stops changing (focus moves, the footer redraws its keys): on a
    loaded machine one refresh is not always enough."""
    previous = ""
    for _ in range(100):
        await pilot.pause(0.05)
        current = pilot.app.export_screenshot()
        if current == previous:
            return
        previous = current


def ready(*keys: str, paste: str | None = None) -> Callable[[Pilot[int]], object]:
    async def run_before(pilot: Pilot[int]) -> None:
        app = pilot.app
        app.animation_level = "none"  # the tab underline slides otherwise
        with contextlib.suppress(WorkerFailed):
            await app.workers.wait_for_complete()
        for area in app.query(TextArea):
            area.cursor_blink = False
        await settle(pilot)
        for key in keys:  # one at a time: a key may move focus the next one relies on
            await pilot.press(key)
            await settle(pilot)
        if paste is not None:
            app.post_message(events.Paste(paste))
            await pilot.pause(0.3)
        with contextlib.suppress(WorkerFailed):
            await app.workers.wait_for_complete()
        await pilot.wait_for_scheduled_animations()
        await settle(pilot)

    return run_before


TABS = {
    "overview": ("busy_pg18.json", ()),
    "findings": ("misbudgeted_pg18.json", ("2", "down")),
    "recommendations": ("misbudgeted_pg18.json", ("3",)),
    "plans": ("underprovisioned_pg18.json", ("4", "down", "down", "down", "down")),
    "statements": ("workload_pg15.json", ("5", "down")),
    "pooling": ("busy_pg18.json", ("6",)),  # no pooler data: the server's CN findings
    "pooling-pgbouncer": ("pgbouncer_busy_pg18.json", ("6",)),
    "pooling-pgpool": ("pgpool_saturated_pg15.json", ("6",)),
    "help": ("misbudgeted_pg18.json", ("question_mark",)),
}


@pytest.mark.parametrize("tab", TABS)
def test_tab(snap_compare: Compare, tab: str) -> None:
    snap_file, keys = TABS[tab]
    app = AdvisorApp(snapshot_source(str(SNAPS / snap_file)))
    assert snap_compare(app, terminal_size=SIZE, run_before=ready(*keys))


def test_paste(snap_compare: Compare) -> None:
    app = AdvisorApp(snapshot_source(str(SNAPS / "misbudgeted_pg18.json")))
    assert snap_compare(app, terminal_size=SIZE, run_before=ready("7", paste=PLAN.read_text()))


def test_error(snap_compare: Compare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a relative name keeps the message the same on every run
    Path("broken.json").write_text("{}")
    app = AdvisorApp(snapshot_source("broken.json"))
    assert snap_compare(app, terminal_size=(120, 16), run_before=ready())
