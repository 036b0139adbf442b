"""The catalog checks inside the migration's transaction, from one cheap query.

While the rename holds its locks every millisecond blocks the application, so the checks
there read sql/catalog/snapshot.sql (index lookups by table OID, no deparsing) and this
module derives from it the rows each verify.sql query would return. After the commit the
verify.sql queries themselves run; tests hold both to the same answers.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wizard.core import names
from wizard.core.sqlfiles import query

if TYPE_CHECKING:
    from wizard.core.ops import Operation

SNAPSHOT_SQL = "catalog/snapshot.sql"
_PROSUMER = re.compile("prosumer", re.IGNORECASE)
_PLAIN = re.compile(r"^[a-z_][a-z0-9_$]*$")
_RESERVED = {"user"}  # the one EnerLink table name regclass::text quotes


def snapshot_query(oids: list[int], schema: str) -> tuple[str, dict[str, Any]]:
    """The query and its parameters (tables the plan may create are found by name)."""
    return query(SNAPSHOT_SQL, "snapshot"), {
        "oids": oids, "schema": schema,
        "names": [names.OLD_TABLE, names.NEW_TABLE, *names.CHILD_TABLES, "migrations"]}


def _shown(table: str) -> str:
    """A table name as regclass::text shows it (quoted when it must be)."""
    return table if _PLAIN.match(table) and table not in _RESERVED else f'"{table}"'


@dataclass
class _Catalog:
    tables: dict[int, str] = field(default_factory=dict)
    columns: dict[int, dict[int, str]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    by_kind: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return self.by_kind.get(kind, [])

    def rel(self, name: str) -> int | None:
        return next((oid for oid, n in self.tables.items() if n == name), None)

    def names(self, rel: int, keys: list[int] | None) -> list[str]:
        cols = self.columns.get(rel, {})
        return [cols.get(k, "?") for k in keys or []]


def _catalog(rows: list[dict[str, Any]]) -> _Catalog:
    cat = _Catalog(rows=rows)
    for r in rows:
        cat.by_kind.setdefault(r["kind"], []).append(r)
        if r["kind"] == "table":
            cat.tables[int(r["rel"])] = r["name"]
        elif r["kind"] == "column":
            cat.columns.setdefault(int(r["rel"]), {})[int(r["attnum"])] = r["name"]
    return cat


def rows_from_snapshot(rows: list[dict[str, Any]], query_text: str
                       ) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """The results of verify.sql's catalog queries, computed from the snapshot's rows."""
    cat = _catalog(rows)
    user = cat.rel(names.NEW_TABLE)
    watched = {oid for oid, n in cat.tables.items() if n in (*names.CHILD_TABLES, "user")}
    found: dict[str, list[dict[str, Any]]] = {
        "tables_present": [{"user_exists": user is not None,
                            "prosumer_exists": cat.rel(names.OLD_TABLE) is not None}],
        "primary_key": [{"name": c["name"], "columns": cat.names(c["rel"], c["keys"])}
                        for c in cat.of("constraint")
                        if c["rel"] == user and c["contype"] == "p"],
        "prosumer_columns": sorted(
            ({"table_name": cat.tables[rel], "column_name": col}
             for rel, cols in cat.columns.items() if rel in watched
             for col in cols.values() if _PROSUMER.search(col)),
            key=lambda r: (r["table_name"], r["column_name"])),
        "foreign_keys_to_user": sorted(
            ({"name": c["name"], "table_name": cat.tables.get(c["rel"], "?"),
              "columns": cat.names(c["rel"], c["keys"]),
              "ref_columns": cat.names(c["ref"], c["ref_keys"]),
              "on_delete": c["on_delete"], "on_update": c["on_update"],
              "deferrable": c["deferrable"], "deferred": c["deferred"],
              "validated": c["validated"]}
             for c in cat.of("constraint")
             if c["contype"] == "f" and user is not None and c["ref"] == user),
            key=lambda r: (r["table_name"], r["name"])),
        "indexes": sorted(({"name": i["name"], "table_name": cat.tables[i["rel"]]}
                           for i in cat.of("index") if i["rel"] in watched),
                          key=lambda r: (r["table_name"], r["name"])),
        "prosumer_names": _prosumer_names(cat, user),
        "objects": _objects(cat),
    }
    return {key: (query_text, value) for key, value in found.items()}


def _renamed_columns(cat: _Catalog, user: int | None) -> set[tuple[int, int]]:
    """(table, attnum) of every column of user and of the seven referencing columns."""
    cols = {(user, n) for n in cat.columns.get(user, {})} if user is not None else set()
    for place in names.REFERENCING:
        rel = cat.rel(place.table)
        for attnum, name in cat.columns.get(rel or -1, {}).items():
            if rel is not None and name == place.new:
                cols.add((rel, attnum))
    return cols


def _prosumer_names(cat: _Catalog, user: int | None) -> list[dict[str, Any]]:
    cols = _renamed_columns(cat, user)

    def touches(rel: int, keys: list[int] | None) -> bool:
        return rel == user or any((rel, k) in cols for k in keys or [])

    found = []
    for r in cat.rows:
        if not _PROSUMER.search(r["name"]):
            continue
        kind, rel = r["kind"], int(r["rel"])
        hit = ((kind in ("constraint", "index") and touches(rel, r["keys"]))
               or (kind == "trigger" and rel == user)
               or (kind == "sequence" and (rel, (r["keys"] or [0])[0]) in cols))
        if hit:
            found.append({"kind": kind, "name": r["name"],
                          "on_table": _shown(cat.tables.get(rel, "?"))})
    return sorted(found, key=lambda r: (r["kind"], r["name"]))


def _objects(cat: _Catalog) -> list[dict[str, Any]]:
    out = [{"kind": "table", "on_table": "", "name": n, "validated": True}
           for n in cat.tables.values()]
    for r in cat.rows:
        if r["kind"] in ("column", "constraint", "index", "trigger", "sequence"):
            on = "" if r["kind"] == "sequence" else cat.tables.get(int(r["rel"]), "?")
            out.append({"kind": r["kind"], "on_table": on, "name": r["name"],
                        "validated": True if r["validated"] is None else r["validated"]})
    return out


# -- the prediction: the snapshot the operations will leave, and its digest ----------------

def digest_query(oids: list[int], schema: str) -> tuple[str, dict[str, Any]]:
    """The snapshot's md5 (sql/catalog/snapshot.sql "digest" around "snapshot")."""
    snap, params = snapshot_query(oids, schema)
    text = query(SNAPSHOT_SQL, "digest").replace("%(snapshot)s", snap.rstrip().rstrip(";"))
    return text, params


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)  # array_to_string(keys, ',')
    return str(value)


_FIELDS = ("name", "keys", "contype", "ref", "ref_keys", "on_delete", "on_update",
           "deferrable", "deferred", "validated", "attnum")


def digest_of(rows: list[dict[str, Any]], oids: list[int]) -> str:
    """The md5 the digest query computes, of rows shaped like the snapshot's."""
    known = set(oids)
    lines = sorted(("|".join([r["kind"], str(r["rel"]) if r["rel"] in known else "-",
                              *(_text(r[f]) for f in _FIELDS)]) for r in rows),
                   key=lambda line: line.encode())
    return hashlib.md5("\n".join(lines).encode(), usedforsecurity=False).hexdigest()


class CannotPredict(ValueError):
    """An operation whose effect on the snapshot this module does not model."""


def predict(rows: list[dict[str, Any]], operations: list[Operation]) -> list[dict[str, Any]]:
    """The snapshot after the operations, from the snapshot before them.

    A fast path only: when the catalog after the statements differs from this (or an
    operation is not modelled), the run reads the whole snapshot and checks it instead.
    """
    from wizard.core import ops

    after = [dict(r) for r in rows]

    def rel_of(table: str) -> int:
        found = [r["rel"] for r in after if r["kind"] == "table" and r["name"] == table]
        if len(found) != 1:
            raise CannotPredict(f"table {table} is not in the snapshot")
        return int(found[0])

    def rename(kind: str, rel: int | None, before: str, new: str) -> None:
        hits = [r for r in after if r["kind"] == kind and r["name"] == before
                and (rel is None or r["rel"] == rel)]
        if len(hits) != 1:
            raise CannotPredict(f"{kind} {before}: {len(hits)} in the snapshot")
        hits[0]["name"] = new

    for op in operations:
        if isinstance(op, ops.RenameTable):
            rename("table", None, op.before, op.after)
        elif isinstance(op, ops.RenameColumn):
            rename("column", rel_of(op.on), op.before, op.after)
        elif isinstance(op, ops.RenameIndex | ops.RenameSequence | ops.RenameTrigger):
            rel = None if isinstance(op, ops.RenameSequence) else rel_of(op.on)
            rename(op.catalog_kind, rel, op.before, op.after)
        elif isinstance(op, ops.RenameObject):  # a constraint; a key's index follows it
            rel = rel_of(op.on)
            con = [r for r in after if r["kind"] == "constraint" and r["rel"] == rel
                   and r["name"] == op.before]
            rename("constraint", rel, op.before, op.after)
            if con and con[0]["contype"] in ("p", "u"):
                rename("index", rel, op.before, op.after)
        elif isinstance(op, ops.AddForeignKey):
            after.append(_new_foreign_key(after, op, rel_of(op.on), rel_of(op.ref_table)))
        elif isinstance(op, ops.CreateMigrationsTable):
            after.append({"kind": "table", "rel": -1, "name": ops.history.MIGRATIONS,
                          **dict.fromkeys(_FIELDS[1:])})
        elif not isinstance(op, ops.RecordMigration):
            raise CannotPredict(f"{op.op} is not modelled")
    return after


def _new_foreign_key(rows: list[dict[str, Any]], op: Any, rel: int, ref: int
                     ) -> dict[str, Any]:
    def attnum(table_rel: int, column: str) -> int:
        found = [r["attnum"] for r in rows if r["kind"] == "column" and r["rel"] == table_rel
                 and r["name"] == column]
        if len(found) != 1:
            raise CannotPredict(f"column {column} is not in the snapshot")
        return int(found[0])

    return {"kind": "constraint", "rel": rel, "name": op.name,
            "keys": [attnum(rel, op.column)], "contype": "f", "ref": ref,
            "ref_keys": [attnum(ref, op.ref_column)], "on_delete": "c" if op.cascade else "a",
            "on_update": "a", "deferrable": False, "deferred": False, "validated": False,
            "attnum": None}
