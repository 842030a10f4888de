"""The report: what every front door (text, JSON, Markdown, TUI, CI) renders.

Plain dataclasses on purpose: `advisor explain --json` must stay close to the cost of
`json.load`, so the hot path never imports pydantic. The published JSON Schema
(`advisor/schema/report.schema.json`) is generated from these classes by
`scripts/gen_schema.py` and a test keeps the two in step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

SCHEMA_VERSION = 1

Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: dict[str, int] = {"info": 1, "warning": 2, "critical": 3}
Requires = Literal["restart", "reload", "session", "none"]


@dataclass
class Tool:
    name: str
    version: str


@dataclass
class Target:
    """What was examined. `host` never carries a password."""

    server_version: str | None = None
    server_version_num: int | None = None
    host: str | None = None
    database: str | None = None
    collected_at: str | None = None
    mode: Literal["offline", "live", "snapshot"] = "offline"


@dataclass
class Hardware:
    cores: float | None = None
    cores_source: Literal["cgroup", "host", "user", "unknown"] = "unknown"
    memory_bytes: int | None = None
    memory_source: Literal["cgroup", "host", "user", "unknown"] = "unknown"


@dataclass
class Finding:
    rule: str
    name: str
    severity: Severity
    title: str
    message: str
    where: str
    evidence: dict[str, Any]
    fix: str
    docs: str


@dataclass
class Recommendation:
    kind: Literal[
        "setting",
        "role_setting",
        "database_setting",
        "table_option",
        "function",
        "pgbouncer",
        "pgpool",
    ]
    name: str
    scope: str
    current: str | None
    recommended: str
    requires: Requires
    because: list[str]
    formula: str
    apply: str


@dataclass
class PlanSummary:
    source: str
    nodes: int
    parallel_nodes: int
    workers_planned: int
    workers_launched: int | None
    execution_ms: float | None


@dataclass
class Skipped:
    rule: str
    reason: str


@dataclass
class InputError:
    source: str
    message: str


@dataclass
class Report:
    schema_version: int = SCHEMA_VERSION
    tool: Tool = field(default_factory=lambda: Tool("pg-parallel-advisor", _version()))
    target: Target = field(default_factory=Target)
    hardware: Hardware = field(default_factory=Hardware)
    findings: list[Finding] = field(default_factory=list)
    recommendations: list[Recommendation] = field(default_factory=list)
    plans: list[PlanSummary] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)

    def worst(self) -> int:
        """Rank of the most severe finding (0 when there is none)."""
        return max((SEVERITY_RANK[f.severity] for f in self.findings), default=0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _version() -> str:
    from advisor import __version__

    return __version__


def exit_code(report: Report, fail_on: str) -> int:
    """0: nothing at or above `fail_on`; 1: something is. `never` always gives 0."""
    if fail_on == "never":
        return 0
    return 1 if report.worst() >= SEVERITY_RANK[fail_on] else 0
