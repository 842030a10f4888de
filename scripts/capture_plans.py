"""Capture real EXPLAIN output from throwaway PostgreSQL servers into sample_plans/.

    uv run python scripts/capture_plans.py [--major 18 15] [--only NAME ...]

For each major version: start a server with advisor.pgserver, build a deterministic data set,
then run every scenario twice through the server's own psql -- once as FORMAT JSON (``-At``) and
once as TEXT (default aligned output) -- keeping psql's stdout verbatim. Each capture is checked
against the scenario's expectation and the two captures must have the same plan shape (node
count, parallel-aware nodes, workers planned/launched); otherwise the scenario is re-run.
Writes sample_plans/pg<major>/*, sample_plans/manifest.toml and sample_plans/README.md.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from psycopg import sql  # noqa: E402

from advisor.pgserver import PgServer, SettingValue  # noqa: E402

OUT = ROOT / "sample_plans"
ANALYZE_OPTS = "ANALYZE, VERBOSE, BUFFERS, SETTINGS"
PLAIN_OPTS = "VERBOSE, SETTINGS"
COSTS_OFF_OPTS = "ANALYZE, VERBOSE, BUFFERS, SETTINGS, COSTS OFF"
MAX_ATTEMPTS = 5
BIG_ROWS = 2_500_000

# Server settings: defaults except that pg_stat_statements is preloaded (as on most production
# servers, and it adds "Query Identifier" to VERBOSE plans) and autovacuum is off so statistics
# do not change under us between captures.
SERVER_SETTINGS: dict[str, SettingValue] = {
    "shared_preload_libraries": "pg_stat_statements",
    "autovacuum": False,
}

# Deterministic data: md5/modulo of the row number, plus random() after a fixed setseed() (the
# inserts are serial, so the random sequence is reproducible).
DATASET_SQL = [
    "SELECT setseed(0.4242)",
    # big: ~2.5M rows. grp uniform; batch and region follow the physical order (clustered);
    # skew is heavily skewed towards 0; note is a 32-char md5.
    """CREATE TABLE big (
        id bigint NOT NULL, grp int NOT NULL, batch int NOT NULL, region int NOT NULL,
        skew int NOT NULL, amount numeric(12,2) NOT NULL, flag boolean NOT NULL,
        created timestamptz NOT NULL, note text NOT NULL)""",
    f"""INSERT INTO big
        SELECT g, g % 1000, (g - 1) / 10000, (g - 1) / {BIG_ROWS // 50},
               floor(1000 * random() ^ 4)::int, round((random() * 1000)::numeric, 2),
               random() < 0.5, timestamptz '2024-01-01 00:00:00+00' + g * interval '10 s',
               md5(g::text)
        FROM generate_series(1, {BIG_ROWS}) g""",
    "ALTER TABLE big ADD PRIMARY KEY (id)",
    # big2: 1M rows referencing big at random, for joins.
    f"""CREATE TABLE big2 AS
        SELECT g AS id, 1 + floor(random() * {BIG_ROWS})::bigint AS big_id,
               (random() * 100)::int AS weight, md5((g * 7)::text) AS tag
        FROM generate_series(1, 1000000) g""",
    "CREATE TABLE small (id int PRIMARY KEY, name text NOT NULL, threshold int NOT NULL)",
    "INSERT INTO small SELECT g, 'item ' || g, (g * 37) % 50 FROM generate_series(0, 999) g",
    # events: range-partitioned, 4 partitions of 300k rows.
    """CREATE TABLE events (id bigint NOT NULL, kind int NOT NULL, amount numeric(12,2) NOT NULL)
        PARTITION BY RANGE (id)""",
    *(
        f"CREATE TABLE events_p{i} PARTITION OF events"
        f" FOR VALUES FROM ({i * 300000 + 1}) TO ({(i + 1) * 300000 + 1})"
        for i in range(4)
    ),
    """INSERT INTO events
        SELECT g, g % 20, round((random() * 500)::numeric, 2) FROM generate_series(1, 1200000) g""",
    "CREATE TABLE scratch (id bigint, amount numeric(12,2))",
    # The same body three times: default (UNSAFE), SAFE, RESTRICTED. plpgsql so it is not inlined
    # and stays visible in the plan's Filter.
    *(
        f"""CREATE FUNCTION {name}(x int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE{label}
            AS $$ BEGIN RETURN x % 7 = 0; END $$"""
        for name, label in (
            ("is_lucky", ""),
            ("is_lucky_safe", " PARALLEL SAFE"),
            ("is_lucky_restricted", " PARALLEL RESTRICTED"),
        )
    ),
    "VACUUM ANALYZE",
    "CREATE EXTENSION pg_stat_statements",
]


# -- facts extracted from a capture (same fields from JSON and TEXT) ------------------------------


@dataclass
class Node:
    label: str  # JSON: "Node Type"; TEXT: the node line up to the costs
    parallel: bool
    planned: int | None = None
    launched: int | None = None
    single_copy: bool = False
    rows: float | None = None  # actual rows per loop
    loops: int | None = None
    worker_rows: list[float] = field(default_factory=list)
    sort_disk: int = 0  # participants whose sort spilled (leader + workers)
    worker_sort_disk: int = 0
    hash_batches: int = 0
    agg_disk: int = 0  # participants whose hash aggregate used disk
    worker_agg_disk: int = 0
    worker_jit: int = 0
    raw: Mapping[str, Any] | None = None  # JSON node (JSON captures only)

    @property
    def total_rows(self) -> float:
        return (self.rows or 0) * (self.loops or 0)


def json_facts(doc: list[dict[str, Any]]) -> list[Node]:
    out: list[Node] = []

    def walk(p: Mapping[str, Any]) -> None:
        workers: list[Mapping[str, Any]] = p.get("Workers", [])
        n = Node(
            label=p["Node Type"],
            parallel=bool(p.get("Parallel Aware")),
            planned=p.get("Workers Planned"),
            launched=p.get("Workers Launched"),
            single_copy=bool(p.get("Single Copy")),
            rows=p.get("Actual Rows"),
            loops=p.get("Actual Loops"),
            worker_rows=[w["Actual Rows"] for w in workers if "Actual Rows" in w],
            hash_batches=int(p.get("Hash Batches", 0)),
            raw=p,
        )
        n.worker_sort_disk = sum(w.get("Sort Space Type") == "Disk" for w in workers)
        n.sort_disk = n.worker_sort_disk + (p.get("Sort Space Type") == "Disk")
        n.worker_agg_disk = sum(w.get("Disk Usage", 0) > 0 for w in workers)
        n.agg_disk = n.worker_agg_disk + (p.get("Disk Usage", 0) > 0)
        n.worker_jit = sum("JIT" in w for w in workers)
        out.append(n)
        for child in p.get("Plans", []):
            walk(child)

    walk(doc[0]["Plan"])
    return out


_NODE_LINE = re.compile(r"^(\s*)(?:->  )?(.*?) +\((?:cost|actual)")
_ACTUAL = re.compile(r"actual (?:time=\S+ )?rows=([\d.]+) loops=(\d+)")
_WORKER = re.compile(r"^(\s*)Worker \d+:  ")


def text_facts(text: str) -> list[Node]:
    body = text.splitlines()[2:]  # drop the QUERY PLAN header and the dashes
    out: list[Node] = []
    worker_indent: int | None = None
    for i, line in enumerate(body):
        line = line[1:]  # psql's one-space left margin
        is_node = i == 0 or line.lstrip().startswith("->  ")
        if is_node:
            m = _NODE_LINE.match(line)
            label = m.group(2) if m else line.strip()
            a = _ACTUAL.search(line)
            out.append(
                Node(
                    label=label,
                    parallel=label.startswith("Parallel "),
                    rows=float(a.group(1)) if a else None,
                    loops=int(a.group(2)) if a else None,
                )
            )
            worker_indent = None
            continue
        if not out or not line.startswith(" "):
            continue  # footer block (Settings, Planning Time, JIT summary...)
        n = out[-1]
        indent = len(line) - len(line.lstrip())
        w = _WORKER.match(line)
        if w:
            worker_indent = len(w.group(1))
        elif worker_indent is not None and indent <= worker_indent:
            worker_indent = None
        in_worker = worker_indent is not None
        if w and (a := _ACTUAL.search(line)):
            n.worker_rows.append(float(a.group(1)))
        if m2 := re.search(r"Workers Planned: (\d+)", line):
            n.planned = int(m2.group(1))
        if m2 := re.search(r"Workers Launched: (\d+)", line):
            n.launched = int(m2.group(1))
        if "Single Copy: true" in line:
            n.single_copy = True
        if "Sort Method: external" in line:
            n.sort_disk += 1
            n.worker_sort_disk += in_worker
        if (m2 := re.search(r"Buckets: .*Batches: (\d+)", line)) is not None:
            n.hash_batches = int(m2.group(1))
        elif (m2 := re.search(r"Disk Usage: (\d+)kB", line)) and int(m2.group(1)) > 0:
            n.agg_disk += 1
            n.worker_agg_disk += in_worker
        if in_worker and line.strip() == "JIT:":
            n.worker_jit += 1
    return out


def shape(nodes: Sequence[Node]) -> list[tuple[bool, int | None, int | None]]:
    return [(n.parallel, n.planned, n.launched) for n in nodes]


def observed(body: str, fmt: str) -> list[str]:
    """Conditions present in a capture, whatever rule it targets (e.g. a spill in a PQ008 file)."""
    if fmt == "json":
        doc = json.loads(body)
        ns, jit = json_facts(doc), "JIT" in doc[0]
    else:
        ns, jit = text_facts(body), any(line == " JIT:" for line in body.splitlines())
    gathers = [n for n in ns if n.planned is not None]
    flags = {
        "gather": bool(gathers),
        "single_copy": any(n.single_copy for n in ns),
        "launched<planned": any(
            g.launched is not None and g.launched < (g.planned or 0) for g in gathers
        ),
        "spill:sort": any(n.sort_disk for n in ns),
        "spill:hash": any(n.hash_batches > 1 for n in ns),
        "spill:hashagg": any(n.agg_disk for n in ns),
        "jit": jit,
        "jit:workers": any(n.worker_jit for n in ns),
    }
    return [k for k, v in flags.items() if v]


# -- expectations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    text: str
    check: Callable[[list[Node]], bool]


def _gathers(ns: list[Node]) -> list[Node]:
    return [n for n in ns if n.planned is not None]


def _has_json(ns: list[Node], pred: Callable[[Mapping[str, Any]], bool]) -> bool:
    # Node-type checks only run on JSON captures; the shape comparison carries them to TEXT.
    return ns[0].raw is None or any(n.raw is not None and pred(n.raw) for n in ns)


SERIAL = Expect("no Gather", lambda ns: not _gathers(ns))
PARALLEL = Expect(
    "Gather with all planned workers launched",
    lambda ns: bool(_gathers(ns)) and all(g.launched == g.planned for g in _gathers(ns)),
)


def both(a: Expect, b: Expect) -> Expect:
    return Expect(f"{a.text}; {b.text}", lambda ns: a.check(ns) and b.check(ns))


def node_type(kind: str, **fields: Any) -> Expect:
    desc = kind + "".join(f" {k.replace('_', ' ')}={v}" for k, v in fields.items())
    keys = {k.replace("_", " ").title(): v for k, v in fields.items()}
    return Expect(
        f"has {desc}",
        lambda ns: _has_json(
            ns, lambda p: p["Node Type"] == kind and all(p.get(k) == v for k, v in keys.items())
        ),
    )


def parallel_node(kind: str) -> Expect:
    return Expect(
        f"has Parallel {kind}",
        lambda ns: _has_json(ns, lambda p: p["Node Type"] == kind and p["Parallel Aware"]),
    )


def serial_node(kind: str) -> Expect:
    return Expect(
        f"has non-parallel {kind}",
        lambda ns: _has_json(ns, lambda p: p["Node Type"] == kind and not p["Parallel Aware"]),
    )


SINGLE_COPY = Expect("Gather with Single Copy", lambda ns: any(n.single_copy for n in ns))
FEWER_LAUNCHED = Expect(
    "0 < Workers Launched < Workers Planned",
    lambda ns: any(0 < (g.launched or 0) < (g.planned or 0) for g in _gathers(ns)),
)
NONE_LAUNCHED = Expect(
    "Workers Launched = 0 < Workers Planned",
    lambda ns: any(g.launched == 0 and (g.planned or 0) > 0 for g in _gathers(ns)),
)
WORKER_SORT_DISK = Expect(
    "external sort on Disk in leader and workers",
    lambda ns: any(n.worker_sort_disk > 0 and n.sort_disk > n.worker_sort_disk for n in ns),
)
NO_DISK = Expect(
    "nothing spilled",
    lambda ns: all(n.sort_disk == 0 and n.agg_disk == 0 and n.hash_batches <= 1 for n in ns),
)
HASH_BATCHES = Expect("Hash Batches > 1", lambda ns: any(n.hash_batches > 1 for n in ns))
WORKER_AGG_DISK = Expect(
    "HashAggregate Disk Usage in workers", lambda ns: any(n.worker_agg_disk > 0 for n in ns)
)
WORKER_JIT = Expect("per-worker JIT", lambda ns: any(n.worker_jit > 0 for n in ns))
NO_JIT = Expect("no per-worker JIT", lambda ns: all(n.worker_jit == 0 for n in ns))


def _shares(n: Node) -> list[float]:
    """Row shares of each participant of a parallel-aware node (leader = remainder)."""
    total = n.total_rows
    if total <= 0 or not n.worker_rows:
        return []
    leader = max(total - sum(n.worker_rows), 0.0)
    return [r / total for r in [*n.worker_rows, leader]]


def _scan(ns: list[Node]) -> Node | None:
    return next((n for n in ns if n.parallel and n.worker_rows), None)


# Filters that keep rows spread over the table (grp, note, skew) keep the other scenarios even;
# only PQ205's filter picks rows clustered at the start, which the leader reads before the
# workers are up. 0.85 leaves a margin over PQ205's dominant_share threshold (0.8).
SKEWED = Expect(
    "one participant produced >= 85% of the scan's rows",
    lambda ns: (s := _scan(ns)) is not None and max(_shares(s), default=0) >= 0.85,
)
EVEN = Expect(
    "every participant produced 15-55% of the scan's rows",
    lambda ns: (
        (s := _scan(ns)) is not None
        and bool(_shares(s))
        and all(0.15 <= x <= 0.55 for x in _shares(s))
    ),
)


def gather_rows(at_least: float | None = None, at_most: float | None = None) -> Expect:
    def ok(ns: list[Node]) -> bool:
        gs = _gathers(ns)
        if not gs or gs[0].rows is None:
            return False
        r = gs[0].rows
        return (at_least is None or r >= at_least) and (at_most is None or r <= at_most)

    lo = f">= {at_least:,.0f}" if at_least is not None else ""
    hi = f"<= {at_most:,.0f}" if at_most is not None else ""
    return Expect(f"Gather returns {lo}{hi} rows", ok)


# -- scenarios ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Env:
    major: int
    jit_available: bool


Ver = Callable[[Env], Any]


@dataclass(frozen=True)
class Scenario:
    what: str
    sql: str
    rule: str | None = None
    fires: bool | Ver = False
    settings: Mapping[str, str] | Ver = field(default_factory=dict)
    setup: Sequence[str] = ()  # run in the same session before the settings
    transaction: bool = False  # BEGIN ... ROLLBACK around setup and statement
    expect: Expect | Ver = PARALLEL
    variants: Sequence[str] = ()  # extra captures: "costs_off", "plain"
    what_by_version: Ver | None = None

    def resolve(self, env: Env) -> ResolvedScenario:
        def val(x: Any) -> Any:
            return x(env) if callable(x) and not isinstance(x, Expect) else x

        fires = bool(val(self.fires))
        what = self.what_by_version(env) if self.what_by_version else self.what
        if self.rule is None:
            name = f"ok_{what}"
        else:
            name = f"{self.rule.lower()}_{'fires' if fires else 'quiet'}_{what}"
        return ResolvedScenario(
            name=name,
            sql=" ".join(self.sql.split()),
            rule=self.rule,
            fires=fires if self.rule else None,
            settings=dict(val(self.settings)),
            setup=list(self.setup),
            transaction=self.transaction,
            expect=val(self.expect),
            variants=list(self.variants),
        )


@dataclass
class ResolvedScenario:
    name: str
    sql: str
    rule: str | None
    fires: bool | None
    settings: dict[str, str]
    setup: list[str]
    transaction: bool
    expect: Expect
    variants: list[str]


GRP_AGG = "SELECT grp, count(*), sum(amount) FROM big GROUP BY grp"
FLAG_SUM = "SELECT count(*), sum(amount) FROM big WHERE flag"
JOIN = "SELECT count(*), sum(b2.weight) FROM big b JOIN big2 b2 ON b2.big_id = b.id"
# A third of big2 fits the default Parallel Hash budget (work_mem x hash_mem_multiplier x 3).
JOIN_SMALL = f"{JOIN} WHERE b2.weight < 30"
ORDERED = "SELECT id, amount, note FROM big WHERE skew > 950 ORDER BY amount"
JIT_AGG = "SELECT grp, count(*), sum(amount), avg(skew) FROM big WHERE flag GROUP BY grp"
LUCKY = "SELECT count(*) FROM big WHERE {fn}(grp)"
SIMPLE_AGG = node_type("Aggregate", partial_mode="Simple")
NO_GATHER_MERGE = Expect("no Gather Merge", lambda ns: all(n.label != "Gather Merge" for n in ns))


def _debug_parallel(env: Env) -> dict[str, str]:
    guc = "debug_parallel_query" if env.major >= 16 else "force_parallel_mode"
    return {guc: "on"}


SCENARIOS: list[Scenario] = [
    # PQ001 / PQ007: parallelism switched off or priced out
    Scenario("per_gather_zero", GRP_AGG, "PQ001", True,
             {"max_parallel_workers_per_gather": "0"}, expect=SERIAL),
    Scenario("parallel_aggregate", GRP_AGG, "PQ001",
             expect=both(PARALLEL, node_type("Aggregate", partial_mode="Finalize")),
             variants=["plain"]),
    Scenario("setup_cost", GRP_AGG, "PQ007", True,
             {"parallel_setup_cost": "100000"}, expect=SERIAL),
    Scenario("min_table_scan_size", FLAG_SUM, "PQ007", True,
             {"min_parallel_table_scan_size": "1GB"}, expect=SERIAL),
    Scenario("default_costs", FLAG_SUM, "PQ007"),
    # PQ008: parallel node types disabled
    Scenario("parallel_hash_off", JOIN, "PQ008", True, {"enable_parallel_hash": "off"},
             expect=both(PARALLEL, serial_node("Hash"))),
    Scenario("gathermerge_off", ORDERED, "PQ008", True, {"enable_gathermerge": "off"},
             expect=both(PARALLEL, NO_GATHER_MERGE)),
    Scenario("parallel_hash_join", JOIN, "PQ008",
             expect=both(PARALLEL, parallel_node("Hash Join"))),
    Scenario("gather_merge", ORDERED, "PQ008", expect=both(PARALLEL, node_type("Gather Merge"))),
    # PQ009: test-only parallel mode
    Scenario("debug_parallel_query", "SELECT count(*) FROM small", "PQ009", True,
             _debug_parallel, expect=SINGLE_COPY,
             what_by_version=lambda e: "debug_parallel_query" if e.major >= 16
             else "force_parallel_mode"),
    Scenario("serial_small", "SELECT count(*) FROM small", "PQ009", expect=SERIAL),
    # PQ10x: statement / relation hazards
    Scenario("unsafe_function", LUCKY.format(fn="is_lucky"), "PQ101", True, expect=SERIAL,
             variants=["plain", "costs_off"]),
    Scenario("safe_function", LUCKY.format(fn="is_lucky_safe"), "PQ101"),
    Scenario("current_schema", "SELECT count(*) FROM big WHERE note <> current_schema()",
             "PQ102", True, expect=SERIAL),
    Scenario("restricted_function", LUCKY.format(fn="is_lucky_restricted"), "PQ103", True,
             expect=SERIAL),
    Scenario("correlated_subquery",
             """SELECT count(*) FROM big b WHERE b.grp < 100
                AND b.skew > (SELECT s.threshold FROM small s WHERE s.id = b.grp)""",
             "PQ104", True,
             expect=both(SERIAL, Expect("has a SubPlan", lambda ns: _has_json(
                 ns, lambda p: p.get("Parent Relationship") == "SubPlan")))),
    Scenario("join_rewrite",
             """SELECT count(*) FROM big b JOIN small s ON s.id = b.grp
                WHERE b.grp < 100 AND b.skew > s.threshold""", "PQ104"),
    Scenario("insert_select",
             "INSERT INTO scratch SELECT id, amount FROM big WHERE grp < 20", "PQ105", True,
             transaction=True, expect=both(SERIAL, node_type("ModifyTable"))),
    Scenario("create_table_as",
             "CREATE TABLE scratch_ctas AS SELECT id, amount FROM big WHERE grp < 20", "PQ105",
             transaction=True),
    Scenario("data_modifying_cte",
             """WITH ins AS (INSERT INTO scratch VALUES (0, 0) RETURNING id)
                SELECT count(*), sum(amount) FROM big WHERE grp < 500""",
             "PQ106", True, transaction=True, expect=SERIAL),
    Scenario("for_update", "SELECT id FROM big WHERE grp = 7 FOR UPDATE", "PQ107", True,
             transaction=True, expect=both(SERIAL, node_type("LockRows"))),
    Scenario("no_locking", "SELECT id FROM big WHERE grp = 7", "PQ107"),
    Scenario("temp_table", "SELECT grp, count(*), sum(amount) FROM big_tmp GROUP BY grp",
             "PQ108", True,
             setup=["CREATE TEMP TABLE big_tmp AS SELECT * FROM big WHERE id <= 600000",
                    "ANALYZE big_tmp"],
             expect=both(SERIAL, Expect("scan in schema pg_temp_N", lambda ns: _has_json(
                 ns, lambda p: str(p.get("Schema", "")).startswith("pg_temp"))))),
    Scenario("regular_table", "SELECT grp, count(*), sum(amount) FROM big_copy GROUP BY grp",
             "PQ108", transaction=True,
             setup=["CREATE TABLE big_copy AS SELECT * FROM big WHERE id <= 600000",
                    "ANALYZE big_copy"]),
    Scenario("materialized_cte",
             """WITH x AS MATERIALIZED (SELECT grp, amount FROM big WHERE flag)
                SELECT count(*), sum(amount) FROM x WHERE grp < 100""",
             "PQ110", True, expect=node_type("CTE Scan")),
    Scenario("not_materialized",
             """WITH x AS NOT MATERIALIZED (SELECT grp, amount FROM big WHERE flag)
                SELECT count(*), sum(amount) FROM x WHERE grp < 100""", "PQ110"),
    Scenario("limit_in_subquery",
             """SELECT count(*), sum(amount)
                FROM (SELECT * FROM big WHERE grp < 500 LIMIT 2000000) s""",
             "PQ111", True, expect=SERIAL),
    # PQ112: partial aggregation impossible
    Scenario("count_distinct", "SELECT count(DISTINCT skew) FROM big WHERE grp < 20", "PQ112",
             True, expect=SIMPLE_AGG),
    Scenario("string_agg",
             "SELECT grp, length(string_agg(note, ',')) FROM big WHERE note LIKE 'a%' GROUP BY grp",
             "PQ112", fires=lambda e: e.major < 16,
             expect=lambda e: SIMPLE_AGG if e.major < 16
             else both(PARALLEL, node_type("Aggregate", partial_mode="Partial"))),
    Scenario("grouping_sets",
             "SELECT region, flag, count(*) FROM big GROUP BY GROUPING SETS ((region), (flag))",
             "PQ112", True, expect=SIMPLE_AGG),
    Scenario("partial_aggregate", "SELECT count(*), sum(amount), avg(skew) FROM big", "PQ112",
             expect=both(PARALLEL, node_type("Aggregate", partial_mode="Partial"))),
    Scenario("reloption_zero", "SELECT count(*), sum(weight) FROM big2", "PQ114", True,
             setup=["ALTER TABLE big2 SET (parallel_workers = 0)"], transaction=True,
             expect=SERIAL),
    # PQ116: eligible but rejected on cost
    Scenario("wide_result", "SELECT * FROM big WHERE grp <> 0", "PQ116", True, expect=SERIAL),
    # A CPU-heavy statement over a 2.6 MB table: below min_parallel_table_scan_size, no worker.
    Scenario("small_table",
             "SELECT count(*) FROM codes "
             "WHERE regexp_replace(repeat(pad, 2), '[0-9]', 'x', 'g') LIKE '%abc%'",
             "PQ113", True, expect=SERIAL,
             setup=["CREATE TABLE IF NOT EXISTS codes AS SELECT g AS id, md5(g::text) AS pad "
                    "FROM generate_series(1, 40000) g", "ANALYZE codes"]),
    Scenario("selective", "SELECT * FROM big WHERE note LIKE 'ab%'", "PQ116"),
    # PQ201: workers planned but not launched
    Scenario("pool_exhausted", GRP_AGG, "PQ201", True,
             {"max_parallel_workers_per_gather": "4", "max_parallel_workers": "1"},
             expect=FEWER_LAUNCHED),
    Scenario("no_workers", GRP_AGG, "PQ201", True,
             {"max_parallel_workers_per_gather": "4", "max_parallel_workers": "0"},
             expect=NONE_LAUNCHED),
    Scenario("all_launched", GRP_AGG, "PQ201", settings={"max_parallel_workers_per_gather": "4"}),
    # PQ203: spills
    Scenario("sort_spill", ORDERED, "PQ203", True, {"work_mem": "64kB"},
             expect=both(PARALLEL, WORKER_SORT_DISK)),
    Scenario("hash_batches", JOIN_SMALL, "PQ203", True, {"work_mem": "1MB"},
             expect=both(PARALLEL, HASH_BATCHES)),
    Scenario("hashagg_disk",
             "SELECT grp, batch, count(*) FROM big GROUP BY grp, batch", "PQ203", True,
             {"work_mem": "1MB"}, expect=both(PARALLEL, WORKER_AGG_DISK)),
    Scenario("enough_work_mem", ORDERED, "PQ203", settings={"work_mem": "64MB"},
             expect=both(PARALLEL, NO_DISK)),
    # PQ204: JIT in every worker
    Scenario("jit_per_worker", JIT_AGG, "PQ204", fires=lambda e: e.jit_available,
             settings={"max_parallel_workers_per_gather": "4", "jit": "on", "jit_above_cost": "0",
                       "jit_inline_above_cost": "0", "jit_optimize_above_cost": "0"},
             expect=lambda e: both(PARALLEL, WORKER_JIT if e.jit_available else NO_JIT),
             what_by_version=lambda e: "jit_per_worker" if e.jit_available else "jit_unavailable"),
    Scenario("jit_off", JIT_AGG, "PQ204",
             settings={"max_parallel_workers_per_gather": "4", "jit": "off"},
             expect=both(PARALLEL, NO_JIT)),
    # PQ205: uneven work
    Scenario("leader_skew",
             "SELECT count(*), sum(amount) FROM big WHERE created < '2024-01-01 08:20:00+00'",
             "PQ205", True,
             expect=both(PARALLEL, SKEWED)),
    Scenario("even", "SELECT count(*), sum(amount) FROM big WHERE grp < 500", "PQ205",
             expect=both(PARALLEL, EVEN)),
    # PQ206: Gather as a bottleneck
    Scenario("gather_many_rows", "SELECT id, amount FROM big WHERE flag", "PQ206", True,
             {"parallel_tuple_cost": "0"}, expect=both(PARALLEL, gather_rows(at_least=1e6))),
    Scenario("aggregate", "SELECT flag, count(*) FROM big GROUP BY flag", "PQ206",
             expect=both(PARALLEL, gather_rows(at_most=100))),
    # ordinary good plans
    Scenario("parallel_hash_join", JOIN_SMALL, variants=["costs_off"],
             expect=both(PARALLEL, both(parallel_node("Hash Join"), NO_DISK))),
    Scenario("parallel_append", "SELECT kind, count(*), sum(amount) FROM events GROUP BY kind",
             expect=both(PARALLEL, parallel_node("Append"))),
    Scenario("parallel_index_only_scan",
             "SELECT count(*) FROM big WHERE id BETWEEN 1000000 AND 1500000",
             expect=both(PARALLEL, parallel_node("Index Only Scan"))),
    Scenario("window_over_gather_merge",
             """SELECT grp, id, rank() OVER (PARTITION BY grp ORDER BY amount)
                FROM big WHERE skew > 950""",
             expect=both(PARALLEL, both(node_type("WindowAgg"), node_type("Gather Merge")))),
    Scenario("oltp_pk_lookup", "SELECT * FROM big WHERE id = 123456",
             expect=both(SERIAL, node_type("Index Scan"))),
]  # fmt: skip


# -- running psql ------------------------------------------------------------------------------


class Psql:
    def __init__(self, pg: PgServer) -> None:
        path = pg.psql_path() or shutil.which("psql")
        if path is None:
            raise SystemExit(f"no psql for PostgreSQL {pg.major}")
        self.path = str(path)
        self.env = pg.client_env() | {"LC_ALL": "C", "LANG": "C"}
        self.env.pop("PSQL_PAGER", None)
        self.env.pop("PAGER", None)

    def run(self, commands: Sequence[str], *, unaligned: bool) -> str:
        # -q only hides command tags (SET, BEGIN); EXPLAIN output is as psql prints it.
        args = [self.path, "-X", "-q", "-v", "ON_ERROR_STOP=1"] + (["-At"] if unaligned else [])
        for c in commands:
            args += ["-c", c]
        res = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=600)
        if res.returncode != 0:
            raise RuntimeError(f"psql failed: {res.stderr}\ncommands: {commands}")
        return res.stdout


def session(sc: ResolvedScenario, statement: str) -> list[str]:
    cmds = ["BEGIN"] if sc.transaction else []
    cmds += sc.setup
    cmds += [f"SET {k} = '{v}'" for k, v in sc.settings.items()]
    cmds.append(statement)
    if sc.transaction:
        cmds.append("ROLLBACK")
    return cmds


@dataclass
class Capture:
    file: str
    scenario: ResolvedScenario
    fmt: str
    options: str
    attempts: int
    expect_met: bool
    note: str = ""
    observed: list[str] = field(default_factory=list)


def capture_scenario(psql: Psql, sc: ResolvedScenario, outdir: Path) -> list[Capture]:
    def explain(opts: str) -> str:
        return f"EXPLAIN ({opts}) {sc.sql}"

    json_opts, text_opts = f"{ANALYZE_OPTS}, FORMAT JSON", ANALYZE_OPTS
    problem = ""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        js = psql.run(session(sc, explain(json_opts)), unaligned=True)
        tx = psql.run(session(sc, explain(text_opts)), unaligned=False)
        jn, tn = json_facts(json.loads(js)), text_facts(tx)
        problems = []
        if shape(jn) != shape(tn):
            problems.append(f"JSON/TEXT shapes differ: {shape(jn)} vs {shape(tn)}")
        if not sc.expect.check(jn):
            problems.append(f"JSON: expected {sc.expect.text}")
        if not sc.expect.check(tn):
            problems.append(f"TEXT: expected {sc.expect.text}")
        problem = "; ".join(problems)
        if not problem:
            break
        print(f"    attempt {attempt}: {problem}", flush=True)
    ok = not problem
    caps = []
    for ext, body, fmt, opts in (("json", js, "json", json_opts), ("txt", tx, "text", text_opts)):
        name = f"{sc.name}.{ext}"
        (outdir / name).write_text(body)
        caps.append(
            Capture(
                f"{outdir.name}/{name}", sc, fmt, opts, attempt, ok, problem, observed(body, fmt)
            )
        )
    for variant in sc.variants:
        forms = (
            [("txt", "text", COSTS_OFF_OPTS)]
            if variant == "costs_off"
            else [
                ("json", "json", f"{PLAIN_OPTS}, FORMAT JSON"),
                ("txt", "text", PLAIN_OPTS),
            ]
        )
        for ext, fmt, opts in forms:
            # Same plan as the main capture? (Without ANALYZE there is no Workers Launched.)
            width = 2 if variant == "plain" else 3
            want = [s[:width] for s in shape(jn)]
            tries, note = 0, "shape differs"
            while note and tries < MAX_ATTEMPTS:
                tries += 1
                body = psql.run(session(sc, explain(opts)), unaligned=fmt == "json")
                got = json_facts(json.loads(body)) if fmt == "json" else text_facts(body)
                note = "" if [s[:width] for s in shape(got)] == want else "shape differs"
            name = f"{sc.name}_{variant}.{ext}"
            (outdir / name).write_text(body)
            caps.append(
                Capture(
                    f"{outdir.name}/{name}",
                    sc,
                    fmt,
                    opts,
                    tries,
                    not note,
                    note,
                    observed(body, fmt),
                )
            )
    return caps


_LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def capture_auto_explain(pg: PgServer, psql: Psql, outdir: Path) -> list[Capture]:
    """Run two statements with auto_explain loaded; copy its log records verbatim."""
    statements = [
        ResolvedScenario("auto_explain_parallel_aggregate", GRP_AGG, "PQ201", False, {}, [],
                         False, PARALLEL, []),
        ResolvedScenario("auto_explain_pool_exhausted", GRP_AGG, "PQ201", True,
                         {"max_parallel_workers_per_gather": "4", "max_parallel_workers": "1"},
                         [], False, FEWER_LAUNCHED, []),
    ]  # fmt: skip
    caps = []
    for fmt in ("json", "text"):
        ae = {
            "auto_explain.log_min_duration": "0",
            "auto_explain.log_analyze": "on",
            "auto_explain.log_verbose": "on",
            "auto_explain.log_buffers": "on",
            "auto_explain.log_settings": "on",
            "auto_explain.log_format": fmt,
        }
        records: list[str] = []
        for st in statements:
            start = pg.log_path.stat().st_size
            cmds = ["LOAD 'auto_explain'", *session(st, st.sql)]
            cmds[1:1] = [f"SET {k} = '{v}'" for k, v in ae.items()]
            psql.run(cmds, unaligned=True)
            time.sleep(0.2)  # let the server flush its log
            with pg.log_path.open(errors="replace") as f:
                f.seek(start)
                new = f.read()
            plans = [r for r in _split_log(new) if "plan:" in r]
            records += plans
            ok = len(plans) == 1 and st.expect.check(_log_facts(plans[0], fmt))
            opts = ", ".join(f"{k}={v}" for k, v in ae.items())
            note = "" if ok else f"expected one logged plan with {st.expect.text}"
            caps.append(Capture(f"{outdir.name}/auto_explain_{fmt}.log", st, f"auto_explain_{fmt}",
                                opts, 1, ok, note))  # fmt: skip
        (outdir / f"auto_explain_{fmt}.log").write_text("".join(records))
    return caps


def _log_facts(record: str, fmt: str) -> list[Node]:
    """Plan facts from one auto_explain record: a LOG line, then the plan indented by a tab."""
    body = [line.removeprefix("\t") for line in record.splitlines()[1:]]
    if fmt == "json":
        return json_facts([json.loads("\n".join(body))])
    # Drop "Query Text:", then give text_facts the psql layout it expects.
    return text_facts("\n".join(["", "", *(" " + line for line in body[1:])]))


def _split_log(text: str) -> Iterator[str]:
    rec: list[str] = []
    for line in text.splitlines(keepends=True):
        if _LOG_RECORD.match(line) and rec:
            yield "".join(rec)
            rec = []
        rec.append(line)
    if rec:
        yield "".join(rec)


# -- manifest and README -----------------------------------------------------------------------


def toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def manifest_entry(c: Capture, version: str, version_num: int) -> dict[str, Any]:
    sc = c.scenario
    return {
        "file": c.file,
        "server_version": version,
        "server_version_num": version_num,
        "scenario": sc.name,
        "format": c.fmt,
        "sql": sc.sql,
        "setup": sc.setup,
        "settings": sc.settings,
        "transaction": "BEGIN ... ROLLBACK" if sc.transaction else "",
        "explain_options": c.options,
        "rule": sc.rule or "",
        "fires": sc.fires if sc.fires is not None else False,
        "expect": sc.expect.text,
        "expect_met": c.expect_met,
        "attempts": c.attempts,
        "problem": c.note,
        "observed": c.observed,
    }


def render_manifest(entries: list[dict[str, Any]], datasets: Mapping[str, Any]) -> str:
    out = [
        "# Generated by scripts/capture_plans.py -- do not edit by hand.",
        "# One [[plan]] per file (auto_explain logs: one per statement they contain).",
        "# fires: whether `rule` should fire on this capture (false with rule = '' for plain",
        "# examples); expect: what the script checked; expect_met: whether that held;",
        "# observed: conditions found in the file whatever its rule (empty for auto_explain logs).",
        "",
    ]
    for major, ds in sorted(datasets.items(), reverse=True):
        out.append(f"[dataset.{major}]")
        out += [f"{k} = {toml_value(v)}" for k, v in ds.items()]
        out.append("")
    for e in entries:
        out.append("[[plan]]")
        out += [f"{k} = {toml_value(v)}" for k, v in e.items()]
        out.append("")
    return "\n".join(out)


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    if isinstance(v, str):
        return toml_str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{toml_str(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


def render_readme(entries: list[dict[str, Any]], datasets: Mapping[str, Any]) -> str:
    def cell(s: str) -> str:
        return s.replace("|", "\\|")

    lines = [
        "# sample_plans",
        "",
        "Generated by `scripts/capture_plans.py`; do not edit by hand. Regenerate with",
        "",
        "    uv run python scripts/capture_plans.py            # all versions (18, 15)",
        "    uv run python scripts/capture_plans.py --major 15 # one version, keeps the others",
        "",
        "Each scenario runs the same statement twice through the server's own `psql`:",
        "`<name>.json` is `psql -X -At` output of `EXPLAIN (ANALYZE, VERBOSE, BUFFERS, SETTINGS,",
        "FORMAT JSON)`, `<name>.txt` the default aligned output (header, dashes, `(N rows)`).",
        "Session settings are `SET` in the same psql call, so they show in the plan's `Settings`.",
        "`_plain` files are EXPLAIN without ANALYZE, `_costs_off` files use COSTS OFF,",
        "`auto_explain_<fmt>.log` are verbatim server-log records written by auto_explain.",
        "Scenario names: `<rule>_<fires|quiet>_<what>`, or `ok_<what>` for ordinary good plans.",
        "`manifest.toml` has the exact SQL, setup, settings, options and expectations per file.",
        "",
        "Data (deterministic; see DATASET_SQL in the script):",
        "",
        *(
            f"* PG {m}: " + "; ".join(f"`{t}` {desc}" for t, desc in d["tables"].items())
            for m, d in sorted(datasets.items(), reverse=True)
        ),
        "",
        "| file | PG | rule | fires | query | settings | expected | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        settings = ", ".join(f"{k}={v}" for k, v in e["settings"].items())
        if e["setup"]:
            settings = "; ".join([*e["setup"], settings] if settings else e["setup"])
        if e["transaction"]:
            settings = f"BEGIN/ROLLBACK; {settings}" if settings else "BEGIN/ROLLBACK"
        ver = e["server_version"].split()[1]
        lines.append(
            f"| `{e['file']}` | {ver} | {e['rule']} | {'yes' if e['fires'] else 'no'} "
            f"| `{cell(e['sql'])}` | {cell(settings)} | {cell(e['expect'])} "
            f"| {'yes' if e['expect_met'] else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


# -- main --------------------------------------------------------------------------------------


def build_dataset(pg: PgServer) -> dict[str, Any]:
    with pg.connect(autocommit=True) as conn:
        for stmt in DATASET_SQL:
            conn.execute(stmt)
        tables = {}
        for name in ("big", "big2", "small", "events"):
            # Exact counts: reltuples comes from ANALYZE's random sample and varies per run.
            row = conn.execute(
                sql.SQL(
                    "SELECT (SELECT count(*) FROM {0}), coalesce("
                    " (SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree({1})),"
                    " pg_total_relation_size({1}))"
                ).format(sql.Identifier(name), sql.Literal(name))
            ).fetchone()
            assert row is not None
            tables[name] = f"{row[0]:,} rows, {row[1] / 2**20:.0f} MB with indexes"
        jit = conn.execute("SELECT pg_jit_available()").fetchone()
    return {"tables": tables, "jit_available": bool(jit and jit[0])}


def capture_version(
    major: int, only: set[str] | None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    t0 = time.perf_counter()
    with PgServer(major, settings=SERVER_SETTINGS) as pg:
        print(f"PostgreSQL {major}: {pg.version}  [{pg.bin.path}]", flush=True)
        dataset = build_dataset(pg)
        print(f"  data built in {time.perf_counter() - t0:.1f}s: {dataset['tables']}", flush=True)
        env = Env(major=major, jit_available=dataset["jit_available"])
        outdir = OUT / f"pg{major}"
        if only is None:
            shutil.rmtree(outdir, ignore_errors=True)
        outdir.mkdir(parents=True, exist_ok=True)
        psql = Psql(pg)
        caps: list[Capture] = []
        for s in SCENARIOS:
            sc = s.resolve(env)
            if only is not None and sc.name not in only and s.what not in only:
                continue
            t = time.perf_counter()
            got = capture_scenario(psql, sc, outdir)
            status = "ok" if got[0].expect_met else f"NOT AS INTENDED ({got[0].note})"
            print(f"  {sc.name:45s} {time.perf_counter() - t:5.1f}s  {status}", flush=True)
            caps += got
        if only is None:
            caps += capture_auto_explain(pg, psql, outdir)
        entries = [manifest_entry(c, pg.version, pg.version_num) for c in caps]
    dataset["capture_seconds"] = round(time.perf_counter() - t0, 1)
    print(f"  PostgreSQL {major} done in {dataset['capture_seconds']}s", flush=True)
    return entries, dataset


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--major", type=int, nargs="+", default=[18, 15])
    ap.add_argument("--only", nargs="+", help="re-capture only these scenarios (name or 'what')")
    args = ap.parse_args(argv)
    only = set(args.only) if args.only else None

    # Keep other versions' (and, with --only, other scenarios') entries from the last run.
    old_entries: list[dict[str, Any]] = []
    old_datasets: dict[str, Any] = {}
    if (OUT / "manifest.toml").exists():
        old = tomllib.loads((OUT / "manifest.toml").read_text())
        old_entries, old_datasets = old.get("plan", []), old.get("dataset", {})
    entries: list[dict[str, Any]] = []
    datasets = dict(old_datasets)
    t0 = time.perf_counter()
    for major in args.major:
        new, ds = capture_version(major, only)
        new_files = {e["file"] for e in new}
        prefix = f"pg{major}/"
        old_entries = [
            e
            for e in old_entries
            if not (e["file"].startswith(prefix) and (only is None or e["file"] in new_files))
        ]
        if only is not None:
            ds = {**datasets.get(str(major), {}), "tables": ds["tables"]}
        datasets[str(major)] = ds
        entries += new
    entries = sorted(old_entries + entries, key=lambda e: (-e["server_version_num"], e["file"]))
    (OUT / "manifest.toml").write_text(render_manifest(entries, datasets))
    (OUT / "README.md").write_text(render_readme(entries, datasets))
    tomllib.loads((OUT / "manifest.toml").read_text())  # fail loudly on a TOML bug
    bad = sorted({e["file"] for e in entries if not e["expect_met"]})
    print(f"total {time.perf_counter() - t0:.0f}s; {len(entries)} manifest entries", flush=True)
    for f in bad:
        print(f"  not as intended: {f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
