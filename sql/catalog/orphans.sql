-- Orphan scan: the catalog facts it needs (PostgreSQL 12 to 17). The scan, export and
-- delete statements themselves are composed in wizard/core/orphans.py with psycopg.sql,
-- because their table and column names come from these results.
-- Parameters: %(schema)s and %(table)s name one table.

-- name: foreign_keys_to
-- Every foreign key that points at the table, from any schema, with its columns and the
-- referenced columns in key order. On a partitioned table each partition carries a copy
-- of the FK (conparentid set): only the partitioned table's own one is listed.
SELECT con.conname AS name, n.nspname AS table_schema, t.relname AS table_name,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
              ORDER BY k.ord)::text[] AS columns,
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
              ORDER BY k.ord)::text[] AS ref_columns,
       con.convalidated AS validated, con.confdeltype AS on_delete
  FROM pg_constraint con
  JOIN pg_class t ON t.oid = con.conrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE con.contype = 'f' AND con.conparentid = 0
   AND con.confrelid = to_regclass(format('%%I.%%I', %(schema)s::text, %(table)s::text))
 ORDER BY n.nspname, t.relname, con.conname;

-- name: columns
-- A table's columns in order, with the type name (no length: a cast to varchar(n) would
-- truncate) and whether NULL is allowed.
SELECT a.attname AS name, format_type(a.atttypid, NULL) AS type, a.attnotnull AS not_null
  FROM pg_attribute a
 WHERE a.attrelid = to_regclass(format('%%I.%%I', %(schema)s::text, %(table)s::text))
   AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum;

-- name: primary_key
-- The primary key's columns in key order (empty when the table has none).
SELECT a.attname AS name
  FROM pg_index x
  JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY k(attnum, ord) ON true
  JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
 WHERE x.indrelid = to_regclass(format('%%I.%%I', %(schema)s::text, %(table)s::text)) AND x.indisprimary
 ORDER BY k.ord;

-- name: estimated_rows
-- The planner's row estimate and the average width of the named columns, to size
-- the hash of the parent's keys (never below the session's own work_mem).
-- A table never analyzed has reltuples -1: then guess from its size (100 bytes a row errs
-- on the generous side).
SELECT (CASE WHEN c.reltuples >= 0 THEN c.reltuples
             ELSE pg_relation_size(c.oid) / 100 END)::bigint AS estimated_rows,
       coalesce((SELECT sum(s.avg_width) FROM pg_stats s
                  WHERE s.schemaname = %(schema)s AND s.tablename = %(table)s
                    AND s.attname = ANY(%(columns)s)), 0)::int AS avg_width,
       pg_size_bytes(current_setting('work_mem')) AS work_mem
  FROM pg_class c
 WHERE c.oid = to_regclass(format('%%I.%%I', %(schema)s::text, %(table)s::text));
