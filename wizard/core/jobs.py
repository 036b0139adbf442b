"""The engine's commands (inspect, plan, migrate, revert, verify), shared by CLI and GUI."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from wizard.core import names, orphans
from wizard.core.archive import archive_sha256, archive_size
from wizard.core.backup import newest_verified_backup
from wizard.core.commit_outcome import committed
from wizard.core.connection import PgSettings
from wizard.core.discovery import Discovery, discover
from wizard.core.events import (
    BackupAccepted,
    BackupSkipped,
    DownPlan,
    Expected,
    PlanMade,
    PlanShown,
    Refused,
    StateBefore,
)
from wizard.core.execute import EventSink, RunOptions, RunResult, migration_lock, run_plan
from wizard.core.hints import hint
from wizard.core.journal import Journal, runs_for
from wizard.core.plan import DOWN, UP, Plan, PlanRefused, build_down, build_up
from wizard.core.proof_records import proofs_of
from wizard.core.reporting import Report, no_report
from wizard.core.units import format_bytes
from wizard.core.verify import (
    Check,
    Expectations,
    catalog_checks,
    count_rows,
    expectations_from,
    expectations_of_catalog,
    row_count_check,
    text_reference_check,
)


class GuardRefused(PlanRefused):
    """The migration may not run yet: no verified backup, or orphans in its way."""


@dataclass
class Guard:
    """What a real migration checks first (the CLI and the wizard use it; tests may not).

    `without_backup` is the database name typed back by a DBA who migrates without a
    backup; it must equal the target database.
    """

    without_backup: str | None = None
    check_orphans: bool = True
    # A backup older than this would lose too much if it had to be restored: take a new one.
    max_backup_age_h: float = 24.0
    # The database name typed back by a DBA who migrates although the backup's proof
    # found it cannot be restored exactly.
    accept_failed_proof: str | None = None
    # path → (sha256, seconds): the backup hashed again already, after the application
    # stopped (the change window hashes it alongside its re-check instead of after it).
    hashed: dict[str, tuple[str, float]] = field(default_factory=dict)


@dataclass
class UpRecord:
    """What a committed up-run wrote down, so that revert restores the exact names."""

    name_map: dict[str, str]
    added_fks: list[tuple[str, str]]
    created_migrations_table: bool
    counts_before: dict[str, int] | None
    expected: dict[str, Any] | None = None  # the run's Expected event (older runs: none)


def inspect(settings: PgSettings) -> Discovery:
    with settings.connect() as conn:
        return discover(conn)


def last_up_record(settings: PgSettings) -> UpRecord | None:
    """The newest committed migration of this database found in the run journals."""
    for journal in runs_for(settings):
        finished = [e for e in journal.events("run_finished")
                    if committed(e["result"]) and not e["result"]["rehearsal"]]
        plans = journal.events("plan")
        if finished and plans and finished[-1]["result"]["direction"] == UP:
            plan = plans[-1]
            expected = journal.events("expected")
            return UpRecord(plan.get("name_map", {}),
                            [(str(x[0]), str(x[1])) for x in plan.get("added_fks", [])],
                            bool(plan.get("created_migrations_table")),
                            finished[-1]["result"].get("counts_before"),
                            expected[-1] if expected else None)
        if finished and finished[-1]["result"]["direction"] == DOWN:
            return None  # reverted since: nothing to take names from
    return None


def make_plan(d: Discovery, direction: str, settings: PgSettings,
              migration: tuple[int, str] = (names.MIGRATION_TIMESTAMP,
                                            names.MIGRATION_NAME)) -> Plan:
    if direction == UP:
        return build_up(d, migration=migration)
    record = last_up_record(settings)
    return build_down(
        d, journal_names=record.name_map if record else None,
        added_fks=record.added_fks if record else None,
        created_migrations_table=record.created_migrations_table if record else False,
        migration_name=migration[1])


class RunInProgress(PlanRefused):
    """Another enerlink-migrate run holds this database's migration lock."""


def _running_elsewhere(settings: PgSettings, journal: Journal) -> str:
    """The newest run of this database that started a migration and never finished."""
    for other in runs_for(settings):
        if other.folder == journal.folder:
            continue
        started = other.events("run_started")
        command = str(started[0].get("command", "")) if started else ""
        if command.endswith(("migrate", "revert")) and not other.events("run_finished") \
                and not other.events("refused"):
            s = started[0]
            return (f"; its journal: {command} started {s.get('ts')} by "
                    f"{s.get('operator')}@{s.get('client_host')} (pid {s.get('pid')}), "
                    f"{other.folder}")
    return ""


class PlanMismatch(PlanRefused):
    """The plan built now is not the plan the DBA approved (its digest differs)."""


def record_plan_shown(journal: Journal, plan: Plan) -> None:
    """The Migrate page showed this plan (a run must then match its digest)."""
    journal.record(PlanShown(plan.state, len(plan.ops), len(plan.catalog_steps),
                             len(plan.validate_steps), plan.digest))


def _approved_plan(settings: PgSettings, direction: str, plan: Plan | None,
                   digest: str | None, migration: tuple[int, str]) -> tuple[Discovery, Plan]:
    """The plan to run: the one on screen, or one built now (matching `digest` if given)."""
    if plan is not None:
        if plan.direction != direction:
            raise PlanMismatch(f"the plan shown goes {plan.direction}, the run {direction}")
        return plan.source or inspect(settings), plan
    before = inspect(settings)
    plan = make_plan(before, direction, settings, migration)
    wanted = (digest or "").strip().lower()
    if wanted and (len(wanted) < 12 or not plan.digest.startswith(wanted)):
        raise PlanMismatch(
            f"the plan for {settings.describe()} now has digest {plan.digest[:16]}, not the "
            f"{wanted[:16]} you approved" + (" (give at least 12 hex digits)"
                                             if len(wanted) < 12 else "")
            + ": the catalog changed since. "
            + hint("Run `enerlink-migrate plan` again, review it, then migrate with its "
                   "digest.", "Go back to the Migrate page: it shows the new plan; review "
                   "it, rehearse it, then run it."))
    return before, plan


def run(settings: PgSettings, direction: str, *, options: RunOptions | None = None,
        report: Report | None = None, cancel: threading.Event | None = None,
        migration: tuple[int, str] = (names.MIGRATION_TIMESTAMP, names.MIGRATION_NAME),
        journal: Journal | None = None, guard: Guard | None = None,
        plan: Plan | None = None, digest: str | None = None,
        events: EventSink | None = None) -> tuple[Plan, RunResult, Journal]:
    """Execute (or rehearse) one direction, journaling everything.

    `plan` is the plan the DBA approved (the GUI's, on screen); without it the plan is
    built now and, given `digest` (printed by `plan`), must have that digest. Either way
    the run re-reads the catalog inside its transaction and refuses if it changed. With a
    `guard`, a real migration is refused (GuardRefused) until its checks pass.
    """
    opts = options or RunOptions()
    command = ("rehearse-" if opts.rehearse else "") + ("migrate" if direction == UP else "revert")
    journal = journal or Journal.create(settings, command)
    with migration_lock(settings) as holder:
        if holder is not None:
            reason = (f"another enerlink-migrate run is migrating {settings.describe()} "
                      f"({holder}{_running_elsewhere(settings, journal)}): wait for it to "
                      f"finish; nothing was read or changed")
            journal.record(Refused(reason))
            raise RunInProgress(reason)
        return _run_locked(settings, direction, opts, report, cancel, migration, journal,
                           guard, plan, digest, events)


def _run_locked(settings: PgSettings, direction: str, opts: RunOptions,
                report: Report | None, cancel: threading.Event | None,
                migration: tuple[int, str], journal: Journal, guard: Guard | None,
                plan: Plan | None, digest: str | None, events: EventSink | None
                ) -> tuple[Plan, RunResult, Journal]:
    try:
        before, plan = _approved_plan(settings, direction, plan, digest, migration)
    except PlanMismatch as exc:
        journal.record(Refused(str(exc)))
        raise
    journal.record(StateBefore(before.state, before.explanation, before.done, before.pending,
                               before.missing, [str(r) for r in before.text_references],
                               before.server_version))
    journal.record(PlanMade(plan.record()))
    if guard is not None and direction == UP and plan.steps:
        try:
            check_guard(settings, plan, journal, guard, report or no_report,
                        rehearse=opts.rehearse)
        except GuardRefused as exc:
            journal.record(Refused(str(exc)))
            raise
    exp = expectations_from(before, plan) if direction == UP else Expectations({})
    if direction == UP:
        exp.migration_names = (migration[1], *names.ALSO_APPLIED)
        journal.record(Expected({k: list(v) for k, v in exp.fk_shapes.items()},
                                exp.fk_names, exp.index_names, sorted(exp.must_be_validated),
                                sorted(exp.added)))
    result = run_plan(settings, plan, before, exp, options=opts, report=report, cancel=cancel,
                      journal=journal, events=events, locked=True)
    if result.discovery_after is not None and direction == UP:
        down = make_plan_from_record(result.discovery_after, plan)
        journal.record(DownPlan(down.script(), down.record()["steps"],
                                [op.record() for op in down.ops], down.digest))
    return plan, result, journal


def _last_change(settings: PgSettings) -> str:
    """When this database's schema was last changed by us (a committed run), ISO time."""
    newest = ""
    for journal in runs_for(settings):
        for event in journal.events("run_finished"):
            result = event.get("result", {})
            if committed(result) and not result.get("rehearsal") and result.get("steps"):
                newest = max(newest, str(event.get("ts", "")))
        for event in journal.events("restore_finished"):
            if event.get("result", {}).get("ok"):
                newest = max(newest, str(event.get("ts", "")))
    return newest


def check_guard(settings: PgSettings, plan: Plan, journal: Journal, guard: Guard,
                report: Report, *, rehearse: bool = False) -> None:
    """Refuse a real migration without a fresh verified backup, and any run (a rehearsal
    too: its VALIDATE would pass only because it never commits) with orphans in its way."""
    db = settings.dbname
    skipped = journal.events("backup_skipped")
    if rehearse:
        pass  # a rehearsal changes nothing: no backup needed
    elif guard.without_backup is not None:
        if guard.without_backup != db:
            raise GuardRefused(f"the confirmation {guard.without_backup!r} does not match "
                               f"the database {db!r}: type its exact name to migrate "
                               f"without a backup")
        journal.record(BackupSkipped(db, "typed confirmation"))
        report("warn", f"migrating {db} WITHOUT a backup: confirmed by typing its name")
    elif skipped:
        report("warn", f"migrating {db} without a backup: {skipped[-1].get('how', 'confirmed')}")
    else:
        backup = usable_backup(settings, journal, guard)
        _accept_backup(settings, backup, journal, report, guard)
    if guard.check_orphans and orphans.needs_orphan_check(plan):
        report("info", "the plan adds or validates a foreign key: scanning for orphans")
        blocking = orphans.blocking_orphans(orphans.scan(settings, journal=journal), plan)
        if blocking:
            raise GuardRefused("orphan rows stop the migration: " + "; ".join(blocking))


def usable_backup(settings: PgSettings, journal: Journal, guard: Guard) -> dict[str, Any]:
    """The verified backup a real migration would take as its rollback point, checked
    without hashing it: still on disk, fresh (newer than the last change and
    `max_backup_age_h`), and not refused by a failed proof the DBA did not accept. Raises
    GuardRefused. The change window asks this before it stops the application, not after."""
    db = settings.dbname
    backup = newest_verified_backup(settings, [journal, *runs_for(settings)])
    changed = _last_change(settings)
    oldest = (datetime.now(timezone.utc) - timedelta(hours=guard.max_backup_age_h)
              ).isoformat(timespec="milliseconds")
    stale = ""
    if backup is not None and str(backup.get("ts", "")) < changed:
        stale = " taken since the schema last changed"
    elif backup is not None and str(backup.get("ts", "")) < oldest:
        stale = (f" from the last {guard.max_backup_age_h:g} h (the newest is from "
                 f"{backup.get('ts')}; restoring it would lose the writes made since)")
    if backup is None or stale:
        raise GuardRefused(
            f"no verified backup of {settings.describe()}{stale} in the run journals: "
            + hint(f"run `enerlink-migrate backup --out DIR` first (or, knowingly, "
                   f"`migrate --without-backup --confirm {db}`)",
                   f"take a backup on the Backup page first (or, knowingly, press "
                   f"Continue without a backup… there and type {db})"))
    # Raises when its newest proof failed and the DBA did not type the name to accept it.
    _proof_of(settings, str(backup.get("sha256", "")), journal, no_report, guard,
              Path(str(backup.get("path"))))
    return backup


def _accept_backup(settings: PgSettings, backup: dict[str, Any], journal: Journal,
                   report: Report, guard: Guard) -> None:
    """Hash the backup again (before the transaction, never under a lock): only the exact
    file that was verified may be the rollback point, which the migrate journal records."""
    path = Path(str(backup.get("path")))
    size = archive_size(path)
    if str(path) in guard.hashed:
        now, seconds = guard.hashed[str(path)]
    else:
        report("info", f"hashing the backup {path} again ({format_bytes(size)}) before the "
                       f"transaction")
        t0 = time.perf_counter()
        now = archive_sha256(path)
        seconds = round(time.perf_counter() - t0, 3)
    recorded = str(backup.get("sha256", ""))
    if now != recorded:
        raise GuardRefused(
            f"the backup {path} is not the file that was verified: its sha256 is now "
            f"{now[:16]}…, the journal recorded {recorded[:16]}… (verified "
            f"{backup.get('ts')}). Restoring it could fail or bring back other data: take a "
            f"new backup ("
            + hint("`enerlink-migrate backup --out DIR`", "the Backup page") + "), then migrate")
    proof = _proof_of(settings, now, journal, report, guard, path)
    journal.record(BackupAccepted(str(path), size, now, str(backup.get("ts", "")),
                                  str(backup.get("journal", "")), seconds, proof))
    proven = (" · PROVEN" if proof and proof["proven"] else
              " · proof FAILED, accepted by typed name" if proof else " · not proven")
    report("info", f"rollback point: {path} (sha256 {now[:12]}…, hashed again in "
                   f"{seconds:.2f} s){proven}")


def _proof_of(settings: PgSettings, sha256: str, journal: Journal, report: Report,
              guard: Guard, path: Path) -> dict[str, Any] | None:
    """The newest proof of the backup with this sha256; a failed one refuses the migration
    unless the DBA typed the database's name (Guard.accept_failed_proof)."""
    db = settings.dbname
    found = proofs_of(settings, sha256, [journal, *runs_for(settings)])
    if not found:
        report("info", f"the backup {path.name} has not been proven by a restore ("
                       + hint(f"enerlink-migrate prove {path}, or backup --prove",
                              "Prove this backup, on the Backup page") + ")")
        return None
    newest = found[0]
    proof = {"proven": bool(newest.get("proven")), "summary": newest.get("summary"),
             "ts": newest.get("ts"), "journal": newest.get("journal")}
    if proof["proven"]:
        return proof
    if guard.accept_failed_proof == db:
        report("warn", f"the backup's proof failed ({newest.get('reason')}); migrating "
                       f"anyway: confirmed by typing {db}")
        return proof
    raise GuardRefused(
        f"the backup {path} cannot be restored exactly: its proof on {newest.get('ts')} "
        f"found {newest.get('reason')}. Restoring it would not give back this database: "
        f"take a new backup (after the orphan cleanup) and prove it, or, knowingly, migrate "
        + hint(f"with `--accept-failed-proof {db}`", f"anyway by typing {db} when asked"))


def make_plan_from_record(after: Discovery, up: Plan) -> Plan:
    """The revert of `up`, from the catalog as the commit left it."""
    return build_down(after, journal_names=up.name_map(), added_fks=up.added_fks(),
                      created_migrations_table=up.creates_migrations_table)


def _verify_expectations(d: Discovery, record: UpRecord | None) -> Expectations:
    """What the migration recorded before it ran; without that journal, the entities'
    defaults, against which a key migrate would have kept as it was is only a warning."""
    if record is None or record.expected is None:
        exp = expectations_of_catalog(d)
        exp.shapes_recorded = False
        return exp
    e = record.expected
    exp = Expectations({k: (str(v[0]), str(v[1]), bool(v[2]), bool(v[3]))
                        for k, v in e.get("fk_shapes", {}).items()})
    exp.fk_names = dict(e.get("fk_names", {}))
    exp.index_names = list(e.get("index_names", []))
    exp.must_be_validated = set(e.get("must_be_validated", []))
    exp.added = set(e.get("added", []))
    return exp


def verify(settings: PgSettings) -> list[Check]:
    """The checklist after the fact: catalog checks, row counts from the journal if any."""
    record = last_up_record(settings)
    with settings.connect() as conn:
        d = discover(conn)
        checks = catalog_checks(conn, _verify_expectations(d, record), d.schema)
        if d.target_table is not None:
            # The tables counted before the migration, under their current names.
            tables = ([names.NEW_TABLE if t == names.OLD_TABLE else t
                       for t in record.counts_before] if record and record.counts_before
                      else list(d.tables))
            counts = count_rows(conn, [t for t in tables if t in d.tables], d.schema)
            checks.append(row_count_check(record.counts_before if record else None, counts))
    checks.append(text_reference_check(d))
    return checks
