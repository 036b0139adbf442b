"""Connection settings for PostgreSQL: one object the CLI, the GUI and profiles all fill."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import psycopg

APPLICATION_NAME = "enerlink-migrate"


@dataclass(frozen=True)
class PgSettings:
    """Where and as whom to connect. The password never appears in repr() or describe()."""

    host: str = "localhost"
    port: int = 5432
    dbname: str = "enerlink_db"
    user: str = "postgres"
    password: str | None = field(default=None, repr=False, compare=False)
    sslmode: str = "prefer"
    sslrootcert: str | None = None
    connect_timeout: int = 10
    application_name: str = APPLICATION_NAME

    def describe(self, dbname: str | None = None) -> str:
        """user@host:port/db, for logs, the journal and error messages."""
        return f"{self.user}@{self.host}:{self.port}/{dbname or self.dbname}"

    def with_dbname(self, dbname: str) -> PgSettings:
        return replace(self, dbname=dbname)

    def with_password(self, password: str | None) -> PgSettings:
        return replace(self, password=password)

    def conninfo_kwargs(self) -> dict[str, Any]:
        """libpq keywords, password excluded (it is passed to libpq in-process only)."""
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.user,
            "sslmode": self.sslmode,
            "connect_timeout": self.connect_timeout,
            "application_name": self.application_name,
        }
        if self.sslrootcert:
            kwargs["sslrootcert"] = self.sslrootcert
        return kwargs

    def connect(self, *, autocommit: bool = False, keepalives: bool = False
                ) -> psycopg.Connection[Any]:
        """A session; `keepalives` makes the operating system notice a network that went
        away within about 15 s (the migration's session: its locks must not outlive us)."""
        kwargs = self.conninfo_kwargs()
        if keepalives:
            kwargs.update(keepalives=1, keepalives_idle=5, keepalives_interval=2,
                          keepalives_count=3)
        if self.password is not None:
            kwargs["password"] = self.password
        return psycopg.connect(autocommit=autocommit, **kwargs)


class ConnectError(RuntimeError):
    """A connection attempt failed; the message says what and what to do next."""


def connect_advice(settings: PgSettings, text: str, hint: str | None = None) -> str:
    """libpq's error text reduced to its line that matters, plus what to do about it."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    fatal = [ln for ln in lines if "FATAL" in ln or "error" in ln.lower()]
    first = (fatal or lines or [text])[0].split("failed: ", 1)[-1]
    default = "check host, port and that the server is running"
    if "password authentication failed" in text:
        default = "wrong password for this role"
    elif "no password supplied" in text:
        default = "the server wants a password: type it, or add it to ~/.pgpass (PGPASSFILE)"
    elif "does not exist" in text and "database" in text:
        default = "no such database; check its name"
    elif "does not exist" in text and "role" in text:
        default = "no such role; check the user name"
    elif "could not translate host name" in text:
        default = "the host name does not resolve (DNS); check the spelling"
    elif "SSL" in text or "certificate" in text:
        default = "TLS failed: check sslmode and the root certificate"
    elif "timeout" in text:
        default = "no answer: a firewall or the wrong host/port"
    return f"cannot connect to {settings.describe()}: {first} ({hint or default})"


def check_connection(settings: PgSettings) -> str:
    """Connect once: 'PostgreSQL 15.18 as enerlink (owner of …)' or ConnectError."""
    try:
        with settings.connect(autocommit=True) as conn:
            row = conn.execute("SELECT current_setting('server_version'), current_user, "
                               "current_database()").fetchone()
    except psycopg.OperationalError as exc:
        raise ConnectError(connect_advice(settings, str(exc))) from None
    version, user, db = row if row else ("?", settings.user, settings.dbname)
    return f"PostgreSQL {version}: connected to {db} as {user}"

