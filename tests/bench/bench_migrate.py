"""Benchmark: how long the application is blocked by our migration, by the same plan
written by hand, and by an upstream-style one.

For each size: build the sample, clone it twice, run `migrate` (ours) on one copy, our
plan's SQL as one hand-written script (one round trip, no checks) on the second, and the
upstream migration's approach (rename, drop + re-add every FK, eight CREATE INDEX, one
transaction) on the third; then revert ours and migrate again with exact counts of every
table (`--count-all`), to show what those scans cost. "Blocked" is server time from the
first ALTER to the end of COMMIT as the tool reports it; "probe" is the longest wait of a
concurrent application query on wallet, measured by a second session while it runs.
Run by `make bench`; sizes: BENCH_MIGRATE_USERS=10000,100000,1000000.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
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
ROUNDS = int(os.environ.get("BENCH_MIGRATE_ROUNDS", "5"))  # medians of this many runs

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


def _probe_loop(settings: PgSettings, ready: Any, stop: Any, worst: Any) -> None:
    with settings.connect(autocommit=True) as conn:
        ready.set()
        while not stop.is_set():
            t0 = time.perf_counter()
            conn.execute("SELECT 1 FROM wallet LIMIT 1")
            worst.value = max(worst.value, (time.perf_counter() - t0) * 1000)
            time.sleep(0.001)


class Probe:
    """An application session, in a process of its own (so the tool's Python cannot delay
    it), asking for wallet rows every millisecond; `worst_ms` is its longest wait."""

    def __init__(self, settings: PgSettings) -> None:
        ctx = multiprocessing.get_context("fork")
        self._ready, self._stop = ctx.Event(), ctx.Event()
        self._worst = ctx.Value("d", 0.0)
        self._process = ctx.Process(target=_probe_loop, args=(
            settings, self._ready, self._stop, self._worst))

    @property
    def worst_ms(self) -> float:
        return float(self._worst.value)

    @contextmanager
    def running(self) -> Iterator[Probe]:
        self._process.start()
        self._ready.wait(10)
        try:
            yield self
        finally:
            self._stop.set()
            self._process.join(10)


def probed(settings: PgSettings, work: Callable[[], Any]) -> tuple[Any, float]:
    with Probe(settings).running() as probe:
        time.sleep(0.05)  # a few probe queries before, so its connection is warm
        value = work()
        time.sleep(0.05)
    return value, probe.worst_ms


def hand_written(settings: PgSettings, script: str) -> float:
    """Our plan's statements as one script in one round trip: BEGIN … COMMIT, no checks."""
    with settings.connect(autocommit=True) as conn:
        start = _server_clock(conn)
        conn.execute(script.encode())
        end = _server_clock(conn)
    return (end - start) * 1000


def upstream_style(settings: PgSettings) -> tuple[float, float]:
    t0 = time.perf_counter()
    with settings.connect() as conn:
        start = _server_clock(conn)
        for stmt in UPSTREAM:
            conn.execute(stmt.encode())
        conn.commit()
        end = _server_clock(conn)
    return (end - start) * 1000, time.perf_counter() - t0


def _script(operations: list[Any]) -> str:
    return "BEGIN;\n" + "".join(op.sql + ";\n" for op in operations) + "COMMIT;\n"


def _clone(server: Any, source: str, target: str) -> None:
    with server.admin_connect() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(
            sql.Identifier(target), sql.Identifier(source), sql.Identifier(OWNER_ROLE)))


def main() -> int:
    rows = []
    with bench_cluster() as (server, owner):
        os.environ["ENERLINK_MIGRATE_RUNS"] = str(server.base / "runs")
        for users in SIZES:
            ours_db, hand_db = f"bench_ours_{users}", f"bench_hand_{users}"
            theirs_db = f"bench_upstream_{users}"
            create_sample_database(server, ours_db, owner, users=users)
            _clone(server, ours_db, hand_db)
            _clone(server, ours_db, theirs_db)
            ours, hand = owner.with_dbname(ours_db), owner.with_dbname(hand_db)
            ours_runs, hand_runs = [], []
            down_script = ""
            for n in range(ROUNDS):  # interleaved: ours, then the hand-written script
                if n:
                    assert jobs.run(ours, DOWN)[1].ok
                    hand_written(hand, down_script)
                t0 = time.perf_counter()
                (plan, result, _j), probe_ms = probed(ours, partial(jobs.run, ours, UP))
                assert result.ok, result.error
                ours_runs.append((result.blocked_ms or 0.0, probe_ms,
                                  time.perf_counter() - t0, result.counting_s))
                script = _script(plan.catalog_steps)
                down_script = _script([i for i in (op.inverse() for op in
                                                   reversed(plan.catalog_steps)) if i])
                hand_runs.append(probed(hand, partial(hand_written, hand, script)))
            blocked, ours_probe, ours_wall, counting = (statistics.median(x)
                                                        for x in zip(*ours_runs, strict=True))
            hand_blocked, hand_probe = (statistics.median(x)
                                        for x in zip(*hand_runs, strict=True))
            assert jobs.run(ours, DOWN)[1].ok
            t0 = time.perf_counter()
            _p, all_result, _j = jobs.run(ours, UP, options=RunOptions(count_all_tables=True))
            all_wall = time.perf_counter() - t0
            assert all_result.ok, all_result.error
            theirs_blocked, theirs_wall = upstream_style(owner.with_dbname(theirs_db))
            with server.admin_connect() as admin:
                for db in (ours_db, hand_db, theirs_db):
                    admin.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(db)))
            rows.append([f"{users:,}", f"{blocked:.1f}", f"{ours_probe:.1f}",
                         f"{hand_blocked:.1f}", f"{hand_probe:.1f}",
                         f"{blocked / hand_blocked:.1f}x", f"{ours_wall:.2f}",
                         f"{counting:.2f}", f"{all_wall:.2f}",
                         f"{theirs_blocked:,.0f}", f"{theirs_wall:.2f}",
                         f"{theirs_blocked / blocked:,.0f}x"])
            print(f"  {users:,} users done", flush=True)
    print_table(f"Migration: application blocked (server time, first ALTER → COMMIT; probe: "
                f"longest wait of a concurrent query on wallet, from another process), "
                f"medians of {ROUNDS} interleaved runs, and wall time, {os.cpu_count()} cores "
                f"(target: ours ≤ 8 ms at 1M users)",
                ["users", "ours blocked ms", "ours probe ms", "hand-written blocked ms",
                 "hand-written probe ms", "ours / hand", "ours migrate s",
                 "of which row counts s", "with --count-all s", "upstream-style blocked ms",
                 "upstream-style s", "upstream / ours"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
