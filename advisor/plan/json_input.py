"""JSON EXPLAIN input: raw `EXPLAIN (FORMAT JSON)` text, or the JSON inside an unframed segment.

Raw JSON goes straight to `json.loads` (the fast path for multi-megabyte partition plans);
only when that fails does the caller unframe the input and hand segments back here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from advisor.plan import PlanInputError
from advisor.plan.unframe import Line, Segment

__all__ = ["Doc", "FoundDoc", "fast_docs", "json_start", "segment_docs"]

Doc = dict[str, Any]
FoundDoc = tuple[Doc, int, str]  # (document, line of its start, "json" | "text")
# Parses a text plan handed over inside JSON (a GUI's JSON export of text EXPLAIN rows).
TextParser = Callable[[Segment, str], list[FoundDoc]]

_DECODER = json.JSONDecoder()
_WS = re.compile(r"\s*")
_JSON_OPEN = re.compile(r'[\[{]\s*$|\[?\s*\{\s*"')  # "[" or "{" alone, or '[{"Plan"...'
_NO_PLAN = 'the JSON holds no "Plan" object, so it is not EXPLAIN (FORMAT JSON) output'


def json_start(seg: Segment, start: int = 0) -> int | None:
    """Index of the first line at or after `start` where JSON opens, if any.

    The first meaningful line counts when it opens with "[" or "{" at all; later lines (after
    a sentence or a text plan) only in the shapes EXPLAIN prints, so that a wrapped filter
    piece such as "{1,2}'::int[])" is not taken for JSON.
    """
    first = True
    for i in range(start, len(seg)):
        s = seg[i].text.lstrip()
        if not s:
            continue
        if (first and s[0] in "[{") or _JSON_OPEN.match(s):
            return i
        first = False
    return None


def fast_docs(text: str, source: str, text_parser: TextParser) -> list[FoundDoc] | None:
    """Documents of clean JSON input, or None when `text` is anything else (then unframe)."""
    start = _WS.match(text)
    pos = start.end() if start else 0
    if pos >= len(text) or text[pos] not in "[{":
        return None
    try:
        values: list[tuple[Any, int]] = [(json.loads(text), pos)]
    except json.JSONDecodeError as e:
        if not e.msg.startswith("Extra data"):
            return None
        try:
            values = _decode_all(text, pos)
        except ValueError:
            return None
    except ValueError:
        return None  # an integer beyond int()'s digit limit: let the slow path report it
    except RecursionError:
        raise PlanInputError(
            source, text.count("\n", 0, pos) + 1, "the JSON is nested too deeply to be a plan"
        ) from None
    out: list[FoundDoc] = []
    for value, at in values:
        line = text.count("\n", 0, at) + 1
        docs = _docs_from_value(value, line, source, text_parser)
        if docs is None:
            return None  # not plan-shaped: maybe a jsonlog; let the slow path explain
        out.extend(docs)
    return out


def _decode_all(text: str, pos: int) -> list[tuple[Any, int]]:
    """Concatenated JSON values (several EXPLAIN results one after another)."""
    out: list[tuple[Any, int]] = []
    end = len(text)
    while pos < end:
        value, nxt = _DECODER.raw_decode(text, pos)
        out.append((value, pos))
        m = _WS.match(text, nxt)
        pos = m.end() if m else nxt
    return out


def segment_docs(
    seg: Segment, first: int, source: str, text_parser: TextParser
) -> tuple[list[FoundDoc], int]:
    """Documents of the JSON that opens at line `first` of `seg`, and the index of the line
    after it (more text, or another plan, may follow in the same segment)."""
    lines = seg[first:]
    text = "\n".join(line.text for line in lines)

    def orig(lineno: int) -> int:  # 1-based line of `text` -> line of the original input
        return lines[min(max(lineno, 1), len(lines)) - 1].no

    try:
        values, end = _decode_lenient(text)
    except _TooLong as e:
        raise PlanInputError(
            source, orig(e.lineno), "a number in the JSON plan is absurdly long"
        ) from None
    except json.JSONDecodeError as e:
        try:
            # Long lines broken by a terminal or mail client: rejoin and try once more. The
            # line count changes, so whatever follows the JSON in this segment is dropped.
            values, _ = _decode_lenient(_rejoin_broken(text))
            end = len(text)
        except (json.JSONDecodeError, RecursionError, _TooLong):
            raise PlanInputError(source, orig(e.lineno), _explain_decode_error(e, text)) from None
    except RecursionError:
        raise PlanInputError(
            source, orig(1), "the JSON is nested too deeply to be a plan"
        ) from None
    out: list[FoundDoc] = []
    for value, at in values:
        line = orig(text.count("\n", 0, at) + 1)
        docs = _docs_from_value(value, line, source, text_parser)
        if docs is None:
            raise PlanInputError(source, line, _NO_PLAN)
        out.extend(docs)
    return out, first + text.count("\n", 0, end) + 1


def _decode_lenient(text: str) -> tuple[list[tuple[Any, int]], int]:
    """Like `_decode_all`, but stop quietly at text that is not JSON (psql's "Time: 1.2 ms",
    a prompt, a text plan) and say where: only a value that starts and then breaks is an error."""
    m = _WS.match(text)
    pos = m.end() if m else 0
    end = pos
    out: list[tuple[Any, int]] = []
    while pos < len(text) and text[pos] in "[{":
        try:
            value, nxt = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError:
            raise
        except ValueError:  # int() refuses more than 4300 digits
            raise _TooLong(text.count("\n", 0, pos) + 1) from None
        out.append((value, pos))
        end = nxt
        m = _WS.match(text, nxt)
        pos = m.end() if m else nxt
    return out, end


class _TooLong(Exception):
    def __init__(self, lineno: int) -> None:
        super().__init__(lineno)
        self.lineno = lineno


def _explain_decode_error(e: json.JSONDecodeError, text: str) -> str:
    if e.pos >= len(text.rstrip()):
        return "the JSON plan is cut off: it ends before its objects and arrays are closed"
    return f"the JSON plan is invalid here ({e.msg[0].lower()}{e.msg[1:]}, column {e.colno})"


_CLOSERS = (",", "{", "[", "]", "}")
_QUOTE = re.compile(r'(?<!\\)"')  # an unescaped double quote


def _rejoin_broken(text: str) -> str:
    """Join lines that a terminal or mail client broke inside a JSON token.

    EXPLAIN's JSON ends every line with a comma, a bracket or (last member) a complete value
    followed by a line holding only a closing bracket; a line ending in anything else that is
    not followed by a closing bracket was cut, and so was a line ending inside a string.
    """
    lines = text.split("\n")
    out: list[str] = []
    for line in lines:
        if out:
            prev = out[-1].rstrip()
            nxt = line.lstrip()
            if len(_QUOTE.findall(prev)) % 2 == 1:  # cut inside a string: keep every blank
                out[-1] += line
                continue
            if prev and not prev.endswith(_CLOSERS) and nxt[:1] not in ("]", "}", ""):
                out[-1] = prev + nxt
                continue
        out.append(line)
    return "\n".join(out)


def _docs_from_value(
    value: Any, line: int, source: str, text_parser: TextParser
) -> list[FoundDoc] | None:
    """EXPLAIN documents in one decoded JSON value; None if it holds none."""
    if isinstance(value, list):
        if not value:
            return None
        if all(isinstance(v, dict) and set(v) == {"QUERY PLAN"} for v in value):
            return _query_plan_rows(value, line, source, text_parser)
        out: list[FoundDoc] = []
        for item in value:
            docs = (
                _docs_from_value(item, line, source, text_parser)
                if isinstance(item, dict | list)
                else None
            )
            if docs is None:
                return None
            out.extend(docs)
        return out
    if isinstance(value, dict):
        if isinstance(value.get("Plan"), dict):
            return [(value, line, "json")]
        if isinstance(value.get("Node Type"), str):
            return [({"Plan": value}, line, "json")]  # a bare node copied out of a bigger plan
        if set(value) == {"QUERY PLAN"}:
            return _query_plan_rows([value], line, source, text_parser)
    return None


def _query_plan_rows(
    rows: list[Any], line: int, source: str, text_parser: TextParser
) -> list[FoundDoc] | None:
    """A GUI's JSON export of the result set: [{"QUERY PLAN": ...}, ...]."""
    cells = [r["QUERY PLAN"] for r in rows]
    if len(cells) == 1 and not isinstance(cells[0], str):
        return _docs_from_value(cells[0], line, source, text_parser)
    if not all(isinstance(c, str) for c in cells):
        return None
    joined = "\n".join(cells)
    if joined.lstrip()[:1] in ("[", "{"):
        try:
            inner = json.loads(joined)
        except (ValueError, RecursionError):  # ValueError: JSONDecodeError or a 5000-digit int
            return None
        return _docs_from_value(inner, line, source, text_parser)
    return text_parser([Line(line, t) for t in joined.split("\n")], source) or None
