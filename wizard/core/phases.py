"""The change window in two phases: prepare while the application runs, then a short window.

*Prepare* (the application up): pre-flight, the orphan scan (and, agreed by typed name, the
cleanup of the orphans in the migration's way, before the backup so the rollback point
holds none), the backup with its proof, a rehearsal with its blocked-time estimate and the
Redis dry run. Everything it found is journaled as `phase_prepared`.

*Window* (the application stopped, by the profile's stop command or by the DBA who says so):
a fast re-check that nothing that matters changed (the plan's digest; orphans only in the
columns whose foreign key is added, only among rows written since the scan), the
migration, the Redis migration, the checks, the start command and the login smoke check.
The downtime is stop → start; a restore of the prepared backup would lose the writes made
between its snapshot and the stop (a revert loses none).
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from wizard.core import checklist, jobs, names, orphans, redis_migrate
from wizard.core.appctl import run_app_command
from wizard.core.archive import archive_sha256
from wizard.core.backup import BackupOptions, backup
from wizard.core.connection import PgSettings
from wizard.core.events import (
    AppCommandRan,
    PhasePrepared,
    WindowClosed,
    WindowOpened,
    WindowRechecked,
)
from wizard.core.execute import RunOptions, RunResult
from wizard.core.journal import Journal, runs_for
from wizard.core.phase_recheck import (
    Horizon,
    Recheck,
    Watched,
    read_horizon,
    recheck,
    watched_columns,
)
from wizard.core.plan import UP, Plan, PlanRefused
from wizard.core.preflight import run_preflight
from wizard.core.prove import ProofOptions, prove
from wizard.core.redis_conn import RedisSettings, RedisUnavailable
from wizard.core.redis_rules import DEFAULT_RULES, Rule
from wizard.core.redis_verify import redis_checks
from wizard.core.reporting import Report, no_report
from wizard.core.smoke import CHECK_ID as SMOKE_ID
from wizard.core.smoke import SmokeSettings, login_check
from wizard.core.verify import FAIL, Check

PREPARE, WINDOW = "prepare", "window"
SMOKE_WAIT_S = 60.0  # the application may take this long to answer after its start


class WindowRefused(RuntimeError):
    """The window may not open (no prepare phase, the application not stopped) or its
    re-check found a change; nothing in the database was changed."""


@dataclass
class PrepareOptions:
    backup: BackupOptions
    prove: bool = True
    proof: ProofOptions = field(default_factory=ProofOptions)
    orphan_export: Path | None = None  # where the orphans in the way are exported first
    delete_orphans: str | None = None  # the database's name typed back: delete them
    rehearse: bool = True


@dataclass
class Prepared:
    ok: bool
    database: str
    problems: list[str] = field(default_factory=list)
    state: str = ""
    digest: str | None = None
    backup: dict[str, Any] | None = None  # path, sha256, size, snapshot_at, proven
    horizon: dict[str, Any] | None = None
    watched: list[dict[str, Any]] = field(default_factory=list)
    orphans: int = 0
    blocked_ms: float | None = None
    redis: dict[str, Any] | None = None  # dry run: keys per rule
    timings: dict[str, float] = field(default_factory=dict)
    journal: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        mark = "✔" if self.ok else "✘"
        out = [f"{mark} prepare phase of {self.database}: "
               + ("ready for the window" if self.ok else "NOT ready")]
        out += [f"  ✘ {p}" for p in self.problems]
        if self.backup:
            out.append(f"  rollback point: {self.backup['path']} (sha256 "
                       f"{str(self.backup['sha256'])[:12]}…, snapshot {self.backup['snapshot_at']}"
                       + (", PROVEN" if self.backup.get("proven") else "") + ")")
            if self.backup.get("proof"):
                out.append(f"  {self.backup['proof']}")
        if self.digest:
            out.append(f"  plan digest {self.digest[:16]}; rehearsal would block "
                       f"{_ms(self.blocked_ms)}")
        out.append(f"  the window re-checks {len(self.watched)} column(s) for orphans: "
                   + (", ".join(w["label"] for w in self.watched) or "none gains a key"))
        if self.redis is not None:
            out.append(f"  Redis dry run: {self.redis.get('keys', 0)} keys to bring to the new "
                       f"names")
        out.append("  " + ", ".join(f"{k} {v:.2f} s" for k, v in self.timings.items()))
        return out


@dataclass
class WindowResult:
    ok: bool
    database: str
    stopped_how: str = ""
    stopped_at: str = ""
    started_at: str = ""
    downtime_s: float | None = None
    writes_at_risk_s: float | None = None
    recheck: dict[str, Any] | None = None
    run: dict[str, Any] | None = None
    redis_changed: int | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    smoke: dict[str, Any] | None = None
    error: str | None = None
    next_steps: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    journal: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ms(value: float | None) -> str:
    return "?" if value is None else f"≈ {value:.1f} ms"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _since(t0: float) -> float:
    return round(time.perf_counter() - t0, 3)


# --- prepare ---------------------------------------------------------------------------


def prepare(settings: PgSettings, redis: RedisSettings | None = None,
            rules: tuple[Rule, ...] | list[Rule] = DEFAULT_RULES, *,
            options: PrepareOptions, report: Report = no_report,
            cancel: threading.Event | None = None,
            journal: Journal | None = None) -> Prepared:
    """Everything that can run while the application is up; journaled as phase_prepared."""
    journal = journal or Journal.create(settings, PREPARE)
    out = Prepared(False, settings.dbname, journal=str(journal.folder))
    try:
        _prepare(settings, redis, rules, options, report, cancel, journal, out)
    except (PlanRefused, orphans.OrphanError, WindowRefused, RedisUnavailable) as exc:
        out.problems.append(str(exc))
    out.ok = not out.problems
    journal.record(PhasePrepared(out.to_dict()))
    for line in out.lines():
        report("info" if out.ok else "warn", line)
    return out


def _prepare(settings: PgSettings, redis: RedisSettings | None, rules: Any,
             opts: PrepareOptions, report: Report, cancel: threading.Event | None,
             journal: Journal, out: Prepared) -> None:
    t0 = time.perf_counter()
    report("step", "prepare 1/5: pre-flight (read only)")
    pre = run_preflight(settings, opts.backup.out_dir, report, journal=journal)
    out.timings["preflight"] = _since(t0)
    out.state = pre.state
    if pre.blocking:
        raise WindowRefused("pre-flight: " + "; ".join(f"{c.title}: {c.detail}"
                                                      for c in pre.blocking))
    discovery = jobs.inspect(settings)
    plan = jobs.make_plan(discovery, UP, settings)
    if not plan.steps:
        raise WindowRefused(f"{settings.dbname} is already {discovery.state}: the migration "
                            "has nothing to do, so there is no window to prepare")
    report("step", "prepare 2/5: orphan scan (before the backup, so the rollback point is "
                   "clean)")
    t1 = time.perf_counter()
    parent = discovery.target_table or names.OLD_TABLE
    horizon = read_horizon(settings, discovery.schema, parent)
    scan = orphans.scan(settings, report=report, cancel=cancel, journal=journal)
    blocking = orphans.blocking_orphans(scan, plan)
    if blocking and opts.delete_orphans is not None:
        if opts.orphan_export is None:
            raise WindowRefused("deleting orphans needs a folder to export them to first")
        exported = orphans.export(settings, scan, opts.orphan_export, report=report,
                                  cancel=cancel, journal=journal)
        horizon = read_horizon(settings, discovery.schema, parent)
        scan = orphans.delete(settings, scan, exported, opts.delete_orphans, report=report,
                              cancel=cancel, journal=journal)
        blocking = orphans.blocking_orphans(scan, plan)
    out.timings["orphans"] = _since(t1)
    out.orphans = scan.total
    if blocking:
        raise WindowRefused("orphan rows stop the migration: " + "; ".join(blocking))
    watched = watched_columns(plan, discovery.schema)
    out.watched = [{**asdict(w), "label": w.label} for w in watched]
    out.horizon = horizon.to_dict()
    report("step", "prepare 3/5: backup" + (" and its proof by a restore" if opts.prove
                                            else ""))
    t1 = time.perf_counter()
    made = backup(settings, opts.backup, report=report, cancel=cancel, journal=journal)
    out.timings["backup"] = _since(t1)
    if not made.verified:
        raise WindowRefused(f"backup: {made.error}")
    snapshot_at = str((made.snapshot or {}).get("taken_at") or _backup_started(journal))
    out.backup = {"path": made.path, "sha256": made.sha256, "size_bytes": made.size_bytes,
                  "snapshot_at": snapshot_at, "proven": None}
    if opts.prove:
        t1 = time.perf_counter()
        proof = prove(settings, made.path, opts.proof, report=report, cancel=cancel,
                      journal=journal)
        out.timings["proof"] = _since(t1)
        out.backup["proven"] = proof.proven
        out.backup["proof"] = proof.summary()
        if not proof.proven:
            raise WindowRefused(f"the backup's proof failed: {proof.reason}")
    if opts.rehearse:
        report("step", "prepare 4/5: rehearsal of the migration (rolled back)")
        t1 = time.perf_counter()
        _plan, rehearsal, _j = jobs.run(settings, UP, options=RunOptions(rehearse=True),
                                        report=report, cancel=cancel, journal=journal,
                                        plan=plan)
        out.timings["rehearsal"] = _since(t1)
        if not rehearsal.ok:
            raise WindowRefused(f"the rehearsal failed: {rehearsal.error}")
        out.blocked_ms = rehearsal.blocked_ms
    out.digest = plan.digest
    if redis is not None:
        report("step", "prepare 5/5: Redis dry run (reads only)")
        t1 = time.perf_counter()
        dry = redis_migrate.dry_run(redis, rules, report=report, cancel=cancel,
                                    journal=journal)
        out.timings["redis_dry_run"] = _since(t1)
        out.redis = {"target": dry.target, "keys": sum(r.keys for r in dry.rules)}


def _backup_started(journal: Journal) -> str:
    started = journal.events("backup_started")
    return str(started[-1].get("ts", "")) if started else ""


# --- the window ------------------------------------------------------------------------


def newest_prepared(settings: PgSettings) -> tuple[Journal, dict[str, Any]] | None:
    """The newest ready prepare phase of this database, with its journal."""
    best: tuple[Journal, dict[str, Any]] | None = None
    for journal in runs_for(settings):
        for event in journal.events("phase_prepared"):
            if event.get("ok") and (best is None or str(event.get("ts")) > str(best[1]["ts"])):
                best = (journal, event)
    return best


@dataclass
class WindowOptions:
    stop_command: str | None = None
    start_command: str | None = None
    app_stopped: bool = False  # the DBA says the application is stopped (no stop command)
    smoke: SmokeSettings | None = None
    run: RunOptions = field(default_factory=RunOptions)
    smoke_wait_s: float = SMOKE_WAIT_S


def window(settings: PgSettings, redis: RedisSettings | None = None,
           rules: tuple[Rule, ...] | list[Rule] = DEFAULT_RULES, *,
           options: WindowOptions, report: Report = no_report,
           cancel: threading.Event | None = None,
           journal: Journal | None = None) -> WindowResult:
    """Stop, re-check, migrate, Redis, verify, start, smoke check. Raises WindowRefused,
    before anything is stopped, without a ready prepare phase or a way to stop."""
    found = newest_prepared(settings)
    if found is None:
        raise WindowRefused(f"no ready prepare phase of {settings.describe()} in the run "
                            "journals: run the prepare phase first (it takes the backup and "
                            "scans while the application runs)")
    if not options.stop_command and not options.app_stopped:
        raise WindowRefused("the window needs the application stopped: give the profile's "
                            "stop command, or stop it yourself and say so (--app-stopped)")
    prepared_journal, prepared = found
    try:  # what the guard would refuse after the stop is refused before it
        jobs.usable_backup(settings, prepared_journal, jobs.Guard(check_orphans=False))
    except jobs.GuardRefused as exc:
        taken = (prepared.get("backup") or {}).get("path")
        raise WindowRefused(f"{exc} (the prepare phase of {prepared.get('ts')} took "
                            f"{taken})") from None
    journal = journal or Journal.create(settings, WINDOW)
    out = WindowResult(False, settings.dbname, journal=str(journal.folder))
    t0 = time.perf_counter()
    try:
        _window(settings, redis, rules, options, report, cancel, journal, out,
                prepared_journal, prepared, t0)
    except (WindowRefused, PlanRefused) as exc:
        out.error = str(exc)
        report("error", out.error)
    out.timings["window"] = _since(t0)
    return out


def _stop(options: WindowOptions, report: Report, cancel: threading.Event | None,
          journal: Journal) -> str:
    if options.stop_command:
        stopped = run_app_command("stop", options.stop_command, report=report, cancel=cancel)
        journal.record(AppCommandRan("stop", options.stop_command, stopped.ok, stopped.detail))
        if not stopped.ok:
            raise WindowRefused(f"the stop command failed ({stopped.detail}); nothing was "
                                "changed. Check the application's state before trying again")
        return "stop command"
    return "confirmed by the operator"


def _window(settings: PgSettings, redis: RedisSettings | None, rules: Any,
            opts: WindowOptions, report: Report, cancel: threading.Event | None,
            journal: Journal, out: WindowResult, prepared_journal: Journal,
            prepared: dict[str, Any], t0: float) -> None:
    report("step", "window 1/7: stopping the application")
    out.stopped_how = _stop(opts, report, cancel, journal)
    stopped = time.perf_counter()
    now = _now()
    out.stopped_at = now.isoformat()
    snapshot = str((prepared.get("backup") or {}).get("snapshot_at") or "")
    if snapshot:
        out.writes_at_risk_s = round((now - datetime.fromisoformat(snapshot)).total_seconds(), 1)
    journal.record(WindowOpened(out.stopped_how, str(prepared_journal.folder),
                                out.writes_at_risk_s))
    report("info", f"downtime starts: the application is stopped ({out.stopped_how})")
    # The rollback point is hashed again (the guard's check that it is the verified file)
    # on a thread of its own while the re-check reads the database.
    hashing = _Hashing(str((prepared.get("backup") or {}).get("path") or ""))
    try:
        plan = _recheck(settings, prepared, report, journal, out)
        report("step", "window 3/7: migration")
        t1 = time.perf_counter()
        _plan, run, _j = jobs.run(settings, UP, options=opts.run, report=report, cancel=cancel,
                                  journal=journal, plan=plan,
                                  guard=jobs.Guard(check_orphans=False,
                                                   hashed=hashing.result()))
        out.timings["migrate"] = _since(t1)
        out.run = _run_summary(run)
        if not run.ok:
            raise WindowRefused(f"the migration did not succeed: {run.error}")
    except (WindowRefused, PlanRefused) as exc:
        hashing.result()  # joined: no thread outlives the window
        out.next_steps.append("the application is still stopped and the schema is as before "
                              "(state pre): start the version that reads prosumer, or fix "
                              "the cause and open the window again")
        _close(journal, out, False, stopped, f"not migrated: {exc}")
        raise
    if redis is not None:
        report("step", "window 4/7: Redis migration")
        t1 = time.perf_counter()
        try:
            moved = redis_migrate.migrate(redis, rules, report=report, cancel=cancel,
                                          journal=journal)
        except RedisUnavailable as exc:
            out.error = f"the Redis migration failed: {exc}"
            out.next_steps.append("the schema is migrated and the application still stopped: "
                                  "run the Redis step again (it finishes what is left), then "
                                  "start the application")
            _close(journal, out, False, stopped, out.error)
            return
        out.timings["redis"] = _since(t1)
        out.redis_changed = moved.changed
    # What must hold before the application reads the new names: the migration's own
    # checks after COMMIT (catalog, row counts, every key validated: no orphan can remain)
    # passed, or the run would not be ok; Redis is checked against its dry run here. The
    # whole checklist (its full orphan scan reads every row) runs once the application is
    # up again: it only reads, and it is journaled for the report like the Verify page's.
    report("step", "window 5/7: checks after the migration (Redis against its dry run)")
    t1 = time.perf_counter()
    checks = redis_checks(redis, settings, list(rules), cancel) if redis is not None else []
    out.timings["checks"] = _since(t1)
    failed = [c for c in checks if c.status == FAIL]
    if failed:
        out.checks = [c.to_dict() for c in checks]
        out.error = "checks failed: " + "; ".join(f"{c.title}: {c.detail}" for c in failed)
        out.next_steps.append("the application is still stopped: read the failed checks; "
                              "revert (no data lost) or fix, then start it")
        _close(journal, out, False, stopped, out.error)
        return
    _start(opts, report, cancel, journal, out, stopped)
    if opts.smoke is not None and out.started_at:
        report("step", "window 7/7: login smoke check")
        smoke = _smoke(opts.smoke, opts.smoke_wait_s, cancel)
        out.smoke = smoke.to_dict()
        if smoke.status == FAIL:
            out.error = f"the login smoke check failed: {smoke.detail}"
            out.next_steps.append("the application runs on the migrated schema but its "
                                  "login failed: check its log; revert loses no data")
    report("step", "after the window: the whole checklist, the application up (reads only)")
    t1 = time.perf_counter()
    full = checklist.final_checklist(settings, redis, rules=list(rules), report=report,
                                     journal=journal)
    out.timings["checklist_after_start"] = _since(t1)
    out.checks = [c.to_dict() for c in full]
    failed = [c for c in full if c.status == FAIL and c.id != SMOKE_ID]
    if failed and out.error is None:
        out.error = "checks failed after the start: " + "; ".join(
            f"{c.title}: {c.detail}" for c in failed)
        out.next_steps.append("read the failed checks; revert loses no data")
    out.ok = out.error is None


def _recheck(settings: PgSettings, prepared: dict[str, Any], report: Report,
             journal: Journal, out: WindowResult) -> Plan:
    """The plan's digest and the orphans since the scan: refuse on any change."""
    report("step", "window 2/7: re-check since the prepare phase (plan digest, new orphans)")
    t1 = time.perf_counter()
    discovery = jobs.inspect(settings)
    plan = jobs.make_plan(discovery, UP, settings)
    equal = plan.digest == prepared.get("digest")
    watched = [Watched(w["schema"], w["table"], w["column"], w["parent_key"])
               for w in prepared.get("watched") or []]
    horizon = Horizon(**prepared["horizon"]) if prepared.get("horizon") else None
    found = (recheck(settings, watched, horizon, discovery.target_table or names.OLD_TABLE)
             if equal else Recheck(0))
    seconds = _since(t1)
    out.timings["recheck"] = seconds
    reason = ""
    if not equal:
        reason = (f"the plan's digest is now {plan.digest[:16]}, the prepare phase's was "
                  f"{str(prepared.get('digest'))[:16]}: the catalog changed since; prepare "
                  f"again")
    elif not found.clean:
        reason = (f"{found.orphans} orphan row(s) written since the prepare phase's scan: "
                  + ", ".join(f"{c['label']} {c['orphans']}" for c in found.columns
                              if c["orphans"]) + "; export and delete them, then open the "
                  "window again")
    out.recheck = {"digest_equal": equal, "orphans": found.orphans, "columns": found.columns,
                   "seconds": seconds, "full_reason": found.full_reason}
    journal.record(WindowRechecked(not reason, equal, found.orphans, found.columns, seconds,
                                   reason or found.full_reason))
    if found.full_reason and equal:
        report("info", f"orphan re-check read whole columns: {found.full_reason}")
    report("info", f"re-check in {seconds:.2f} s: digest "
                   f"{'unchanged' if equal else 'CHANGED'}, {found.orphans} new orphan rows "
                   f"in {len(watched)} column(s)")
    if reason:
        raise WindowRefused(reason)
    return plan


class _Hashing:
    """sha256 of a backup on a thread; result() waits and gives the guard's `hashed`."""

    def __init__(self, path: str) -> None:
        self.path, self._found, self._seconds = path, "", 0.0
        self._thread = threading.Thread(target=self._hash, name="window-hash", daemon=True)
        if path:
            self._thread.start()

    def _hash(self) -> None:
        t0 = time.perf_counter()
        try:
            self._found = archive_sha256(Path(self.path))
        except OSError:
            return  # the guard hashes it itself and says what is wrong
        self._seconds = _since(t0)

    def result(self) -> dict[str, tuple[str, float]]:
        if not self.path:
            return {}
        self._thread.join()
        return {self.path: (self._found, self._seconds)} if self._found else {}


def _run_summary(run: RunResult) -> dict[str, Any]:
    return {"ok": run.ok, "blocked_ms": run.blocked_ms, "total_s": run.total_s,
            "state_after": run.state_after, "error": run.error}


def _start(opts: WindowOptions, report: Report, cancel: threading.Event | None,
           journal: Journal, out: WindowResult, stopped: float) -> None:
    report("step", "window 6/7: starting the application")
    if not opts.start_command:
        out.next_steps.append("start the application now (no start command in the profile): "
                              "the downtime ends when it answers")
        _close(journal, out, True, stopped, "migrated; no start command: the operator starts "
                                            "the application")
        return
    started = run_app_command("start", opts.start_command, report=report, cancel=cancel)
    journal.record(AppCommandRan("start", opts.start_command, started.ok, started.detail))
    if not started.ok:
        out.error = f"the start command failed: {started.detail}"
        out.next_steps.append("the schema is migrated; start the application by hand")
        _close(journal, out, False, stopped, out.error)
        return
    out.started_at = _now().isoformat()
    _close(journal, out, True, stopped, "migrated; the application started again", True)


def _close(journal: Journal, out: WindowResult, ok: bool, stopped: float, detail: str,
           started: bool = False) -> None:
    out.downtime_s = round(time.perf_counter() - stopped, 3) if started else None
    journal.record(WindowClosed(ok, started, out.downtime_s, detail))


def _smoke(settings: SmokeSettings, wait_s: float, cancel: threading.Event | None) -> Check:
    """The login check, tried again while the application is still starting."""
    deadline = time.monotonic() + wait_s
    while True:
        check = login_check(settings)
        if check.status != FAIL or time.monotonic() > deadline or (
                cancel is not None and cancel.is_set()):
            return check
        time.sleep(1.0)


# --- the wizard's window: its Run migration stops first, its Verify page starts ---------


def _snapshot_of_newest_backup(journal: Journal) -> str:
    """When the newest verified backup's snapshot was taken (else when it started)."""
    for event in reversed(journal.events("backup")):
        if event.get("verified"):
            snapshot = event.get("snapshot") or {}
            return str(snapshot.get("taken_at") or event.get("ts") or "")
    return ""


def _backup_ready(settings: PgSettings, journal: Journal, guard: jobs.Guard) -> None:
    """Refuse before the stop what the guard would refuse after it: no verified backup
    and no typed decision to go without one (the guard still checks everything else)."""
    if guard.without_backup is not None or journal.events("backup_skipped"):
        return
    try:
        jobs.usable_backup(settings, journal, guard)
    except jobs.GuardRefused as exc:
        raise WindowRefused(f"{exc}; the application was not stopped and nothing was "
                            "changed") from None


def stop_then_run(settings: PgSettings, plan: Plan, *, stop_command: str | None,
                  options: RunOptions, journal: Journal, guard: jobs.Guard,
                  report: Report = no_report, cancel: threading.Event | None = None,
                  events: Any = None) -> tuple[Plan, RunResult, Journal]:
    """The wizard's Run migration: with a stop command, the window opens first (the stop,
    then the orphan re-check of the columns the plan adds a key on, whole columns: the
    wizard's scan kept no horizon), then the migration of the plan on screen (which itself
    refuses a catalog changed since it was shown). Without one the migration runs alone."""
    if stop_command:
        _backup_ready(settings, journal, guard)  # before the stop, not after it
        report("step", "stopping the application: the window opens")
        _stop(WindowOptions(stop_command=stop_command), report, cancel, journal)
        risk = None
        snapshot = _snapshot_of_newest_backup(journal)
        if snapshot:
            risk = round((_now() - datetime.fromisoformat(snapshot)).total_seconds(), 1)
        journal.record(WindowOpened("stop command", str(journal.folder), risk))
        report("info", "downtime starts: the application is stopped (stop command)"
                       + (f"; a restore of the backup would lose {risk:g} s of writes"
                          if risk is not None else ""))
        out = WindowResult(False, settings.dbname)
        try:
            _recheck(settings, {"digest": plan.digest,
                                "watched": [asdict(w) for w in
                                            watched_columns(plan, plan.source.schema
                                                            if plan.source else "public")]},
                     report, journal, out)
        except WindowRefused as exc:
            raise WindowRefused(f"{exc}. The application is still stopped and nothing was "
                                "changed: start it again (Pre-flight page) or fix this and "
                                "run again") from None
    return jobs.run(settings, UP, options=options, report=report, cancel=cancel,
                    journal=journal, plan=plan, guard=guard, events=events)


def start_after_window(command: str, *, journal: Journal, report: Report = no_report,
                       cancel: threading.Event | None = None) -> WindowClosed:
    """The start command once the checks passed; the window closes with its downtime (from
    this journal's window_opened, when it has one)."""
    started = run_app_command("start", command, report=report, cancel=cancel)
    journal.record(AppCommandRan("start", command, started.ok, started.detail))
    opened = journal.events("window_opened")
    downtime = None
    if started.ok and opened:
        at = datetime.fromisoformat(str(opened[-1]["ts"]))
        downtime = round((_now() - at).total_seconds(), 3)
    closed = WindowClosed(started.ok, started.ok, downtime,
                          "the application started again" if started.ok
                          else f"the start command failed: {started.detail}")
    if opened:
        journal.record(closed)
    return closed
