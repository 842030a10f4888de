"""Read every EXPLAIN plan in a pasted text, whatever wraps it: JSON or text, raw or framed.

Order of attempts:

1. clean JSON (raw `EXPLAIN (FORMAT JSON)`, `psql -At`, several documents or an array of
   them, a bare plan object or node) goes straight to `json.loads`: big partition plans are
   megabytes and must cost little more than the decode itself;
2. an auto_explain server log (stderr or jsonlog format) is cut into its logged plans;
3. anything else is unframed (psql, DBeaver, pgAdmin, Markdown fences) into segments; in a
   segment, JSON starts at a line opening with "[" or "{" and everything else is read as text
   EXPLAIN (lines that hold no node, such as a psql prompt, yield nothing).

Every failure is a `PlanInputError` naming the line of the original input.
"""

from __future__ import annotations

import gc

from advisor.plan import PlanInputError
from advisor.plan.json_input import FoundDoc, fast_docs, json_start, segment_docs
from advisor.plan.model import Plan, build_plan
from advisor.plan.unframe import Segment, log_segments, split_lines, unframe

__all__ = ["INTERNAL_ERROR", "read_plans"]

# Marks a PlanInputError raised for an unexpected exception: tests look for it to find bugs.
INTERNAL_ERROR = "the plan reader failed unexpectedly"


def read_plans(text: str, source: str = "stdin") -> list[Plan]:
    """All plans in `text`, in input order; raises `PlanInputError` for anything else."""
    # A big plan is a few hundred thousand fresh objects and none of them form cycles: letting
    # the cyclic GC rescan that growing heap while we allocate costs more than the decode.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _read(text, source)
    except PlanInputError:
        raise
    except RecursionError:
        raise PlanInputError(
            source, _first_line(text), "the input is nested too deeply to be a plan"
        ) from None
    except Exception as e:  # the contract: bad input never escapes as another exception type
        raise PlanInputError(source, None, f"{INTERNAL_ERROR} ({type(e).__name__}: {e})") from e
    finally:
        if gc_was_enabled:
            gc.enable()


def _read(text: str, source: str) -> list[Plan]:
    if text.startswith("\ufeff"):  # a byte-order mark from a Windows editor
        text = text[1:]
    if not text.strip():
        raise PlanInputError(
            source, 1, "the input is empty; paste EXPLAIN output (text or FORMAT JSON)"
        )
    found = fast_docs(text, source, parse_text_segment)
    if found is None:
        segments = log_segments(text)
        if segments is None:
            segments = unframe(text)
        found = _read_segments(segments, source)
    if not found:
        raise PlanInputError(source, _first_line(text), _no_plan_message(text))
    plans = []
    for index, (doc, line, fmt) in enumerate(found, 1):
        try:
            plans.append(build_plan(doc, source=source, index=index, input_format=fmt))
        except (ValueError, TypeError, AttributeError, KeyError) as e:
            raise PlanInputError(source, line, f"the plan is malformed: {e}") from None
    return plans


def parse_text_segment(seg: Segment, source: str) -> list[FoundDoc]:
    """Text EXPLAIN, imported on first use: its many patterns cost start-up time that a JSON
    input (the CI and benchmark path) should not pay."""
    from advisor.plan.text_input import parse_text_segment as parse

    return parse(seg, source)


def _read_segments(segments: list[Segment], source: str) -> list[FoundDoc]:
    found: list[FoundDoc] = []
    for seg in segments:
        # A segment may hold text and JSON one after the other (one paste, no psql frame).
        # Text without a node line gives no plan: a command echo, "SET", a sentence.
        i = 0
        while i < len(seg):
            j = json_start(seg, i)
            if j is None:
                found.extend(parse_text_segment(seg[i:], source))
                break
            if j > i:
                found.extend(parse_text_segment(seg[i:j], source))
            docs, i = segment_docs(seg, j, source, parse_text_segment)
            found.extend(docs)
    return found


def _first_line(text: str) -> int:
    for no, line in enumerate(split_lines(text), 1):
        if line.strip():
            return no
    return 1


def _no_plan_message(text: str) -> str:
    if "QUERY PLAN" in text:
        return "the QUERY PLAN result holds no plan node line (like 'Seq Scan on t  (cost=...)')"
    return (
        "no EXPLAIN plan found: no line looks like a plan node (like 'Seq Scan on t  (cost=...)') "
        "and the input is not EXPLAIN (FORMAT JSON) output"
    )
