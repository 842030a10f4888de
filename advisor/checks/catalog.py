"""PQ109, PQ114, PQ115, PQ202, PQ207: rules on catalog facts (pg_class) and PG 18 worker counters.

PQ109 and PQ115 read plans together with the catalog: the foreign data wrapper of a Foreign
Scan's table (§1.B B2), and a Parallel Seq Scan's table size against the size rule (§2.3).

PQ114 reads the relations the collector listed (pg_class with the `parallel_workers`
reloption, knowledge/parallel-query.md §1.D, §2.3). PQ202 and PQ207 read the PG 18 counters
`parallel_workers_to_launch` / `parallel_workers_launched` of pg_stat_database and
pg_stat_statements (§5.1, §5.2, Appendix A.11); older servers have no such counters and these
rules stay quiet there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from advisor.checks.base import (
    format_bytes,
    min_table_blocks,
    nearest_gather,
    setting_in_effect,
    setting_number,
    size_rule_workers,
    where,
)
from advisor.engine import Card, Evidence, Facts, check
from advisor.plan import PlanNode

if TYPE_CHECKING:  # pydantic stays off the offline path
    from advisor.snapshot import RelationFact, Snapshot

_RELKIND = {"r": "table", "m": "materialized view", "p": "partitioned table", "f": "foreign table"}


def _quote(ident: str) -> str:
    """An identifier as SQL needs it (lower-case words stay bare)."""
    if ident.isidentifier() and ident == ident.lower():
        return ident
    return '"' + ident.replace('"', '""') + '"'


def _relation(snap: Snapshot, node: PlanNode) -> RelationFact | None:
    """The catalog relation a plan node scans (by schema when the plan is VERBOSE)."""
    if not node.relation:
        return None
    matches = [
        r
        for r in snap.relations
        if r.name == node.relation and (node.schema is None or r.schema_name == node.schema)
    ]
    return matches[0] if len(matches) == 1 else None


# FDWs known not to implement IsForeignScanParallelSafe (leader-only scans), §1.B B2.
_SERIAL_FDWS = frozenset({"postgres_fdw"})


@check("PQ109")
def foreign_scan_leader_only(facts: Facts, card: Card) -> Iterator[Evidence]:
    snap = facts.snapshot
    if snap is None:
        return
    large = card.threshold("large_rows")
    for plan in facts.plans:
        for node in plan.nodes():
            if node.node_type != "Foreign Scan":
                continue
            rel = _relation(snap, node)
            if rel is None or rel.relkind != "f" or rel.fdw not in _SERIAL_FDWS:
                continue
            if node.actual_rows is not None:
                rows = node.actual_rows * (node.actual_loops or 1.0)
                kind = "rows"
            else:
                rows = node.plan_rows or 0.0
                kind = "estimated rows"
            if rows < large:
                continue
            yield {
                "where": where(plan, node),
                "relation": rel.qualified,
                "fdw": rel.fdw,
                "rows": round(rows),
                "rows_text": f"{rows:,.0f} {kind}",
            }


@check("PQ115")
def size_rule_under_provisions(facts: Facts, card: Card) -> Iterator[Evidence]:
    snap = facts.snapshot
    if snap is None or snap.hardware.cores is None:
        return
    cores = int(snap.hardware.cores)
    min_workers = card.threshold("min_size_rule_workers")
    for plan in facts.plans:
        per_gather_text, origin = setting_in_effect(
            facts, plan, "max_parallel_workers_per_gather", "2"
        )
        per_gather_n = setting_number(per_gather_text) if per_gather_text else None
        if per_gather_n is None:
            continue
        per_gather = int(per_gather_n)
        min_blocks = min_table_blocks(facts, plan)
        for node, anc in plan.walk():
            if node.node_type != "Seq Scan" or not node.parallel_aware:
                continue
            gather = nearest_gather(anc)
            rel = _relation(snap, node)
            if gather is None or rel is None or rel.relkind not in ("r", "m"):
                continue
            if rel.reloption_workers is not None:
                continue  # the reloption already replaces the size rule (PQ114 for 0)
            rule = size_rule_workers(rel.blocks, min_blocks)
            planned = gather.workers_planned
            if planned != rule or rule < min_workers:
                continue
            target = min(per_gather, cores - 1)
            if target <= rule:
                continue
            name = f"{_quote(rel.schema_name)}.{_quote(rel.name)}"
            alter = "ALTER MATERIALIZED VIEW" if rel.relkind == "m" else "ALTER TABLE"
            yield {
                "where": where(plan, node),
                "relation": rel.qualified,
                "size": format_bytes(rel.blocks * 8192),
                "blocks": rel.blocks,
                "min_blocks": min_blocks,
                "min_size": format_bytes(min_blocks * 8192),
                "planned": planned,
                "per_gather": per_gather,
                "per_gather_origin": origin,
                "cores": cores,
                "target": target,
                "alter": alter,
                "name": name,
            }


@check("PQ114")
def reloption_forbids_parallel(facts: Facts, card: Card) -> Iterator[Evidence]:
    snap = facts.snapshot
    if snap is None:
        return
    min_blocks = min_table_blocks(facts, None)
    factor = card.threshold("size_factor")
    for rel in snap.relations:
        if rel.reloption_workers != 0 or rel.relkind not in ("r", "m"):
            continue
        if rel.blocks < min_blocks * factor:
            continue
        name = f"{_quote(rel.schema_name)}.{_quote(rel.name)}"
        would = size_rule_workers(rel.blocks, min_blocks)
        kind = _RELKIND[rel.relkind]
        alter = "ALTER MATERIALIZED VIEW" if rel.relkind == "m" else "ALTER TABLE"
        yield {
            "where": f"{kind} {rel.qualified}",
            "relation": rel.qualified,
            "kind": kind,
            "blocks": rel.blocks,
            "size": format_bytes(rel.blocks * 8192),
            "min_size": format_bytes(min_blocks * 8192),
            "size_rule_workers": would,
            "alter": alter,
            "name": name,
        }


def _ratio_text(launched: int, to_launch: int) -> str:
    return f"{launched:,} of {to_launch:,} workers ({launched / to_launch:.0%})"


@check("PQ202")
def chronic_worker_shortage(facts: Facts, card: Card) -> Iterator[Evidence]:
    snap = facts.snapshot
    if snap is None:
        return
    ratio_min = card.threshold("launch_ratio")
    volume = card.threshold("min_to_launch")
    settings = facts.settings or {}
    pool = settings.get("max_parallel_workers", "?")
    processes = settings.get("max_worker_processes", "?")
    per_gather = settings.get("max_parallel_workers_per_gather", "?")
    short_statements = [
        s
        for s in snap.statements
        if s.parallel_workers_to_launch
        and s.parallel_workers_launched is not None
        and s.parallel_workers_to_launch >= volume
        and s.parallel_workers_launched / s.parallel_workers_to_launch < ratio_min
    ]
    short_statements.sort(
        key=lambda s: (s.parallel_workers_to_launch or 0) - (s.parallel_workers_launched or 0),
        reverse=True,
    )
    for db in snap.database_stats:
        to_launch, launched = db.parallel_workers_to_launch, db.parallel_workers_launched
        if not to_launch or launched is None or to_launch < volume:
            continue
        ratio = launched / to_launch
        if ratio >= ratio_min:
            continue
        mine = [s for s in short_statements if s.database in (None, db.datname)][:3]
        worst = "; ".join(
            f"queryid {s.queryid} got "
            + _ratio_text(s.parallel_workers_launched or 0, s.parallel_workers_to_launch or 0)
            for s in mine
        )
        since = f" since {db.stats_reset:%Y-%m-%d %H:%M}" if db.stats_reset else ""
        yield {
            "where": f"database {db.datname}",
            "severity": "critical" if launched == 0 else card.severity,
            "database": db.datname,
            "to_launch": to_launch,
            "launched": launched,
            "ratio": round(ratio, 3),
            "ratio_text": _ratio_text(launched, to_launch),
            "since": since or " since the statistics were last reset",
            "statements": worst or "none of the statements read reaches the volume threshold",
            "max_parallel_workers": pool,
            "max_worker_processes": processes,
            "per_gather": per_gather,
        }


@check("PQ207")
def parallel_on_tiny_statements(facts: Facts, card: Card) -> Iterator[Evidence]:
    snap = facts.snapshot
    if snap is None:
        return
    min_calls = card.threshold("min_calls")
    max_mean = card.threshold("max_mean_ms")
    by_role: dict[tuple[str, str | None], list[Evidence]] = {}
    for s in snap.statements:
        if s.hidden or not s.parallel_workers_to_launch or s.role is None:
            continue
        if s.calls < min_calls or s.mean_exec_time > max_mean:
            continue
        by_role.setdefault((s.role, s.database), []).append(
            {
                "queryid": s.queryid,
                "calls": s.calls,
                "mean_ms": round(s.mean_exec_time, 3),
                "to_launch": s.parallel_workers_to_launch,
                "launched": s.parallel_workers_launched,
                "query": (s.query or "")[:200],
            }
        )
    for (role, database), stmts in sorted(by_role.items(), key=lambda kv: kv[0][0]):
        stmts.sort(key=lambda x: -int(x["calls"]))
        top = stmts[0]
        in_db = f" IN DATABASE {_quote(database)}" if database else ""
        yield {
            "where": f"role {role}" + (f" in database {database}" if database else ""),
            "role": role,
            "database": database or "?",
            "count": len(stmts),
            "statements": stmts[:5],
            "calls": top["calls"],
            "mean_ms": top["mean_ms"],
            "to_launch": top["to_launch"],
            "top_query": " ".join(str(top["query"]).split())[:120],
            "alter_role": (
                f"ALTER ROLE {_quote(role)}{in_db} SET max_parallel_workers_per_gather = 0;"
            ),
        }
