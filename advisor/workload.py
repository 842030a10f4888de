"""Statement and PL/pgSQL analysis with pglast, for the workload rules (PQ102, PQ117-PQ119).

Imported lazily by `advisor.checks.workload` only when such a check runs: pglast is a C
extension and the offline `advisor explain` path never needs it. Parse results are cached by
text, so a text shared by several rows is parsed once. Texts that do not parse (truncated
pg_stat_statements texts, a function body cut at the collector's cap) yield nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pglast import parse_plpgsql
from pglast.parser import ParseError, parse_sql_json

# Built-ins labelled PARALLEL UNSAFE that show up in read queries (Appendix A, table 1A).
UNSAFE_BUILTINS = frozenset(
    {
        "nextval",
        "currval",
        "setval",
        "lastval",
        "current_schema",
        "set_config",
        "txid_current",
        "pg_current_xact_id",
    }
)
_LO = re.compile(r"^lo_")


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of a parsed JSON tree, depth first, in text order. A stack,
    not recursive generators: thousands of statement texts go through here per report."""
    stack: list[Any] = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            pairs = list(cur.items())
            yield from pairs
            stack.extend(v for _, v in reversed(pairs) if isinstance(v, dict | list))
        elif isinstance(cur, list):
            stack.extend(v for v in reversed(cur) if isinstance(v, dict | list))


@lru_cache(maxsize=4096)
def _parse(text: str) -> list[tuple[str, Any]] | None:
    """The statements of `text` as (node type, body) in pglast JSON, or None when it does
    not parse."""
    try:
        tree = json.loads(parse_sql_json(text))
    except (ParseError, ValueError):
        return None
    out = []
    for s in tree.get("stmts", []):
        stmt = s.get("stmt", {})
        kind = next(iter(stmt), "")
        out.append((kind, stmt.get(kind, {})))
    return out


def _func_name(call: dict[str, Any]) -> str:
    parts = call.get("funcname") or []
    last = parts[-1] if parts else {}
    return str(last.get("String", {}).get("sval", "")).lower()


def _qualifier(call: dict[str, Any]) -> str | None:
    parts = call.get("funcname") or []
    if len(parts) < 2:
        return None
    return str(parts[-2].get("String", {}).get("sval", "")).lower()


@dataclass(frozen=True, slots=True)
class StatementShape:
    kind: str  # the top node type: SelectStmt, DeclareCursorStmt, ...
    reads_tables: bool  # a FROM item names a relation
    unsafe_calls: tuple[str, ...]  # unsafe built-ins called with function-call syntax
    cursor_name: str | None = None
    cursor_hold: bool = False


@lru_cache(maxsize=8192)
def statement_shape(text: str) -> StatementShape | None:
    """What the first statement of `text` is and which unsafe built-ins it calls; None when
    the text does not parse."""
    stmts = _parse(text)
    if not stmts:
        return None
    kind, body = stmts[0]
    calls: list[str] = []
    reads = False
    for key, value in _walk(body):
        if key == "RangeVar":
            reads = True
        elif key == "FuncCall" and isinstance(value, dict):
            name = _func_name(value)
            if _qualifier(value) not in (None, "pg_catalog"):
                continue  # a user function that happens to share the name
            if value.get("funcformat") == "COERCE_SQL_SYNTAX":
                continue  # `current_schema` written as a keyword (older parsers)
            if (name in UNSAFE_BUILTINS or _LO.match(name)) and name not in calls:
                calls.append(name)
    cursor = kind == "DeclareCursorStmt"
    return StatementShape(
        kind=kind,
        reads_tables=reads,
        unsafe_calls=tuple(calls),
        cursor_name=str(body.get("portalname")) if cursor else None,
        cursor_hold=bool(body.get("options", 0) & 0x20) if cursor else False,
    )


# -- PL/pgSQL ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Construct:
    """A PL/pgSQL statement that never runs its query with parallel workers."""

    kind: str  # "FOR-IN-query loop", "OPEN cursor", "assignment from a query", "SELECT INTO"
    line: int | None  # line of the function body (1 = the line holding the opening quote)
    query: str


@dataclass(frozen=True, slots=True)
class PlpgsqlShape:
    constructs: tuple[Construct, ...]
    exception_lines: tuple[int, ...]  # lines of blocks with an EXCEPTION clause

    @property
    def has_exception_block(self) -> bool:
        return bool(self.exception_lines)


def _expr_query(stmt: dict[str, Any], key: str) -> str:
    expr = stmt.get(key) or {}
    return str(expr.get("PLpgSQL_expr", {}).get("query", ""))


_ASSIGN = re.compile(r"^.*?:=\s*", re.S)


def _query_reads(query: str) -> bool:
    shape = statement_shape(query)
    return shape is not None and shape.reads_tables


def _assignment_reads(query: str) -> bool:
    """`v := <expr>`: does the expression have a FROM clause or a sub-SELECT over a table?"""
    expr = _ASSIGN.sub("", query, count=1)
    return _query_reads("SELECT " + expr)


@lru_cache(maxsize=1024)
def plpgsql_shape(definition: str) -> PlpgsqlShape | None:
    """Parse a `CREATE FUNCTION ... LANGUAGE plpgsql` text (pg_get_functiondef output); None
    when it does not parse (a body cut at the collector's cap, a newer syntax)."""
    try:
        tree = parse_plpgsql(definition)
    except (ParseError, ValueError, RuntimeError):
        return None
    constructs: list[Construct] = []
    exception_lines: list[int] = []
    for key, value in _walk(tree):
        if not isinstance(value, dict):
            continue
        line = value.get("lineno")
        if key in ("PLpgSQL_stmt_fors", "PLpgSQL_stmt_forc"):
            query = _expr_query(value, "query")
            constructs.append(Construct("FOR-IN-query loop", line, query))
        elif key == "PLpgSQL_stmt_open":
            query = _expr_query(value, "query") or _expr_query(value, "dynquery")
            constructs.append(Construct("OPEN cursor", line, query))
        elif key == "PLpgSQL_stmt_assign":
            query = _expr_query(value, "expr")
            if _assignment_reads(query):
                constructs.append(Construct("assignment from a query", line, query))
        elif key == "PLpgSQL_stmt_execsql" and value.get("into"):
            query = _expr_query(value, "sqlstmt")
            shape = statement_shape(query)
            if shape is not None and shape.kind == "SelectStmt" and shape.reads_tables:
                constructs.append(Construct("SELECT INTO", line, query))
        elif key == "PLpgSQL_stmt_block" and value.get("exceptions"):
            exception_lines.append(int(line or 0))
    constructs.sort(key=lambda c: c.line or 0)
    return PlpgsqlShape(tuple(constructs), tuple(sorted(exception_lines)))


def shorten(text: str, width: int = 120) -> str:
    """`text` on one line, cut to `width` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


# -- statement-level hazards for the pg_stat_statements half of the PQ1xx rules ---------------

_LOCKS = {
    "LCS_FORUPDATE": "FOR UPDATE",
    "LCS_FORNOKEYUPDATE": "FOR NO KEY UPDATE",
    "LCS_FORSHARE": "FOR SHARE",
    "LCS_FORKEYSHARE": "FOR KEY SHARE",
}
_DML_KINDS = {
    "InsertStmt": "INSERT",
    "UpdateStmt": "UPDATE",
    "DeleteStmt": "DELETE",
    "MergeStmt": "MERGE",
}

Relation = tuple[str | None, str]  # (schema as written or None, name)


@dataclass(frozen=True, slots=True)
class ModifyingCte:
    name: str
    operation: str  # INSERT, UPDATE, DELETE, MERGE
    target: str  # the table as written


@dataclass(frozen=True, slots=True)
class SubqueryLimit:
    text: str  # "LIMIT $1", "LIMIT 10 OFFSET $2"
    relations: tuple[Relation, ...]  # what the subquery reads
    ordered: bool  # the subquery has ORDER BY


@dataclass(frozen=True, slots=True)
class Aggregate:
    name: str
    how: str  # "distinct", "order", "within group" or "plain"


@dataclass(frozen=True, slots=True)
class Hazards:
    """What a statement text says about parallel eligibility (knowledge §1.A, §1.B, §1.C)."""

    kind: str
    relations: tuple[Relation, ...]  # read in FROM/JOIN (CTE names and DML targets left out)
    outside_modifying_ctes: tuple[Relation, ...]  # read outside data-modifying CTEs
    modifying_ctes: tuple[ModifyingCte, ...]
    locking: str | None  # "FOR UPDATE", ...
    subquery_limits: tuple[SubqueryLimit, ...]
    aggregates: tuple[Aggregate, ...]
    grouping_sets: bool
    unsafe_calls: tuple[str, ...]


def _relations(node: Any, ctes: frozenset[str]) -> tuple[Relation, ...]:
    out: list[Relation] = []
    for key, value in _walk(node):
        if key == "RangeVar" and isinstance(value, dict):
            schema = value.get("schemaname")
            name = str(value.get("relname", ""))
            if schema is None and name in ctes:
                continue
            rel = (str(schema) if schema else None, name)
            if rel not in out:
                out.append(rel)
    return tuple(out)


def _expr_text(node: Any) -> str:
    """$1, 10, or <expr> for a LIMIT/OFFSET expression."""
    if not isinstance(node, dict):
        return "<expr>"
    if "ParamRef" in node:
        return f"${node['ParamRef'].get('number', '?')}"
    const = node.get("A_Const")
    if isinstance(const, dict) and "ival" in const:
        return str(const["ival"].get("ival", 0))
    return "<expr>"


def _target(relation: Any) -> str:
    if not isinstance(relation, dict):
        return "?"
    schema = relation.get("schemaname")
    name = str(relation.get("relname", "?"))
    return f"{schema}.{name}" if schema else name


@lru_cache(maxsize=8192)
def statement_hazards(text: str) -> Hazards | None:
    """The parallel hazards of the first statement of `text`; None when it does not parse."""
    stmts = _parse(text)
    if not stmts:
        return None
    kind, body = stmts[0]
    ctes: set[str] = set()
    modifying: list[ModifyingCte] = []
    locking: str | None = None
    limits: list[SubqueryLimit] = []
    aggregates: list[Aggregate] = []
    grouping = False
    named: list[Relation] = []
    for key, value in _walk(body):
        if not isinstance(value, dict | list):
            continue
        if key == "RangeVar" and isinstance(value, dict):
            schema = value.get("schemaname")
            rel = (str(schema) if schema else None, str(value.get("relname", "")))
            if rel not in named:
                named.append(rel)
        elif key == "CommonTableExpr" and isinstance(value, dict):
            name = str(value.get("ctename", ""))
            ctes.add(name)
            query = value.get("ctequery") or {}
            dml = next((k for k in query if k in _DML_KINDS), None)
            if dml is not None:
                modifying.append(
                    ModifyingCte(name, _DML_KINDS[dml], _target(query[dml].get("relation")))
                )
        elif key == "lockingClause" and value and locking is None:
            first = value[0].get("LockingClause", {}) if isinstance(value, list) else {}
            locking = _LOCKS.get(str(first.get("strength")), "FOR UPDATE/SHARE")
        elif key == "RangeSubselect" and isinstance(value, dict):
            sub = (value.get("subquery") or {}).get("SelectStmt") or {}
            parts = []
            if sub.get("limitCount") is not None:
                parts.append(f"LIMIT {_expr_text(sub['limitCount'])}")
            if sub.get("limitOffset") is not None:
                parts.append(f"OFFSET {_expr_text(sub['limitOffset'])}")
            if parts:
                limits.append(
                    SubqueryLimit(
                        " ".join(parts), _relations(sub, frozenset()), "sortClause" in sub
                    )
                )
        elif key == "FuncCall" and isinstance(value, dict) and "over" not in value:
            if value.get("agg_within_group"):
                how = "within group"
            elif value.get("agg_distinct"):
                how = "distinct"
            elif value.get("agg_order"):
                how = "order"
            else:
                how = "plain"
            agg = Aggregate(_func_name(value), how)
            if agg not in aggregates:
                aggregates.append(agg)
        elif key == "GroupingSet":
            grouping = True
    frozen = frozenset(ctes)
    relations = tuple(r for r in named if not (r[0] is None and r[1] in frozen))
    outside = relations
    if modifying:
        names = {m.name for m in modifying}
        rest = {k: v for k, v in body.items() if k != "withClause"}
        rest["kept_ctes"] = [
            c
            for c in (body.get("withClause") or {}).get("ctes", [])
            if c.get("CommonTableExpr", {}).get("ctename") not in names
        ]
        outside = _relations(rest, frozen)
    shape = statement_shape(text)
    return Hazards(
        kind=kind,
        relations=relations,
        outside_modifying_ctes=outside,
        modifying_ctes=tuple(modifying),
        locking=locking,
        subquery_limits=tuple(limits),
        aggregates=tuple(aggregates),
        grouping_sets=grouping,
        unsafe_calls=shape.unsafe_calls if shape is not None else (),
    )
