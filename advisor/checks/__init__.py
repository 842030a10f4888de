"""Checks, one small function per rule card, registered by code with `@check("PQ201")`.

Importing this package registers them all. Modules are grouped by what they read:
`settings` (PQ0xx: server/session settings), `eligibility` (PQ1xx: why a statement got no
workers), `runtime` (PQ2xx: what happened when it ran), `server` (PQ002-PQ006, PQ010 and CN:
server-wide budgets of worker processes, cores, memory and connection slots), `workload`
(PQ102, PQ113, PQ117-PQ119 and the text half of PQ106, PQ107, PQ111, PQ112:
pg_stat_statements texts and PL/pgSQL bodies parsed with pglast), `pgbouncer` (PB:
pgbouncer.ini, admin console, transaction-pooling hazards) and `pgpool` (PP01-PP08: pgpool-II
conf, console and routing).
"""

from advisor.checks import (
    catalog,
    eligibility,
    pgbouncer,
    pgpool,
    runtime,
    server,
    settings,
    workload,
)

__all__ = [
    "catalog",
    "eligibility",
    "pgbouncer",
    "pgpool",
    "runtime",
    "server",
    "settings",
    "workload",
]
