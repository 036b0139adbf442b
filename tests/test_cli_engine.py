"""The CLI over the engine: exit codes, --json, and no password on the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from wizard.core.connection import PgSettings


def _cli(settings: PgSettings, *args: str, tmp_path: Path,
         password: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run enerlink-migrate as a DBA would: the password in a 0600 pgpass file."""
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"{settings.host}:{settings.port}:*:{settings.user}:"
                        f"{password or settings.password}\n")
    passfile.chmod(0o600)
    env = {**os.environ, "PGPASSFILE": str(passfile)}
    dsn = f"postgresql://{settings.user}@{settings.host}:{settings.port}/{settings.dbname}"
    return subprocess.run([sys.executable, "-m", "wizard", *args, "--dsn", dsn], env=env,
                          capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)


def test_inspect_migrate_verify_revert_through_the_cli(pg_db: PgSettings,
                                                        tmp_path: Path) -> None:
    out = _cli(pg_db, "inspect", "--json", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["state"] == "pre"
    out = _cli(pg_db, "plan", "--sql", tmp_path=tmp_path)
    assert 'ALTER TABLE "public"."prosumer" RENAME TO "user";' in out.stdout
    out = _cli(pg_db, "migrate", tmp_path=tmp_path)
    assert out.returncode == 3, "a real migration without a verified backup is refused"
    assert "no verified backup" in out.stderr
    out = _cli(pg_db, "migrate", "--without-backup", "--confirm", pg_db.dbname,
               tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "migration succeeded" in out.stdout
    assert "WITHOUT a backup" in out.stderr
    assert "[1/20] Renaming table prosumer" in out.stderr
    out = _cli(pg_db, "verify", "--json", tmp_path=tmp_path)
    assert out.returncode == 0, out.stdout
    assert {c["status"] for c in json.loads(out.stdout)} == {"pass"}
    out = _cli(pg_db, "revert", tmp_path=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(_cli(pg_db, "inspect", "--json", tmp_path=tmp_path).stdout)[
        "state"] == "pre"


def test_wrong_password_says_so_and_exits_2(pg_db: PgSettings, tmp_path: Path) -> None:
    out = _cli(pg_db, "inspect", tmp_path=tmp_path, password="not-it")
    assert out.returncode == 2
    assert "password authentication failed" in out.stderr
    assert "wrong password" in out.stderr


def test_password_in_dsn_is_refused(pg_db: PgSettings) -> None:
    out = subprocess.run([sys.executable, "-m", "wizard", "inspect", "--dsn",
                          f"postgresql://u:secret@{pg_db.host}:{pg_db.port}/x"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 2
    assert "must not contain a password" in out.stderr


def test_unknown_database_is_refused_with_exit_3(empty_db: PgSettings, tmp_path: Path) -> None:
    out = _cli(empty_db, "migrate", tmp_path=tmp_path)
    assert out.returncode == 3
    assert "not an EnerLink database" in out.stderr
