"""The `restore` command: a backup into a new database, checked, then swapped in by name."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from wizard.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    CliError,
    add_change_options,
    load_profile,
    open_journal,
    pg_settings,
    printer,
)
from wizard.cli.redis_args import add_redis_options, given_redis, reachable
from wizard.core import restore
from wizard.core.pgtools import ToolNotFound
from wizard.core.profiles import Profile
from wizard.core.recover import RestoreOutcome, restore_then_clear
from wizard.core.redis_conn import RedisSettings
from wizard.core.reporting import no_progress, no_report


def _result_text(outcome: RestoreOutcome) -> str:
    result = outcome.result
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
    lines += _cache_lines(outcome)
    lines += [f"next: {s}" for s in result.next_steps]
    lines.append(f"journal: {result.journal}")
    return "\n".join(lines)


def _cache_lines(outcome: RestoreOutcome) -> list[str]:
    if outcome.cache is not None:
        names = "old" if outcome.cache.direction == "down" else "new"
        return [f"  ✔ Redis: {outcome.cache.changed} keys brought to the {names} names in "
                f"{outcome.cache.target}"]
    if outcome.cache_error:
        return [f"  ✘ Redis migration failed: {outcome.cache_error}; the restore stands: "
                "run the Redis step again (enerlink-migrate cache, --revert for a pre-rename "
                "backup)"]
    return []  # no Redis given: stderr said so, and the next steps name the cache command


def cmd_restore(args: argparse.Namespace) -> int:
    """Restore, check, swap; then bring Redis to the restored schema when a Redis is given
    (--redis-url or the profile's, with the profile's rules), as the wizard's restore does.
    Exit 0 only when both parts succeeded."""
    out = printer(args)
    profile = load_profile(args)
    settings = pg_settings(args)
    options = restore.RestoreOptions(jobs=args.jobs, pg_restore=args.pg_restore,
                                     psql=args.psql, maintenance_db=args.maintenance_db,
                                     template=args.template,
                                     check_counts=not args.no_count_check,
                                     from_database=args.from_database,
                                     terminate_sessions=args.terminate_sessions,
                                     accept_unknown_space=args.accept_unknown_free_space,
                                     accept_not_valid=args.accept_not_valid)
    shown = {"step", "warn", "error"} | ({"info"} if args.verbose else set())
    report = no_report if args.json else out.reporter(shown)
    try:
        plan = restore.prepare(settings, args.backup, options, report=report)
    except (restore.RestoreRefused, ToolNotFound) as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    out.text("\n".join(plan.inspection.summary() + plan.server_lines()))
    out.text(f"restore into a new database {plan.restore_db}, check it, then swap: "
             f"{plan.live_db} will be kept as {plan.before_db}")
    if args.confirm != plan.live_db:
        raise CliError(f"refusing: --confirm must repeat the name of the database to replace "
                       f"({plan.live_db}); got {args.confirm!r}. Nothing was changed",
                       EXIT_REFUSED)
    _agree(plan, args)
    redis = _redis(args, profile)
    try:
        outcome = restore_then_clear(plan, args.confirm, redis, report=report,
                                     progress=no_progress if args.json else out.progress(),
                                     confirm_not_valid=_not_valid_prompt(plan, args),
                                     journal=open_journal(args, settings, "restore", profile))
    except restore.RestoreRefused as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    out.result({"plan": plan.to_dict(), "result": outcome.result.to_dict(),
                "cache": outcome.to_dict()["cache"], "cache_error": outcome.cache_error,
                "cache_note": outcome.cache_note}, _result_text(outcome))
    if outcome.result.declined:
        return EXIT_REFUSED  # the DBA said no at the prompt: nothing was changed
    return EXIT_OK if outcome.ok else EXIT_FAILED


def _agree(plan: restore.RestorePlan, args: argparse.Namespace) -> None:
    """What the DBA must agree to beyond the typed name: flags, or on a terminal a prompt
    for the sessions (listed above it). Refuses, changing nothing, for what is left."""
    pending = plan.unconfirmed()
    if (any(u.kind == restore.SESSIONS for u in pending) and not args.json
            and sys.stdin.isatty()):
        answer = input(f"Terminate the {len(plan.sessions)} session(s) on {plan.live_db} "
                       "listed above at the swap? Type yes to agree: ")
        if answer.strip().lower() == "yes":
            plan.options.terminate_sessions = True
            pending = plan.unconfirmed()
    if pending:
        raise CliError("refusing: " + " | ".join(u.message for u in pending), EXIT_REFUSED)


def _not_valid_prompt(plan: restore.RestorePlan, args: argparse.Namespace
                      ) -> Callable[[list[dict[str, Any]]], bool] | None:
    """On a terminal, ask before swapping in a copy with foreign keys NOT VALID (listed
    above the prompt by the run): the database's name typed back agrees."""
    if args.json or not sys.stdin.isatty():
        return None

    def ask(keys: list[dict[str, Any]]) -> bool:
        answer = input(f"The backup's rows violate {len(keys)} foreign key(s), re-created "
                       f"NOT VALID in the copy (listed above). Swap it in as {plan.live_db} "
                       f"anyway? Type {plan.live_db} to agree: ")
        return answer.strip() == plan.live_db

    return ask


def _redis(args: argparse.Namespace, profile: Profile | None) -> RedisSettings | None:
    """The Redis to clear after the swap, checked now: a wrong URL or password is found
    before the database is replaced, not after."""
    redis = given_redis(args, profile)
    if redis is None:
        return None
    redis, _hello = reachable(redis, sys.stdin.isatty())
    return redis


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "restore", parents=[common],
        help="restore a backup into a new database, check it, swap it in, clear the cache",
        description="Restores BACKUP (pg_dump custom, directory, tar or plain SQL) into a new "
        "database <db>_restore_<time>, checks it, then renames the live database to "
        "<db>_before_restore_<time> and the new one to <db>. The live database is never "
        "dropped. It refuses before anything changes: a backup of another database "
        "(unless --from-database names it), too little free space on the server, sessions "
        "it cannot terminate, or sessions at all without --terminate-sessions. The restored "
        "copy gets the database's owner, tablespace, locale, connection limit, settings, "
        "comment and privileges. Needs CREATEDB and ownership of the database. With "
        "--redis-url (or a profile with Redis) the application's Redis data is then brought "
        "to the restored schema's names, as the wizard's restore does; the typed --confirm "
        "covers both.")
    p.add_argument("backup", metavar="BACKUP", help="a .dump file, a -Fd folder or a .sql file")
    p.add_argument("--confirm", metavar="DBNAME",
                   help="the name of the database to replace, typed back (required to run)")
    p.add_argument("--from-database", metavar="DBNAME",
                   help="the backup is of this other database, and you mean to put its data "
                   "into the one given by --dsn (refused without it)")
    p.add_argument("--terminate-sessions", action="store_true",
                   help="terminate the sessions on the database at the swap (listed by the "
                   "inspection; refused without it when there are any, unless you agree at "
                   "the prompt on a terminal)")
    p.add_argument("--accept-unknown-free-space", action="store_true",
                   help="go on when the free space on the server cannot be read (say, a "
                   "remote server and a role that may not see its data directory): check df "
                   "there yourself first")
    p.add_argument("--accept-not-valid", action="store_true",
                   help="when the backup's rows violate foreign keys (orphans written with "
                   "FK triggers off), swap in the copy with those keys re-created NOT VALID "
                   "(the run names them and their rows; without it a terminal prompt asks, "
                   "and otherwise the copy is dropped, not swapped)")
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
    add_redis_options(p, "none: the cache is not cleared (the run says so)")
    add_change_options(p)
    p.set_defaults(handler=cmd_restore)
