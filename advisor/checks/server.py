"""PQ002-PQ006, PQ010 and CN0xx: server-wide budgets (worker processes, cores, memory, slots).

These checks read the live server (or a saved snapshot): pg_settings with each value's source,
the background workers seen in pg_stat_activity, activity samples, pg_stat_database, and the
hardware facts (cores, RAM). Worker and slot arithmetic follows knowledge/parallel-query.md
§2.2, §4.1-4.2, §6.1 and §6.7.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from advisor.checks.base import format_bytes, setting_bytes, setting_number
from advisor.engine import Card, Evidence, Facts, check

if TYPE_CHECKING:  # pydantic stays off the offline path
    from advisor.snapshot import SettingFact

WHERE = "server settings"
RELOAD = "SELECT pg_reload_conf();   -- reload, no restart"
RESTART = "-- then restart the server (postmaster setting)"
_INDENT = "\n" + " " * 18  # continuation lines under the fix templates' "  label:  " column
_UNIT_BYTES = {"B": 1, "kB": 1024, "8kB": 8192, "16kB": 16384, "MB": 1024**2, "GB": 1024**3}
_POOLER_RE = re.compile(r"pgbouncer|pgpool|odyssey|pgcat|supavisor|pgagroal", re.IGNORECASE)


# -- facts ---------------------------------------------------------------------------------------


def _fact(facts: Facts, name: str) -> SettingFact | None:
    return facts.snapshot.settings.get(name) if facts.snapshot is not None else None


def _num(facts: Facts, name: str) -> float | None:
    if facts.settings is None or name not in facts.settings:
        return None
    return setting_number(facts.settings[name])


def _int(value: float) -> str:
    return f"{value:g}"


def _bytes(facts: Facts, name: str, default_unit: str) -> float | None:
    """A memory setting in bytes, from pg_settings' raw number and unit (work_mem is in kB,
    shared_buffers in 8 kB blocks)."""
    if facts.settings is None or name not in facts.settings:
        return None
    fact = _fact(facts, name)
    unit = (fact.unit if fact is not None and fact.unit else None) or default_unit
    return setting_bytes(facts.settings[name], _UNIT_BYTES.get(unit, 1))


def source_text(facts: Facts, name: str) -> str:
    """Where a server value came from: 'set in postgresql.auto.conf by ALTER SYSTEM',
    'set in /etc/postgresql.conf line 12', 'the built-in default'."""
    fact = _fact(facts, name)
    if fact is None or not fact.source:
        return "source unknown"
    if fact.sourcefile:
        file = fact.sourcefile.rsplit("/", 1)[-1]
        if file == "postgresql.auto.conf":
            return "set in postgresql.auto.conf by ALTER SYSTEM"
        line = f" line {fact.sourceline}" if fact.sourceline else ""
        return f"set in {fact.sourcefile}{line}"
    return {
        "default": "the built-in default",
        "command line": "set on the server command line",
        "environment variable": "set by an environment variable",
        "override": "forced by the server",
    }.get(fact.source, f"source: {fact.source}")


def _at_default(facts: Facts, name: str) -> bool:
    fact = _fact(facts, name)
    return fact is not None and fact.source == "default"


def _cores(facts: Facts) -> tuple[float, str] | None:
    snap = facts.snapshot
    if snap is None or snap.hardware.cores is None or snap.hardware.cores_source == "unknown":
        return None
    how = {"user": "given with --cores", "cgroup": "cgroup CPU limit", "host": "host CPUs"}
    return snap.hardware.cores, how.get(snap.hardware.cores_source, snap.hardware.cores_source)


def _memory(facts: Facts) -> tuple[int, str] | None:
    snap = facts.snapshot
    if snap is None or snap.hardware.memory_bytes is None:
        return None
    how = {"user": "given with --memory", "cgroup": "cgroup memory limit", "host": "host RAM"}
    return snap.hardware.memory_bytes, how.get(
        snap.hardware.memory_source, snap.hardware.memory_source
    )


def _cores_text(cores: float) -> str:
    return f"{cores:g} core{'' if cores == 1 else 's'}"


def _set_server(items: list[tuple[str, str]], restart: bool) -> str:
    """ALTER SYSTEM statements for `items` (name, SQL value), then reload or restart."""
    lines = [f"ALTER SYSTEM SET {n} = {v};" for n, v in items]
    lines.append(RESTART if restart else RELOAD)
    return _INDENT.join(lines)


def _plural(n: float, word: str) -> str:
    return f"{n:g} {word}{'' if n == 1 else 's'}"


# -- PQ002 ---------------------------------------------------------------------------------------


@check("PQ002")
def per_gather_above_pool(facts: Facts, card: Card) -> Iterator[Evidence]:
    per_gather = _num(facts, "max_parallel_workers_per_gather")
    pool = _num(facts, "max_parallel_workers")
    processes = _num(facts, "max_worker_processes")
    if per_gather is None or pool is None or per_gather <= pool:
        return
    raise_pool = [("max_parallel_workers", _int(per_gather))]
    needs = "reload, no restart"
    restart = False
    if processes is not None and processes - _reserved_workers(facts)[0] < per_gather:
        budget = per_gather + _reserved_workers(facts)[0] + 1
        raise_pool.insert(0, ("max_worker_processes", _int(budget)))
        needs = "max_worker_processes needs a restart"
        restart = True
    yield {
        "where": WHERE,
        "per_gather": per_gather,
        "per_gather_source": source_text(facts, "max_parallel_workers_per_gather"),
        "pool": pool,
        "pool_source": source_text(facts, "max_parallel_workers"),
        "missing": per_gather - pool,
        "raise_pool": _set_server(raise_pool, restart),
        "raise_needs": needs,
        "lower_to": _int(pool),
    }


# -- PQ003 ---------------------------------------------------------------------------------------


@check("PQ003")
def pool_above_processes(facts: Facts, card: Card) -> Iterator[Evidence]:
    pool = _num(facts, "max_parallel_workers")
    processes = _num(facts, "max_worker_processes")
    if pool is None or processes is None or pool <= processes:
        return
    yield {
        "where": WHERE,
        "pool": pool,
        "pool_source": source_text(facts, "max_parallel_workers"),
        "processes": processes,
        "processes_source": source_text(facts, "max_worker_processes"),
        "excess": pool - processes,
        "raise_processes": _set_server(
            [("max_worker_processes", _int(pool + _reserved_workers(facts)[0] + 1))], True
        ),
        "lower_pool": _set_server([("max_parallel_workers", _int(processes))], False),
    }


# -- PQ004 ---------------------------------------------------------------------------------------


def _reserved_workers(facts: Facts) -> tuple[float, list[str]]:
    """Slots of max_worker_processes other background workers hold: each worker type seen in
    pg_stat_activity, plus the logical replication launcher when it was not seen but
    max_logical_replication_workers > 0 starts it."""
    snap = facts.snapshot
    seen = list(snap.bgworkers) if snap is not None else []
    parts = [f"{w.count} {w.backend_type}" for w in seen]
    total = float(sum(w.count for w in seen))
    lr_workers = _num(facts, "max_logical_replication_workers") or 0
    if lr_workers > 0 and not any(w.backend_type == "logical replication launcher" for w in seen):
        parts.insert(0, "1 logical replication launcher (not seen; started at boot)")
        total += 1
    return total, parts


@check("PQ004")
def bgworkers_eat_budget(facts: Facts, card: Card) -> Iterator[Evidence]:
    pool = _num(facts, "max_parallel_workers")
    processes = _num(facts, "max_worker_processes")
    if pool is None or processes is None:
        return
    reserved, parts = _reserved_workers(facts)
    left = max(processes - reserved, 0)
    target = min(pool, processes)  # PQ003 reports a pool above the process budget itself
    shortfall = target - left
    if shortfall < card.threshold("min_shortfall"):
        return
    yield {
        "where": WHERE,
        "processes": processes,
        "processes_source": source_text(facts, "max_worker_processes"),
        "pool": pool,
        "reserved": reserved,
        "workers": ", ".join(parts) or "none seen",
        "left": left,
        "shortfall": shortfall,
        "raise_processes": _set_server([("max_worker_processes", _int(pool + reserved + 1))], True),
        "lower_pool": _set_server([("max_parallel_workers", _int(left))], False),
        "suggested": _int(pool + reserved + 1),
    }


# -- PQ005 ---------------------------------------------------------------------------------------


@check("PQ005")
def pool_larger_than_machine(facts: Facts, card: Card) -> Iterator[Evidence]:
    hw = _cores(facts)
    pool = _num(facts, "max_parallel_workers")
    per_gather = _num(facts, "max_parallel_workers_per_gather")
    if hw is None or pool is None or per_gather is None:
        return
    cores, cores_how = hw
    reasons: list[str] = []
    # A pool still at its built-in default is PQ010's (hardware-blind defaults).
    if pool > cores and not _at_default(facts, "max_parallel_workers"):
        reasons.append(
            f"max_parallel_workers = {pool:g} ({source_text(facts, 'max_parallel_workers')}) "
            f"lets {_plural(pool, 'parallel worker')} run at once on {_cores_text(cores)}"
        )
    peaks = facts.snapshot.activity_peaks() if facts.snapshot is not None else None
    active = peaks.active if peaks is not None else 0
    if active >= card.threshold("min_active") and per_gather * active > cores:
        reasons.append(
            f"max_parallel_workers_per_gather = {per_gather:g} x {active} concurrently active "
            f"queries (peak of {peaks.samples if peaks else 0} pg_stat_activity samples) = "
            f"{per_gather * active:g} workers wanted on {_cores_text(cores)}"
        )
    if not reasons:
        return
    steps: list[str] = []
    if pool > cores:
        steps.append(
            "cap the pool at the cores (reload, no restart):\n\n  server-wide:    "
            + _set_server([("max_parallel_workers", _int(math.floor(cores)))], False)
        )
    if active >= card.threshold("min_active") and per_gather * active > cores:
        fit = math.floor(cores / active)
        steps.append(
            f"lower the per-query cap for the roles that run concurrent queries, so that "
            f"{active} of them fit the cores ({fit} x {active} <= {cores:g}; 0 keeps them "
            f"serial):\n\n  role:           ALTER ROLE name SET "
            f"max_parallel_workers_per_gather = {fit};   -- new sessions"
        )
    yield {
        "where": WHERE,
        "cores": cores,
        "cores_how": cores_how,
        "pool": pool,
        "per_gather": per_gather,
        "peak_active": active,
        "reasons": "; ".join(reasons),
        "steps": (text := "\n\nand ".join(steps))[0].upper() + text[1:],
    }


# -- PQ006 ---------------------------------------------------------------------------------------


@check("PQ006")
def memory_overcommit(facts: Facts, card: Card) -> Iterator[Evidence]:
    mem = _memory(facts)
    conns = _num(facts, "max_connections")
    pool = _num(facts, "max_parallel_workers")
    work_mem = _bytes(facts, "work_mem", "kB")
    shared = _bytes(facts, "shared_buffers", "8kB")
    multiplier = _num(facts, "hash_mem_multiplier") or 1.0
    if mem is None or None in (conns, pool, work_mem, shared):
        return
    assert conns is not None and pool is not None and work_mem is not None and shared is not None
    ram, ram_how = mem
    nodes = card.threshold("nodes_per_query")
    processes = conns + pool
    worst = processes * work_mem * multiplier * nodes
    room = ram - shared
    if worst <= room:
        return
    fit = room / (processes * multiplier * nodes) if room > 0 else 0
    fit_mb = max(1, int(fit // 1024**2))
    yield {
        "where": WHERE,
        "max_connections": conns,
        "pool": pool,
        "work_mem": format_bytes(work_mem),
        "work_mem_source": source_text(facts, "work_mem"),
        "hash_mem_multiplier": multiplier,
        "nodes": nodes,
        "worst": format_bytes(worst),
        "ram": format_bytes(ram),
        "ram_how": ram_how,
        "shared_buffers": format_bytes(shared),
        "room": format_bytes(max(room, 0)),
        "ratio": f"{worst / room:.1f}x" if room > 0 else "more than",
        "fit_work_mem": f"{fit_mb}MB",
        "lower_work_mem": _set_server([("work_mem", f"'{fit_mb}MB'")], False),
    }


# -- PQ010 ---------------------------------------------------------------------------------------


@check("PQ010")
def hardware_blind_defaults(facts: Facts, card: Card) -> Iterator[Evidence]:
    hw = _cores(facts)
    if hw is None:
        return
    cores, cores_how = hw
    small = card.threshold("small_cores")
    large = card.threshold("large_cores")
    found: list[str] = []
    changes: list[tuple[str, str]] = []
    restart = False
    pool = _num(facts, "max_parallel_workers")
    processes = _num(facts, "max_worker_processes")
    per_gather = _num(facts, "max_parallel_workers_per_gather")
    default = "the built-in default"
    if cores <= small and pool is not None and _at_default(facts, "max_parallel_workers"):
        if pool > cores:
            found.append(f"max_parallel_workers = {pool:g} ({default})")
            changes.append(("max_parallel_workers", _int(max(1, math.floor(cores)))))
        if (
            per_gather is not None
            and _at_default(facts, "max_parallel_workers_per_gather")
            and per_gather > cores  # 2 on 2-3 cores is what PGTune's config keeps (§6.2)
        ):
            found.append(f"max_parallel_workers_per_gather = {per_gather:g} ({default})")
            changes.append(("max_parallel_workers_per_gather", str(max(1, math.floor(cores / 2)))))
    if cores >= large:
        want_pool = math.floor(cores)
        want_gather = min(4, math.ceil(cores / 2))
        if pool is not None and _at_default(facts, "max_parallel_workers") and pool < want_pool:
            found.append(f"max_parallel_workers = {pool:g} ({default})")
            changes.append(("max_parallel_workers", str(want_pool)))
            if processes is not None and processes < want_pool + 2:
                found.append(f"max_worker_processes = {processes:g} (too small for that pool)")
                changes.insert(0, ("max_worker_processes", str(want_pool + 2)))
                restart = True
        if (
            per_gather is not None
            and _at_default(facts, "max_parallel_workers_per_gather")
            and per_gather < want_gather
        ):
            found.append(f"max_parallel_workers_per_gather = {per_gather:g} ({default})")
            changes.append(("max_parallel_workers_per_gather", str(want_gather)))
    if not changes:
        return
    yield {
        "where": WHERE,
        "cores": cores,
        "cores_how": cores_how,
        "found": "; ".join(found),
        "direction": "fewer" if cores <= small else "more",
        "set_server": _set_server(changes, restart),
        "needs": "restart (max_worker_processes)" if restart else "reload, no restart",
    }


# -- CN001 ---------------------------------------------------------------------------------------


def _capacity(facts: Facts) -> tuple[float, str] | None:
    conns = _num(facts, "max_connections")
    if conns is None:
        return None
    su = _num(facts, "superuser_reserved_connections") or 0
    reserved = _num(facts, "reserved_connections") or 0  # 16+
    text = f"max_connections {conns:g} - superuser_reserved_connections {su:g}"
    if facts.settings is not None and "reserved_connections" in facts.settings:
        text += f" - reserved_connections {reserved:g}"
    return conns - su - reserved, text


@check("CN001")
def slots_near_exhaustion(facts: Facts, card: Card) -> Iterator[Evidence]:
    cap = _capacity(facts)
    peaks = facts.snapshot.activity_peaks() if facts.snapshot is not None else None
    if cap is None or peaks is None:
        return
    capacity, how = cap
    used = peaks.client_backends
    share = used / capacity if capacity > 0 else 1.0
    if share < card.threshold("warning_share"):
        return
    severity = "critical" if share >= card.threshold("critical_share") else card.severity
    conns = _num(facts, "max_connections") or 0
    yield {
        "where": WHERE,
        "severity": severity,
        "client_backends": used,
        "capacity": capacity,
        "capacity_text": how,
        "percent": round(100 * share),
        "samples": peaks.samples,
        "seconds": round(peaks.seconds, 1),
        "idle": peaks.idle,
        "max_connections": conns,
        "raise_to": _int(math.ceil(conns + used * 0.25)),
    }


# -- CN002 ---------------------------------------------------------------------------------------


def _pooler_seen(facts: Facts) -> str:
    # Pooler facts given (--pgbouncer-*/--pgpool-*): PB03/PP01 judge the budget behind it.
    if facts.pgbouncer is not None:
        return "pgbouncer"
    if facts.pgpool is not None:
        return "pgpool"
    snap = facts.snapshot
    if snap is None:
        return ""
    for b in snap.activity:
        if b.application_name and _POOLER_RE.search(b.application_name):
            return b.application_name
    return ""


@check("CN002")
def max_connections_above_cores(facts: Facts, card: Card) -> Iterator[Evidence]:
    hw = _cores(facts)
    conns = _num(facts, "max_connections")
    if hw is None or conns is None or _pooler_seen(facts):
        return
    cores, cores_how = hw
    spindles = card.threshold("spindles")
    target = 2 * cores + spindles
    factor = conns / target if target > 0 else math.inf
    if factor < card.threshold("factor"):
        return
    yield {
        "where": WHERE,
        "max_connections": conns,
        "source": source_text(facts, "max_connections"),
        "cores": cores,
        "cores_how": cores_how,
        "target": _int(target),
        "factor": round(factor, 1),
        "pool_size": _int(target),
    }


# -- CN003 ---------------------------------------------------------------------------------------


@check("CN003")
def many_idle(facts: Facts, card: Card) -> Iterator[Evidence]:
    snap = facts.snapshot
    if snap is None or not snap.activity_samples:
        return
    samples = snap.activity_samples
    # The least idle moment of the window: idle the whole time, not a blip between statements.
    idle = min(s.idle for s in samples)
    share = min(s.idle / s.client_backends if s.client_backends else 0.0 for s in samples)
    if idle < card.threshold("min_idle") or share < card.threshold("idle_share"):
        return
    peaks = snap.activity_peaks()
    assert peaks is not None
    timeout = _num(facts, "idle_session_timeout")
    yield {
        "where": WHERE,
        "idle": idle,
        "client_backends": peaks.client_backends,
        "percent": round(100 * share),
        "samples": peaks.samples,
        "seconds": round(peaks.seconds, 1),
        "active": peaks.active,
        "idle_session_timeout": "not set (0)" if not timeout else f"{timeout:g} ms",
    }


# -- CN004 ---------------------------------------------------------------------------------------


@check("CN004")
def idle_in_transaction(facts: Facts, card: Card) -> Iterator[Evidence]:
    snap = facts.snapshot
    timeout = _num(facts, "idle_in_transaction_session_timeout")
    if snap is None or timeout is None or timeout > 0:
        return
    samples = snap.activity_samples
    with_idle_tx = [s for s in samples if s.idle_in_transaction + s.idle_in_transaction_aborted]
    seen: list[str] = []
    peak = 0
    if samples and len(with_idle_tx) / len(samples) >= card.threshold("sample_share"):
        peak = max(s.idle_in_transaction + s.idle_in_transaction_aborted for s in with_idle_tx)
        seen.append(
            f"{peak} backend{'' if peak == 1 else 's'} idle in transaction in "
            f"{len(with_idle_tx)} of {len(samples)} pg_stat_activity samples"
        )
        ages = [
            b.xact_age_s
            for b in snap.activity
            if b.state and b.state.startswith("idle in transaction") and b.xact_age_s is not None
        ]
        if ages:
            seen[-1] += f" (oldest transaction open {max(ages):.0f} s)"
    session = sum(d.session_time or 0 for d in snap.database_stats)
    idle_tx = sum(d.idle_in_transaction_time or 0 for d in snap.database_stats)
    enough = session > 0 and session >= 1000 * card.threshold("min_session_time_s")
    if enough and idle_tx / session >= card.threshold("time_share"):
        seen.append(
            f"pg_stat_database: {100 * idle_tx / session:.0f} % of session time was spent idle "
            f"in transaction"
        )
    if not seen:
        return
    yield {
        "where": WHERE,
        "seen": "; ".join(seen),
        "peak": peak,
        "timeout_source": source_text(facts, "idle_in_transaction_session_timeout"),
    }


# -- CN006 ---------------------------------------------------------------------------------------


@check("CN006")
def no_superuser_slots(facts: Facts, card: Card) -> Iterator[Evidence]:
    su = _num(facts, "superuser_reserved_connections")
    if su is None or su > 0:
        return
    yield {
        "where": WHERE,
        "source": source_text(facts, "superuser_reserved_connections"),
        "max_connections": _num(facts, "max_connections"),
    }


# -- CN007 ---------------------------------------------------------------------------------------


@check("CN007")
def workers_oversubscribe_cpus(facts: Facts, card: Card) -> Iterator[Evidence]:
    hw = _cores(facts)
    per_gather = _num(facts, "max_parallel_workers_per_gather")
    peaks = facts.snapshot.activity_peaks() if facts.snapshot is not None else None
    if hw is None or per_gather is None or peaks is None or per_gather <= 0:
        return
    cores, cores_how = hw
    active = peaks.active
    processes = active * (1 + per_gather)
    if active < card.threshold("min_active") or processes <= cores:
        return
    per_gather_fit = max(0, math.floor(cores / active) - 1)
    yield {
        "where": WHERE,
        "peak_active": active,
        "per_gather": per_gather,
        "processes": processes,
        "cores": cores,
        "cores_how": cores_how,
        "samples": peaks.samples,
        "seconds": round(peaks.seconds, 1),
        "workers_seen": peaks.parallel_workers,
        "per_gather_fit": str(per_gather_fit),
    }


# -- CN005 ---------------------------------------------------------------------------------------


def _window_s(facts: Facts) -> float | None:
    """Seconds the pg_stat_database counters cover: since stats_reset, else since the server
    started (counters live as long as the server without a reset)."""
    from datetime import datetime

    snap = facts.snapshot
    if snap is None:
        return None
    try:
        now = datetime.fromisoformat(snap.collected_at)
    except ValueError:
        return None
    resets = [d.stats_reset for d in snap.database_stats if d.stats_reset is not None]
    start = max(resets) if resets else snap.target.postmaster_start_time
    if start is None:
        return None
    return max((now - start).total_seconds(), 1.0)


@check("CN005")
def connection_churn(facts: Facts, card: Card) -> Iterator[Evidence]:
    snap = facts.snapshot
    if snap is None:
        return
    stats = [d for d in snap.database_stats if d.sessions is not None and d.session_time]
    sessions = sum(d.sessions or 0 for d in stats)
    session_ms = sum(d.session_time or 0.0 for d in stats)
    window = _window_s(facts)
    if not sessions or window is None or sessions < card.threshold("min_sessions"):
        return
    avg_ms = session_ms / sessions
    per_minute = sessions / (window / 60)
    if avg_ms > 1000 * card.threshold("max_avg_session_s"):
        return
    if per_minute < card.threshold("min_per_minute"):
        return
    busiest = max(stats, key=lambda d: d.sessions or 0)
    ages = sorted(
        b.backend_age_s
        for b in snap.activity
        if b.backend_type == "client backend" and b.backend_age_s is not None
    )
    young = ""
    if ages:
        median = ages[len(ages) // 2]
        young = f" The {len(ages)} client backends seen were {median:.1f} s old (median)."
    yield {
        "where": WHERE,
        "sessions": sessions,
        "avg_ms": round(avg_ms, 1),
        "per_minute": round(per_minute) if per_minute >= 10 else round(per_minute, 1),
        "window": _duration(window),
        "since": "the statistics reset"
        if any(d.stats_reset for d in snap.database_stats)
        else "the server started",
        "busiest": busiest.datname,
        "busiest_sessions": busiest.sessions,
        "young": young,
    }


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
