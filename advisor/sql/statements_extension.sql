-- statements_extension: is pg_stat_statements installed in the current database, in which
-- schema, at which version (the columns follow the extension version, which can lag the
-- server after pg_upgrade), and may we read it. 13+; unchanged.
SELECT n.nspname::text AS schema,
       e.extversion AS version,
       has_function_privilege(
           format('%I.pg_stat_statements(boolean)', n.nspname), 'EXECUTE') AS readable
FROM pg_extension e
JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements'
