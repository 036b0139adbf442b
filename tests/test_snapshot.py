"""The checks inside the transaction read one snapshot query; they must answer exactly what
verify.sql's queries answer on the same catalog (pre, partial, migrated, odd names)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from wizard.core import jobs
from wizard.core.connection import PgSettings
from wizard.core.plan import UP
from wizard.core.snapshot import rows_from_snapshot, snapshot_query
from wizard.core.verify import (
    Expectations,
    catalog_queries,
    evaluate_catalog,
    expectations_from,
    receive,
    send,
)


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
