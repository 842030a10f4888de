"""PQ0xx: settings that switch parallel query off or discourage it.

Two places show settings: the live server (`facts.settings`, raw pg_settings values) and a
plan's `Settings` block (EXPLAIN (SETTINGS): only values that differ from the built-in default,
as the planner saw them for that statement). Offline only the second exists, and it cannot say
at which level (server, database, role, function, session) a value was set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from advisor.checks.base import (
    SCAN_TYPES,
    format_bytes,
    nearest_gather,
    participants,
    plain,
    plan_has_gather,
    rows_read,
    scan_blocks,
    setting_bytes,
    setting_is_off,
    setting_number,
    size_rule_workers,
    size_text,
    under_gather,
    where,
)
from advisor.engine import Card, Evidence, Facts, check
from advisor.plan import Plan, PlanNode

LEVEL_NOTE = (
    "A plan cannot show where it was set (server, database, role, function or session); "
    "`advisor report --dsn ...` tells from pg_settings.source, pg_db_role_setting and "
    "pg_proc.proconfig."
)


@dataclass(frozen=True, slots=True)
class _Seen:
    """Settings values seen in one place: the live server, or plans sharing one Settings block."""

    where: str
    origin: str  # "server" | "plan"
    values: dict[str, str]
    plans: tuple[Plan, ...] = ()

    @property
    def origin_text(self) -> str:
        if self.origin == "server":
            return "pg_settings"
        return "plan Settings block"


def _seen(facts: Facts, names: tuple[str, ...]) -> list[_Seen]:
    out: list[_Seen] = []
    if facts.settings is not None:
        live = {n: facts.settings[n] for n in names if n in facts.settings}
        out.append(_Seen("server settings", "server", live))
    groups: dict[tuple[tuple[str, str], ...], list[Plan]] = {}
    for plan in facts.plans:
        values = tuple(sorted((n, plan.settings[n]) for n in names if n in plan.settings))
        if values:
            groups.setdefault(values, []).append(plan)
    for values, plans in groups.items():
        label = plans[0].label
        if len(plans) > 1:
            label += f" (and {len(plans) - 1} more with the same settings)"
        out.append(_Seen(label, "plan", dict(values), tuple(plans)))
    return out


Judge = Callable[[str, str], bool]  # (name, value) -> offending?


def _offending(
    facts: Facts, names: tuple[str, ...], bad: Judge
) -> Iterator[tuple[_Seen, dict[str, str]]]:
    """Each place with offending values; a plan that only repeats what the live server already
    showed is not reported twice."""
    live_bad: set[tuple[str, str]] = set()
    for seen in _seen(facts, names):
        found = {n: v for n, v in seen.values.items() if bad(n, v)}
        if not found:
            continue
        if seen.origin == "server":
            live_bad = set(found.items())
        elif set(found.items()) <= live_bad:
            continue
        yield seen, found


def _plans_text(seen: _Seen) -> str:
    """Where the value was seen, without repeating the finding's own `where`."""
    if seen.origin == "server":
        return "on the server"
    if len(seen.plans) == 1:
        return "when this plan was made"
    return f"when these {len(seen.plans)} plans were made"


def _largest_scan(
    plans: tuple[Plan, ...], serial_only: bool = False
) -> tuple[Plan, PlanNode, float] | None:
    best: tuple[Plan, PlanNode, float] | None = None
    for plan in plans:
        for node, anc in plan.walk():
            if serial_only and (node.parallel_aware or under_gather(anc)):
                continue
            rows = rows_read(node) if node.node_type in SCAN_TYPES else None
            if rows is not None and (best is None or rows > best[2]):
                best = (plan, node, rows)
    return best


def _reads(node: PlanNode, rows: float) -> str:
    """'read 2,500,000 rows (260.6MB, 4 workers by the size rule)', the size rule at the
    default threshold: what the scan would get without the offending settings."""
    verb = "read" if node.actual_rows is not None else "is estimated to read"
    blocks = scan_blocks(node)
    size = f" ({size_text(blocks)})" if blocks is not None else ""
    return f"{verb} {rows:,.0f} rows{size}"


_FIX_INDENT = "\n" + " " * 18  # continuation lines under the fix templates' "  label:  " column


def _resets(items: list[tuple[str, str]]) -> dict[str, str]:
    """Statements that put settings back, one per line, per level where they may have been set:
    (name, default as SQL). Server-wide it is ALTER SYSTEM SET to the default, not RESET: RESET
    only drops postgresql.auto.conf's line and leaves a value from postgresql.conf in force."""
    names = [n for n, _ in items]
    new_sessions = "   -- new sessions"
    return {
        "reset_session": _FIX_INDENT.join(f"RESET {n};" for n in names),
        "reset_role": _FIX_INDENT.join(f"ALTER ROLE name RESET {n};" for n in names) + new_sessions,
        "reset_database": _FIX_INDENT.join(f"ALTER DATABASE name RESET {n};" for n in names)
        + new_sessions,
        "reset_server": _FIX_INDENT.join(
            [
                *(f"ALTER SYSTEM SET {n} = {d};" for n, d in items),
                "SELECT pg_reload_conf();   -- reload, no restart",
            ]
        ),
        "them": "it" if len(items) == 1 else "them",
        "the_default": "the default" if len(items) == 1 else "the defaults",
    }


# -- PQ001 ----------------------------------------------------------------------------------------


@check("PQ001")
def parallel_switched_off(facts: Facts, card: Card) -> Iterator[Evidence]:
    name = "max_parallel_workers_per_gather"

    def bad(_: str, value: str) -> bool:
        number = setting_number(value)
        return number is not None and number <= 0

    for seen, found in _offending(facts, (name,), bad):
        impact = ""
        scan = _largest_scan(seen.plans)
        if scan is not None:
            plan, node, rows = scan
            among = "" if len(seen.plans) == 1 else f" (in {plan.label})"
            impact = f"Its largest scan, {node.label}{among}, {_reads(node, rows)} in one process."
            if rows < card.threshold("small_rows"):
                impact += (
                    " For a statement this small, 0 can be a deliberate OLTP choice; "
                    "keep it then for that role only."
                )
        if seen.origin == "plan":
            level = LEVEL_NOTE
        else:
            level = (
                "Roles, databases (pg_db_role_setting) and functions (pg_proc.proconfig) "
                "can still override the server value."
            )
        yield {
            "where": seen.where,
            "setting": name,
            "value": plain(found[name]),
            "origin": seen.origin_text,
            "when": _plans_text(seen),
            "level_note": level,
            "impact": impact,
        }


# -- PQ007 ----------------------------------------------------------------------------------------

# name -> (default, unit of a raw pg_settings number in bytes; 0 for a plain number)
_COST_DEFAULTS: dict[str, tuple[float, int]] = {
    "parallel_setup_cost": (1000.0, 0),
    "parallel_tuple_cost": (0.1, 0),
    "min_parallel_table_scan_size": (8 * 1024**2, 8192),
    "min_parallel_index_scan_size": (512 * 1024, 8192),
}
_COST_EFFECT = {
    "parallel_setup_cost": "added to the cost of every Gather",
    "parallel_tuple_cost": "charged for every row a Gather passes up",
    "min_parallel_index_scan_size": "index scans reading fewer pages than this get no workers",
}
# The defaults as SQL literals (PQ007's resets; recommend.py's cost-setting advice).
SQL_DEFAULTS = {
    "parallel_setup_cost": "1000",
    "parallel_tuple_cost": "0.1",
    "min_parallel_table_scan_size": "'8MB'",
    "min_parallel_index_scan_size": "'512kB'",
}


def _effect(name: str, amount: float) -> str:
    if name == "min_parallel_table_scan_size":
        return (
            f"smaller tables get no parallel scan, and a second worker needs "
            f"{format_bytes(3 * amount)}"
        )
    return _COST_EFFECT[name]


def _cost_value(name: str, value: str) -> float | None:
    unit = _COST_DEFAULTS[name][1]
    return setting_bytes(value, unit) if unit else setting_number(value)


def _show(name: str, amount: float) -> str:
    return format_bytes(amount) if _COST_DEFAULTS[name][1] else f"{amount:g}"


def _discouraged_impact(seen: _Seen, found: dict[str, str]) -> str:
    """What the settings did to the plan: its largest serial scan, and for a raised
    min_parallel_table_scan_size whether that table fell below it."""
    scan = _largest_scan(seen.plans, serial_only=True)
    if scan is None:
        return ""
    plan, node, rows = scan
    among = "" if len(seen.plans) == 1 else f" (in {plan.label})"
    blocks = scan_blocks(node)
    raised = found.get("min_parallel_table_scan_size")
    threshold = _cost_value("min_parallel_table_scan_size", raised) if raised else None
    if threshold is not None and blocks is not None and blocks * 8192 < threshold:
        table = node.target or "the table"
        default = size_rule_workers(blocks)
        return (
            f"{table}{among} is {format_bytes(blocks * 8192)}, below it, so "
            f"{node.label} got no worker; at the default it would get {default} by the "
            f"size rule (before the max_parallel_workers_per_gather cap)."
        )
    if plan_has_gather(plan):
        return ""
    return f"No Gather was chosen: {node.label}{among} {_reads(node, rows)} in one process."


@check("PQ007")
def planner_discouraged(facts: Facts, card: Card) -> Iterator[Evidence]:
    limit = card.threshold("factor")
    names = tuple(_COST_DEFAULTS)

    def bad(name: str, value: str) -> bool:
        amount = _cost_value(name, value)
        return amount is not None and amount >= limit * _COST_DEFAULTS[name][0]

    for seen, found in _offending(facts, names, bad):
        items = []
        for name, value in found.items():
            amount = _cost_value(name, value) or 0.0
            default = _COST_DEFAULTS[name][0]
            items.append(
                {
                    "name": name,
                    "value": _show(name, amount),
                    "default": _show(name, default),
                    "factor": round(amount / default, 1),
                    "effect": _effect(name, amount),
                }
            )
        summary = "; ".join(
            f"{i['name']} = {i['value']}, {i['factor']:g}x its default {i['default']}: "
            f"{i['effect']}"
            for i in items
        )
        impact = _discouraged_impact(seen, found)
        yield {
            "where": seen.where,
            "settings": items,
            "summary": summary,
            "count": len(items),
            "origin": seen.origin_text,
            "when": _plans_text(seen),
            "impact": f" {impact}" if impact else "",
            "level_note": f" {LEVEL_NOTE}" if seen.origin == "plan" else "",
            **_resets([(str(i["name"]), SQL_DEFAULTS[str(i["name"])]) for i in items]),
        }


# -- PQ008 ----------------------------------------------------------------------------------------

_NODE_SWITCHES = {
    "enable_parallel_hash": (
        "Without Parallel Hash, every process under a Gather builds its own copy of a join's "
        "hash table, repeating the build and multiplying its memory."
    ),
    "enable_parallel_append": (
        "Without Parallel Append, UNION ALL and partitioned-table scans cannot hand whole "
        "children to different workers."
    ),
    "enable_gathermerge": (
        "Without Gather Merge, sorted worker output cannot be merged, so ORDER BY and sorted "
        "grouping sort everything in the leader above a Gather, or stay serial."
    ),
}


def _node_evidence(plans: tuple[Plan, ...], names: set[str]) -> str:
    """What a disabled node type changed in the plan(s) at hand."""
    out: list[str] = []
    for plan in plans:
        for node, anc in plan.walk():
            gather = nearest_gather(anc)
            if (
                "enable_parallel_hash" in names
                and node.node_type == "Hash"
                and not node.parallel_aware
                and gather is not None
            ):
                parts = participants(gather)
                each = f", {node.actual_rows:,.0f} rows each" if node.actual_rows else ""
                batches = node.props.get("Hash Batches")
                spill = (
                    f", in {batches} batches" if isinstance(batches, int) and batches > 1 else ""
                )
                out.append(
                    f"{node.label} is a private hash table built by each of the {parts} "
                    f"processes under {gather.label}{each}{spill}."
                )
            if (
                "enable_gathermerge" in names
                and node.node_type in ("Sort", "Incremental Sort")
                and gather is None
                and any(c.is_gather for c in node.children)
            ):
                below = next(c for c in node.children if c.is_gather)
                total = node.total_rows if node.total_rows is not None else node.plan_rows
                count = f"all {total:,.0f} rows" if total is not None else "every row"
                out.append(f"{node.label} sorts {count} in the leader above {below.label}.")
            if (
                "enable_parallel_append" in names
                and node.node_type == "Append"
                and not node.parallel_aware
                and gather is not None
            ):
                out.append(f"{node.label} under {gather.label} is not a Parallel Append.")
    if not out:
        return ""
    where_ = "Here " if len(plans) == 1 else "In these plans, "
    return " " + where_ + " ".join(dict.fromkeys(out))


@check("PQ008")
def node_types_disabled(facts: Facts, card: Card) -> Iterator[Evidence]:
    names = tuple(_NODE_SWITCHES)
    for seen, found in _offending(facts, names, lambda _, v: setting_is_off(v)):
        disabled = ", ".join(f"{n} = {plain(v)}" for n, v in found.items())
        effects = " ".join(_NODE_SWITCHES[n] for n in found)
        yield {
            "where": seen.where,
            "disabled": disabled,
            "settings": sorted(found),
            "origin": seen.origin_text,
            "when": _plans_text(seen),
            "effects": effects,
            "in_plan": _node_evidence(seen.plans, set(found)),
            "level_note": f" {LEVEL_NOTE}" if seen.origin == "plan" else "",
            **_resets([(n, "on") for n in found]),
        }


# -- PQ009 ----------------------------------------------------------------------------------------

_TEST_MODES = ("debug_parallel_query", "force_parallel_mode")


def _single_copy(plan: Plan) -> PlanNode | None:
    return next((g for g in plan.gathers() if g.single_copy), None)


@check("PQ009")
def test_mode_on(facts: Facts, card: Card) -> Iterator[Evidence]:
    def on(_: str, value: str) -> bool:
        return not setting_is_off(value)

    live_on = facts.settings is not None and any(
        on(n, facts.settings[n]) for n in _TEST_MODES if n in facts.settings
    )
    for seen, found in _offending(facts, _TEST_MODES, on):
        name, value = next(iter(found.items()))
        gathers = [(p, g) for p in seen.plans if (g := _single_copy(p)) is not None]
        loc = where(*gathers[0]) if len(seen.plans) == 1 and gathers else seen.where
        copy = ""
        if gathers:
            copy = (
                f" {gathers[0][1].label} shows it: a Single Copy Gather, the wrapper this "
                "mode adds so that one worker runs the whole plan."
            )
        yield {
            "where": loc,
            "setting": name,
            "value": plain(value),
            "origin": seen.origin_text,
            "seen": (f"{name} = {plain(value)} ({seen.origin_text}, {_plans_text(seen)}).{copy}"),
            "level_note": f" {LEVEL_NOTE}" if seen.origin == "plan" else "",
            **_resets([(name, "off")]),
        }
    if live_on:
        return
    for plan in facts.plans:
        gather = _single_copy(plan)
        if gather is None or any(on(n, v) for n, v in plan.settings.items() if n in _TEST_MODES):
            continue
        name = "force_parallel_mode" if plan.server_major_hint == 13 else "debug_parallel_query"
        yield {
            "where": where(plan, gather),
            "setting": name,
            "value": "on (inferred)",
            "origin": "plan shape",
            "seen": (
                f"{gather.label} is a Gather with Single Copy: true. Only "
                "debug_parallel_query (force_parallel_mode before PostgreSQL 16) adds such "
                "a Gather, so it was on (or regress) when the plan was made, although the "
                "plan has no Settings block that shows it."
            ),
            "level_note": f" {LEVEL_NOTE}",
            **_resets([(name, "off")]),
        }
