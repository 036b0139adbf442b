"""The run report's model: its dataclasses, the manual checklist, statuses and redaction.

Nothing here reads a journal or writes HTML: wizard.core.report_build fills the model from
the journal's events, wizard.core.report_html renders it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from wizard.core.units import format_bytes

Record = dict[str, Any]
# Events whose `checks` make up the automated checklist; a later result of an id wins.
CHECK_EVENTS = frozenset({"run_finished", "verification"})
# Only these fields of a run's target are ever printed: host, port, database, role.
TARGET_FIELDS = ("host", "port", "dbname", "user")
# Exporting the report again is not part of the change window: it does not move its end.
OUTSIDE_WINDOW = frozenset({"report_exported"})
EVIDENCE_CHARS = 300  # the journal keeps the full evidence; the PDF shows its beginning


@dataclass(frozen=True)
class ManualCheck:
    """One application or frontend check from the guide that only a person can make."""

    id: str
    section: str
    title: str
    how: str = ""


# The guide's "Verification Checklist" (Application, Frontend), its step 8, security notes
# and success criteria, plus the DESIGN's replacement for truncating token_blacklist.
MANUAL_CHECKS: tuple[ManualCheck, ...] = (
    ManualCheck("app_stopped", "Procedure", "Application stopped (all instances) before the "
                "migration", "pm2 stop / systemctl stop, or the wizard's stop command"),
    ManualCheck("frontend_coordinated", "Procedure", "Frontend deployment coordinated with "
                "the backend", "deploy the frontend right after the backend"),
    ManualCheck("app_starts", "Application", "Application starts without errors",
                "npm run start:prod / pm2 start; no 'relation \"prosumer\" does not exist'"),
    ManualCheck("login_user_id", "Application", "Login endpoint returns userId",
                "POST /auth/login: the reply's user has userId, not prosumerId"),
    ManualCheck("jwt_user_id", "Application", "JWT token contains userId claim",
                "decode the access_token from the login reply"),
    ManualCheck("api_user_id", "Application", "API responses use userId field",
                "e.g. GET /users/me with the token"),
    ManualCheck("endpoints_work", "Application", "All API endpoints work correctly",
                "smoke-test the main endpoints"),
    ManualCheck("websocket_auth", "Application", "WebSocket authentication works",
                "connect a client; join sends userId"),
    ManualCheck("redis_user_keys", "Application", "Redis keys use orders:by_user:* pattern",
                "new keys appear under the user patterns only"),
    ManualCheck("jwt_secret_rotated", "Application", "Old sessions invalidated by rotating "
                "the JWT secret", "do not truncate token_blacklist: that re-enables revoked "
                "tokens; all users log in again"),
    ManualCheck("no_prosumer_errors", "Application", "No errors naming prosumer in the "
                "application logs", "watch the error log after start"),
    ManualCheck("fe_api_calls", "Frontend", "API calls updated to use userId",
                "requests send userId, not prosumerId"),
    ManualCheck("fe_profile", "Frontend", "User profile displays correctly"),
    ManualCheck("fe_dashboard", "Frontend", "Dashboard loads user data"),
    ManualCheck("fe_trading", "Frontend", "Trading interface works"),
    ManualCheck("fe_history", "Frontend", "Transaction history displays"),
    ManualCheck("fe_console", "Frontend", "No console errors related to prosumer references",
                "browser developer console"),
)
MANUAL_IDS = frozenset(m.id for m in MANUAL_CHECKS)

PASS, FAIL, WARN, DONE, OPEN, NONE = "pass", "fail", "warn", "done", "open", "none"
STATUS_LABEL = {PASS: "PASS", FAIL: "FAIL", WARN: "WARN", DONE: "DONE", OPEN: "NOT DONE",
                NONE: "NOT RUN"}



@dataclass
class ChecklistItem:
    id: str
    title: str
    kind: str  # automated | manual
    section: str
    status: str  # pass fail warn | done open
    detail: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    how: str = ""


@dataclass
class StepRow:
    index: int
    title: str
    ms: float | None
    status: str


@dataclass
class RunSection:
    """One plan and what became of it (a journal may hold a rehearsal and then the run)."""

    kind: str  # migration, revert, rehearsal of the migration, ...
    ok: bool
    started: str
    finished: str
    state_before: str
    state_after: str
    attempts: int
    blocked_ms: float | None
    total_s: float | None
    error: str | None
    failed_step: str | None
    steps: list[StepRow]
    counts_before: dict[str, int]
    counts_after: dict[str, int]
    script: str
    notes: list[str]
    # When the connection was lost during COMMIT: what the server showed afterwards
    # (committed, not committed, unknown) and how.
    commit_lost: str = ""
    commit_evidence: str = ""
    direction: str = "up"
    rehearsal: bool = False
    committed: bool = False  # a failed run whose transaction committed (a later check failed)
    interrupted: bool = False


@dataclass
class RollbackPoint:
    """The backup that undoes the change: the one the migrate guard accepted, else the
    newest verified backup of this run (nothing relied on it yet)."""

    path: str
    size_bytes: int | None
    sha256: str
    taken: str
    why: str
    proof: str  # proven | failed | not proven
    proof_summary: str
    accepted: bool
    details: dict[str, Any] = field(default_factory=dict)  # its backup record, if in this run


@dataclass
class StepLine:
    ts: str
    status: str  # pass fail warn
    text: str


@dataclass
class StepOutcome:
    """One step of the change window and what became of it, in words."""

    step: str
    lines: list[StepLine]

    @property
    def status(self) -> str:
        statuses = {line.status for line in self.lines}
        for s in (FAIL, WARN, PASS):
            if s in statuses:
                return s
        return NONE


@dataclass
class ReportModel:
    run: str
    command: str
    target: dict[str, Any]
    operator: str
    os_user: str
    client_host: str
    started: str  # the change window: the run's first event
    finished: str  # and its last (a later export of the report aside)
    duration_s: float | None
    server_version: str
    state_before: str
    state_before_explanation: str
    state_after: str
    outcome: str
    outcome_ok: bool
    runs: list[RunSection]
    backups: list[dict[str, Any]]  # every backup record of the run, redacted
    checklist: list[ChecklistItem]
    problems: list[dict[str, str]]  # warn/error log lines
    down_script: str
    text_references: list[str]
    redis: list[dict[str, Any]] = field(default_factory=list)  # redis_migrated events
    proofs: list[dict[str, Any]] = field(default_factory=list)  # backup_proven events
    restores: list[dict[str, Any]] = field(default_factory=list)  # restore_finished results
    change_ref: str = ""
    reviewer: str = ""
    journal_path: str = ""
    app_stopped: str = ""  # when the stop command succeeded
    app_started: str = ""  # when the start command after it succeeded
    downtime_s: float | None = None
    rollback: RollbackPoint | None = None
    skipped_backup: dict[str, Any] | None = None  # the typed "go on without a backup"
    steps: list[StepOutcome] = field(default_factory=list)
    events: list[StepLine] = field(default_factory=list)  # other recorded events, in words
    left_out: dict[str, int] = field(default_factory=dict)  # records the report cannot read

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_SECRET_KEY = re.compile(r"(^|_)(password|passwd|pwd|secret|credentials?|pgpass|auth_token)"
                         r"($|_)", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@/\s]+@", re.IGNORECASE)


def redact(value: Any, key: str = "") -> Any:
    """Drop fields named like secrets and passwords inside URLs, at any depth."""
    if key and _SECRET_KEY.search(key):
        return "(redacted)"
    if isinstance(value, str):
        return _URL_PASSWORD.sub(r"\1***@", value)
    if isinstance(value, dict):
        return {str(k): redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def parse_ts(ts: str) -> datetime | None:
    try:
        return datetime.fromisoformat(ts)
    except (TypeError, ValueError):
        return None


def format_ts(ts: str) -> str:
    parsed = parse_ts(ts)
    return parsed.strftime("%Y-%m-%d %H:%M:%S UTC") if parsed else (ts or "—")


def size_text(n: Any) -> str:
    """A journal's size field for the report: '4.8 MiB (5,033,164 bytes)', '—' if absent."""
    if not isinstance(n, int | float) or isinstance(n, bool):
        return "—"
    if abs(n) < 1024:
        return format_bytes(n)
    return f"{format_bytes(n)} ({int(n):,} bytes)"

