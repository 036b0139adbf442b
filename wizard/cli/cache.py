"""The `cache` command: migrate the application's Redis data to the new names (or back)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from wizard.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    CliError,
    Printer,
    add_change_options,
    load_profile,
    open_journal,
    printer,
)
from wizard.cli.redis_args import DEFAULT_URL, add_redis_options, reachable, redis_settings
from wizard.core import cache, profiles, redis_migrate, redis_rules
from wizard.core.connection import PgSettings
from wizard.core.journal import Journal
from wizard.core.redis_conn import RedisSettings, RedisUnavailable, check_connection
from wizard.core.reporting import Cancelled, Report, no_progress, no_report


def pg_target(dsn: str | None,
              profile: profiles.Profile | None = None) -> tuple[PgSettings, str | None]:
    """The PostgreSQL database the run targets (for the journal), and its name when given
    explicitly (--dsn, the profile or PGDATABASE), which --confirm must match. No connection
    is made: clearing the cache needs only the name."""
    try:
        params: dict[str, Any] = conninfo_to_dict(dsn) if dsn else {}
    except psycopg.ProgrammingError as exc:
        raise CliError(f"invalid --dsn: {exc}", EXIT_USAGE) from None
    if "password" in params:
        raise CliError("--dsn must not contain a password (it would show in the process list "
                       "and shell history)", EXIT_USAGE)
    layers = (params, profile.pg_fields() if profile else {}, profiles.pg_env())
    try:
        settings = profiles.resolve_pg(*layers)
    except profiles.ProfileError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    explicit = next((str(layer["dbname"]) for layer in layers if layer.get("dbname")), None)
    return settings, explicit


@contextlib.contextmanager
def cancel_on_interrupt() -> Iterator[threading.Event]:
    """Ctrl-C asks the job to stop between batches instead of killing it mid-pipeline."""
    event = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda _sig, _frame: event.set())
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, previous)


def _check_usage(args: argparse.Namespace) -> None:
    if args.flushdb and (args.rule or args.revert):
        raise CliError("--flushdb clears the whole db: it takes no --rule or --revert",
                       EXIT_USAGE)
    if args.confirm is not None and not (args.flushdb or args.revert):
        raise CliError("--confirm goes with --flushdb or --revert", EXIT_USAGE)
    for flag, given in (("--flushdb", args.flushdb), ("--revert", args.revert)):
        if given and args.confirm is None and not args.dry_run:
            raise CliError(f"{flag} needs --confirm <dbname>: the PostgreSQL database name "
                           f"this run targets", EXIT_USAGE)


def _rules(args: argparse.Namespace, profile: profiles.Profile | None
           ) -> tuple[redis_rules.Rule, ...]:
    """--rule lines, else the profile's rules, else EnerLink's; checked before Redis is
    contacted (the inverse ones with --revert)."""
    try:  # a --rule that does not parse, or a profile's broken rules: usage (exit 2)
        parsed = [redis_rules.parse(r) for r in args.rule or ()]
        stored = profile.redis_rule_list() if profile is not None and not args.rule else None
    except (redis_rules.RuleError, profiles.ProfileError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    try:  # a rule that reads but would touch more than it should: refused (exit 3)
        if parsed:
            rules = redis_rules.validate(parsed, allow=args.allow_family or ())
        else:
            rules = stored if stored is not None else redis_rules.DEFAULT_RULES
    except redis_rules.RuleError as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    return redis_rules.inverse(rules) if args.revert else rules


def cmd_cache(args: argparse.Namespace) -> int:
    _check_usage(args)
    out = printer(args)
    profile = load_profile(args)
    rules = _rules(args, profile)
    pg, expected = pg_target(args.dsn, profile)
    settings = redis_settings(args, profile)
    journal = open_journal(args, pg, "cache", profile)
    if (args.flushdb or args.revert) and not args.dry_run:
        try:  # a wrong name is refused before anything reaches Redis
            cache.confirm_typed_name("FLUSHDB" if args.flushdb else "the Redis revert",
                                     settings, args.confirm, expected, journal)
        except cache.CacheRefused as exc:
            raise CliError(str(exc), EXIT_REFUSED) from None
    try:
        settings, hello = reachable(settings, sys.stdin.isatty())
    except CliError as exc:
        cache.record_unavailable(journal, settings, str(exc))
        raise
    if not args.json:
        out.log("info", hello)
    report = no_report if args.json else out.reporter()
    try:
        if args.flushdb:
            return _flushdb(args, out, settings, expected, journal, report)
        if args.dry_run:
            return _dry_run(args, out, settings, rules, journal)
        with cancel_on_interrupt() as cancel:
            result = redis_migrate.migrate(
                settings, rules, direction="down" if args.revert else "up", report=report,
                progress=no_progress if args.json else out.progress(), cancel=cancel,
                journal=journal, allow=args.allow_family or ())
    except RedisUnavailable as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    except Cancelled as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    names = "old" if args.revert else "new"
    lines = [f"Redis {result.target}: {result.changed} keys brought to the {names} names in "
             f"{result.seconds:.2f} s"]
    for done in result.rules:
        lines.append(f"  {done.rule}: {done.changed} keys"
                     + (f" ({done.merged} merged into existing targets)" if done.merged else ""))
        if done.conflicts:
            lines.append(f"    {done.conflicts} conflicts left untouched: "
                         + ", ".join(done.conflict_samples))
    if result.conflicts:
        lines.append("Resolve the conflicts (a hash with both fields holding different "
                     "values, or a target key of another type), then run the step again.")
    out.result({**result.to_dict(), "journal": str(journal.folder)},
               "\n".join([*lines, f"journal: {journal.folder}"]))
    return EXIT_FAILED if result.conflicts else EXIT_OK


def _dry_run(args: argparse.Namespace, out: Printer, settings: RedisSettings,
             rules: tuple[redis_rules.Rule, ...], journal: Journal) -> int:
    counts = redis_migrate.dry_run(settings, rules, samples=args.samples, journal=journal,
                                   allow=args.allow_family or ())
    lines = [f"dry run on {counts.target}: nothing changed"]
    for c, rule in zip(counts.rules, rules, strict=True):
        lines.append(f"  {rule.describe()}: {c.keys} keys"
                     + (f", {c.members} members, {c.targets_before} target keys exist already"
                        f" (after: {c.expected_keys_after} keys, {c.expected_members_after} "
                        f"members)" if isinstance(rule, redis_rules.MoveKey) else ""))
        lines += [f"    {s}" for s in c.samples]
        if c.conflicts:
            lines.append(f"    {c.conflicts} conflicts (left untouched by the migration): "
                         + ", ".join(c.conflict_samples))
    if counts.orders_all is not None:
        lines.append(f"  orders:all: {counts.orders_all['members']} orders (must not change)")
    out.result({"redis": counts.target, "dry_run": True, **counts.to_dict(),
                "journal": str(journal.folder)}, "\n".join(lines))
    return EXIT_OK


def _flushdb(args: argparse.Namespace, out: Printer, settings: RedisSettings,
             expected: str | None, journal: Journal, report: Report) -> int:
    if args.dry_run:
        info = check_connection(settings)
        out.result({"redis": settings.describe(), "dry_run": True, "flushdb": True,
                    "detail": info},
                   f"dry run: FLUSHDB would clear db {settings.effective_db} only ({info}); other "
                   f"db indexes are untouched. Run with --confirm {expected or '<dbname>'} "
                   "to do it.")
        return EXIT_OK
    try:
        before = cache.flushdb(settings, args.confirm, expected, report=report, journal=journal)
    except cache.CacheRefused as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    out.result({"redis": settings.describe(), "flushdb": True, "keys_before": before,
                "journal": str(journal.folder)},
               f"FLUSHDB {settings.describe()}: {'all' if before is None else before} keys "
               f"removed (other db indexes untouched)\njournal: {journal.folder}")
    return EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "cache", parents=[common],
        help="migrate the application's Redis data (its order book) to the new names",
        description="Apply the Redis migration rules: rename the owner field of the order "
        "hashes, move the per-owner order sets to their new names (members and scores "
        "kept), delete pure cache keys. SCAN (never KEYS), one atomic script per batch; "
        "idempotent, so a second run finishes an interrupted one. --revert applies the "
        "inverse rules. The Redis password comes from REDISCLI_AUTH or a prompt, never an "
        "argument. --dsn is only read for the database name --confirm must match; "
        "PostgreSQL is not contacted.")
    p.add_argument("--dry-run", action="store_true",
                   help="count what each rule would change, with samples and conflicts; "
                   "change nothing")
    p.add_argument("--rule", action="append", metavar="RULE",
                   help="a rule (repeatable), e.g. 'field orders:* prosumerId=userId', "
                   "'move orders:by_prosumer:* orders:by_user:*', 'delete prosumer:*'; "
                   "default: the profile's, else "
                   + "; ".join(redis_rules.to_text(r) for r in redis_rules.DEFAULT_RULES))
    p.add_argument("--allow-family", action="append", metavar="PREFIX",
                   help="let a rule touch a protected family (telemetry:, price:), typed")
    p.add_argument("--revert", action="store_true",
                   help="apply the inverse rules (back to prosumerId and "
                   "orders:by_prosumer:*), for a reverted or restored database; needs "
                   "--confirm <dbname>")
    p.add_argument("--flushdb", action="store_true",
                   help="clear the whole configured db index (needs --confirm <dbname>)")
    p.add_argument("--confirm", metavar="DBNAME",
                   help="the PostgreSQL database name, typed to confirm --flushdb or --revert")
    add_redis_options(p, DEFAULT_URL)
    p.add_argument("--samples", type=int, default=10, metavar="N",
                   help="sample keys shown per rule in a dry run (default 10)")
    add_change_options(p)
    p.set_defaults(handler=cmd_cache)
