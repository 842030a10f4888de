"""Keeping secrets the server hands us out of snapshots.

pg_stat_statements stores utility statements verbatim (`CREATE ROLE x PASSWORD '...'` keeps its
literal even on 18), and settings such as `primary_conninfo` may carry `password=...`. Texts of
statements that exist to carry credentials (roles, user mappings, servers, subscriptions) are
dropped; everything else has password literals, `password=` keywords and URI passwords masked.
"""

from __future__ import annotations

import re

REDACTED = "***"

_CONNINFO_PASSWORD = re.compile(r"(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s']+)")
_URI_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^:/@\s']*:)([^@/\s']+)(@)")
_PASSWORD_LITERAL = re.compile(r"(?i)(\bpassword\s+)(e?'(?:[^']|'')*'|\$(\w*)\$.*?\$\3\$)", re.S)
_LEADING_COMMENTS = r"(?:\s*(?:/\*.*?\*/|--[^\n]*(?:\n|$)))*\s*"
_CREDENTIAL_STATEMENT = re.compile(
    rf"^{_LEADING_COMMENTS}(?:create|alter)\s+(?:role|user|group|server|subscription"
    r"|foreign\s+data\s+wrapper)\b",
    re.I | re.S,
)
_SECRET_NAME = re.compile(r"(?i)password|passphrase|secret|token")


def scrub_text(text: str) -> str:
    """`text` with password literals, `password=` values and URI passwords replaced."""
    text = _PASSWORD_LITERAL.sub(lambda m: f"{m[1]}'{REDACTED}'", text)
    text = _CONNINFO_PASSWORD.sub(lambda m: f"{m[1]}{REDACTED}", text)
    return _URI_PASSWORD.sub(lambda m: f"{m[1]}{REDACTED}{m[3]}", text)


def statement_text(text: str | None) -> tuple[str | None, bool]:
    """(text safe to keep, whether anything was removed). Credential statements lose their
    text altogether: the advisor has no use for them."""
    if text is None:
        return None, False
    if _CREDENTIAL_STATEMENT.match(text):
        return None, True
    clean = scrub_text(text)
    return clean, clean != text


def setting_value(name: str, value: str | None) -> str | None:
    """A setting's value safe to keep: masked whole when its name says secret."""
    if value is None or value == "":
        return value
    if _SECRET_NAME.search(name):
        return REDACTED
    return scrub_text(value)
