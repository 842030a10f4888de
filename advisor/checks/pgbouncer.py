"""PgBouncer rules PB01-PB20: config files, console, the local process, workload.

Facts come from `Facts.pgbouncer` (ini files, console readings, the local process) plus the
server's settings and pg_stat_statements when a server was read too (knowledge/poolers.md §1,
§2, §4, §6). `advisor.pooler.pgbouncer` (config precedence, pools, budget) is plain Python;
the hazard scan (pglast) is imported inside the checks that need it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from advisor.engine import Card, Evidence, Facts, check
from advisor.pooler import pgbouncer as pgb

if TYPE_CHECKING:
    from advisor.snapshot import PgBouncerInstance, PoolSample, StatementStat


def _instances(facts: Facts) -> Iterator[tuple[str, PgBouncerInstance]]:
    if facts.pgbouncer is None:
        return
    for inst in facts.pgbouncer.instances:
        if inst.ini is not None:
            name = inst.ini.path
        elif inst.console is not None:
            name = inst.console.dsn
        else:
            continue
        yield f"pgbouncer {name}", inst


def _older(v: tuple[int, int], since: tuple[int, int]) -> bool:
    return v < since


def _v(since: tuple[int, int]) -> str:
    return f"{since[0]}.{since[1]}"


# -- config file -------------------------------------------------------------------------------


def _entry(where: str, e: Any, **more: Any) -> Evidence:
    """Evidence about one line (or [section]) of a pgbouncer.ini: where it is, then `more`."""
    return {
        "where": where,
        "file": e.file,
        "line": e.line,
        "section": e.section,
        "key": e.key,
        **more,
    }


@check("PB01")
def inline_comment(facts: Facts, card: Card) -> Iterator[Evidence]:
    for name, inst in _instances(facts):
        if inst.ini is None:
            continue
        for e in inst.ini.entries:
            comment = pgb.inline_comment(e.value)
            if comment is None:
                continue
            value = e.value[: len(e.value) - len(comment)].rstrip()
            yield _entry(f"{name} {e.where}", e, value=value, comment=comment, read_as=e.value)


def _unsupported(
    where: str,
    e: Any,
    version: tuple[int, int] | None,
    version_text: str,
    what: str,
    since: tuple[int, int] | None,
) -> Evidence | None:
    if since is None:
        if version is not None and version > (1, 18):
            return None  # a newer release may know keys this table lacks
        reason = f"no PgBouncer release the advisor knows (1.18-1.26) has {what}"
    elif version is None or not _older(version, since):
        return None
    else:
        reason = f"{what} needs PgBouncer {_v(since)} or later"
    return _entry(where, e, reason=reason, version=version_text)


@check("PB02")
def unsupported_setting(facts: Facts, card: Card) -> Iterator[Evidence]:
    for name, inst in _instances(facts):
        if inst.ini is None:
            continue
        ver = pgb.instance_version(inst)
        version, version_text = (ver[0], ver[1]) if ver else (None, "unknown")

        def problem(
            e: Any,
            what: str,
            since: tuple[int, int] | None,
            name: str = name,
            version: tuple[int, int] | None = version,
            version_text: str = version_text,
        ) -> Evidence | None:
            return _unsupported(f"{name} {e.where}", e, version, version_text, what, since)

        for sec in inst.ini.sections:
            since = pgb.SECTIONS_SINCE.get(sec.section)
            ev = problem(sec, f"a [{sec.section}] section", since)
            if ev:
                yield {**ev, "key": f"[{sec.section}]"}
        for e in inst.ini.entries:
            if pgb.inline_comment(e.value):
                continue  # PB01 says it
            if e.key.startswith('"'):
                if version is not None and version <= (1, 18):
                    yield _entry(
                        f"{name} {e.where}",
                        e,
                        reason="PgBouncer 1.18 gives a syntax error for quoted names "
                        "(later releases document them)",
                        version=version_text,
                    )
                continue
            if e.section == "pgbouncer":
                key = e.key.lower()
                bad = pgb.invalid_value(key, e.value)
                if bad:
                    yield _entry(f"{name} {e.where}", e, reason=bad, version=version_text)
                    continue
                if key in pgb.GLOBAL_KEYS_1_18:
                    continue
                ev = problem(e, f"the setting {key}", pgb.GLOBAL_KEYS_SINCE.get(key))
                if ev:
                    yield ev
            elif e.section in ("databases", "users"):
                table = pgb.DB_KEYS_SINCE if e.section == "databases" else pgb.USER_KEYS_SINCE
                try:
                    params = pgb.parse_connstr(e.value)
                except ValueError as exc:
                    yield _entry(f"{name} {e.where}", e, reason=str(exc), version=version_text)
                    continue
                # (1.18 reads [databases] numbers with atoi: pool_size=big loads as 0, so
                # values there are not PB02's business; the real binary agrees in the tests.)
                for param in params:
                    ev = problem(e, f"the {e.section} parameter {param}", table.get(param))
                    if ev:
                        yield {**ev, "key": f"{e.key} {param}="}


@check("PB03")
def server_budget(facts: Facts, card: Card) -> Iterator[Evidence]:
    from advisor.checks.server import _num

    if facts.pgbouncer is None:
        return
    max_conn = _num(facts, "max_connections")
    if max_conn is None:
        return
    su = _num(facts, "superuser_reserved_connections") or 0
    reserved = _num(facts, "reserved_connections") or 0  # 16+
    available = int(max_conn - su - reserved)
    listed = list(_instances(facts))
    if not listed:
        return
    budgets = [(name, *pgb.server_budget(inst)) for name, inst in listed]
    count = max(facts.pgbouncer.instance_count, len(listed))
    extra = count - len(listed)  # replicas of the first instance's configuration
    total = sum(b for _, b, _ in budgets) + extra * budgets[0][1]
    if total <= available:
        return
    per = "; ".join(f"{name}: {b} ({', '.join(terms)})" for name, b, terms in budgets)
    share = max(1, available // count)
    yield {
        "where": "pgbouncer server connections",
        "total": total,
        "instances": count,
        "per_instance": per,
        "max_connections": int(max_conn),
        "superuser_reserved": int(su),
        "reserved": int(reserved),
        "available": available,
        "share": share,
        "severity": "critical" if total > max_conn else card.severity,
    }


@check("PB04")
def fd_limit(facts: Facts, card: Card) -> Iterator[Evidence]:
    for name, inst in _instances(facts):
        proc = inst.process
        if proc is None or proc.nofile_soft is None:
            continue
        need = pgb.fd_need(inst) + card.threshold("spare_fds")
        if need <= proc.nofile_soft:
            continue
        max_client, src = pgb.setting(inst, "max_client_conn")
        yield {
            "where": name,
            "pid": proc.pid,
            "soft": proc.nofile_soft,
            "hard": proc.nofile_hard if proc.nofile_hard is not None else "unlimited",
            "max_client_conn": max_client,
            "source": src,
            "servers": pgb.server_budget(inst)[0],
            "need": int(need),
            "recommended": int(max(need * 1.2, 1024)),
            "log_line": proc.log_fd_line or "not found",
        }


# -- console -----------------------------------------------------------------------------------


def _by_pool(samples: list[PoolSample]) -> dict[tuple[str, str], list[PoolSample]]:
    out: dict[tuple[str, str], list[PoolSample]] = {}
    for s in samples:
        out.setdefault((s.database, s.user), []).append(s)
    return out


def _pools_by_key(inst: PgBouncerInstance) -> dict[tuple[str, str], pgb.Pool]:
    """The instance's pools by (database, user), parsed once per check, not once per pool."""
    out: dict[tuple[str, str], pgb.Pool] = {}
    for p in pgb.pools(inst):
        out.setdefault((p.database, p.user), p)
    return out


@check("PB05")
def pool_saturated(facts: Facts, card: Card) -> Iterator[Evidence]:
    for name, inst in _instances(facts):
        if inst.console is None:
            continue
        sizes = _pools_by_key(inst)
        for (db, user), ss in _by_pool(inst.console.samples).items():
            waiting = [s for s in ss if s.cl_waiting > 0]
            if len(waiting) < card.threshold("min_samples"):
                continue
            max_wait = max(s.maxwait_s for s in ss)
            rising = len(waiting) >= 2 and waiting[-1].maxwait_s > waiting[0].maxwait_s
            if max_wait < card.threshold("maxwait_s") and not rising:
                continue
            pool = sizes.get((db, user))
            capped = pool is not None and (
                pool.max_db > 0 or pgb.int_setting(inst, "max_user_connections") > 0
            )
            if capped and pool and max(_servers(s) for s in waiting) < pool.size:
                continue  # its own pool never filled: a shared cap held it back (PB09)
            yield {
                "where": f"{name} pool {db}/{user}",
                "database": db,
                "user": user,
                "samples": len(ss),
                "samples_waiting": len(waiting),
                "seconds": inst.console.seconds,
                "max_cl_waiting": max(s.cl_waiting for s in ss),
                "max_sv_active": max(s.sv_active for s in ss),
                "max_maxwait_s": round(max_wait, 3),
                "pool_size": pool.size if pool else "?",
                "reserve": pool.reserve if pool else "?",
                "pool_mode": pool.mode if pool else "?",
            }


def _deltas(inst: PgBouncerInstance) -> Iterator[tuple[str, dict[str, float], float]]:
    """Per database: counter deltas over the console window (or totals since start when the
    window saw nothing), and the seconds they cover (0 = totals)."""
    c = inst.console
    if c is None:
        return
    start = {str(r.get("database")): r for r in c.stats_start}
    for row in c.stats:
        db = str(row.get("database"))
        if db == pgb.ADMIN_DB:
            continue
        before = start.get(db, {})
        d = {
            k[len("total_") :]: _f(v) - _f(before.get(k))
            for k, v in row.items()
            if k.startswith("total_")
        }
        if d.get("xact_count", 0) > 0 and c.seconds > 0:
            yield db, d, c.seconds
        else:
            totals = {k[len("total_") :]: _f(v) for k, v in row.items() if k.startswith("total_")}
            if totals.get("xact_count", 0) > 0:
                yield db, totals, 0.0


def _f(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def busy_servers(inst: PgBouncerInstance, db: str, d: dict[str, float], seconds: float) -> float:
    """Mean server connections holding a transaction: the mean of Σ sv_active over the SHOW
    POOLS samples when there are some (1.18's xact_time also counts a client's first wait),
    else Δtotal_xact_time / Δt."""
    samples = [s for s in inst.console.samples if s.database == db] if inst.console else []
    times = {s.t for s in samples}
    if len(times) >= 2:
        return sum(s.sv_active for s in samples) / len(times)
    return d["xact_time"] / 1e6 / seconds


@check("PB06")
def utilisation(facts: Facts, card: Card) -> Iterator[Evidence]:
    for name, inst in _instances(facts):
        for db, d, seconds in _deltas(inst):
            if seconds < card.threshold("min_seconds"):
                continue
            busy = busy_servers(inst, db, d, seconds)
            capacity = sum(p.size for p in pgb.pools(inst) if p.database == db)
            if capacity <= 0:
                continue
            rho = busy / capacity
            if rho <= card.threshold("utilisation"):
                continue
            rate = d["xact_count"] / seconds
            yield {
                "where": f"{name} database {db}",
                "database": db,
                "busy": round(busy, 2),
                "capacity": capacity,
                "utilisation": f"{rho:.0%}",
                "xacts": int(d["xact_count"]),
                "seconds": seconds,
                "rate": round(rate, 1),
                "xact_ms": round(busy / rate * 1000, 2),  # Little: W = L / λ
            }


@check("PB07")
def wait_metric(facts: Facts, card: Card) -> Iterator[Evidence]:
    for name, inst in _instances(facts):
        c = inst.console
        ver = pgb.version_tuple(c.version) if c is not None else None
        if c is None or ver is None:
            continue
        peak: dict[str, dict[str, Any]] = {}
        for row in [*c.stats_start, *c.stats]:  # the larger of the two readings
            db = str(row.get("database"))
            if _f(row.get("avg_wait_time")) > _f(peak.get(db, {}).get("avg_wait_time")):
                peak[db] = row
        for row in peak.values():
            avg = _f(row.get("avg_wait_time"))
            db = str(row.get("database"))
            if avg < card.threshold("min_wait_us") or db == pgb.ADMIN_DB:
                continue
            xacts = _f(row.get("avg_xact_count"))
            if ver < (1, 23):
                waiting = avg / 1e6
                per_xact = f"{waiting / xacts * 1000:.1f} ms" if xacts > 0 else "unknown"
                meaning = (
                    f"PgBouncer {c.version} reports microseconds of waiting per second of "
                    f"wall-clock time: {avg:.0f} means {waiting:.2f} clients waiting on average, "
                    f"about {per_xact} per transaction at {xacts:.0f} transactions/s, "
                    f"not a {avg / 1e6:.1f} s wait"
                )
            else:
                meaning = (
                    f"PgBouncer {c.version} reports the mean wait per server assignment: "
                    f"{avg / 1000:.1f} ms"
                )
            yield {
                "where": f"{name} database {db}",
                "database": db,
                "version": c.version,
                "avg_wait_time": int(avg),
                "meaning": meaning,
            }


@check("PB08")
def idle_in_transaction(facts: Facts, card: Card) -> Iterator[Evidence]:
    for name, inst in _instances(facts):
        modes = {p.database: p.mode for p in pgb.pools(inst)}
        for db, d, seconds in _deltas(inst):
            if modes.get(db) != "transaction" or d.get("query_count", 0) <= 0:
                continue
            if d["xact_count"] < card.threshold("min_xacts"):
                continue
            xact_us = d["xact_time"] / d["xact_count"]
            query_us = d["query_time"] / d["query_count"]
            per_xact = d["query_count"] / d["xact_count"]
            in_queries = query_us * per_xact
            if xact_us <= card.threshold("ratio") * in_queries:
                continue
            if xact_us < card.threshold("min_xact_ms") * 1000:
                continue
            timeout, src = pgb.setting(inst, "idle_transaction_timeout")
            yield {
                "where": f"{name} database {db}",
                "database": db,
                "xact_ms": round(xact_us / 1000, 2),
                "query_ms": round(query_us / 1000, 3),
                "queries_per_xact": round(per_xact, 2),
                "idle_share": f"{1 - in_queries / xact_us:.0%}",
                "window": f"{seconds:g} s" if seconds else "since PgBouncer started",
                "idle_transaction_timeout": timeout,
                "source": src,
            }


def _servers(s: PoolSample) -> int:
    return s.sv_active + s.sv_idle + s.sv_used


@check("PB09")
def cross_pool_starvation(facts: Facts, card: Card) -> Iterator[Evidence]:
    """A pool with waiting clients and free room in its own pool_size, while the pools that
    share its max_db_connections (same database) or max_user_connections (same user) hold
    every server the cap allows. 1.18 evicts an idle server of the other pool at once, so the
    cap starves only when the other pools' servers are busy, or churns them when idle."""
    for name, inst in _instances(facts):
        if inst.console is None:
            continue
        max_user = pgb.int_setting(inst, "max_user_connections")
        sizes = _pools_by_key(inst)
        by_t: dict[float, list[PoolSample]] = {}
        for s in inst.console.samples:
            by_t.setdefault(s.t, []).append(s)
        hits: dict[tuple[str, str, str], list[tuple[PoolSample, list[PoolSample]]]] = {}
        for row in by_t.values():
            for s in row:
                pool = sizes.get((s.database, s.user))
                if pool is None or s.cl_waiting <= 0 or _servers(s) >= pool.size:
                    continue
                groups = []
                if pool.max_db > 0:
                    groups.append(("max_db_connections", pool.max_db, "database", s.database))
                if max_user > 0:
                    groups.append(("max_user_connections", max_user, "user", s.user))
                for cap_name, cap, kind, key in groups:
                    same = [o for o in row if (o.database if kind == "database" else o.user) == key]
                    if sum(_servers(o) for o in same) >= cap:
                        others = [o for o in same if o is not s and _servers(o) > 0]
                        hits.setdefault((s.database, s.user, cap_name), []).append((s, others))
                        break
        for (db, user, cap_name), found in hits.items():
            if len(found) < card.threshold("min_samples"):
                continue
            pool = sizes[(db, user)]
            holders: dict[str, tuple[int, int]] = {}
            for _, others in found:
                for o in others:
                    act, idle = holders.get(f"{o.database}/{o.user}", (0, 0))
                    holders[f"{o.database}/{o.user}"] = (
                        max(act, o.sv_active),
                        max(idle, o.sv_idle),
                    )
            busy = all(idle == 0 for _, idle in holders.values())
            cap = pool.max_db if cap_name == "max_db_connections" else max_user
            yield {
                "where": f"{name} pool {db}/{user}",
                "database": db,
                "user": user,
                "pool_size": pool.size,
                "cap_name": cap_name,
                "cap": cap,
                "samples_starved": len(found),
                "samples": len(by_t),
                "max_cl_waiting": max(s.cl_waiting for s, _ in found),
                "max_own_servers": max(_servers(s) for s, _ in found),
                "max_maxwait_s": round(max(s.maxwait_s for s, _ in found), 3),
                "holders": ", ".join(
                    f"{k} ({a} active, {i} idle)" for k, (a, i) in sorted(holders.items())
                )
                or "pools that closed before the next sample",
                "held_by": "busy servers (their transactions run or sit idle in a transaction)"
                if busy
                else "servers that are partly idle (PgBouncer 1.18 evicts idle ones and "
                "reconnects: connection churn)",
            }


@check("PB10")
def session_mode_full(facts: Facts, card: Card) -> Iterator[Evidence]:
    for name, inst in _instances(facts):
        if inst.console is None:
            continue
        sizes = _pools_by_key(inst)
        for (db, user), ss in _by_pool(inst.console.samples).items():
            pool = sizes.get((db, user))
            if pool is None or pool.mode != "session" or pool.size <= 0:
                continue
            full = [s for s in ss if s.sv_active >= pool.size and s.cl_waiting > 0]
            if len(full) < card.threshold("min_samples"):
                continue
            yield {
                "where": f"{name} pool {db}/{user}",
                "database": db,
                "user": user,
                "pool_size": pool.size,
                "samples_full": len(full),
                "samples": len(ss),
                "max_cl_active": max(s.cl_active for s in ss),
                "max_cl_waiting": max(s.cl_waiting for s in ss),
                "hazards": _hazard_summary(facts),
            }


# -- the workload through transaction / statement pools ----------------------------------------


def _tracked(inst: PgBouncerInstance) -> frozenset[str]:
    names = set(pgb.TRACKED) | {"application_name"}
    ver = pgb.instance_version(inst)
    if ver is None or ver[0] >= (1, 20):
        names |= pgb.TRACKED_SINCE_1_20
        extra, _ = pgb.setting(inst, "track_extra_parameters")
        names |= {x.strip().lower() for x in extra.split(",") if x.strip()}
    return frozenset(names)


def _routed(facts: Facts, modes: tuple[str, ...]) -> Iterator[tuple[StatementStat, list[str]]]:
    """pg_stat_statements rows whose (database, role) goes through a pool in one of `modes`,
    with the pools ("name: mode")."""
    snap = facts.snapshot
    if snap is None:
        return
    pool_list = [(name, inst, p) for name, inst in _instances(facts) for p in pgb.pools(inst)]
    for stmt in snap.statements:
        if stmt.hidden or not stmt.query or stmt.calls <= 0:
            continue
        hits = [
            f"{p.database}/{p.user} ({p.mode})"
            for _, _, p in pool_list
            if p.mode in modes
            and (stmt.database is None or p.server_db == stmt.database)
            and (p.user in (pgb.ANY_USER, stmt.role) or stmt.role is None)
        ]
        if hits:
            yield stmt, hits


def _tracked_all(facts: Facts) -> frozenset[str]:
    sets = [_tracked(inst) for _, inst in _instances(facts)]
    return frozenset.intersection(*sets) if sets else frozenset()


def _hazard_findings(
    facts: Facts, card: Card, modes: tuple[str, ...] = ("transaction", "statement")
) -> Iterator[Evidence]:
    from advisor.checks.workload import _statement_evidence
    from advisor.pooler.pgbouncer_hazards import hazards

    tracked = _tracked_all(facts)
    total = sum(s.total_exec_time for s in facts.snapshot.statements) if facts.snapshot else 0.0
    for stmt, pools in _routed(facts, modes):
        found = [h for h in hazards(stmt.query or "", tracked) if h.rule == card.code]
        if not found:
            continue
        ev = _statement_evidence(stmt, total)
        ev.update(
            where=f"statement {stmt.queryid}",
            what=", ".join(h.what for h in found),
            pools=", ".join(pools[:3]) + (f" and {len(pools) - 3} more" if len(pools) > 3 else ""),
        )
        if any(h.critical for h in found):
            ev["severity"] = "critical"
        yield ev


def _hazard_summary(facts: Facts) -> str:
    """For PB10: what a move to transaction pooling would break, from pg_stat_statements."""
    snap = facts.snapshot
    if snap is None or snap.statements_info is None:
        return "pg_stat_statements was not read, so the hazard scan (PB11-PB15) has not run"
    from advisor.pooler.pgbouncer_hazards import hazards

    tracked = _tracked_all(facts)
    seen: dict[str, int] = {}
    for stmt in snap.statements:
        for h in hazards(stmt.query or "", tracked) if stmt.query else ():
            if h.rule != "PB18":
                seen[h.what] = seen.get(h.what, 0) + stmt.calls
    if not seen:
        return "the pg_stat_statements scan found nothing that transaction pooling would break"
    top = ", ".join(f"{w} ({n} calls)" for w, n in sorted(seen.items(), key=lambda x: -x[1])[:5])
    return f"fix these first, they break under transaction pooling: {top}"


# PB11-PB15 share one hazard scan; each card keeps only the hits under its own code.
for _code in ("PB11", "PB12", "PB13", "PB14", "PB15"):
    check(_code)(_hazard_findings)


@check("PB18")
def statement_mode_transactions(facts: Facts, card: Card) -> Iterator[Evidence]:
    yield from _hazard_findings(facts, card, modes=("statement",))


@check("PB16")
def protocol_prepares_untracked(facts: Facts, card: Card) -> Iterator[Evidence]:
    """Transaction pools without prepared-statement tracking, with repeated statements going
    through them (pg_stat_statements cannot tell which protocol a client used)."""
    for name, inst in _instances(facts):
        ver = pgb.instance_version(inst)
        if ver is None:
            continue
        tx = [p for p in pgb.pools(inst) if p.mode in ("transaction", "statement")]
        if not tx:
            continue
        max_prep, src = pgb.setting(inst, "max_prepared_statements")
        if ver[0] >= (1, 21) and max_prep not in ("", "0"):
            continue
        stmts = [
            s
            for s, _ in _routed(facts, ("transaction", "statement"))
            if s.calls >= card.threshold("min_calls")
        ]
        if not stmts:
            continue
        why = (
            f"PgBouncer {ver[1]} cannot track protocol-level prepared statements (1.21+)"
            if ver[0] < (1, 21)
            else f"max_prepared_statements = {max_prep or 0} ({src}) switches tracking off"
        )
        yield {
            "where": name,
            "version": ver[1],
            "why": why,
            "statements": len(stmts),
            "calls": sum(s.calls for s in stmts),
            "pools": ", ".join(f"{p.database}/{p.user} ({p.mode})" for p in tx[:3]),
            "upgrade": "upgrade to 1.21 or later and set" if ver[0] < (1, 21) else "set",
        }


@check("PB19")
def unsafe_auth(facts: Facts, card: Card) -> Iterator[Evidence]:
    import re

    for name, inst in _instances(facts):
        auth, src = pgb.setting(inst, "auth_type")
        listen_addr, _ = pgb.setting(inst, "listen_addr")
        addrs = [a.strip() for a in listen_addr.split(",") if a.strip()]
        exposed = [a for a in addrs if a not in ("127.0.0.1", "::1", "localhost")]
        if auth.lower() in ("trust", "any") and exposed:
            yield {
                "where": name,
                "problem": f"auth_type = {auth} ({src}) while listening on "
                f"{', '.join(exposed)}: anyone who reaches the port logs in as any user "
                "without a password",
                "fix_line": "auth_type = scram-sha-256",
            }
        user, _ = pgb.setting(inst, "auth_user")
        query, qsrc = pgb.setting(inst, "auth_query")
        if user and query:
            unqualified = [
                t
                for t in re.findall(r"(?i)\b(?:from|join)\s+([A-Za-z_][\w$]*)(?!\s*\.)\b", query)
                if not re.search(rf"(?i)\b{t}\s*\.", query)
            ]
            if unqualified:
                yield {
                    "where": name,
                    "problem": f"auth_user = {user} with an auth_query ({qsrc}) naming "
                    f"{', '.join(unqualified)} without a schema: a search_path the client "
                    "controls can redirect it (CVE-2025-12819)",
                    "fix_line": "auth_query = "
                    + re.sub(
                        r"(?i)\b(from|join)\s+(pg_authid|pg_shadow|pg_user)\b",
                        r"\1 pg_catalog.\2",
                        query,
                    ),
                }


# -- prepared-statement cache (PB17) and the process (PB20) -------------------------------------

_PREPARABLE = ("select", "insert", "update", "delete", "with", "merge", "values", "table")


def _hot_statements(stmts: list[StatementStat], share: float) -> int:
    """The fewest statements that make up `share` of the calls: the set a client keeps
    re-using, which has to fit in each server connection's LRU."""
    calls = sorted((s.calls for s in stmts), reverse=True)
    total, need, acc = sum(calls), 0, 0
    for c in calls:
        if acc >= share * total:
            break
        acc += c
        need += 1
    return need


@check("PB17")
def prepared_cache_small(facts: Facts, card: Card) -> Iterator[Evidence]:
    """max_prepared_statements below the statements a transaction pool's clients would
    prepare, estimated from pg_stat_statements (it cannot tell which protocol a client used;
    1.24's SHOW STATS parse counts would measure it)."""
    from advisor.collect import is_advisor_text

    for name, inst in _instances(facts):
        ver = pgb.instance_version(inst)
        if ver is not None and ver[0] < (1, 21):
            continue  # PB02 reports the key, PB16 the missing tracking
        value, src = pgb.setting(inst, "max_prepared_statements")
        if src == "the built-in default" and ver is not None and ver[0] >= (1, 24):
            value, src = "200", f"the built-in default of {ver[1]}"
        try:
            limit = int(value)
        except ValueError:
            continue
        if limit <= 0:
            continue  # tracking off: PB16
        per_db: dict[str, list[StatementStat]] = {}
        pools_of: dict[str, set[str]] = {}
        for stmt, pools in _routed(facts, ("transaction", "statement")):
            text = (stmt.query or "").lstrip().lower()
            if not text.startswith(_PREPARABLE) or is_advisor_text(stmt.query):
                continue
            if stmt.toplevel is False:
                continue  # run inside a function: no client prepared it
            key = stmt.database or "?"
            per_db.setdefault(key, []).append(stmt)
            pools_of.setdefault(key, set()).update(pools)
        for db, stmts in sorted(per_db.items()):
            hot = _hot_statements(stmts, card.threshold("hot_share"))
            if hot <= limit:
                continue
            yield {
                "where": f"{name} database {db}",
                "database": db,
                "limit": limit,
                "source": src,
                "version": ver[1] if ver else "unknown (max_prepared_statements needs 1.21+)",
                "distinct": len(stmts),
                "hot": hot,
                "hot_share": f"{card.threshold('hot_share'):.0%}",
                "calls": sum(s.calls for s in stmts),
                "pools": ", ".join(sorted(pools_of[db])[:3]),
                "recommended": pgb.ceil(hot * 1.25),
            }


@check("PB20")
def cpu_bound(facts: Facts, card: Card) -> Iterator[Evidence]:
    """The single-threaded process near its ceiling: one core, or less when its cgroup has a
    CPU quota (a container); measured from /proc/PID/stat over the console window."""
    for name, inst in _instances(facts):
        proc = inst.process
        if proc is None or proc.cpu_share is None:
            continue
        ceiling = min(1.0, proc.cpu_limit) if proc.cpu_limit else 1.0
        used = proc.cpu_share / ceiling
        if used < card.threshold("share"):
            continue
        samples = inst.console.samples if inst.console else []
        waiting = max((s.cl_waiting for s in samples), default=None)
        yield {
            "where": name,
            "pid": proc.pid,
            "cpu": f"{proc.cpu_share:.2f}",
            "ceiling": f"{ceiling:g} core"
            + (" (its cgroup's CPU quota)" if ceiling < 1.0 else " (one thread)"),
            "used": f"{used:.0%}",
            "seconds": inst.console.seconds if inst.console else "?",
            "queue": f"up to {waiting} clients waiting (cl_waiting)"
            if waiting is not None
            else "no console reading, so the client queue is unknown",
        }
