"""Small helpers shared by checks: where a finding is, how big a scan is, what a setting was."""

from __future__ import annotations

from collections.abc import Iterator

from advisor.engine import Facts
from advisor.plan import Plan, PlanNode

SCAN_TYPES = frozenset(
    {
        "Seq Scan",
        "Index Scan",
        "Index Only Scan",
        "Bitmap Heap Scan",
        "Tid Range Scan",
        "Sample Scan",
    }
)


def where(plan: Plan, node: PlanNode | None = None) -> str:
    """'stdin plan 1 › Gather (node 3)': the form every finding uses."""
    return f"{plan.label} › {node.label}" if node is not None else plan.label


def rows_read(node: PlanNode) -> float | None:
    """Rows a scan produced plus those its filter removed (actual when analysed, else estimated)."""
    if node.actual_rows is not None:
        loops = node.actual_loops or 1.0
        removed = node.props.get("Rows Removed by Filter") or 0
        # "Rows Removed by Filter" is per loop too, like Actual Rows.
        return (node.actual_rows + float(removed)) * loops
    return node.plan_rows


def under_gather(ancestors: tuple[PlanNode, ...]) -> bool:
    return any(a.is_gather for a in ancestors)


def plan_has_gather(plan: Plan) -> bool:
    return any(n.is_gather for n in plan.nodes())


def setting(facts: Facts, plan: Plan | None, name: str) -> tuple[str | None, str]:
    """Value of a setting and where it was seen: the plan's Settings block wins (it is what the
    planner used for that statement), then the live server settings."""
    if plan is not None and name in plan.settings:
        return plan.settings[name], "plan Settings block"
    if facts.settings is not None and name in facts.settings:
        return facts.settings[name], "server setting"
    return None, "unknown"


def setting_in_effect(
    facts: Facts, plan: Plan | None, name: str, default: str
) -> tuple[str | None, str]:
    """Like `setting`, but a plan made with EXPLAIN (SETTINGS) that does not list `name` proves
    it was at its built-in `default` (the block lists every non-default planner setting)."""
    value, origin = setting(facts, plan, name)
    if value is None and plan is not None and plan.settings_shown:
        return default, "default; the plan's Settings block does not list it"
    return value, origin


def plain(value: str) -> str:
    """A setting as a person writes it: plans quote values ('1GB')."""
    return value.strip().strip("'\"").strip()


def analysed_plans(facts: Facts) -> Iterator[Plan]:
    return (p for p in facts.plans if p.analyzed)


# -- generic helpers for settings values and parallel participants --------------------------------

_SIZE_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}


def setting_bytes(value: str, unit_bytes: int) -> float | None:
    """A memory/size setting in bytes: '1GB', '8MB', '512kB', "'64MB'" (as plans quote it), or a
    raw number in the setting's own unit (pg_settings gives `min_parallel_table_scan_size`
    as 8 kB blocks, `work_mem` as kB): pass that unit as `unit_bytes`."""
    text = value.strip().strip("'\"").strip().lower().replace(" ", "")
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    suffix = text[len(number) :]
    try:
        amount = float(number)
    except ValueError:
        return None
    if not suffix:
        return amount * unit_bytes
    factor = _SIZE_UNITS.get(suffix)
    return amount * factor if factor is not None else None


def setting_number(value: str) -> float | None:
    """A plain numeric setting ('1000', "'0.1'"), or None when it is not a number."""
    try:
        return float(value.strip().strip("'\"").strip())
    except ValueError:
        return None


def setting_is_off(value: str) -> bool:
    """Boolean/enum settings as PostgreSQL accepts them: off, false, no, 0 (any case)."""
    return value.strip().strip("'\"").strip().lower() in {"off", "false", "no", "0"}


def format_bytes(n: float) -> str:
    """Bytes the way postgresql.conf writes them: '512kB', '8MB', '1.5GB'."""
    for unit, size in (("TB", 1024**4), ("GB", 1024**3), ("MB", 1024**2), ("kB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.1f}{unit}"
    return f"{n:.0f}B"


def nearest_gather(ancestors: tuple[PlanNode, ...]) -> PlanNode | None:
    """The closest Gather / Gather Merge above a node, if it runs in a parallel part."""
    for node in reversed(ancestors):
        if node.is_gather:
            return node
    return None


def participants(gather: PlanNode | None) -> int:
    """Processes that run the part below a Gather: launched (else planned) workers + the leader."""
    if gather is None:
        return 1
    workers = gather.workers_launched
    if workers is None:
        workers = gather.workers_planned
    return (workers or 0) + 1


# -- the size rule for workers (knowledge/parallel-query.md §2.3) ---------------------------------


def size_rule_workers(heap_blocks: float, min_blocks: float = 1024.0) -> int:
    """Workers `compute_parallel_worker` gives a plain table of `heap_blocks` 8 kB blocks before
    the max_parallel_workers_per_gather cap: 0 below `min_parallel_table_scan_size` (in blocks,
    default 1024 = 8 MB), then one more for every tripling (1 + floor(log3(blocks / min)))."""
    threshold = max(min_blocks, 1.0)
    if heap_blocks < threshold:
        return 0
    workers = 1
    while heap_blocks >= threshold * 3 and threshold <= (2**31 - 1) // 3:
        workers += 1
        threshold *= 3
    return workers


def scan_blocks(node: PlanNode) -> float | None:
    """8 kB blocks one pass of a Seq Scan touched (BUFFERS: shared + local, hit + read), i.e.
    the table's size when it was read to the end; None without BUFFERS or for other scans."""
    if node.node_type != "Seq Scan":
        return None

    def touched(n: PlanNode) -> float | None:
        values = [v for k in _BLOCK_KEYS if isinstance(v := n.props.get(k), int | float)]
        return float(sum(values)) if values else None

    own = touched(node)
    if own is None:
        return None
    # A node's buffer counts include its SubPlans and InitPlans (all their loops): take them out.
    own -= sum(touched(c) or 0.0 for c in node.children)
    return max(own, 0.0) / max(node.actual_loops or 1.0, 1.0)


_BLOCK_KEYS = ("Shared Hit Blocks", "Shared Read Blocks", "Local Hit Blocks", "Local Read Blocks")


def min_table_blocks(facts: Facts, plan: Plan | None) -> float:
    """min_parallel_table_scan_size in 8 kB blocks (plan Settings block, server, or 8 MB)."""
    value, _ = setting(facts, plan, "min_parallel_table_scan_size")
    size = setting_bytes(value, 8192) if value is not None else None
    return size / 8192 if size is not None else 1024.0


def size_text(blocks: float, min_blocks: float = 1024.0) -> str:
    """'260.6MB, 4 workers by the size rule' (the spec's wording) or '5.2MB, below
    min_parallel_table_scan_size'. The count is before the max_parallel_workers_per_gather cap."""
    size = format_bytes(blocks * 8192)
    workers = size_rule_workers(blocks, min_blocks)
    if workers == 0:
        return f"{size}, below min_parallel_table_scan_size"
    return f"{size}, {workers} worker{'' if workers == 1 else 's'} by the size rule"
