"""PgBouncer: pgbouncer.ini as PgBouncer itself reads it, the admin console, the local process.

The ini reader copies the quirks of PgBouncer's parser (lib/usual/cfparser.c, checked against
the Debian 1.18 binary, knowledge/poolers.md §1.1): a comment is a line that *starts* with `#`
or `;` (there are no inline comments: the value runs to the end of the line, trailing blanks
trimmed), keys are bare `[A-Za-z0-9_.*-]` words, `%include FILE` is read in place with a
relative FILE resolved against the current directory (not the including file's), up to 10
levels deep. Lines PgBouncer cannot even split into key and value raise `IniError` naming file
and line (exit 2); values it would reject (inline comments, keys of a newer version) are kept
for the PB rules to report, so one run lists every problem instead of the first.

Effective values follow PgBouncer's precedence: pool_mode user > database > global, pool_size
database (> user, 1.23+) > default_pool_size; the console's SHOW CONFIG beats the file (it is
what runs), the file beats the built-in default.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from advisor.snapshot import (
        IniEntry,
        PgBouncerConsoleFact,
        PgBouncerFacts,
        PgBouncerIniFact,
        PgBouncerInstance,
        PgBouncerProcessFact,
    )

REDACTED = "***"  # as advisor.collect.secrets (not imported: the offline path stays small)
MAX_INCLUDE_DEPTH = 10
ADMIN_DB = "pgbouncer"
_KEY = r"[A-Za-z0-9_.*-]+"
# A `;` or `#` after blank space, outside single quotes: an inline comment to PgBouncer's eyes
# it is part of the value (PB01).
_INLINE = r"(?:^|\s)([;#].*)$"
_QUOTED = r"'(?:[^'\\]|\\.|'')*'"

# Built-in defaults (SHOW CONFIG of 1.18, knowledge/artifacts; unchanged through 1.25 for these
# keys except max_prepared_statements, 0 -> 200 in 1.24).
DEFAULTS: dict[str, str] = {
    "pool_mode": "session",
    "max_client_conn": "100",
    "default_pool_size": "20",
    "min_pool_size": "0",
    "reserve_pool_size": "0",
    "reserve_pool_timeout": "5",
    "max_db_connections": "0",
    "max_user_connections": "0",
    "server_idle_timeout": "600",
    "server_lifetime": "3600",
    "query_wait_timeout": "120",
    "query_timeout": "0",
    "idle_transaction_timeout": "0",
    "server_reset_query": "DISCARD ALL",
    "server_reset_query_always": "0",
    "server_round_robin": "0",
    "auth_type": "md5",
    "listen_addr": "",
    "listen_port": "6432",
    "so_reuseport": "0",
    "stats_period": "60",
}

# Keys of [pgbouncer] that 1.18 knows (its SHOW CONFIG), and the ones added later.
GLOBAL_KEYS_1_18 = frozenset(
    [
        "admin_users",
        "application_name_add_host",
        "auth_file",
        "auth_hba_file",
        "auth_query",
        "auth_type",
        "auth_user",
        "autodb_idle_timeout",
        "client_idle_timeout",
        "client_login_timeout",
        "client_tls_ca_file",
        "client_tls_cert_file",
        "client_tls_ciphers",
        "client_tls_dheparams",
        "client_tls_ecdhcurve",
        "client_tls_key_file",
        "client_tls_protocols",
        "client_tls_sslmode",
        "conffile",
        "default_pool_size",
        "disable_pqexec",
        "dns_max_ttl",
        "dns_nxdomain_ttl",
        "dns_zone_check_period",
        "idle_transaction_timeout",
        "ignore_startup_parameters",
        "job_name",
        "listen_addr",
        "listen_backlog",
        "listen_port",
        "log_connections",
        "log_disconnections",
        "log_pooler_errors",
        "log_stats",
        "logfile",
        "max_client_conn",
        "max_db_connections",
        "max_packet_size",
        "max_user_connections",
        "min_pool_size",
        "pidfile",
        "pkt_buf",
        "pool_mode",
        "query_timeout",
        "query_wait_timeout",
        "reserve_pool_size",
        "reserve_pool_timeout",
        "resolv_conf",
        "sbuf_loopcnt",
        "server_check_delay",
        "server_check_query",
        "server_connect_timeout",
        "server_fast_close",
        "server_idle_timeout",
        "server_lifetime",
        "server_login_retry",
        "server_reset_query",
        "server_reset_query_always",
        "server_round_robin",
        "server_tls_ca_file",
        "server_tls_cert_file",
        "server_tls_ciphers",
        "server_tls_key_file",
        "server_tls_protocols",
        "server_tls_sslmode",
        "so_reuseport",
        "stats_period",
        "stats_users",
        "suspend_timeout",
        "syslog",
        "syslog_facility",
        "syslog_ident",
        "tcp_defer_accept",
        "tcp_keepalive",
        "tcp_keepcnt",
        "tcp_keepidle",
        "tcp_keepintvl",
        "tcp_socket_buffer",
        "tcp_user_timeout",
        "unix_socket_dir",
        "unix_socket_group",
        "unix_socket_mode",
        "user",
        "verbose",
    ]
)
Version = tuple[int, int]
GLOBAL_KEYS_SINCE: dict[str, Version] = {
    "auth_dbname": (1, 19),
    "peer_id": (1, 19),
    "cancel_wait_timeout": (1, 19),
    "track_extra_parameters": (1, 20),
    "max_prepared_statements": (1, 21),
    "auth_ident_file": (1, 23),
    "max_db_client_connections": (1, 24),
    "max_user_client_connections": (1, 24),
    "client_tls13_ciphers": (1, 24),
    "server_tls13_ciphers": (1, 24),
    "transaction_timeout": (1, 25),
    "query_wait_notify": (1, 25),
    "pool_idle_timeout": (1, 26),
}
DB_KEYS_SINCE: dict[str, Version] = {
    **dict.fromkeys(
        [
            "dbname",
            "host",
            "port",
            "user",
            "password",
            "auth_user",
            "client_encoding",
            "datestyle",
            "timezone",
            "pool_size",
            "min_pool_size",
            "reserve_pool",
            "connect_query",
            "pool_mode",
            "max_db_connections",
        ],
        (1, 0),
    ),
    "auth_dbname": (1, 19),
    "auth_query": (1, 22),
    "server_lifetime": (1, 23),
    "reserve_pool_size": (1, 24),
    "load_balance_hosts": (1, 24),
    "max_db_client_connections": (1, 24),
}
USER_KEYS_SINCE: dict[str, Version] = {
    "pool_mode": (1, 0),
    "max_user_connections": (1, 0),
    "pool_size": (1, 23),
    "reserve_pool_size": (1, 24),
    "query_timeout": (1, 24),
    "idle_transaction_timeout": (1, 24),
    "client_idle_timeout": (1, 24),
    "max_user_client_connections": (1, 24),
    "transaction_timeout": (1, 25),
    "query_wait_timeout": (1, 26),
}
SECTIONS_SINCE: dict[str, Version] = {
    "pgbouncer": (1, 0),
    "databases": (1, 0),
    "users": (1, 0),
    "peers": (1, 19),
}
# Startup parameters PgBouncer tracks per client and restores on every server it hands out:
# a session SET of these does not leak (§2.1; IntervalStyle since 1.20).
TRACKED = frozenset({"client_encoding", "datestyle", "timezone", "standard_conforming_strings"})
TRACKED_SINCE_1_20 = frozenset({"intervalstyle"})


# [pgbouncer] values 1.18 checks at load time (it refuses the file otherwise): integers and
# enums. ([databases] numbers go through atoi: `pool_size=big` loads silently as 0.)
INT_KEYS = frozenset(
    {
        "max_client_conn",
        "default_pool_size",
        "min_pool_size",
        "reserve_pool_size",
        "max_db_connections",
        "max_user_connections",
        "listen_port",
        "listen_backlog",
        "pkt_buf",
        "sbuf_loopcnt",
        "max_prepared_statements",
    }
)
ENUMS = {
    "pool_mode": frozenset({"session", "transaction", "statement"}),
    "auth_type": frozenset(
        {"cert", "md5", "scram-sha-256", "plain", "trust", "any", "hba", "pam", "ldap"}
    ),
}


def invalid_value(key: str, value: str) -> str | None:
    """Why PgBouncer would reject `value` for `key` ('invalid value'), or None."""
    key = key.lower()
    if key in INT_KEYS and not re.fullmatch(r"-?\d+", value):
        return f"invalid value {value!r} for {key}: an integer is expected"
    allowed = ENUMS.get(key)
    if allowed is not None and value.lower() not in allowed:
        return f"invalid value {value!r} for {key}: one of {', '.join(sorted(allowed))}"
    return None


class IniError(ValueError):
    """A pgbouncer.ini PgBouncer cannot split into sections and keys: one sentence with
    file and line."""


# -- the ini file --------------------------------------------------------------------------------


def parse_ini(path: str, *, cwd: str | None = None) -> PgBouncerIniFact:
    """Read `path` and its %includes the way PgBouncer does. Relative %include paths are
    resolved against `cwd` (default: the current directory, as PgBouncer does)."""
    from advisor.snapshot import PgBouncerIniFact

    fact = PgBouncerIniFact(path=path)
    _read_into(fact, path, cwd or os.getcwd(), depth=0, section=[""])
    return fact


def parse_ini_text(text: str, name: str = "pgbouncer.ini", *, cwd: str = ".") -> PgBouncerIniFact:
    """The same reader on text in memory (tests, fuzzing); %include still reads files."""
    from advisor.snapshot import PgBouncerIniFact

    fact = PgBouncerIniFact(path=name, files=[name])
    _parse_lines(fact, text, name, cwd, depth=0, section=[""])
    return fact


def _read_into(
    fact: PgBouncerIniFact, path: str, cwd: str, *, depth: int, section: list[str]
) -> None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError as exc:
        raise IniError(f"cannot read {path}: {exc.strerror or exc}.") from None
    fact.files.append(path)
    _parse_lines(fact, text, path, cwd, depth=depth, section=section)


def _parse_lines(
    fact: PgBouncerIniFact, text: str, name: str, cwd: str, *, depth: int, section: list[str]
) -> None:
    from advisor.snapshot import IniEntry

    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.strip(" \t\r\f\v")
        if not line or line[0] in "#;":
            continue
        if line.startswith("%include") and len(line) > 8 and line[8] in " \t":
            target = line[9:].strip()
            if depth + 1 >= MAX_INCLUDE_DEPTH:
                raise IniError(
                    f"{name}:{lineno}: %include nested more than {MAX_INCLUDE_DEPTH} levels "
                    "deep (PgBouncer stops loading)."
                )
            full = target if os.path.isabs(target) else os.path.join(cwd, target)
            if not os.path.isfile(full):
                raise IniError(
                    f"{name}:{lineno}: %include {target}: no such file (relative paths are "
                    f"resolved against the directory PgBouncer starts in, here {cwd})."
                )
            _read_into(fact, full, cwd, depth=depth + 1, section=section)
            continue
        if line[0] == "[":
            end = line.find("]")
            if end < 0:
                raise IniError(f"{name}:{lineno}: section header without a closing ']'.")
            # PgBouncer keeps the name as written: "[ pgbouncer ]" is an unknown section.
            section[0] = raw.lstrip(" \t")[1:].split("]", 1)[0]
            fact.sections.append(
                IniEntry(section=section[0], key="", value="", file=name, line=lineno)
            )
            continue
        # Names in SQL double quotes are documented by current releases; 1.18 refuses them
        # (kept as quoted keys for PB02 to judge against the running version).
        m = re.match(_KEY, line) or re.match(r'"(?:[^"]|"")+"', line)
        rest = line[m.end() :] if m else line
        if m is None or not rest.lstrip(" \t").startswith("="):
            raise IniError(f"{name}:{lineno}: expected 'key = value'.")
        if not section[0]:
            raise IniError(f"{name}:{lineno}: 'key = value' before any [section].")
        value = rest.lstrip(" \t")[1:].strip(" \t\r\f\v")
        if section[0] == "databases" and "password" in value:
            value = mask_password(value)
        fact.entries.append(
            IniEntry(section=section[0], key=m.group(0), value=value, file=name, line=lineno)
        )


def mask_password(connstr: str) -> str:
    try:
        params = parse_connstr(connstr)
    except ValueError:
        return re.sub(r"(password\s*=\s*)('(?:[^']|'')*'|\S+)", rf"\1{REDACTED}", connstr)
    if "password" not in params:
        return connstr
    params["password"] = REDACTED
    return " ".join(f"{k}={_quote(v)}" for k, v in params.items())


def _quote(value: str) -> str:
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


class _Word:
    """`[A-Za-z0-9_]+` at a position, compiled on first use (keeps the import cheap)."""

    pattern: re.Pattern[str] | None = None

    def match(self, text: str, pos: int) -> re.Match[str] | None:
        if self.pattern is None:
            self.pattern = re.compile(r"[A-Za-z0-9_]+")
        return self.pattern.match(text, pos)


_WORD = _Word()


def parse_connstr(text: str) -> dict[str, str]:
    """A [databases] / [users] value: `key=value` pairs, values optionally in single quotes.
    ValueError when PgBouncer would say 'syntax error in connection string'."""
    out: dict[str, str] = {}
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            return out
        m = _WORD.match(text, i)
        if m is None:
            raise ValueError(f"syntax error in connection string at {text[i:]!r}")
        key, i = m.group(0).lower(), m.end()
        while i < n and text[i] in " \t":
            i += 1
        if i >= n or text[i] != "=":
            raise ValueError(f"syntax error in connection string: {key} has no '='")
        i += 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == "'":
            i += 1
            buf = []
            while True:
                if i >= n:
                    raise ValueError(f"syntax error in connection string: unclosed quote in {key}")
                ch = text[i]
                if ch == "\\" and i + 1 < n:
                    buf.append(text[i + 1])
                    i += 2
                elif ch == "'" and i + 1 < n and text[i + 1] == "'":
                    buf.append("'")
                    i += 2
                elif ch == "'":
                    i += 1
                    break
                else:
                    buf.append(ch)
                    i += 1
            value = "".join(buf)
        else:
            start = i
            while i < n and text[i] not in " \t":
                i += 1
            value = text[start:i]
        out[key] = value


def inline_comment(value: str) -> str | None:
    """The trailing `; ...` or `# ...` PgBouncer would take as part of `value`, if any."""
    m = re.search(_INLINE, re.sub(_QUOTED, lambda q: "x" * len(q.group(0)), value))
    return value[m.start(1) :] if m else None


# -- effective values ----------------------------------------------------------------------------


def version_tuple(text: str | None) -> Version | None:
    m = re.search(r"(\d+)\.(\d+)", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def instance_version(inst: PgBouncerInstance) -> tuple[Version, str] | None:
    """The running version and where it was read (console, the process, the PATH binary)."""
    v = version_tuple(inst.version)
    return (v, f"{inst.version} ({inst.version_source})") if v else None


def binary_version(exe: str) -> str | None:
    """`pgbouncer --version` -> "1.18.0" (None when it cannot be run)."""
    import subprocess

    try:
        out = subprocess.run(
            [exe, "--version"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"PgBouncer (\d+\.\d+(?:\.\d+)?)", out)
    return m.group(1) if m else None


def last_entries(ini: PgBouncerIniFact, section: str) -> dict[str, IniEntry]:
    """Entries of one section, later lines winning (PgBouncer applies them in order)."""
    out: dict[str, IniEntry] = {}
    for e in ini.entries:
        if e.section == section:
            out[e.key.lower() if section == "pgbouncer" else e.key] = e
    return out


def setting(inst: PgBouncerInstance, name: str) -> tuple[str, str]:
    """(value, where it came from) of a [pgbouncer] setting."""
    if inst.console is not None and name in inst.console.config:
        return inst.console.config[name], "SHOW CONFIG"
    if inst.ini is not None:
        entry = last_entries(inst.ini, "pgbouncer").get(name)
        if entry is not None:
            return entry.value, entry.where
    return DEFAULTS.get(name, ""), "the built-in default"


def int_setting(inst: PgBouncerInstance, name: str) -> int:
    value, _ = setting(inst, name)
    try:
        return int(float(value))
    except ValueError:
        return int(DEFAULTS.get(name, "0") or 0)


@dataclass(frozen=True, slots=True)
class Pool:
    """One (database, user) pool as PgBouncer will run it."""

    database: str
    user: str  # "(any user)" when the ini forces none and no console saw one
    mode: str
    size: int
    reserve: int
    max_db: int  # 0 = no cap
    where: str
    server_db: str = ""  # the database on the server (dbname=, else the pool's name)

    @property
    def servers(self) -> int:
        """Server connections this pool can open (the reserve counts: it opens under load)."""
        n = self.size + self.reserve
        return min(n, self.max_db) if self.max_db > 0 else n


ANY_USER = "(any user)"


def pools(inst: PgBouncerInstance) -> list[Pool]:
    """The pools of one instance: SHOW POOLS pairs when the console was read, else one pool
    per [databases] entry (per forced user, or per [users] entry, or one for any user)."""
    default_size = int_setting(inst, "default_pool_size")
    reserve = int_setting(inst, "reserve_pool_size")
    global_mode, _ = setting(inst, "pool_mode")
    global_max_db = int_setting(inst, "max_db_connections")
    out: list[Pool] = []
    if inst.console is not None and inst.console.pools:
        dbs = {str(d.get("name")): d for d in inst.console.databases}
        for p in inst.console.pools:
            name = str(p.get("database"))
            if name == ADMIN_DB:
                continue
            d = dbs.get(name, {})
            out.append(
                Pool(
                    database=name,
                    user=str(p.get("user")),
                    mode=str(p.get("pool_mode") or global_mode),
                    size=_int(d.get("pool_size"), default_size),
                    reserve=_int(d.get("reserve_pool", d.get("reserve_pool_size")), reserve),
                    max_db=_int(d.get("max_connections"), global_max_db),
                    where="SHOW POOLS",
                    server_db=str(d.get("database") or name),
                )
            )
        seen = {p.database for p in out}
        for name, d in dbs.items():  # databases no client has used yet have no pool row
            if name == ADMIN_DB or name in seen:
                continue
            out.append(
                Pool(
                    database=name,
                    user=str(d.get("force_user") or ANY_USER),
                    mode=str(d.get("pool_mode") or global_mode),
                    size=_int(d.get("pool_size"), default_size),
                    reserve=_int(d.get("reserve_pool", d.get("reserve_pool_size")), reserve),
                    max_db=_int(d.get("max_connections"), global_max_db),
                    where="SHOW DATABASES",
                    server_db=str(d.get("database") or name),
                )
            )
        return out
    if inst.ini is None:
        return out
    users = last_entries(inst.ini, "users")
    for name, entry in last_entries(inst.ini, "databases").items():
        try:
            params = parse_connstr(entry.value)
        except ValueError:
            continue
        size = _int(params.get("pool_size"), default_size)
        res = _int(params.get("reserve_pool", params.get("reserve_pool_size")), reserve)
        max_db = _int(params.get("max_db_connections"), global_max_db)
        db_mode = params.get("pool_mode") or global_mode
        who = [params["user"]] if params.get("user") else (list(users) or [ANY_USER])
        for user in who:
            mode = db_mode
            if user in users:
                with contextlib.suppress(ValueError):
                    mode = parse_connstr(users[user].value).get("pool_mode") or db_mode
            server_db = params.get("dbname") or name
            out.append(Pool(name, user, mode, size, res, max_db, entry.where, server_db))
    return out


def _int(value: Any, default: int) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default


def server_budget(inst: PgBouncerInstance) -> tuple[int, list[str]]:
    """Server connections one instance can open: per database the sum over its pools,
    capped by max_db_connections; and the terms of that sum for the message."""
    by_db: dict[str, list[Pool]] = {}
    for p in pools(inst):
        by_db.setdefault(p.database, []).append(p)
    total, terms = 0, []
    for db, ps in sorted(by_db.items()):
        n = sum(p.size + p.reserve for p in ps)
        cap = ps[0].max_db
        if cap > 0:
            n = min(n, cap)
        total += n
        users = "+".join(f"({p.size}+{p.reserve})" for p in ps)
        terms.append(f"{db}: {users}{f' capped at {cap}' if cap > 0 else ''} = {n}")
    max_user = int_setting(inst, "max_user_connections")
    names = {p.user for ps in by_db.values() for p in ps}
    if max_user > 0 and ANY_USER not in names and names:
        capped = min(total, max_user * len(names))
        if capped < total:
            terms.append(f"max_user_connections {max_user} x {len(names)} users = {capped}")
            total = capped
    return total, terms


# -- the admin console ---------------------------------------------------------------------------


def _row(cur: Any) -> list[dict[str, Any]]:
    names = [d.name for d in cur.description or ()]
    out = []
    for values in cur.fetchall():
        row: dict[str, Any] = {}
        for k, v in zip(names, values, strict=False):
            from decimal import Decimal

            if isinstance(v, Decimal):  # numeric counters
                v = int(v) if v == v.to_integral_value() else float(v)
            elif v is not None and not isinstance(v, int | float | str | bool):
                v = str(v)
            row[k] = v
        out.append(row)
    return out


_CLIENT_COLUMNS = (
    "type",
    "user",
    "database",
    "state",
    "wait",
    "wait_us",
    "application_name",
    "prepared_statements",
)


def read_console(
    dsn: str, *, sample_seconds: float = 0.0, interval: float = 0.5, connect_timeout_s: int = 10
) -> PgBouncerConsoleFact:
    """SHOW VERSION/CONFIG/DATABASES/USERS/POOLS/LISTS/CLIENTS/SERVERS/STATS on the admin
    console, then SHOW POOLS every `interval` s for `sample_seconds` and SHOW STATS again.

    The console speaks only the simple query protocol, has no transactions and rejects the
    `options` startup parameter the server sessions use (advisor.collect.connect), so this is a
    plain autocommit connection that sends nothing but SHOW. Raises CollectError."""
    import psycopg

    from advisor.collect import CollectError
    from advisor.collect.connect import describe_connect_error, describe_error, redact_dsn
    from advisor.snapshot import PgBouncerConsoleFact, PoolSample

    try:
        conn = psycopg.connect(
            dsn, autocommit=True, connect_timeout=connect_timeout_s, prepare_threshold=None
        )
    except psycopg.Error as exc:
        raise CollectError(describe_connect_error(dsn, exc)) from None
    try:
        with conn:

            def show(what: str) -> list[dict[str, Any]]:
                return _row(conn.execute(f"SHOW {what}"))

            version_rows = show("VERSION")
            version = str(next(iter(version_rows[0].values()))) if version_rows else ""
            fact = PgBouncerConsoleFact(dsn=redact_dsn(dsn), version=version.split()[-1])
            fact.config = {
                str(r["key"]): "" if r["value"] is None else str(r["value"]) for r in show("CONFIG")
            }
            fact.databases = show("DATABASES")
            fact.users = show("USERS")
            fact.lists = {str(r["list"]): int(r["items"]) for r in show("LISTS")}
            fact.clients = [{k: r[k] for k in _CLIENT_COLUMNS if k in r} for r in show("CLIENTS")]
            fact.servers = [{k: r[k] for k in _CLIENT_COLUMNS if k in r} for r in show("SERVERS")]
            t0 = time.monotonic()
            fact.stats_start = show("STATS")
            while True:
                t = time.monotonic() - t0
                fact.pools = show("POOLS")
                for p in fact.pools:
                    if p.get("database") == ADMIN_DB:
                        continue
                    fact.samples.append(
                        PoolSample(
                            t=round(t, 3),
                            database=str(p["database"]),
                            user=str(p["user"]),
                            cl_active=int(p["cl_active"]),
                            cl_waiting=int(p["cl_waiting"]),
                            sv_active=int(p["sv_active"]),
                            sv_idle=int(p["sv_idle"]),
                            sv_used=int(p["sv_used"]),
                            maxwait_s=int(p["maxwait"]) + int(p.get("maxwait_us", 0)) / 1e6,
                            pool_mode=p.get("pool_mode"),
                        )
                    )
                if t >= sample_seconds:
                    break
                time.sleep(min(interval, max(0.0, sample_seconds - t)))
            fact.stats = show("STATS")
            fact.seconds = round(time.monotonic() - t0, 3)
            return fact
    except psycopg.Error as exc:
        raise CollectError(
            f"the PgBouncer console at {redact_dsn(dsn)} failed: {describe_error(dsn, exc)}."
        ) from None


# -- the local process ---------------------------------------------------------------------------

_FD_LINE = r"kernel file descriptor limit: .*"


def _cpu_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return None


def find_process(ini: PgBouncerIniFact) -> PgBouncerProcessFact | None:
    """The running PgBouncer of this ini, through its pidfile, when it runs on this machine:
    its open-files limit (/proc/PID/limits), the start-up log line that states the need, and
    the CPU quota of its cgroup (PB20: a container's quota is its ceiling, not one core)."""
    from advisor.collect.hardware import read_cgroup_limits
    from advisor.snapshot import PgBouncerProcessFact

    entries = last_entries(ini, "pgbouncer")
    pidfile = entries.get("pidfile")
    if pidfile is None or not pidfile.value:
        return None
    try:
        with open(pidfile.value, encoding="ascii") as fh:
            pid = int(fh.read().split()[0])
        with open(f"/proc/{pid}/comm", encoding="ascii") as fh:
            if "pgbouncer" not in fh.read():
                return None
    except (OSError, ValueError, IndexError):
        return None
    limits = read_cgroup_limits(pid)
    fact = PgBouncerProcessFact(pid=pid, cpu_limit=limits.cpu_quota if limits else None)
    try:
        with open(f"/proc/{pid}/limits", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Max open files"):
                    soft, hard = line.split()[3:5]
                    fact.nofile_soft = None if soft == "unlimited" else int(soft)
                    fact.nofile_hard = None if hard == "unlimited" else int(hard)
    except (OSError, ValueError):
        pass
    logfile = entries.get("logfile")
    if logfile is not None and logfile.value:
        try:
            with open(logfile.value, encoding="utf-8", errors="replace") as fh:
                found = re.findall(_FD_LINE, fh.read()[-1_000_000:])
            fact.log_fd_line = found[-1] if found else None
        except OSError:
            pass
    return fact


# -- everything for one run ----------------------------------------------------------------------


def collect_pgbouncer(
    ini_paths: list[str],
    dsns: list[str],
    *,
    sample_seconds: float = 0.0,
    instance_count: int | None = None,
) -> PgBouncerFacts:
    """Instance i gets the i-th ini and the i-th console DSN. Raises IniError (exit 2) and
    CollectError (exit 3)."""
    from advisor.snapshot import PgBouncerFacts, PgBouncerInstance

    n = max(len(ini_paths), len(dsns))
    instances = []
    for i in range(n):
        inst = PgBouncerInstance()
        if i < len(ini_paths):
            inst.ini = parse_ini(ini_paths[i])
            inst.process = find_process(inst.ini)
        instances.append(inst)
    ticks = {id(x): _cpu_ticks(x.process.pid) for x in instances if x.process is not None}
    t0 = time.monotonic()
    for i, dsn in enumerate(dsns):
        instances[i].console = read_console(dsn, sample_seconds=sample_seconds)
    elapsed = time.monotonic() - t0
    hz = os.sysconf("SC_CLK_TCK")
    for inst in instances:
        before = ticks.get(id(inst))
        if inst.process is None or before is None or elapsed < 1.0:
            continue
        after = _cpu_ticks(inst.process.pid)
        if after is not None:
            inst.process.cpu_share = round((after - before) / hz / elapsed, 3)
    import shutil

    on_path = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None
    )
    for inst in instances:
        if inst.console is not None:
            inst.version, inst.version_source = inst.console.version, "SHOW VERSION"
        elif inst.process is not None:
            inst.version = binary_version(f"/proc/{inst.process.pid}/exe")
            inst.version_source = f"the running process {inst.process.pid}"
        if inst.version is None and on_path:
            inst.version = binary_version(on_path)
            inst.version_source = f"{on_path} --version (no console given)"
    count = instance_count if instance_count is not None else max(1, n)
    return PgBouncerFacts(instances=instances, instance_count=count)


def fd_need(inst: PgBouncerInstance) -> int:
    """Descriptors PgBouncer may need: max_client_conn plus every server connection it can
    open (config.md: max_client_conn + max pool size x databases x users)."""
    budget, _ = server_budget(inst)
    return int_setting(inst, "max_client_conn") + budget


def ceil(x: float) -> int:
    return math.ceil(x - 1e-9)
