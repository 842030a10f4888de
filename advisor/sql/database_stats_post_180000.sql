-- database_stats: NEW in 18: parallel_workers_to_launch / parallel_workers_launched (query
-- Gathers only, same source as pg_stat_statements 1.12), plus the 14+ session counters.
SELECT datname::text AS datname,
       numbackends, xact_commit, xact_rollback, blks_read, blks_hit,
       temp_files, temp_bytes, deadlocks,
       session_time, active_time, idle_in_transaction_time,
       sessions, sessions_abandoned, sessions_fatal, sessions_killed,
       parallel_workers_to_launch, parallel_workers_launched,
       stats_reset
FROM pg_stat_database
WHERE datname IS NOT NULL
ORDER BY datname
