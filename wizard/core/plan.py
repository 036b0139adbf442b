"""The plan: the operations that take the database up (prosumer → user) or down (back).

A plan is a list of operations (wizard.core.ops) and the catalog facts it was built from;
its digest covers both, so the plan a DBA approved is provably the plan that runs. The
down plan is the inverses of the up operations that lead to the current state, reversed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from wizard.core import names
from wizard.core.catalog import PRE, Discovery, catalog_facts, facts_digest
from wizard.core.ops import (
    CATALOG,
    TYPEORM_MIGRATIONS_TABLE,
    VALIDATE,
    AddForeignKey,
    CreateMigrationsTable,
    DropForeignKey,
    Expect,
    ObjectRename,
    Operation,
    RecordMigration,
    RenameColumn,
    RenameObject,
    RenameTable,
    ValidateForeignKey,
    from_record,
    managed_foreign_keys,
    object_renames,
    plan_blockers,
)

UP, DOWN = "up", "down"

__all__ = ["CATALOG", "DOWN", "TYPEORM_MIGRATIONS_TABLE", "UP", "VALIDATE", "ObjectRename",
           "Plan", "PlanRefused", "build_down", "build_up", "managed_foreign_keys",
           "object_renames"]


class PlanRefused(RuntimeError):
    """The database is in a state no plan can handle safely; the message says why."""


@dataclass
class Plan:
    direction: str
    state: str
    ops: list[Operation]
    unchanged: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    facts: tuple[str, ...] = ()  # catalog_facts of the discovery it was built from
    source: Discovery | None = field(default=None, repr=False, compare=False)

    @property
    def steps(self) -> list[Operation]:
        return self.ops

    @property
    def catalog_steps(self) -> list[Operation]:
        return [op for op in self.ops if op.phase == CATALOG]

    @property
    def validate_steps(self) -> list[Operation]:
        return [op for op in self.ops if op.phase == VALIDATE]

    @property
    def tables(self) -> list[str]:
        return list(dict.fromkeys(op.table for op in self.ops if op.table))

    @property
    def facts_digest(self) -> str:
        return facts_digest(self.facts)

    @property
    def digest(self) -> str:
        """sha256 of the operations and of the catalog facts they were built from."""
        body = {"direction": self.direction, "ops": [op.record() for op in self.ops],
                "facts": self.facts_digest}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def name_map(self) -> dict[str, str]:
        """after → before for every object renamed, so a revert can restore exact names."""
        return {op.after: op.before for op in self.ops if isinstance(op, RenameObject)}

    def added_fks(self) -> list[tuple[str, str]]:
        return [(op.on, op.name) for op in self.ops if isinstance(op, AddForeignKey)]

    @property
    def creates_migrations_table(self) -> bool:
        return any(isinstance(op, CreateMigrationsTable) for op in self.ops)

    def expectations(self) -> list[Expect]:
        """What the catalog must show after the plan, with tables named as they end up."""
        found: list[Expect] = []
        for i, op in enumerate(self.ops):
            later = [o for o in self.ops[i + 1:] if isinstance(o, RenameTable)]
            for e in op.expects():
                table = e.table
                for rename in later:
                    if table == rename.before:
                        table = rename.after
                found.append(Expect(e.kind, table, e.name, e.present))
        return found

    def script(self, lock_timeout_s: float = 2.0, statement_timeout_s: float = 30.0) -> str:
        """The whole plan as a psql script a DBA can read or run by hand."""
        lines = [f"-- enerlink-migrate plan ({self.direction}), database state: {self.state}",
                 f"-- plan digest {self.digest}",
                 "BEGIN;",
                 f"SET LOCAL lock_timeout = '{int(lock_timeout_s * 1000)}ms';",
                 f"SET LOCAL statement_timeout = '{int(statement_timeout_s * 1000)}ms';"]
        for n, op in enumerate(self.catalog_steps, 1):
            lines += [f"-- [{n}/{len(self.catalog_steps)}] {op.title}", op.sql + ";"]
        lines.append("COMMIT;")
        for op in self.validate_steps:
            lines += [f"-- after commit, scans rows without blocking writes: {op.title}",
                      op.sql + ";"]
        return "\n".join(lines) + "\n"

    def record(self) -> dict[str, Any]:
        """The plan as the journal stores it (what `from_journal` and a revert read)."""
        return {"direction": self.direction, "state": self.state, "digest": self.digest,
                "facts_digest": self.facts_digest,
                "ops": [op.record() for op in self.ops],
                "steps": [{"title": op.title, "sql": op.sql, "phase": op.phase}
                          for op in self.ops],
                "script": self.script(), "unchanged": self.unchanged, "notes": self.notes,
                "name_map": self.name_map(), "added_fks": self.added_fks(),
                "created_migrations_table": self.creates_migrations_table}

    def to_dict(self) -> dict[str, Any]:
        return self.record()


def ops_from_record(record: dict[str, Any]) -> list[Operation]:
    """The operations of a journaled plan (journals before operations have none)."""
    return [from_record(r) for r in record.get("ops", [])]


def _refuse_blocked(d: Discovery) -> None:
    blockers = plan_blockers(d)
    if blockers:
        raise PlanRefused(" ".join(blockers))


def _added_keys(d: Discovery) -> tuple[list[AddForeignKey], list[ValidateForeignKey]]:
    managed, _others = managed_foreign_keys(d)
    with_fk = {(fk.table, fk.columns[0]) for fk in managed}
    adds, validates = [], []
    for place in names.REFERENCING:
        current = d.place_column(place)
        if current is None or (place.table, current) in with_fk:
            continue
        fk_name = names.typeorm_name("fk", place.table, (place.new,))
        adds.append(AddForeignKey(d.schema, place.table, fk_name, place.new, names.NEW_TABLE,
                                  names.NEW_KEY, names.EXPECTED_ON_DELETE[place.label] == "c"))
        validates.append(ValidateForeignKey(d.schema, place.table, fk_name))
    return adds, validates


def build_up(d: Discovery, *, migration: tuple[int, str] = (names.MIGRATION_TIMESTAMP,
                                                            names.MIGRATION_NAME)) -> Plan:
    """Finish the rename from whatever state d is in (pre, partial or migrated)."""
    _refuse_blocked(d)
    schema, target = d.schema, d.target_table
    assert target is not None
    plan = Plan(UP, d.state, [], facts=catalog_facts(d), source=d)
    if target == names.OLD_TABLE:
        plan.ops.append(RenameTable(schema, names.OLD_TABLE, names.NEW_TABLE))
    if d.key_column == names.OLD_KEY:
        plan.ops.append(RenameColumn(schema, names.NEW_TABLE, names.OLD_KEY, names.NEW_KEY))
    for place in names.REFERENCING:
        if d.place_column(place) == place.old:
            plan.ops.append(RenameColumn(schema, place.table, place.old, place.new))
        elif d.place_column(place) is None:
            plan.notes.append(f"{place.table}.{place.old} does not exist here: skipped.")
    plan.ops += [r.rename(schema, r.table, r.name_target) for r in object_renames(d)
                 if r.needed]
    adds, validates = _added_keys(d)
    for add, validate in zip(adds, validates, strict=True):
        plan.ops += [add, validate]
    _, others = managed_foreign_keys(d)
    for fk in others:
        plan.unchanged.append(
            f"foreign key {fk.name} on {fk.table}({', '.join(fk.columns)}) → "
            f"{fk.ref_table}: not one of EnerLink's seven columns, so its name and column "
            f"stay as they are (it follows the table rename by itself).")
    for ref in d.text_references:
        plan.unchanged.append(f"{ref}: stored text is not rewritten; review it by hand.")
    ts, name = migration
    if not d.migrations_table:
        plan.ops.append(CreateMigrationsTable(schema))
    if not d.migration_recorded:
        plan.ops.append(RecordMigration(schema, ts, name))
    return plan


def _original_name(r: ObjectRename, journal_names: dict[str, str]) -> str:
    """The name an object had before the rename: journal first, then the kind's rule."""
    if r.name_now in journal_names:
        return journal_names[r.name_now]
    return r.operation.original_name(r)


def _up_ops_to_here(d: Discovery, jn: dict[str, str], added: list[DropForeignKey],
                    created_migrations_table: bool, migration_name: str) -> list[Operation]:
    """The up operations that lead from the pre-rename schema to d, in up order."""
    schema, target = d.schema, d.target_table
    assert target is not None
    ups: list[Operation] = []
    if target == names.NEW_TABLE:
        ups.append(RenameTable(schema, names.OLD_TABLE, names.NEW_TABLE))
    if d.key_column == names.NEW_KEY:
        ups.append(RenameColumn(schema, target, names.OLD_KEY, names.NEW_KEY))
    for place in names.REFERENCING:
        if d.place_column(place) == place.new:
            ups.append(RenameColumn(schema, place.table, place.old, place.new))
    dropped = {fk.name for fk in added}
    for r in object_renames(d):
        original = _original_name(r, jn)
        if r.name_now not in dropped and original != r.name_now:
            on = target if r.table == names.NEW_TABLE else r.table
            ups.append(r.operation(schema, on, original, r.name_now))
    ups += [drop.inverse() for drop in added]
    if migration_name in d.migration_names:
        if created_migrations_table:
            ups.append(CreateMigrationsTable(schema))
        else:
            ups.append(RecordMigration(schema, names.MIGRATION_TIMESTAMP, migration_name))
    return ups


def build_down(d: Discovery, *, journal_names: dict[str, str] | None = None,
               added_fks: list[tuple[str, str]] | None = None,
               created_migrations_table: bool = False,
               migration_name: str = names.MIGRATION_NAME) -> Plan:
    """The exact inverse of the up plan, from the migrated (or partial) state.

    journal_names (after → before) and added_fks come from the journal of the up run; a
    database migrated elsewhere gets production's original names back.
    """
    _refuse_blocked(d)
    if d.state == PRE:
        raise PlanRefused("nothing to revert: the database is in its pre-rename state.")
    managed, _ = managed_foreign_keys(d)
    by_name = {fk.name: fk for fk in managed}
    added: list[DropForeignKey] = []
    for table, fk_name in added_fks or []:
        fk = by_name.get(fk_name)
        column = fk.columns[0] if fk is not None else names.NEW_KEY
        added.append(DropForeignKey(d.schema, table, fk_name, column, names.NEW_TABLE,
                                    names.NEW_KEY, fk is not None and fk.on_delete == "c"))
    ups = _up_ops_to_here(d, journal_names or {}, added, created_migrations_table,
                          migration_name)
    downs = [inv for inv in (op.inverse() for op in reversed(ups)) if inv is not None]
    return Plan(DOWN, d.state, downs, facts=catalog_facts(d), source=d)
