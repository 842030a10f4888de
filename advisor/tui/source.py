"""Where the TUI's reports come from: a saved snapshot, a live server, pasted EXPLAIN text.

Everything here is plain Python run in the app's thread workers. psycopg is imported only
inside the live functions (through `advisor.collect`), so the app module never imports it and
the app opens on a snapshot without loading a driver. Errors come out as `SourceError`: one
sentence for the UI, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from advisor.plan import Plan
from advisor.report import Report

if TYPE_CHECKING:
    from advisor.snapshot import CapturedPlan, Snapshot

# A live refresh samples pg_stat_activity this long, so the sparklines have a few points.
LIVE_SAMPLE_SECONDS = 2.0


class SourceError(Exception):
    """A report could not be produced; `str()` is one sentence for the UI."""


@dataclass
class Loaded:
    """One analysed state of the target: the report and what it was made from."""

    report: Report
    origin: str  # shown in the header: "snapshot busy.json" or "live 127.0.0.1:5432/app"
    snapshot: Snapshot | None = None
    plans: list[Plan] = field(default_factory=list)
    dsn: str | None = None  # set for live sources: EXPLAIN from the Statements tab needs it
    live: bool = False


ReportSource = Callable[[], Loaded]
PASTE = "paste"  # the source name of pasted plans: findings about them start "paste plan 1"


def analyse_snapshot(
    snap: Snapshot, origin: str, *, live: bool, dsn: str | None = None, extra: Sequence[Plan] = ()
) -> Loaded:
    """The report `advisor report` gives for `snap`, plus `extra` plans (e.g. EXPLAINed here)."""
    from advisor import engine
    from advisor.cli import _attach_snapshot
    from advisor.snapshot import facts_from_snapshot

    facts = facts_from_snapshot(snap)
    facts.plans = [*facts.plans, *extra]
    report = engine.analyse(facts)
    _attach_snapshot(report, snap, "live" if live else "snapshot")
    return Loaded(report, origin, snap, list(facts.plans), dsn, live)


def snapshot_source(path: str) -> ReportSource:
    """Reads the file anew on every call, so refresh picks up a re-collected snapshot."""
    import os

    def load() -> Loaded:
        from advisor.snapshot import Snapshot, SnapshotError

        try:
            snap = Snapshot.load(path)
        except SnapshotError as exc:
            raise SourceError(str(exc)) from None
        return analyse_snapshot(snap, f"snapshot {os.path.basename(path)}", live=False)

    return load


def live_source(
    dsn: str | None,
    *,
    plans: Sequence[CapturedPlan] = (),
    progress: Callable[[str], None] | None = None,
) -> ReportSource:
    """Collects from the server on every call (read-only session, see advisor.collect).
    `plans`: EXPLAIN documents captured beforehand (the demo's workload) that join every
    collection; `progress` hears each collection step (called from the worker thread)."""

    def load() -> Loaded:
        from advisor.collect import CollectError, collect
        from advisor.collect.connect import redact_dsn

        try:
            snap = collect(dsn, sample_seconds=LIVE_SAMPLE_SECONDS, progress=progress)
        except CollectError as exc:
            raise SourceError(str(exc)) from None
        snap.plans.extend(plans)
        return analyse_snapshot(snap, f"live {redact_dsn(dsn)}", live=True, dsn=dsn)

    return load


def analyse_paste(text: str, base: Loaded | None = None) -> tuple[Report, list[Plan]]:
    """Findings for pasted EXPLAIN text or JSON; with `base` (a snapshot), checked together
    with the server's facts as `advisor explain --dsn` would, keeping only the findings about
    the pasted plans. `SourceError` for text that is no plan (one sentence, with the line)."""
    from advisor import engine
    from advisor.plan import PlanInputError, parse_plans

    try:
        plans = parse_plans(text, source=PASTE)
    except PlanInputError as exc:
        raise SourceError(str(exc)) from None
    if base is None or base.snapshot is None:
        return engine.analyse(engine.Facts(plans=plans)), plans
    report = analyse_snapshot(base.snapshot, base.origin, live=base.live, extra=plans).report
    report.findings = [f for f in report.findings if f.where.startswith(PASTE + " ")]
    return report, plans


def explain_statement(base: Loaded, sql: str, *, analyze: bool) -> Loaded:
    """EXPLAIN (generic plan for $n texts) or, once confirmed, EXPLAIN ANALYZE in a rolled-back
    read-only transaction; the new plan joins the report. Needs a live source."""
    if base.dsn is None and not base.live:
        raise SourceError("EXPLAIN needs a live server: start with `advisor tui --dsn DSN`.")
    if base.snapshot is None:
        raise SourceError("nothing collected yet; press r to refresh.")
    from advisor.collect import CollectError
    from advisor.collect.explain import ExplainRefused, explain_live
    from advisor.plan import build_plan

    try:
        docs = explain_live(base.dsn, sql, analyze=analyze)
    except (ExplainRefused, CollectError) as exc:
        raise SourceError(str(exc)) from None
    label = "analyze" if analyze else "explain"
    earlier = [p for p in base.plans if p.source.startswith(("explain", "analyze"))]
    new = [build_plan(d, source=label, index=len(earlier) + i) for i, d in enumerate(docs, 1)]
    extra = [*earlier, *new]
    return analyse_snapshot(base.snapshot, base.origin, live=True, dsn=base.dsn, extra=extra)
