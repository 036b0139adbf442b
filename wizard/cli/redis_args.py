"""The Redis options of `cache`, `verify` and `restore`, and where their password comes from."""

from __future__ import annotations

import argparse
import getpass
import os

from wizard.cli.common import EXIT_USAGE, CliError, stored_secret
from wizard.core import profiles
from wizard.core.redis_conn import (
    NOAUTH,
    RedisSettings,
    RedisSettingsError,
    RedisUnavailable,
    check_connection,
)

# redis-cli's own variable: one setting serves both tools.
PASSWORD_ENV = "REDISCLI_AUTH"  # noqa: S105 - the name of a variable, not a secret
DEFAULT_URL = "redis://localhost:6379/0"


def add_redis_options(parser: argparse.ArgumentParser, default: str) -> None:
    """--redis-url and its companions; `default` says what happens without them."""
    parser.add_argument("--redis-url", metavar="URL",
                        help="redis://host:port/db or rediss://host:port/db (TLS), no "
                        f"password ({PASSWORD_ENV}, the profile's keyring entry or a prompt); "
                        f"default: the profile's, else {default}")
    parser.add_argument("--redis-user", metavar="U", help="ACL user name (Redis 6+)")
    parser.add_argument("--redis-db", type=int, metavar="N",
                        help="db index (overrides the URL's)")
    parser.add_argument("--redis-ca", metavar="FILE", help="CA certificate file for rediss://")
    parser.add_argument("--redis-timeout", type=float, default=5.0, metavar="S",
                        help="connect and command timeout in seconds (default 5)")


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
    if password is None:
        password = stored_secret(profile, "redis")
    return settings.with_password(password)


def given_redis(args: argparse.Namespace,
                profile: profiles.Profile | None) -> RedisSettings | None:
    """The application's Redis when the command line or the profile names one, else None:
    verify and restore then say Redis was not checked or cleared, as the wizard does."""
    if not (args.redis_url or (profile is not None and profile.redis_url)):
        return None
    return redis_settings(args, profile)


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


def ask_password_if_needed(settings: RedisSettings, interactive: bool) -> RedisSettings:
    """Ask for the password when the server wants one we lack and a person is there. Any
    other problem is left to the caller's own check, which reports it in its place."""
    if settings.password is not None or not interactive:
        return settings
    try:
        check_connection(settings)
    except RedisUnavailable as exc:
        if exc.kind == NOAUTH:
            return settings.with_password(getpass.getpass(f"Redis password for "
                                                          f"{settings.describe()}: "))
    return settings
