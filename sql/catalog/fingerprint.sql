-- Schema fingerprint: one line of text per object that matters to the rename, so two
-- databases (or one database before and after migrate + revert) compare line by line.
-- Run with search_path = pg_catalog so that every name comes out schema-qualified.
-- Parameter: %(schema)s, the schema to describe (EnerLink uses public).

-- name: tables
SELECT concat('table ', c.oid::regclass, ' kind=', c.relkind) AS line
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p', 'v', 'm', 'f');

-- name: columns
SELECT concat('column ', a.attrelid::regclass,
              ' #', lpad((row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum))::text, 3, '0'),
              ' ', quote_ident(a.attname),
              ' ', format_type(a.atttypid, a.atttypmod),
              CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE ' NULL' END,
              ' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid)) AS line
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND a.attnum > 0 AND NOT a.attisdropped;

-- name: constraints
SELECT concat('constraint ', quote_ident(con.conname), ' on ', con.conrelid::regclass,
              ': ', pg_get_constraintdef(con.oid),
              ' deferrable=', con.condeferrable, ' deferred=', con.condeferred,
              ' validated=', con.convalidated) AS line
  FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace
 WHERE n.nspname = %(schema)s AND con.contype IN ('p', 'f', 'u', 'c', 'x', 'n');

-- name: indexes
SELECT concat('index ', pg_get_indexdef(i.indexrelid)) AS line
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s;

-- name: triggers
SELECT concat('trigger ', pg_get_triggerdef(t.oid), ' enabled=', t.tgenabled) AS line
  FROM pg_trigger t
  JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND NOT t.tgisinternal;

-- name: sequences
SELECT concat('sequence ', s.oid::regclass, ' owned_by=',
              coalesce(dep.refobjid::regclass::text || '.' || quote_ident(a.attname), '-'))
       AS line
  FROM pg_class s
  JOIN pg_namespace n ON n.oid = s.relnamespace
  LEFT JOIN pg_depend dep ON dep.objid = s.oid AND dep.classid = 'pg_class'::regclass
                         AND dep.refclassid = 'pg_class'::regclass AND dep.deptype = 'a'
  LEFT JOIN pg_attribute a ON a.attrelid = dep.refobjid AND a.attnum = dep.refobjsubid
 WHERE n.nspname = %(schema)s AND s.relkind = 'S';

-- name: functions
-- Functions that belong to an extension (uuid-ossp) are left out: they are the extension's.
SELECT concat('function ', p.oid::regproc, '(', pg_get_function_identity_arguments(p.oid),
              ') returns ', pg_get_function_result(p.oid), ' language ', l.lanname) AS line
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_language l ON l.oid = p.prolang
 WHERE n.nspname = %(schema)s
   AND NOT EXISTS (SELECT 1 FROM pg_depend e
                    WHERE e.objid = p.oid AND e.classid = 'pg_proc'::regclass
                      AND e.deptype = 'e');

-- name: enums
SELECT concat('enum ', t.oid::regtype, ' (',
              string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder), ')')
       AS line
  FROM pg_type t
  JOIN pg_namespace n ON n.oid = t.typnamespace
  JOIN pg_enum e ON e.enumtypid = t.oid
 WHERE n.nspname = %(schema)s
 GROUP BY t.oid;
