"""`enerlink-migrate profiles`: list, show, add, edit, remove, export and import profiles."""

from __future__ import annotations

import argparse
import dataclasses
import getpass
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wizard.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError, printer
from wizard.core import profiles, secrets
from wizard.core.profiles import Profile, ProfileError

_CONVERT: dict[type, Callable[[str], Any]] = {str: str, int: int, float: float}


def _password_state(profile: Profile) -> dict[str, str]:
    """For each secret: stored, not stored, or why the keyring is not asked."""
    if profile.ask_every_time:
        return dict.fromkeys(secrets.WHATS, "asked every time")
    status = secrets.backend_status()
    if not status.usable:
        return dict.fromkeys(secrets.WHATS, "asked every time (no usable keyring)")
    states = {}
    for what in secrets.WHATS:
        try:
            found = secrets.get(profile.name, what) is not None
        except secrets.SecretsUnavailable:
            states[what] = "unknown (keyring unavailable)"
            continue
        states[what] = "in the keyring" if found else "not stored"
    return states


def _summary(profile: Profile) -> str:
    target = profile.pg_settings().describe()
    redis = f", redis {profile.redis_url}" if profile.redis_url else ""
    return f"{profile.name}: {target}{redis}"


def cmd_list(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    lines: list[str] = []
    broken = 0
    for name in profiles.list_profiles():
        try:
            profile = profiles.load(name)
        except ProfileError as exc:
            broken += 1
            rows.append({"name": name, "error": str(exc)})
            lines.append(f"{name}: cannot be read: {exc}")
            continue
        rows.append(profile.to_dict())
        lines.append(_summary(profile))
    if not lines:
        lines = [f"no profiles in {profiles.profiles_dir()} (add one with "
                 "enerlink-migrate profiles add NAME --host ... --dbname ... --user ...)"]
    printer(args).result(rows, "\n".join(lines))
    return EXIT_FAILED if broken else EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    profile = profiles.load(args.name)
    passwords = _password_state(profile)
    width = max(len(s.key) for s in profiles.SCHEMA)
    lines = [f"profile {profile.name} ({profiles.profiles_dir() / (profile.name + '.json')})"]
    for spec in profiles.SCHEMA[1:]:
        value = getattr(profile, spec.key)
        shown = "-" if value is None else value
        lines.append(f"  {spec.key:<{width}}  {shown}")
    lines.append(f"  connects as {profile.pg_settings().describe()}")
    lines += [f"  {what} password: {state}" for what, state in passwords.items()]
    printer(args).result({**profile.to_dict(), "passwords": passwords}, "\n".join(lines))
    return EXIT_OK


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    changes = {s.key: getattr(args, s.key) for s in profiles.SCHEMA[1:]
               if getattr(args, s.key, None) is not None}
    for key in getattr(args, "unset", None) or []:
        if key in changes:
            raise CliError(f"--unset {key} and a value for it: choose one", EXIT_USAGE)
        spec = next(s for s in profiles.SCHEMA if s.key == key)
        changes[key] = spec.default
    return changes


def _prompt(name: str, what: str) -> str:
    first = getpass.getpass(f"{what} password for profile {name} (stored in the keyring): ")
    if not first:
        raise CliError(f"empty {what} password: nothing stored", EXIT_USAGE)
    if getpass.getpass("the same again: ") != first:
        raise CliError(f"the two {what} passwords differ: nothing stored", EXIT_USAGE)
    return first


def _save(args: argparse.Namespace, profile: Profile, verb: str) -> int:
    wanted = list(dict.fromkeys(args.set_password or []))
    forget = list(dict.fromkeys(getattr(args, "forget_password", None) or []))
    if wanted and profile.ask_every_time:
        raise CliError(f"profile {profile.name!r} asks for passwords every time: add "
                       "--no-ask-every-time to keep them in the keyring", EXIT_USAGE)
    if profile.ask_every_time:
        forget = list(secrets.WHATS)  # "ask every time" means nothing of ours stays stored
    status = secrets.backend_status()
    if wanted and not status.usable:
        raise CliError(f"{status.message}. Nothing changed; save the profile without "
                       "--set-password, or with --ask-every-time", EXIT_FAILED)
    typed = {what: _prompt(profile.name, what) for what in wanted}
    path = profiles.save(profile)
    out = printer(args)
    out.text(f"profile {profile.name!r} {verb} ({path})")
    try:
        for what, secret in typed.items():
            secrets.set(profile.name, what, secret)
            out.text(f"{what} password stored in the keyring ({status.name})")
        for what in forget if status.usable else []:
            if secrets.delete(profile.name, what):
                out.text(f"{what} password removed from the keyring")
    except secrets.SecretsUnavailable as exc:
        raise CliError(f"profile saved, but the keyring refused: {exc}", EXIT_FAILED) from None
    return EXIT_OK


def cmd_add(args: argparse.Namespace) -> int:
    if args.name in profiles.list_profiles():
        raise CliError(f"profile {args.name!r} exists: change it with enerlink-migrate "
                       f"profiles edit {args.name}", EXIT_USAGE)
    return _save(args, Profile(name=args.name, **_changes(args)), "added")


def cmd_edit(args: argparse.Namespace) -> int:
    profile = dataclasses.replace(profiles.load(args.name), **_changes(args))
    return _save(args, profile, "saved")


def cmd_remove(args: argparse.Namespace) -> int:
    out = printer(args)
    for warning in profiles.remove(args.name):
        out.warning(warning)
    out.text(f"profile {args.name!r} removed, with its stored passwords")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    names = profiles.export(args.names, Path(args.file))
    printer(args).text(f"exported {len(names)} profile(s) to {args.file} (no passwords): "
                       f"{', '.join(names)}")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    names = profiles.import_(Path(args.file), overwrite=args.overwrite)
    printer(args).text(f"imported {len(names)} profile(s): {', '.join(names)}; passwords are "
                       "not part of an export: store them with enerlink-migrate profiles edit "
                       "NAME --set-password postgres")
    return EXIT_OK


def _checked(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except ProfileError as exc:  # a missing profile included
            raise CliError(str(exc), EXIT_USAGE) from None
        except OSError as exc:
            raise CliError(f"{exc.strerror or exc}: {exc.filename or ''}", EXIT_FAILED) from None
    return handler


def _metavar(key: str) -> str:
    return "SECONDS" if key.endswith("_s") else key.split("_")[-1].upper()


def _field_options(parser: argparse.ArgumentParser, editing: bool) -> None:
    group = parser.add_argument_group("profile fields")
    for spec in profiles.SCHEMA[1:]:
        if spec.type is bool:
            group.add_argument(spec.flag, dest=spec.key, default=None,
                               action=argparse.BooleanOptionalAction, help=spec.description)
            continue
        group.add_argument(spec.flag, dest=spec.key, default=None, type=_CONVERT[spec.type],
                           choices=spec.choices or None, help=spec.description,
                           metavar=None if spec.choices else _metavar(spec.key))
    parser.add_argument("--set-password", action="append", choices=secrets.WHATS,
                        metavar="{" + ",".join(secrets.WHATS) + "}",
                        help="prompt for this password and keep it in the keyring (never an "
                             "argument); repeatable")
    if editing:
        parser.add_argument("--unset", action="append", metavar="FIELD",
                            choices=[s.key for s in profiles.SCHEMA[1:]],
                            help="return a field to its default; repeatable")
        parser.add_argument("--forget-password", action="append", choices=secrets.WHATS,
                            help="remove this stored password from the keyring; repeatable")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    del common  # profiles do not connect anywhere
    top = sub.add_parser("profiles", help="saved connection profiles (passwords in the keyring)",
                         description="Profiles are JSON files (mode 0600) under "
                         f"{profiles.APP}'s config folder (ENERLINK_MIGRATE_CONFIG overrides "
                         "it). Passwords are never in them: they live in the OS keyring.")
    actions = top.add_subparsers(dest="profiles_command", metavar="ACTION", required=True,
                                 help="what to do (ACTION --help for its options)")
    top.set_defaults(json=False)

    p = actions.add_parser("list", help="the saved profiles")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_checked(cmd_list))
    p = actions.add_parser("show", help="one profile, and which passwords are stored")
    p.add_argument("name", metavar="NAME", help="the profile's name")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_checked(cmd_show))
    p = actions.add_parser("add", help="create a profile")
    p.add_argument("name", metavar="NAME", help="the new profile's name (letters, digits, "
                   "spaces or . _ - @ +)")
    _field_options(p, editing=False)
    p.set_defaults(handler=_checked(cmd_add))
    p = actions.add_parser("edit", help="change a profile's fields or passwords")
    p.add_argument("name", metavar="NAME", help="the profile to change")
    _field_options(p, editing=True)
    p.set_defaults(handler=_checked(cmd_edit))
    p = actions.add_parser("remove", help="delete a profile and its stored passwords")
    p.add_argument("name", metavar="NAME", help="the profile to delete")
    p.set_defaults(handler=_checked(cmd_remove))
    p = actions.add_parser("export", help="write profiles to a file (no passwords)")
    p.add_argument("file", metavar="FILE", help="the JSON file to write")
    p.add_argument("names", metavar="NAME", nargs="*", help="default: every profile")
    p.set_defaults(handler=_checked(cmd_export))
    p = actions.add_parser("import", help="read profiles from an export (no passwords)")
    p.add_argument("file", metavar="FILE", help="a file `profiles export` wrote")
    p.add_argument("--overwrite", action="store_true", help="replace profiles of the same name")
    p.set_defaults(handler=_checked(cmd_import))
