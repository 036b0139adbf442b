-- Backup: what pg_dump will write, estimated from the catalog (PostgreSQL 12 to 17).

-- name: database
-- The server version and the database's size on disk (the free-space check compares it).
SELECT current_setting('server_version') AS server_version,
       current_setting('server_version_num')::int AS server_version_num,
       pg_database_size(current_database()) AS size_bytes;

-- name: table_sizes
-- Every table whose rows pg_dump copies, named as its --verbose output names them
-- ("schema.table"), with its heap + TOAST size as the catalog last recorded it (relpages):
-- the progress bar's weights. Read from pg_class only, so a session holding a table lock
-- cannot block it (pg_table_size would wait for the lock). Tables that belong to an
-- extension and the system schemas are not dumped.
SELECT n.nspname || '.' || c.relname AS name,
       (greatest(c.relpages, 0) + coalesce(greatest(t.relpages, 0), 0))::bigint
         * current_setting('block_size')::bigint AS bytes
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
 WHERE c.relkind = 'r'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                      AND d.deptype = 'e')
 ORDER BY 1;
