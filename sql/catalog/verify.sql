-- Verification: the checks of the guide's checklist, as catalog queries a DBA can rerun.
-- Parameters: %(schema)s, %(tables)s (the six tables that refer to users).

-- name: tables_present
SELECT to_regclass(quote_ident(%(schema)s) || '.' || quote_ident('user')) IS NOT NULL AS user_exists,
       to_regclass(quote_ident(%(schema)s) || '.' || quote_ident('prosumer')) IS NOT NULL
           AS prosumer_exists;

-- name: primary_key
SELECT con.conname AS name,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
              ORDER BY k.ord)::text[] AS columns
  FROM pg_constraint con
 WHERE con.contype = 'p'
   AND con.conrelid = to_regclass(quote_ident(%(schema)s) || '.' || quote_ident('user'));

-- name: prosumer_columns
-- Any column still named like prosumer in the user table or the six tables that refer to it.
SELECT c.relname AS table_name, a.attname AS column_name
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s || ARRAY['user'])
   AND a.attnum > 0 AND NOT a.attisdropped AND a.attname ILIKE '%%prosumer%%'
 ORDER BY c.relname, a.attname;

-- name: foreign_keys_to_user
SELECT con.conname AS name, t.relname AS table_name,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
              ORDER BY k.ord)::text[] AS columns,
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
              ORDER BY k.ord)::text[] AS ref_columns,
       con.confdeltype AS on_delete, con.confupdtype AS on_update,
       con.condeferrable AS deferrable, con.condeferred AS deferred,
       con.convalidated AS validated
  FROM pg_constraint con
  JOIN pg_class t ON t.oid = con.conrelid
 WHERE con.contype = 'f'
   AND con.confrelid = to_regclass(quote_ident(%(schema)s) || '.' || quote_ident('user'))
 ORDER BY t.relname, con.conname;

-- name: indexes
SELECT i.relname AS name, t.relname AS table_name, pg_get_indexdef(x.indexrelid) AS definition
  FROM pg_index x
  JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_class t ON t.oid = x.indrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname = %(schema)s AND t.relname = ANY(%(tables)s || ARRAY['user'])
 ORDER BY t.relname, i.relname;

-- name: prosumer_names
-- Names that still say prosumer on the renamed objects: every constraint, index, sequence
-- and trigger of the user table, and the constraints, indexes and sequences on the seven
-- renamed columns. %(places)s lists those columns as 'table.column'.
WITH target AS (
  SELECT to_regclass(quote_ident(%(schema)s) || '.' || quote_ident('user')) AS rel),
cols AS (
  SELECT a.attrelid AS rel, a.attnum
    FROM unnest(%(places)s::text[]) p
    JOIN pg_attribute a
      ON a.attrelid = to_regclass(quote_ident(%(schema)s) || '.' || quote_ident(split_part(p, '.', 1)))
     AND a.attname = split_part(p, '.', 2)
  UNION
  SELECT a.attrelid, a.attnum FROM pg_attribute a, target t
   WHERE a.attrelid = t.rel AND a.attnum > 0 AND NOT a.attisdropped)
SELECT 'constraint' AS kind, con.conname::text AS name, con.conrelid::regclass::text AS on_table
  FROM pg_constraint con
 WHERE con.conname ILIKE '%%prosumer%%'
   AND (con.conrelid = (SELECT rel FROM target)
        OR EXISTS (SELECT 1 FROM cols c WHERE c.rel = con.conrelid AND c.attnum = ANY(con.conkey)))
UNION ALL
SELECT 'index', i.relname::text, x.indrelid::regclass::text
  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
 WHERE i.relname ILIKE '%%prosumer%%'
   AND (x.indrelid = (SELECT rel FROM target)
        OR EXISTS (SELECT 1 FROM cols c WHERE c.rel = x.indrelid
                                         AND c.attnum = ANY(x.indkey::int2[])))
UNION ALL
SELECT 'trigger', t.tgname::text, t.tgrelid::regclass::text
  FROM pg_trigger t
 WHERE NOT t.tgisinternal AND t.tgname ILIKE '%%prosumer%%'
   AND t.tgrelid = (SELECT rel FROM target)
UNION ALL
SELECT 'sequence', s.relname::text, dep.refobjid::regclass::text
  FROM pg_class s
  JOIN pg_depend dep ON dep.objid = s.oid AND dep.classid = 'pg_class'::regclass
                    AND dep.refclassid = 'pg_class'::regclass AND dep.deptype IN ('a', 'i')
 WHERE s.relkind = 'S' AND s.relname ILIKE '%%prosumer%%'
   AND EXISTS (SELECT 1 FROM cols c WHERE c.rel = dep.refobjid AND c.attnum = dep.refobjsubid)
 ORDER BY 1, 2;

-- name: objects
-- Every table, column, constraint (with its validity), index, sequence and trigger in the
-- schema's EnerLink tables: what the plan's operations expect to find (or not) afterwards.
SELECT 'table' AS kind, '' AS on_table, c.relname::text AS name, true AS validated
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p')
UNION ALL
SELECT 'column', c.relname::text, a.attname::text, true
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s::text[])
   AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint', c.relname::text, con.conname::text, con.convalidated
  FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s::text[])
UNION ALL
SELECT 'index', t.relname::text, i.relname::text, true
  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname = %(schema)s AND t.relname = ANY(%(tables)s::text[])
UNION ALL
SELECT 'sequence', '', c.relname::text, true
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relkind = 'S'
UNION ALL
SELECT 'trigger', c.relname::text, t.tgname::text, true
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s::text[]) AND NOT t.tgisinternal;
