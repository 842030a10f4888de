"""The command line as users and CI meet it: exit codes, formats, errors without tracebacks."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from advisor import cli

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_plans"
FIRES = SAMPLES / "pg18" / "pq201_fires_pool_exhausted.json"  # Workers Launched < Planned
QUIET = (
    SAMPLES / "pg18" / "pq001_quiet_parallel_aggregate.json"
)  # an ordinary healthy parallel plan
SCHEMA = json.loads((ROOT / "advisor" / "schema" / "report.schema.json").read_text())


def advisor(*args: str, stdin: str = "") -> tuple[int, str]:
    """Run the CLI in-process; returns (exit code, stdout)."""
    out = io.StringIO()
    try:
        code = cli.run(list(args), stdin=io.StringIO(stdin), out=out)
    except cli.UsageError:
        code = cli.EXIT_INPUT
    return code, out.getvalue()


def advisor_process(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run the real console entry point, as a shell would."""
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "advisor", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )


def test_findings_at_or_above_fail_on_exit_1() -> None:
    code, out = advisor("explain", str(FIRES))
    assert code == cli.EXIT_FINDINGS
    assert "PQ201" in out and "fix:" in out


def test_fail_on_never_and_critical() -> None:
    assert advisor("explain", "--fail-on", "never", str(FIRES))[0] == 0
    # pool_exhausted launches some workers: warning, not critical.
    assert advisor("explain", "--fail-on", "critical", "--select", "PQ201", str(FIRES))[0] == 0


def test_quiet_plan_exits_0() -> None:
    code, out = advisor("explain", str(QUIET))
    assert code == 0, out


def test_stdin_paste_is_read() -> None:
    code, out = advisor("explain", "--json", stdin=FIRES.read_text())
    assert code == 1
    assert json.loads(out)["plans"][0]["source"].startswith("stdin")


def test_json_report_matches_published_schema() -> None:
    _, out = advisor("explain", "--json", str(FIRES), str(QUIET))
    doc = json.loads(out)
    jsonschema.validate(doc, SCHEMA)
    assert doc["schema_version"] == 1
    assert {f["rule"] for f in doc["findings"]} >= {"PQ201"}
    finding = next(f for f in doc["findings"] if f["rule"] == "PQ201")
    assert finding["evidence"]["planned"] > finding["evidence"]["launched"]
    assert finding["docs"] == "advisor rules PQ201"
    assert len(doc["plans"]) == 2


def test_checked_in_schema_is_current() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_schema
    finally:
        sys.path.pop(0)
    assert json.loads(gen_schema.render()) == SCHEMA, "run: uv run python scripts/gen_schema.py"


def test_markdown_report() -> None:
    _, out = advisor("report", "--plan", str(FIRES), "--format", "markdown")
    assert "| severity | rule | title | where |" in out
    assert "### WARNING PQ201" in out or "### CRITICAL PQ201" in out


def test_select_and_ignore() -> None:
    _, out = advisor("explain", "--json", "--select", "PQ2", str(FIRES))
    rules = {f["rule"] for f in json.loads(out)["findings"]}
    assert rules and all(r.startswith("PQ2") for r in rules)
    code, out = advisor("explain", "--json", "--ignore", "PQ201", "--select", "PQ201", str(FIRES))
    assert code == 0 and json.loads(out)["findings"] == []


def test_rules_need_unmet_are_listed_as_skipped() -> None:
    plain = (
        SAMPLES / "pg18" / "pq001_quiet_parallel_aggregate_plain.json"
    )  # EXPLAIN without ANALYZE
    _, out = advisor("explain", "--json", str(plain))
    skipped = {s["rule"]: s["reason"] for s in json.loads(out)["skipped"]}
    assert "PQ201" in skipped and "ANALYZE" in skipped["PQ201"]


@pytest.mark.parametrize(
    ("stdin", "needle"),
    [
        ("", "empty"),
        ("this is not a plan\nat all\n", "line"),
        ('[{"Plan": {"Node Type": "Seq Scan", ', "line"),
    ],
)
def test_bad_input_exits_2_with_one_line(stdin: str, needle: str) -> None:
    proc = advisor_process("explain", stdin=stdin)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert needle in proc.stderr.lower()


def test_missing_file_exits_2() -> None:
    proc = advisor_process("explain", "no/such/plan.json")
    assert proc.returncode == 2
    assert proc.stderr.startswith("advisor: cannot read no/such/plan.json")


def test_bad_usage_exits_2() -> None:
    proc = advisor_process("explain", "--format", "yaml")
    assert proc.returncode == 2


def test_text_output_without_colour_when_piped() -> None:
    proc = advisor_process("explain", str(FIRES))
    assert proc.returncode == 1
    assert "\x1b[" not in proc.stdout
    assert "WARNING PQ201" in proc.stdout or "CRITICAL PQ201" in proc.stdout


def test_rules_command() -> None:
    code, out = advisor("rules")
    assert code == 0 and "PQ201" in out
    code, out = advisor("rules", "pq201")
    assert code == 0
    for heading in ("What it finds", "Why it matters", "How to fix"):
        assert heading in out
    code, out = advisor("rules", "PQ201", "--json")
    assert json.loads(out)["code"] == "PQ201"
    assert advisor("rules", "PQ999")[0] == cli.EXIT_INPUT


def test_offline_explain_imports_no_heavy_module() -> None:
    """The offline path must stay close to json.load: no psycopg, pydantic, pglast, textual,
    and no rich for JSON output (docs/benchmarks.md). Runs the real command in a fresh
    interpreter and looks at what it imported."""
    code = (
        "import io, sys\n"
        "from advisor import cli\n"
        f"cli.run(['explain', '--json', '--fail-on', 'never', {str(FIRES)!r}], out=io.StringIO())\n"
        "heavy = {'psycopg', 'pydantic', 'pglast', 'textual', 'rich'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
