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

# Keys copied into typed fields (or handled specially); everything else stays in `props`.
_CHILD_KEYS = frozenset({"Plans", "Workers"})


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


@dataclass(slots=True)
class PlanNode:
    node_type: str  # JSON "Node Type": never carries the "Parallel " prefix
    parallel_aware: bool = False
    parent_relationship: str | None = None  # Outer/Inner/Member/SubPlan/InitPlan/Subquery
    subplan_name: str | None = None
    relation: str | None = None
    schema: str | None = None
    alias: str | None = None
    index_name: str | None = None
    cte_name: str | None = None
    function_name: str | None = None
    operation: str | None = None  # ModifyTable: Insert/Update/Delete/Merge
    strategy: str | None = None  # Aggregate/SetOp: Plain/Sorted/Hashed/Mixed
    partial_mode: str | None = None  # Aggregate: Simple/Partial/Finalize
    join_type: str | None = None
    startup_cost: float | None = None
    total_cost: float | None = None
    plan_rows: float | None = None
    plan_width: int | None = None
    actual_startup_time: float | None = None
    actual_total_time: float | None = None
    actual_rows: float | None = None  # per loop, as EXPLAIN prints it
    actual_loops: float | None = None
    workers_planned: int | None = None
    workers_launched: int | None = None
    single_copy: bool | None = None
    filter: str | None = None
    output: list[str] = field(default_factory=list)
    workers: list[WorkerStats] = field(default_factory=list)
    children: list[PlanNode] = field(default_factory=list)
    props: dict[str, Any] = field(default_factory=dict)  # every EXPLAIN key of the node
    node_id: int = 0  # 1-based pre-order position in its plan

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
            name = {"Hashed": "HashAggregate", "Sorted": "GroupAggregate", "Mixed": "MixedAggregate"}.get(
                self.strategy or "", "Aggregate"
            )
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
            if self.alias and self.alias != self.relation:
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

    def walk(self, ancestors: tuple[PlanNode, ...] = ()) -> Iterator[tuple[PlanNode, tuple[PlanNode, ...]]]:
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
        out.append(Spill("sort", f"{p.get('Sort Method', 'sort')}, {used:.0f} kB on disk" if used is not None
                         else f"{p.get('Sort Method', 'sort')} on disk", used))
    batches = _int(p.get("Hash Batches"))
    if batches is not None and batches > 1:
        orig = _int(p.get("Original Hash Batches"))
        grew = f" (planned {orig})" if orig is not None and orig != batches else ""
        out.append(Spill("hash", f"hash table split into {batches} batches{grew}", None, batches))
    disk = _num(p.get("Disk Usage"))
    hb = _int(p.get("HashAgg Batches"))
    if (disk is not None and disk > 0) or (hb is not None and hb > 1):
        out.append(Spill("hashagg", f"hash aggregate in {hb or '?'} batches, {disk or 0:.0f} kB on disk", disk, hb))
    return out


@dataclass(slots=True)
class Plan:
    """One EXPLAIN result (one statement)."""

    root: PlanNode
    source: str = "plan"  # where it came from: file name, "stdin", "live"
    index: int = 1  # 1-based position among the plans of the same source
    input_format: str = "json"  # "json" | "text"
    settings: dict[str, str] = field(default_factory=dict)  # EXPLAIN (SETTINGS) block
    planning_time_ms: float | None = None
    execution_time_ms: float | None = None
    jit: Jit | None = None
    query_text: str | None = None  # auto_explain's "Query Text", or supplied by the caller
    props: dict[str, Any] = field(default_factory=dict)  # other top-level keys
    node_count: int = 0

    @property
    def label(self) -> str:
        return f"{self.source} plan {self.index}" if self.source else f"plan {self.index}"

    @property
    def analyzed(self) -> bool:
        return self.root.actual_loops is not None

    @property
    def verbose(self) -> bool:
        return any(n.output for n, _ in self.root.walk())

    def walk(self) -> Iterator[tuple[PlanNode, tuple[PlanNode, ...]]]:
        return self.root.walk()

    def nodes(self) -> Iterator[PlanNode]:
        for n, _ in self.root.walk():
            yield n

    def gathers(self) -> list[PlanNode]:
        return [n for n in self.nodes() if n.is_gather]

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
        raise ValueError("a plan node has no \"Node Type\"")
    counter[0] += 1
    out = d.get("Output")
    node = PlanNode(
        node_type=d["Node Type"],
        parallel_aware=d.get("Parallel Aware") is True,
        parent_relationship=_str(d.get("Parent Relationship")),
        subplan_name=_str(d.get("Subplan Name")),
        relation=_str(d.get("Relation Name")),
        schema=_str(d.get("Schema")),
        alias=_str(d.get("Alias")),
        index_name=_str(d.get("Index Name")),
        cte_name=_str(d.get("CTE Name")),
        function_name=_str(d.get("Function Name")),
        operation=_str(d.get("Operation")),
        strategy=_str(d.get("Strategy")),
        partial_mode=_str(d.get("Partial Mode")),
        join_type=_str(d.get("Join Type")),
        startup_cost=_num(d.get("Startup Cost")),
        total_cost=_num(d.get("Total Cost")),
        plan_rows=_num(d.get("Plan Rows")),
        plan_width=_int(d.get("Plan Width")),
        actual_startup_time=_num(d.get("Actual Startup Time")),
        actual_total_time=_num(d.get("Actual Total Time")),
        actual_rows=_num(d.get("Actual Rows")),
        actual_loops=_num(d.get("Actual Loops")),
        workers_planned=_int(d.get("Workers Planned")),
        workers_launched=_int(d.get("Workers Launched")),
        single_copy=d.get("Single Copy") if isinstance(d.get("Single Copy"), bool) else None,
        filter=_str(d.get("Filter")),
        output=[o for o in out if isinstance(o, str)] if isinstance(out, list) else [],
        workers=_build_workers(d.get("Workers")),
        props={k: v for k, v in d.items() if k not in _CHILD_KEYS},
        node_id=counter[0],
    )
    children = d.get("Plans")
    if isinstance(children, list):
        node.children = [build_node(c, counter) for c in children]
    return node


def build_plan(doc: Mapping[str, Any], *, source: str = "plan", index: int = 1,
               input_format: str = "json") -> Plan:
    """Turn one element of the EXPLAIN (FORMAT JSON) array into a `Plan`."""
    root = doc.get("Plan")
    if not isinstance(root, Mapping):
        raise ValueError("the document has no \"Plan\" object")
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
        settings={str(k): str(v) for k, v in settings.items()} if isinstance(settings, Mapping) else {},
        planning_time_ms=_num(doc.get("Planning Time")),
        execution_time_ms=_num(doc.get("Execution Time")),
        jit=Jit.from_json(jit) if isinstance(jit, Mapping) else None,
        query_text=query if isinstance(query, str) else None,
        props={k: v for k, v in doc.items() if k not in ("Plan", "Settings", "JIT")},
        node_count=counter[0],
    )
