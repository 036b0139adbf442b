"""The `cache` command: count or clear the application's prosumer-keyed Redis keys."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
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
    emit,
)
from wizard.core import cache, profiles, secrets
from wizard.core.connection import PgSettings
from wizard.core.journal import Journal
from wizard.core.redis_conn import (
    NOAUTH,
    RedisSettings,
    RedisSettingsError,
    RedisUnavailable,
    check_connection,
)
from wizard.core.reporting import Cancelled, Report, no_progress, no_report

# redis-cli's own variable: one setting serves both tools.
PASSWORD_ENV = "REDISCLI_AUTH"  # noqa: S105 - the name of a variable, not a secret
DEFAULT_URL = "redis://localhost:6379/0"


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


def _profile(args: argparse.Namespace) -> profiles.Profile | None:
    name = getattr(args, "profile", None)
    if not name:
        return None
    try:
        return profiles.load(name)
    except profiles.ProfileError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def redis_settings(args: argparse.Namespace,
                   profile: profiles.Profile | None = None) -> RedisSettings:
    """Options first, then the profile's Redis fields. The password comes from REDISCLI_AUTH,
    else the profile's keyring entry, else the prompt: never from an argument."""
    stored = profile.redis_fields() if profile else {}
    try:
        settings = RedisSettings.from_url(
            args.redis_url or stored.get("url") or DEFAULT_URL,
            username=args.redis_user or stored.get("username"),
            db=args.redis_db if args.redis_db is not None else stored.get("db"),
            ca_file=args.redis_ca or stored.get("ca_file"), timeout_s=args.redis_timeout)
    except RedisSettingsError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    password = os.environ.get(PASSWORD_ENV) or None
    if password is None and profile is not None and not profile.ask_every_time:
        try:
            password = secrets.get(profile.name, "redis")
        except secrets.SecretsUnavailable as exc:
            print(f"note: {exc}", file=sys.stderr)
    return settings.with_password(password)


def reachable(settings: RedisSettings, interactive: bool) -> tuple[RedisSettings, str]:
    """PING once; when the server wants a password we lack and a person is there, ask."""
    try:
        return settings, check_connection(settings)
    except RedisUnavailable as exc:
        if exc.kind != NOAUTH or settings.password is not None or not interactive:
            raise CliError(str(exc), EXIT_USAGE) from None
    with_pw = settings.with_password(getpass.getpass(f"Redis password for "
                                                     f"{settings.describe()}: "))
    try:
        return with_pw, check_connection(with_pw)
    except RedisUnavailable as again:
        raise CliError(str(again), EXIT_USAGE) from None


@contextlib.contextmanager
def cancel_on_interrupt() -> Iterator[threading.Event]:
    """Ctrl-C asks the job to stop between batches instead of killing it mid-pipeline."""
    event = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda _sig, _frame: event.set())
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, previous)


def _log(level: str, message: str) -> None:
    print(("  " if level == "step" else f"[{level}] ") + message, file=sys.stderr, flush=True)


class _Tenths:
    """Progress on stderr every 10 %, so a long clear shows it is moving."""

    def __init__(self) -> None:
        self.shown = 0

    def __call__(self, fraction: float, detail: str) -> None:
        tenth = int(fraction * 10)
        if tenth > self.shown:
            self.shown = tenth
            print(f"  {tenth * 10} % ({detail})", file=sys.stderr, flush=True)


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
    profile = _profile(args)
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
        journal.write("cache_unavailable", redis=settings.describe(), error=str(exc))
        raise
    if not args.json:
        _log("info", hello)
    report = no_report if args.json else _log
    try:
        if args.flushdb:
            return _flushdb(args, settings, expected, journal, report)
        if args.dry_run:
            return _dry_run(args, settings, patterns, journal)
        with cancel_on_interrupt() as cancel:
            result = cache.delete(settings, patterns, report,
                                  no_progress if args.json else _Tenths(), cancel, journal)
    except RedisUnavailable as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    except Cancelled as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    lines = [f"deleted {result.total} keys from {result.target} in {result.seconds:.2f} s"]
    lines += [f"  {p}: {n}" for p, n in result.deleted.items()]
    emit(args, {**result.to_dict(), "journal": str(journal.folder)},
         "\n".join([*lines, f"journal: {journal.folder}"]))
    return EXIT_OK


def _dry_run(args: argparse.Namespace, settings: RedisSettings, patterns: tuple[str, ...],
             journal: Journal) -> int:
    counts = cache.dry_run(settings, patterns, samples=args.samples, journal=journal)
    lines = [f"dry run on {settings.describe()}: nothing deleted"]
    for c in counts:
        lines.append(f"  {c.pattern}: {c.count} keys")
        lines += [f"    {s}" for s in c.samples]
    emit(args, {"redis": settings.describe(), "dry_run": True,
                "patterns": [c.to_dict() for c in counts], "journal": str(journal.folder)},
         "\n".join(lines))
    return EXIT_OK


def _flushdb(args: argparse.Namespace, settings: RedisSettings, expected: str | None,
             journal: Journal, report: Report) -> int:
    if args.dry_run:
        info = check_connection(settings)
        emit(args, {"redis": settings.describe(), "dry_run": True, "flushdb": True,
                    "detail": info},
             f"dry run: FLUSHDB would clear db {settings.effective_db} only ({info}); other "
             f"db indexes are untouched. Run with --confirm {expected or '<dbname>'} to do it.")
        return EXIT_OK
    try:
        before = cache.flushdb(settings, args.confirm, expected, report=report, journal=journal)
    except cache.CacheRefused as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    emit(args, {"redis": settings.describe(), "flushdb": True, "keys_before": before,
                "journal": str(journal.folder)},
         f"FLUSHDB {settings.describe()}: {'all' if before is None else before} keys removed "
         "(other db indexes untouched)\n"
         f"journal: {journal.folder}")
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
    p.add_argument("--redis-url", metavar="URL",
                   help="redis://host:port/db or rediss://host:port/db (TLS), no password; "
                   f"default: the profile's, else {DEFAULT_URL}")
    p.add_argument("--redis-user", metavar="U", help="ACL user name (Redis 6+)")
    p.add_argument("--redis-db", type=int, metavar="N", help="db index (overrides the URL's)")
    p.add_argument("--redis-ca", metavar="FILE", help="CA certificate file for rediss://")
    p.add_argument("--redis-timeout", type=float, default=5.0, metavar="S",
                   help="connect and command timeout in seconds (default 5)")
    p.add_argument("--samples", type=int, default=10, metavar="N",
                   help="sample keys shown per pattern in a dry run (default 10)")
    p.set_defaults(handler=cmd_cache)
