"""The plan: ordered steps with their exact SQL, up (prosumer → user) or down (back)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from psycopg import sql

from wizard.core import names

if TYPE_CHECKING:
    from wizard.core.discovery import Constraint, Discovery

CATALOG, VALIDATE = "catalog", "validate"
UP, DOWN = "up", "down"

TYPEORM_MIGRATIONS_TABLE = (
    'CREATE TABLE {table} ("id" SERIAL NOT NULL, "timestamp" bigint NOT NULL, '
    '"name" character varying NOT NULL, '
    'CONSTRAINT "PK_8c82d7f526340ab734260ea46be" PRIMARY KEY ("id"))'
)


class PlanRefused(RuntimeError):
    """The database is in a state no plan can handle safely; the message says why."""


@dataclass(frozen=True)
class ObjectRename:
    """A key, constraint, index, sequence or trigger whose name follows the rename."""

    kind: str  # pk | fk | nn (NOT NULL, PostgreSQL 18) | idx | seq | trigger
    table: str  # the table it is on, named as it will be after the rename
    table_before: str
    columns_before: tuple[str, ...]
    name_now: str
    name_target: str

    @property
    def needed(self) -> bool:
        return self.name_now != self.name_target

    def describe(self) -> str:
        label = KIND_LABELS[self.kind]
        if not self.needed:
            return f"{label} {self.name_now}"
        return f"{label} {self.name_now} → {self.name_target}"


KIND_LABELS = {"pk": "primary key", "fk": "foreign key", "nn": "not-null constraint",
               "idx": "index", "seq": "sequence", "trigger": "trigger"}


@dataclass
class Step:
    title: str
    sql: str
    phase: str = CATALOG
    change: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    direction: str
    state: str
    steps: list[Step]
    unchanged: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def catalog_steps(self) -> list[Step]:
        return [s for s in self.steps if s.phase == CATALOG]

    @property
    def validate_steps(self) -> list[Step]:
        return [s for s in self.steps if s.phase == VALIDATE]

    @property
    def tables(self) -> list[str]:
        return list(dict.fromkeys(s.change["table"] for s in self.steps
                                  if s.change.get("table")))

    def name_map(self) -> dict[str, str]:
        """after → before for every object renamed, so a revert can restore exact names."""
        return {s.change["after"]: s.change["before"] for s in self.steps
                if s.change.get("action") == "rename" and s.change.get("kind") != "column"
                and s.change.get("kind") != "table"}

    def script(self, lock_timeout_s: float = 2.0, statement_timeout_s: float = 30.0) -> str:
        """The whole plan as a psql script a DBA can read or run by hand."""
        lines = [f"-- enerlink-migrate plan ({self.direction}), database state: {self.state}",
                 "BEGIN;",
                 f"SET LOCAL lock_timeout = '{int(lock_timeout_s * 1000)}ms';",
                 f"SET LOCAL statement_timeout = '{int(statement_timeout_s * 1000)}ms';"]
        for n, step in enumerate(self.catalog_steps, 1):
            lines += [f"-- [{n}/{len(self.catalog_steps)}] {step.title}", step.sql + ";"]
        lines.append("COMMIT;")
        for step in self.validate_steps:
            lines += [f"-- after commit, scans rows without blocking writes: {step.title}",
                      step.sql + ";"]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _q(*parts: str) -> sql.Identifier:
    return sql.Identifier(*parts)


def _render(composed: sql.Composable) -> str:
    return composed.as_string(None)


def _final_columns(table: str, columns: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(names.column_after(table, c) for c in columns)


def _before_columns(table: str, columns: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(names.column_before(table, c) for c in columns)


def _is_place(table: str, column: str) -> bool:
    return any(p.table == table and column in (p.old, p.new) for p in names.REFERENCING)


def _touches_renamed_column(table: str, columns: tuple[str, ...], target: str | None) -> bool:
    is_key = table == target and any(c in (names.OLD_KEY, names.NEW_KEY) for c in columns)
    return is_key or any(_is_place(table, c) for c in columns)


def managed_foreign_keys(d: Discovery) -> tuple[list[Constraint], list[Constraint]]:
    """FKs to the prosumer/user table on one of the seven columns, and all the others."""
    managed, others = [], []
    for fk in d.foreign_keys_to_target():
        if len(fk.columns) == 1 and _is_place(fk.table, fk.columns[0]):
            managed.append(fk)
        else:
            others.append(fk)
    return managed, others


def object_renames(d: Discovery) -> list[ObjectRename]:
    """Every name tied to the renamed table and columns, with the name it should end with."""
    target = d.target_table
    if target is None:
        return []
    found: list[ObjectRename] = []
    pk = d.primary_key()
    if pk is not None:
        cols = _final_columns(names.NEW_TABLE, pk.columns)
        found.append(ObjectRename("pk", names.NEW_TABLE, names.OLD_TABLE,
                                  _before_columns(names.NEW_TABLE, pk.columns), pk.name,
                                  names.renamed(pk.name, "pk", names.NEW_TABLE, cols)))
    managed, _others = managed_foreign_keys(d)
    for fk in managed:
        cols = _final_columns(fk.table, fk.columns)
        found.append(ObjectRename("fk", fk.table, fk.table, _before_columns(fk.table, cols),
                                  fk.name, names.renamed(fk.name, "fk", fk.table, cols)))
    for nn in (c for c in d.constraints if c.kind == "n"):
        # PostgreSQL 18 names them <table>_<column>_not_null: on the renamed table every one
        # says prosumer; elsewhere those on the renamed columns do.
        if nn.table == target or _touches_renamed_column(nn.table, nn.columns, target):
            table_after = names.NEW_TABLE if nn.table == target else nn.table
            table_before = names.OLD_TABLE if nn.table == target else nn.table
            found.append(ObjectRename(
                "nn", table_after, table_before,
                _before_columns(table_after, _final_columns(table_after, nn.columns)),
                nn.name, names.swap_word(nn.name, "prosumer", "user")))
    for idx in d.indexes:
        if idx.constraint_name is not None:
            continue  # renamed with its constraint
        table_after = names.NEW_TABLE if idx.table == target else idx.table
        if idx.table != target and not _touches_renamed_column(idx.table, idx.columns,
                                                                target):
            continue
        cols = _final_columns(table_after, idx.columns)
        table_before = names.OLD_TABLE if idx.table == target else idx.table
        found.append(ObjectRename("idx", table_after, table_before,
                                  _before_columns(table_after, cols), idx.name,
                                  names.renamed(idx.name, "idx", table_after, cols)))
    for seq in d.sequences:
        if seq.table == target or _is_place(seq.table, seq.column):
            table_after = names.NEW_TABLE if seq.table == target else seq.table
            table_before = names.OLD_TABLE if seq.table == target else seq.table
            found.append(ObjectRename("seq", table_after, table_before,
                                      (names.column_before(table_after, seq.column),),
                                      seq.name, names.swap_word(seq.name, "prosumer", "user")))
    for trg in d.triggers:
        if trg.table == target:
            found.append(ObjectRename("trigger", names.NEW_TABLE, names.OLD_TABLE, (),
                                      trg.name, names.swap_word(trg.name, "prosumer", "user")))
    return found


def _rename_step(r: ObjectRename, schema: str, new_name: str, table_now: str) -> Step:
    if r.kind in ("pk", "fk", "nn"):
        stmt = sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
            _q(schema, table_now), _q(r.name_now), _q(new_name))
    elif r.kind == "idx":
        stmt = sql.SQL("ALTER INDEX {} RENAME TO {}").format(_q(schema, r.name_now),
                                                             _q(new_name))
    elif r.kind == "seq":
        stmt = sql.SQL("ALTER SEQUENCE {} RENAME TO {}").format(_q(schema, r.name_now),
                                                                _q(new_name))
    else:
        stmt = sql.SQL("ALTER TRIGGER {} ON {} RENAME TO {}").format(
            _q(r.name_now), _q(schema, table_now), _q(new_name))
    label = KIND_LABELS[r.kind]
    return Step(f"Renaming {label} {r.name_now} → {new_name} on {table_now}", _render(stmt),
                change={"action": "rename", "kind": r.kind, "table": table_now,
                        "before": r.name_now, "after": new_name})


def _table_step(schema: str, old: str, new: str) -> Step:
    stmt = sql.SQL("ALTER TABLE {} RENAME TO {}").format(_q(schema, old), _q(new))
    return Step(f"Renaming table {old} → {new}", _render(stmt),
                change={"action": "rename", "kind": "table", "table": new,
                        "before": old, "after": new})


def _column_step(schema: str, table: str, old: str, new: str) -> Step:
    stmt = sql.SQL("ALTER TABLE {} RENAME COLUMN {} TO {}").format(_q(schema, table), _q(old),
                                                                   _q(new))
    return Step(f"Renaming {table}.{old} → {new}", _render(stmt),
                change={"action": "rename", "kind": "column", "table": table,
                        "before": old, "after": new})


def _refuse_unless_plannable(d: Discovery) -> None:
    from wizard.core.discovery import CONFLICT, UNKNOWN

    if d.state in (CONFLICT, UNKNOWN):
        raise PlanRefused(f"no plan for a database in state '{d.state}': {d.explanation}")


def _check_duplicate_fks(d: Discovery) -> None:
    managed, _ = managed_foreign_keys(d)
    seen: dict[tuple[str, str], list[str]] = {}
    for fk in managed:
        seen.setdefault((fk.table, fk.columns[0]), []).append(fk.name)
    for (table, column), fk_names in seen.items():
        if len(fk_names) > 1:
            raise PlanRefused(
                f"{table}.{column} has {len(fk_names)} foreign keys to {d.target_table}: "
                f"{', '.join(fk_names)} (the upstream migration leaves such duplicates). "
                f"Keep the one whose ON DELETE matches the application and drop the others "
                f"(ALTER TABLE {table} DROP CONSTRAINT ...), then plan again.")


def build_up(d: Discovery, *, migration: tuple[int, str] = (names.MIGRATION_TIMESTAMP,
                                                            names.MIGRATION_NAME)) -> Plan:
    """Finish the rename from whatever state d is in (pre, partial or migrated)."""
    _refuse_unless_plannable(d)
    _check_duplicate_fks(d)
    schema, target = d.schema, d.target_table
    assert target is not None
    plan = Plan(UP, d.state, [])
    if target == names.OLD_TABLE:
        plan.steps.append(_table_step(schema, names.OLD_TABLE, names.NEW_TABLE))
    if d.key_column == names.OLD_KEY:
        plan.steps.append(_column_step(schema, names.NEW_TABLE, names.OLD_KEY, names.NEW_KEY))
    for place in names.REFERENCING:
        if d.place_column(place) == place.old:
            plan.steps.append(_column_step(schema, place.table, place.old, place.new))
    for r in object_renames(d):
        if r.needed:
            plan.steps.append(_rename_step(r, schema, r.name_target, r.table))
    managed, others = managed_foreign_keys(d)
    with_fk = {(fk.table, fk.columns[0]) for fk in managed}
    for place in names.REFERENCING:
        current = d.place_column(place)
        if current is None:
            plan.notes.append(f"{place.table}.{place.old} does not exist here: skipped.")
            continue
        if (place.table, current) in with_fk:
            continue
        fk_name = names.typeorm_name("fk", place.table, (place.new,))
        action = sql.SQL(" ON DELETE CASCADE" if names.EXPECTED_ON_DELETE[place.label] == "c"
                         else "")
        plan.steps.append(Step(
            f"Adding the missing foreign key {fk_name} on {place.table}.{place.new} "
            f"(NOT VALID: no scan under lock)",
            _render(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} "
                            "({}){} NOT VALID").format(
                _q(schema, place.table), _q(fk_name), _q(place.new),
                _q(schema, names.NEW_TABLE), _q(names.NEW_KEY), action)),
            change={"action": "add_fk", "kind": "fk", "table": place.table,
                    "after": fk_name, "column": place.new}))
        plan.steps.append(Step(
            f"Validating {fk_name} on {place.table} (after commit; reads rows, blocks no "
            f"writes)",
            _render(sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
                _q(schema, place.table), _q(fk_name))),
            phase=VALIDATE, change={"action": "validate", "kind": "fk",
                                    "table": place.table, "after": fk_name}))
    for fk in others:
        plan.unchanged.append(
            f"foreign key {fk.name} on {fk.table}({', '.join(fk.columns)}) → "
            f"{fk.ref_table}: not one of EnerLink's seven columns, so its name and column "
            f"stay as they are (it follows the table rename by itself).")
    for ref in d.text_references:
        plan.unchanged.append(f"{ref}: stored text is not rewritten; review it by hand.")
    ts, name = migration
    if not d.migrations_table:
        plan.steps.append(Step(
            "Creating TypeORM's migrations table (it was absent)",
            _render(sql.SQL(TYPEORM_MIGRATIONS_TABLE).format(table=_q(schema, "migrations"))),
            change={"action": "create_table", "kind": "table", "table": "migrations",
                    "after": "migrations"}))
    if not d.migration_recorded:
        plan.steps.append(Step(
            f"Recording {name} in TypeORM's migrations table",
            _render(sql.SQL('INSERT INTO {} ("timestamp", "name") VALUES ({}, {})').format(
                _q(schema, "migrations"), sql.Literal(ts), sql.Literal(name))),
            change={"action": "insert_migration", "kind": "row", "table": "migrations",
                    "after": name}))
    return plan


def _original_name(r: ObjectRename, journal_names: dict[str, str]) -> str:
    """The name an object had before the rename: journal first, then production's names."""
    if r.name_now in journal_names:
        return journal_names[r.name_now]
    if r.kind in ("trigger", "nn", "seq"):
        return names.swap_word(r.name_now, "user", "prosumer")
    table = r.table_before
    known = names.ORIGINAL_NAMES.get((r.kind, table, r.columns_before))
    if known is not None and names.is_typeorm_hash(r.name_now):
        return known
    if names.is_typeorm_hash(r.name_now):
        return names.typeorm_name(r.kind, table, r.columns_before)
    return names.swap_word(r.name_now, "user", "prosumer")


def build_down(d: Discovery, *, journal_names: dict[str, str] | None = None,
               added_fks: list[tuple[str, str]] | None = None,
               created_migrations_table: bool = False,
               migration_name: str = names.MIGRATION_NAME) -> Plan:
    """The exact inverse of the up plan, from the migrated (or partial) state."""
    from wizard.core.discovery import PRE

    _refuse_unless_plannable(d)
    if d.state == PRE:
        raise PlanRefused("nothing to revert: the database is in its pre-rename state.")
    schema, target = d.schema, d.target_table
    assert target is not None
    jn = journal_names or {}
    plan = Plan(DOWN, d.state, [])
    if migration_name in d.migration_names:
        if created_migrations_table:
            plan.steps.append(Step(
                "Dropping TypeORM's migrations table (the migration created it)",
                _render(sql.SQL("DROP TABLE {}").format(_q(schema, "migrations"))),
                change={"action": "drop_table", "kind": "table", "table": "migrations"}))
        else:
            plan.steps.append(Step(
                f"Removing {migration_name} from TypeORM's migrations table",
                _render(sql.SQL('DELETE FROM {} WHERE "name" = {}').format(
                    _q(schema, "migrations"), sql.Literal(migration_name))),
                change={"action": "delete_migration", "kind": "row", "table": "migrations"}))
    dropped = set()
    for table, fk_name in added_fks or []:
        dropped.add(fk_name)
        plan.steps.append(Step(
            f"Dropping {fk_name} on {table} (the migration added it)",
            _render(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(_q(schema, table),
                                                                        _q(fk_name))),
            change={"action": "drop_fk", "kind": "fk", "table": table, "before": fk_name}))
    table_now = target
    for r in reversed(object_renames(d)):
        if r.name_now in dropped:
            continue
        original = _original_name(r, jn)
        if original != r.name_now:
            on = table_now if r.table == names.NEW_TABLE else r.table
            plan.steps.append(_rename_step(r, schema, original, on))
    for place in reversed(names.REFERENCING):
        if d.place_column(place) == place.new:
            plan.steps.append(_column_step(schema, place.table, place.new, place.old))
    if d.key_column == names.NEW_KEY:
        plan.steps.append(_column_step(schema, target, names.NEW_KEY, names.OLD_KEY))
    if target == names.NEW_TABLE:
        plan.steps.append(_table_step(schema, names.NEW_TABLE, names.OLD_TABLE))
    return plan
