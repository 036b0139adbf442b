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
   AND a.attnum > 0 AND NOT a.attisdropped AND a.attname ILIKE '%%prosumer%%';

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
