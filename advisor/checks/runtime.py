"""PQ2xx: what happened when the statement ran (EXPLAIN ANALYZE plans)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from advisor.checks.base import (
    SCAN_TYPES,
    analysed_plans,
    format_bytes,
    nearest_gather,
    participants,
    plain,
    rows_read,
    setting,
    setting_bytes,
    setting_is_off,
    setting_number,
    where,
)
from advisor.engine import Card, Evidence, Facts, check
from advisor.plan import Plan, PlanNode, Spill


@check("PQ201")
def workers_not_launched(facts: Facts, card: Card) -> Iterator[Evidence]:
    for plan in analysed_plans(facts):
        for node in plan.gathers():
            planned, launched = node.workers_planned, node.workers_launched
            if planned is None or launched is None or launched >= planned or node.never_executed:
                continue
            pool, pool_from = setting(facts, plan, "max_parallel_workers")
            pool_n = setting_number(pool) if pool is not None else None
            target = max(planned, 8)
            if pool_n is not None and pool_n < planned:
                pool_text = f"max_parallel_workers = {plain(pool or '')} ({pool_from})"
                if pool_n == 0:
                    cause = (
                        f"{pool_text}: no parallel worker can start on this server (or in "
                        f"this session) at all. The planner never looks at it, so it keeps "
                        f"choosing plans for workers that never come."
                    )
                else:
                    cause = (
                        f"{pool_text} caps the workers of all sessions together below the "
                        f"{planned} this Gather asked for, so it can never get more than "
                        f"{pool_n:.0f}, and fewer while other queries hold some. The planner "
                        f"never looks at it."
                    )
                fix = (
                    f"Raise the pool to at least {planned} (default 8; at most the cores "
                    f"you can give to parallel queries). It is a user-level setting, so it "
                    f"may also have been lowered for this session or role (RESET "
                    f"max_parallel_workers; ALTER ROLE name RESET max_parallel_workers):\n\n"
                    f"  ALTER SYSTEM SET max_parallel_workers = {target};\n"
                    f"  SELECT pg_reload_conf();   -- reload, no restart\n\n"
                    f"It only helps up to max_worker_processes (default 8, restart to "
                    f"change), of which the logical replication launcher and extension "
                    f"workers hold some. If the small pool is deliberate, make the planner "
                    f"ask for what it can get: ALTER ROLE name SET "
                    f"max_parallel_workers_per_gather = {max(int(pool_n), 0)}"
                    f"{' (no parallel plans)' if pool_n == 0 else ''}."
                )
            else:
                known = (
                    f" (max_parallel_workers = {plain(pool)}, {pool_from})"
                    if pool is not None
                    else ""
                )
                if launched == 0:
                    cause = (
                        f"Not one worker started{known}. Either the server-wide pool "
                        "(max_parallel_workers, or free max_worker_processes slots) was "
                        "fully in use at that moment, or the client fetched the result in "
                        "batches (a cursor, a JDBC fetch size, PL/pgSQL SELECT ... INTO), "
                        "which runs the plan without workers even when the pool is free."
                    )
                else:
                    cause = (
                        f"The server-wide pool{known} was short at that moment: "
                        "max_parallel_workers is shared by all sessions and by parallel "
                        "CREATE INDEX / VACUUM, and max_worker_processes slots also go to "
                        "logical replication and extension workers."
                    )
                fix = (
                    "Find which budget ran out: SELECT backend_type, count(*) FROM "
                    "pg_stat_activity GROUP BY 1; shows parallel and other background "
                    "workers (PostgreSQL 18: pg_stat_database.parallel_workers_launched / "
                    "parallel_workers_to_launch shows how often it happens). Then raise "
                    "max_parallel_workers (ALTER SYSTEM SET, reload) and, if it is the limit, "
                    "max_worker_processes (restart) above max_parallel_workers plus "
                    "replication and extension workers; or ask for fewer workers per query: "
                    "ALTER ROLE name SET max_parallel_workers_per_gather = "
                    f"{max(launched, 1)}."
                )
                if launched == 0:
                    fix += (
                        " If the client fetches in batches, fetch the whole result for "
                        "analytic queries, or give that session "
                        "max_parallel_workers_per_gather = 0 so it is planned serially."
                    )
            yield {
                "where": where(plan, node),
                "severity": "critical" if launched == 0 else card.severity,
                "node": node.label,
                "planned": planned,
                "launched": launched,
                "missing": planned - launched,
                "planned_procs": planned + 1,
                "ran_procs": launched + 1,
                "ran_text": ("the leader alone" if launched == 0 else f"{launched + 1} processes"),
                "max_parallel_workers": plain(pool) if pool is not None else "unknown",
                "cause": cause,
                "fix_steps": fix,
            }


# -- PQ203 ----------------------------------------------------------------------------------------

_SPILL_WORDS = {"sort": "sort data", "hash": "hash table", "hashagg": "hash aggregate groups"}


def _peak_kb(props: dict[str, Any]) -> float:
    value = props.get("Peak Memory Usage")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _props_of(node: PlanNode, who: str) -> dict[str, Any]:
    if who.startswith("worker "):
        number = int(who.split()[1])
        return next((w.props for w in node.workers if w.number == number), node.props)
    return node.props


def _need_kb(
    node: PlanNode, who: str, spill: Spill, parts: int, multiplier: float, card: Card
) -> float:
    """work_mem one participant would have needed to keep this spill in memory (rough)."""
    props = _props_of(node, who)
    if spill.kind == "sort":
        # In memory a sort keeps per-row overhead: ~1.6-2x its on-disk size.
        return (spill.disk_kb or 0.0) * card.threshold("sort_memory_factor")
    if spill.kind == "hashagg":
        return ((spill.disk_kb or 0.0) + _peak_kb(props)) / multiplier
    # Hash: Peak Memory Usage is one batch's table, so the whole table is about peak x batches.
    # A Parallel Hash stays in one batch if it fits hash_mem x participants (§6.7).
    total = _peak_kb(props) * (spill.batches or 1) * card.threshold("hash_headroom") / multiplier
    return total / parts if node.parallel_aware else total


def _round_up_mb(kb: float) -> int:
    """Next power of two in MB at or above `kb`: a round, generous work_mem."""
    mb = 1
    while mb * 1024 < kb:
        mb *= 2
    return mb


def _work_mem(facts: Facts, plan: Plan) -> tuple[float, str]:
    value, origin = setting(facts, plan, "work_mem")
    if value is not None:
        amount = setting_bytes(value, 1024)
        if amount is not None:
            return amount / 1024, f"{format_bytes(amount)} ({origin})"
    if plan.settings_shown:
        return 4096.0, "4MB (default)"
    return 4096.0, "4MB (assumed default: the plan has no Settings block)"


def _hash_mem_multiplier(facts: Facts, plan: Plan) -> tuple[float, str]:
    value, origin = setting(facts, plan, "hash_mem_multiplier")
    number = setting_number(value) if value is not None else None
    if number is not None:
        return number, f"{number:g} ({origin})"
    major = plan.server_major_hint
    if major == 13:
        return 1.0, "1 (default on 13)"
    if major is not None and major >= 15:
        return 2.0, "2 (default)"
    return 2.0, "2 (default since 15; 1 on 13 and 14)"


def _spill_text(node: PlanNode, who: str, spill: Spill) -> str:
    if spill.kind != "hash":
        return f"{who}: {spill.detail}"
    # Hash statistics are merged over participants (the largest is shown), not per process.
    return spill.detail if node.parallel_aware else f"{spill.detail} (the largest copy)"


@check("PQ203")
def spilled_in_workers(facts: Facts, card: Card) -> Iterator[Evidence]:
    for plan in analysed_plans(facts):
        work_mem_kb, work_mem_text = _work_mem(facts, plan)
        multiplier, multiplier_text = _hash_mem_multiplier(facts, plan)
        hash_off, hash_off_from = setting(facts, plan, "enable_parallel_hash")
        for node, ancestors in plan.walk():
            gather = nearest_gather(ancestors)
            spills = node.all_spills()
            if not spills or node.never_executed or (gather is None and not node.workers):
                continue
            parts = participants(gather)
            kinds = sorted({s.kind for _, s in spills})
            hashy = any(k != "sort" for k in kinds)
            need_kb = max(_need_kb(node, who, s, parts, multiplier, card) for who, s in spills)
            suggested = _round_up_mb(max(need_kb, work_mem_kb * 2))
            shared_hash = "hash" in kinds and node.parallel_aware
            private_hash = "hash" in kinds and not node.parallel_aware
            spillers = len({who for who, _ in spills})
            if shared_hash:
                spilled_by = f"(one table shared by all {parts} processes)"
            elif private_hash:
                spilled_by = f"in each of its {parts} processes, which all build their own copy"
            elif spillers == parts:
                spilled_by = f"in all {parts} processes"
            else:
                spilled_by = f"in {spillers} of its {parts} processes"
            hash_mem = work_mem_kb * multiplier
            if shared_hash:
                budget = (
                    f"A Parallel Hash may grow to hash_mem x {parts} participants before "
                    f"it splits into batches: work_mem {work_mem_text} x "
                    f"hash_mem_multiplier {multiplier_text} x {parts} = "
                    f"{format_bytes(hash_mem * parts * 1024)}."
                )
            elif hashy:
                budget = (
                    f"Each process has its own hash_mem for this node: work_mem "
                    f"{work_mem_text} x hash_mem_multiplier {multiplier_text} = "
                    f"{format_bytes(hash_mem * 1024)}."
                )
            else:
                budget = f"Each process has its own work_mem for this node: {work_mem_text}."
            first = ""
            if private_hash and hash_off is not None and setting_is_off(hash_off):
                first = (
                    f"First turn enable_parallel_hash back on (it is {plain(hash_off)}, "
                    f"{hash_off_from}; PQ008): one shared table instead of {parts} "
                    f"copies, with the combined budget of all participants. If it still "
                    f"spills, give"
                )
            per_node = suggested * (multiplier if hashy else 1.0) * (1 if shared_hash else parts)
            if shared_hash:
                per_node = suggested * multiplier * parts
            yield {
                "where": where(plan, node),
                "node": node.label,
                "kind": " and ".join(_SPILL_WORDS[k] for k in kinds),
                "spilled_by": spilled_by,
                "spills": "; ".join(_spill_text(node, who, s) for who, s in spills),
                "largest_disk_kb": round(max((s.disk_kb or 0.0 for _, s in spills), default=0.0)),
                "participants": parts,
                "work_mem": work_mem_text,
                "budget": budget,
                "hash_note": (
                    " Hash nodes get it times hash_mem_multiplier; the estimate allows for that."
                    if hashy
                    else ""
                ),
                "first": first or "Give",
                "suggested_work_mem": f"{suggested}MB",
                "node_budget": format_bytes(per_node * 1024**2),
            }


# -- PQ204 ----------------------------------------------------------------------------------------


def _round_cost_up(cost: float) -> int:
    """A round number above `cost`: two significant digits, rounded up."""
    if cost <= 0:
        return 100000
    step = 10 ** max(len(str(int(cost))) - 2, 0)
    return int((int(cost) // step + 1) * step)


@check("PQ204")
def jit_multiplied(facts: Facts, card: Card) -> Iterator[Evidence]:
    for plan in analysed_plans(facts):
        jit, execution = plan.jit, plan.execution_time_ms
        if jit is None or jit.total_ms is None or not execution:
            continue
        worker_jit = [w.jit for n in plan.nodes() for w in n.workers if w.jit is not None]
        launched = sum(g.workers_launched or 0 for g in plan.gathers())
        if not worker_jit and launched == 0:
            continue
        share = jit.total_ms / execution
        if share < card.threshold("jit_share") or jit.total_ms < card.threshold("min_jit_ms"):
            continue
        phases = {
            "generation": jit.generation_ms,
            "inlining": jit.inlining_ms,
            "optimization": jit.optimization_ms,
            "emission": jit.emission_ms,
        }
        top, top_ms = max(((k, v or 0.0) for k, v in phases.items()), key=lambda kv: kv[1])
        detail = ""
        if worker_jit:
            per_worker = [w.total_ms or 0.0 for w in worker_jit]
            funcs = sum(w.functions or 0 for w in worker_jit)
            blocks = "block" if len(worker_jit) == 1 else "blocks"
            detail = (
                f" The plan shows {len(worker_jit)} per-worker JIT {blocks}: {funcs} of the "
                f"{jit.functions or 0} functions and {sum(per_worker):.1f} ms were compiled "
                f"in workers (up to {max(per_worker):.1f} ms in one worker)."
            )
        cost = plan.root.total_cost
        knobs: dict[str, tuple[float, str]] = {}  # name -> (value, "name = v (origin)")
        for knob, default in _JIT_DEFAULTS.items():
            value, origin = setting(facts, plan, knob)
            number = setting_number(value) if value is not None else None
            if value is None or number is None:
                knobs[knob] = (default, f"{knob} = {default:.0f} (default)")
            else:
                knobs[knob] = (number, f"{knob} = {plain(value)} ({origin})")
        lowered = [k for k, (v, _) in knobs.items() if v < _JIT_DEFAULTS[k]]
        expensive = (jit.inlining_ms or 0.0) + (jit.optimization_ms or 0.0)
        phase_note = ""
        if expensive >= 0.5 * jit.total_ms:
            phase_note = (
                f" Inlining and optimization took {expensive:.1f} ms of it; they run "
                f"only above {knobs['jit_inline_above_cost'][1]} and "
                f"{knobs['jit_optimize_above_cost'][1]}."
            )
        suggested = _round_cost_up(cost) if cost is not None else 1000000
        if lowered and cost is not None and cost < _JIT_DEFAULTS["jit_above_cost"]:
            names = _and([f"{k} ({_JIT_DEFAULTS[k]:.0f})" for k in lowered])
            one = len(lowered) == 1
            fix = (
                f"At the default{'' if one else 's'}, {names}, a plan of cost {cost:,.0f} is "
                f"not compiled at all. Put {'it' if one else 'them'} back at the level that "
                f"lowered {'it' if one else 'them'}:\n\n"
                f"  session:        {' '.join(f'RESET {k};' for k in lowered)}\n"
                "  role:           "
                + _FIX_JOIN.join(f"ALTER ROLE name RESET {k};" for k in lowered)
                + "   -- new sessions\n"
                "  server-wide:    "
                + _FIX_JOIN.join(f"ALTER SYSTEM SET {k} = {_JIT_DEFAULTS[k]:.0f};" for k in lowered)
                + f"{_FIX_JOIN}SELECT pg_reload_conf();   -- reload, no restart"
            )
        else:
            fix = (
                f"Keep JIT off for statements of this size by raising the threshold above "
                f"this plan's cost, for the role or the statement that runs it:\n\n"
                f"  ALTER ROLE name SET jit_above_cost = {suggested};   -- new sessions\n"
                f"  SET LOCAL jit_above_cost = {suggested};   -- one transaction\n\n"
                f"If only inlining and optimization are expensive, raise "
                f"jit_inline_above_cost and jit_optimize_above_cost instead, which keeps the "
                f"cheap part of JIT. If JIT never pays off in this workload, ALTER ROLE name "
                f"SET jit = off. Confirm with advisor verify before changing it server-wide "
                f"(reload)."
            )
        yield {
            "where": plan.label,
            "jit_ms": round(jit.total_ms, 1),
            "execution_ms": round(execution, 1),
            "share_pct": round(share * 100),
            "functions": jit.functions or 0,
            "workers": launched,
            "workers_text": (
                "Its one worker compiles"
                if launched == 1
                else f"Each of the {launched} workers compiles"
            ),
            "worker_detail": detail,
            "largest_phase": f"{top} ({top_ms:.1f} ms)",
            "phase_note": phase_note,
            "plan_cost": f"{cost:,.0f}" if cost is not None else "unknown",
            "jit_above_cost": knobs["jit_above_cost"][1],
            "suggested_jit_above_cost": suggested,
            "fix_steps": fix,
        }


_FIX_JOIN = "\n" + " " * 18


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


_JIT_DEFAULTS = {
    "jit_above_cost": 100000.0,
    "jit_inline_above_cost": 500000.0,
    "jit_optimize_above_cost": 500000.0,
}


# -- PQ205 ----------------------------------------------------------------------------------------


def _rows(value: float | None, loops: float | None) -> float:
    return (value or 0.0) * (loops if loops is not None else 1.0)


def _skew_story(
    dominant: str, share: float, workers: int, filtered: bool, append: bool = False
) -> tuple[str, str, str]:
    """(pattern, cause, advice) for one participant producing most of a node's rows."""
    if dominant == "leader":
        pattern = (
            f"the leader produced {share:.0%} of the rows itself, so the {workers} "
            "workers added little"
        )
    else:
        pattern = f"{dominant} produced {share:.0%} of the rows, the other participants little"
    costed = (
        "The plan was costed as if the participants shared the work evenly, so the work "
        "above this node ran in effect in one process."
    )
    if filtered:
        cause = (
            f"{costed} The node has a filter, so the matching rows probably sit together "
            "in part of the table: participants take blocks in turn, and whichever one "
            "reads those blocks returns the rows (the leader starts scanning before the "
            "workers are up)."
        )
        advice = (
            "Spread the matching rows: an index on the filtered column lets a Parallel "
            "Index or Bitmap Heap Scan read only matching blocks, and partitioning on it "
            "gives each worker its own share; more workers do not help while the rows sit "
            "in one place. Measure with advisor verify before keeping a change."
        )
    elif dominant == "leader":
        cause = (
            f"{costed} The workers started late or ran out of work: the leader begins at "
            "once while the workers are still being started, which dominates when the "
            "input is small for the number of workers."
        )
        advice = (
            "With this little input, fewer workers cost less: ALTER TABLE name SET "
            "(parallel_workers = 1) for the table, or a lower "
            "max_parallel_workers_per_gather for the role. For Gather Merge plans, SET "
            "parallel_leader_participation = off lets the leader merge instead of "
            "scanning. Measure with advisor verify before keeping a change."
        )
    elif append:
        cause = (
            f"{costed} One process got most of the input: the Parallel Append's children "
            "differ much in size, and a child that cannot be split goes to one worker."
        )
        advice = (
            "Balance the children: split the large partition or child, or make it "
            "parallel scannable (a regular table above min_parallel_table_scan_size). "
            "Measure with advisor verify before keeping a change."
        )
    else:
        cause = (
            f"{costed} One process got most of the input: rows that a join or filter "
            "keeps concentrated in part of the data, or workers that started late."
        )
        advice = (
            "Spread the input: for clustered data, an index or partitioning on the "
            "filtered or joined column lets each participant find its share. Measure "
            "with advisor verify before keeping a change."
        )
    return pattern, cause, advice


_BLOCK_KEYS = ("Shared Hit Blocks", "Shared Read Blocks", "Local Hit Blocks", "Local Read Blocks")


def _blocks(props: dict[str, Any]) -> float | None:
    values = [
        float(v)
        for k in _BLOCK_KEYS
        if isinstance(v := props.get(k), int | float) and not isinstance(v, bool)
    ]
    return sum(values) if values else None


def _block_split(node: PlanNode) -> dict[str, float] | None:
    """Blocks each participant read in a parallel scan (BUFFERS + VERBOSE): the node's own
    counters are the total, each Workers entry one worker, the leader the rest."""
    total = _blocks(node.props)
    workers = {f"worker {w.number}": _blocks(w.props) for w in node.workers}
    if total is None or not workers or any(v is None for v in workers.values()):
        return None
    known = {k: v for k, v in workers.items() if v is not None}
    return {"leader": max(total - sum(known.values()), 0.0), **known}


def _selective_story(
    node: PlanNode,
    total: float,
    dominant: str,
    share: float,
    split: dict[str, float],
    max_share: float,
) -> tuple[str, str, str] | None:
    """When a filter kept only a sliver of the rows and the blocks were shared evenly, the skew
    is in a handful of rows: say so, and point at what does cost time (reading the table)."""
    removed = node.props.get("Rows Removed by Filter")
    if node.filter is None or not isinstance(removed, int | float):
        return None
    read = total + float(removed) * (node.actual_loops or 1.0)
    blocks = sum(split.values())
    if read <= 0 or blocks <= 0 or total / read > 0.05:
        return None
    if max(split.values()) / blocks >= max_share:
        return None  # the scan itself was skewed: the general story applies
    blocks_text = "; ".join(f"{k} {v:,.0f}" for k, v in split.items())
    who = "the leader" if dominant == "leader" else dominant
    pattern = (
        f"{who} produced {share:.0%} of them, yet the scan itself was shared "
        f"(blocks read: {blocks_text})"
    )
    cause = (
        f"Only {total:,.0f} of about {_approx(read):,.0f} rows read ({total / read:.2%}) "
        f"passed the filter, and they sit together in blocks {who} read, so what ran in "
        f"one process is only the work on those few rows above the scan: cheap here. The "
        f"real cost is reading every row to keep so few."
    )
    column = _filter_column(node.filter)
    table = node.target
    if column and table:
        index = (
            f"\n\n  CREATE INDEX ON {table} ({column});\n"
            f"  CREATE INDEX ON {table} USING brin ({column});   -- far smaller; "
            f"for rows stored in order\n\n"
        )
    else:
        index = f" an index on the column in {node.filter}. "
    advice = (
        f"More or fewer workers will not change much; an index lets the query read only "
        f"the matching blocks, one of:{index}Measure with advisor verify before keeping "
        f"it."
    )
    return pattern, cause, advice


def _approx(n: float) -> float:
    """Three significant digits for large counts (PG 18 rounds per-loop rows, so sums are off
    by one or two)."""
    if n < 10000:
        return n
    digits = len(str(int(n))) - 3
    return round(n, -digits)


def _filter_column(expr: str | None) -> str | None:
    """The column a simple filter compares: '(big.created < ...)' -> 'created'."""
    if not expr:
        return None
    m = re.match(r"^\(*(?:\w+\.)?(\w+)\)*\s*(?:<=|>=|<>|<|>|=|~~|BETWEEN)", expr)
    return m.group(1) if m else None


@check("PQ205")
def work_skewed(facts: Facts, card: Card) -> Iterator[Evidence]:
    limit = card.threshold("dominant_share")
    min_rows = card.threshold("min_rows")
    for plan in analysed_plans(facts):
        for gather in plan.gathers():
            if not gather.workers_launched or gather.never_executed:
                continue
            best: Evidence | None = None
            best_share = limit
            for node, above in gather.walk():
                if node is gather or not node.parallel_aware or node.total_rows is None:
                    continue
                if any(a.parallel_aware for a in above):
                    # Only the topmost parallel-aware node counts: what it delivers is what the
                    # participants hand up. Below it, a Parallel Append gives whole children to
                    # single workers by design, and a Parallel Hash build is a shared barrier.
                    continue
                if not node.workers or any(w.actual_rows is None for w in node.workers):
                    continue
                total = node.total_rows
                if total < min_rows:
                    continue
                workers = {
                    f"worker {w.number}": _rows(w.actual_rows, w.actual_loops) for w in node.workers
                }
                leader = max(total - sum(workers.values()), 0.0)
                parts = {"leader": leader, **workers}
                dominant, top = max(parts.items(), key=lambda kv: kv[1])
                if dominant != "leader" and len(workers) < 2:
                    # With one worker the leader only scans when no worker rows are waiting:
                    # a small leader share is how Gather is meant to work, not skew.
                    continue
                share = top / total
                if share < best_share or (best is not None and share == best_share):
                    continue
                best_share = share
                filtered = node.filter is not None or bool(node.props.get("Rows Removed by Filter"))
                split = _block_split(node)
                story = (
                    _selective_story(node, total, dominant, share, split, limit)
                    if split is not None
                    else None
                )
                pattern, cause, advice = story or _skew_story(
                    dominant, share, len(workers), filtered, node.node_type == "Append"
                )
                best = {
                    "where": where(plan, node),
                    "node": node.label,
                    "gather": gather.label,
                    "total_rows": round(total),
                    "split": "; ".join(f"{k} {v:,.0f}" for k, v in parts.items()),
                    "dominant": dominant,
                    "dominant_share_pct": round(share * 100),
                    "fair_share_pct": round(100 / len(parts)),
                    "blocks": split,
                    "pattern": pattern,
                    "cause": cause,
                    "advice": advice,
                }
            if best is not None:
                yield best


# -- PQ206 ----------------------------------------------------------------------------------------


@check("PQ206")
def gather_moves_too_many_rows(facts: Facts, card: Card) -> Iterator[Evidence]:
    min_rows = card.threshold("min_rows")
    fraction_limit = card.threshold("pass_fraction")
    for plan in analysed_plans(facts):
        for gather, ancestors in plan.walk():  # the shared walk gives each Gather its parent
            if not gather.is_gather:
                continue
            passed = gather.total_rows
            if passed is None or passed < min_rows or not gather.workers_launched:
                continue
            read = [
                (n, rows_read(n) or 0.0)
                for n, _ in gather.walk()
                if n is not gather and n.node_type in SCAN_TYPES
            ]
            if not read:
                continue
            scan, scanned = max(read, key=lambda nr: nr[1])
            if scanned <= 0 or passed / scanned < fraction_limit:
                continue
            above = (
                f" Above it, {ancestors[-1].label} then handles those rows in the leader alone."
                if ancestors
                else ""
            )
            tuple_cost = ""
            first = ""
            value, origin = setting(facts, plan, "parallel_tuple_cost")
            number = setting_number(value) if value is not None else None
            if number is not None and number < 0.1:
                tuple_cost = (
                    f" parallel_tuple_cost = {plain(value or '')} ({origin}) told the "
                    "planner that passing rows up is cheaper than the default 0.1 a "
                    "row, which is why it chose this plan."
                )
                first = (
                    "First put parallel_tuple_cost back where it was lowered (RESET "
                    "parallel_tuple_cost; default 0.1), so the planner weighs this "
                    "transfer again. Then "
                )
            width = gather.plan_width or 0
            volume = format_bytes(passed * width) if width else "unknown"
            yield {
                "where": where(plan, gather),
                "node": gather.label,
                "rows": round(passed),
                "rows_read": round(_approx(scanned)),
                "scan": scan.label,
                "fraction_pct": round(passed / scanned * 100),
                "width": width,
                "volume": volume,
                "workers": gather.workers_launched,
                "above": above,
                "tuple_cost_note": tuple_cost,
                "first": first,
                "reduce": "reduce" if first else "Reduce",
            }
