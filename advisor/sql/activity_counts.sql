-- activity_counts: one sample of connection and parallel-worker use (13+: leader_pid).
-- pg_stat_activity is frozen for the rest of a transaction once read, so each later sample
-- runs in a transaction of its own. hidden = rows whose type the role may not see (no
-- pg_read_all_stats): those are neither counted as clients nor as workers.
SELECT count(*) FILTER (WHERE backend_type = 'client backend') AS client_backends,
       count(*) FILTER (WHERE backend_type = 'client backend' AND state = 'active') AS active,
       count(*) FILTER (WHERE backend_type = 'client backend' AND state = 'idle') AS idle,
       count(*) FILTER (WHERE backend_type = 'client backend'
                          AND state = 'idle in transaction') AS idle_in_transaction,
       count(*) FILTER (WHERE backend_type = 'client backend'
                          AND state = 'idle in transaction (aborted)')
           AS idle_in_transaction_aborted,
       count(*) FILTER (WHERE backend_type = 'parallel worker') AS parallel_workers,
       count(DISTINCT leader_pid) FILTER (WHERE backend_type = 'parallel worker')
           AS parallel_leaders,
       count(*) FILTER (WHERE backend_type IS NULL) AS hidden
FROM pg_stat_activity
WHERE pid <> pg_backend_pid()
