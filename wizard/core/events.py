"""Every event a run journal holds, declared once.

Core writes them (`Journal.record`); the GUI, the CLI and the PDF read the same records
back. A record on disk is {"ts", "event": <Event.event>, **fields}; events whose payload is a
result object are stored flat (their `payload` spread into the record), as they always
were, so old journals stay readable: readers take records as dicts, and `parse` turns a
record into its event, ignoring fields this version does not know.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

EVENTS: dict[str, type[Event]] = {}
E = TypeVar("E", bound="Event")


@dataclass(frozen=True)
class Event:
    """Base of every journal event; subclasses register under `event`."""

    event: ClassVar[str] = ""
    flat: ClassVar[bool] = False  # the record is the payload itself (a result's to_dict())

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.event:
            if cls.event in EVENTS:
                raise TypeError(f"journal event {cls.event!r} declared twice")
            EVENTS[cls.event] = cls

    def fields(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if self.flat:
            return dict(data["payload"])
        return data


def parse(record: dict[str, Any], cls: type[E]) -> E:
    """A journal record as its event (missing fields take their defaults)."""
    if record.get("event") != cls.event:
        raise ValueError(f"a {record.get('event')!r} record is not a {cls.event!r} event")
    if cls.flat:
        payload = {k: v for k, v in record.items() if k not in ("ts", "event")}
        return cls(payload=payload)  # type: ignore[call-arg]
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in record.items() if k in known})


# -- every run -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunStarted(Event):
    event = "run_started"
    command: str
    target: dict[str, Any]
    operator: str
    client_host: str
    pid: int


@dataclass(frozen=True)
class LogLine(Event):
    event = "log"
    level: str
    message: str


@dataclass(frozen=True)
class OperatorNamed(Event):
    event = "operator"
    name: str


@dataclass(frozen=True)
class ChangeNamed(Event):
    """The change this run belongs to, as the change board knows it: its reference (the
    change or ticket id), the reviewer who signs with the operator, and the operator the
    profile or the command line names (a later `operator` record, the signing name, wins)."""

    event = "change"
    ref: str
    reviewer: str = ""
    operator: str = ""


# -- pre-flight ------------------------------------------------------------------------------

@dataclass(frozen=True)
class PreflightDone(Event):
    """wizard.core.preflight's result, flat."""

    event = "preflight"
    flat = True
    payload: dict[str, Any]


@dataclass(frozen=True)
class SessionSignalled(Event):
    event = "session_signalled"
    message: str


@dataclass(frozen=True)
class AppCommandRan(Event):
    event = "app_command"
    what: str
    command: str
    ok: bool
    detail: str = ""


# -- the two phases of a change window (wizard.core.phases) ---------------------------------

@dataclass(frozen=True)
class PhasePrepared(Event):
    """wizard.core.phases.Prepared, flat: what ran while the application was up (backup,
    orphans, rehearsal, Redis dry run), the plan's digest and the orphan scan's horizon the
    window's re-check compares with."""

    event = "phase_prepared"
    flat = True
    payload: dict[str, Any]


@dataclass(frozen=True)
class WindowOpened(Event):
    """The application was stopped (by the profile's stop command, or the DBA said so):
    the downtime starts here."""

    event = "window_opened"
    how: str  # "stop command" or "confirmed by the operator"
    prepared: str  # the prepare phase's journal folder
    writes_at_risk_s: float | None  # backup snapshot → stop: what a restore would lose


@dataclass(frozen=True)
class WindowRechecked(Event):
    """The window's fast re-check: the plan's digest and the orphans written since the
    prepare phase's scan, in the columns whose foreign key the migration adds."""

    event = "window_rechecked"
    ok: bool
    digest_equal: bool
    orphans: int
    columns: list[dict[str, Any]]
    seconds: float
    reason: str = ""


@dataclass(frozen=True)
class WindowClosed(Event):
    """The end of the window: the application started again (or left stopped, and why)."""

    event = "window_closed"
    ok: bool
    started: bool  # the start command ran and succeeded
    downtime_s: float | None  # stop → start
    detail: str


# -- backup ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class BackupStarted(Event):
    event = "backup_started"
    path: str
    format: str
    compression: str
    jobs: int
    tool: dict[str, Any]
    target: dict[str, Any]
    db_size_bytes: int | None
    free_bytes: int | None


@dataclass(frozen=True)
class BackupDone(Event):
    """wizard.core.backup.BackupResult, flat."""

    event = "backup"
    flat = True
    payload: dict[str, Any]


@dataclass(frozen=True)
class BackupCancelled(Event):
    event = "backup_cancelled"
    path: str
    removed: bool


@dataclass(frozen=True)
class BackupAccepted(Event):
    """The migrate guard's rollback point: the verified backup, hashed again just now."""

    event = "backup_accepted"
    path: str
    size_bytes: int
    sha256: str
    verified_at: str
    journal: str
    rehash_s: float
    proof: dict[str, Any] | None = None  # the newest proof of this file: proven, summary, ts


@dataclass(frozen=True)
class BackupSkipped(Event):
    """The DBA typed the database's name to go on without a backup."""

    event = "backup_skipped"
    dbname: str
    how: str
    who: str = ""
    when: str = ""


@dataclass(frozen=True)
class BackupProofStarted(Event):
    """The proof of a backup began: restored into `scratch_db` on the same server."""

    event = "backup_proof_started"
    path: str
    sha256: str
    scratch_db: str
    jobs: int
    compared_with: str  # "the dump's snapshot" or "the live database now"


@dataclass(frozen=True)
class BackupProven(Event):
    """wizard.core.prove.ProofResult, flat: `proven` says whether the backup restored
    exactly (its rows and catalog equal what was dumped); the migrate guard reads it."""

    event = "backup_proven"
    flat = True
    payload: dict[str, Any]


# -- orphans ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class OrphanScanned(Event):
    """wizard.core.orphans.OrphanScan.journal_record(), flat."""

    event = "orphan_scan"
    flat = True
    payload: dict[str, Any]


@dataclass(frozen=True)
class OrphansExported(Event):
    event = "orphan_export"
    folder: str
    files: list[dict[str, Any]]


@dataclass(frozen=True)
class OrphansDeleted(Event):
    event = "orphan_delete"
    database: str
    deleted: dict[str, int]
    files: dict[str, str]


# -- migrate and revert ----------------------------------------------------------------------

@dataclass(frozen=True)
class StateBefore(Event):
    event = "state_before"
    state: str
    explanation: str
    done: list[str]
    pending: list[str]
    missing: list[str]
    text_references: list[str]
    server_version: str


@dataclass(frozen=True)
class PlanShown(Event):
    """The plan on the Migrate page, with its digest (what a run must match)."""

    event = "migrate_plan_shown"
    state: str
    steps: int
    catalog_steps: int
    validate_steps: int
    digest: str = ""


@dataclass(frozen=True)
class PlanMade(Event):
    """wizard.core.plan.Plan.record(), flat: the plan a run executes."""

    event = "plan"
    flat = True
    payload: dict[str, Any]


@dataclass(frozen=True)
class Expected(Event):
    """What the migrated schema must show, taken from the catalog before the run: what a
    later `verify` judges against (the keys' shapes as they were, not the entities')."""

    event = "expected"
    fk_shapes: dict[str, list[Any]]
    fk_names: dict[str, str]
    index_names: list[str]
    must_be_validated: list[str]
    added: list[str]


@dataclass(frozen=True)
class Refused(Event):
    event = "refused"
    reason: str


@dataclass(frozen=True)
class StepDone(Event):
    """One operation of a run's transaction, timed by the server."""

    event = "step_done"
    index: int
    total: int
    operation: str  # Operation.op
    title: str
    ms: float
    attempt: int = 1


@dataclass(frozen=True)
class AttemptStarted(Event):
    """BEGIN of one try of a run's transaction (a lock timeout makes another)."""

    event = "attempt"
    attempt: int
    of: int
    steps: int


@dataclass(frozen=True)
class LockTimedOut(Event):
    """A try rolled back on lock_timeout; `blockers` are the sessions holding the locks."""

    event = "lock_timeout"
    attempt: int
    at: str
    blockers: list[dict[str, Any]]


@dataclass(frozen=True)
class CommitUnknown(Event):
    """The connection was lost while COMMIT ran: the outcome is unknown until the server
    is asked (CommitResolved follows)."""

    event = "commit_unknown"
    attempt: int
    error: str
    server_pid: int | None


@dataclass(frozen=True)
class CommitResolved(Event):
    """What the server showed after a CommitUnknown: committed, not committed or unknown."""

    event = "commit_resolved"
    outcome: str
    evidence: str
    waited_s: float


@dataclass(frozen=True)
class RunFinished(Event):
    event = "run_finished"
    result: dict[str, Any]


@dataclass(frozen=True)
class DownPlan(Event):
    """The revert plan as it stands right after a migration (the rollback a DBA keeps)."""

    event = "down_plan"
    script: str
    steps: list[dict[str, Any]]
    ops: list[dict[str, Any]] = field(default_factory=list)
    digest: str = ""


# -- cache -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CacheDryRun(Event):
    event = "cache_dry_run"
    redis: str
    patterns: list[str]
    counts: dict[str, int]


@dataclass(frozen=True)
class CacheDeleted(Event):
    event = "cache_delete"
    redis: str
    patterns: list[str]
    deleted: dict[str, int]
    total: int
    seconds: float
    outcome: str
    error: str | None = None


@dataclass(frozen=True)
class CacheFlushed(Event):
    event = "cache_flushdb"
    redis: str
    db: int
    keys_before: int | None
    outcome: str


@dataclass(frozen=True)
class RedisDryRun(Event):
    """What each Redis rule would change (wizard.core.redis_migrate.DryRun): verify
    compares the result with it."""

    event = "redis_dry_run"
    target: str
    rules: list[str]
    counts: dict[str, Any]


@dataclass(frozen=True)
class RedisProgress(Event):
    """How far a Redis rule has got (about once a second): a re-run finishes the rest."""

    event = "redis_progress"
    rule: str
    batches: int
    changed: int
    conflicts: int


@dataclass(frozen=True)
class RedisMigrated(Event):
    """The Redis migration's result (direction up: to the new names; down: the inverse)."""

    event = "redis_migrated"
    target: str
    direction: str
    rules: list[str]
    result: dict[str, Any]
    outcome: str  # ok, failed, cancelled
    error: str | None = None


@dataclass(frozen=True)
class CacheSkipped(Event):
    event = "cache_skipped"
    redis: str | None
    reason: str


@dataclass(frozen=True)
class CacheUnavailable(Event):
    event = "cache_unavailable"
    redis: str
    error: str


# -- verification and the report -------------------------------------------------------------

@dataclass(frozen=True)
class Verified(Event):
    event = "verification"
    checks: list[dict[str, Any]]


@dataclass(frozen=True)
class ManualCheckDone(Event):
    event = "manual_check"
    id: str
    done: bool
    note: str


@dataclass(frozen=True)
class VerificationSigned(Event):
    event = "verification_signed"
    operator: str
    failed_checks: list[str]
    manual_done: list[str]


@dataclass(frozen=True)
class ReportExported(Event):
    event = "report_exported"
    format: str
    path: str
    pages: int | None = None


# -- restore ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class RestorePrepared(Event):
    """wizard.core.restore.RestorePlan.to_dict(), flat."""

    event = "restore_prepared"
    flat = True
    payload: dict[str, Any]


@dataclass(frozen=True)
class RestoreDbCreated(Event):
    event = "restore_db_created"
    dbname: str
    owner: str


@dataclass(frozen=True)
class RestoreProgram(Event):
    event = "restore_program"
    outcome: dict[str, Any]
    ignored_errors: int
    warnings: list[str]


@dataclass(frozen=True)
class RestoreChecked(Event):
    event = "restore_checks"
    checks: list[Any]
    counts: dict[str, Any]


@dataclass(frozen=True)
class RestoreDropped(Event):
    event = "restore_dropped"
    dbname: str


@dataclass(frozen=True)
class RestoreSwapped(Event):
    event = "restore_swapped"
    live_db: str
    before_db: str
    terminated: list[Any]
    attempts: int


@dataclass(frozen=True)
class RestoreFinished(Event):
    event = "restore_finished"
    result: dict[str, Any]
