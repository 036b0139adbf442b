"""Benchmark: our restore (custom format, pg_restore -j 2, checked, swapped) vs the guide's
`psql < plain.sql`, side by side on one database. `--users N` for a small run (default 1M).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import bench_cluster, print_table
from psycopg import sql

from wizard.core import restore
from wizard.core.connection import PgSettings
from wizard.core.events import BackupDone
from wizard.core.journal import Journal
from wizard.core.pgenv import conninfo_arg, libpq_env
from wizard.core.restore_inspect import sha256_of
from wizard.sandbox.sandbox import OWNER_ROLE, create_sample_database
from wizard.sandbox.servers import PostgresServer

DB = "bench_restore"


def _dump(server: PostgresServer, settings: PgSettings, out: Path, *args: str) -> float:
    t0 = time.perf_counter()
    with libpq_env(settings) as env:
        subprocess.run([str(server.client_tool("pg_dump")), "--no-password", *args, "-f", str(out),
                        f"--dbname={conninfo_arg(settings)}"], env=env, check=True)
    return time.perf_counter() - t0


def _guide(server: PostgresServer, settings: PgSettings, plain: Path) -> float:
    """CREATE DATABASE, then `psql -d db < plain.sql` as the guide says."""
    target = settings.with_dbname(f"{DB}_guide")
    t0 = time.perf_counter()
    with server.admin_connect() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(target.dbname), sql.Identifier(OWNER_ROLE)))
    with libpq_env(settings) as env, open(plain, "rb") as stdin:
        subprocess.run([str(server.client_tool("psql")), "--no-password", "-q",
                        f"--dbname={conninfo_arg(target)}"], env=env, stdin=stdin,
                       stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int,
                        default=int(os.environ.get("BENCH_RESTORE_USERS", "1000000")))
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with bench_cluster() as (server, owner):
        os.environ["ENERLINK_MIGRATE_RUNS"] = str(server.base / "runs")
        live = owner.with_dbname(DB)
        create_sample_database(server, DB, owner, users=args.users)
        folder = server.base / "backups"
        folder.mkdir(mode=0o700)
        custom, plain = folder / "live.dump", folder / "live.sql"
        # Custom format with zlib level 1, as our backup step writes it, and its journal
        # record (so the restore checks the sha256 instead of reading the whole archive).
        dump_custom_s = _dump(server, live, custom, "-Fc", "-Z", "1")
        Journal.create(live, "backup").record(BackupDone({
            "path": str(custom), "format": "custom", "dbname": DB, "verified": True,
            "sha256": sha256_of(custom), "size_bytes": custom.stat().st_size}))
        dump_plain_s = _dump(server, live, plain)
        print(f"  dumps written: custom {custom.stat().st_size:,} bytes in {dump_custom_s:.1f}"
              f" s, plain {plain.stat().st_size:,} bytes in {dump_plain_s:.1f} s", flush=True)

        t0 = time.perf_counter()
        plan = restore.prepare(live, custom, restore.RestoreOptions(jobs=args.jobs))
        prepare_s = time.perf_counter() - t0
        result = restore.run(plan, confirm=DB)
        ours_s = time.perf_counter() - t0
        assert result.ok, result.error
        guide_s = _guide(server, live, plain)
        with server.admin_connect() as admin:
            for name in (result.before_db, f"{DB}_guide"):
                admin.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name or "")))
        t = result.timings
        back_s = prepare_s + t["until_swap_s"]
        rows = [
            [f"{args.users:,}", f"ours: custom -Z1, pg_restore -j {args.jobs}, checked, swapped",
             f"{custom.stat().st_size / 1e6:,.0f}", f"{prepare_s:.2f}",
             f"{t['restore_s']:.2f}",
             f"{t['create_s'] + t['check_s'] + t['swap_s']:.2f}", f"{back_s:.2f}",
             f"{t['analyze_s']:.2f}", f"{ours_s:.2f}", "1.00x"],
            [f"{args.users:,}", "guide: createdb; psql < plain.sql (no checks)",
             f"{plain.stat().st_size / 1e6:,.0f}", "-", f"{guide_s:.2f}", "-",
             f"{guide_s:.2f}", "-", f"{guide_s:.2f}", f"{guide_s / back_s:.2f}x"],
        ]
    print_table(f"Restore: wall time, {os.cpu_count()} cores. 'database back' is until the "
                "restored copy carries the live name (ours: the swap); ours then runs ANALYZE "
                "with the application already back. Ratio = guide / ours on 'database back'",
                ["users", "method", "backup MB", "inspect s", "restore s",
                 "create+check+swap s", "database back s", "ANALYZE after s", "total s",
                 "guide/ours"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
