-- statements: pg_stat_statements 1.8 (PG 13): *_time renamed to *_exec_time, planning
-- counters and wal_bytes are new in 1.8. No toplevel, no JIT or temp I/O timing yet.
-- The file is chosen by the *extension* version (capped by the server's), which can lag the
-- server after pg_upgrade. The view is schema-qualified by the loader; top N by total time.
-- Rows of other roles (no pg_read_all_stats) come back with hidden = true and no text.
SELECT s.queryid,
       pg_get_userbyid(s.userid)::text AS role,
       d.datname::text AS database,
       NULL::boolean AS toplevel,
       s.queryid IS NULL AS hidden,
       CASE WHEN s.queryid IS NOT NULL THEN s.query END AS query,
       s.calls,
       s.total_exec_time, s.mean_exec_time, s.min_exec_time, s.max_exec_time,
       s.stddev_exec_time,
       s.rows,
       s.plans, s.total_plan_time,
       s.shared_blks_hit, s.shared_blks_read, s.shared_blks_dirtied, s.shared_blks_written,
       s.local_blks_read, s.local_blks_written,
       s.temp_blks_read, s.temp_blks_written,
       s.blk_read_time AS blk_read_time,
       s.blk_write_time AS blk_write_time,
       NULL::float8 AS temp_blk_read_time,
       NULL::float8 AS temp_blk_write_time,
       s.wal_bytes::float8 AS wal_bytes,
       NULL::bigint AS jit_functions,
       NULL::float8 AS jit_generation_time,
       NULL::float8 AS jit_inlining_time,
       NULL::float8 AS jit_optimization_time,
       NULL::float8 AS jit_emission_time,
       NULL::float8 AS jit_deform_time,
       NULL::bigint AS parallel_workers_to_launch,
       NULL::bigint AS parallel_workers_launched,
       NULL::timestamptz AS stats_since
FROM {pgss} s
LEFT JOIN pg_database d ON d.oid = s.dbid
-- not the advisor's own statements (advisor.collect.ADVISOR_MARKER)
WHERE strpos(left(coalesce(s.query, ''), 300), '/* pg-parallel-advisor */') = 0
ORDER BY s.total_exec_time DESC
LIMIT %(limit)s
