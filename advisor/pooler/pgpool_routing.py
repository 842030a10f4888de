"""Where pgpool-II sends a statement, judged from its text (pglast) and the catalog facts.

The predicate follows pgpool 4.3's `where_to_send_main_replica` and `is_select_query`
(knowledge/poolers.md §3.4, verified live in artifacts/pgpool_4.3.5_routing_observed.txt): a
read can go to a standby when it is one SELECT (or SHOW, or COPY (SELECT) TO) without FOR
UPDATE/SHARE, INTO, a writing CTE, a system catalog, a temporary or unlogged table, or a
function pgpool treats as writing (volatile in pg_proc when both function lists are empty,
else the lists); with `allow_sql_comments = off` the text must also start with the statement
itself, not with a comment. Transaction context (reads after a write inside BEGIN ... COMMIT
go to the primary) is invisible in pg_stat_statements, so the share found here is an upper
bound; SHOW POOL_NODES select_cnt says what really happened.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from advisor.workload import _func_name, _parse, _qualifier, _walk

# Built-ins with pg_proc.provolatile = 'v' that show up in reads (a test checks each one
# against a real server's pg_proc).
VOLATILE_BUILTINS = frozenset(
    {
        "random",
        "setseed",
        "nextval",
        "setval",
        "currval",
        "lastval",
        "clock_timestamp",
        "timeofday",
        "gen_random_uuid",
        "pg_sleep",
        "set_config",
        "pg_advisory_lock",
        "pg_advisory_lock_shared",
        "pg_try_advisory_lock",
        "pg_try_advisory_lock_shared",
        "pg_advisory_unlock",
        "pg_advisory_xact_lock",
        "pg_try_advisory_xact_lock",
        "pg_notify",
        "lo_creat",
        "lo_create",
        "lo_import",
        "lo_unlink",
        "pg_cancel_backend",
        "pg_terminate_backend",
        "pg_reload_conf",
    }
)
# With allow_sql_comments = off, `is_select_query` wants one of these first (after blanks).
_READ_START = re.compile(r"^\s*[sS(wWtT]")

# The advisor's own statements: the collector's SQL files start with "-- <file name>:", and
# the pgpool reader's statements with "-- advisor:".
_OWN = re.compile(r"^\s*-- (advisor|[a-z_]+?)(_post_\d+)?:")


@cache
def _own_names() -> frozenset[str]:
    import os

    here = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "sql")
    try:
        names = {n.removesuffix(".sql") for n in os.listdir(here) if n.endswith(".sql")}
    except OSError:
        names = set()
    return frozenset(names | {"advisor"})


def is_own(text: str) -> bool:
    """A statement the advisor itself ran (its collector or its pgpool reader)."""
    m = _OWN.match(text)
    return m is not None and m.group(1) in _own_names()


@dataclass(frozen=True, slots=True)
class Route:
    read: bool  # a statement pgpool could balance at all (SELECT, SHOW, COPY ... TO)
    balanceable: bool
    reason: str = ""  # why a read goes to the primary
    functions: tuple[str, ...] = ()  # the writing/volatile functions that pin it
    comment: bool = False  # pinned by a leading comment


@dataclass(frozen=True, slots=True)
class Catalog:
    """What the routing needs from the snapshot and pgpool.conf."""

    volatile: frozenset[str]  # user functions (name and schema.name) that are volatile
    nonvolatile: frozenset[str]  # user functions known to be stable/immutable
    temp_or_unlogged: frozenset[str]  # relations (name and schema.name)
    write_list: tuple[str, ...] = ()  # write_function_list regexes
    read_only_list: tuple[str, ...] = ()  # read_only_function_list regexes
    allow_sql_comments: bool = False

    def writes(self, name: str, qualified: str | None) -> bool:
        names = [n for n in (name, qualified) if n]
        if self.write_list:
            return any(re.fullmatch(p, n) for p in self.write_list for n in names)
        if self.read_only_list:
            return not any(re.fullmatch(p, n) for p in self.read_only_list for n in names)
        if qualified and qualified in self.volatile:
            return True
        if any(n in self.nonvolatile for n in names):
            return False
        return name in self.volatile or name in VOLATILE_BUILTINS


def function_list(value: str | None) -> tuple[str, ...]:
    """pgpool's comma-separated regex lists ('' = empty), anchored as pgpool anchors them."""
    out = []
    for raw in (value or "").split(","):
        item = raw.strip().strip("'\"")
        if item:
            try:
                re.compile(item)
            except re.error:
                item = re.escape(item)
            out.append(item)
    return tuple(out)


def _relation(node: dict[str, Any]) -> tuple[str, str | None]:
    name = str(node.get("relname", "")).lower()
    schema = node.get("schemaname")
    return name, (f"{str(schema).lower()}.{name}" if schema else None)


def route(text: str, catalog: Catalog) -> Route | None:
    """How pgpool routes `text`; None when it does not parse."""
    stmts = _parse(text)
    if stmts is None or not stmts:
        return None
    if len(stmts) > 1:
        return Route(read=False, balanceable=False, reason="multi-statement string")
    kind, body = stmts[0]
    if kind == "VariableShowStmt":
        return Route(read=True, balanceable=True)
    if kind == "CopyStmt" and not body.get("is_from") and body.get("query"):
        body = body["query"]
    elif kind != "SelectStmt":
        return Route(read=False, balanceable=False, reason=kind)
    elif not catalog.allow_sql_comments and not _READ_START.match(text):
        return Route(read=True, balanceable=False, reason="leading comment", comment=True)
    functions: list[str] = []
    for key, value in _walk(body):
        if not isinstance(value, dict | list):
            continue
        if key == "lockingClause" and value:
            return Route(read=True, balanceable=False, reason="FOR UPDATE/SHARE")
        if key == "intoClause" and value:
            return Route(read=True, balanceable=False, reason="SELECT INTO")
        if key == "CommonTableExpr" and isinstance(value, dict):
            inner = value.get("ctequery", {})
            if isinstance(inner, dict) and "SelectStmt" not in inner:
                return Route(read=True, balanceable=False, reason="writing CTE")
        if key == "RangeVar" and isinstance(value, dict):
            name, qualified = _relation(value)
            schema = (qualified or "").split(".")[0]
            if schema in ("pg_catalog", "information_schema") or name.startswith("pg_"):
                return Route(read=True, balanceable=False, reason="system catalog")
            if value.get("relpersistence") in ("t", "u") or schema == "pg_temp":
                return Route(read=True, balanceable=False, reason="temporary or unlogged table")
            if name in catalog.temp_or_unlogged or (qualified in catalog.temp_or_unlogged):
                return Route(read=True, balanceable=False, reason="temporary or unlogged table")
        if key == "FuncCall" and isinstance(value, dict):
            name = _func_name(value)
            fschema = _qualifier(value)
            qualified = f"{fschema}.{name}" if fschema else None
            if catalog.writes(name, qualified) and (qualified or name) not in functions:
                functions.append(qualified or name)
    if functions:
        return Route(
            read=True,
            balanceable=False,
            reason="volatile or writing function",
            functions=tuple(functions),
        )
    return Route(read=True, balanceable=True)


def catalog_from(facts: Any, view: Any) -> Catalog:
    """The routing catalog from the engine's facts (snapshot functions and relations) and the
    pgpool settings view (function lists, allow_sql_comments)."""
    volatile: set[str] = set()
    nonvolatile: set[str] = set()
    temp: set[str] = set()
    snap = facts.snapshot
    if snap is not None:
        for f in snap.functions:
            names = {f.name.lower(), f"{f.schema_name}.{f.name}".lower()}
            (volatile if f.provolatile == "v" else nonvolatile).update(names)
        for r in snap.relations:
            if r.relpersistence in ("t", "u"):
                temp.update({r.name.lower(), r.qualified.lower()})
    writes = function_list(view.setting("write_function_list").value) or function_list(
        view.setting("black_function_list").value
    )
    reads = function_list(view.setting("read_only_function_list").value) or function_list(
        view.setting("white_function_list").value
    )
    return Catalog(
        volatile=frozenset(volatile - nonvolatile),
        nonvolatile=frozenset(nonvolatile),
        temp_or_unlogged=frozenset(temp),
        write_list=writes,
        read_only_list=reads,
        allow_sql_comments=view.flag("allow_sql_comments"),
    )


@dataclass(frozen=True, slots=True)
class Potential:
    """Shares of pg_stat_statements calls and time by route."""

    calls: int
    time_ms: float
    balanceable_calls: int
    balanceable_ms: float
    read_calls: int
    transaction_calls: int  # BEGIN/START TRANSACTION calls: reads inside them may stay primary

    @property
    def call_share(self) -> float:
        return self.balanceable_calls / self.calls if self.calls else 0.0

    @property
    def time_share(self) -> float:
        return self.balanceable_ms / self.time_ms if self.time_ms else 0.0


def potential(rows: Iterable[Any], catalog: Catalog) -> Potential:
    calls = balance_calls = read_calls = tx_calls = 0
    time_ms = balance_ms = 0.0
    for s in rows:
        if is_own(s.query or ""):
            continue
        r = route(s.query or "", catalog)
        calls += s.calls
        time_ms += s.total_exec_time
        if r is None:
            continue
        if r.reason == "TransactionStmt" and re.match(r"\s*(begin|start)", s.query or "", re.I):
            tx_calls += s.calls
        if r.reason == "system catalog":
            continue  # tools and pgpool itself (relcache lookups), not the application
        if r.read:
            read_calls += s.calls
        if r.balanceable:
            balance_calls += s.calls
            balance_ms += s.total_exec_time
    return Potential(calls, time_ms, balance_calls, balance_ms, read_calls, tx_calls)
