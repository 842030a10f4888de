"""Write advisor/schema/report.schema.json from the report dataclasses (pydantic does the work).

Run after changing advisor/report.py: `uv run python scripts/gen_schema.py`. A test fails when
the checked-in file and the models disagree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "advisor" / "schema" / "report.schema.json"


def generate() -> dict[str, Any]:
    from pydantic import TypeAdapter

    from advisor.report import SCHEMA_VERSION, Report

    schema = TypeAdapter(Report).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://github.com/pg-parallel-advisor/report-v{SCHEMA_VERSION}.schema.json"
    schema["title"] = "pg-parallel-advisor report"
    return schema


def render() -> str:
    return json.dumps(generate(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMA_PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}", file=sys.stderr)
