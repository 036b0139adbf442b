"""Backup: finding pg_dump, the password kept out of argv and environ, the verified dump."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from wizard.core import backup, pgtools
from wizard.core.archive import ArchiveError, archive_sha256, check_complete, read_archive
from wizard.core.backup import BackupOptions, BackupRefused
from wizard.core.connection import PgSettings
from wizard.core.journal import Journal
from wizard.core.pgenv import conninfo_arg, libpq_env, pgpass_line
from wizard.core.pgtools import ToolNotFound, find_tool, server_major
from wizard.core.reporting import Cancelled
from wizard.sandbox.probes import run_cli
from wizard.sandbox.servers import PostgresServer

# --- finding the tools -------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def _fake_tool(folder: Path, name: str, version: str | None) -> Path:
    """A stand-in for a pg_dump of another version: a script that only answers --version."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    body = f'echo "{name} (PostgreSQL) {version}"' if version else "exit 1"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def fake_installs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Search only tmp folders: an empty PATH and stand-in install folders."""
    root = tmp_path / "installs"
    root.mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    monkeypatch.setattr(pgtools, "install_dirs",
                        lambda: sorted(str(p) for p in root.glob("*/bin")))
    return root


def test_finder_prefers_the_same_major(fake_installs: Path) -> None:
    for v in ("14.9", "15.18", "17.2"):
        _fake_tool(fake_installs / v / "bin", "pg_dump", v)
    tool = find_tool("pg_dump", 15)
    assert (tool.major, tool.version) == (15, "15.18")
    assert tool.path == fake_installs / "15.18" / "bin" / "pg_dump"


def test_finder_takes_the_lowest_newer_major(fake_installs: Path) -> None:
    for v in ("15.18", "18.0", "17.2"):
        _fake_tool(fake_installs / v / "bin", "pg_dump", v)
    assert find_tool("pg_dump", 16).version == "17.2"


def test_finder_explains_when_nothing_fits(fake_installs: Path) -> None:
    _fake_tool(fake_installs / "15" / "bin", "pg_dump", "15.18")
    _fake_tool(fake_installs / "16" / "bin", "pg_dump", None)
    with pytest.raises(ToolNotFound) as info:
        find_tool("pg_dump", 17)
    text = str(info.value)
    assert "pg_dump 17 or newer is needed for server 17" in text
    assert f"{fake_installs}/15/bin/pg_dump (15.18)" in text
    assert f"{fake_installs}/16/bin/pg_dump (does not run" in text
    assert "postgresql-client-17" in text
    assert "--pg-dump PATH" in text


def test_finder_reports_none_found(fake_installs: Path) -> None:
    with pytest.raises(ToolNotFound, match=r"found: none"):
        find_tool("pg_restore", 15)


def test_finder_uses_the_override_and_only_it(fake_installs: Path, tmp_path: Path) -> None:
    _fake_tool(fake_installs / "17" / "bin", "pg_dump", "17.2")
    custom = _fake_tool(tmp_path / "custom", "pg_dump", "16.4")
    assert find_tool("pg_dump", 16, override=custom).path == custom
    assert find_tool("pg_dump", 16, override=custom.parent).path == custom
    with pytest.raises(ToolNotFound, match=r"configured path .*custom/pg_dump.*16\.4"):
        find_tool("pg_dump", 17, override=custom)


def test_finder_reads_old_two_part_versions(fake_installs: Path) -> None:
    _fake_tool(fake_installs / "9.6" / "bin", "pg_dump", "9.6.24")
    tool = find_tool("pg_dump", 9)
    assert (tool.major, tool.version) == (9, "9.6.24")


@pytest.mark.pg_matrix("tools")
def test_finder_finds_the_real_pg_dump_for_the_test_server(pg_db: PgSettings) -> None:
    with pg_db.connect() as conn:
        major = server_major(conn)
    tool = find_tool("pg_dump", major)
    fitting = [t for t in map(pgtools.probe, pgtools.candidates("pg_dump"))
               if t is not None and t.major >= major]
    assert tool.major == min(t.major for t in fitting), "the same major, else the lowest newer"
    out = subprocess.run([str(tool.path), "--version"], capture_output=True, text=True,
                         check=True).stdout
    assert tool.version in out


def _real_client_bindirs() -> dict[int, Path]:
    """Real pg_dump folders on this machine by major: Debian's and the matrix's cache."""
    found: dict[int, Path] = {}
    folders = [Path(p) for p in pgtools.install_dirs()]
    cache = Path(os.environ.get("ENERLINK_PG_CACHE") or ROOT / ".cache" / "pg")
    folders += sorted(cache.glob("client-*/*/pginstall/bin"))
    for folder in folders:
        tool = pgtools.probe(folder / "pg_dump")
        if tool is not None:
            found.setdefault(tool.major, folder)
    return found


@pytest.mark.pg_matrix("tools")
def test_finder_picks_among_real_client_majors(fake_installs: Path) -> None:
    real = _real_client_bindirs()
    if len(real) < 2:
        pytest.skip("needs pg_dump of two majors (make test-pg fetches them)")
    for major, folder in real.items():
        (fake_installs / f"pg{major}").mkdir()
        (fake_installs / f"pg{major}" / "bin").symlink_to(folder)
    majors = sorted(real)
    for server in range(12, max(majors) + 1):
        expected = min(m for m in majors if m >= server)
        tool = find_tool("pg_dump", server)
        assert tool.major == expected, f"server {server}: took {tool.version}"
        assert tool.path.resolve() == (real[tool.major] / "pg_dump").resolve()
    with pytest.raises(ToolNotFound, match=rf"pg_dump {max(majors) + 1} or newer"):
        find_tool("pg_dump", max(majors) + 1)


# --- the password: a temporary pgpass file, never argv or environ -------------------------


def test_pgpass_line_escapes_colon_and_backslash() -> None:
    settings = PgSettings(host="db.example", port=5433, user="ad:min")
    assert pgpass_line(settings, r"p:a\ss") == "db.example:5433:*:ad\\:min:p\\:a\\\\ss\n"
    assert pgpass_line(PgSettings(host="/run/postgresql"), "x").startswith("localhost:")
    with pytest.raises(ValueError, match="line break"):
        pgpass_line(settings, "a\nb")


def test_libpq_env_writes_a_private_pgpass_and_removes_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "from-env")
    monkeypatch.setenv("REDIS_PASSWORD", "redis-secret")
    monkeypatch.setenv("REDISCLI_AUTH", "redis-cli-secret")
    monkeypatch.setenv("SSH_AUTH_SOCK", "/run/user/1000/agent.sock")
    monkeypatch.setenv("ENERLINK_API_TOKEN", "tok")
    monkeypatch.setenv("LANG", "C.UTF-8")
    settings = PgSettings(host="db", port=5432, user="enerlink", password="s3:cret")
    with libpq_env(settings) as env:
        passfile = Path(env["PGPASSFILE"])
        assert "PGPASSWORD" not in env
        assert "REDIS_PASSWORD" not in env
        assert "REDISCLI_AUTH" not in env
        assert env["SSH_AUTH_SOCK"] == "/run/user/1000/agent.sock"  # a socket path, not a secret
        assert "ENERLINK_API_TOKEN" not in env
        assert env["LANG"] == "C.UTF-8"
        assert not any("s3" in v for v in env.values())
        assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
        assert stat.S_IMODE(passfile.parent.stat().st_mode) == 0o700
        assert passfile.read_text() == "db:5432:*:enerlink:s3\\:cret\n"
    assert not passfile.exists()
    assert not passfile.parent.exists()


def test_libpq_env_removes_the_pgpass_on_error() -> None:
    seen: list[Path] = []

    def fail_inside() -> None:
        with libpq_env(PgSettings(password="pw")) as env:
            seen.append(Path(env["PGPASSFILE"]))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_inside()
    assert seen
    assert not seen[0].parent.exists()


def test_libpq_env_without_password_keeps_the_users_pgpass(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "mine"))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    with libpq_env(PgSettings()) as env:
        assert env["PGPASSFILE"] == str(tmp_path / "mine")


def test_libpq_env_moves_our_pgpassword_into_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """A DBA who exported PGPASSWORD still gets a working child, without it in environ."""
    monkeypatch.setenv("PGPASSWORD", "exported")
    with libpq_env(PgSettings()) as env:
        assert "PGPASSWORD" not in env
        assert Path(env["PGPASSFILE"]).read_text().endswith(":exported\n")


def test_conninfo_arg_never_holds_the_password() -> None:
    settings = PgSettings(host="db", port=5433, dbname="energy db 'ö'", user="enerlink",
                          password="secret", sslmode="verify-full", sslrootcert="/ca.pem")
    text = conninfo_arg(settings)
    assert "secret" not in text
    params = conninfo_to_dict(text)
    assert params == {"host": "db", "port": "5433", "dbname": "energy db 'ö'",
                      "user": "enerlink", "sslmode": "verify-full", "sslrootcert": "/ca.pem",
                      "connect_timeout": "10", "application_name": "enerlink-migrate"}
    assert conninfo_to_dict(conninfo_arg(settings, "other"))["dbname"] == "other"


def test_psql_connects_through_the_temporary_pgpass(pg_db: PgSettings,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    with pg_db.connect() as conn:
        psql = find_tool("psql", server_major(conn))
    with libpq_env(pg_db) as env:
        out = subprocess.run([str(psql.path), "--no-password", "-At", "-c",
                              "SELECT current_user", f"--dbname={conninfo_arg(pg_db)}"],
                             env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == pg_db.user
    assert os.environ.get("PGPASSFILE") != env["PGPASSFILE"]


# --- the backup job against the test server ----------------------------------------------


def _children_named(name: str) -> list[int]:
    """PIDs of this process's children called `name`, read from /proc."""
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat_file.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        if comm == name and ppid == os.getpid():
            found.append(int(stat_file.parent.name))
    return found


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.fractions: list[float] = []

    def report(self, level: str, message: str) -> None:
        self.lines.append((level, message))

    def progress(self, fraction: float, _detail: str) -> None:
        self.fractions.append(fraction)

    def text(self) -> str:
        return "\n".join(m for _, m in self.lines)


class Locker:
    """Another session holds an ACCESS EXCLUSIVE lock, so pg_dump waits (and stays alive)
    until the test lets go."""

    def __init__(self, pg_server: PostgresServer, dbname: str) -> None:
        self.conn = pg_server.admin_connect(dbname)  # autocommit: explicit BEGIN/ROLLBACK
        self.held = False

    def lock(self, table: str) -> None:
        self.conn.execute("BEGIN")
        self.conn.execute(f"LOCK TABLE public.{table} IN ACCESS EXCLUSIVE MODE")
        self.held = True

    def release(self) -> None:
        if self.held:
            self.conn.execute("ROLLBACK")
            self.held = False


@contextmanager
def table_locked(pg_server: PostgresServer, dbname: str,
                 table: str = "wallet") -> Iterator[Locker]:
    locker = Locker(pg_server, dbname)
    try:
        locker.lock(table)
        yield locker
    finally:
        locker.release()
        locker.conn.close()


@pytest.mark.pg_matrix("backup")
def test_backup_is_private_verified_and_journaled(pg_db: PgSettings, tmp_path: Path,
        pg_restore_bin: Path) -> None:
    out = tmp_path / "backups" / "new"
    journal = Journal.create(pg_db, "backup")
    log = Log()
    plan = backup.prepare(pg_db, BackupOptions(out_dir=out))
    assert re.fullmatch(rf"enerlink_{pg_db.dbname}_\d{{8}}T\d{{6}}Z_pre-user-rename\.dump",
                        plan.path.name)
    result = backup.run(plan, report=log.report, progress=log.progress, journal=journal)
    assert result.verified, result.error
    path = Path(result.path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert result.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert result.size_bytes == path.stat().st_size
    listing = subprocess.run([str(pg_restore_bin), "--list", str(path)], capture_output=True,
                             text=True, check=True).stdout
    assert "TABLE DATA public prosumer" in listing
    assert result.toc_entries == sum(1 for ln in listing.splitlines()
                                     if ln.strip() and not ln.startswith(";"))
    assert result.compression == backup.auto_compression(plan.pg_dump)  # the default, auto
    assert "--lock-wait-timeout=30000" in plan.argv
    assert "--no-password" in plan.argv
    # Every pg_dump line went to the log; progress only moved forward and ended at 1.
    assert 'pg_dump: dumping contents of table "public.prosumer"' in log.text()
    assert log.fractions == sorted(log.fractions)
    assert log.fractions[-1] == 1.0
    event = journal.events("backup")[-1]
    assert event["verified"] is True
    assert event["sha256"] == result.sha256
    assert event["toc_entries"] == result.toc_entries
    assert event["path"] == str(path)
    assert event["tool"]["version"]
    assert event["server_version"]
    assert event["dbname"] == pg_db.dbname
    assert event["size_bytes"] == path.stat().st_size
    latest = backup.latest_verified_backup(pg_db, [journal])
    assert latest is not None
    assert latest["sha256"] == result.sha256
    assert backup.latest_verified_backup(pg_db.with_dbname("other"), [journal]) is None
    # The password is nowhere in what we wrote down.
    assert pg_db.password
    assert pg_db.password not in journal.path.read_text()
    assert pg_db.password not in log.text()


def test_a_database_name_with_spaces_and_umlauts(pg_server: PostgresServer,
                                                 owner: PgSettings, template_db: Any,
                                                 tmp_path: Path) -> None:
    name = "Energie Prüf db"
    with pg_server.admin_connect() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE enerlink_template OWNER {}").format(
            sql.Identifier(name), sql.Identifier(owner.user)))
    try:
        result = backup.backup(owner.with_dbname(name), BackupOptions(out_dir=tmp_path))
        assert result.verified, result.error
        assert Path(result.path).name.startswith("enerlink_Energie_Prüf_db_")
        assert result.archive["dbname"] == name
    finally:
        pg_server.drop_database(name)


@pytest.mark.pg_matrix("backup")
def test_directory_format_with_two_jobs(pg_db: PgSettings, tmp_path: Path,
        pg_restore_bin: Path) -> None:
    journal = Journal.create(pg_db, "backup")
    result = backup.backup(pg_db, BackupOptions(out_dir=tmp_path / "out", format="directory",
                                                jobs=2), journal=journal)
    assert result.verified, result.error
    folder = Path(result.path)
    assert folder.name.endswith("_pre-user-rename.dir")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = list(folder.iterdir())
    assert any(f.name == "toc.dat" for f in files)
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert result.sha256 == archive_sha256(folder)
    assert journal.events("backup")[-1]["jobs"] == 2
    restore_list = subprocess.run([str(pg_restore_bin), "--list", str(folder)], capture_output=True,
                                  text=True, check=True).stdout
    assert "TABLE DATA public wallet" in restore_list


def test_no_secret_in_the_running_pg_dumps_cmdline_or_environ(
        pg_server: PostgresServer, pg_db: PgSettings, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """pg_dump is kept waiting on a table lock while /proc is read, then let go."""
    monkeypatch.setenv("PGPASSWORD", "an-exported-secret")
    monkeypatch.setenv("REDIS_PASSWORD", "another-secret")
    password = pg_db.password or ""
    seen: dict[str, Any] = {}
    with table_locked(pg_server, pg_db.dbname) as holder:

        def report(_level: str, message: str) -> None:
            if seen or "reading user-defined tables" not in message:
                return
            (pid,) = _children_named("pg_dump")
            seen["cmdline"] = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            seen["environ"] = environ
            env = dict(item.split(b"=", 1) for item in environ.split(b"\0") if b"=" in item)
            passfile = Path(env[b"PGPASSFILE"].decode())
            seen["passfile"] = passfile
            seen["mode"] = stat.S_IMODE(passfile.stat().st_mode)
            seen["dir_mode"] = stat.S_IMODE(passfile.parent.stat().st_mode)
            seen["passfile_text"] = passfile.read_text()
            holder.release()  # let pg_dump take its lock and finish

        result = backup.backup(pg_db, BackupOptions(out_dir=tmp_path / "out",
                                                    lock_wait_timeout_s=120), report=report)
    assert result.verified, result.error
    assert seen, "pg_dump was never seen running"
    for secret in (password, "an-exported-secret", "another-secret"):
        assert secret.encode() not in seen["cmdline"]
        assert secret.encode() not in seen["environ"]
    assert b"PGPASSWORD=" not in seen["environ"]
    assert b"--no-password" in seen["cmdline"]
    assert seen["mode"] == 0o600
    assert seen["dir_mode"] == 0o700
    assert seen["passfile_text"].rstrip("\n").endswith(":" + password.replace(":", "\\:"))
    assert not seen["passfile"].exists()
    assert not seen["passfile"].parent.exists()


def test_wrong_password_is_explained_and_leaves_nothing(
        pg_db: PgSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    wrong = pg_db.with_password("not-the-password")
    with pytest.raises(BackupRefused, match="password authentication failed"):
        backup.prepare(wrong, BackupOptions(out_dir=tmp_path / "out"))
    # The password changed between prepare and run: pg_dump itself is refused.
    plan = backup.prepare(pg_db, BackupOptions(out_dir=tmp_path / "out"))
    journal = Journal.create(pg_db, "backup")
    log = Log()
    result = backup.run(replace(plan, settings=wrong), report=log.report, journal=journal)
    assert not result.verified
    assert result.error is not None
    assert "password authentication failed" in result.error
    assert f"wrong password for role {pg_db.user}" in result.error
    assert "removed" in result.error
    assert not plan.path.exists()
    # The temporary pgpass folder is gone (our 0700 folder for them stays, empty).
    assert [p.name for p in private_tmp.iterdir()] == [f"enerlink-migrate-{os.getuid()}"]
    assert not list(private_tmp.glob("*/*"))
    assert ("error", result.error) in log.lines
    assert journal.events("backup")[-1]["verified"] is False
    assert "not-the-password" not in journal.path.read_text()


def test_cancel_mid_backup_leaves_no_partial_file(pg_server: PostgresServer, pg_db: PgSettings,
                                                  tmp_path: Path) -> None:
    cancel = threading.Event()
    journal = Journal.create(pg_db, "backup")
    plan = backup.prepare(pg_db, BackupOptions(out_dir=tmp_path / "out",
                                               lock_wait_timeout_s=120))
    existed: list[bool] = []

    def report(_level: str, message: str) -> None:
        if "reading user-defined tables" in message and not cancel.is_set():
            existed.append(plan.path.exists())
            cancel.set()

    with table_locked(pg_server, pg_db.dbname), \
            pytest.raises(Cancelled, match=r"partial .* was removed"):
        backup.run(plan, report=report, cancel=cancel, journal=journal)
    assert existed == [True]  # the file was there while pg_dump ran
    assert not plan.path.exists()
    assert list(plan.path.parent.iterdir()) == []
    assert _children_named("pg_dump") == []
    assert journal.events("backup_cancelled")[-1]["removed"] is True
    assert journal.events("backup") == []


def test_cancel_of_a_directory_backup_removes_the_folder(
        pg_server: PostgresServer, pg_db: PgSettings, tmp_path: Path) -> None:
    cancel = threading.Event()
    plan = backup.prepare(pg_db, BackupOptions(out_dir=tmp_path / "out", format="directory",
                                               jobs=2, lock_wait_timeout_s=120))

    def report(_level: str, message: str) -> None:
        if "reading user-defined tables" in message:
            cancel.set()

    with table_locked(pg_server, pg_db.dbname), pytest.raises(Cancelled):
        backup.run(plan, report=report, cancel=cancel)
    assert not plan.path.exists()


def test_lock_wait_timeout_is_explained(pg_server: PostgresServer, pg_db: PgSettings,
                                        tmp_path: Path) -> None:
    plan = backup.prepare(pg_db, BackupOptions(out_dir=tmp_path / "out",
                                               lock_wait_timeout_s=0.5))
    with table_locked(pg_server, pg_db.dbname):
        result = backup.run(plan)
    assert not result.verified
    assert result.error is not None
    assert "another session holds a lock" in result.error
    assert not plan.path.exists()


def test_a_truncated_backup_fails_verification(pg_db: PgSettings, tmp_path: Path,
        pg_restore_bin: Path) -> None:
    journal = Journal.create(pg_db, "backup")
    plan = backup.prepare(pg_db, BackupOptions(out_dir=tmp_path / "out"))
    good = backup.run(plan, journal=journal)
    assert good.verified
    path = Path(good.path)
    data = path.read_bytes()
    info = read_archive(path)
    for cut in (len(data) - 1, len(data) // 2, info.toc_end + 3, info.toc_end - 10):
        path.write_bytes(data[:cut])
        if cut >= info.toc_end:
            # The TOC sits at the start: pg_restore --list alone still reads the file.
            listed = subprocess.run([str(pg_restore_bin), "--list", str(path)],
                                    capture_output=True, check=False)
            assert listed.returncode == 0
        fresh = backup._result(plan)
        with pytest.raises(ArchiveError, match=r"truncated|ends early"):
            backup.verify(plan, fresh)
    assert backup.latest_verified_backup(pg_db, [journal]) is None  # sha256 differs
    path.write_bytes(data)
    assert backup.latest_verified_backup(pg_db, [journal]) is not None
    path.write_bytes(b"not a dump at all")
    with pytest.raises(ArchiveError, match="not a pg_dump"):
        backup.verify(plan, backup._result(plan))


def test_a_directory_backup_missing_a_data_file_fails_verification(
        pg_db: PgSettings, tmp_path: Path) -> None:
    result = backup.backup(pg_db, BackupOptions(out_dir=tmp_path / "out", format="directory"))
    assert result.verified
    folder = Path(result.path)
    next(p for p in folder.iterdir() if p.name != "toc.dat").unlink()
    with pytest.raises(ArchiveError, match="data files missing"):
        check_complete(read_archive(folder))


def test_not_enough_free_space_is_refused_with_both_numbers(
        pg_db: PgSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """disk_usage is a stand-in here: a real full disk cannot be made in a test."""
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda _p: shutil._ntuple_diskusage(10**12, 10**12 - 4096, 4096))
    with pg_db.connect() as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    size = int(row[0]) if row else 0
    out = tmp_path / "out"
    with pytest.raises(BackupRefused) as info:
        backup.prepare(pg_db, BackupOptions(out_dir=out))
    text = str(info.value)
    assert "not enough free space" in text
    assert "(4096 bytes) free" in text
    assert f"({size} bytes, pg_database_size)" in text
    assert not out.exists()


def test_options_are_checked_before_anything_runs(pg_db: PgSettings, tmp_path: Path,
                                                  fake_installs: Path) -> None:
    with pytest.raises(BackupRefused, match="needs --format directory"):
        backup.prepare(pg_db, BackupOptions(out_dir=tmp_path, jobs=2))
    with pytest.raises(BackupRefused, match="unknown format"):
        backup.prepare(pg_db, BackupOptions(out_dir=tmp_path, format="tar"))
    old = _fake_tool(tmp_path / "old", "pg_dump", "12.1")
    with pytest.raises(BackupRefused, match=r"pg_dump \d+ or newer is needed"):
        backup.prepare(pg_db, BackupOptions(out_dir=tmp_path, pg_dump=old))


def test_compression_arguments_follow_the_pg_dump_version() -> None:
    v15 = pgtools.Tool(Path("/x/pg_dump"), 15, "15.18")
    v17 = pgtools.Tool(Path("/y/pg_dump"), 17, "17.2")
    assert backup.compression_args("gzip:1", v15) == (["-Z1"], "gzip:1")
    assert backup.compression_args("1", v15) == (["-Z1"], "gzip:1")
    assert backup.compression_args("none", v15) == (["-Z0"], "none")
    assert backup.compression_args(None, v15) == ([], "default (gzip:6)")
    assert backup.compression_args("gzip:1", v17) == (["--compress=gzip:1"], "gzip:1")
    assert backup.compression_args("zstd:3", v17) == (["--compress=zstd:3"], "zstd:3")
    assert backup.compression_args("lz4", v17) == (["--compress=lz4"], "lz4")
    with pytest.raises(BackupRefused, match="lz4 compression needs pg_dump 16 or newer"):
        backup.compression_args("lz4", v15)
    with pytest.raises(BackupRefused, match="unknown compression"):
        backup.compression_args("brotli", v17)


def _stand_in_pg_dump(path: Path, stderr: str) -> Path:
    """A pg_dump that prints `stderr` and fails, as a real one does when it cannot connect."""
    path.write_text(f"#!/bin/sh\necho '{stderr}' >&2\nexit 1\n")
    path.chmod(0o755)
    return path


def test_auto_compression_is_zstd_1_where_pg_dump_can_write_it(tmp_path: Path) -> None:
    v15 = pgtools.Tool(Path("/x/pg_dump"), 15, "15.18")
    assert backup.compression_args("auto", v15) == (["-Z1"], "gzip:1")
    with_zstd = _stand_in_pg_dump(tmp_path / "with", "pg_dump: error: connection to server "
                                  "on socket failed: No such file or directory")
    assert backup.compression_args("auto", pgtools.Tool(with_zstd, 17, "17.2")) == (
        ["--compress=zstd:1"], "zstd:1")
    without = _stand_in_pg_dump(tmp_path / "without", "pg_dump: error: this build does not "
                                "support compression with zstd")
    assert backup.compression_args("AUTO", pgtools.Tool(without, 16, "16.4")) == (
        ["--compress=gzip:1"], "gzip:1")
    assert backup.DEFAULT_COMPRESSION == "auto"


def test_progress_moves_smoothly_between_tables() -> None:
    seen: list[tuple[float, str]] = []
    tracker = backup.DumpProgress({"public.a": 100, "public.b": 300, "public.c": 600}, 1,
                                  lambda f, d: seen.append((f, d)))
    tracker.line('pg_dump: dumping contents of table "public.a"')
    tracker.line('pg_dump: dumping contents of table "public.b"')
    after_a = seen[-1][0]
    assert after_a >= backup.DATA_START + (backup.DATA_END - backup.DATA_START) * 0.1
    assert "public.b" in seen[-1][1]
    tracker.line('pg_dump: dumping contents of table "public.c"')
    tracker.data_done()
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions)
    assert fractions[-1] == backup.DATA_END


@pytest.mark.pg_matrix("backup")
def test_the_cli_backs_up_end_to_end(pg_db: PgSettings, tmp_path: Path,
                                     journal_dir: Path) -> None:
    out = run_cli(pg_db, "backup", "--out", str(tmp_path / "bk"), "--json", folder=tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["verified"] is True
    path = Path(data["path"])
    assert path.is_file()
    assert data["sha256"] == archive_sha256(path)
    assert "dumping contents of table" in out.stderr
    assert pg_db.password
    assert pg_db.password not in out.stdout + out.stderr
    events = Journal(Path(data["journal"])).events("backup")
    assert events[-1]["sha256"] == data["sha256"]
    text = run_cli(pg_db, "backup", "--out", str(tmp_path / "bk2"), "--format", "directory",
                "--jobs", "2", "--compress", "gzip:3", folder=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "backup verified" in text.stdout
    refused = run_cli(pg_db, "backup", "--out", str(tmp_path / "bk3"), "--jobs", "2",
                   folder=tmp_path)
    assert refused.returncode == 2  # a usage mistake
    assert "needs --format directory" in refused.stderr


def test_ctrl_c_in_the_cli_cancels_and_removes_the_partial_file(
        pg_server: PostgresServer, pg_db: PgSettings, tmp_path: Path) -> None:
    """SIGINT to the CLI while pg_dump waits on a lock: pg_dump is stopped, nothing is left."""
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"{pg_db.host}:{pg_db.port}:*:{pg_db.user}:{pg_db.password}\n")
    passfile.chmod(0o600)
    env = {**os.environ, "PGPASSFILE": str(passfile)}
    dsn = f"postgresql://{pg_db.user}@{pg_db.host}:{pg_db.port}/{pg_db.dbname}"
    out = tmp_path / "bk"
    with table_locked(pg_server, pg_db.dbname):
        proc = subprocess.Popen([sys.executable, "-m", "wizard", "backup", "--out", str(out),
                                 "--lock-wait", "120", "--dsn", dsn], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL)
        assert proc.stderr is not None
        for line in proc.stderr:
            if "reading user-defined tables" in line:
                assert len(list(out.iterdir())) == 1  # the 0600 file pg_dump is writing
                proc.send_signal(signal.SIGINT)
                break
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stdout + stderr
    assert "cancelled by the operator" in stderr
    assert list(out.iterdir()) == []


def test_a_backup_killed_with_sigkill_leaves_no_password_behind(
        pg_db: PgSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pg_dump waits for a table another session holds exclusively; meanwhile the backup's
    process is killed (SIGKILL: no cleanup runs). Its pgpass file stays until the next
    command starts, which removes it."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    code = ("import sys; from pathlib import Path; from wizard.core.backup import "
            "BackupOptions, backup; from wizard.core.connection import PgSettings; "
            "host, port, db, user, out = sys.argv[1:]; "
            "s = PgSettings(host=host, port=int(port), dbname=db, user=user, "
            "password=sys.stdin.readline().rstrip('\\n'), sslmode='disable'); "
            "backup(s, BackupOptions(out_dir=Path(out)))")
    with pg_db.connect() as blocker:
        blocker.execute("LOCK TABLE wallet IN ACCESS EXCLUSIVE MODE")
        child = subprocess.Popen(  # the password on stdin: never argv, never environ
            [sys.executable, "-c", code, pg_db.host, str(pg_db.port), pg_db.dbname,
             pg_db.user, str(tmp_path / "backups")],
            stdin=subprocess.PIPE, text=True, start_new_session=True)
        assert child.stdin is not None
        child.stdin.write(f"{pg_db.password}\n")
        child.stdin.close()
        root = runtime / "enerlink-migrate"
        deadline = time.monotonic() + 20
        while not list(root.glob("pgpass-*/pgpass")) and time.monotonic() < deadline:
            time.sleep(0.02)
        left = list(root.glob("pgpass-*/pgpass"))
        assert left, "the backup never wrote its pgpass file"
        assert pg_db.password
        assert pg_db.password in left[0].read_text()
        os.killpg(child.pid, signal.SIGKILL)  # the backup and its pg_dump, at once
        child.wait(10)
        blocker.rollback()
    assert left[0].exists()  # nothing ran to remove it
    out = run_cli(pg_db, "inspect", folder=tmp_path)  # the next command, any command
    assert out.returncode == 0, out.stderr
    assert not left[0].exists()
    assert not list(root.glob("pgpass-*"))


def test_the_sweep_removes_only_what_a_gone_process_left(tmp_path: Path) -> None:
    from wizard.core.pgenv import sweep_passfiles

    dead_pid = subprocess.Popen(["true"])  # a process that has ended: its pid is free
    dead_pid.wait()
    mine = tmp_path / f"pgpass-{os.getpid()}-abc"
    left = tmp_path / f"pgpass-{dead_pid.pid}-def"
    for folder in (mine, left):
        folder.mkdir()
        (folder / "pgpass").write_text("h:5432:*:u:secret\n")
    assert sweep_passfiles(tmp_path) == [left]
    assert mine.exists()
    assert not left.exists()
