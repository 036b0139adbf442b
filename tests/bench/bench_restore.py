"""Benchmark: our restore (custom format, pg_restore -j N, checked, swapped) vs the guide's
`psql < plain.sql`, side by side on one database. `--users N` (or BENCH_RESTORE_USERS) for
a small run (default 1M); `--jobs N` (default the restore's own); `--maintenance-work-mem
SIZE` for the restore's sessions (default the restore's own). Target: ours has the
database back in at most 0.5x the guide's time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import (
    Cpu,
    bench_cluster,
    drop_database,
    guide_restore,
    print_table,
    sample_database,
    timed_pg_dump,
)

from wizard.core import restore
from wizard.core.events import BackupDone
from wizard.core.journal import Journal
from wizard.core.restore_inspect import sha256_of

DB = "bench_restore"
TARGET = 0.5  # ours over the guide's, at most


def main() -> int:
    defaults = restore.RestoreOptions()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int,
                        default=int(os.environ.get("BENCH_RESTORE_USERS", "1000000")))
    parser.add_argument("--jobs", type=int, default=defaults.jobs)
    parser.add_argument("--maintenance-work-mem", default=defaults.maintenance_work_mem,
                        metavar="SIZE")
    args = parser.parse_args()
    with bench_cluster() as (server, owner):
        os.environ["ENERLINK_MIGRATE_RUNS"] = str(server.base / "runs")
        live = sample_database(server, owner, args.users, DB)
        folder = server.base / "backups"
        folder.mkdir(mode=0o700)
        custom, plain = folder / "live.dump", folder / "live.sql"
        # Custom format with zlib level 1, as our backup step writes it, and its journal
        # record (so the restore checks the sha256 instead of reading the whole archive).
        dump_custom_s, custom_b = timed_pg_dump(live, ["-Fc", "-Z1"], custom)
        Journal.create(live, "backup").record(BackupDone({
            "path": str(custom), "format": "custom", "dbname": DB, "verified": True,
            "sha256": sha256_of(custom), "size_bytes": custom_b}))
        dump_plain_s, plain_b = timed_pg_dump(live, [], plain)
        print(f"  dumps written: custom {custom_b:,} bytes in {dump_custom_s:.1f} s, plain "
              f"{plain_b:,} bytes in {dump_plain_s:.1f} s", flush=True)

        cpu = Cpu(server)
        t0 = time.perf_counter()
        plan = restore.prepare(live, custom, restore.RestoreOptions(
            jobs=args.jobs, maintenance_work_mem=args.maintenance_work_mem))
        prepare_s = time.perf_counter() - t0

        def until_back(_level: str, message: str) -> None:
            if message.startswith("ANALYZE "):  # the database is back under its name
                cpu.stop()

        result = restore.run(plan, confirm=DB, report=until_back)
        ours_s = time.perf_counter() - t0
        assert result.ok, result.error
        print(f"  ours: {result.timings}", flush=True)
        guide_cpu = Cpu(server)
        guide_s = guide_restore(server, live, plain, f"{DB}_guide")
        guide_cpu.stop()
        print(f"  guide: {guide_s:.2f} s", flush=True)
        for name in (result.before_db or "", f"{DB}_guide"):
            drop_database(server, name)
        t = result.timings
        back_s = prepare_s + t["until_swap_s"]
        ratio = back_s / guide_s
        mem = args.maintenance_work_mem or "server's"
        rows = [
            [f"{args.users:,}", f"ours: custom -Z1, pg_restore -j {args.jobs}, "
             f"maintenance_work_mem {mem}, checked, swapped", f"{custom_b / 1e6:,.0f}",
             f"{prepare_s:.2f}", f"{t['restore_s']:.2f}",
             f"{t['create_s'] + t['check_s'] + t['swap_s']:.2f}", f"{back_s:.2f}",
             f"{t.get('analyze_s', 0):.2f}", f"{ours_s:.2f}",
             f"{ratio:.2f}x {'ok' if ratio <= TARGET else 'MISSED'}", cpu.text(back_s)],
            [f"{args.users:,}", "guide: createdb; psql < plain.sql (no checks)",
             f"{plain_b / 1e6:,.0f}", "-", f"{guide_s:.2f}", "-", f"{guide_s:.2f}", "-",
             f"{guide_s:.2f}", "1.00x", guide_cpu.text(guide_s)],
        ]
    print_table(f"Restore: wall time, {os.cpu_count()} cores. 'database back' is until the "
                "restored copy carries the live name (ours: the swap); ours then runs ANALYZE "
                "with the application already back. Ratio = ours / guide on 'database back', "
                f"target <= {TARGET}x",
                ["users", "method", "backup MB", "inspect s", "restore s",
                 "create+check+swap s", "database back s", "ANALYZE after s", "total s",
                 "ours/guide", "CPU s until back: programs + server (of all cores)"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
