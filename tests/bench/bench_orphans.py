"""Benchmark: our orphan scan vs one NOT EXISTS per column vs the guide's NOT IN query.

One sample database (1M users by default, `--users N` or BENCH_ORPHANS_USERS for a quick
run) with a few orphans injected per column. Side by side in one run, warm cache, best of
three: `orphans.scan()` (all columns, samples included), one `NOT EXISTS` count per column
as a DBA would type it in psql, the guide's `NOT IN` query on wallet alone (statement_timeout
60 s), and plain sequential scans of the child tables (count(*)) as the floor.

Two more rows say where the scan's time goes: the same single pass over the 11.25M child
values (tags and ctids included) with our settings, looking each value up in a copy of the
parent's keys cut down to 1,000 and to 100,000 keys. With 1,000 keys the hash stays in the
CPU cache, so that row is what the pass costs without the memory misses of a 1M-key hash:
the floor of any exact one-pass anti-join in PostgreSQL's executor on this machine.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from benchkit import bench_cluster, print_table

from wizard.core import names, orphans
from wizard.core.connection import PgSettings
from wizard.sandbox.sandbox import create_sample_database

ORPHANS_PER_COLUMN = 5
NOT_IN_TIMEOUT_S = 60
GUIDE_NOT_IN = "SELECT * FROM wallet WHERE prosumer_id NOT IN (SELECT prosumer_id FROM prosumer)"


def _best(runs: int, work: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
    return best, result


def _queries(settings: PgSettings, statements: list[str]) -> list[Any]:
    """Each statement on one fresh session, as in psql; the rows of those that return any."""
    results = []
    with settings.connect(autocommit=True) as conn:
        for statement in statements:
            cur = conn.execute(statement.encode())
            if cur.description is not None:
                results.append(cur.fetchall())
    return results


NOT_EXISTS = [f"SELECT count(*) FROM {p.table} c WHERE c.{p.old} IS NOT NULL AND NOT EXISTS "
              f"(SELECT 1 FROM prosumer p WHERE p.prosumer_id = c.{p.old})"
              for p in names.REFERENCING]
SEQ_SCANS = [f"SELECT count(*) FROM {t}" for t in names.CHILD_TABLES]
FLOOR_KEYS = (1_000, 100_000)
# Each child value with its column's tag and its ctid, as orphans.scan() streams them.
CHILD_VALUES = " UNION ALL ".join(f"SELECT {tag} AS tag, c.ctid AS tid, c.{p.old} AS v "
                                  f"FROM {p.table} c"
                                  for tag, p in enumerate(names.REFERENCING))


def _our_settings(work_mem_mb: int) -> list[str]:
    """What orphans._tune() sets for the scan's transaction, as plain session settings."""
    return [f"SET work_mem = '{work_mem_mb}MB'", "SET jit = off", "SET parallel_tuple_cost = 0"]


def _floor_passes(settings: PgSettings, users: int, work_mem_mb: int) -> dict[int, float]:
    """The scan's pass (tags and ctids through one Append, one parallel hash, our settings)
    against n of the parent's keys, evenly spread, for each n of FLOOR_KEYS below the
    number of users. It keeps the values that are found, so few rows leave the join.
    Best of 3, seconds."""
    timings = {}
    _queries(settings, ["CREATE SCHEMA bench_floor"])
    for n in (n for n in FLOOR_KEYS if n < users):
        _queries(settings, [f"CREATE TABLE bench_floor.keys_{n} AS SELECT prosumer_id FROM "
                            f"prosumer ORDER BY md5(prosumer_id) LIMIT {n}",
                            f"ANALYZE bench_floor.keys_{n}"])
        statements = [*_our_settings(work_mem_mb),
                      f"SELECT tag, count(tid) FROM ({CHILD_VALUES}) c WHERE EXISTS "
                      f"(SELECT 1 FROM bench_floor.keys_{n} p WHERE p.prosumer_id = c.v) "
                      f"GROUP BY tag"]
        timings[n] = _best(3, functools.partial(_queries, settings, statements))[0]
    return timings


def _not_in(settings: PgSettings) -> str:
    with settings.connect(autocommit=True) as conn:
        conn.execute(f"SET statement_timeout = '{NOT_IN_TIMEOUT_S}s'")
        started = time.perf_counter()
        try:
            rows = conn.execute(GUIDE_NOT_IN).fetchall()
        except psycopg.errors.QueryCanceled:
            return f"did not finish in {NOT_IN_TIMEOUT_S} s"
        return f"{time.perf_counter() - started:.2f} ({len(rows)} rows)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int,
                        default=int(os.environ.get("BENCH_ORPHANS_USERS", "1000000")))
    args = parser.parse_args(argv)
    with bench_cluster() as (server, owner):
        started = time.perf_counter()
        create_sample_database(server, "bench_orphans", owner, users=args.users,
                               orphans=ORPHANS_PER_COLUMN)
        with server.admin_connect("bench_orphans") as admin:
            admin.execute("VACUUM ANALYZE")
        print(f"  sample database of {args.users:,} users built in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        settings = owner.with_dbname("bench_orphans")
        os.environ["ENERLINK_MIGRATE_RUNS"] = str(server.base / "runs")
        _queries(settings, SEQ_SCANS)  # warm the cache and set hint bits for everyone
        load_before = os.getloadavg()[0]
        seq_s, _ = _best(3, lambda: _queries(settings, SEQ_SCANS))
        ours_s, scan = _best(3, lambda: orphans.scan(settings))
        exists_s, counts = _best(3, lambda: _queries(settings, NOT_EXISTS))
        tuned_s, _ = _best(3, lambda: _queries(settings, [
            *_our_settings(scan.work_mem_mb), *NOT_EXISTS]))
        not_in = _not_in(settings)
        export_s, files = _best(1, lambda: orphans.export(settings, scan,
                                                          server.base / "exports"))
        delete_s, after = _best(1, lambda: orphans.delete(settings, scan, files,
                                                          settings.dbname))
        floor_s = _floor_passes(settings, args.users, scan.work_mem_mb)
        load_after = os.getloadavg()[0]
    expected = len(names.REFERENCING) * ORPHANS_PER_COLUMN
    assert scan.total == expected, scan.lines()
    assert after.clean
    assert sum(after.deleted.values()) == sum(f.rows for f in files)
    assert sum(int(c[0][0]) for c in counts) == expected
    rows = [
        ["ours: orphans.scan(), 7 columns + samples", f"{ours_s:.2f}", "1.00x"],
        ["one NOT EXISTS per column (7 queries)", f"{exists_s:.2f}",
         f"{exists_s / ours_s:.2f}x"],
        ["the same, with our work_mem, jit and parallel settings", f"{tuned_s:.2f}",
         f"{tuned_s / ours_s:.2f}x"],
        ["guide: NOT IN on wallet alone", not_in, "—"],
        ["floor: count(*) of the 6 child tables", f"{seq_s:.2f}", f"{seq_s / ours_s:.2f}x"],
        *([f"our pass against {n:,} of the parent keys"
           + (" (hash in CPU cache)" if n == min(FLOOR_KEYS) else ""),
           f"{t:.2f}", f"{t / ours_s:.2f}x"] for n, t in floor_s.items()),
        [f"ours: export of the {sum(f.rows for f in files)} orphan rows to "
         f"{len(files)} CSVs", f"{export_s:.2f}", f"{export_s / ours_s:.2f}x"],
        ["ours: delete them in one transaction + re-scan", f"{delete_s:.2f}",
         f"{delete_s / ours_s:.2f}x"],
    ]
    print_table(f"Orphan scan at {args.users:,} users ({expected} orphans, work_mem for the "
                f"hash {scan.work_mem_mb} MB), {os.cpu_count()} cores, load average "
                f"{load_before:.1f} → {load_after:.1f}; best of 3 (export and delete once), "
                "seconds",
                ["method", "seconds", "time vs ours"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
