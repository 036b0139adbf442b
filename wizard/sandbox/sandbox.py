"""The sandbox: PostgreSQL + Redis with sample EnerLink data, for `make demo` and the tests."""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from psycopg import sql

from wizard.core.connection import PgSettings
from wizard.core.files import private_folder, write_atomic
from wizard.sandbox.redis_seed import seed_redis
from wizard.sandbox.seed import Progress, SeedReport, inject_orphans, seed
from wizard.sandbox.servers import PostgresServer, RedisServer

OWNER_ROLE = "enerlink"
DATABASE = "enerlink_db"


def create_owner_role(server: PostgresServer, role: str, password: str, *,
                      createdb: bool = True) -> None:
    """A login role that will own the EnerLink tables: not a superuser, like production."""
    with server.admin_connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER {} PASSWORD {}").format(
            sql.Identifier(role), sql.SQL("CREATEDB" if createdb else "NOCREATEDB"),
            sql.Literal(password)))


def create_sample_database(server: PostgresServer, dbname: str, owner: PgSettings, *,
                           users: int, orphans: int = 0,
                           progress: Progress | None = None) -> SeedReport:
    """CREATE DATABASE owned by `owner.user`, then build and fill it as that role."""
    with server.admin_connect() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(dbname), sql.Identifier(owner.user)))
    if server.major_version < 13:
        # uuid-ossp is a trusted extension from 13 on; before, a superuser creates it, as
        # production's DBA did.
        with server.admin_connect(dbname) as admin:
            admin.execute('CREATE EXTENSION IF NOT EXISTS "uuid-ossp" WITH SCHEMA public')
    with owner.with_dbname(dbname).connect() as conn:
        report = seed(conn, users, progress)
    if orphans:
        with server.admin_connect(dbname) as admin:
            inject_orphans(admin, orphans)
    return report


def _pgpass_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


@dataclass
class Sandbox:
    """Both servers, the owner's connection settings and a private folder of client files."""

    pg: PostgresServer
    redis: RedisServer
    owner: PgSettings
    folder: Path
    report: SeedReport
    redis_keys: Counter[str] = field(default_factory=Counter)

    @classmethod
    def start(cls, *, users: int = 2_000, orphans: int = 0,
              progress: Progress | None = None) -> Sandbox:
        say = progress or (lambda _msg: None)
        folder = private_folder(Path(tempfile.mkdtemp(prefix="enerlink-sandbox-")))
        pg = PostgresServer.start()
        say(f"PostgreSQL {pg.major_version} started on 127.0.0.1:{pg.port} (pid {pg.pid})")
        try:
            redis_server = RedisServer.start()
        except BaseException:
            pg.stop()
            raise
        say(f"Redis started on 127.0.0.1:{redis_server.port} (pid {redis_server.pid})")
        try:
            owner = pg.settings(DATABASE, OWNER_ROLE, secrets.token_urlsafe(18))
            create_owner_role(pg, OWNER_ROLE, owner.password or "")
            report = create_sample_database(pg, DATABASE, owner, users=users,
                                            orphans=orphans, progress=say)
            with redis_server.client() as client:
                keys = seed_redis(client, users)
            box = cls(pg, redis_server, owner, folder, report, keys)
            box._write_client_files()
        except BaseException:
            redis_server.stop()
            pg.stop()
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return box

    @property
    def pgpass(self) -> Path:
        return self.folder / "pgpass"

    @property
    def redis_password_file(self) -> Path:
        return self.folder / "redis-password"

    def _write_client_files(self) -> None:
        o = self.owner
        write_atomic(self.pgpass, ":".join(
            _pgpass_escape(v) for v in (o.host, str(o.port), "*", o.user, o.password or ""))
            + "\n")
        write_atomic(self.redis_password_file, self.redis.password + "\n")
        info = {
            "postgres": {"host": o.host, "port": o.port, "dbname": o.dbname, "user": o.user,
                         "sslmode": o.sslmode, "passfile": str(self.pgpass)},
            "redis": {"url": f"{self.redis.url}/0", "password_file":
                      str(self.redis_password_file)},
        }
        write_atomic(self.folder / "sandbox.json", json.dumps(info, indent=2) + "\n")

    def stop(self) -> None:
        self.redis.stop()
        self.pg.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
