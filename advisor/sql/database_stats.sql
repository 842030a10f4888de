-- database_stats: pg_stat_database per database (13: no session counters yet, no parallel
-- worker counters). numbackends counts every backend attached to the database, parallel and
-- autovacuum workers included. Readable by every role.
SELECT datname::text AS datname,
       numbackends, xact_commit, xact_rollback, blks_read, blks_hit,
       temp_files, temp_bytes, deadlocks,
       NULL::float8 AS session_time,
       NULL::float8 AS active_time,
       NULL::float8 AS idle_in_transaction_time,
       NULL::bigint AS sessions,
       NULL::bigint AS sessions_abandoned,
       NULL::bigint AS sessions_fatal,
       NULL::bigint AS sessions_killed,
       NULL::bigint AS parallel_workers_to_launch,
       NULL::bigint AS parallel_workers_launched,
       stats_reset
FROM pg_stat_database
WHERE datname IS NOT NULL
ORDER BY datname
