-- statements: CHANGED in pg_stat_statements 1.11 (PG 17): blk_read_time/blk_write_time split
-- into shared_blk_*_time and local_blk_*_time (summed here to keep one blk_*_time column);
-- NEW jit_deform_time and stats_since (when this entry started counting).
SELECT s.queryid,
       pg_get_userbyid(s.userid)::text AS role,
       d.datname::text AS database,
       s.toplevel AS toplevel,
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
       s.shared_blk_read_time + s.local_blk_read_time AS blk_read_time,
       s.shared_blk_write_time + s.local_blk_write_time AS blk_write_time,
       s.temp_blk_read_time AS temp_blk_read_time,
       s.temp_blk_write_time AS temp_blk_write_time,
       s.wal_bytes::float8 AS wal_bytes,
       s.jit_functions AS jit_functions,
       s.jit_generation_time AS jit_generation_time,
       s.jit_inlining_time AS jit_inlining_time,
       s.jit_optimization_time AS jit_optimization_time,
       s.jit_emission_time AS jit_emission_time,
       s.jit_deform_time AS jit_deform_time,
       NULL::bigint AS parallel_workers_to_launch,
       NULL::bigint AS parallel_workers_launched,
       s.stats_since AS stats_since
FROM {pgss} s
LEFT JOIN pg_database d ON d.oid = s.dbid
-- not the advisor's own statements (advisor.collect.ADVISOR_MARKER)
WHERE strpos(left(coalesce(s.query, ''), 300), '/* pg-parallel-advisor */') = 0
ORDER BY s.total_exec_time DESC
LIMIT %(limit)s
