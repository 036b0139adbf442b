"""The run report: a model and its HTML, built from a run journal only (no database)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from wizard.core.commit_outcome import committed
from wizard.core.events import (
    ChangeNamed,
    ManualCheckDone,
    OperatorNamed,
    ReportExported,
    VerificationSigned,
)
from wizard.core.journal import Journal
from wizard.core.runs import outcome_parts, plural, short
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


def record_manual_check(journal: Journal, check_id: str, done: bool, note: str = "") -> None:
    """The operator ticked (or unticked) a manual item; the last record of an id wins."""
    if check_id not in MANUAL_IDS:
        known = ", ".join(m.id for m in MANUAL_CHECKS)
        raise ValueError(f"unknown manual check {check_id!r}; known: {known}")
    journal.record(ManualCheckDone(check_id, bool(done), note))


def record_operator(journal: Journal, name: str) -> None:
    """The name the operator signs the report with (not the OS account)."""
    journal.record(OperatorNamed(name.strip()))


def record_change(journal: Journal, ref: str | None, reviewer: str | None = None,
                  operator: str | None = None) -> bool:
    """The change this run belongs to (reference, reviewer, operator), recorded when a
    journal is opened with one; nothing is recorded when none of the three is given."""
    fields = [(v or "").strip() for v in (ref, reviewer, operator)]
    if not any(fields):
        return False
    journal.record(ChangeNamed(*fields))
    return True


def record_signed(journal: Journal, operator: str, failed_checks: list[str],
                  manual_done: list[str]) -> None:
    """The operator finished the checklist: who, with which checks failed and which manual
    items ticked. Finishing with failures is allowed; this record says they were seen."""
    journal.record(VerificationSigned(operator, failed_checks, manual_done))


def record_export(journal: Journal, fmt: str, path: str, pages: int | None = None) -> None:
    """A report left the machine as a file (pdf with its page count, or json): where to."""
    journal.record(ReportExported(fmt, path, pages))


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


def _parse_ts(ts: str) -> datetime | None:
    try:
        return datetime.fromisoformat(ts)
    except (TypeError, ValueError):
        return None


def format_ts(ts: str) -> str:
    parsed = _parse_ts(ts)
    return parsed.strftime("%Y-%m-%d %H:%M:%S UTC") if parsed else (ts or "—")


def size_text(n: Any) -> str:
    """A journal's size field for the report: '4.8 MiB (5,033,164 bytes)', '—' if absent."""
    if not isinstance(n, int | float) or isinstance(n, bool):
        return "—"
    if abs(n) < 1024:
        return format_bytes(n)
    return f"{format_bytes(n)} ({int(n):,} bytes)"


def _kind(direction: str, rehearsal: bool) -> str:
    base = "migration" if direction == "up" else "revert"
    return f"rehearsal of the {base} (rolled back)" if rehearsal else base


def _runs(events: list[dict[str, Any]]) -> list[RunSection]:
    sections: list[RunSection] = []
    plan: dict[str, Any] | None = None
    before: dict[str, Any] = {}
    for ev in events:
        name = ev["event"]
        if name == "state_before":
            before = ev
        elif name == "plan":
            if plan is not None:  # a plan that never finished: the run was interrupted
                sections.append(_section(plan, before, None))
            plan = ev
        elif name == "run_finished":
            sections.append(_section(plan or {}, before, ev))
            plan = None
    if plan is not None:
        sections.append(_section(plan, before, None))
    return sections


def _section(plan: dict[str, Any], before: dict[str, Any],
             finished: dict[str, Any] | None) -> RunSection:
    result: dict[str, Any] = (finished or {}).get("result", {})
    direction = str(result.get("direction") or plan.get("direction") or "up")
    steps = [StepRow(int(s.get("index", n)), str(s.get("title", "")), s.get("ms"),
                     str(s.get("status", "")))
             for n, s in enumerate(result.get("steps") or [], 1)]
    if finished is None:
        error: str | None = ("no result recorded: the run was interrupted before it finished "
                             "(see the log; run `enerlink-migrate inspect` for the state now)")
    else:
        error = result.get("error")
    return RunSection(
        kind=_kind(direction, bool(result.get("rehearsal"))),
        ok=bool(result.get("ok")) and finished is not None,
        started=str(before.get("ts") or plan.get("ts") or ""),
        finished=str((finished or {}).get("ts", "")),
        state_before=str(result.get("state_before") or plan.get("state") or ""),
        state_after=str(result.get("state_after") or ""),
        attempts=int(result.get("attempts") or 0),
        blocked_ms=result.get("blocked_ms"), total_s=result.get("total_s"),
        error=error, failed_step=result.get("failed_step"), steps=steps,
        counts_before=dict(result.get("counts_before") or {}),
        counts_after=dict(result.get("counts_after") or {}),
        script=str(plan.get("script", "")), notes=[str(n) for n in plan.get("notes", [])],
        commit_lost=str(result.get("commit") or "unknown") if result.get("commit_lost") else "",
        commit_evidence=str(result.get("commit_evidence") or ""),
        direction=direction, rehearsal=bool(result.get("rehearsal")),
        committed=finished is not None and committed(result), interrupted=finished is None)


def _automated(events: list[dict[str, Any]]) -> list[ChecklistItem]:
    """Checks from the newest run and any later verification; a later result of an id wins."""
    found: dict[str, ChecklistItem] = {}
    for ev in events:
        name = ev["event"]
        checks = (ev.get("result") or {}).get("checks") if name == "run_finished" \
            else ev.get("checks")
        if name in CHECK_EVENTS and isinstance(checks, list):
            source = "Database (migration run)" if name == "run_finished" else \
                f"Database ({name.replace('_', ' ')})"
            for c in checks:
                if isinstance(c, dict) and "id" in c:
                    found[str(c["id"])] = ChecklistItem(
                        str(c["id"]), str(c.get("title", c["id"])), "automated", source,
                        str(c.get("status", WARN)), str(c.get("detail", "")),
                        redact(c.get("evidence") or {}))
        if name == "backup_accepted":
            found["backup_verified"] = ChecklistItem(
                "backup_verified", "A verified backup of this database was taken",
                "automated", "Backup", PASS,
                f"rollback point {ev.get('path', '?')}, {size_text(ev.get('size_bytes'))}, "
                f"sha256 {ev.get('sha256', '?')} (verified "
                f"{format_ts(str(ev.get('verified_at', '')))}, hashed again before the "
                f"migration)",
                {"result": redact({k: ev[k] for k in ("path", "sha256", "verified_at",
                                                       "journal") if k in ev})})
        if name == "backup_proven":
            found["backup_proven"] = _proof_item(ev)
        if name == "backup_accepted":
            proof = ev.get("proof")
            found["backup_proven"] = _proof_item(proof) if proof else ChecklistItem(
                "backup_proven", "The backup was proven by restoring it", "automated",
                "Backup", WARN, "the rollback point was not proven by a restore (enerlink-"
                "migrate prove BACKUP, or backup --prove)", {})
        if name == "backup":
            verified = ev.get("verified")
            found["backup_verified"] = ChecklistItem(
                "backup_verified", "A verified backup of this database was taken",
                "automated", "Backup", PASS if verified else FAIL,
                (f"{ev.get('path', '?')}, {size_text(ev.get('size_bytes'))}, "
                 f"{ev.get('toc_entries', '?')} entries, sha256 {ev.get('sha256', '?')}")
                if verified else f"verification failed: {ev.get('error') or ev.get('path', '')}",
                {"result": redact({k: ev[k] for k in ("path", "format", "toc_entries",
                                                       "sha256", "verified") if k in ev})})
    return list(found.values())


def _manual(events: list[dict[str, Any]]) -> list[ChecklistItem]:
    ticks: dict[str, dict[str, Any]] = {}
    for ev in events:
        if ev["event"] == "manual_check":
            ticks[str(ev.get("id"))] = ev
    items = []
    for m in MANUAL_CHECKS:
        tick = ticks.get(m.id, {})
        items.append(ChecklistItem(m.id, m.title, "manual", m.section,
                                   DONE if tick.get("done") else OPEN,
                                   note=str(tick.get("note") or ""), how=m.how))
    return items


def _proof_item(ev: dict[str, Any]) -> ChecklistItem:
    proven = bool(ev.get("proven"))
    return ChecklistItem(
        "backup_proven", "The backup was proven by restoring it", "automated", "Backup",
        PASS if proven else FAIL, str(ev.get("summary") or ev.get("reason") or ""),
        {"result": redact({k: ev[k] for k in ("path", "sha256", "scratch_db", "compared_with",
                                               "timings", "ts") if k in ev})})


# ---- the change window in words -------------------------------------------------------------

def _name(path: Any) -> str:
    return Path(str(path or "?")).name


def _ms(value: Any) -> str:
    return f"{value:.1f} ms" if isinstance(value, int | float) else "—"


def run_words(r: RunSection) -> tuple[str, str]:
    """A migration, rehearsal or revert in words, with its status."""
    if r.interrupted:
        return FAIL, f"{r.kind} INTERRUPTED: no result recorded (run `enerlink-migrate inspect`)"
    where = f" at step {r.failed_step}" if r.failed_step else ""
    if r.rehearsal:
        if r.ok:
            return PASS, (f"rehearsal: would block {_ms(r.blocked_ms)}, rolled back (nothing "
                          f"changed; {plural(len(r.steps), 'step')})")
        return FAIL, f"rehearsal FAILED{where}: {short(r.error, 300)}; rolled back"
    if r.commit_lost == "unknown":
        return FAIL, f"{r.kind} outcome UNKNOWN: {short(r.error, 300)}"
    if r.ok and not r.steps:
        return PASS, f"{r.kind}: nothing to do (state {r.state_before or '?'})"
    if r.ok:
        lost = " (after a lost connection, the server showed it committed)" \
            if r.commit_lost else ""
        return PASS, (f"{r.kind} committed{lost}: state {r.state_before or '?'} → "
                      f"{r.state_after or '?'}; {plural(len(r.steps), 'step')} in "
                      f"{plural(r.attempts, 'attempt')}, application blocked "
                      f"{_ms(r.blocked_ms)}, {r.total_s} s in all")
    if r.committed:
        return FAIL, f"{r.kind} committed, then a check FAILED: {short(r.error, 300)}"
    return FAIL, f"{r.kind} FAILED{where}: {short(r.error, 300)}; rolled back, nothing changed"


def _checks_words(what: str, checks: Any) -> tuple[str, str]:
    items = [c for c in checks or [] if isinstance(c, dict)]
    failed = [c for c in items if c.get("status") == FAIL]
    warned = [c for c in items if c.get("status") == WARN]
    passed = len(items) - len(failed) - len(warned)
    text = f"{what}: {passed} of {plural(len(items), 'check')} passed"
    if failed:
        text += "; FAILED: " + "; ".join(f"{c.get('title')} ({short(c.get('detail'), 120)})"
                                         for c in failed)
    if warned:
        text += "; warnings: " + "; ".join(str(c.get("title")) for c in warned)
    return (FAIL if failed else WARN if warned else PASS), text


def _backup_words(e: Record) -> tuple[str, str]:
    if not e.get("verified"):
        return FAIL, f"backup FAILED: {short(e.get('error') or 'see the log', 300)}"
    return PASS, (f"{_name(e.get('path'))} verified ({size_text(e.get('size_bytes'))}, "
                  f"{e.get('toc_entries', '?')} entries)")


def _proof_words(e: Record) -> tuple[str, str]:
    if e.get("proven"):
        return PASS, f"{_name(e.get('path'))} {short(e.get('summary'), 400)}"
    return FAIL, (f"proof of {_name(e.get('path'))} FAILED: "
                  f"{short(e.get('reason') or e.get('summary'), 300)}")


def _preflight_words(e: Record) -> tuple[str, str]:
    status, text = _checks_words("pre-flight", e.get("checks"))
    text += f" (state {e.get('state', '?')})"
    return status, text + ("; it BLOCKS the run" if status == FAIL else "; nothing blocks the run")


def _orphans_words(e: Record) -> tuple[str, str]:
    columns = e.get("columns") or []
    total = int(e.get("total") or 0)
    if not total:
        return PASS, f"no orphan rows in {plural(len(columns), 'referencing column')}"
    dirty = [f"{c.get('label')} {c.get('count')}" for c in columns if c.get("count")]
    return WARN, f"{plural(total, 'orphan row')} found: " + ", ".join(dirty)


def _redis_words(e: Record) -> tuple[str, str]:
    result = e.get("result") or {}
    names = "the old names" if e.get("direction") == "down" else "the new names"
    if e.get("outcome") != "ok":
        return FAIL, (f"Redis migration {e.get('outcome')}: "
                      f"{short(e.get('error') or 'see the log', 300)}")
    conflicts = int(result.get("conflicts") or 0)
    text = (f"{plural(int(result.get('changed') or 0), 'key')} of {e.get('target')} brought "
            f"to {names}")
    if conflicts:
        return WARN, text + f"; {plural(conflicts, 'conflict')} left untouched"
    return PASS, text + ", no conflicts"


def _dry_run_words(e: Record) -> tuple[str, str]:
    rules = (e.get("counts") or {}).get("rules") or []
    keys = sum(int(r.get("keys") or 0) for r in rules if isinstance(r, dict))
    return PASS, f"dry run: the rules would change {plural(keys, 'key')} (nothing changed)"


def _restore_words(e: Record) -> tuple[str, str]:
    r = e.get("result") or {}
    if r.get("ok"):
        return PASS, (f"restored: {r.get('live_db')} is now the backup's copy; the previous "
                      f"database is kept as {r.get('before_db')}")
    what = "cancelled" if r.get("cancelled") else "FAILED"
    return FAIL, f"restore {what}: {short(r.get('error') or 'see the log', 300)}"


def _app_words(e: Record) -> tuple[str, str]:
    return (PASS if e.get("ok") else FAIL), f"{e.get('command')}: {short(e.get('detail'), 200)}"


def _ok(e: Record) -> str:
    """A Redis step's status: older records have no outcome, only a count."""
    return PASS if e.get("outcome", "ok") == "ok" and not e.get("error") else FAIL


def _outcome_words(e: Record) -> str:
    outcome = e.get("outcome")
    error = f": {short(e.get('error'), 200)}" if e.get("error") else ""
    return f" ({outcome}{error})" if outcome and outcome != "ok" else ""


Words = tuple[str, str]
# Each event that is part of a step of the change window: its step and its words.
STEP_EVENTS: dict[str, tuple[str, Any]] = {
    "preflight": ("Pre-flight", _preflight_words),
    "session_signalled": ("Pre-flight", lambda e: (PASS, short(e.get("message"), 300))),
    "backup": ("Backup and proof", _backup_words),
    "backup_cancelled": ("Backup and proof", lambda e: (
        WARN, "backup cancelled; the partial file was "
        + ("removed" if e.get("removed") else "NOT removed: " + str(e.get("path"))))),
    "backup_skipped": ("Backup and proof", lambda e: (
        FAIL, f"NO BACKUP: {e.get('dbname')}'s name typed to go on without one ({e.get('how')}"
        + (f", {e.get('who')}" if e.get("who") else "") + ")")),
    "backup_proven": ("Backup and proof", _proof_words),
    "backup_accepted": ("Backup and proof", lambda e: (
        PASS, f"the migration's guard accepted {_name(e.get('path'))} (hashed again just "
        "before: sha256 unchanged)")),
    "orphan_scan": ("Orphan rows", _orphans_words),
    "orphan_export": ("Orphan rows", lambda e: (
        PASS, f"orphan rows exported to {e.get('folder')}: " + ", ".join(
            f"{f.get('table')} {f.get('rows')}" for f in e.get("files") or []))),
    "orphan_delete": ("Orphan rows", lambda e: (
        PASS, "orphan rows deleted: " + ", ".join(
            f"{t} {n}" for t, n in (e.get("deleted") or {}).items()))),
    "redis_dry_run": ("Redis", _dry_run_words),
    "redis_migrated": ("Redis", _redis_words),
    "cache_dry_run": ("Redis", lambda e: (PASS, "dry run: " + ", ".join(
        f"{k} {v}" for k, v in (e.get("counts") or {}).items()))),
    "cache_delete": ("Redis", lambda e: (
        _ok(e), f"cache keys deleted on {e.get('redis') or e.get('url')}: "
        f"{e.get('total', e.get('deleted'))}{_outcome_words(e)}")),
    "cache_flushdb": ("Redis", lambda e: (
        _ok(e), f"FLUSHDB of {e.get('redis')} db {e.get('db')}: "
        + ("all" if e.get("keys_before") is None else str(e.get("keys_before")))
        + f" keys removed{_outcome_words(e)}")),
    "cache_skipped": ("Redis", lambda e: (WARN, f"Redis not touched: {e.get('reason')}")),
    "cache_unavailable": ("Redis", lambda e: (
        FAIL, f"Redis {e.get('redis')} unreachable: {short(e.get('error'), 300)}")),
    "verification": ("Verification", lambda e: _checks_words("verification", e.get("checks"))),
    "verification_signed": ("Verification", lambda e: (
        PASS, f"checklist signed by {e.get('operator')}" + (
            f", with failed checks seen: {', '.join(e['failed_checks'])}"
            if e.get("failed_checks") else ""))),
    "restore_finished": ("Restore", _restore_words),
}
# The steps in the order of the change window; the first six are always listed.
STEPS = ("Pre-flight", "Application stopped", "Backup and proof", "Orphan rows", "Migration",
         "Redis", "Verification", "Application started", "Revert", "Restore")
ALWAYS = frozenset(STEPS[:7]) - {"Application stopped"}
# Events other sections already show, or that only make up a step's record.
SHOWN_ELSEWHERE = frozenset({
    "run_started", "log", "operator", "change", "state_before", "plan", "expected",
    "step_done", "attempt", "run_finished", "down_plan", "manual_check", "backup_started",
    "backup_proof_started", "restore_prepared", "restore_db_created", "restore_program",
    "restore_checks", "restore_swapped", "restore_dropped", "redis_progress",
    "commit_unknown", "commit_resolved", "refused", "app_command"})
# Other events the report reads, in words.
OTHER_EVENTS: dict[str, Any] = {
    "migrate_plan_shown": lambda e: f"plan shown on the Migrate page: {e.get('steps')} steps, "
                                    f"digest {str(e.get('digest'))[:16]}",
    "lock_timeout": lambda e: f"attempt {e.get('attempt')} rolled back on a lock timeout at "
                              f"{e.get('at')}, locks held by " + (", ".join(
                                  f"pid {b.get('pid')} {b.get('application_name') or ''}".strip()
                                  for b in e.get("blockers") or []) or "no session found"),
    "report_exported": lambda e: f"report exported as {e.get('format')} to {e.get('path')}"
                                 + (f" ({e.get('pages')} pages)" if e.get("pages") else ""),
}


def _steps(events: list[Record], runs: list[RunSection], checklist: list[ChecklistItem],
           command: str, rollback: RollbackPoint | None) -> list[StepOutcome]:
    found: dict[str, list[StepLine]] = {}
    direction = "down" if "revert" in command else "up"
    for e in events:
        name, ts = e["event"], str(e.get("ts", ""))
        if name == "plan":
            direction = str(e.get("direction") or direction)
        if name == "app_command":
            step = "Application stopped" if e.get("what") == "stop" else "Application started"
            status, text = _app_words(e)
        elif name == "refused":
            step = "Migration" if direction == "up" else "Revert"
            status, text = FAIL, f"REFUSED, nothing was changed: {short(e.get('reason'), 400)}"
        elif name in STEP_EVENTS:
            step, words = STEP_EVENTS[name]
            status, text = words(e)
            ours = rollback is not None and rollback.path == e.get("path")
            if name == "backup" and e.get("verified"):
                text += ": the rollback point" if ours else ": also taken, not the rollback point"
            elif ours and name in ("backup_proven", "backup_accepted"):
                text = text.replace(_name(e.get("path")), "the rollback point", 1)
        else:
            continue
        found.setdefault(step, []).append(StepLine(ts, status, text))
    for r in runs:
        status, text = run_words(r)
        step = "Migration" if r.direction == "up" else "Revert"
        found.setdefault(step, []).append(StepLine(r.finished or r.started, status, text))
    ticked = [c for c in checklist if c.kind == "manual" and c.status == DONE]
    manual = len([c for c in checklist if c.kind == "manual"])
    if "Verification" in found or ticked:
        found.setdefault("Verification", []).append(StepLine(
            "", PASS if len(ticked) == manual else WARN,
            f"application and frontend checks: {len(ticked)} of {manual} ticked by the operator"))
    acted = bool(runs or "Restore" in found)
    out = []
    for step in STEPS:
        lines = sorted(found.get(step, []), key=lambda line: line.ts or "~")
        if lines or step in ALWAYS or (acted and step.startswith("Application")):
            out.append(StepOutcome(step, lines))
    return out


def _others(events: list[Record]) -> tuple[list[StepLine], dict[str, int]]:
    lines: list[StepLine] = []
    left_out: dict[str, int] = {}
    for e in events:
        name = e["event"]
        if name in SHOWN_ELSEWHERE or name in STEP_EVENTS:
            continue
        if name in OTHER_EVENTS:
            lines.append(StepLine(str(e.get("ts", "")), PASS, str(OTHER_EVENTS[name](e))))
        else:
            left_out[name] = left_out.get(name, 0) + 1
    return lines, left_out


def _rollback_point(events: list[Record]) -> RollbackPoint | None:
    """The accepted backup (the guard's, newest), else the newest verified one of the run."""
    proofs = {str(e.get("path")): e for e in events if e["event"] == "backup_proven"}
    records = {str(e.get("path")): e for e in events if e["event"] == "backup"}
    accepted = [e for e in events if e["event"] == "backup_accepted"]
    if accepted:
        a = accepted[-1]
        proof = proofs.get(str(a.get("path"))) or a.get("proof")
        why = ("the verified backup the migration relied on: its guard hashed it again just "
               "before the migration and the sha256 matched")
        size, sha, taken = a.get("size_bytes"), str(a.get("sha256", "")), a.get("verified_at")
    else:
        verified = [e for e in events if e["event"] == "backup" and e.get("verified")]
        if not verified:
            return None
        a = verified[-1]
        proof = proofs.get(str(a.get("path")))
        why = "the newest verified backup of this run (no migration has relied on it yet)"
        size, sha, taken = a.get("size_bytes"), str(a.get("sha256", "")), a.get("ts")
    if not proof:
        status, summary = "not proven", ("not restored into a scratch copy: enerlink-migrate "
                                         "prove BACKUP, or backup --prove")
    elif proof.get("proven"):
        status, summary = "proven", str(proof.get("summary") or "")
    else:
        status, summary = "failed", str(proof.get("reason") or proof.get("summary") or "")
    return RollbackPoint(str(a.get("path", "?")), size if isinstance(size, int) else None,
                         sha, str(taken or ""), why, status, summary, bool(accepted),
                         redact(records.get(str(a.get("path")), {})))


def _restores(events: list[Record]) -> list[Record]:
    """Each restore's result, with the backup it restored (from its plan)."""
    found: list[Record] = []
    plan: Record = {}
    for e in events:
        if e["event"] == "restore_prepared":
            plan = e.get("inspection") or {}
        elif e["event"] == "restore_finished":
            found.append({**(e.get("result") or {}), "ts": e.get("ts"),
                          "backup": plan.get("path"), "backup_sha256": plan.get("sha256")})
    return found


def _downtime(events: list[Record]) -> tuple[str, str, float | None]:
    """When the application was stopped and started again (their commands succeeded)."""
    stopped = started = ""
    for e in events:
        if e["event"] == "app_command" and e.get("ok"):
            if e.get("what") == "stop" and not stopped:
                stopped = str(e.get("ts", ""))
            elif e.get("what") == "start" and stopped:
                started = str(e.get("ts", ""))
    t0, t1 = _parse_ts(stopped), _parse_ts(started)
    return stopped, started, round((t1 - t0).total_seconds(), 1) if t0 and t1 else None


def _outcome(events: list[Record], last: RunSection | None) -> tuple[str, bool]:
    if last is None:
        parts = outcome_parts(events)
        if not parts:
            return "nothing was changed or checked in this run", True
        return "; ".join(text for text, _ok in parts), all(ok for _text, ok in parts)
    if last.ok:
        return (f"{last.kind} succeeded" + (": nothing was changed"
                                             if "rehearsal" in last.kind else "")), True
    if last.commit_lost == "unknown":
        return f"{last.kind} outcome UNKNOWN: {last.error}", False
    return f"{last.kind} FAILED: {last.error or 'see the log'}", False


def build_report(journal: Journal) -> ReportModel:
    """Everything the PDF shows, from the journal's events (whitelisted, redacted)."""
    events: list[Record] = [redact(e) for e in journal.events()]
    started = next((e for e in events if e["event"] == "run_started"), {})
    target_all = started.get("target") or {}
    target = {k: target_all[k] for k in TARGET_FIELDS if k in target_all}
    operators = [e for e in events if e["event"] == "operator" and e.get("name")]
    changes = [e for e in events if e["event"] == "change"]
    change = changes[-1] if changes else {}
    states = [e for e in events if e["event"] == "state_before"]
    runs = _runs(events)
    last = runs[-1] if runs else None
    window = [e for e in events if e["event"] not in OUTSIDE_WINDOW] or events
    first_ts, last_ts = (str(window[0]["ts"]), str(window[-1]["ts"])) if window else ("", "")
    t0, t1 = _parse_ts(first_ts), _parse_ts(last_ts)
    downs = [e for e in events if e["event"] == "down_plan"]
    outcome, ok = _outcome(events, last)
    checklist = _automated(events) + _manual(events)
    stopped, restarted, downtime = _downtime(events)
    others, left_out = _others(events)
    skipped = [e for e in events if e["event"] == "backup_skipped"]
    rollback = _rollback_point(events)
    return ReportModel(
        run=journal.folder.name, command=str(started.get("command", "")), target=target,
        operator=str(operators[-1]["name"]) if operators else str(change.get("operator") or ""),
        os_user=str(started.get("operator", "")),
        client_host=str(started.get("client_host", "")),
        started=first_ts, finished=last_ts,
        duration_s=round((t1 - t0).total_seconds(), 3) if t0 and t1 else None,
        server_version=str(states[0].get("server_version", "")) if states else "",
        state_before=str(states[0].get("state", "")) if states else "",
        state_before_explanation=str(states[0].get("explanation", "")) if states else "",
        state_after=last.state_after if last else "",
        outcome=outcome, outcome_ok=ok, runs=runs,
        backups=[{k: v for k, v in e.items() if k != "event"}
                 for e in events if e["event"] == "backup"],
        checklist=checklist,
        problems=[{"ts": str(e.get("ts", "")), "level": str(e.get("level", "")),
                   "message": str(e.get("message", ""))}
                  for e in events if e["event"] == "log" and e.get("level") in ("warn", "error")],
        down_script=str(downs[-1].get("script", "")) if downs else "",
        redis=[{k: v for k, v in e.items() if k != "event"}
               for e in events if e["event"] == "redis_migrated"],
        proofs=[{k: v for k, v in e.items() if k != "event"}
                for e in events if e["event"] == "backup_proven"],
        restores=_restores(events),
        text_references=[str(r) for r in (states[0].get("text_references") or [])]
        if states else [],
        change_ref=str(change.get("ref") or ""), reviewer=str(change.get("reviewer") or ""),
        journal_path=str(journal.path), app_stopped=stopped, app_started=restarted,
        downtime_s=downtime, rollback=rollback,
        skipped_backup={k: v for k, v in skipped[-1].items() if k != "event"}
        if skipped else None,
        steps=_steps(events, runs, checklist, str(started.get("command", "")), rollback),
        events=others, left_out=left_out)


# ---- HTML ---------------------------------------------------------------------------------
# QTextDocument understands a subset of HTML 4 and CSS: tables with attributes, no flexbox.

CSS = """
body { font-size: 9pt; }
h1 { font-size: 16pt; margin-bottom: 2px; }
h2 { font-size: 12pt; margin-top: 14px; margin-bottom: 4px; }
h3 { font-size: 10pt; margin-top: 8px; margin-bottom: 2px; }
td, th { padding: 3px; vertical-align: top; }
th { background-color: #e8e8e8; text-align: left; }
td.k { font-weight: bold; }
td.rb { background-color: #fff4cc; }
.ref { font-size: 13pt; font-weight: bold; }
.mono { font-family: monospace; font-size: 8pt; }
pre { font-family: monospace; font-size: 8pt; white-space: pre-wrap; }
.pass { color: #116329; font-weight: bold; }
.done { color: #116329; font-weight: bold; }
.fail { color: #b00020; font-weight: bold; }
.warn { color: #8a5a00; font-weight: bold; }
.open { color: #8a5a00; font-weight: bold; }
.none { color: #555555; font-weight: bold; }
.small { font-size: 7.5pt; color: #444444; }
"""
MARK = {PASS: "✔", FAIL: "✘", WARN: "!", DONE: "☑", OPEN: "☐", NONE: "○"}
TABLE = '<table width="100%" border="1" cellspacing="0" cellpadding="3">'


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def plain(value: Any, limit: int = EVIDENCE_CHARS, depth: int = 0) -> str:
    """A journal value in words for the PDF, never as JSON: `key: value` pairs, lists
    joined by commas, deeper levels counted; cut at `limit` characters."""
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif value is None:
        text = "none"
    elif isinstance(value, dict):
        if depth >= 2:
            text = plural(len(value), "field")
        else:
            pairs = [f"{str(k).replace('_', ' ')}: {plain(v, limit, depth + 1)}"
                     for k, v in value.items()]
            text = ("; " if depth == 0 else ", ").join(pairs) or "none"
            text = text if depth == 0 else f"({text})"
    elif isinstance(value, list | tuple):
        if not value:
            text = "none"
        elif depth >= 2 or (depth and any(isinstance(v, dict | list) for v in value)):
            text = plural(len(value), "item")
        else:
            text = ", ".join(plain(v, limit, depth + 1) for v in value[:6]) + (
                f" … and {len(value) - 6} more" if len(value) > 6 else "")
    else:
        text = str(value)
    if depth == 0 and len(text) > limit:
        text = text[:limit].rstrip() + " … (the rest is in the journal)"
    return text


def _kv(rows: list[tuple[str, str]], key_width: int = 27) -> str:
    """A two-column table; values are already-escaped HTML."""
    body = "".join(f'<tr><td class="k" width="{key_width}%">{_e(k)}</td><td>{v}</td></tr>'
                   for k, v in rows)
    return f"{TABLE}{body}</table>"


def _status(status: str) -> str:
    label = _e(STATUS_LABEL.get(status, status.upper())).replace(" ", "&nbsp;")
    return f'<span class="{_e(status)}">{MARK.get(status, "?")}&nbsp;{label}</span>'



def _not_given(what: str) -> str:
    return f'<span class="warn">not given</span> <span class="small">({_e(what)})</span>'


def _change(m: ReportModel) -> str:
    t = m.target
    ref = (f'<span class="ref">{_e(m.change_ref)}</span>' if m.change_ref else
           _not_given("enerlink-migrate … --change REF, or the profile's change reference"))
    where = (f"<b>{_e(t.get('dbname', '?'))}</b> on {_e(t.get('host', '?'))}:"
             f"{_e(t.get('port', '?'))} as role {_e(t.get('user', '?'))}"
             + (f" <span class='small'>(PostgreSQL {_e(m.server_version)})</span>"
                if m.server_version else ""))
    length = f" ({m.duration_s:.1f} s)" if m.duration_s is not None else ""
    if m.downtime_s is not None:
        down = (f"<b>{_e(_duration(m.downtime_s))}</b>: stopped {_e(format_ts(m.app_stopped))}, "
                f"started again {_e(format_ts(m.app_started))}")
    elif m.app_stopped:
        down = (f'<span class="warn">stopped {_e(format_ts(m.app_stopped))}; no start was '
                "recorded in this run</span>")
    else:
        down = "no stop or start command was recorded in this run"
    state = _e(m.state_before or "—") + (f" → {_e(m.state_after)}" if m.state_after else "")
    rows = [
        ("Change reference", ref),
        ("Database", where),
        ("Outcome", f'<span class="{PASS if m.outcome_ok else FAIL}">{_e(m.outcome)}</span>'),
        ("Window start", _e(format_ts(m.started))),
        ("Window end", _e(format_ts(m.finished) + length)),
        ("Application downtime", down),
        ("Database state", state + (f" <span class='small'>(before: "
                                    f"{_e(m.state_before_explanation)})</span>"
                                    if m.state_before_explanation else "")),
        ("Operator", (f"<b>{_e(m.operator)}</b>" if m.operator else
                      _not_given("the name typed on the Verify page, or the profile's"))
         + f" <span class='small'>(OS account {_e(m.os_user)} on {_e(m.client_host)})</span>"),
        ("Reviewer", f"<b>{_e(m.reviewer)}</b>" if m.reviewer else
         _not_given("--reviewer NAME, or the profile's reviewer")),
        ("Run journal", f'<span class="mono">{_e(m.journal_path or m.run)}</span>'),
    ]
    return "<h2>Change</h2>" + _kv(rows, 24)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _sign_off(m: ReportModel) -> str:
    blank = "&nbsp;<br>&nbsp;<br>&nbsp;"  # room to write by hand
    rows = "".join(f"<tr><td><b>{role}</b></td><td>{name}</td><td>{blank}</td>"
                   f"<td>{blank}</td></tr>"
                   for role, name in (("Operator", _e(m.operator) or "&nbsp;"),
                                      ("Reviewer", _e(m.reviewer) or "&nbsp;")))
    return ("<h3>Sign-off</h3><p>By signing, the operator confirms the steps and checks in "
            "this report were made as recorded; the reviewer confirms the evidence was read "
            "and the rollback point below exists.</p>"
            '<table width="100%" border="1" cellspacing="0" cellpadding="6"><tr>'
            '<th width="14%">Role</th><th width="30%">Name</th><th width="18%">Date</th>'
            f"<th>Signature</th></tr>{rows}</table>")


PROOF_STATUS = {"proven": PASS, "failed": FAIL, "not proven": WARN}


def _rollback(m: ReportModel) -> str:
    out = "<h2>Rollback point</h2>"
    rb = m.rollback
    if rb is None:
        if m.skipped_backup:
            s = m.skipped_backup
            return out + (f'<p><span class="fail">✘ NO ROLLBACK POINT</span>: the backup was '
                          f"skipped, {_e(s.get('dbname'))}'s name typed to go on without one "
                          f"({_e(s.get('how'))}{', ' + _e(s.get('who')) if s.get('who') else ''}"
                          f", {_e(format_ts(str(s.get('ts', ''))))}).</p>")
        done = [r for r in m.restores if r.get("ok")]
        if done:
            r = done[-1]
            return out + _kv([
                ("The way back", f"<b>{_e(r.get('before_db'))}</b>: the database this "
                                 f"restore replaced, kept (rename it back to "
                                 f"{_e(r.get('live_db'))} to undo the restore)"),
                ("Restored from", f'<span class="mono">{_e(r.get("backup"))}</span>'),
                ("sha256", f'<span class="mono">{_e(r.get("backup_sha256") or "—")}</span>')],
                24)
        if m.runs and all(r.direction == "down" for r in m.runs):
            return out + ("<p>No backup was taken in this run: a revert renames the schema "
                          "back in one transaction, and the migration can be run again.</p>")
        return out + ('<p><span class="warn">No backup was recorded in this run.</span> Record '
                      "where the backup of this database is before the change is signed "
                      "off.</p>")
    status = PROOF_STATUS.get(rb.proof, WARN)
    rows = [("File", f'<span class="mono"><b>{_e(rb.path)}</b></span>'),
            ("Size", _e(size_text(rb.size_bytes))),
            ("sha256", f'<span class="mono">{_e(rb.sha256)}</span>'),
            ("Verified", _e(format_ts(rb.taken))),
            ("Proof", f"{_status(status)} <b>{_e(rb.proof)}</b>: {_e(rb.proof_summary)}"),
            ("Why this one", _e(rb.why))]
    d = rb.details
    if d.get("format"):
        rows.insert(2, ("Format", _e(f"{d.get('format')}, {d.get('toc_entries', '?')} entries "
                                     f"(pg_restore --list), compression "
                                     f"{d.get('compression', '?')}")))
    snapshot = d.get("snapshot")
    if isinstance(snapshot, dict) and isinstance(snapshot.get("counts"), dict):
        counts = snapshot["counts"]
        rows.append(("Counted in pg_dump's snapshot",
                     _e(f"{sum(int(v) for v in counts.values())} rows in {len(counts)} "
                        "tables, schema fingerprint "
                        f"{str(snapshot.get('fingerprint_sha256'))[:16]}…")))
    body = "".join(f'<tr><td class="k rb" width="24%">{_e(k)}</td><td class="rb">{v}</td></tr>'
                   for k, v in rows)
    out += ('<table width="100%" border="2" cellspacing="0" cellpadding="4"><tr>'
            '<th colspan="2">ROLLBACK POINT: restore this file to undo the change '
            "(enerlink-migrate restore FILE, or the wizard's Restore)</th></tr>"
            f"{body}</table>")
    also = [b for b in m.backups if str(b.get("path")) != rb.path]
    if also:
        proofs = {str(p.get("path")): p for p in m.proofs}
        rows_html = ""
        for b in also:
            p = proofs.get(str(b.get("path")))
            proof = ("not proven" if p is None else "proven" if p.get("proven")
                     else "proof FAILED")
            rows_html += (f"<tr><td class='small'>{_e(format_ts(str(b.get('ts', ''))))}</td>"
                          f"<td class='mono'>{_e(b.get('path'))}</td>"
                          f"<td>{_e(size_text(b.get('size_bytes')))}</td>"
                          f"<td>{_status(PASS if b.get('verified') else FAIL)}, "
                          f"{_e(proof)}</td></tr>")
        out += ("<h3>Also taken in this run (not the rollback point)</h3>"
                f'{TABLE}<thead><tr><th width="17%">Taken</th><th>File</th>'
                '<th width="17%">Size</th><th width="19%">Verified, proof</th></tr></thead>'
                f"{rows_html}</table>")
    return out


def _steps_html(m: ReportModel) -> str:
    rows = ""
    for s in m.steps:
        lines = "<br>".join(
            (f'<span class="small">{_e(format_ts(line.ts)[11:19])}</span> ' if line.ts else "")
            + (f"{MARK.get(line.status, '')} " if len(s.lines) > 1 else "") + _e(line.text)
            for line in s.lines) or '<span class="small">not run in this session</span>'
        rows += (f"<tr><td>{_status(s.status)}</td><td><b>{_e(s.step)}</b></td>"
                 f"<td>{lines}</td></tr>")
    return ("<h2>Outcome per step</h2>"
            f'{TABLE}<thead><tr><th width="16%">Status</th><th width="17%">Step</th>'
            "<th>What happened (times UTC)</th></tr></thead>"
            f"{rows}</table>")


def _run_html(n: int, r: RunSection, shown: dict[str, int]) -> str:
    head = f"<h3>{n}. {_e(r.kind.capitalize())}: " + (
        '<span class="pass">succeeded</span>' if r.ok else '<span class="fail">FAILED</span>'
    ) + "</h3>"
    _status_word, words = run_words(r)
    rows = [("Result", _e(words)),
            ("Started", _e(format_ts(r.started))), ("Ended", _e(format_ts(r.finished))),
            ("Attempts", _e(r.attempts)),
            ("Application blocked", _e(_ms(r.blocked_ms))),
            ("Total time", _e(f"{r.total_s} s" if r.total_s is not None else "—"))]
    if r.failed_step:
        rows.append(("Failed step", _e(r.failed_step)))
    if r.commit_lost:
        rows.append(("COMMIT", _e(f"the connection was lost during COMMIT; asked afterwards, "
                                  f"the server showed: {r.commit_lost.upper()} "
                                  f"({r.commit_evidence or 'no evidence'})")))
    rows += [("Note", _e(note)) for note in r.notes]
    out = head + _kv(rows)
    titles = tuple(s.title for s in r.steps)
    same = shown.get("|".join(titles)) if titles else None
    if same is not None:
        slowest = max(r.steps, key=lambda s: s.ms or 0)
        out += (f"<p>The same {len(r.steps)} steps as run {same}; the slowest took "
                f"{_e(_ms(slowest.ms))} ({_e(slowest.title)}).</p>")
    elif r.steps:
        shown["|".join(titles)] = n
        body = "".join(f"<tr><td>{s.index}</td><td>{_e(s.title)}</td>"
                       f'<td align="right">{_e(_ms(s.ms))}</td><td>{_e(s.status)}</td></tr>'
                       for s in r.steps)
        out += (f'{TABLE}<thead><tr><th width="5%">#</th><th>Step</th>'
                '<th width="12%">Duration</th><th width="10%">Status</th></tr></thead>'
                f"{body}</table>")
    if r.counts_before or r.counts_after:
        out += _counts(r)
    return out


def _counts(r: RunSection) -> str:
    before = list(r.counts_before.items())
    after = list(r.counts_after.items())
    rows = ""
    for i in range(max(len(before), len(after))):
        b = before[i] if i < len(before) else ("", "")
        a = after[i] if i < len(after) else ("", "")
        rows += (f"<tr><td>{_e(b[0])}</td><td align='right'>{_e(b[1])}</td>"
                 f"<td>{_e(a[0])}</td><td align='right'>{_e(a[1])}</td></tr>")
    return ('<table width="70%" border="1" cellspacing="0" cellpadding="3"><tr><th>Table '
            "before</th><th>Rows before</th><th>Table after</th><th>Rows after</th></tr>"
            f"{rows}</table>")


def _evidence(ev: dict[str, Any]) -> str:
    """A check's evidence in words (its query is in the appendix)."""
    rest = {k: v for k, v in ev.items() if k != "query"}
    if not rest:
        return ""
    text = plain(rest.get("result") if list(rest) == ["result"] else rest)
    if text == "none":
        return ""
    return f'<br><span class="small">Evidence: {_e(text)}</span>'


def _checklist(m: ReportModel) -> str:
    auto = [c for c in m.checklist if c.kind == "automated"]
    manual = [c for c in m.checklist if c.kind == "manual"]
    out = "<h3>Automated checks</h3>"
    if not auto:
        out += '<p><span class="warn">No automated check was recorded in this run.</span></p>'
    else:
        rows = "".join(
            f"<tr><td>{_status(c.status)}</td><td><b>{_e(c.title)}</b><br>{_e(c.detail)}"
            f'<br><span class="small">{_e(c.section)} · id {_e(c.id)}</span>'
            # A backup's evidence is its detail again: path, size, sha256.
            f"{'' if c.section == 'Backup' else _evidence(c.evidence)}</td></tr>" for c in auto)
        out += (f'{TABLE}<thead><tr><th width="16%">Status</th><th>Check, result and '
                f"evidence</th></tr></thead>{rows}</table>")
    out += "<h3>Application and frontend checks (ticked by the operator)</h3>"
    rows = "".join(
        f"<tr><td>{_status(c.status)}</td><td><b>{_e(c.title)}</b>"
        + (f'<br><span class="small">{_e(c.section)}: {_e(c.how)}</span>' if c.how else
           f'<br><span class="small">{_e(c.section)}</span>')
        + f"</td><td>{_e(c.note) or '&nbsp;'}</td></tr>" for c in manual)
    out += (f'{TABLE}<thead><tr><th width="16%">Status</th><th width="53%">Item</th>'
            f"<th>Operator's note</th></tr></thead>{rows}</table>")
    return out


def _others_html(m: ReportModel) -> str:
    out = ""
    if m.events:
        rows = "".join(f"<tr><td class='small'>{_e(format_ts(e.ts))}</td><td>{_e(e.text)}</td>"
                       "</tr>" for e in m.events)
        out += ('<h2>Other recorded events</h2>'
                f'{TABLE}<thead><tr><th width="20%">Time</th><th>Event</th></tr></thead>'
                f"{rows}</table>")
    if m.left_out:
        names = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(m.left_out.items()))
        out += (f"<p class='small'>{plural(sum(m.left_out.values()), 'record')} this version "
                f"of the report does not read ({_e(names)}) are left out; they are in the "
                f"journal <span class='mono'>{_e(m.journal_path)}</span>.</p>")
    return out


def _appendix(m: ReportModel) -> str:
    parts = ['<h1 style="page-break-before: always">Appendix: the SQL</h1>'
             '<p class="small">Exactly what ran (or was rehearsed), as the journal recorded '
             "it.</p>"]
    seen: dict[str, int] = {}
    for n, r in enumerate(m.runs, 1):
        if not r.script:
            continue
        title = f"SQL of run {n} ({_e(r.kind)})"
        if r.script in seen:
            parts.append(f"<h3>{title}</h3><p>The same SQL as run {seen[r.script]}.</p>")
            continue
        seen[r.script] = n
        parts.append(f"<h2>{title}</h2><pre>{_e(r.script)}</pre>")
    if not seen:
        parts.append("<p>No SQL was run in this session.</p>")
    if m.down_script:
        parts.append(f"<h2>Revert SQL (for reference)</h2><pre>{_e(m.down_script)}</pre>")
    queries = [(c.title, c.evidence["query"]) for c in m.checklist
               if c.kind == "automated" and isinstance(c.evidence.get("query"), str)]
    if queries:
        parts.append("<h2>The queries behind the automated checks</h2>" + "".join(
            f"<h3>{_e(title)}</h3><pre>{_e(query.strip())}</pre>"
            for title, query in queries))
    return "".join(parts)


def render_html(m: ReportModel) -> str:
    """The report as HTML for QTextDocument (and any browser). Every value is escaped."""
    db = _e(m.target.get("dbname", "?"))
    ref = f" — {_e(m.change_ref)}" if m.change_ref else ""
    parts = [f"<html><head><meta charset='utf-8'><title>EnerLink migration report — {db}{ref}"
             f"</title><style>{CSS}</style></head><body>",
             "<h1>EnerLink schema migration: prosumer → user</h1>",
             f'<p class="small">Change report for database {db}, generated by enerlink-migrate '
             "from the run journal.</p>", _change(m), _sign_off(m), _rollback(m),
             _steps_html(m)]
    if m.text_references:
        parts.append("<h3>Stored text that still names prosumer (warnings)</h3><ul>" + "".join(
            f"<li>{_e(r)}</li>" for r in m.text_references) + "</ul>")
    if m.runs:
        shown: dict[str, int] = {}
        parts += ["<h2>Migration runs</h2>"] + [_run_html(n, r, shown)
                                               for n, r in enumerate(m.runs, 1)]
    if any(r.kind == "migration" and r.ok for r in m.runs):
        parts.append("<p><b>Revert</b> with the wizard or <span class='mono'>enerlink-migrate "
                     "revert</span>, not <span class='mono'>npm run migration:revert</span>: "
                     "the upstream down() cannot succeed on this schema.</p>")
    if m.problems:
        rows = "".join(f"<tr><td class='small'>{_e(format_ts(p['ts']))}</td>"
                       f"<td>{_status(FAIL if p['level'] == 'error' else WARN)}</td>"
                       f"<td>{_e(p['message'])}</td></tr>" for p in m.problems)
        parts.append(f"<h3>Warnings and errors from the log</h3>{TABLE}{rows}</table>")
    if m.proofs:
        parts += ["<h2>Proof of the backup</h2>", _proofs_html(m.proofs)]
    if m.restores:
        parts += ["<h2>Restore</h2>", _restores_html(m.restores)]
    if m.redis:
        parts += ["<h2>Redis data</h2>", _redis_html(m.redis)]
    parts += ["<h2>Checklist</h2>", _checklist(m), _others_html(m), _appendix(m),
              "</body></html>"]
    return "".join(parts)


def _proofs_html(proofs: list[dict[str, Any]]) -> str:
    out = []
    for p in proofs:
        rows = [("Backup", f'<span class="mono">{_e(p.get("path"))}</span>'),
                ("Outcome", f"{_status(PASS if p.get('proven') else FAIL)} "
                            f"{_e(p.get('summary') or p.get('reason'))}"),
                ("Scratch copy", _e(f"{p.get('scratch_db')} ("
                                    + ("dropped" if p.get("dropped") else "NOT dropped")
                                    + ")")),
                ("Compared with", _e(p.get("compared_with"))),
                ("Timings", _e(", ".join(f"{k[:-2]} {v} s" for k, v in
                                         (p.get("timings") or {}).items())))]
        diffs = list(p.get("count_diffs") or []) + list(p.get("fingerprint_diffs") or [])
        if diffs:
            rows.append(("Differences", _e("; ".join(diffs[:12]))))
        rows += [("NOT VALID", _e(f"{k.get('name')} on {k.get('table')}: "
                                  f"{k.get('violating_rows')} row(s)"))
                 for k in p.get("not_valid") or []]
        out.append(_kv(rows))
    return "<br>".join(out)


def _restores_html(restores: list[dict[str, Any]]) -> str:
    out = []
    for r in restores:
        rows = [("Outcome", f"{_status(PASS if r.get('ok') else FAIL)} "
                            + _e(f"{r.get('live_db')} is the restored copy; the previous one "
                                 f"is kept as {r.get('before_db')}" if r.get("ok")
                                 else r.get("error")))]
        if r.get("timescaledb"):
            rows.append(("TimescaleDB", "timescaledb_pre_restore() and "
                                        "timescaledb_post_restore() ran around pg_restore"))
        for k in r.get("not_valid") or []:
            rows.append((f"NOT VALID {_e(k.get('name'))}",
                         _e(f"on {k.get('table')} ({', '.join(k.get('columns') or [])} → "
                            f"{k.get('references')}): {k.get('violating_rows')} row(s) of the "
                            f"backup violate it. After cleaning them up: ")
                         + f'<span class="mono">{_e(k.get("validate_sql"))}</span>'))
        rows += [("Next", _e(step)) for step in r.get("next_steps") or []]
        out.append(_kv(rows))
    return "<br>".join(out)


def _redis_html(runs: list[dict[str, Any]]) -> str:
    """Each Redis migration of the run: where, which way, and per rule what changed."""
    out = []
    for r in runs:
        result = r.get("result") or {}
        way = "to the new names" if r.get("direction") == "up" else "back to the old names"
        ok = r.get("outcome") == "ok" and not result.get("conflicts")
        head = (f"<p><b>{_e(format_ts(str(r.get('ts', ''))))}</b>: {_e(r.get('target'))}, "
                f"{way} — {_status(PASS if ok else FAIL)} {_e(r.get('outcome'))}"
                + (f": {_e(r.get('error'))}" if r.get("error") else "") + "</p>")
        rows = "".join(
            f"<tr><td class='mono'>{_e(d.get('rule'))}</td><td align='right'>"
            f"{_e(d.get('changed'))}</td><td align='right'>{_e(d.get('merged'))}</td>"
            f"<td align='right'>{_e(d.get('conflicts'))}</td><td class='small'>"
            f"{_e(', '.join(d.get('conflict_samples') or []))}</td></tr>"
            for d in result.get("rules") or [])
        out.append(head + '<table width="100%" border="1" cellspacing="0" cellpadding="3">'
                   "<tr><th>Rule</th><th>Keys changed</th><th>Merged</th><th>Conflicts</th>"
                   f"<th>Conflicting keys</th></tr>{rows}</table>")
    return "".join(out)


def report_html(journal: Journal) -> str:
    return render_html(build_report(journal))
