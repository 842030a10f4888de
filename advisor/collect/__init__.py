"""The live collector: a read-only session that turns a server into a `Snapshot` of facts.

    from advisor.collect import collect, CollectError
    snap = collect("host=db1 dbname=app", sample_seconds=10)   # CollectError -> exit code 3
    snap.save("db1.json")

Importing this package is cheap: psycopg and pydantic load only when `collect()` runs, so the
CLI can import `CollectError` and `parse_size` without slowing the offline commands.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from advisor.collect.hardware import parse_size

if TYPE_CHECKING:
    from advisor.snapshot import Snapshot

__all__ = [
    "ADVISOR_MARKER",
    "CollectError",
    "collect",
    "is_advisor_text",
    "mark",
    "parse_size",
]

# Every statement the advisor sends carries this comment right after its first keyword:
# pg_stat_statements cannot tell application_name, but keeps comments inside a statement's text
# (PostgreSQL 18 drops leading ones), so this is how the advisor's own rows are told apart and
# left out of the rules, the statement list and `collect --explain-top`.
ADVISOR_MARKER = "/* pg-parallel-advisor */"
_FIRST_WORD = re.compile(r"^(?:\s*--[^\n]*\n)*\s*([A-Za-z]+)")

DEFAULT_STATEMENT_TIMEOUT_MS = 30_000
DEFAULT_LOCK_TIMEOUT_MS = 2_000
DEFAULT_STATEMENTS_LIMIT = 500


class CollectError(RuntimeError):
    """Cannot connect, or collection failed as a whole (exit code 3). The message is one
    sentence and never holds a password. Missing privileges or extensions are not errors:
    they end up in `Snapshot.skipped`."""


def mark(sql: str) -> str:
    """`sql` with ADVISOR_MARKER after its first keyword: 'SELECT /* pg-parallel-advisor */ 1'.
    Leading `--` comment lines (the SQL files' headers) are dropped, so the marker is always
    near the start of what pg_stat_statements keeps, whichever version strips what."""
    return _FIRST_WORD.sub(lambda m: f"{m.group(1)} {ADVISOR_MARKER}", sql, count=1)


def is_advisor_text(text: str | None) -> bool:
    """A pg_stat_statements text the advisor itself sent (see ADVISOR_MARKER)."""
    return text is not None and ADVISOR_MARKER in text[:300]


def collect(
    dsn: str | None,
    *,
    sample_seconds: float = 0,
    cores: float | None = None,
    memory: int | None = None,
    statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
    statements_limit: int = DEFAULT_STATEMENTS_LIMIT,
    progress: Callable[[str], None] | None = None,
) -> Snapshot:
    """Read settings, overrides, activity, database and statement statistics and background
    workers in one read-only transaction (rolled back), then sample pg_stat_activity every
    0.5 s for `sample_seconds`. `cores`/`memory` (bytes) override what the machine says.
    Empty/None `dsn` = libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE, PGSERVICE).
    `progress` hears each step's name (connecting, settings, statements, catalog, ...)."""
    from advisor.collect.live import collect_live

    return collect_live(
        dsn,
        sample_seconds=sample_seconds,
        cores=cores,
        memory=memory,
        statement_timeout_ms=statement_timeout_ms,
        lock_timeout_ms=lock_timeout_ms,
        statements_limit=statements_limit,
        progress=progress or (lambda _step: None),
    )
