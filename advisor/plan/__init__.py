"""EXPLAIN input in every form a DBA has it, turned into one typed model.

`parse_plans(text, source)` accepts JSON or text EXPLAIN as psql, pgAdmin, DBeaver or
auto_explain print it and returns `Plan` objects; anything else raises `PlanInputError`
naming the source and line.
"""

from advisor.plan.model import GATHER_TYPES, Jit, Plan, PlanNode, Spill, WorkerStats, build_plan

__all__ = [
    "GATHER_TYPES",
    "Jit",
    "Plan",
    "PlanInputError",
    "PlanNode",
    "Spill",
    "WorkerStats",
    "build_plan",
    "parse_plans",
]


class PlanInputError(ValueError):
    """Input that is not an EXPLAIN plan; `str()` is one sentence naming source and line."""

    def __init__(self, source: str, line: int | None, message: str) -> None:
        self.source = source
        self.line = line
        self.message = message
        where = f"{source}, line {line}" if line else source
        super().__init__(f"{where}: {message}")


def parse_plans(text: str, source: str = "stdin") -> list[Plan]:
    from advisor.plan.reader import read_plans  # parsers live in their own modules

    return read_plans(text, source)
