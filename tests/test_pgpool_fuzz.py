"""Fuzzing the pgpool.conf parser: any text gives a PgpoolConf whose settings the rules can
read, or a PgpoolConfError naming a line that exists; never another exception.

Same shape as test_plan_fuzz.py: module-level properties in `PROPERTIES`, so a long run can
reuse them outside pytest:

    uv run python -c "from tests.test_pgpool_fuzz import run_property as r; r('mutate', 100_000)"

In the suite every property runs a few hundred examples.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from advisor.engine import Facts, run
from advisor.pooler.pgpool import PgpoolConf, PgpoolConfError, PgpoolView, conf_facts, parse_conf
from advisor.report import Report
from tests.conftest import run_fuzz
from tests.test_pgpool_conf import CLEAN

SHARED = Path(__file__).resolve().parents[2] / "shared" / "knowledge" / "artifacts"
CI_EXAMPLES = 300
KEYS = (
    "num_init_children",
    "max_pool",
    "load_balance_mode",
    "health_check_period",
    "health_check_period1",
    "delay_threshold",
    "sr_check_period",
    "backend_weight0",
    "backend_port1",
    "listen_addresses",
    "sr_check_password",
    "client_idle_limit",
)


@cache
def seeds() -> tuple[str, ...]:
    texts = [CLEAN]
    for name in ("pgpool_test.conf",):
        if (SHARED / name).is_file():
            texts.append((SHARED / name).read_text())
    return tuple(texts)


def check(text: str) -> PgpoolConf | None:
    """The contract: a usable conf, or an error on an existing line (0: none), one line."""
    try:
        conf = parse_conf(text, "fuzz.conf")
    except PgpoolConfError as e:
        assert "\n" not in str(e)
        assert 1 <= e.line <= max(1, len(text.split("\n"))), (e.line, str(e))
        return None
    facts = conf_facts(conf)
    view = PgpoolView(facts)
    for key in ("num_init_children", "max_pool", "delay_threshold", "health_check_period"):
        assert view.number(key) >= 0
    _ = (view.node_ids(), view.standbys(), view.load_balancing())
    report = run(Facts(pgpool=facts), Report(), select=["PP"])
    for f in report.findings:
        assert "{" not in f.message, f.message
    return conf


# -- properties ---------------------------------------------------------------------------------


def prop_any_text(text: str) -> None:
    check(text)


def prop_mutate(seed: int, at: float, char: str) -> None:
    text = seeds()[seed % len(seeds())]
    i = int(len(text) * at)
    check(text[:i] + char + text[i + 1 :])


def prop_truncate(seed: int, cut: float) -> None:
    text = seeds()[seed % len(seeds())]
    check(text[: int(len(text) * cut)])


def prop_lines(lines: list[tuple[str, str, str, str]]) -> None:
    """Assembled lines: a known key, optional '=', a quoted or bare value, a comment."""
    check("\n".join(f"{k}{eq}{v}{c}" for k, eq, v, c in lines))


_fraction = st.floats(min_value=0.0, max_value=1.0, exclude_max=True, allow_nan=False)
_seed = st.integers(min_value=0, max_value=10_000)
_conf_chars = st.sampled_from([*" \n\t='\"#\\;,.-_0123456789abcdefmonsMBk", "\x00", "é", "\r"])
_value = st.one_of(
    st.integers(-5, 10**6).map(str),
    st.sampled_from(["on", "off", "'on'", "5min", "10s", "10MB", "'*'", "''", "'a''b'", "x"]),
    st.text(alphabet=_conf_chars, max_size=12),
)
_line = st.tuples(
    st.sampled_from(KEYS) | st.text(alphabet="abc_019", min_size=1, max_size=8),
    st.sampled_from([" = ", "=", " ", ""]),
    _value,
    st.sampled_from(["", " # note", "#", " ; x"]),
)

PROPERTIES: dict[str, tuple[Callable[..., None], dict[str, st.SearchStrategy[Any]]]] = {
    "any_text": (prop_any_text, {"text": st.text()}),
    "conf_like_text": (prop_any_text, {"text": st.text(alphabet=_conf_chars, max_size=400)}),
    "mutate": (
        prop_mutate,
        {"seed": _seed, "at": _fraction, "char": _conf_chars | st.characters()},
    ),
    "truncate": (prop_truncate, {"seed": _seed, "cut": _fraction}),
    "lines": (prop_lines, {"lines": st.lists(_line, max_size=12)}),
}


def run_property(name: str, max_examples: int = CI_EXAMPLES) -> None:
    """Run one property under hypothesis with `max_examples` cases (raises on a failure)."""
    run_fuzz(*PROPERTIES[name], max_examples, CI_EXAMPLES)


@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_fuzz(name: str) -> None:
    run_property(name)


def test_seeds_parse_cleanly() -> None:
    for text in seeds():
        assert check(text) is not None
