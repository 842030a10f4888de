"""Golden outputs: the bytes of each renderer are a contract (CI parses the JSON, people read
the text, PR bots post the Markdown). Regenerate on purpose with UPDATE_GOLDEN=1 and review
the diff."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from advisor import engine, render
from advisor.plan import parse_plans
from advisor.report import Report

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = [
    "pg18/pq201_fires_pool_exhausted.txt",
    "pg15/pq203_fires_sort_spill.json",
    "pg18/pq101_fires_unsafe_function.json",
    "pg18/pq001_quiet_parallel_aggregate.json",
]


def _report(sample: str) -> Report:
    path = ROOT / "sample_plans" / sample
    plans = parse_plans(path.read_text(encoding="utf-8"), source=path.name)
    return engine.analyse(engine.Facts(plans=plans))


def _rendered(sample: str, fmt: str) -> str:
    report = _report(sample)
    if fmt == "json":
        return render.to_json(report)
    if fmt == "md":
        return render.to_markdown(report)
    buf = io.StringIO()
    render.to_text(report, buf, width=100)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["txt", "json", "md"])
@pytest.mark.parametrize("sample", CASES)
def test_golden(sample: str, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    got = _rendered(sample, fmt)
    path = GOLDEN / f"{sample.replace('/', '__').rsplit('.', 1)[0]}.{fmt}"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(got, encoding="utf-8")
    assert path.is_file(), (
        f"missing golden {path.name}: run UPDATE_GOLDEN=1 uv run pytest {__file__}"
    )
    assert got == path.read_text(encoding="utf-8")
