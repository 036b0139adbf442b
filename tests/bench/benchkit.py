"""What every benchmark shares: a throwaway cluster, the sample database, the guide's steps."""

from __future__ import annotations

import os
import resource
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from psycopg import sql

from wizard.core.archive import archive_size
from wizard.core.connection import PgSettings
from wizard.core.pgenv import conninfo_arg, libpq_env
from wizard.core.pgtools import Tool, find_tool, probe
from wizard.sandbox.sandbox import OWNER_ROLE, create_owner_role, create_sample_database
from wizard.sandbox.servers import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
# Where packaging/pg_matrix.py keeps the newer client tools it fetched (as root: the shared one).
PG_CACHES = (ROOT / ".cache" / "pg", Path("/var/cache/enerlink-migrate/pg"))


@contextmanager
def bench_cluster() -> Iterator[tuple[PostgresServer, PgSettings]]:
    """A PostgreSQL cluster and the (non-superuser) owner role, stopped afterwards."""
    server = PostgresServer.start()
    try:
        owner = server.settings("postgres", OWNER_ROLE, "bench-only-password")
        create_owner_role(server, OWNER_ROLE, owner.password or "")
        yield server, owner
    finally:
        server.stop()


def sample_database(server: PostgresServer, owner: PgSettings, users: int,
                    name: str) -> PgSettings:
    """The sample EnerLink database at `users`, vacuumed and analyzed so that no variant
    pays for hint bits or statistics the one before it left behind."""
    t0 = time.perf_counter()
    create_sample_database(server, name, owner, users=users)
    with server.admin_connect(name) as admin:
        admin.execute("VACUUM (ANALYZE, FREEZE)")
        row = admin.execute(sql.SQL("SELECT pg_size_pretty(pg_database_size({}))").format(
            sql.Literal(name))).fetchone()
    print(f"  seeded {users:,} users in {time.perf_counter() - t0:.0f} s; database "
          f"{row[0] if row else '?'}", flush=True)
    return owner.with_dbname(name)


def timed_pg_dump(settings: PgSettings, args: Sequence[str], target: Path,
                  tool: Tool | None = None) -> tuple[float, int]:
    """Run pg_dump `args` into `target` as a DBA would (the pg_dump of the server's major,
    password via a pgpass file); seconds and bytes written."""
    if tool is None:
        with settings.connect() as conn:
            major = int(conn.info.server_version) // 10000
        tool = find_tool("pg_dump", major)
    with libpq_env(settings) as env:
        t0 = time.perf_counter()
        subprocess.run([str(tool.path), "--no-password", f"--dbname={conninfo_arg(settings)}",
                        *args, f"--file={target}"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds = time.perf_counter() - t0
    return seconds, archive_size(target)


def guide_restore(server: PostgresServer, settings: PgSettings, plain: Path,
                  dbname: str) -> float:
    """The guide's restore: CREATE DATABASE `dbname`, then `psql -d dbname < plain.sql`;
    seconds (the caller drops the database)."""
    target = settings.with_dbname(dbname)
    t0 = time.perf_counter()
    with server.admin_connect() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(target.dbname), sql.Identifier(OWNER_ROLE)))
    with libpq_env(settings) as env, open(plain, "rb") as stdin:
        subprocess.run([str(server.client_tool("psql")), "--no-password", "-q",
                        f"--dbname={conninfo_arg(target)}"], env=env, stdin=stdin,
                       stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def drop_database(server: PostgresServer, name: str) -> None:
    with server.admin_connect() as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def newest_pg_dump(min_major: int = 16) -> Tool | None:
    """The newest pg_dump of at least `min_major` with its pg_restore beside it: BENCH_PG_DUMP
    (a program), else what `make test-pg` fetched under .cache/pg; None if there is none."""
    named = os.environ.get("BENCH_PG_DUMP")
    paths = [Path(named)] if named else [p for cache in PG_CACHES if cache.is_dir()
                                         for p in cache.glob("*/**/bin/pg_dump")]
    tools = [t for p in paths if (p.parent / "pg_restore").is_file()
             and (t := probe(p)) is not None and t.major >= min_major]
    return max(tools, key=lambda t: t.major, default=None)


def cpu_seconds(server: PostgresServer) -> tuple[float, float]:
    """(our children's CPU s: pg_restore, psql, pg_dump once waited for; the server's CPU s:
    the postmaster's reaped backends plus its live children)."""
    ours = resource.getrusage(resource.RUSAGE_CHILDREN)
    tick = os.sysconf("SC_CLK_TCK")
    pid = server.pid
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is the state: ppid is fields[1], utime..cstime fields[11..14]
        if stat.parent.name == str(pid):
            total += sum(int(x) for x in fields[11:15])
        elif fields[1] == str(pid):
            total += int(fields[11]) + int(fields[12])
    return ours.ru_utime + ours.ru_stime, total / tick


class Cpu:
    """CPU seconds spent by our child programs and by the server between start and stop."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.client_s = self.server_s = 0.0
        self._start = cpu_seconds(server)

    def stop(self) -> Cpu:
        client, srv = cpu_seconds(self.server)
        self.client_s, self.server_s = client - self._start[0], srv - self._start[1]
        return self

    def text(self, wall_s: float) -> str:
        cores = os.cpu_count() or 1
        return (f"{self.client_s:.1f} + {self.server_s:.1f} "
                f"({(self.client_s + self.server_s) / (wall_s * cores):.0%})")


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n### {title}\n", flush=True)
    for n, row in enumerate(cells):
        print("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    print(flush=True)
