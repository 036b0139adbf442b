"""`enerlink-migrate orphans`: scan, export to CSV, delete after the export."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from wizard.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    CliError,
    add_change_options,
    open_journal,
    pg_settings,
    printer,
    seconds,
)
from wizard.core import orphans
from wizard.core.reporting import Cancelled


def cmd_orphans(args: argparse.Namespace) -> int:
    if args.delete and not args.export:
        raise CliError("--delete needs --export DIR: export first, so the rows are kept in a "
                       "CSV before they are deleted", EXIT_USAGE)
    if args.confirm and not args.delete:
        raise CliError("--confirm only goes with --delete", EXIT_USAGE)
    settings = pg_settings(args)
    if args.delete and args.confirm != settings.dbname:
        raise CliError(f"deleting orphan rows needs the database name typed back: --confirm "
                       f"{shlex.quote(settings.dbname)}", EXIT_REFUSED)
    journal = open_journal(args, settings, "orphans")
    out = printer(args)
    # The per-column warnings are in the table on stdout: stderr shows progress and errors.
    report = None if args.json else out.reporter({"step", "error"})
    timeouts: dict[str, Any] = {"statement_timeout_s": args.statement_timeout,
                                "report": report, "journal": journal}
    data: dict[str, Any] = {"journal": str(journal.folder)}
    try:
        scan = orphans.scan(settings, **timeouts)
        data["scan"] = scan.to_dict()
        lines = scan.lines()
        if args.export and not scan.clean:
            files = orphans.export(settings, scan, Path(args.export), **timeouts)
            data["exported"] = [{"path": str(f.path), "table": f.table, "rows": f.rows,
                                 "sha256": f.sha256} for f in files]
            lines += [f"exported {f.rows} rows of {f.table} to {f.path}" for f in files]
            if args.delete:
                note = orphans.backup_still_holds(settings, scan)
                scan = orphans.delete(settings, scan, files, args.confirm,
                                      lock_timeout_s=args.lock_timeout, **timeouts)
                data["after_delete"] = scan.to_dict()
                lines += scan.lines()
                if note:
                    data["backup_note"] = note
                    lines.append(f"! {note}")
    except orphans.OrphanRefused as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    except (orphans.OrphanError, Cancelled) as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    lines.append(f"journal: {journal.folder}")
    out.result(data, "\n".join(lines))
    if scan.clean:
        return EXIT_OK
    out.error("orphans", f"{scan.total} orphan rows remain in {settings.dbname}; export and "
              f"delete them with --export DIR --delete --confirm "
              f"{shlex.quote(settings.dbname)}, or give them their parents back by hand")
    return EXIT_FAILED


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("orphans", parents=[common],
                       help="rows whose prosumer/user no longer exists: scan, export, delete")
    p.add_argument("--export", metavar="DIR",
                   help="write every orphan row to orphans_<table>_<time>.csv in DIR (0600, "
                        "in a 0700 folder; the backup folder is a good place)")
    p.add_argument("--delete", action="store_true",
                   help="after --export, delete exactly those rows in one transaction")
    p.add_argument("--confirm", metavar="DBNAME", help="the database name, typed back")
    p.add_argument("--statement-timeout", type=seconds, default=300.0, metavar="S",
                   help="seconds each query of the scan, export or delete may run "
                   "(default %(default)g)")
    p.add_argument("--lock-timeout", type=seconds, default=2.0, metavar="S",
                   help="with --delete: seconds to wait for the locks the delete takes "
                   "(default %(default)g)")
    add_change_options(p)
    p.set_defaults(handler=cmd_orphans)
