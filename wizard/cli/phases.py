"""`prepare` and `window`: the change window in two phases (wizard.core.phases).

`prepare` runs while the application is up and changes nothing but what it is told to (the
orphans, exported first, with the database's name typed back); `window` stops the
application, re-checks, migrates, verifies and starts it again, and says the downtime.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from wizard.cli.backup import add_dump_options
from wizard.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    CliError,
    add_change_options,
    load_profile,
    open_journal,
    pg_settings,
    printer,
    seconds,
)
from wizard.cli.engine import smoke_from_profile
from wizard.cli.redis_args import add_redis_options, ask_password_if_needed, given_redis
from wizard.core import backup, phases, prove
from wizard.core.backup import BackupOptionError, BackupOptions
from wizard.core.execute import RunOptions
from wizard.core.redis_rules import DEFAULT_RULES
from wizard.core.reporting import no_report

PREPARE_JOBS = max(1, min(4, os.cpu_count() or 1))


def _out_dir(args: argparse.Namespace, folder: str | None) -> Path:
    chosen = args.out or folder
    if not chosen:
        raise CliError("prepare needs a folder for the backup: --out DIR (or the profile's "
                       "backup folder)", EXIT_USAGE)
    return Path(chosen)


def cmd_prepare(args: argparse.Namespace) -> int:
    settings = pg_settings(args)
    profile = load_profile(args)
    out = printer(args)
    if args.delete_orphans is not None and args.export_orphans is None:
        raise CliError("--delete-orphans needs --export-orphans DIR: the rows are exported "
                       "before they are deleted", EXIT_USAGE)
    if args.delete_orphans is not None and args.delete_orphans != settings.dbname:
        raise CliError(f"refusing: --delete-orphans must repeat the database's name "
                       f"({settings.dbname}); got {args.delete_orphans!r}. Nothing was "
                       "changed", EXIT_REFUSED)
    redis = given_redis(args, profile)
    if redis is not None:
        redis = ask_password_if_needed(redis, sys.stdin.isatty())
    options = phases.PrepareOptions(
        BackupOptions(out_dir=_out_dir(args, profile.backup_folder if profile else None),
                      format=args.format, jobs=args.jobs, compression=args.compress),
        prove=not args.no_prove,
        proof=prove.ProofOptions(jobs=args.prove_jobs, template=args.template),
        orphan_export=Path(args.export_orphans) if args.export_orphans else None,
        delete_orphans=args.delete_orphans)
    try:
        backup.prepare(settings, options.backup)  # bad backup options: before anything runs
    except BackupOptionError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except backup.BackupRefused as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    journal = open_journal(args, settings, phases.PREPARE, profile)
    prepared = phases.prepare(settings, redis,
                              profile.redis_rule_list() if profile else DEFAULT_RULES,
                              options=options, journal=journal,
                              report=no_report if args.json else out.reporter({"step", "warn",
                                                                               "error"}))
    text = "\n".join([*prepared.lines(), f"journal: {journal.folder}"]
                     + (["next: stop nothing yet; when the window opens, run "
                         "`enerlink-migrate window` (it stops the application with the "
                         "profile's stop command, or --app-stopped)"] if prepared.ok else []))
    out.result(prepared.to_dict(), text)
    return EXIT_OK if prepared.ok else EXIT_REFUSED


def _window_text(result: phases.WindowResult) -> str:
    mark = "✔" if result.ok else "✘"
    lines = [f"{mark} window on {result.database}: "
             + ("migrated" if result.ok else f"FAILED: {result.error}")]
    if result.stopped_at:
        lines.append(f"  stopped ({result.stopped_how}) at {result.stopped_at}"
                     + (f", started at {result.started_at}" if result.started_at else ""))
    if result.downtime_s is not None:
        lines.append(f"  downtime (stop → start): {result.downtime_s:.2f} s")
    if result.writes_at_risk_s is not None:
        lines.append(f"  a restore of the prepared backup would lose {result.writes_at_risk_s:g}"
                     f" s of writes (its snapshot → the stop); a revert loses none")
    if result.recheck:
        r = result.recheck
        lines.append(f"  re-check {r['seconds']:.2f} s: digest "
                     f"{'unchanged' if r['digest_equal'] else 'CHANGED'}, {r['orphans']} new "
                     f"orphan rows" + (f" ({r['full_reason']})" if r.get("full_reason") else ""))
    if result.timings:
        lines.append("  " + ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items()))
    lines += [f"next: {step}" for step in result.next_steps]
    lines.append(f"journal: {result.journal}")
    return "\n".join(lines)


def cmd_window(args: argparse.Namespace) -> int:
    settings = pg_settings(args)
    profile = load_profile(args)
    out = printer(args)
    interactive = sys.stdin.isatty()
    redis = given_redis(args, profile)
    if redis is not None:
        redis = ask_password_if_needed(redis, interactive)
    options = phases.WindowOptions(
        stop_command=None if args.app_stopped else (
            args.stop_command or (profile.app_stop_command if profile else None)),
        start_command=args.start_command or (profile.app_start_command if profile else None),
        app_stopped=args.app_stopped, smoke=smoke_from_profile(profile, interactive),
        run=RunOptions(lock_timeout_s=args.lock_timeout or (
            profile.lock_timeout_s if profile else 2.0),
            retries=profile.retries if profile else 3))
    if phases.newest_prepared(settings) is None:  # before a journal is opened for nothing
        raise CliError(f"refusing: no ready prepare phase of {settings.describe()} in the run "
                       "journals: run `enerlink-migrate prepare` first, while the application "
                       "runs. Nothing was stopped or changed", EXIT_REFUSED)
    try:
        journal = open_journal(args, settings, phases.WINDOW, profile)
        result = phases.window(settings, redis,
                               profile.redis_rule_list() if profile else DEFAULT_RULES,
                               options=options, journal=journal,
                               report=no_report if args.json else out.reporter(
                                   {"step", "warn", "error"}))
    except phases.WindowRefused as exc:
        raise CliError(f"refusing: {exc}. Nothing was stopped or changed", EXIT_REFUSED) from None
    out.result(result.to_dict(), _window_text(result))
    if result.ok:
        return EXIT_OK
    migrated = bool(result.run and result.run.get("ok"))
    return EXIT_FAILED if migrated else EXIT_REFUSED


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("prepare", parents=[common],
                       help="the change's first phase, the application running: pre-flight, "
                       "orphans, backup + proof, rehearsal, Redis dry run",
                       description="Everything that does not need the application stopped. "
                       "Exit 0 when the window may open, 3 when something stops it (said).")
    p.add_argument("--out", metavar="DIR",
                   help="folder for the backup (default: the profile's backup folder)")
    # The backup is not downtime here, but it is time a DBA waits: a folder written by
    # one pg_dump process per core (up to 4) where the format allows it (bench_backup:
    # directory -j 2 0.74-0.93x the plain dump's time, custom 0.96-1.34x).
    add_dump_options(p, fmt="directory", jobs=PREPARE_JOBS)
    p.add_argument("--no-prove", action="store_true",
                   help="do not prove the backup by restoring it into a scratch copy")
    p.add_argument("--prove-jobs", type=int, default=prove.DEFAULT_JOBS, metavar="N",
                   help="parallel pg_restore jobs of the proof (default %(default)s)")
    p.add_argument("--template", default="template0", metavar="DB",
                   help="template of the proof's scratch copy (default template0)")
    p.add_argument("--export-orphans", metavar="DIR",
                   help="export the orphan rows in the migration's way to CSV files here")
    p.add_argument("--delete-orphans", metavar="DB",
                   help="then delete exactly the exported rows; give the database's name")
    add_redis_options(p, "no Redis step")
    add_change_options(p)
    p.set_defaults(handler=cmd_prepare)

    p = sub.add_parser("window", parents=[common],
                       help="the change's second phase: stop the application, re-check, "
                       "migrate, Redis, verify, start, login check",
                       description="Needs a ready `prepare` of this database. Stops the "
                       "application with the profile's stop command (or --app-stopped), "
                       "re-checks the plan's digest and the new orphans, migrates, verifies "
                       "and starts it again; prints the downtime. Exit 0 migrated, 1 migrated "
                       "but a check or the start failed, 3 refused (the schema unchanged).")
    p.add_argument("--app-stopped", action="store_true",
                   help="the application is already stopped (you did it): run no stop command")
    p.add_argument("--stop-command", metavar="CMD",
                   help="command that stops the application (default: the profile's)")
    p.add_argument("--start-command", metavar="CMD",
                   help="command that starts it again (default: the profile's)")
    p.add_argument("--lock-timeout", type=seconds, metavar="S",
                   help="seconds to wait for each lock (default: the profile's, else 2)")
    add_redis_options(p, "no Redis step")
    add_change_options(p)
    p.set_defaults(handler=cmd_window)
