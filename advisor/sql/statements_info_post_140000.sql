-- statements_info: NEW in pg_stat_statements 1.9 (PG 14): pg_stat_statements_info, how many
-- entries were evicted (dealloc) and since when the counters run (stats_reset). Absent in 1.8.
SELECT dealloc, stats_reset FROM {pgss_info}
