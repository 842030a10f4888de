"""The settings (PQ0xx) and run-time (PQ2xx) rules over every captured sample plan.

sample_plans/manifest.toml says, per file, which rule the scenario was captured for and
whether that rule should fire. Each rule here must fire on every file its own scenarios target
(fires = true), and must fire nowhere else, in particular not on any quiet (`fires = false`) or
ordinary good (`ok_...`) plan, unless the plan really shows the rule's condition too. Those
cases are listed in ALSO_TRUE with the reason, and the list is checked for stale entries.
"""

from __future__ import annotations

import os
import tomllib
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

from advisor.engine import Facts, load_cards, registered_checks, run
from advisor.plan import parse_plans
from advisor.report import Report

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_plans"
MANIFEST = SAMPLES / "manifest.toml"
OFFLINE_NEEDS = {"plan", "analyze", "verbose"}

# Rules from rules/settings and rules/runtime that can be judged from a plan alone.
RULES = sorted(
    code
    for code, card in load_cards().items()
    if os.path.basename(os.path.dirname(card.path)) in ("settings", "runtime")
    and code in registered_checks()
    and all(set(need.split("|")) & OFFLINE_NEEDS for need in card.needs)
)

# (scenario, rule) -> why the rule rightly fires on a plan captured for something else.
ALSO_TRUE: dict[tuple[str, str], str] = {
    (
        "pq008_fires_parallel_hash_off",
        "PQ203",
    ): "with enable_parallel_hash off every participant builds a private hash of big2 "
    "(1M rows); at the default work_mem it is split into 8 batches",
    (
        "pq008_quiet_parallel_hash_join",
        "PQ203",
    ): "the shared Parallel Hash of big2 (1M rows) needs ~64 MB, more than hash_mem x 3 "
    "participants at the default work_mem, so it really ran in 8 batches",
}


@cache
def manifest() -> list[dict[str, object]]:
    assert MANIFEST.is_file(), "sample_plans/manifest.toml is missing: run scripts/capture_plans.py"
    entries: list[dict[str, object]] = tomllib.loads(MANIFEST.read_text(encoding="utf-8"))["plan"]
    return entries


def scenario(file: str) -> str:
    return Path(file).stem


def sample_files() -> list[str]:
    paths = (p for p in SAMPLES.glob("pg*/*") if p.suffix in {".json", ".txt", ".log"})
    return sorted(str(p.relative_to(SAMPLES)) for p in paths)


@cache
def fired(file: str) -> frozenset[str]:
    path = SAMPLES / file
    facts = Facts(plans=parse_plans(path.read_text(encoding="utf-8"), source=path.name))
    report = run(facts, Report(), select=RULES)
    return frozenset(f.rule for f in report.findings if f.rule in RULES)


def expected(file: str) -> set[str]:
    """Rules the manifest says fire on `file` (a log file holds several plans, so several
    entries)."""
    return {str(e["rule"]) for e in manifest() if e["file"] == file and e["fires"]} & set(RULES)


def allowed(file: str) -> set[str]:
    return expected(file) | {rule for (name, rule) in ALSO_TRUE if name == scenario(file)}


def not_shown(file: str, rule: str) -> str | None:
    """The capture's own note when the scenario did not produce the intended condition."""
    for e in manifest():
        if e["file"] == file and e["rule"] == rule and e["fires"] and not e.get("expect_met", True):
            return str(e.get("problem") or "expectation not met")
    return None


def test_rules_are_covered() -> None:
    mine = {"PQ001", "PQ007", "PQ008", "PQ009", "PQ201", "PQ203", "PQ204", "PQ205", "PQ206"}
    assert mine <= set(RULES)


@pytest.mark.parametrize("file", sample_files())
def test_fires_exactly_where_expected(file: str) -> None:
    got, want = fired(file), expected(file)
    missing = {r for r in want - got if not_shown(file, r) is None}
    extra = got - allowed(file)
    assert not missing, f"{file}: {sorted(missing)} should fire (manifest fires = true)"
    captured_for = sorted(str(e["rule"]) for e in manifest() if e["file"] == file and e["rule"])
    assert not extra, (
        f"{file}: {sorted(extra)} fired on a plan captured for {captured_for or 'a good plan'}; "
        "fix the check or justify it in ALSO_TRUE"
    )


def test_every_rule_has_a_firing_sample() -> None:
    firing: dict[str, list[str]] = defaultdict(list)
    for file in sample_files():
        for rule in fired(file):
            firing[rule].append(file)
    # PQ204 needs a JIT-enabled build; the PostgreSQL 18 wheel has no LLVM, so only pg15 shows it.
    silent = [rule for rule in RULES if not firing[rule]]
    assert not silent, f"no sample plan makes {silent} fire"


def test_also_true_entries_are_not_stale() -> None:
    for (name, rule), reason in ALSO_TRUE.items():
        files = [f for f in sample_files() if scenario(f) == name]
        assert files, f"ALSO_TRUE names {name}, which has no sample file"
        assert any(rule in fired(f) for f in files), f"{rule} no longer fires on {name}: {reason}"


# -- the same rules from live settings (pg_settings values, no plan) ------------------------------


def live(settings: dict[str, str]) -> dict[str, str]:
    report = run(Facts(settings=settings), Report(), select=RULES)
    return {f.rule: f.message for f in report.findings}


def test_live_settings_fire_with_raw_pg_settings_values() -> None:
    found = live(
        {
            "max_parallel_workers_per_gather": "0",
            "parallel_setup_cost": "1000",
            "parallel_tuple_cost": "1",  # 10x the default 0.1
            "min_parallel_table_scan_size": "131072",  # 8 kB blocks: 1GB
            "min_parallel_index_scan_size": "64",  # 512kB, the default
            "enable_parallel_hash": "on",
            "enable_gathermerge": "off",
            "debug_parallel_query": "regress",
        }
    )
    assert set(found) == {"PQ001", "PQ007", "PQ008", "PQ009"}
    assert "min_parallel_table_scan_size = 1GB, 128x its default 8MB" in found["PQ007"]
    assert "parallel_tuple_cost = 1, 10x its default 0.1" in found["PQ007"]
    assert "setup_cost" not in found["PQ007"] and "index_scan" not in found["PQ007"]
    assert "enable_gathermerge = off" in found["PQ008"] and "parallel_hash" not in found["PQ008"]


def test_live_defaults_are_quiet() -> None:
    assert (
        live(
            {
                "max_parallel_workers_per_gather": "2",
                "parallel_setup_cost": "1000",
                "parallel_tuple_cost": "0.1",
                "min_parallel_table_scan_size": "1024",
                "min_parallel_index_scan_size": "64",
                "enable_parallel_hash": "on",
                "enable_parallel_append": "on",
                "enable_gathermerge": "on",
                "debug_parallel_query": "off",
            }
        )
        == {}
    )
