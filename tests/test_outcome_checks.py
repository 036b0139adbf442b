"""The checks of a revert and of a restore (wizard.core.outcome_checks), on real PostgreSQL
and Redis: what Verify shows after an undo instead of the migration's checklist."""

from __future__ import annotations

from typing import Any

import redis

from wizard.core import jobs
from wizard.core.connection import PgSettings
from wizard.core.events import RestoreFinished, RunFinished
from wizard.core.journal import Journal
from wizard.core.outcome_checks import (
    MIGRATION,
    RESTORE,
    REVERT,
    last_outcome,
    outcome_checks,
    restore_checks,
    revert_checks,
)
from wizard.core.plan import UP
from wizard.core.recover import revert_then_align
from wizard.core.redis_conn import RedisSettings
from wizard.core.verify import FAIL, PASS, WARN
from wizard.sandbox.redis_seed import old_order_book_problems, renamed_order_book
from wizard.sandbox.servers import RedisServer


def finished(direction: str, ok: bool = True, steps: int = 1,
             rehearsal: bool = False) -> dict[str, Any]:
    return {"event": "run_finished", "result": {
        "direction": direction, "ok": ok, "rehearsal": rehearsal,
        "steps": [{"title": "x"}] * steps}}


def test_the_last_committed_change_decides_which_checks_run() -> None:
    up, down = finished("up"), finished("down")
    restored = {"event": "restore_finished", "result": {"ok": True}}
    assert last_outcome([]).kind == MIGRATION
    assert last_outcome([up]).kind == MIGRATION
    assert last_outcome([up, down]).kind == REVERT
    assert last_outcome([up, down]).index == 1
    assert last_outcome([up, down, restored]).kind == RESTORE
    assert last_outcome([up, restored, up]).kind == MIGRATION
    # A rehearsal, a failed revert, a revert with nothing to do, a failed restore: no change.
    assert last_outcome([up, finished("down", rehearsal=True)]).kind == MIGRATION
    assert last_outcome([up, finished("down", ok=False)]).kind == MIGRATION
    assert last_outcome([up, finished("down", steps=0)]).kind == MIGRATION
    assert last_outcome([up, {"event": "restore_finished",
                              "result": {"ok": False}}]).kind == MIGRATION
    assert "revert" in last_outcome([up, down]).heading


def test_after_a_revert_every_revert_check_passes(
        pg_db: PgSettings, redis_server: RedisServer, redis_client: redis.Redis) -> None:
    settings = RedisSettings(url=redis_server.url, password=redis_server.password, db=1)
    journal = Journal.create(pg_db, "wizard")
    _plan, result, _ = jobs.run(pg_db, UP, journal=journal)
    assert result.ok, result.error
    renamed_order_book(redis_client)
    outcome = revert_then_align(pg_db, settings, journal=journal)
    assert outcome.result.ok, outcome.result.error
    assert old_order_book_problems(redis_client) == []
    checks = outcome_checks(pg_db, journal)
    statuses = {c.id: c.status for c in checks}
    assert statuses == {"revert_state_pre": PASS, "revert_fingerprint": PASS,
                        "revert_no_migration_row": PASS, "redis_outcome": WARN}
    redis_check = next(c for c in checks if c.id == "redis_outcome")
    assert f"{outcome.redis.changed} keys changed" in redis_check.detail  # type: ignore[union-attr]
    # Written to the journal like the migration's checklist.
    assert journal.events("verification")[-1]["checks"] == [c.to_dict() for c in checks]


def test_a_schema_changed_since_the_migration_fails_the_revert_fingerprint(
        pg_db: PgSettings) -> None:
    journal = Journal.create(pg_db, "wizard")
    _plan, result, _ = jobs.run(pg_db, UP, journal=journal)
    assert result.ok, result.error
    outcome = revert_then_align(pg_db, None, journal=journal)
    assert outcome.result.ok, outcome.result.error
    with pg_db.connect(autocommit=True) as conn:
        conn.execute("ALTER TABLE prosumer ADD COLUMN added_after_revert int")
    events = journal.events()
    checks = revert_checks(pg_db, events, last_outcome(events).index)
    statuses = {c.id: c.status for c in checks}
    assert statuses["revert_state_pre"] == PASS
    assert statuses["revert_fingerprint"] == FAIL
    assert statuses["redis_outcome"] == WARN  # no Redis configured: said so


def test_without_a_journaled_migration_the_revert_fingerprint_warns(
        pg_db: PgSettings) -> None:
    events = [finished("down")]
    checks = revert_checks(pg_db, events, 0)
    statuses = {c.id: c.status for c in checks}
    assert statuses["revert_state_pre"] == PASS  # the sample database is in state pre
    assert statuses["revert_fingerprint"] == WARN
    assert "no catalog digest" in next(c.detail for c in checks
                                       if c.id == "revert_fingerprint")


def test_restore_checks_compare_the_state_and_counts_the_backup_recorded(
        pg_db: PgSettings) -> None:
    journal = Journal.create(pg_db, "wizard")
    with pg_db.connect() as conn:
        row = conn.execute("SELECT count(*) FROM prosumer").fetchone()
    assert row is not None
    snapshot = {"counts": {"public.prosumer": int(row[0])}}
    journal.record(RestoreFinished({"ok": True}))
    events: list[dict[str, Any]] = [
        {"event": "restore_prepared", "inspection": {"state": "pre", "journal_backup": {
            "snapshot": snapshot}}},
        *journal.events()]
    checks = restore_checks(pg_db, events, len(events) - 1)
    statuses = {c.id: c.status for c in checks}
    assert statuses == {"restore_state": PASS, "restore_counts": PASS, "redis_outcome": WARN}
    # A backup of the renamed schema, or other counts: both fail, naming what differs.
    events[0] = {"event": "restore_prepared", "inspection": {"state": "migrated",
                 "journal_backup": {"snapshot": {"counts": {"public.prosumer": -1}}}}}
    checks = restore_checks(pg_db, events, len(events) - 1)
    details = {c.id: (c.status, c.detail) for c in checks}
    assert details["restore_state"][0] == FAIL
    assert details["restore_counts"][0] == FAIL
    assert "public.prosumer" in details["restore_counts"][1]
    # Nothing recorded: the counts are not compared, and the check says so.
    events[0] = {"event": "restore_prepared", "inspection": {}}
    checks = restore_checks(pg_db, events, len(events) - 1)
    assert {c.id: c.status for c in checks}["restore_counts"] == WARN


def test_a_revert_journal_record_is_a_declared_event(pg_db: PgSettings) -> None:
    journal = Journal.create(pg_db, "wizard")
    journal.record(RunFinished(finished("down")["result"]))
    assert last_outcome(journal.events()).kind == REVERT
