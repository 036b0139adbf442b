"""The harness gives real servers that behave like production: passwords, owners, isolation."""

from __future__ import annotations

import os
from pathlib import Path

import keyring
import keyring.backend
import psycopg
import pytest
import redis

from wizard.core.connection import PgSettings
from wizard.sandbox.servers import PostgresServer, RedisServer


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has stopped all the same.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_postgres_requires_the_password_over_tcp(pg_db: PgSettings) -> None:
    with pg_db.connect() as conn:
        row = conn.execute("SELECT current_user, rolsuper FROM pg_roles "
                           "WHERE rolname = current_user").fetchone()
    assert row == ("enerlink", False)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        pg_db.with_password("wrong").connect().close()


def test_each_test_gets_its_own_clone(pg_db: PgSettings, pg_server: PostgresServer) -> None:
    with pg_db.connect() as conn:
        conn.execute("DELETE FROM token_blacklist")
        conn.commit()
        (count,) = conn.execute("SELECT count(*) FROM prosumer").fetchone() or (0,)
    assert count == 40
    with pg_server.admin_connect("enerlink_template") as conn:
        row = conn.execute("SELECT count(*) FROM token_blacklist").fetchone()
    assert row == (10,), "a test's writes reached the template"


def test_redis_requires_the_password(redis_server: RedisServer,
                                     redis_client: redis.Redis) -> None:
    redis_client.set("k", "v")
    assert redis_client.get("k") == "v"
    anonymous = redis.Redis(host="127.0.0.1", port=redis_server.port, db=1)
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.get("k")
    anonymous.close()


def test_servers_stop_by_pid_and_leave_nothing() -> None:
    pg = PostgresServer.start()
    rs = RedisServer.start()
    pids, folders = [pg.pid, rs.pid], [pg.base, rs.base]
    assert all(pid and _alive(pid) for pid in pids)
    pg.stop()
    rs.stop()
    assert not any(pid and _alive(pid) for pid in pids)
    assert not any(folder.exists() for folder in folders)


def test_redis_password_is_not_on_its_command_line(redis_server: RedisServer) -> None:
    cmdline = Path(f"/proc/{redis_server.pid}/cmdline").read_bytes()
    assert redis_server.password.encode() not in cmdline


def test_memory_keyring_is_isolated(memory_keyring: keyring.backend.KeyringBackend) -> None:
    keyring.set_password("enerlink-migrate", "sandbox/postgres", "s3cret")
    assert keyring.get_keyring() is memory_keyring
    assert memory_keyring.get_password("enerlink-migrate", "sandbox/postgres") == "s3cret"


def test_settings_never_show_the_password(owner: PgSettings) -> None:
    assert owner.password
    assert owner.password not in repr(owner)
    assert owner.password not in owner.describe()
    assert "password" not in owner.conninfo_kwargs()
