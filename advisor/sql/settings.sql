-- settings: every row of pg_settings (a few hundred rows, cheap). Same columns on 13-18.
-- sourcefile/sourceline are NULL unless superuser or pg_read_all_settings; GUC_SUPERUSER_ONLY
-- settings are hidden from other roles altogether.
SELECT name, setting, unit, category, vartype, source, sourcefile, sourceline, context,
       boot_val, reset_val, pending_restart
FROM pg_settings
ORDER BY name
