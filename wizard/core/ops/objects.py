"""Renaming the keys, constraints, indexes, sequences and triggers tied to the rename.

Each kind is one class: how to find its objects in the catalog, the name each must end
with, its SQL, its inverse, and what verify then finds. A new kind is one class here,
added to RENAMES, and its tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from psycopg import sql

from wizard.core import names
from wizard.core.catalog import Discovery
from wizard.core.ops.base import Expect, Operation, Privilege, ident
from wizard.core.ops.targets import (
    before_columns,
    final_columns,
    is_place,
    managed_foreign_keys,
    table_names,
    touches_renamed_column,
)


@dataclass(frozen=True)
class ObjectRename:
    """An object whose name follows the rename, found in the catalog."""

    kind: str  # RenameObject.kind of the class that renames it
    table: str  # the table it is on, named as it will be after the rename
    table_before: str
    columns_before: tuple[str, ...]
    name_now: str
    name_target: str

    @property
    def needed(self) -> bool:
        return self.name_now != self.name_target

    @property
    def operation(self) -> type[RenameObject]:
        return RENAMES_BY_KIND[self.kind]

    def describe(self) -> str:
        label = self.operation.label
        if not self.needed:
            return f"{label} {self.name_now}"
        return f"{label} {self.name_now} → {self.name_target}"

    def rename(self, schema: str, on: str, new_name: str) -> RenameObject:
        return self.operation(schema, on, self.name_now, new_name)


@dataclass(frozen=True)
class RenameObject(Operation):
    """Base of the named-object renames: fields, title, inverse and expectations."""

    on: str  # the table it is on, named as it is when the rename runs
    before: str
    after: str

    kind: ClassVar[str]
    label: ClassVar[str]
    catalog_kind: ClassVar[str]  # the Expect kind verify looks for

    @property
    def title(self) -> str:
        return f"Renaming {self.label} {self.before} → {self.after} on {self.on}"

    @property
    def table(self) -> str:
        return self.on

    def inverse(self) -> RenameObject:
        return type(self)(self.schema, self.on, self.after, self.before)

    def privilege(self) -> Privilege:
        return Privilege("owner", self.on)

    def expects(self) -> tuple[Expect, ...]:
        return (Expect(self.catalog_kind, self.on, self.after),
                Expect(self.catalog_kind, self.on, self.before, False))

    @classmethod
    def find(cls, d: Discovery) -> list[ObjectRename]:
        """Every object of this kind tied to the renamed table and columns."""
        raise NotImplementedError

    @classmethod
    def original_name(cls, r: ObjectRename) -> str:
        """The name it had before the rename when no journal says (a revert of a database
        migrated elsewhere): the word prosumer back in place."""
        return names.swap_word(r.name_now, "user", "prosumer")


def _typeorm_original(kind: str, r: ObjectRename) -> str:
    """A TypeORM hash name: the one production had, else the hash of the old names."""
    if not names.is_typeorm_hash(r.name_now):
        return names.swap_word(r.name_now, "user", "prosumer")
    known = names.ORIGINAL_NAMES.get((kind, r.table_before, r.columns_before))
    return known or names.typeorm_name(kind, r.table_before, r.columns_before)


@dataclass(frozen=True)
class _RenameConstraint(RenameObject):
    catalog_kind = "constraint"

    def statement(self) -> sql.Composed:
        return sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
            ident(self.schema, self.on), ident(self.before), ident(self.after))


@dataclass(frozen=True)
class RenamePrimaryKey(_RenameConstraint):
    op = "rename_primary_key"
    kind = "pk"
    label = "primary key"

    @classmethod
    def find(cls, d: Discovery) -> list[ObjectRename]:
        pk = d.primary_key()
        if pk is None:
            return []
        cols = final_columns(names.NEW_TABLE, pk.columns)
        return [ObjectRename(cls.kind, names.NEW_TABLE, names.OLD_TABLE,
                             before_columns(names.NEW_TABLE, pk.columns), pk.name,
                             names.renamed(pk.name, "pk", names.NEW_TABLE, cols))]

    @classmethod
    def original_name(cls, r: ObjectRename) -> str:
        return _typeorm_original("pk", r)


@dataclass(frozen=True)
class RenameForeignKey(_RenameConstraint):
    op = "rename_foreign_key"
    kind = "fk"
    label = "foreign key"

    @classmethod
    def find(cls, d: Discovery) -> list[ObjectRename]:
        managed, _others = managed_foreign_keys(d)
        found = []
        for fk in managed:
            cols = final_columns(fk.table, fk.columns)
            found.append(ObjectRename(cls.kind, fk.table, fk.table,
                                      before_columns(fk.table, cols), fk.name,
                                      names.renamed(fk.name, "fk", fk.table, cols)))
        return found

    @classmethod
    def original_name(cls, r: ObjectRename) -> str:
        return _typeorm_original("fk", r)


@dataclass(frozen=True)
class RenameNotNull(_RenameConstraint):
    """PostgreSQL 18 names NOT NULL constraints <table>_<column>_not_null: on the renamed
    table every one says prosumer; elsewhere those on the renamed columns do."""

    op = "rename_not_null"
    kind = "nn"
    label = "not-null constraint"

    @classmethod
    def find(cls, d: Discovery) -> list[ObjectRename]:
        target = d.target_table
        found = []
        for nn in (c for c in d.constraints if c.kind == "n"):
            if nn.table != target and not touches_renamed_column(nn.table, nn.columns, target):
                continue
            after, before = table_names(nn.table, target)
            found.append(ObjectRename(
                cls.kind, after, before,
                before_columns(after, final_columns(after, nn.columns)),
                nn.name, names.swap_word(nn.name, "prosumer", "user")))
        return found


@dataclass(frozen=True)
class RenameIndex(RenameObject):
    """Indexes that are not a constraint's own (those follow their constraint)."""

    op = "rename_index"
    kind = "idx"
    label = "index"
    catalog_kind = "index"

    def statement(self) -> sql.Composed:
        return sql.SQL("ALTER INDEX {} RENAME TO {}").format(ident(self.schema, self.before),
                                                           ident(self.after))

    @classmethod
    def find(cls, d: Discovery) -> list[ObjectRename]:
        target = d.target_table
        found = []
        for idx in d.indexes:
            if idx.constraint_name is not None:
                continue
            if idx.table != target and not touches_renamed_column(idx.table, idx.columns,
                                                                   target):
                continue
            after, before = table_names(idx.table, target)
            cols = final_columns(after, idx.columns)
            found.append(ObjectRename(cls.kind, after, before, before_columns(after, cols),
                                      idx.name, names.renamed(idx.name, "idx", after, cols)))
        return found

    @classmethod
    def original_name(cls, r: ObjectRename) -> str:
        return _typeorm_original("idx", r)


@dataclass(frozen=True)
class RenameSequence(RenameObject):
    """Sequences owned by the renamed table or one of the renamed columns."""

    op = "rename_sequence"
    kind = "seq"
    label = "sequence"
    catalog_kind = "sequence"

    def statement(self) -> sql.Composed:
        return sql.SQL("ALTER SEQUENCE {} RENAME TO {}").format(
            ident(self.schema, self.before), ident(self.after))

    @classmethod
    def find(cls, d: Discovery) -> list[ObjectRename]:
        target = d.target_table
        found = []
        for seq in d.sequences:
            if seq.table != target and not is_place(seq.table, seq.column):
                continue
            after, before = table_names(seq.table, target)
            found.append(ObjectRename(cls.kind, after, before,
                                      (names.column_before(after, seq.column),), seq.name,
                                      names.swap_word(seq.name, "prosumer", "user")))
        return found


@dataclass(frozen=True)
class RenameTrigger(RenameObject):
    op = "rename_trigger"
    kind = "trigger"
    label = "trigger"
    catalog_kind = "trigger"

    def statement(self) -> sql.Composed:
        return sql.SQL("ALTER TRIGGER {} ON {} RENAME TO {}").format(
            ident(self.before), ident(self.schema, self.on), ident(self.after))

    @classmethod
    def find(cls, d: Discovery) -> list[ObjectRename]:
        return [ObjectRename(cls.kind, names.NEW_TABLE, names.OLD_TABLE, (), trg.name,
                             names.swap_word(trg.name, "prosumer", "user"))
                for trg in d.triggers if trg.table == d.target_table]


# In plan order. A new kind of object to rename goes here.
RENAMES: tuple[type[RenameObject], ...] = (RenamePrimaryKey, RenameForeignKey, RenameNotNull,
                                           RenameIndex, RenameSequence, RenameTrigger)
RENAMES_BY_KIND = {cls.kind: cls for cls in RENAMES}


def object_renames(d: Discovery) -> list[ObjectRename]:
    """Every name tied to the renamed table and columns, with the name it should end with."""
    if d.target_table is None:
        return []
    return [r for cls in RENAMES for r in cls.find(d)]
