"""Renderers: pure functions from a `Report` to text (terminal), JSON (CI) and Markdown (PR
comments). Only the terminal renderer imports rich, and only when called."""

from __future__ import annotations

import json
import os
import sys
from typing import IO, TYPE_CHECKING, Any

from advisor.report import Finding, Report

if TYPE_CHECKING:
    from advisor.engine import Card

SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
_MAX_EVIDENCE_ITEMS = 6


def to_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n"


def _plan_line(p: Any) -> str:
    parts = [f"{p.nodes} nodes", f"{p.parallel_nodes} parallel"]
    if p.workers_planned:
        launched = "?" if p.workers_launched is None else p.workers_launched
        parts.append(f"workers {p.workers_planned} planned / {launched} launched")
    if p.execution_ms is not None:
        parts.append(f"{p.execution_ms:,.1f} ms")
    return f"{p.source}: " + ", ".join(parts)


def _counts(report: Report) -> str:
    if not report.findings:
        return "No findings."
    by: dict[str, int] = {}
    for f in report.findings:
        by[f.severity] = by.get(f.severity, 0) + 1
    order = [s for s in ("critical", "warning", "info") if s in by]
    n = len(report.findings)
    return f"{n} finding{'s' if n != 1 else ''}: " + ", ".join(f"{by[s]} {s}" for s in order)


def _wrap(text: str, width: int, indent: str = "  ") -> str:
    """Wrap each paragraph for the terminal; card text keeps its paragraph breaks."""
    import textwrap

    return "\n".join(
        indent + para  # indented lines are statements to copy: never break them
        if para.startswith("  ")
        else textwrap.fill(
            para,
            width=width,
            initial_indent=indent,
            subsequent_indent=indent,
            break_on_hyphens=False,
            break_long_words=False,
        )
        if para.strip()
        else ""
        for para in text.split("\n")
    )


def to_text(report: Report, out: IO[str] | None = None, *, width: int | None = None) -> None:
    """Write the report for a person at a terminal (colours off for NO_COLOR or a pipe)."""
    from rich.console import Console
    from rich.markup import escape

    stream = out or sys.stdout
    console = Console(
        file=stream, width=width, no_color="NO_COLOR" in os.environ, highlight=False, soft_wrap=True
    )
    cols = max(60, min(console.width, 110))
    for p in report.plans:
        console.print(escape(_plan_line(p)), style="dim")
    if report.plans:
        console.print()
    for f in report.findings:
        head = f"{f.severity.upper()} {f.rule} {f.title}"
        sev = f"[{SEVERITY_STYLE[f.severity]}]{f.severity.upper()}[/]"
        styled = f"{sev} [bold]{f.rule}[/] {escape(f.title)}"
        if f.where and len(head) + 2 + len(f.where) <= cols:
            console.print(f"{styled}  [dim]{escape(f.where)}[/]")
        else:
            console.print(styled)
            if f.where:
                console.print(f"[dim]{escape(_wrap(f.where, cols))}[/]")
        console.print(escape(_wrap(f.message, cols)))
        console.print(escape(_wrap("fix: " + f.fix, cols)).replace("fix:", "[bold]fix:[/]", 1))
        console.print(f"[dim]  docs: {escape(f.docs)}[/]")
        console.print()
    if report.recommendations:
        console.print("[bold]Recommendations[/]  [dim](--apply-script FILE writes them as SQL)[/]")
        for r in report.recommendations:
            because = f" [{', '.join(r.because)}]" if r.because else ""
            line = f"{r.name} = {r.recommended}   (now {r.current}; {r.requires}){because}"
            console.print(escape(_wrap(line, cols)))
            console.print(escape(_wrap(r.formula, cols, "      ")), style="dim")
        console.print()
    for e in report.errors:
        console.print(f"[red]error[/] {escape(e.source)}: {escape(e.message)}")
    console.print(escape(_counts(report)), style="bold")
    # Group rules that were not run by what would let them run; JSON has each exact reason.
    by_reason: dict[str, list[str]] = {}
    for s in report.skipped:
        if s.rule == "collect":
            continue
        server = any(w in s.reason for w in ("connection", "pg_stat", "hardware"))
        reason = "without a connection (--dsn) or a snapshot" if server else f"({s.reason})"
        by_reason.setdefault(reason, []).append(s.rule)
    for reason, codes in by_reason.items():
        note = f"Not checked {reason}: {', '.join(sorted(codes))}."
        console.print(escape(_wrap(note, cols, "")), style="dim")
    for s in report.skipped:
        if s.rule == "collect":
            console.print(escape(_wrap(f"Not collected: {s.reason}", cols, "")), style="dim")


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_text(text: str) -> str:
    """Card text for Markdown: indented paragraphs (SQL to run) become fenced code blocks."""
    out = []
    for para in text.split("\n\n"):
        lines = para.splitlines()
        if lines and all(line.startswith("  ") for line in lines):
            out.append("```sql\n" + "\n".join(line[2:] for line in lines) + "\n```")
        else:
            out.append(para)
    return "\n\n".join(out)


def _evidence_md(f: Finding) -> str:
    items = list(f.evidence.items())[:_MAX_EVIDENCE_ITEMS]
    return ", ".join(f"`{k}` = {json.dumps(v, default=str)}" for k, v in items)


def to_markdown(report: Report) -> str:
    """GitHub-flavoured Markdown for a pull-request comment."""
    lines = ["## pg-parallel-advisor", ""]
    if report.plans:
        lines += [f"- {_plan_line(p)}" for p in report.plans] + [""]
    lines += [f"**{_counts(report)}**", ""]
    if report.findings:
        lines += ["| severity | rule | title | where |", "|---|---|---|---|"]
        lines += [
            f"| {f.severity} | {f.rule} | {_md_escape(f.title)} | {_md_escape(f.where)} |"
            for f in report.findings
        ]
        lines.append("")
        for f in report.findings:
            lines += [
                f"### {f.severity.upper()} {f.rule} {f.title}",
                "",
                f"*{f.where}*" if f.where else "",
                "",
                _md_text(f.message),
                "",
                "**Fix:** " + _md_text(f.fix),
                "",
                f"<details><summary>evidence</summary>\n\n{_evidence_md(f)}\n\n</details>",
                "",
            ]
    if report.recommendations:
        lines += [
            "## Recommendations",
            "",
            "| setting | scope | now | recommended | needs | because |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {_md_escape(r.name)} | {_md_escape(r.scope)} | {_md_escape(str(r.current))} "
            f"| {_md_escape(r.recommended)} | {r.requires} | {', '.join(r.because)} |"
            for r in report.recommendations
        ]
        lines.append("")
        for r in report.recommendations:
            lines += [
                f"<details><summary>{r.name}: formula</summary>",
                "",
                r.formula,
                "",
                f"```sql\n{r.apply}\n```",
                "",
                "</details>",
                "",
            ]
    if report.errors:
        lines += ["### Errors", ""] + [f"- `{e.source}`: {e.message}" for e in report.errors] + [""]
    if report.skipped:
        lines += ["<details><summary>Not checked</summary>", ""]
        lines += [f"- {s.rule}: {s.reason}" for s in report.skipped]
        lines += ["", "</details>", ""]
    return "\n".join(line for line in lines) + "\n"


def card_text(card: Card, out: IO[str] | None = None) -> None:
    """`advisor rules CODE`: the card's explanation as Markdown in the terminal."""
    from rich.console import Console
    from rich.markdown import Markdown

    console = Console(file=out or sys.stdout, no_color="NO_COLOR" in os.environ, highlight=False)
    console.print(f"[bold]{card.code}[/] {card.title}  [dim]({card.name}, {card.severity})[/]")
    console.print()
    console.print(Markdown(card.explanation))
    if card.thresholds:
        console.print()
        console.print(
            "Thresholds: " + ", ".join(f"{k} = {v:g}" for k, v in card.thresholds.items())
        )
    if card.references:
        console.print()
        console.print("References:")
        for ref in card.references:
            # soft_wrap: a long URL stays whole so terminals can still open it.
            console.print(f"  - {ref}", markup=False, soft_wrap=True)


def card_dict(card: Card) -> dict[str, Any]:
    return {
        "code": card.code,
        "name": card.name,
        "title": card.title,
        "severity": card.severity,
        "needs": list(card.needs),
        "message": card.message,
        "fix": card.fix,
        "explanation": card.explanation,
        "references": list(card.references),
        "thresholds": card.thresholds,
        "examples": [
            {"snapshot": e.snapshot, "fires": e.fires}
            if e.snapshot
            else {"plan": e.plan, "fires": e.fires}
            for e in card.examples
        ],
    }
