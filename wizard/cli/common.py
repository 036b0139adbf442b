"""What every CLI command shares: connection settings, errors, output."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from wizard.core.connection import PgSettings

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3


class CliError(RuntimeError):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def settings_from(dsn: str | None) -> PgSettings:
    """Connection settings from --dsn, else libpq's PG* variables. Never a password."""
    params: dict[str, Any] = conninfo_to_dict(dsn) if dsn else {}
    if "password" in params:
        raise CliError("--dsn must not contain a password (it would show in the process "
                       "list and shell history); use ~/.pgpass, PGPASSFILE or the prompt",
                       EXIT_USAGE)
    env = os.environ
    return PgSettings(
        host=str(params.get("host") or env.get("PGHOST") or "localhost"),
        port=int(params.get("port") or env.get("PGPORT") or 5432),
        dbname=str(params.get("dbname") or env.get("PGDATABASE") or "enerlink_db"),
        user=str(params.get("user") or env.get("PGUSER") or getpass.getuser()),
        sslmode=str(params.get("sslmode") or env.get("PGSSLMODE") or "prefer"),
        sslrootcert=params.get("sslrootcert") or env.get("PGSSLROOTCERT"))


def connectable(settings: PgSettings, interactive: bool) -> PgSettings:
    """Try libpq's own password sources; prompt once when it needs one and we can ask."""
    try:
        settings.connect().close()
        return settings
    except psycopg.OperationalError as exc:
        text = str(exc)
        if "no password supplied" in text and interactive:
            password = getpass.getpass(f"Password for {settings.describe()}: ")
            with_pw = settings.with_password(password)
            try:
                with_pw.connect().close()
            except psycopg.OperationalError as again:
                raise CliError(connect_advice(settings, str(again)), EXIT_USAGE) from None
            return with_pw
        raise CliError(connect_advice(settings, text), EXIT_USAGE) from None


def connect_advice(settings: PgSettings, text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    fatal = [ln for ln in lines if "FATAL" in ln or "error" in ln.lower()]
    first = (fatal or lines or [text])[0].split("failed: ", 1)[-1]
    hint = "check host, port and that the server is running"
    if "password authentication failed" in text:
        hint = "wrong password for this role; check ~/.pgpass or PGPASSFILE"
    elif "no password supplied" in text:
        hint = "the server wants a password: add it to ~/.pgpass (or PGPASSFILE), or run " \
               "interactively to be prompted"
    elif "does not exist" in text and "database" in text:
        hint = "no such database; check the name (--dsn .../dbname)"
    elif "could not translate host name" in text:
        hint = "the host name does not resolve (DNS); check the spelling"
    elif "timeout" in text:
        hint = "no answer: a firewall or the wrong host/port"
    return f"cannot connect to {settings.describe()}: {first} ({hint})"


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if args.json:
        print(json.dumps(data, indent=2, default=str, ensure_ascii=False))
    else:
        print(text)




def connection_parser() -> argparse.ArgumentParser:
    """The options every command that talks to PostgreSQL takes (a parent parser)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dsn", help="postgresql://user@host:port/db (no password; libpq "
                        "reads ~/.pgpass, PGPASSFILE, PGPASSWORD, or you are prompted)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    return common


def pg_settings(args: argparse.Namespace) -> PgSettings:
    """Connection settings for a command, checked by connecting once (prompting if needed)."""
    return connectable(settings_from(args.dsn), sys.stdin.isatty())
