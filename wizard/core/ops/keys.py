"""Foreign keys the plan adds (NOT VALID, then validated after commit) or drops on revert."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from wizard.core.ops.base import VALIDATE, Expect, Operation, Privilege, ident


@dataclass(frozen=True)
class AddForeignKey(Operation):
    """A missing key, added NOT VALID: no scan of the table while the lock is held."""

    on: str
    name: str
    column: str
    ref_table: str
    ref_column: str
    cascade: bool  # ON DELETE CASCADE (token_blacklist), else NO ACTION

    op = "add_foreign_key"

    @property
    def title(self) -> str:
        return (f"Adding the missing foreign key {self.name} on {self.on}.{self.column} "
                f"(NOT VALID: no scan under lock)")

    @property
    def table(self) -> str:
        return self.on

    def statement(self) -> sql.Composed:
        action = sql.SQL(" ON DELETE CASCADE" if self.cascade else "")
        return sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} "
                       "({}){} NOT VALID").format(
            ident(self.schema, self.on), ident(self.name), ident(self.column),
            ident(self.schema, self.ref_table), ident(self.ref_column), action)

    def inverse(self) -> DropForeignKey:
        return DropForeignKey(self.schema, self.on, self.name, self.column, self.ref_table,
                              self.ref_column, self.cascade)

    def privilege(self) -> Privilege:
        return Privilege("owner", self.on)

    def expects(self) -> tuple[Expect, ...]:
        return (Expect("constraint", self.on, self.name),)


@dataclass(frozen=True)
class ValidateForeignKey(Operation):
    """After the commit: reads every row, blocks no writes (SHARE UPDATE EXCLUSIVE)."""

    on: str
    name: str

    op = "validate_foreign_key"
    phase = VALIDATE

    @property
    def title(self) -> str:
        return f"Validating {self.name} on {self.on} (after commit; reads rows, blocks no writes)"

    @property
    def table(self) -> str:
        return self.on

    def statement(self) -> sql.Composed:
        return sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
            ident(self.schema, self.on), ident(self.name))

    def inverse(self) -> None:
        return None  # dropping the key (AddForeignKey's inverse) undoes it

    def privilege(self) -> Privilege:
        return Privilege("owner", self.on)

    def expects(self) -> tuple[Expect, ...]:
        return (Expect("valid", self.on, self.name),)


@dataclass(frozen=True)
class DropForeignKey(Operation):
    """A key the migration added, dropped by the revert (its definition kept to re-add)."""

    on: str
    name: str
    column: str
    ref_table: str
    ref_column: str
    cascade: bool

    op = "drop_foreign_key"

    @property
    def title(self) -> str:
        return f"Dropping {self.name} on {self.on} (the migration added it)"

    @property
    def table(self) -> str:
        return self.on

    def statement(self) -> sql.Composed:
        return sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(ident(self.schema, self.on),
                                                                 ident(self.name))

    def inverse(self) -> AddForeignKey:
        return AddForeignKey(self.schema, self.on, self.name, self.column, self.ref_table,
                             self.ref_column, self.cascade)

    def privilege(self) -> Privilege:
        return Privilege("owner", self.on)

    def expects(self) -> tuple[Expect, ...]:
        return (Expect("constraint", self.on, self.name, False),)
