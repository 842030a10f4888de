"""PQ2xx: what happened when the statement ran (EXPLAIN ANALYZE plans)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from advisor.checks.base import (
    SCAN_TYPES,
    analysed_plans,
    format_bytes,
    nearest_gather,
    participants,
    rows_read,
    setting,
    setting_bytes,
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
            procs, _ = setting(facts, plan, "max_worker_processes")
            if pool is not None and pool.isdigit() and int(pool) < planned:
                cause = (f"max_parallel_workers = {pool} ({pool_from}) is smaller than the "
                         f"{planned} workers this Gather asked for, so it can never get them all.")
            elif launched == 0:
                cause = ("No worker started at all: either the server-wide pool "
                         "(max_parallel_workers, max_worker_processes) was fully used by other "
                         "queries at that moment, or the client fetched the result in batches "
                         "(a cursor, JDBC fetch size), which makes the executor run without "
                         "workers.")
            else:
                cause = ("The server-wide pool (max_parallel_workers, shared with parallel "
                         "maintenance) or the max_worker_processes slots were in use by other "
                         "queries and background workers at that moment.")
            yield {
                "where": where(plan, node),
                "severity": "critical" if launched == 0 else card.severity,
                "node": node.display_type,
                "planned": planned,
                "launched": launched,
                "missing": planned - launched,
                "max_parallel_workers": pool or "unknown",
                "max_worker_processes": procs or "unknown",
                "cause": cause,
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


def _need_kb(node: PlanNode, who: str, spill: Spill, parts: int, multiplier: float,
             card: Card) -> float:
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
    if plan.settings:
        return 4096.0, "4MB (the default; the plan's Settings block does not change it)"
    return 4096.0, "not shown (the plan has no Settings block; the default is 4MB)"


def _hash_mem_multiplier(facts: Facts, plan: Plan) -> tuple[float, str]:
    value, origin = setting(facts, plan, "hash_mem_multiplier")
    number = setting_number(value) if value is not None else None
    if number is not None:
        return number, f"{number:g} ({origin})"
    if plan.server_major_hint == 13:
        return 1.0, "1 (the PostgreSQL 13 default)"
    return 2.0, "2 (the default since PostgreSQL 15; 1 on 13 and 14)"


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
            if "hash" in kinds and node.parallel_aware:
                spilled_by = f"(one table shared by all {parts} processes)"
            elif "hash" in kinds:
                spilled_by = f"in each of its {parts} processes, which all build their own copy"
            else:
                spilled_by = f"in {len({who for who, _ in spills})} of its {parts} processes"
            hash_note = ""
            if hashy:
                hash_note = (f" Hash nodes may use work_mem x hash_mem_multiplier, here "
                             f"{multiplier_text}; the suggestion below is already divided by it.")
                if node.parallel_aware and "hash" in kinds:
                    hash_note += (" A Parallel Hash avoids batches when the table fits the "
                                  f"combined budget of all {parts} participants.")
            per_node = suggested * (multiplier if hashy else 1.0) * parts
            yield {
                "where": where(plan, node),
                "node": node.display_type,
                "kind": " and ".join(_SPILL_WORDS[k] for k in kinds),
                "spilled_by": spilled_by,
                "spills": "; ".join(_spill_text(node, who, s) for who, s in spills),
                "largest_disk_kb": round(max((s.disk_kb or 0.0 for _, s in spills), default=0.0)),
                "participants": parts,
                "work_mem": work_mem_text,
                "hash_note": hash_note,
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
        phases = {"generation": jit.generation_ms, "inlining": jit.inlining_ms,
                  "optimization": jit.optimization_ms, "emission": jit.emission_ms}
        top, top_ms = max(((k, v or 0.0) for k, v in phases.items()), key=lambda kv: kv[1])
        detail = ""
        if worker_jit:
            per_worker = [w.total_ms or 0.0 for w in worker_jit]
            funcs = sum(w.functions or 0 for w in worker_jit)
            detail = (f" The plan shows {len(worker_jit)} per-worker JIT blocks: {funcs} of the "
                      f"{jit.functions or 0} functions and {sum(per_worker):.1f} ms were compiled "
                      f"in workers (up to {max(per_worker):.1f} ms in one worker).")
        phase_note = ""
        expensive = (jit.inlining_ms or 0.0) + (jit.optimization_ms or 0.0)
        if expensive >= 0.5 * jit.total_ms:
            knobs = []
            for knob in ("jit_inline_above_cost", "jit_optimize_above_cost"):
                value, origin = setting(facts, plan, knob)
                knobs.append(f"{knob} = {value} ({origin})" if value is not None
                             else f"{knob} = 500000 (default)")
            phase_note = (f" Inlining and optimization took {expensive:.1f} ms of it; they run "
                          f"only above {' and '.join(knobs)}, so raising those alone keeps the "
                          "cheap part of JIT and drops the expensive one.")
        cost = plan.root.total_cost
        above, above_from = setting(facts, plan, "jit_above_cost")
        yield {
            "where": plan.label,
            "jit_ms": round(jit.total_ms, 1),
            "execution_ms": round(execution, 1),
            "share_pct": round(share * 100),
            "functions": jit.functions or 0,
            "workers": launched,
            "worker_detail": detail,
            "largest_phase": f"{top} ({top_ms:.1f} ms)",
            "phase_note": phase_note,
            "plan_cost": round(cost) if cost is not None else "unknown",
            "jit_above_cost": f"{above} ({above_from})" if above is not None
            else "100000 (default)",
            "suggested_jit_above_cost": _round_cost_up(cost) if cost is not None else 1000000,
        }


# -- PQ205 ----------------------------------------------------------------------------------------


def _rows(value: float | None, loops: float | None) -> float:
    return (value or 0.0) * (loops if loops is not None else 1.0)


def _skew_story(dominant: str, share: float, workers: int, filtered: bool) -> tuple[str, str, str]:
    """(pattern, cause, advice) for one participant producing most of a node's rows."""
    if dominant == "leader":
        pattern = (f"the leader produced {share:.0%} of the rows itself, so the {workers} "
                   "workers added little")
    else:
        pattern = f"{dominant} produced {share:.0%} of the rows, the other participants little"
    if filtered:
        cause = ("The node has a filter, so the matching rows probably sit together in part of "
                 "the table: participants take blocks in turn, and whichever one reads those "
                 "blocks returns the rows (the leader starts scanning first, before the workers "
                 "are up). The scan itself was shared, but all work above it ran mostly in one "
                 "process.")
        advice = ("Spread the matching rows: an index on the filtered column lets a Parallel "
                  "Index or Bitmap Heap Scan read only matching blocks, and partitioning on it "
                  "gives each worker its own share; more workers do not help while the rows sit "
                  "in one place.")
    elif dominant == "leader":
        cause = ("The workers started late or ran out of work: the leader begins at once while "
                 "the workers are still being started, which dominates when the input is small "
                 "for the number of workers.")
        advice = ("With this little input, fewer workers cost less: ALTER TABLE name SET "
                  "(parallel_workers = 1) for the table, or a lower "
                  "max_parallel_workers_per_gather for the role (session level). For Gather "
                  "Merge plans, SET parallel_leader_participation = off lets the leader merge "
                  "instead of scanning.")
    else:
        cause = ("One process got most of the input: a Parallel Append whose children differ "
                 "much in size (a child that cannot be split goes to one worker), or rows that "
                 "a join or filter keeps concentrated in part of the data.")
        advice = ("Balance the input: split a large partition or child, or make it parallel "
                  "scannable; for clustered data, an index or partitioning on the filtered "
                  "column spreads the matching rows.")
    return pattern, cause, advice


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
                workers = {f"worker {w.number}": _rows(w.actual_rows, w.actual_loops)
                           for w in node.workers}
                leader = max(total - sum(workers.values()), 0.0)
                parts = {"leader": leader, **workers}
                dominant, top = max(parts.items(), key=lambda kv: kv[1])
                share = top / total
                if share < best_share or (best is not None and share == best_share):
                    continue
                best_share = share
                filtered = node.filter is not None or bool(node.props.get("Rows Removed by Filter"))
                pattern, cause, advice = _skew_story(dominant, share, len(workers), filtered)
                best = {
                    "where": where(plan, node),
                    "node": node.display_type,
                    "gather": gather.label,
                    "total_rows": round(total),
                    "split": "; ".join(f"{k} {v:,.0f}" for k, v in parts.items()),
                    "dominant": dominant,
                    "dominant_share_pct": round(share * 100),
                    "fair_share_pct": round(100 / len(parts)),
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
        for gather in plan.gathers():
            passed = gather.total_rows
            if passed is None or passed < min_rows or not gather.workers_launched:
                continue
            read = [(n, rows_read(n) or 0.0) for n, _ in gather.walk()
                    if n is not gather and n.node_type in SCAN_TYPES]
            if not read:
                continue
            scan, scanned = max(read, key=lambda nr: nr[1])
            if scanned <= 0 or passed / scanned < fraction_limit:
                continue
            above = ""
            for node, ancestors in plan.walk():
                if node is gather and ancestors:
                    parent = ancestors[-1]
                    above = (f" Above it, {parent.label} then handles those rows in the leader "
                             "alone.")
            tuple_cost = ""
            value, origin = setting(facts, plan, "parallel_tuple_cost")
            number = setting_number(value) if value is not None else None
            if number is not None and number < 0.1:
                tuple_cost = (f" parallel_tuple_cost = {value} ({origin}) told the planner that "
                              "passing rows up is cheaper than the default 0.1 a row, which is "
                              "why it chose this plan.")
            width = gather.plan_width or 0
            volume = format_bytes(passed * width) if width else "unknown"
            yield {
                "where": where(plan, gather),
                "node": gather.display_type,
                "rows": round(passed),
                "rows_read": round(scanned),
                "scan": scan.label,
                "fraction_pct": round(passed / scanned * 100),
                "width": width,
                "volume": volume,
                "workers": gather.workers_launched,
                "above": above,
                "tuple_cost_note": tuple_cost,
            }
