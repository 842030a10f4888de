"""The Textual TUI: `advisor`, `advisor tui [SNAPSHOT] [--dsn DSN]`, and `advisor demo`.

    from advisor.tui import run_tui
    run_tui(snapshot="db1.json")          # a saved `advisor collect` snapshot
    run_tui(dsn="host=db1 dbname=app")    # collects live, in a thread worker

Importing this package is cheap: textual loads only when `run_tui` runs.
"""

from __future__ import annotations


def run_tui(
    *, snapshot: str | None = None, dsn: str | None = None, title: str | None = None
) -> int:
    """Open the app on a snapshot file or a live server (the libpq environment when neither is
    given) and return the exit code once the user quits. Errors (unreadable snapshot, server
    down) show inside the app; `r` retries."""
    if snapshot is not None and dsn is not None:
        raise ValueError("give a snapshot or a dsn, not both")
    from advisor.tui.app import AdvisorApp
    from advisor.tui.source import live_source, snapshot_source

    source = snapshot_source(snapshot) if snapshot is not None else live_source(dsn)
    app = AdvisorApp(source, live=snapshot is None, title=title)
    app.run()
    return app.return_code or 0
