"""PP01-PP08: pgpool-II from its pgpool.conf, its console and the server's workload.

Settings come from `PgpoolView` (PGPOOL SHOW ALL, else the file, else the compiled default of
the running branch); budgets and sizing from `advisor.pooler.pgpool_sizing`; routing from
`advisor.pooler.pgpool_routing` (pglast, imported only when PP05/PP07 run).
Knowledge: knowledge/poolers.md §3 (pgpool-II), §4 (sizing), §6 (PP rules).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from advisor.engine import Card, Evidence, Facts, check

if TYPE_CHECKING:
    from advisor.pooler.pgpool import PgpoolView

_LOOPBACK = re.compile(r"^(localhost|127\.[\d.]+|::1|/.*)$")


def _view(facts: Facts) -> PgpoolView:
    # The pooler modules load only when pgpool facts exist, off the offline `explain` path.
    from advisor.pooler.pgpool import PgpoolView

    assert facts.pgpool is not None
    return PgpoolView(facts.pgpool)


def _children_fix(facts: Facts, view: PgpoolView) -> str:
    from advisor.pooler.pgpool_sizing import advise_children

    advice = advise_children(facts, view)
    if advice is None or advice.recommended <= advice.current:
        return "Raise num_init_children as far as the backend budget allows (rule PP01)"
    return (
        f"Set num_init_children = {advice.recommended} in pgpool.conf and restart pgpool (the "
        "num_init_children recommendation shows the arithmetic)"
    )


@check("PP01")
def backend_budget(facts: Facts, card: Card) -> Iterator[Evidence]:
    from advisor.pooler.pgpool_sizing import node_budgets

    view = _view(facts)
    children = int(view.number("num_init_children"))
    max_pool = int(view.number("max_pool"))
    base = children * max_pool
    for b in node_budgets(facts, view):
        need, need_cancel = base + b.checks, 2 * base + b.checks
        if need_cancel <= b.available:
            continue
        room = b.available - b.checks
        fixes = []
        if room // (2 * max_pool) >= 1:
            fixes.append(
                f"num_init_children = {room // (2 * max_pool)} (keeping max_pool = {max_pool})"
            )
        if room // (2 * children) >= 1:
            fixes.append(f"max_pool = {room // (2 * children)}")
        fix_conf = " or ".join(fixes) or "fewer children and max_pool = 1"
        yield {
            "where": f"pgpool node {b.node} ({b.address})",
            "severity": "critical" if need > b.available else "warning",
            "node": b.node,
            "address": b.address,
            "children": children,
            "children_origin": view.setting("num_init_children").origin,
            "max_pool": max_pool,
            "max_pool_origin": view.setting("max_pool").origin,
            "base": base,
            "cancel": 2 * base,
            "checks": b.checks,
            "check_text": b.check_text,
            "need": need,
            "need_cancel": need_cancel,
            "max_connections": b.max_connections,
            "superuser_reserved": b.superuser_reserved,
            "reserved": b.reserved,
            "available": b.available,
            "limits_source": b.source,
            "verdict": (
                "Even without cancels the children can take every slot"
                if need > b.available
                else "Only cancel requests push it over, so query cancels fail when it is full"
            ),
            "fix_conf": fix_conf,
            "max_connections_needed": need_cancel + b.superuser_reserved + b.reserved,
        }


@check("PP02")
def children_exhausted(facts: Facts, card: Card) -> Iterator[Evidence]:
    from advisor.pooler.pgpool_sizing import demand

    assert facts.pgpool is not None
    view = _view(facts)
    samples = facts.pgpool.samples
    children = int(view.number("num_init_children"))
    full = [s for s in samples if s.busy >= max(children, s.children)]
    if not full or len(full) / len(samples) < card.threshold("min_share"):
        return
    d = demand(facts, view)
    waiting = (
        f"; up to {d.peak_waiting} clients waited in pgpool's accept queue"
        if d.peak_waiting
        else ""
    )
    yield {
        "where": "pgpool console",
        "children": children,
        "children_origin": view.setting("num_init_children").origin,
        "full_samples": len(full),
        "samples": len(samples),
        "seconds": round(facts.pgpool.sample_seconds, 1),
        "waiting": waiting,
        "idle_children": max(s.idle + s.idle_in_transaction for s in samples),
        "reserved_connections": int(view.number("reserved_connections")),
        "fix_children": _children_fix(facts, view),
    }


@check("PP03")
def idle_clients_pin_children(facts: Facts, card: Card) -> Iterator[Evidence]:
    assert facts.pgpool is not None
    view = _view(facts)
    limit = view.number("client_idle_limit")
    min_idle = card.threshold("idle_seconds")
    if 0 < limit <= min_idle:
        return
    children = int(view.number("num_init_children"))
    best = None
    for s in facts.pgpool.samples:
        long_idle = [d for d in s.idle_seconds if d >= min_idle]
        if best is None or len(long_idle) > len(best[1]):
            best = (s, long_idle)
    if best is None or not best[1]:
        return
    sample, long_idle = best
    if len(long_idle) < max(1.0, card.threshold("idle_share") * children):
        return
    yield {
        "where": "pgpool console",
        "idle": len(long_idle),
        "children": children,
        "min_idle": f"{min_idle:g}",
        "longest": f"{max(long_idle):g}",
        "at": f"{sample.t:g}",
        "client_idle_limit": f"{limit:g}",
        "limit_origin": view.setting("client_idle_limit").origin,
        "suggested_limit": int(max(60, min_idle * 6)),
    }


@check("PP04")
def load_balancing_ineffective(facts: Facts, card: Card) -> Iterator[Evidence]:
    assert facts.pgpool is not None
    view = _view(facts)
    standbys = view.standbys()
    if not standbys:
        return
    lb = view.setting("load_balance_mode")
    if not view.load_balancing():
        unset = "default" in lb.origin
        yield {
            "where": "pgpool load_balance_mode",
            "problem": (
                f"load_balance_mode is off ({lb.origin}"
                + (
                    "; off is the compiled default up to 4.2, so a commented-out line means off"
                    if unset
                    else ""
                )
                + f"): every read goes to the primary although {len(standbys)} standby node(s) "
                "could serve them"
            ),
            "fix_text": "load_balance_mode = on   # pgpool.conf; restart pgpool",
        }
        return
    nodes = facts.pgpool.nodes
    total = sum(n.select_cnt for n in nodes)
    weights = sum(n.lb_weight for n in nodes if n.status in ("up", "waiting"))
    if total < card.threshold("min_selects") or weights <= 0:
        return
    expected = sum(n.lb_weight for n in nodes if n.node_id in standbys) / weights
    observed = sum(n.select_cnt for n in nodes if n.node_id in standbys) / total
    if expected <= 0 or observed >= card.threshold("ratio") * expected:
        return
    yield {
        "where": "pgpool SHOW POOL_NODES",
        "problem": (
            f"Standbys answered {observed:.0%} of {total:,} SELECTs (select_cnt) although "
            f"their backend_weight share is {expected:.0%}: reads are being pinned to the "
            "primary"
        ),
        "fix_text": (
            "Find what pins them: rule PP05 (volatile functions, leading comments), clients "
            "that wrap reads in transactions after a write (disable_load_balance_on_write), "
            "or a driver without autocommit"
        ),
    }


@check("PP05")
def reads_pinned_to_primary(facts: Facts, card: Card) -> Iterator[Evidence]:
    from advisor.pooler.pgpool_routing import catalog_from, is_own, route
    from advisor.workload import shorten

    view = _view(facts)
    if not view.load_balancing() or not view.standbys():
        return
    snap = facts.snapshot
    assert snap is not None
    catalog = catalog_from(facts, view)
    identity = {f.name.lower(): f.identity for f in snap.functions}
    rows = [s for s in snap.statements if not s.hidden and s.query and not is_own(s.query)]
    total_calls = sum(s.calls for s in snap.statements) or 1
    found = 0
    for s in sorted(rows, key=lambda r: -r.calls):
        r = route(s.query or "", catalog)
        if r is None or not (r.functions or r.comment):
            continue
        if s.calls < card.threshold("min_calls"):
            continue
        if r.comment:
            cause = "the text starts with a comment and allow_sql_comments is off"
            fix = "allow_sql_comments = on   # pgpool.conf; reload (pgpool reload)"
        else:
            user = [f for f in r.functions if f in catalog.volatile or "." in f]
            how = (
                "by write_function_list/read_only_function_list"
                if (catalog.write_list or catalog.read_only_list)
                else "volatile in pg_proc (both function lists are empty)"
            )
            cause = f"it calls {', '.join(f + '()' for f in r.functions)}, {how}"
            builtin = [f for f in r.functions if f not in user]
            fixes = [
                f"ALTER FUNCTION {identity.get(f.lower(), f)} STABLE; (only if it writes nothing)"
                for f in user
            ]
            if user:
                fixes.append(
                    "or list them in read_only_function_list (pgpool.conf; reload; the list then "
                    "decides for every function)"
                )
            if builtin:
                fixes.append(
                    f"Compute {', '.join(f + '()' for f in builtin)} in the client or in a "
                    "separate statement and pass the value in, so the read itself can go to a "
                    "standby"
                )
            fix = "; ".join(fixes)
        found += 1
        yield {
            "where": f"statement {s.queryid}",
            "queryid": s.queryid,
            "calls": s.calls,
            "call_share": f"{s.calls / total_calls:.1%}",
            "total_ms": round(s.total_exec_time, 1),
            "cause": cause,
            "query": shorten(s.query or ""),
            "fix_text": fix,
        }
        if found >= card.threshold("max_findings"):
            return


@check("PP06")
def no_health_check_or_lag_guard(facts: Facts, card: Card) -> Iterator[Evidence]:
    assert facts.pgpool is not None
    view = _view(facts)
    nodes = view.node_ids()
    unchecked = [n for n in nodes if view.number("health_check_period", n) <= 0]
    unknown = [n.node_id for n in facts.pgpool.nodes if n.pg_status == "unknown"]
    if unchecked:
        seen = f"; SHOW POOL_NODES pg_status reads unknown on node {unknown}" if unknown else ""
        yield {
            "where": "pgpool health_check_period",
            "problem": (
                f"health_check_period is 0 for node(s) {', '.join(map(str, unchecked))} "
                f"({view.node_setting('health_check_period', unchecked[0]).origin}){seen}: a "
                "dead backend is noticed only when clients fail on it"
            ),
            "fix_text": (
                "health_check_period = 10, health_check_timeout = 20, health_check_user = "
                "'<monitor role>', health_check_max_retries = 3 (pgpool.conf; reload); each "
                "check costs one connection per node (counted in PP01)"
            ),
        }
    if view.load_balancing() and view.standbys():
        by_bytes = view.number("delay_threshold")
        by_time = view.number("delay_threshold_by_time")
        if by_bytes <= 0 and by_time <= 0:
            yield {
                "where": "pgpool delay_threshold",
                "problem": (
                    "load balancing is on but delay_threshold = 0 "
                    f"({view.setting('delay_threshold').origin}) and no "
                    "delay_threshold_by_time: reads keep going to a standby however far it lags"
                ),
                "fix_text": (
                    "delay_threshold = 10000000 (bytes of WAL; or delay_threshold_by_time in "
                    "ms on 4.4+) with sr_check_period > 0 and backend_application_nameN matching "
                    "the standby's application_name (pgpool.conf; reload)"
                ),
            }


@check("PP07")
def routing_potential(facts: Facts, card: Card) -> Iterator[Evidence]:
    from advisor.pooler.pgpool_routing import catalog_from, potential

    assert facts.pgpool is not None and facts.snapshot is not None
    view = _view(facts)
    rows = [s for s in facts.snapshot.statements if not s.hidden and s.query]
    pot = potential(rows, catalog_from(facts, view))
    if pot.read_calls < card.threshold("min_reads"):
        return
    nodes = facts.pgpool.nodes
    standbys = set(view.standbys())
    total = sum(n.select_cnt for n in nodes)
    observed = sum(n.select_cnt for n in nodes if n.node_id in standbys) / total if total else None
    pinned = 1 - pot.balanceable_calls / pot.read_calls
    if pinned < card.threshold("gap"):
        return
    observed_text = (
        f"SHOW POOL_NODES: standbys served {observed:.0%} of {total:,} SELECTs"
        if observed is not None
        else "no console (--pgpool-dsn) to compare with select_cnt"
    )
    tx = (
        f"; {pot.transaction_calls:,} BEGIN/START calls: reads after a write inside them stay "
        "on the primary"
        if pot.transaction_calls
        else ""
    )
    yield {
        "where": "pg_stat_statements",
        "calls": pot.calls,
        "call_share": f"{pot.call_share:.0%}",
        "time_share": f"{pot.time_share:.0%}",
        "read_share": f"{pot.read_calls / pot.calls:.0%}",
        "pinned_share": f"{pinned:.0%}",
        "observed": observed_text,
        "transactions": tx,
    }


@check("PP08")
def secrets_and_client_auth(facts: Facts, card: Card) -> Iterator[Evidence]:
    from advisor.pooler.pgpool import PASSWORD_KEY

    assert facts.pgpool is not None
    view = _view(facts)
    clear = sorted(
        k
        for k, s in facts.pgpool.settings.items()
        if PASSWORD_KEY.search(k) and s.value == "clear text"
    )
    if clear:
        lines = ", ".join(f"{k} (line {facts.pgpool.settings[k].line})" for k in clear)
        yield {
            "where": "pgpool.conf passwords",
            "problem": f"clear-text passwords in pgpool.conf: {lines}",
            "fix_text": (
                "store them AES-encrypted: pg_enc -m -k ~/.pgpoolkey -u <user> -p, then "
                "<key> = 'AES...' in pgpool.conf (or leave them empty and use pool_passwd), "
                "chmod 600 pgpool.conf; reload"
            ),
        }
    if view.flag("allow_clear_text_frontend_auth"):
        yield {
            "where": "pgpool allow_clear_text_frontend_auth",
            "problem": (
                "allow_clear_text_frontend_auth = on "
                f"({view.setting('allow_clear_text_frontend_auth').origin}): pgpool asks "
                "clients for their password in clear text"
            ),
            "fix_text": (
                "allow_clear_text_frontend_auth = off with pool_passwd entries (pg_enc/pg_md5) "
                "and scram-sha-256 in pool_hba.conf (pgpool.conf; reload)"
            ),
        }
    listen = view.setting("listen_addresses")
    addrs = [a.strip() for a in (listen.value or "").split(",") if a.strip()]
    exposed = [a for a in addrs if not _LOOPBACK.match(a)]
    if exposed and not view.flag("enable_pool_hba"):
        yield {
            "where": "pgpool enable_pool_hba",
            "problem": (
                f"enable_pool_hba = off ({view.setting('enable_pool_hba').origin}) while "
                f"listen_addresses = '{listen.value}' ({listen.origin}): every client that "
                "reaches the port is let through to the backends' own authentication"
            ),
            "fix_text": (
                "enable_pool_hba = on with a pool_hba.conf that lists the client networks "
                "and scram-sha-256 (pgpool.conf; reload)"
            ),
        }
