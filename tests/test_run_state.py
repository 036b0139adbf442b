"""The run at a glance from journal events (wizard.core.run_state): no server, no Qt."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from wizard.core import run_state as rs
from wizard.core.connection import PgSettings
from wizard.core.events import (
    BackupCancelled,
    BackupDone,
    BackupProofStarted,
    BackupProven,
    BackupSkipped,
    BackupStarted,
    CacheSkipped,
    CacheUnavailable,
    LockTimedOut,
    OrphanScanned,
    PlanMade,
    PlanShown,
    PreflightDone,
    RedisMigrated,
    Refused,
    ReportExported,
    RestoreFinished,
    RestorePrepared,
    RunFinished,
    Verified,
)
from wizard.core.journal import Journal

PG = PgSettings("db.example", 5433, "enerlink prod", "owner")
SHA = "ab" * 32


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal.create(PG, "wizard", root=tmp_path / "runs")


def state(journal: Journal, step: str, spans: tuple[rs.JobSpan, ...] = (),
          **kwargs: Any) -> rs.StepState:
    found = rs.step_states(journal.events(), spans, **kwargs)
    return next(s for s in found if s.step == step)


def ts(journal: Journal, event: str) -> Any:
    stamp = rs.when(journal.events(event)[-1])
    assert stamp is not None
    return stamp


def run_result(*, ok: bool = True, rehearsal: bool = False, direction: str = "up",
               before: str = "pre", after: str = "migrated", commit: str = "committed",
               blocked_ms: float | None = 4.2, total_s: float = 1.5,
               error: str | None = None) -> dict[str, Any]:
    return {"ok": ok, "rehearsal": rehearsal, "direction": direction, "state_before": before,
            "state_after": after if commit == "committed" else "", "blocked_ms": blocked_ms,
            "total_s": total_s, "commit": "" if rehearsal else commit, "error": error,
            "steps": [{}]}


def backup_done(path: str = "/b/enerlink.dump", sha: str = SHA,
                verified: bool = True) -> BackupDone:
    return BackupDone({"verified": verified, "path": path, "sha256": sha, "duration_s": 2.0,
                       "error": None if verified else "pg_dump: error: permission denied"})


def test_a_new_run_has_every_step_to_do_in_the_pages_order() -> None:
    states = rs.step_states([])
    assert [s.title for s in states] == ["Connect", "Pre-flight", "Backup", "Orphans",
                                         "Migrate", "Redis", "Verify"]
    assert {s.status for s in states} == {rs.TODO}
    assert not rs.has_happened([])


def test_connect_is_done_once_the_run_began(journal: Journal) -> None:
    connect = state(journal, "connect")
    assert connect.status == rs.DONE
    assert connect.reason == "as owner to db.example:5433/enerlink prod"
    assert not rs.has_happened(journal.events())  # only run_started: nothing happened yet


def test_preflight_done_or_failed_with_what_blocks(journal: Journal) -> None:
    journal.record(PreflightDone({"state": "pre", "checks": [
        {"title": "Role owns the tables", "status": "pass"}]}))
    assert state(journal, "preflight").status == rs.DONE
    assert "state pre" in state(journal, "preflight").reason
    assert rs.has_happened(journal.events())
    journal.record(PreflightDone({"state": "pre", "checks": [
        {"title": "Free disk for the backup", "status": "fail"}]}))
    failed = state(journal, "preflight")
    assert failed.status == rs.FAILED
    assert failed.reason == "1 blocking: Free disk for the backup"


def test_backup_done_with_its_duration_then_proven(journal: Journal) -> None:
    journal.record(BackupStarted("/b/enerlink.dump", "custom", "gzip:1", 1, {}, {}, None, None))
    journal.record(backup_done())
    done = state(journal, "backup")
    assert done.status == rs.DONE
    assert done.started == ts(journal, "backup_started")
    assert done.ended == ts(journal, "backup")
    assert done.seconds() is not None
    assert done.reason == "verified: enerlink.dump"
    journal.record(BackupProofStarted("/b/enerlink.dump", SHA, "x_proof", 2, "snapshot"))
    assert "proving" in state(journal, "backup").reason
    journal.record(BackupProven({"proven": True, "sha256": SHA, "path": "/b/enerlink.dump"}))
    proven = state(journal, "backup")
    assert proven.status == rs.DONE
    assert proven.reason == "verified: enerlink.dump; PROVEN by a restore"
    assert proven.ended == ts(journal, "backup_proven")


def test_backup_failed_proof_not_verified_cancelled_and_skipped(journal: Journal) -> None:
    journal.record(backup_done())
    journal.record(BackupProven({"proven": False, "sha256": SHA,
                                 "reason": "index prosumer_mail_key did not build"}))
    failed = state(journal, "backup")
    assert failed.status == rs.FAILED
    assert "proof FAILED: index prosumer_mail_key did not build" in failed.reason
    journal.record(backup_done(verified=False))
    assert state(journal, "backup").reason == "not verified: pg_dump: error: permission denied"
    journal.record(BackupCancelled("/b/x.dump", True))
    cancelled = state(journal, "backup")
    assert cancelled.status == rs.TODO
    assert "the partial file was removed" in cancelled.reason
    journal.record(BackupSkipped("enerlink prod", "typed confirmation in the wizard", "dana",
                                 "2025-11-02T10:00:00+00:00"))
    skipped = state(journal, "backup")
    assert skipped.status == rs.SKIPPED
    assert skipped.reason == ("backup skipped by typed name (dana, "
                              "2025-11-02T10:00:00+00:00)")


def test_orphans_clean_blocking_or_harmless(journal: Journal) -> None:
    journal.record(OrphanScanned({"total": 0, "columns": [], "state": "pre"}))
    assert state(journal, "orphans").reason == "no orphan rows"
    journal.record(OrphanScanned({"total": 3, "columns": [{"count": 3}], "state": "pre"}))
    assert state(journal, "orphans", orphans_blocking=["wallet.prosumer_id: 3"]).status == \
        rs.FAILED
    harmless = state(journal, "orphans", orphans_blocking=[])
    assert harmless.status == rs.DONE
    assert harmless.reason == "3 orphan rows in 1 column(s); they do not stop this plan"


def plan(journal: Journal, digest: str = "d" * 64) -> None:
    journal.record(PlanMade({"direction": "up", "state": "pre", "digest": digest}))


def test_migrate_from_plan_to_rehearsal_to_run_to_revert(journal: Journal) -> None:
    journal.record(PlanShown("pre", 21, 20, 1, "d" * 64))
    ready = state(journal, "migrate")
    assert ready.status == rs.TODO
    assert ready.reason == "plan ready: 20 steps, digest dddddddddddd"
    plan(journal)
    journal.record(RunFinished(run_result(rehearsal=True, blocked_ms=17.1)))
    rehearsed = state(journal, "migrate")
    assert rehearsed.status == rs.TODO
    assert "rehearsed ✔" in rehearsed.reason
    assert "would block ≈ 17.1 ms" in rehearsed.reason
    plan(journal)
    journal.record(RunFinished(run_result(total_s=1.5)))
    done = state(journal, "migrate")
    assert done.status == rs.DONE
    assert done.reason == "migrated, state pre → migrated; blocked 4.2 ms"
    assert done.seconds() == pytest.approx(1.5, abs=0.01)  # from the run's own total
    assert rs.migrated_at(journal.events()) == ts(journal, "run_finished")
    journal.record(PlanShown("migrated", 0, 0, 0, "e" * 64))  # planned again: nothing to do
    assert state(journal, "migrate").status == rs.DONE
    journal.record(RunFinished(run_result(direction="down", before="migrated", after="pre")))
    reverted = state(journal, "migrate")
    assert reverted.status == rs.TODO
    assert reverted.reason.startswith("reverted at ")
    assert rs.migrated_at(journal.events()) is None


def test_migrate_failed_refused_skipped(journal: Journal) -> None:
    plan(journal)
    journal.record(RunFinished(run_result(ok=False, commit="", error="lock timeout")))
    failed = state(journal, "migrate")
    assert failed.status == rs.FAILED
    assert failed.reason == "rolled back, the schema is unchanged: lock timeout"
    journal.record(Refused("no verified backup of owner@db.example:5433/enerlink prod"))
    assert state(journal, "migrate").reason.startswith("refused: no verified backup")
    journal.record(RunFinished(run_result(ok=False, error="check failed after commit")))
    assert state(journal, "migrate").reason.startswith("committed, but a check after commit")


def test_migrate_already_migrated_is_skipped(journal: Journal) -> None:
    journal.record(PlanShown("migrated", 0, 0, 0, "e" * 64))
    skipped = state(journal, "migrate")
    assert skipped.status == rs.SKIPPED
    assert skipped.reason == ("nothing to do: the database was already migrated when the "
                              "plan was read")


def test_a_restore_undoes_the_migration(journal: Journal) -> None:
    plan(journal)
    journal.record(RunFinished(run_result()))
    journal.record(RestorePrepared({"inspection": {"state": "pre"}}))
    journal.record(RestoreFinished({"ok": True}))
    restored = state(journal, "migrate")
    assert restored.status == rs.TODO
    assert "restored from a backup" in restored.reason
    facts = rs.key_facts(journal.events())
    assert (facts.state, facts.state_source) == ("pre", "the restore from a backup")


def test_redis_skipped_without_redis_done_failed(journal: Journal) -> None:
    none = state(journal, "redis", redis_configured=False)
    assert none.status == rs.SKIPPED
    assert none.reason == "no Redis configured in this profile"
    journal.record(CacheUnavailable("redis://r:6379/0", "connection refused"))
    assert state(journal, "redis").reason == "Redis unreachable: connection refused"
    journal.record(RedisMigrated("redis://r:6379/0", "up", [], {"changed": 80, "seconds": 0.5},
                                 "ok"))
    done = state(journal, "redis")
    assert done.status == rs.DONE
    assert done.reason == "80 keys changed"
    journal.record(CacheSkipped("redis://r:6379/0", "operator skipped the Redis step"))
    assert state(journal, "redis").status == rs.SKIPPED


def test_verify_and_the_report(journal: Journal) -> None:
    journal.record(Verified([{"title": "Row counts equal", "status": "fail"},
                             {"title": "user exists", "status": "pass"}]))
    failed = state(journal, "verify")
    assert failed.status == rs.FAILED
    assert failed.reason.startswith("1 check(s) failed: Row counts equal")
    concerns = rs.finish_concerns(journal.events())
    assert concerns == ["1 check(s) failed: Row counts equal", "no PDF report was exported"]
    journal.record(Verified([{"title": "user exists", "status": "pass"}]))
    journal.record(ReportExported("json", "/r.json"))
    assert rs.finish_concerns(journal.events()) == ["no PDF report was exported (only JSON)"]
    journal.record(ReportExported("pdf", "/r.pdf", 4))
    assert rs.finish_concerns(journal.events()) == []
    assert state(journal, "verify").reason == ("1 checks passed; JSON report exported; PDF "
                                               "report exported")


def test_spans_say_running_failed_and_how_long(journal: Journal) -> None:
    start = rs.now_utc() - timedelta(seconds=30)
    running = state(journal, "preflight", (rs.JobSpan("preflight", "Pre-flight checks", start),))
    assert running.status == rs.RUNNING
    assert running.job == "Pre-flight checks"
    assert running.line(start + timedelta(seconds=42.7)) == "running 42 s"
    journal.record(PreflightDone({"state": "pre", "checks": []}))
    end = rs.now_utc() + timedelta(seconds=1)
    done = state(journal, "preflight", (rs.JobSpan("preflight", "Pre-flight checks", start,
                                                   end),))
    assert done.status == rs.DONE
    assert done.started == start  # the job's start: the journal has none for pre-flight
    assert done.ended == ts(journal, "preflight")
    # A later job that failed without the journal saying anything newer: the page's error.
    later = rs.now_utc() + timedelta(seconds=5)
    failed = state(journal, "preflight", (
        rs.JobSpan("preflight", "Pre-flight checks", start, end),
        rs.JobSpan("preflight", "Listing sessions", later, later, "connection refused")))
    assert failed.status == rs.FAILED
    assert failed.reason == "Listing sessions: connection refused"


def test_a_failed_job_whose_journal_says_more_reads_the_journal(journal: Journal) -> None:
    start = rs.now_utc() - timedelta(seconds=2)
    plan(journal)
    journal.record(RunFinished(run_result(ok=False, commit="", error="lock timeout")))
    failed = state(journal, "migrate", (rs.JobSpan("migrate", "Migration", start,
                                                   rs.now_utc(), "lock timeout"),))
    assert failed.reason == "rolled back, the schema is unchanged: lock timeout"


def test_key_facts(journal: Journal, tmp_path: Path) -> None:
    facts = rs.key_facts(journal.events())
    assert facts.database == "db.example:5433/enerlink prod"
    assert facts.state_words == "not read yet"
    assert facts.rollback is None
    journal.record(PreflightDone({"state": "partial", "checks": []}))
    facts = rs.key_facts(journal.events())
    assert facts.state_words == "half (some renames done)"
    assert facts.state_source == "pre-flight"
    journal.record(backup_done())
    rollback = rs.key_facts(journal.events()).rollback
    assert rollback is not None
    assert rollback.proven is None
    assert rollback.describe() == f"/b/enerlink.dump (sha256 {SHA[:12]}…, not proven)"
    # A proof of another file does not make this one proven.
    journal.record(BackupProven({"proven": True, "sha256": "cd" * 32}))
    assert rs.key_facts(journal.events()).rollback.proven is None  # type: ignore[union-attr]
    journal.record(BackupProven({"proven": True, "sha256": SHA}))
    assert rs.key_facts(journal.events()).rollback.proven is True  # type: ignore[union-attr]
    journal.record(LockTimedOut(1, "[3/20] wallet", [
        {"pid": 4242, "application_name": "nest-app", "mode": "AccessShareLock",
         "relation": "wallet"}]))
    journal.record(LockTimedOut(2, "[3/20] wallet", []))
    facts = rs.key_facts(journal.events())
    assert facts.lock_waits == 2
    assert facts.blockers == ()
    plan(journal)
    journal.record(RunFinished(run_result()))
    assert rs.key_facts(journal.events()).state == "migrated"
    journal.record(RunFinished(run_result(rehearsal=True, direction="down", before="migrated",
                                          after="pre")))
    assert rs.key_facts(journal.events()).state == "migrated"  # a rehearsal changes nothing
    journal.record(BackupSkipped("enerlink prod", "typed", "dana", "10:00"))
    skipped = rs.key_facts(journal.events()).rollback
    assert skipped is not None
    assert skipped.describe() == "none: backup skipped by typed name (dana, 10:00)"


def test_the_blockers_are_named(journal: Journal) -> None:
    journal.record(LockTimedOut(1, "[3/20] wallet", [
        {"pid": 4242, "application_name": "nest-app", "mode": "AccessShareLock",
         "relation": "wallet"}]))
    assert rs.key_facts(journal.events()).blockers == (
        "pid 4242 nest-app (AccessShareLock on wallet)",)


def test_rehearsal_of_the_same_digest_only(journal: Journal) -> None:
    plan(journal, "a" * 64)
    journal.record(RunFinished(run_result(rehearsal=True, blocked_ms=3.0)))
    plan(journal, "b" * 64)
    journal.record(RunFinished(run_result(rehearsal=True, ok=False, error="check failed")))
    plan(journal, "c" * 64)
    journal.record(RunFinished(run_result()))  # a real run is no rehearsal
    events = journal.events()
    found = rs.rehearsal_of(events, "a" * 64)
    assert found is not None
    assert found.blocked_ms == 3.0
    assert rs.rehearsal_of(events, "b" * 64) is None
    assert rs.rehearsal_of(events, "c" * 64) is None
    assert rs.rehearsal_of(events, "") is None
    assert [r.ok for r in rs.rehearsals(events)] == [True, False]


def test_other_records_are_this_databases_runs_since_the_session(
        journal: Journal, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    other_db = Journal.create(PG.with_dbname("other"), "restore", root=root)
    other_db.record(RestoreFinished({"ok": True}))
    restore = Journal.create(PG, "restore", root=root)
    restore.record(RestorePrepared({"inspection": {"state": "pre"}}))
    restore.record(RestoreFinished({"ok": True}))
    records = rs.other_records(journal, PG)
    assert [r["event"] for r in records] == ["run_started", "restore_prepared",
                                             "restore_finished"]
    facts = rs.key_facts(journal.events(), records)
    assert facts.state == "pre"


def test_rollback_point_counts_other_runs_backups_not_their_skips(journal: Journal,
                                                                   tmp_path: Path) -> None:
    earlier = Journal.create(PG, "backup", root=tmp_path / "elsewhere")
    earlier.record(backup_done("/old/enerlink.dump", "ef" * 32))
    earlier.record(BackupSkipped("enerlink prod", "typed", "someone", "yesterday"))
    point = rs.rollback_point(journal.events(), earlier.events())
    assert point is not None
    assert point.path == "/old/enerlink.dump"
    assert not point.skipped


def test_durations_read_as_a_dba_says_them() -> None:
    assert rs.duration_text(0.043) == "0.04 s"
    assert rs.duration_text(2.46) == "2.5 s"
    assert rs.duration_text(42.7, ticking=True) == "42 s"
    assert rs.duration_text(185) == "3 min 05 s"
    assert rs.duration_text(3720) == "1 h 02 min"
    assert rs.duration_text(None) == ""


def test_within_one_millisecond_the_journal_order_decides_the_rollback_point() -> None:
    """A fast machine writes a backup and a typed skip in the same millisecond: the one
    recorded later counts, as it does a millisecond apart."""
    ts = "2026-12-02T10:00:00.000+00:00"
    backup = {"ts": ts, "event": "backup", "verified": True, "sha256": SHA,
              "path": "/b/enerlink.dump"}
    skip = {"ts": ts, "event": "backup_skipped", "dbname": "db", "how": "typed",
            "who": "dana", "when": "10:00"}
    skipped = rs.rollback_point([backup, skip])
    assert skipped is not None
    assert skipped.skipped == "dana, 10:00"
    kept = rs.rollback_point([skip, dict(backup)])
    assert kept is not None
    assert kept.path == "/b/enerlink.dump"
