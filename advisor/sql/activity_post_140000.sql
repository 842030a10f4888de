-- activity: NEW in 14: pg_stat_activity.query_id (filled when compute_query_id is on/auto
-- with pg_stat_statements), joins a running statement to its pg_stat_statements row.
-- Never the query text. Without pg_read_all_stats, other roles' rows show pid only.
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
       query_id
FROM pg_stat_activity
WHERE pid <> pg_backend_pid()
ORDER BY pid
