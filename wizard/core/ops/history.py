"""TypeORM's migrations table: the row that tells the application the rename is applied."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from wizard.core.ops.base import Expect, Operation, Privilege, ident

MIGRATIONS = "migrations"

# What TypeORM creates on first run, with its own primary key name.
TYPEORM_MIGRATIONS_TABLE = (
    'CREATE TABLE {table} ("id" SERIAL NOT NULL, "timestamp" bigint NOT NULL, '
    '"name" character varying NOT NULL, '
    'CONSTRAINT "PK_8c82d7f526340ab734260ea46be" PRIMARY KEY ("id"))'
)


@dataclass(frozen=True)
class CreateMigrationsTable(Operation):
    op = "create_migrations_table"

    @property
    def title(self) -> str:
        return "Creating TypeORM's migrations table (it was absent)"

    @property
    def table(self) -> str:
        return MIGRATIONS

    def statement(self) -> sql.Composed:
        return sql.SQL(TYPEORM_MIGRATIONS_TABLE).format(table=ident(self.schema, MIGRATIONS))

    def inverse(self) -> DropMigrationsTable:
        return DropMigrationsTable(self.schema)

    def privilege(self) -> Privilege:
        return Privilege("create", self.schema)

    def expects(self) -> tuple[Expect, ...]:
        return (Expect("table", "", MIGRATIONS),)


@dataclass(frozen=True)
class DropMigrationsTable(Operation):
    op = "drop_migrations_table"

    @property
    def title(self) -> str:
        return "Dropping TypeORM's migrations table (the migration created it)"

    @property
    def table(self) -> str:
        return MIGRATIONS

    def statement(self) -> sql.Composed:
        return sql.SQL("DROP TABLE {}").format(ident(self.schema, MIGRATIONS))

    def inverse(self) -> CreateMigrationsTable:
        return CreateMigrationsTable(self.schema)

    def privilege(self) -> Privilege:
        return Privilege("owner", MIGRATIONS)

    def expects(self) -> tuple[Expect, ...]:
        return (Expect("table", "", MIGRATIONS, False),)


@dataclass(frozen=True)
class RecordMigration(Operation):
    timestamp: int
    name: str

    op = "record_migration"

    @property
    def title(self) -> str:
        return f"Recording {self.name} in TypeORM's migrations table"

    @property
    def table(self) -> str:
        return MIGRATIONS

    def statement(self) -> sql.Composed:
        return sql.SQL('INSERT INTO {} ("timestamp", "name") VALUES ({}, {})').format(
            ident(self.schema, MIGRATIONS), sql.Literal(self.timestamp), sql.Literal(self.name))

    def inverse(self) -> DeleteMigration:
        return DeleteMigration(self.schema, self.timestamp, self.name)

    def privilege(self) -> Privilege:
        return Privilege("insert", MIGRATIONS)

    def expects(self) -> tuple[Expect, ...]:
        return (Expect("row", MIGRATIONS, self.name),)


@dataclass(frozen=True)
class DeleteMigration(Operation):
    timestamp: int
    name: str

    op = "delete_migration"

    @property
    def title(self) -> str:
        return f"Removing {self.name} from TypeORM's migrations table"

    @property
    def table(self) -> str:
        return MIGRATIONS

    def statement(self) -> sql.Composed:
        return sql.SQL('DELETE FROM {} WHERE "name" = {}').format(
            ident(self.schema, MIGRATIONS), sql.Literal(self.name))

    def inverse(self) -> RecordMigration:
        return RecordMigration(self.schema, self.timestamp, self.name)

    def privilege(self) -> Privilege:
        return Privilege("delete", MIGRATIONS)

    def expects(self) -> tuple[Expect, ...]:
        return (Expect("row", MIGRATIONS, self.name, False),)
