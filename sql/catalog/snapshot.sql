-- The catalog of EnerLink's tables in one query, read inside the migration's transaction
-- while its locks are held: index lookups by table OID only, no deparsing functions, so
-- the application waits as little as possible. wizard/core/snapshot.py turns it into the
-- rows of the verify.sql queries, which verify.sql itself answers after the commit.
-- Parameters: %(oids)s (the tables' OIDs, which a rename keeps), %(schema)s,
-- %(names)s (tables that may be created by the plan, found by name).

-- name: snapshot
SELECT 'table' AS kind, c.oid AS rel, c.relname::text AS name, NULL::int2[] AS keys,
       NULL::text AS contype, NULL::oid AS ref, NULL::int2[] AS ref_keys,
       NULL::text AS on_delete, NULL::text AS on_update, NULL::bool AS deferrable,
       NULL::bool AS deferred, NULL::bool AS validated, NULL::int2 AS attnum
  FROM pg_class c
 WHERE c.oid = ANY(%(oids)s::oid[])
    OR (c.relname = ANY(%(names)s::text[]) AND c.relkind IN ('r', 'p')
        AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %(schema)s))
UNION ALL
SELECT 'column', a.attrelid, a.attname::text, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, a.attnum
  FROM pg_attribute a
 WHERE a.attrelid = ANY(%(oids)s::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint', con.conrelid, con.conname::text, con.conkey, con.contype::text,
       con.confrelid, con.confkey, con.confdeltype::text, con.confupdtype::text,
       con.condeferrable, con.condeferred, con.convalidated, NULL
  FROM pg_constraint con
 WHERE con.conrelid = ANY(%(oids)s::oid[])
UNION ALL
SELECT 'index', x.indrelid, i.relname::text, x.indkey::int2[], NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL
  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
 WHERE x.indrelid = ANY(%(oids)s::oid[])
UNION ALL
SELECT 'trigger', t.tgrelid, t.tgname::text, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL
  FROM pg_trigger t
 WHERE t.tgrelid = ANY(%(oids)s::oid[]) AND NOT t.tgisinternal
UNION ALL
SELECT 'sequence', dep.refobjid, s.relname::text, ARRAY[dep.refobjsubid]::int2[], NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL
  FROM pg_depend dep JOIN pg_class s ON s.oid = dep.objid
 WHERE dep.refobjid = ANY(%(oids)s::oid[]) AND dep.classid = 'pg_class'::regclass
   AND dep.refclassid = 'pg_class'::regclass AND dep.deptype IN ('a', 'i')
   AND s.relkind = 'S';

-- name: digest
-- The snapshot as one md5, so that while the locks are held one short row crosses the
-- network: wizard/core/snapshot.py computes the same digest of the catalog it predicts
-- from the operations (same line format, lines sorted bytewise). Tables the plan creates
-- have an OID nobody knows in advance: it shows as '-'.
SELECT md5(coalesce(string_agg(line, E'\n' ORDER BY line COLLATE "C"), '')) AS digest
  FROM (SELECT concat_ws('|', s.kind,
                         CASE WHEN s.rel = ANY(%(oids)s::oid[]) THEN s.rel::text ELSE '-' END,
                         s.name, coalesce(array_to_string(s.keys, ','), ''),
                         coalesce(s.contype, ''), coalesce(s.ref::text, ''),
                         coalesce(array_to_string(s.ref_keys, ','), ''),
                         coalesce(s.on_delete, ''), coalesce(s.on_update, ''),
                         coalesce(s.deferrable::text, ''), coalesce(s.deferred::text, ''),
                         coalesce(s.validated::text, ''), coalesce(s.attnum::text, '')) AS line
          FROM (%(snapshot)s) s) lines;
