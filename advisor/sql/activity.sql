-- activity: one row per backend except the advisor's own (13: leader_pid is new in 13;
-- query_id does not exist yet). Never the query text: it can carry literals and secrets.
-- Without pg_read_all_stats, other roles' rows show pid only (backend_type, state ... NULL).
SELECT pid,
       backend_type,
       state,
       leader_pid,
       wait_event_type,
       wait_event,
       application_name,
       usename::text AS usename,
       datname::text AS datname,
       host(client_addr) AS client_addr,
       extract(epoch FROM clock_timestamp() - backend_start)::float8 AS backend_age_s,
       extract(epoch FROM clock_timestamp() - xact_start)::float8 AS xact_age_s,
       extract(epoch FROM clock_timestamp() - state_change)::float8 AS state_age_s,
       NULL::bigint AS query_id
FROM pg_stat_activity
WHERE pid <> pg_backend_pid()
ORDER BY pid
