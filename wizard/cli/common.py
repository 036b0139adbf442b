"""What every CLI command shares: connection settings, errors, output."""

from __future__ import annotations

import argparse
import getpass
import json
import math
import sys
from collections.abc import Collection, Sequence
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from wizard.core import profiles, secrets
from wizard.core.connection import PgSettings
from wizard.core.connection import connect_advice as core_connect_advice
from wizard.core.journal import Journal
from wizard.core.profiles import Profile, ProfileError, pg_env, resolve_pg
from wizard.core.report import record_change
from wizard.core.reporting import Progress, Report
from wizard.core.verify import Check

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3
EXIT_UNKNOWN = 4  # the connection went during COMMIT and the server could not be asked


class CliError(RuntimeError):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def seconds(text: str) -> float:
    """An option's duration in seconds: a number above 0 (0 would mean "no limit" to
    PostgreSQL, which no option of ours means). A bad one is a usage error (exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return value


def count(text: str) -> int:
    """An option's whole number, 0 or more; a bad one is a usage error (exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def ask(prompt: str) -> str:
    """A line typed on the terminal. The question goes to stderr, so that stdout stays the
    command's answer even when it is redirected; end of input is an empty answer."""
    print(prompt, end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip()


def settings_from(dsn: str | None, profile: Profile | None = None) -> PgSettings:
    """Connection settings: --dsn fields, then the profile's, then PG* variables, then
    libpq's defaults. Never a password."""
    try:
        params: dict[str, Any] = conninfo_to_dict(dsn) if dsn else {}
    except psycopg.ProgrammingError as exc:
        raise CliError(f"invalid --dsn: {exc}", EXIT_USAGE) from None
    if "password" in params:
        raise CliError("--dsn must not contain a password (it would show in the process "
                       "list and shell history); use ~/.pgpass, PGPASSFILE or the prompt",
                       EXIT_USAGE)
    try:
        return resolve_pg(params, profile.pg_fields() if profile else {}, pg_env())
    except ProfileError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def load_profile(args: argparse.Namespace) -> Profile | None:
    """The profile named by --profile, if any; a missing or broken one is a usage error."""
    name = getattr(args, "profile", None)
    if not name:
        return None
    try:
        return profiles.load(name)
    except ProfileError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def profile_password(profile: Profile | None, settings: PgSettings) -> str | None:
    """The profile's PostgreSQL password from the keyring, when it applies to `settings`."""
    if profile is None:
        return None
    own = profile.pg_settings()
    if (settings.host, settings.port, settings.user) != (own.host, own.port, own.user):
        # --dsn points elsewhere: the stored password belongs to the profile's role and server.
        return None
    return stored_secret(profile, "postgres")


_NOTED: set[str] = set()  # a keyring note is worth reading once per command, not per secret


def new_command() -> None:
    """Forget the notes already given: each command says what concerns it once."""
    _NOTED.clear()


def stored_secret(profile: Profile | None, what: str) -> str | None:
    """The profile's `what` password (postgres, redis, smoke) from the keyring, or None: the
    profile asks every time, nothing is stored, or the keyring cannot be read (said once)."""
    if profile is None or profile.ask_every_time:
        return None
    status = secrets.backend_status()
    note = None
    if status.usable:
        try:
            return secrets.get(profile.name, what)
        except secrets.SecretsUnavailable as exc:
            note = str(exc)
    else:
        note = (f"{status.message} (profiles edit {profile.name} --ask-every-time "
                "silences this)")
    if note not in _NOTED:
        _NOTED.add(note)
        Printer().note(note)
    return None


def connectable(settings: PgSettings, interactive: bool,
                keyring_profile: str | None = None) -> PgSettings:
    """Try the given password or libpq's own sources; prompt once when one is needed and
    we can ask. `keyring_profile` names the profile the password came from, for advice."""
    try:
        settings.connect().close()
        return settings
    except psycopg.OperationalError as exc:
        text = str(exc)
        if keyring_profile and "password authentication failed" in text:
            hint = (f"the password stored in the keyring for profile {keyring_profile!r} is "
                    f"wrong: enerlink-migrate profiles edit {keyring_profile} --set-password "
                    "postgres")
            raise CliError(connect_advice(settings, text, hint), EXIT_USAGE) from None
        if "no password supplied" in text and interactive:
            password = getpass.getpass(f"Password for {settings.describe()}: ")
            with_pw = settings.with_password(password)
            try:
                with_pw.connect().close()
            except psycopg.OperationalError as again:
                raise CliError(connect_advice(settings, str(again)), EXIT_USAGE) from None
            return with_pw
        raise CliError(connect_advice(settings, text), EXIT_USAGE) from None


def connect_advice(settings: PgSettings, text: str, hint: str | None = None) -> str:
    """The core's advice, with where a command-line user keeps a password or a db name."""
    if hint is None:
        if "password authentication failed" in text:
            hint = "wrong password for this role; check ~/.pgpass or PGPASSFILE"
        elif "no password supplied" in text:
            hint = ("the server wants a password: add it to ~/.pgpass (or PGPASSFILE), or run "
                    "interactively to be prompted")
        elif "does not exist" in text and "database" in text:
            hint = "no such database; check the name (--dsn .../dbname)"
    return core_connect_advice(settings, text, hint)


class Printer:
    """The one way a command writes. Its answer goes to stdout: text, or one JSON document
    with --json (then nothing else reaches stdout, so `--json | jq` always parses).
    Progress, notes, warnings and errors go to stderr. The streams are looked up at each
    write, because tests and pipes replace them; a closed pipe raises BrokenPipeError,
    which `wizard.cli.main` turns into a quiet exit."""

    def __init__(self, json_mode: bool = False) -> None:
        self.json = json_mode

    def result(self, data: Any, text: str) -> None:
        """The command's answer: `data` as JSON with --json, else `text`."""
        if self.json:
            print(json.dumps(data, indent=2, default=str, ensure_ascii=False),
                  file=sys.stdout)
        else:
            print(text, file=sys.stdout)

    def text(self, text: str, *, end: str = "\n") -> None:
        """Part of a text answer printed before the end (an inspection, a message); with
        --json only the result document is printed."""
        if not self.json:
            print(text, end=end, file=sys.stdout, flush=True)

    def note(self, message: str) -> None:
        self._err(f"note: {message}")

    def warning(self, message: str) -> None:
        self._err(f"warning: {message}")

    def error(self, command: str, message: str) -> None:
        """A command that stops: `enerlink-migrate COMMAND: what happened; what to do`."""
        self._err(f"enerlink-migrate {command}: {message}")

    def log(self, level: str, message: str) -> None:
        """A job's report line: steps and details indented, other levels tagged."""
        self._err(("  " if level in PLAIN_LEVELS else f"[{level}] ") + message)

    def reporter(self, levels: Collection[str] | None = None) -> Report:
        """A job's `report` callback on stderr, showing only `levels` when given."""
        def report(level: str, message: str) -> None:
            if levels is None or level in levels:
                self.log(level, message)
        return report

    def progress(self, step: float = 0.1) -> Progress:
        """A job's `progress` callback: one stderr line each time another `step` of the
        work is done, so a long job shows it moves without flooding a terminal or a log."""
        shown = [-1]

        def progress(fraction: float, detail: str) -> None:
            reached = int(fraction / step + 1e-9)
            if reached > shown[0]:
                shown[0] = reached
                self._err(f"  {fraction:4.0%} {detail}")
        return progress

    def _err(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)


PLAIN_LEVELS = frozenset({"step", "info"})
CHECK_MARK = {"pass": "✔", "fail": "✘", "warn": "!"}


def printer(args: argparse.Namespace) -> Printer:
    """The printer for a parsed command line (--json where the command has it)."""
    return Printer(bool(getattr(args, "json", False)))


def checks_text(checks: Sequence[Check]) -> str:
    """Checks as text lines: mark, title, detail (verify, migrate and preflight alike)."""
    return "\n".join(f"  {CHECK_MARK.get(c.status, '?')} {c.title}: {c.detail}"
                     for c in checks)


def connection_parser() -> argparse.ArgumentParser:
    """The options every command that talks to PostgreSQL takes (a parent parser)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dsn", help="postgresql://user@host:port/db (no password; libpq "
                        "reads ~/.pgpass, PGPASSFILE, PGPASSWORD, or you are prompted)")
    common.add_argument("--profile", metavar="NAME",
                        help="a saved profile (enerlink-migrate profiles list). Precedence: "
                        "--dsn fields, then the profile, then PG* variables, then libpq "
                        "defaults. Its PostgreSQL password comes from the keyring (unless "
                        "it asks every time or --dsn changes host, port or user), else "
                        "from libpq's sources or the prompt")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    return common


def add_change_options(p: argparse.ArgumentParser) -> None:
    """--change and --reviewer, on every command that opens a run journal: the change the
    run belongs to, recorded first in its journal, so that its report names them."""
    p.add_argument("--change", metavar="REF",
                   help="the change or ticket reference this run belongs to, printed on its "
                   "report (default: the profile's change reference)")
    p.add_argument("--reviewer", metavar="NAME",
                   help="who reviews the change, printed on the report next to the operator "
                   "(default: the profile's reviewer)")


def open_journal(args: argparse.Namespace, settings: PgSettings, command: str,
                 profile: Profile | None = None) -> Journal:
    """The command's run journal, opened with its change recorded first: --change and
    --reviewer, else the profile's change reference and reviewer (and its operator)."""
    profile = profile if profile is not None else load_profile(args)
    journal = Journal.create(settings, command)
    record_change(journal,
                  getattr(args, "change", None) or (profile.change_ref if profile else None),
                  getattr(args, "reviewer", None) or (profile.reviewer if profile else None),
                  profile.operator if profile else None)
    return journal


def pg_settings(args: argparse.Namespace) -> PgSettings:
    """Connection settings for a command, checked by connecting once (prompting if needed)."""
    profile = load_profile(args)
    settings = settings_from(args.dsn, profile)
    password = profile_password(profile, settings)
    if password is None:
        return connectable(settings, sys.stdin.isatty())
    return connectable(settings.with_password(password), sys.stdin.isatty(),
                       keyring_profile=profile.name if profile else None)
