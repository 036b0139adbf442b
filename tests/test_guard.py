"""The migrate guard: a verified, fresh backup first; no orphans where a key must be added."""

from __future__ import annotations

from pathlib import Path

import pytest

from wizard.core import jobs
from wizard.core.backup import BackupOptions, backup
from wizard.core.connection import PgSettings
from wizard.core.events import RunFinished
from wizard.core.journal import Journal
from wizard.core.plan import DOWN, UP
from wizard.sandbox.probes import fingerprint
from wizard.sandbox.seed import inject_orphans
from wizard.sandbox.servers import PostgresServer


def test_no_backup_is_refused_and_changes_nothing(pg_db: PgSettings) -> None:
    before = fingerprint(pg_db)
    with pytest.raises(jobs.GuardRefused, match="no verified backup of"):
        jobs.run(pg_db, UP, guard=jobs.Guard())
    assert fingerprint(pg_db) == before


def test_typed_name_overrides_and_is_journaled(pg_db: PgSettings) -> None:
    with pytest.raises(jobs.GuardRefused, match="does not match the database"):
        jobs.run(pg_db, UP, guard=jobs.Guard(without_backup="some_other_db"))
    _plan, result, journal = jobs.run(pg_db, UP, guard=jobs.Guard(without_backup=pg_db.dbname))
    assert result.ok, result.error
    assert journal.events("backup_skipped")[0]["dbname"] == pg_db.dbname


def test_verified_backup_lets_it_run_until_the_schema_changes(pg_db: PgSettings,
                                                             tmp_path: Path) -> None:
    journal = Journal.create(pg_db, "wizard")
    made = backup(pg_db, BackupOptions(out_dir=tmp_path / "backups"), journal=journal)
    assert made.verified, made.error
    _plan, result, _j = jobs.run(pg_db, UP, guard=jobs.Guard(), journal=journal)
    assert result.ok, result.error
    assert jobs.run(pg_db, DOWN)[1].ok
    # That backup predates the revert: a new migration wants a new backup.
    with pytest.raises(jobs.GuardRefused, match="taken since the schema last changed"):
        jobs.run(pg_db, UP, guard=jobs.Guard())


def test_rehearsal_needs_no_backup(pg_db: PgSettings) -> None:
    from wizard.core.execute import RunOptions
    _plan, result, _j = jobs.run(pg_db, UP, options=RunOptions(rehearse=True),
                                 guard=jobs.Guard())
    assert result.ok, result.error


def test_orphans_in_a_column_whose_key_must_be_added_are_refused(
        pg_db: PgSettings, pg_server: PostgresServer) -> None:
    with pg_db.connect() as conn:
        conn.execute('ALTER TABLE wallet DROP CONSTRAINT "FK_62a1a16628b883318e6b443cf52"')
    with pg_server.admin_connect(pg_db.dbname) as admin:
        inject_orphans(admin, 2)
    before = fingerprint(pg_db)
    with pytest.raises(jobs.GuardRefused, match=r"wallet\.prosumer_id: \d+ orphan rows"):
        jobs.run(pg_db, UP, guard=jobs.Guard(without_backup=pg_db.dbname))
    assert fingerprint(pg_db) == before


def test_a_rehearsal_is_refused_too_when_orphans_would_stop_the_real_run(
        pg_db: PgSettings, pg_server: PostgresServer) -> None:
    from wizard.core.execute import RunOptions
    with pg_db.connect() as conn:
        conn.execute('ALTER TABLE wallet DROP CONSTRAINT "FK_62a1a16628b883318e6b443cf52"')
    with pg_server.admin_connect(pg_db.dbname) as admin:
        inject_orphans(admin, 1)
    with pytest.raises(jobs.GuardRefused, match=r"wallet\.prosumer_id: \d+ orphan rows"):
        jobs.run(pg_db, UP, options=RunOptions(rehearse=True), guard=jobs.Guard())


def test_an_old_backup_or_a_committed_failed_run_needs_a_new_backup(pg_db: PgSettings,
                                                                  tmp_path: Path) -> None:
    journal = Journal.create(pg_db, "wizard")
    assert backup(pg_db, BackupOptions(out_dir=tmp_path / "backups"), journal=journal).verified
    with pytest.raises(jobs.GuardRefused, match=r"from the last 0 h \(the newest is from"):
        jobs.run(pg_db, UP, guard=jobs.Guard(max_backup_age_h=0), journal=journal)
    # A run that committed, then failed a check after commit, changed the schema.
    later = Journal.create(pg_db, "migrate")
    later.record(RunFinished({"ok": False, "rehearsal": False, "steps": [{}],
                              "state_before": "pre", "state_after": "partial"}))
    with pytest.raises(jobs.GuardRefused, match="taken since the schema last changed"):
        jobs.run(pg_db, UP, guard=jobs.Guard())


def test_a_backup_file_cut_short_since_no_longer_counts(pg_db: PgSettings,
                                                        tmp_path: Path) -> None:
    journal = Journal.create(pg_db, "wizard")
    made = backup(pg_db, BackupOptions(out_dir=tmp_path / "backups"), journal=journal)
    assert made.verified
    data = Path(made.path).read_bytes()
    Path(made.path).write_bytes(data[: len(data) // 2])
    with pytest.raises(jobs.GuardRefused, match="is not the file that was verified"):
        jobs.run(pg_db, UP, guard=jobs.Guard(), journal=journal)


def _flip(path: Path, count: int = 16) -> None:
    """Change bytes in the middle of the file, keeping its size (as a bad disk or a hand
    would): only the sha256 can tell."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + count] = bytes(b ^ 0xFF for b in data[middle:middle + count])
    path.write_bytes(bytes(data))


def test_a_backup_changed_since_its_verification_is_refused(pg_db: PgSettings,
                                                            tmp_path: Path) -> None:
    journal = Journal.create(pg_db, "wizard")
    made = backup(pg_db, BackupOptions(out_dir=tmp_path / "backups"), journal=journal)
    assert made.verified, made.error
    path = Path(made.path)
    size = path.stat().st_size
    _flip(path)
    assert path.stat().st_size == size
    before = fingerprint(pg_db)
    with pytest.raises(jobs.GuardRefused, match="is not the file that was verified") as refused:
        jobs.run(pg_db, UP, guard=jobs.Guard(), journal=journal)
    assert made.path in str(refused.value)
    assert (made.sha256 or "")[:16] in str(refused.value)
    assert fingerprint(pg_db) == before
    assert "is not the file that was verified" in journal.events("refused")[-1]["reason"]


def test_the_accepted_backup_is_the_migrate_reports_rollback_point(pg_db: PgSettings,
                                                                   tmp_path: Path) -> None:
    from wizard.core.report import build_report, render_html

    made = backup(pg_db, BackupOptions(out_dir=tmp_path / "backups"),
                  journal=Journal.create(pg_db, "backup"))  # the backup's own run, as CLI
    assert made.verified, made.error
    _plan, result, journal = jobs.run(pg_db, UP, guard=jobs.Guard())  # as CLI migrate does
    assert result.ok, result.error
    accepted = journal.events("backup_accepted")
    assert [(a["path"], a["sha256"]) for a in accepted] == [(made.path, made.sha256)]
    assert accepted[0]["rehash_s"] >= 0
    model = build_report(journal)
    item = next(i for i in model.checklist if i.id == "backup_verified")
    assert item.status == "pass"
    assert "rollback point" in item.detail
    html = render_html(model)
    assert "No backup was recorded in this run" not in html
    assert made.sha256
    assert made.sha256 in html


def test_a_rolled_back_attempt_keeps_the_backup_valid(pg_db: PgSettings, tmp_path: Path
                                                      ) -> None:
    """A migration that rolled back changed nothing: the backup taken before it still is
    the rollback point of the next attempt."""
    journal = Journal.create(pg_db, "wizard")
    made = backup(pg_db, BackupOptions(out_dir=tmp_path / "backups"), journal=journal)
    assert made.verified, made.error
    with pg_db.connect() as conn:  # a CHECK named prosumer makes the in-transaction check fail
        conn.execute("ALTER TABLE prosumer ADD CONSTRAINT prosumer_email_check "
                     "CHECK (email <> '')")
    _plan, failed, _j = jobs.run(pg_db, UP, guard=jobs.Guard(), journal=journal)
    assert not failed.ok
    assert failed.error
    assert failed.error.startswith("rolled back, nothing changed")
    with pg_db.connect() as conn:
        conn.execute("ALTER TABLE prosumer DROP CONSTRAINT prosumer_email_check")
    _plan, result, journal = jobs.run(pg_db, UP, guard=jobs.Guard())
    assert result.ok, result.error
    assert journal.events("backup_accepted")[-1]["sha256"] == made.sha256
