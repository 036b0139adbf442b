"""The `restore` command: a backup into a new database, checked, then swapped in by name."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from wizard.cli.common import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, CliError, emit, pg_settings
from wizard.core import restore
from wizard.core.pgtools import ToolNotFound
from wizard.core.reporting import no_progress, no_report


def _printer(verbose: bool) -> Any:
    def report(level: str, message: str) -> None:
        if level == "info" and not verbose:
            return
        print(("  " if level in ("step", "info") else f"[{level}] ") + message,
              file=sys.stderr, flush=True)
    return report


def _progress_printer() -> Any:
    shown = [-1]

    def progress(fraction: float, detail: str) -> None:
        tenth = int(fraction * 10)
        if tenth > shown[0]:
            shown[0] = tenth
            print(f"  {fraction:4.0%} {detail}", file=sys.stderr, flush=True)
    return progress


def _result_text(result: restore.RestoreResult) -> str:
    if result.ok:
        lines = [f"restore succeeded: {result.live_db} is the restored copy; the previous "
                 f"database is kept as {result.before_db}"]
    else:
        lines = [f"restore {'CANCELLED' if result.cancelled else 'FAILED'}: {result.error}",
                 f"  {result.live_db} is untouched"
                 + (f"; the unfinished {result.restore_db} was dropped" if result.dropped
                    else "")]
    lines += [f"  {'✔' if c['ok'] else '✘'} {c['detail']}" for c in result.checks]
    lines += [f"  ! {w}" for w in result.warnings]
    if result.terminated:
        lines.append(f"  terminated {len(result.terminated)} session(s) on {result.live_db}")
    if result.timings:
        lines.append("  timings: " + ", ".join(f"{k[:-2]} {v} s" for k, v in
                                               result.timings.items()))
    lines += [f"next: {s}" for s in result.next_steps]
    lines.append(f"journal: {result.journal}")
    return "\n".join(lines)


def cmd_restore(args: argparse.Namespace) -> int:
    settings = pg_settings(args)
    options = restore.RestoreOptions(jobs=args.jobs, pg_restore=args.pg_restore,
                                     psql=args.psql, maintenance_db=args.maintenance_db,
                                     template=args.template,
                                     check_counts=not args.no_count_check)
    report = _printer(args.verbose) if not args.json else no_report
    try:
        plan = restore.prepare(settings, args.backup, options, report=report)
    except (restore.RestoreRefused, ToolNotFound) as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    if not args.json:
        print("\n".join(plan.inspection.summary()), flush=True)
        print(f"restore into a new database {plan.restore_db}, check it, then swap: "
              f"{plan.live_db} will be kept as {plan.before_db}", flush=True)
    if args.confirm != plan.live_db:
        raise CliError(f"refusing: --confirm must repeat the name of the database to replace "
                       f"({plan.live_db}); got {args.confirm!r}. Nothing was changed",
                       EXIT_REFUSED)
    try:
        result = restore.run(plan, confirm=args.confirm, report=report,
                             progress=_progress_printer() if not args.json
                             else no_progress)
    except restore.RestoreRefused as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    emit(args, {"plan": plan.to_dict(), "result": result.to_dict()}, _result_text(result))
    return EXIT_OK if result.ok else EXIT_FAILED


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "restore", parents=[common],
        help="restore a backup into a new database, check it, then swap it in by name",
        description="Restores BACKUP (pg_dump custom, directory, tar or plain SQL) into a new "
        "database <db>_restore_<time>, checks it, then renames the live database to "
        "<db>_before_restore_<time> and the new one to <db>. The live database is never "
        "dropped. Needs CREATEDB and ownership of the database.")
    p.add_argument("backup", metavar="BACKUP", help="a .dump file, a -Fd folder or a .sql file")
    p.add_argument("--confirm", metavar="DBNAME",
                   help="the name of the database to replace, typed back (required to run)")
    p.add_argument("--jobs", type=int, default=2, metavar="N",
                   help="parallel pg_restore jobs (custom and directory formats)")
    p.add_argument("--pg-restore", metavar="PATH", help="the pg_restore to use")
    p.add_argument("--psql", metavar="PATH", help="the psql to use for plain SQL backups")
    p.add_argument("--maintenance-db", default="postgres", metavar="DB",
                   help="the database to connect to for the swap (default postgres)")
    p.add_argument("--template", default="template0", metavar="DB",
                   help="create the new database from this template (default template0); "
                   "template1 where a superuser pre-created extensions the role may not "
                   "create")
    p.add_argument("--no-count-check", action="store_true",
                   help="do not compare row counts with those the journal took before the "
                   "migration")
    p.add_argument("-v", "--verbose", action="store_true", help="show every pg_restore line")
    p.set_defaults(handler=cmd_restore)
