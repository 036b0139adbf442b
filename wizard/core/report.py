"""The run report: a model and its HTML, built from a run journal only (no database)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from html import escape
from typing import Any

from wizard.core.events import (
    ChangeNamed,
    ManualCheckDone,
    OperatorNamed,
    ReportExported,
    VerificationSigned,
)
from wizard.core.journal import Journal
from wizard.core.units import format_bytes

# Events the report knows how to lay out; anything else is shown generically (redacted).
# A run's progress events (step_done, attempt, lock_timeout) repeat what its run_finished
# record and its log lines say.
KNOWN_EVENTS = frozenset({"run_started", "change", "state_before", "plan", "log", "run_finished",
                          "down_plan", "manual_check", "operator", "backup", "verification",
                          "step_done", "attempt", "lock_timeout", "backup_accepted",
                          "expected", "commit_unknown", "commit_resolved", "redis_migrated",
                          "redis_dry_run", "redis_progress", "backup_proof_started",
                          "backup_proven", "restore_finished"})
# Events whose `checks` make up the automated checklist; a later result of an id wins.
CHECK_EVENTS = frozenset({"run_finished", "verification"})
# Only these fields of a run's target are ever printed: host, port, database, role.
TARGET_FIELDS = ("host", "port", "dbname", "user")
EVIDENCE_CHARS = 700  # the journal keeps the full evidence; the PDF shows its beginning


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

PASS, FAIL, WARN, DONE, OPEN = "pass", "fail", "warn", "done", "open"
STATUS_LABEL = {PASS: "PASS", FAIL: "FAIL", WARN: "WARN", DONE: "DONE", OPEN: "NOT DONE"}


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


@dataclass
class OtherEvent:
    name: str
    ts: str
    fields: dict[str, Any]


@dataclass
class ReportModel:
    run: str
    command: str
    target: dict[str, Any]
    operator: str
    os_user: str
    client_host: str
    started: str
    finished: str
    duration_s: float | None
    server_version: str
    state_before: str
    state_before_explanation: str
    state_after: str
    outcome: str
    outcome_ok: bool
    runs: list[RunSection]
    backups: list[dict[str, Any]]
    checklist: list[ChecklistItem]
    others: list[OtherEvent]
    problems: list[dict[str, str]]  # warn/error log lines
    down_script: str
    text_references: list[str]
    redis: list[dict[str, Any]] = field(default_factory=list)  # redis_migrated events
    proofs: list[dict[str, Any]] = field(default_factory=list)  # backup_proven events
    restores: list[dict[str, Any]] = field(default_factory=list)  # restore_finished results

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
        commit_evidence=str(result.get("commit_evidence") or ""))


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


def build_report(journal: Journal) -> ReportModel:
    """Everything the PDF shows, from the journal's events (whitelisted, redacted)."""
    events = journal.events()
    started = next((e for e in events if e["event"] == "run_started"), {})
    target_all = started.get("target") or {}
    target = {k: target_all[k] for k in TARGET_FIELDS if k in target_all}
    operators = [e for e in events if e["event"] == "operator" and e.get("name")]
    states = [e for e in events if e["event"] == "state_before"]
    runs = _runs(events)
    last = runs[-1] if runs else None
    first_ts, last_ts = (events[0]["ts"], events[-1]["ts"]) if events else ("", "")
    t0, t1 = _parse_ts(first_ts), _parse_ts(last_ts)
    downs = [e for e in events if e["event"] == "down_plan"]
    if last is None:
        outcome, ok = "no migration or revert was run in this session", True
    elif last.ok:
        outcome, ok = (f"{last.kind} succeeded" + (": nothing was changed"
                                                    if "rehearsal" in last.kind else "")), True
    elif last.commit_lost == "unknown":
        outcome, ok = f"{last.kind} outcome UNKNOWN: {last.error}", False
    else:
        outcome, ok = f"{last.kind} FAILED: {last.error or 'see the log'}", False
    return ReportModel(
        run=journal.folder.name, command=str(started.get("command", "")), target=target,
        operator=str(operators[-1]["name"]) if operators else "",
        os_user=str(started.get("operator", "")),
        client_host=str(started.get("client_host", "")),
        started=first_ts, finished=last_ts,
        duration_s=round((t1 - t0).total_seconds(), 3) if t0 and t1 else None,
        server_version=str(states[0].get("server_version", "")) if states else "",
        state_before=str(states[0].get("state", "")) if states else "",
        state_before_explanation=str(states[0].get("explanation", "")) if states else "",
        state_after=last.state_after if last else "",
        outcome=outcome, outcome_ok=ok, runs=runs,
        backups=[redact({k: v for k, v in e.items() if k != "event"})
                 for e in events if e["event"] == "backup"]
        + [redact(_rollback_point(e)) for e in events if e["event"] == "backup_accepted"],
        checklist=_automated(events) + _manual(events),
        others=[OtherEvent(e["event"], str(e.get("ts", "")),
                           redact({k: v for k, v in e.items() if k not in ("ts", "event")}))
                for e in events if e["event"] not in KNOWN_EVENTS],
        problems=[{"ts": str(e.get("ts", "")), "level": str(e.get("level", "")),
                   "message": str(redact(e.get("message", "")))}
                  for e in events if e["event"] == "log" and e.get("level") in ("warn", "error")],
        down_script=str(downs[-1].get("script", "")) if downs else "",
        redis=[redact({k: v for k, v in e.items() if k != "event"})
               for e in events if e["event"] == "redis_migrated"],
        proofs=[redact({k: v for k, v in e.items() if k != "event"})
                for e in events if e["event"] == "backup_proven"],
        restores=[redact({**(e.get("result") or {}), "ts": e.get("ts")})
                  for e in events if e["event"] == "restore_finished"],
        text_references=[str(r) for r in (states[0].get("text_references") or [])]
        if states else [])


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
.mono { font-family: monospace; font-size: 8pt; }
pre { font-family: monospace; font-size: 8pt; white-space: pre-wrap; }
.pass { color: #116329; font-weight: bold; }
.done { color: #116329; font-weight: bold; }
.fail { color: #b00020; font-weight: bold; }
.warn { color: #8a5a00; font-weight: bold; }
.open { color: #8a5a00; font-weight: bold; }
.small { font-size: 7.5pt; color: #444444; }
"""
MARK = {PASS: "✔", FAIL: "✘", WARN: "!", DONE: "☑", OPEN: "☐"}


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _compact(value: Any, limit: int = EVIDENCE_CHARS) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str,
                                                           ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + f" … ({len(text) - limit} more " \
        "characters in the journal)"


def _kv(rows: list[tuple[str, str]]) -> str:
    """A two-column table; values are already-escaped HTML."""
    body = "".join(f'<tr><td class="k" width="27%">{_e(k)}</td><td>{v}</td></tr>'
                   for k, v in rows)
    return f'<table width="100%" border="1" cellspacing="0" cellpadding="3">{body}</table>'


def _status(status: str) -> str:
    return (f'<span class="{_e(status)}">{MARK.get(status, "?")} '
            f'{_e(STATUS_LABEL.get(status, status.upper()))}</span>')


def _ms(value: Any) -> str:
    return f"{value:.1f} ms" if isinstance(value, int | float) else "—"


def _summary(m: ReportModel) -> str:
    t = m.target
    where = (f"database <b>{_e(t.get('dbname', '?'))}</b> on {_e(t.get('host', '?'))}:"
             f"{_e(t.get('port', '?'))} as role {_e(t.get('user', '?'))}")
    operator = _e(m.operator) if m.operator else '<span class="open">not given</span>'
    rows = [
        ("Outcome", f'<span class="{PASS if m.outcome_ok else FAIL}">{_e(m.outcome)}</span>'),
        ("Target", where),
        ("Operator", f"{operator} <span class='small'>(OS account {_e(m.os_user)} on "
                     f"{_e(m.client_host)})</span>"),
        ("Started", _e(format_ts(m.started))),
        ("Ended", _e(format_ts(m.finished))),
        ("Duration", _e(f"{m.duration_s:.1f} s") if m.duration_s is not None else "—"),
        ("State before", f"{_e(m.state_before or '—')} <span class='small'>"
                         f"{_e(m.state_before_explanation)}</span>"),
        ("State after", _e(m.state_after or "—")),
        ("PostgreSQL server", _e(m.server_version or "—")),
        ("Run journal", f'<span class="mono">{_e(m.run)}</span>'),
    ]
    return _kv(rows)


def _rollback_point(e: dict[str, Any]) -> dict[str, Any]:
    """The backup the migrate guard accepted, laid out as the backups of the run are."""
    return {"path": e.get("path"), "size_bytes": e.get("size_bytes"),
            "sha256": e.get("sha256"), "verified": True, "ts": e.get("verified_at"),
            "proof": e.get("proof") or {"proven": False, "summary": "not proven by a restore"},
            "role": "rollback point: the verified backup the migration relied on, hashed "
                    "again just before it", "backup_journal": e.get("journal")}


def _backups(m: ReportModel) -> str:
    if not m.backups:
        return ('<p><span class="warn">No backup was recorded in this run.</span> Record where '
                "the backup of this database is before the change is signed off.</p>")
    parts = []
    for b in m.backups:
        verified = b.get("verified")
        rows = [("Path", f'<span class="mono">{_e(b.get("path", "?"))}</span>'),
                ("Format", _e(b.get("format", "—"))),
                ("Size", _e(size_text(b.get("size_bytes")))),
                ("sha256", f'<span class="mono">{_e(b.get("sha256", "—"))}</span>'),
                ("Entries (pg_restore --list)", _e(b.get("toc_entries", "—"))),
                ("Verified", _status(PASS if verified else FAIL)),
                ("Taken", _e(format_ts(str(b.get("ts", "")))))]
        snapshot = b.get("snapshot")
        if isinstance(snapshot, dict) and isinstance(snapshot.get("counts"), dict):
            counts = snapshot["counts"]
            digest = str(snapshot.get("fingerprint_sha256"))[:16]
            rows.append(("Counted in pg_dump's snapshot",
                         _e(f"{sum(int(v) for v in counts.values())} rows in {len(counts)} "
                            f"tables, schema fingerprint {digest}…")))
        proof = b.get("proof")
        if isinstance(proof, dict):
            rows.append(("Proof", f"{_status(PASS if proof.get('proven') else FAIL)} "
                                  f"{_e(proof.get('summary', ''))}"))
        extra = {k: v for k, v in b.items() if k not in
                 ("path", "format", "size_bytes", "sha256", "toc_entries", "verified", "ts",
                  "snapshot", "proof")}
        rows += [(k.replace("_", " "), _e(_compact(v, 300))) for k, v in extra.items()]
        parts.append(_kv(rows))
    return "<br>".join(parts)


def _run_html(n: int, r: RunSection) -> str:
    head = f"<h3>{n}. {_e(r.kind.capitalize())}: " + (
        '<span class="pass">succeeded</span>' if r.ok else '<span class="fail">FAILED</span>'
    ) + "</h3>"
    rows = [("Started", _e(format_ts(r.started))), ("Ended", _e(format_ts(r.finished))),
            ("State", _e(f"{r.state_before or '?'} → {r.state_after or '?'}")),
            ("Attempts", _e(r.attempts)),
            ("Application blocked", _e(_ms(r.blocked_ms))),
            ("Total time", _e(f"{r.total_s} s" if r.total_s is not None else "—"))]
    if r.error:
        rows.append(("Error", f'<span class="fail">{_e(r.error)}</span>'))
    if r.failed_step:
        rows.append(("Failed step", _e(r.failed_step)))
    if r.commit_lost:
        rows.append(("COMMIT", _e(f"the connection was lost during COMMIT; asked afterwards, "
                                  f"the server showed: {r.commit_lost.upper()} "
                                  f"({r.commit_evidence or 'no evidence'})")))
    rows += [("Note", _e(note)) for note in r.notes]
    out = head + _kv(rows)
    if r.steps:
        body = "".join(f"<tr><td>{s.index}</td><td>{_e(s.title)}</td>"
                       f'<td align="right">{_e(_ms(s.ms))}</td><td>{_e(s.status)}</td></tr>'
                       for s in r.steps)
        out += ('<p></p><table width="100%" border="1" cellspacing="0" cellpadding="3">'
                '<tr><th width="5%">#</th><th>Step</th><th width="12%">Duration</th>'
                f'<th width="10%">Status</th></tr>{body}</table>')
    if r.counts_before or r.counts_after:
        out += "<p></p>" + _counts(r)
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
    if not ev:
        return ""
    parts = []
    if "query" in ev:
        parts.append(f"<pre>{_e(_compact(ev['query']))}</pre>")
    rest = {k: v for k, v in ev.items() if k != "query"}
    for k, v in rest.items():
        parts.append(f'<div class="small">{_e(k)}: <span class="mono">{_e(_compact(v))}'
                     "</span></div>")
    return "".join(parts)


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
            f"{_evidence(c.evidence)}</td></tr>" for c in auto)
        out += ('<table width="100%" border="1" cellspacing="0" cellpadding="3">'
                '<tr><th width="16%">Status</th><th>Check, result and evidence</th></tr>'
                f"{rows}</table>")
    out += "<h3>Application and frontend checks (ticked by the operator)</h3>"
    rows = "".join(
        f"<tr><td>{_status(c.status)}</td><td><b>{_e(c.title)}</b>"
        + (f'<br><span class="small">{_e(c.section)}: {_e(c.how)}</span>' if c.how else
           f'<br><span class="small">{_e(c.section)}</span>')
        + f"</td><td>{_e(c.note) or '&nbsp;'}</td></tr>" for c in manual)
    out += ('<table width="100%" border="1" cellspacing="0" cellpadding="3">'
            '<tr><th width="16%">Status</th><th width="50%">Item</th><th>Operator\'s note</th>'
            f"</tr>{rows}</table>")
    return out


def _others(m: ReportModel) -> str:
    if not m.others:
        return ""
    out = "<h2>Other recorded steps</h2>"
    for o in m.others:
        rows = [(k.replace("_", " "), _e(_compact(v, 600))) for k, v in o.fields.items()]
        out += (f"<h3>{_e(o.name.replace('_', ' ').capitalize())} "
                f'<span class="small">{_e(format_ts(o.ts))}</span></h3>' + _kv(rows))
    return out


def _sign_off(m: ReportModel) -> str:
    blank = "&nbsp;<br>&nbsp;<br>&nbsp;"  # room to write by hand
    rows = "".join(f"<tr><td><b>{role}</b></td><td>{name}<br>&nbsp;</td><td>{blank}</td>"
                   f"<td>{blank}</td></tr>"
                   for role, name in (("Operator", _e(m.operator) or "&nbsp;"),
                                      ("Reviewer", "&nbsp;")))
    return ('<h2>Sign-off</h2><p>By signing, the operator confirms the checks above were made '
            'as recorded; the reviewer confirms the evidence was read.</p>'
            '<table width="100%" border="1" cellspacing="0" '
            'cellpadding="6"><tr><th width="16%">Role</th><th width="34%">Name</th>'
            '<th width="18%">Date</th><th>Signature</th></tr>' + rows + "</table>")


def render_html(m: ReportModel) -> str:
    """The report as HTML for QTextDocument (and any browser). Every value is escaped."""
    db = _e(m.target.get("dbname", "?"))
    parts = [f"<html><head><meta charset='utf-8'><title>EnerLink migration report — {db}"
             f"</title><style>{CSS}</style></head><body>",
             "<h1>EnerLink schema migration: prosumer → user</h1>",
             f'<p class="small">Change report for database {db}, generated by enerlink-migrate '
             "from the run journal.</p>", _summary(m)]
    if m.text_references:
        parts.append("<h3>Stored text that still names prosumer (warnings)</h3><ul>" + "".join(
            f"<li>{_e(r)}</li>" for r in m.text_references) + "</ul>")
    parts += ["<h2>Backup</h2>", _backups(m), "<h2>Steps and timings</h2>"]
    if not m.runs:
        parts.append("<p>No migration, rehearsal or revert was run in this session.</p>")
    parts += [_run_html(n, r) for n, r in enumerate(m.runs, 1)]
    if m.problems:
        rows = "".join(f"<tr><td class='small'>{_e(format_ts(p['ts']))}</td>"
                       f"<td>{_status(FAIL if p['level'] == 'error' else WARN)}</td>"
                       f"<td>{_e(p['message'])}</td></tr>" for p in m.problems)
        parts.append('<h3>Warnings and errors from the log</h3><table width="100%" border="1" '
                     f'cellspacing="0" cellpadding="3">{rows}</table>')
    if m.proofs:
        parts += ["<h2>Proof of the backup</h2>", _proofs_html(m.proofs)]
    if m.restores:
        parts += ["<h2>Restore</h2>", _restores_html(m.restores)]
    if m.redis:
        parts += ["<h2>Redis data</h2>", _redis_html(m.redis)]
    parts += ["<h2>Checklist</h2>", _checklist(m), _others(m)]
    if any(r.kind == "migration" and r.ok for r in m.runs):
        parts.append("<p><b>Revert</b> with the wizard or <span class='mono'>enerlink-migrate "
                     "revert</span>, not <span class='mono'>npm run migration:revert</span>: "
                     "the upstream down() cannot succeed on this schema.</p>")
    seen: set[str] = set()
    for n, r in enumerate(m.runs, 1):
        if not r.script:
            continue
        title = f"SQL of run {n} ({_e(r.kind)})"
        if r.script in seen:
            parts.append(f"<h3>{title}</h3><p>The same SQL as above.</p>")
            continue
        seen.add(r.script)
        parts.append(f"<h2>{title}</h2><pre>{_e(r.script)}</pre>")
    if m.down_script:
        parts.append(f"<h2>Revert SQL (for reference)</h2><pre>{_e(m.down_script)}</pre>")
    parts += [_sign_off(m), "</body></html>"]
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
