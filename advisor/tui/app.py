"""The Textual app. It takes a report source (a callable returning `Loaded`) and runs it in a
thread worker, so connecting and collecting never freeze the UI; failures show in the status
line and as a notification, never as a traceback. No psycopg import here (see source.py)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.timer import Timer
from textual.widgets import (
    Button,
    Footer,
    Header,
    Input,
    Label,
    LoadingIndicator,
    Markdown,
    Static,
    TabbedContent,
    TabPane,
    TextArea,
)
from textual.worker import Worker, WorkerState

from advisor.tui.panes import (
    FindingsPane,
    FindingsView,
    OverviewPane,
    PastePane,
    PlansPane,
    PoolingPane,
    RecommendationsPane,
    StatementsPane,
)
from advisor.tui.source import Loaded, ReportSource, SourceError, analyse_paste, explain_statement

TABS = (
    ("overview", "Overview", OverviewPane),
    ("findings", "Findings", FindingsPane),
    ("recommendations", "Recommendations", RecommendationsPane),
    ("plans", "Plans", PlansPane),
    ("statements", "Statements", StatementsPane),
    ("pooling", "Pooling", PoolingPane),
    ("paste", "Paste", PastePane),
)

HELP = """\
# pg-parallel-advisor  (esc closes)

Why parallel query and connection pooling are under-used on this server, with evidence.

| key | what |
|---|---|
| `1`..`7` | switch tab: Overview, Findings, Recommendations, Plans, Statements, Pooling, Paste |
| `r` | refresh: collect again (live server) or reload the snapshot file |
| `s` | Findings: sort by the next column (or click a column header) |
| `x` / `c` | Recommendations: export the apply script to a file / copy it to the clipboard |
| `e` / `a` | Statements: EXPLAIN the selected statement / EXPLAIN ANALYZE it (asks first) |
| `ctrl+p` | command palette |
| `?` | this help |
| `q` | quit |

Findings show evidence, the fix and the rule card; recommendations show their formula.
The advisor never runs the apply script. Paste tab: EXPLAIN text or JSON, findings at once.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Markdown(HELP)


class ConfirmScreen(ModalScreen[bool]):
    """Yes/no; nothing runs until the user presses y (or clicks Run)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "yes"),
        Binding("n,escape", "answer(False)", "no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm", classes="dialog"):
            yield Static(self.question)
            with Horizontal(classes="buttons"):
                yield Button("Run (y)", variant="warning", id="yes")
                yield Button("Cancel (n)", id="no")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class ExportScreen(ModalScreen[str | None]):
    """Asks where to write the apply script."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="export", classes="dialog"):
            yield Label("Write the apply script to (Enter to write, Esc to cancel):")
            yield Input("advisor-apply.sql", id="export-path")

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)


class AdvisorApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "pg-parallel-advisor"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        Binding("r", "refresh", "refresh"),
        Binding("question_mark,f1", "help", "help"),
        Binding("s", "sort", "sort"),
        Binding("x", "export", "export script"),
        Binding("c", "copy", "copy script"),
        Binding("e", "explain(False)", "EXPLAIN"),
        Binding("a", "explain(True)", "EXPLAIN ANALYZE"),
        *(
            Binding(str(i), f"tab('{tab}')", label, show=False)
            for i, (tab, label, _) in enumerate(TABS, 1)
        ),
    ]

    def __init__(
        self, source: ReportSource, *, live: bool = False, title: str | None = None
    ) -> None:
        super().__init__()
        self.source = source
        self.live = live  # the source collects from a server (else it reads a file)
        self.loaded: Loaded | None = None
        self.paste_timer: Timer | None = None
        if title:
            self.title = title

    # -- layout ----------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="status-bar"):
            yield LoadingIndicator(id="busy")
            yield Static("Loading ...", id="status")
        with TabbedContent(id="tabs"):
            for tab, label, pane in TABS:
                with TabPane(label, id=tab):
                    yield pane(id=f"{tab}-pane")
        yield Footer()

    def on_mount(self) -> None:
        self.action_refresh()

    # -- loading ---------------------------------------------------------------------------------

    def set_status(self, message: str, *, busy: bool = False, error: bool = False) -> None:
        status = self.query_one("#status", Static)
        status.update(message)
        status.set_class(error, "error")
        self.query_one("#busy").display = busy

    def action_refresh(self) -> None:
        self.set_status("Collecting from the server ..." if self.live else "Loading ...", busy=True)
        self._load()

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load(self) -> Loaded:
        return self.source()

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _explain(self, base: Loaded, sql: str, analyze: bool) -> Loaded:
        return explain_statement(base, sql, analyze=analyze)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group == "load":
            if event.state == WorkerState.SUCCESS and isinstance(worker.result, Loaded):
                self.show(worker.result)
                if worker.name == "_explain":
                    self.query_one(TabbedContent).active = "plans"
            elif event.state == WorkerState.ERROR:
                self.fail(worker.error)
        elif worker.group == "paste":
            if event.state == WorkerState.SUCCESS and worker.result is not None:
                report, plans = worker.result
                self.query_one("#paste-findings", FindingsView).show(report.findings)
                n = len(report.findings)
                self.query_one("#paste-status", Static).update(
                    f"{len(plans)} plan{'s' if len(plans) != 1 else ''} read, "
                    f"{n} finding{'s' if n != 1 else ''}."
                )
                self.query_one("#paste-status").remove_class("error")
            elif event.state == WorkerState.ERROR:
                self.query_one("#paste-status", Static).update(_one_line(worker.error))
                self.query_one("#paste-status").add_class("error")
                self.query_one("#paste-findings", FindingsView).show([])

    def fail(self, error: BaseException | None) -> None:
        message = _one_line(error)
        self.set_status(f"Error: {message}  (r: retry)", error=True)
        if self.loaded is None:  # nothing to show yet: say why where the report would be
            self.query_one("#ov-server", Static).update(f"No report: {message}\n\nr: retry")
        self.notify(message, title="advisor", severity="error", timeout=8)

    def show(self, loaded: Loaded) -> None:
        self.loaded = loaded
        self.sub_title = loaded.origin
        report = loaded.report
        n = len(report.findings)
        version = report.target.server_version
        self.set_status(
            f"{loaded.origin} · PostgreSQL {version or '?'} · "
            f"{n} finding{'s' if n != 1 else ''} · {len(report.recommendations)} recommendations"
        )
        for tab, _, _ in TABS:
            show = getattr(self.query_one(f"#{tab}-pane"), "show", None)
            if show is not None:
                show(loaded)

    # -- actions ---------------------------------------------------------------------------------

    # Keys that belong to one tab: in the footer (and active) only there.
    TAB_ACTIONS: ClassVar[dict[str, str]] = {
        "sort": "findings",
        "export": "recommendations",
        "copy": "recommendations",
        "explain": "statements",
    }

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        tab = self.TAB_ACTIONS.get(action)
        return tab is None or self.active_tab == tab

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.refresh_bindings()
        # Keys act on the tab just shown: focus its table, tree or text area.
        for widget in event.pane.query("DataTable, Tree, TextArea"):
            widget.focus()
            break

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    @property
    def active_tab(self) -> str:
        tabs = self.query(TabbedContent)
        return tabs.first().active if tabs else ""

    def action_sort(self) -> None:
        if self.active_tab == "findings":
            column = self.query_one("#findings-view", FindingsView).cycle_sort()
            self.notify(f"sorted by {column}", timeout=2)

    def action_copy(self) -> None:
        pane = self.query_one(RecommendationsPane)
        if not pane.recs:
            self.notify("no recommendations to copy", severity="warning")
            return
        self.copy_to_clipboard(pane.script)
        self.notify("apply script copied to the clipboard (terminals with OSC 52)", timeout=4)

    def action_export(self) -> None:
        pane = self.query_one(RecommendationsPane)
        if not pane.recs:
            self.notify("no recommendations to export", severity="warning")
            return

        def write(path: str | None) -> None:
            if path is None:
                return
            try:
                Path(path).write_text(pane.script, encoding="utf-8")
            except OSError as exc:
                self.notify(f"cannot write {path}: {exc.strerror or exc}", severity="error")
            else:
                self.notify(f"wrote {path} ({len(pane.recs)} recommendations)")

        self.push_screen(ExportScreen(), write)

    def action_explain(self, analyze: bool) -> None:
        if self.active_tab != "statements":
            return
        pane = self.query_one(StatementsPane)
        stmt = pane.selected()
        if self.loaded is None or not pane.can_explain:
            self.notify("EXPLAIN needs a live server: advisor tui --dsn DSN", severity="warning")
            return
        if stmt is None or not stmt.query:
            self.notify("no statement text to EXPLAIN", severity="warning")
            return
        base, sql = self.loaded, str(stmt.query)
        if not analyze:
            self.set_status("EXPLAIN (generic plan) ...", busy=True)
            self._explain(base, sql, False)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.set_status("EXPLAIN ANALYZE (rolled back) ...", busy=True)
                self._explain(base, sql, True)

        self.push_screen(
            ConfirmScreen(
                "EXPLAIN ANALYZE runs this statement on the server, in a read-only transaction "
                f"that is rolled back:\n\n{' '.join(sql.split())[:400]}\n\nRun it?"
            ),
            answered,
        )

    # -- paste -----------------------------------------------------------------------------------

    @on(TextArea.Changed, "#paste-input")
    def _pasted(self, event: TextArea.Changed) -> None:
        # Analyse once typing pauses; a paste arrives as one change, so this is near instant.
        if self.paste_timer is not None:
            self.paste_timer.stop()
        self.paste_timer = self.set_timer(0.15, self._analyse_paste)

    def _analyse_paste(self) -> None:
        text = self.query_one("#paste-input", TextArea).text
        if not text.strip():
            self.query_one("#paste-findings", FindingsView).show([])
            return
        self._paste_worker(text, self.loaded)

    @work(thread=True, exclusive=True, group="paste", exit_on_error=False)
    def _paste_worker(self, text: str, base: Loaded | None) -> Any:
        return analyse_paste(text, base)

    def on_key(self, event: Any) -> None:
        if event.key == "escape" and isinstance(self.focused, TextArea):
            self.set_focus(None)

    # -- command palette -------------------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Refresh", "Collect again / reload the snapshot", self.action_refresh)
        yield SystemCommand("Help", "Key bindings and tabs", self.action_help)
        yield SystemCommand("Export apply script", "Write it to a file", self.action_export)
        yield SystemCommand("Copy apply script", "To the clipboard", self.action_copy)
        for tab, label, _ in TABS:
            yield SystemCommand(
                f"Go to {label}", f"Show the {label} tab", lambda t=tab: self.action_tab(t)
            )


def _one_line(error: BaseException | None) -> str:
    """Errors the sources expect are one sentence already; anything else is named, not dumped."""
    if isinstance(error, SourceError):
        return str(error)
    if error is None:
        return "unknown error"
    return f"{type(error).__name__}: {' '.join(str(error).split())}"
