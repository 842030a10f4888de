"""The tabs of the TUI. Each pane builds its widgets once and redraws from a `Loaded` in
`show()`; panes never fetch anything themselves (the app runs sources in thread workers).
The engine, checks and recommendations are imported where used: the source's worker imports
them anyway, so the first frame does not wait for them."""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Label, Markdown, Sparkline, Static, TextArea, Tree
from textual.widgets.tree import TreeNode

from advisor.plan import Plan, PlanNode
from advisor.render import _md_text
from advisor.report import SEVERITY_RANK, Finding, Recommendation, Report
from advisor.tui.source import Loaded

if TYPE_CHECKING:
    from advisor.engine import Facts

PlanRef = tuple[Plan, PlanNode | None]  # what a Plans tree item points at
SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
REQUIRES_ORDER = {"restart": 0, "reload": 1, "session": 2, "none": 3}
POOLER_KINDS = ("pgbouncer", "pgpool")
NO_REPORT = "No report yet."


def severity_text(severity: str) -> Text:
    return Text(severity, style=SEVERITY_STYLE.get(severity, ""))


def gauge(
    label: str, value: float | None, total: float | None, width: int = 30, label_width: int = 36
) -> Text:
    """`label  ███████░░░░  6 / 8` — a bar that never animates (snapshot tests stay stable)."""
    text = Text(f"{label:<{label_width - 1}} ")
    if value is None or not total:
        text.append("unknown", style="dim")
        return text
    filled = min(width, round(width * value / total))
    style = "red" if value > total else "yellow" if value >= total else "green"
    text.append("█" * filled, style=style)
    text.append("░" * (width - filled), style="dim")
    text.append(f"  {value:g} / {total:g}")
    return text


def finding_markdown(f: Finding, explanation: str | None) -> str:
    """Message, where, evidence, fix and the card's explanation, for a Markdown widget."""
    evidence = "\n".join(
        f"| `{k}` | {_md_cell(v)} |" for k, v in f.evidence.items() if v not in ("", None)
    )
    parts = [
        f"## {f.rule} {f.title}",
        f"**{f.severity}** · {f.name}" + (f" · *{f.where}*" if f.where else ""),
        _md_text(f.message),
        "### Fix",
        _md_text(f.fix),
    ]
    if evidence:
        parts += ["### Evidence", "| key | value |\n|---|---|\n" + evidence]
    if explanation:
        # The card's own headings are level 2; nest them under this finding.
        parts.append(re.sub(r"(?m)^## ", "### ", explanation))
    parts.append(f"*More: `{f.docs}`*")
    return "\n\n".join(parts)


def _md_cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text.replace("|", "\\|").replace("\n", " ")[:300]


def _cards() -> dict[str, Any]:
    from advisor.engine import load_cards

    return load_cards()


class FindingsView(Horizontal):
    """A sortable findings table and a detail pane; used by the Findings and Paste tabs."""

    COLUMNS = (("severity", "severity"), ("code", "rule"), ("title", "title"), ("where", "where"))

    def __init__(self, *, id: str | None = None, empty: str = "No findings.") -> None:
        super().__init__(id=id, classes="findings-view")
        self.findings: list[Finding] = []
        self.sort_column = "severity"
        self.empty = empty
        # The Markdown detail costs most of a report's first paint: a hidden tab's detail is
        # rendered when the tab is first shown.
        self.pending: Finding | None = None

    def compose(self) -> ComposeResult:
        table: DataTable[Any] = DataTable(cursor_type="row", zebra_stripes=True)
        for label, key in self.COLUMNS:
            table.add_column(label, key=key)
        yield table
        with VerticalScroll(classes="detail"):
            yield Markdown(self.empty)

    def show(self, findings: list[Finding]) -> None:
        self.findings = list(findings)
        self._fill()

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for i, f in enumerate(self._sorted()):
            table.add_row(severity_text(f.severity), f.rule, f.title, f.where, key=str(i))
        if self.findings:
            table.move_cursor(row=0)
            self.pending = self._sorted()[0]
            if self.region:  # on screen now
                self._detail(self.pending)
        else:
            self.pending = None
            self.query_one(Markdown).update(self.empty)

    def on_show(self) -> None:
        if self.pending is not None:
            self._detail(self.pending)

    def _sorted(self) -> list[Finding]:
        col = self.sort_column
        if col == "severity":
            return sorted(self.findings, key=lambda f: (-SEVERITY_RANK[f.severity], f.rule))
        return sorted(self.findings, key=lambda f: (str(getattr(f, col)), f.rule))

    def sort_by(self, column: str) -> None:
        self.sort_column = column
        self._fill()

    def cycle_sort(self) -> str:
        keys = [k for _, k in self.COLUMNS]
        self.sort_by(keys[(keys.index(self.sort_column) + 1) % len(keys)])
        return self.sort_column

    def selected(self) -> Finding | None:
        table = self.query_one(DataTable)
        rows = self._sorted()
        return rows[table.cursor_row] if 0 <= table.cursor_row < len(rows) else None

    def _detail(self, f: Finding) -> None:
        self.pending = None
        card = _cards().get(f.rule)
        self.query_one(Markdown).update(finding_markdown(f, card.explanation if card else None))
        self.query_one(".detail", VerticalScroll).scroll_home(animate=False)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        f = self.selected()
        if f is not None:
            self._detail(f)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.sort_by(str(event.column_key.value))


# -- Overview -------------------------------------------------------------------------------------


class OverviewPane(VerticalScroll):
    def on_mount(self) -> None:
        self.add_class("-empty")  # only the "No report yet" box until a report arrives

    def compose(self) -> ComposeResult:
        yield Static(NO_REPORT, id="ov-server", classes="box")
        yield Static("", id="ov-workers", classes="box")
        yield Static("", id="ov-connections", classes="box")
        with Horizontal(id="ov-sparks"):
            with Vertical(classes="spark"):
                yield Label("active connections (sampled)", id="ov-active-label")
                yield Sparkline([], id="ov-active")
            with Vertical(classes="spark"):
                yield Label("parallel workers (sampled)", id="ov-workers-label")
                yield Sparkline([], id="ov-parallel")
        yield Static("", id="ov-counts", classes="box")

    def show(self, loaded: Loaded) -> None:
        self.remove_class("-empty")
        from advisor.checks.base import format_bytes

        report, snap = loaded.report, loaded.snapshot
        t, hw = report.target, report.hardware
        server = Text()
        server.append(f"PostgreSQL {t.server_version or '?'}", style="bold")
        server.append(f"  {t.host or 'local'} / {t.database or '?'}  ({loaded.origin})\n")
        if t.collected_at:
            server.append(f"collected {t.collected_at}\n", style="dim")
        details = snap.hardware.details if snap is not None else {}
        cores = f"{hw.cores:g}" if hw.cores is not None else "unknown"
        memory = format_bytes(hw.memory_bytes) if hw.memory_bytes else "unknown"
        server.append(f"cores {cores}", style="bold")
        server.append(f"  ({hw.cores_source}: {details.get('cores', 'no detail')})\n")
        server.append(f"RAM   {memory}", style="bold")
        server.append(f"  ({hw.memory_source}: {details.get('memory', 'no detail')})")
        self.query_one("#ov-server", Static).update(server)

        def num(name: str) -> float | None:
            value = snap.setting(name) if snap is not None else None
            try:
                return float(value) if value is not None else None
            except ValueError:
                return None

        peaks = snap.activity_peaks() if snap is not None else None
        in_use = float(peaks.parallel_workers) if peaks is not None else None
        mwp, mpw = num("max_worker_processes"), num("max_parallel_workers")
        per_gather = num("max_parallel_workers_per_gather")
        workers = Text("Worker budget\n", style="bold")
        workers.append_text(gauge("max_parallel_workers of processes", mpw, mwp))
        workers.append("\n")
        workers.append_text(gauge("per gather of max_parallel_workers", per_gather, mpw))
        workers.append("\n")
        workers.append_text(gauge("parallel workers in use (peak)", in_use, mpw))
        self.query_one("#ov-workers", Static).update(workers)

        max_conn = num("max_connections")
        conns = Text("Connection budget\n", style="bold")
        if peaks is not None:
            conns.append_text(gauge("client connections (peak)", peaks.client_backends, max_conn))
            conns.append("\n")
            conns.append_text(gauge("active (peak)", peaks.active, max_conn))
            conns.append("\n")
            idle_tx = peaks.idle_in_transaction
            conns.append_text(gauge("idle in transaction (peak)", idle_tx, max_conn))
            conns.append(f"\n{peaks.samples} samples over {peaks.seconds:.1f} s", style="dim")
        else:
            conns.append("no pg_stat_activity samples", style="dim")
        self.query_one("#ov-connections", Static).update(conns)

        samples = snap.activity_samples if snap is not None else []
        self.query_one("#ov-active", Sparkline).data = [float(s.active) for s in samples]
        self.query_one("#ov-parallel", Sparkline).data = [
            float(s.parallel_workers) for s in samples
        ]
        if samples:
            self.query_one("#ov-active-label", Label).update(
                f"active connections (sampled, peak {max(s.active for s in samples)})"
            )
            self.query_one("#ov-workers-label", Label).update(
                f"parallel workers (sampled, peak {max(s.parallel_workers for s in samples)})"
            )
        self.query_one("#ov-counts", Static).update(counts_text(report))


def counts_text(report: Report) -> Text:
    text = Text("Findings  ", style="bold")
    for sev in ("critical", "warning", "info"):
        n = sum(1 for f in report.findings if f.severity == sev)
        text.append(f"{n} {sev}", style=SEVERITY_STYLE[sev] if n else "dim")
        text.append("   ")
    text.append(f"{len(report.recommendations)} recommendations   ")
    text.append(f"{len(report.plans)} plans   ")
    not_run = sum(1 for s in report.skipped if s.rule != "collect")
    text.append(f"{not_run} rules not run (missing facts)", style="dim")
    for e in report.errors:
        text.append(f"\nerror {e.source}: {e.message}", style="red")
    return text


# -- Findings -------------------------------------------------------------------------------------


class FindingsPane(Vertical):
    def compose(self) -> ComposeResult:
        yield Static("s: sort column · Enter/click a row: details", classes="hint")
        yield FindingsView(id="findings-view")

    def show(self, loaded: Loaded) -> None:
        self.query_one(FindingsView).show(loaded.report.findings)


# -- Recommendations ------------------------------------------------------------------------------


class RecommendationsPane(Horizontal):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.recs: list[Recommendation] = []
        self.findings: dict[str, Finding] = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="recs-left"):
            yield Static("x: export apply script · c: copy it to the clipboard", classes="hint")
            table: DataTable[Any] = DataTable(cursor_type="row", id="recs-table")
            for col in ("needs", "name", "scope", "current", "recommended", "because"):
                table.add_column(col, key=col)
            yield table
            with VerticalScroll(classes="detail", id="recs-detail-box"):
                yield Static(NO_REPORT, id="recs-detail")
        with Vertical(id="recs-right"):
            yield Label("apply script (preview; never run by the advisor)", classes="title")
            yield TextArea("", read_only=True, id="recs-script", show_line_numbers=False)

    @property
    def script(self) -> str:
        from advisor.recommend import render_apply_script

        return render_apply_script(self.recs)

    def show(self, loaded: Loaded) -> None:
        report = loaded.report
        self.recs = sorted(
            report.recommendations, key=lambda r: (REQUIRES_ORDER.get(r.requires, 9), r.name)
        )
        self.findings = {f.rule: f for f in report.findings}
        table = self.query_one(DataTable)
        table.clear()
        for i, r in enumerate(self.recs):
            table.add_row(
                r.requires,
                r.name,
                r.scope,
                r.current or "—",
                Text(r.recommended, style="bold green"),
                ", ".join(r.because),
                key=str(i),
            )
        self.query_one("#recs-script", TextArea).text = self.script
        if self.recs:
            table.move_cursor(row=0)
            self._detail(self.recs[0])
        else:
            self.query_one("#recs-detail", Static).update("No recommendations.")

    def _detail(self, r: Recommendation) -> None:
        text = Text()
        text.append(f"{r.name}", style="bold")
        text.append(f" = {r.recommended}", style="bold green")
        text.append(f"   (now {r.current or 'unset'}; needs {r.requires}; {r.kind})\n\n")
        text.append("formula and evidence\n", style="bold")
        text.append(r.formula + "\n\n")
        for code in r.because:
            f = self.findings.get(code)
            if f is not None:
                text.append(f"{code} ", style=SEVERITY_STYLE[f.severity])
                text.append(f"{f.title}\n")
        text.append("\napply\n", style="bold")
        text.append(r.apply)
        self.query_one("#recs-detail", Static).update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        row = event.cursor_row
        if 0 <= row < len(self.recs):
            self._detail(self.recs[row])


# -- Plans ----------------------------------------------------------------------------------------


def node_findings(plan: Plan, node: PlanNode, findings: list[Finding]) -> list[Finding]:
    """Findings whose `where` names this node (the form `plan label › node label`)."""
    at = f"{plan.label} › {node.label}"
    return [f for f in findings if f.where == at]


def node_label(node: PlanNode, attached: list[Finding]) -> Text:
    parallel = node.parallel_aware or node.is_gather
    text = Text("⇶ " if parallel else "  ", style="bold magenta")
    text.append(node.label, style="bold" if parallel else "")
    if node.workers_planned is not None:
        launched = "?" if node.workers_launched is None else str(node.workers_launched)
        style = "red" if launched != "?" and int(launched) < node.workers_planned else "green"
        text.append(f"  workers {node.workers_planned} planned / {launched} launched", style=style)
    if node.all_spills():
        text.append("  spills", style="yellow")
    for f in attached:
        text.append(f"  {f.rule}", style=SEVERITY_STYLE[f.severity])
    return text


class PlansPane(Horizontal):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.findings: list[Finding] = []

    def compose(self) -> ComposeResult:
        tree: Tree[PlanRef] = Tree("plans", id="plans-tree")
        tree.show_root = False
        yield tree
        with VerticalScroll(classes="detail"):
            yield Static(NO_REPORT, id="plans-detail")

    def show(self, loaded: Loaded) -> None:
        self.findings = loaded.report.findings
        tree: Tree[PlanRef] = self.query_one(Tree)
        tree.clear()
        for plan in loaded.plans:
            summary = [f"{plan.node_count} nodes"]
            if plan.execution_time_ms is not None:
                summary.append(f"{plan.execution_time_ms:,.1f} ms")
            head = Text(plan.label, style="bold underline")
            head.append(f"  ({', '.join(summary)})", style="dim")
            branch = tree.root.add(head, data=(plan, None), expand=True)
            self._add(branch, plan, plan.root)
        detail = self.query_one("#plans-detail", Static)
        if not loaded.plans:
            detail.update(
                "No plans in this report. Plans come from `advisor collect --explain-top N`, "
                "from the Statements tab (e: EXPLAIN, needs a live server) and from the Paste tab."
            )
        else:
            detail.update("Select a node to see its workers, spills and findings.")
            tree.cursor_line = 0

    def _add(self, parent: TreeNode[PlanRef], plan: Plan, node: PlanNode) -> None:
        attached = node_findings(plan, node, self.findings)
        item = parent.add(node_label(node, attached), data=(plan, node), expand=True)
        if not node.children:
            item.allow_expand = False
        for child in node.children:
            self._add(item, plan, child)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[PlanRef]) -> None:
        data = event.node.data
        if data is None:
            return
        plan, node = data
        self.query_one("#plans-detail", Static).update(node_detail(plan, node, self.findings))


def node_detail(plan: Plan, node: PlanNode | None, findings: list[Finding]) -> Text:
    text = Text()
    if node is None:
        text.append(f"{plan.label}\n", style="bold")
        text.append(f"{plan.node_count} nodes, {len(plan.gathers())} Gather nodes\n")
        if plan.query_text:
            text.append(f"\n{plan.query_text}\n")
        on_plan = [f for f in findings if f.where == plan.label]
        for f in on_plan:
            text.append(f"\n{f.rule} ", style=SEVERITY_STYLE[f.severity])
            text.append(f"{f.title}\n{f.fix}\n")
        return text
    text.append(f"{node.label}\n", style="bold")
    for name, value in (
        ("estimated rows", node.plan_rows),
        ("actual rows", node.actual_rows),
        ("loops", node.actual_loops),
        ("total cost", node.total_cost),
        ("actual time ms", node.actual_total_time),
    ):
        if value is not None:
            text.append(f"{name:<16}{value:g}\n")
    if node.workers_planned is not None:
        launched = "not analysed" if node.workers_launched is None else node.workers_launched
        text.append(f"workers planned {node.workers_planned}, launched {launched}\n")
    if node.filter:
        text.append(f"filter          {node.filter}\n")
    if node.workers:
        text.append("\nper worker\n", style="bold")
        for w in node.workers:
            rows = "?" if w.actual_rows is None else f"{w.actual_rows:g}"
            ms = "" if w.actual_total_time is None else f", {w.actual_total_time:g} ms"
            spill = "; ".join(s.detail for s in w.spills)
            text.append(f"  worker {w.number}: rows {rows}{ms}{'; ' + spill if spill else ''}\n")
    spills = node.all_spills()
    if spills:
        text.append("\nspills\n", style="bold yellow")
        for who, s in spills:
            text.append(f"  {who}: {s.detail}\n")
    attached = node_findings(plan, node, findings)
    if attached:
        text.append("\nfindings\n", style="bold")
    for f in attached:
        text.append(f"{f.rule} ", style=SEVERITY_STYLE[f.severity])
        text.append(f"{f.title}\n", style="bold")
        text.append(f"{f.message}\nfix: {f.fix}\n\n")
    return text


# -- Statements -----------------------------------------------------------------------------------

TOP_STATEMENTS = 25


def statement_findings(stat: Any, findings: list[Finding]) -> list[Finding]:
    """Findings about this pg_stat_statements row: by queryid, by its captured plans
    ("statement <queryid> plan 1 › ..."), and function findings for functions it calls."""
    at = f"statement {stat.queryid}"
    query = stat.query or ""
    out = []
    for f in findings:
        if stat.queryid is not None and (
            f.evidence.get("queryid") == stat.queryid
            or f.where == at
            or f.where.startswith(at + " ")
        ):
            out.append(f)
        elif f.where.startswith("function ") and query:
            name = f.where.removeprefix("function ").split("(")[0].rsplit(".", 1)[-1]
            if re.search(rf"\b{re.escape(name)}\s*\(", query, re.IGNORECASE):
                out.append(f)
    return out


class StatementsPane(Vertical):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[Any] = []  # StatementStat
        self.findings: list[Finding] = []
        self.can_explain = False

    def compose(self) -> ComposeResult:
        yield Static("", id="stmts-hint", classes="hint")
        table: DataTable[Any] = DataTable(cursor_type="row", id="stmts-table", zebra_stripes=True)
        for col in ("total ms", "calls", "mean ms", "workers", "hazards", "query"):
            table.add_column(col, key=col)
        yield table
        with VerticalScroll(classes="detail", id="stmts-detail-box"):
            yield Static(NO_REPORT, id="stmts-detail")

    def show(self, loaded: Loaded) -> None:
        snap = loaded.snapshot
        self.findings = loaded.report.findings
        self.can_explain = loaded.live
        hint = (
            "e: EXPLAIN the selected statement (generic plan for $n texts) · "
            "a: EXPLAIN ANALYZE (asks first; rolled back)"
            if self.can_explain
            else "EXPLAIN from here needs a live server: advisor tui --dsn DSN"
        )
        self.query_one("#stmts-hint", Static).update(hint)
        stats = snap.statements if snap is not None else []
        self.rows = sorted(
            (s for s in stats if not s.hidden), key=lambda s: s.total_exec_time, reverse=True
        )[:TOP_STATEMENTS]
        table = self.query_one(DataTable)
        table.clear()
        for i, s in enumerate(self.rows):
            hazards = Text()
            for f in statement_findings(s, self.findings):
                hazards.append(f"{f.rule} ", style=SEVERITY_STYLE[f.severity])
            workers = (
                "—"
                if s.parallel_workers_to_launch is None
                else f"{s.parallel_workers_launched}/{s.parallel_workers_to_launch}"
            )
            query = " ".join((s.query or "(text hidden)").split())
            table.add_row(
                f"{s.total_exec_time:,.1f}",
                str(s.calls),
                f"{s.mean_exec_time:,.2f}",
                workers,
                hazards,
                query[:70],
                key=str(i),
            )
        detail = self.query_one("#stmts-detail", Static)
        if not self.rows:
            why = (
                "pg_stat_statements was not read"
                if snap is None or snap.statements_info is None
                else "pg_stat_statements has no visible rows"
            )
            detail.update(f"No statements: {why}.")
        else:
            table.move_cursor(row=0)
            self._detail(self.rows[0])

    def selected(self) -> Any:
        row = self.query_one(DataTable).cursor_row
        return self.rows[row] if 0 <= row < len(self.rows) else None

    def _detail(self, s: Any) -> None:
        text = Text()
        text.append(f"queryid {s.queryid}  role {s.role}  database {s.database}\n", style="dim")
        text.append((s.query or "(text hidden)") + "\n\n")
        found = statement_findings(s, self.findings)
        if not found:
            text.append("No parallel or pooling hazard found for this statement.", style="dim")
        for f in found:
            text.append(f"{f.rule} ", style=SEVERITY_STYLE[f.severity])
            text.append(f"{f.title}\n", style="bold")
            text.append(f"{f.message}\nfix: {f.fix}\n\n")
        self.query_one("#stmts-detail", Static).update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        s = self.selected()
        if s is not None:
            self._detail(s)


# -- Pooling --------------------------------------------------------------------------------------


def is_pooling_finding(f: Finding) -> bool:
    """Connection findings (CN: a pooler is often the fix) and the poolers' own (PB, PP)."""
    return f.rule.startswith(("CN", "PB", "PP"))


def _pool_state(peak_waiting: int, peak_active: int, size: int, saturated: bool) -> Text:
    if saturated:
        return Text("saturated (PB05)", style="bold red")
    if peak_waiting:
        return Text("clients wait", style="yellow")
    if size and peak_active >= size:
        return Text("full", style="yellow")
    return Text("ok", style="green")


class PoolingPane(Vertical):
    """PgBouncer instances and pools, pgpool-II children and backend nodes, with the budgets
    the PB03/PP01 rules judge, the pooler sizing advice and the CN/PB/PP findings."""

    POOL_COLUMNS = ("pool", "mode", "size", "sv_active peak", "sv_active mean", "cl_waiting peak")
    NODE_COLUMNS = ("node", "host:port", "role", "status", "lb_weight", "select_cnt", "delay")

    def compose(self) -> ComposeResult:
        with Horizontal(id="pool-top"):
            yield Static(NO_REPORT, id="pool-facts")
            with VerticalScroll(id="pool-side"):
                yield Static("", id="pool-recs")
        pools: DataTable[Any] = DataTable(id="pool-pools", zebra_stripes=True)
        for label in (*self.POOL_COLUMNS, "maxwait", "state"):
            pools.add_column(label, key=label)
        yield pools
        nodes: DataTable[Any] = DataTable(id="pool-nodes", zebra_stripes=True)
        for label in self.NODE_COLUMNS:
            nodes.add_column(label, key=label)
        yield nodes
        yield FindingsView(id="pool-findings", empty="No connection or pooler findings.")

    def show(self, loaded: Loaded) -> None:
        from advisor.snapshot import facts_from_snapshot

        snap = loaded.snapshot
        facts = facts_from_snapshot(snap) if snap is not None else None
        findings = [f for f in loaded.report.findings if is_pooling_finding(f)]
        bouncer = facts is not None and facts.pgbouncer is not None
        pgpool = facts is not None and facts.pgpool is not None
        summary = Text()
        if facts is not None and bouncer:
            summary.append_text(self._pgbouncer(facts, findings))
        if facts is not None and pgpool:
            if bouncer:
                summary.append("\n\n")
            summary.append_text(self._pgpool(facts))
        if not (bouncer or pgpool):
            summary.append("No pooler data", style="bold")
            summary.append(
                " in this report. Collect it with `advisor report --pgbouncer-ini FILE` / "
                "`--pgbouncer-dsn DSN` or `--pgpool-conf FILE` / `--pgpool-dsn DSN`; the sizing "
                "advice comes from the server alone."
            )
        self.query_one("#pool-facts", Static).update(summary)
        self.query_one("#pool-pools").display = bouncer
        self.query_one("#pool-nodes").display = pgpool
        self.query_one("#pool-recs", Static).update(self._advice(loaded.report.recommendations))
        self.query_one(FindingsView).show(findings)

    def _pgbouncer(self, facts: Facts, findings: list[Finding]) -> Text:
        """Each instance's settings, its FD limit, the pools table and the server budget."""
        from advisor.checks.pgbouncer import _by_pool, _instances
        from advisor.checks.server import _num
        from advisor.pooler import pgbouncer as pgb

        assert facts.pgbouncer is not None
        saturated = {f.where for f in findings if f.rule == "PB05"}
        table: DataTable[Any] = self.query_one("#pool-pools", DataTable)
        table.clear()
        listed = list(_instances(facts))
        text = Text()
        budgets = []
        for i, (name, inst) in enumerate(listed):
            text.append(f"PgBouncer {inst.version or '?'}", style="bold")
            text.append(f"  ({inst.version_source or 'version unknown'})\n", style="dim")
            if inst.ini is not None:
                text.append(f"ini {inst.ini.path}\n")
            if inst.console is not None:
                text.append(f"console {inst.console.dsn}\n")
            values = [
                f"{key} {pgb.setting(inst, key)[0]}"
                for key in (
                    "pool_mode",
                    "max_client_conn",
                    "default_pool_size",
                    "reserve_pool_size",
                    "max_db_connections",
                )
            ]
            text.append(" · ".join(values) + "\n")
            proc = inst.process
            soft = proc.nofile_soft if proc is not None else None
            text.append_text(
                gauge("open files needed / ulimit -n", pgb.fd_need(inst), soft, 14, 30)
            )
            if proc is not None and proc.nofile_hard is not None:
                text.append(f"  (hard {proc.nofile_hard})", style="dim")
            text.append("\n")
            budget, _ = pgb.server_budget(inst)
            budgets.append(budget)
            prefix = f"#{i + 1} " if len(listed) > 1 else ""
            samples = _by_pool(inst.console.samples) if inst.console is not None else {}
            for p in pgb.pools(inst):
                ss = samples.get((p.database, p.user), [])
                active = [s.sv_active for s in ss]
                peak_active = max(active, default=0)
                peak_waiting = max((s.cl_waiting for s in ss), default=0)
                hot = f"{name} pool {p.database}/{p.user}" in saturated
                table.add_row(
                    Text(f"{prefix}{p.database}/{p.user}", style="bold red" if hot else ""),
                    p.mode,
                    f"{p.size}+{p.reserve}" if p.reserve else str(p.size),
                    str(peak_active) if ss else "-",
                    f"{sum(active) / len(active):.1f}" if ss else "-",
                    Text(str(peak_waiting), style="bold red" if peak_waiting else "")
                    if ss
                    else "-",
                    f"{max(s.maxwait_s for s in ss):.2f} s" if ss else "-",
                    _pool_state(peak_waiting, peak_active, p.size, hot)
                    if ss
                    else Text(f"from {os.path.basename(p.where)}", style="dim"),
                )
        # The server-connection budget, as PB03 counts it (replicas open their own).
        count = max(facts.pgbouncer.instance_count, len(listed))
        total = sum(budgets) + (count - len(listed)) * (budgets[0] if budgets else 0)
        max_conn = _num(facts, "max_connections")
        reserved = (_num(facts, "superuser_reserved_connections") or 0) + (
            _num(facts, "reserved_connections") or 0
        )
        available = None if max_conn is None else max_conn - reserved
        label = "server connections" + (f" (x{count})" if count > 1 else "")
        text.append_text(gauge(label, total, available, 14, 30))
        if max_conn is not None:
            text.append(f"\n  of max_connections {max_conn:g} - {reserved:g} reserved", style="dim")
        return text

    def _pgpool(self, facts: Facts) -> Text:
        """Version, children x max_pool, busy children and waiting clients, the nodes table and
        each node's backend budget (children x max_pool + checks; cancels double it)."""
        from advisor.pooler.pgpool import PgpoolView
        from advisor.pooler.pgpool_sizing import demand, node_budgets

        assert facts.pgpool is not None
        pp = facts.pgpool
        view = PgpoolView(pp)
        children = int(view.number("num_init_children"))
        max_pool = int(view.number("max_pool"))
        text = Text(f"pgpool-II {pp.version or view.version_text}", style="bold")
        text.append(f"  {pp.conf_file or 'no pgpool.conf'}", style="dim")
        text.append(f"  console {pp.dsn_host}" if pp.console else "  no console", style="dim")
        text.append(f"\nnum_init_children {children} x max_pool {max_pool}")
        text.append(f" = {children * max_pool} backend connections per node\n")
        if pp.samples:
            d = demand(facts, view)
            peak = max(s.busy for s in pp.samples)
            text.append_text(gauge("children busy (peak)", peak, children, 14, 30))
            waiting = "?" if d.peak_waiting is None else str(d.peak_waiting)
            seconds = f"{len(pp.samples)} samples over {pp.sample_seconds:.1f} s"
            text.append(f"\nclients waiting (peak) {waiting}")
            text.append("  in the accept queue\n", style="dim")
            text.append(f"  {seconds}; one busy child is the advisor's console\n", style="dim")
        else:
            text.append("no console samples (busy children unknown)\n", style="dim")
        base = children * max_pool
        for b in node_budgets(facts, view):  # as PP01: cancel requests double the children's
            label = f"node {b.node} backends, cancel-safe"
            text.append_text(gauge(label, 2 * base + b.checks, b.available, 14, 30))
            text.append(
                f"\n  2 x {base} + {b.checks} checks of max_connections {b.max_connections} - "
                f"{b.superuser_reserved + b.reserved} reserved"
                + ("" if b.source.startswith("read from") else f" ({b.source})")
                + "\n",
                style="dim",
            )
        for address in pp.unreachable:
            text.append(f"node {address}: limits unknown (unreachable)\n", style="yellow")
        table: DataTable[Any] = self.query_one("#pool-nodes", DataTable)
        table.clear()
        for n in pp.nodes:
            status = n.status if n.pg_status in (None, n.status) else f"{n.status}/{n.pg_status}"
            table.add_row(
                str(n.node_id),
                f"{n.hostname}:{n.port}",
                n.role,
                Text(status, style="green" if status == "up" else "bold red"),
                f"{n.lb_weight:g}",
                str(n.select_cnt),
                n.replication_delay or "-",
            )
        if not pp.nodes:  # no console: the nodes pgpool.conf lists
            for node in view.node_ids():
                weight = view.setting(f"backend_weight{node}").value or "-"
                no = Text("no console", style="dim")
                table.add_row(str(node), view.node_address(node), "-", no, weight, "-", "-")
        return text

    @staticmethod
    def _advice(recommendations: list[Recommendation]) -> Text:
        recs = [r for r in recommendations if r.kind in POOLER_KINDS]
        text = Text("Pooler sizing advice\n", style="bold")
        if not recs:
            text.append("none", style="dim")
        for r in recs:
            text.append(f"{r.scope}: ", style="bold")
            text.append(f"{r.name} = {r.recommended}", style="green")
            text.append(f"  (now {r.current or 'unset'})  [{', '.join(r.because)}]\n")
            text.append(f"  {r.formula}\n", style="dim")
            for line in r.apply.splitlines():
                text.append(f"    {line}\n")
        return text


# -- Paste ----------------------------------------------------------------------------------------

PASTE_HELP = (
    "Paste EXPLAIN output here (text as psql prints it, or FORMAT JSON); findings appear below. "
    "Esc leaves the text area."
)


class PastePane(Vertical):
    def compose(self) -> ComposeResult:
        yield Static(PASTE_HELP, id="paste-status", classes="hint")
        yield TextArea("", id="paste-input", show_line_numbers=True)
        yield FindingsView(id="paste-findings", empty="Nothing pasted yet.")
