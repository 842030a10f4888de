"""The live collector: a read-only session that turns a server into a `Snapshot` of facts.

    from advisor.collect import collect, CollectError
    snap = collect("host=db1 dbname=app", sample_seconds=10)   # CollectError -> exit code 3
    snap.save("db1.json")

Importing this package is cheap: psycopg and pydantic load only when `collect()` runs, so the
CLI can import `CollectError` and `parse_size` without slowing the offline commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from advisor.collect.hardware import parse_size

if TYPE_CHECKING:
    from advisor.snapshot import Snapshot

__all__ = ["CollectError", "collect", "parse_size"]

DEFAULT_STATEMENT_TIMEOUT_MS = 30_000
DEFAULT_LOCK_TIMEOUT_MS = 2_000
DEFAULT_STATEMENTS_LIMIT = 500


class CollectError(RuntimeError):
    """Cannot connect, or collection failed as a whole (exit code 3). The message is one
    sentence and never holds a password. Missing privileges or extensions are not errors:
    they end up in `Snapshot.skipped`."""


def collect(
    dsn: str | None,
    *,
    sample_seconds: float = 0,
    cores: float | None = None,
    memory: int | None = None,
    statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
    statements_limit: int = DEFAULT_STATEMENTS_LIMIT,
) -> Snapshot:
    """Read settings, overrides, activity, database and statement statistics and background
    workers in one read-only transaction (rolled back), then sample pg_stat_activity every
    0.5 s for `sample_seconds`. `cores`/`memory` (bytes) override what the machine says.
    Empty/None `dsn` = libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE, PGSERVICE)."""
    from advisor.collect.live import collect_live

    return collect_live(
        dsn,
        sample_seconds=sample_seconds,
        cores=cores,
        memory=memory,
        statement_timeout_ms=statement_timeout_ms,
        lock_timeout_ms=lock_timeout_ms,
        statements_limit=statements_limit,
    )
