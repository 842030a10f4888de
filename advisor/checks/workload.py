"""PQ102, PQ117, PQ118, PQ119: the workload's own SQL and PL/pgSQL, parsed with pglast.

PQ102 and PQ117 read pg_stat_statements texts (parameters show as $n and parse fine); PQ118
and PQ119 read the PL/pgSQL functions the collector listed with their `pg_get_functiondef`
text (knowledge/parallel-query.md §1.A table 1A, §1.F, §2.4). `advisor.workload` (pglast) is
imported inside each check, so only a run that has such facts pays for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from advisor.engine import Card, Evidence, Facts, check

if TYPE_CHECKING:  # pydantic stays off the offline path
    from advisor.snapshot import FunctionFact, StatementStat


def _share(stmt: StatementStat, total: float) -> str:
    return f"{stmt.total_exec_time / total:.1%}" if total > 0 else "?"


def _visible(facts: Facts) -> tuple[list[StatementStat], float]:
    snap = facts.snapshot
    if snap is None:
        return [], 0.0
    rows = [s for s in snap.statements if not s.hidden and s.query]
    return rows, sum(s.total_exec_time for s in snap.statements)


def _statement_evidence(stmt: StatementStat, total: float) -> Evidence:
    from advisor.workload import shorten

    return {
        "queryid": stmt.queryid,
        "calls": stmt.calls,
        "total_ms": round(stmt.total_exec_time, 1),
        "mean_ms": round(stmt.mean_exec_time, 3),
        "share": _share(stmt, total),
        "role": stmt.role or "?",
        "query": shorten(stmt.query or ""),
    }


@check("PQ102")
def unsafe_builtin_in_query(facts: Facts, card: Card) -> Iterator[Evidence]:
    from advisor.workload import statement_shape

    rows, total = _visible(facts)
    for stmt in sorted(rows, key=lambda s: -s.total_exec_time):
        shape = statement_shape(stmt.query or "")
        if shape is None or shape.kind != "SelectStmt" or not shape.reads_tables:
            continue
        if not shape.unsafe_calls:
            continue
        calls = shape.unsafe_calls
        fixes = []
        if any(c in ("nextval", "currval", "setval", "lastval") for c in calls):
            fixes.append("move the sequence call out of the read query (fetch the value first)")
        if "current_schema" in calls:
            fixes.append("write current_schema without parentheses (the keyword form is safe)")
        if set(calls) - {"nextval", "currval", "setval", "lastval", "current_schema"}:
            fixes.append("compute the value once in the client and pass it as a parameter")
        yield {
            "where": f"statement {stmt.queryid}",
            **_statement_evidence(stmt, total),
            "functions": ", ".join(f"{c}()" for c in calls),
            "fixes": "; ".join(fixes),
        }


@check("PQ117")
def cursor_prevents_workers(facts: Facts, card: Card) -> Iterator[Evidence]:
    from advisor.workload import statement_shape

    rows, total = _visible(facts)
    for stmt in sorted(rows, key=lambda s: -s.total_exec_time):
        shape = statement_shape(stmt.query or "")
        if shape is None or shape.kind != "DeclareCursorStmt":
            continue
        yield {
            "where": f"statement {stmt.queryid}",
            **_statement_evidence(stmt, total),
            "cursor": shape.cursor_name or "?",
            "hold": " WITH HOLD" if shape.cursor_hold else "",
        }


def _plpgsql(facts: Facts) -> Iterator[FunctionFact]:
    snap = facts.snapshot
    if snap is None:
        return
    for fn in snap.functions:
        if fn.language == "plpgsql":
            yield fn


@check("PQ118")
def plpgsql_serial_construct(facts: Facts, card: Card) -> Iterator[Evidence]:
    from advisor.workload import plpgsql_shape, shorten

    for fn in _plpgsql(facts):
        shape = plpgsql_shape(fn.source) if fn.source else None
        if shape is None or not shape.constructs:
            continue
        items = [
            {"kind": c.kind, "line": c.line, "query": shorten(c.query, 100)}
            for c in shape.constructs
        ]
        listing = "; ".join(
            f"{c['kind']} at line {c['line'] if c['line'] is not None else '?'}" for c in items
        )
        yield {
            "where": f"function {fn.identity}",
            "function": fn.identity,
            "count": len(items),
            "constructs": items,
            "listing": listing,
        }


@check("PQ119")
def parallel_safe_with_exception(facts: Facts, card: Card) -> Iterator[Evidence]:
    from advisor.workload import plpgsql_shape

    version = facts.server_version_num
    if version is None or version >= 170000:
        return
    for fn in _plpgsql(facts):
        if fn.proparallel != "s":
            continue
        shape = plpgsql_shape(fn.source) if fn.source else None
        if shape is not None:
            if not shape.has_exception_block:
                continue
            how = "its parsed body has an EXCEPTION clause"
            lines = ", ".join(str(n) for n in shape.exception_lines)
            how += f" (block starting at line {lines})" if lines else ""
        elif fn.has_exception_block:
            how = "its body matches EXCEPTION ... WHEN (the body could not be parsed)"
        else:
            continue
        yield {
            "where": f"function {fn.identity}",
            "function": fn.identity,
            "how": how,
            "server_version_num": version,
            "alter": f"ALTER FUNCTION {fn.identity} PARALLEL RESTRICTED;",
        }
