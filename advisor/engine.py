"""Rule cards joined to checks: the only code that reads `rules/`.

A card (TOML, one per rule) holds everything a person reads: title, severity, message and fix
templates, the explanation, references, thresholds and examples. A check (a small function in
`advisor/checks/`, registered under the card's code) holds the judgement: it looks at the
`Facts` and yields one evidence dict per problem. The engine renders each evidence dict through
its card into a `Finding`, and lists rules it could not run under `skipped` with the reason.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from advisor.plan import Plan
from advisor.report import SEVERITY_RANK, Finding, PlanSummary, Report, Skipped

if TYPE_CHECKING:  # pydantic stays off the offline path
    from advisor.snapshot import PgBouncerFacts, PgpoolFacts, Snapshot

CODE_RE = re.compile(r"^(PQ|CN|PB|PP)\d{2,3}$")
HEADINGS = ("## What it finds", "## Why it matters", "## How to fix")
# What a card may say it needs; "a|b" in a card means either is enough.
KNOWN_NEEDS = frozenset(
    {
        "plan",
        "analyze",
        "verbose",
        "settings",
        "catalog",
        "pgss",
        "activity",
        "dbstats",
        "hw",
        "pgbouncer_ini",
        "pgbouncer_console",
        "pgpool_conf",
        "pgpool_console",
        "pgpool_backends",
    }
)


class CardError(ValueError):
    """A rule card that breaks the card format; raised at load time, not only in CI."""


@dataclass(frozen=True, slots=True)
class Example:
    plan: str  # path below sample_plans/ ("" when the example is a snapshot)
    fires: bool
    note: str = ""
    snapshot: str = ""  # path below sample_snapshots/ (a saved `advisor collect`)

    @property
    def path(self) -> str:
        return self.snapshot or self.plan


@dataclass(frozen=True, slots=True)
class Card:
    code: str
    name: str
    title: str
    severity: str
    needs: tuple[str, ...]
    message: str
    fix: str
    explanation: str
    references: tuple[str, ...]
    thresholds: dict[str, float]
    examples: tuple[Example, ...]
    path: str  # the card file (a str: pathlib costs the offline CLI 3 ms to import)

    @property
    def file(self) -> str:
        return os.path.basename(self.path)

    def threshold(self, key: str) -> float:
        try:
            return self.thresholds[key]
        except KeyError:
            raise CardError(f"{self.file}: no threshold {key!r}") from None


def rules_dir() -> str:
    """Cards ship inside the wheel as advisor/_rules; in a checkout they are ./rules."""
    here = os.path.dirname(os.path.realpath(__file__))
    packaged = os.path.join(here, "_rules")
    return packaged if os.path.isdir(packaged) else os.path.join(os.path.dirname(here), "rules")


def _card_files(directory: str) -> list[str]:
    found = [
        os.path.join(root, name)
        for root, _dirs, names in os.walk(directory)
        for name in names
        if name.endswith(".toml")
    ]
    return sorted(found)


def _load_card(path: str, text: str) -> Card:
    import tomllib

    name = os.path.basename(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CardError(f"{name}: {exc}") from None

    def need(key: str, kind: type) -> Any:
        value = raw.get(key)
        if not isinstance(value, kind):
            raise CardError(f"{name}: {key!r} must be a {kind.__name__}")
        return value

    code = need("code", str)
    if not CODE_RE.match(code) or not name.startswith(code):
        raise CardError(f"{name}: code {code!r} must look like PQ001 and start the file name")
    severity = need("severity", str)
    if severity not in SEVERITY_RANK:
        raise CardError(f"{name}: severity must be one of {', '.join(SEVERITY_RANK)}")
    needs = tuple(need("needs", list))
    for n in needs:
        if not set(n.split("|")) <= KNOWN_NEEDS:
            raise CardError(f"{name}: unknown need {n!r}")
    explanation = need("explanation", str)
    missing = [h for h in HEADINGS if h not in explanation]
    if missing:
        raise CardError(f"{name}: explanation lacks {', '.join(missing)}")
    examples = []
    for e in raw.get("examples", []):
        if not isinstance(e, dict) or ("plan" in e) == ("snapshot" in e) or "fires" not in e:
            raise CardError(f"{name}: each example needs fires and one of plan or snapshot")
        examples.append(
            Example(
                plan=str(e.get("plan", "")),
                fires=bool(e["fires"]),
                note=str(e.get("note", "")),
                snapshot=str(e.get("snapshot", "")),
            )
        )
    return Card(
        code=code,
        name=need("name", str),
        title=need("title", str),
        severity=severity,
        needs=needs,
        message=need("message", str),
        fix=need("fix", str),
        explanation=explanation.strip(),
        references=tuple(raw.get("references", [])),
        thresholds={k: float(v) for k, v in raw.get("thresholds", {}).items()},
        examples=tuple(examples),
        path=path,
    )


@cache
def load_cards(directory: str | None = None) -> dict[str, Card]:
    """Every card, validated. Parsed cards are cached as JSON keyed by the cards' content
    (tomllib is pure Python and would be a tenth of a small `advisor explain`)."""
    files = []
    for p in _card_files(directory or rules_dir()):
        with open(p, encoding="utf-8") as fh:
            files.append((p, fh.read()))
    from advisor import __version__

    key = "\0".join([__version__, *(f"{p}\0{t}" for p, t in files)])
    # zlib, not hashlib: a cache key needs no cryptography, and hashlib costs 2 ms to import.
    raw = key.encode()
    digest = f"{zlib.crc32(raw):08x}{zlib.adler32(raw):08x}{len(raw):x}"
    cache_file = os.path.join(_cache_dir(), f"cards-{digest}.json")
    try:
        with open(cache_file, encoding="utf-8") as fh:
            return {c["code"]: _card_from_json(c) for c in json.load(fh)}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    cards: dict[str, Card] = {}
    for path, text in files:
        card = _load_card(path, text)
        if card.code in cards:
            raise CardError(
                f"{card.file}: code {card.code} is also used by {cards[card.code].file}"
            )
        cards[card.code] = card
    try:
        os.makedirs(_cache_dir(), exist_ok=True)
        tmp = f"{cache_file}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump([_card_to_json(c) for c in cards.values()], fh)
        os.replace(tmp, cache_file)  # atomic: concurrent runs never read half a file
    except OSError:
        pass  # a read-only home only costs the parse next time
    return cards


def _cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pg-parallel-advisor")


def _card_to_json(card: Card) -> dict[str, Any]:
    d = {f: getattr(card, f) for f in Card.__slots__}
    d["examples"] = [[e.plan, e.fires, e.note, e.snapshot] for e in card.examples]
    return d


def _card_from_json(d: dict[str, Any]) -> Card:
    return Card(
        **{
            **d,
            "needs": tuple(d["needs"]),
            "references": tuple(d["references"]),
            "examples": tuple(Example(*e) for e in d["examples"]),
        }
    )


# -- facts the checks look at ---------------------------------------------------------------------


@dataclass(slots=True)
class Facts:
    """Everything known about the target. Offline this is just plans; the collector adds more."""

    plans: list[Plan] = field(default_factory=list)
    settings: dict[str, str] | None = None  # live pg_settings (name -> setting), None offline
    server_version_num: int | None = None
    snapshot: Snapshot | None = None  # everything collected live (sources, activity, pgss, hw)
    pgpool: PgpoolFacts | None = None  # --pgpool-conf and/or --pgpool-dsn (also in snapshots)
    pgbouncer: PgBouncerFacts | None = None  # ini files and/or consoles, with or without a server

    def available(self) -> set[str]:
        have: set[str] = set()
        snap = self.snapshot
        if snap is not None:
            if snap.hardware.cores_source != "unknown":
                have.add("hw")
            if snap.activity_samples:
                have.add("activity")
            if snap.database_stats:
                have.add("dbstats")
            if snap.statements_info is not None:
                have.add("pgss")
            if snap.catalog or snap.relations or snap.functions:
                have.add("catalog")
        if self.plans:
            have.add("plan")
            if any(p.analyzed for p in self.plans):
                have.add("analyze")
            if any(p.verbose for p in self.plans):
                have.add("verbose")
        if self.settings is not None:
            have.add("settings")
        if self.pgpool is not None:
            if self.pgpool.conf_file is not None:
                have.add("pgpool_conf")
            if self.pgpool.console:
                have.add("pgpool_console")
            if self.pgpool.backend_limits:
                have.add("pgpool_backends")
        for bouncer in self.pgbouncer.instances if self.pgbouncer is not None else ():
            if bouncer.ini is not None:
                have.add("pgbouncer_ini")
            if bouncer.console is not None:
                have.add("pgbouncer_console")
        return have


# -- checks registry ------------------------------------------------------------------------------

Evidence = dict[str, Any]
CheckFn = Callable[[Facts, Card], Iterable[Evidence]]
CHECKS: dict[str, CheckFn] = {}


def check(code: str) -> Callable[[CheckFn], CheckFn]:
    """Register a check under its card's code."""

    def register(fn: CheckFn) -> CheckFn:
        if code in CHECKS:
            raise ValueError(f"check {code} registered twice")
        CHECKS[code] = fn
        return fn

    return register


def registered_checks() -> dict[str, CheckFn]:
    import advisor.checks  # noqa: F401  (importing registers every check)

    return CHECKS


# -- running --------------------------------------------------------------------------------------


def _selected(code: str, select: Iterable[str], ignore: Iterable[str]) -> bool:
    """ruff-style prefixes: --select PQ2 picks PQ201..PQ207; --ignore wins over --select."""
    sel = list(select)
    if sel and not any(code.startswith(s) for s in sel):
        return False
    return not any(code.startswith(i) for i in ignore)


def _unmet(card: Card, have: set[str]) -> list[str]:
    return [n for n in card.needs if not (set(n.split("|")) & have)]


_NEED_WORDS = {
    "plan": "an EXPLAIN plan",
    "analyze": "an EXPLAIN ANALYZE plan",
    "verbose": "a VERBOSE plan",
    "settings": "a connection (server settings)",
    "catalog": "a connection (catalog)",
    "pgss": "pg_stat_statements",
    "activity": "pg_stat_activity samples",
    "dbstats": "pg_stat_database",
    "hw": "hardware facts (--cores/--memory or a local server)",
    "pgpool_conf": "a pgpool.conf (--pgpool-conf)",
    "pgpool_console": "the pgpool console (--pgpool-dsn)",
    "pgpool_backends": "the backend nodes' limits (--dsn or a reachable --pgpool-dsn)",
    "pgbouncer_ini": "a pgbouncer.ini (--pgbouncer-ini)",
    "pgbouncer_console": "the PgBouncer admin console (--pgbouncer-dsn)",
}


def _need_text(need: str) -> str:
    return " or ".join(_NEED_WORDS.get(n, n) for n in need.split("|"))


class _Missing(dict[str, Any]):
    """format_map helper: a placeholder the evidence lacks renders visibly, never raises."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(template: str, evidence: Evidence) -> str:
    """Fill a card template; lines of a paragraph are joined (cards wrap at 100 columns),
    blank lines separate paragraphs, and lines starting with two spaces stay as they are."""
    text = template.format_map(_Missing(evidence)).strip()
    paragraphs = []
    for para in text.split("\n\n"):
        lines = para.splitlines()
        if any(line.startswith("  ") for line in lines):
            paragraphs.append(para)
        else:
            paragraphs.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(paragraphs)


def finding(card: Card, evidence: Evidence) -> Finding:
    ev = dict(evidence)
    where = str(ev.pop("where", ""))
    severity = str(ev.pop("severity", card.severity))
    return Finding(
        rule=card.code,
        name=card.name,
        severity=severity,  # type: ignore[arg-type]
        title=card.title,
        message=render(card.message, evidence),
        where=where,
        evidence=ev,
        fix=render(card.fix, evidence),
        docs=f"advisor rules {card.code}",
    )


def run(
    facts: Facts,
    report: Report,
    *,
    select: Iterable[str] = (),
    ignore: Iterable[str] = (),
    cards: dict[str, Card] | None = None,
) -> Report:
    """Run every selected check whose needs are met; add findings and skipped rules to `report`."""
    cards = cards if cards is not None else load_cards()
    checks = registered_checks()
    have = facts.available()
    select, ignore = list(select), list(ignore)
    for code, card in cards.items():
        if not _selected(code, select, ignore):
            continue
        fn = checks.get(code)
        if fn is None:
            report.skipped.append(Skipped(code, "not implemented yet"))
            continue
        unmet = _unmet(card, have)
        if unmet:
            report.skipped.append(Skipped(code, "needs " + "; ".join(_need_text(n) for n in unmet)))
            continue
        report.findings.extend(finding(card, ev) for ev in fn(facts, card))
    report.findings.sort(key=lambda f: (-SEVERITY_RANK[f.severity], f.rule, f.where))
    return report


def summarize(plan: Plan) -> PlanSummary:
    """The per-plan line of a report: size, parallel nodes, workers planned and launched."""
    gathers = plan.gathers()
    return PlanSummary(
        source=plan.label,
        nodes=plan.node_count,
        parallel_nodes=sum(1 for n in plan.nodes() if n.parallel_aware or n.is_gather),
        workers_planned=sum(g.workers_planned or 0 for g in gathers),
        workers_launched=sum(g.workers_launched or 0 for g in gathers) if plan.analyzed else None,
        execution_ms=plan.execution_time_ms,
    )


def analyse(facts: Facts, *, select: Iterable[str] = (), ignore: Iterable[str] = ()) -> Report:
    """A full report for `facts`: plan summaries, findings, skipped rules."""
    report = Report()
    report.plans = [summarize(p) for p in facts.plans]
    run(facts, report, select=select, ignore=ignore)
    # recommendations need server or pooler facts; offline plans stay lean
    if facts.snapshot is not None or facts.pgpool is not None or facts.pgbouncer is not None:
        from advisor.recommend import recommend

        report.recommendations = recommend(facts, report.findings)
    return report


def iter_placeholders(template: str) -> Iterator[str]:
    """Names used as {placeholders} in a card template (for card hygiene tests)."""
    for m in re.finditer(r"(?<!\{)\{([a-zA-Z_][a-zA-Z0-9_]*)[^{}]*\}(?!\})", template):
        yield m.group(1)
