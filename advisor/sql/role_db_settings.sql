-- role_db_settings: ALTER ROLE/DATABASE ... SET overrides from pg_db_role_setting, one row per
-- setting (13+; unchanged since 9.0). role NULL = every role, database NULL = every database.
SELECT r.rolname::text AS role,
       d.datname::text AS database,
       split_part(cfg, '=', 1) AS name,
       substr(cfg, strpos(cfg, '=') + 1) AS value
FROM pg_db_role_setting s
LEFT JOIN pg_roles r ON r.oid = s.setrole
LEFT JOIN pg_database d ON d.oid = s.setdatabase
CROSS JOIN LATERAL unnest(s.setconfig) AS cfg
ORDER BY 1 NULLS FIRST, 2 NULLS FIRST, 3
