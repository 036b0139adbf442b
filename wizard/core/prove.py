"""The proof of a backup: restore it into a scratch copy on the same server and compare.

A backup is only as good as its restore. The proof restores the archive (pg_restore -j N)
into <db>_proof_<time>, the way a real restore would (same tablespace, properties, free
space check), compares every table's rows and the schema fingerprint with what pg_dump's
own snapshot held (backup_snapshot; the live database now when the backup did not record
it), rehearses the migration plan on the copy (timed, rolled back), drops the copy and
records the proof in the journal. The migrate guard shows "proven" next to the rollback
point, and refuses a backup whose proof failed unless the DBA types the database's name.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from wizard.core import jobs, restore
from wizard.core.backup_snapshot import table_counts
from wizard.core.catalog import PRE
from wizard.core.connection import PgSettings
from wizard.core.events import BackupProofStarted, BackupProven
from wizard.core.execute import RunOptions
from wizard.core.fingerprint import schema_fingerprint
from wizard.core.journal import Journal, runs_for
from wizard.core.plan import UP, PlanRefused
from wizard.core.reporting import Cancelled, Progress, Report, no_progress, no_report
from wizard.core.restore_db import drop_database
from wizard.core.restore_fk import harmless
from wizard.core.restore_inspect import journal_backup
from wizard.core.units import format_bytes

# Until a proof of this database has been measured: database bytes proven per second
# (restore, compare, rehearse; tests/bench/bench_proof.py measured 40-61 MB/s with 2 jobs
# on 2 loaded cores, median 50).
PRIOR_BYTES_PER_S = 50e6
# More pg_restore jobs than cores keeps both busy while one waits on a sort's temporary
# files (bench_proof.py at 1M users, 2 cores: -j 4 about 16 % faster than -j 2).
DEFAULT_JOBS = max(2, min(8, 2 * (os.cpu_count() or 1)))
# Sorts of the primary keys and foreign-key checks in memory, for the proof's sessions
# only (at most jobs x this on the server, for the minutes of the restore).
DEFAULT_MAINTENANCE_WORK_MEM = "256MB"
SNAPSHOT = "the dump's snapshot"
LIVE_NOW = "the live database now"


class ProofRefused(RuntimeError):
    """The proof cannot start (free space, privileges, the file); nothing was changed."""


@dataclass
class ProofOptions:
    jobs: int = DEFAULT_JOBS
    maintenance_work_mem: str | None = DEFAULT_MAINTENANCE_WORK_MEM
    rehearse: bool = True
    maintenance_db: str = "postgres"
    template: str = "template0"
    pg_restore: str | None = None
    accept_unknown_space: bool = False  # the server's free space could not be read


@dataclass
class ProofResult:
    proven: bool
    path: str
    sha256: str | None
    scratch_db: str
    compared_with: str
    restore_ok: bool = False
    counts_equal: bool | None = None
    count_diffs: list[str] = field(default_factory=list)
    tables: int = 0
    rows: int = 0
    fingerprint_equal: bool | None = None
    fingerprint_diffs: list[str] = field(default_factory=list)
    not_valid: list[dict[str, Any]] = field(default_factory=list)
    rehearsal: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    reason: str | None = None  # why it is not proven
    dropped: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    jobs: int = 2
    db_size_bytes: int = 0

    def summary(self) -> str:
        """One line: proven or not, and what that rests on."""
        if not self.proven:
            return f"NOT proven: {self.reason}"
        parts = [f"restored into a scratch copy in {self.timings.get('restore_s', 0):.1f} s",
                 f"{self.rows} rows in {self.tables} tables equal {self.compared_with}"
                 if self.compared_with == SNAPSHOT else
                 f"complete (row counts compared with {self.compared_with})"]
        if self.not_valid:
            parts.append(f"{len(self.not_valid)} foreign key(s) come back NOT VALID (the "
                         f"backup's orphans: {', '.join(k['name'] for k in self.not_valid)})")
        if self.rehearsal is not None:
            parts.append(rehearsal_text(self.rehearsal))
        return "proven: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary()}


def rehearsal_text(rehearsal: dict[str, Any]) -> str:
    if rehearsal.get("skipped"):
        return f"rehearsal skipped ({rehearsal['skipped']})"
    if rehearsal.get("ok"):
        blocked = rehearsal.get("blocked_ms")
        return (f"the migration rehearsed on the copy in {rehearsal.get('total_s', 0):.2f} s"
                + (f" (tables blocked {blocked:.0f} ms)" if blocked is not None else "")
                + ", rolled back")
    return f"the migration's rehearsal on the copy FAILED: {rehearsal.get('error')}"


def estimate_s(settings: PgSettings, size_bytes: int) -> tuple[float, str]:
    """How long a proof of a database this size will take: from the newest proof of this
    database measured here, else a prior."""
    for journal in sorted(runs_for(settings), key=lambda j: j.folder.name, reverse=True):
        for event in reversed(journal.events("backup_proven")):
            total = float(event.get("timings", {}).get("total_s") or 0)
            size = int(event.get("db_size_bytes") or 0)
            if total > 0 and size > 0:
                return (size_bytes * total / size,
                        f"from the proof of {format_bytes(size)} in {total:.1f} s")
    return size_bytes / PRIOR_BYTES_PER_S, "a first estimate (no proof measured here yet)"


def database_bytes(settings: PgSettings) -> int:
    """pg_database_size of the database: what estimate_s is given before a proof."""
    with settings.connect(autocommit=True) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


def _compare(conn: psycopg.Connection[Any], expected: dict[str, Any] | None,
             live: PgSettings, result: ProofResult) -> None:
    counts = table_counts(conn)
    lines = schema_fingerprint(conn)
    result.tables, result.rows = len(counts), sum(counts.values())
    if expected is not None:
        want_counts = {str(k): int(v) for k, v in expected["counts"].items()}
        want_lines = [str(x) for x in expected["fingerprint"]]
    else:
        with live.connect(autocommit=True) as lconn:
            want_counts, want_lines = table_counts(lconn), schema_fingerprint(lconn)
    diffs = [f"{t}: {counts.get(t, 'missing')} restored, {n} in {result.compared_with}"
             for t, n in sorted(want_counts.items()) if counts.get(t) != n]
    diffs += [f"{t}: in the copy, not in {result.compared_with}"
              for t in sorted(set(counts) - set(want_counts))]
    result.counts_equal, result.count_diffs = not diffs, diffs
    keys = [str(k["name"]) for k in result.not_valid]
    got, want = set(lines), set(want_lines)
    changed = sorted([f"- {x}" for x in want - got] + [f"+ {x}" for x in got - want])
    result.fingerprint_diffs = [d for d in changed if not any(k in d for k in keys)]
    result.fingerprint_equal = not result.fingerprint_diffs


def _rehearse(copy: PgSettings, opts: ProofOptions, report: Report,
              cancel: threading.Event | None, proof_journal: Journal) -> dict[str, Any]:
    """The migration rehearsed on the scratch copy. Its journal is kept inside the proof's
    run folder: it is part of the proof, and the list of runs (the wizard's Open a previous
    run, `enerlink-migrate runs`) shows the proof of the real database, not a rehearsal of
    a scratch copy that no longer exists."""
    if not opts.rehearse:
        return {"skipped": "not asked for"}
    d = jobs.inspect(copy)
    if d.state != PRE:
        return {"skipped": f"the backup's schema is in state {d.state}: nothing to migrate"}
    report("step", f"rehearsing the migration on {copy.dbname} (rolled back)")
    try:
        inner = Journal.create(copy, "rehearse-migrate", root=proof_journal.folder / "rehearsal")
        _plan, run, journal = jobs.run(copy, UP, options=RunOptions(rehearse=True),
                                       report=report, cancel=cancel, journal=inner)
    except PlanRefused as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": run.ok, "blocked_ms": run.blocked_ms, "total_s": run.total_s,
            "error": run.error, "failed_step": run.failed_step, "journal": str(journal.folder)}


def prove(settings: PgSettings, backup: str | Path, options: ProofOptions | None = None, *,
          report: Report = no_report, progress: Progress = no_progress,
          cancel: threading.Event | None = None,
          journal: Journal | None = None) -> ProofResult:
    """Restore `backup` into a scratch copy, compare, rehearse, drop the copy; record the
    proof (BackupProven) in `journal` (a new "prove" journal when None). Raises
    ProofRefused before anything changes; any later failure is a result that is not
    proven, with the reason, and the scratch copy dropped."""
    opts = options or ProofOptions()
    ropts = restore.RestoreOptions(jobs=opts.jobs, pg_restore=opts.pg_restore,
                                   maintenance_db=opts.maintenance_db, template=opts.template,
                                   check_counts=False, analyze=False,
                                   accept_unknown_space=opts.accept_unknown_space,
                                   maintenance_work_mem=opts.maintenance_work_mem)
    try:
        plan = restore.prepare(settings, backup, ropts, report=report, cancel=cancel,
                               proof=True)
    except restore.RestoreRefused as exc:
        raise ProofRefused(f"cannot prove {backup}: {exc}") from None
    space = [u for u in plan.unconfirmed() if u.kind == restore.SPACE]
    if space:
        raise ProofRefused(f"cannot prove {backup}: {space[0].message}")
    recorded = plan.inspection.journal_backup or {}
    # The inspection checked the file's sha256 against this record; its snapshot holds the
    # row counts and the fingerprint the dump saw.
    expected = (journal_backup(Path(plan.inspection.path)) or {}).get("snapshot") \
        if recorded else None
    journal = journal or Journal.create(settings, "prove")
    result = ProofResult(proven=False, path=plan.inspection.path,
                         sha256=plan.inspection.sha256 or recorded.get("sha256"),
                         scratch_db=plan.restore_db,
                         compared_with=SNAPSHOT if expected else LIVE_NOW, jobs=opts.jobs,
                         db_size_bytes=int(plan.live_props["size"]))
    journal.record(BackupProofStarted(result.path, str(result.sha256 or ""), plan.restore_db,
                                      opts.jobs, result.compared_with))
    seconds, basis = estimate_s(settings, result.db_size_bytes)
    report("step", f"proving {result.path}: restoring it into {plan.restore_db} on "
                   f"{settings.host}:{settings.port} with {opts.jobs} job(s)"
                   + (f" and maintenance_work_mem {opts.maintenance_work_mem}"
                      if opts.maintenance_work_mem else "")
                   + ", then comparing "
                   f"with {result.compared_with} (about {seconds:.0f} s, {basis})")
    if plan.space is not None:
        for line in plan.space.lines():
            report("info", line)
    for name in _leftovers(settings, opts, plan.restore_db):
        report("warn", f"{name} is the scratch copy of an earlier proof that did not finish "
                       f"(a killed run?): it takes space on the server; when no proof runs, "
                       f'drop it: DROP DATABASE "{name}";')
    t0 = time.perf_counter()
    created: list[bool] = []
    restored = restore.RestoreResult(ok=False, live_db=settings.dbname,
                                     restore_db=plan.restore_db)
    try:
        restore.restore_copy(plan, report, lambda f, d: progress(0.8 * f, d), cancel,
                             journal, restored, created)
        result.restore_ok = True
        result.not_valid = restored.not_valid
        result.timings["restore_s"] = restored.timings.get("restore_s", 0.0)
        result.warnings = restored.warnings
        _check_cancel(cancel)
        progress(0.82, f"comparing with {result.compared_with}")
        report("step", f"comparing every table's rows and the schema fingerprint of "
                       f"{plan.restore_db} with {result.compared_with}")
        t1 = time.perf_counter()
        copy = settings.with_dbname(plan.restore_db)
        with copy.connect(autocommit=True) as conn:
            _compare(conn, expected, settings, result)
        result.timings["compare_s"] = round(time.perf_counter() - t1, 3)
        _check_cancel(cancel)
        progress(0.9, "rehearsing the migration on the copy")
        t1 = time.perf_counter()
        result.rehearsal = _rehearse(copy, opts, report, cancel, journal)
        result.timings["rehearsal_s"] = round(time.perf_counter() - t1, 3)
        result.reason = _verdict(result)
        result.proven = result.reason is None
    except Cancelled as exc:
        result.reason = str(exc)
    except Exception as exc:  # the backup did not restore: that is the finding
        result.reason = restore.failure_text(plan, exc) + _first_error(restored)
    finally:
        if created:
            result.dropped = _drop(plan, report, result)
        result.timings["total_s"] = round(time.perf_counter() - t0, 3)
    progress(1.0, "proven" if result.proven else "not proven")
    journal.record(BackupProven(result.to_dict()))
    report("step" if result.proven else "error", f"{result.path}: {result.summary()}")
    return result


def _leftovers(settings: PgSettings, opts: ProofOptions, current: str) -> list[str]:
    """Scratch copies of earlier proofs of this database still on the server."""
    prefix = settings.dbname.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    try:
        with settings.with_dbname(opts.maintenance_db).connect(autocommit=True) as conn:
            rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s "
                                "ORDER BY 1", (prefix + "\\_proof\\_%",)).fetchall()
    except psycopg.Error:
        return []
    return [str(r[0]) for r in rows if r[0] != current]


def _first_error(restored: restore.RestoreResult) -> str:
    """pg_restore's first server error, which names the cause the checks only see the
    consequences of (a table's rows not loaded, then the keys that reference it)."""
    for line in restored.warnings:
        if "ERROR:" in line and not harmless(line):
            return "; pg_restore's first error: " + line.split("ERROR:", 1)[1].strip()
    return ""


def _verdict(result: ProofResult) -> str | None:
    """Why the proof fails, or None: the copy must equal what the dump's snapshot held."""
    if result.compared_with != SNAPSHOT:
        if result.count_diffs or result.fingerprint_diffs:
            result.warnings.append(
                f"the copy differs from {LIVE_NOW} (expected when it changed since the "
                f"backup; this backup recorded no snapshot to compare with): "
                + "; ".join((result.count_diffs + result.fingerprint_diffs)[:8]))
        return None
    problems = []
    if result.count_diffs:
        problems.append("row counts differ from the dump's snapshot: "
                        + "; ".join(result.count_diffs[:8]))
    if result.fingerprint_diffs:
        problems.append("the schema differs from the dump's snapshot: "
                        + "; ".join(result.fingerprint_diffs[:8]))
    return " | ".join(problems) or None


def _drop(plan: restore.RestorePlan, report: Report, result: ProofResult) -> bool:
    report("step", f"dropping the scratch copy {plan.restore_db}")
    maint = plan.settings.with_dbname(plan.options.maintenance_db)
    try:
        drop_database(maint, plan.restore_db, plan.server_major)
        return True
    except psycopg.Error as exc:
        text = (f"the scratch copy {plan.restore_db} could not be dropped "
                f"({str(exc).strip()}): drop it by hand: DROP DATABASE \"{plan.restore_db}\";")
        result.warnings.append(text)
        report("warn", text)
        return False


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("proof cancelled by the operator")
