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

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection[Any]:
        kwargs = self.conninfo_kwargs()
        if self.password is not None:
            kwargs["password"] = self.password
        return psycopg.connect(autocommit=autocommit, **kwargs)
