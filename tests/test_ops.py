"""The plan's vocabulary: each operation's SQL, inverse, expectations and privilege."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from psycopg import sql
from psycopg.rows import dict_row

from wizard.core import jobs, ops
from wizard.core.connection import PgSettings
from wizard.core.fingerprint import schema_fingerprint
from wizard.core.ops import OPS, RENAMES, Operation, from_record
from wizard.core.plan import UP
from wizard.core.sqlfiles import query

SAMPLES: dict[type[Operation], Operation] = {
    ops.RenameTable: ops.RenameTable("public", "prosumer", "user"),
    ops.RenameColumn: ops.RenameColumn("public", "wallet", "prosumer_id", "user_id"),
    ops.RenamePrimaryKey: ops.RenamePrimaryKey("public", "user", "PK_a", "PK_b"),
    ops.RenameForeignKey: ops.RenameForeignKey("public", "wallet", "FK_a", "FK_b"),
    ops.RenameNotNull: ops.RenameNotNull("public", "user", "prosumer_email_not_null",
                                         "user_email_not_null"),
    ops.RenameIndex: ops.RenameIndex("public", "wallet", "IDX_a", "IDX_b"),
    ops.RenameSequence: ops.RenameSequence("public", "user", "prosumer_seq", "user_seq"),
    ops.RenameTrigger: ops.RenameTrigger("public", "user", "set_prosumers", "set_users"),
    ops.AddForeignKey: ops.AddForeignKey("public", "wallet", "FK_n", "user_id", "user",
                                         "user_id", False),
    ops.ValidateForeignKey: ops.ValidateForeignKey("public", "wallet", "FK_n"),
    ops.DropForeignKey: ops.DropForeignKey("public", "token_blacklist", "FK_t", "user_id",
                                           "user", "user_id", True),
    ops.CreateMigrationsTable: ops.CreateMigrationsTable("public"),
    ops.DropMigrationsTable: ops.DropMigrationsTable("public"),
    ops.RecordMigration: ops.RecordMigration("public", 1761992645605, "RenameProsumerToUser"),
    ops.DeleteMigration: ops.DeleteMigration("public", 1761992645605, "RenameProsumerToUser"),
}

EXPECTED_SQL = {
    ops.RenameTable: 'ALTER TABLE "public"."prosumer" RENAME TO "user"',
    ops.RenameColumn: 'ALTER TABLE "public"."wallet" RENAME COLUMN "prosumer_id" TO "user_id"',
    ops.RenamePrimaryKey: 'ALTER TABLE "public"."user" RENAME CONSTRAINT "PK_a" TO "PK_b"',
    ops.RenameForeignKey: 'ALTER TABLE "public"."wallet" RENAME CONSTRAINT "FK_a" TO "FK_b"',
    ops.RenameNotNull: 'ALTER TABLE "public"."user" RENAME CONSTRAINT '
                       '"prosumer_email_not_null" TO "user_email_not_null"',
    ops.RenameIndex: 'ALTER INDEX "public"."IDX_a" RENAME TO "IDX_b"',
    ops.RenameSequence: 'ALTER SEQUENCE "public"."prosumer_seq" RENAME TO "user_seq"',
    ops.RenameTrigger: 'ALTER TRIGGER "set_prosumers" ON "public"."user" RENAME TO "set_users"',
    ops.AddForeignKey: 'ALTER TABLE "public"."wallet" ADD CONSTRAINT "FK_n" FOREIGN KEY '
                       '("user_id") REFERENCES "public"."user" ("user_id") NOT VALID',
    ops.ValidateForeignKey: 'ALTER TABLE "public"."wallet" VALIDATE CONSTRAINT "FK_n"',
    ops.DropForeignKey: 'ALTER TABLE "public"."token_blacklist" DROP CONSTRAINT "FK_t"',
    ops.CreateMigrationsTable: 'CREATE TABLE "public"."migrations" ("id" SERIAL NOT NULL, '
                               '"timestamp" bigint NOT NULL, "name" character varying NOT '
                               'NULL, CONSTRAINT "PK_8c82d7f526340ab734260ea46be" PRIMARY KEY '
                               '("id"))',
    ops.DropMigrationsTable: 'DROP TABLE "public"."migrations"',
    ops.RecordMigration: 'INSERT INTO "public"."migrations" ("timestamp", "name") VALUES '
                         "(1761992645605, 'RenameProsumerToUser')",
    ops.DeleteMigration: 'DELETE FROM "public"."migrations" WHERE "name" = '
                         "'RenameProsumerToUser'",
}


def _concrete(cls: type[Any]) -> list[type[Operation]]:
    found = []
    for sub in cls.__subclasses__():
        if not inspect.isabstract(sub) and "op" in sub.__dict__:
            found.append(sub)
        found += _concrete(sub)
    return found


def test_every_operation_is_registered_and_sampled() -> None:
    assert set(_concrete(Operation)) == set(OPS.values()) == set(SAMPLES)
    assert len({cls.op for cls in OPS.values()}) == len(OPS)
    assert {cls.kind for cls in RENAMES} == {"pk", "fk", "nn", "idx", "seq", "trigger"}


@pytest.mark.parametrize("cls", list(SAMPLES), ids=lambda c: c.__name__)
def test_sql_inverse_record_and_expectations(cls: type[Operation]) -> None:
    op = SAMPLES[cls]
    assert op.sql == EXPECTED_SQL[cls]
    assert from_record(op.record()) == op
    inverse = op.inverse()
    if cls is ops.ValidateForeignKey:
        assert inverse is None  # dropping the key undoes it
    else:
        assert inverse is not None
        assert inverse.inverse() == op
    assert op.title
    assert op.privilege().kind in ("owner", "insert", "delete", "create")
    for e in op.expects():
        assert e.kind in ("table", "column", "constraint", "index", "sequence", "trigger",
                          "valid", "row")
    if isinstance(op, ops.RenameObject | ops.RenameTable | ops.RenameColumn):
        assert [e.present for e in op.expects()] == [True, False]
        assert {e.name for e in op.expects()} == {op.before, op.after}


def test_identifiers_are_quoted_whatever_the_name() -> None:
    odd = ops.RenameColumn("we\"ird", 'ta"ble', "a b", 'c";DROP TABLE x;--')
    composed = sql.SQL("ALTER TABLE {} RENAME COLUMN {} TO {}").format(
        sql.Identifier('we"ird', 'ta"ble'), sql.Identifier("a b"),
        sql.Identifier('c";DROP TABLE x;--'))
    assert odd.sql == composed.as_string(None)
    assert '"c"";DROP TABLE x;--"' in odd.sql


def test_unknown_operation_in_a_journal_is_refused() -> None:
    with pytest.raises(ops.UnknownOperation, match="rename_galaxy"):
        from_record({"op": "rename_galaxy", "schema": "public"})


def _objects(conn: Any) -> set[tuple[str, str, str]]:
    params = {"schema": "public", "tables": ["prosumer", "user", "wallet", "smart_meter",
                                            "transaction_log", "market_trade",
                                            "idrs_conversion", "token_blacklist",
                                            "migrations"]}
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query("catalog/verify.sql", "objects"), params)
        return {(r["kind"], "" if r["kind"] in ("table", "index", "sequence")
                 else r["on_table"], r["name"]) for r in cur.fetchall()}


@pytest.mark.pg_matrix("migrate")
def test_each_operation_of_the_plan_does_what_it_declares_and_its_inverse_undoes_it(
        pg_db: PgSettings) -> None:
    """On the real sample schema: every operation of the up plan, one at a time, leaves
    what it expects; the inverses, reversed, give back the exact schema."""
    plan = jobs.make_plan(jobs.inspect(pg_db), UP, pg_db)
    with pg_db.connect() as conn:
        original = schema_fingerprint(conn)
        renames: dict[str, str] = {}
        for op in plan.catalog_steps:
            conn.execute(op.sql.encode())
            if isinstance(op, ops.RenameTable):
                renames[op.before] = op.after
            present = _objects(conn)
            for e in op.expects():
                if e.kind in ("row", "valid"):
                    continue
                table = renames.get(e.table, e.table)
                key = (e.kind, "" if e.kind in ("table", "index", "sequence") else table,
                       e.name)
                assert (key in present) == e.present, f"{op.title}: {e.describe()}"
        assert schema_fingerprint(conn) != original
        for op in reversed(plan.catalog_steps):
            inverse = op.inverse()
            if inverse is not None:
                conn.execute(inverse.sql.encode())
        assert schema_fingerprint(conn) == original
        conn.rollback()
