"""Console facts from saved real output (PgBouncer 1.18 SHOW output captured in the research
lab, tests/fixtures/pgbouncer/), and what the version changes in how they are read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advisor.engine import Facts, run
from advisor.pooler.pgbouncer import pools
from advisor.report import Report
from advisor.snapshot import PgBouncerConsoleFact, PgBouncerFacts, PgBouncerInstance

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "pgbouncer" / "1.18_show_outputs.txt"


def _number(text: str) -> Any:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        return text or None


def show_tables() -> dict[str, list[dict[str, Any]]]:
    """psql's aligned tables under `=== SHOW X` headings, as rows of column -> value."""
    tables: dict[str, list[dict[str, Any]]] = {}
    blocks = FIXTURE.read_text().split("=== ")[1:]
    for block in blocks:
        lines = block.splitlines()
        name, body = lines[0].strip(), lines[1:]
        if len(body) < 2 or "|" not in body[0]:
            continue
        cols = [c.strip() for c in body[0].split("|")]
        rows = []
        for line in body[2:]:
            if not line.strip() or line.startswith("("):
                break
            rows.append(dict(zip(cols, (_number(v) for v in line.split("|")), strict=False)))
        tables[name] = rows
    return tables


def console(version: str) -> PgBouncerConsoleFact:
    t = show_tables()
    return PgBouncerConsoleFact(
        dsn="host=127.0.0.1 port=56432 dbname=pgbouncer",
        version=version,
        databases=t["SHOW DATABASES"],
        users=t["SHOW USERS"],
        pools=t["SHOW POOLS"],
        stats=t["SHOW STATS"],
    )


def _pb07(version: str) -> str:
    inst = PgBouncerInstance(console=console(version), version=version, version_source="test")
    facts = Facts(pgbouncer=PgBouncerFacts(instances=[inst]))
    (finding,) = run(facts, Report(), select=["PB07"]).findings
    return finding.message


def test_saved_1_18_output_reads_as_pools() -> None:
    inst = PgBouncerInstance(console=console("1.18.0"))
    (pool,) = pools(inst)[:1]
    assert (pool.database, pool.user, pool.mode, pool.size, pool.reserve) == (
        "postgres",
        "postgres",
        "transaction",
        3,
        1,
    )
    # appdb has no client yet, so no SHOW POOLS row: it still counts, from SHOW DATABASES
    assert {p.database for p in pools(inst)} == {"postgres", "appdb"}


def test_avg_wait_time_is_read_by_version() -> None:
    """The same number (139,284 on 1.18) is a queue length before 1.23 and a mean wait from
    1.23 on (src/stats.c at both tags, knowledge/poolers.md §1.3)."""
    old = _pb07("1.18.0")
    assert "139284" in old and "0.14 clients waiting on average" in old
    new = _pb07("1.23.0")
    assert "mean wait per server assignment: 139.3 ms" in new
