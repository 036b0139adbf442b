"""Reads what the rename needs from the catalog and says which state the database is in."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from wizard.core import names
from wizard.core.sqlfiles import queries

DISCOVERY_SQL = "catalog/discovery.sql"
CANDIDATE_TABLES = [names.OLD_TABLE, names.NEW_TABLE, *names.CHILD_TABLES]

PRE, MIGRATED, PARTIAL, CONFLICT, UNKNOWN = "pre", "migrated", "partial", "conflict", "unknown"


class DiscoveryError(RuntimeError):
    """The catalog could not be read well enough to say what state the database is in."""


@dataclass(frozen=True)
class TableInfo:
    name: str
    owner: str
    can_alter: bool
    estimated_rows: int


@dataclass(frozen=True)
class Constraint:
    name: str
    kind: str  # 'p' primary key, 'f' foreign key, 'n' NOT NULL (named from PostgreSQL 18)
    table: str
    columns: tuple[str, ...]
    ref_table: str | None
    ref_schema: str | None
    ref_columns: tuple[str, ...]
    on_delete: str
    on_update: str
    deferrable: bool
    deferred: bool
    validated: bool
    definition: str


@dataclass(frozen=True)
class Index:
    name: str
    table: str
    columns: tuple[str, ...]
    is_primary: bool
    is_unique: bool
    constraint_name: str | None
    definition: str
    predicate: str | None


@dataclass(frozen=True)
class Sequence:
    name: str
    table: str  # the table whose column owns it
    column: str


@dataclass(frozen=True)
class Trigger:
    name: str
    table: str
    function_name: str
    definition: str


@dataclass(frozen=True)
class TextReference:
    """A line of stored text (function body, view, policy) that still says prosumer."""

    kind: str
    object: str
    line_no: int
    line: str

    def __str__(self) -> str:
        return f"{self.kind} {self.object}, line {self.line_no}: {self.line}"


@dataclass
class Discovery:
    schema: str
    tables: dict[str, TableInfo]
    columns: dict[str, list[str]]
    constraints: list[Constraint]
    indexes: list[Index]
    triggers: list[Trigger]
    sequences: list[Sequence]
    migrations_table: bool
    migration_names: list[str]
    text_references: list[TextReference]
    server_version: str
    current_user: str
    state: str = UNKNOWN
    explanation: str = ""
    done: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def target_table(self) -> str | None:
        """The prosumer/user table as it is named now (None when not exactly one exists)."""
        present = [t for t in (names.OLD_TABLE, names.NEW_TABLE) if t in self.tables]
        return present[0] if len(present) == 1 else None

    @property
    def key_column(self) -> str | None:
        target = self.target_table
        cols = self.columns.get(target or "", [])
        for candidate in (names.NEW_KEY, names.OLD_KEY):
            if candidate in cols:
                return candidate
        return None

    def has_column(self, table: str, column: str) -> bool:
        return column in self.columns.get(table, [])

    def place_column(self, place: names.Place) -> str | None:
        """The column's current name (old or new), or None when it is not there."""
        for candidate in (place.new, place.old):
            if self.has_column(place.table, candidate):
                return candidate
        return None

    def foreign_keys_to_target(self) -> list[Constraint]:
        target = self.target_table
        return [c for c in self.constraints if c.kind == "f" and c.ref_table == target
                and c.ref_schema == self.schema]

    def primary_key(self) -> Constraint | None:
        target = self.target_table
        return next((c for c in self.constraints if c.kind == "p" and c.table == target), None)

    @property
    def migration_recorded(self) -> bool:
        return any(n in (names.MIGRATION_NAME, *names.ALSO_APPLIED)
                   for n in self.migration_names)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["target_table"] = self.target_table
        return data


def _text_references(rows: list[dict[str, Any]]) -> list[TextReference]:
    found: list[TextReference] = []
    pattern = re.compile("prosumer", re.IGNORECASE)
    for row in rows:
        for n, line in enumerate((row["text"] or "").splitlines(), start=1):
            if pattern.search(line):
                found.append(TextReference(row["kind"], row["object"], n, line.strip()))
    return found


def discover(conn: psycopg.Connection[Any], schema: str = "public", *,
             text_references: bool = True) -> Discovery:
    """Read the catalog once, in one read-only snapshot, and classify the database.

    text_references=False skips the scan of every function, view and policy body: the
    check inside a revert's transaction needs only names, and runs while locks are held.
    """
    q = queries(DISCOVERY_SQL)
    params = {"schema": schema, "tables": CANDIDATE_TABLES}
    outside = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        if outside:  # one consistent snapshot; inside a run we see the run's own changes
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cur.execute(q["tables"], params)
        tables = {r["table_name"]: TableInfo(r["table_name"], r["owner"], r["can_alter"],
                                             max(int(r["estimated_rows"]), 0))
                  for r in cur.fetchall()}
        cur.execute(q["columns"], params)
        columns: dict[str, list[str]] = {}
        for r in cur.fetchall():
            columns.setdefault(r["table_name"], []).append(r["column_name"])
        cur.execute(q["constraints"], params)
        constraints = [Constraint(
            r["name"], r["kind"], r["table_name"], tuple(r["columns"]), r["ref_table"],
            r["ref_schema"], tuple(r["ref_columns"] or ()), r["on_delete"], r["on_update"],
            r["deferrable"], r["deferred"], r["validated"], r["definition"])
            for r in cur.fetchall()]
        cur.execute(q["indexes"], params)
        indexes = [Index(r["name"], r["table_name"], tuple(r["columns"]), r["is_primary"],
                         r["is_unique"], r["constraint_name"], r["definition"], r["predicate"])
                   for r in cur.fetchall()]
        cur.execute(q["triggers"], params)
        triggers = [Trigger(r["name"], r["table_name"], r["function_name"], r["definition"])
                    for r in cur.fetchall()]
        cur.execute(q["sequences"], params)
        sequences = [Sequence(r["name"], r["table_name"], r["column_name"])
                     for r in cur.fetchall()]
        cur.execute(q["migrations"], params)
        row = cur.fetchone()
        migrations_table = bool(row and row["present"])
        migration_names: list[str] = []
        if migrations_table:
            try:
                cur.execute(sql.SQL("SELECT name FROM {} ORDER BY id").format(
                    sql.Identifier(schema, "migrations")))
            except psycopg.errors.InsufficientPrivilege:
                raise DiscoveryError(
                    f"role {conn.info.user} may not read {schema}.migrations, TypeORM's "
                    f"history: connect as the owner of the EnerLink tables (or GRANT SELECT "
                    f"ON {schema}.migrations TO {conn.info.user})") from None
            migration_names = [r["name"] for r in cur.fetchall()]
        text_rows: list[dict[str, Any]] = []
        for name in ("functions_naming_prosumer", "views_naming_prosumer",
                     "policies_naming_prosumer") if text_references else ():
            cur.execute(q[name], params)
            text_rows += cur.fetchall()
        cur.execute("SELECT current_setting('server_version') AS v, current_user AS u")
        info = cur.fetchone() or {"v": "?", "u": "?"}
    found = Discovery(schema, tables, columns, constraints, indexes, triggers, sequences,
                      migrations_table, migration_names, _text_references(text_rows),
                      info["v"], info["u"])
    classify(found)
    return found


def _object_names_done(d: Discovery) -> tuple[list[str], list[str]]:
    """Which key, constraint, index, sequence and trigger names have their final name."""
    from wizard.core.plan import object_renames  # the plan owns the naming rules

    done: list[str] = []
    pending: list[str] = []
    for rename in object_renames(d):
        (pending if rename.needed else done).append(rename.describe())
    return done, pending


def classify(d: Discovery) -> None:
    """Set d.state (pre, migrated, partial, conflict, unknown) and say why."""
    old, new = names.OLD_TABLE, names.NEW_TABLE
    if old in d.tables and new in d.tables:
        d.state = CONFLICT
        d.explanation = (f'both tables exist: "{old}" and "{new}". Someone created "{new}" by '
                         f'hand or a migration ran halfway outside a transaction. Decide which '
                         f'one holds the data, rename or drop the other, then run again.')
        return
    target = d.target_table
    if target is None:
        d.state = UNKNOWN
        d.explanation = (f'no table "{old}" or "{new}" in schema {d.schema}: this is not an '
                         f'EnerLink database (check the database name and the schema).')
        return
    key = d.key_column
    children = [t for t in names.CHILD_TABLES if t in d.tables]
    if key is None or not children:
        d.state = UNKNOWN
        what = (f'table "{target}" has no {names.OLD_KEY} or {names.NEW_KEY} column'
                if key is None else f'none of the tables {", ".join(names.CHILD_TABLES)} exist')
        d.explanation = f"{what}: this does not look like EnerLink's schema."
        return
    renames = [(f'table "{old}" → "{new}"', target == new),
               (f"{target}.{names.OLD_KEY} → {names.NEW_KEY}", key == names.NEW_KEY)]
    for place in names.REFERENCING:
        current = d.place_column(place)
        if current is None:
            d.missing.append(f"{place.table}.{place.old}"
                             + ("" if place.table in d.tables else " (table missing)"))
            continue
        renames.append((f"{place.table}.{place.old} → {place.new}", current == place.new))
    d.done = [label for label, ok in renames if ok]
    d.pending = [label for label, ok in renames if not ok]
    names_done, names_pending = _object_names_done(d)
    if not d.done:
        d.state = PRE
        d.explanation = (f'"{old}" is in place and none of the renames is done: ready to '
                         f"migrate ({len(d.pending)} renames).")
        d.pending += names_pending
        return
    if not d.pending and not names_pending:
        d.state = MIGRATED
        d.done += names_done
        d.explanation = ("already migrated: every table, column, key, index and trigger has "
                         "its new name" + ("." if d.migration_recorded else
                                           "; only TypeORM's migrations row is missing."))
        return
    d.state = PARTIAL
    d.done += names_done
    d.pending += names_pending
    d.explanation = (f"partially migrated: {len(d.done)} renames done, {len(d.pending)} to "
                     f"go. The plan finishes the job.")
