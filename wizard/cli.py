"""`enerlink-migrate`: the headless runner over the engine's jobs."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from wizard import __version__
from wizard.core import jobs, names
from wizard.core.connection import PgSettings
from wizard.core.discovery import CONFLICT, UNKNOWN
from wizard.core.execute import RunOptions, RunResult
from wizard.core.plan import DOWN, UP, PlanRefused
from wizard.core.verify import FAIL, Check

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3


class CliError(RuntimeError):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def settings_from(dsn: str | None) -> PgSettings:
    """Connection settings from --dsn, else libpq's PG* variables. Never a password."""
    params: dict[str, Any] = conninfo_to_dict(dsn) if dsn else {}
    if "password" in params:
        raise CliError("--dsn must not contain a password (it would show in the process "
                       "list and shell history); use ~/.pgpass, PGPASSFILE or the prompt",
                       EXIT_USAGE)
    env = os.environ
    return PgSettings(
        host=str(params.get("host") or env.get("PGHOST") or "localhost"),
        port=int(params.get("port") or env.get("PGPORT") or 5432),
        dbname=str(params.get("dbname") or env.get("PGDATABASE") or "enerlink_db"),
        user=str(params.get("user") or env.get("PGUSER") or getpass.getuser()),
        sslmode=str(params.get("sslmode") or env.get("PGSSLMODE") or "prefer"),
        sslrootcert=params.get("sslrootcert") or env.get("PGSSLROOTCERT"))


def connectable(settings: PgSettings, interactive: bool) -> PgSettings:
    """Try libpq's own password sources; prompt once when it needs one and we can ask."""
    try:
        settings.connect().close()
        return settings
    except psycopg.OperationalError as exc:
        text = str(exc)
        if "no password supplied" in text and interactive:
            password = getpass.getpass(f"Password for {settings.describe()}: ")
            with_pw = settings.with_password(password)
            try:
                with_pw.connect().close()
            except psycopg.OperationalError as again:
                raise CliError(_connect_advice(settings, str(again)), EXIT_USAGE) from None
            return with_pw
        raise CliError(_connect_advice(settings, text), EXIT_USAGE) from None


def _connect_advice(settings: PgSettings, text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    fatal = [ln for ln in lines if "FATAL" in ln or "error" in ln.lower()]
    first = (fatal or lines or [text])[0].split("failed: ", 1)[-1]
    hint = "check host, port and that the server is running"
    if "password authentication failed" in text:
        hint = "wrong password for this role; check ~/.pgpass or PGPASSFILE"
    elif "no password supplied" in text:
        hint = "the server wants a password: add it to ~/.pgpass (or PGPASSFILE), or run " \
               "interactively to be prompted"
    elif "does not exist" in text and "database" in text:
        hint = "no such database; check the name (--dsn .../dbname)"
    elif "could not translate host name" in text:
        hint = "the host name does not resolve (DNS); check the spelling"
    elif "timeout" in text:
        hint = "no answer: a firewall or the wrong host/port"
    return f"cannot connect to {settings.describe()}: {first} ({hint})"


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if args.json:
        print(json.dumps(data, indent=2, default=str, ensure_ascii=False))
    else:
        print(text)


def _checks_text(checks: list[Check]) -> str:
    mark = {"pass": "✔", "fail": "✘", "warn": "!"}
    return "\n".join(f"  {mark.get(c.status, '?')} {c.title}: {c.detail}" for c in checks)


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
    _emit(args, d.to_dict(), "\n".join(lines))
    return EXIT_REFUSED if d.state in (CONFLICT, UNKNOWN) else EXIT_OK


def cmd_plan(args: argparse.Namespace, settings: PgSettings) -> int:
    d = jobs.inspect(settings)
    try:
        plan = jobs.make_plan(d, DOWN if args.down else UP, settings, _migration(args))
    except PlanRefused as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    if args.sql and not args.json:
        print(plan.script(args.lock_timeout), end="")
        return EXIT_OK
    lines = [f"state: {d.state}: {d.explanation}",
             f"plan ({plan.direction}): {len(plan.catalog_steps)} steps in one transaction"
             + (f", then {len(plan.validate_steps)} after commit" if plan.validate_steps
                else "")]
    lines += [f"  [{n}/{len(plan.catalog_steps)}] {s.title}"
              for n, s in enumerate(plan.catalog_steps, 1)]
    lines += [f"  after commit: {s.title}" for s in plan.validate_steps]
    lines += [f"  unchanged: {u}" for u in plan.unchanged] + [f"  note: {n}" for n in plan.notes]
    if not plan.steps:
        lines.append("  nothing to do")
    _emit(args, {**plan.to_dict(), "script": plan.script(args.lock_timeout)}, "\n".join(lines))
    return EXIT_OK


def _migration(args: argparse.Namespace) -> tuple[int, str]:
    return (args.migration_timestamp, args.migration_name)


def _print_log(level: str, message: str) -> None:
    print(("  " if level == "step" else f"[{level}] ") + message, file=sys.stderr, flush=True)


def _run(args: argparse.Namespace, settings: PgSettings, direction: str) -> int:
    options = RunOptions(lock_timeout_s=args.lock_timeout, retries=args.retries,
                         statement_timeout_s=args.statement_timeout,
                         rehearse=getattr(args, "rehearse", False))
    try:
        plan, result, journal = jobs.run(settings, direction, options=options,
                                         report=None if args.json else _print_log,
                                         migration=_migration(args))
    except PlanRefused as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    _emit(args, {"plan": plan.to_dict(), "result": result.to_dict(),
                 "journal": str(journal.folder)}, _result_text(result, journal.folder))
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
    else:
        head = f"{verb} FAILED: {result.error}"
    lines = [head]
    if result.checks:
        lines.append(_checks_text(result.checks))
    if result.ok and not result.rehearsal and result.direction == UP:
        lines.append("Revert with `enerlink-migrate revert` (not `npm run migration:revert`: "
                     "the upstream down() cannot succeed on this schema).")
    lines.append(f"journal: {folder}")
    return "\n".join(lines)


def cmd_migrate(args: argparse.Namespace, settings: PgSettings) -> int:
    return _run(args, settings, UP)


def cmd_revert(args: argparse.Namespace, settings: PgSettings) -> int:
    return _run(args, settings, DOWN)


def cmd_verify(args: argparse.Namespace, settings: PgSettings) -> int:
    checks = jobs.verify(settings)
    failed = any(c.status == FAIL for c in checks)
    _emit(args, [c.to_dict() for c in checks],
          f"verification of {settings.describe()}: {'FAILED' if failed else 'passed'}\n"
          + _checks_text(checks))
    return EXIT_FAILED if failed else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="enerlink-migrate",
        description="Rename EnerLink's prosumer table to user, safely.",
        epilog="Exit codes: 0 success, 1 failed, 2 usage or connection, 3 refused.")
    parser.add_argument("--version", action="version", version=f"enerlink-migrate {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dsn", help="postgresql://user@host:port/db (no password; libpq "
                        "reads ~/.pgpass, PGPASSFILE, PGPASSWORD, or you are prompted)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument("--lock-timeout", type=float, default=2.0, metavar="S")
    common.add_argument("--statement-timeout", type=float, default=30.0, metavar="S")
    common.add_argument("--retries", type=int, default=3, metavar="N")
    common.add_argument("--migration-name", default=names.MIGRATION_NAME)
    common.add_argument("--migration-timestamp", type=int, default=names.MIGRATION_TIMESTAMP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("inspect", parents=[common], help="state of the database, from the catalog")
    p = sub.add_parser("plan", parents=[common], help="the steps and their exact SQL")
    p.add_argument("--down", action="store_true", help="the revert plan")
    p.add_argument("--sql", action="store_true", help="print the SQL script only")
    m = sub.add_parser("migrate", parents=[common], help="rename prosumer to user")
    m.add_argument("--rehearse", action="store_true",
                   help="run everything, then ROLLBACK: nothing changes")
    sub.add_parser("revert", parents=[common], help="rename user back to prosumer")
    sub.add_parser("verify", parents=[common], help="the verification checklist")
    return parser


COMMANDS = {"inspect": cmd_inspect, "plan": cmd_plan, "migrate": cmd_migrate,
            "revert": cmd_revert, "verify": cmd_verify}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    try:
        settings = connectable(settings_from(args.dsn), sys.stdin.isatty())
        return COMMANDS[args.command](args, settings)
    except CliError as exc:
        print(f"enerlink-migrate {args.command}: {exc}", file=sys.stderr)
        return exc.code
