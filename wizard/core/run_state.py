"""The run at a glance: each step's state and the run's key facts, read from journal events."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from wizard.core.catalog import CONFLICT, MIGRATED, PARTIAL, PRE, UNKNOWN
from wizard.core.commit_outcome import COMMITTED, committed
from wizard.core.connection import PgSettings
from wizard.core.events import LogLine
from wizard.core.journal import Journal, runs_for

Record = Mapping[str, Any]

# The wizard's steps in its pages' order (wizard/ui/window.py page_factories).
STEPS: tuple[tuple[str, str], ...] = (
    ("connect", "Connect"), ("preflight", "Pre-flight"), ("backup", "Backup"),
    ("orphans", "Orphans"), ("migrate", "Migrate"), ("redis", "Redis"), ("verify", "Verify"))
TITLES = dict(STEPS)
# The change window's two phases, each heading the steps from the one named here on.
PHASES = {"connect": "Prepare: the application keeps running",
          "migrate": "Window: from Run migration's stop to Start"}

TODO, RUNNING, DONE, FAILED, SKIPPED = "to do", "running", "done", "failed", "skipped"

# How a DBA says the schema states (the words: pre / migrated / half).
STATE_WORDS = {PRE: "pre (not migrated)", MIGRATED: "migrated",
               PARTIAL: "half (some renames done)", CONFLICT: "conflict (both tables)",
               UNKNOWN: "unknown"}


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def when(record: Record) -> datetime | None:
    """A record's time (journal records carry ISO UTC in "ts")."""
    return parse_ts(record.get("ts"))


def parse_ts(value: object) -> datetime | None:
    if not value:
        return None
    try:
        stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


def clock(stamp: datetime | None) -> str:
    """HH:MM:SS in local time: what a DBA compares with the wall clock."""
    return stamp.astimezone().strftime("%H:%M:%S") if stamp is not None else "?"


def duration_text(seconds: float | None, *, ticking: bool = False) -> str:
    """0.04 s, 2.5 s, 12 s, 3 min 05 s, 1 h 02 min; whole seconds while it ticks."""
    if seconds is None:
        return ""
    seconds = max(seconds, 0.0)
    if not ticking and seconds < 1:
        return f"{seconds:.2f} s"
    if not ticking and seconds < 10:
        return f"{seconds:.1f} s"
    s = int(seconds) if ticking else round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


# -- what the window saw the pages do ------------------------------------------------------

@dataclass(frozen=True)
class JobSpan:
    """A job a page ran, as the window saw it through the page's busy signal: the journal
    records results, not every start, so durations and running steps come from here."""

    step: str
    name: str
    started: datetime
    ended: datetime | None = None  # None: still running
    failed: str | None = None  # the error, when the job failed or its result said not ok


@dataclass(frozen=True)
class StepState:
    step: str
    title: str
    status: str
    started: datetime | None = None
    ended: datetime | None = None
    reason: str = ""  # skipped/failed: why; done/to do: what the journal says about it
    job: str = ""  # running: the job that runs

    def seconds(self, now: datetime | None = None) -> float | None:
        """How long it ran (running: so far)."""
        if self.started is None:
            return None
        end = self.ended if self.status != RUNNING else (now or now_utc())
        return None if end is None else max(0.0, (end - self.started).total_seconds())

    def line(self, now: datetime | None = None) -> str:
        """The state in a few words: "running 0:42", "done in 12 s", "skipped"."""
        took = duration_text(self.seconds(now), ticking=self.status == RUNNING)
        if self.status == RUNNING:
            return f"running {took}" if took else "running"
        if self.status == DONE:
            return f"done in {took}" if took else "done"
        if self.status == FAILED:
            return f"failed after {took}" if took and self.started else "failed"
        return self.status


@dataclass
class _Found:
    """What a step's journal events say: its status, when that was decided, the reason."""

    status: str
    at: datetime | None
    reason: str = ""
    started: datetime | None = None  # a start the journal recorded for this outcome


def _of(events: Iterable[Record], *kinds: str) -> list[Record]:
    return [e for e in events if e.get("event") in kinds]


def _connect(events: Sequence[Record]) -> _Found | None:
    started = _of(events, "run_started")
    if not started:
        return None
    t = started[0].get("target") or {}
    return _Found(DONE, when(started[0]),
                  f"as {t.get('user')} to {t.get('host')}:{t.get('port')}/{t.get('dbname')}")


def _preflight(events: Sequence[Record]) -> _Found | None:
    found = _of(events, "preflight")
    if not found:
        return None
    last = found[-1]
    checks = last.get("checks") or []
    blocking = [str(c.get("title")) for c in checks if c.get("status") == "fail"]
    state = str(last.get("state") or "?")
    if blocking:
        return _Found(FAILED, when(last), f"{len(blocking)} blocking: " + "; ".join(blocking))
    return _Found(DONE, when(last), f"state {state}; nothing blocks the run")


def _backup(events: Sequence[Record]) -> _Found | None:
    found: _Found | None = None
    started: datetime | None = None
    for e in _of(events, "backup_started", "backup", "backup_cancelled", "backup_skipped",
                 "backup_proof_started", "backup_proven"):
        kind, at = e["event"], when(e)
        if kind == "backup_started":
            started = at
        elif kind == "backup":
            name = Path(str(e.get("path") or "")).name
            if e.get("verified"):
                found = _Found(DONE, at, f"verified: {name}", started)
            else:
                found = _Found(FAILED, at, f"not verified: {e.get('error') or 'see the log'}",
                               started)
        elif kind == "backup_cancelled":
            found = _Found(TODO, at, f"cancelled at {clock(at)}; the partial file was "
                                     f"{'removed' if e.get('removed') else 'left'}")
        elif kind == "backup_skipped":
            who = ", ".join(str(x) for x in (e.get("who"), e.get("when")) if x)
            found = _Found(SKIPPED, at, "backup skipped by typed name"
                           + (f" ({who})" if who else ""))
        elif kind == "backup_proof_started" and found is not None and found.status == DONE:
            found = _Found(DONE, found.at, found.reason + "; proving…", found.started)
        elif kind == "backup_proven" and found is not None and found.status in (DONE, FAILED):
            base = found.reason.replace("; proving…", "")
            if e.get("proven"):
                found = _Found(DONE, at, f"{base}; PROVEN by a restore", found.started)
            else:
                found = _Found(FAILED, at, f"{base}, but its proof FAILED: "
                                           f"{e.get('reason') or 'see the log'}", found.started)
    return found


def _orphans(events: Sequence[Record], blocking: Sequence[str] | None) -> _Found | None:
    found: _Found | None = None
    for e in _of(events, "orphan_scan", "orphan_delete"):
        at = when(e)
        if e["event"] == "orphan_delete":
            deleted = sum(int(n) for n in (e.get("deleted") or {}).values())
            found = _Found(DONE, at, f"{deleted:,} orphan rows deleted (CSV kept)")
            continue
        total = int(e.get("total") or 0)
        columns = sum(1 for c in e.get("columns") or [] if c.get("count"))
        if total == 0:
            found = _Found(DONE, at, "no orphan rows")
        elif blocking:
            found = _Found(FAILED, at, f"{total:,} orphan rows in {columns} column(s) stop "
                                       f"the migration: export and delete them")
        else:
            found = _Found(DONE, at, f"{total:,} orphan rows in {columns} column(s)"
                           + ("; they do not stop this plan" if blocking is not None else
                              ": see the Orphans page"))
    return found


def _minus(at: datetime | None, seconds: object) -> datetime | None:
    """When something that ended at `at` and took `seconds` began."""
    if at is None or not isinstance(seconds, (int, float)):
        return None
    return datetime.fromtimestamp(at.timestamp() - float(seconds), timezone.utc)


def _blocked(result: Record) -> str:
    ms = result.get("blocked_ms")
    return "" if ms is None else f"{float(ms):.1f} ms"


def _migrate(events: Sequence[Record]) -> _Found | None:
    found: _Found | None = None
    backup_state = ""
    for e in _of(events, "migrate_plan_shown", "run_finished", "refused", "commit_unknown",
                 "restore_prepared", "restore_finished"):
        kind, at = e["event"], when(e)
        done = found is not None and found.status == DONE
        if kind == "migrate_plan_shown":
            if not e.get("steps"):
                if not done:
                    found = _Found(SKIPPED, at, f"nothing to do: the database was already "
                                                f"{e.get('state')} when the plan was read")
            elif found is None or found.status in (SKIPPED, DONE):
                found = _Found(TODO, at, f"plan ready: {e.get('catalog_steps')} steps, digest "
                                         f"{str(e.get('digest'))[:12]}")
        elif kind == "run_finished":
            r = e.get("result") or {}
            start = _minus(at, r.get("total_s"))
            if r.get("direction") == "down":
                if committed(r) and not r.get("rehearsal"):
                    found = _Found(TODO, at, f"reverted at {clock(at)} (state "
                                             f"{r.get('state_after') or '?'})", start)
            elif r.get("rehearsal"):
                if done:
                    continue
                if r.get("ok"):
                    blocked = _blocked(r)
                    found = _Found(TODO, at, f"rehearsed ✔ at {clock(at)}"
                                   + (f", would block ≈ {blocked}" if blocked else "")
                                   + "; not run yet", start)
                else:
                    found = _Found(FAILED, at, f"rehearsal failed: {r.get('error')}", start)
            elif committed(r):
                if r.get("ok"):
                    found = _Found(DONE, at, f"migrated, state {r.get('state_before')} → "
                                             f"{r.get('state_after')}; blocked "
                                             f"{_blocked(r) or '?'}", start)
                else:
                    found = _Found(FAILED, at, f"committed, but a check after commit failed: "
                                               f"{r.get('error')}", start)
            else:
                found = _Found(FAILED, at, f"rolled back, the schema is unchanged: "
                                           f"{r.get('error')}", start)
        elif kind == "refused" and not done:
            found = _Found(FAILED, at, f"refused: {e.get('reason')}")
        elif kind == "commit_unknown":
            found = _Found(FAILED, at, "the outcome of COMMIT is unknown (the connection was "
                                       "lost): start no version of the application")
        elif kind == "restore_prepared":
            backup_state = str((e.get("inspection") or {}).get("state") or "")
        elif kind == "restore_finished" and (e.get("result") or {}).get("ok") \
                and backup_state != MIGRATED:
            found = _Found(TODO, at, f"the database was restored from a backup at "
                                     f"{clock(at)} (state {backup_state or '?'})")
    return found


def _redis(events: Sequence[Record], configured: bool) -> _Found | None:
    if not configured:
        return _Found(SKIPPED, None, "no Redis configured in this profile")
    found: _Found | None = None
    for e in _of(events, "redis_dry_run", "redis_migrated", "cache_skipped",
                 "cache_unavailable", "cache_delete", "cache_flushdb"):
        kind, at = e["event"], when(e)
        if kind == "redis_dry_run":
            if found is None or found.status == TODO:
                found = _Found(TODO, at, f"dry run at {clock(at)}; not migrated yet")
        elif kind == "redis_migrated":
            r = e.get("result") or {}
            start = _minus(at, r.get("seconds"))
            changed = int(r.get("changed") or 0)
            outcome = e.get("outcome")
            if outcome == "ok" and e.get("direction") == "down":
                found = _Found(TODO, at, f"reverted: {changed:,} keys back to the old names")
            elif outcome == "ok":
                conflicts = int(r.get("conflicts") or 0)
                found = _Found(DONE, at, f"{changed:,} keys changed"
                               + (f", {conflicts} conflicts left" if conflicts else ""), start)
            elif outcome == "cancelled":
                found = _Found(TODO, at, f"cancelled after {changed:,} keys: run it again "
                                         f"to finish")
            else:
                found = _Found(FAILED, at, f"{e.get('error') or 'failed'}; the database "
                                           f"result stands", start)
        elif kind == "cache_skipped":
            found = _Found(SKIPPED, at, str(e.get("reason") or "skipped"))
        elif kind == "cache_unavailable":
            found = _Found(FAILED, at, f"Redis unreachable: {e.get('error')}")
        else:
            found = _Found(DONE, at, "cache keys deleted")
    return found


def _verify(events: Sequence[Record]) -> _Found | None:
    found: _Found | None = None
    for e in _of(events, "verification", "report_exported"):
        at = when(e)
        if e["event"] == "report_exported":
            if found is not None:
                found.reason = found.reason.replace("; no PDF report exported yet", "")
                found.reason += f"; {str(e.get('format')).upper()} report exported"
            continue
        checks = e.get("checks") or []
        failed = [str(c.get("title")) for c in checks if c.get("status") == "fail"]
        passed = sum(1 for c in checks if c.get("status") == "pass")
        if failed:
            found = _Found(FAILED, at, f"{len(failed)} check(s) failed: " + "; ".join(failed)
                           + "; no PDF report exported yet")
        else:
            found = _Found(DONE, at, f"{passed} checks passed; no PDF report exported yet")
    return found


def _decide(step: str, found: _Found | None, spans: Sequence[JobSpan]) -> StepState:
    """The journal's word on a step, with what the window saw: a job running now, or one
    that failed after the journal's last word."""
    title = TITLES[step]
    mine = [s for s in spans if s.step == step]
    running = next((s for s in reversed(mine) if s.ended is None), None)
    if running is not None:
        reason = found.reason if found else ""
        if found is not None and reason and (found.at is None or found.at < running.started):
            reason = f"before this job: {reason}"  # what the journal said, not this job
        return StepState(step, title, RUNNING, running.started, None, reason, running.name)
    last = mine[-1] if mine else None
    if last is not None and last.failed is not None and last.ended is not None and (
            found is None or found.at is None or found.at < last.started):
        # The job failed without the journal saying anything newer (a connection error,
        # a refused plan): the page's error is the step's word.
        return StepState(step, title, FAILED, last.started, last.ended,
                         f"{last.name}: {last.failed}", last.name)
    if found is None:
        return StepState(step, title, TODO)
    started, ended = found.started, found.at
    if found.at is not None and found.status in (DONE, FAILED):
        # The job that produced the outcome: its start is the step's (the journal's own
        # start events cover only some steps).
        span = next((s for s in reversed(mine) if s.started <= found.at), None)
        if span is not None and (span.ended is None or span.ended >= found.at):
            started = span.started
        elif span is not None and found.started is None and step == "connect":
            started, ended = span.started, span.ended  # the connection test
    if found.status not in (DONE, FAILED):
        started = ended = None
    return StepState(step, title, found.status, started, ended, found.reason)


def step_states(events: Sequence[Record], spans: Sequence[JobSpan] = (), *,
                redis_configured: bool = True,
                orphans_blocking: Sequence[str] | None = None) -> list[StepState]:
    """Every step with its state: to do, running, done, failed or skipped, with times and
    the reason. `events` are the session journal's records in order; `spans` the jobs the
    window saw; `orphans_blocking` what the Orphans page judged blocks the plan (None: not
    judged)."""
    found = {"connect": _connect(events), "preflight": _preflight(events),
             "backup": _backup(events), "orphans": _orphans(events, orphans_blocking),
             "migrate": _migrate(events), "redis": _redis(events, redis_configured),
             "verify": _verify(events)}
    return [_decide(step, found[step], spans) for step, _title in STEPS]


def has_happened(events: Iterable[Record]) -> bool:
    """Whether the run did anything yet (closing then needs a question)."""
    return any(e.get("event") != "run_started" for e in events)


# -- key facts -----------------------------------------------------------------------------

@dataclass(frozen=True)
class RollbackPoint:
    """What a restore would go back to: a verified backup, or the typed skip."""

    path: str = ""
    sha256: str = ""
    verified_at: datetime | None = None
    proven: bool | None = None  # None: no proof recorded
    proof_reason: str = ""
    skipped: str = ""  # who and when, when the DBA went on without a backup

    def describe(self, full: bool = False) -> str:
        if self.skipped:
            return f"none: backup skipped by typed name ({self.skipped})"
        sha = self.sha256 if full else self.sha256[:12] + "…"
        proof = ("PROVEN by a restore" if self.proven else
                 f"proof FAILED ({self.proof_reason})" if self.proven is False and full else
                 "proof FAILED" if self.proven is False else "not proven")
        return f"{self.path} (sha256 {sha}, {proof})"


def _later(a: Record, b: Record, mine: Sequence[Record]) -> bool:
    """Whether record `a` came after `b`: by time, and within one millisecond (a fast
    machine writes several) by their order in this run's journal."""
    ta, tb = str(a.get("ts", "")), str(b.get("ts", ""))
    if ta != tb:
        return ta > tb
    order = {id(e): i for i, e in enumerate(mine)}
    return order.get(id(a), -1) > order.get(id(b), -1)


def rollback_point(events: Sequence[Record], others: Sequence[Record] = ()
                   ) -> RollbackPoint | None:
    """The backup a migration would name as its rollback point: the newest one the guard
    accepted, else the newest verified backup; a typed skip of this run counts when it is
    newer. `others` are records of this database's other journals (backups and proofs made
    by other runs count, as the guard counts them; their skips do not)."""
    mine = list(events)
    pool = sorted([*mine, *others], key=lambda e: str(e.get("ts", "")))
    backup: Record | None = None
    for e in pool:
        if (e.get("event") == "backup" and e.get("verified") and e.get("sha256")) or (
                e.get("event") == "backup_accepted" and e.get("sha256")):
            backup = e
    skips = _of(mine, "backup_skipped")
    if skips and (backup is None or _later(skips[-1], backup, mine)):
        who = ", ".join(str(x) for x in (skips[-1].get("who"), skips[-1].get("when")) if x)
        return RollbackPoint(skipped=who or "confirmed")
    if backup is None:
        return None
    sha = str(backup["sha256"])
    proofs = [e for e in pool if e.get("event") == "backup_proven" and e.get("sha256") == sha]
    proven = bool(proofs[-1].get("proven")) if proofs else None
    reason = str(proofs[-1].get("reason") or "") if proofs else ""
    verified = parse_ts(backup.get("verified_at")) if backup.get("event") == "backup_accepted" \
        else when(backup)
    return RollbackPoint(str(backup.get("path")), sha, verified, proven, reason)


@dataclass(frozen=True)
class KeyFacts:
    database: str  # host:port/db
    state: str  # pre, migrated, partial, conflict, unknown; "" before anything read it
    state_source: str  # what read it: "pre-flight", "the migration", ...
    state_at: datetime | None
    rollback: RollbackPoint | None
    lock_waits: int
    blockers: tuple[str, ...]  # the sessions of the newest lock timeout

    @property
    def state_words(self) -> str:
        return STATE_WORDS.get(self.state, self.state) if self.state else "not read yet"


def schema_state(events: Sequence[Record]) -> tuple[str, str, datetime | None]:
    """The newest state any step read or left: (state, what read it, when)."""
    state: tuple[str, str, datetime | None] = ("", "", None)
    backup_state = ""
    for e in events:
        kind, at = e.get("event"), when(e)
        if kind == "preflight" and e.get("state"):
            state = (str(e["state"]), "pre-flight", at)
        elif kind == "migrate_plan_shown" and e.get("state"):
            state = (str(e["state"]), "the Migrate page's plan", at)
        elif kind == "state_before" and e.get("state"):
            state = (str(e["state"]), "the migration run as it began", at)
        elif kind == "orphan_scan" and e.get("state"):
            state = (str(e["state"]), "the orphan scan", at)
        elif kind == "run_finished":
            r = e.get("result") or {}
            what = "the revert" if r.get("direction") == "down" else "the migration"
            if r.get("rehearsal"):
                if r.get("state_before"):
                    state = (str(r["state_before"]), "the rehearsal", at)
            elif committed(r) and r.get("state_after"):
                state = (str(r["state_after"]), what, at)
            elif r.get("state_before"):
                state = (str(r["state_before"]), what + " (rolled back)", at)
        elif kind == "commit_unknown":
            state = (UNKNOWN, "a COMMIT whose outcome is unknown", at)
        elif kind == "commit_resolved":
            if e.get("outcome") != COMMITTED and e.get("outcome") != "not committed":
                state = (UNKNOWN, "a COMMIT whose outcome is unknown", at)
        elif kind == "restore_prepared":
            backup_state = str((e.get("inspection") or {}).get("state") or "")
        elif kind == "restore_finished" and (e.get("result") or {}).get("ok"):
            state = (backup_state or UNKNOWN, "the restore from a backup", at)
    return state


def key_facts(events: Sequence[Record], others: Sequence[Record] = (),
              database: str = "") -> KeyFacts:
    """The header's facts. `events`: the session journal's records; `others`: records of
    this database's journals since the session began (the restore dialog's, the CLI's), in
    time order; `database` when no journal says it yet."""
    merged = sorted([*events, *others], key=lambda e: str(e.get("ts", "")))
    started = _of(events, "run_started")
    if started:
        t = started[0].get("target") or {}
        database = f"{t.get('host')}:{t.get('port')}/{t.get('dbname')}"
    state, source, at = schema_state(merged)
    waits = _of(merged, "lock_timeout")
    blockers: tuple[str, ...] = ()
    if waits:
        blockers = tuple(
            f"pid {b.get('pid')} {b.get('application_name') or '(no application)'}"
            + (f" ({b.get('mode')} on {b.get('relation')})" if b.get("mode") else "")
            for b in waits[-1].get("blockers") or [])
    return KeyFacts(database, state, source, at, rollback_point(events, others),
                    len(waits), blockers)


# -- what the Migrate page and Finish ask ---------------------------------------------------

@dataclass(frozen=True)
class Rehearsal:
    digest: str
    at: datetime | None
    ok: bool
    blocked_ms: float | None
    total_s: float
    error: str = ""


def rehearsals(events: Sequence[Record]) -> list[Rehearsal]:
    """Every rehearsal of an up plan in these records, oldest first, with its plan's digest."""
    plan_digest = ""
    found: list[Rehearsal] = []
    for e in events:
        kind = e.get("event")
        if kind == "plan":
            plan_digest = str(e.get("digest") or "")
        elif kind == "run_finished":
            r = e.get("result") or {}
            if r.get("rehearsal") and r.get("direction", "up") == "up":
                blocked = r.get("blocked_ms")
                found.append(Rehearsal(plan_digest, when(e), bool(r.get("ok")),
                                       None if blocked is None else float(blocked),
                                       float(r.get("total_s") or 0), str(r.get("error") or "")))
            plan_digest = ""
    return found


def rehearsal_of(events: Sequence[Record], digest: str) -> Rehearsal | None:
    """The newest passing rehearsal of the plan with `digest` in these records."""
    passed = [r for r in rehearsals(events) if r.ok and digest and r.digest == digest]
    return passed[-1] if passed else None


def migrated_at(events: Sequence[Record]) -> datetime | None:
    """When this run's migration committed and passed, while nothing undid it since."""
    found = _migrate(events)
    return found.at if found is not None and found.status == DONE else None


def record_unrehearsed(journal: Journal, digest: str, dbname: str) -> None:
    """A DBA typed the database's name to run a plan no rehearsal of this run passed."""
    journal.record(LogLine("warn", f"migration of {dbname} started without a passing "
                                   f"rehearsal of plan {digest[:12]}: confirmed by typing "
                                   f"the database name"))


def finish_concerns(events: Sequence[Record]) -> list[str]:
    """What finishing now would leave behind: failed checks, no exported report."""
    concerns = []
    verified = _of(events, "verification")
    if not verified:
        concerns.append("the verification checks have not run")
    else:
        failed = [str(c.get("title")) for c in verified[-1].get("checks") or []
                  if c.get("status") == "fail"]
        if failed:
            concerns.append(f"{len(failed)} check(s) failed: " + "; ".join(failed))
    formats = {str(e.get("format")) for e in _of(events, "report_exported")}
    if "pdf" not in formats:
        concerns.append("no PDF report was exported" + (" (only JSON)" if formats else ""))
    return concerns


def other_records(journal: Journal, settings: PgSettings) -> list[Record]:
    """Records of this database's other journals begun since `journal` (a restore from the
    dialog, a CLI run in another terminal), in time order."""
    records: list[Record] = []
    for other in runs_for(settings, journal.folder.parent):
        if other.folder.name <= journal.folder.name:
            break  # newest first: the rest began before this run
        records += other.events()
    return sorted(records, key=lambda e: str(e.get("ts", "")))
