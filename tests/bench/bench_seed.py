"""Benchmark: time to build the sample EnerLink database at 10k, 100k and 1M users.

Run by `make bench`. Sizes can be narrowed with BENCH_SEED_USERS=10000,100000.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import bench_cluster, print_table

from wizard.sandbox.sandbox import create_sample_database

SIZES = [int(s) for s in os.environ.get("BENCH_SEED_USERS", "10000,100000,1000000").split(",")]


def main() -> int:
    rows = []
    with bench_cluster() as (server, owner):
        version = server.major_version
        base_per_user = None
        for users in SIZES:
            started = time.perf_counter()
            report = create_sample_database(server, f"bench_{users}", owner, users=users)
            seconds = time.perf_counter() - started
            with server.admin_connect() as admin:
                size = admin.execute("SELECT pg_database_size(%s)",
                                     (f"bench_{users}",)).fetchone()
                admin.execute(f"DROP DATABASE bench_{users}")
            per_user = seconds / users
            base_per_user = base_per_user or per_user
            copy_s = sum(v for k, v in report.seconds.items() if k in report.rows)
            rows.append([f"{users:,}", f"{report.total_rows:,}", f"{seconds:.1f}",
                         f"{copy_s:.1f}", f"{report.seconds['keys']:.1f}",
                         f"{report.total_rows / seconds:,.0f}",
                         f"{(size[0] if size else 0) / 2**20:,.0f}",
                         f"{per_user / base_per_user:.2f}"])
            print(f"  {users:,} users done in {seconds:.1f} s", flush=True)
    print_table(
        "Sample database build (schema + COPY + keys/FKs + ANALYZE), PostgreSQL "
        f"{version}, {os.cpu_count()} cores",
        ["users", "rows", "total s", "COPY s", "keys+FKs s", "rows/s", "DB MiB",
         "time/user vs smallest"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
