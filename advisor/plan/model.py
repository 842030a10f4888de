"""One typed plan model for every input form.

Both parsers (JSON and text) first produce the *JSON-shaped* document PostgreSQL itself emits
for `EXPLAIN (FORMAT JSON)`: a dict per plan with "Plan", "Settings", "Planning Time", ...
and a dict per node with the exact EXPLAIN key names. `build_plan` turns that document into
the model below, so a plan pasted as text and the same plan as JSON become the same tree.

The model keeps only what rules need as typed fields; every other key stays available in
`PlanNode.props` (raw EXPLAIN keys) for evidence and for the TUI.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

GATHER_TYPES = frozenset({"Gather", "Gather Merge"})


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    return None


@dataclass(slots=True)
class Jit:
    """JIT block: top-level (all processes summed) or per worker."""

    functions: int | None = None
    total_ms: float | None = None
    generation_ms: float | None = None
    inlining_ms: float | None = None
    optimization_ms: float | None = None
    emission_ms: float | None = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Jit:
        timing = d.get("Timing") or {}
        gen = timing.get("Generation")
        if isinstance(gen, Mapping):  # PG 17+: {"Deform": .., "Total": ..}
            gen = gen.get("Total")
        return cls(
            functions=_int(d.get("Functions")),
            total_ms=_num(timing.get("Total")),
            generation_ms=_num(gen),
            inlining_ms=_num(timing.get("Inlining")),
            optimization_ms=_num(timing.get("Optimization")),
            emission_ms=_num(timing.get("Emission")),
        )


@dataclass(slots=True)
class Spill:
    """What one process (leader or a worker) of a node wrote to disk, in kB where known."""

    kind: str  # "sort" | "hash" | "hashagg"
    detail: str  # human wording: "external merge, 12345 kB on disk"
    disk_kb: float | None = None
    batches: int | None = None


@dataclass(slots=True)
class WorkerStats:
    """One entry of a node's "Workers" array (ANALYZE; timing and rows need VERBOSE)."""

    number: int
    actual_rows: float | None = None
    actual_loops: float | None = None
    actual_total_time: float | None = None
    props: dict[str, Any] = field(default_factory=dict)
    jit: Jit | None = None

    @property
    def spills(self) -> list[Spill]:
        return _spills(self.props)


class PlanNode:
    """One plan node. It keeps the node's EXPLAIN keys (`props`) and reads typed facts from
    them on access: building a 3,000-node partition plan must cost little more than its
    `json.loads`, and checks read only a few facts per node."""

    __slots__ = ("children", "node_id", "props", "workers")

    def __init__(
        self,
        props: dict[str, Any],
        children: list[PlanNode] | None = None,
        workers: list[WorkerStats] | None = None,
        node_id: int = 0,
    ) -> None:
        self.props = props  # every EXPLAIN key of the node except "Plans" and "Workers"
        self.children = children if children is not None else []
        self.workers = workers if workers is not None else []
        self.node_id = node_id  # 1-based pre-order position in its plan

    def __repr__(self) -> str:
        return f"PlanNode({self.display_type!r}, node_id={self.node_id})"

    @property
    def node_type(self) -> str:
        """JSON "Node Type": never carries the "Parallel " prefix."""
        return str(self.props.get("Node Type", ""))

    @property
    def parallel_aware(self) -> bool:
        return self.props.get("Parallel Aware") is True

    @property
    def single_copy(self) -> bool | None:
        v = self.props.get("Single Copy")
        return v if isinstance(v, bool) else None

    @property
    def output(self) -> list[str]:
        v = self.props.get("Output")
        return [o for o in v if isinstance(o, str)] if isinstance(v, list) else []

    @property
    def parent_relationship(self) -> str | None:
        """Outer/Inner/Member/SubPlan/InitPlan/Subquery"""
        return _str(self.props.get("Parent Relationship"))

    @property
    def subplan_name(self) -> str | None:
        return _str(self.props.get("Subplan Name"))

    @property
    def relation(self) -> str | None:
        return _str(self.props.get("Relation Name"))

    @property
    def schema(self) -> str | None:
        return _str(self.props.get("Schema"))

    @property
    def alias(self) -> str | None:
        return _str(self.props.get("Alias"))

    @property
    def index_name(self) -> str | None:
        return _str(self.props.get("Index Name"))

    @property
    def cte_name(self) -> str | None:
        return _str(self.props.get("CTE Name"))

    @property
    def function_name(self) -> str | None:
        return _str(self.props.get("Function Name"))

    @property
    def operation(self) -> str | None:
        """ModifyTable: Insert/Update/Delete/Merge"""
        return _str(self.props.get("Operation"))

    @property
    def strategy(self) -> str | None:
        """Aggregate/SetOp: Plain/Sorted/Hashed/Mixed"""
        return _str(self.props.get("Strategy"))

    @property
    def partial_mode(self) -> str | None:
        """Aggregate: Simple/Partial/Finalize"""
        return _str(self.props.get("Partial Mode"))

    @property
    def join_type(self) -> str | None:
        return _str(self.props.get("Join Type"))

    @property
    def filter(self) -> str | None:
        return _str(self.props.get("Filter"))

    @property
    def startup_cost(self) -> float | None:
        return _num(self.props.get("Startup Cost"))

    @property
    def total_cost(self) -> float | None:
        return _num(self.props.get("Total Cost"))

    @property
    def plan_rows(self) -> float | None:
        return _num(self.props.get("Plan Rows"))

    @property
    def actual_startup_time(self) -> float | None:
        return _num(self.props.get("Actual Startup Time"))

    @property
    def actual_total_time(self) -> float | None:
        return _num(self.props.get("Actual Total Time"))

    @property
    def actual_rows(self) -> float | None:
        return _num(self.props.get("Actual Rows"))

    @property
    def actual_loops(self) -> float | None:
        return _num(self.props.get("Actual Loops"))

    @property
    def plan_width(self) -> int | None:
        return _int(self.props.get("Plan Width"))

    @property
    def workers_planned(self) -> int | None:
        return _int(self.props.get("Workers Planned"))

    @property
    def workers_launched(self) -> int | None:
        return _int(self.props.get("Workers Launched"))

    # -- derived facts -------------------------------------------------------------------------

    @property
    def is_gather(self) -> bool:
        return self.node_type in GATHER_TYPES

    @property
    def never_executed(self) -> bool:
        return self.actual_loops == 0

    @property
    def total_rows(self) -> float | None:
        """Rows over all loops (under a Gather, all participants): Actual Rows x Actual Loops."""
        if self.actual_rows is None:
            return None
        return self.actual_rows * (self.actual_loops or 1.0)

    @property
    def display_type(self) -> str:
        """The node name as text EXPLAIN prints it ("Parallel Seq Scan", "Finalize Aggregate")."""
        name = self.node_type
        if name == "Aggregate":
            name = {
                "Hashed": "HashAggregate",
                "Sorted": "GroupAggregate",
                "Mixed": "MixedAggregate",
            }.get(self.strategy or "", "Aggregate")
            if self.partial_mode in ("Partial", "Finalize"):
                name = f"{self.partial_mode} {name}"
        elif name == "ModifyTable" and self.operation:
            name = self.operation
        if self.parallel_aware:
            name = f"Parallel {name}"
        return name

    @property
    def target(self) -> str | None:
        """schema.relation (or relation, CTE, function) the node reads, if any."""
        if self.relation:
            return f"{self.schema}.{self.relation}" if self.schema else self.relation
        return self.cte_name or self.function_name

    @property
    def label(self) -> str:
        text = self.display_type
        if self.target:
            text += f" on {self.target}"
            if self.alias and self.alias not in (self.relation, self.cte_name, self.function_name):
                text += f" {self.alias}"
        elif self.index_name:
            text += f" using {self.index_name}"
        return f"{text} (node {self.node_id})"

    @property
    def spills(self) -> list[Spill]:
        """Leader-level (node-level) spills; see `all_spills` for workers too."""
        return _spills(self.props)

    def all_spills(self) -> list[tuple[str, Spill]]:
        """(who, spill) for the node itself and every worker: who is "leader" or "worker N"."""
        out = [("leader", s) for s in self.spills]
        for w in self.workers:
            out.extend((f"worker {w.number}", s) for s in w.spills)
        return out

    def walk(
        self, ancestors: tuple[PlanNode, ...] = ()
    ) -> Iterator[tuple[PlanNode, tuple[PlanNode, ...]]]:
        """Pre-order walk yielding (node, ancestors from the root down)."""
        stack: list[tuple[PlanNode, tuple[PlanNode, ...]]] = [(self, ancestors)]
        while stack:
            node, anc = stack.pop()
            yield node, anc
            below = (*anc, node)
            stack.extend((c, below) for c in reversed(node.children))


def _spills(p: Mapping[str, Any]) -> list[Spill]:
    out: list[Spill] = []
    if p.get("Sort Space Type") == "Disk":
        used = _num(p.get("Sort Space Used"))
        out.append(
            Spill(
                "sort",
                f"{p.get('Sort Method', 'sort')}, {used:.0f} kB on disk"
                if used is not None
                else f"{p.get('Sort Method', 'sort')} on disk",
                used,
            )
        )
    batches = _int(p.get("Hash Batches"))
    if batches is not None and batches > 1:
        orig = _int(p.get("Original Hash Batches"))
        grew = f" (planned {orig})" if orig is not None and orig != batches else ""
        out.append(Spill("hash", f"hash table split into {batches} batches{grew}", None, batches))
    disk = _num(p.get("Disk Usage"))
    hb = _int(p.get("HashAgg Batches"))
    if (disk is not None and disk > 0) or (hb is not None and hb > 1):
        out.append(
            Spill(
                "hashagg",
                f"hash aggregate in {hb or '?'} batches, {disk or 0:.0f} kB on disk",
                disk,
                hb,
            )
        )
    return out


@dataclass(slots=True)
class Plan:
    """One EXPLAIN result (one statement)."""

    root: PlanNode
    source: str = "plan"  # where it came from: file name, "stdin", "live"
    index: int = 1  # 1-based position among the plans of the same source
    input_format: str = "json"  # "json" | "text"
    settings: dict[str, str] = field(default_factory=dict)  # EXPLAIN (SETTINGS) block
    # True when the input carried a Settings block at all: JSON with SETTINGS always has one
    # (maybe empty, meaning "all planner settings at their defaults"); without it nothing is known.
    settings_shown: bool = False
    planning_time_ms: float | None = None
    execution_time_ms: float | None = None
    jit: Jit | None = None
    query_text: str | None = None  # auto_explain's "Query Text", or supplied by the caller
    props: dict[str, Any] = field(default_factory=dict)  # other top-level keys
    node_count: int = 0
    # The pre-order walk, computed once: every check walks every plan, and big plans
    # (thousands of partitions) make repeated generator walks the dominant cost.
    _walked: list[tuple[PlanNode, tuple[PlanNode, ...]]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def label(self) -> str:
        return f"{self.source} plan {self.index}" if self.source else f"plan {self.index}"

    @property
    def analyzed(self) -> bool:
        return self.root.actual_loops is not None

    @property
    def verbose(self) -> bool:
        return any(n.output for n in self.nodes())

    def walk(self) -> list[tuple[PlanNode, tuple[PlanNode, ...]]]:
        """(node, ancestors) in pre-order; computed once and shared by all checks."""
        if self._walked is None:
            self._walked = list(self.root.walk())
        return self._walked

    def nodes(self) -> Iterator[PlanNode]:
        return (n for n, _ in self.walk())

    def gathers(self) -> list[PlanNode]:
        return [n for n, _ in self.walk() if n.is_gather]

    @property
    def server_major_hint(self) -> int | None:
        """Best guess of the server major from key presence (§3.1 / Appendix B)."""
        p = self.root.props
        if "Disabled" in p:
            return 18
        if "Async Capable" not in p:
            return 13
        return None


# -- building from the JSON-shaped document ------------------------------------------------------


def _build_workers(items: Any) -> list[WorkerStats]:
    out: list[WorkerStats] = []
    if not isinstance(items, list):
        return out
    for i, w in enumerate(items):
        if not isinstance(w, Mapping):
            continue
        jit = w.get("JIT")
        out.append(
            WorkerStats(
                number=_int(w.get("Worker Number")) if w.get("Worker Number") is not None else i,  # type: ignore[arg-type]
                actual_rows=_num(w.get("Actual Rows")),
                actual_loops=_num(w.get("Actual Loops")),
                actual_total_time=_num(w.get("Actual Total Time")),
                props={k: v for k, v in w.items() if k != "JIT"},
                jit=Jit.from_json(jit) if isinstance(jit, Mapping) else None,
            )
        )
    return out


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def build_node(d: Mapping[str, Any], counter: list[int]) -> PlanNode:
    """Build one node and its subtree; `counter` numbers nodes in pre-order."""
    if not isinstance(d, Mapping) or not isinstance(d.get("Node Type"), str):
        raise ValueError('a plan node has no "Node Type"')
    counter[0] += 1
    props = dict(d)
    children = props.pop("Plans", None)
    workers = props.pop("Workers", None)
    node = PlanNode(props, None, _build_workers(workers) if workers else None, counter[0])
    if isinstance(children, list):
        node.children = [build_node(c, counter) for c in children]
    return node


def build_plan(
    doc: Mapping[str, Any], *, source: str = "plan", index: int = 1, input_format: str = "json"
) -> Plan:
    """Turn one element of the EXPLAIN (FORMAT JSON) array into a `Plan`."""
    root = doc.get("Plan")
    if not isinstance(root, Mapping):
        raise ValueError('the document has no "Plan" object')
    counter = [0]
    node = build_node(root, counter)
    settings = doc.get("Settings")
    jit = doc.get("JIT")
    query = doc.get("Query Text")
    return Plan(
        root=node,
        source=source,
        index=index,
        input_format=input_format,
        settings={str(k): str(v) for k, v in settings.items()}
        if isinstance(settings, Mapping)
        else {},
        settings_shown=isinstance(settings, Mapping),
        planning_time_ms=_num(doc.get("Planning Time")),
        execution_time_ms=_num(doc.get("Execution Time")),
        jit=Jit.from_json(jit) if isinstance(jit, Mapping) else None,
        query_text=query if isinstance(query, str) else None,
        props={k: v for k, v in doc.items() if k not in ("Plan", "Settings", "JIT")},
        node_count=counter[0],
    )
