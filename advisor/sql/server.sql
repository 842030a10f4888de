-- server: who and what we are connected to (13+; nothing here changes between versions).
-- pg_has_role(name, 'USAGE') asks about current_user and is true for superusers.
SELECT current_setting('server_version') AS server_version,
       current_setting('server_version_num')::int AS server_version_num,
       current_database()::text AS database,
       current_user::text AS "user",
       pg_backend_pid() AS backend_pid,
       host(inet_server_addr()) AS server_addr,
       inet_server_port() AS server_port,
       pg_is_in_recovery() AS in_recovery,
       pg_postmaster_start_time() AS postmaster_start_time,
       coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false) AS superuser,
       pg_has_role('pg_read_all_stats', 'USAGE') AS read_all_stats,
       pg_has_role('pg_read_all_settings', 'USAGE') AS read_all_settings
