"""The parts of `advisor verify` that need no server: refusal, spill sizing, plan-change words,
output formats. Inputs are real captured plans (sample_plans/)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from advisor.plan import parse_plans
from advisor.verify import (
    Side,
    StatementResult,
    Trial,
    VerifyRefused,
    VerifyResult,
    check_select,
    plan_changes,
    reads_user_tables,
    spill_work_mem,
    to_json,
    to_markdown,
    to_text,
)

SAMPLES = Path(__file__).resolve().parent.parent / "sample_plans"


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("INSERT INTO t VALUES (1)", "only plain SELECT statements; this is an INSERT statement"),
        ("SELECT * FROM t FOR SHARE", "locks rows"),
        ("SELECT 1; SELECT 2", "2 statements"),
        ("VACUUM t", "only plain SELECT statements; this is a Vacuum statement"),
        ("EXPLAIN SELECT 1", "without EXPLAIN"),
    ],
)
def test_only_plain_selects(sql: str, words: str) -> None:
    with pytest.raises(VerifyRefused, match=words):
        check_select(sql)


def test_catalog_only_statements_are_not_picked() -> None:
    assert reads_user_tables("SELECT * FROM orders o JOIN pg_class c ON true")
    assert not reads_user_tables("SELECT name FROM pg_settings JOIN pg_catalog.pg_am ON true")
    assert not reads_user_tables("SELECT * FROM information_schema.tables")
    assert not reads_user_tables("SELECT current_setting($1)")


def test_param_count() -> None:
    assert check_select("SELECT $1::int + $3").params == 3
    assert check_select("SELECT 1").params == 0


def test_spill_work_mem_holds_the_largest_spill() -> None:
    (plan,) = parse_plans((SAMPLES / "pg18/pq203_fires_sort_spill.json").read_text(), "s")
    largest = max(s.disk_kb or 0 for n in plan.nodes() for _, s in n.all_spills())
    trial = spill_work_mem(plan, None)
    assert trial is not None and trial.name == "work_mem"
    mb = int(trial.value.removesuffix("MB"))
    assert mb * 1024 >= 3 * largest and mb & (mb - 1) == 0  # a power of two
    assert spill_work_mem(plan, Trial("work_mem", "4MB", "64GB", "budget")) is None
    (quiet,) = parse_plans((SAMPLES / "pg18/ok_parallel_hash_join.json").read_text(), "q")
    assert spill_work_mem(quiet, None) is None


def test_plan_change_words() -> None:
    serial = Side(gathers=0, spills=["Sort (node 2): leader external merge, 900 kB on disk"])
    parallel = Side(gathers=1, workers_planned=2, workers_launched=1)
    assert plan_changes(serial, parallel, False) == [
        "Gather appeared: 2 workers planned, 1 launched",
        "spills gone (1 before: Sort (node 2): leader external merge, 900 kB on disk)",
    ]
    assert (
        plan_changes(parallel, serial, False)[0]
        == "Gather gone: the plan is serial with the advice"
    )
    assert plan_changes(Side(top="A"), Side(top="A"), True) == ["same plan"]


def test_outputs() -> None:
    result = VerifyResult("host=db port=5432", "18.6", 2, [Trial("work_mem", "4MB", "64MB", "x")])
    result.statements.append(
        StatementResult(
            "SELECT 1",
            current=Side(runs_ms=[10.0, 12.0], top="Seq Scan"),
            recommended=Side(runs_ms=[4.0, 6.0], gathers=1, workers_planned=1, top="Gather"),
            changes=["Gather appeared: 1 workers planned"],
        )
    )
    result.statements.append(StatementResult("SELECT $1", mode="skipped", reason="needs --param"))
    doc = json.loads(to_json(result))
    assert doc["statements"][0]["ratio"] == 2.2
    assert doc["statements"][0]["current"]["median_ms"] == 11.0
    out = io.StringIO()
    to_text(result, out)
    assert "work_mem: 4MB -> 64MB" in out.getvalue() and "ratio:   2.2x" in out.getvalue()
    assert "skipped: needs --param" in out.getvalue()
    assert "| 1 | `SELECT 1` | 11.0 ms | 5.0 ms | 2.2x |" in to_markdown(result)
