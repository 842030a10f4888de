"""Strip what psql, DBeaver, pgAdmin and the server log put around an EXPLAIN result.

The output is a list of *segments*: runs of logical lines that each hold the bare EXPLAIN
output (JSON or text) of one or more plans, every line tagged with its 1-based line number in
the original input so that later errors can point at it.

What is undone here:

* psql aligned output: the ``QUERY PLAN`` header, rule lines, ``(N rows)`` footers, borders
  0-3 in ascii, old-ascii and unicode line styles, the newline marks (``+``, ``↵``) and the
  wrap marks of ``\\pset format wrapped`` (``.``, ``…``), and expanded (``\\x``) records;
* DBeaver's trailing ``|`` column separator; pgAdmin's quoted cells with doubled quotes;
  Markdown code fences;
* auto_explain entries in a stderr, csvlog or jsonlog server log
  (``LOG:  duration: .. ms  plan:``).

Lines broken by a terminal or a mail client are *not* rejoined here: only the text parser knows
which lines start a node or a property, so it does that itself.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass

__all__ = ["Line", "Segment", "log_segments", "split_lines", "unframe"]


@dataclass(slots=True)
class Line:
    no: int  # 1-based line number in the original input
    text: str


Segment = list[Line]

_VRULES = "|│║┃"
_RULE_CHARS = frozenset("-+=─━═┌┐└┘├┤┬┴┼╔╗╚╝╠╣╦╩╬╞╡╪╟╢╫╤╧╥╨╒╕╘╛╓╖╙╜|│║┃ \t")
_DASHES = frozenset("-─━═")
_FOOTER = re.compile(r"\(\d+ rows?\)")
_FENCE = re.compile(r"(```|~~~)[\w+-]*")
# What a header, footer, rule or record line can start with (after stripping blanks).
_RULE_STARTS = frozenset("*-+=─━═┌└├╔╚╠╞╟|│║┃")
_FRAME_STARTS = _RULE_STARTS | frozenset("\"'(Q")
# psql \x record lines: "-[ RECORD 1 ]---", "─[ RECORD 1 ]───", "+-[ RECORD 1 ]--+"
_RECORD = re.compile(r"[-─═+┌╔├╟╠┼]*\[ RECORD \d+ \][-─═+┐╗┤╢╣┼]*|\* Record \d+")
_EXPANDED_ROW = re.compile(r"[|│║]? ?QUERY PLAN (?:[|│║:] )?\S")  # "QUERY PLAN | Seq Scan on t ..."
_NL_MARKS = ("+", "↵")


def split_lines(text: str) -> list[str]:
    """Lines without their terminators; CR LF and lone CR count as line ends too."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.split("\n")


def _is_rule(s: str) -> bool:
    return len(s) >= 3 and _RULE_CHARS.issuperset(s) and sum(c in _DASHES for c in s) >= 3


def _is_header(s: str) -> bool:
    return s.strip(_VRULES + " \t\"'").rstrip(_VRULES + " \t") == "QUERY PLAN"


def unframe(text: str) -> list[Segment]:
    """Split psql/DBeaver/pgAdmin output into segments of bare EXPLAIN lines."""
    blocks: list[list[Line]] = [[]]
    headed = [False]  # per block: did a QUERY PLAN header open it (so psql framed it)?
    for no, raw in enumerate(split_lines(text), 1):
        s = raw.strip()
        first = s[:1]
        # Cheap first-character tests first: a framed multi-megabyte JSON plan is 150k lines.
        if first in _FRAME_STARTS:
            if "QUERY PLAN" in s:
                if _is_header(s):
                    blocks.append([])  # a new result starts; the header carries no plan text
                    headed.append(True)
                    continue
            elif first == "(":
                if _FOOTER.fullmatch(s):
                    blocks.append([])
                    headed.append(False)
                    continue
            elif first in _RULE_STARTS and (_RECORD.fullmatch(s) or _is_rule(s)):
                continue
        elif first in "`~" and _FENCE.fullmatch(s):
            continue  # a Markdown code fence around the paste
        blocks[-1].append(Line(no, raw))
    out: list[Segment] = []
    for body, framed in zip(blocks, headed, strict=True):
        seg = _unframe_block(body, framed)
        if any(line.text.strip() for line in seg):
            out.append(seg)
    return out


def _unframe_block(lines: list[Line], framed: bool) -> Segment:
    if not any(line.text.strip() for line in lines):
        return []
    row = next((line.text for line in lines if _EXPANDED_ROW.match(line.text)), None)
    if row is not None:
        lines = _strip_expanded(lines, row)
    nonblank = [line for line in lines if line.text.strip()]
    lines = _strip_borders(lines, nonblank)
    lines = _strip_marks(lines, framed)
    return _unquote_pgadmin(lines)


def _strip_expanded(lines: list[Line], row: str) -> list[Line]:
    """psql \\x prints every row as "QUERY PLAN | <cell>" and a cell's further lines as
    "           | <cell>" (old-ascii: ':' for a new line, ';' for a wrapped piece); with
    border 0 there is no separator at all. Keep the spacer column for `_strip_marks`."""
    after = row.index("QUERY PLAN") + len("QUERY PLAN")
    sep: int | None = after + 1 if row[after + 1 : after + 2] in ("|", "│", "║", ":") else None
    out: list[Line] = []
    for line in lines:
        t = line.text
        if not t.strip():
            out.append(Line(line.no, ""))
        elif sep is None:
            out.append(Line(line.no, " " + t[after + 1 :]))
        elif t[sep : sep + 1] == ";" and out:
            # old-ascii wrap: the piece continues the previous line exactly
            prev = out[-1].text.rstrip()
            prev = prev[:-1] if prev[-1:] in _VRULES else out[-1].text
            out[-1] = Line(out[-1].no, prev + t[sep + 2 :])
        else:
            out.append(Line(line.no, t[sep + 1 :]))
    return out


def _strip_borders(lines: list[Line], nonblank: list[Line]) -> list[Line]:
    """Remove vertical rules (psql border 2, DBeaver's right-hand '|')."""
    n = len(nonblank)
    left = sum(1 for line in nonblank if line.text.lstrip(" ")[:1] in _VRULES) * 5 >= n * 3
    right = sum(1 for line in nonblank if line.text.rstrip()[-1:] in _VRULES) * 5 >= n * 3
    if not (left or right):
        return lines
    merged: list[Line] = []
    for line in lines:
        # With a left border, a line that lacks it was broken off the previous one by a terminal.
        if (
            left
            and merged
            and line.text.strip()
            and line.text.lstrip(" ")[:1] not in _VRULES
            and merged[-1].text.rstrip()[-1:] not in _VRULES
        ):
            merged[-1] = Line(merged[-1].no, merged[-1].text + line.text)
        else:
            merged.append(Line(line.no, line.text))
    out = []
    for line in merged:
        t = line.text
        if left:
            stripped = t.lstrip(" ")
            if stripped[:1] in _VRULES:
                t = stripped[1:]
        if right:
            r = t.rstrip()
            if r[-1:] in _VRULES:
                t = r[:-1]
        out.append(Line(line.no, t))
    return out


def _strip_marks(lines: list[Line], framed: bool) -> list[Line]:
    """Drop psql's cell spacer and its newline/wrap marks, joining wrapped pieces exactly."""
    nonblank = [line.text for line in lines if line.text.strip()]
    # Border >= 1 puts a spacer column before the cell: ' ', or '.'/'…' on a wrapped piece.
    spacer = (
        bool(nonblank)
        and all(t[:1] in (" ", ".", "…") for t in nonblank)
        and any(t[:1] == " " for t in nonblank)
    )
    width = max((len(t) for t in nonblank), default=0)
    out: list[Line] = []
    joining = False  # the previous piece ended in a wrap mark
    for i, line in enumerate(lines):
        t = line.text
        lead = ""
        if spacer and t:
            lead, t = t[0], t[1:]
        r = t.rstrip()
        wraps = False
        if r.endswith(_NL_MARKS):
            r = r[:-1].rstrip()
        elif t.endswith("…") or (
            t.endswith(".") and _dot_wraps(lines, i, spacer, framed and len(line.text) == width)
        ):
            r, wraps = t[:-1], True
        elif not framed:
            r = t  # a raw paste: trailing blanks may be content that a terminal broke off
        elif len(line.text) == width and t.endswith(" "):
            # A full-width line may be a piece wrapped by old-ascii, whose wrap mark is a
            # blank: drop just that one column and keep the content's own trailing blanks.
            r = t[:-1]
        if joining and out and (lead in (".", "…") or not spacer):
            out[-1].text += r
        else:
            line.text = r  # the Line objects are this module's own: reuse, don't copy
            out.append(line)
        joining = wraps
    return out


def _dot_wraps(lines: list[Line], i: int, spacer: bool, full_width: bool) -> bool:
    """Is a trailing '.' psql's ascii wrap mark? It is when the next piece starts with the
    matching left mark (border >= 1), or (border 0, under a QUERY PLAN header) when the line
    fills the column exactly: in a raw paste that is just a sentence or a number cut short."""
    if i + 1 >= len(lines):
        return False
    nxt = lines[i + 1].text
    if spacer:
        return nxt[:1] == "."
    return full_width and bool(nxt.strip())


def _unquote_pgadmin(lines: list[Line]) -> list[Line]:
    """pgAdmin copies a cell as a CSV field: "...", with inner quotes doubled."""
    nonblank = [line for line in lines if line.text.strip()]
    if not nonblank:
        return lines
    first, last = nonblank[0].text.strip(), nonblank[-1].text.strip()
    # One multi-line JSON cell: only the first and the last line carry the outer quotes.
    if (
        first[:2] in ('"[', '"{')
        and last.endswith('"')
        and '""' in "".join(x.text for x in nonblank)
    ):
        out = []
        for line in lines:
            t = line.text
            if line is nonblank[0]:
                t = t.replace('"', "", 1)
            if line is nonblank[-1]:
                t = t[: t.rfind('"')]
            out.append(Line(line.no, t.replace('""', '"')))
        return out
    # A text plan: one quoted cell per line (pgAdmin's default quotes every string).
    if first[:1] != '"':
        return lines
    quoted = [
        line
        for line in nonblank
        if len(s := line.text.strip()) >= 2
        and s[0] == '"'
        and s[-1] == '"'
        and '"' not in s[1:-1].replace('""', "")
    ]
    if len(quoted) * 2 < len(nonblank):
        return lines
    qset = {id(x) for x in quoted}
    return [
        Line(line.no, line.text.strip()[1:-1].replace('""', '"')) if id(line) in qset else line
        for line in lines
    ]


# -- auto_explain in a server log -----------------------------------------------------------------

_LOG_PLAN = re.compile(r"duration: \d+(?:\.\d+)? ms\s+plan:[ \t]*(.*)$")
_JSONLOG_HINT = re.compile(r'^\s*\{.*"message"\s*:\s*"duration: ')
_CSVLOG_HINT = re.compile(r'^\d{4}-\d\d-\d\d [0-9:.]+(?: [A-Za-z0-9+-]+)?,.*,"duration: ')


def log_segments(text: str) -> list[Segment] | None:
    """Plans logged by auto_explain, one segment per log entry; None when `text` is no such log.

    stderr-format logs continue a multi-line message on lines that start with a tab; a copy
    that turned tabs into spaces still indents them, so any indented line continues the entry.
    jsonlog lines carry the whole message in their "message" field, csvlog in a quoted field.
    """
    if "plan:" not in text:
        return None
    lines = split_lines(text)
    if any(_CSVLOG_HINT.match(line) for line in lines):
        return _csvlog_segments(text)
    segments: list[Segment] = []
    found = False
    i = 0
    while i < len(lines):
        raw = lines[i]
        if _JSONLOG_HINT.match(raw):
            seg = _jsonlog_segment(raw, i + 1)
            if seg is not None:
                found = True
                segments.append(seg)
            i += 1
            continue
        m = _LOG_PLAN.search(raw)
        if m is None:
            i += 1
            continue
        found = True
        body: list[Line] = []
        if m.group(1).strip():
            body.append(Line(i + 1, m.group(1)))
        j = i + 1
        while j < len(lines) and lines[j][:1] in ("\t", " ") and not _LOG_PLAN.search(lines[j]):
            body.append(Line(j + 1, lines[j]))
            j += 1
        segments.append(_dedent(body))
        i = j
    return segments if found else None


def _csvlog_segments(text: str) -> list[Segment]:
    """csvlog: the message is a quoted CSV field that spans lines, with doubled quotes."""
    segments: list[Segment] = []
    records = csv.reader(io.StringIO(text, newline=""))
    start = 1
    try:
        for record in records:
            for value in record:
                m = _LOG_PLAN.search(value.split("\n", 1)[0])
                if m is not None:
                    # Fields before the message hold no line break: it starts on the record's
                    # first line, and its plan on the lines after that.
                    body = value.split("\n")[1:]
                    segments.append(_dedent([Line(start + 1 + k, t) for k, t in enumerate(body)]))
                    break
            start = records.line_num + 1
    except csv.Error:
        pass  # a cut-off record at the end: keep the plans read so far
    return segments


def _jsonlog_segment(raw: str, no: int) -> Segment | None:
    try:
        entry = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    msg = entry.get("message") if isinstance(entry, dict) else None
    if not isinstance(msg, str):
        return None
    m = re.search(r"plan:[ \t]*\n?", msg)
    if m is None:
        return None
    # The whole entry is one input line, so every piece of it points there.
    return _dedent([Line(no, t) for t in msg[m.end() :].split("\n")])


def _dedent(body: list[Line]) -> Segment:
    """Remove the log's continuation indent: one tab, or the common run of spaces."""
    if body and all(line.text.startswith("\t") or not line.text.strip() for line in body):
        return [Line(line.no, line.text[1:]) for line in body]
    indents = [len(t) - len(t.lstrip(" ")) for line in body if (t := line.text).strip()]
    cut = min(indents, default=0)
    return [Line(line.no, line.text[cut:]) for line in body]
