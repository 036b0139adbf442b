"""Benchmark: our verified backup step vs bare pg_dump variants, on one sample database.

Side by side in one run, interleaved over --rounds (best of each kept): our `backup` step
(default compression, verification included), bare `pg_dump -Fc` (its default zlib level),
the guide's plain `pg_dump`, and `pg_dump -Fc -Z0`. Columns: seconds, MB, and both as a
ratio of the plain dump. Run by `make bench`; `--users N` (or BENCH_BACKUP_USERS) makes
the database smaller while developing. `timed_pg_dump` and `sample_database` are shared
with the restore benchmark.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import bench_cluster, print_table
from psycopg import sql

from wizard.core import backup
from wizard.core.archive import archive_sha256, archive_size
from wizard.core.connection import PgSettings
from wizard.core.pgenv import conninfo_arg, libpq_env
from wizard.core.pgtools import find_tool
from wizard.sandbox.sandbox import create_sample_database
from wizard.sandbox.servers import PostgresServer

DEFAULT_USERS = int(os.environ.get("BENCH_BACKUP_USERS", "1000000"))


def sample_database(server: PostgresServer, owner: PgSettings, users: int,
                    name: str = "bench_backup") -> PgSettings:
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


def timed_pg_dump(settings: PgSettings, args: list[str], target: Path) -> tuple[float, int]:
    """Run pg_dump `args` into `target` as a DBA would (password via a pgpass file);
    seconds and bytes written."""
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


VERIFY_S: dict[str, float] = {}  # of our runs: seconds spent verifying, by format
REHASH_S: dict[str, float] = {}  # of our runs: the migrate guard's re-hash, s per GiB


def _ours(settings: PgSettings, folder: Path, fmt: str = "custom",
          jobs: int = 1) -> tuple[float, int]:
    t0 = time.perf_counter()
    result = backup.backup(settings, backup.BackupOptions(out_dir=folder, format=fmt,
                                                          jobs=jobs))
    seconds = time.perf_counter() - t0
    assert result.verified, result.error
    VERIFY_S[fmt] = min(VERIFY_S.get(fmt, result.verify_s), result.verify_s)
    # What the migrate guard pays before the transaction: the archive read once more and
    # hashed (the page cache is warm here, as right after a backup; cold, it is disk-bound).
    t0 = time.perf_counter()
    archive_sha256(Path(result.path))
    per_gib = (time.perf_counter() - t0) / (result.size_bytes / 2**30)
    REHASH_S[fmt] = min(REHASH_S.get(fmt, per_gib), per_gib)
    return seconds, result.size_bytes


def _rehash(per_gib: float | None, size: int) -> str:
    return "-" if per_gib is None else f"{per_gib * size / 2**30:.2f} ({per_gib:.2f})"


def _clear(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=DEFAULT_USERS)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    ours_label = f"ours: backup step ({backup.DEFAULT_COMPRESSION}, -Fc, incl. verification)"
    variants: dict[str, Callable[[PgSettings, Path], tuple[float, int]]] = {
        "plain pg_dump (the guide's way)":
            lambda s, d: timed_pg_dump(s, [], d / "plain.sql"),
        ours_label: _ours,
        "bare pg_dump -Fc (default zlib level)":
            lambda s, d: timed_pg_dump(s, ["-Fc"], d / "default.dump"),
        "pg_dump -Fc -Z0": lambda s, d: timed_pg_dump(s, ["-Fc", "-Z0"], d / "z0.dump"),
        "ours, directory format -j 2":
            lambda s, d: _ours(s, d, "directory", 2),
    }
    best: dict[str, tuple[float, int]] = {}
    with bench_cluster() as (server, owner):
        settings = sample_database(server, owner, args.users)
        folder = server.base / "bench-backups"
        for n in range(args.rounds):
            for name, run in variants.items():
                _clear(folder)
                seconds, size = run(settings, folder)
                print(f"  round {n + 1}: {name}: {seconds:.2f} s, {size / 1e6:.0f} MB",
                      flush=True)
                if name not in best or seconds < best[name][0]:
                    best[name] = (seconds, size)
        shutil.rmtree(folder, ignore_errors=True)
    plain_s, plain_b = best["plain pg_dump (the guide's way)"]
    verify = {ours_label: VERIFY_S.get("custom"),
              "ours, directory format -j 2": VERIFY_S.get("directory")}
    rehash = {ours_label: REHASH_S.get("custom"),
              "ours, directory format -j 2": REHASH_S.get("directory")}
    rows = [[name, f"{s:.2f}", f"{b / 1e6:,.0f}", f"{s / plain_s:.2f}x", f"{b / plain_b:.0%}",
             f"{verify[name]:.2f}" if verify.get(name) is not None else "-",
             _rehash(rehash.get(name), b)]
            for name, (s, b) in best.items()]
    print_table(f"Backup of {args.users:,} users, best of {args.rounds} interleaved rounds, "
                f"{os.cpu_count()} cores", ["variant", "seconds", "MB", "time vs plain",
                                             "size vs plain", "of which verifying s",
                                             "guard re-hash s (s/GiB)"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
