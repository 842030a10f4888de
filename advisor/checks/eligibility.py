"""PQ1xx: why a statement got no (or fewer) parallel workers, judged from the plan alone.

Every rule here looks for a *cause* the plan shows (a function call, a SubPlan, a ModifyTable,
a LockRows, a temporary relation, a materialised CTE, an aggregate that cannot be split) next to
a *large* serial read, because a cause next to a tiny read costs nothing. "Large" is the card
threshold `large_rows`: rows one pass of a scan reads (actual rows plus rows its filter removed
when analysed, else the planner's estimate). PQ116 is what is left: a large serial scan and none
of the causes, so the planner most likely priced the parallel plan higher.

Layer letters (A to E) and table numbers refer to knowledge/parallel-query.md §1.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from advisor.checks.base import (
    SCAN_TYPES,
    format_bytes,
    min_table_blocks,
    plain,
    plan_has_gather,
    scan_blocks,
    setting,
    setting_bytes,
    setting_in_effect,
    setting_number,
    size_rule_workers,
    size_text,
    under_gather,
    where,
)
from advisor.checks.workload import pgss_pq106, pgss_pq107, pgss_pq111, pgss_pq112
from advisor.engine import Card, Evidence, Facts, check
from advisor.plan import Plan, PlanNode

# -- numbers --------------------------------------------------------------------------------------


def _n(value: float) -> str:
    """1234567 -> '1,234,567' (rows are whole numbers even when PG 18 prints 1000.00)."""
    return f"{value:,.0f}"


def _rows(value: float | None) -> str:
    """'1 row', '63,900 rows', 'an unknown number of rows'."""
    if value is None:
        return "an unknown number of rows"
    return "1 row" if round(value) == 1 else f"{_n(value)} rows"


def rows_out(node: PlanNode) -> float | None:
    """Rows a node handed to its parent over all loops (actual when analysed, else estimated)."""
    if node.actual_rows is not None:
        return node.actual_rows * (node.actual_loops if node.actual_loops is not None else 1.0)
    return node.plan_rows


# Nodes that read their whole input before returning a row: a LIMIT above them does not
# shorten the scan below them.
_BLOCKING = frozenset({"Sort", "Hash", "SetOp", "Recursive Union"})


def _limit_fraction(ancestors: tuple[PlanNode, ...]) -> float:
    """For an estimated plan: the share of its estimated rows a scan really reads because a
    LIMIT above it stops early (1.0 when a Sort, Hash or non-streaming aggregate is between)."""
    for i in range(len(ancestors) - 1, -1, -1):
        node = ancestors[i]
        blocking = node.node_type in _BLOCKING or (
            node.node_type == "Aggregate" and node.strategy != "Sorted"
        )
        if blocking:
            return 1.0
        if node.parent_relationship in ("SubPlan", "InitPlan"):
            return 1.0
        if node.node_type == "Limit" and i + 1 < len(ancestors):
            child = ancestors[i + 1]
            if node.plan_rows is not None and child.plan_rows:
                return min(1.0, node.plan_rows / child.plan_rows)
            return 1.0
    return 1.0


@dataclass(frozen=True, slots=True)
class Read:
    """One scan and how many rows one pass of it reads."""

    node: PlanNode
    rows: float
    actual: bool

    @property
    def text(self) -> str:
        """'1,000,000 rows' (actual) or 'an estimated 333,333 rows'."""
        if self.actual:
            return f"{_n(self.rows)} rows"
        if "Filter" in self.node.props:  # the estimate counts rows its filter lets through
            return f"at least an estimated {_n(self.rows)} rows"
        return f"an estimated {_n(self.rows)} rows"

    @property
    def kind(self) -> str:
        return "actual" if self.actual else "estimated"


def scan_read(node: PlanNode, ancestors: tuple[PlanNode, ...] = ()) -> Read | None:
    """Rows one pass of a scan reads. Per pass, not summed over loops: the inner side of a
    nested loop that looks up one row 200,000 times is 200,000 tiny reads, not a large one."""
    if node.node_type not in SCAN_TYPES:
        return None
    if node.actual_rows is not None:
        if node.never_executed:
            return Read(node, 0.0, True)
        removed = node.props.get("Rows Removed by Filter") or 0
        removed = float(removed) if isinstance(removed, int | float) else 0.0
        return Read(node, node.actual_rows + removed, True)
    if node.plan_rows is None:
        return None
    return Read(node, node.plan_rows * _limit_fraction(ancestors), False)


def serial_reads(plan: Plan, large: float) -> list[Read]:
    """Large scans that run in one process: not parallel-aware and not below a Gather."""
    out = []
    for node, anc in plan.walk():
        if node.parallel_aware or under_gather(anc):
            continue
        read = scan_read(node, anc)
        if read is not None and read.rows >= large:
            out.append(read)
    return sorted(out, key=lambda r: -r.rows)


def read_text(facts: Facts, plan: Plan, read: Read) -> str:
    """'2,500,000 rows (260.4MB, 4 workers by the size rule)' when BUFFERS shows the table size
    (the count is before the max_parallel_workers_per_gather cap)."""
    blocks = scan_blocks(read.node)
    if blocks is None:
        return read.text
    return f"{read.text} ({size_text(blocks, min_table_blocks(facts, plan))})"


def _subtree(node: PlanNode) -> Iterator[tuple[PlanNode, tuple[PlanNode, ...]]]:
    return node.walk()


def _returned(plan: Plan) -> float | None:
    """Rows the statement hands to the client."""
    return rows_out(plan.root)


def _gain_visible(plan: Plan, rows: float, share: float) -> bool:
    """Parallel workers only pay off when the statement returns much less than it reads; a
    statement that ships nearly every row it reads to the client is bound by that transfer."""
    returned = _returned(plan)
    return returned is None or returned < rows * share


# -- temporary relations --------------------------------------------------------------------------

_TEMP_SCHEMA = re.compile(r"^pg_temp(_\d+)?$")


def is_temp(node: PlanNode) -> bool:
    """VERBOSE plans name the schema `pg_temp` (or `pg_temp_N`); without VERBOSE, a scan that
    went through local buffers (BUFFERS: "local hit/read") reads a temporary relation."""
    if node.schema is not None:
        return bool(_TEMP_SCHEMA.match(node.schema))
    if node.relation is None or node.node_type not in SCAN_TYPES:
        return False
    local = sum(
        float(v)
        for k in ("Local Hit Blocks", "Local Read Blocks")
        if isinstance(v := node.props.get(k), int | float)
    )
    return local > 0


# -- expressions and the functions they call ------------------------------------------------------

# Node keys whose values are expressions as ruleutils deparses them.
EXPR_KEYS = (
    "Output",
    "Filter",
    "Join Filter",
    "Index Cond",
    "Recheck Cond",
    "Hash Cond",
    "Merge Cond",
    "One-Time Filter",
    "TID Cond",
    "Function Call",
    "Table Function Call",
    "Sort Key",
    "Group Key",
    "Presorted Key",
    "Order By",
    "Cache Key",
    "Run Condition",
    "Hash Key",
)


def expressions(node: PlanNode) -> Iterator[tuple[str, str]]:
    """(key, expression text) for every expression EXPLAIN printed on a node."""
    for key in EXPR_KEYS:
        value = node.props.get(key)
        if isinstance(value, str):
            yield key, value
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, str):
                    yield key, item


_STRING = re.compile(r"'(?:[^']|'')*'")
_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
# `::type`, `::schema.type`, `::character varying(20)[]`, `::timestamp(3) with time zone`
_CAST = re.compile(
    r"::\s*" + _IDENT + r"(?:\." + _IDENT + r")?"
    r"(?:\s+(?:varying|precision))?(?:\(\d+(?:,\s*\d+)?\))?"
    r"(?:\s+(?:with|without)\s+time\s+zone)?(?:\[\])*"
)
_CALL = re.compile(r'(?<![\w$."])(' + _IDENT + r")(?:\.(" + _IDENT + r"))?\(")


@dataclass(frozen=True, slots=True)
class Call:
    """One function call as printed in a plan: `public.risky_flag(l.amount)`."""

    name: str  # unquoted
    schema: str | None  # only when the plan printed one

    @property
    def display(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


def _unquote(ident: str) -> str | None:
    """Identifier as stored; None for an unquoted word with capitals, which ruleutils never
    prints for a function name: it is SQL syntax (COALESCE, ANY, ROW, EXTRACT, OVER, ...)."""
    if ident.startswith('"'):
        return ident[1:-1].replace('""', '"')
    return ident if ident == ident.lower() else None


def function_calls(expr: str) -> list[Call]:
    """Function calls in one deparsed expression, in order, without repeats. String literals
    and casts (`::numeric(10,2)`) are removed first; SQL syntax in capitals is not a call."""
    text = _CAST.sub("", _STRING.sub("''", expr))
    seen: dict[tuple[str | None, str], Call] = {}
    for m in _CALL.finditer(text):
        first, second = m.group(1), m.group(2)
        schema, name = (first, second) if second else (None, first)
        uname = _unquote(name)
        uschema = _unquote(schema) if schema else None
        if uname is None or (schema is not None and uschema is None):
            continue
        seen.setdefault((uschema, uname), Call(uname, uschema))
    return list(seen.values())


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Built-ins that are PARALLEL UNSAFE in pg_catalog, 13 to 18 (§1 Table 1A notes; checked
# against pg_proc of 15.18 and 18.6).
UNSAFE_BUILTINS = _names(
    """nextval currval setval lastval set_config current_schema current_schemas txid_current
    txid_current_if_assigned pg_current_xact_id pg_current_xact_id_if_assigned pg_export_snapshot
    query_to_xml query_to_xmlschema query_to_xml_and_xmlschema cursor_to_xml cursor_to_xmlschema
    brin_summarize_new_values brin_summarize_range brin_desummarize_range gin_clean_pending_list
    ts_rewrite ts_stat pg_logical_emit_message pg_sequence_last_value loread lowrite"""
)
_UNSAFE_PREFIXES = ("lo_",)

# Built-ins that are PARALLEL RESTRICTED: they keep the scan they filter in the leader (PQ103).
RESTRICTED_BUILTINS = _names(
    """random random_normal setseed pg_backend_pid inet_client_addr inet_client_port
    inet_server_addr inet_server_port current_query pg_cursor pg_prepared_statement pg_notify
    pg_listening_channels pg_trigger_depth pg_my_temp_schema pg_conf_load_time"""
)
_RESTRICTED_PREFIXES = ("pg_advisory_", "pg_try_advisory_", "pg_stat_get_")

# Common built-ins (safe unless listed above). A name outside this list is only *suspected* to
# be a user function: the list is deliberately not the whole catalogue, and the finding says how
# to confirm. Every name was checked to exist in pg_catalog.
COMMON_BUILTINS = _names(
    """abs ceil ceiling floor round trunc sign sqrt cbrt power pow exp ln log log10 mod div pi
    degrees radians sin cos tan asin acos atan atan2 width_bucket gcd lcm factorial scale
    length char_length character_length octet_length bit_length lower upper initcap btrim ltrim
    rtrim lpad rpad left right substr substring strpos position replace translate concat
    concat_ws format repeat reverse split_part starts_with md5 sha224 sha256 sha384 sha512 encode
    decode ascii chr quote_ident quote_literal quote_nullable regexp_replace regexp_match
    regexp_matches regexp_split_to_array regexp_split_to_table regexp_count regexp_like
    regexp_instr regexp_substr to_hex unistr normalize string_to_array string_to_table
    array_to_string textlen texticlike textlike like_escape overlay
    now clock_timestamp statement_timestamp transaction_timestamp timeofday date_trunc date_part
    date_bin extract age make_date make_time make_timestamp make_timestamptz make_interval
    justify_days justify_hours justify_interval isfinite to_char to_date to_number to_timestamp
    timezone generate_series generate_subscripts unnest array_agg array_append array_prepend
    array_cat array_length array_lower array_upper array_ndims array_dims array_position
    array_positions array_remove array_replace array_fill cardinality trim_array
    count sum avg min max string_agg bool_and bool_or every bit_and bit_or bit_xor stddev
    stddev_pop stddev_samp variance var_pop var_samp corr covar_pop covar_samp regr_slope
    regr_intercept regr_count regr_r2 regr_avgx regr_avgy regr_sxx regr_sxy regr_syy
    percentile_cont percentile_disc mode rank dense_rank percent_rank cume_dist row_number ntile
    lag lead first_value last_value nth_value json_agg jsonb_agg json_object_agg jsonb_object_agg
    json_agg_strict jsonb_agg_strict xmlagg range_agg range_intersect_agg
    json_build_object jsonb_build_object json_build_array jsonb_build_array to_json to_jsonb
    row_to_json array_to_json json_array_length jsonb_array_length json_each jsonb_each
    json_each_text jsonb_each_text json_extract_path jsonb_extract_path json_extract_path_text
    jsonb_extract_path_text json_object_keys jsonb_object_keys json_array_elements
    jsonb_array_elements json_array_elements_text jsonb_array_elements_text json_typeof
    jsonb_typeof jsonb_set jsonb_insert jsonb_pretty jsonb_strip_nulls json_strip_nulls
    jsonb_path_query jsonb_path_exists jsonb_path_match jsonb_path_query_array
    jsonb_path_query_first json_populate_record jsonb_populate_record json_to_record
    jsonb_to_record json_to_recordset jsonb_to_recordset jsonb_object json_object
    num_nonnulls num_nulls gen_random_uuid uuidv4 uuidv7 current_setting current_database
    current_user session_user version host hostmask masklen netmask network broadcast family
    set_masklen abbrev inet_merge int2 int4 int8 float4 float8 numeric bool date time timestamp
    timestamptz interval text isempty lower_inc upper_inc lower_inf upper_inf int4range
    int8range numrange daterange tsrange tstzrange range_merge multirange to_tsvector
    to_tsquery plainto_tsquery phraseto_tsquery websearch_to_tsquery ts_rank ts_rank_cd
    ts_headline setweight strip numnode querytree tsvector_to_array array_to_tsvector xpath
    xpath_exists xmlexists pg_sleep pg_typeof pg_column_size pg_relation_size
    pg_total_relation_size pg_table_size pg_indexes_size pg_database_size pg_size_pretty
    pg_size_bytes pg_get_expr pg_get_indexdef pg_get_viewdef pg_get_constraintdef
    pg_get_functiondef pg_get_userbyid pg_has_role has_table_privilege has_schema_privilege
    has_database_privilege has_column_privilege has_function_privilege obj_description
    col_description shobj_description format_type to_regclass to_regtype to_regproc
    pg_input_is_valid pg_postmaster_start_time pg_is_in_recovery pg_last_xact_replay_timestamp
    pg_current_wal_lsn pg_wal_lsn_diff pg_xact_commit_timestamp txid_current_snapshot
    txid_snapshot_xmin txid_visible_in_snapshot point box circle polygon path area center
    uuid_extract_timestamp uuid_extract_version"""
)
_CATALOG_SCHEMAS = frozenset({"pg_catalog", "information_schema"})


def classify(call: Call) -> str:
    """'unsafe' (a built-in known to be PARALLEL UNSAFE), 'restricted', 'builtin', or 'user'
    (not a built-in we know: user functions and aggregates are PARALLEL UNSAFE by default)."""
    if call.schema is not None and call.schema not in _CATALOG_SCHEMAS:
        return "user"
    name = call.name
    if name in UNSAFE_BUILTINS or name.startswith(_UNSAFE_PREFIXES):
        return "unsafe"
    if name in RESTRICTED_BUILTINS or name.startswith(_RESTRICTED_PREFIXES):
        return "restricted"
    if name in COMMON_BUILTINS or call.schema in _CATALOG_SCHEMAS:
        return "builtin"
    return "user"


@dataclass(frozen=True, slots=True)
class Seen:
    call: Call
    kind: str
    node: PlanNode
    key: str
    expr: str


def calls_in(plan: Plan) -> list[Seen]:
    """Every non-trivial function call in the plan, first sighting of each name only."""
    out: dict[str, Seen] = {}
    for node in plan.nodes():
        found: list[tuple[str, str, Call]] = []
        for key, expr in expressions(node):
            found.extend((key, expr, c) for c in function_calls(expr))
        if node.node_type == "Function Scan" and node.function_name:
            fcall = Call(node.function_name, node.schema)
            found.append(("Function Scan", node.function_name, fcall))
        for key, expr, c in found:
            kind = classify(c)
            if kind != "builtin" and c.display not in out:
                out[c.display] = Seen(c, kind, node, key, expr)
    return list(out.values())


# -- statement-wide facts -------------------------------------------------------------------------


def _major(facts: Facts, plan: Plan) -> int | None:
    if facts.server_version_num:
        return facts.server_version_num // 10000
    return plan.server_major_hint


def _per_gather_zero(facts: Facts, plan: Plan) -> str | None:
    value, source = setting(facts, plan, "max_parallel_workers_per_gather")
    return source if value is not None and value.strip("'") == "0" else None


def _in_cte(anc: tuple[PlanNode, ...], node: PlanNode) -> bool:
    return any(
        n.parent_relationship == "InitPlan" and (n.subplan_name or "").startswith("CTE")
        for n in (*anc, node)
    )


def _modify_tables(plan: Plan) -> list[tuple[PlanNode, tuple[PlanNode, ...], bool]]:
    """(ModifyTable node, its ancestors, inside a data-modifying CTE?)."""
    return [(n, a, _in_cte(a, n)) for n, a in plan.walk() if n.node_type == "ModifyTable"]


def _largest(reads: Iterable[Read]) -> Read | None:
    return max(reads, key=lambda r: r.rows, default=None)


# -- detectors: one per rule, shared with PQ116 (which needs "none of them") -----------------------


def _unsafe_hint(name: str) -> str:
    """How to keep one unsafe built-in out of a large statement."""
    if name in ("nextval", "currval", "setval", "lastval"):
        return (
            f"call {name}() in the INSERT that needs the value or in a separate statement, "
            "not in the query that reads the big table"
        )
    if name in ("current_schema", "current_schemas"):
        return "write the keyword current_schema without parentheses (that form is safe)"
    if name == "set_config":
        return "run SET LOCAL (or set_config) as its own statement before the query"
    if name.startswith(("txid_", "pg_current_xact_id")):
        return f"fetch {name}() once before the query and pass it in as a bind parameter"
    return (
        f"compute {name}() once in a separate statement and pass the result in as a bind parameter"
    )


def detect_pq101(facts: Facts, plan: Plan, large: float) -> list[Evidence]:
    if plan_has_gather(plan) or _per_gather_zero(facts, plan):
        return []
    if _modify_tables(plan) or any(n.node_type == "LockRows" for n in plan.nodes()):
        return []  # the statement is serial for a certain reason (PQ105, PQ106, PQ107)
    reads = [r for r in serial_reads(plan, large) if not is_temp(r.node)]
    if not reads:
        return []
    seen = [s for s in calls_in(plan) if s.kind in ("unsafe", "user")]
    if not seen:
        return []
    read = reads[0]
    unsafe = [s for s in seen if s.kind == "unsafe"]
    user = [s for s in seen if s.kind == "user"]
    resolved = _resolve_user(facts, user)
    if resolved is not None:
        user, confirmed = resolved
        if not unsafe and not confirmed and not user:
            return []  # every function the plan calls is PARALLEL SAFE in pg_proc
    else:
        confirmed = []
    parts = []
    fixes = []
    if confirmed:
        names = ", ".join(f"{c.seen.call.display}()" for c in confirmed)
        lead = "Also certain" if unsafe else "Cause"
        labels = "; ".join(c.text for c in confirmed)
        parts.append(
            f"{lead}: {names} in {_seen_at(confirmed[0].seen, read.node)}. pg_proc says {labels}. "
            "An UNSAFE function anywhere keeps the whole statement serial (a RESTRICTED one "
            "keeps the scan it filters in the leader)."
        )
        alters = " ".join(
            f"ALTER FUNCTION {ident} PARALLEL SAFE;" for c in confirmed for ident in c.to_fix
        )
        fixes.append(
            f"{alters} -- after checking it writes nothing and touches no temp tables, "
            "sequences or session state; no restart, new plans pick it up."
            + (
                " Not for a PL/pgSQL body with an EXCEPTION block on 16 and older (PQ119)."
                if any(c.exception_block for c in confirmed)
                else ""
            )
        )
    if unsafe:
        names = ", ".join(f"{s.call.display}()" for s in unsafe)
        one = len(unsafe) == 1
        parts.append(
            f"Cause: {names} in {_seen_at(unsafe[0], read.node)}. "
            f"{'It is a built-in' if one else 'They are built-ins'} marked PARALLEL UNSAFE in "
            "every version 13 to 18, which forbids workers anywhere in the statement (certain "
            "from the plan alone)."
        )
        hints = list(dict.fromkeys(_unsafe_hint(s.call.name) for s in unsafe))
        fixes.append(f"Take {names} out of the big query: {'; '.join(hints)}.")
    if user:
        names = ", ".join(f"{s.call.display}()" for s in user)
        one = len(user) == 1
        lead = "Also suspected" if unsafe or confirmed else "Likely cause"
        why = (
            "It was not found in this database's pg_proc, so it stays a suspicion"
            if resolved is not None
            else "Offline this is a suspicion"
        )
        proname = (
            f"= '{user[0].call.name}'"
            if one
            else "IN (" + ", ".join(f"'{s.call.name}'" for s in user) + ")"
        )
        parts.append(
            f"{lead}: {names} in {_seen_at(user[0], read.node)}. "
            f"{'It is not a built-in' if one else 'They are not built-ins'}, and a function "
            "created without a PARALLEL label is PARALLEL UNSAFE, which keeps the whole "
            f"statement serial. {why}; confirm it with "
            "SELECT oid::regprocedure, proparallel FROM pg_proc "
            f"WHERE proname {proname}; ('u' unsafe; 'r' restricted, which keeps the scan it "
            "filters in the leader and has the same fix)."
        )
        alters = " ".join(f"ALTER FUNCTION {s.call.display} PARALLEL SAFE;" for s in user)
        fixes.append(
            f"{alters} -- after checking it writes nothing and touches no temp tables, "
            "sequences or session state; add the argument types if the name is overloaded. "
            "On 16 and older, not for PL/pgSQL with an EXCEPTION block (PQ119)."
        )
    first = (unsafe or [c.seen for c in confirmed] or user)[0]
    live: Evidence = {}
    if resolved is not None:  # offline evidence stays as it was
        live["pg_proc"] = [
            {"function": ident, "proparallel": label}
            for c in confirmed
            for ident, label in c.overloads
        ]
    return [
        {
            "where": where(plan, first.node),
            "functions": [s.call.display for s in seen],
            "unsafe_builtins": [s.call.display for s in unsafe],
            "suspected": [s.call.display for s in user],
            "certain": bool(unsafe or confirmed),
            "seen_in": f"{first.key} of {first.node.label}: {first.expr}",
            "scan": read.node.label,
            "rows_read": round(read.rows),
            "rows_read_text": read_text(facts, plan, read),
            "rows_kind": read.kind,
            "cause": " ".join(parts),
            "fix_steps": " ".join(fixes),
            **live,
        }
    ]


_PARALLEL_LABEL = {"u": "UNSAFE", "r": "RESTRICTED", "s": "SAFE"}


def detect_pq103(facts: Facts, plan: Plan, large: float) -> list[Evidence]:
    """A PARALLEL RESTRICTED call (a built-in such as random(), or a user function pg_proc
    labels 'r' with no UNSAFE overload) above a large serial scan. Needs pg_proc facts: offline
    a user function cannot be told restricted from unsafe (PQ101 names both)."""
    snap = facts.snapshot
    if snap is None or not (snap.catalog or snap.functions):
        return []
    if _per_gather_zero(facts, plan) or _modify_tables(plan):
        return []
    if any(n.node_type == "LockRows" for n in plan.nodes()):
        return []
    reads = [r for r in serial_reads(plan, large) if not is_temp(r.node)]
    if not reads or detect_pq101(facts, plan, large):
        return []  # no large serial read, or an UNSAFE call already keeps it all serial
    restricted: list[tuple[Seen, list[str]]] = []
    for s in calls_in(plan):
        if s.kind == "restricted":
            restricted.append((s, [f"{s.call.display}() is a built-in marked PARALLEL RESTRICTED"]))
        elif s.kind == "user":
            matches = [
                f
                for f in snap.functions
                if f.name == s.call.name
                and (s.call.schema is None or f.schema_name == s.call.schema)
            ]
            if any(f.proparallel == "r" for f in matches) and not any(
                f.proparallel == "u" for f in matches
            ):
                restricted.append(
                    (
                        s,
                        [
                            f"{f.identity} is PARALLEL {_PARALLEL_LABEL[f.proparallel]}"
                            for f in matches
                        ],
                    )
                )
    if not restricted:
        return []
    gather = plan_has_gather(plan)
    read_nodes = {id(r.node): r for r in reads}
    if gather:  # elsewhere parallel: only a call on the serial scan itself keeps it serial
        restricted = [(s, t) for s, t in restricted if id(s.node) in read_nodes]
        if not restricted:
            return []
    first = restricted[0][0]
    read = read_nodes.get(id(first.node), reads[0])
    user = [s for s, _ in restricted if s.kind == "user"]
    alters = " ".join(
        f"ALTER FUNCTION {f.identity} PARALLEL SAFE;"
        for s in user
        for f in snap.functions
        if f.name == s.call.name
        and (s.call.schema is None or f.schema_name == s.call.schema)
        and f.proparallel == "r"
    )
    return [
        {
            "where": where(plan, read.node),
            "functions": [s.call.display for s, _ in restricted],
            "functions_text": ", ".join(f"{s.call.display}()" for s, _ in restricted),
            "labels": "; ".join(t for _, texts in restricted for t in texts),
            "seen_in": f"{first.key} of {first.node.label}: {first.expr}",
            "seen_at": _seen_at(first, read.node),
            "scan": read.node.label,
            "rows_read": round(read.rows),
            "rows_read_text": read_text(facts, plan, read),
            "alters": alters or "(built-ins cannot be relabelled)",
        }
    ]


@dataclass(frozen=True, slots=True)
class Confirmed:
    """A plan's call resolved in pg_proc to at least one overload that is not SAFE."""

    seen: Seen
    overloads: tuple[tuple[str, str], ...]  # (regprocedure, 'u'/'r'/'s') of every match
    exception_block: bool

    @property
    def to_fix(self) -> list[str]:
        return [ident for ident, label in self.overloads if label != "s"]

    @property
    def text(self) -> str:
        shown = ", ".join(
            f"{ident} is PARALLEL {_PARALLEL_LABEL.get(label, label)}"
            for ident, label in self.overloads
        )
        if len(self.overloads) > 1 and any(label == "s" for _, label in self.overloads):
            shown += " (the plan does not print argument types, so which overload it calls "
            shown += "is not certain)"
        return shown


def _resolve_user(facts: Facts, user: list[Seen]) -> tuple[list[Seen], list[Confirmed]] | None:
    """With pg_proc facts (a live connection or a snapshot): split the plan's non-built-in calls
    into those still only suspected (not found in this database's pg_proc) and those with an
    UNSAFE overload; calls with no UNSAFE overload are dropped (SAFE ones are harmless,
    RESTRICTED ones are reported by PQ103). None offline."""
    snap = facts.snapshot
    if snap is None or not (snap.catalog or snap.functions):
        return None
    still: list[Seen] = []
    confirmed: list[Confirmed] = []
    for s in user:
        matches = [
            f
            for f in snap.functions
            if f.name == s.call.name and (s.call.schema is None or f.schema_name == s.call.schema)
        ]
        if not matches:
            still.append(s)
        elif any(f.proparallel == "u" for f in matches):
            # Only UNSAFE makes PQ101 certain; RESTRICTED-only functions are PQ103's.
            confirmed.append(
                Confirmed(
                    s,
                    tuple((f.identity, f.proparallel) for f in matches),
                    any(f.has_exception_block for f in matches if f.proparallel != "s"),
                )
            )
    return still, confirmed


def _seen_at(s: Seen, scan: PlanNode) -> str:
    """'its Filter (is_lucky(big.grp))' or 'the Output of Aggregate (node 1)'; short
    expressions are quoted without their outer parentheses."""
    expr = s.expr
    if expr.startswith("(") and expr.endswith(")") and _balanced(expr[1:-1]):
        expr = expr[1:-1]
    quoted = f" ({expr})" if len(expr) <= 100 else ""
    owner = "its" if s.node is scan else f"the {s.node.label}'s"
    return f"{owner} {s.key}{quoted}"


def _balanced(text: str) -> bool:
    depth = 0
    for ch in _STRING.sub("''", text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def _subplan_is_correlated(sub: PlanNode, owner: PlanNode) -> bool:
    """A SubPlan that is not hashed: hashed ones run once and are not correlated."""
    name = sub.subplan_name or ""
    if not name:
        return True
    hashed = re.compile(rf"\bhashed {re.escape(name)}\b")
    return not any(hashed.search(expr) for _, expr in expressions(owner))


def _reads_below(node: PlanNode, anc: tuple[PlanNode, ...], large: float) -> list[Read]:
    """Large serial scans in a node's own subtree, not inside its SubPlans/InitPlans; `anc`
    are the node's ancestors (a LIMIT above it shortens the scans of an estimated plan)."""
    out = []
    stack: list[tuple[PlanNode, tuple[PlanNode, ...]]] = [(node, anc)]
    while stack:
        n, anc = stack.pop()
        if n.is_gather:
            continue
        read = scan_read(n, anc) if not n.parallel_aware else None
        if read is not None and read.rows >= large:
            out.append(read)
        stack.extend(
            (c, (*anc, n))
            for c in n.children
            if c.parent_relationship not in ("SubPlan", "InitPlan")
        )
    return out


def detect_pq104(facts: Facts, plan: Plan, large: float) -> list[Evidence]:
    out: list[Evidence] = []
    for owner, anc in plan.walk():
        if under_gather(anc):
            continue
        for sub in owner.children:
            if sub.parent_relationship != "SubPlan" or not _subplan_is_correlated(sub, owner):
                continue
            read = _largest(_reads_below(owner, anc, large))
            if read is None:
                continue
            name = sub.subplan_name or "SubPlan"
            ref = re.compile(rf"\b{re.escape(name)}\b")
            used = next((f"{k}: {e}" for k, e in expressions(owner) if ref.search(e)), "")
            loops = sub.actual_loops
            runs = (
                f"it ran {_n(loops)} times"
                if loops is not None
                else "it runs once for every row that reaches it"
            )
            out.append(
                {
                    "where": where(plan, owner),
                    "subplan": name,
                    "subplan_node": sub.label,
                    "subplan_runs": runs,
                    "owner": owner.label,
                    "scan_ref": "that scan" if read.node is owner else read.node.label,
                    "used_in": f"{owner.label}, {used}" if used else owner.label,
                    "scan": read.node.label,
                    "rows_read": round(read.rows),
                    "rows_read_text": read_text(facts, plan, read),
                    "rows_kind": read.kind,
                }
            )
    return out


def detect_pq105(facts: Facts, plan: Plan, large: float, ratio: float) -> list[Evidence]:
    out: list[Evidence] = []
    for mt, anc, in_cte in _modify_tables(plan):
        if in_cte:
            continue  # a data-modifying CTE is PQ106
        reads = _reads_below(mt, anc, large)
        read = _largest(reads)
        if read is None or not mt.children:
            continue
        fed = rows_out(mt.children[0])
        heavy = any(
            n.node_type
            in ("Hash Join", "Merge Join", "Nested Loop", "Aggregate", "Sort", "WindowAgg", "SetOp")
            for n, _ in _subtree(mt.children[0])
        )
        if not heavy and fed is not None and fed * ratio > read.rows:
            continue  # a plain copy: almost every row read is written, staging buys nothing
        op = (mt.operation or "ModifyTable").upper()
        out.append(
            {
                "where": where(plan, mt),
                "operation": op,
                "target": mt.target or "the target table",
                "scan": read.node.label,
                "rows_read": round(read.rows),
                "rows_read_text": read_text(facts, plan, read),
                "rows_kind": read.kind,
                "rows_written": round(fed) if fed is not None else None,
                "rows_written_text": _rows(fed),
                "staging": _staging(op, mt.target or "target"),
            }
        )
    return out


def _staging(op: str, target: str) -> str:
    if op == "INSERT":
        return (
            f"CREATE UNLOGGED TABLE stage AS SELECT ...; -- the read part, planned in "
            f"parallel\n  INSERT INTO {target} SELECT * FROM stage; DROP TABLE stage;"
        )
    if op == "MERGE":
        return (
            f"CREATE UNLOGGED TABLE stage AS SELECT ...; -- the source query, in parallel\n"
            f"  MERGE INTO {target} USING stage ON ...; DROP TABLE stage;"
        )
    return (
        f"CREATE UNLOGGED TABLE stage AS SELECT <key>, <new values> FROM ... WHERE ...; "
        f"-- in parallel\n  {op} {target} ... FROM/USING stage WHERE <key matches>; "
        f"DROP TABLE stage;"
    )


def detect_pq107(facts: Facts, plan: Plan, large: float) -> list[Evidence]:
    out: list[Evidence] = []
    for node, anc in plan.walk():
        if node.node_type != "LockRows":
            continue
        read = _largest(_reads_below(node, anc, large))
        if read is None:
            continue
        locked = rows_out(node)
        out.append(
            {
                "where": where(plan, node),
                "scan": read.node.label,
                "rows_read": round(read.rows),
                "rows_read_text": read_text(facts, plan, read),
                "rows_kind": read.kind,
                "rows_locked": round(locked) if locked is not None else None,
                "rows_locked_text": _rows(locked),
                "lock_how": "FOR UPDATE / FOR SHARE, shown as LockRows",
            }
        )
    return out


def detect_pq108(facts: Facts, plan: Plan, large: float) -> list[Evidence]:
    out: list[Evidence] = []
    temps = [(n, a) for n, a in plan.walk() if is_temp(n)]
    if not temps:
        return out
    others = [r for r in serial_reads(plan, large) if not is_temp(r.node)]
    gather = plan_has_gather(plan)
    for node, anc in temps:
        read = scan_read(node, anc)
        if read is None:
            continue
        if read.rows >= large and not node.parallel_aware:
            consequence = "It stays in one process however large the table grows."
            blocks = scan_blocks(node)
            workers = (
                size_rule_workers(blocks, min_table_blocks(facts, plan))
                if blocks is not None
                else 0
            )
            if blocks is not None and workers:
                consequence = (
                    f"A regular table of that size ({format_bytes(blocks * 8192)}) "
                    f"would get {workers} worker{'s' if workers > 1 else ''} by the "
                    f"size rule; this one stays in one process however large it "
                    f"grows."
                )
        elif not gather and others and not _per_gather_zero(facts, plan):
            big = others[0]
            consequence = (
                f"So the join it takes part in has to run in the leader, and the "
                f"large scan {big.node.label} ({big.text}) runs serially with it: "
                f"no Gather appears anywhere in the plan."
            )
        else:
            continue
        out.append(
            {
                "where": where(plan, node),
                "table": node.target or "the temporary table",
                "scan": node.label,
                "rows_read": round(read.rows),
                "rows_read_text": read.text,
                "rows_kind": read.kind,
                "consequence": consequence,
            }
        )
    return out


def detect_pq110(facts: Facts, plan: Plan, large: float, share: float) -> list[Evidence]:
    out: list[Evidence] = []
    ctes = {
        (n.subplan_name or "")[4:]: n
        for n in plan.nodes()
        if n.parent_relationship == "InitPlan" and (n.subplan_name or "").startswith("CTE ")
    }
    scans: dict[str, list[PlanNode]] = {}
    for n in plan.nodes():
        if n.node_type == "CTE Scan" and n.cte_name:
            scans.setdefault(n.cte_name, []).append(n)
    for name, body in ctes.items():
        refs = scans.get(name, [])
        if not refs or body.node_type == "Recursive Union":
            continue
        if any(n.node_type == "ModifyTable" for n, _ in _subtree(body)):
            continue  # data-modifying CTE: PQ106
        made = rows_out(body)
        if made is None or made < large or not _gain_visible(plan, made, share):
            continue
        parallel_inside = any(n.is_gather for n, _ in _subtree(body))
        once = len(refs) == 1
        kept = rows_out(refs[0]) if once else None
        after = ""
        if kept is not None:
            filt = f" (its Filter: {refs[0].filter})" if refs[0].filter else ""
            after = f" and kept {_rows(kept)}{filt}"
        storage = refs[0].props.get("Storage")
        peak = refs[0].props.get("Maximum Storage")
        spilled = (
            f" The tuple store went to disk ({peak} kB)."
            if storage == "Disk" and isinstance(peak, int | float)
            else ""
        )
        kind = "" if body.actual_rows is not None else "an estimated "
        out.append(
            {
                "where": where(plan, refs[0]),
                "cte": name,
                "cte_rows": round(made),
                "cte_rows_text": f"{kind}{_n(made)}",
                "rows_kind": "actual" if body.actual_rows is not None else "estimated",
                "references": len(refs),
                "scan_node": refs[0].label if once else f"{len(refs)} CTE Scans",
                "after": after,
                "spilled": spilled,
                "inside": (
                    "The CTE's own query ran with workers, but everything after it "
                    "runs in the leader."
                    if parallel_inside
                    else "The CTE's own query is serial too: it hands every row over, and a "
                    "Gather would only add transfer cost."
                ),
                "advice": (
                    f"Write WITH {name} AS NOT MATERIALIZED (...): the planner then folds "
                    f"the CTE into the query, pushes the outer conditions into its scan "
                    f"and can plan the whole statement in parallel."
                    if once
                    else f"{name} is referenced {len(refs)} times, so NOT MATERIALIZED would "
                    f"compute it {len(refs)} times; it still pays when each reference "
                    f"keeps few rows. Otherwise stage it once with CREATE UNLOGGED "
                    f"TABLE ... AS (parallel) and join that."
                ),
            }
        )
    return out


# Aggregates without a combine function (pg_aggregate.aggcombinefn = 0), §1.C.
_NO_COMBINE_ALWAYS = (
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "xmlagg",
    "range_agg",
    "json_agg_strict",
    "jsonb_agg_strict",
    "JSON_ARRAYAGG",
    "JSON_OBJECTAGG",
)
_NO_COMBINE_BEFORE_16 = ("array_agg", "string_agg")


def _agg_calls(expr: str) -> Iterator[tuple[str, str]]:
    """(name, argument text) for each call in an Output expression, parentheses balanced."""
    text = _STRING.sub("''", expr)
    for m in re.finditer(r"([A-Za-z_][\w$]*)\(", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        yield m.group(1), text[m.end() : i - 1]


def aggregate_causes(node: PlanNode, major: int | None) -> list[str]:
    """Why this aggregate cannot be split into Partial/Finalize, from what the plan shows."""
    causes: list[str] = []
    sets = node.props.get("Grouping Sets")
    if node.strategy == "Mixed" or (isinstance(sets, list) and len(sets) > 1):
        causes.append("GROUPING SETS / ROLLUP / CUBE (never partial, 13-18)")
    for expr in node.output:
        for name, args in _agg_calls(expr):
            call = f"{name}(...)"
            if args.startswith("DISTINCT "):
                causes.append(
                    f"{name}(DISTINCT ...) (DISTINCT inside an aggregate is never partial)"
                )
            elif " ORDER BY " in f" {args}":
                causes.append(f"{call} with ORDER BY inside the call (never partial)")
            elif "WITHIN GROUP" in expr and re.search(rf"\b{name}\([^()]*\) WITHIN GROUP", expr):
                causes.append(f"{name}() WITHIN GROUP, an ordered-set aggregate (never partial)")
            elif name in _NO_COMBINE_ALWAYS:
                causes.append(f"{call}, which has no combine function in any version 13-18")
            elif name in _NO_COMBINE_BEFORE_16:
                if major is None:
                    causes.append(
                        f"{call}, which has no combine function before PostgreSQL 16 "
                        f"(this plan does not say its version; on 16 or later this "
                        f"is not the reason)"
                    )
                elif major < 16:
                    causes.append(
                        f"{call}, which has no combine function on PostgreSQL "
                        f"{major} (it has one from 16)"
                    )
    return list(dict.fromkeys(causes))


def _grouping_sets(node: PlanNode) -> list[str]:
    """'(big.region)', '(big.flag)': one per grouping set, as the plan lists their keys."""
    out: list[str] = []
    sets = node.props.get("Grouping Sets")
    if not isinstance(sets, list):
        return out
    for entry in sets:
        if not isinstance(entry, dict):
            continue
        for key in ("Hash Keys", "Group Keys"):
            for keys in entry.get(key) or []:
                if isinstance(keys, list):
                    out.append("(" + ", ".join(str(k) for k in keys) + ")")
    return out


def pq112_fixes(sets: list[str], causes: list[str]) -> str:
    """One rewrite per cause found, most specific first (`sets`: the grouping sets' keys)."""
    text = " ".join(causes)
    fixes: list[str] = []
    if "GROUPING SETS" in text:
        per = f" ({', '.join(sets)})" if sets else ""
        fixes.append(
            f"Replace the grouping sets with a UNION ALL of plain GROUP BY queries, one "
            f"per set{per}; each can be aggregated in parallel."
        )
    if "(DISTINCT" in text:
        fixes.append(
            "Deduplicate first, then count: SELECT count(*) FROM (SELECT DISTINCT x "
            "FROM ...) s, or GROUP BY x in a subquery (the inner DISTINCT/GROUP BY can "
            "be parallel from PostgreSQL 15)."
        )
    if "ORDER BY inside" in text:
        fixes.append(
            "Drop the ORDER BY inside the aggregate where order does not matter, or "
            "aggregate a pre-reduced, sorted subquery."
        )
    if "WITHIN GROUP" in text:
        fixes.append(
            "Ordered-set aggregates always run in one process: shrink their input "
            "first (filter or pre-aggregate in a subquery that can run in parallel)."
        )
    if "in any version" in text:
        fixes.append(
            "Aggregates without a combine function (json/xml/range aggregates) cannot "
            "be split: pre-aggregate in a subquery (GROUP BY, in parallel) that shrinks "
            "the input, then apply them to its result."
        )
    if "user aggregate" in text:
        fixes.append(
            "Give the user aggregate a combine function (CREATE OR REPLACE AGGREGATE ... "
            "COMBINEFUNC = ..., plus SERIALFUNC/DESERIALFUNC for an internal state) and "
            "PARALLEL = SAFE; then it is split into Partial/Finalize like a built-in one."
        )
    if "before PostgreSQL 16" in text or "it has one from 16" in text:
        fixes.append(
            "array_agg and string_agg have combine functions from PostgreSQL 16, so "
            "upgrading removes this cause; until then, shrink their input in a "
            "subquery that can run in parallel."
        )
    return " ".join(fixes)


def detect_pq112(facts: Facts, plan: Plan, large: float) -> list[Evidence]:
    out: list[Evidence] = []
    major = _major(facts, plan)
    for node, anc in plan.walk():
        if node.node_type != "Aggregate" or node.partial_mode not in (None, "Simple"):
            continue
        if under_gather(anc) or not node.children:
            continue
        child = node.children[0]
        fed = rows_out(child)
        if fed is None or fed < large:
            continue
        causes = aggregate_causes(node, major)
        if not causes:
            continue
        if child.is_gather:
            through = (
                f"that all come through {child.label}: the workers only scan, the "
                f"leader does all the aggregating"
            )
        elif not plan_has_gather(plan):
            through = (
                "in one process, and with no partial aggregate possible the planner "
                "chose no workers at all: the scan below is serial too"
            )
        else:
            through = "from a serial input"
        estimated = "" if child.actual_rows is not None else "an estimated "
        out.append(
            {
                "where": where(plan, node),
                "aggregate": node.label,
                "rows_in": round(fed),
                "rows_in_text": f"{estimated}{_n(fed)}",
                "rows_kind": "actual" if child.actual_rows is not None else "estimated",
                "through": through,
                "causes": "; ".join(causes),
                "output": ", ".join(node.output) if node.output else "",
                "fix_steps": pq112_fixes(_grouping_sets(node), causes),
            }
        )
    return out


# Planner settings that make parallel plans dearer or impossible, with their defaults
# (§1.D, §2.3): sizes in kB, costs in planner units.
_DISCOURAGING = {
    "parallel_setup_cost": 1000.0,
    "parallel_tuple_cost": 0.1,
    "min_parallel_table_scan_size": 8192.0,
    "min_parallel_index_scan_size": 512.0,
}


def discouraging_settings(facts: Facts, plan: Plan) -> list[str]:
    """'parallel_setup_cost = 1e+06 (plan Settings block)' for each setting above its default."""
    out = []
    for name, default in _DISCOURAGING.items():
        value, source = setting(facts, plan, name)
        if value is None:
            continue
        if name.endswith("_size"):
            size = setting_bytes(value, 8192)
            number = size / 1024 if size is not None else None
        else:
            number = setting_number(value)
        if number is not None and number > default:
            out.append(f"{name} = {value.strip(chr(39))} ({source})")
    return out


_PASS_THROUGH = frozenset({"Result", "LockRows", "ModifyTable"})


def subquery_limits(
    plan: Plan,
) -> Iterator[tuple[PlanNode, tuple[PlanNode, ...], PlanNode]]:
    """(Limit, its ancestors, the node that consumes its rows) for each LIMIT/OFFSET inside a
    FROM subquery (§1.B row B4): a Limit with a row-consuming node above it in the same
    (sub)plan. A Limit at the top of the statement or of a SubPlan/InitPlan is not one."""
    for node, anc in plan.walk():
        if node.node_type != "Limit" or node.parent_relationship in ("SubPlan", "InitPlan"):
            continue
        inner: list[PlanNode] = []
        for a in reversed(anc):
            inner.append(a)
            if a.parent_relationship in ("SubPlan", "InitPlan"):
                break
        consumer = next((a for a in inner if a.node_type not in _PASS_THROUGH), None)
        if consumer is not None:
            yield node, anc, consumer


def _limit_in_subquery(plan: Plan) -> bool:
    return any(True for _ in subquery_limits(plan))


def detect_pq106(facts: Facts, plan: Plan, large: float) -> list[Evidence]:
    """A data-modifying CTE makes the whole statement serial (Table 1A row A3)."""
    if plan_has_gather(plan) or _per_gather_zero(facts, plan):
        return []
    mts = [(mt, anc) for mt, anc, in_cte in _modify_tables(plan) if in_cte]
    if not mts:
        return []
    cte_roots = {
        id(n)
        for n, _ in plan.walk()
        if n.parent_relationship == "InitPlan"
        and (n.subplan_name or "").startswith("CTE ")
        and any(m.node_type == "ModifyTable" for m, _ in n.walk())
    }
    outside = [
        r
        for r in serial_reads(plan, large)
        if not any(id(a) in cte_roots for a in _ancestors(plan, r.node))
    ]
    read = _largest(outside)
    if read is None:
        return []
    mt, anc = mts[0]
    cte = next(
        (
            n.subplan_name or ""
            for n in (mt, *reversed(anc))
            if (n.subplan_name or "").startswith("CTE ")
        ),
        "CTE ?",
    )[4:]
    op = (mt.operation or "ModifyTable").upper()
    return [
        {
            "where": where(plan, mt),
            "cte": cte,
            "operation": op,
            "target": mt.target or "the target table",
            "scan": read.node.label,
            "rows_read": round(read.rows),
            "rows_read_text": read_text(facts, plan, read),
            "rows_kind": read.kind,
        }
    ]


def _ancestors(plan: Plan, node: PlanNode) -> tuple[PlanNode, ...]:
    return next((a for n, a in plan.walk() if n is node), ())


def detect_pq111(facts: Facts, plan: Plan, large: float) -> list[Evidence]:
    out: list[Evidence] = []
    if _per_gather_zero(facts, plan):
        return out
    for limit, anc, consumer in subquery_limits(plan):
        if under_gather(anc):
            continue
        read = _largest(_reads_below(limit, anc, large))
        if read is None:
            continue
        kept = rows_out(limit)
        below = limit.children[0] if limit.children else None
        ordered = any(
            n.node_type
            in ("Sort", "Incremental Sort", "Index Scan", "Index Only Scan", "Gather Merge")
            for n, _ in (below.walk() if below is not None else iter(()))
        )
        out.append(
            {
                "where": where(plan, limit),
                "limit": limit.label,
                "consumer": consumer.label,
                "rows_kept_text": _rows(kept),
                "scan": read.node.label,
                "rows_read": round(read.rows),
                "rows_read_text": read_text(facts, plan, read),
                "rows_kind": read.kind,
                "gather_inside": any(n.is_gather for n, _ in limit.walk()),
                "arbitrary": (
                    ""
                    if ordered
                    else " There is no ORDER BY under it, so which rows it keeps is "
                    "arbitrary and can change between runs."
                ),
            }
        )
    return out


def detect_pq116(
    facts: Facts, plan: Plan, large: float, share: float, ratio: float
) -> list[Evidence]:
    if plan_has_gather(plan) or _per_gather_zero(facts, plan):
        return []
    reads = [r for r in serial_reads(plan, large) if not is_temp(r.node)]
    if not reads:
        return []
    # Any cause another rule explains (or PQ103: a restricted call on the scan) wins.
    if (
        detect_pq101(facts, plan, large)
        or detect_pq104(facts, plan, large)
        or detect_pq105(facts, plan, large, ratio)
        or _modify_tables(plan)
        or detect_pq107(facts, plan, large)
        or detect_pq108(facts, plan, large)
        or detect_pq110(facts, plan, large, share)
        or detect_pq112(facts, plan, large)
        or any(s.kind == "restricted" for s in calls_in(plan))
        or detect_pq103(facts, plan, large)
        or any(n.node_type in ("LockRows", "Foreign Scan") for n in plan.nodes())
        or _limit_in_subquery(plan)
        or discouraging_settings(facts, plan)
    ):
        return []  # PQ111 (LIMIT in a subquery) and PQ007 (settings) explain those
    read = reads[0]
    blocks = scan_blocks(read.node)
    if blocks is not None and size_rule_workers(blocks, min_table_blocks(facts, plan)) == 0:
        return []  # below min_parallel_table_scan_size: no partial path at all (PQ113)
    returned = _returned(plan)
    per_gather, gate_from = setting_in_effect(facts, plan, "max_parallel_workers_per_gather", "2")
    estimate = _parallel_estimate(facts, plan, read, blocks, per_gather)
    table = read.node.target or "the table"
    if estimate is not None and estimate.parallel < 0.9 * estimate.serial:
        verdict = (
            f"By the planner's own cost model a {estimate.workers}-worker plan would "
            f"cost roughly {estimate.parallel:,.0f} against {estimate.serial:,.0f} for "
            f"this serial one (rough: from the scan's size and the cost settings), so "
            f"cost alone hardly explains it; more likely a cause the plan cannot show."
        )
        likely = "hidden"
    elif estimate is not None and estimate.parallel >= estimate.serial:
        verdict = (
            f"Passing {_rows(estimate.crossing)} through a Gather at "
            f"parallel_tuple_cost each would cost more than the workers save: a "
            f"{estimate.workers}-worker plan comes to roughly {estimate.parallel:,.0f} "
            f"against {estimate.serial:,.0f} (a rough estimate). The serial plan is "
            f"probably right."
        )
        likely = "cost"
    elif _gain_visible(plan, read.rows, share):
        verdict = (
            "That is the kind of statement workers usually speed up, so the cost "
            "decision deserves a measurement."
        )
        likely = "measure"
    else:
        verdict = (
            "It returns most of what it reads, so a Gather would pass nearly every row "
            "from the workers to the leader at parallel_tuple_cost each: the serial plan "
            "is probably right."
        )
        likely = "cost"
    hidden = []
    if per_gather is None:
        hidden.append(
            "max_parallel_workers_per_gather = 0 when it was planned (PQ001; the "
            "plan has no Settings block)"
        )
    hidden.append(f"a parallel_workers = 0 option on {table} (PQ114)")
    hidden.append("an inlined SQL function labelled PARALLEL UNSAFE (inlining leaves no trace)")
    if not plan.verbose:
        hidden.append(
            "function calls in the select list or in aggregates (visible only with VERBOSE)"
        )
        if not any(k.startswith(("Shared ", "Local ")) for n in plan.nodes() for k in n.props):
            hidden.append("a temporary table (visible with VERBOSE or BUFFERS)")
    if blocks is None:
        hidden.append("a table below min_parallel_table_scan_size (PQ113; BUFFERS shows it)")
    debug, debug_note = _debug_mode_name(facts, plan)
    regclass = f"'{table}'::regclass" if read.node.target else "'<table>'::regclass"
    check_hidden = (
        f"\n\n  SELECT reloptions FROM pg_class WHERE oid = {regclass};\n"
        f"  ALTER TABLE {table} RESET (parallel_workers);   -- if it shows parallel_workers=0\n"
        f"  BEGIN; SET LOCAL {debug} = on;{debug_note}\n"
        f"  EXPLAIN <the statement>; ROLLBACK;\n"
        f"  -- no Gather even then: something parallel unsafe the plan does not show\n\n"
    )
    measure = (
        "\n\n  advisor verify --dsn ... --query '<the statement>'\n"
        "  -- or by hand: BEGIN; SET LOCAL parallel_setup_cost = 0;\n"
        "  --   SET LOCAL parallel_tuple_cost = 0; EXPLAIN (ANALYZE) <the statement>; ROLLBACK;"
        "\n\n"
    )
    if likely == "hidden":
        fix = (
            f"Look for the hidden cause first:{check_hidden}If nothing turns up, measure the "
            f"parallel plan:{measure}"
        )
    elif likely == "cost":
        fix = (
            f"Probably nothing to change; to be sure, measure:{measure}Keep the serial plan "
            f"unless the parallel one is clearly faster."
        )
    else:
        fix = (
            f"Measure:{measure}If the parallel plan is clearly faster, lower the cost "
            f"settings for the role or function that runs it (not server-wide). If no Gather "
            f"appears even then:{check_hidden}"
        )
    return [
        {
            "where": where(plan, read.node),
            "scan": read.node.label,
            "rows_read": round(read.rows),
            "rows_read_text": read_text(facts, plan, read),
            "rows_kind": read.kind,
            "rows_returned_text": _rows(returned),
            "per_gather": (
                f"{plain(per_gather)} ({gate_from})" if per_gather is not None else "unknown"
            ),
            "estimate": (
                None
                if estimate is None
                else {
                    "serial_cost": round(estimate.serial),
                    "parallel_cost": round(estimate.parallel),
                    "workers": estimate.workers,
                    "rows_through_gather": round(estimate.crossing),
                }
            ),
            "likely": likely,
            "verdict": verdict,
            "not_checked": "; ".join(hidden),
            "hidden_note": (
                "" if likely == "cost" else f" Not visible in this plan: {'; '.join(hidden)}."
            ),
            "fix_steps": fix,
        }
    ]


@dataclass(frozen=True, slots=True)
class _Estimate:
    serial: float
    parallel: float
    workers: int
    crossing: float


def _cost_setting(facts: Facts, plan: Plan, name: str, default: float) -> float:
    value, _ = setting(facts, plan, name)
    number = setting_number(value) if value is not None else None
    return number if number is not None else default


def _parallel_estimate(
    facts: Facts, plan: Plan, read: Read, blocks: float | None, per_gather: str | None
) -> _Estimate | None:
    """First-order planner arithmetic (§2.3) for the same statement with a Parallel Seq Scan:
    the scan's I/O (blocks x seq_page_cost) stays, every other cost is divided by the parallel
    divisor, and the Gather adds parallel_setup_cost plus parallel_tuple_cost per row it passes
    (the partial aggregates' rows when an Aggregate sits above the scan, else the scan's rows).
    Only for a Seq Scan whose size BUFFERS shows, in a plan with costs."""
    node = read.node
    serial = plan.root.total_cost
    if node.node_type != "Seq Scan" or blocks is None or serial is None or not node.total_cost:
        return None
    cap = setting_number(per_gather) if per_gather is not None else 2.0
    workers = min(size_rule_workers(blocks, min_table_blocks(facts, plan)), int(cap or 0))
    if workers <= 0:
        return None
    io = blocks * _cost_setting(facts, plan, "seq_page_cost", 1.0)
    if io >= serial:
        return None
    divisor = workers + max(0.0, 1.0 - 0.3 * workers)
    ancestors = next((a for n, a in plan.walk() if n is node), ())
    if any(a.node_type in ("Limit", "LockRows", "ModifyTable") for a in ancestors):
        return None
    agg = next((a for a in reversed(ancestors) if a.node_type == "Aggregate"), None)
    if agg is not None and agg.plan_rows is not None:
        crossing = agg.plan_rows * (workers + 1)
    elif node.plan_rows is not None:
        crossing = node.plan_rows
    else:
        return None
    parallel = (
        io
        + (serial - io) / divisor
        + _cost_setting(facts, plan, "parallel_setup_cost", 1000.0)
        + _cost_setting(facts, plan, "parallel_tuple_cost", 0.1) * crossing
    )
    return _Estimate(serial, parallel, workers, crossing)


def _debug_mode_name(facts: Facts, plan: Plan) -> tuple[str, str]:
    """The test-mode setting's name for this server, and a note when the version is unknown."""
    major = _major(facts, plan)
    if major is not None:
        return ("force_parallel_mode" if major < 16 else "debug_parallel_query"), ""
    return "debug_parallel_query", "   -- force_parallel_mode on 15 and older"


# -- checks ---------------------------------------------------------------------------------------


def _per_plan(
    code: str,
    detect: Callable[..., list[Evidence]],
    *thresholds: str,
    pgss: Callable[[Facts, Card], Iterable[Evidence]] | None = None,
) -> None:
    """Register `detect(facts, plan, *card thresholds)` as the check for `code`; `pgss(facts,
    card)` adds what pg_stat_statements texts show for statements without a plan."""

    def run(facts: Facts, card: Card) -> Iterator[Evidence]:
        limits = [card.threshold(t) for t in thresholds]
        for plan in facts.plans:
            for evidence in detect(facts, plan, *limits):
                # the cards' {seen} says where a text-only finding was seen; empty for plans
                yield {"seen": "", **evidence} if pgss is not None else evidence
        if pgss is not None and facts.snapshot is not None:
            yield from pgss(facts, card)

    run.__name__ = run.__qualname__ = f"check_{code}"
    check(code)(run)


_per_plan("PQ101", detect_pq101, "large_rows")
_per_plan("PQ103", detect_pq103, "large_rows")
_per_plan("PQ104", detect_pq104, "large_rows")
_per_plan("PQ105", detect_pq105, "large_rows", "read_write_ratio")
_per_plan("PQ106", detect_pq106, "large_rows", pgss=pgss_pq106)
_per_plan("PQ107", detect_pq107, "large_rows", pgss=pgss_pq107)
_per_plan("PQ108", detect_pq108, "large_rows")
_per_plan("PQ110", detect_pq110, "large_rows", "returned_share")
_per_plan("PQ111", detect_pq111, "large_rows", pgss=pgss_pq111)
_per_plan("PQ112", detect_pq112, "large_rows", pgss=pgss_pq112)
_per_plan("PQ116", detect_pq116, "large_rows", "returned_share", "read_write_ratio")
