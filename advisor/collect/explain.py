"""Running EXPLAIN on a live server, safely.

    docs = explain_live(dsn, "SELECT ...")                  # EXPLAIN only: executes nothing
    docs = explain_live(dsn, sql, analyze=True)              # read-only statements only
    docs = explain_live(dsn, sql, analyze=True, allow_writes=True)   # rolled back

The statement is parsed locally first (pglast): multi-statement input and anything EXPLAIN cannot
take are refused before connecting (`ExplainRefused`, one sentence, exit 2).

With `analyze`, the statement really runs, always inside a transaction that is rolled back:

* A statement that can write (INSERT/UPDATE/DELETE/MERGE, a data-modifying CTE, SELECT ... FOR
  UPDATE/SHARE at any level, SELECT INTO, CREATE TABLE AS, DECLARE, EXECUTE) is refused unless
  `allow_writes`; only then is that one transaction switched to read-write (SET TRANSACTION READ
  WRITE), and it is still rolled back. Row locks and triggers do run, so on a production server
  that is still a real write until the rollback.
* What the parser cannot see: a plain SELECT may call a volatile function that writes. The
  session stays read-only (default_transaction_read_only and BEGIN READ ONLY), so the server
  refuses such writes; side effects outside the transaction (dblink, sending signals, NOTIFY
  is deferred and rolled back) are not prevented by that.

Without `analyze` any statement EXPLAIN accepts may be explained: EXPLAIN alone runs nothing.

Ctrl-C cancels the server-side query and closes the session; nothing is left running. A
statement_timeout or a lost connection is a `CollectError` (exit 3); SQL the server rejects
(syntax, unknown table, a write refused by the read-only transaction) is `ExplainRefused`
(exit 2).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from advisor.collect import DEFAULT_STATEMENT_TIMEOUT_MS, CollectError, is_advisor_text, mark

if TYPE_CHECKING:
    from advisor.snapshot import Snapshot, StatementStat

# Statements EXPLAIN accepts (pglast node names).
_EXPLAINABLE = {
    "SelectStmt": "SELECT",
    "InsertStmt": "INSERT",
    "UpdateStmt": "UPDATE",
    "DeleteStmt": "DELETE",
    "MergeStmt": "MERGE",
    "CreateTableAsStmt": "CREATE TABLE AS",
    "DeclareCursorStmt": "DECLARE",
    "ExecuteStmt": "EXECUTE",
}
_DML = ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt")
# What `collect --explain-top` explains: pg_stat_statements texts of these kinds.
TOP_KINDS = ("SelectStmt", *_DML)


class ExplainRefused(ValueError):
    """The statement is not accepted (multi-statement, cannot parse, a write under --analyze
    without allow_writes, rejected by the server). One sentence; exit code 2."""


@dataclass(frozen=True, slots=True)
class Statement:
    """What the local parse found out about one statement."""

    kind: str  # pglast node name, e.g. "SelectStmt"
    writes: str | None  # why it can write (None: it cannot, as far as the parser sees)
    params: int  # the highest $n placeholder (pg_stat_statements texts), 0 without

    @property
    def has_params(self) -> bool:
        return self.params > 0

    @property
    def label(self) -> str:
        return _EXPLAINABLE.get(self.kind, self.kind.removesuffix("Stmt"))


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair in a pglast JSON parse tree."""
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            for key, value in cur.items():
                yield key, value
                stack.append(value)
        elif isinstance(cur, list):
            stack.extend(cur)


def _parse_error(exc: Exception) -> str:
    message = str(exc.args[0]) if exc.args else str(exc)
    location = getattr(exc, "location", None)
    where = f" at character {location}" if isinstance(location, int) and location > 0 else ""
    return f"the statement does not parse: {message}{where}."


def classify(sql: str) -> Statement:
    """Parse `sql` (exactly one statement) and say what it is; `ExplainRefused` otherwise."""
    from pglast import parser  # lazy: a C extension, only needed with a live server

    try:
        tree = json.loads(parser.parse_sql_json(sql))
    except parser.ParseError as exc:
        raise ExplainRefused(_parse_error(exc)) from None
    stmts = tree.get("stmts") or []
    if not stmts:
        raise ExplainRefused("the statement is empty.")
    if len(stmts) > 1:
        raise ExplainRefused(
            f"the input holds {len(stmts)} statements; give exactly one (multi-statement "
            "input is refused)."
        )
    (kind, body), *_ = stmts[0]["stmt"].items()
    if kind == "ExplainStmt":
        raise ExplainRefused(
            "give the statement without EXPLAIN; the advisor adds its own options."
        )
    if kind not in _EXPLAINABLE:
        raise ExplainRefused(
            f"EXPLAIN cannot take a {kind.removesuffix('Stmt')} statement; give a SELECT, "
            "INSERT, UPDATE, DELETE, MERGE, VALUES or TABLE statement."
        )
    writes: str | None = None
    params = 0
    for key, value in _walk(body):
        if key == "ParamRef":
            params = max(params, int(value.get("number") or 0))
        elif writes is None:
            if key in _DML:
                writes = f"it contains a data-modifying {_EXPLAINABLE[key]} (in a WITH clause)"
            elif key == "lockingClause" and value:
                writes = "it locks rows (FOR UPDATE/SHARE)"
            elif key == "intoClause" and value:
                writes = "SELECT INTO creates a table"
    if kind in _DML:
        writes = f"it is an {_EXPLAINABLE[kind]}"
    elif kind == "CreateTableAsStmt":
        writes = "CREATE TABLE AS creates a table"
    elif kind in ("DeclareCursorStmt", "ExecuteStmt"):
        writes = f"what a {_EXPLAINABLE[kind]} runs cannot be checked"
    return Statement(kind=kind, writes=writes, params=params)


def explain_options(*, analyze: bool = False, generic: bool = False) -> str:
    opts = ["FORMAT JSON", "VERBOSE", "SETTINGS"]
    if analyze:
        opts += ["ANALYZE", "BUFFERS"]
    if generic:
        opts.append("GENERIC_PLAN")
    return ", ".join(opts)


def _documents(rows: list[Any]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for row in rows:
        value = next(iter(row.values())) if isinstance(row, dict) else row[0]
        if isinstance(value, str):
            value = json.loads(value)
        docs.extend(
            d for d in (value if isinstance(value, list) else [value]) if isinstance(d, dict)
        )
    return docs


def server_error(exc: BaseException, dsn: str | None, statement_timeout_ms: int) -> Exception:
    """A psycopg error while running EXPLAIN -> ExplainRefused (the SQL) or CollectError."""
    import psycopg
    from psycopg import errors

    from advisor.collect.connect import describe_error, redact_dsn, scrub

    diag = getattr(exc, "diag", None)
    primary = (diag.message_primary if diag is not None else None) or str(exc)
    primary = scrub(" ".join(primary.split()) or "unknown error", dsn).rstrip(". ")
    if isinstance(exc, errors.QueryCanceled):
        if "statement timeout" in primary:
            return CollectError(
                f"the statement was canceled by the advisor's statement_timeout "
                f"({statement_timeout_ms} ms) on {redact_dsn(dsn)}; raise it with "
                "--statement-timeout."
            )
        return CollectError(f"the statement was canceled on {redact_dsn(dsn)}: {primary}.")
    sqlstate = getattr(exc, "sqlstate", None) or ""
    if isinstance(exc, psycopg.OperationalError) and not sqlstate:
        return CollectError(
            f"lost the connection to {redact_dsn(dsn)}: {describe_error(dsn, exc)}."
        )
    if sqlstate[:2] in ("42", "22", "0A", "25", "2B", "23", "44", "P0", "21"):
        return ExplainRefused(f"the server rejected the statement: {primary}.")
    return CollectError(f"EXPLAIN failed on {redact_dsn(dsn)}: {primary}.")


def explain_live(
    dsn: str | None,
    sql: str,
    *,
    analyze: bool = False,
    allow_writes: bool = False,
    statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
) -> list[dict[str, Any]]:
    """The EXPLAIN (FORMAT JSON, VERBOSE, SETTINGS[, ANALYZE, BUFFERS]) document(s) of `sql`.
    Raises `ExplainRefused` (exit 2) or `CollectError` (exit 3); both one sentence, no password.
    The transaction is always rolled back."""
    stmt = classify(sql)
    if analyze and stmt.writes and not allow_writes:
        raise ExplainRefused(
            f"--analyze would run this {stmt.label} and {stmt.writes}; add --allow-writes to run "
            "it anyway inside a transaction that is rolled back."
        )
    if stmt.has_params and analyze:
        raise ExplainRefused(
            "the statement has $n placeholders and --analyze needs values; put values in instead."
        )
    from advisor.collect.connect import connect

    conn = connect(dsn, statement_timeout_ms=statement_timeout_ms)
    with owned(conn):
        try:
            with conn.cursor() as cur:
                if analyze and stmt.writes:
                    # Only now, only for this transaction, and only with allow_writes.
                    cur.execute(mark("SET TRANSACTION READ WRITE"))
                if stmt.has_params:
                    docs = run_generic(cur, sql, stmt.params, conn.info.server_version)
                else:
                    docs = run_explain(cur, sql, analyze=analyze)
            conn.rollback()
            return docs
        except Exception as exc:
            import psycopg

            if isinstance(exc, psycopg.Error):
                raise server_error(exc, dsn, statement_timeout_ms) from None
            raise


def run_explain(cur: Any, sql: str, *, analyze: bool = False, generic: bool = False) -> list[Any]:
    """EXPLAIN `sql` on an open cursor; the caller owns the transaction."""
    from psycopg import sql as pgsql

    options = explain_options(analyze=analyze, generic=generic)
    # The user's text is sent as is: it is the statement to explain, checked by classify().
    cur.execute(pgsql.SQL(mark("EXPLAIN ({}) {}")).format(pgsql.SQL(options), pgsql.SQL(sql)))
    return _documents(cur.fetchall())


def run_generic(cur: Any, sql: str, params: int, server_version: int, name: str = "") -> list[Any]:
    """The generic plan of a text with $1..$`params` placeholders, executing nothing:
    EXPLAIN (GENERIC_PLAN) on 16+; before 16, PREPARE it with parameter types left to the
    server, and EXPLAIN EXECUTE it with NULLs under plan_cache_mode = force_generic_plan (a
    generic plan does not look at the values). The caller owns the (read-only) transaction;
    SET LOCAL ends with it, the prepared statement is deallocated here."""
    if server_version >= 160000:
        return run_explain(cur, sql, generic=True)
    from psycopg import sql as pgsql

    stmt_name = pgsql.Identifier(name or "advisor_generic")
    cur.execute(mark("SET LOCAL plan_cache_mode = force_generic_plan"))
    cur.execute(pgsql.SQL(mark("PREPARE {} AS {}")).format(stmt_name, pgsql.SQL(sql)))
    nulls = pgsql.SQL(", ").join([pgsql.SQL("NULL")] * params)
    cur.execute(
        pgsql.SQL(mark("EXPLAIN ({}) EXECUTE {}({})")).format(
            pgsql.SQL(explain_options()), stmt_name, nulls
        )
    )
    docs = _documents(cur.fetchall())
    cur.execute(pgsql.SQL(mark("DEALLOCATE {}")).format(stmt_name))
    return docs


def _cancel(conn: Any) -> None:
    """Cancel whatever the session runs on the server (Ctrl-C); never raises."""
    with contextlib.suppress(Exception):
        if not conn.closed:
            conn.cancel_safe(timeout=5.0)


def top_statements(
    snap: Snapshot, n: int, keep: Callable[[StatementStat, Statement], bool]
) -> list[tuple[StatementStat, Statement]]:
    """The `n` pg_stat_statements entries of the snapshot's database with the largest
    total_exec_time whose (readable) text is one statement that `keep` accepts; one per
    queryid, or per text without one."""
    picked: list[tuple[StatementStat, Statement]] = []
    seen: set[int | str] = set()
    candidates = [
        s
        for s in snap.statements
        if s.query and not s.hidden and not s.text_redacted and s.database == snap.target.database
    ]
    for stat in sorted(candidates, key=lambda s: s.total_exec_time, reverse=True):
        key = stat.queryid if stat.queryid is not None else str(stat.query)
        if key in seen:
            continue
        try:
            stmt = classify(str(stat.query))
        except ExplainRefused:
            continue  # utility statements, several statements in one text, odd texts
        if not keep(stat, stmt):
            continue
        seen.add(key)
        picked.append((stat, stmt))
        if len(picked) >= n:
            break
    return picked


@contextlib.contextmanager
def owned(conn: Any) -> Iterator[Any]:
    """Hold a session for one command: Ctrl-C cancels what the server runs, and whatever
    happens the transaction is rolled back and the connection closed."""
    try:
        yield conn
    except KeyboardInterrupt:
        _cancel(conn)
        raise
    finally:
        with contextlib.suppress(Exception):
            if not conn.closed and not conn.broken:
                conn.rollback()
        conn.close()


def explain_top(
    dsn: str | None,
    snap: Snapshot,
    n: int,
    *,
    statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
    progress: Callable[[str], None] | None = None,
) -> None:
    """EXPLAIN (never ANALYZE) the `n` pg_stat_statements statements of the snapshot's database
    with the largest total_exec_time (SELECT/INSERT/UPDATE/DELETE/MERGE only: EXPLAIN without
    ANALYZE executes nothing; the advisor's own statements are not among them). Texts with $n
    placeholders get their generic plan (`run_generic`). Documents go to `snap.plans`, reasons
    to `snap.skipped`; `progress` hears "explain k/N"."""
    import psycopg

    from advisor.collect.connect import connect
    from advisor.snapshot import CapturedPlan

    version = snap.target.server_version_num
    picked = top_statements(
        snap,
        n,
        # an older snapshot may still list the advisor's own statements
        lambda stat, stmt: stmt.kind in TOP_KINDS and not is_advisor_text(str(stat.query)),
    )
    if not picked:
        snap.skip(
            "EXPLAIN of top statements",
            "no SELECT/INSERT/UPDATE/DELETE/MERGE statement "
            f"of database {snap.target.database} in pg_stat_statements",
        )
        return

    conn = connect(dsn, statement_timeout_ms=statement_timeout_ms)
    with owned(conn):
        for i, (stat, stmt) in enumerate(picked, 1):
            what = f"EXPLAIN of statement {stat.queryid}"
            if progress is not None:
                progress(f"explain {i}/{len(picked)}")
            try:
                with conn.cursor() as cur:
                    cur.execute(mark("SAVEPOINT advisor_explain"))
                    if stmt.has_params:
                        docs = run_generic(
                            cur, str(stat.query), stmt.params, version, f"advisor_generic_{i}"
                        )
                    else:
                        docs = run_explain(cur, str(stat.query))
                    cur.execute(mark("RELEASE SAVEPOINT advisor_explain"))
            except psycopg.Error as exc:
                err = server_error(exc, dsn, statement_timeout_ms)
                if conn.broken or conn.closed:
                    raise err from None
                conn.execute(mark("ROLLBACK TO SAVEPOINT advisor_explain"))
                snap.skip(what, str(err).rstrip("."))
                continue
            for doc in docs:
                snap.plans.append(
                    CapturedPlan(
                        queryid=stat.queryid,
                        query=str(stat.query),
                        generic=stmt.has_params,
                        document=doc,
                    )
                )
        conn.rollback()
