"""Benchmark: the proof of a backup, side by side with what the guide does, on one database.

In one run on the same sample database: (a) the guide's `pg_dump > plain.sql`, (b) our
backup alone (custom format, default compression, verified; it also counts every table's
rows in pg_dump's snapshot meanwhile: count_s), (c) our backup + its proof (pg_restore -j N
into a scratch copy, compare with the snapshot, rehearse the migration, drop; once per
`--jobs` value, e.g. `--jobs 1,2,4`), (d) the guide's restore `createdb; psql < plain.sql`
and (e) our restore (inspect, pg_restore -j N, checks, swap). (c) and (d) run interleaved
over `--rounds` and the best of each is kept. The target: the proof's total at most 0.65x
the guide's psql restore. Also printed: CPU seconds of the programs and of the server,
where the proof's time goes (its steps, pg_restore's parts and slowest items) and the
measured proof rate (database bytes / s; prove.PRIOR_BYTES_PER_S guesses it before a
proof was measured). Experiments: `--compression none`, `--pgoptions '-c
maintenance_work_mem=256MB'` (for the proof only). `--users N` (or BENCH_PROOF_USERS) for
a small run; default 1M users.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
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

from wizard.core import backup, prove, restore
from wizard.core.backup_snapshot import table_counts
from wizard.core.fingerprint import schema_fingerprint
from wizard.core.journal import Journal

DB = "bench_proof"
DEFAULT_USERS = int(os.environ.get("BENCH_PROOF_USERS", "1000000"))
TARGET = 0.65  # the proof's total over the guide's psql restore, at most

# The proof's own step messages (prove, restore.restore_copy), by the phase they start.
PHASES = (("proving ", "estimate + journal"), ("creating database ", "create db"),
          ("restoring ", "pg_restore"), ("checking ", "checks of the copy"),
          ("comparing ", "compare (counts + fingerprint)"),
          ("rehearsing ", "rehearsal"), ("dropping the scratch copy", "drop copy"))
_LAUNCH = re.compile(r"launching item (\d+) (.+)")
_FINISH = re.compile(r"finished item (\d+) (.+)")
_ONE = re.compile(r"(processing data for table|creating [A-Z ]+) (.+)")


class Timeline:
    """Every report line of a run with its time: the proof's phases and pg_restore's items."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.lines: list[tuple[float, str, str]] = []

    def __call__(self, level: str, message: str) -> None:
        self.lines.append((time.perf_counter() - self.t0, level, message))

    def phases(self, end: float) -> list[tuple[str, float]]:
        marks: list[tuple[float, str]] = [(0.0, "prepare (inspection, before total_s)")]
        for t, level, message in self.lines:
            # Until "proving": prepare's own steps (its free space check is "checking ...").
            if level != "step" or (len(marks) == 1 and not message.startswith("proving ")):
                continue
            for prefix, name in PHASES:
                if message.startswith(prefix) and name not in (m[1] for m in marks):
                    marks.append((t, name))
        marks.append((end, "end"))
        return [(name, marks[i + 1][0] - t) for i, (t, name) in enumerate(marks[:-1])]

    def items(self, jobs: int) -> list[tuple[float, str]]:
        """pg_restore's TOC items by seconds, slowest first (-j N: launched → finished;
        -j 1: from its line to the next)."""
        out: list[tuple[float, str]] = []
        restore_lines = [(t, m.split(": ", 1)[-1]) for t, level, m in self.lines
                         if level in ("info", "warn") and m.startswith("pg_restore:")]
        if jobs > 1:
            started: dict[str, float] = {}
            for t, m in restore_lines:
                if (a := _LAUNCH.search(m)) is not None:
                    started[a.group(1)] = t
                elif (b := _FINISH.search(m)) is not None and b.group(1) in started:
                    out.append((t - started.pop(b.group(1)), b.group(2)))
        else:
            for (t, m), (t_next, _m) in itertools.pairwise(restore_lines):
                if (c := _ONE.search(m)) is not None:
                    out.append((t_next - t, f"{c.group(1)} {c.group(2)}"))
        return sorted(out, reverse=True)

    def sections(self, jobs: int) -> dict[str, float]:
        """pg_restore -j N: seconds of its pre-data, data and post-data parts, and the sum
        of its items' seconds by kind."""
        lines = [(t, m) for t, level, m in self.lines if m.startswith("pg_restore:")]
        if jobs <= 1 or not lines:
            return {}
        data = [t for t, m in lines if "TABLE DATA" in m and ("launching item" in m
                                                             or "finished item" in m)]
        start, end = lines[0][0], lines[-1][0]
        out = {"pre-data": (data[0] if data else end) - start,
               "data": (data[-1] - data[0]) if data else 0.0,
               "post-data": end - (data[-1] if data else end)}
        for seconds, name in self.items(jobs):
            kind = ("TABLE DATA" if name.startswith("TABLE DATA") else
                    "FK CONSTRAINT" if name.startswith("FK CONSTRAINT") else
                    "INDEX" if name.startswith("INDEX") else
                    "CONSTRAINT (PK/unique)" if name.startswith("CONSTRAINT") else "other")
            out[f"sum of {kind} items"] = out.get(f"sum of {kind} items", 0.0) + seconds
        return out


def _jobs_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _proof_rows(proofs: list[tuple[int, prove.ProofResult, float, Timeline]],
                backup_s: float, guide_s: float, cpu: dict[str, Cpu]) -> list[list[str]]:
    rows = []
    for jobs, proof, wall_s, _tl in proofs:
        t = proof.timings
        other = t["total_s"] - t.get("restore_s", 0) - t.get("compare_s", 0) \
            - t.get("rehearsal_s", 0)
        ratio = t["total_s"] / guide_s
        rows.append([f"(c) ours: proof, pg_restore -j {jobs}", f"{t.get('restore_s', 0):.2f}",
                     f"{t.get('compare_s', 0):.2f}", f"{t.get('rehearsal_s', 0):.2f}",
                     f"{other:.2f}", f"{t['total_s']:.2f}", f"{wall_s - t['total_s']:.2f}",
                     f"{ratio:.2f}x {'ok' if ratio <= TARGET else 'MISSED'}",
                     f"{(backup_s + t['total_s']) / backup_s:.2f}x",
                     f"{proof.db_size_bytes / t['total_s'] / 1e6:.1f}",
                     cpu[f"c{jobs}"].text(wall_s),
                     "yes" if proof.proven else f"NO: {proof.reason}"])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=DEFAULT_USERS)
    parser.add_argument("--jobs", type=_jobs_list, default=[prove.DEFAULT_JOBS],
                        help="pg_restore jobs of the proof (and of our restore: the first); "
                        "several, comma-separated, prove once per value (default the "
                        "proof's own, %(default)s)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds of the proofs and the psql restore, interleaved; the "
                        "best of each is kept (default 2)")
    parser.add_argument("--no-restore", action="store_true",
                        help="skip (e), our restore with the swap")
    parser.add_argument("--top", type=int, default=8,
                        help="pg_restore's slowest items to list per proof (default 8)")
    parser.add_argument("--compression", default=backup.DEFAULT_COMPRESSION,
                        help=f"our backup's compression (default {backup.DEFAULT_COMPRESSION})")
    parser.add_argument("--pgoptions", default=None, metavar="OPTS",
                        help="PGOPTIONS for the proof's sessions and pg_restore only, e.g. "
                        "'-c maintenance_work_mem=512MB' (an experiment; prove sets none)")
    args = parser.parse_args(argv)
    cores = os.cpu_count()
    with bench_cluster() as (server, owner):
        os.environ["ENERLINK_MIGRATE_RUNS"] = str(server.base / "runs")
        live = sample_database(server, owner, args.users, DB)
        with live.connect() as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        db_bytes = int(row[0]) if row else 0
        folder = server.base / "backups"
        folder.mkdir(mode=0o700)
        plain = folder / "plain.sql"

        # (a) the guide's plain dump
        cpu: dict[str, Cpu] = {}
        cpu["a"] = Cpu(server)
        plain_s, plain_b = timed_pg_dump(live, [], plain)
        cpu["a"].stop()
        print(f"  (a) plain pg_dump: {plain_s:.2f} s, {plain_b:,} bytes", flush=True)

        # (b) our backup alone, journaled as the CLI does (the proof finds its snapshot there)
        journal = Journal.create(live, "backup")
        cpu["b"] = Cpu(server)
        t0 = time.perf_counter()
        ours = backup.backup(live, backup.BackupOptions(out_dir=folder,
                                                        compression=args.compression),
                             journal=journal)
        backup_s = time.perf_counter() - t0
        cpu["b"].stop()
        assert ours.verified, ours.error
        snap = ours.snapshot or {}
        count_s = float(snap.get("count_s", 0.0))
        print(f"  (b) our backup: {backup_s:.2f} s (pg_dump {ours.dump_s:.2f} s, verify "
              f"{ours.verify_s:.2f} s, snapshot counts {count_s:.2f} s), "
              f"{ours.size_bytes:,} bytes", flush=True)

        # (c) its proof, once per --jobs value, and (d) the guide's restore, interleaved
        # over --rounds (others may share the machine): the best of each is kept.
        best_proof: dict[int, tuple[int, prove.ProofResult, float, Timeline]] = {}
        guide_s = float("inf")
        for n in range(args.rounds):
            for jobs in args.jobs:
                if args.pgoptions:
                    os.environ["PGOPTIONS"] = args.pgoptions
                meter = Cpu(server)
                tl = Timeline()
                try:
                    proof = prove.prove(live, ours.path, prove.ProofOptions(jobs=jobs),
                                        report=tl, journal=journal)
                finally:
                    os.environ.pop("PGOPTIONS", None)
                wall_s = time.perf_counter() - tl.t0
                meter.stop()
                assert proof.dropped, proof.warnings
                print(f"  round {n + 1}: (c) proof -j {jobs}: {proof.summary()}; "
                      f"{proof.timings}; CPU {meter.text(wall_s)}", flush=True)
                if jobs not in best_proof or \
                        proof.timings["total_s"] < best_proof[jobs][1].timings["total_s"]:
                    best_proof[jobs] = (jobs, proof, wall_s, tl)
                    cpu[f"c{jobs}"] = meter
            meter = Cpu(server)
            seconds = guide_restore(server, live, plain, f"{DB}_guide")
            meter.stop()
            drop_database(server, f"{DB}_guide")
            print(f"  round {n + 1}: (d) psql < plain.sql: {seconds:.2f} s; CPU "
                  f"{meter.text(seconds)}", flush=True)
            if seconds < guide_s:
                guide_s, cpu["d"] = seconds, meter
        proofs = [best_proof[jobs] for jobs in args.jobs]

        # (e) our restore, swapped in (last: the live database is the restored copy after it)
        restored: restore.RestoreResult | None = None
        restore_s = 0.0
        if not args.no_restore:
            cpu["e"] = Cpu(server)
            t0 = time.perf_counter()
            plan = restore.prepare(live, ours.path, restore.RestoreOptions(
                jobs=args.jobs[0], terminate_sessions=True))
            restored = restore.run(plan, confirm=DB)
            restore_s = time.perf_counter() - t0
            cpu["e"].stop()
            assert restored.ok, restored.error
            drop_database(server, restored.before_db or "")
            print(f"  (e) our restore: {restore_s:.2f} s; {restored.timings}", flush=True)

        # What the comparison costs on its own, on the (restored) live database now.
        with live.connect(autocommit=True) as conn:
            t0 = time.perf_counter()
            counts = table_counts(conn)
            counts_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            schema_fingerprint(conn)
            fp_s = time.perf_counter() - t0

    best = proofs[0][1]
    cpu_head = "CPU s: programs + server (of all cores)"
    rows = [
        ["(a) guide: pg_dump > plain.sql", f"{plain_s:.2f}", f"{plain_b / 1e6:,.0f}",
         "1.00x", "-", "-", cpu["a"].text(plain_s)],
        [f"(b) ours: backup alone ({ours.compression}, -Fc, verified)",
         f"{backup_s:.2f}", f"{ours.size_bytes / 1e6:,.0f}", f"{backup_s / plain_s:.2f}x",
         "1.00x", f"{count_s:.2f}", cpu["b"].text(backup_s)],
    ]
    rows += [[f"(c) ours: backup + proof -j {jobs}", f"{backup_s + p.timings['total_s']:.2f}",
              f"{ours.size_bytes / 1e6:,.0f}",
              f"{(backup_s + p.timings['total_s']) / plain_s:.2f}x",
              f"{(backup_s + p.timings['total_s']) / backup_s:.2f}x", f"{count_s:.2f}", "-"]
             for jobs, p, _w, _t in proofs]
    print_table(f"Backup: {args.users:,} users, database {db_bytes / 1e6:,.0f} MB, {cores} "
                f"cores (of our backup: pg_dump {ours.dump_s:.2f} s, verify "
                f"{ours.verify_s:.2f} s)",
                ["variant", "seconds", "file MB", "vs plain pg_dump", "vs backup alone",
                 "snapshot count_s", cpu_head], rows)

    rows = [["(d) guide: createdb; psql < plain.sql", "-", "-", "-", "-", f"{guide_s:.2f}",
             "-", "1.00x", "-", "-", cpu["d"].text(guide_s), "-"]]
    rows += _proof_rows(proofs, backup_s, guide_s, cpu)
    if restored is not None:
        t = restored.timings
        rows.append([f"(e) ours: restore -j {args.jobs[0]}, checked, swapped",
                     f"{t.get('restore_s', 0):.2f}", "-", "-",
                     f"{restore_s - t.get('restore_s', 0):.2f}", f"{restore_s:.2f}", "-",
                     f"{restore_s / guide_s:.2f}x", "-", "-", cpu["e"].text(restore_s), "-"])
    print_table(f"Restore and proof (best of {args.rounds}): {args.users:,} users, database "
                f"{db_bytes / 1e6:,.0f} MB "
                f"(archive {ours.size_bytes / 1e6:,.0f} MB, plain {plain_b / 1e6:,.0f} MB), "
                f"{cores} cores. Target: proof total <= {TARGET}x the guide's psql restore",
                ["method", "restore s", "compare s", "rehearsal s", "other s", "total s",
                 "prepare s (outside total)", "vs psql restore", "backup+proof / backup",
                 "proof MB/s", cpu_head, "proven"], rows)

    for jobs, proof, wall_s, tl in proofs:
        phases = tl.phases(wall_s)
        print_table(f"Where the proof -j {jobs} goes ({wall_s:.2f} s wall, total_s "
                    f"{proof.timings['total_s']:.2f})", ["phase", "seconds", "share"],
                    [[name, f"{s:.2f}", f"{s / wall_s:.0%}"] for name, s in phases])
        sections = tl.sections(jobs)
        if sections:
            print_table(f"pg_restore -j {jobs}: its parts (wall) and its items' seconds summed",
                        ["part", "seconds"], [[k, f"{v:.2f}"] for k, v in sections.items()])
        items = tl.items(jobs)[:args.top]
        if items:
            print_table(f"pg_restore -j {jobs}: slowest items",
                        ["item", "seconds"], [[name, f"{s:.2f}"] for s, name in items])
    print(f"comparison alone on the live database: table_counts {counts_s:.2f} s "
          f"({len(counts)} tables, {sum(counts.values()):,} rows), schema_fingerprint "
          f"{fp_s:.2f} s")
    t = best.timings
    print(f"proof rate (-j {proofs[0][0]}): {best.db_size_bytes:,} bytes "
          f"(pg_database_size) / {t['total_s']:.2f} s = "
          f"{best.db_size_bytes / t['total_s'] / 1e6:.1f} MB/s "
          f"(prove.PRIOR_BYTES_PER_S = {prove.PRIOR_BYTES_PER_S / 1e6:.0f} MB/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
