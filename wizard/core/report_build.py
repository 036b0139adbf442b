"""Reading a run journal into the report model: runs, checklist, rollback point, steps."""

from __future__ import annotations

from typing import Any

from wizard.core.commit_outcome import committed
from wizard.core.journal import Journal
from wizard.core.report_model import (
    CHECK_EVENTS,
    DONE,
    FAIL,
    MANUAL_CHECKS,
    OPEN,
    OUTSIDE_WINDOW,
    PASS,
    TARGET_FIELDS,
    WARN,
    ChecklistItem,
    Record,
    ReportModel,
    RollbackPoint,
    RunSection,
    StepRow,
    format_ts,
    parse_ts,
    redact,
    size_text,
)
from wizard.core.report_steps import other_events, step_outcomes
from wizard.core.runs import outcome_parts


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
        elif e["event"] == "window_opened" and not stopped:
            stopped = str(e.get("ts", ""))  # the DBA said it was stopped (--app-stopped)
    t0, t1 = parse_ts(stopped), parse_ts(started)
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
    t0, t1 = parse_ts(first_ts), parse_ts(last_ts)
    downs = [e for e in events if e["event"] == "down_plan"]
    outcome, ok = _outcome(events, last)
    checklist = _automated(events) + _manual(events)
    stopped, restarted, downtime = _downtime(events)
    others, left_out = other_events(events)
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
        steps=step_outcomes(events, runs, checklist, str(started.get("command", "")), rollback),
        events=others, left_out=left_out)

