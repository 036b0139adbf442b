"""Renaming the table and its columns."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from wizard.core.ops.base import Expect, Operation, Privilege, ident


@dataclass(frozen=True)
class RenameTable(Operation):
    before: str
    after: str

    op = "rename_table"

    @property
    def title(self) -> str:
        return f"Renaming table {self.before} → {self.after}"

    @property
    def table(self) -> str:
        return self.after

    def statement(self) -> sql.Composed:
        return sql.SQL("ALTER TABLE {} RENAME TO {}").format(ident(self.schema, self.before),
                                                           ident(self.after))

    def inverse(self) -> RenameTable:
        return RenameTable(self.schema, self.after, self.before)

    def privilege(self) -> Privilege:
        return Privilege("owner", self.before)

    def expects(self) -> tuple[Expect, ...]:
        return (Expect("table", "", self.after), Expect("table", "", self.before, False))


@dataclass(frozen=True)
class RenameColumn(Operation):
    on: str  # the table, named as it is when the column is renamed
    before: str
    after: str

    op = "rename_column"

    @property
    def title(self) -> str:
        return f"Renaming {self.on}.{self.before} → {self.after}"

    @property
    def table(self) -> str:
        return self.on

    def statement(self) -> sql.Composed:
        return sql.SQL("ALTER TABLE {} RENAME COLUMN {} TO {}").format(
            ident(self.schema, self.on), ident(self.before), ident(self.after))

    def inverse(self) -> RenameColumn:
        return RenameColumn(self.schema, self.on, self.after, self.before)

    def privilege(self) -> Privilege:
        return Privilege("owner", self.on)

    def expects(self) -> tuple[Expect, ...]:
        return (Expect("column", self.on, self.after),
                Expect("column", self.on, self.before, False))
