"""The change window in words: each step of the run (pre-flight, backup, migration, Redis,
verification, ...) and what became of it, read from the journal's events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wizard.core.report_model import (
    DONE,
    FAIL,
    PASS,
    WARN,
    ChecklistItem,
    Record,
    RollbackPoint,
    RunSection,
    StepLine,
    StepOutcome,
    size_text,
)
from wizard.core.runs import plural, short


def _name(path: Any) -> str:
    return Path(str(path or "?")).name


def ms_text(value: Any) -> str:
    return f"{value:.1f} ms" if isinstance(value, int | float) else "—"


def run_words(r: RunSection) -> tuple[str, str]:
    """A migration, rehearsal or revert in words, with its status."""
    if r.interrupted:
        return FAIL, f"{r.kind} INTERRUPTED: no result recorded (run `enerlink-migrate inspect`)"
    where = f" at step {r.failed_step}" if r.failed_step else ""
    if r.rehearsal:
        if r.ok:
            return PASS, (f"rehearsal: would block {ms_text(r.blocked_ms)}, rolled back (nothing "
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
                      f"{ms_text(r.blocked_ms)}, {r.total_s} s in all")
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
    if r.get("declined"):
        return WARN, f"restore not done, as the operator decided: {short(r.get('error'), 300)}"
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


def _prepared_words(e: Record) -> tuple[str, str]:
    if not e.get("ok"):
        return FAIL, "prepare phase NOT ready: " + short("; ".join(e.get("problems") or []), 300)
    backup = e.get("backup") or {}
    timings = e.get("timings") or {}
    return PASS, (f"prepare phase ready, with the application running "
                  f"({sum(float(v) for v in timings.values()):.1f} s): backup "
                  f"{_name(backup.get('path'))}" + (" PROVEN" if backup.get("proven") else "")
                  + f", snapshot {backup.get('snapshot_at')}; rehearsal would block "
                  f"{ms_text(e.get('blocked_ms'))}; {len(e.get('watched') or [])} column(s) "
                  "to re-check for orphans in the window")


def _opened_words(e: Record) -> tuple[str, str]:
    risk = e.get("writes_at_risk_s")
    return PASS, (f"downtime starts: the application stopped ({e.get('how')})"
                  + (f"; a restore of the prepared backup would lose {float(risk):g} s of "
                     "writes (its snapshot → this stop), a revert loses none"
                     if risk is not None else ""))


def _rechecked_words(e: Record) -> tuple[str, str]:
    scope = f" ({e.get('reason')})" if e.get("reason") and e.get("ok") else ""
    if not e.get("ok"):
        return FAIL, f"re-check refused the migration: {short(e.get('reason'), 300)}"
    return PASS, (f"re-check in {float(e.get('seconds') or 0):.2f} s: plan digest unchanged, "
                  f"no new orphan rows in {len(e.get('columns') or [])} column(s){scope}")


def _closed_words(e: Record) -> tuple[str, str]:
    downtime = e.get("downtime_s")
    if e.get("started") and downtime is not None:
        return PASS, f"the application started again: downtime {float(downtime):.2f} s " \
                     "(stop → start)"
    return (PASS if e.get("ok") else FAIL), short(e.get("detail"), 300)


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
    "phase_prepared": ("Prepare phase", _prepared_words),
    "window_opened": ("Application stopped", _opened_words),
    "window_rechecked": ("Application stopped", _rechecked_words),
    "window_closed": ("Application started", _closed_words),
}
# The steps in the order of the change window; the six from Pre-flight to Verification are
# always listed, the prepare phase when one ran.
STEPS = ("Prepare phase", "Pre-flight", "Application stopped", "Backup and proof",
         "Orphan rows", "Migration",
         "Redis", "Verification", "Application started", "Revert", "Restore")
ALWAYS = frozenset(STEPS[1:8]) - {"Application stopped"}
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


def step_outcomes(events: list[Record], runs: list[RunSection], checklist: list[ChecklistItem],
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


def other_events(events: list[Record]) -> tuple[list[StepLine], dict[str, int]]:
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

