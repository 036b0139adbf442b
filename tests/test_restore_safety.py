"""Restore never hurts: whose backup it is, free space on the server, the database's own
properties, and the sessions it would terminate. Real PostgreSQL, pg_dump and pg_restore."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from wizard.cli import main as cli_main
from wizard.core import restore, restore_db
from wizard.core.connection import PgSettings
from wizard.core.pgenv import conninfo_arg, libpq_env
from wizard.core.restore_db import database_properties
from wizard.sandbox.probes import databases, has_table, pg_dump_custom
from wizard.sandbox.servers import PostgresServer, _run_user

OTHER_ROLE = "restore_reader"

# --- helpers -----------------------------------------------------------------------------


def server_dir(prefix: str) -> Path:
    """A folder the server's OS user owns (as root the cluster runs as postgres/nobody)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    user = _run_user()
    if user is not None:
        os.chown(folder, user.pw_uid, user.pw_gid)
    return folder


@contextlib.contextmanager
def tiny_filesystem(size: int) -> Iterator[Path | None]:
    """A real tmpfs of `size` bytes owned by the server's user, or None where mount is not
    allowed (not root, or no CAP_SYS_ADMIN in this container)."""
    folder = server_dir("enerlink-tiny-")
    user = _run_user()
    owner = f",uid={user.pw_uid},gid={user.pw_gid}" if user else ""
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700{owner}", "tmpfs", str(folder)],
        capture_output=True, check=False).returncode == 0
    try:
        yield folder if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def admin(pg_server: PostgresServer, *statements: sql.Composed | str,
          dbname: str = "postgres") -> None:
    with pg_server.admin_connect(dbname) as conn:
        for statement in statements:
            conn.execute(statement)


def move_to_tablespace(pg_server: PostgresServer, live: PgSettings, name: str,
                       location: Path) -> None:
    admin(pg_server,
          sql.SQL("CREATE TABLESPACE {} LOCATION {}").format(sql.Identifier(name),
                                                             sql.Literal(str(location))),
          sql.SQL("ALTER DATABASE {} SET TABLESPACE {}").format(sql.Identifier(live.dbname),
                                                                sql.Identifier(name)))


def drop_tablespace(pg_server: PostgresServer, name: str) -> None:
    """Drop every database in it (the live one, what the restore kept), then it."""
    with pg_server.admin_connect() as conn:
        dbs = [r[0] for r in conn.execute(
            "SELECT d.datname FROM pg_database d JOIN pg_tablespace t ON t.oid = "
            "d.dattablespace WHERE t.spcname = %s", (name,)).fetchall()]
    for db in dbs:
        pg_server.drop_database(db)
    admin(pg_server, sql.SQL("DROP TABLESPACE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def other_db(pg_server: PostgresServer, live: PgSettings) -> PgSettings:
    """A second sample database (pg_db's teardown drops it: its name starts with live's)."""
    name = f"{live.dbname}_s4"
    admin(pg_server, sql.SQL("CREATE DATABASE {} TEMPLATE enerlink_template OWNER {}").format(
        sql.Identifier(name), sql.Identifier(live.user)))
    return live.with_dbname(name)


def dsn(settings: PgSettings, port: int | None = None) -> str:
    return (f"postgresql://{settings.user}@{settings.host}:{port or settings.port}/"
            f"{settings.dbname}?sslmode=disable")


def add_row(settings: PgSettings, prosumer_id: str) -> None:
    with settings.connect() as conn:
        conn.execute("INSERT INTO prosumer (prosumer_id, email, password_hash, created_at, "
                     "updated_at) VALUES (%s, %s, 'x', now(), now())",
                     (prosumer_id, f"{prosumer_id}@example.org"))


def has_row(settings: PgSettings, prosumer_id: str) -> bool:
    with settings.connect() as conn:
        return conn.execute("SELECT 1 FROM prosumer WHERE prosumer_id = %s",
                            (prosumer_id,)).fetchone() is not None


# --- 1. whose backup -----------------------------------------------------------------------


@pytest.mark.pg_matrix("restore")
def test_another_databases_backup_is_refused_unless_named_with_from_database(
        live: PgSettings, other_db: PgSettings, pg_server: PostgresServer, passfile: Path,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add_row(live, "only_in_s1")
    backup = pg_dump_custom(pg_server, live, tmp_path / "s1.dump")
    dbs = databases(pg_server)
    argv = ["restore", str(backup), "--dsn", dsn(other_db), "--confirm", other_db.dbname]
    code = cli_main(argv)
    out, err = capsys.readouterr()
    assert code == 3
    assert f"database: {live.dbname} (named in the archive's table of contents)" in out
    assert f"! this is a backup of {live.dbname}, not of {other_db.dbname}" in out
    assert (f"is a backup of database {live.dbname} (named in the archive's table of "
            f"contents), not of {other_db.dbname}") in err
    assert f"--from-database {live.dbname}" in err
    assert "Nothing was changed" in err
    assert databases(pg_server) == dbs
    # A wrong name is refused too; the core refuses without the CLI.
    assert cli_main([*argv, "--from-database", "someone_else"]) == 3
    assert "--from-database someone_else does not match the backup" in capsys.readouterr()[1]
    plan = restore.prepare(other_db, backup)
    with pytest.raises(restore.RestoreRefused, match=r"is a backup of database"):
        restore.run(plan, confirm=other_db.dbname)
    assert databases(pg_server) == dbs
    assert not has_row(other_db, "only_in_s1")
    # Named: restored, on purpose.
    code = cli_main([*argv, "--from-database", live.dbname])
    out, _err = capsys.readouterr()
    assert code == 0, out
    assert has_row(other_db, "only_in_s1")


def test_a_plain_dump_says_it_does_not_record_its_database(
        live: PgSettings, pg_server: PostgresServer, tmp_path: Path) -> None:
    plain = tmp_path / "live.sql"
    with libpq_env(live) as env:
        subprocess.run([str(pg_server.client_tool("pg_dump")), "--no-password", "-f",
                        str(plain), f"--dbname={conninfo_arg(live)}"], env=env, check=True,
                       capture_output=True)
    superuser = pg_server.settings(live.dbname)  # before 15 public belongs to postgres
    plan = restore.prepare(superuser, plain)
    assert plan.source_db is None
    assert not plan.foreign
    summary = "\n".join(plan.inspection.summary())
    assert "database: ? (not recorded: a plain SQL dump does not name the database" in summary
    assert any(f"make sure it is a backup of {live.dbname}" in w for w in plan.warnings)


# --- 2. never hurt the cluster: free space ----------------------------------------------


def _size(settings: PgSettings) -> int:
    with settings.connect() as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        assert row is not None
        return int(row[0])


@pytest.mark.pg_matrix("restore")
def test_a_restore_that_does_not_fit_is_refused_before_it_starts(
        live: PgSettings, pg_server: PostgresServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    size = _size(live)
    backup = pg_dump_custom(pg_server, live, tmp_path / "live.dump")
    # The live database fits on its tablespace's filesystem; a second copy does not.
    with tiny_filesystem(size * 3 // 2) as tiny:
        location = tiny or server_dir("enerlink-ts-")
        if tiny is None:
            # Stand-in, for the free-space reading only (mount is not allowed here): the
            # same statvfs code path, told the filesystem has half the database free.
            real = restore_db.free_bytes
            monkeypatch.setattr(restore_db, "free_bytes", lambda p: (
                (size // 2, "tiny") if p == str(location) else real(p)))
        move_to_tablespace(pg_server, live, "ts_tiny", location)
        admin(pg_server, sql.SQL("GRANT CREATE ON TABLESPACE ts_tiny TO {}").format(
            sql.Identifier(live.user)))
        try:
            dbs = databases(pg_server)
            with pytest.raises(restore.RestoreRefused) as info:
                restore.prepare(live, backup)
            text = str(info.value)
            assert text.startswith(f"not enough free space on the server for the restored "
                                   f"copy of {live.dbname}: tablespace ts_tiny ({location}) "
                                   "needs ")
            assert "(statvfs here, on the server's host)" in text
            assert " MiB but has " in text
            assert "Nothing was changed" in text
            assert databases(pg_server) == dbs
        finally:
            drop_tablespace(pg_server, "ts_tiny")
            shutil.rmtree(location, ignore_errors=True)


def test_a_disk_that_fills_during_the_restore_drops_the_copy_and_says_what_to_do(
        live: PgSettings, pg_server: PostgresServer, tmp_path: Path) -> None:
    size = _size(live)
    backup = pg_dump_custom(pg_server, live, tmp_path / "live.dump")
    with tiny_filesystem(size * 3) as tiny:
        if tiny is None:
            pytest.skip("mount is not allowed here: a full disk cannot be made for real")
        move_to_tablespace(pg_server, live, "ts_fill", tiny)
        admin(pg_server, sql.SQL("GRANT CREATE ON TABLESPACE ts_fill TO {}").format(
            sql.Identifier(live.user)))
        filler = tiny / "filler"
        try:
            plan = restore.prepare(live, backup, restore.RestoreOptions(jobs=1))
            assert plan.space is not None
            assert not plan.space.short  # it fits when it starts

            def fill(level: str, message: str) -> None:
                # Someone else's files fill the disk once the new database is created, right
                # before pg_restore starts (its progress lines can come after it is done).
                if level == "step" and message.startswith("restoring "):
                    fill_up(filler)
            dbs = databases(pg_server)
            result = restore.run(plan, confirm=live.dbname, report=fill)
            assert not result.ok
            assert result.dropped
            assert str(result.error).startswith("the server ran out of disk space during "
                                                "the restore (")
            error = str(result.error)
            assert f"Free space on tablespace ts_fill ({tiny}) or data directory " in error
            assert ", whichever is full (the copy needs about " in error
            assert databases(pg_server) == dbs
            assert has_table(live, "prosumer")  # live untouched
        finally:
            filler.unlink(missing_ok=True)
            drop_tablespace(pg_server, "ts_fill")


def fill_up(path: Path) -> None:
    """Write to `path` until the filesystem has not one block left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for chunk in (1 << 20, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * chunk):
                    pass
    finally:
        os.close(fd)


class Tunnel:
    """A TCP forwarder to the server, as an SSH tunnel on a jump host is: the server is
    not on this host as far as the tool can tell."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.sockets: list[socket.socket] = []
        self.threads = [threading.Thread(target=self._accept, name="tunnel-accept")]
        self.threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pump, args=(a, b), name="tunnel-pump")
                self.threads.append(thread)
                thread.start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        for thread in self.threads:
            thread.join(timeout=5)
        for s in self.sockets:
            s.close()


@pytest.fixture
def tunnel(pg_server: PostgresServer) -> Iterator[Tunnel]:
    forwarder = Tunnel(pg_server.port)
    try:
        yield forwarder
    finally:
        forwarder.close()


def test_free_space_that_cannot_be_read_needs_the_flag_and_a_superuser_asks_the_server(
        live: PgSettings, pg_server: PostgresServer, tunnel: Tunnel, passfile: Path,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    backup = pg_dump_custom(pg_server, live, tmp_path / "live.dump")
    remote = PgSettings(host="127.0.0.1", port=tunnel.port, dbname=live.dbname,
                        user=live.user, password=live.password, sslmode="disable")
    plan = restore.prepare(remote, backup)
    assert plan.space is not None
    assert [p.source for p in plan.space.unknown] == [
        "the data directory is hidden from this role (a superuser or a member of "
        "pg_read_all_settings sees it)"]
    assert [u.kind for u in plan.unconfirmed()] == [restore.SPACE]
    dbs = databases(pg_server)
    argv = ["restore", str(backup), "--dsn", dsn(live, tunnel.port), "--confirm", live.dbname]
    assert cli_main(argv) == 3
    err = capsys.readouterr()[1]
    assert "the free space on the server cannot be read" in err
    assert "--accept-unknown-free-space" in err
    assert databases(pg_server) == dbs
    # A superuser through the same tunnel: the server's own df, via COPY FROM PROGRAM.
    superuser = PgSettings(host="127.0.0.1", port=tunnel.port, dbname=live.dbname,
                           user="postgres", password=pg_server.password, sslmode="disable")
    plan = restore.prepare(superuser, backup)
    assert plan.space is not None
    assert not plan.space.unknown
    assert {p.source for p in plan.space.places} == {"df on the server"}
    # The owner role again, having checked df by hand: agreed with the flag.
    assert cli_main([*argv, "--accept-unknown-free-space"]) == 0


# --- 3. the database's own properties ---------------------------------------------------


@pytest.fixture
def own_tablespace(pg_server: PostgresServer, live: PgSettings) -> Iterator[str]:
    """The live database moved into a tablespace of its own, in a temporary folder."""
    location = server_dir("enerlink-ts-")
    move_to_tablespace(pg_server, live, "ts_own", location)
    try:
        yield "ts_own"
    finally:
        drop_tablespace(pg_server, "ts_own")
        shutil.rmtree(location, ignore_errors=True)


@pytest.mark.pg_matrix("restore")
def test_the_restored_copy_keeps_the_databases_own_properties(
        live: PgSettings, pg_server: PostgresServer, own_tablespace: str,
        tmp_path: Path) -> None:
    db = sql.Identifier(live.dbname)
    admin(pg_server,
          f"DO $$BEGIN CREATE ROLE {OTHER_ROLE} NOLOGIN; EXCEPTION WHEN duplicate_object "
          "THEN NULL; END$$",
          sql.SQL("COMMENT ON DATABASE {} IS 'EnerLink Produktion: nicht löschen'").format(db),
          sql.SQL("ALTER DATABASE {} CONNECTION LIMIT 42").format(db),
          sql.SQL("ALTER DATABASE {} SET work_mem = '8MB'").format(db),
          sql.SQL("ALTER DATABASE {} SET search_path = \"$user\", public, \"Odd, one\""
                  ).format(db),
          sql.SQL("ALTER ROLE {} IN DATABASE {} SET statement_timeout = '5min'").format(
              sql.Identifier(live.user), db),
          sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db),
          sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
              db, sql.Identifier(OTHER_ROLE)))
    backup = pg_dump_custom(pg_server, live, tmp_path / "live.dump")
    with pg_server.admin_connect() as conn:
        before = database_properties(conn, live.dbname)
    assert before is not None
    assert before.tablespace == own_tablespace
    # The role may not create a database in that tablespace: refused first, naming the GRANT.
    dbs = databases(pg_server)
    with pytest.raises(restore.RestoreRefused,
                       match=rf'GRANT CREATE ON TABLESPACE "ts_own" TO "{live.user}"'):
        restore.prepare(live, backup)
    assert databases(pg_server) == dbs
    admin(pg_server, sql.SQL("GRANT CREATE ON TABLESPACE ts_own TO {}").format(
        sql.Identifier(live.user)))
    plan = restore.prepare(live, backup)
    text = "\n".join(plan.server_lines())
    assert "tablespace ts_own" in text
    assert "'EnerLink Produktion: nicht löschen'" in text
    result = restore.run(plan, confirm=live.dbname)
    assert result.ok, result.error
    assert {c["id"]: c["ok"] for c in result.checks}["database_properties"]
    with pg_server.admin_connect() as conn:
        after = database_properties(conn, live.dbname)
        kept = database_properties(conn, plan.before_db)
    assert after == before
    assert kept == before
    with live.connect() as conn:  # as the application sees it
        row = conn.execute("SELECT current_setting('work_mem'), current_setting('search_path'),"
                           " current_setting('statement_timeout')").fetchone()
    assert row == ("8MB", '"$user", public, "Odd, one"', "5min")


def test_a_property_that_differs_after_the_restore_fails_the_swap(
        live: PgSettings, pg_server: PostgresServer, tmp_path: Path) -> None:
    backup = pg_dump_custom(pg_server, live, tmp_path / "live.dump")
    plan = restore.prepare(live, backup)
    changed: list[bool] = []

    def change_live(_fraction: float, _detail: str) -> None:  # a DBA meanwhile
        if not changed:
            changed.append(True)
            admin(pg_server, sql.SQL("COMMENT ON DATABASE {} IS 'changed meanwhile'").format(
                sql.Identifier(live.dbname)))
    result = restore.run(plan, confirm=live.dbname, progress=change_live)
    assert not result.ok
    assert result.dropped
    assert (f"the restored copy's database properties differ from {live.dbname}'s: comment: "
            "'changed meanwhile' live, None restored") in str(result.error)
    assert plan.restore_db not in databases(pg_server)
    with pg_server.admin_connect() as conn:
        props = database_properties(conn, live.dbname)
    assert props is not None
    assert props.comment == "changed meanwhile"  # live untouched


# --- 4. sessions --------------------------------------------------------------------------


def _pid(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.pg_matrix("restore")
def test_a_session_that_cannot_be_terminated_is_found_before_the_restore(
        live: PgSettings, pg_server: PostgresServer, tmp_path: Path) -> None:
    backup = pg_dump_custom(pg_server, live, tmp_path / "live.dump")
    with pg_server.admin_connect(live.dbname) as superuser_session:  # psql of a colleague
        pid = _pid(superuser_session)
        dbs = databases(pg_server)
        t0 = time.perf_counter()
        with pytest.raises(restore.RestoreRefused) as info:
            restore.prepare(live, backup)
        assert time.perf_counter() - t0 < 5
        text = str(info.value)
        assert text.startswith(f"session pid {pid}: postgres, ")
        assert (f"on {live.dbname} cannot be terminated by {live.user}: it is a superuser's "
                f"session and {live.user} is not a superuser") in text
        assert f"SELECT pg_terminate_backend({pid})" in text
        assert "Nothing was changed" in text
        assert databases(pg_server) == dbs
        superuser_session.execute("SELECT 1")  # still connected


def test_a_session_that_cannot_be_terminated_connecting_during_the_restore_stops_the_swap_at_once(
        live: PgSettings, pg_server: PostgresServer, tmp_path: Path) -> None:
    backup = pg_dump_custom(pg_server, live, tmp_path / "live.dump")
    plan = restore.prepare(live, backup, restore.RestoreOptions(terminate_sessions=True))
    late: list[psycopg.Connection[Any]] = []

    def connect_late(_fraction: float, _detail: str) -> None:
        if not late:
            late.append(pg_server.admin_connect(live.dbname))
    try:
        result = restore.run(plan, confirm=live.dbname, progress=connect_late)
        assert not result.ok
        assert result.dropped
        assert result.swap_attempts == 1
        assert result.timings["total_s"] < 10  # not five waits of five seconds each
        pid = _pid(late[0])
        assert f"could not swap: session pid {pid}: postgres" in str(result.error)
        assert "it is a superuser's session" in str(result.error)
        assert plan.restore_db not in databases(pg_server)
        late[0].execute("SELECT 1")
    finally:
        for conn in late:
            conn.close()


def test_the_cli_lists_the_sessions_and_needs_terminate_sessions(
        live: PgSettings, pg_server: PostgresServer, passfile: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    backup = pg_dump_custom(pg_server, live, tmp_path / "live.dump")
    app = psycopg.connect(host=live.host, port=live.port, user=live.user,
                          password=live.password, dbname=live.dbname, sslmode="disable",
                          application_name="enerlink-api", autocommit=True)
    try:
        pid = _pid(app)
        dbs = databases(pg_server)
        argv = ["restore", str(backup), "--dsn", dsn(live), "--confirm", live.dbname]
        assert cli_main(argv) == 3
        out, err = capsys.readouterr()
        assert f"sessions on {live.dbname} now (1), terminated at the swap:" in out
        assert f"pid {pid}: {live.user}, enerlink-api, 127.0.0.1, idle, connected since " in out
        assert "would be terminated at the swap" in err
        assert "--terminate-sessions" in err
        assert databases(pg_server) == dbs
        app.execute("SELECT 1")  # not terminated
        code = cli_main([*argv, "--terminate-sessions", "--json"])
        out, _err = capsys.readouterr()
        assert code == 0, out
        assert [t["pid"] for t in json.loads(out)["result"]["terminated"]] == [pid]
        with pytest.raises(psycopg.OperationalError):
            app.execute("SELECT 1")
    finally:
        app.close()
