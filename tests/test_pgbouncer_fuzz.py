"""Fuzzing the pgbouncer.ini reader: any text gives a parsed file or an IniError naming a line
that exists, never another exception; well-formed files and connection strings round-trip.

The properties are module-level functions plus their strategies in `PROPERTIES`, so a long
run can reuse them outside pytest:

    uv run python -c "from tests.test_pgbouncer_fuzz import run_property as r; r('mutate', 10**5)"
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor.engine import Facts, run
from advisor.pooler.pgbouncer import (
    IniError,
    _quote,
    inline_comment,
    parse_connstr,
    parse_ini_text,
    pools,
    server_budget,
)
from advisor.report import Report
from advisor.snapshot import PgBouncerFacts, PgBouncerInstance

CI_EXAMPLES = 300
SEED = """\
[databases]
appdb = host=127.0.0.1 port=5432 dbname=app pool_size=5 ; inline
* = host=db2
[users]
app = pool_mode=transaction
[pgbouncer]
; a comment
# another
default_pool_size = 20
max_client_conn=100
%include pools.ini
"""
LINE_BITS = st.sampled_from(
    ["[", "]", "=", ";", "#", "%include ", "'", '"', " ", "\t", "\r", "\n", "pool_size", "x"]
)
KEY = st.from_regex(r"[A-Za-z0-9_.*-]{1,12}", fullmatch=True)
VALUE = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=30
)


def check(text: str) -> None:
    """The contract: a parsed file (every rule runs on it) or an IniError naming a real line."""
    try:
        fact = parse_ini_text(text, "fuzz.ini", cwd="/nonexistent")
    except IniError as exc:
        msg = str(exc)
        assert "\n" not in msg and msg.startswith("fuzz.ini:"), msg
        line = int(msg.split(":")[1])
        assert 1 <= line <= text.count("\n") + 1, (line, msg)
        return
    inst = PgBouncerInstance(ini=fact, version="1.18.0", version_source="fuzz")
    pools(inst)
    server_budget(inst)
    facts = Facts(pgbouncer=PgBouncerFacts(instances=[inst]))
    run(facts, Report(), select=["PB"])


def any_text(text: str) -> None:
    check(text)


def mutate(ops: list[tuple[int, str]]) -> None:
    text = SEED
    for pos, bit in ops:
        pos %= len(text) + 1
        text = text[:pos] + bit + text[pos:]
    check(text)


def roundtrip(sections: dict[str, dict[str, str]]) -> None:
    """Written as PgBouncer files are written, read back entry for entry."""
    lines = []
    for name, entries in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {v}" for k, v in entries.items()]
    fact = parse_ini_text("\n".join(lines) + "\n")
    got = {(e.section, e.key, e.value) for e in fact.entries}
    want = {(s, k, v.strip(" \t\f\v")) for s, es in sections.items() for k, v in es.items()}
    assert got == want


def connstr(params: dict[str, str]) -> None:
    text = " ".join(f"{k}={_quote(v)}" for k, v in params.items())
    assert parse_connstr(text) == params
    assert inline_comment(text) is None or any(";" in v or "#" in v for v in params.values())


def connstr_any(text: str) -> None:
    try:
        parse_connstr(text)
    except ValueError as exc:
        assert "syntax error" in str(exc)
    inline_comment(text)


PROPERTIES: dict[str, tuple[Callable[..., None], Any]] = {
    "any_text": (any_text, st.text(max_size=400)),
    "mutate": (mutate, st.lists(st.tuples(st.integers(0, 10_000), LINE_BITS), max_size=12)),
    "roundtrip": (
        roundtrip,
        st.dictionaries(
            st.sampled_from(["databases", "users", "pgbouncer", "other"]),
            st.dictionaries(KEY, VALUE, max_size=5),
            max_size=4,
        ),
    ),
    "connstr": (
        connstr,
        st.dictionaries(
            st.from_regex(r"[a-z_]{1,10}", fullmatch=True),
            st.text(
                alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"),
                max_size=12,
            ),
            max_size=5,
        ),
    ),
    "connstr_any": (connstr_any, st.text(max_size=80)),
}


def run_property(name: str, n: int) -> None:
    fn, strategy = PROPERTIES[name]
    settings(
        max_examples=n,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )(given(strategy)(fn))()


@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_property(name: str) -> None:
    run_property(name, CI_EXAMPLES)
