"""The `backup` command: a verified pg_dump of the database, recorded in a run journal."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from wizard.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    CliError,
    Printer,
    add_change_options,
    open_journal,
    pg_settings,
    printer,
)
from wizard.core import backup, prove
from wizard.core.backup import (
    DEFAULT_COMPRESSION,
    DEFAULT_LOCK_WAIT_S,
    BackupOptionError,
    BackupOptions,
    BackupRefused,
)
from wizard.core.connection import PgSettings
from wizard.core.journal import Journal
from wizard.core.reporting import Cancelled
from wizard.core.units import format_bytes


def cmd_backup(args: argparse.Namespace) -> int:
    settings = pg_settings(args)
    options = BackupOptions(out_dir=Path(args.out), format=args.format, jobs=args.jobs,
                            compression=args.compress, lock_wait_timeout_s=args.lock_wait,
                            pg_dump=args.pg_dump, pg_restore=args.pg_restore)
    try:
        plan = backup.prepare(settings, options)
    except BackupOptionError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except BackupRefused as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    journal = open_journal(args, settings, "backup")
    out = printer(args)
    cancel = threading.Event()
    # pg_dump runs in its own session, so Ctrl-C reaches only us: turn it into a cancel,
    # which stops pg_dump's process group, removes the partial file and journals it.
    previous = signal.signal(signal.SIGINT, lambda _sig, _frame: cancel.set())
    try:
        # Every pg_dump line, and the fraction at each percent (a dump can take an hour).
        result = backup.run(plan, report=out.reporter(), progress=out.progress(0.01),
                            cancel=cancel, journal=journal)
    except Cancelled as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    except BackupRefused as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    proof: prove.ProofResult | None = None
    if result.verified and args.prove:
        proof = _prove(settings, Path(result.path), args, out, journal)
    if result.verified:
        text = (f"backup verified: {result.path}\n  {format_bytes(result.size_bytes)}, "
                f"{result.toc_entries} TOC entries, sha256 {result.sha256}\n"
                f"  {result.format} format, compression {result.compression}, "
                f"{result.duration_s:.1f} s (pg_dump {result.dump_s:.1f} s, verification "
                f"{result.verify_s:.1f} s)")
        if proof is not None:
            text += "\n" + _proof_text(proof)
        text += f"\njournal: {journal.folder}"
    else:
        text = f"backup FAILED: {result.error}\njournal: {journal.folder}"
    out.result({**result.to_dict(), "journal": str(journal.folder),
                "proof": proof.to_dict() if proof else None}, text)
    return EXIT_OK if result.verified and (proof is None or proof.proven) else EXIT_FAILED


def _proof_options(args: argparse.Namespace) -> prove.ProofOptions:
    return prove.ProofOptions(jobs=args.prove_jobs, rehearse=not args.no_rehearsal,
                              maintenance_work_mem=args.maintenance_work_mem or None,
                              maintenance_db=args.maintenance_db,
                              template=args.template, pg_restore=args.pg_restore,
                              accept_unknown_space=args.accept_unknown_free_space)


def _prove(settings: PgSettings, path: Path, args: argparse.Namespace, out: Printer,
           journal: Journal | None) -> prove.ProofResult:
    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda _sig, _frame: cancel.set())
    shown = {"step", "warn", "error"} | ({"info"} if getattr(args, "verbose", False)
                                         else set())
    try:
        return prove.prove(settings, path, _proof_options(args),
                           report=out.reporter(shown), progress=out.progress(0.01),
                           cancel=cancel, journal=journal)
    except prove.ProofRefused as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    finally:
        signal.signal(signal.SIGINT, previous)


def _proof_text(proof: prove.ProofResult) -> str:
    lines = [f"proof of {proof.path}: {proof.summary()}"]
    lines += [f"  ✘ {d}" for d in (proof.count_diffs + proof.fingerprint_diffs)[:20]]
    lines += [f"  ! {w}" for w in proof.warnings]
    lines.append("  timings: " + ", ".join(f"{k[:-2]} {v} s" for k, v in proof.timings.items()))
    lines.append(f"  the scratch copy {proof.scratch_db} was "
                 + ("dropped" if proof.dropped else "NOT dropped (see above)"))
    return "\n".join(lines)


def cmd_prove(args: argparse.Namespace) -> int:
    """Prove an existing backup: restore it into a scratch copy, compare, rehearse, drop."""
    settings = pg_settings(args)
    out = printer(args)
    proof = _prove(settings, Path(args.backup), args, out,
                   open_journal(args, settings, "prove"))
    out.result(proof.to_dict(), _proof_text(proof))
    return EXIT_OK if proof.proven else EXIT_FAILED


def _proof_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prove-jobs", type=int, default=prove.DEFAULT_JOBS, metavar="N",
                   help="parallel pg_restore jobs of the proof (default %(default)s: twice "
                   "the cores here, 2 to 8)")
    p.add_argument("--maintenance-work-mem", default=prove.DEFAULT_MAINTENANCE_WORK_MEM,
                   metavar="SIZE", help="maintenance_work_mem of the proof's pg_restore "
                   "sessions (default %(default)s; the server may use up to jobs x this; "
                   "'' keeps the server's setting)")
    p.add_argument("--no-rehearsal", action="store_true",
                   help="prove the restore only; do not rehearse the migration on the copy")
    p.add_argument("--maintenance-db", default="postgres", metavar="DB",
                   help="database to connect to for creating and dropping the scratch copy "
                   "(default postgres)")
    p.add_argument("--template", default="template0", metavar="DB",
                   help="create the scratch copy from this template (default template0); "
                   "template1 where a superuser pre-created extensions the role may not "
                   "create")
    p.add_argument("--accept-unknown-free-space", action="store_true",
                   help="go on when the server's free space cannot be read (check df there "
                   "yourself: the copy needs about the database's size plus WAL)")


def add_dump_options(p: argparse.ArgumentParser, *, fmt: str = "custom",
                     jobs: int = 1) -> None:
    """--format, --jobs and --compress: how pg_dump writes (backup, prepare)."""
    p.add_argument("--format", choices=backup.FORMATS, default=fmt,
                   help="custom (one file) or directory (a folder; allows --jobs); default "
                   "%(default)s")
    p.add_argument("--jobs", type=int, default=jobs, metavar="N",
                   help="parallel pg_dump processes (directory format only); default "
                   "%(default)s")
    p.add_argument("--compress", default=DEFAULT_COMPRESSION, metavar="METHOD",
                   help=f"{backup.AUTO} (default): {backup.AUTO_MODERN} with a pg_dump 16+ built "
                   f"with zstd, else {backup.AUTO_OLDER}; or none, gzip:1..9, lz4, "
                   f"zstd[:level] (pg_dump 16+)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("backup", parents=[common],
                       help="a verified pg_dump backup (custom format by default)",
                       description="pg_dump the database into a private (0700) folder as a "
                       "0600 file named enerlink_<db>_<UTC time>_pre-user-rename.dump, then "
                       "verify it (archive structure, pg_restore --list, sha256) and record it "
                       "in a run journal. Exit 0 only when the backup is verified.")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the backup "
                   "(created 0700 if missing)")
    add_dump_options(p)
    p.add_argument("--lock-wait", type=float, default=DEFAULT_LOCK_WAIT_S, metavar="S",
                   help="give up when a table stays locked by another session this long "
                   f"(default {DEFAULT_LOCK_WAIT_S:g} s)")
    p.add_argument("--pg-dump", metavar="PATH", help="the pg_dump to use (program or folder); "
                   "default: searched on PATH and in the usual install folders")
    p.add_argument("--pg-restore", metavar="PATH", help="the pg_restore that verifies the "
                   "backup; default: the one next to pg_dump")
    p.add_argument("--prove", action="store_true",
                   help="then prove it: restore it into a scratch database on the same server "
                   "(<db>_proof_<time>), compare every table's rows and the schema with the "
                   "dump's snapshot, rehearse the migration there (rolled back), drop it; "
                   "refused without the free space the copy needs")
    _proof_arguments(p)
    add_change_options(p)
    p.set_defaults(handler=cmd_backup)
    p = sub.add_parser("prove", parents=[common],
                       help="prove a backup by restoring it into a scratch database",
                       description="Restores BACKUP into a new database <db>_proof_<time> on "
                       "the server of --dsn (pg_restore --jobs), compares every table's row "
                       "count and the schema fingerprint with what pg_dump's snapshot held "
                       "(recorded by `backup`; else with the live database now, which is "
                       "weaker and said so), rehearses the migration on the copy (rolled "
                       "back), drops the copy and records the proof in a run journal; the "
                       "migrate guard then shows the rollback point as proven. The live "
                       "database is only read. Exit 0 when proven.")
    p.add_argument("backup", metavar="BACKUP", help="a .dump file or a -Fd folder")
    p.add_argument("--pg-restore", metavar="PATH", help="the pg_restore to use")
    p.add_argument("-v", "--verbose", action="store_true", help="show every pg_restore line")
    _proof_arguments(p)
    add_change_options(p)
    p.set_defaults(handler=cmd_prove)
