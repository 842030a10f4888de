-- bgworkers: backends that hold a max_worker_processes slot, except parallel workers (counted
-- by activity). Everything not in the list of core process types is an extension's background
-- worker (its bgw_type); core = logical replication launcher/workers and parallel apply workers.
-- The list covers 13-18 names (17: walsummarizer, slotsync worker; 18: io worker,
-- dead-end client backend); names absent in a version are harmless, so one file serves all.
-- A worker that never attaches to shared state (no BackgroundWorkerInitializeConnection) is
-- invisible here. Without pg_read_all_stats backend_type is NULL for other roles' processes.
SELECT backend_type,
       count(*)::int AS count,
       (backend_type LIKE 'logical replication %' OR backend_type = 'parallel apply worker')
           AS core
FROM pg_stat_activity
WHERE backend_type IS NOT NULL
  AND backend_type NOT IN (
      'client backend', 'dead-end client backend', 'standalone backend', 'parallel worker',
      'autovacuum launcher', 'autovacuum worker', 'background writer', 'checkpointer',
      'walwriter', 'walsender', 'walreceiver', 'walsummarizer', 'startup', 'archiver',
      'logger', 'stats collector', 'io worker', 'slotsync worker')
GROUP BY backend_type
ORDER BY backend_type
