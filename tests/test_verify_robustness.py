"""Inputs that `bench/robustness.py` found crashing a parser, kept as regression tests."""

from __future__ import annotations

from tests.test_plan_fuzz import check, prop_mutate


def test_damaged_query_identifier_is_ignored() -> None:
    # mutate case 4,310 of the first 100,000-case run: "Query Identifier: 4904938.96781830462"
    prop_mutate(seed=303, at=0.97265625, char=".")
    (plan,) = check("Seq Scan on t  (cost=0.00..1.01 rows=1 width=4)\nQuery Identifier: 1.5\n")
    assert "Query Identifier" not in plan.props
