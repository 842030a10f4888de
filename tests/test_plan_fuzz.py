"""Fuzzing the plan reader: any input gives a list of Plan or a PlanInputError, nothing else.

The properties are plain module-level functions plus their hypothesis strategies in
`PROPERTIES`, so a long run can reuse them outside pytest:

    uv run python -c "from tests.test_plan_fuzz import run_property as r; r('mutate', 100_000)"

In the suite every property runs a few hundred examples (deadline=None: big seeds are slow
to mutate on a loaded CI box, and speed is benchmarked elsewhere).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from advisor.plan import Plan, PlanInputError, parse_plans
from advisor.plan.reader import INTERNAL_ERROR
from advisor.plan.unframe import split_lines
from tests.conftest import run_fuzz

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "plan_input"
SAMPLES = HERE.parent / "sample_plans"
CI_EXAMPLES = 300


@cache
def seeds() -> tuple[str, ...]:
    """Real inputs to damage: corpus, psql formats, a few pairs and sample plans (both kinds)."""
    paths = sorted(FIXTURES.glob("paste_corpus/*.plan"))
    paths += sorted(FIXTURES.glob("psql_formats/*-wrapped-1-*.plan"))
    paths += sorted(FIXTURES.glob("artifacts/*.json"))
    paths += sorted(FIXTURES.glob("pairs/pg18/*.full.*"))[:12]
    paths += (
        sorted(SAMPLES.glob("pg*/pq20[34]*"))[:6]
        + sorted(SAMPLES.glob("pg*/auto_explain_*.log"))[:2]
    )
    return tuple(p.read_text(encoding="utf-8") for p in paths)


def check(text: str) -> list[Plan]:
    """The contract: plans, or a PlanInputError naming a line that exists in `text`."""
    try:
        plans = parse_plans(text, "fuzz")
    except PlanInputError as e:
        assert INTERNAL_ERROR not in e.message, e.message  # an unexpected exception in the reader
        assert "\n" not in str(e)
        if e.line is not None:
            assert 1 <= e.line <= max(1, len(split_lines(text))), (e.line, str(e))
        return []
    assert isinstance(plans, list) and plans
    for i, plan in enumerate(plans, 1):
        assert isinstance(plan, Plan) and plan.index == i and plan.node_count >= 1
        for node in plan.nodes():  # the model must be usable, not just constructed
            _ = (node.label, node.spills, node.all_spills(), node.total_rows)
    return plans


# -- properties ---------------------------------------------------------------------------------


def prop_any_text(text: str) -> None:
    check(text)


def prop_truncate(seed: int, cut: float) -> None:
    text = seeds()[seed % len(seeds())]
    check(text[: int(len(text) * cut)])  # cut < 1: always a real truncation


def prop_mutate(seed: int, at: float, char: str) -> None:
    text = seeds()[seed % len(seeds())]
    i = int(len(text) * at)
    check(text[:i] + char + text[i + 1 :])


def prop_delete(seed: int, at: float, length: int) -> None:
    text = seeds()[seed % len(seeds())]
    i = int(len(text) * at)
    check(text[:i] + text[i + length :])


def prop_drop_lines(seed: int, drops: list[float]) -> None:
    lines = seeds()[seed % len(seeds())].split("\n")
    gone = {int(len(lines) * d) for d in drops}
    check("\n".join(line for i, line in enumerate(lines) if i not in gone))


def prop_shuffle_lines(seed: int, swaps: list[tuple[float, float]]) -> None:
    lines = seeds()[seed % len(seeds())].split("\n")
    for a, b in swaps:
        i, j = int(len(lines) * a), int(len(lines) * b)
        lines[i], lines[j] = lines[j], lines[i]
    check("\n".join(lines))


def prop_splice(seed: int, other: int, at: float, junk: str) -> None:
    """Two inputs glued together with junk between them (what a careless paste looks like)."""
    a, b = seeds()[seed % len(seeds())], seeds()[other % len(seeds())]
    i = int(len(a) * at)
    check(a[:i] + junk + b)


_fraction = st.floats(min_value=0.0, max_value=1.0, exclude_max=True, allow_nan=False)
_seed = st.integers(min_value=0, max_value=10_000)
_plan_chars = st.sampled_from([*' \n\t"{}[]():,.+-|│↵…0123456789>=-\\aeEsT', "\x00", "\u2028", "é"])

PROPERTIES: dict[str, tuple[Callable[..., None], dict[str, st.SearchStrategy[Any]]]] = {
    "any_text": (prop_any_text, {"text": st.text()}),
    "any_unicode": (prop_any_text, {"text": st.text(alphabet=st.characters(), max_size=400)}),
    "plan_like_text": (prop_any_text, {"text": st.text(alphabet=_plan_chars, max_size=400)}),
    "truncate": (prop_truncate, {"seed": _seed, "cut": _fraction}),
    "mutate": (
        prop_mutate,
        {"seed": _seed, "at": _fraction, "char": _plan_chars | st.characters()},
    ),
    "delete": (prop_delete, {"seed": _seed, "at": _fraction, "length": st.integers(1, 200)}),
    "drop_lines": (
        prop_drop_lines,
        {"seed": _seed, "drops": st.lists(_fraction, min_size=1, max_size=5)},
    ),
    "shuffle_lines": (
        prop_shuffle_lines,
        {"seed": _seed, "swaps": st.lists(st.tuples(_fraction, _fraction), min_size=1, max_size=3)},
    ),
    "splice": (
        prop_splice,
        {"seed": _seed, "other": _seed, "at": _fraction, "junk": st.text(max_size=30)},
    ),
}


def run_property(name: str, max_examples: int = CI_EXAMPLES) -> None:
    """Run one property under hypothesis with `max_examples` cases (raises on a failure)."""
    run_fuzz(*PROPERTIES[name], max_examples, CI_EXAMPLES)


@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_fuzz(name: str) -> None:
    run_property(name)


def test_seeds_parse_cleanly() -> None:
    assert len(seeds()) >= 30
    for text in seeds():
        assert check(text), text[:200]
