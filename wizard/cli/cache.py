"""The `cache` command: count or clear the application's prosumer-keyed Redis keys."""

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
    load_profile,
    printer,
)
from wizard.cli.redis_args import DEFAULT_URL, add_redis_options, reachable, redis_settings
from wizard.core import cache, profiles
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
    if args.flushdb and args.pattern:
        raise CliError("--flushdb clears the whole db: it does not take --pattern", EXIT_USAGE)
    if args.confirm is not None and not args.flushdb:
        raise CliError("--confirm goes with --flushdb", EXIT_USAGE)
    if args.flushdb and args.confirm is None and not args.dry_run:
        raise CliError("--flushdb needs --confirm <dbname>: the PostgreSQL database name this "
                       "run targets", EXIT_USAGE)


def cmd_cache(args: argparse.Namespace) -> int:
    _check_usage(args)
    patterns = tuple(args.pattern or cache.DEFAULT_PATTERNS)
    try:
        cache.check_patterns(patterns)
    except cache.CacheRefused as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    out = printer(args)
    profile = load_profile(args)
    pg, expected = pg_target(args.dsn, profile)
    settings = redis_settings(args, profile)
    journal = Journal.create(pg, "cache")
    if args.flushdb and not args.dry_run:
        try:  # a wrong name is refused before anything reaches Redis
            cache.confirm_flush(settings, args.confirm, expected, journal)
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
            return _dry_run(args, out, settings, patterns, journal)
        with cancel_on_interrupt() as cancel:
            result = cache.delete(settings, patterns, report,
                                  no_progress if args.json else out.progress(), cancel,
                                  journal)
    except RedisUnavailable as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    except Cancelled as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    lines = [f"deleted {result.total} keys from {result.target} in {result.seconds:.2f} s"]
    lines += [f"  {p}: {n}" for p, n in result.deleted.items()]
    out.result({**result.to_dict(), "journal": str(journal.folder)},
               "\n".join([*lines, f"journal: {journal.folder}"]))
    return EXIT_OK


def _dry_run(args: argparse.Namespace, out: Printer, settings: RedisSettings,
             patterns: tuple[str, ...], journal: Journal) -> int:
    counts = cache.dry_run(settings, patterns, samples=args.samples, journal=journal)
    lines = [f"dry run on {settings.describe()}: nothing deleted"]
    for c in counts:
        lines.append(f"  {c.pattern}: {c.count} keys")
        lines += [f"    {s}" for s in c.samples]
    out.result({"redis": settings.describe(), "dry_run": True,
                "patterns": [c.to_dict() for c in counts], "journal": str(journal.folder)},
               "\n".join(lines))
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
        "cache", parents=[common], help="clear the application's Redis keys that name prosumers",
        description="Count (--dry-run) or delete the Redis keys the old schema left behind, "
        "with SCAN + UNLINK in batches. The Redis password comes from REDISCLI_AUTH or a "
        "prompt, never an argument. --dsn is only read for the database name --confirm must "
        "match; PostgreSQL is not contacted.")
    p.add_argument("--dry-run", action="store_true", help="count and show samples, delete nothing")
    p.add_argument("--pattern", action="append", metavar="P",
                   help="key pattern (repeatable); default: "
                   + " ".join(cache.DEFAULT_PATTERNS))
    p.add_argument("--flushdb", action="store_true",
                   help="clear the whole configured db index (needs --confirm <dbname>)")
    p.add_argument("--confirm", metavar="DBNAME",
                   help="the PostgreSQL database name, typed to confirm --flushdb")
    add_redis_options(p, DEFAULT_URL)
    p.add_argument("--samples", type=int, default=10, metavar="N",
                   help="sample keys shown per pattern in a dry run (default 10)")
    p.set_defaults(handler=cmd_cache)
