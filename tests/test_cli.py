"""The entry points: --version, and what a DBA sees when something goes wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wizard import __version__, cli
from wizard.core import jobs
from wizard.core.connection import PgSettings


def test_python_dash_m_wizard_version() -> None:
    out = subprocess.run([sys.executable, "-m", "wizard", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == f"enerlink-migrate {__version__}"


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("enerlink-migrate")
    assert script.exists(), "pip install -e . should have created the enerlink-migrate script"
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                         check=True).stdout
    assert __version__ in out


def test_unexpected_error_is_one_line_and_the_traceback_goes_to_the_log(
        pg_db: PgSettings, tmp_path: Path, journal_dir: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Stand-in: a bug of ours is what this guards against, so one is injected into the
    # engine (everything else, the connection included, is real).
    def broken(_settings: PgSettings) -> None:
        raise ZeroDivisionError("division by zero inside discovery")
    monkeypatch.setattr(jobs, "inspect", broken)
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"*:*:*:{pg_db.user}:{pg_db.password}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    dsn = f"postgresql://{pg_db.user}@{pg_db.host}:{pg_db.port}/{pg_db.dbname}"
    assert cli.main(["inspect", "--dsn", dsn]) == 1
    err = capsys.readouterr().err
    log = journal_dir / "cli-errors.log"
    assert err.count("\n") == 1, err
    assert err.startswith("enerlink-migrate inspect: unexpected error: ZeroDivisionError: "
                          "division by zero inside discovery; the traceback is in ")
    assert str(log) in err
    assert "Traceback" not in err
    text = log.read_text()
    assert "Traceback (most recent call last)" in text
    assert "def broken" not in err
    assert "in broken" in text
    assert log.stat().st_mode & 0o777 == 0o600


def test_a_closed_pipe_ends_quietly(pg_db: PgSettings, tmp_path: Path) -> None:
    """`enerlink-migrate inspect --json | head -1`: the reader leaves before we write."""
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"*:*:*:{pg_db.user}:{pg_db.password}\n")
    passfile.chmod(0o600)
    dsn = f"postgresql://{pg_db.user}@{pg_db.host}:{pg_db.port}/{pg_db.dbname}"
    env = {**os.environ, "PGPASSFILE": str(passfile)}
    # `true` exits at once, long before Python has started: every write meets EPIPE.
    cmd = '"$PY" -m wizard inspect --json --dsn "$DSN"'
    env.update(PY=sys.executable, DSN=dsn, ERR=str(tmp_path / "err"))
    out = subprocess.run(["/bin/bash", "-c", f'{cmd} 2>"$ERR" | true; echo "${{PIPESTATUS[0]}}"'],
                         capture_output=True, text=True, env=env, check=True)
    assert (tmp_path / "err").read_text() == ""
    assert out.stdout.strip() == "141"
    head = subprocess.run(["/bin/bash", "-c", f"{cmd} | head -1"], capture_output=True,
                          text=True, env=env, check=True)
    assert head.stdout == "{\n"
    assert head.stderr == ""
