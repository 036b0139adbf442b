"""Keeps our hand-written fixture honest: it must match the real pre-rename schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from wizard.core.connection import PgSettings
from wizard.core.fingerprint import schema_fingerprint
from wizard.core.resources import resource_path
from wizard.sandbox.servers import PostgresServer

pytestmark = pytest.mark.realworld


def psql_file(server: PostgresServer, dbname: str, path: Path) -> None:
    result = server.psql_file(dbname, path)
    assert result.returncode == 0, f"psql -f {path.name} failed:\n{result.stderr}"


@pytest.fixture
def realworld_db(pg_server: PostgresServer, realworld_dir: Path) -> Iterator[str]:
    with pg_server.admin_connect() as admin:
        admin.execute("CREATE DATABASE realworld_pre_rename")
    try:
        psql_file(pg_server, "realworld_pre_rename", realworld_dir /
                  "enerlink_pre_rename_schema.sql")
        yield "realworld_pre_rename"
    finally:
        pg_server.drop_database("realworld_pre_rename")


def _fingerprint(server: PostgresServer, dbname: str) -> list[str]:
    with server.admin_connect(dbname) as conn:
        return schema_fingerprint(conn)


def _diff(ours: list[str], theirs: list[str]) -> str:
    only_ours = sorted(set(ours) - set(theirs))
    only_theirs = sorted(set(theirs) - set(ours))
    return "\n".join(["only in our fixture:", *only_ours, "only in the real schema:",
                      *only_theirs])


def test_sample_database_matches_the_real_schema(pg_server: PostgresServer, realworld_db: str,
                                                 pg_db: PgSettings) -> None:
    theirs = _fingerprint(pg_server, realworld_db)
    ours = _fingerprint(pg_server, pg_db.dbname)
    assert len(theirs) > 150, "the real schema did not load"
    assert ours == theirs, _diff(ours, theirs)


@pytest.mark.pg_matrix("realworld")
def test_fixture_loads_with_psql_as_a_dba_would(pg_server: PostgresServer, realworld_db: str,
                                                empty_db: PgSettings) -> None:
    psql_file(pg_server, empty_db.dbname,
              resource_path("sql", "fixtures", "enerlink_pre_rename.sql"))
    ours = _fingerprint(pg_server, empty_db.dbname)
    theirs = _fingerprint(pg_server, realworld_db)
    assert ours == theirs, _diff(ours, theirs)
