"""pgpool-II sizing: the backend budget per node and the recommended num_init_children and
max_pool, with the arithmetic written out (knowledge/poolers.md §3.1, §3.3, §4).

Budget (per backend node, §3.3): a child caches up to `max_pool` backend connections and a
session holds one on the primary and one on its load-balance node, so every node may see
`num_init_children x max_pool` connections, twice that when each session's query cancel opens
its own connection, plus one for the health check and one for the streaming-replication check
when they are enabled. That must fit in `max_connections - superuser_reserved_connections -
reserved_connections` (16+) of that node.

num_init_children is a limit on concurrent client sessions, not on running queries: the demand
comes from the console (peak busy children, clients waiting in the accept queue) and, as a
floor, from Little's law on pg_stat_statements (L = total execution time / window = mean
statements running at once). The core-based knee (2-4 x cores, §4) caps running statements:
past it more children add waiting, not throughput.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from advisor.pooler.pgpool import PgpoolView
from advisor.report import Finding, Recommendation

if TYPE_CHECKING:
    from advisor.engine import Facts

HEADROOM = 1.25  # children above the observed peak, for bursts
KNEE_PER_CORE = 4  # upper end of the 2-4 x cores knee for running statements (§4)
SCOPE = "pgpool.conf"


@dataclass(frozen=True, slots=True)
class NodeBudget:
    node: int
    address: str
    max_connections: int
    superuser_reserved: int
    reserved: int
    checks: int  # health check + sr check connections
    check_text: str
    source: str  # where the limits came from

    @property
    def available(self) -> int:
        return self.max_connections - self.superuser_reserved - self.reserved


def node_budgets(facts: Facts, view: PgpoolView) -> list[NodeBudget]:
    """Limits of every backend node: read from the node itself, else the --dsn server's own
    settings (said so in `source`); nodes with neither are left out."""
    assert facts.pgpool is not None
    limits = {b.node_id: b for b in facts.pgpool.backend_limits}
    sr_on = view.number("sr_check_period") > 0 and (
        (view.setting("backend_clustering_mode").value or "streaming_replication")
        == "streaming_replication"
    )
    out = []
    for node in view.node_ids() or [0]:
        hc = view.number("health_check_period", node) > 0
        parts = [p for p, on in (("the health check", hc), ("the sr check", sr_on)) if on]
        b = limits.get(node)
        if b is not None:
            mc, su, rs = (
                b.max_connections,
                b.superuser_reserved_connections,
                b.reserved_connections,
            )
            source = f"read from node {node}"
        elif facts.settings is not None and "max_connections" in facts.settings:
            mc = int(float(facts.settings["max_connections"]))
            su = int(float(facts.settings.get("superuser_reserved_connections", "3")))
            rs = int(float(facts.settings.get("reserved_connections", "0")))
            source = "the --dsn server's settings, assumed for this node"
        else:
            continue
        out.append(
            NodeBudget(
                node=node,
                address=view.node_address(node),
                max_connections=mc,
                superuser_reserved=su,
                reserved=rs,
                checks=len(parts),
                check_text=" and ".join(parts) or "no health or sr check",
                source=source,
            )
        )
    return out


def children_cap(budgets: list[NodeBudget], max_pool: int) -> int | None:
    """The largest num_init_children whose cancel-safe budget fits on every node."""
    if not budgets:
        return None
    return min((b.available - b.checks) // (2 * max(max_pool, 1)) for b in budgets)


@dataclass(frozen=True, slots=True)
class Demand:
    peak_busy: int | None  # clients' children at the peak (the advisor's own excluded)
    peak_waiting: int | None
    saturated: bool
    littles_l: float | None  # mean statements running at once (pgss)
    littles_text: str


def _window_s(facts: Facts) -> float | None:
    snap = facts.snapshot
    if snap is None or snap.statements_info is None:
        return None
    start = snap.statements_info.stats_reset
    since = [s.stats_since for s in snap.statements if s.stats_since is not None]
    if start is None and since:
        start = min(since)
    if start is None:
        return None
    try:
        end = datetime.fromisoformat(snap.collected_at)
    except ValueError:
        return None
    if end.tzinfo is None or start.tzinfo is None:
        return None
    seconds = (end - start).total_seconds()
    return seconds if seconds > 0 else None


def demand(facts: Facts, view: PgpoolView) -> Demand:
    assert facts.pgpool is not None
    samples = facts.pgpool.samples
    children = int(view.number("num_init_children"))
    peak_busy = max((s.busy for s in samples), default=None)
    waits = [s.waiting for s in samples if s.waiting is not None]
    saturated = any(s.busy >= max(children, s.children) for s in samples) if samples else False
    littles_l, text = None, ""
    window = _window_s(facts)
    snap = facts.snapshot
    if window is not None and snap is not None:
        total_ms = sum(s.total_exec_time for s in snap.statements)
        calls = sum(s.calls for s in snap.statements)
        if calls:
            littles_l = total_ms / 1000.0 / window
            text = (
                f"Little's law on pg_stat_statements of the --dsn server: lambda = {calls:,} "
                f"calls / {window:,.1f} s = {calls / window:,.2f}/s, W = "
                f"{total_ms / calls:,.3f} ms, L = lambda x W = {littles_l:.2f} statements "
                "running at once"
            )
    return Demand(
        peak_busy=None if peak_busy is None else max(peak_busy - 1, 0),
        peak_waiting=max(waits) if waits else None,
        saturated=saturated,
        littles_l=littles_l,
        littles_text=text,
    )


@dataclass(frozen=True, slots=True)
class ChildrenAdvice:
    current: int
    recommended: int
    formula: str


def advise_children(facts: Facts, view: PgpoolView) -> ChildrenAdvice | None:
    """num_init_children to set, or None when the current value is right or unknowable."""
    current = int(view.number("num_init_children"))
    max_pool = int(view.number("max_pool"))
    budgets = node_budgets(facts, view)
    cap = children_cap(budgets, max_pool)
    d = demand(facts, view)
    parts = [f"current num_init_children = {current} ({view.setting('num_init_children').origin})"]
    target: int | None = None
    if d.peak_busy is not None:
        wait = d.peak_waiting or 0
        peak = d.peak_busy + wait + (1 if d.saturated and not wait else 0)
        parts.append(
            f"console: peak {d.peak_busy} children busy with clients"
            + (f" and {wait} clients waiting in the accept queue" if d.peak_waiting else "")
            + (" (all children busy: new clients queued)" if d.saturated else "")
        )
        if d.saturated:
            target = math.ceil(peak * HEADROOM)
            parts.append(f"demand = ceil(({peak}) x {HEADROOM}) = {target}")
    if d.littles_l is not None:
        parts.append(d.littles_text)
        floor = math.ceil(d.littles_l)
        if floor > current:
            target = max(target or 0, math.ceil(floor * HEADROOM))
            parts.append(f"sessions must at least cover L: ceil({floor} x {HEADROOM})")
    hw = facts.snapshot.hardware if facts.snapshot is not None else None
    if hw is not None and hw.cores:
        knee = int(KNEE_PER_CORE * hw.cores)
        parts.append(
            f"core-based knee = {KNEE_PER_CORE} x {hw.cores:g} cores = {knee} statements "
            "running at once; beyond it more children add queueing, not throughput"
        )
    if cap is not None:
        worst = min(budgets, key=lambda b: b.available - b.checks)
        parts.append(
            f"budget cap = floor((max_connections {worst.max_connections} - reserved "
            f"{worst.superuser_reserved + worst.reserved} - {worst.checks} check connections) "
            f"/ (2 x max_pool {max_pool})) = {cap} on node {worst.node} (cancel-safe)"
        )
    if target is not None and target > current:
        recommended = min(target, cap) if cap is not None else target
        if recommended <= current:
            parts.append("the budget leaves no room: lower max_pool or raise max_connections first")
            return None
    elif cap is not None and current > cap:
        recommended = max(cap, 1)
    else:
        return None
    return ChildrenAdvice(current, recommended, "; ".join(parts))


def user_db_pairs(facts: Facts) -> set[tuple[str, str]]:
    snap = facts.snapshot
    if snap is None:
        return set()
    return {
        (s.role, s.database)
        for s in snap.statements
        if s.role and s.database and not s.hidden and s.calls > 0
    }


def recommend_pgpool(facts: Facts, fired: dict[str, Finding]) -> list[Recommendation]:
    """Recommendations of kind "pgpool" (pgpool.conf lines; pgpool needs a restart)."""
    if facts.pgpool is None:
        return []
    view = PgpoolView(facts.pgpool)
    recs: list[Recommendation] = []
    because: list[str] = sorted(c for c in ("PP01", "PP02", "PP03") if c in fired)
    children = advise_children(facts, view)
    if children is not None:
        recs.append(
            Recommendation(
                kind="pgpool",
                name="num_init_children",
                scope=SCOPE,
                current=str(children.current),
                recommended=str(children.recommended),
                requires="restart",
                because=because,
                formula=children.formula,
                apply=f"num_init_children = {children.recommended}   # pgpool.conf; restart pgpool",
            )
        )
    max_pool = int(view.number("max_pool"))
    pairs = user_db_pairs(facts)
    if pairs and max_pool > len(pairs):
        n = len(pairs)
        shown = ", ".join(f"{r}@{d}" for r, d in sorted(pairs)[:5])
        recs.append(
            Recommendation(
                kind="pgpool",
                name="max_pool",
                scope=SCOPE,
                current=str(max_pool),
                recommended=str(n),
                requires="restart",
                because=sorted(c for c in ("PP01",) if c in fired),
                formula=(
                    f"max_pool = distinct (user, database) pairs = {n} ({shown}; from "
                    "pg_stat_statements); each child caches one backend connection per pair, so "
                    f"every max_pool slot above {n} can cost num_init_children "
                    f"{int(view.number('num_init_children'))} more connections per node"
                ),
                apply=f"max_pool = {n}   # pgpool.conf; restart pgpool",
            )
        )
    return recs
