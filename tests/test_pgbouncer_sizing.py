"""PgBouncer sizing arithmetic (Erlang C, Little) and the advice on real captured snapshots."""

from __future__ import annotations

from pathlib import Path

import pytest

from advisor.engine import analyse
from advisor.pooler.pgbouncer_sizing import erlang_c_wait, pool_for
from advisor.snapshot import Snapshot, facts_from_snapshot

SNAPSHOTS = Path(__file__).resolve().parent.parent / "sample_snapshots"


@pytest.mark.parametrize(
    ("a", "c", "expected"),
    [(1.0, 2, 1 / 3), (2.0, 3, 4 / 9), (0.5, 1, 0.5), (3.0, 3, 1.0), (5.0, 2, 1.0)],
)
def test_erlang_c_textbook_values(a: float, c: int, expected: float) -> None:
    assert erlang_c_wait(a, c) == pytest.approx(expected)


def test_pool_grows_with_load_and_shrinks_with_a_looser_budget() -> None:
    sizes = [pool_for(a, 0.05, 0.005)[0] for a in (0.5, 1, 2, 4, 8, 16)]
    assert sizes == sorted(sizes) and sizes[0] >= 1 and sizes[-1] > 16
    c, wq = pool_for(4, 0.05, 0.005)
    assert wq <= 0.005 and pool_for(4, 0.05, 0.05)[0] <= c


def _recs(name: str) -> dict[str, list[object]]:
    report = analyse(facts_from_snapshot(Snapshot.load(SNAPSHOTS / name)))
    out: dict[str, list[object]] = {}
    for r in report.recommendations:
        if r.kind == "pgbouncer":
            out.setdefault(r.name, []).append(r)
    return out


def test_saturated_pool_is_told_to_grow_with_the_formula_shown() -> None:
    recs = _recs("pgbouncer_busy_pg18.json")
    app = next(r for r in recs["pool_size"] if r.scope.endswith("[databases] app"))  # type: ignore[attr-defined]
    assert app.current == "1" and int(app.recommended) > 1  # type: ignore[attr-defined]
    for text in ("λ =", "W = L/λ", "Erlang C", "knee = 4 x cores = 8", "max cl_waiting"):
        assert text in app.formula  # type: ignore[attr-defined]
    assert recs["LimitNOFILE"][0].requires == "restart"  # type: ignore[attr-defined]


def test_misconfigured_budget_gets_a_per_database_cap() -> None:
    (cap,) = _recs("pgbouncer_misconfigured_pg18.json")["max_db_connections"]
    assert cap.recommended == "6"  # type: ignore[attr-defined]  # (40 - 3) // 3 instances // 2 dbs


def test_calm_pool_gets_no_bigger() -> None:
    recs = _recs("pgbouncer_clean_pg18.json")
    for r in recs.get("pool_size", []) + recs.get("default_pool_size", []):
        assert int(r.recommended) <= int(r.current)  # type: ignore[attr-defined]


def test_cn002_leaves_the_budget_to_the_pooler_rules_when_pooler_facts_are_given() -> None:
    facts = facts_from_snapshot(Snapshot.load(SNAPSHOTS / "pgbouncer_busy_pg18.json"))
    assert "CN002" not in {f.rule for f in analyse(facts).findings}
    facts.pgbouncer = None  # the same server without the PgBouncer facts: CN002 speaks
    assert "CN002" in {f.rule for f in analyse(facts).findings}
