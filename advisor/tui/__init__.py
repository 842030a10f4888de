"""The Textual TUI: `advisor`, `advisor tui [SNAPSHOT] [--dsn DSN]`, and `advisor demo`.

    from advisor.tui import run_tui
    run_tui(snapshot="db1.json")          # a saved `advisor collect` snapshot
    run_tui(dsn="host=db1 dbname=app")    # collects live, in a thread worker

Importing this package is cheap: textual loads only when `run_tui` runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from advisor.snapshot import CapturedPlan


def run_tui(
    *,
    snapshot: str | None = None,
    dsn: str | None = None,
    title: str | None = None,
    plans: Sequence[CapturedPlan] = (),
) -> int:
    """Open the app on a snapshot file or a live server (the libpq environment when neither is
    given) and return the exit code once the user quits. Errors (unreadable snapshot, server
    down) show inside the app; `r` retries. `plans`: EXPLAIN documents captured beforehand
    (`advisor demo`'s workload) that join every live collection."""
    if snapshot is not None and dsn is not None:
        raise ValueError("give a snapshot or a dsn, not both")
    from advisor.tui.app import AdvisorApp
    from advisor.tui.source import live_source, snapshot_source

    # The collector reports its steps from the worker thread; the status bar shows them.
    hear: list[Callable[[str], None]] = []

    def progress(step: str) -> None:
        for fn in hear:
            fn(step)

    if snapshot is not None:
        source = snapshot_source(snapshot)
    else:
        source = live_source(dsn, plans=plans, progress=progress)
    app = AdvisorApp(source, live=snapshot is None, title=title)
    hear.append(
        lambda step: app.call_from_thread(app.set_status, f"Collecting: {step} ...", busy=True)
    )
    app.run()
    return app.return_code or 0
