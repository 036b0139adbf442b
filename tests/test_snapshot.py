"""The checks inside the transaction read one snapshot query; they must answer exactly what
verify.sql's queries answer on the same catalog (pre, partial, migrated, odd names)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from wizard.core import jobs
from wizard.core.connection import PgSettings
from wizard.core.plan import UP
from wizard.core.snapshot import (
    digest_of,
    digest_query,
    predict,
    rows_from_snapshot,
    snapshot_query,
)
from wizard.core.verify import (
    Expectations,
    catalog_queries,
    evaluate_catalog,
    expectations_from,
    receive,
    send,
)
from wizard.sandbox.servers import PostgresServer


def _oids(conn: psycopg.Connection[Any]) -> list[int]:
    rows = conn.execute(
        "SELECT c.oid::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind = 'r'").fetchall()
    return [int(r[0]) for r in rows]


def both_ways(settings: PgSettings, exp: Expectations) -> tuple[list[Any], list[Any]]:
    with settings.connect() as conn:
        by_sql = receive(send(conn, catalog_queries(exp, "public", with_migrations=True)))
        query, params = snapshot_query(_oids(conn), "public")
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, params)
            snap = rows_from_snapshot([dict(r) for r in cur.fetchall()], query)
        snap["migration_row"] = by_sql["migration_row"]
        conn.rollback()
    answers = [[(c.id, c.status, c.detail) for c in evaluate_catalog(
        found, exp, in_transaction=False)] for found in (by_sql, snap)]
    return answers[0], answers[1]


def _expectations(settings: PgSettings) -> Expectations:
    d = jobs.inspect(settings)
    return expectations_from(d, jobs.make_plan(d, UP, settings))


@pytest.mark.pg_matrix("verify")
def test_snapshot_answers_as_verify_sql_before_and_after(pg_db: PgSettings) -> None:
    exp = _expectations(pg_db)
    by_sql, by_snapshot = both_ways(pg_db, exp)
    assert any(status == "fail" for _id, status, _d in by_sql)  # pre: the checks fail
    assert by_snapshot == by_sql
    _plan, result, _j = jobs.run(pg_db, UP)
    assert result.ok, result.error
    by_sql, by_snapshot = both_ways(pg_db, exp)
    assert all(status == "pass" for _id, status, _d in by_sql), by_sql
    assert by_snapshot == by_sql


def test_snapshot_sees_what_verify_sql_sees_on_a_half_done_schema(pg_db: PgSettings) -> None:
    exp = _expectations(pg_db)
    assert jobs.run(pg_db, UP)[1].ok
    with pg_db.connect() as conn:
        conn.execute("ALTER TABLE wallet RENAME COLUMN user_id TO prosumer_id")
        conn.execute("CREATE INDEX prosumer_odd_idx ON smart_meter (user_id)")
        conn.execute('CREATE SEQUENCE prosumer_seq OWNED BY "user".user_id')
        conn.execute('ALTER TABLE "user" ADD CONSTRAINT prosumer_check CHECK (true)')
    by_sql, by_snapshot = both_ways(pg_db, exp)
    assert by_snapshot == by_sql
    failed = {i for i, status, _d in by_sql if status == "fail"}
    assert {"no_prosumer_columns", "no_prosumer_names", "plan_applied"} <= failed


def _snapshot(conn: psycopg.Connection[Any], oids: list[int]) -> tuple[str, list[Any]]:
    query, params = snapshot_query(oids, "public")
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        rows = [dict(r) for r in cur.fetchall()]
        cur.execute(*digest_query(oids, "public"))
        found = cur.fetchone()
    assert found is not None
    return found["digest"], rows


@pytest.mark.pg_matrix("migrate")
@pytest.mark.parametrize("setup", ["as shipped", "a key missing", "no migrations table"])
def test_the_predicted_catalog_is_the_one_the_plan_leaves(pg_db: PgSettings, setup: str
                                                          ) -> None:
    with pg_db.connect() as conn:
        if setup == "a key missing":
            conn.execute('ALTER TABLE smart_meter DROP CONSTRAINT "FK_15c4c55f7a7ac1a93ae9a06a6c4"')
        if setup == "no migrations table":
            conn.execute("DROP TABLE migrations")
    plan = jobs.make_plan(jobs.inspect(pg_db), UP, pg_db)
    with pg_db.connect() as conn:  # the statements by hand, in a transaction rolled back
        oids = _oids(conn)
        before, rows = _snapshot(conn, oids)
        assert digest_of(rows, oids) == before  # one digest, computed on both sides
        for op in plan.catalog_steps:
            conn.execute(op.sql.encode())
        after, _rows = _snapshot(conn, oids)
        conn.rollback()
    assert digest_of(predict(rows, plan.catalog_steps), oids) == after
    _plan, result, journal = jobs.run(pg_db, UP)  # and the run takes the short way
    assert result.ok, result.error
    logged = " ".join(e["message"] for e in journal.events("log"))
    assert "checked in full" not in logged
    assert "checks read in full" not in logged


def test_a_catalog_other_than_predicted_is_checked_in_full(pg_db: PgSettings,
                                                           pg_server: PostgresServer) -> None:
    """An event trigger (a DBA's audit hook) adds a column when the plan's first statement
    runs: the digest differs from the prediction, the run reads and checks everything."""
    with pg_server.admin_connect(pg_db.dbname) as admin:
        admin.execute("""
            CREATE FUNCTION audit_hook() RETURNS event_trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'wallet'::regclass
                             AND attname = 'audited') THEN
                ALTER TABLE wallet ADD COLUMN audited boolean;
              END IF;
            END $$""")
        admin.execute("CREATE EVENT TRIGGER audit_hook ON ddl_command_end "
                      "EXECUTE FUNCTION audit_hook()")
    try:
        _plan, result, journal = jobs.run(pg_db, UP)
        assert result.ok, result.error
        assert all(c.status == "pass" for c in result.checks), result.checks
        logged = " ".join(e["message"] for e in journal.events("log"))
        assert "not the predicted one: checked in full" in logged
    finally:
        with pg_server.admin_connect(pg_db.dbname) as admin:
            admin.execute("DROP EVENT TRIGGER audit_hook")


@pytest.mark.pg_matrix("realworld")
@pytest.mark.realworld
def test_the_real_schema_takes_the_predicted_path(pg_server: PostgresServer,
                                                  realworld_dir: Path,
                                                  empty_db: PgSettings) -> None:
    loaded = pg_server.psql_file(empty_db.dbname,
                                 realworld_dir / "enerlink_pre_rename_schema.sql")
    assert loaded.returncode == 0, loaded.stderr
    superuser = pg_server.settings(empty_db.dbname)
    _plan, result, journal = jobs.run(superuser, UP)
    assert result.ok, result.error
    logged = " ".join(e["message"] for e in journal.events("log"))
    assert "checked in full" not in logged
    assert "checks read in full" not in logged
