"""Pre-flight: states, privileges, sessions with cancel/terminate, disk space — read-only."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from wizard.core import jobs
from wizard.core.connection import PgSettings
from wizard.core.fingerprint import schema_fingerprint
from wizard.core.journal import Journal
from wizard.core.pgtools import find_tool, server_major
from wizard.core.plan import UP
from wizard.core.preflight import (
    Preflight,
    app_command,
    list_sessions,
    run_preflight,
    signal_session,
)
from wizard.sandbox.servers import PostgresServer


def _by_id(pre: Preflight) -> dict[str, str]:
    return {c.id: c.status for c in pre.checks}


@pytest.mark.pg_matrix("tools")
def test_sample_database_passes_and_nothing_changes(pg_db: PgSettings, tmp_path: Path) -> None:
    with pg_db.connect() as conn:
        before = schema_fingerprint(conn)
    lines: list[tuple[str, str]] = []
    pre = run_preflight(pg_db, tmp_path / "backups", lambda lvl, msg: lines.append((lvl, msg)))
    assert pre.state == "pre"
    assert pre.estimated_rows.keys() >= {"prosumer", "wallet", "token_blacklist"}
    assert pre.database_bytes > 0
    checks = _by_id(pre)
    assert checks["state"] == checks["privileges"] == checks["disk"] == "pass"
    assert checks["client_tools"] == "pass"
    with pg_db.connect() as conn:
        chosen = find_tool("pg_dump", server_major(conn))
    assert f"pg_dump {chosen.version} ({chosen.path})" in next(
        c.detail for c in pre.checks if c.id == "client_tools")
    assert checks["createdb"] == "pass"  # the owner role has CREATEDB
    assert not pre.blocking
    assert any("Free space" in msg for _lvl, msg in lines)
    with pg_db.connect() as conn:
        assert schema_fingerprint(conn) == before


def test_migrated_database_warns_that_there_is_nothing_to_do(pg_db: PgSettings) -> None:
    assert jobs.run(pg_db, UP)[1].ok
    pre = run_preflight(pg_db)
    assert pre.state == "migrated"
    assert _by_id(pre)["state"] == "warn"
    assert not pre.blocking


def test_not_enerlink_is_blocking(empty_db: PgSettings) -> None:
    pre = run_preflight(empty_db)
    assert [c.id for c in pre.blocking] == ["state"]
    assert "not an EnerLink database" in pre.blocking[0].detail


@pytest.fixture
def stranger(pg_server: PostgresServer, pg_db: PgSettings) -> Iterator[PgSettings]:
    """A role that may connect but owns nothing and cannot create databases."""
    password = secrets.token_urlsafe(12)
    role = f"stranger_{secrets.token_hex(3)}"
    with pg_server.admin_connect() as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)))
    yield pg_server.settings(pg_db.dbname, role, password)
    with pg_server.admin_connect(pg_db.dbname) as admin:
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_role_that_owns_nothing_is_blocked_and_told_why(stranger: PgSettings,
                                                        pg_server: PostgresServer) -> None:
    pre = run_preflight(stranger)
    assert [c.id for c in pre.blocking] == ["state"]
    assert f"role {stranger.user} may not read public.migrations" in pre.blocking[0].detail
    with pg_server.admin_connect(stranger.dbname) as admin:
        admin.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(
            sql.Identifier(stranger.user)))
    pre = run_preflight(stranger)
    blocking = {c.id: c.detail for c in pre.blocking}
    assert "privileges" in blocking
    assert f"role {stranger.user} cannot ALTER table public.prosumer" in blocking["privileges"]
    assert _by_id(pre)["createdb"] == "warn"


def test_too_little_disk_is_blocking(pg_db: PgSettings, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Stand-in: a real full disk is not something a test can make safely.
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("wizard.core.preflight.shutil.disk_usage", lambda _p: usage(100, 99, 1))
    pre = run_preflight(pg_db, tmp_path)
    disk = next(c for c in pre.blocking if c.id == "disk")
    assert "1 B free" in disk.detail
    assert "database is" in disk.detail


def test_sessions_are_listed_and_can_be_cancelled_then_terminated(pg_db: PgSettings) -> None:
    with pg_db.connect(autocommit=True) as app:
        app.execute("SET application_name = 'enerlink-backend'")
        app_pid = app.info.backend_pid
        app.execute("BEGIN")
        app.execute("SELECT 1")
        pre = run_preflight(pg_db)
        assert _by_id(pre)["sessions"] == "warn"
        assert "enerlink-backend" in next(c for c in pre.checks if c.id == "sessions").detail
        found = {s.pid: s for s in list_sessions(pg_db)}
        assert found[app_pid].application_name == "enerlink-backend"
        assert found[app_pid].state == "idle in transaction"
        assert signal_session(pg_db, app_pid, terminate=False) == f"sent a cancel to pid {app_pid}"
        assert signal_session(pg_db, app_pid, terminate=True) == f"terminated pid {app_pid}"
        with pytest.raises(psycopg.OperationalError):
            app.execute("SELECT 1")
    assert signal_session(pg_db, app_pid, terminate=True) == f"pid {app_pid} is no longer connected"


def test_a_pg_dump_path_that_does_not_fit_is_a_warning(pg_db: PgSettings,
                                                       tmp_path: Path) -> None:
    pre = run_preflight(pg_db, pg_dump=str(tmp_path / "no-such-pg_dump"))
    tools = next(c for c in pre.checks if c.id == "client_tools")
    assert tools.status == "warn"
    assert "no-such-pg_dump" in tools.detail
    assert "the backup and restore steps need them" in tools.detail
    assert not pre.blocking


def test_the_journal_gets_what_the_checks_found_whichever_driver_asks(
        pg_db: PgSettings, tmp_path: Path) -> None:
    """The page, the demo and `enerlink-migrate preflight` all journal through core."""
    journal = Journal.create(pg_db, "wizard")
    pre = run_preflight(pg_db, tmp_path, journal=journal)
    recorded = journal.events("preflight")
    assert len(recorded) == 1
    assert [c["id"] for c in recorded[0]["checks"]] == [c.id for c in pre.checks]
    assert recorded[0]["state"] == "pre"
    with pg_db.connect(autocommit=True) as app:
        pid = app.info.backend_pid
        message = signal_session(pg_db, pid, terminate=True, journal=journal)
    assert [e["message"] for e in journal.events("session_signalled")] == [message]
    ran = app_command("stop", f"{sys.executable} -c pass", journal=journal)
    assert ran.ok, ran.detail
    assert [(e["what"], e["ok"]) for e in journal.events("app_command")] == [("stop", True)]
    assert pg_db.password
    assert pg_db.password not in journal.path.read_text()
