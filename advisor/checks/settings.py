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
    rows_read,
    setting_bytes,
    setting_is_off,
    setting_number,
    where,
)
from advisor.engine import Card, Evidence, Facts, check
from advisor.plan import Plan, PlanNode

LEVEL_NOTE = (
    "A plan alone cannot tell whether the value came from the server, database, role, function "
    "or session level; `advisor report --dsn ...` reads pg_settings.source, pg_db_role_setting "
    "and pg_proc.proconfig to say which."
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
    if seen.origin == "server":
        return "on the server"
    if len(seen.plans) == 1:
        return f"when {seen.plans[0].label} was planned"
    return f"when these {len(seen.plans)} plans were planned"


def _largest_scan(plans: tuple[Plan, ...]) -> tuple[Plan, PlanNode, float] | None:
    best: tuple[Plan, PlanNode, float] | None = None
    for plan in plans:
        for node in plan.nodes():
            rows = rows_read(node) if node.node_type in SCAN_TYPES else None
            if rows is not None and (best is None or rows > best[2]):
                best = (plan, node, rows)
    return best


_FIX_INDENT = "\n" + " " * 18  # continuation lines under the fix templates' "  label:  " column


def _resets(names: list[str]) -> dict[str, str]:
    """RESET statements for a fix, one per line, at session, server and role level."""
    return {
        "reset_session": _FIX_INDENT.join(f"RESET {n};" for n in names),
        "reset_server": _FIX_INDENT.join(
            [*(f"ALTER SYSTEM RESET {n};" for n in names), "SELECT pg_reload_conf();"]
        ),
        "reset_role": _FIX_INDENT.join(f"ALTER ROLE name RESET {n};" for n in names),
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
            verb = "read" if node.actual_rows is not None else "is estimated to read"
            scope = "in it" if len(seen.plans) == 1 else f"among them, in {plan.label}"
            impact = (f"The largest scan {scope}, {node.label}, {verb} {rows:,.0f} rows in a "
                      "single process.")
            if rows < card.threshold("small_rows"):
                impact += (" That is a small statement, for which 0 can be a deliberate OLTP "
                           "choice (per role, see PQ207).")
        if seen.origin == "plan":
            level = LEVEL_NOTE
        else:
            level = ("The server value applies to every session that does not override it; "
                     "role and database overrides (pg_db_role_setting) and function SET clauses "
                     "(pg_proc.proconfig) can still differ.")
        yield {
            "where": seen.where,
            "setting": name,
            "value": found[name],
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
    "parallel_setup_cost": "added once to every Gather's cost",
    "parallel_tuple_cost": "charged for every row a Gather passes up",
    "min_parallel_table_scan_size": "tables smaller than this get no parallel scan at all",
    "min_parallel_index_scan_size": "index scans reading fewer pages than this get no workers",
}


def _effect(name: str, amount: float) -> str:
    if name == "min_parallel_table_scan_size":
        return (f"tables smaller than {format_bytes(amount)} get no parallel scan, "
                f"and 2 workers need {format_bytes(3 * amount)}")
    return _COST_EFFECT[name]


def _cost_value(name: str, value: str) -> float | None:
    unit = _COST_DEFAULTS[name][1]
    return setting_bytes(value, unit) if unit else setting_number(value)


def _show(name: str, amount: float) -> str:
    return format_bytes(amount) if _COST_DEFAULTS[name][1] else f"{amount:g}"


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
            items.append({
                "name": name,
                "value": _show(name, amount),
                "default": _show(name, default),
                "factor": round(amount / default, 1),
                "effect": _effect(name, amount),
            })
        summary = "; ".join(
            f"{i['name']} = {i['value']} (default {i['default']}, {i['factor']:g}x: {i['effect']})"
            for i in items
        )
        names_found = [str(i["name"]) for i in items]
        yield {
            "where": seen.where,
            "settings": items,
            "summary": summary,
            "count": len(items),
            "origin": seen.origin_text,
            "when": _plans_text(seen),
            "level_note": LEVEL_NOTE if seen.origin == "plan" else "",
            **_resets(names_found),
        }


# -- PQ008 ----------------------------------------------------------------------------------------

_NODE_SWITCHES = {
    "enable_parallel_hash": (
        "hash joins under a Gather build one private hash table per participant instead of one "
        "shared Parallel Hash, so the build is repeated by every process and needs that much "
        "more memory"
    ),
    "enable_parallel_append": (
        "UNION ALL and partitioned-table scans cannot hand whole children to different workers "
        "(Parallel Append)"
    ),
    "enable_gathermerge": (
        "ordered results cannot be merged from sorted workers (Gather Merge), so ORDER BY and "
        "sorted grouping either sort everything in the leader above a Gather or stay serial"
    ),
}


@check("PQ008")
def node_types_disabled(facts: Facts, card: Card) -> Iterator[Evidence]:
    names = tuple(_NODE_SWITCHES)
    for seen, found in _offending(facts, names, lambda _, v: setting_is_off(v)):
        disabled = ", ".join(f"{n} = {v}" for n, v in found.items())
        effects = " ".join(f"With {n} off, {_NODE_SWITCHES[n]}." for n in found)
        yield {
            "where": seen.where,
            "disabled": disabled,
            "settings": sorted(found),
            "origin": seen.origin_text,
            "when": _plans_text(seen),
            "effects": effects,
            "level_note": LEVEL_NOTE if seen.origin == "plan" else "",
            **_resets(list(found)),
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
            copy = (f" The plan shows its effect: {gathers[0][1].label} is a Single Copy Gather, "
                    "the wrapper this mode adds so that one worker runs the whole plan.")
        yield {
            "where": loc,
            "setting": name,
            "value": value,
            "origin": seen.origin_text,
            "seen": f"{name} = {value} ({seen.origin_text}) {_plans_text(seen)}.{copy}",
            "level_note": LEVEL_NOTE if seen.origin == "plan" else "",
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
            "seen": (f"{gather.label} is a Gather with Single Copy: true. Only "
                     "debug_parallel_query (force_parallel_mode before PostgreSQL 16) adds such "
                     "a Gather, so it was on (or regress) when the plan was made, although the "
                     "plan has no Settings block that shows it."),
            "level_note": LEVEL_NOTE,
        }
