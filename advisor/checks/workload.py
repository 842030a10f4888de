"""PQ102, PQ113, PQ117, PQ118, PQ119 and the pg_stat_statements half of PQ106, PQ107, PQ111,
PQ112: the workload's own SQL and PL/pgSQL, parsed with pglast.

PQ102, PQ113 and PQ117 read pg_stat_statements texts (parameters show as $n and parse fine);
PQ118 and PQ119 read the PL/pgSQL functions the collector listed with their
`pg_get_functiondef` text (knowledge/parallel-query.md §1.A table 1A, §1.F, §2.4). The
`pgss_*` detectors find the hazards of §1.A/§1.B/§1.C in statement texts and resolve the tables
they read against the catalog facts, so a statement is reported only when it reads a table big
enough for workers; `advisor.checks.eligibility` runs them next to its plan detectors.
`advisor.workload` (pglast) is imported inside each function, so only a run that has such facts
pays for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from advisor.checks.base import (
    SCAN_TYPES,
    analysed_plans,
    format_bytes,
    min_table_blocks,
    setting,
    setting_number,
    size_rule_workers,
    size_text,
    where,
)
from advisor.engine import Card, Evidence, Facts, check
from advisor.plan import Plan

if TYPE_CHECKING:  # pydantic stays off the offline path
    from advisor.snapshot import FunctionFact, RelationFact, Snapshot, StatementStat
    from advisor.workload import Hazards, Relation


def _share(stmt: StatementStat, total: float) -> str:
    return f"{stmt.total_exec_time / total:.1%}" if total > 0 else "?"


def _visible(facts: Facts) -> tuple[list[StatementStat], float]:
    snap = facts.snapshot
    if snap is None:
        return [], 0.0
    from advisor.collect import is_advisor_text  # the live package: not on the offline path

    rows = [
        s
        for s in snap.statements
        if not s.hidden and s.query and not s.text_redacted and not is_advisor_text(s.query)
    ]
    total = sum(s.total_exec_time for s in snap.statements if not is_advisor_text(s.query))
    return rows, total


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
    """DECLARE CURSOR texts in pg_stat_statements, and analysed plans whose Gather launched no
    worker while the pool had room (the executor's non-parallel mode, §2.4)."""
    from advisor.workload import shorten, statement_shape

    rows, total = _visible(facts)
    for stmt in sorted(rows, key=lambda s: -s.total_exec_time):
        shape = statement_shape(stmt.query or "")
        if shape is None or shape.kind != "DeclareCursorStmt":
            continue
        hold = " WITH HOLD" if shape.cursor_hold else ""
        yield {
            "where": f"statement {stmt.queryid}",
            **_statement_evidence(stmt, total),
            "cursor": shape.cursor_name or "?",
            "hold": hold,
            "seen": (
                f"Statement {stmt.queryid} declares cursor {shape.cursor_name or '?'}{hold} "
                f"({stmt.calls:,} calls, {stmt.total_exec_time:,.1f} ms in all, "
                f"{_share(stmt, total)} of the recorded execution time)"
            ),
        }
    for plan in analysed_plans(facts):
        for node in plan.gathers():
            planned = node.workers_planned or 0
            if planned <= 0 or node.workers_launched != 0 or node.never_executed:
                continue
            room = _pool_room(facts, plan, planned)
            if room is None:
                continue
            query = plan.query_text
            yield {
                "where": where(plan, node),
                "node": node.label,
                "planned": planned,
                "launched": 0,
                "pool": room,
                "query": shorten(str(query)) if query else plan.label,
                "seen": (
                    f"{node.label} planned {planned} worker{'s' if planned > 1 else ''} and "
                    f"launched none although the pool had room ({room})"
                ),
            }


def _pool_room(facts: Facts, plan: Plan, planned: int) -> str | None:
    """Why the pool was not what stopped the workers, or None when it may have been: the
    pool is at least `planned`, no activity sample saw it too full to give them, and the PG 18
    counters of this database show no shortage (§2.2, §5.2)."""
    snap = facts.snapshot
    if snap is None:
        return None
    value, origin = setting(facts, plan, "max_parallel_workers")
    pool = setting_number(value) if value is not None else None
    if pool is None or pool < planned:
        return None  # the pool itself is too small: PQ201 says so
    parts = [f"max_parallel_workers = {pool:g}, {origin}"]
    seen = False
    peaks = snap.activity_peaks()
    if peaks is not None:
        if peaks.parallel_workers + planned > pool:
            return None
        parts.append(
            f"at most {peaks.parallel_workers} parallel workers busy in {peaks.samples} "
            f"pg_stat_activity sample{'s' if peaks.samples > 1 else ''}"
        )
        seen = True
    for db in snap.database_stats:
        to_launch, launched = db.parallel_workers_to_launch, db.parallel_workers_launched
        if db.datname != snap.target.database or not to_launch or launched is None:
            continue
        if launched / to_launch < 0.9:
            return None  # a real shortage: PQ202
        parts.append(f"{launched:,} of {to_launch:,} workers launched in database {db.datname}")
        seen = True
    return "; ".join(parts) if seen else None


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


# -- statement texts resolved against the catalog -------------------------------------------------


def resolve(snap: Snapshot, rel: Relation) -> RelationFact | None:
    """The catalog relation a statement names: by schema when written, else the only one of
    that name, else the one in public (the usual search_path)."""
    schema, name = rel
    found = [r for r in snap.relations if r.name == name]
    if schema is not None:
        found = [r for r in found if r.schema_name == schema]
    if len(found) > 1:
        found = [r for r in found if r.schema_name == "public"]
    return found[0] if len(found) == 1 else None


def _largest(snap: Snapshot, rels: tuple[Relation, ...]) -> RelationFact | None:
    known = [r for rel in rels if (r := resolve(snap, rel)) is not None and r.relkind in "rm"]
    return max(known, key=lambda r: r.blocks, default=None)


def _large(rel: RelationFact | None, min_blocks: float, large_rows: float) -> bool:
    """Big enough that a parallel plan could use workers on it (the size rule gives >= 1),
    with at least `large_rows` rows by pg_class when it was analysed."""
    if rel is None or rel.relpersistence == "t" or rel.reloption_workers == 0:
        return False
    if size_rule_workers(rel.blocks, min_blocks) < 1 and rel.reloption_workers is None:
        return False
    return rel.reltuples is None or rel.reltuples < 0 or rel.reltuples >= large_rows


def _read_text(rel: RelationFact, min_blocks: float) -> str:
    rows = f"about {rel.reltuples:,.0f} rows" if rel.reltuples and rel.reltuples > 0 else "all"
    return f"{rows} ({size_text(rel.blocks, min_blocks)}, by pg_class)"


def _explained(facts: Facts) -> set[str]:
    """queryids whose plan `collect --explain-top` captured: the plan detectors report those."""
    return {p.source.removeprefix("statement ") for p in facts.plans if p.source}


def _statement_hazards(
    facts: Facts, card: Card
) -> Iterator[tuple[StatementStat, Hazards, float, float]]:
    """(row, hazards, total time, min_parallel_table_scan_size in blocks) of each readable
    pg_stat_statements SELECT not explained by a captured plan, most time first, whose mean
    time reaches the card's `pgss_min_mean_ms` (a statement that fast does not read a large
    table in one process). Nothing when parallel query is off server-wide (PQ001 says so)."""
    from advisor.workload import statement_hazards

    snap = facts.snapshot
    if snap is None or not snap.catalog:
        return
    per_gather = setting_number((facts.settings or {}).get("max_parallel_workers_per_gather", "2"))
    if per_gather == 0:
        return
    min_blocks = min_table_blocks(facts, None)
    explained = _explained(facts)
    rows, total = _visible(facts)
    min_mean = card.threshold("pgss_min_mean_ms")
    for stmt in sorted(rows, key=lambda s: -s.total_exec_time):
        if str(stmt.queryid) in explained or stmt.mean_exec_time < min_mean:
            continue
        hazards = statement_hazards(stmt.query or "")
        if hazards is not None and hazards.kind == "SelectStmt":
            yield stmt, hazards, total, min_blocks


def _seen(stmt: StatementStat, total: float) -> str:
    from advisor.workload import shorten

    return (
        f" Seen in pg_stat_statements: statement {stmt.queryid}, {stmt.calls:,} calls, "
        f"{stmt.total_exec_time:,.0f} ms in all ({_share(stmt, total)} of the recorded time), "
        f"mean {stmt.mean_exec_time:,.1f} ms: {shorten(stmt.query or '', 100)}"
    )


def _pgss_evidence(stmt: StatementStat, total: float, rel: RelationFact, mb: float) -> Evidence:
    return {
        "where": f"statement {stmt.queryid}",
        **_statement_evidence(stmt, total),
        "seen": _seen(stmt, total),
        "relation": rel.qualified,
        "scan": f"the scan of {rel.qualified}",
        "rows_read": round(rel.reltuples) if rel.reltuples and rel.reltuples > 0 else None,
        "rows_read_text": _read_text(rel, mb),
        "rows_kind": "pg_class estimate",
        "size": format_bytes(rel.blocks * 8192),
    }


def pgss_pq106(facts: Facts, card: Card) -> Iterator[Evidence]:
    """Data-modifying WITH in a SELECT that reads a large table outside it (§1.A row A3)."""
    snap, large = facts.snapshot, card.threshold("large_rows")
    for stmt, hz, total, mb in _statement_hazards(facts, card):
        if not hz.modifying_ctes or snap is None:
            continue
        rel = _largest(snap, hz.outside_modifying_ctes)
        if not _large(rel, mb, large) or rel is None:
            continue
        cte = hz.modifying_ctes[0]
        yield {
            **_pgss_evidence(stmt, total, rel, mb),
            "cte": cte.name,
            "operation": cte.operation,
            "target": cte.target,
        }


def pgss_pq107(facts: Facts, card: Card) -> Iterator[Evidence]:
    """FOR UPDATE/SHARE at any level of a SELECT that reads a large table (§1.A row A5)."""
    snap, large = facts.snapshot, card.threshold("large_rows")
    for stmt, hz, total, mb in _statement_hazards(facts, card):
        if hz.locking is None or snap is None:
            continue
        rel = _largest(snap, hz.relations)
        if not _large(rel, mb, large) or rel is None:
            continue
        per_call = stmt.rows / stmt.calls if stmt.calls else 0.0
        yield {
            **_pgss_evidence(stmt, total, rel, mb),
            "lock_how": f"{hz.locking} in its text",
            "rows_locked": round(per_call),
            "rows_locked_text": f"the {per_call:,.0f} rows per call it returns",
        }


def pgss_pq111(facts: Facts, card: Card) -> Iterator[Evidence]:
    """LIMIT/OFFSET in a FROM subquery that reads a large table (§1.B row B4)."""
    snap, large = facts.snapshot, card.threshold("large_rows")
    for stmt, hz, total, mb in _statement_hazards(facts, card):
        if snap is None:
            continue
        for limit in hz.subquery_limits:
            rel = _largest(snap, limit.relations)
            if not _large(rel, mb, large) or rel is None:
                continue
            yield {
                **_pgss_evidence(stmt, total, rel, mb),
                "limit": limit.text,
                "consumer": "the outer query",
                "rows_kept_text": "rows",
                "gather_inside": False,
                "arbitrary": (
                    ""
                    if limit.ordered
                    else " There is no ORDER BY in that subquery, so which rows it keeps is "
                    "arbitrary and can change between runs."
                ),
            }
            break


def aggregate_causes_from_text(
    hz: Hazards, major: int | None, snap: Snapshot | None = None
) -> list[str]:
    """PQ112's causes from a parsed text, worded as the plan detector words them; user
    aggregates are looked up in the catalog facts (pg_aggregate)."""
    from advisor.checks.eligibility import _NO_COMBINE_ALWAYS, _NO_COMBINE_BEFORE_16

    no_combine = {n.lower() for n in _NO_COMBINE_ALWAYS}
    causes: list[str] = []
    if hz.grouping_sets:
        causes.append("GROUPING SETS / ROLLUP / CUBE (never partial, 13-18)")
    for agg in hz.aggregates:
        if agg.how == "distinct":
            causes.append(
                f"{agg.name}(DISTINCT ...) (DISTINCT inside an aggregate is never partial)"
            )
        elif agg.how == "within group":
            causes.append(f"{agg.name}() WITHIN GROUP, an ordered-set aggregate (never partial)")
        elif agg.how == "order":
            causes.append(f"{agg.name}(...) with ORDER BY inside the call (never partial)")
        elif agg.name in no_combine:
            causes.append(f"{agg.name}(...), which has no combine function in any version 13-18")
        elif agg.name in _NO_COMBINE_BEFORE_16 and major is not None and major < 16:
            causes.append(
                f"{agg.name}(...), which has no combine function on PostgreSQL {major} "
                "(it has one from 16)"
            )
        elif snap is not None:
            mine = [f for f in snap.functions if f.name == agg.name and f.prokind == "a"]
            if mine and all(f.partial_agg is False for f in mine):
                causes.append(
                    f"{mine[0].identity}, a user aggregate that cannot be split "
                    "(pg_aggregate: no combine function, or no serial/deserial functions for "
                    "an internal state)"
                )
    return list(dict.fromkeys(causes))


def pgss_pq112(facts: Facts, card: Card) -> Iterator[Evidence]:
    """Aggregates that cannot be split, over a large table (§1.C)."""
    from advisor.checks.eligibility import pq112_fixes

    snap, large = facts.snapshot, card.threshold("large_rows")
    major = facts.server_version_num // 10000 if facts.server_version_num else None
    for stmt, hz, total, mb in _statement_hazards(facts, card):
        if snap is None or not (hz.aggregates or hz.grouping_sets):
            continue
        causes = aggregate_causes_from_text(hz, major, snap)
        rel = _largest(snap, hz.relations)
        if not causes or not _large(rel, mb, large) or rel is None:
            continue
        yield {
            **_pgss_evidence(stmt, total, rel, mb),
            "aggregate": f"The aggregation of statement {stmt.queryid}",
            "rows_in": round(rel.reltuples) if rel.reltuples and rel.reltuples > 0 else None,
            "rows_in_text": (
                f"up to {rel.reltuples:,.0f}" if rel.reltuples and rel.reltuples > 0 else "all the"
            ),
            "through": (
                f"of {rel.qualified} ({size_text(rel.blocks, mb)}, by pg_class) in the leader: at "
                "best workers only scan and pass every row up through a Gather, or the planner "
                "gives the statement no workers at all"
            ),
            "causes": "; ".join(causes),
            "output": "",
            "fix_steps": pq112_fixes([], causes),
        }


@check("PQ113")
def below_size_threshold(facts: Facts, card: Card) -> Iterator[Evidence]:
    """A slow SELECT whose every table is below min_parallel_table_scan_size (§1.D, §2.3): the
    size rule gives no worker at all, whatever the statement costs per row. From
    pg_stat_statements texts with the catalog, and from analysed plans with BUFFERS."""
    yield from _pq113_plans(facts, card)
    yield from _pq113_statements(facts, card)


def _pq113_plans(facts: Facts, card: Card) -> Iterator[Evidence]:
    """An analysed plan without a Gather that ran at least `pgss_min_mean_ms` and whose every
    scan is a Seq Scan of a table BUFFERS shows below the threshold (no other scan whose size
    is unknown, no ModifyTable or LockRows, which have reasons of their own)."""
    from advisor.checks.base import scan_blocks

    min_ms = card.threshold("pgss_min_mean_ms")
    per_gather = setting_number((facts.settings or {}).get("max_parallel_workers_per_gather", "2"))
    for plan in facts.plans:
        ms = plan.execution_time_ms
        if ms is None or ms < min_ms or per_gather == 0 or plan.gathers():
            continue
        nodes = list(plan.nodes())
        if any(n.node_type in ("ModifyTable", "LockRows") for n in nodes):
            continue
        value, _ = setting(facts, plan, "max_parallel_workers_per_gather")
        if value is not None and setting_number(value) == 0:
            continue
        mb = min_table_blocks(facts, plan)
        scans = [n for n in nodes if n.relation or n.node_type in SCAN_TYPES]
        sizes = [(n, scan_blocks(n)) for n in scans]
        if not sizes or any(n.node_type != "Seq Scan" or b is None for n, b in sizes):
            continue
        node, blocks = max(sizes, key=lambda x: x[1] or 0.0)
        if blocks is None or not 0 < blocks < mb:
            continue
        table = f"{node.schema}.{node.relation}" if node.schema else str(node.relation)
        workers = int(per_gather or 2)
        others = len({n.relation for n, _ in sizes}) - 1
        yield {
            "where": where(plan, node),
            "execution_ms": round(ms, 1),
            "query": plan.query_text or node.label,
            "seen_how": f"{plan.label} ran {ms:,.1f} ms (EXPLAIN ANALYZE)",
            "relation": table,
            "size": format_bytes(blocks * 8192),
            "blocks": round(blocks),
            "min_size": format_bytes(mb * 8192),
            "others": (
                f" (and {others} smaller table{'s' if others > 1 else ''}, also below it)"
                if others > 0
                else ""
            ),
            "workers": workers,
            "workers_how": f"max_parallel_workers_per_gather = {workers}",
            "alter_table": f"ALTER TABLE {table} SET (parallel_workers = {workers});",
            "alter_role": (
                f"ALTER ROLE name SET min_parallel_table_scan_size = "
                f"'{max(8, int(blocks) * 8 // 2)}kB';"
            ),
        }


def _pq113_statements(facts: Facts, card: Card) -> Iterator[Evidence]:
    from advisor.checks.catalog import _quote

    snap = facts.snapshot
    if snap is None:
        return
    per_gather = setting_number((facts.settings or {}).get("max_parallel_workers_per_gather", "2"))
    cores = snap.hardware.cores
    for stmt, hz, total, mb in _statement_hazards(facts, card):
        if hz.locking or hz.modifying_ctes or hz.unsafe_calls or hz.subquery_limits:
            continue  # PQ102, PQ106, PQ107, PQ111 name the real reason
        rels = [resolve(snap, r) for r in hz.relations]
        if not rels or any(
            r is None
            or r.relkind not in "rm"
            or r.relpersistence == "t"
            or r.reloption_workers is not None
            for r in rels
        ):
            continue
        known = [r for r in rels if r is not None]
        rel = max(known, key=lambda r: r.blocks)
        if rel.blocks <= 0 or rel.blocks >= mb:
            continue
        workers = int(per_gather or 2)
        how = f"max_parallel_workers_per_gather = {workers}"
        if cores is not None and cores - 1 < workers:
            workers = max(1, int(cores) - 1)
            how = f"cores - 1 = {workers}"
        name = f"{_quote(rel.schema_name)}.{_quote(rel.name)}"
        alter = "ALTER MATERIALIZED VIEW" if rel.relkind == "m" else "ALTER TABLE"
        others = len(known) - 1
        yield {
            "where": f"statement {stmt.queryid}",
            **_statement_evidence(stmt, total),
            "seen_how": (
                f"Statement {stmt.queryid} takes {stmt.mean_exec_time:,.1f} ms per call "
                f"({stmt.calls:,} calls, {stmt.total_exec_time:,.1f} ms in all, "
                f"{_share(stmt, total)} of the recorded execution time)"
            ),
            "relation": rel.qualified,
            "size": format_bytes(rel.blocks * 8192),
            "blocks": rel.blocks,
            "min_size": format_bytes(mb * 8192),
            "others": (
                f" (and {others} smaller table{'s' if others > 1 else ''}, also below it)"
                if others
                else ""
            ),
            "workers": workers,
            "workers_how": how,
            "alter_table": f"{alter} {name} SET (parallel_workers = {workers});",
            "alter_role": (
                f"ALTER ROLE {_quote(stmt.role or 'app')} SET min_parallel_table_scan_size = "
                f"'{max(8, rel.blocks * 8 // 2)}kB';"
            ),
        }
