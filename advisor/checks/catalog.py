"""PQ114, PQ202, PQ207: rules on catalog facts (pg_class) and PG 18 worker counters.

PQ114 reads the relations the collector listed (pg_class with the `parallel_workers`
reloption, knowledge/parallel-query.md §1.D, §2.3). PQ202 and PQ207 read the PG 18 counters
`parallel_workers_to_launch` / `parallel_workers_launched` of pg_stat_database and
pg_stat_statements (§5.1, §5.2, Appendix A.11); older servers have no such counters and these
rules stay quiet there.
"""

from __future__ import annotations

from collections.abc import Iterator

from advisor.checks.base import format_bytes, min_table_blocks, size_rule_workers
from advisor.engine import Card, Evidence, Facts, check

_RELKIND = {"r": "table", "m": "materialized view", "p": "partitioned table", "f": "foreign table"}


def _quote(ident: str) -> str:
    """An identifier as SQL needs it (lower-case words stay bare)."""
    if ident.isidentifier() and ident == ident.lower():
        return ident
    return '"' + ident.replace('"', '""') + '"'


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
