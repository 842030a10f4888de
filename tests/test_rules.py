"""Card hygiene and per-card examples: every card fires on its firing examples and stays quiet
on its quiet ones, on real plans captured from real servers (sample_plans/) or on snapshots
collected from real servers with mis-tuned settings (sample_snapshots/, made by
scripts/capture_snapshots.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from advisor.engine import (
    HEADINGS,
    CardError,
    Example,
    Facts,
    iter_placeholders,
    load_cards,
    registered_checks,
    run,
)
from advisor.plan import parse_plans
from advisor.report import Report
from advisor.snapshot import Snapshot, facts_from_snapshot

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_plans"
SNAPSHOTS = ROOT / "sample_snapshots"
CARDS = load_cards()


def _file(example: Example) -> Path:
    return SNAPSHOTS / example.snapshot if example.snapshot else SAMPLES / example.plan


def _facts(example: Example) -> Facts:
    path = _file(example)
    if example.snapshot:
        return facts_from_snapshot(Snapshot.load(path))
    return Facts(plans=parse_plans(path.read_text(encoding="utf-8"), source=path.name))


def _codes(example: Example, code: str) -> list[str]:
    report = run(_facts(example), Report(), select=[code])
    return [f.rule for f in report.findings if f.rule == code]


def test_one_card_per_check_and_one_check_per_card() -> None:
    checks = set(registered_checks())
    assert checks == set(CARDS), (
        f"without card: {checks - set(CARDS)}; without check: {set(CARDS) - checks}"
    )


@pytest.mark.parametrize("code", sorted(CARDS))
def test_card_is_complete(code: str) -> None:
    card = CARDS[code]
    for heading in HEADINGS:
        assert heading in card.explanation
    assert any(e.fires for e in card.examples), "needs a firing example"
    assert any(not e.fires for e in card.examples), "needs a quiet example"
    for example in card.examples:
        assert _file(example).is_file(), example.path


EXAMPLES = [
    pytest.param(code, ex, ex.fires, id=f"{code}-{Path(ex.path).stem}")
    for code, card in sorted(CARDS.items())
    for ex in card.examples
]


@pytest.mark.parametrize(("code", "example", "fires"), EXAMPLES)
def test_card_example(code: str, example: Example, fires: bool) -> None:
    found = _codes(example, code)
    expected = "a finding" if fires else "silence"
    assert bool(found) == fires, f"{code} on {example.path}: expected {expected}"


@pytest.mark.parametrize("code", sorted(CARDS))
def test_placeholders_exist_in_evidence(code: str) -> None:
    """Every {placeholder} of message and fix is filled by each firing example's evidence."""
    card = CARDS[code]
    wanted = set(iter_placeholders(card.message)) | set(iter_placeholders(card.fix))
    for ex in card.examples:
        if not ex.fires:
            continue
        report = run(_facts(ex), Report(), select=[code])
        for f in report.findings:
            provided = set(f.evidence) | {"where", "severity"}
            assert wanted <= provided, f"{ex.path}: missing {wanted - provided}"
            assert "{" not in f.message and "{" not in f.fix, f.message


@pytest.mark.parametrize(
    "example",
    [
        'plan = "a.json"\nsnapshot = "b.json"\nfires = true',
        "fires = true",
        'snapshot = "b.json"',
    ],
)
def test_example_needs_fires_and_one_of_plan_or_snapshot(tmp_path: Path, example: str) -> None:
    text = (ROOT / "rules/server/CN006-no-superuser-slots.toml").read_text(encoding="utf-8")
    (tmp_path / "CN006-no-superuser-slots.toml").write_text(
        text + f"\n[[examples]]\n{example}\n", encoding="utf-8"
    )
    with pytest.raises(CardError, match="one of plan or snapshot"):
        load_cards(tmp_path)
