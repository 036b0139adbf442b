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

-- name: guard
-- The decision to commit, taken by the server in the same round trip as the statements:
-- wizard/core/snapshot.py puts the snapshot above as CTE "snap" in front of this, and
-- the statement fails (division by zero) when any check the Python side makes of the same
-- snapshot would fail, so the COMMIT queued after it never runs. Parameters: what the plan
-- promises (e_*), the foreign keys' expected shapes (fk_*), index names, the seven
-- columns (places, as 'table.column'), the six referencing tables (children).
, tbl AS (SELECT rel, name FROM snap WHERE kind = 'table'),
col AS (SELECT s.rel, s.attnum, s.name, t.name AS tname
          FROM snap s JOIN tbl t ON t.rel = s.rel WHERE s.kind = 'column'),
usr AS (SELECT rel FROM tbl WHERE name = 'user'),
found AS (
  SELECT s.kind, CASE WHEN s.kind IN ('index', 'sequence') THEN '' ELSE t.name END AS tname,
         s.name
    FROM snap s LEFT JOIN tbl t ON t.rel = s.rel
   WHERE s.kind IN ('column', 'constraint', 'index', 'trigger', 'sequence')
  UNION ALL SELECT 'table', '', name FROM tbl),
fks AS (
  SELECT t.name AS tname, s.name,
         ARRAY(SELECT c.name FROM unnest(s.keys) WITH ORDINALITY k(n, o)
                 JOIN col c ON c.rel = s.rel AND c.attnum = k.n ORDER BY k.o) AS cols,
         ARRAY(SELECT c.name FROM unnest(s.ref_keys) WITH ORDINALITY k(n, o)
                 JOIN col c ON c.rel = s.ref AND c.attnum = k.n ORDER BY k.o) AS refcols,
         s.on_delete, s.on_update, s.deferrable AS is_def, s.deferred AS is_defd,
         s.validated
    FROM snap s JOIN tbl t ON t.rel = s.rel
   WHERE s.kind = 'constraint' AND s.contype = 'f' AND s.ref = (SELECT rel FROM usr)),
fk_expected AS (
  SELECT * FROM unnest(%(fk_table)s::text[], %(fk_column)s::text[], %(fk_del)s::text[],
                       %(fk_upd)s::text[], %(fk_def)s::bool[], %(fk_defd)s::bool[],
                       %(fk_name)s::text[], %(fk_valid)s::bool[])
         AS x(tname, colname, on_delete, on_update, is_def, is_defd, name, valid)),
renamed AS (
  SELECT c.rel, c.attnum FROM col c
   WHERE c.rel = (SELECT rel FROM usr) OR c.tname || '.' || c.name = ANY(%(places)s::text[])),
problems AS (
  SELECT 'table' FROM (SELECT 1) one
   WHERE NOT EXISTS (SELECT 1 FROM tbl WHERE name = 'user')
      OR EXISTS (SELECT 1 FROM tbl WHERE name = 'prosumer')
  UNION ALL
  SELECT 'primary key' FROM (SELECT 1) one
   WHERE (SELECT count(*) FROM snap s WHERE s.kind = 'constraint' AND s.contype = 'p'
             AND s.rel = (SELECT rel FROM usr)
             AND ARRAY(SELECT c.name FROM unnest(s.keys) k(n)
                         JOIN col c ON c.rel = s.rel AND c.attnum = k.n) = ARRAY['user_id']) <> 1
  UNION ALL
  SELECT 'column ' || name FROM col
   WHERE tname = ANY(%(children)s::text[] || ARRAY['user']) AND name ILIKE '%%prosumer%%'
  UNION ALL
  SELECT 'foreign key ' || x.tname || '.' || x.colname FROM fk_expected x
   WHERE (SELECT count(*) FROM fks f WHERE f.tname = x.tname AND f.cols = ARRAY[x.colname]) <> 1
      OR NOT EXISTS (SELECT 1 FROM fks f WHERE f.tname = x.tname AND f.cols = ARRAY[x.colname]
                        AND f.refcols = ARRAY['user_id'] AND f.on_delete = x.on_delete
                        AND f.on_update = x.on_update AND f.is_def = x.is_def
                        AND f.is_defd = x.is_defd AND (x.name = '' OR f.name = x.name)
                        AND (NOT x.valid OR f.validated))
  UNION ALL
  SELECT 'index ' || i FROM unnest(%(idx_names)s::text[]) i
   WHERE NOT EXISTS (SELECT 1 FROM snap s JOIN tbl t ON t.rel = s.rel
                      WHERE s.kind = 'index' AND s.name = i
                        AND t.name = ANY(%(children)s::text[] || ARRAY['user']))
  UNION ALL
  SELECT 'named prosumer: ' || s.name FROM snap s
   WHERE s.name ILIKE '%%prosumer%%' AND (
         (s.kind IN ('constraint', 'index') AND (s.rel = (SELECT rel FROM usr)
           OR EXISTS (SELECT 1 FROM renamed r WHERE r.rel = s.rel AND r.attnum = ANY(s.keys))))
      OR (s.kind = 'trigger' AND s.rel = (SELECT rel FROM usr))
      OR (s.kind = 'sequence' AND EXISTS (SELECT 1 FROM renamed r
                                            WHERE r.rel = s.rel AND r.attnum = s.keys[1])))
  UNION ALL
  SELECT 'expected ' || e.kind || ' ' || e.name
    FROM unnest(%(e_kind)s::text[], %(e_table)s::text[], %(e_name)s::text[],
                %(e_present)s::bool[]) AS e(kind, tname, name, present)
   WHERE e.present <> EXISTS (
         SELECT 1 FROM found f WHERE f.kind = e.kind AND f.name = e.name
            AND f.tname = CASE WHEN e.kind IN ('table', 'index', 'sequence') THEN ''
                               ELSE e.tname END))
-- (a CASE with a bare 1 / 0 would be folded, and fail, when the query is planned)
SELECT 1 / CASE WHEN count(*) = 0 THEN 1 ELSE 0 END AS guard FROM problems;
