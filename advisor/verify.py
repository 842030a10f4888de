"""`advisor verify`: measure the advisor's own session-settable advice, before and after.

    result = verify(dsn, queries=["SELECT ..."], repeat=5)     # or top=10 from pg_stat_statements
    to_text(result, sys.stdout)

What is tried: the report's server-wide recommendations whose setting a session can change
(pg_settings.context 'user', or 'superuser' for a superuser), the settings findings name for a
reset (PQ001 per-gather 0, PQ007 raised parallel costs, PQ008 node types off, PQ009 test mode),
and per statement a work_mem that holds the sort/hash its current plan spilled. Restart and
reload settings are listed as not verified.

How it runs: the advisor's read-only session (`collect.connect`, statement_timeout in the
startup packet). Only plain SELECT statements (pglast: no FOR UPDATE/SHARE, no data-modifying
CTE, no SELECT INTO). Every execution is its own transaction, settings applied with
set_config(..., is_local => true) and always rolled back. Per side one warm-up
`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` gives the plan; then `repeat` timed runs of
`EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON)` alternate current/recommended (which goes first
alternates too), so cache warming and machine noise hit both sides alike. Times are the
server's Execution Time (planning and sending rows excluded).

Texts with $n placeholders run only with `params` (PREPARE + EXECUTE, custom plans); without
them only the plan shape is compared (EXPLAIN GENERIC_PLAN, PostgreSQL 16+). Ctrl-C cancels
the server-side query.
"""

from __future__ import annotations

import contextlib
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import IO, TYPE_CHECKING, Any, Literal

from advisor.collect import DEFAULT_STATEMENT_TIMEOUT_MS, CollectError, mark

if TYPE_CHECKING:
    from advisor.collect.explain import Statement
    from advisor.plan import Plan
    from advisor.report import Report
    from advisor.snapshot import Snapshot

DEFAULT_REPEAT = 5
SESSION_CONTEXTS = ("user", "superuser")
MB = 1024**2
# A spill's on-disk size understates what the sort/hash needs in memory (tuple headers,
# pointers, hash buckets): ask for this many times the largest spill.
SPILL_FACTOR = 3
PREPARED = "advisor_verify"

# Settings findings ask to reset, and the value the reset means (the built-in defaults).
_COST_DEFAULTS = {
    "parallel_setup_cost": "1000",
    "parallel_tuple_cost": "0.1",
    "min_parallel_table_scan_size": "8MB",
    "min_parallel_index_scan_size": "512kB",
}


class VerifyRefused(ValueError):
    """The input cannot be verified (not a plain SELECT, wrong parameters): exit 2."""


@dataclass
class Trial:
    """One setting tried per session: its value now, the value tried, and why."""

    name: str
    current: str
    value: str
    why: str


@dataclass
class NotVerified:
    name: str
    recommended: str
    requires: str
    scope: str


@dataclass
class Side:
    """One side (current or recommended) of one statement."""

    runs_ms: list[float] = field(default_factory=list)
    gathers: int = 0
    workers_planned: int = 0
    workers_launched: int | None = None
    spills: list[str] = field(default_factory=list)
    top: str = ""  # the plan's top nodes, e.g. "Finalize Aggregate > Gather > Partial Aggregate"
    total_cost: float | None = None
    shared_read_blocks: int | None = None

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.runs_ms) if self.runs_ms else None

    @property
    def min_ms(self) -> float | None:
        return min(self.runs_ms) if self.runs_ms else None

    @property
    def max_ms(self) -> float | None:
        return max(self.runs_ms) if self.runs_ms else None


@dataclass
class StatementResult:
    query: str
    queryid: int | None = None
    mode: Literal["measured", "plan_only", "skipped", "failed"] = "measured"
    reason: str = ""
    extra: list[Trial] = field(default_factory=list)  # per-statement settings on top
    current: Side | None = None
    recommended: Side | None = None
    changes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        """current median / recommended median: 2.0 = twice as fast with the advice."""
        if self.current is None or self.recommended is None:
            return None
        a, b = self.current.median_ms, self.recommended.median_ms
        return round(a / b, 2) if a is not None and b else None


@dataclass
class VerifyResult:
    target: str
    server_version: str
    repeat: int
    settings: list[Trial] = field(default_factory=list)
    not_verified: list[NotVerified] = field(default_factory=list)
    statements: list[StatementResult] = field(default_factory=list)


# -- what to try -----------------------------------------------------------------------------------


def session_advice(snap: Snapshot, report: Report) -> tuple[list[Trial], list[NotVerified]]:
    """The report's advice split into what a session can try and what it cannot.
    `Trial.current` is the server's value here; `verify` replaces it with the session's."""
    superuser = snap.target.superuser
    tried: dict[str, Trial] = {}
    not_verified: list[NotVerified] = []

    def settable(name: str) -> bool:
        fact = snap.settings.get(name)
        ctx = fact.context if fact is not None else None
        return ctx == "user" or (ctx == "superuser" and superuser)

    def current(name: str) -> str:
        fact = snap.settings.get(name)
        return fact.setting if fact is not None and fact.setting is not None else "?"

    for rec in report.recommendations:
        if rec.kind == "setting" and settable(rec.name):
            tried[rec.name] = Trial(rec.name, current(rec.name), rec.recommended, rec.formula)
        elif rec.kind in ("setting", "role_setting", "database_setting"):
            requires = rec.requires if rec.kind == "setting" else "new sessions of that role"
            not_verified.append(NotVerified(rec.name, rec.recommended, requires, rec.scope))
        else:
            not_verified.append(NotVerified(rec.name, rec.recommended, "a pooler", rec.scope))

    resets: list[tuple[str, str, str]] = []  # (name, value, rule)
    for f in report.findings:
        ev = f.evidence
        if f.rule == "PQ001":
            resets.append(("max_parallel_workers_per_gather", "2", f.rule))
        elif f.rule == "PQ007":
            for item in ev.get("settings") or []:
                name = str(item.get("name", "")) if isinstance(item, dict) else ""
                if name in _COST_DEFAULTS:
                    resets.append((name, _COST_DEFAULTS[name], f.rule))
        elif f.rule == "PQ008":
            resets += [(str(n), "on", f.rule) for n in ev.get("settings") or []]
        elif f.rule == "PQ009" and ev.get("setting"):
            resets.append((str(ev["setting"]), "off", f.rule))
    for name, value, rule in resets:
        if name in tried or not settable(name):
            continue  # a recommendation of the same setting is more specific
        tried[name] = Trial(name, current(name), value, f"{rule}: back to the built-in default")
    return list(tried.values()), not_verified


def spill_work_mem(plan: Plan, budget: Trial | None) -> Trial | None:
    """A work_mem for this statement that holds what its plan spilled (largest spill x
    SPILL_FACTOR, rounded up to a power of two MB), or None when nothing spilled."""
    from advisor.checks.base import setting_bytes

    sizes = [s.disk_kb for n in plan.nodes() for _, s in n.all_spills() if s.disk_kb]
    if not sizes and not any(n.all_spills() for n in plan.nodes()):
        return None
    need_mb = max(sizes, default=4096) * SPILL_FACTOR / 1024
    value = 2 ** max(2, math.ceil(math.log2(max(need_mb, 1))))
    if budget is not None and (setting_bytes(budget.value, 1024) or 0) >= value * MB:
        return None  # the server-wide recommendation already holds it
    base = f" (the server-wide recommendation is {budget.value})" if budget else ""
    return Trial(
        "work_mem",
        "",
        f"{value}MB",
        f"this statement spilled {max(sizes, default=0):.0f} kB to disk; {SPILL_FACTOR} x that, "
        f"rounded up to a power of two = {value}MB for this statement only (SET LOCAL){base}",
    )


def pick_statements(snap: Snapshot, top: int) -> list[tuple[str, int | None, Statement]]:
    """The `top` SELECT texts of the snapshot's database with the largest total_exec_time
    that read at least one user table."""
    from advisor.collect.explain import top_statements

    picked = top_statements(
        snap,
        top,
        lambda s, stmt: (
            stmt.kind == "SelectStmt" and not stmt.writes and reads_user_tables(str(s.query))
        ),
    )
    return [(str(s.query), s.queryid, stmt) for s, stmt in picked]


def check_select(sql: str) -> Statement:
    """The pglast classification of `sql` when it is one plain SELECT; VerifyRefused else."""
    from advisor.collect.explain import ExplainRefused, classify

    only = "advisor verify runs only plain SELECT statements"
    try:
        stmt = classify(sql)
    except ExplainRefused as exc:
        text = str(exc)
        if text.startswith("EXPLAIN cannot take a "):  # a utility statement
            text = f"{only}; this is a {text.split()[4]} statement."
        raise VerifyRefused(text) from None
    if stmt.kind != "SelectStmt":
        article = "an" if stmt.label[0] in "AEIOU" else "a"
        raise VerifyRefused(f"{only}; this is {article} {stmt.label} statement.")
    if stmt.writes:
        raise VerifyRefused(f"{only}; {stmt.writes}.")
    return stmt


def _nodes(sql: str, kind: str) -> list[dict[str, Any]]:
    """Every `kind` node (pglast name, e.g. "ParamRef") of the parse tree of `sql`."""
    from pglast import parser

    from advisor.collect.explain import _walk

    tree = json.loads(parser.parse_sql_json(sql))
    return [v for k, v in _walk(tree) if k == kind and isinstance(v, dict)]


def reads_user_tables(sql: str) -> bool:
    """False for statements that read only catalogs and system views (pg_*, information_schema)
    or no table at all: the advisor's own collector queries and monitoring, which are in
    pg_stat_statements too and have nothing to gain from parallel query."""
    for rv in _nodes(sql, "RangeVar"):
        schema, name = rv.get("schemaname"), str(rv.get("relname", ""))
        if schema not in ("pg_catalog", "information_schema") and not name.startswith("pg_"):
            return True
    return False


# -- running ---------------------------------------------------------------------------------------


def _side(doc: dict[str, Any]) -> tuple[Plan, Side]:
    from advisor.plan import build_plan

    plan = build_plan(doc, source="verify")
    gathers = plan.gathers()
    chain: list[str] = []
    node = plan.root
    while len(chain) < 4:
        chain.append(node.display_type)
        if not node.children:
            break
        node = node.children[0]
    read = plan.root.props.get("Shared Read Blocks")
    return plan, Side(
        gathers=len(gathers),
        workers_planned=sum(g.workers_planned or 0 for g in gathers),
        workers_launched=sum(g.workers_launched or 0 for g in gathers) if plan.analyzed else None,
        spills=[f"{n.label}: {who} {s.detail}" for n in plan.nodes() for who, s in n.all_spills()],
        top=" > ".join(chain),
        total_cost=plan.root.total_cost,
        shared_read_blocks=int(read) if isinstance(read, int | float) else None,
    )


class _Runner:
    """One read-only session; every execution is its own rolled-back transaction."""

    def __init__(self, conn: Any, sql: str, params: Sequence[str] | None) -> None:
        from psycopg import sql as pgsql

        self.conn = conn
        self.params = params
        if params is not None:
            with conn.cursor() as cur:  # PREPARE outlives the rollback; the session ends with us
                cur.execute(
                    pgsql.SQL(mark("PREPARE {} AS {}")).format(
                        pgsql.Identifier(PREPARED), pgsql.SQL(sql)
                    )
                )
            conn.rollback()
            self.body = pgsql.SQL("EXECUTE {}({})").format(
                pgsql.Identifier(PREPARED), pgsql.SQL(", ").join(pgsql.Literal(p) for p in params)
            )
        else:  # the user's text as is: check_select made sure it is one plain SELECT
            self.body = pgsql.Composed([pgsql.SQL(sql)])

    def explain(self, settings: dict[str, str], options: str) -> dict[str, Any]:
        from psycopg import sql as pgsql

        try:
            with self.conn.cursor() as cur:
                for name, value in settings.items():
                    cur.execute(mark("SELECT set_config(%s, %s, true)"), (name, value))
                if self.params is not None:
                    cur.execute(
                        mark("SELECT set_config('plan_cache_mode', 'force_custom_plan', true)")
                    )
                cur.execute(
                    pgsql.SQL(mark("EXPLAIN ({}) {}")).format(pgsql.SQL(options), self.body)
                )
                value = cur.fetchone()
            doc = next(iter(value.values())) if isinstance(value, dict) else value[0]
            doc = json.loads(doc) if isinstance(doc, str) else doc
            return dict(doc[0])
        finally:
            with contextlib.suppress(Exception):
                if not self.conn.closed and not self.conn.broken:
                    self.conn.rollback()


PLAN_RUN = "ANALYZE, BUFFERS, FORMAT JSON"


def _measure(
    runner: _Runner,
    current: tuple[Plan, Side],
    advised: dict[str, str],
    repeat: int,
    generic: bool,
) -> tuple[Side, Side, Plan, Plan]:
    """`current` is the current side's plan run (made first: it says whether the statement
    spills); here the advised side's plan run, then the timed runs of both."""
    cur_plan, cur = current
    opts = "FORMAT JSON, GENERIC_PLAN" if generic else PLAN_RUN
    rec_plan, rec = _side(runner.explain(advised, opts))
    if generic:
        return cur, rec, cur_plan, rec_plan
    timed = "ANALYZE, TIMING OFF, FORMAT JSON"
    for i in range(repeat):
        order = ((cur, {}), (rec, advised)) if i % 2 == 0 else ((rec, advised), (cur, {}))
        for side, settings in order:
            t = runner.explain(settings, timed).get("Execution Time")
            if isinstance(t, int | float):
                side.runs_ms.append(round(float(t), 3))
    return cur, rec, cur_plan, rec_plan


def plan_changes(cur: Side, rec: Side, same_shape: bool) -> list[str]:
    """What the advice changed in the plan, in words."""
    out: list[str] = []
    launched = f", {rec.workers_launched} launched" if rec.workers_launched is not None else ""
    if cur.gathers == 0 and rec.gathers:
        out.append(f"Gather appeared: {rec.workers_planned} workers planned{launched}")
    elif cur.gathers and rec.gathers == 0:
        out.append("Gather gone: the plan is serial with the advice")
    elif cur.workers_planned != rec.workers_planned or cur.workers_launched != rec.workers_launched:
        was = f", {cur.workers_launched} launched" if cur.workers_launched is not None else ""
        out.append(
            f"workers {cur.workers_planned} planned{was} -> {rec.workers_planned} planned{launched}"
        )
    if cur.spills and not rec.spills:
        out.append(f"spills gone ({len(cur.spills)} before: {cur.spills[0]})")
    elif rec.spills and not cur.spills:
        out.append(f"spills appeared: {rec.spills[0]}")
    elif rec.spills:
        out.append(f"still spills: {rec.spills[0]}")
    if not out:
        out.append("same plan" if same_shape else f"plan changed: {cur.top} -> {rec.top}")
    return out


def _shape(plan: Plan) -> list[str]:
    return [n.node_type for n in plan.nodes()]


def verify(
    dsn: str | None,
    *,
    queries: Sequence[str] = (),
    top: int = 0,
    params: Sequence[str] | None = None,
    repeat: int = DEFAULT_REPEAT,
    statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
) -> VerifyResult:
    """Measure `queries` (or the `top` pg_stat_statements SELECTs) under the current settings
    and under the advice. Raises VerifyRefused (exit 2) or CollectError (exit 3); with
    explicit `queries` a statement's failure raises, with `top` it is recorded and skipped."""
    import psycopg

    from advisor import engine
    from advisor.collect import collect
    from advisor.collect.connect import connect, redact_dsn
    from advisor.collect.explain import ExplainRefused, owned, server_error
    from advisor.snapshot import facts_from_snapshot

    stmts = [(q, check_select(q)) for q in queries]
    if params and (len(queries) != 1 or top):
        raise VerifyRefused("--param goes with exactly one --query.")
    for _, stmt in stmts:
        if params and stmt.params != len(params):
            raise VerifyRefused(
                f"the statement has {stmt.params} $n placeholders; {len(params)} --param given."
            )

    snap = collect(dsn, statement_timeout_ms=statement_timeout_ms)
    facts = facts_from_snapshot(snap)
    report = engine.analyse(facts)
    trials, not_verified = session_advice(snap, report)
    result = VerifyResult(redact_dsn(dsn), snap.target.server_version, repeat, [], not_verified)
    todo: list[tuple[str, int | None, Statement]] = [(q, None, s) for q, s in stmts]
    if top:
        todo = pick_statements(snap, top)

    conn = connect(dsn, statement_timeout_ms=statement_timeout_ms)
    with owned(conn):
        with conn.cursor() as cur:  # the session's own values: role/database settings count
            for t in trials:
                cur.execute(mark("SELECT current_setting(%s) AS v"), (t.name,))
                row = cur.fetchone()
                t.current = str(row["v"]) if row else t.current
        conn.rollback()
        result.settings = [t for t in trials if t.current.lower() != t.value.lower()]
        advised = {t.name: t.value for t in result.settings}
        budget = next((t for t in result.settings if t.name == "work_mem"), None)
        for sql, queryid, stmt in todo:
            res = StatementResult(sql, queryid)
            result.statements.append(res)
            generic = stmt.has_params and not params
            if generic and snap.target.server_version_num < 160000:
                res.mode, res.reason = (
                    "skipped",
                    (
                        "the text has $n placeholders: give values with --param to measure it; "
                        "plan shape only needs EXPLAIN (GENERIC_PLAN), PostgreSQL 16+"
                    ),
                )
                continue
            try:
                runner = _Runner(conn, sql, params if stmt.has_params else None)
                mine = dict(advised)
                # The current side's plan run (its warm-up), also: does it spill?
                current = _side(
                    runner.explain({}, "FORMAT JSON, GENERIC_PLAN" if generic else PLAN_RUN)
                )
                if not generic:
                    spill = spill_work_mem(current[0], budget)
                    if spill is not None:
                        cur_wm = conn.execute(
                            mark("SELECT current_setting('work_mem') AS v")
                        ).fetchone()
                        conn.rollback()
                        spill.current = str(cur_wm["v"]) if cur_wm else "?"
                        mine["work_mem"] = spill.value
                        res.extra.append(spill)
                if mine == {}:
                    res.mode, res.reason = "skipped", "no session-settable advice to try"
                    continue
                cur_side, rec_side, cur_plan, rec_plan = _measure(
                    runner, current, mine, repeat, generic
                )
            except psycopg.Error as exc:
                err = server_error(exc, dsn, statement_timeout_ms)
                if queries or conn.broken or conn.closed:
                    if isinstance(err, ExplainRefused):
                        raise VerifyRefused(str(err)) from None
                    raise err from None
                res.mode, res.reason = "failed", str(err)
                continue
            res.current, res.recommended = cur_side, rec_side
            if generic:
                res.mode = "plan_only"
                res.reason = "the text has $n placeholders; give values with --param to time it"
            res.changes = plan_changes(cur_side, rec_side, _shape(cur_plan) == _shape(rec_plan))
        return result


# -- output ----------------------------------------------------------------------------------------


def to_dict(result: VerifyResult) -> dict[str, Any]:
    out = asdict(result)
    for mine, stmt in zip(out["statements"], result.statements, strict=True):
        mine["ratio"] = stmt.ratio
        for key in ("current", "recommended"):
            side = getattr(stmt, key)
            if side is not None:
                mine[key].update(median_ms=side.median_ms, min_ms=side.min_ms, max_ms=side.max_ms)
    return out


def to_json(result: VerifyResult) -> str:
    return json.dumps(to_dict(result), indent=2) + "\n"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} ms"


def _timing(side: Side) -> str:
    if side.median_ms is None:
        return "not timed"
    lo, hi = _ms(side.min_ms), _ms(side.max_ms)
    return f"median {_ms(side.median_ms)} (min {lo}, max {hi}, n={len(side.runs_ms)})"


def _short(sql: str, width: int = 100) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def to_text(result: VerifyResult, out: IO[str]) -> None:
    w = out.write
    w(f"advisor verify on {result.target} (PostgreSQL {result.server_version})\n\n")
    if result.settings:
        w("Tried per session (SET LOCAL, rolled back):\n")
        for t in result.settings:
            w(f"  {t.name}: {t.current} -> {t.value}\n")
    else:
        w("No server-wide advice a session can try.\n")
    if result.not_verified:
        w("Not tried (a session cannot set them):\n")
    for n in result.not_verified:
        w(f"  {n.name} = {n.recommended} ({n.scope}): needs {n.requires}: not verified\n")
    for i, s in enumerate(result.statements, 1):
        qid = f" (queryid {s.queryid})" if s.queryid is not None else ""
        w(f"\n[{i}] {_short(s.query)}{qid}\n")
        for t in s.extra:
            w(f"  for this statement: {t.name} {t.current} -> {t.value}: {t.why}\n")
        if s.mode in ("skipped", "failed"):
            w(f"  {s.mode}: {s.reason}\n")
            continue
        assert s.current is not None and s.recommended is not None
        for label, side in (("current", s.current), ("advised", s.recommended)):
            w(f"  {label:<8} {side.top}; {_timing(side)}\n")
        w(f"  change:  {'; '.join(s.changes)}\n")
        if s.ratio is not None:
            w(f"  ratio:   {s.ratio:g}x (current median / advised median)\n")
        elif s.reason:
            w(f"  {s.reason}\n")


def to_markdown(result: VerifyResult) -> str:
    lines = [f"# advisor verify: {result.target} (PostgreSQL {result.server_version})", ""]
    if result.settings:
        lines += ["| setting | current | tried |", "|---|---|---|"]
        lines += [f"| `{t.name}` | {t.current} | {t.value} |" for t in result.settings]
    for n in result.not_verified:
        lines.append(
            f"\n* `{n.name} = {n.recommended}` ({n.scope}): needs {n.requires}: not verified"
        )
    lines += [
        "",
        "| # | statement | current | advised | ratio | plan change |",
        "|---|---|---|---|---|---|",
    ]
    for i, s in enumerate(result.statements, 1):
        q = _short(s.query, 60).replace("|", "\\|")
        if s.current is None or s.recommended is None:
            lines.append(f"| {i} | `{q}` | | | | {s.mode}: {s.reason} |")
            continue
        lines.append(
            f"| {i} | `{q}` | {_ms(s.current.median_ms)} | {_ms(s.recommended.median_ms)} | "
            f"{'-' if s.ratio is None else f'{s.ratio:g}x'} | {'; '.join(s.changes)} |"
        )
    return "\n".join(lines) + "\n"


def write(result: VerifyResult, fmt: str, out: IO[str]) -> None:
    if fmt == "json":
        out.write(to_json(result))
    elif fmt == "markdown":
        out.write(to_markdown(result))
    else:
        to_text(result, out)


__all__ = ["CollectError", "VerifyRefused", "VerifyResult", "verify", "write"]
