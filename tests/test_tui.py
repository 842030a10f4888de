"""The TUI driven by Textual's Pilot on saved real snapshots: navigation, selection, sorting,
paste, refresh, export and errors shown in the UI. Live parts (collect, EXPLAIN from the
Statements tab) run against a real PostgreSQL 18 (fails under CI=true when it is missing)."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from textual import events
from textual.pilot import Pilot
from textual.widgets import DataTable, Markdown, Static, TabbedContent, TextArea, Tree
from textual.worker import WorkerFailed

from advisor import cli
from advisor.pgserver import BinDir, PgServer
from advisor.tui.app import AdvisorApp, ConfirmScreen, HelpScreen
from advisor.tui.panes import FindingsView, PlansPane, RecommendationsPane, StatementsPane
from advisor.tui.source import live_source, snapshot_source

ROOT = Path(__file__).resolve().parent.parent
SNAPS = ROOT / "sample_snapshots"
MISBUDGETED = SNAPS / "misbudgeted_pg18.json"  # 7 findings, 5 recommendations
PLAN_SNAP = SNAPS / "underprovisioned_pg18.json"  # a captured plan with PQ115 on node 4
WORKLOAD = SNAPS / "workload_pg15.json"  # pg_stat_statements rows with PQ102/PQ117 hazards
PQ201_PLAN = ROOT / "sample_plans" / "pg18" / "pq201_fires_pool_exhausted.txt"
SIZE = (120, 40)


async def loaded(pilot: Pilot[int]) -> None:
    """Wait until the source's worker has finished (or failed: the app shows that) and the
    panes are drawn."""
    with contextlib.suppress(WorkerFailed):
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def app_on(path: Path) -> AdvisorApp:
    return AdvisorApp(snapshot_source(str(path)))


def status(app: AdvisorApp) -> str:
    return str(app.query_one("#status", Static).render())


async def test_opens_on_a_snapshot_and_navigates_every_tab() -> None:
    app = app_on(MISBUDGETED)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert "7 findings" in status(app) and "5 recommendations" in status(app)
        tabs = app.query_one(TabbedContent)
        assert tabs.active == "overview"
        for key, tab in zip(
            "2345671",
            ("findings", "recommendations", "plans", "statements", "pooling", "paste", "overview"),
            strict=True,
        ):
            await pilot.press(key)
            if tab == "overview":  # the Paste tab's text area had the key: Esc leaves it
                assert tabs.active == "paste"
                await pilot.press("escape", key)
            assert tabs.active == tab
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("q")
    assert app.return_code == 0


async def test_findings_selection_shows_detail_and_sorting_reorders() -> None:
    app = app_on(MISBUDGETED)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("2")
        view = app.query_one("#findings-view", FindingsView)
        table = view.query_one(DataTable)
        detail = view.query_one(Markdown)
        assert app.focused is table
        first = view.selected()
        assert first is not None and first.severity == "critical"  # worst first
        assert f"## {first.rule}" in detail.source
        await pilot.press("down")
        second = view.selected()
        assert second is not None and second.rule != first.rule
        assert f"## {second.rule}" in detail.source
        # The card's explanation is part of the detail, with the fix and evidence.
        assert "### Fix" in detail.source and "What it finds" in detail.source
        await pilot.press("s")  # severity -> code
        rules = [view._sorted()[i].rule for i in range(len(view.findings))]
        assert rules == sorted(rules)
        assert str(table.get_row_at(0)[1]) == rules[0]


async def test_plans_tree_marks_parallel_nodes_and_attaches_findings() -> None:
    app = app_on(PLAN_SNAP)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("4")
        tree = app.query_one(Tree)
        assert app.focused is tree
        labels = []
        for _ in range(5):
            await pilot.press("down")
            assert tree.cursor_node is not None
            labels.append(str(tree.cursor_node.label))
        scan = labels[-1]
        assert scan.startswith("⇶ Parallel Seq Scan") and "PQ115" in scan
        assert any("workers 2 planned" in label for label in labels)
        detail = str(app.query_one("#plans-detail", Static).render())
        assert "PQ115" in detail and "fix:" in detail
        assert app.query_one(PlansPane).findings


async def test_statements_show_hazards_and_explain_needs_a_live_server() -> None:
    app = app_on(WORKLOAD)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("5")
        pane = app.query_one(StatementsPane)
        table = pane.query_one(DataTable)
        hazards = {str(table.get_row_at(i)[4]).strip() for i in range(len(pane.rows))}
        assert {"PQ102", "PQ117"} <= {h for cell in hazards for h in cell.split()}
        assert not pane.can_explain
        assert "needs a live server" in str(app.query_one("#stmts-hint", Static).render())
        await pilot.press("e")
        await loaded(pilot)
        assert app.loaded is not None and app.loaded.plans == []


async def test_recommendations_export_writes_the_apply_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = app_on(MISBUDGETED)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("3")
        pane = app.query_one(RecommendationsPane)
        assert [r.requires for r in pane.recs] == sorted(
            (r.requires for r in pane.recs),
            key=["restart", "reload", "session", "none"].index,
        )
        assert (
            "ALTER SYSTEM SET max_worker_processes" in app.query_one("#recs-script", TextArea).text
        )
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
    script = (tmp_path / "advisor-apply.sql").read_text()
    assert script == pane.script and "pg_reload_conf()" in script


async def test_paste_shows_findings_at_once_and_errors_inline() -> None:
    app = app_on(MISBUDGETED)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("7")
        area = app.query_one("#paste-input", TextArea)
        assert app.focused is area
        app.post_message(events.Paste(PQ201_PLAN.read_text()))  # as the terminal driver does
        await pilot.pause(0.3)  # the paste debounce, then the worker
        await loaded(pilot)
        paste = app.query_one("#paste-findings", FindingsView)
        assert "PQ201" in {f.rule for f in paste.findings}
        # Checked with the snapshot's facts, but only findings about the pasted plan show.
        assert all(f.where.startswith("paste plan 1") for f in paste.findings)
        assert "1 plan read" in str(app.query_one("#paste-status", Static).render())
        area.text = "this is not a plan"
        await pilot.pause(0.3)
        await loaded(pilot)
        status_line = app.query_one("#paste-status", Static)
        assert status_line.has_class("error") and "paste" in str(status_line.render())
        assert paste.findings == []


async def test_refresh_reloads_the_snapshot_file(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    shutil.copy(MISBUDGETED, path)
    app = AdvisorApp(snapshot_source(str(path)))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert "7 findings" in status(app)
        shutil.copy(PLAN_SNAP, path)
        await pilot.press("r")
        await loaded(pilot)
        assert "2 findings" in status(app)
        assert app.loaded is not None and len(app.loaded.plans) == 1


async def test_unreadable_snapshot_is_shown_in_the_ui_and_retry_recovers(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"schema_version": 1, "tool": ')
    app = AdvisorApp(snapshot_source(str(path)))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        line = app.query_one("#status", Static)
        assert line.has_class("error")
        assert "is not an advisor snapshot: invalid JSON at line 1" in status(app)
        assert "Traceback" not in status(app)
        shutil.copy(MISBUDGETED, path)
        await pilot.press("r")
        await loaded(pilot)
        assert not line.has_class("error") and "7 findings" in status(app)


async def test_unreachable_server_is_shown_in_the_ui() -> None:
    dsn = "host=127.0.0.1 port=1 dbname=x user=x password=Sup3rS3cret connect_timeout=3"
    app = AdvisorApp(live_source(dsn), live=True)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        text = status(app)
        assert text.startswith("Error: ") and "127.0.0.1" in text
        assert "Sup3rS3cret" not in text


def test_cli_tui_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["tui", "nope.json"], ["tui", str(MISBUDGETED), "--dsn", "host=x"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == cli.EXIT_INPUT
        assert capsys.readouterr().err.count("\n") == 1


def test_app_module_does_not_import_psycopg() -> None:
    """The app takes a source; the driver loads only when a live source runs."""
    code = (
        "import sys\n"
        "import advisor.tui.app\n"
        "from advisor.tui.source import snapshot_source\n"
        f"snapshot_source({str(MISBUDGETED)!r})()\n"
        "print(sorted(m for m in sys.modules if m.startswith('psycopg')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


# -- live: collect and EXPLAIN from the Statements tab ---------------------------------------------


@pytest.fixture(scope="module")
def workload_server(pg_bins: Callable[[int], BinDir]) -> Iterator[PgServer]:
    settings = {"shared_preload_libraries": "pg_stat_statements"}
    with PgServer(bin_dir=pg_bins(18), settings=settings) as server:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
            conn.execute(
                "CREATE TABLE big AS SELECT g AS id, g % 100 AS grp "
                "FROM generate_series(1, 300000) g"
            )
            conn.execute("VACUUM ANALYZE big")
            conn.execute("SELECT pg_stat_statements_reset()")
            for _ in range(3):
                conn.execute(GROUPED).fetchall()  # normalised to "id > $1"
                conn.execute(COUNT).fetchall()  # no constant: no placeholder
        yield server


GROUPED = "SELECT grp, count(*) FROM big WHERE id > 10 GROUP BY grp"
COUNT = "SELECT count(*) FROM big"


@pytest.mark.server
async def test_live_explain_and_confirmed_analyze_from_statements(
    workload_server: PgServer,
) -> None:
    app = AdvisorApp(live_source(workload_server.dsn), live=True)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert app.loaded is not None and app.loaded.live, status(app)
        await pilot.press("5")
        pane = app.query_one(StatementsPane)
        assert pane.can_explain
        table = pane.query_one(DataTable)

        def select(query: str) -> None:
            table.move_cursor(row=next(i for i, s in enumerate(pane.rows) if s.query == query))

        select(GROUPED.replace("10", "$1"))
        await pilot.press("e")  # a generic plan (EXPLAIN only: nothing is executed)
        await loaded(pilot)
        assert app.query_one(TabbedContent).active == "plans", status(app)
        assert [(p.source, p.analyzed) for p in app.loaded.plans] == [("explain", False)]
        assert "Gather" in str(app.query_one(Tree).root.children[0].children[0].label) or any(
            p.gathers() for p in app.loaded.plans
        )

        await pilot.press("5")
        select(GROUPED.replace("10", "$1"))
        await pilot.press("a")  # ANALYZE asks first
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await loaded(pilot)
        # $n placeholders: ANALYZE needs values; refused in one line, in the UI.
        assert "placeholders" in status(app) and app.query_one("#status").has_class("error")

        select(COUNT)
        await pilot.press("a")
        await pilot.pause()
        await pilot.press("n")  # "n" runs nothing
        await loaded(pilot)
        assert len(app.loaded.plans) == 1
        await pilot.press("a")
        await pilot.pause()
        await pilot.press("y")
        await loaded(pilot)
        assert [(p.source, p.analyzed) for p in app.loaded.plans] == [
            ("explain", False),
            ("analyze", True),
        ], status(app)


@dataclass
class PoolingTab:
    facts: str
    advice: str
    rules: set[str]
    pools: list[list[str]] | None  # None: the table is hidden
    nodes: list[list[str]] | None


async def pooling(path: Path) -> PoolingTab:
    """What the Pooling tab shows on a snapshot."""
    app = app_on(path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("6")
        await pilot.pause()

        def rows(selector: str) -> list[list[str]] | None:
            table: DataTable[Any] = app.query_one(selector, DataTable)
            if not table.display:
                return None
            return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]

        return PoolingTab(
            facts=str(app.query_one("#pool-facts", Static).render()),
            advice=str(app.query_one("#pool-recs", Static).render()),
            rules={f.rule for f in app.query_one("#pool-findings", FindingsView).findings},
            pools=rows("#pool-pools"),
            nodes=rows("#pool-nodes"),
        )


async def test_pooling_tab_shows_pgbouncer_pools_saturation_and_budgets() -> None:
    # PgBouncer 1.18 captured with clients queueing on sess (session mode, pool_size 1) and app.
    snap = SNAPS / "pgbouncer_busy_pg18.json"
    tab = await pooling(snap)
    facts, advice, rules = tab.facts, tab.advice, tab.rules
    assert "PgBouncer 1.18.0" in facts and "pool_mode transaction" in facts
    assert "max_client_conn 200" in facts and "default_pool_size 20" in facts
    assert "206 / 64" in facts  # fds: 200 clients + 6 servers, against ulimit -n 64 (hard 20000)
    assert "6 / 97" in facts  # pools 1 + 1 + 4 against max_connections 100 - 3 reserved
    # pool, mode, size, sv_active peak, mean, cl_waiting peak, maxwait, state
    peak_waiting = max(
        s["cl_waiting"]
        for s in json.loads(snap.read_text())["pgbouncer"]["instances"][0]["console"]["samples"]
        if s["database"] == "sess"
    )
    assert tab.pools == [
        ["app/postgres", "transaction", "1", "1", "1.0", "7", "0.35 s", "clients wait"],
        [
            "sess/postgres",
            "session",
            "1",
            "1",
            "1.0",
            str(peak_waiting),
            "4.86 s",
            "saturated (PB05)",
        ],
        ["slow/postgres", "transaction", "4", "2", "2.0", "0", "0.00 s", "ok"],
    ]
    assert tab.nodes is None
    assert "pool_size = 6" in advice and "LimitNOFILE = 1024" in advice
    assert {"PB04", "PB05", "PB06"} <= rules

    # Without a console: the pools PgBouncer would run from the ini, 3 instances' budget.
    tab = await pooling(SNAPS / "pgbouncer_misconfigured_pg18.json")
    facts, rules = tab.facts, tab.rules
    assert tab.pools == [
        ["appdb/app", "transaction", "20+10", "-", "-", "-", "-", "from misconfigured.ini:3"],
        ["reports/app", "transaction", "20+2", "-", "-", "-", "-", "from misconfigured.ini:4"],
    ]
    assert "server connections (x3)" in facts and "156 / 37" in facts
    assert "default_pool_size 50 ; per db" in facts  # as written: PB01's inline comment
    assert "PB03" in rules


async def test_pooling_tab_shows_pgpool_children_nodes_and_budgets() -> None:
    # pgpool-II 4.3.5 with all 3 children busy and a client in the accept queue.
    tab = await pooling(SNAPS / "pgpool_saturated_pg15.json")
    facts, advice, rules = tab.facts, tab.advice, tab.rules
    assert "pgpool-II 4.3.5" in facts and "num_init_children 3 x max_pool 1" in facts
    assert "3 / 3" in facts and "clients waiting (peak) 1" in facts
    assert "8 / 27" in facts and "8 / 37" in facts  # 2 x 3 + 2 checks per node, cancel-safe
    # node, host:port, role, status, lb_weight, select_cnt, delay
    assert tab.nodes == [
        ["0", "127.0.0.1:42789", "primary", "up", "0", "450", "0"],
        ["1", "127.0.0.1:42129", "standby", "up", "1", "303", "0"],
    ]
    assert tab.pools is None
    assert "num_init_children = 4" in advice
    assert {"PP02", "PP03"} <= rules

    # pgpool.conf alone: its nodes, no live state, the over-budget node.
    tab = await pooling(SNAPS / "pgpool_misconfigured_pg15.json")
    facts, advice, rules = tab.facts, tab.advice, tab.rules
    assert "no console samples" in facts and "33 / 27" in facts
    assert [r[:4] for r in tab.nodes or []] == [
        ["0", "127.0.0.1:42789", "-", "no console"],
        ["1", "127.0.0.1:42129", "-", "no console"],
    ]
    assert "num_init_children = 6" in advice and "PP01" in rules


async def test_pooling_tab_without_pooler_data_says_so() -> None:
    tab = await pooling(MISBUDGETED)
    facts, advice, rules = tab.facts, tab.advice, tab.rules
    assert tab.pools is None and tab.nodes is None
    assert "No pooler data" in facts
    # The sizing advice comes from the server alone; CN findings are listed here too.
    assert "default_pool_size" in advice
    assert rules and all(r.startswith(("CN", "PB", "PP")) for r in rules)


async def test_command_palette_switches_tabs() -> None:
    app = app_on(MISBUDGETED)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Go to Plans")
        await pilot.pause(0.5)  # the palette searches in the background
        await pilot.press("enter")
        await pilot.pause()
        assert app.query_one(TabbedContent).active == "plans"
