"""`enerlink-migrate preflight`: the Pre-flight page's read-only checks, headless."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from wizard.cli.common import (
    EXIT_OK,
    EXIT_REFUSED,
    add_change_options,
    checks_text,
    load_profile,
    open_journal,
    pg_settings,
    printer,
)
from wizard.core.preflight import Preflight, Session, run_preflight
from wizard.core.profiles import Profile
from wizard.core.units import format_bytes


def cmd_preflight(args: argparse.Namespace) -> int:
    """The checks the wizard runs before the change window (state, versions, client tools,
    privileges, restore possible, disk, other sessions, stored code), journaled as
    `preflight`. Exit 0 when nothing blocks the run, 3 when something does."""
    out = printer(args)
    profile = load_profile(args)
    settings = pg_settings(args)
    journal = open_journal(args, settings, "preflight", profile)
    result = run_preflight(settings, _backup_folder(args, profile),
                           pg_dump=args.pg_dump or (profile.pg_dump_path if profile else None),
                           journal=journal)
    blocking = result.blocking
    out.result({**result.to_dict(), "blocking": [c.id for c in blocking],
                "journal": str(journal.folder)},
               "\n".join([*_text(result), f"journal: {journal.folder}"]))
    if not blocking:
        return EXIT_OK
    out.error("preflight", f"{len(blocking)} check(s) block the run: "
              + "; ".join(f"{c.title}: {c.detail}" for c in blocking)
              + ". Fix what is marked ✘, then run `enerlink-migrate preflight` again")
    return EXIT_REFUSED


def _backup_folder(args: argparse.Namespace, profile: Profile | None) -> Path | None:
    """Where the backup will go, for the free-space check: --backup-folder, else the
    profile's; without either the check says no folder was chosen."""
    if args.backup_folder:
        return Path(args.backup_folder).expanduser()
    if profile is not None and profile.backup_folder:
        return Path(profile.backup_folder).expanduser()
    return None


def _text(result: Preflight) -> list[str]:
    blocking = result.blocking
    lines = [f"pre-flight of {result.target}: PostgreSQL {result.server_version or '?'}, "
             f"connected as {result.current_user}",
             f"state: {result.state}: {result.explanation}",
             checks_text(result.checks)]
    refs = next((c.evidence.get("result") for c in result.checks
                 if c.id == "text_references"), None) or []
    lines += [f"    text reference: {r}" for r in refs]
    if result.estimated_rows:
        lines.append("rows (estimates): " + ", ".join(
            f"{t} ≈ {n:,}" for t, n in sorted(result.estimated_rows.items())))
    lines += _sessions_text(result.sessions)
    lines.append(f"database {format_bytes(result.database_bytes)}; "
                 + (f"{len(blocking)} blocking problem(s)" if blocking
                    else "nothing blocks the run"))
    return lines


def _sessions_text(sessions: list[Session]) -> list[str]:
    if not sessions:
        return ["other sessions: none"]
    lines = [f"other sessions: {len(sessions)} (cancel or terminate them from the wizard's "
             "Pre-flight page, or with pg_cancel_backend / pg_terminate_backend)"]
    for s in sessions:
        age = "" if s.xact_age_s is None else f", transaction {s.xact_age_s:g} s"
        query = " ".join(s.query.split())
        lines.append(f"  pid {s.pid} {s.application_name or '(no application name)'} "
                     f"{s.user}@{s.client} {s.state or '-'}{age}"
                     + (f": {query[:120]}" if query else ""))
    return lines


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "preflight", parents=[common], help="read-only checks before the change window",
        description="The wizard's pre-flight checks: the database's state, the server and "
        "client-tool versions, the role's privileges, whether a restore would be possible, "
        "free space for the backup, other sessions and stored code that names prosumer. "
        "Nothing is changed. Journaled; exit 0 when nothing blocks the run, 3 when "
        "something does.")
    p.add_argument("--backup-folder", metavar="DIR",
                   help="where the backup will go, for the free-space check (default: the "
                   "profile's backup folder)")
    p.add_argument("--pg-dump", metavar="PATH",
                   help="the pg_dump the backup will use (program or folder; default: the "
                   "profile's, else searched on PATH)")
    add_change_options(p)
    p.set_defaults(handler=cmd_preflight)
