"""What every operation of a plan declares: its SQL, its inverse, what verify must then
find in the catalog, and the privilege it needs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from psycopg import sql

CATALOG, VALIDATE = "catalog", "validate"  # inside the transaction / after the commit


@dataclass(frozen=True)
class Expect:
    """One fact the catalog must show once the operation has run.

    kind: table, column, constraint, index, sequence, trigger, valid (a validated
    constraint) or row (a row of TypeORM's migrations table). `present=False` means the
    object must be gone (the old name of a rename).
    """

    kind: str
    table: str
    name: str
    present: bool = True

    def describe(self) -> str:
        where = f"{self.table}." if self.table else ""
        return f"{self.kind} {where}{self.name} {'present' if self.present else 'absent'}"


@dataclass(frozen=True)
class Privilege:
    """What the connected role needs: `owner` of a table (ALTER, RENAME, DROP),
    `insert`/`delete` on a table, or `create` on a schema."""

    kind: str
    target: str


@dataclass(frozen=True)
class Operation(ABC):
    """One statement of a plan. Subclasses are frozen dataclasses; their fields are the
    operation's arguments and are what the journal records."""

    schema: str

    op: ClassVar[str]  # the name the journal records
    phase: ClassVar[str] = CATALOG

    @property
    @abstractmethod
    def title(self) -> str:
        """What the operation does, in the words the log and the report show."""

    @abstractmethod
    def statement(self) -> sql.Composed:
        """The statement, built with psycopg.sql."""

    @abstractmethod
    def inverse(self) -> Operation | None:
        """The operation that undoes this one (None: nothing to undo, e.g. VALIDATE)."""

    @abstractmethod
    def privilege(self) -> Privilege:
        """What the connected role must have for the statement to run."""

    def expects(self) -> tuple[Expect, ...]:
        """What the catalog must show afterwards."""
        return ()

    @property
    def table(self) -> str:
        """The table the operation works on, named as it is when the operation runs."""
        return ""

    @property
    def sql(self) -> str:
        return self.statement().as_string(None)

    def record(self) -> dict[str, Any]:
        """The operation as the journal stores it; `from_record` reads it back."""
        return {"op": self.op, **asdict(self)}


def ident(*parts: str) -> sql.Identifier:
    return sql.Identifier(*parts)
