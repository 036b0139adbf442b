"""The plan's vocabulary: one class per operation (see base.Operation).

Where a new operation goes: a rename of a new kind of named object is one class in
objects.py added to RENAMES (PostgreSQL 18's NOT NULL constraints are RenameNotNull);
any other statement is a class in the module of its subject, added to OPS below.
"""

from __future__ import annotations

from typing import Any

from wizard.core.ops.base import CATALOG, VALIDATE, Expect, Operation, Privilege
from wizard.core.ops.history import (
    TYPEORM_MIGRATIONS_TABLE,
    CreateMigrationsTable,
    DeleteMigration,
    DropMigrationsTable,
    RecordMigration,
)
from wizard.core.ops.keys import AddForeignKey, DropForeignKey, ValidateForeignKey
from wizard.core.ops.objects import (
    RENAMES,
    ObjectRename,
    RenameForeignKey,
    RenameIndex,
    RenameNotNull,
    RenameObject,
    RenamePrimaryKey,
    RenameSequence,
    RenameTrigger,
    object_renames,
)
from wizard.core.ops.tables import RenameColumn, RenameTable
from wizard.core.ops.targets import managed_foreign_keys, plan_blockers

_ALL: tuple[type[Operation], ...] = (
    RenameTable, RenameColumn, *RENAMES, AddForeignKey, ValidateForeignKey, DropForeignKey,
    CreateMigrationsTable, DropMigrationsTable, RecordMigration, DeleteMigration)
OPS: dict[str, type[Operation]] = {cls.op: cls for cls in _ALL}


class UnknownOperation(ValueError):
    """A journal names an operation this version does not know."""


def from_record(record: dict[str, Any]) -> Operation:
    """An operation back from its journal record (Operation.record)."""
    fields = dict(record)
    name = fields.pop("op", None)
    cls = OPS.get(str(name))
    if cls is None:
        raise UnknownOperation(f"unknown operation {name!r} in the journal")
    return cls(**fields)


__all__ = [
    "CATALOG", "OPS", "RENAMES", "TYPEORM_MIGRATIONS_TABLE", "VALIDATE", "AddForeignKey",
    "CreateMigrationsTable", "DeleteMigration", "DropForeignKey", "DropMigrationsTable",
    "Expect", "ObjectRename", "Operation", "Privilege", "RecordMigration", "RenameColumn",
    "RenameForeignKey", "RenameIndex", "RenameNotNull", "RenameObject", "RenamePrimaryKey",
    "RenameSequence", "RenameTable", "RenameTrigger", "UnknownOperation", "ValidateForeignKey",
    "from_record", "managed_foreign_keys", "object_renames", "plan_blockers",
]
