"""Backup: finding pg_dump, the password kept out of argv and environ, the verified dump."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from wizard.core import pgtools
from wizard.core.connection import PgSettings
from wizard.core.pgenv import conninfo_arg, libpq_env, pgpass_line
from wizard.core.pgtools import ToolNotFound, find_tool, server_major

# --- finding the tools -------------------------------------------------------------------


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


def test_finder_finds_the_real_pg_dump_for_the_test_server(pg_db: PgSettings) -> None:
    with pg_db.connect() as conn:
        major = server_major(conn)
    tool = find_tool("pg_dump", major)
    assert tool.major == major
    out = subprocess.run([str(tool.path), "--version"], capture_output=True, text=True,
                         check=True).stdout
    assert tool.version in out


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
    monkeypatch.setenv("ENERLINK_API_TOKEN", "tok")
    monkeypatch.setenv("LANG", "C.UTF-8")
    settings = PgSettings(host="db", port=5432, user="enerlink", password="s3:cret")
    with libpq_env(settings) as env:
        passfile = Path(env["PGPASSFILE"])
        assert "PGPASSWORD" not in env
        assert "REDIS_PASSWORD" not in env
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
