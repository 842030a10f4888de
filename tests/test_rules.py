"""Card hygiene and per-card examples: every card fires on its firing examples and stays quiet
on its quiet ones, on real plans captured from real servers (sample_plans/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from advisor.engine import (
    HEADINGS,
    Facts,
    iter_placeholders,
    load_cards,
    registered_checks,
    run,
)
from advisor.plan import parse_plans
from advisor.report import Report

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_plans"
CARDS = load_cards()


def _facts(example: str) -> Facts:
    path = SAMPLES / example
    return Facts(plans=parse_plans(path.read_text(encoding="utf-8"), source=path.name))


def _codes(example: str, code: str) -> list[str]:
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
        assert (SAMPLES / example.plan).is_file(), example.plan


EXAMPLES = [
    pytest.param(code, ex.plan, ex.fires, id=f"{code}-{Path(ex.plan).stem}")
    for code, card in sorted(CARDS.items())
    for ex in card.examples
]


@pytest.mark.parametrize(("code", "plan", "fires"), EXAMPLES)
def test_card_example(code: str, plan: str, fires: bool) -> None:
    found = _codes(plan, code)
    assert bool(found) == fires, f"{code} on {plan}: expected {'a finding' if fires else 'silence'}"


@pytest.mark.parametrize("code", sorted(CARDS))
def test_placeholders_exist_in_evidence(code: str) -> None:
    """Every {placeholder} of message and fix is filled by each firing example's evidence."""
    card = CARDS[code]
    wanted = set(iter_placeholders(card.message)) | set(iter_placeholders(card.fix))
    for ex in card.examples:
        if not ex.fires:
            continue
        report = run(_facts(ex.plan), Report(), select=[code])
        for f in report.findings:
            provided = set(f.evidence) | {"where", "severity"}
            assert wanted <= provided, f"{ex.plan}: missing {wanted - provided}"
            assert "{" not in f.message and "{" not in f.fix, f.message
