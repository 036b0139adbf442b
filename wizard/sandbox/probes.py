"""Read-only looks at a database or a PDF, for tests and benchmarks."""

from __future__ import annotations

import os
import subprocess
import sys
import unicodedata
from pathlib import Path

from wizard.core.connection import PgSettings
from wizard.core.fingerprint import schema_fingerprint
from wizard.core.pgenv import conninfo_arg, libpq_env
from wizard.sandbox.servers import PostgresServer


def fingerprint(settings: PgSettings) -> list[str]:
    """The schema fingerprint of a database (sorted catalog lines)."""
    with settings.connect() as conn:
        return schema_fingerprint(conn)


def databases(server: PostgresServer) -> set[str]:
    with server.admin_connect() as admin:
        return {r[0] for r in admin.execute("SELECT datname FROM pg_database").fetchall()}


def has_table(settings: PgSettings, table: str) -> bool:
    with settings.connect() as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                           (f'public."{table}"',)).fetchone()
        return bool(row and row[0])


def pg_dump_custom(server: PostgresServer, settings: PgSettings, out: Path) -> Path:
    """A plain `pg_dump -Fc` of `settings`' database (not the backup step: a reference)."""
    with libpq_env(settings) as env:
        subprocess.run([str(server.client_tool("pg_dump")), "--no-password", "-Fc", "-f", str(out),
                        f"--dbname={conninfo_arg(settings)}"],
                       env=env, check=True, capture_output=True)
    return out


def pdf_text(path: Path) -> str:
    """The words of a PDF, as pdftotext reads them, on one line."""
    out = subprocess.run(["pdftotext", str(path), "-"], check=True, capture_output=True,
                         text=True).stdout
    # NFKC: the PDF's font turns "fi" into one ligature glyph.
    return " ".join(unicodedata.normalize("NFKC", out).split())


def run_cli(settings: PgSettings, *args: str, folder: Path, password: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `enerlink-migrate ARGS --dsn ...` as a DBA would: the password in a 0600 pgpass
    file in `folder`, never on the command line or in PGPASSWORD."""
    passfile = folder / "pgpass"
    passfile.write_text(f"{settings.host}:{settings.port}:*:{settings.user}:"
                        f"{password or settings.password}\n")
    passfile.chmod(0o600)
    child = {**(os.environ if env is None else env), "PGPASSFILE": str(passfile)}
    child.pop("PGPASSWORD", None)
    dsn = f"postgresql://{settings.user}@{settings.host}:{settings.port}/{settings.dbname}"
    return subprocess.run([sys.executable, "-m", "wizard", *args, "--dsn", dsn], env=child,
                          capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
