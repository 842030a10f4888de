"""pgpool-II: the `pgpool.conf` parser, compiled defaults by branch, and the live console.

The file format follows pgpool's own lexer (`src/config/pool_config_l.l`): one `key [=] value`
per line, `#` starts a comment outside quotes, values are single-quoted strings (`''` or `\\'`
for a quote) or bare words/numbers; the last occurrence of a key wins. Per-node keys carry a
numeric suffix (`backend_hostname0`, `health_check_period1`). Values of the keys this advisor
reads are checked as pgpool checks them, so a bad file fails here with file and line
(`PgpoolConfError`, exit 2) instead of at the next pgpool restart.

Defaults for keys left unset are the compiled defaults of the running branch
(knowledge/poolers.md §3.2, artifacts/pgpool_compiled_defaults_by_branch.txt): several changed
in 4.3 (`load_balance_mode` off -> on, `listen_backlog_multiplier` 32 -> 2, `sr_check_period`
0 -> 10 s), so an unset key means different things on 4.2 and 4.3.

The console (`read_console`) speaks to pgpool's port with a plain psycopg connection: pgpool
rejects the `options` startup parameter the server collector sends, and 4.3.0-4.3.10 answer
SHOW POOL_PROCESSES / POOL_VERSION with an empty result set before the real one (§3.5).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from advisor.snapshot import PgpoolFacts

Version = tuple[int, int]
LATEST: Version = (4, 7)
ASSUMED_VERSION: Version = (4, 3)  # Debian 12's pgpool2, when neither console nor caller says

# -- compiled defaults (src/config/pool_config_variables.c per branch, §3.2) -------------------

# key -> [(first version, default), ...] newest last; "-" = the key does not exist there.
_DEFAULTS: dict[str, list[tuple[Version, str]]] = {
    "num_init_children": [((4, 0), "32")],
    "max_pool": [((4, 0), "4")],
    "child_life_time": [((4, 0), "300")],
    "child_max_connections": [((4, 0), "0")],
    "connection_life_time": [((4, 0), "0")],
    "client_idle_limit": [((4, 0), "0")],
    "reserved_connections": [((4, 0), "-"), ((4, 1), "0")],
    "listen_backlog_multiplier": [((4, 0), "32"), ((4, 3), "2")],
    "load_balance_mode": [((4, 0), "off"), ((4, 3), "on")],
    "statement_level_load_balance": [((4, 0), "-"), ((4, 1), "off")],
    "disable_load_balance_on_write": [((4, 0), "transaction")],
    "write_function_list": [((4, 0), "-"), ((4, 2), "")],
    "read_only_function_list": [((4, 0), "-"), ((4, 2), "")],
    "black_function_list": [((4, 0), ""), ((4, 2), "-")],
    "white_function_list": [((4, 0), ""), ((4, 2), "-")],
    "primary_routing_query_pattern_list": [((4, 0), "-"), ((4, 2), "")],
    "delay_threshold": [((4, 0), "0")],
    "delay_threshold_by_time": [((4, 0), "-"), ((4, 4), "0")],
    "prefer_lower_delay_standby": [((4, 0), "-"), ((4, 3), "off")],
    "sr_check_period": [((4, 0), "0"), ((4, 3), "10")],
    "sr_check_user": [((4, 0), "nobody"), ((4, 6), "")],
    "health_check_period": [((4, 0), "0")],
    "health_check_timeout": [((4, 0), "20")],
    "health_check_max_retries": [((4, 0), "0")],
    "failover_on_backend_error": [((4, 0), "on")],
    "backend_clustering_mode": [((4, 0), "-"), ((4, 2), "streaming_replication")],
    "connection_cache": [((4, 0), "on")],
    "allow_sql_comments": [((4, 0), "off")],
    "ignore_leading_white_space": [((4, 0), "on")],
    "enable_pool_hba": [((4, 0), "off")],
    "allow_clear_text_frontend_auth": [((4, 0), "off")],
    "listen_addresses": [((4, 0), "localhost")],
    "port": [((4, 0), "9999")],
    "use_watchdog": [((4, 0), "off")],
    "process_management_mode": [((4, 0), "-"), ((4, 4), "static")],
}

# Typed keys: what the value must look like (checked at parse time, with the line).
_BOOL_KEYS = frozenset(
    k for k, v in _DEFAULTS.items() if v[-1][1] in ("on", "off") and k != "load_balance_mode"
) | {"load_balance_mode", "log_per_node_statement", "memory_cache_enabled", "ssl"}
_TIME_KEYS = frozenset(  # seconds unless a unit is given
    {
        "child_life_time",
        "connection_life_time",
        "client_idle_limit",
        "sr_check_period",
        "health_check_period",
        "health_check_timeout",
        "health_check_retry_delay",
        "search_primary_node_timeout",
    }
)
_INT_KEYS = frozenset(
    {
        "num_init_children",
        "max_pool",
        "child_max_connections",
        "reserved_connections",
        "listen_backlog_multiplier",
        "health_check_max_retries",
        "port",
        "pcp_port",
        "delay_threshold_by_time",
    }
)
_BYTE_KEYS = frozenset({"delay_threshold"})
_PER_NODE = re.compile(
    r"^(backend_(?:hostname|port|weight|flag|data_directory|application_name)"
    r"|health_check_(?:period|timeout|user|password|database|max_retries|retry_delay)"
    r"|connect_timeout)(\d+)$"
)
_BOOL_WORDS = {"on": True, "true": True, "yes": True, "1": True}
_BOOL_WORDS |= {"off": False, "false": False, "no": False, "0": False}
_TIME_UNITS = {"": 1.0, "ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_BYTE_UNITS = {"": 1, "b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}
PASSWORD_KEY = re.compile(r"password\d*$")


class PgpoolConfError(ValueError):
    """A pgpool.conf pgpool refuses (or, for a few values, silently misreads): one sentence
    naming the file and the line."""

    def __init__(self, source: str, line: int, message: str) -> None:
        super().__init__(f"{source}, line {line}: {message}" if line else f"{source}: {message}")
        self.source, self.line, self.message = source, line, message


def parse_version(text: str | None) -> Version | None:
    """'4.3.5 (tamahomeboshi)' -> (4, 3)."""
    m = re.match(r"\s*(\d+)\.(\d+)", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def compiled_default(key: str, version: Version | None) -> str | None:
    """The compiled default of `key` on `version` (None: unknown key or absent there)."""
    base = _PER_NODE.match(key)
    history = _DEFAULTS.get(base.group(1) if base else key)
    if history is None:
        return None
    ver = version or ASSUMED_VERSION
    value = next((v for since, v in reversed(history) if ver >= since), None)
    return None if value in (None, "-") else value


# -- values -------------------------------------------------------------------------------------


def as_bool(value: str) -> bool | None:
    return _BOOL_WORDS.get(value.strip().lower())


def as_seconds(value: str) -> float | None:
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*([a-z]*)\s*", value.lower())
    if not m or m.group(2) not in _TIME_UNITS:
        return None
    return float(m.group(1)) * _TIME_UNITS[m.group(2)]


def as_bytes(value: str) -> float | None:
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*([a-z]*)\s*", value.lower())
    if not m or m.group(2) not in _BYTE_UNITS:
        return None
    return float(m.group(1)) * _BYTE_UNITS[m.group(2)]


def as_int(value: str) -> int | None:
    return int(value) if re.fullmatch(r"\s*-?\d+\s*", value) else None


def _check_value(key: str, value: str) -> str | None:
    """Why pgpool would refuse `value` for `key`, or None."""
    base = _PER_NODE.match(key)
    name = base.group(1) if base else key
    if name in _BOOL_KEYS and as_bool(value) is None:
        return f"{key} must be on or off, not {value!r} (pgpool 4.3 silently ignores it)"
    if (name in _TIME_KEYS and as_seconds(value) is None) or (
        name in _INT_KEYS and as_int(value) is None
    ):
        return f"{key} must be a whole number, not {value!r}"
    if name in _BYTE_KEYS and as_bytes(value) is None:
        return f"{key} must be a size in bytes, not {value!r}"
    if name in _TIME_KEYS | _INT_KEYS | _BYTE_KEYS and value.strip().startswith("-"):
        return f"{key} must be 0 or more, not {value!r}"  # pgpool's ranges start at 0
    if name == "backend_weight" and not re.fullmatch(r"\d+(\.\d*)?|\.\d+", value.strip()):
        return f"{key} must be a number of 0 or more, not {value!r}"
    if name == "backend_port" and not (1 <= (as_int(value) or 0) <= 65535):
        return f"{key} must be a port number, not {value!r}"
    if name in ("num_init_children", "max_pool") and (as_int(value) or 0) < 1:
        return f"{key} must be at least 1, not {value!r}"  # max_pool 0: no connection cache
    return None


# -- the parser ---------------------------------------------------------------------------------

_KEY = r"[A-Za-z_][A-Za-z0-9_]*"
_QUOTED = r"'(?:[^'\\\n]|\\.|'')*'"
_BARE = r"[^\s'#=]+"
_LINE = re.compile(
    rf"^[ \t\r\f\v]*(?P<key>{_KEY})[ \t\r\f\v]*(?P<eq>=)?[ \t\r\f\v]*"
    rf"(?P<value>{_QUOTED}|{_BARE})?[ \t\r\f\v]*(?:#.*)?$"
)


@dataclass(frozen=True, slots=True)
class Entry:
    value: str
    line: int


@dataclass(slots=True)
class PgpoolConf:
    """A parsed pgpool.conf: each key's last value and its line."""

    source: str
    entries: dict[str, Entry] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        e = self.entries.get(key)
        return e.value if e is not None else None

    def node_ids(self) -> list[int]:
        """Backend node ids: every N that has a backend_hostnameN or backend_portN."""
        ids = set()
        for key in self.entries:
            m = _PER_NODE.match(key)
            if m and m.group(1) in ("backend_hostname", "backend_port"):
                ids.add(int(m.group(2)))
        return sorted(ids)


def _unquote(token: str) -> str:
    if token.startswith("'"):
        return re.sub(r"''|\\(.)", lambda m: m.group(1) or "'", token[1:-1])
    return token


def parse_conf(text: str, source: str = "pgpool.conf") -> PgpoolConf:
    """Parse pgpool.conf text; raises PgpoolConfError (file and line) on what pgpool refuses."""
    conf = PgpoolConf(source)
    for lineno, raw in enumerate(text.split("\n"), 1):
        stripped = raw.strip(" \t\r\f\v")
        if not stripped or stripped.startswith("#"):
            continue
        if "\x00" in raw:
            raise PgpoolConfError(source, lineno, "NUL byte in the line")
        m = _LINE.match(raw)
        if m is None:
            quotes = re.sub(r"''|\\.", "", raw.split("#", 1)[0] if "'" not in raw else raw)
            if quotes.count("'") % 2:
                raise PgpoolConfError(source, lineno, "unterminated quoted string")
            raise PgpoolConfError(
                source, lineno, f"syntax error near {' '.join(stripped.split())[:40]!r}"
            )
        key = m.group("key").lower()
        token = m.group("value")
        if token is None:
            raise PgpoolConfError(source, lineno, f"{key} has no value")
        value = _unquote(token)
        problem = _check_value(key, value)
        if problem:
            raise PgpoolConfError(source, lineno, problem)
        conf.entries[key] = Entry(value, lineno)
    return conf


def read_conf(path: str) -> PgpoolConf:
    """Read and parse a pgpool.conf file (PgpoolConfError without a line when unreadable)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError as exc:
        raise PgpoolConfError(path, 0, f"cannot read: {exc.strerror or exc}") from None
    return parse_conf(text, os.path.basename(path))


def password_kind(value: str) -> str:
    """How a *_password value is stored, never the value: '' (empty), md5, AES, or clear text."""
    if not value:
        return ""
    if value.startswith("md5"):
        return "md5"
    if value.startswith("AES"):
        return "AES"
    return "clear text"


# -- the view the checks use --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Setting:
    value: str | None
    origin: str  # 'pgpool.conf line 12', 'compiled default of 4.3', 'node 1 override, line 30'


class PgpoolView:
    """Effective pgpool settings from the facts: the file's value, else the compiled default of
    the running version (the console's SHOW POOL_VERSION) or of 4.3 when that is unknown."""

    def __init__(self, facts: PgpoolFacts) -> None:
        self.facts = facts
        self.version = parse_version(facts.version)
        self.version_text = (
            f"{self.version[0]}.{self.version[1]}"
            if self.version
            else f"{ASSUMED_VERSION[0]}.{ASSUMED_VERSION[1]} (version unknown; assumed)"
        )

    def setting(self, key: str) -> Setting:
        live = self.facts.live_settings.get(key)
        if live is not None:
            return Setting(live, "PGPOOL SHOW ALL")
        s = self.facts.settings.get(key)
        if s is not None:
            return Setting(s.value, f"{self.facts.conf_file or 'pgpool.conf'} line {s.line}")
        return Setting(
            compiled_default(key, self.version), f"compiled default of {self.version_text}"
        )

    def node_setting(self, key: str, node: int) -> Setting:
        """A per-node key (`health_check_period1`) falls back to the global one."""
        if f"{key}{node}" in self.facts.settings or f"{key}{node}" in self.facts.live_settings:
            return self.setting(f"{key}{node}")
        return self.setting(key)

    def number(self, key: str, node: int | None = None) -> float:
        s = self.node_setting(key, node) if node is not None else self.setting(key)
        value = s.value or "0"
        if key in _BYTE_KEYS:
            return as_bytes(value) or 0.0
        if key in _TIME_KEYS:
            return as_seconds(value) or 0.0
        return float(as_int(value) or 0)

    def flag(self, key: str) -> bool:
        return bool(as_bool(self.setting(key).value or "off"))

    def node_ids(self) -> list[int]:
        ids = {n.node_id for n in self.facts.nodes}
        for key in self.facts.settings:
            m = _PER_NODE.match(key)
            if m and m.group(1) in ("backend_hostname", "backend_port"):
                ids.add(int(m.group(2)))
        return sorted(ids)

    def node_address(self, node: int) -> str:
        for n in self.facts.nodes:
            if n.node_id == node:
                return f"{n.hostname}:{n.port}"
        host = self.setting(f"backend_hostname{node}").value or "?"
        port = self.setting(f"backend_port{node}").value or "5432"
        return f"{host}:{port}"

    def standbys(self) -> list[int]:
        """Nodes that serve reads besides the primary: console roles, else every node but 0."""
        if self.facts.nodes:
            return [n.node_id for n in self.facts.nodes if n.role == "standby"]
        return [n for n in self.node_ids() if n != 0]

    def load_balancing(self) -> bool:
        return self.flag("load_balance_mode")


# -- the console --------------------------------------------------------------------------------


def _last_result(cur: Any, sql: str) -> list[dict[str, str]]:
    """Rows of the last non-empty result set (4.3.5 sends an empty one first for some SHOWs)."""
    cur.execute(sql)
    rows: list[dict[str, str]] = []
    while True:
        if cur.description is not None:
            names = [d.name for d in cur.description]
            got = [dict(zip(names, r, strict=False)) for r in cur.fetchall()]
            if got:
                rows = got
        if not cur.nextset():
            return rows


def _num(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def listen_queue(port: int) -> int | None:
    """Connections waiting in the kernel accept queue of a local listener on `port` (Linux:
    rx_queue of the LISTEN row in /proc/net/tcp[6]); None when no such listener is visible."""
    total, seen = 0, False
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path, encoding="ascii") as fh:
                next(fh, None)
                for line in fh:
                    parts = line.split()
                    if len(parts) < 5 or parts[3] != "0A":
                        continue
                    if int(parts[1].rsplit(":", 1)[1], 16) != port:
                        continue
                    seen = True
                    total += int(parts[4].split(":")[1], 16)
        except (OSError, ValueError, IndexError):
            continue
    return total if seen else None


def read_console(
    dsn: str, *, sample_seconds: float = 0, interval: float = 0.5, connect_timeout: int = 10
) -> PgpoolFacts:
    """SHOW POOL_VERSION / POOL_NODES once, SHOW POOL_PROCESSES and POOL_POOLS every `interval`
    for `sample_seconds` (at least once), PGPOOL SHOW ALL for the running values. The
    advisor's own session occupies one child and is counted in every sample (the checks
    subtract it). Raises `PgpoolConsoleError` (one sentence, no password)."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from advisor.collect.connect import describe_connect_error, describe_error
    from advisor.snapshot import PgpoolFacts, PgpoolNode

    try:
        params: dict[str, Any] = conninfo_to_dict(dsn)
    except psycopg.Error:
        raise PgpoolConsoleError("the --pgpool-dsn connection string is not valid.") from None
    params.setdefault("connect_timeout", connect_timeout)
    params.setdefault("application_name", "advisor")
    try:
        # prepare_threshold=None: psycopg would prepare a SHOW run 5 times under a name, and
        # pgpool then forwards "SHOW POOL_POOLS" to a backend, which does not know it.
        conn = psycopg.connect(**params, autocommit=True, prepare_threshold=None)
    except psycopg.Error as exc:
        raise PgpoolConsoleError(
            "pgpool console: "
            + describe_connect_error(dsn, exc)
            + " (a pgpool whose children are all busy also makes new clients wait)"
        ) from None
    facts = PgpoolFacts(dsn_host=str(params.get("host") or "local"))
    try:
        with conn, conn.cursor() as cur:
            version_rows = _last_result(cur, "SHOW POOL_VERSION")
            facts.version = version_rows[0].get("pool_version") if version_rows else None
            for r in _last_result(cur, "PGPOOL SHOW ALL"):
                key, value = (r.get("item") or "").lower(), r.get("value") or ""
                if key and not PASSWORD_KEY.search(key):  # passwords stay out of snapshots
                    facts.live_settings[key] = value
            for r in _last_result(cur, "SHOW POOL_NODES"):
                facts.nodes.append(
                    PgpoolNode(
                        node_id=int(r["node_id"]),
                        hostname=r.get("hostname") or "",
                        port=int(r.get("port") or 0),
                        status=r.get("status") or "",
                        pg_status=r.get("pg_status"),  # 4.3+
                        lb_weight=_num(r.get("lb_weight")) or 0.0,
                        role=r.get("role") or "",
                        pg_role=r.get("pg_role"),
                        select_cnt=int(_num(r.get("select_cnt")) or 0),
                        load_balance_node=r.get("load_balance_node") == "true",
                        replication_delay=r.get("replication_delay"),
                        replication_state=r.get("replication_state") or None,
                    )
                )
            port = int(params.get("port") or 9999)
            local = str(params.get("host") or "").startswith(("/", "127.", "localhost", "::1"))
            primary = next((n.node_id for n in facts.nodes if n.role == "primary"), 0)
            start = time.monotonic()
            while True:
                t = time.monotonic() - start
                sample, idle_pids = _sample(cur, t, listen_queue(port) if local else None, primary)
                facts.samples.append(sample)
                if t + interval > sample_seconds:
                    break
                time.sleep(interval)
            if idle_pids and not any(sample.idle_seconds):
                sample.idle_seconds = _idle_seconds(cur, idle_pids)
    except psycopg.Error as exc:
        raise PgpoolConsoleError("pgpool console: " + describe_error(dsn, exc)) from None
    facts.console = True
    facts.sample_seconds = facts.samples[-1].t if facts.samples else 0.0
    return facts


def _idle_seconds(cur: Any, backend_pids: list[int]) -> list[float]:
    """How long the primary's backends of idle children have been idle. pgpool counts
    client_idle_duration only while client_idle_limit > 0, so ask pg_stat_activity instead:
    through pgpool a query on a system catalog goes to the primary (§3.4). One query, after
    the sample, so it barely moves select_cnt; rows hidden from this role are left out."""
    cur.execute(
        "-- advisor: idle time of pgpool children's backends\n"
        "SELECT extract(epoch FROM now() - state_change)::float8 FROM pg_stat_activity "
        "WHERE pid = ANY(%s) AND state LIKE 'idle%%' AND state_change IS NOT NULL",
        (backend_pids,),
    )
    return sorted((round(float(r[0]), 1) for r in cur.fetchall()), reverse=True)


def _sample(cur: Any, t: float, waiting: int | None, primary: int) -> tuple[Any, list[int]]:
    """One PgpoolSample and the primary backend pids of the children whose client is idle."""
    from advisor.snapshot import PgpoolSample

    procs = _last_result(cur, "SHOW POOL_PROCESSES")
    idle_for: dict[str, float] = {}
    idle_pids: list[int] = []
    for r in _last_result(cur, "SHOW POOL_POOLS"):  # 4.3+: client_idle_duration per pool
        d = _num(r.get("client_idle_duration"))
        if r.get("status") not in ("Idle", "Idle in transaction"):
            continue
        pid = r.get("pool_pid") or ""
        if d:
            idle_for[pid] = max(idle_for.get(pid, 0.0), d)
        backend = int(_num(r.get("pool_backendpid")) or 0)
        if backend and r.get("backend_id") == str(primary) and r.get("pool_connected") == "1":
            idle_pids.append(backend)
    # Before 4.3 there is no status column: a child with a database serves a client.
    status = [r.get("status") or ("Execute command" if r.get("database") else "") for r in procs]
    return PgpoolSample(
        t=round(t, 2),
        children=len(procs),
        busy=sum(1 for s in status if s and s != "Wait for connection"),
        idle=status.count("Idle"),
        idle_in_transaction=status.count("Idle in transaction"),
        executing=status.count("Execute command"),
        idle_seconds=sorted(idle_for.values(), reverse=True),
        waiting=waiting,
    ), idle_pids


class PgpoolConsoleError(RuntimeError):
    """The pgpool console cannot be read (exit 3); one sentence without secrets."""


# -- facts from a file --------------------------------------------------------------------------


def conf_facts(conf: PgpoolConf, facts: PgpoolFacts | None = None) -> PgpoolFacts:
    """The file's settings into (new or console) facts; passwords become their kind only."""
    from advisor.snapshot import PgpoolFacts, PgpoolSetting

    facts = facts or PgpoolFacts()
    facts.conf_file = conf.source
    for key, e in conf.entries.items():
        value = password_kind(e.value) if PASSWORD_KEY.search(key) else e.value
        facts.settings[key] = PgpoolSetting(value=value, line=e.line)
    return facts


def probe_backends(facts: PgpoolFacts, dsn: str | None, *, statement_timeout_ms: int) -> None:
    """Read max_connections and the reserved slots of every backend node straight from that
    server (the budget rule PP01 holds per node), with `dsn`'s user and credentials and the
    node's host and port; a node that cannot be read is listed in `facts.unreachable`."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from advisor.collect import CollectError
    from advisor.collect.connect import connect
    from advisor.snapshot import PgpoolBackendLimit

    view = PgpoolView(facts)
    try:
        base: dict[str, Any] = conninfo_to_dict(dsn or "")
    except psycopg.Error:
        return
    for node in view.node_ids():
        host, _, port = view.node_address(node).rpartition(":")
        target = make_conninfo(**{**base, "host": host, "port": port})
        try:
            with connect(target, statement_timeout_ms=statement_timeout_ms) as conn:
                row = conn.execute(
                    "-- advisor: connection limits of a pgpool backend node\n"
                    "SELECT current_setting('max_connections')::int AS max_connections,"
                    " current_setting('superuser_reserved_connections')::int AS superuser,"
                    " coalesce(current_setting('reserved_connections', true), '0')::int AS rsv"
                ).fetchone()
                conn.rollback()
        except (CollectError, psycopg.Error) as exc:
            facts.unreachable.append(f"node {node} ({host}:{port}): {str(exc).rstrip('.')}")
            continue
        assert row is not None
        facts.backend_limits.append(
            PgpoolBackendLimit(
                node_id=node,
                address=f"{host}:{port}",
                max_connections=row["max_connections"],
                superuser_reserved_connections=row["superuser"],
                reserved_connections=row["rsv"],
            )
        )


def gather(
    conf_path: str | None,
    pgpool_dsn: str | None,
    server_dsn: str | None,
    *,
    sample_seconds: float = 0,
    statement_timeout_ms: int = 30_000,
) -> PgpoolFacts:
    """Everything about one pgpool-II: its file, its console (sampled), and the connection
    limits of each backend node (read with `server_dsn`'s credentials, else the console's).
    The file is parsed first, so a bad file fails before anything is connected to."""
    conf = read_conf(conf_path) if conf_path else None
    if pgpool_dsn:
        facts = read_console(pgpool_dsn, sample_seconds=sample_seconds)
    else:
        from advisor.snapshot import PgpoolFacts

        facts = PgpoolFacts()
    if conf is not None:
        conf_facts(conf, facts)
    if server_dsn or pgpool_dsn:
        probe_backends(facts, server_dsn or pgpool_dsn, statement_timeout_ms=statement_timeout_ms)
    return facts
