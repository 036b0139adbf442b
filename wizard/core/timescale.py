"""TimescaleDB around a restore: timescaledb_pre_restore() before pg_restore writes into the
new database, timescaledb_post_restore() after, as TimescaleDB's documentation requires for
a pg_restore of a database holding hypertables (production EnerLink's telemetry_aggregate).
"""

from __future__ import annotations

from typing import Any

import psycopg

from wizard.core.connection import PgSettings
from wizard.core.reporting import Report

EXTENSION = "timescaledb"


class TimescaleFailed(RuntimeError):
    """timescaledb_pre_restore() or timescaledb_post_restore() failed; the message says
    which, in which database, and the server's error."""


def needed(extensions: list[str]) -> bool:
    """Whether a backup's TOC (its CREATE EXTENSION entries) holds TimescaleDB."""
    return EXTENSION in extensions


def _call(settings: PgSettings, function: str) -> Any:
    with settings.connect(autocommit=True) as conn:
        if function == "timescaledb_pre_restore":
            # pg_dump writes CREATE EXTENSION IF NOT EXISTS: creating it first lets us call
            # its function before any table data arrives, and the dump's statement then
            # finds it there.
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        row = conn.execute(f"SELECT {function}()").fetchone()  # a fixed name, never input
        return row[0] if row else None


def pre_restore(settings: PgSettings, report: Report) -> None:
    """In the new, still empty database: create the extension, then pre_restore."""
    report("step", f"the backup holds the {EXTENSION} extension: running "
                   f"timescaledb_pre_restore() in {settings.dbname} before pg_restore")
    try:
        _call(settings, "timescaledb_pre_restore")
    except psycopg.Error as exc:
        raise TimescaleFailed(f"timescaledb_pre_restore() failed in {settings.dbname}: "
                              f"{str(exc).strip()}") from exc


def post_restore(settings: PgSettings, report: Report) -> None:
    """After pg_restore: timescaledb_post_restore() puts the database back in normal mode."""
    report("step", f"running timescaledb_post_restore() in {settings.dbname}")
    try:
        _call(settings, "timescaledb_post_restore")
    except psycopg.Error as exc:
        raise TimescaleFailed(f"timescaledb_post_restore() failed in {settings.dbname}: "
                              f"{str(exc).strip()}") from exc
