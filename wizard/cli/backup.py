"""The `backup` command: a verified pg_dump of the database, recorded in a run journal."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from wizard.cli.common import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, CliError, pg_settings, printer
from wizard.core import backup
from wizard.core.backup import (
    DEFAULT_COMPRESSION,
    DEFAULT_LOCK_WAIT_S,
    BackupOptions,
    BackupRefused,
)
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
    except BackupRefused as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    journal = Journal.create(settings, "backup")
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
    if result.verified:
        text = (f"backup verified: {result.path}\n  {format_bytes(result.size_bytes)}, "
                f"{result.toc_entries} TOC entries, sha256 {result.sha256}\n"
                f"  {result.format} format, compression {result.compression}, "
                f"{result.duration_s:.1f} s (pg_dump {result.dump_s:.1f} s, verification "
                f"{result.verify_s:.1f} s)\njournal: {journal.folder}")
    else:
        text = f"backup FAILED: {result.error}\njournal: {journal.folder}"
    out.result({**result.to_dict(), "journal": str(journal.folder)}, text)
    return EXIT_OK if result.verified else EXIT_FAILED


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
    p.add_argument("--format", choices=backup.FORMATS, default="custom",
                   help="custom (one file, default) or directory (a folder; allows --jobs)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="parallel pg_dump processes (directory format only)")
    p.add_argument("--compress", default=DEFAULT_COMPRESSION, metavar="METHOD",
                   help=f"none, gzip:1..9, or lz4 / zstd[:level] with pg_dump 16+ "
                   f"(default {DEFAULT_COMPRESSION}: close to an uncompressed dump's speed)")
    p.add_argument("--lock-wait", type=float, default=DEFAULT_LOCK_WAIT_S, metavar="S",
                   help="give up when a table stays locked by another session this long "
                   f"(default {DEFAULT_LOCK_WAIT_S:g} s)")
    p.add_argument("--pg-dump", metavar="PATH", help="the pg_dump to use (program or folder); "
                   "default: searched on PATH and in the usual install folders")
    p.add_argument("--pg-restore", metavar="PATH", help="the pg_restore that verifies the "
                   "backup; default: the one next to pg_dump")
    p.set_defaults(handler=cmd_backup)
