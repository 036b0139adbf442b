"""The engine's commands: inspect, plan, migrate, revert, verify."""

from __future__ import annotations

import argparse
import getpass
import re
import shlex
import sys
from typing import Any

from wizard.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNKNOWN,
    EXIT_USAGE,
    CliError,
    add_change_options,
    ask,
    checks_text,
    count,
    load_profile,
    open_journal,
    pg_settings,
    printer,
    seconds,
    stored_secret,
)
from wizard.cli.redis_args import add_redis_options, ask_password_if_needed, given_redis
from wizard.core import checklist, jobs, names, recover
from wizard.core.commit_outcome import COMMITTED
from wizard.core.commit_outcome import UNKNOWN as UNKNOWN_COMMIT
from wizard.core.connection import PgSettings
from wizard.core.discovery import CONFLICT, UNKNOWN
from wizard.core.execute import RunOptions, RunResult
from wizard.core.plan import DOWN, UP, Plan, PlanRefused
from wizard.core.profiles import Profile
from wizard.core.redis_rules import DEFAULT_RULES
from wizard.core.reporting import no_report
from wizard.core.smoke import SmokeSettings
from wizard.core.verify import FAIL


def cmd_inspect(args: argparse.Namespace, settings: PgSettings) -> int:
    d = jobs.inspect(settings)
    lines = [f"{settings.describe()}: PostgreSQL {d.server_version}, connected as "
             f"{d.current_user}", f"state: {d.state}: {d.explanation}"]
    lines += [f"  done: {x}" for x in d.done] + [f"  to do: {x}" for x in d.pending]
    lines += [f"  missing: {x}" for x in d.missing]
    for t in d.tables.values():
        if not t.can_alter:
            lines.append(f"  ! {d.current_user} cannot ALTER {t.name} (owner {t.owner})")
    lines += [f"  ! text reference: {r}" for r in d.text_references]
    printer(args).result(d.to_dict(), "\n".join(lines))
    return EXIT_REFUSED if d.state in (CONFLICT, UNKNOWN) or d.blockers else EXIT_OK


def cmd_plan(args: argparse.Namespace, settings: PgSettings) -> int:
    d = jobs.inspect(settings)
    try:
        plan = jobs.make_plan(d, DOWN if args.down else UP, settings, _migration(args))
    except PlanRefused as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    out = printer(args)
    if args.sql and not args.json:
        if not plan.steps:  # an empty BEGIN; COMMIT; would read as a plan to run
            out.note(_nothing_to_do(settings.dbname, d.state, plan.direction))
            return EXIT_OK
        out.text(_script(plan, args), end="")
        return EXIT_OK
    lines = [f"state: {d.state}: {d.explanation}",
             f"plan ({plan.direction}): {len(plan.catalog_steps)} steps in one transaction"
             + (f", then {len(plan.validate_steps)} after commit" if plan.validate_steps
                else ""),
             f"plan digest: {plan.digest} (migrate --plan-digest {plan.digest[:16]} runs "
             f"exactly this plan, or refuses)"]
    lines += [f"  [{n}/{len(plan.catalog_steps)}] {s.title}"
              for n, s in enumerate(plan.catalog_steps, 1)]
    lines += [f"  after commit: {s.title}" for s in plan.validate_steps]
    lines += [f"  unchanged: {u}" for u in plan.unchanged] + [f"  note: {n}" for n in plan.notes]
    if not plan.steps:
        lines.append("  nothing to do")
    out.result({**plan.to_dict(), "script": _script(plan, args)},
               "\n".join(lines))
    return EXIT_OK


def _nothing_to_do(dbname: str, state: str, direction: str) -> str:
    if direction == UP:
        return f"nothing to do: {dbname} is already migrated (state {state})"
    return (f"nothing to do: {dbname} is not migrated (state {state}), so there is nothing "
            f"to revert")


def _script(plan: Plan, args: argparse.Namespace) -> str:
    return plan.script(_lock_timeout(args), args.statement_timeout)


def _migration(args: argparse.Namespace) -> tuple[int, str]:
    return (args.migration_timestamp, args.migration_name)


def _lock_timeout(args: argparse.Namespace) -> float:
    """--lock-timeout, else the profile's, else the engine's default."""
    if args.lock_timeout is not None:
        return float(args.lock_timeout)
    profile = load_profile(args)
    return profile.lock_timeout_s if profile else RunOptions().lock_timeout_s


def _retries(args: argparse.Namespace) -> int:
    """--retries, else the profile's, else the engine's default."""
    if args.retries is not None:
        return int(args.retries)
    profile = load_profile(args)
    return profile.retries if profile else RunOptions().retries


def _run_settings(args: argparse.Namespace, **more: Any) -> RunOptions:
    return RunOptions(lock_timeout_s=_lock_timeout(args), retries=_retries(args),
                      statement_timeout_s=args.statement_timeout,
                      reconnect_s=args.reconnect_wait, count_all_tables=args.count_all,
                      **more)


def _guard(args: argparse.Namespace, direction: str) -> jobs.Guard | None:
    if direction != UP:
        return None
    if args.confirm is not None and not args.without_backup:
        raise CliError("--confirm goes with --without-backup (the database name typed to "
                       "migrate without a backup); to go on despite a failed proof, use "
                       "--accept-failed-proof DB", EXIT_USAGE)
    if args.without_backup:
        if not args.confirm:
            raise CliError("--without-backup needs --confirm <database name>", EXIT_USAGE)
        return jobs.Guard(without_backup=args.confirm)
    return jobs.Guard(max_backup_age_h=args.max_backup_age,
                      accept_failed_proof=getattr(args, "accept_failed_proof", None))


def _run(args: argparse.Namespace, settings: PgSettings, direction: str) -> int:
    options = _run_settings(args, rehearse=getattr(args, "rehearse", False))
    out = printer(args)
    guard = _guard(args, direction)
    verb = "migrate" if direction == UP else "revert"
    journal = open_journal(args, settings, ("rehearse-" if options.rehearse else "") + verb)
    try:
        plan, result, journal = jobs.run(settings, direction, options=options,
                                         report=None if args.json else out.reporter(),
                                         migration=_migration(args), guard=guard,
                                         digest=getattr(args, "plan_digest", None),
                                         journal=journal)
    except PlanRefused as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    out.result({"plan": plan.to_dict(), "result": result.to_dict(),
                "journal": str(journal.folder)}, _result_text(result, journal.folder))
    if result.commit_lost and result.commit == UNKNOWN_COMMIT:
        return EXIT_UNKNOWN
    return EXIT_OK if result.ok else EXIT_FAILED


def _result_text(result: RunResult, folder: Any) -> str:
    verb = "rehearsal" if result.rehearsal else ("migration" if result.direction == UP
                                                  else "revert")
    if not result.steps and result.ok:
        head = f"{verb}: nothing to do ({result.state_before})"
    elif result.ok:
        head = (f"{verb} succeeded: {len(result.steps)} steps, application blocked "
                f"{result.blocked_ms} ms, {result.total_s} s in all, {result.attempts} "
                f"attempt(s)" + (" — rolled back, nothing changed" if result.rehearsal else ""))
    elif result.commit_lost and result.commit == UNKNOWN_COMMIT:
        head = f"{verb} outcome UNKNOWN: {result.error}"
    else:
        head = f"{verb} FAILED: {result.error}"
    lines = [head]
    if result.commit_lost and result.commit == COMMITTED:
        lines.append(f"  the connection was lost during COMMIT; the server then showed it "
                     f"committed ({result.commit_evidence})")
    if result.checks:
        lines.append(checks_text(result.checks))
    if result.ok and not result.rehearsal and result.direction == UP:
        lines.append("Revert with `enerlink-migrate revert` (not `npm run migration:revert`: "
                     "the upstream down() cannot succeed on this schema).")
    lines.append(f"journal: {folder}")
    return "\n".join(lines)


def cmd_migrate(args: argparse.Namespace, settings: PgSettings) -> int:
    return _run(args, settings, UP)


def cmd_revert(args: argparse.Namespace, settings: PgSettings) -> int:
    """The schema back to prosumer; then, with the profile's Redis or --redis-url, the
    inverse Redis rules (the old application reads prosumerId, orders:by_prosumer:*)."""
    _confirm_revert(args, settings)
    options = _run_settings(args)
    out = printer(args)
    profile = load_profile(args)
    redis = given_redis(args, profile)
    if redis is not None:
        redis = ask_password_if_needed(redis, sys.stdin.isatty())
    try:
        outcome = recover.revert_then_align(
            settings, redis, rules=profile.redis_rule_list() if profile else DEFAULT_RULES,
            options=options, digest=args.plan_digest,
            report=no_report if args.json else out.reporter(),
            journal=open_journal(args, settings, "revert", profile))
    except PlanRefused as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    result = outcome.result
    lines = [_result_text(result, outcome.journal.folder)]
    if outcome.redis is not None:
        lines.insert(1, f"Redis {outcome.redis.target}: {outcome.redis.changed} keys brought "
                        f"back to the old names")
    elif outcome.redis_error:
        lines.insert(1, f"✘ the Redis revert failed: {outcome.redis_error}. The schema revert "
                        f"stands; run `enerlink-migrate cache --revert --confirm "
                        f"{settings.dbname}`")
    elif outcome.redis_note:
        lines.insert(1, f"! {outcome.redis_note}")
    out.result({"result": result.to_dict(), "redis": outcome.redis.to_dict()
                if outcome.redis else None, "redis_error": outcome.redis_error,
                "journal": str(outcome.journal.folder)}, "\n".join(lines))
    if result.commit_lost and result.commit == UNKNOWN_COMMIT:
        return EXIT_UNKNOWN
    return EXIT_OK if result.ok and not outcome.redis_error else EXIT_FAILED


def _confirm_revert(args: argparse.Namespace, settings: PgSettings) -> None:
    """The database's name typed back (--confirm, or at a prompt on a terminal) before a
    revert, as before a restore: the old application's schema comes back with it. Refuses,
    changing nothing, without it."""
    db = settings.dbname
    typed = args.confirm
    if typed is None and not args.json and sys.stdin.isatty():
        typed = ask(f"Revert {settings.describe()}: rename user back to prosumer, for the "
                    f"application version before the rename? Type {db} to agree: ")
        if typed != db:
            raise CliError(f"refusing: you typed {typed!r}, not the database's name {db!r}. "
                           "Nothing was changed", EXIT_REFUSED)
    if typed is None:
        raise CliError(f"refusing: a revert needs the database's name typed back: --confirm "
                       f"{shlex.quote(db)} (on a terminal, you are asked). Nothing was "
                       "changed", EXIT_REFUSED)
    if typed != db:
        raise CliError(f"refusing: --confirm must repeat the name of the database to revert "
                       f"({db}); got {typed!r}. Nothing was changed", EXIT_REFUSED)


def cmd_verify(args: argparse.Namespace, settings: PgSettings) -> int:
    """The Verify page's checklist (catalog, row counts, text references, orphans, Redis,
    the login smoke check), in its order, journaled as `verification`. Exit 1 when a check
    fails; a warning (Redis or the smoke check not configured) is not a failure."""
    out = printer(args)
    profile = load_profile(args)
    interactive = sys.stdin.isatty()
    redis = given_redis(args, profile)
    if redis is not None:
        redis = ask_password_if_needed(redis, interactive)
    smoke = smoke_from_profile(profile, interactive)
    journal = open_journal(args, settings, "verify", profile)
    checks = checklist.final_checklist(
        settings, redis, smoke, journal=journal,
        rules=profile.redis_rule_list() if profile else DEFAULT_RULES,
        # stdout lists every check: stderr only says what is being looked at.
        report=no_report if args.json else out.reporter({"step"}))
    failed = [c for c in checks if c.status == FAIL]
    lines = [f"verification of {settings.describe()}: {'FAILED' if failed else 'passed'}",
             checks_text(checks)]
    if smoke is None:
        lines.append(f"  ({checklist.SMOKE_SKIPPED})")
    lines.append(f"journal: {journal.folder}")
    out.result([c.to_dict() for c in checks], "\n".join(lines))
    return EXIT_FAILED if failed else EXIT_OK


def smoke_from_profile(profile: Profile | None, interactive: bool) -> SmokeSettings | None:
    """The profile's login smoke check; its test account's password from the keyring, else
    asked when a person is there (without one the login fails and the check says so)."""
    smoke = checklist.smoke_settings(profile, None)
    if smoke is None or profile is None:
        return None
    password = stored_secret(profile, "smoke")
    if password is None and interactive:
        password = getpass.getpass(f"Password of the test account {smoke.email} "
                                   f"({smoke.base_url}): ")
    return checklist.smoke_settings(profile, password)


def _timeout_options(p: argparse.ArgumentParser) -> None:
    """The two timeouts of the transaction: what `plan --sql` writes into its SET LOCAL
    lines and what migrate and revert run with."""
    p.add_argument("--lock-timeout", type=seconds, metavar="S",
                   help="seconds to wait for each lock (default: the profile's, else 2)")
    p.add_argument("--statement-timeout", type=seconds, default=30.0, metavar="S",
                   help="seconds each statement of the transaction may run before it is "
                   "cancelled and everything rolls back (default %(default)g)")


def _run_options(p: argparse.ArgumentParser) -> None:
    """Options of the commands that run the transaction: migrate and revert."""
    p.add_argument("--retries", type=count, metavar="N",
                   help="attempts after a lock timeout (default: the profile's, else 3)")
    p.add_argument("--reconnect-wait", type=seconds, default=120.0, metavar="S",
                   help="when the connection is lost during COMMIT, how long to keep asking "
                   "the server whether it committed (default %(default)g; exit 4 if it never "
                   "answers)")
    p.add_argument("--count-all", action="store_true",
                   help="count every affected table exactly before and after (two full "
                   "scans of each, outside the locks), not only prosumer/user")


def _migration_options(p: argparse.ArgumentParser) -> None:
    """The row the migration writes into TypeORM's migrations table (plan and migrate)."""
    p.add_argument("--migration-name", default=names.MIGRATION_NAME, metavar="NAME",
                   help="the name recorded in TypeORM's migrations table (default "
                   "%(default)s, the application's own migration)")
    p.add_argument("--migration-timestamp", type=count, default=names.MIGRATION_TIMESTAMP,
                   metavar="MS", help="the timestamp recorded with it (default %(default)s)")


def _digest(text: str) -> str:
    """What `plan` printed, or its first 12 hex digits or more; else a usage error."""
    digest = text.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{12,64}", digest):
        raise argparse.ArgumentTypeError(f"{text!r} is not a plan digest: give the 12 to 64 "
                                         "hex digits `enerlink-migrate plan` printed")
    return digest


def _hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of hours: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 hours, not {text}")
    return value


def _plan_digest_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plan-digest", metavar="HEX", type=_digest,
                   help="the digest `plan` printed (12 hex digits or more): run only that "
                   "plan, refuse if the catalog changed since")


def _with_db(command: Any) -> Any:
    def handler(args: argparse.Namespace) -> int:
        return int(command(args, pg_settings(args)))
    return handler


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("inspect", parents=[common],
                       help="state of the database, from the catalog")
    p.set_defaults(handler=_with_db(cmd_inspect))
    p = sub.add_parser("plan", parents=[common], help="the steps and their exact SQL")
    p.add_argument("--down", action="store_true", help="the revert plan")
    p.add_argument("--sql", action="store_true",
                   help="print the SQL script only; when there is nothing to do, no script: "
                   "a note on stderr says so, and the exit code is 0")
    _timeout_options(p)
    _migration_options(p)
    p.set_defaults(handler=_with_db(cmd_plan))
    p = sub.add_parser("migrate", parents=[common], help="rename prosumer to user")
    p.add_argument("--rehearse", action="store_true",
                   help="run everything, then ROLLBACK: nothing changes")
    p.add_argument("--without-backup", action="store_true",
                   help="migrate although no verified backup was taken (needs --confirm DB)")
    p.add_argument("--confirm", metavar="DB", help="the database name, typed back")
    p.add_argument("--accept-failed-proof", metavar="DB",
                   help="migrate although the backup's proof found it cannot be restored "
                   "exactly: the database name, typed back")
    p.add_argument("--max-backup-age", type=_hours, default=jobs.Guard.max_backup_age_h,
                   metavar="H", help="refuse a backup older than H hours (default "
                   "%(default)g)")
    _plan_digest_option(p)
    _timeout_options(p)
    _run_options(p)
    _migration_options(p)
    add_change_options(p)
    p.set_defaults(handler=_with_db(cmd_migrate))
    p = sub.add_parser("revert", parents=[common], help="rename user back to prosumer",
                       description="The schema back to prosumer in one transaction; then, "
                       "with the profile's Redis or --redis-url, the inverse Redis rules. "
                       "Needs the database's name typed back: --confirm DB, or the prompt "
                       "on a terminal; without it nothing changes (exit 3).")
    p.add_argument("--confirm", metavar="DB",
                   help="the database name, typed back (required; on a terminal without "
                   "it you are asked to type it)")
    _plan_digest_option(p)
    _timeout_options(p)
    _run_options(p)
    add_redis_options(p, "none: Redis is left as it is, and the run says so")
    add_change_options(p)
    p.set_defaults(handler=_with_db(cmd_revert))
    p = sub.add_parser(
        "verify", parents=[common], help="the verification checklist (as the Verify page)",
        description="The checks of the wizard's Verify page, in its order: catalog, row "
        "counts, stored code, orphan rows, old keys in Redis (with --redis-url or the "
        "profile's Redis) and the login smoke check (when the profile has a base URL and a "
        "test account). Journaled; exit 0 when nothing fails (warnings do not fail).")
    add_redis_options(p, "none: the Redis check is a warning")
    add_change_options(p)
    p.set_defaults(handler=_with_db(cmd_verify))
