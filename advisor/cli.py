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
from typing import IO, NoReturn

from advisor import __version__

EXIT_OK, EXIT_FINDINGS, EXIT_INPUT, EXIT_CONNECT = 0, 1, 2, 3


class UsageError(Exception):
    """Bad usage or unreadable input: printed as one line, exit 2."""


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
    _add_output_options(ex)

    rep = sub.add_parser("report", help="full report (for CI: --json, exit code by severity)")
    rep.add_argument(
        "--plan",
        action="append",
        default=[],
        metavar="FILE",
        help="an EXPLAIN plan to include (repeatable; '-' for standard input)",
    )
    _add_output_options(rep)

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


def _load_plans(names: Sequence[str], stdin: IO[str]) -> list[object]:
    from advisor.plan import PlanInputError, parse_plans

    plans: list[object] = []
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
    from advisor.plan import Plan
    from advisor.report import exit_code

    plans = [p for p in _load_plans(names, stdin) if isinstance(p, Plan)]
    report = engine.analyse(engine.Facts(plans=plans), select=args.select, ignore=args.ignore)
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


def run(
    argv: Sequence[str] | None = None, stdin: IO[str] | None = None, out: IO[str] | None = None
) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    if args.command == "explain":
        return _analyse_plans(args, args.files or ["-"], stdin, out)
    if args.command == "report":
        if not args.plan:
            raise UsageError(
                "nothing to report on: give --plan FILE (live --dsn collection is "
                "not available in this version)"
            )
        return _analyse_plans(args, args.plan, stdin, out)
    if args.command == "rules":
        return _cmd_rules(args, out)
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
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); say nothing more.
        sys.stderr.close()
        return EXIT_OK
