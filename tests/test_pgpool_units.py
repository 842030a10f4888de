"""Unit tests on saved real outputs: the console sampler on pgpool 4.3.5's SHOW output from the
knowledge base (artifacts/pgpool_4.3.5_show_outputs.txt, with its empty first result sets) and
on the 4.0-4.2 column set (no status column); the routing predicate with function lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from advisor.pooler.pgpool import _last_result, _sample
from advisor.pooler.pgpool_routing import Catalog, function_list, is_own, route
from tests.conftest import unavailable

ARTIFACT = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "knowledge"
    / "artifacts"
    / "pgpool_4.3.5_show_outputs.txt"
)


def psql_tables(text: str) -> dict[str, list[list[dict[str, str]]]]:
    """'=== SHOW X' sections of psql aligned output -> result sets of rows (dicts)."""
    sections: dict[str, list[list[dict[str, str]]]] = {}
    name = ""
    header: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("=== "):
            name, header = line[4:].strip(), None
            sections[name] = []
        elif header is None and ("|" in line or line.strip() == "pool_version"):
            header = [h.strip() for h in line.split("|")]
            sections[name].append([])
        elif line.startswith("-"):
            continue
        elif line.startswith("("):
            header = None
        elif header is not None and line.strip():
            cells = [c.strip() for c in line.split("|")]
            sections[name][-1].append(dict(zip(header, cells, strict=False)))
    return sections


class Replay:
    """A cursor that answers SHOW commands with saved result sets (psycopg's interface)."""

    def __init__(self, results: dict[str, list[list[dict[str, str]]]]) -> None:
        self.results = results
        self.pending: list[list[dict[str, str]]] = []
        self.current: list[dict[str, str]] | None = None

    def execute(self, sql: str) -> None:
        self.pending = list(self.results[sql])
        self.nextset()

    @property
    def description(self) -> list[Any] | None:
        if self.current is None:
            return None
        names = list(self.current[0]) if self.current else ["x"]
        return [type("Col", (), {"name": n})() for n in names]

    def fetchall(self) -> list[tuple[str, ...]]:
        rows = self.current or []
        return [tuple(r.values()) for r in rows]

    def nextset(self) -> bool:
        if not self.pending:
            return False
        self.current = self.pending.pop(0)
        return True


@pytest.fixture
def saved() -> dict[str, list[list[dict[str, str]]]]:
    if not ARTIFACT.is_file():
        unavailable(f"{ARTIFACT} missing: the repository's ../shared (knowledge) is not beside it")
    return psql_tables(ARTIFACT.read_text())


def test_last_non_empty_result_set_is_taken(saved: dict[str, list[list[dict[str, str]]]]) -> None:
    assert [len(rs) for rs in saved["SHOW POOL_PROCESSES"]] == [0, 4]  # the 4.3.5 quirk
    cur = Replay(saved)
    rows = _last_result(cur, "SHOW POOL_PROCESSES")
    assert len(rows) == 4 and rows[2]["status"] == "Execute command"
    assert _last_result(cur, "SHOW POOL_VERSION")[0]["pool_version"] == "4.3.5 (tamahomeboshi)"


def test_sample_of_the_saved_43_output(saved: dict[str, list[list[dict[str, str]]]]) -> None:
    sample, idle_pids = _sample(Replay(saved), 0.0, None, 0)
    assert (sample.children, sample.busy, sample.executing, sample.idle) == (4, 1, 1, 0)
    assert idle_pids == []


def test_sample_without_a_status_column_before_43() -> None:
    """4.0-4.2 POOL_PROCESSES: pool_pid, start_time, database, username, create_time,
    pool_counter; a child with a database serves a client."""
    rows = [
        {"pool_pid": str(p), "start_time": "", "database": db, "username": db, "create_time": ""}
        for p, db in ((1, "app"), (2, ""), (3, "app"))
    ]
    pools = [{"pool_pid": "1", "pool_id": "0", "backend_id": "0", "database": "app"}]
    cur = Replay({"SHOW POOL_PROCESSES": [rows], "SHOW POOL_POOLS": [pools]})
    sample, _ = _sample(cur, 1.0, 2, 0)
    assert (sample.children, sample.busy, sample.waiting, sample.idle) == (3, 2, 2, 0)


def test_function_lists_replace_the_volatility_lookup() -> None:
    base = {
        "volatile": frozenset({"f"}),
        "nonvolatile": frozenset(),
        "temp_or_unlogged": frozenset(),
    }
    read_only = Catalog(**base, read_only_list=function_list("'f', 'g_.*'"))
    assert route("SELECT f(1)", read_only).balanceable  # listed as read-only
    assert not route("SELECT h(1)", read_only).balanceable  # anything else writes
    writes = Catalog(**base, write_list=function_list("nextval,setval"))
    assert route("SELECT f(1)", writes).balanceable  # volatility no longer looked up
    assert not route("SELECT nextval('s')", writes).balanceable
    assert function_list("") == () and function_list("'a[' ") == (r"a\[",)


def test_temp_and_unlogged_tables_from_the_catalog() -> None:
    cat = Catalog(frozenset(), frozenset(), frozenset({"scratch", "public.scratch"}))
    r = route("SELECT * FROM scratch", cat)
    assert r is not None and r.reason == "temporary or unlogged table"
    assert route("SELECT * FROM public.other", cat).balanceable


def test_the_advisors_own_statements_are_recognised() -> None:
    assert is_own("-- settings: every row of pg_settings\nSELECT name FROM pg_settings")
    assert is_own("-- statements_post_170000: x\nSELECT 1")
    assert is_own("-- advisor: idle time\nSELECT 1")
    assert not is_own("-- tracing\nSELECT v FROM t")
    assert not is_own("SELECT 1")


SNAPSHOTS = Path(__file__).resolve().parent.parent / "sample_snapshots"


def _pp(name: str, **live: str) -> set[str]:
    from advisor.engine import analyse
    from advisor.snapshot import Snapshot, facts_from_snapshot

    facts = facts_from_snapshot(Snapshot.load(SNAPSHOTS / name))
    assert facts.pgpool is not None
    facts.pgpool.live_settings.update(live)
    return {f.rule for f in analyse(facts, select=["PP"]).findings}


def test_idle_limit_that_already_cuts_idle_clients_quiets_pp03() -> None:
    assert "PP03" in _pp("pgpool_saturated_pg15.json")
    assert "PP03" not in _pp("pgpool_saturated_pg15.json", client_idle_limit="5")
    assert "PP03" in _pp("pgpool_saturated_pg15.json", client_idle_limit="300")


def test_comments_allowed_and_read_only_list_unpin_reads() -> None:
    assert "PP05" in _pp("pgpool_pinned_pg15.json")
    assert "PP05" not in _pp(
        "pgpool_pinned_pg15.json",
        allow_sql_comments="on",
        read_only_function_list="app_flag,random",
    )
