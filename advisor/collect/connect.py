"""Connecting safely to a production server.

Every session is read-only by default, carries a statement_timeout, a lock_timeout and
application_name = 'advisor', all sent in the startup packet so they hold from the first
statement (and beat per-role/per-database settings). Autocommit stays off; callers roll back.

Passwords never leave this module: `redact_dsn` keeps host/port/dbname/user/service only, and
connection errors are rewritten into one sentence with any password scrubbed out (libpq quotes
fragments of an unparsable connection string, e.g. 'missing "=" after "secret"').
"""

from __future__ import annotations

import os
import re
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row

from advisor.collect import DEFAULT_LOCK_TIMEOUT_MS, DEFAULT_STATEMENT_TIMEOUT_MS, CollectError

APPLICATION_NAME = "advisor"
DEFAULT_CONNECT_TIMEOUT_S = 10

_SHOWN = ("service", "host", "hostaddr", "port", "dbname", "user")
_ENV = {
    "service": "PGSERVICE",
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "dbname": "PGDATABASE",
    "user": "PGUSER",
}
# Best effort for strings libpq cannot parse: keyword form and URI userinfo.
_KW_PASSWORD = re.compile(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_URI_PASSWORD = re.compile(r"^[a-z]+://[^:/@?#]*:([^@/?#]*)@", re.IGNORECASE)


def session_settings(
    statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
) -> dict[str, str]:
    """What every advisor session sets for itself (also recorded in snapshots, because
    pg_settings shows these values for the advisor's own session, not the server's)."""
    return {
        "default_transaction_read_only": "on",
        "statement_timeout": str(int(statement_timeout_ms)),
        "lock_timeout": str(int(lock_timeout_ms)),
        "application_name": APPLICATION_NAME,
    }


def _params(dsn: str | None) -> dict[str, Any] | None:
    try:
        return conninfo_to_dict(dsn or "")
    except psycopg.Error:
        return None


def redact_dsn(dsn: str | None) -> str:
    """'host=db1 port=5432 dbname=app user=alice': what identifies the target, never the
    password (keyword or URI form). Missing keys are taken from PGHOST & co like libpq does."""
    params = _params(dsn)
    if params is None:
        return "the given connection string (not shown: it does not parse)"
    shown: dict[str, str] = {}
    for key in _SHOWN:
        value = params.get(key) or os.environ.get(_ENV[key])
        if value:
            shown[key] = str(value)
    if not shown:
        return "the libpq defaults (local socket, current user)"
    return " ".join(f"{k}={v}" for k, v in shown.items())


def _secrets(dsn: str | None) -> list[str]:
    found: list[str] = []
    params = _params(dsn)
    if params is not None and params.get("password"):
        found.append(str(params["password"]))
    if dsn:
        for m in _KW_PASSWORD.finditer(dsn):
            found.append(m.group(1).strip("'"))
        m2 = _URI_PASSWORD.match(dsn.strip())
        if m2 and m2.group(1):
            found.append(m2.group(1))
    if os.environ.get("PGPASSWORD"):
        found.append(os.environ["PGPASSWORD"])
    # Longest first, so a password containing another is scrubbed whole.
    return sorted({s for s in found if len(s) >= 3}, key=len, reverse=True)


def scrub(text: str, dsn: str | None) -> str:
    """`text` with any password of `dsn` (or PGPASSWORD) replaced by '***'."""
    for secret in _secrets(dsn):
        text = text.replace(secret, "***")
    return text


def _one_sentence(text: str) -> str:
    text = " ".join(text.split())
    return text.rstrip(". ") + "."


def _failure_reason(message: str) -> str:
    """libpq's multi-line report -> the distinct reasons ('Connection refused')."""
    reasons: list[str] = []
    for line in message.splitlines():
        line = line.strip()
        if not line or line.startswith(("Is the server running", "Multiple connection attempts")):
            continue
        if line.startswith("- host:"):  # psycopg's per-attempt summary repeats the lines above
            continue
        m = re.search(r"failed: (.+)$", line)
        reason = m.group(1) if m else line
        reason = re.sub(r"^(connection (failed|is bad):\s*)", "", reason)
        reason = re.sub(r"^(FATAL|ERROR):\s+", "", reason)
        if reason and reason not in reasons:
            reasons.append(reason)
    return "; ".join(reasons) or "unknown error"


def describe_error(dsn: str | None, exc: BaseException) -> str:
    """libpq's reason for a failure, on one line and without any password of `dsn`."""
    return scrub(_failure_reason(str(exc)), dsn)


def describe_connect_error(dsn: str | None, exc: BaseException) -> str:
    """One sentence, no password: 'cannot connect to host=... port=...: Connection refused.'"""
    return _one_sentence(f"cannot connect to {redact_dsn(dsn)}: {describe_error(dsn, exc)}")


def connect(
    dsn: str | None,
    *,
    statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
    connect_timeout_s: int = DEFAULT_CONNECT_TIMEOUT_S,
) -> psycopg.Connection[DictRow]:
    """A read-only advisor session. Empty/None `dsn` = libpq environment (PGHOST, PGPORT,
    PGUSER, PGDATABASE, PGSERVICE, .pgpass). Raises `CollectError` (one sentence, no secrets).
    Rows come back as dicts; autocommit is off and the caller rolls back."""
    params = _params(dsn)
    if params is None:
        try:
            conninfo_to_dict(dsn or "")
        except psycopg.Error as exc:
            # libpq quotes pieces of the string; they can be pieces of a password.
            reason = re.sub(r'"[^"]*"', '"…"', str(exc))
            raise CollectError(
                _one_sentence(f"the connection string is not valid: {scrub(reason, dsn)}")
            ) from None
        raise CollectError("the connection string is not valid.")  # pragma: no cover

    # Keep the user's own options (DSN or PGOPTIONS); ours come last and win.
    ours = " ".join(
        f"-c {k}={v}" for k, v in session_settings(statement_timeout_ms, lock_timeout_ms).items()
    )
    theirs = str(params.get("options") or os.environ.get("PGOPTIONS") or "")
    kwargs: dict[str, Any] = {
        "options": f"{theirs} {ours}".strip(),
        "application_name": APPLICATION_NAME,
    }
    if "connect_timeout" not in params and not os.environ.get("PGCONNECT_TIMEOUT"):
        kwargs["connect_timeout"] = connect_timeout_s
    try:
        conn = psycopg.connect(dsn or "", autocommit=False, row_factory=dict_row, **kwargs)
    except psycopg.Error as exc:
        raise CollectError(describe_connect_error(dsn, exc)) from None
    conn.read_only = True  # BEGIN READ ONLY on top of default_transaction_read_only
    return conn
