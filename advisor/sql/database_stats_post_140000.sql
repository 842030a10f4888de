-- database_stats: NEW in 14: session counters (sessions, sessions_abandoned/fatal/killed,
-- session_time, active_time, idle_in_transaction_time; ms; client backends only).
SELECT datname::text AS datname,
       numbackends, xact_commit, xact_rollback, blks_read, blks_hit,
       temp_files, temp_bytes, deadlocks,
       session_time, active_time, idle_in_transaction_time,
       sessions, sessions_abandoned, sessions_fatal, sessions_killed,
       NULL::bigint AS parallel_workers_to_launch,
       NULL::bigint AS parallel_workers_launched,
       stats_reset
FROM pg_stat_database
WHERE datname IS NOT NULL
ORDER BY datname
