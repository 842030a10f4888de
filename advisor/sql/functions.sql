-- functions: user functions, procedures and aggregates (non-system schemas; 13+, prokind since
-- 11) with their parallel label, for PQ101 live confirmation (Appendix A.3/A.4).
-- has_exception_block is a cheap regex on a plpgsql body (an EXCEPTION keyword followed by
-- WHEN): a comment or string containing "exception when" also matches, so it is a hint only.
-- source: pg_get_functiondef() of plpgsql functions and procedures, cut at 20,000 characters
-- (a cut body does not parse and is skipped by PQ118/PQ119).
-- partial_agg: for aggregates, whether they can be split into Partial/Finalize (a combine
-- function, and serial/deserial functions when the state is `internal`, §1.C); NULL otherwise.
-- Extension members are included (they are user-installed). The 5,001st row tells the
-- collector the 5,000 cap was hit.
SELECT n.nspname::text AS schema_name,
       p.proname::text AS name,
       p.oid::regprocedure::text AS identity,
       p.proparallel::text AS proparallel,
       p.provolatile::text AS provolatile,
       l.lanname::text AS language,
       p.prokind::text AS prokind,
       p.proconfig AS proconfig,
       (l.lanname = 'plpgsql' AND p.prosrc ~* '\mexception\M\s+when\M') AS has_exception_block,
       CASE WHEN l.lanname = 'plpgsql' AND p.prokind IN ('f', 'p')
            THEN left(pg_get_functiondef(p.oid), 20000) END AS source,
       CASE WHEN a.aggfnoid IS NOT NULL
            THEN a.aggkind = 'n' AND a.aggcombinefn <> 0
                 AND (a.aggtranstype <> 'internal'::regtype
                      OR (a.aggserialfn <> 0 AND a.aggdeserialfn <> 0)) END AS partial_agg
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
LEFT JOIN pg_aggregate a ON a.aggfnoid = p.oid
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_toast'
ORDER BY 1, 2, 3
LIMIT %(limit)s + 1
