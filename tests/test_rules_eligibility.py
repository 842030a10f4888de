"""PQ1xx plan-only rules against every captured sample plan.

Each rule must fire exactly on the sample files the manifest says it targets (scenario
`<rule>_fires_...` with its condition met) and stay quiet on every other file, ordinary good
plans included. Where we deliberately disagree with the manifest, the tables below say so and
why; nothing else may differ.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

import pytest

from advisor.checks.eligibility import (
    Call,
    aggregate_causes,
    classify,
    function_calls,
)
from advisor.engine import Facts, run
from advisor.plan import PlanNode, parse_plans
from advisor.report import Report

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_plans"
RULES = ("PQ101", "PQ104", "PQ105", "PQ106", "PQ107", "PQ108", "PQ110", "PQ111", "PQ112", "PQ116")

# Files (by scenario, every version and format) where a rule fires although the manifest
# targets another rule.
ALSO_FIRES: dict[str, dict[str, str]] = {
    "PQ101": {
        "pq102_fires_current_schema": "current_schema() is a built-in that is always unsafe: "
        "offline, PQ101 names it with certainty (PQ102 itself reads SQL text)",
        "pq103_fires_restricted_function": "without the catalog a user function cannot be told "
        "unsafe from restricted; the finding says both and gives the pg_proc query",
    },
    "PQ116": {
        "pq114_fires_reloption_zero": "the parallel_workers = 0 reloption is only in the "
        "catalog; the finding lists it under 'not checkable from this plan'",
    },
}
# Files the manifest targets at a rule where it stays quiet on purpose.
STAYS_QUIET: dict[str, dict[str, str]] = {
    "PQ112": {
        "pq112_fires_count_distinct": "the Simple aggregate sits above a Gather that passes only "
        "50,000 rows: the 2.5M-row scan is parallel and the leader's aggregate takes 2 ms",
    },
}


@cache
def manifest() -> dict[str, dict[str, object]]:
    """file -> its manifest entry (a log file has several entries; they share the scenario)."""
    path = SAMPLES / "manifest.toml"
    if not path.is_file():  # reported by test_manifest_has_plans_for_every_rule
        return {}
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return {str(p["file"]): p for p in data["plan"]}


def expected(file: str) -> set[str]:
    entry = manifest()[file]
    scenario = str(entry["scenario"])
    out = set()
    if entry.get("rule") in RULES and entry.get("fires") and entry.get("expect_met"):
        out.add(str(entry["rule"]))
    out |= {code for code, files in ALSO_FIRES.items() if scenario in files}
    out -= {code for code, files in STAYS_QUIET.items() if scenario in files}
    return out


@cache
def fired(file: str) -> tuple[str, ...]:
    path = SAMPLES / file
    facts = Facts(plans=parse_plans(path.read_text(encoding="utf-8"), source=path.name))
    report = run(facts, Report(), select=list(RULES))
    return tuple(sorted({f.rule for f in report.findings}))


def _files() -> list[str]:
    return sorted(f for f in manifest() if (SAMPLES / f).is_file())


def test_manifest_has_plans_for_every_rule() -> None:
    assert manifest(), f"{SAMPLES / 'manifest.toml'} is missing or empty"
    targeted = {str(e.get("rule")) for e in manifest().values() if e.get("fires")}
    assert set(RULES) <= targeted, f"no firing sample for {set(RULES) - targeted}"


@pytest.mark.parametrize("file", _files())
def test_rules_fire_exactly_where_the_manifest_says(file: str) -> None:
    want, got = expected(file), set(fired(file))
    assert got == want, (
        f"{file}: fired {sorted(got) or 'nothing'}, expected {sorted(want) or 'nothing'}"
        f" (manifest: {manifest()[file]['sql']})"
    )


@pytest.mark.parametrize(
    ("code", "scenario"),
    [(c, s) for table in (ALSO_FIRES, STAYS_QUIET) for c, files in table.items() for s in files],
)
def test_every_exception_still_matches_a_sample(code: str, scenario: str) -> None:
    """An exception whose sample was renamed or removed must not linger."""
    assert any(e["scenario"] == scenario for e in manifest().values()), scenario


def test_findings_read_well_on_the_unsafe_function_sample() -> None:
    path = SAMPLES / "pg18/pq101_fires_unsafe_function.json"
    report = run(
        Facts(plans=parse_plans(path.read_text(encoding="utf-8"), source=path.name)),
        Report(),
        select=["PQ101"],
    )
    (f,) = report.findings
    assert "is_lucky()" in f.message and "suspicion" in f.message and "pg_proc" in f.message
    assert "2,500,000 rows" in f.message
    assert f.fix.startswith("ALTER FUNCTION is_lucky PARALLEL SAFE;")
    assert "writes nothing and touches no temp tables" in f.fix
    assert f.evidence["suspected"] == ["is_lucky"] and not f.evidence["certain"]


def test_text_and_json_pastes_agree() -> None:
    for version in ("pg18", "pg15"):
        for stem in (
            "pq101_fires_unsafe_function",
            "pq104_fires_correlated_subquery",
            "pq108_fires_temp_table",
            "pq116_quiet_selective",
        ):
            assert fired(f"{version}/{stem}.txt") == fired(f"{version}/{stem}.json"), stem


# -- function-name extraction on expressions as EXPLAIN prints them -------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("is_lucky(big.grp)", ["is_lucky"]),
        ('(big.note <> "current_schema"())', ["current_schema"]),
        ("((b.region < 5) AND (b.skew > (SubPlan 1)))", []),
        ("nextval('seq'::regclass)", ["nextval"]),
        ("public.risky_flag(l.amount)", ["public.risky_flag"]),
        ("app.\"Score\"(l.amount, 'x(y)'::text)", ["app.Score"]),
        ("(lower(s) ~~ 'f(o)o%'::text)", ["lower"]),
        ("((amount)::numeric(10,2) > '0'::numeric)", []),
        ("(created)::timestamp(3) with time zone", []),
        ("COALESCE(NULLIF(b.note, ''::text), 'x'::text)", []),
        ("EXTRACT(year FROM b.created)", []),
        ("(b.id = ANY ('{1,2,3}'::integer[]))", []),
        ("count(DISTINCT skew)", ["count"]),
        ("PARTIAL sum(amount)", ["sum"]),
        ("row_number() OVER w1", ["row_number"]),
        ("date_trunc('month'::text, b.created) = my_month(b.id)", ["date_trunc", "my_month"]),
        ("(InitPlan 1).col1", []),
        ("(NOT (ANY (b.grp = (hashed SubPlan 2).col1)))", []),
    ],
)
def test_function_calls(expr: str, names: list[str]) -> None:
    assert [c.display for c in function_calls(expr)] == names


@pytest.mark.parametrize(
    ("call", "kind"),
    [
        (Call("is_lucky", None), "user"),
        (Call("risky_flag", "public"), "user"),
        (Call("lower", "app"), "user"),  # shadowing a built-in name in another schema
        (Call("nextval", None), "unsafe"),
        (Call("current_schema", None), "unsafe"),
        (Call("lo_get", None), "unsafe"),
        (Call("random", None), "restricted"),
        (Call("pg_advisory_lock", None), "restricted"),
        (Call("date_trunc", None), "builtin"),
        (Call("whatever", "pg_catalog"), "builtin"),
    ],
)
def test_classify(call: Call, kind: str) -> None:
    assert classify(call) == kind


def _agg(output: list[str], **props: object) -> PlanNode:
    return PlanNode({"Node Type": "Aggregate", "Partial Mode": "Simple", "Output": output, **props})


@pytest.mark.parametrize(
    ("node", "major", "cause"),
    [
        (_agg(["count(DISTINCT skew)"]), 18, "DISTINCT"),
        (_agg(["g", "string_agg(s, ','::text ORDER BY s)"]), 18, "ORDER BY"),
        (
            _agg(["percentile_cont('0.5'::double precision) WITHIN GROUP (ORDER BY amount)"]),
            18,
            "ordered-set",
        ),
        (_agg(["g", "json_agg(id)"]), 18, "no combine function in any version"),
        (_agg(["g", "string_agg(s, ','::text)"]), 15, "on PostgreSQL 15"),
        (_agg(["g", "array_agg(id)"]), None, "before PostgreSQL 16"),
        (_agg(["g", "sum(x)"], Strategy="Mixed"), 18, "GROUPING SETS"),
    ],
)
def test_aggregate_causes(node: PlanNode, major: int | None, cause: str) -> None:
    assert any(cause in c for c in aggregate_causes(node, major))


def test_aggregate_without_visible_cause() -> None:
    assert aggregate_causes(_agg(["g", "string_agg(s, ','::text)"]), 16) == []
    assert aggregate_causes(_agg(["count(*)", "sum(amount)"]), 15) == []


def _facts_of(plan: dict[str, object]) -> Facts:
    from advisor.plan import build_plan

    return Facts(plans=[build_plan({"Plan": plan}, source="unit")])


def test_queue_poll_under_limit_is_not_large() -> None:
    """`... ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED` on a big queue, estimated only: the
    index scan estimate covers every 'new' row, but the LIMIT stops it after a few."""
    scan = {
        "Node Type": "Index Scan",
        "Relation Name": "jobs",
        "Plan Rows": 400000,
        "Total Cost": 20000.0,
        "Index Cond": "(status = 'new'::text)",
    }
    lock = {"Node Type": "LockRows", "Plan Rows": 400000, "Total Cost": 24000.0, "Plans": [scan]}
    facts = _facts_of({"Node Type": "Limit", "Plan Rows": 10, "Total Cost": 0.6, "Plans": [lock]})
    assert run(facts, Report(), select=["PQ107", "PQ116"]).findings == []
    # Without the LIMIT the same lock over 400,000 estimated rows is reported.
    facts = _facts_of(lock)
    assert [f.rule for f in run(facts, Report(), select=["PQ107"]).findings] == ["PQ107"]
