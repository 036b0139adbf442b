"""Benchmark: the change window's downtime, ours (prepare, then the window) vs the guide's
sequence, side by side in one run, at BENCH_WINDOW_USERS (default 100k and 1M users).

Both start from the same sample database (cloned), where wallet lacks its foreign key to
prosumer, as a database the upstream migration half-made would: the migration adds it, so
the window re-checks that column for orphans written since the prepare phase's scan.

- ours: `phases.prepare` while "the application runs" (not downtime: timed apart; the proof
  is left out, as `prepare --no-prove`), then `phases.window` with no-op stop and start
  commands (`true`): downtime = stop → start, with its parts (re-check, migration, Redis,
  Redis checks); the whole checklist runs after the start (not downtime: timed apart).
  Redis holds the sample's orders (BENCH_WINDOW_REDIS_USERS owners).
- the guide: after its stop, a plain `pg_dump > backup.sql`, its `NOT IN` orphan query on
  wallet (stopped at 60 s, as a DBA would give up), the upstream-style migration
  (bench_migrate.UPSTREAM, with wallet's key added instead of replaced), FLUSHALL.
Run by `make bench`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from bench_migrate import UPSTREAM
from benchkit import bench_cluster, print_table, sample_database, timed_pg_dump
from psycopg import sql

from wizard.core import phases
from wizard.core.backup import BackupOptions
from wizard.core.connection import PgSettings
from wizard.core.redis_conn import RedisSettings
from wizard.sandbox.redis_seed import seed_redis
from wizard.sandbox.sandbox import OWNER_ROLE
from wizard.sandbox.servers import PostgresServer, RedisServer

SIZES = [int(s) for s in os.environ.get("BENCH_WINDOW_USERS", "100000,1000000").split(",")]
REDIS_USERS = int(os.environ.get("BENCH_WINDOW_REDIS_USERS", "5000"))
NOT_IN_TIMEOUT_S = 60
WALLET_FK = "FK_62a1a16628b883318e6b443cf52"
GUIDE_NOT_IN = "SELECT * FROM wallet WHERE prosumer_id NOT IN (SELECT prosumer_id FROM prosumer)"


def _drop_wallet_key(settings: PgSettings) -> None:
    with settings.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER TABLE wallet DROP CONSTRAINT {}").format(
            sql.Identifier(WALLET_FK)))


def _clone(server: PostgresServer, source: str, target: str) -> None:
    with server.admin_connect() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(
            sql.Identifier(target), sql.Identifier(source), sql.Identifier(OWNER_ROLE)))


def _drop(server: PostgresServer, *names: str) -> None:
    with server.admin_connect() as admin:
        for name in names:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def _guide(settings: PgSettings, redis_settings: RedisSettings, folder: Path) -> dict[str, float]:
    """The guide's window, after its stop: plain dump, NOT IN, upstream migration, FLUSHALL."""
    parts: dict[str, float] = {}
    t0 = time.perf_counter()
    parts["pg_dump plain"], _size = timed_pg_dump(settings, [], folder / "guide.sql")
    t1 = time.perf_counter()
    with settings.connect(autocommit=True) as conn:
        conn.execute(f"SET statement_timeout = '{NOT_IN_TIMEOUT_S}s'")
        with contextlib.suppress(psycopg.errors.QueryCanceled):  # the DBA gives up
            conn.execute(GUIDE_NOT_IN).fetchall()
    parts["NOT IN"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    with settings.connect() as conn:
        for stmt in UPSTREAM:
            conn.execute(stmt.replace(f'DROP CONSTRAINT "{WALLET_FK}", ', "").encode())
        conn.commit()
    parts["migration"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    with redis_settings.client() as client:
        client.flushall()
    parts["FLUSHALL"] = time.perf_counter() - t1
    parts["downtime"] = time.perf_counter() - t0
    return parts


def _ours(settings: PgSettings, redis_settings: RedisSettings, folder: Path
          ) -> tuple[float, phases.WindowResult]:
    t0 = time.perf_counter()
    prepared = phases.prepare(settings, redis_settings, options=phases.PrepareOptions(
        BackupOptions(out_dir=folder / "backups"), prove=False))
    prepare_s = time.perf_counter() - t0
    assert prepared.ok, prepared.problems
    result = phases.window(settings, redis_settings, options=phases.WindowOptions(
        stop_command="true", start_command="true"))
    assert result.ok, result.error
    return prepare_s, result


def main() -> int:
    rows = []
    with bench_cluster() as (server, owner), tempfile.TemporaryDirectory() as tmp:
        os.environ["ENERLINK_MIGRATE_RUNS"] = str(server.base / "runs")
        redis_server = RedisServer.start()
        try:
            redis_settings = RedisSettings.from_url(f"{redis_server.url}/0",
                                                    password=redis_server.password)
            for users in SIZES:
                base = sample_database(server, owner, users, f"bench_window_{users}")
                _drop_wallet_key(base)
                guide_db = f"bench_window_guide_{users}"
                _clone(server, base.dbname, guide_db)
                with redis_server.client() as client:
                    client.flushall()
                    seed_redis(client, users, max_order_users=REDIS_USERS)
                prepare_s, ours = _ours(base, redis_settings, Path(tmp))
                with redis_server.client() as client:
                    client.flushall()
                    seed_redis(client, users, max_order_users=REDIS_USERS)
                guide = _guide(owner.with_dbname(guide_db), redis_settings, Path(tmp))
                _drop(server, base.dbname, guide_db)
                t = ours.timings
                downtime = ours.downtime_s or 0.0
                rows.append([f"{users:,}", f"{prepare_s:.2f}", f"{downtime:.2f}",
                             f"{t.get('recheck', 0):.2f}", f"{t.get('migrate', 0):.2f}",
                             f"{t.get('redis', 0):.2f}", f"{t.get('checks', 0):.2f}",
                             f"{t.get('checklist_after_start', 0):.2f}",
                             f"{guide['downtime']:.2f}",
                             f"{guide['pg_dump plain']:.2f} / {guide['NOT IN']:.2f} / "
                             f"{guide['migration']:.2f} / {guide['FLUSHALL']:.3f}",
                             f"{downtime / guide['downtime']:.2f}x"])
                print(f"  {users:,} users done; our window: {ours.timings}; its migration: "
                      f"{ours.run}", flush=True)
        finally:
            redis_server.stop()
    print_table("Change window: downtime (stop → start, no-op commands), ours vs the guide's "
                f"sequence; Redis with the orders of {REDIS_USERS:,} owners",
                ["users", "our prepare s (app up)", "our downtime s", "re-check s",
                 "migrate s", "Redis s", "Redis checks s", "checklist after start s",
                 "guide downtime s",
                 "guide: dump / NOT IN / migration / FLUSHALL s", "ours / guide"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
