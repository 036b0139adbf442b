"""Benchmark: our verified backup step vs bare pg_dump variants, on one sample database.

Side by side in one run, interleaved over --rounds (best of each kept): the guide's plain
`pg_dump` (the anchor), our `backup` step (default format and compression, verification
included), bare `pg_dump -Fc` (its default zlib level), `pg_dump -Fc -Z0`, our backup in
directory format with `-j <cores>`, and, when a pg_dump 16+ is at hand (BENCH_PG_DUMP, or
what `make test-pg` fetched under .cache/pg), our backup with it in lz4 and zstd:1, custom
and directory `-j <cores>`. Columns: seconds, MB, both as a ratio of the plain dump, and
the issue's target (at most 0.9x its time at at most 20 % of its size). Run by `make
bench`; `--users N` (or BENCH_BACKUP_USERS) makes the database smaller while developing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import bench_cluster, newest_pg_dump, print_table, sample_database, timed_pg_dump

from wizard.core import backup
from wizard.core.archive import archive_sha256
from wizard.core.connection import PgSettings
from wizard.core.pgtools import Tool

DEFAULT_USERS = int(os.environ.get("BENCH_BACKUP_USERS", "1000000"))
TARGET_TIME, TARGET_SIZE = 0.9, 0.2  # of the plain dump's, at most
PLAIN = "plain pg_dump (the guide's way)"


Key = tuple[str, int, str, Path | None]  # our run: format, jobs, compression, pg_dump
VERIFY_S: dict[Key, float] = {}  # of our runs: seconds spent verifying
REHASH_S: dict[Key, float] = {}  # of our runs: the migrate guard's re-hash, s per GiB


def _ours(settings: PgSettings, folder: Path, fmt: str = "custom", jobs: int = 1,
          compression: str = backup.DEFAULT_COMPRESSION,
          tool: Tool | None = None) -> tuple[float, int]:
    t0 = time.perf_counter()
    result = backup.backup(settings, backup.BackupOptions(
        out_dir=folder, format=fmt, jobs=jobs, compression=compression,
        pg_dump=tool.path if tool else None))
    seconds = time.perf_counter() - t0
    assert result.verified, result.error
    key = (fmt, jobs, compression, tool.path if tool else None)
    VERIFY_S[key] = min(VERIFY_S.get(key, result.verify_s), result.verify_s)
    # What the migrate guard pays before the transaction: the archive read once more and
    # hashed (the page cache is warm here, as right after a backup; cold, it is disk-bound).
    t0 = time.perf_counter()
    archive_sha256(Path(result.path))
    per_gib = (time.perf_counter() - t0) / (result.size_bytes / 2**30)
    REHASH_S[key] = min(REHASH_S.get(key, per_gib), per_gib)
    return seconds, result.size_bytes


def _rehash(per_gib: float | None, size: int) -> str:
    return "-" if per_gib is None else f"{per_gib * size / 2**30:.2f} ({per_gib:.2f})"


def _clear(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700)


Run = Callable[[PgSettings, Path], tuple[float, int]]


def _variants(cores: int, newer: Tool | None) -> tuple[dict[str, Run], dict[str, Key]]:
    """The runs by label, and of ours their key in VERIFY_S / REHASH_S."""
    runs: dict[str, Run] = {PLAIN: lambda s, d: timed_pg_dump(s, [], d / "plain.sql")}
    keys: dict[str, Key] = {}

    def ours(label: str, fmt: str, jobs: int, compression: str,
             tool: Tool | None = None) -> None:
        runs[label] = lambda s, d: _ours(s, d, fmt, jobs, compression, tool)
        keys[label] = (fmt, jobs, compression, tool.path if tool else None)

    ours(f"ours: backup step defaults (custom, {backup.DEFAULT_COMPRESSION})", "custom", 1,
         backup.DEFAULT_COMPRESSION)
    runs["bare pg_dump -Fc (default zlib level)"] = \
        lambda s, d: timed_pg_dump(s, ["-Fc"], d / "default.dump")
    runs["pg_dump -Fc -Z0"] = lambda s, d: timed_pg_dump(s, ["-Fc", "-Z0"], d / "z0.dump")
    ours(f"ours: directory -j {cores}, {backup.DEFAULT_COMPRESSION}", "directory", cores,
         backup.DEFAULT_COMPRESSION)
    if newer is not None:
        for method in ("lz4", "zstd:1"):
            ours(f"ours, pg_dump {newer.version}: custom, {method}", "custom", 1, method,
                 newer)
            ours(f"ours, pg_dump {newer.version}: directory -j {cores}, {method}",
                 "directory", cores, method, newer)
    return runs, keys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=DEFAULT_USERS)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    newer = newest_pg_dump(16)
    print(f"  pg_dump 16+ for lz4/zstd: {newer.path if newer else 'none found'}", flush=True)
    variants, keys = _variants(cores, newer)
    best: dict[str, tuple[float, int]] = {}
    with bench_cluster() as (server, owner):
        settings = sample_database(server, owner, args.users, "bench_backup")
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
    plain_s, plain_b = best[PLAIN]
    rows = []
    for name, (s, b) in best.items():
        key = keys.get(name)
        verify = VERIFY_S.get(key) if key else None
        met = s / plain_s <= TARGET_TIME and b / plain_b <= TARGET_SIZE
        rows.append([name, f"{s:.2f}", f"{b / 1e6:,.0f}", f"{s / plain_s:.2f}x",
                     f"{b / plain_b:.0%}", "-" if name == PLAIN else "yes" if met else "no",
                     f"{verify:.2f}" if verify is not None else "-",
                     _rehash(REHASH_S.get(key) if key else None, b)])
    print_table(f"Backup of {args.users:,} users, best of {args.rounds} interleaved rounds, "
                f"{cores} cores; target <= {TARGET_TIME}x the plain dump's time at <= "
                f"{TARGET_SIZE:.0%} of its size",
                ["variant", "seconds", "MB", "time vs plain", "size vs plain", "target met",
                 "of which verifying s", "guard re-hash s (s/GiB)"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
