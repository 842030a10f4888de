-- relations: user tables, materialized views, partitioned and foreign tables (13+; unchanged
-- through 18) for the catalog rules (knowledge/parallel-query.md Appendix A.7/A.8, §1.B, §1.D).
-- blocks = current main-fork size (what the planner's size rule uses, not relpages);
-- reloption_workers = the parallel_workers reloption (NULL when not set); fdw = the foreign
-- data wrapper of a foreign table. The 2,001st row tells the collector the 2,000 cap was hit.
SELECT n.nspname::text AS schema_name,
       c.relname::text AS name,
       c.relkind::text AS relkind,
       c.relpersistence::text AS relpersistence,
       (pg_relation_size(c.oid) / current_setting('block_size')::int)::bigint AS blocks,
       c.reltuples::float8 AS reltuples,
       (SELECT option_value::int
          FROM pg_options_to_table(c.reloptions)
         WHERE option_name = 'parallel_workers') AS reloption_workers,
       w.fdwname::text AS fdw
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_foreign_table ft ON ft.ftrelid = c.oid
LEFT JOIN pg_foreign_server fs ON fs.oid = ft.ftserver
LEFT JOIN pg_foreign_data_wrapper w ON w.oid = fs.srvfdw
WHERE c.relkind IN ('r', 'm', 'p', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_toast'
ORDER BY pg_relation_size(c.oid) DESC, 1, 2
LIMIT %(limit)s + 1
