"""Benchmark: how long the application is blocked by our migration vs an upstream-style one.

For each size: build the sample, clone it, run `migrate` (ours) on one copy and the upstream
migration's approach (rename, drop + re-add every FK, eight CREATE INDEX, one transaction)
on the other; then revert ours and migrate again with exact counts of every table
(`--count-all`), to show what those scans cost. "Blocked" is server time from the first
ALTER to the end of COMMIT.
Run by `make bench`; sizes: BENCH_MIGRATE_USERS=10000,100000,1000000.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from benchkit import bench_cluster, print_table
from psycopg import sql

from wizard.core import jobs
from wizard.core.connection import PgSettings
from wizard.core.execute import RunOptions
from wizard.core.plan import DOWN, UP
from wizard.sandbox.sandbox import OWNER_ROLE, create_sample_database

SIZES = [int(s) for s in os.environ.get("BENCH_MIGRATE_USERS",
                                        "10000,100000,1000000").split(",")]

UPSTREAM = [
    'ALTER TABLE prosumer RENAME TO "user"',
    'ALTER TABLE "user" RENAME COLUMN prosumer_id TO user_id',
    *[f"ALTER TABLE {t} RENAME COLUMN {o} TO {n}" for t, o, n in [
        ("wallet", "prosumer_id", "user_id"), ("smart_meter", "prosumer_id", "user_id"),
        ("transaction_log", "prosumer_id", "user_id"),
        ("market_trade", "buyer_prosumer_id", "buyer_user_id"),
        ("market_trade", "seller_prosumer_id", "seller_user_id"),
        ("idrs_conversion", "prosumer_id", "user_id"),
        ("token_blacklist", "prosumer_id", "user_id")]],
    *[f'ALTER TABLE {t} DROP CONSTRAINT "{c}", ADD CONSTRAINT "{c}_new" FOREIGN KEY ({col}) '
      f'REFERENCES "user"(user_id){a}' for t, c, col, a in [
          ("wallet", "FK_62a1a16628b883318e6b443cf52", "user_id", ""),
          ("smart_meter", "FK_15c4c55f7a7ac1a93ae9a06a6c4", "user_id", ""),
          ("transaction_log", "FK_c610529db3b0d2fa571fcb32c0c", "user_id", ""),
          ("market_trade", "FK_e5d6128781fecd5e123649fd47b", "buyer_user_id", ""),
          ("market_trade", "FK_028c93bfb292f998635a701742d", "seller_user_id", ""),
          ("idrs_conversion", "FK_ca221ee5d35d43d27e8e2d0b799", "user_id", ""),
          ("token_blacklist", "FK_1a320f4470d1b5517ee5553b66b", "user_id",
           " ON DELETE CASCADE")]],
    "CREATE INDEX idx_wallet_user_id ON wallet (user_id)",
    "CREATE INDEX idx_smartmeter_user_id ON smart_meter (user_id)",
    "CREATE INDEX idx_transactionlog_user_id ON transaction_log (user_id)",
    "CREATE INDEX idx_markettrade_buyer_user_id ON market_trade (buyer_user_id)",
    "CREATE INDEX idx_markettrade_seller_user_id ON market_trade (seller_user_id)",
    "CREATE INDEX idx_idrsconversion_user_id ON idrs_conversion (user_id)",
    "CREATE INDEX idx_wallet_user_active ON wallet (user_id) WHERE is_active = true",
    "CREATE INDEX idx_smartmeter_user_status ON smart_meter (user_id, status)",
]


def _server_clock(conn: psycopg.Connection[Any]) -> float:
    row = conn.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()
    return float(row[0]) if row else 0.0


def upstream_style(settings: PgSettings) -> tuple[float, float]:
    t0 = time.perf_counter()
    with settings.connect() as conn:
        start = _server_clock(conn)
        for stmt in UPSTREAM:
            conn.execute(stmt.encode())
        conn.commit()
        end = _server_clock(conn)
    return (end - start) * 1000, time.perf_counter() - t0


def main() -> int:
    rows = []
    with bench_cluster() as (server, owner):
        for users in SIZES:
            ours_db, theirs_db = f"bench_ours_{users}", f"bench_upstream_{users}"
            create_sample_database(server, ours_db, owner, users=users)
            with server.admin_connect() as admin:
                admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(
                    sql.Identifier(theirs_db), sql.Identifier(ours_db),
                    sql.Identifier(OWNER_ROLE)))
            os.environ["ENERLINK_MIGRATE_RUNS"] = str(server.base / "runs")
            t0 = time.perf_counter()
            _plan, result, _j = jobs.run(owner.with_dbname(ours_db), UP)
            ours_wall = time.perf_counter() - t0
            assert result.ok, result.error
            assert jobs.run(owner.with_dbname(ours_db), DOWN)[1].ok
            t0 = time.perf_counter()
            _p, all_result, _j = jobs.run(owner.with_dbname(ours_db), UP,
                                          options=RunOptions(count_all_tables=True))
            all_wall = time.perf_counter() - t0
            assert all_result.ok, all_result.error
            theirs_blocked, theirs_wall = upstream_style(owner.with_dbname(theirs_db))
            with server.admin_connect() as admin:
                for db in (ours_db, theirs_db):
                    admin.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(db)))
            blocked = result.blocked_ms or 0.0
            rows.append([f"{users:,}", f"{blocked:.1f}", f"{ours_wall:.2f}",
                         f"{result.counting_s:.2f}", f"{all_wall:.2f}",
                         f"{all_result.counting_s:.2f}",
                         f"{theirs_blocked:,.0f}", f"{theirs_wall:.2f}",
                         f"{theirs_blocked / blocked:,.0f}x"])
            print(f"  {users:,} users done", flush=True)
    print_table("Migration: application blocked (server time, first ALTER → COMMIT) and "
                f"command wall time, {os.cpu_count()} cores",
                ["users", "ours blocked ms", "ours migrate s", "of which row counts s",
                 "with --count-all s", "of which row counts s",
                 "upstream-style blocked ms",
                 "upstream-style s", "blocked ratio"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
