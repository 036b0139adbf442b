-- Discovery: what the rename needs to know, read from the catalog (PostgreSQL 12 to 18).
-- Nothing here depends on constraint or index names; parameters are %(schema)s and
-- %(tables)s (the candidate table names).

-- name: tables
-- The EnerLink tables that exist, their owner, and whether we may ALTER them (owner or
-- member of the owning role).
SELECT c.relname AS table_name, c.oid::bigint AS oid,
       pg_get_userbyid(c.relowner) AS owner,
       pg_has_role(current_user, c.relowner, 'USAGE') AS can_alter,
       c.reltuples::bigint AS estimated_rows
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND c.relname = ANY(%(tables)s);

-- name: columns
SELECT c.relname AS table_name, a.attname AS column_name
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s)
   AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY c.relname, a.attnum;

-- name: constraints
-- Primary keys and foreign keys that touch the candidate tables, from either side, and
-- (PostgreSQL 18 names them in pg_constraint) NOT NULL constraints, with their columns in
-- key order.
SELECT con.conname AS name, con.contype AS kind,
       t.relname AS table_name,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
              ORDER BY k.ord)::text[] AS columns,
       rt.relname AS ref_table, rn.nspname AS ref_schema,
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
              ORDER BY k.ord)::text[] AS ref_columns,
       con.confdeltype AS on_delete, con.confupdtype AS on_update,
       con.condeferrable AS deferrable, con.condeferred AS deferred,
       con.convalidated AS validated,
       pg_get_constraintdef(con.oid) AS definition
  FROM pg_constraint con
  JOIN pg_class t ON t.oid = con.conrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
  LEFT JOIN pg_class rt ON rt.oid = con.confrelid
  LEFT JOIN pg_namespace rn ON rn.oid = rt.relnamespace
 WHERE con.contype IN ('p', 'f', 'n')
   AND ((n.nspname = %(schema)s AND t.relname = ANY(%(tables)s))
        OR (rn.nspname = %(schema)s AND rt.relname = ANY(%(tables)s)))
 ORDER BY t.relname, con.conname;

-- name: indexes
-- Indexes on the candidate tables, with their key columns; `constraint_name` is set when
-- the index belongs to a constraint (renaming the constraint renames the index).
SELECT i.relname AS name, t.relname AS table_name,
       ARRAY(SELECT coalesce(a.attname, '(expression)')
               FROM unnest(x.indkey) WITH ORDINALITY k(attnum, ord)
               LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
              WHERE k.ord <= x.indnkeyatts
              ORDER BY k.ord)::text[] AS columns,
       x.indisprimary AS is_primary, x.indisunique AS is_unique,
       con.conname AS constraint_name,
       pg_get_indexdef(x.indexrelid) AS definition,
       pg_get_expr(x.indpred, x.indrelid) AS predicate
  FROM pg_index x
  JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_class t ON t.oid = x.indrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
  LEFT JOIN pg_constraint con ON con.conindid = x.indexrelid AND con.conrelid = x.indrelid
                              AND con.contype IN ('p', 'u', 'x')
 WHERE n.nspname = %(schema)s AND t.relname = ANY(%(tables)s)
 ORDER BY t.relname, i.relname;

-- name: triggers
SELECT t.tgname AS name, c.relname AS table_name, p.proname AS function_name,
       pg_get_triggerdef(t.oid) AS definition
  FROM pg_trigger t
  JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_proc p ON p.oid = t.tgfoid
 WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s) AND NOT t.tgisinternal
 ORDER BY c.relname, t.tgname;

-- name: sequences
-- Sequences owned by a column of the candidate tables (serial, identity, OWNED BY).
SELECT s.relname AS name, t.relname AS table_name, a.attname AS column_name
  FROM pg_class s
  JOIN pg_namespace n ON n.oid = s.relnamespace
  JOIN pg_depend dep ON dep.objid = s.oid AND dep.classid = 'pg_class'::regclass
                    AND dep.refclassid = 'pg_class'::regclass AND dep.deptype IN ('a', 'i')
  JOIN pg_class t ON t.oid = dep.refobjid
  JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = dep.refobjsubid
 WHERE s.relkind = 'S' AND n.nspname = %(schema)s AND t.relname = ANY(%(tables)s)
 ORDER BY t.relname, s.relname;

-- name: migrations
-- TypeORM's history table, if there is one (to_regclass is NULL when it is absent).
SELECT to_regclass(quote_ident(%(schema)s) || '.migrations') IS NOT NULL AS present;

-- name: functions_naming_prosumer
-- Functions and trigger functions whose body still says prosumer: bodies are stored as
-- text and do not follow a rename. Extension members are left out.
SELECT p.oid::regprocedure::text AS object, 'function' AS kind, p.prosrc AS text
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND p.prosrc ~* 'prosumer'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                      AND d.objid = p.oid AND d.deptype = 'e');

-- name: views_naming_prosumer
-- Views follow a rename, but their output column names and any text in them do not.
SELECT c.oid::regclass::text AS object,
       CASE c.relkind WHEN 'm' THEN 'materialized view' ELSE 'view' END AS kind,
       pg_get_viewdef(c.oid) AS text
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND pg_get_viewdef(c.oid) ~* 'prosumer';

-- name: policies_naming_prosumer
SELECT quote_ident(pol.polname) || ' on ' || pol.polrelid::regclass::text AS object,
       'policy' AS kind,
       concat_ws(E'\n', 'USING ' || pg_get_expr(pol.polqual, pol.polrelid),
                 'WITH CHECK ' || pg_get_expr(pol.polwithcheck, pol.polrelid)) AS text
  FROM pg_policy pol
 WHERE concat(pg_get_expr(pol.polqual, pol.polrelid),
              pg_get_expr(pol.polwithcheck, pol.polrelid)) ~* 'prosumer';
