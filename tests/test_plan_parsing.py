# ruff: noqa: E501  (EXPLAIN lines quoted verbatim are long)
"""EXPLAIN input in every pasted form -> the same typed plan (advisor.plan.parse_plans).

Fixtures (tests/fixtures/plan_input, see its README):
* paste_corpus/: one plan as psql prints it in every border/linestyle (PEV2's test data);
* psql_formats/: one captured PG 18 plan rendered by real psql (wrapped, old-ascii, \\x, ...);
* pairs/pgNN/: the same statement EXPLAINed as JSON and as text on PG 18 / 15, ~60 shapes;
* artifacts/: real PG 15/18 JSON plans from the knowledge base.
sample_plans/pgNN/ (captured by scripts/capture_plans.py) is used when present.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from advisor.plan import Plan, PlanInputError, PlanNode, parse_plans
from advisor.plan.reader import INTERNAL_ERROR

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "plan_input"
CORPUS = FIXTURES / "paste_corpus"
FORMATS = FIXTURES / "psql_formats"
ARTIFACTS = FIXTURES / "artifacts"
SAMPLES = ROOT / "sample_plans"


def parse_file(path: Path) -> list[Plan]:
    return parse_plans(path.read_text(encoding="utf-8"), source=path.name)


def parse_one(text: str) -> Plan:
    plans = parse_plans(text, "test")
    assert len(plans) == 1
    return plans[0]


def nodes(plan: Plan) -> list[PlanNode]:
    return list(plan.nodes())


# -- comparison helpers -----------------------------------------------------------------------

_RUN_DEPENDENT = ("Time",)  # "Actual Total Time", "Planning Time", "I/O Read Time", ...


def stable_tree(plan: Plan) -> Any:
    """Everything the plan says except timings, which differ between two runs."""

    def strip(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if not any(w in k for w in _RUN_DEPENDENT)}

    def node(n: PlanNode) -> Any:
        return {
            **strip(n.props),
            "Plans": [node(c) for c in n.children],
            "Workers": [strip(w.props) for w in n.workers],
        }

    return {"top": strip(plan.props), "settings": plan.settings, "plan": node(plan.root)}


def full_tree(plan: Plan) -> Any:
    def node(n: PlanNode) -> Any:
        workers = [{**w.props, "JIT": w.jit} for w in n.workers]
        return {**n.props, "Plans": [node(c) for c in n.children], "Workers": workers}

    return {"top": plan.props, "settings": plan.settings, "jit": plan.jit, "plan": node(plan.root)}


def signature(plan: Plan) -> list[tuple[Any, ...]]:
    """Per node, what a JSON and a text capture of one statement must agree on."""
    return [
        (
            n.node_type,
            n.parallel_aware,
            n.relation,
            n.schema,
            n.alias,
            n.index_name,
            n.operation,
            n.strategy,
            n.partial_mode,
            n.join_type,
            n.parent_relationship,
            n.subplan_name,
            n.startup_cost,
            n.total_cost,
            n.plan_rows,
            n.plan_width,
            n.workers_planned,
            n.workers_launched,
            n.single_copy,
            n.filter,
        )
        for n in plan.nodes()
    ]


# -- the paste corpus: one plan in every psql style ----------------------------------------------

CORPUS_JSON = sorted(CORPUS.glob("json-*.plan"))
CORPUS_TEXT = sorted(p for p in CORPUS.glob("text-*.plan") if "dbeaver" not in p.name)


def test_corpus_is_there() -> None:
    assert len(CORPUS_JSON) == 15 and len(CORPUS_TEXT) == 13


@pytest.mark.parametrize("path", CORPUS_JSON, ids=lambda p: p.stem)
def test_corpus_json_files_give_one_tree(path: Path) -> None:
    (plan,) = parse_file(path)
    (reference,) = parse_file(CORPUS_JSON[0])
    assert plan.input_format == "json"
    assert stable_tree(plan) == stable_tree(reference)


@pytest.mark.parametrize("path", CORPUS_TEXT, ids=lambda p: p.stem)
def test_corpus_text_files_give_one_tree(path: Path) -> None:
    (plan,) = parse_file(path)
    (reference,) = parse_file(CORPUS_TEXT[0])
    assert plan.input_format == "text"
    assert stable_tree(plan) == stable_tree(reference)


def test_corpus_json_and_text_agree() -> None:
    (j,) = parse_file(CORPUS_JSON[0])
    (t,) = parse_file(CORPUS_TEXT[0])
    assert signature(j) == signature(t)
    for a, b in zip(nodes(j), nodes(t), strict=True):
        assert (a.actual_rows, a.actual_loops) == (b.actual_rows, b.actual_loops)
        assert a.props.get("Rows Removed by Filter") == b.props.get("Rows Removed by Filter")
    assert [n.label for n in nodes(t)] == [
        "Nested Loop (node 1)",
        "Seq Scan on users u (node 2)",
        "Seq Scan on part_0 p (node 3)",
    ]
    assert t.planning_time_ms is not None and t.execution_time_ms is not None


def test_corpus_dbeaver_delete() -> None:
    (plan,) = parse_file(CORPUS / "text-3-dbeaver.plan")
    root, scan = nodes(plan)
    assert (root.node_type, root.operation, root.schema, root.relation) == (
        "ModifyTable",
        "Delete",
        "public",
        "toto123456789",
    )
    assert root.props["WAL Records"] == 5000000 and root.props["WAL FPI"] == 7015
    assert (
        root.props["Shared Hit Blocks"] == 5000000 and root.props["Shared Written Blocks"] == 7338
    )
    assert root.props["Local Hit Blocks"] == 0  # a Buffers line states all ten counters
    assert scan.output == ["ctid"] and scan.actual_rows == 5000000
    assert plan.props["Planning"]["Shared Hit Blocks"] == 4
    assert plan.execution_time_ms == 4024.335


# -- real psql output in every format, same plan content ------------------------------------------

FORMAT_FILES = sorted(FORMATS.glob("*.plan"))


@pytest.mark.parametrize("path", FORMAT_FILES, ids=lambda p: p.stem)
def test_psql_formats_give_the_raw_tree(path: Path) -> None:
    raw = FORMATS / ("plan.json" if path.name.startswith("json") else "plan.txt")
    (plan,) = parse_file(path)
    (reference,) = parse_file(raw)
    assert full_tree(plan) == full_tree(reference)


def test_psql_format_json_and_text_agree() -> None:
    (j,) = parse_file(FORMATS / "plan.json")  # two runs of one statement
    (t,) = parse_file(FORMATS / "plan.txt")
    assert signature(j) == signature(t)
    assert [len(n.workers) for n in j.nodes()] == [len(n.workers) for n in t.nodes()]


# -- JSON/text pairs: the server's own JSON is the oracle for the text parser --------------------

PAIRS = sorted(FIXTURES.glob("pairs/pg*/*.json"))

# Keys whose values change between the two runs of a pair (timing, buffers, memory, and which
# participant did how much of a parallel scan).
_UNSTABLE = frozenset(
    {
        "Peak Memory Usage",
        "Sort Space Used",
        "Disk Usage",
        "Memory Used",
        "Memory Allocated",
        "Exact Heap Blocks",
        "Lossy Heap Blocks",
        "WAL Bytes",
        "Hash Batches",
        "Sort Method",
        "Sort Space Type",
        "Rows Removed by Filter",
        "Actual Rows",
        "Actual Loops",
        "Query Identifier",
        "Output Volume",
        "Heap Fetches",
    }
)
# Keys JSON always carries but text cannot tell: zero-valued blocks are not printed, "Planning"
# prints only non-zero buffers, a non-VERBOSE join omits Inner Unique, a non-ANALYZE PG 18 plan
# does not reveal the version (so no "Disabled"), non-VERBOSE triggers omit name and relation.
_TEXT_CANNOT_KNOW = frozenset({"Planning", "Inner Unique", "Disabled", "Trigger Name", "Relation"})


def _unstable(key: str) -> bool:
    return key in _UNSTABLE or "Time" in key or key.endswith("Blocks")


def _compare(j: Any, t: Any, path: str, errors: list[str]) -> None:
    if isinstance(j, dict) and isinstance(t, dict):
        for key in j.keys() | t.keys():
            where = f"{path}/{key}"
            if key not in t:
                zero_wal = key.startswith("WAL") and j[key] == 0  # printed only when non-zero
                if not (_unstable(key) or key in _TEXT_CANNOT_KNOW or key == "Workers" or zero_wal):
                    errors.append(f"{where}: missing from text")
            elif key not in j:
                if key != "Workers":
                    errors.append(f"{where}: only in text")
            elif key == "Workers":
                continue  # who ran what differs between runs; counts are compared elsewhere
            elif _unstable(key):
                if type(j[key]) is not type(t[key]):
                    errors.append(f"{where}: {type(j[key]).__name__} vs {type(t[key]).__name__}")
            else:
                _compare(j[key], t[key], where, errors)
    elif isinstance(j, list) and isinstance(t, list) and len(j) == len(t):
        for i, (a, b) in enumerate(zip(j, t, strict=True)):
            _compare(a, b, f"{path}[{i}]", errors)
    elif j != t or type(j) is not type(t):
        errors.append(f"{path}: {j!r} vs {t!r}")


def _props_tree(plan: Plan) -> Any:
    def node(n: PlanNode) -> Any:
        return {**n.props, "Plans": [node(c) for c in n.children]}

    return {**plan.props, "Settings": plan.settings, "Plan": node(plan.root)}


_ROWS_FROM = pytest.mark.xfail(
    strict=True,
    reason="ROWS FROM (f(), g()) prints only its alias: text reads it as a function name",
)
PAIR_PARAMS = [
    pytest.param(
        p,
        id=f"{p.parent.name}/{p.stem}",
        marks=[_ROWS_FROM] if p.name.startswith("rows_from") else [],
    )
    for p in PAIRS
]


def test_pairs_are_there() -> None:
    assert len(PAIRS) >= 100


@pytest.mark.parametrize("path", PAIR_PARAMS)
def test_pair_text_equals_json(path: Path) -> None:
    (j,) = parse_file(path)
    (t,) = parse_file(path.with_suffix(".txt"))
    assert (j.input_format, t.input_format) == ("json", "text")
    assert signature(t) == signature(j)
    errors: list[str] = []
    _compare(_props_tree(j), _props_tree(t), "", errors)
    assert not errors, "\n".join(errors)


# -- sample_plans (captured by another script; use whatever is there) ---------------------------


def _sample_pairs() -> list[Path]:
    return sorted(p for p in SAMPLES.glob("pg*/*.json") if p.with_suffix(".txt").exists())


def _under_parallel_append(ancestors: tuple[PlanNode, ...]) -> bool:
    return any(a.node_type == "Append" and a.parallel_aware for a in ancestors)


def sample_signature(plan: Plan) -> list[tuple[Any, ...]]:
    out = []
    for (n, anc), base in zip(plan.walk(), signature(plan), strict=True):
        # Under a Parallel Append each participant takes whole partitions, first come first
        # served: how often a child ran and which workers touched it differs between captures.
        racy = _under_parallel_append(anc)
        loops = None if racy or n.actual_loops is None else n.actual_loops
        workers = None if racy else len(n.workers)
        spills = sorted({s.kind for _, s in n.all_spills()})
        out.append((*base, loops, workers, spills))
    return out


def test_sample_pairs_exist() -> None:
    assert _sample_pairs(), "sample_plans/ holds no <name>.json + <name>.txt pair"


@pytest.mark.parametrize("path", _sample_pairs(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_sample_pair_json_and_text_agree(path: Path) -> None:
    (j,) = parse_file(path)
    (t,) = parse_file(path.with_suffix(".txt"))
    assert sample_signature(t) == sample_signature(j)
    assert set(t.settings) == set(j.settings)


@pytest.mark.parametrize(
    "path", sorted(SAMPLES.glob("pg*/*.txt")), ids=lambda p: f"{p.parent.name}/{p.stem}"
)
def test_sample_text_files_parse(path: Path) -> None:
    plans = parse_file(path)
    assert plans and all(p.input_format == "text" and p.node_count >= 1 for p in plans)
    base = path.with_name(path.name.removesuffix("_costs_off.txt") + ".json")
    if path.name.endswith("_costs_off.txt") and base.exists():
        # COSTS OFF prints the same tree, only without the cost parentheses.
        (j,) = parse_file(base)
        assert [n.display_type for n in plans[0].nodes()] == [n.display_type for n in j.nodes()]
        assert all(n.total_cost is None for n in plans[0].nodes())


# -- real plans from the knowledge base ----------------------------------------------------------


def test_artifact_pg15_aggregate() -> None:
    (plan,) = parse_file(ARTIFACTS / "pg15_explain_agg.json")
    (gm,) = plan.gathers()
    assert (gm.node_type, gm.workers_planned, gm.workers_launched) == ("Gather Merge", 4, 4)
    sort = gm.children[0]
    assert sort.actual_loops == 5 and len(sort.workers) == 4
    assert sort.workers[0].jit is not None and sort.workers[0].jit.functions == 8
    assert plan.jit is not None and plan.jit.functions == 43
    assert plan.settings["max_parallel_workers_per_gather"] == "8"
    assert plan.root.display_type == "Finalize GroupAggregate"


def test_artifact_pg15_spill_holds_two_plans() -> None:
    first, second = parse_file(ARTIFACTS / "pg15_explain_spill.json")
    assert (first.index, second.index) == (1, 2)
    (gm,) = second.gathers()
    sort = gm.children[0]
    spills = sort.all_spills()
    assert [who for who, _ in spills] == ["leader", "worker 0", "worker 1"]
    assert all(s.kind == "sort" and s.disk_kb for _, s in spills)
    assert sort.spills[0].disk_kb == 48968


def test_artifact_pg18_is_recognised() -> None:
    (plan,) = parse_file(ARTIFACTS / "pg18_explain.json")
    assert plan.server_major_hint == 18
    assert isinstance(plan.root.props["Actual Rows"], float)


# -- several plans in one input ------------------------------------------------------------------

_TEXT = (CORPUS / "text-1-aligned-ascii-double-double-double.plan").read_text()
_JSON_PSQL = (CORPUS / "json-2-aligned-unicode-single-double-single.plan").read_text()
_AGG_DOC = json.loads((ARTIFACTS / "pg15_explain_agg.json").read_text())


@pytest.mark.parametrize(
    ("label", "text", "kinds"),
    [
        ("json array of two", json.dumps(_AGG_DOC + _AGG_DOC), ["json", "json"]),
        (
            "concatenated json",
            json.dumps(_AGG_DOC) + "\n" + json.dumps(_AGG_DOC, indent=1),
            ["json"] * 2,
        ),
        ("two psql text results", _TEXT + "\n" + _TEXT, ["text", "text"]),
        ("psql json then text", _JSON_PSQL + _TEXT, ["json", "text"]),
        ("raw text plans back to back", (FORMATS / "plan.txt").read_text() * 3, ["text"] * 3),
        (
            "markdown fences and prose",
            "My plans:\n```json\n"
            + (FORMATS / "plan.json").read_text()
            + "```\nand\n~~~\n"
            + _TEXT
            + "~~~\n",
            ["json", "text"],
        ),
        (
            "text, json, text unframed",
            (FORMATS / "plan.txt").read_text()
            + (FORMATS / "plan.json").read_text()
            + (FORMATS / "plan.txt").read_text(),
            ["text", "json", "text"],
        ),
        (
            "psql session with prompts",
            "db=# EXPLAIN ANALYZE SELECT ...;\n"
            + _TEXT
            + "Time: 3.1 ms\n"
            + "db=# EXPLAIN (FORMAT JSON) ...;\n"
            + _JSON_PSQL,
            ["text", "json"],
        ),
    ],
)
def test_several_plans(label: str, text: str, kinds: list[str]) -> None:
    plans = parse_plans(text, label)
    assert [p.input_format for p in plans] == kinds
    assert [p.index for p in plans] == list(range(1, len(kinds) + 1))


def test_bare_object_and_bare_node() -> None:
    whole = parse_one(json.dumps(_AGG_DOC[0]))
    node = parse_one(json.dumps(_AGG_DOC[0]["Plan"]["Plans"][0]))
    assert whole.root.node_type == "Aggregate" and whole.jit is not None
    assert node.root.node_type == "Gather Merge" and node.root.workers_launched == 4


def test_gui_json_export_of_rows() -> None:
    rows = [{"QUERY PLAN": line} for line in (FORMATS / "plan.txt").read_text().splitlines()]
    plan = parse_one(json.dumps(rows))
    assert full_tree(plan) == full_tree(parse_one((FORMATS / "plan.txt").read_text()))


# -- pgAdmin: a quoted cell with doubled quotes --------------------------------------------------


def test_pgadmin_json_cell() -> None:
    cell = json.dumps(_AGG_DOC, indent=2)
    text = '"QUERY PLAN"\n"' + cell.replace('"', '""') + '"\n'
    assert '""Node Type""' in text
    assert full_tree(parse_one(text)) == full_tree(parse_one(cell))


def test_pgadmin_text_rows() -> None:
    raw = (FORMATS / "plan.txt").read_text()
    quoted = '"QUERY PLAN"\n' + "".join(
        '"' + ln.replace('"', '""') + '"\n' for ln in raw.splitlines()
    )
    assert full_tree(parse_one(quoted)) == full_tree(parse_one(raw))


# -- auto_explain logs ---------------------------------------------------------------------------

_PREFIX = "2026-11-22 10:00:00.123 UTC [1234] LOG:  "


def _stderr_entry(body: str, ms: float = 12.3) -> str:
    return f"{_PREFIX}duration: {ms} ms  plan:\n" + "".join(f"\t{ln}\n" for ln in body.splitlines())


def _json_log() -> str:
    doc = {"Query Text": "SELECT g, count(*)\n  FROM t\n GROUP BY g", **_AGG_DOC[0]}
    noise = "2026-11-22 10:00:00.100 UTC [1234] LOG:  checkpoint starting: time\n"
    return (
        noise
        + _stderr_entry(json.dumps(doc, indent=2))
        + noise
        + _stderr_entry(json.dumps(doc, indent=2))
    )


def _text_log() -> str:
    body = "Query Text: SELECT id, s\n  FROM t\n ORDER BY s\n" + (FORMATS / "plan.txt").read_text()
    return _stderr_entry(body) + f"{_PREFIX}statement: SELECT 1\n" + _stderr_entry(body)


def test_auto_explain_json_log() -> None:
    plans = parse_plans(_json_log(), "postgresql.log")
    assert len(plans) == 2 and all(p.input_format == "json" for p in plans)
    assert plans[0].query_text == "SELECT g, count(*)\n  FROM t\n GROUP BY g"
    reference = parse_one(json.dumps(_AGG_DOC))
    assert full_tree(plans[0])["plan"] == full_tree(reference)["plan"]
    assert plans[1].jit == reference.jit and plans[1].settings == reference.settings


def test_auto_explain_text_log() -> None:
    plans = parse_plans(_text_log(), "postgresql.log")
    assert len(plans) == 2 and all(p.input_format == "text" for p in plans)
    assert plans[1].query_text == "SELECT id, s\n  FROM t\n ORDER BY s"
    assert (
        full_tree(plans[0]).get("plan")
        == full_tree(parse_one((FORMATS / "plan.txt").read_text()))["plan"]
    )


def test_auto_explain_jsonlog_format() -> None:
    doc = {"Query Text": "SELECT 1", **_AGG_DOC[0]}
    line = json.dumps(
        {
            "timestamp": "2026-11-22 10:00:00.123 UTC",
            "pid": 1234,
            "error_severity": "LOG",
            "message": "duration: 1.000 ms  plan:\n" + json.dumps(doc, indent=2),
        }
    )
    plans = parse_plans('{"timestamp": "x", "message": "checkpoint"}\n' + line + "\n", "log.json")
    assert len(plans) == 1 and plans[0].query_text == "SELECT 1"


def _csv_record(message: str) -> str:
    quoted = message.replace('"', '""')
    return (
        '2026-11-22 10:00:00.123 UTC,"postgres","db",1234,"[local]",6740a1,1,"SELECT",'
        f'2026-11-22 09:59:00 UTC,3/4,0,LOG,00000,"{quoted}",,,,,,,,,"psql","client backend",,0\n'
    )


def test_auto_explain_csvlog_format() -> None:
    doc = {"Query Text": 'SELECT "g" FROM t', **_AGG_DOC[0]}
    text_body = "Query Text: SELECT 1\n" + (FORMATS / "plan.txt").read_text()
    log = (
        _csv_record("database system is ready to accept connections")
        + _csv_record("duration: 1.000 ms  plan:\n" + json.dumps(doc, indent=2))
        + _csv_record("duration: 2.000 ms  plan:\n" + text_body)
    )
    first, second = parse_plans(log, "postgresql.csv")
    assert (first.input_format, first.query_text) == ("json", 'SELECT "g" FROM t')
    assert (second.input_format, second.query_text, second.node_count) == ("text", "SELECT 1", 4)


@pytest.mark.parametrize("major", ["pg18", "pg15"])
def test_sample_auto_explain_logs_agree(major: str) -> None:
    jpath, tpath = (
        SAMPLES / major / "auto_explain_json.log",
        SAMPLES / major / "auto_explain_text.log",
    )
    assert jpath.exists() and tpath.exists(), "run scripts/capture_plans.py"
    jplans, tplans = parse_file(jpath), parse_file(tpath)
    assert jplans and len(jplans) == len(tplans)
    for j, t in zip(jplans, tplans, strict=True):
        assert j.query_text and j.query_text == t.query_text
        assert signature(j) == signature(t)


# -- text EXPLAIN forms, one by one --------------------------------------------------------------


def _root(text: str) -> dict[str, Any]:
    return parse_one(text).root.props


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            "Parallel Seq Scan on s.t x",
            {
                "Node Type": "Seq Scan",
                "Parallel Aware": True,
                "Schema": "s",
                "Relation Name": "t",
                "Alias": "x",
            },
        ),
        ("Seq Scan on t", {"Relation Name": "t", "Alias": "t"}),
        (
            'Seq Scan on public."My Table" m',
            {"Schema": "public", "Relation Name": "My Table", "Alias": "m"},
        ),
        (
            "Finalize HashAggregate",
            {"Node Type": "Aggregate", "Strategy": "Hashed", "Partial Mode": "Finalize"},
        ),
        ("Partial GroupAggregate", {"Strategy": "Sorted", "Partial Mode": "Partial"}),
        ("MixedAggregate", {"Strategy": "Mixed", "Partial Mode": "Simple"}),
        ("Aggregate", {"Strategy": "Plain", "Partial Mode": "Simple"}),
        ("Insert on t", {"Node Type": "ModifyTable", "Operation": "Insert", "Relation Name": "t"}),
        ("Merge on public.u u1", {"Node Type": "ModifyTable", "Operation": "Merge", "Alias": "u1"}),
        ("Hash Left Join", {"Node Type": "Hash Join", "Join Type": "Left"}),
        ("Nested Loop Anti Join", {"Node Type": "Nested Loop", "Join Type": "Anti"}),
        ("Hash Right Semi Join", {"Node Type": "Hash Join", "Join Type": "Right Semi"}),
        ("Merge Full Join", {"Node Type": "Merge Join", "Join Type": "Full"}),
        ("Nested Loop", {"Join Type": "Inner"}),
        (
            "Index Scan Backward using t_pkey on t",
            {
                "Node Type": "Index Scan",
                "Scan Direction": "Backward",
                "Index Name": "t_pkey",
                "Relation Name": "t",
            },
        ),
        (
            "Parallel Index Only Scan using i on t",
            {"Node Type": "Index Only Scan", "Parallel Aware": True, "Scan Direction": "Forward"},
        ),
        ("Bitmap Index Scan on t_g", {"Node Type": "Bitmap Index Scan", "Index Name": "t_g"}),
        ("CTE Scan on x a", {"CTE Name": "x", "Alias": "a"}),
        (
            "Function Scan on pg_catalog.generate_series g",
            {"Function Name": "generate_series", "Schema": "pg_catalog", "Alias": "g"},
        ),
        ("Subquery Scan on s", {"Node Type": "Subquery Scan", "Alias": "s"}),
        ('Values Scan on "*VALUES*"', {"Node Type": "Values Scan", "Alias": "*VALUES*"}),
        (
            "Custom Scan (ChunkAppend) on metrics",
            {"Node Type": "Custom Scan", "Custom Plan Provider": "ChunkAppend"},
        ),
        (
            "HashSetOp Except All",
            {"Node Type": "SetOp", "Strategy": "Hashed", "Command": "Except All"},
        ),
        ("SetOp Intersect", {"Strategy": "Sorted", "Command": "Intersect"}),
        (
            "Async Foreign Scan on public.ft1",
            {"Node Type": "Foreign Scan", "Async Capable": True, "Operation": "Select"},
        ),
        ("Foreign Update on ft", {"Node Type": "Foreign Scan", "Operation": "Update"}),
        ("Incremental Sort", {"Node Type": "Incremental Sort"}),
        ("Memoize", {"Node Type": "Memoize"}),
        ("Tid Scan on u", {"Node Type": "Tid Scan", "Relation Name": "u"}),
        ("WorkTable Scan on r r_1", {"CTE Name": "r", "Alias": "r_1"}),
        ("Gather", {"Node Type": "Gather", "Single Copy": False}),
        ("ProjectSet", {"Node Type": "ProjectSet"}),
    ],
)
def test_node_headers(header: str, expected: dict[str, Any]) -> None:
    props = _root(f"{header}  (cost=0.00..1.50 rows=10 width=4)")
    assert {k: props.get(k) for k in expected} == expected
    assert (
        props["Startup Cost"],
        props["Total Cost"],
        props["Plan Rows"],
        props["Plan Width"],
    ) == (0.0, 1.5, 10, 4)
    assert isinstance(props["Plan Rows"], int) and isinstance(props["Startup Cost"], float)


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (
            "(actual time=0.010..2.500 rows=15 loops=1)",
            {
                "Actual Startup Time": 0.01,
                "Actual Total Time": 2.5,
                "Actual Rows": 15,
                "Actual Loops": 1,
            },
        ),
        (
            "(actual rows=15 loops=3)",
            {"Actual Rows": 15, "Actual Loops": 3, "Actual Total Time": None},
        ),
        (
            "(actual time=0.010..2.500 rows=1000.00 loops=1)",
            {"Actual Rows": 1000.0, "Disabled": False},
        ),
        ("(never executed)", {"Actual Rows": 0, "Actual Loops": 0}),
    ],
)
def test_actuals(tail: str, expected: dict[str, Any]) -> None:
    props = _root(f"Seq Scan on t  (cost=0.00..1.50 rows=10 width=4) {tail}")
    assert {k: props.get(k) for k in expected} == expected
    assert all(type(props[k]) is type(v) for k, v in expected.items() if v is not None)


def test_costs_off_plan() -> None:
    plan = parse_one(
        "Gather\n  Workers Planned: 2\n  ->  Parallel Seq Scan on t\n        Filter: (a > 1)\n"
    )
    gather, scan = nodes(plan)
    assert gather.workers_planned == 2 and gather.total_cost is None
    assert scan.parallel_aware and scan.filter == "(a > 1)" and scan.parent_relationship == "Outer"


_WORKERS = """\
Gather Merge  (cost=1.00..2.00 rows=10 width=4) (actual time=1.000..2.000 rows=10 loops=1)
  Workers Planned: 2
  Workers Launched: 1
  ->  Sort  (cost=1.00..1.10 rows=5 width=4) (actual time=1.000..1.100 rows=5 loops=2)
        Sort Key: t.a, (lower(t.b)), t.c DESC NULLS LAST
        Sort Method: external merge  Disk: 1234kB
        Worker 0:  actual time=0.900..1.000 rows=4 loops=1
          Sort Method: quicksort  Memory: 25kB
          JIT:
            Functions: 3
            Options: Inlining false, Optimization false, Expressions true, Deforming true
            Timing: Generation 0.100 ms (Deform 0.020 ms), Inlining 0.000 ms, Optimization 0.300 ms, Emission 4.000 ms, Total 4.400 ms
          Buffers: shared hit=7 read=2, temp written=3
        ->  Parallel Seq Scan on t  (cost=0.00..1.00 rows=5 width=4) (actual time=0.010..0.500 rows=5 loops=2)
              Worker 0:  Heap Blocks: exact=3
Planning Time: 0.100 ms
JIT:
  Functions: 9
  Options: Inlining false, Optimization false, Expressions true, Deforming true
  Timing: Generation 1.000 ms (Deform 0.500 ms), Inlining 0.000 ms, Optimization 1.000 ms, Emission 2.000 ms, Total 4.000 ms
Execution Time: 3.000 ms
"""


def test_workers_sort_spill_and_jit() -> None:
    plan = parse_one(_WORKERS)
    gm, sort, scan = nodes(plan)
    assert (gm.workers_planned, gm.workers_launched) == (2, 1)
    assert sort.props["Sort Key"] == ["t.a", "(lower(t.b))", "t.c DESC NULLS LAST"]
    assert (
        sort.props["Sort Method"],
        sort.props["Sort Space Used"],
        sort.props["Sort Space Type"],
    ) == ("external merge", 1234, "Disk")
    (w,) = sort.workers
    assert (w.number, w.actual_rows, w.actual_loops, w.props["Sort Space Type"]) == (
        0,
        4,
        1,
        "Memory",
    )
    assert w.props["Shared Hit Blocks"] == 7 and w.props["Temp Written Blocks"] == 3
    assert w.jit is not None and (w.jit.functions, w.jit.generation_ms, w.jit.total_ms) == (
        3,
        0.1,
        4.4,
    )
    assert scan.workers[0].props == {
        "Worker Number": 0,
        "Exact Heap Blocks": 3,
        "Lossy Heap Blocks": 0,
    }
    assert plan.jit is not None and plan.jit.functions == 9 and plan.jit.generation_ms == 1.0
    assert [who for who, _ in sort.all_spills()] == ["leader"]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            "Buckets: 4096 (originally 1024)  Batches: 8 (originally 1)  Memory Usage: 300kB",
            {
                "Hash Buckets": 4096,
                "Original Hash Buckets": 1024,
                "Hash Batches": 8,
                "Original Hash Batches": 1,
                "Peak Memory Usage": 300,
            },
        ),
        (
            "Buckets: 1024  Batches: 1  Memory Usage: 9kB",
            {
                "Hash Buckets": 1024,
                "Original Hash Buckets": 1024,
                "Hash Batches": 1,
                "Original Hash Batches": 1,
            },
        ),
        (
            "Planned Partitions: 4  Batches: 5  Memory Usage: 4145kB  Disk Usage: 2048kB",
            {
                "Planned Partitions": 4,
                "HashAgg Batches": 5,
                "Peak Memory Usage": 4145,
                "Disk Usage": 2048,
            },
        ),
        ("Batches: 1  Memory Usage: 32kB", {"HashAgg Batches": 1, "Disk Usage": 0}),
        (
            "Hits: 10  Misses: 5  Evictions: 0  Overflows: 0  Memory Usage: 2kB",
            {"Cache Hits": 10, "Cache Misses": 5, "Cache Evictions": 0, "Peak Memory Usage": 2},
        ),
        (
            "Full-sort Groups: 4  Sort Methods: top-N heapsort, quicksort  Average Memory: 29kB  Peak Memory: 31kB",
            {
                "Full-sort Groups": {
                    "Group Count": 4,
                    "Sort Methods Used": ["top-N heapsort", "quicksort"],
                    "Sort Space Memory": {
                        "Average Sort Space Used": 29,
                        "Peak Sort Space Used": 31,
                    },
                }
            },
        ),
        (
            "Buffers: shared hit=5 read=2 dirtied=1, local hit=1, temp read=3 written=4",
            {
                "Shared Hit Blocks": 5,
                "Shared Read Blocks": 2,
                "Shared Dirtied Blocks": 1,
                "Shared Written Blocks": 0,
                "Local Hit Blocks": 1,
                "Temp Read Blocks": 3,
                "Temp Written Blocks": 4,
            },
        ),
        (
            "I/O Timings: shared read=1.500 write=0.250, temp read=2.000",
            {"Shared I/O Read Time": 1.5, "Shared I/O Write Time": 0.25, "Temp I/O Read Time": 2.0},
        ),
        ("I/O Timings: read=1.500", {"I/O Read Time": 1.5}),
        ("WAL: records=30 bytes=1960", {"WAL Records": 30, "WAL FPI": 0, "WAL Bytes": 1960}),
        ("Heap Blocks: lossy=7", {"Exact Heap Blocks": 0, "Lossy Heap Blocks": 7}),
        ("Storage: Memory  Maximum Storage: 17kB", {"Storage": "Memory", "Maximum Storage": 17}),
        ("Output: g, count(*), sum(v)", {"Output": ["g", "count(*)", "sum(v)"]}),
        ("Output: 'a, b'::text, f(x, y)", {"Output": ["'a, b'::text", "f(x, y)"]}),
        (
            "Filter: (s ~~ 'a%'::text)\n  Rows Removed by Filter: 93773",
            {"Filter": "(s ~~ 'a%'::text)", "Rows Removed by Filter": 93773},
        ),
        ("One-Time Filter: false", {"One-Time Filter": "false"}),
        (
            "Join Filter: (a.id < b.id)\n  Rows Removed by Join Filter: 3",
            {"Join Filter": "(a.id < b.id)", "Rows Removed by Join Filter": 3},
        ),
        ("Index Cond: (id = 1)", {"Index Cond": "(id = 1)"}),
        ("Single Copy: true", {"Single Copy": True}),
        ("Group Key: t.g", {"Group Key": ["t.g"]}),
        (
            "Hash Key: t.a\n  Hash Key: t.b\n  Group Key: ()",
            {
                "Grouping Sets": [
                    {"Hash Keys": [["t.a"]]},
                    {"Hash Keys": [["t.b"]]},
                    {"Group Keys": [[]]},
                ]
            },
        ),
        (
            "Group Key: a, b\n  Group Key: a\n  Group Key: ()\n  Sort Key: b\n    Group Key: b",
            {
                "Grouping Sets": [
                    {"Group Keys": [["a", "b"], ["a"], []]},
                    {"Sort Key": ["b"], "Group Keys": [["b"]]},
                ]
            },
        ),
        (
            "Tuples: inserted=1 updated=2",
            {"Tuples Inserted": 1, "Tuples Updated": 2, "Tuples Deleted": 0},
        ),
        (
            "Sampling: system ('1'::real) REPEATABLE ('42'::double precision)",
            {
                "Sampling Method": "system",
                "Sampling Parameters": ["'1'::real"],
                "Repeatable Seed": "'42'::double precision",
            },
        ),
        ("Params Evaluated: $0, $1", {"Params Evaluated": ["$0", "$1"]}),
        ("Heap Fetches: 0\n  Index Searches: 2", {"Heap Fetches": 0, "Index Searches": 2}),
    ],
)
def test_node_properties(lines: str, expected: dict[str, Any]) -> None:
    props = _root(
        f"Aggregate  (cost=0.00..1.50 rows=10 width=4) (actual rows=1 loops=1)\n  {lines}\n"
    )
    assert {k: props.get(k) for k in expected} == expected


def test_top_level_lines() -> None:
    plan = parse_one(
        "Result  (cost=0.00..0.01 rows=1 width=4) (actual time=0.001..0.001 rows=1 loops=1)\n"
        "Settings: search_path = '\"$user\", public', work_mem = '64MB', jit = 'off'\n"
        "Query Identifier: -300678885727717945\n"
        "Planning:\n  Buffers: shared hit=4 read=1\n  Memory: used=15kB  allocated=16kB\n"
        "Planning Time: 0.037 ms\n"
        "Trigger RI_ConstraintTrigger_c_16410 for constraint o_uid_fkey: time=0.059 calls=10\n"
        "Trigger for constraint fk2 on o: calls=3\n"
        "Serialization: time=6.363 ms  output=4187kB  format=text\n"
        "Execution Time: 4024.335 ms\n"
    )
    assert plan.settings == {"search_path": '"$user", public', "work_mem": "64MB", "jit": "off"}
    assert plan.props["Query Identifier"] == -300678885727717945
    assert (
        plan.props["Planning"]["Shared Read Blocks"] == 1
        and plan.props["Planning"]["Memory Used"] == 15
    )
    assert plan.props["Triggers"] == [
        {
            "Trigger Name": "RI_ConstraintTrigger_c_16410",
            "Constraint Name": "o_uid_fkey",
            "Time": 0.059,
            "Calls": 10,
        },
        {"Constraint Name": "fk2", "Relation": "o", "Calls": 3},
    ]
    assert plan.props["Serialization"] == {"Time": 6.363, "Output Volume": 4187, "Format": "text"}
    assert (plan.planning_time_ms, plan.execution_time_ms) == (0.037, 4024.335)


_SUBPLANS = """\
Seq Scan on u  (cost=10.00..20.00 rows=5 width=4)
  Filter: (NOT (hashed SubPlan 2))
  InitPlan 1 (returns $0)
    ->  Result  (cost=0.00..0.01 rows=1 width=4)
  CTE x
    ->  Seq Scan on v  (cost=0.00..1.00 rows=1 width=4)
  SubPlan 2
    ->  Seq Scan on o  (cost=0.00..5.00 rows=100 width=4)
          InitPlan 3
            ->  Result  (cost=0.00..0.01 rows=1 width=4)
"""


def test_subplans_initplans_and_ctes() -> None:
    root, init1, cte, sub2, init3 = nodes(parse_one(_SUBPLANS))
    assert [c.subplan_name for c in root.children] == [
        "InitPlan 1 (returns $0)",
        "CTE x",
        "SubPlan 2",
    ]
    assert [c.parent_relationship for c in root.children] == ["InitPlan", "InitPlan", "SubPlan"]
    assert (init1.node_type, cte.relation, sub2.relation) == ("Result", "v", "o")
    assert (init3.parent_relationship, init3.subplan_name) == ("InitPlan", "InitPlan 3")
    assert sub2.children == [init3]


def test_member_and_subquery_relationships() -> None:
    plan = parse_one(
        "Subquery Scan on s  (cost=0.00..3.00 rows=2 width=4)\n"
        "  ->  Append  (cost=0.00..3.00 rows=2 width=4)\n"
        "        Subplans Removed: 2\n"
        "        ->  Seq Scan on p1  (cost=0.00..1.00 rows=1 width=4)\n"
        "        ->  Seq Scan on p2  (cost=0.00..1.00 rows=1 width=4)\n"
    )
    _sub, app, p1, p2 = nodes(plan)
    assert (app.parent_relationship, p1.parent_relationship, p2.parent_relationship) == (
        "Subquery",
        "Member",
        "Member",
    )
    assert app.props["Subplans Removed"] == 2


@pytest.mark.parametrize(
    "text",
    [
        # terminal wrap inside the header's parentheses, a mail client's break in a filter
        "Nested Loop  (cost=0.00..2017.80 rows=15 width=133) (actual time=0.052..2.567\n"
        "rows=15 loops=1)\n"
        "  ->  Seq Scan on users u  (cost=0.00..41.40 rows=1 width=129)\n"
        "(actual time=0.020..0.092 rows=1 loops=1)\n"
        "        Filter: (username = 'depesz'::text) AND\n"
        "(added_by IS NOT NULL)\n"
        "  ->  Seq Scan on part_0 p  (cost=0.00..1976.25 rows=15 width=17) (actual time=0.031..2.471 rows=15 loops=1)\n",
    ],
)
def test_broken_lines_are_rejoined(text: str) -> None:
    root, users, part = nodes(parse_one(text))
    assert root.actual_rows == 15 and users.actual_loops == 1
    assert users.filter == "(username = 'depesz'::text) AND(added_by IS NOT NULL)"
    assert part.parent_relationship == "Inner"


@pytest.mark.parametrize("name", ["plan.json", "plan.txt"])
@pytest.mark.parametrize("width", [40, 57, 80])
def test_lines_cut_by_a_terminal(name: str, width: int) -> None:
    """Every long line cut into `width`-character pieces, as a narrow terminal copies it."""
    raw = (FORMATS / name).read_text()
    cut = "\n".join(
        ln[i : i + width] for ln in raw.split("\n") for i in range(0, max(len(ln), 1), width)
    )
    assert full_tree(parse_one(cut)) == full_tree(parse_one(raw))


# -- bad input -----------------------------------------------------------------------------------

_TRUNCATED = (ARTIFACTS / "pg15_explain_agg.json").read_text()[:5000]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("", 1, "empty"),
        ("  \n\t\n", 1, "empty"),
        ("\n\nThe qu1ck br0wn f0x | jumps ovr\n  ~~ Seq  sc@n\n", 3, "no EXPLAIN plan"),
        (_TRUNCATED, _TRUNCATED.count("\n") + 1, "cut off"),
        ('[{"Foo": 1}]', 1, '"Plan"'),
        ('\n\n{"Plan": {"Plans": []}}', 3, '"Node Type"'),
        ('{"Plan": {"Node Type": "Result", "Plans": [7]}}', 1, "malformed"),
        ("[1, 2, 3]", 1, '"Plan"'),
        ("QUERY PLAN\n----------\n(0 rows)\n", 1, "no plan node"),
        (
            '     QUERY PLAN\n-----------\n [\n   {"Plan": {"Node Type": "Seq Scan",,}}\n ]\n',
            4,
            "invalid",
        ),
        ("[" * 50000, 1, "nested too deeply"),
    ],
)
def test_bad_input(text: str, line: int, words: str) -> None:
    with pytest.raises(PlanInputError) as info:
        parse_plans(text, "paste.txt")
    err = info.value
    assert err.line == line
    assert words in err.message
    assert INTERNAL_ERROR not in err.message
    assert str(err).startswith(f"paste.txt, line {line}: ") and "\n" not in str(err)


def _all_fixture_texts() -> Iterator[Path]:
    yield from CORPUS_JSON
    yield from CORPUS_TEXT
    yield from FORMAT_FILES


def test_every_fixture_parses_to_plans() -> None:
    for path in _all_fixture_texts():
        plans = parse_file(path)
        assert plans and all(p.node_count >= 1 for p in plans), path
