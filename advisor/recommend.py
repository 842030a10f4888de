"""Recommended values for the server-wide budgets, with the arithmetic written out.

`recommend(facts, findings)` turns a snapshot (live or saved) into `Recommendation`s: each one
names the value, what applying it needs (restart, reload, new sessions), the rule codes of the
findings it answers, and a formula with the actual numbers and the evidence behind them (cores
and where they came from, RAM, observed peak connections, current values and their source).
Formulas follow knowledge/parallel-query.md §6 (PGTune, timescaledb-tune, the PostgreSQL wiki's
(2 x cores) + spindles) and §6.7 (memory). A value that depends on the cores is never given when
the cores are unknown. Pure: no I/O. `render_apply_script` writes the SQL, never runs it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal, NamedTuple

from advisor.checks.base import analysed_plans, format_bytes, setting_bytes
from advisor.checks.server import _bytes, _cores, _memory, _num, source_text
from advisor.checks.settings import SQL_DEFAULTS
from advisor.engine import Facts
from advisor.report import Finding, Recommendation, Requires

MB = 1024**2
NODES_PER_QUERY = 2  # sort/hash nodes per query in the worst-case memory budget (PQ006's)
WORK_MEM_FLOOR_MB = 4
WORK_MEM_CAP_MB = 1024  # a raise never goes above this server-wide: bigger needs go per role
RAISE_FACTOR = 4  # raise work_mem when the budget is at least this many times the current value
PGTUNE_MIN_CORES = 4  # PGTune emits no parallel settings below 4 cores (knowledge §6.2)
DEFAULT_PER_GATHER = 2  # the built-in default of both per-gather limits
MIN_CONNECTIONS = 20
SERVER = "server (ALTER SYSTEM)"


MIN_LOWERING_WINDOW_S = 300.0  # `--sample 300`: five minutes of pg_stat_activity


def recommend(facts: Facts, findings: Iterable[Finding]) -> list[Recommendation]:
    """Recommended settings for the snapshot in `facts` (none without a snapshot), then the
    poolers' (each works from its config or console alone)."""
    every = list(findings)
    fired: dict[str, Finding] = {}
    for f in every:
        fired.setdefault(f.rule, f)
    recs = []
    if facts.snapshot is not None and facts.settings is not None:
        recs = _Advisor(facts, fired, every).run()
    if facts.pgpool is not None:
        from advisor.pooler.pgpool_sizing import recommend_pgpool

        recs += recommend_pgpool(facts, fired)
    if facts.pgbouncer is not None:
        from advisor.pooler.pgbouncer_sizing import recommend_pgbouncer

        recs += recommend_pgbouncer(facts, every)
    return recs


class _Override(NamedTuple):
    """A role's or database's own value of a setting (ALTER ROLE / DATABASE ... SET)."""

    where: str  # "role r", "role r in database d" or "database d"; also the advice's scope
    kind: Literal["role_setting", "database_setting"]
    prefix: str  # the ALTER statement up to SET/RESET
    value: str


class _Advisor:
    def __init__(self, facts: Facts, fired: dict[str, Finding], every: list[Finding]) -> None:
        self.facts = facts
        self.fired = fired
        self.every = every
        self.recs: list[Recommendation] = []
        hw = _cores(facts)
        self.cores: float | None = hw[0] if hw else None
        self.cores_text = f"cores = {hw[0]:g} ({hw[1]})" if hw else ""
        self.peaks = facts.snapshot.activity_peaks() if facts.snapshot is not None else None
        # max_connections once the recommendations are applied (never the lower of the two:
        # work_mem is sized for the larger, so a reload before the restart is still safe)
        self.connections_after = _num(facts, "max_connections")

    # -- helpers ---------------------------------------------------------------------------------

    def current(self, name: str) -> str:
        """'4 (the built-in default)' — the value and where it came from."""
        value = _num(self.facts, name)
        shown = f"{value:g}" if value is not None else "unknown"
        return f"{shown} ({source_text(self.facts, name)})"

    def requires(self, name: str) -> Requires:
        snap = self.facts.snapshot
        fact = snap.settings.get(name) if snap is not None else None
        return "restart" if fact is not None and fact.context == "postmaster" else "reload"

    def because(self, *codes: str) -> list[str]:
        return sorted(c for c in codes if c in self.fired)

    def add_setting(
        self, name: str, recommended: float, formula: str, because: list[str], sql_value: str = ""
    ) -> None:
        current = _num(self.facts, name)
        if current is not None and current == recommended:
            return
        value = sql_value or f"{recommended:g}"
        self.recs.append(
            Recommendation(
                kind="setting",
                name=name,
                scope=SERVER,
                current=self.facts.settings.get(name) if self.facts.settings else None,
                recommended=value,
                requires=self.requires(name),
                because=because,
                formula=formula,
                apply=f"ALTER SYSTEM SET {name} = {value};",
            )
        )

    # -- the recommendations ---------------------------------------------------------------------

    def run(self) -> list[Recommendation]:
        pool = self.parallel_workers()
        self.worker_processes(pool)
        self.per_gather(pool)
        self.maintenance_workers(pool)
        self.connections(pool)
        self.work_mem(pool)
        self.superuser_slots()
        self.cost_settings()
        self.random_page_cost()
        self.table_options()
        return self.recs

    def parallel_workers(self) -> float | None:
        """max_parallel_workers = cores (PGTune, timescaledb-tune); returns the pool in effect
        after the recommendations (the current one when the cores are unknown)."""
        current = _num(self.facts, "max_parallel_workers")
        if self.cores is None:
            return current
        pool = float(max(1, math.floor(self.cores)))
        self.add_setting(
            "max_parallel_workers",
            pool,
            f"max_parallel_workers = floor(cores) = {pool:g}, one parallel worker per core "
            f"(PGTune, timescaledb-tune); {self.cores_text}; current "
            f"{self.current('max_parallel_workers')}; max_worker_processes is sized to hold it",
            self.because("PQ002", "PQ003", "PQ005", "PQ010"),
        )
        return pool

    def reserved_workers(self) -> tuple[float, str]:
        """Slots of max_worker_processes that are not parallel workers: the logical replication
        launcher, every logical replication worker when a subscription runs (any may start),
        and each extension background worker seen."""
        snap = self.facts.snapshot
        assert snap is not None
        lr_max = _num(self.facts, "max_logical_replication_workers") or 0
        total = 0.0
        parts: list[str] = []
        if lr_max > 0:
            total += 1
            parts.append("1 logical replication launcher")
        lr_seen = sum(
            w.count
            for w in snap.bgworkers
            if w.core and w.backend_type != "logical replication launcher"
        )
        if lr_seen:
            n = max(lr_max, lr_seen)
            total += n
            parts.append(
                f"{n:g} logical replication workers (a subscription runs; {lr_seen} seen, "
                f"max_logical_replication_workers = {lr_max:g} may start)"
            )
        for w in snap.bgworkers:
            if not w.core:
                total += w.count
                parts.append(f"{w.count} {w.backend_type} (extension worker seen)")
        return total, " + ".join(parts) or "none"

    def worker_processes(self, pool: float | None) -> None:
        current = _num(self.facts, "max_worker_processes")
        if pool is None or current is None:
            return
        reserved, parts = self.reserved_workers()
        want = pool + reserved + 1
        if current >= want:
            return  # enough; never lower a restart-level budget for its own sake
        self.add_setting(
            "max_worker_processes",
            want,
            f"max_worker_processes >= max_parallel_workers {pool:g} + other background workers "
            f"{reserved:g} ({parts}) + 1 headroom = {want:g}; current "
            f"{self.current('max_worker_processes')}",
            self.because("PQ002", "PQ003", "PQ004", "PQ010"),
        )

    def per_gather(self, pool: float | None) -> None:
        if self.cores is None:
            return
        cores = self.cores
        baseline, formula = _per_gather_baseline(cores)
        value = baseline
        peaks = self.peaks
        if peaks is not None and peaks.active >= 2 and peaks.active * (1 + baseline) > cores:
            fit = math.floor(cores / peaks.active) - 1
            # Never 0 server-wide from a concurrency sample: that switches parallel query off
            # for every role. Busy OLTP roles get 0 per role instead (PQ207, ALTER ROLE).
            value = max(1, min(baseline, fit))
            floor_note = (
                " (floor 1: turn it off per role for short OLTP statements, not server-wide)"
                if fit < 1
                else ""
            )
            formula += (
                f", lowered so that peak active queries x (1 + per_gather) <= cores: "
                f"{peaks.active} x (1 + {value}) = {peaks.active * (1 + value)} vs {cores:g} "
                f"cores{floor_note} (peak of {peaks.samples} pg_stat_activity samples over "
                f"{peaks.seconds:.1f} s)"
            )
        if pool is not None and value > pool:
            value = int(pool)
            formula += f", capped at max_parallel_workers {pool:g}"
        overrides = self.overrides("max_parallel_workers_per_gather")
        note = ""
        if overrides:
            note = (
                "; per-role values may be higher for analytic roles (ALTER ROLE ... SET), "
                "up to max_parallel_workers"
            )
        self.add_setting(
            "max_parallel_workers_per_gather",
            float(value),
            f"max_parallel_workers_per_gather = {formula}; {self.cores_text}; current "
            f"{self.current('max_parallel_workers_per_gather')}{note}",
            self.because("PQ002", "PQ005", "PQ010", "CN007"),
        )
        if pool is None:
            return
        for o in overrides:
            try:
                mine = float(o.value)
            except ValueError:
                continue
            if mine <= pool:
                continue
            self.add_override(
                o,
                "max_parallel_workers_per_gather",
                f"{pool:g}",
                self.because("PQ002", "PQ005"),
                f"max_parallel_workers_per_gather {o.value} > max_parallel_workers "
                f"{pool:g}: a Gather never gets more workers than the pool, so cap it at "
                f"{pool:g} (higher than the server-wide value is fine for analytic roles)",
                f"SET max_parallel_workers_per_gather = {pool:g};",
            )

    def add_override(
        self, o: _Override, name: str, value: str, because: list[str], formula: str, sql: str
    ) -> None:
        """Advice on `o`, applied per session by `o.prefix` + `sql` (SET ... / RESET ...)."""
        self.recs.append(
            Recommendation(
                kind=o.kind,
                name=name,
                scope=o.where,
                current=o.value,
                recommended=value,
                requires="session",
                because=because,
                formula=f"{o.where}: {formula}",
                apply=f"{o.prefix} {sql}",
            )
        )

    def overrides(self, name: str) -> list[_Override]:
        """The ALTER ROLE / DATABASE ... SET values of `name`."""
        snap = self.facts.snapshot
        assert snap is not None
        out = []
        for s in snap.role_db_settings:
            if s.name != name or (s.role is None and s.database is None):
                continue
            if s.role is not None:
                prefix = f"ALTER ROLE {_ident(s.role)}"
                where = f"role {s.role}"
                if s.database is not None:
                    prefix += f" IN DATABASE {_ident(s.database)}"
                    where += f" in database {s.database}"
                out.append(_Override(where, "role_setting", prefix, s.value))
            else:
                assert s.database is not None
                where = f"database {s.database}"
                prefix = f"ALTER DATABASE {_ident(s.database)}"
                out.append(_Override(where, "database_setting", prefix, s.value))
        return out

    def maintenance_workers(self, pool: float | None) -> None:
        if self.cores is None:
            return
        value, formula = _per_gather_baseline(self.cores)
        if pool is not None and value > pool:
            value = int(pool)
            formula += f", capped at max_parallel_workers {pool:g} (the workers come from it)"
        self.add_setting(
            "max_parallel_maintenance_workers",
            float(value),
            f"max_parallel_maintenance_workers = {formula}; {self.cores_text}; current "
            f"{self.current('max_parallel_maintenance_workers')}",
            [],
        )

    def work_mem(self, pool: float | None) -> None:
        """work_mem from the memory budget of knowledge §6.7: lowered when the current value
        overcommits RAM (PQ006), raised when the budget is at least RAISE_FACTOR x the current
        value whatever set it (2x for the built-in default, which never saw the hardware), and
        per role/database for ALTER ROLE/DATABASE values that low."""
        mem = _memory(self.facts)
        conns = self.connections_after
        shared = _bytes(self.facts, "shared_buffers", "8kB")
        current = _bytes(self.facts, "work_mem", "kB")
        multiplier = _num(self.facts, "hash_mem_multiplier") or 1.0
        if mem is None or conns is None or shared is None or current is None or pool is None:
            return
        ram, ram_how = mem
        budget = (ram - shared) / ((conns + pool) * NODES_PER_QUERY * multiplier)
        fit_mb = _round_mb(budget / MB)
        raise_mb = min(fit_mb, WORK_MEM_CAP_MB)

        def formula(value_mb: int) -> str:
            cap = f", cap {WORK_MEM_CAP_MB}MB: more goes per role" if value_mb < fit_mb else ""
            return (
                f"work_mem budget = (RAM - shared_buffers) / ((max_connections + "
                f"max_parallel_workers) x nodes_per_query x hash_mem_multiplier) = "
                f"({format_bytes(ram)} - {format_bytes(shared)}) / (({conns:g} + {pool:g}) "
                f"x {NODES_PER_QUERY} x {multiplier:g}) = {format_bytes(budget)}, rounded "
                f"down to a power of two or 1.5x one (floor {WORK_MEM_FLOOR_MB}MB"
                f"{cap}) = {value_mb}MB; the budget counts every parallel worker as a process with "
                f"its own work_mem and hash nodes at work_mem x hash_mem_multiplier; RAM {ram_how}"
            )

        spills, spill_codes = self.spill_evidence()
        source = source_text(self.facts, "work_mem")
        lower = current > fit_mb * MB
        # never raise past the budget itself (the 4MB floor is for lowering)
        raise_ = budget >= raise_mb * MB and (
            raise_mb * MB >= RAISE_FACTOR * current
            or (source == "the built-in default" and raise_mb * MB >= 2 * current)
        )
        if lower or raise_:
            value_mb = fit_mb if lower else raise_mb
            if lower:
                floor_note = ""
                if budget / MB < WORK_MEM_FLOOR_MB:
                    floor_note = (
                        f"; the budget is below the {WORK_MEM_FLOOR_MB}MB floor: fewer "
                        "connections (a pooler) is the real fix"
                    )
                why = f"; above the budget: lower it so the worst case fits RAM (PQ006){floor_note}"
            else:
                why = f"; {raise_mb}MB is {raise_mb * MB / current:.0f}x the current value{spills}"
            self.recs.append(
                Recommendation(
                    kind="setting",
                    name="work_mem",
                    scope=SERVER,
                    current=format_bytes(current),
                    recommended=f"{value_mb}MB",
                    requires=self.requires("work_mem"),
                    because=self.because("PQ006") if lower else spill_codes,
                    formula=f"{formula(value_mb)}; current {format_bytes(current)} ({source}){why}",
                    apply=f"ALTER SYSTEM SET work_mem = '{value_mb}MB';",
                )
            )
        for o in self.overrides("work_mem"):
            mine = setting_bytes(o.value, 1024)
            if mine is None or budget < raise_mb * MB or raise_mb * MB < RAISE_FACTOR * mine:
                continue
            self.add_override(
                o,
                "work_mem",
                f"{raise_mb}MB",
                spill_codes,
                f"work_mem {o.value} ({o.prefix} SET) "
                f"overrides the server's for its sessions; {formula(raise_mb)}: "
                f"{raise_mb * MB / mine:.0f}x that value{spills}",
                f"SET work_mem = '{raise_mb}MB';",
            )

    def spill_evidence(self) -> tuple[str, list[str]]:
        """Where the snapshot saw sorts and hashes go to disk: captured plans, pg_stat_statements'
        temp_blks_written, pg_stat_database's temp_bytes. ('; spills seen: ...', rule codes)."""
        snap = self.facts.snapshot
        assert snap is not None
        seen = []
        spilled = sum(
            1
            for plan in analysed_plans(self.facts)
            if any(node.all_spills() for node, _ in plan.walk())
        )
        if spilled:
            seen.append(f"{spilled} captured EXPLAIN ANALYZE plans spilled to disk")
        temp = [s for s in snap.statements if s.temp_blks_written]
        if temp:
            blocks = sum(s.temp_blks_written or 0 for s in temp)
            seen.append(
                f"{len(temp)} pg_stat_statements entries wrote {format_bytes(blocks * 8192)} "
                "to temporary files (temp_blks_written)"
            )
        dbs = [d for d in snap.database_stats if d.temp_bytes]
        if dbs:
            files = sum(d.temp_files or 0 for d in dbs)
            total = sum(d.temp_bytes or 0 for d in dbs)
            names = ", ".join(d.datname for d in dbs)
            seen.append(
                f"pg_stat_database: {files} temporary files, {format_bytes(total)} in {names} "
                "since the statistics were reset (temp_files, temp_bytes)"
            )
        text = "; spills seen: " + "; ".join(seen) if seen else "; no spills seen in the snapshot"
        return text, self.because("PQ203")

    def connections(self, pool: float | None) -> None:
        conns = _num(self.facts, "max_connections")
        peaks = self.peaks
        if conns is None or peaks is None:
            return
        cn001, cn002 = "CN001" in self.fired, "CN002" in self.fired
        if not (cn001 or cn002):
            return
        su = _num(self.facts, "superuser_reserved_connections") or 0
        reserved = _num(self.facts, "reserved_connections") or 0
        clients = max(MIN_CONNECTIONS, math.ceil(peaks.client_backends * 1.25))
        value = clients + su + reserved
        # Lowering max_connections on a short sample would cut off clients the sample missed:
        # only lower it after a window long enough to have seen the busy moments.
        long_enough = peaks.seconds >= MIN_LOWERING_WINDOW_S
        if (cn002 and value < conns and long_enough) or (cn001 and value > conns):
            self.connections_after = max(conns, value)
            pooler = ""
            if cn002:
                evidence = self.fired["CN002"].evidence
                pooler = (
                    f"; only with a pooler in front: active connections target = (2 x cores) + "
                    f"spindles = {evidence.get('target')} on {_g(evidence.get('cores'))} cores "
                    f"({evidence.get('cores_how')})"
                )
            codes = ["CN001", "CN002"]
            if value < conns and pool is not None and self.memory_fits(value + pool):
                codes.append("PQ006")  # fewer connections bring the worst case within RAM
            self.add_setting(
                "max_connections",
                value,
                f"max_connections = max({MIN_CONNECTIONS}, ceil(peak client backends "
                f"{peaks.client_backends} x 1.25)) + superuser_reserved_connections {su:g} + "
                f"reserved_connections {reserved:g} = {value:g} (peak of {peaks.samples} "
                f"pg_stat_activity samples over {peaks.seconds:.1f} s; never below the observed "
                f"peak); current {self.current('max_connections')}{pooler}",
                self.because(*codes),
            )
        if cn002 and self.facts.pgbouncer is None:  # with one given, pgbouncer_sizing sizes it
            target = self.fired["CN002"].evidence.get("target")
            self.recs.append(
                Recommendation(
                    kind="pgbouncer",
                    name="default_pool_size",
                    scope="pgbouncer.ini [pgbouncer]",
                    current=None,
                    recommended=str(target),
                    requires="none",
                    because=["CN002"],
                    formula=(
                        f"a connection pooler (transaction mode) with default_pool_size = "
                        f"(2 x cores) + spindles = {target} server connections per database/user "
                        f"(PostgreSQL wiki, Number Of Database Connections); cores "
                        f"{_g(self.fired['CN002'].evidence.get('cores'))} "
                        f"({self.fired['CN002'].evidence.get('cores_how')})"
                    ),
                    apply=f"pool_mode = transaction\ndefault_pool_size = {target}",
                )
            )

    def memory_fits(self, processes: float) -> bool:
        """PQ006's worst case with `processes` backends and the current work_mem fits RAM."""
        mem = _memory(self.facts)
        shared = _bytes(self.facts, "shared_buffers", "8kB")
        work_mem = _bytes(self.facts, "work_mem", "kB")
        multiplier = _num(self.facts, "hash_mem_multiplier") or 1.0
        if mem is None or shared is None or work_mem is None:
            return False
        return processes * work_mem * multiplier * NODES_PER_QUERY <= mem[0] - shared

    def superuser_slots(self) -> None:
        if "CN006" not in self.fired:
            return
        self.add_setting(
            "superuser_reserved_connections",
            3,
            f"superuser_reserved_connections = 3 (the built-in default) so an administrator "
            f"can connect when the ordinary slots are full; current "
            f"{self.current('superuser_reserved_connections')}",
            ["CN006"],
        )

    def cost_settings(self) -> None:
        """Back to the defaults the parallel cost settings PQ007 found far above them on the
        server; a role or database override gets its own RESET (ALTER SYSTEM would not win)."""
        for f in self.every:
            if f.rule != "PQ007" or f.where != "server settings":
                continue
            for item in f.evidence.get("settings", []):
                name = str(item["name"])
                snap = self.facts.snapshot
                fact = snap.settings.get(name) if snap is not None else None
                source = fact.source if fact is not None else None
                formula = (
                    f"{name} = its default {item['default']}: PQ007 found {item['value']}, "
                    f"{item['factor']:g}x the default ({source_text(self.facts, name)}), which "
                    f"keeps the planner from parallel plans: {item['effect']}; re-test the "
                    "affected statements after the change"
                )
                overrides = self.overrides(name)
                if source in ("user", "database", "database user") and overrides:
                    for o in overrides:
                        self.add_override(
                            o, name, str(item["default"]), ["PQ007"], formula, f"RESET {name};"
                        )
                    continue
                default = SQL_DEFAULTS.get(name, str(item["default"]))
                self.recs.append(
                    Recommendation(
                        kind="setting",
                        name=name,
                        scope=SERVER,
                        current=fact.setting if fact is not None else None,
                        recommended=str(item["default"]),
                        requires=self.requires(name),
                        because=["PQ007"],
                        formula=formula,
                        apply=f"ALTER SYSTEM SET {name} = {default};",
                    )
                )

    def random_page_cost(self) -> None:
        """random_page_cost = 1.1 when the data directory is on SSD (PGTune's value for ssd and
        san storage), seen on the server's own block device; never guessed."""
        snap = self.facts.snapshot
        storage = snap.hardware.details.get("storage", "") if snap is not None else ""
        current = _num(self.facts, "random_page_cost")
        if not storage.startswith("ssd") or current is None or current <= 2:
            return
        self.add_setting(
            "random_page_cost",
            1.1,
            f"random_page_cost = 1.1 for SSD storage (PGTune: 4 for hdd, 1.1 for ssd/san); "
            f"the data directory is on an SSD ({storage.removeprefix('ssd: ')}); current "
            f"{self.current('random_page_cost')}: at 4 the planner prices every random page "
            f"read 4x a sequential one, which SSDs do not charge, and picks (parallel) "
            f"sequential scans over index scans more often than it should",
            [],
        )

    def table_options(self) -> None:
        """Per-table parallel_workers (ALTER TABLE ... SET/RESET) from PQ113, PQ114 and PQ115,
        with the size rule of knowledge §2.3 written out."""
        done: set[str] = set()
        for f in self.every:
            ev = f.evidence
            rel = str(ev.get("relation", ""))
            if f.rule not in ("PQ113", "PQ114", "PQ115") or not rel or rel in done:
                continue
            done.add(rel)
            if f.rule == "PQ115":
                blocks, min_blocks = float(ev["blocks"]), float(ev["min_blocks"])
                formula = (
                    f"size rule (knowledge §2.3): 1 + floor(log3(blocks / min_parallel_table_"
                    f"scan_size)) = 1 + floor(log3({blocks:,.0f} / {min_blocks:,.0f})) = "
                    f"1 + floor({math.log(blocks / min_blocks, 3):.2f}) = {ev['planned']} "
                    f"workers for this {ev['size']} table; parallel_workers = "
                    f"min(max_parallel_workers_per_gather {ev['per_gather']}, cores "
                    f"{ev['cores']} - 1) = {ev['target']} (the reloption replaces the size rule, "
                    f"still capped by max_parallel_workers_per_gather)"
                )
                value, current = str(ev["target"]), "not set"
                apply = f"{ev['alter']} {ev['name']} SET (parallel_workers = {ev['target']});"
            elif f.rule == "PQ114":
                formula = (
                    f"parallel_workers = 0 forbids parallel scans of this {ev['size']} table; "
                    f"without it the size rule (knowledge §2.3) gives 1 + floor(log3(blocks / "
                    f"min_parallel_table_scan_size)) = {ev['size_rule_workers']} workers "
                    f"(threshold {ev['min_size']})"
                )
                value, current = "RESET", "0"
                apply = f"{ev['alter']} {ev['name']} RESET (parallel_workers);"
            else:
                formula = (
                    f"the table is {ev['size']}, below min_parallel_table_scan_size "
                    f"{ev['min_size']}, so the size rule (knowledge §2.3) gives it 0 workers; "
                    f"{ev['seen_how']}; parallel_workers replaces the size rule: "
                    f"{ev['workers_how']}; keep it only if EXPLAIN (ANALYZE) shows the statement "
                    "faster with workers"
                )
                value, current = str(ev["workers"]), "not set"
                apply = str(ev["alter_table"])
            self.recs.append(
                Recommendation(
                    kind="table_option",
                    name="parallel_workers",
                    scope=f"table {rel}",
                    current=current,
                    recommended=value,
                    requires="none",
                    because=[f.rule],
                    formula=formula,
                    apply=apply,
                )
            )


def _g(value: object) -> str:
    return f"{value:g}" if isinstance(value, float | int) else str(value)


def _per_gather_baseline(cores: float) -> tuple[int, str]:
    """PGTune's per-gather (and maintenance) workers from 4 cores up; below that PGTune emits no
    parallel settings, so its configuration keeps the built-in default 2 (knowledge §6.2)."""
    if cores >= PGTUNE_MIN_CORES:
        value = min(4, math.ceil(cores / 2))
        return value, f"min(4, ceil(cores / 2)) = min(4, ceil({cores:g} / 2)) = {value} (PGTune)"
    return DEFAULT_PER_GATHER, (
        f"the built-in default {DEFAULT_PER_GATHER} on {cores:g} cores (below "
        f"{PGTUNE_MIN_CORES} cores PGTune sets no parallel settings and keeps the default)"
    )


def _round_mb(mb: float) -> int:
    """Round down to a power of two or 1.5x one (4, 6, 8, 12, 16, 24, ...), at least the floor."""
    best = WORK_MEM_FLOOR_MB
    step = WORK_MEM_FLOOR_MB
    while step <= mb:
        best = step
        if step * 1.5 <= mb:
            best = int(step * 1.5)
        step *= 2
    return best


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- the apply script -----------------------------------------------------------------------------

_GROUPS = (
    ("restart", "-- needs restart (postmaster settings: take effect after the server restarts)"),
    ("reload", "-- reload (SELECT pg_reload_conf())"),
    ("session", "-- session/role (takes effect for new sessions)"),
    ("none", "-- no reload or restart (table options: the next plans use them)"),
)


def _comment(text: str) -> list[str]:
    return [f"-- {line}" if line else "--" for line in text.splitlines()]


def render_apply_script(recs: Iterable[Recommendation]) -> str:
    """The recommendations as SQL, grouped by what they need; never executed by the advisor."""
    recs = list(recs)
    lines = [
        "-- pg-parallel-advisor apply script. Review every statement before running it:",
        "-- the advisor never runs this script. Run it as a superuser (ALTER SYSTEM).",
    ]
    for requires, heading in _GROUPS:
        group = [
            r for r in recs if r.kind not in ("pgbouncer", "pgpool") and r.requires == requires
        ]
        if not group:
            continue
        lines += ["", heading]
        for r in group:
            because = f" [{', '.join(r.because)}]" if r.because else ""
            lines += _comment(f"{r.name} ({r.scope}){because}: {r.formula}")
            lines.append(r.apply)
        if requires == "reload":
            lines.append("SELECT pg_reload_conf();")
        elif requires == "restart":
            lines.append("-- then restart the server, e.g. pg_ctl restart -D $PGDATA")
    poolers = [r for r in recs if r.kind in ("pgbouncer", "pgpool")]
    if poolers:
        lines += ["", "-- pooler configuration (not SQL; put these in the pooler's file)"]
        for r in poolers:
            lines += _comment(f"{r.scope}{' [' + ', '.join(r.because) + ']' if r.because else ''}")
            lines += _comment(r.formula)
            lines += _comment(r.apply)
    return "\n".join(lines) + "\n"
