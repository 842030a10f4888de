"""PgBouncer sizing: pool_size, pool_mode, max_db_connections, max_client_conn (+ open files).

knowledge/poolers.md §4 and the procedure under §6: offered load a = λ·W (Little's law) from
the console's counters (Δxact_count/Δt x mean xact time, plus the clients seen waiting:
Δtotal_wait_time/Δt is the mean queue length in every version), else from pg_stat_statements
(Σ total_exec_time / the window it covers); the smallest pool c whose Erlang-C mean queueing
delay stays within the wait budget; capped at the server's knee (4 x cores) and at the share
of max_connections one instance may take. Every formula is written out with its numbers.
Pure: no I/O.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING

from advisor.pooler import pgbouncer as pgb
from advisor.report import Recommendation

if TYPE_CHECKING:
    from advisor.engine import Facts
    from advisor.report import Finding
    from advisor.snapshot import PgBouncerInstance

WAIT_BUDGET = 0.1  # queueing delay allowed, as a share of the mean transaction time
KNEE_PER_CORE = 4  # active connections per core beyond which throughput falls (§4)
CLIENT_HEADROOM = 1.2
MIN_PGSS_WINDOW_S = 60.0
RELOAD = "RELOAD; on the admin console (psql -p 6432 -U <admin> pgbouncer)"


def erlang_c_wait(a: float, c: int) -> float:
    """P(wait) of M/M/c with offered load `a` (Erlangs) and `c` servers; 1 when c <= a."""
    if c <= a:
        return 1.0
    term, total = 1.0, 1.0  # a^k/k! for k = 0
    for k in range(1, c):
        term *= a / k
        total += term
    top = term * a / c / (1 - a / c)  # a^c/c! * 1/(1-rho)
    return top / (total + top)


def pool_for(a: float, w_s: float, budget_s: float, limit: int = 10_000) -> tuple[int, float]:
    """Smallest c with E[Wq] = P_wait * W / (c - a) <= budget, and that E[Wq]."""
    c = max(1, math.floor(a) + 1)
    while c < limit:
        wq = erlang_c_wait(a, c) * w_s / (c - a)
        if wq <= budget_s:
            return c, wq
        c += 1
    return c, math.inf


def _load_from_console(inst: PgBouncerInstance, db: str) -> tuple[float, float, str] | None:
    """(a, W seconds, formula text) for one database from the console counters."""
    for name, d, seconds in pgb_deltas(inst):
        if name != db or seconds <= 0 or d.get("xact_count", 0) <= 0:
            continue
        from advisor.checks.pgbouncer import busy_servers

        rate = d["xact_count"] / seconds
        busy = busy_servers(inst, db, d, seconds)
        w = busy / rate  # Little: the time a transaction holds a server
        # Clients queueing: the mean of cl_waiting over the samples. (Δtotal_wait_time/Δt
        # would say the same, but 1.18 stops adding to it for clients that stay connected.)
        samples = [s for s in inst.console.samples if s.database == db] if inst.console else []
        times = {s.t for s in samples}
        queue = sum(s.cl_waiting for s in samples) / len(times) if times else 0.0
        a = busy + queue
        return (
            a,
            w,
            f"λ = {d['xact_count']:g} transactions / {seconds:g} s = {rate:.1f}/s; busy servers "
            f"L = {busy:.2f} (mean sv_active), so W = L/λ = {w * 1000:.2f} ms; offered load "
            f"a = L + Lq = {busy:.2f} + {queue:.2f} waiting (mean cl_waiting of {len(times)} "
            f"SHOW POOLS samples) = {a:.2f}",
        )
    return None


def pgb_deltas(inst: PgBouncerInstance) -> list[tuple[str, dict[str, float], float]]:
    from advisor.checks.pgbouncer import _deltas

    return list(_deltas(inst))


def _load_from_pgss(facts: Facts, server_db: str) -> tuple[float, float, str] | None:
    snap = facts.snapshot
    if snap is None or snap.statements_info is None:
        return None
    rows = [
        s for s in snap.statements if s.database in (None, server_db) and s.toplevel is not False
    ]
    since = [s.stats_since for s in rows if s.stats_since is not None]
    start = min(since) if since else snap.statements_info.stats_reset
    if start is None or not rows:
        return None
    try:
        window = (datetime.fromisoformat(snap.collected_at) - start).total_seconds()
    except (TypeError, ValueError):
        return None
    calls = sum(s.calls for s in rows)
    if window < MIN_PGSS_WINDOW_S or calls <= 0:
        return None  # rates from a few seconds after a reset say nothing
    busy_ms = sum(s.total_exec_time for s in rows)
    a = busy_ms / 1000 / window
    w = busy_ms / calls / 1000
    return (
        a,
        w,
        f"pg_stat_statements over {window:.0f} s: λ = {calls} calls / {window:.0f} s = "
        f"{calls / window:.1f}/s, W = mean exec time {w * 1000:.2f} ms; a = λW = {a:.2f} "
        "(statements, not transactions: client round trips inside transactions are not "
        "counted, so this is a lower bound)",
    )


def recommend_pgbouncer(facts: Facts, findings: list[Finding]) -> list[Recommendation]:
    from advisor.checks.pgbouncer import _hazard_summary, _instances
    from advisor.checks.server import _cores, _num

    if facts.pgbouncer is None:
        return []
    recs: list[Recommendation] = []
    instances = list(_instances(facts))
    count = max(facts.pgbouncer.instance_count, len(instances))
    hw = _cores(facts)
    max_conn = _num(facts, "max_connections")
    available = None
    if max_conn is not None:
        available = int(
            max_conn
            - (_num(facts, "superuser_reserved_connections") or 0)
            - (_num(facts, "reserved_connections") or 0)
        )

    fired = {f.rule for f in findings}

    def because(*codes: str) -> list[str]:
        return sorted(c for c in codes if c in fired)

    def because_db(db: str, *codes: str) -> list[str]:
        """Codes of findings about this database's pools (or the whole instance)."""
        about = {
            f.rule
            for f in findings
            if f.where.endswith(f"database {db}") or f"pool {db}/" in f.where or f.rule == "PB03"
        }
        return sorted(c for c in codes if c in about)

    for label, inst in instances:
        ini = inst.ini.path if inst.ini is not None else label
        by_db: dict[str, list[pgb.Pool]] = {}
        for p in pgb.pools(inst):
            by_db.setdefault(p.database, []).append(p)
        n_pools = sum(len(v) for v in by_db.values()) or 1
        share = available // count if available is not None else None
        shared: list[tuple[str, int, int, list[str]]] = []
        # Queueing behind PgBouncer's own CPU (PB20) or behind a database cap the pools already
        # exceed (PB09) is not cured by larger pools: those findings carry the advice.
        cpu_bound = any(f.rule == "PB20" and f.where == label for f in findings)
        for db, ps in sorted(by_db.items()):
            pool = ps[0]
            if cpu_bound or 0 < pool.max_db < sum(p.size for p in ps):
                continue
            load = _load_from_console(inst, db) or _load_from_pgss(facts, pool.server_db)
            parts: list[str] = []
            target: int | None = None
            if load is not None:
                a, w, text = load
                c, wq = pool_for(a, w, WAIT_BUDGET * w)
                parts.append(
                    f"{text}; Erlang C: smallest c with mean queueing delay <= "
                    f"{WAIT_BUDGET:.0%} of W ({WAIT_BUDGET * w * 1000:.2f} ms) is c = {c} "
                    f"(E[Wq] = {wq * 1000:.2f} ms)"
                )
                target = c
            if hw is not None:
                knee = max(2, math.floor(KNEE_PER_CORE * hw[0]))
                parts.append(
                    f"knee = {KNEE_PER_CORE} x cores = {knee} (cores = {hw[0]:g}, {hw[1]}; "
                    f"(2 x cores) + spindles = {2 * hw[0]:g} for a cached working set)"
                )
                if target is None:
                    target = min(knee, max(2, math.floor(2 * hw[0])))
                elif target > knee:
                    parts.append(
                        f"a = {load[0] if load else 0:.1f} needs more than the knee: shorten "
                        "transactions or add hardware rather than connections"
                    )
                    target = knee
            if target is not None and pool.max_db > 0 and target * len(ps) > pool.max_db:
                parts.append(
                    f"max_db_connections = {pool.max_db} caps the {len(ps)} pool(s) of {db} "
                    f"together, below {len(ps)} x {target}: raise it as well, or the pools "
                    "wait for each other's servers (PB09)"
                )
            if share is not None and target is not None:
                per_pool = max(1, share // n_pools)
                if target > per_pool:
                    parts.append(
                        f"capped at the instance's share of max_connections: {share} / "
                        f"{n_pools} pools = {per_pool}"
                    )
                    target = per_pool
            if inst.console is not None:
                ss = [s for s in inst.console.samples if s.database == db]
                if ss:
                    parts.append(
                        f"console over {inst.console.seconds:g} s: max cl_waiting "
                        f"{max(s.cl_waiting for s in ss)}, max maxwait "
                        f"{max(s.maxwait_s for s in ss):.2f} s, max sv_active "
                        f"{max(s.sv_active for s in ss)} of pool_size {pool.size}"
                    )
            if target is None or target == pool.size:
                continue
            if not _db_has_pool_size(inst, db, "pool_size"):
                shared.append((db, target, pool.size, parts))
                continue
            recs.append(
                _reload(
                    "pool_size",
                    f"{ini} [databases] {db}",
                    str(pool.size),
                    str(target),
                    because_db(db, "PB05", "PB06", "PB03", "PB09", "PB10"),
                    "; ".join(parts),
                    f"{db} = ... pool_size={target}",
                )
            )
        if shared:  # pools on default_pool_size: one value, sized for the busiest of them
            db, target, current, parts = max(shared, key=lambda x: x[1])
            names = ", ".join(x[0] for x in shared)
            recs.append(
                _reload(
                    "default_pool_size",
                    f"{ini} [pgbouncer] (pools {names})",
                    str(current),
                    str(target),
                    sorted(
                        {
                            c
                            for x in shared
                            for c in because_db(x[0], "PB05", "PB06", "PB03", "PB09", "PB10")
                        }
                    ),
                    f"sized for {db}, the busiest of them: " + "; ".join(parts),
                    f"default_pool_size = {target}",
                )
            )
        recs += _mode(facts, inst, ini, by_db, because, _hazard_summary(facts))
        recs += _max_db(inst, ini, by_db, share, because)
        recs += _clients(inst, ini, because)
    return recs


def _db_has_pool_size(inst: PgBouncerInstance, db: str, key: str) -> bool:
    """Whether the [databases] line of `db` sets `key` itself (then that is what to edit)."""
    if inst.ini is None:
        return False
    entry = pgb.last_entries(inst.ini, "databases").get(db)
    if entry is None:
        return False
    try:
        return key in pgb.parse_connstr(entry.value)
    except ValueError:
        return False


def _reload(
    name: str, scope: str, current: str, value: str, because: list[str], formula: str, line: str
) -> Recommendation:
    """A PgBouncer setting changed by editing `line` into the ini, then a RELOAD."""
    return Recommendation(
        kind="pgbouncer",
        name=name,
        scope=scope,
        current=current,
        recommended=value,
        requires="reload",
        because=because,
        formula=formula,
        apply=f"{line}   then {RELOAD}",
    )


def _mode(
    facts: Facts,
    inst: PgBouncerInstance,
    ini: str,
    by_db: dict[str, list[pgb.Pool]],
    because: object,
    hazards: str,
) -> list[Recommendation]:
    """Session pools -> transaction, only once pg_stat_statements shows nothing it breaks."""
    session = sorted({db for db, ps in by_db.items() if any(p.mode == "session" for p in ps)})
    if not session or not hazards.startswith("the pg_stat_statements scan found nothing"):
        return []
    assert callable(because)
    recs = []
    why = (
        f"session pooling pins one server connection per client; {hazards}; "
        "protocol-level prepared statements also need max_prepared_statements > 0 (1.21+, see PB16)"
    )
    on_line = [db for db in session if _db_has_pool_size(inst, db, "pool_mode")]
    if on_line:
        recs.append(
            _reload(
                "pool_mode",
                f"{ini} [databases] {', '.join(on_line)}",
                "session",
                "transaction",
                because("PB10"),
                why,
                "; ".join(f"{db} = ... pool_mode=transaction" for db in on_line),
            )
        )
    rest = [db for db in session if db not in on_line]
    if rest:
        current, src = pgb.setting(inst, "pool_mode")
        recs.append(
            _reload(
                "pool_mode",
                f"{ini} [pgbouncer] (pools {', '.join(rest)})",
                f"{current} ({src})",
                "transaction",
                because("PB10"),
                why,
                "pool_mode = transaction",
            )
        )
    return recs


def _max_db(
    inst: PgBouncerInstance,
    ini: str,
    by_db: dict[str, list[pgb.Pool]],
    share: int | None,
    because: object,
) -> list[Recommendation]:
    """A hard cap per database so the instances together stay inside max_connections."""
    if share is None or not by_db:
        return []
    assert callable(because)
    budget, _ = pgb.server_budget(inst)
    if budget <= share:
        return []
    per_db = max(1, share // len(by_db))
    current, src = pgb.setting(inst, "max_db_connections")
    return [
        _reload(
            "max_db_connections",
            f"{ini} [pgbouncer]",
            f"{current} ({src})",
            str(per_db),
            because("PB03"),
            f"this instance can open {budget} server connections but its share of "
            f"max_connections is {share}; {share} / {len(by_db)} databases = {per_db}",
            f"max_db_connections = {per_db}",
        )
    ]


def _clients(inst: PgBouncerInstance, ini: str, because: object) -> list[Recommendation]:
    """max_client_conn from the peak clients seen (x1.2), and the open-files limit it needs."""
    assert callable(because)
    recs: list[Recommendation] = []
    current = pgb.int_setting(inst, "max_client_conn")
    target = current
    c = inst.console
    if c is not None:
        peak_at: dict[float, int] = {}
        for s in c.samples:
            peak_at[s.t] = peak_at.get(s.t, 0) + s.cl_active + s.cl_waiting
        peak = max([*peak_at.values(), c.lists.get("used_clients", 0)], default=0)
        want = math.ceil(peak * CLIENT_HEADROOM)
        if want > current:
            target = want
            recs.append(
                _reload(
                    "max_client_conn",
                    f"{ini} [pgbouncer]",
                    str(current),
                    str(want),
                    because("PB04", "PB05"),
                    f"peak clients seen on the console {peak} x {CLIENT_HEADROOM} = {want}",
                    f"max_client_conn = {want}",
                )
            )
    proc = inst.process
    servers, _ = pgb.server_budget(inst)
    need = target + servers + 10
    if proc is not None and proc.nofile_soft is not None and need > proc.nofile_soft:
        value = max(1024, math.ceil(need * CLIENT_HEADROOM))
        recs.append(
            Recommendation(
                kind="pgbouncer",
                name="LimitNOFILE",
                scope=f"the PgBouncer service (pid {proc.pid})",
                current=f"{proc.nofile_soft} (soft limit of the running process)",
                recommended=str(value),
                requires="restart",
                because=because("PB04"),
                formula=f"max_client_conn {target} + server connections {servers} + 10 for "
                f"listeners and logs = {need}, x {CLIENT_HEADROOM} = "
                f"{math.ceil(need * CLIENT_HEADROOM)}, at least 1024 = {value}",
                apply=f"systemctl edit pgbouncer: [Service] LimitNOFILE={value}; or ulimit -n "
                f"{value} in the start script; then restart PgBouncer",
            )
        )
    return recs
