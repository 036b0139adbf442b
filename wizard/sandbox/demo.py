"""`make demo`: the wizard on the sandbox, or the same steps headless when there is no display."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keyring

from wizard.core import phases, profiles, secrets
from wizard.core.backup import BackupOptions
from wizard.core.journal import Journal
from wizard.core.phases import PrepareOptions, WindowOptions
from wizard.core.profiles import Profile
from wizard.core.report import record_operator
from wizard.core.session import WizardSession
from wizard.sandbox.memkeyring import MemoryKeyring
from wizard.sandbox.sandbox import Sandbox

PROFILE = "sandbox"

Say = Callable[[str], None]


def use_private_config(box: Sandbox) -> None:
    """Profiles of the demo live in the sandbox folder, never in the user's config."""
    os.environ["ENERLINK_MIGRATE_CONFIG"] = str(box.folder / "config")
    os.environ.setdefault("ENERLINK_MIGRATE_RUNS", str(box.folder / "runs"))


def install_keyring(box: Sandbox) -> None:
    """The sandbox's random passwords in an in-process keyring: nothing stored anywhere."""
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    secrets.set(PROFILE, "postgres", box.owner.password or "")
    secrets.set(PROFILE, "redis", box.redis.password)


def demo_profile(box: Sandbox) -> Profile:
    o = box.owner
    return Profile(name=PROFILE, pg_host=o.host, pg_port=o.port, pg_dbname=o.dbname,
                   pg_user=o.user, pg_sslmode=o.sslmode, redis_url=f"{box.redis.url}/0",
                   backup_folder=str(box.folder / "backups"), operator="sandbox demo")


def prepare(box: Sandbox) -> Profile:
    use_private_config(box)
    install_keyring(box)
    profile = demo_profile(box)
    profiles.save(profile)
    return profile


@dataclass
class DemoOutcome:
    ok: bool
    journal: Path
    pdf: Path | None  # the copy kept outside the sandbox (it is removed when it stops)
    failed: list[str]
    log: Path | None = None  # every line of the run, pg_dump's verbose output included


def kept_folder() -> Path:
    """Where the demo's PDF and log outlive the sandbox: the user's documents folder
    (XDG_DOCUMENTS_DIR, else ~/Documents when it exists), else the current folder."""
    xdg = os.environ.get("XDG_DOCUMENTS_DIR")
    for candidate in ([Path(xdg).expanduser()] if xdg else []) + [Path.home() / "Documents"]:
        if candidate.is_dir() and os.access(candidate, os.W_OK):
            return candidate
    return Path.cwd()


# pg_dump's and pg_restore's own --verbose output: into the log, not the summary.
PROGRAM_OUTPUT = ("pg_dump: ", "pg_restore: ")


def run_headless(box: Sandbox, say: Say) -> DemoOutcome:
    """The change in its two phases (prepare, window) on one journal; ends with the PDF."""
    profile = prepare(box)
    session = WizardSession.from_profile(profile, secrets.get(PROFILE, "postgres"),
                                         secrets.get(PROFILE, "redis"))
    journal = session.ensure_journal()
    stamp = journal.folder.name.split("_", 1)[0]
    log_path = kept_folder() / f"enerlink-demo-{stamp}.log"
    log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in the finally below
    try:
        outcome = _headless(session, journal, say, log, stamp)
    finally:
        log.close()
    outcome.log = log_path
    return outcome


def _headless(session: WizardSession, journal: Journal, say: Say, log: Any,
              stamp: str) -> DemoOutcome:
    def report(level: str, message: str) -> None:
        log.write(f"[{level}] {message}\n")
        if level in ("info", "step") and message.startswith(PROGRAM_OUTPUT):
            return
        say(("  " if level in ("info", "step") else f"  [{level}] ") + message)

    say("1/2 Prepare, the application running: pre-flight, orphan scan, backup proven by "
        "a restore into a scratch copy, rehearsal, Redis dry run")
    prepared = phases.prepare(session.pg, session.redis, session.redis_rules,
                              options=PrepareOptions(BackupOptions(out_dir=session.backup_folder)),
                              report=report, journal=journal)
    for line in prepared.lines()[1:]:
        say(line)
    if not prepared.ok:
        return DemoOutcome(False, journal.folder, None, prepared.problems)
    say("2/2 Window (the sandbox runs no application to stop): re-check, migrate, Redis, "
        "start, then the whole checklist")
    result = phases.window(session.pg, session.redis, session.redis_rules,
                           options=WindowOptions(app_stopped=True), report=report,
                           journal=journal)
    if result.recheck:
        say(f"  re-check {result.recheck['seconds']:.2f} s: "
            f"{result.recheck['orphans']} new orphan rows")
    if result.redis_changed is not None:
        say(f"  {result.redis_changed} Redis keys brought to the new names")
    if result.writes_at_risk_s is not None:
        say(f"  a restore of the prepared backup would lose {result.writes_at_risk_s:g} s of "
            "writes; a revert loses none")
    failed = [f"{c['title']}: {c['detail']}" for c in result.checks if c["status"] == "fail"]
    if result.error and not failed:
        failed = [result.error]
    if session.operator:
        record_operator(journal, session.operator)
    say("Report")
    pdf = journal.folder / "enerlink-migration-report.pdf"
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from wizard.ui.pdf import write_report_pdf
    pages = write_report_pdf(Journal(journal.folder), pdf)
    kept = kept_folder() / f"enerlink-migration-report-{stamp}.pdf"
    shutil.copyfile(pdf, kept)
    say(f"  {kept} ({pages} pages)")
    return DemoOutcome(not failed, journal.folder, kept, failed)


def run_gui(box: Sandbox) -> int:
    """Open the wizard on the sandbox's profile (passwords from the in-process keyring)."""
    prepare(box)
    from wizard.ui.app import run_gui as open_window
    return open_window(PROFILE)
