"""Text EXPLAIN -> the document PostgreSQL would have printed for the same plan as FORMAT JSON.

Every node becomes a dict with the exact JSON key names and value types (ints stay ints,
"0.00" becomes a float, lists are lists), so `build_plan` gives the same tree for a plan pasted
as text as for the same plan in JSON. Where JSON always carries a key that text prints only
when it is non-zero or non-default ("Join Type": "Inner", "Single Copy": false, the buffer
counters next to a non-zero one, ...), the default is filled in, because its absence in text
*means* that value.

Two passes: `_logical_lines` rejoins lines that a terminal or a mail client broke (a line that
starts neither a node nor a property continues the previous one), then `_Builder` walks the
indentation. A node's properties sit deeper than its header, children hang off "->" arrows,
"SubPlan 1" / "InitPlan 1" / "CTE x" labels name the child below them, "Worker N:" opens a
per-worker block, and lines at the root's own indentation are top-level (times, JIT, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from advisor.plan.json_input import Doc, FoundDoc
from advisor.plan.unframe import Line, Segment

__all__ = ["parse_text_segment"]

Node = dict[str, Any]

# -- node header ------------------------------------------------------------------------------

# ASCII digits only, and not absurdly many: int() rejects other digits and > 4300 of them.
_INT = r"[0-9]{1,40}"
_N = rf"{_INT}(?:\.{_INT})?"
_TAIL = re.compile(
    rf"\s*(?:\(cost=(?P<sc>{_N})\.\.(?P<tc>{_N})\s*rows=(?P<pr>{_N})\s*width=(?P<pw>{_INT})\))?"
    rf"\s*(?:\(actual\s*(?:time=(?P<ast>{_N})\.\.(?P<att>{_N})\s*)?rows=(?P<ar>{_N})\s*loops=(?P<al>{_N})\)"
    r"|(?P<never>\(never executed\)))?\s*$"
)
_ARROW = re.compile(r"(\s*)->\s*")
_IDENT = r'(?:"(?:[^"]|"")*"|[^\s."]+)'
_TARGET = re.compile(rf"({_IDENT})(?:\.({_IDENT}))?(?:\s+({_IDENT}))?")
_JOIN = re.compile(
    r"(Nested Loop|Merge|Hash)(?: (Left|Right|Full|Semi|Anti|Right Semi|Right Anti))? Join"
    r"|Nested Loop"
)
_AGG = re.compile(
    r"(?:(Partial|Finalize) )?(Aggregate|GroupAggregate|HashAggregate|MixedAggregate)"
)
_SETOP = re.compile(r"(SetOp|HashSetOp)(?: (Intersect All|Intersect|Except All|Except))?")
_MODIFY = re.compile(r"(Insert|Update|Delete|Merge) on (.+)")
_FOREIGN_MODIFY = re.compile(r"Foreign (Insert|Update|Delete) on (.+)")
_CUSTOM = re.compile(r"Custom Scan \((.+?)\)(?: on (.+))?")
_INDEX = re.compile(rf"(Index Scan|Index Only Scan)( Backward)? using ({_IDENT})(?: on (.+))?")
_BITMAP_INDEX = re.compile(rf"Bitmap Index Scan on ({_IDENT})")
_SCAN = re.compile(
    r"(Seq Scan|Sample Scan|Bitmap Heap Scan|Tid Scan|Tid Range Scan|Subquery Scan|Function Scan"
    r"|Table Function Scan|Values Scan|CTE Scan|Named Tuplestore Scan|WorkTable Scan|Foreign Scan)"
    r" on (.+)"
)
_BARE = frozenset(
    {
        "Result",
        "ProjectSet",
        "Append",
        "Merge Append",
        "Recursive Union",
        "BitmapAnd",
        "BitmapOr",
        "Gather",
        "Gather Merge",
        "Materialize",
        "Memoize",
        "Sort",
        "Incremental Sort",
        "Group",
        "WindowAgg",
        "Unique",
        "LockRows",
        "Limit",
        "Hash",
        "Foreign Scan",
        "Custom Scan",
        "SetOp",
    }
)
# JSON key that receives the object a scan reads; None: only "Alias" (no object name in JSON).
_TARGET_KEY: dict[str, str | None] = {
    "Function Scan": "Function Name",
    "Table Function Scan": "Table Function Name",
    "CTE Scan": "CTE Name",
    "WorkTable Scan": "CTE Name",
    "Named Tuplestore Scan": "Tuplestore Name",
    "Subquery Scan": None,
    "Values Scan": None,
}
_MEMBER_PARENTS = frozenset({"Append", "Merge Append", "BitmapAnd", "BitmapOr"})
_AGG_STRATEGY = {
    "Aggregate": "Plain",
    "GroupAggregate": "Sorted",
    "HashAggregate": "Hashed",
    "MixedAggregate": "Mixed",
}


def _unquote(ident: str) -> str:
    return (
        ident[1:-1].replace('""', '"')
        if len(ident) >= 2 and ident[0] == '"' == ident[-1]
        else ident
    )


def _target(node_type: str, text: str, out: Node) -> None:
    """`on [schema.]object [alias]`: JSON has the object under a per-type key, "Alias" always."""
    key = _TARGET_KEY.get(node_type, "Relation Name")
    m = _TARGET.fullmatch(text.strip())
    if m is None:
        if key:
            out[key] = text.strip()
        out["Alias"] = text.strip()
        return
    first, second, alias = m.group(1), m.group(2), m.group(3)
    schema, name = (_unquote(first), _unquote(second)) if second else (None, _unquote(first))
    if key is None:  # Subquery/Values Scan print only the alias
        out["Alias"] = _unquote(alias) if alias else name
        return
    out[key] = name
    if schema is not None:
        out["Schema"] = schema
    out["Alias"] = _unquote(alias) if alias else name


def _node_fields(name: str) -> tuple[Node, bool]:
    """JSON fields named by a text node header ("Parallel Hash Left Join"), and whether the
    name is one PostgreSQL prints (an unknown one is still read as "<type> on <target>")."""
    out: Node = {}
    parallel = name.startswith("Parallel ")
    if parallel:
        name = name[9:]
    is_async = name.startswith("Async ")
    if is_async:
        name = name[6:]
    known = True
    if m := _JOIN.fullmatch(name):
        kind = m.group(1) or "Nested Loop"
        out["Node Type"] = "Nested Loop" if kind == "Nested Loop" else f"{kind} Join"
        out["Join Type"] = m.group(2) or "Inner"
    elif m := _AGG.fullmatch(name):
        out["Node Type"] = "Aggregate"
        out["Strategy"] = _AGG_STRATEGY[m.group(2)]
        out["Partial Mode"] = m.group(1) or "Simple"
    elif m := _SETOP.fullmatch(name):
        out["Node Type"] = "SetOp"
        out["Strategy"] = "Hashed" if m.group(1) == "HashSetOp" else "Sorted"
        if m.group(2):
            out["Command"] = m.group(2)
    elif m := _MODIFY.fullmatch(name):
        out["Node Type"] = "ModifyTable"
        out["Operation"] = m.group(1)
        _target("ModifyTable", m.group(2), out)
    elif m := _FOREIGN_MODIFY.fullmatch(name):
        out["Node Type"] = "Foreign Scan"
        out["Operation"] = m.group(1)
        _target("Foreign Scan", m.group(2), out)
    elif m := _CUSTOM.fullmatch(name):
        out["Node Type"] = "Custom Scan"
        out["Custom Plan Provider"] = m.group(1)
        if m.group(2):
            _target("Custom Scan", m.group(2), out)
    elif m := _INDEX.fullmatch(name):
        out["Node Type"] = m.group(1)
        out["Scan Direction"] = "Backward" if m.group(2) else "Forward"
        out["Index Name"] = _unquote(m.group(3))
        if m.group(4):
            _target(m.group(1), m.group(4), out)
    elif m := _BITMAP_INDEX.fullmatch(name):
        out["Node Type"] = "Bitmap Index Scan"
        out["Index Name"] = _unquote(m.group(1))
    elif m := _SCAN.fullmatch(name):
        out["Node Type"] = m.group(1)
        _target(m.group(1), m.group(2), out)
    elif name in _BARE:
        out["Node Type"] = name
    else:
        known = False
        head, sep, rest = name.partition(" on ")
        out["Node Type"] = head.strip() or name
        if sep and rest.strip():
            _target(head, rest, out)
    if out["Node Type"] == "Foreign Scan":
        out.setdefault("Operation", "Select")  # JSON names the operation of every Foreign Scan
    out["Parallel Aware"] = parallel
    out["Async Capable"] = is_async
    return out, known


def _num(s: str) -> int | float:
    """A number as JSON would give it: "15" -> 15, "0.00" -> 0.0."""
    return float(s) if "." in s or "e" in s or "E" in s else int(s)


@dataclass(slots=True)
class _Header:
    fields: Node
    has_parens: bool
    known: bool


def _parse_header(text: str) -> _Header | None:
    """A node header line (arrow already removed); None if it is no node."""
    m = _TAIL.search(text)
    if m is None:  # pragma: no cover - the pattern can always match at the end
        return None
    name = text[: m.start()].strip()
    if not name or not name[0].isupper():
        return None
    has_parens = m.end() > m.start() and m.group(0).strip() != ""
    fields, known = _node_fields(name)
    if not known and (not has_parens or ": " in name):
        return None  # an unknown name counts only with a cost/actual part, and no "Label:"
    if m.group("sc") is not None:
        fields["Startup Cost"] = _num(m.group("sc"))
        fields["Total Cost"] = _num(m.group("tc"))
        fields["Plan Rows"] = _num(m.group("pr"))
        fields["Plan Width"] = int(m.group("pw"))
    if m.group("ar") is not None:
        if m.group("ast") is not None:
            fields["Actual Startup Time"] = _num(m.group("ast"))
            fields["Actual Total Time"] = _num(m.group("att"))
        fields["Actual Rows"] = _num(m.group("ar"))
        fields["Actual Loops"] = _num(m.group("al"))
    elif m.group("never") is not None:
        fields["Actual Rows"] = 0
        fields["Actual Loops"] = 0
    return _Header(fields, has_parens, known)


# -- property values -----------------------------------------------------------------------------

_LABEL = re.compile(r"(\s*)([A-Z][A-Za-z0-9/-]*(?: [A-Za-z0-9/()-]+){0,5}):(?: +(.*))?$")
_SUBPLAN = re.compile(
    r"(\s*)(SubPlan \d+|InitPlan \d+(?: \(returns [^)]*\))?|CTE (?!Scan on ).+)\s*$"
)
_WORKER = re.compile(r"(\s*)Worker ([0-9]{1,9}):\s*(.*)$")
_TRIGGER = re.compile(
    r"(\s*)Trigger(?: (?!for constraint )(?P<name>.*?))?"
    r"(?: for constraint (?P<con>.*?))?(?: on (?P<rel>.*?))?:"
    rf" (?:time=(?P<time>{_N}) )?calls=(?P<calls>{_N})\s*$"
)
_WORKER_ACTUAL = re.compile(
    rf"actual\s*(?:time=({_N})\.\.({_N})\s*)?rows=({_N})\s*loops=({_N})\s*$"
)
_NUMBER = re.compile(rf"-?{_N}")
_KB = re.compile(r"([0-9]{1,40})\s*kB")
_CHUNK_SPLIT = re.compile(r"\s{2,}(?=[A-Z][A-Za-z -]*:)")
_KV = re.compile(r"(?<![\w.])([a-z]+(?: [a-z]+)?)=(\S+)")
_SETTING_SPLIT = re.compile(r", (?=[A-Za-z_][\w.]* = (?:'|NULL))")

_LIST_LABELS = frozenset(
    {"Output", "Sort Key", "Presorted Key", "Params Evaluated", "Conflict Arbiter Indexes"}
)
_BOOL_LABELS = frozenset(
    {"Single Copy", "Inner Unique", "Disabled", "Async Capable", "Parallel Aware"}
)
# Expressions and names stay strings even when they look like numbers ("One-Time Filter: false").
_TEXT_LABELS = frozenset(
    {
        "Filter",
        "Join Filter",
        "Index Cond",
        "Recheck Cond",
        "Hash Cond",
        "Merge Cond",
        "TID Cond",
        "One-Time Filter",
        "Order By",
        "Run Condition",
        "Cache Key",
        "Cache Mode",
        "Function Call",
        "Table Function Call",
        "Remote SQL",
        "Relations",
        "Window",
        "Conflict Resolution",
        "Conflict Filter",
        "Repeatable Seed",
        "Sampling Method",
        "Custom Plan Provider",
        "Index Filter",
    }
)
_GROUPING_LABELS = frozenset({"Group Key", "Hash Key"})
_COMPOUND = frozenset(
    {
        "Sort Method",
        "Buckets",
        "Batches",
        "Planned Partitions",
        "Hits",
        "Storage",
        "Full-sort Groups",
        "Pre-sorted Groups",
    }
)
_TOP_LABELS = frozenset(
    {
        "Planning Time",
        "Execution Time",
        "Total runtime",
        "Settings",
        "Planning",
        "JIT",
        "Query Identifier",
        "Serialization",
        "Query Text",
    }
)
_KNOWN_LABELS = (
    _LIST_LABELS
    | _BOOL_LABELS
    | _TEXT_LABELS
    | _GROUPING_LABELS
    | _COMPOUND
    | _TOP_LABELS
    | frozenset(
        {
            "Rows Removed by Filter",
            "Rows Removed by Join Filter",
            "Rows Removed by Index Recheck",
            "Workers Planned",
            "Workers Launched",
            "Heap Fetches",
            "Heap Blocks",
            "Buffers",
            "I/O Timings",
            "WAL",
            "Subplans Removed",
            "Index Searches",
            "Sampling",
            "Tuples",
            "Tuples Inserted",
            "Conflicting Tuples",
            "Functions",
            "Options",
            "Timing",
            "Memory",
            "Maximum Storage",
            "Estimates",
        }
    )
)

_BUFFER_KEYS = tuple(
    f"{scope} {kind} Blocks"
    for scope in ("Shared", "Local")
    for kind in ("Hit", "Read", "Dirtied", "Written")
)
_BUFFER_KEYS += ("Temp Read Blocks", "Temp Written Blocks")
_IO_SCOPES = {
    "shared": "Shared I/O",
    "local": "Local I/O",
    "temp": "Temp I/O",
    "shared/local": "I/O",
    "": "I/O",
}


def _split_list(value: str) -> list[str]:
    """Split "a, f(b, c), 'x, y'" at the top-level ", " only."""
    items: list[str] = []
    depth, quote, start, i = 0, "", 0, 0
    n = len(value)
    while i < n:
        c = value[i]
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth = max(depth - 1, 0)
        elif c == "," and depth == 0 and value.startswith(", ", i):
            items.append(value[start:i])
            start = i = i + 2
            continue
        i += 1
    if value:
        items.append(value[start:])
    return items


def _is_int(value: str) -> bool:
    # str.isdigit() alone accepts "²" and "❶"; int() refuses those and > 4300 digits
    return len(value) <= 40 and value.isascii() and value.isdigit()


def _scalar(value: str) -> Any:
    if _NUMBER.fullmatch(value):
        return _num(value)
    return value


def _kb(value: str) -> int | None:
    m = _KB.fullmatch(value.strip())
    return int(m.group(1)) if m else None


def _chunks(line: str) -> list[tuple[str, str]]:
    """ "Buckets: 1024  Batches: 1  Memory Usage: 9kB" -> [("Buckets", "1024"), ...]."""
    out = []
    for piece in _CHUNK_SPLIT.split(line.strip()):
        label, _, value = piece.partition(":")
        out.append((label.strip(), value.strip()))
    return out


def _originally(value: str) -> tuple[int | None, int | None]:
    """ "2048 (originally 1024)" -> (2048, 1024); "1024" -> (1024, 1024)."""
    m = re.fullmatch(r"([0-9]{1,40})(?:\s*\(originally ([0-9]{1,40})\))?", value)
    if m is None:
        return None, None
    now = int(m.group(1))
    return now, int(m.group(2)) if m.group(2) else now


def _compound(first: str, line: str, d: Node) -> None:
    """Lines that pack several JSON keys, told apart by their first label."""
    chunks = _chunks(line)
    if first == "Sort Method":
        d["Sort Method"] = chunks[0][1]
        for label, value in chunks[1:]:
            if label in ("Memory", "Disk") and (kb := _kb(value)) is not None:
                d["Sort Space Used"] = kb
                d["Sort Space Type"] = label
    elif first == "Buckets":  # Hash
        for label, value in chunks:
            now, orig = _originally(value)
            if label == "Buckets" and now is not None:
                d["Hash Buckets"], d["Original Hash Buckets"] = now, orig
            elif label == "Batches" and now is not None:
                d["Hash Batches"], d["Original Hash Batches"] = now, orig
            elif label == "Memory Usage" and (kb := _kb(value)) is not None:
                d["Peak Memory Usage"] = kb
    elif first in ("Batches", "Planned Partitions"):  # HashAggregate (and its workers)
        for label, value in chunks:
            if label == "Planned Partitions" and _is_int(value):
                d["Planned Partitions"] = int(value)
            elif label == "Batches" and _is_int(value):
                d["HashAgg Batches"] = int(value)
                d.setdefault("Disk Usage", 0)  # text omits it unless the aggregate spilled
            elif label == "Memory Usage" and (kb := _kb(value)) is not None:
                d["Peak Memory Usage"] = kb
            elif label == "Disk Usage" and (kb := _kb(value)) is not None:
                d["Disk Usage"] = kb
    elif first == "Hits":  # Memoize
        names = {
            "Hits": "Cache Hits",
            "Misses": "Cache Misses",
            "Evictions": "Cache Evictions",
            "Overflows": "Cache Overflows",
        }
        for label, value in chunks:
            if label in names and _is_int(value):
                d[names[label]] = int(value)
            elif label == "Memory Usage" and (kb := _kb(value)) is not None:
                d["Peak Memory Usage"] = kb
    elif first == "Storage":
        for label, value in chunks:
            if label == "Storage":
                d["Storage"] = value
            elif label == "Maximum Storage" and (kb := _kb(value)) is not None:
                d["Maximum Storage"] = kb
    elif first in ("Full-sort Groups", "Pre-sorted Groups"):
        group: Node = {}
        for label, value in chunks:
            if label == first and _is_int(value):
                group["Group Count"] = int(value)
            elif label in ("Sort Method", "Sort Methods"):
                group["Sort Methods Used"] = _split_list(value)
            else:
                m = re.fullmatch(r"(Average|Peak) (Memory|Disk)", label)
                if m and (kb := _kb(value)) is not None:
                    space = group.setdefault(f"Sort Space {m.group(2)}", {})
                    space[f"{m.group(1)} Sort Space Used"] = kb
        d[first] = group


def _buffers(value: str, d: Node) -> None:
    for key in _BUFFER_KEYS:
        d.setdefault(key, 0)  # text lists only the non-zero counters
    for group in value.split(","):
        words = group.split()
        if not words:
            continue
        scope = words[0].capitalize()
        for word in words[1:]:
            kind, _, n = word.partition("=")
            if _is_int(n):
                d[f"{scope} {kind.capitalize()} Blocks"] = int(n)


def _io_timings(value: str, d: Node) -> None:
    for group in value.split(","):
        words = group.split()
        scope = ""
        if words and "=" not in words[0]:
            scope = words.pop(0)
        prefix = _IO_SCOPES.get(scope, f"{scope.capitalize()} I/O")
        for word in words:
            kind, _, n = word.partition("=")
            if _NUMBER.fullmatch(n):
                d[f"{prefix} {kind.capitalize()} Time"] = float(n)


def _key_values(value: str, names: dict[str, str], d: Node, defaults: tuple[str, ...] = ()) -> None:
    """ "records=30 fpi=0 bytes=1960" -> the JSON keys in `names`."""
    for key in defaults:
        d.setdefault(key, 0)
    for k, v in _KV.findall(value):
        name = names.get(k.strip())
        if name is None:
            continue
        if (kb := _kb(v)) is not None:
            d[name] = kb
        elif _NUMBER.fullmatch(v):
            d[name] = _num(v)
        else:
            d[name] = v


_WAL = {
    "records": "WAL Records",
    "fpi": "WAL FPI",
    "bytes": "WAL Bytes",
    "buffers full": "WAL Buffers Full",
}
_HEAP_BLOCKS = {"exact": "Exact Heap Blocks", "lossy": "Lossy Heap Blocks"}
_TUPLES = {
    "inserted": "Tuples Inserted",
    "updated": "Tuples Updated",
    "deleted": "Tuples Deleted",
    "skipped": "Tuples Skipped",
}
_PLANNING_MEMORY = {"used": "Memory Used", "allocated": "Memory Allocated"}


def _settings(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in _SETTING_SPLIT.split(value):
        name, sep, setting = part.partition(" = ")
        if not sep:
            continue
        if len(setting) >= 2 and setting[0] == "'" == setting[-1]:
            setting = setting[1:-1]
        out[name.strip()] = setting
    return out


def _jit_line(label: str, value: str, jit: Node) -> None:
    if label == "Functions" and _is_int(value):
        jit["Functions"] = int(value)
    elif label == "Options":
        opts: Node = {}
        for part in value.split(","):
            name, _, flag = part.strip().rpartition(" ")
            if name:
                opts[name] = flag == "true"
        jit["Options"] = opts
    elif label == "Timing":
        timing: Node = {}
        for m in re.finditer(rf"(\w+) ({_N}) ms(?: \((\w+) ({_N}) ms\))?", value):
            if m.group(3):  # PG 17+: "Generation 1.2 ms (Deform 0.3 ms)"
                timing[m.group(1)] = {m.group(3): float(m.group(4)), "Total": float(m.group(2))}
            else:
                timing[m.group(1)] = float(m.group(2))
        jit["Timing"] = timing


def _property(label: str, value: str, d: Node) -> None:
    """One "Label: value" line of a node or a worker, stored under its JSON key(s)."""
    if label in _COMPOUND:
        _compound(label, f"{label}: {value}", d)
    elif label in _LIST_LABELS:
        d[label] = _split_list(value)
    elif label in _TEXT_LABELS:
        d[label] = value
    elif label in _BOOL_LABELS:
        d[label] = value == "true"
    elif label == "Buffers":
        _buffers(value, d)
    elif label == "I/O Timings":
        _io_timings(value, d)
    elif label == "WAL":
        _key_values(value, _WAL, d, ("WAL Records", "WAL FPI", "WAL Bytes"))
    elif label == "Heap Blocks":
        _key_values(value, _HEAP_BLOCKS, d, tuple(_HEAP_BLOCKS.values()))
    elif label == "Tuples":
        _key_values(value, _TUPLES, d, tuple(_TUPLES.values()))
    elif label == "Memory":
        _key_values(value, _PLANNING_MEMORY, d)
    elif label == "Sampling":
        m = re.fullmatch(r"(\S+) \((.*?)\)(?: REPEATABLE \((.*)\))?", value)
        if m:
            d["Sampling Method"] = m.group(1)
            d["Sampling Parameters"] = _split_list(m.group(2))
            if m.group(3) is not None:
                d["Repeatable Seed"] = m.group(3)
        else:
            d["Sampling"] = value
    else:
        d[label] = _scalar(value)


# -- pass 1: logical lines -------------------------------------------------------------------


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip())


def _logical_lines(seg: Segment) -> tuple[list[Line], bool]:
    """Rejoin broken lines; also say whether node headers carry "(cost=..."/"(actual ..." parts.

    A line continues the previous one unless it is blank, an arrow node, a root node header,
    a subplan label, a "Worker N:" or "Trigger" line, or a "Label:" line that is either a known
    EXPLAIN label or indented like a property of the current node.
    """
    with_parens = any(
        "(cost=" in ln.text or "(actual" in ln.text or "(never executed)" in ln.text for ln in seg
    )
    out: list[Line] = []
    node_col: int | None = None  # indentation of the latest node header
    root_col: int | None = None
    for line in seg:
        # Trailing blanks are kept until the joining is done: a terminal may break a line
        # right after one ("temp " + "read=440"), and unframing kept it for that reason.
        text = line.text
        if not text.strip():
            out.append(Line(line.no, ""))
            continue
        if "\t" in text:  # an editor turned indentation into tabs: EXPLAIN itself never does
            body_at = len(text) - len(text.lstrip())
            text = text[:body_at].expandtabs(8) + text[body_at:]
        col = _indent(text)
        body = text.strip()
        structural = True
        if a := _ARROW.match(text):
            node_col = a.end()
        elif (root_col is None or col <= root_col) and (
            _is_root_header(body, with_parens) or _broken_root(body)
        ):
            node_col = root_col = col
        elif _SUBPLAN.match(text) or _WORKER.match(text) or _TRIGGER.match(text):
            pass
        elif m := _LABEL.match(text):
            label = m.group(2)
            structural = label in _KNOWN_LABELS or (node_col is not None and col > node_col)
        else:
            structural = False
        if structural or node_col is None or not out or not out[-1].text:
            out.append(Line(line.no, text))
        else:
            out[-1].text += text
    for joined in out:
        joined.text = joined.text.rstrip()
    return out, with_parens


def _broken_root(body: str) -> bool:
    """A root header whose cost/actual part was cut by wrapping: "Sort  (cost=1.00..2.0"."""
    cut = min(
        (i for i in (body.find("  ("), body.find("(cost="), body.find("(actual")) if i > 0),
        default=-1,
    )
    return cut > 0 and _node_fields(body[:cut].strip())[1]


def _is_root_header(body: str, with_parens: bool) -> bool:
    header = _parse_header(body)
    if header is None:
        return False
    return header.has_parens if with_parens else header.known


# -- pass 2: the tree ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Frame:
    col: int
    node: Node
    gkeys: list[tuple[str, str, int]] = field(default_factory=list)  # Group/Hash/Sort Key lines


@dataclass(slots=True)
class _Block:
    col: int
    kind: str  # "worker" | "jit" | "dict" (Planning, Serialization)
    target: Node


class _Builder:
    def __init__(self, with_parens: bool) -> None:
        self.with_parens = with_parens
        self.found: list[FoundDoc] = []
        self.doc: Doc | None = None
        self.root_col = 0
        self.stack: list[_Frame] = []
        self.frames: list[_Frame] = []  # every node of the current doc, for finishing touches
        self.blocks: list[_Block] = []
        # A "SubPlan 1" label waiting for its node: (name, relationship, owner, label column)
        self.pending: tuple[str, str, _Frame, int] | None = None
        self.query_text: list[str] | None = None
        self.pg18 = False

    # -- lines -----------------------------------------------------------------------------------

    def feed(self, line: Line) -> None:
        text = line.text
        if not text.strip():
            return
        col = _indent(text)
        body = text.strip()
        if a := _ARROW.match(text):
            header = _parse_header(text[a.end() :])
            if header is not None:
                arrow = len(a.group(1))
                if self.doc is None or arrow <= self.root_col:
                    # A subtree copied out of a bigger plan: its first arrow is the root, and an
                    # arrow as far left as that root starts the next plan.
                    self._root(header.fields, arrow, line.no)
                else:
                    self._child(header.fields, arrow)
                return
        elif self.doc is None or col <= self.root_col:
            header = _parse_header(body)
            if header is not None and (header.has_parens if self.with_parens else header.known):
                self._root(header.fields, col, line.no)
                return
        if self.doc is None:
            self._before_root(text)
            return
        self._other(text, col, body)

    def _before_root(self, text: str) -> None:
        """Lines before the first node: only auto_explain's (multi-line) "Query Text:" matters."""
        body = text.strip()
        if body.startswith("Query Text:"):
            self.query_text = [body[len("Query Text:") :].strip()]
        elif self.query_text is not None:
            self.query_text.append(text)

    def _root(self, fields: Node, col: int, no: int) -> None:
        self._finish()
        self.doc = {"Plan": fields}
        if self.query_text is not None:
            self.doc["Query Text"] = "\n".join(self.query_text)
            self.query_text = None
        self.root_col = col
        frame = _Frame(col, fields)
        self.stack = [frame]
        self.frames = [frame]
        self.blocks = []
        self.pending = None
        self.found.append((self.doc, no, "text"))
        self._note_version(fields)

    def _child(self, fields: Node, col: int) -> None:
        self.blocks = []
        pending, self.pending = self.pending, None
        if pending is not None and col > pending[3]:
            name, relationship, parent, _ = pending
            fields["Parent Relationship"] = relationship
            fields["Subplan Name"] = name
        else:
            while len(self.stack) > 1 and self.stack[-1].col >= col:
                self.stack.pop()
            parent = self.stack[-1]
        while self.stack and self.stack[-1] is not parent:
            self.stack.pop()
        if not self.stack:
            self.stack = [parent]
        parent.node.setdefault("Plans", []).append(fields)
        frame = _Frame(col, fields)
        self.stack.append(frame)
        self.frames.append(frame)
        self._note_version(fields)

    def _note_version(self, fields: Node) -> None:
        # PG 18 prints actual rows with two decimals: then JSON would carry "Disabled" everywhere.
        if isinstance(fields.get("Actual Rows"), float):
            self.pg18 = True

    def _other(self, text: str, col: int, body: str) -> None:
        while self.blocks and self.blocks[-1].col >= col:
            self.blocks.pop()
        if m := _SUBPLAN.match(text):
            self.blocks = []
            while len(self.stack) > 1 and self.stack[-1].col >= col:
                self.stack.pop()
            name = m.group(2).strip()
            relationship = "SubPlan" if name.startswith("SubPlan") else "InitPlan"
            self.pending = (name, relationship, self.stack[-1], col)
            return
        if col <= self.root_col and not self.blocks:
            self._top(body, col)
            return
        frame = self.stack[-1]
        target = self.blocks[-1].target if self.blocks else frame.node
        kind = self.blocks[-1].kind if self.blocks else "node"
        if kind == "jit":
            if m := _LABEL.match(body):
                _jit_line(m.group(2), m.group(3) or "", target)
            return
        if kind == "node" and (w := _WORKER.match(text)):
            self._worker(frame.node, int(w.group(2)), col, w.group(3))
            return
        self._prop(body, col, target, frame, kind)

    def _prop(self, body: str, col: int, target: Node, frame: _Frame, kind: str) -> None:
        if kind == "worker" and (a := _WORKER_ACTUAL.match(body)):
            if a.group(1) is not None:
                target["Actual Startup Time"] = _num(a.group(1))
                target["Actual Total Time"] = _num(a.group(2))
            target["Actual Rows"] = _num(a.group(3))
            target["Actual Loops"] = _num(a.group(4))
            return
        m = _LABEL.match(body)
        if m is None:
            return  # nothing EXPLAIN prints: ignore rather than guess
        label, value = m.group(2), (m.group(3) or "").strip()
        if label == "JIT" and not value:
            jit: Node = {}
            target["JIT"] = jit
            self.blocks.append(_Block(col, "jit", jit))
        elif kind == "node" and (
            label in _GROUPING_LABELS
            or (label == "Sort Key" and target.get("Node Type") == "Aggregate")
        ):
            frame.gkeys.append((label, value, col))
        else:
            if label == "Disabled":
                self.pg18 = True
            _property(label, value, target)

    def _worker(self, node: Node, number: int, col: int, rest: str) -> None:
        workers: list[Node] = node.setdefault("Workers", [])
        worker = next((w for w in workers if w.get("Worker Number") == number), None)
        if worker is None:
            worker = {"Worker Number": number}
            workers.append(worker)
        self.blocks.append(_Block(col, "worker", worker))
        if rest.strip():
            self._prop(rest.strip(), col + 1, worker, self.stack[-1], "worker")

    def _top(self, body: str, col: int) -> None:
        assert self.doc is not None
        doc = self.doc
        if t := _TRIGGER.match(body):
            trig: Node = {}
            if t.group("name"):
                trig["Trigger Name"] = t.group("name")
            if t.group("con"):
                trig["Constraint Name"] = t.group("con")
            if t.group("rel"):
                trig["Relation"] = t.group("rel")
            if t.group("time"):
                trig["Time"] = float(t.group("time"))
            trig["Calls"] = _num(t.group("calls"))
            doc.setdefault("Triggers", []).append(trig)
            return
        m = _LABEL.match(body)
        if m is None:
            return
        label, value = m.group(2), (m.group(3) or "").strip()
        if label in ("Planning Time", "Execution Time", "Total runtime"):
            if n := _NUMBER.match(value):
                doc["Execution Time" if label == "Total runtime" else label] = float(n.group(0))
        elif label == "Settings":
            doc["Settings"] = _settings(value)
        elif label == "Query Identifier" and re.fullmatch(r"-?\d+", value):
            doc["Query Identifier"] = int(value)  # a 64-bit integer; "1.5" is damage
        elif label in ("Planning", "Serialization"):
            block: Node = doc.setdefault(label, {})
            if label == "Serialization":
                names = {"time": "Time", "output": "Output Volume", "format": "Format"}
                for k, v in _KV.findall(value):
                    if k == "time" and _NUMBER.fullmatch(v):
                        block["Time"] = float(v)
                    elif k in names:
                        block[names[k]] = kb if (kb := _kb(v)) is not None else v
            self.blocks.append(_Block(col, "dict", block))
        elif label == "JIT":
            jit: Node = {}
            doc["JIT"] = jit
            self.blocks.append(_Block(col, "jit", jit))
        # Anything else at the top (psql's "Time: ..", a prompt) is not part of the plan.

    # -- finishing -------------------------------------------------------------------------------

    def _finish(self) -> None:
        if self.doc is None:
            return
        analyzed = any("Actual Loops" in f.node for f in self.frames)
        timing = any("Actual Total Time" in f.node for f in self.frames)
        costs = any("Total Cost" in f.node for f in self.frames)
        verbose = any("Output" in f.node for f in self.frames)
        for frame in self.frames:
            _finish_node(
                frame,
                analyzed=analyzed,
                timing=timing,
                costs=costs,
                verbose=verbose,
                pg18=self.pg18,
            )
        if analyzed:
            self.doc.setdefault("Triggers", [])
        self.doc = None

    def result(self) -> list[FoundDoc]:
        self._finish()
        return self.found


def _finish_node(
    frame: _Frame, *, analyzed: bool, timing: bool, costs: bool, verbose: bool, pg18: bool
) -> None:
    """Fill in what text leaves implicit but JSON always states."""
    node = frame.node
    kind = node["Node Type"]
    if frame.gkeys:
        _grouping(frame.gkeys, node)
    children = node.get("Plans", [])
    unnamed = [c for c in children if "Parent Relationship" not in c]
    for i, child in enumerate(unnamed):
        if kind in _MEMBER_PARENTS or (kind == "ModifyTable" and len(unnamed) > 1):
            child["Parent Relationship"] = "Member"
        elif kind == "Subquery Scan":
            child["Parent Relationship"] = "Subquery"
        elif kind == "Custom Scan":
            child["Parent Relationship"] = "child" if len(unnamed) == 1 else "children"
        else:
            child["Parent Relationship"] = "Outer" if i == 0 else "Inner"
    if children:
        # JSON lists InitPlans first, then outer/inner, then SubPlans: text has the same order.
        node["Plans"] = children
    if kind == "Gather":
        node.setdefault("Single Copy", False)
    if kind in ("Append", "Merge Append"):
        node.setdefault(
            "Subplans Removed", 0
        )  # text prints it only when run-time pruning removed some
    if kind in ("Nested Loop", "Hash Join", "Merge Join") and verbose:
        node.setdefault("Inner Unique", False)  # VERBOSE text prints it only when true
    if kind == "Aggregate" and node.get("Strategy") in ("Hashed", "Mixed") and costs:
        node.setdefault("Planned Partitions", 0)
    if pg18:
        node.setdefault("Disabled", False)
        if "WAL Records" in node:
            node.setdefault("WAL Buffers Full", 0)  # PG 18 added it to the WAL line
    if analyzed:
        if node.get("Actual Loops") == 0 and timing:  # "(never executed)"
            node.setdefault("Actual Startup Time", 0.0)
            node.setdefault("Actual Total Time", 0.0)
        if "Filter" in node:
            node.setdefault("Rows Removed by Filter", 0)
        if "Join Filter" in node:
            node.setdefault("Rows Removed by Join Filter", 0)
        if kind == "Bitmap Heap Scan":
            node.setdefault("Exact Heap Blocks", 0)
            node.setdefault("Lossy Heap Blocks", 0)
            if "Recheck Cond" in node:
                node.setdefault("Rows Removed by Index Recheck", 0)
        if kind in ("Index Scan", "Index Only Scan") and "Index Cond" in node:
            node.setdefault("Rows Removed by Index Recheck", 0)
    # Keep JSON's key order for the identifying keys, so dumps read like the server's.
    order = (
        "Node Type",
        "Strategy",
        "Partial Mode",
        "Operation",
        "Parent Relationship",
        "Subplan Name",
        "Custom Plan Provider",
        "Parallel Aware",
        "Async Capable",
    )
    head = {k: node[k] for k in order if k in node}
    rest = {k: v for k, v in node.items() if k not in head and k != "Plans"}
    plans = node.get("Plans")
    node.clear()
    node.update(head)
    node.update(rest)
    if plans:
        node["Plans"] = plans


def _grouping(entries: list[tuple[str, str, int]], node: Node) -> None:
    """Group Key / Hash Key / Sort Key lines of an Aggregate -> "Group Key" or "Grouping Sets"."""
    if len(entries) == 1 and entries[0][0] == "Group Key" and entries[0][1] != "()":
        node["Group Key"] = _split_list(entries[0][1])
        return
    base = min(col for _, _, col in entries)
    sets: list[Node] = []
    cur: Node | None = None
    for label, value, col in entries:
        if label == "Sort Key":
            cur = {"Sort Key": _split_list(value)}
            sets.append(cur)
            continue
        keyset = "Hash Keys" if label == "Hash Key" else "Group Keys"
        keys = [] if value == "()" else _split_list(value)
        sorted_set = cur is not None and "Sort Key" in cur
        # Consecutive Group Keys are one rollup; every Hash Key is a hash table of its own.
        if (
            cur is not None
            and keyset == "Group Keys"
            and (keyset in cur or sorted_set)
            and (col > base or not sorted_set)
        ):
            cur.setdefault(keyset, []).append(keys)
        else:
            cur = {keyset: [keys]}
            sets.append(cur)
    node["Grouping Sets"] = sets


def parse_text_segment(seg: Segment, source: str) -> list[FoundDoc]:
    """Documents of the text plans in one unframed segment (none if it holds no node line)."""
    del source  # text is parsed leniently: there is nothing to reject once a node was found
    lines, with_parens = _logical_lines(seg)
    builder = _Builder(with_parens)
    for line in lines:
        builder.feed(line)
    return builder.result()
