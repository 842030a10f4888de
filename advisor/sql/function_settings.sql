-- function_settings: CREATE/ALTER FUNCTION ... SET overrides (pg_proc.proconfig) in the
-- current database, one row per setting (13+; unchanged).
SELECT p.oid::regprocedure::text AS function,
       split_part(cfg, '=', 1) AS name,
       substr(cfg, strpos(cfg, '=') + 1) AS value
FROM pg_proc p
CROSS JOIN LATERAL unnest(p.proconfig) AS cfg
WHERE p.proconfig IS NOT NULL
ORDER BY 1, 2
