"""The Migrate page, driven with qtbot on real PostgreSQL: plan, SQL, rehearsal, run, lock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QLabel, QMessageBox, QWizard
from pytestqt.qtbot import QtBot

from wizard.core import jobs
from wizard.core.connection import PgSettings
from wizard.core.events import BackupSkipped
from wizard.core.execute import RunResult
from wizard.sandbox.probes import fingerprint
from wizard.ui.pages import migrate
from wizard.ui.pages.migrate import MigratePage
from wizard.ui.window import MigrationWizard

WAIT = 30_000


def next_enabled(window: QWizard) -> bool:
    return window.button(QWizard.WizardButton.NextButton).isEnabled()


def open_page(window: MigrationWizard, qtbot: QtBot, open_session: Any,
              pg: PgSettings) -> MigratePage:
    session = open_session(window, pg)
    # The lead's gate wants a verified backup or a journaled override before a real run;
    # the Backup page is not part of this test, so the override is written as it would be.
    session.ensure_journal().record(BackupSkipped(session.pg.dbname,
                                                  "test of the Migrate page"))
    page = window.start_at(MigratePage)
    assert isinstance(page, MigratePage)
    qtbot.waitUntil(lambda: page.plan is not None and not page.busy, timeout=WAIT)
    return page


def wait_result(page: MigratePage, qtbot: QtBot) -> RunResult:
    qtbot.waitUntil(lambda: page.result is not None and not page.busy, timeout=WAIT)
    assert page.result is not None
    return page.result


def test_plan_and_sql_are_shown(wizard_window: MigrationWizard, qtbot: QtBot,
                                open_session: Any, pg_db: PgSettings, tmp_path: Path) -> None:
    page = open_page(wizard_window, qtbot, open_session, pg_db)
    plan = page.plan
    assert plan is not None
    assert plan.state == "pre"
    assert len(page.step_items) == len(plan.catalog_steps) > 0
    first = page.step_items[1]
    assert first.text(0) == f"1/{len(plan.catalog_steps)}"
    assert first.text(1) == plan.catalog_steps[0].title
    items = (page.steps.topLevelItem(i) for i in range(page.steps.topLevelItemCount()))
    texts = [item.text(1) for item in items if item is not None]
    if plan.unchanged:
        assert any(t.startswith("Left unchanged") for t in texts)
    sql = page.sql.toPlainText()
    assert sql == plan.script(page.lock_timeout.value())
    assert 'ALTER TABLE "public"."prosumer" RENAME TO "user"' in sql
    assert "COMMIT;" in sql
    page.copy_sql()
    assert QGuiApplication.clipboard().text() == sql
    saved = page.save_sql(tmp_path / "plan.sql")
    assert saved.read_text() == sql
    # The lock timeout typed on the page is the one in the script.
    page.lock_timeout.setValue(0.5)
    assert "SET LOCAL lock_timeout = '500ms';" in page.sql.toPlainText()
    assert page.run_button.isEnabled()
    assert page.rehearse_button.isEnabled()
    assert not next_enabled(wizard_window)


def test_rehearsal_changes_nothing(wizard_window: MigrationWizard, qtbot: QtBot,
                                   open_session: Any, pg_db: PgSettings) -> None:
    before = fingerprint(pg_db)
    page = open_page(wizard_window, qtbot, open_session, pg_db)
    page.rehearse_button.click()
    result = wait_result(page, qtbot)
    assert result.ok, result.error
    assert result.rehearsal
    assert fingerprint(pg_db) == before
    assert jobs.inspect(pg_db).state == "pre"
    assert "nothing changed" in page.outcome.text()
    # Every step got its duration, live or from the result.
    assert all(item.text(2).startswith("✔") for item in page.step_items.values())
    assert page.checks.topLevelItemCount() == len(result.checks) > 0
    assert page.session.results["rehearsal"] is result
    assert "migrate" not in page.session.results
    assert not next_enabled(wizard_window)  # a rehearsal is not the migration
    assert page.run_button.isEnabled()


def test_run_migrates_and_is_journaled(wizard_window: MigrationWizard, qtbot: QtBot,
                                       open_session: Any, pg_db: PgSettings,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    page = open_page(wizard_window, qtbot, open_session, pg_db)
    page.rehearse_button.click()  # the run needs a passing rehearsal of this plan
    assert wait_result(page, qtbot).ok
    page.result = None
    asked: list[str] = []

    def say_no(_parent: Any, _title: str, text: str) -> bool:
        asked.append(text)
        return False
    monkeypatch.setattr(migrate, "ask", say_no)
    page.run_button.click()
    assert asked
    assert pg_db.dbname in asked[0]
    assert page.result is None
    assert not page.busy

    monkeypatch.setattr(migrate, "ask", lambda _p, _t, text: True)
    page.run_button.click()
    result = wait_result(page, qtbot)
    assert result.ok, result.error
    assert not result.rehearsal
    assert jobs.inspect(pg_db).state == "migrated"
    assert page.session.results["migrate"] is result
    qtbot.waitUntil(lambda: next_enabled(wizard_window), timeout=5_000)
    assert not page.run_button.isEnabled()
    assert "Migrated" in page.outcome.text()
    journal = page.session.ensure_journal()
    finished = journal.events("run_finished")
    assert finished
    assert finished[-1]["result"]["ok"]
    assert not finished[-1]["result"]["rehearsal"]
    assert journal.events("plan")
    log = (journal.folder / "wizard.log").read_text()
    assert "[1/" in log
    assert pg_db.password
    assert pg_db.password not in log

    # Planning again on the migrated database: nothing to do, and the page stays valid.
    page.replan_button.click()
    qtbot.waitUntil(lambda: not page.busy and page.plan is not None
                    and page.plan.state == "migrated", timeout=WAIT)
    assert page.plan is not None
    assert not page.plan.steps
    assert "Nothing to do" in page.summary.text()
    assert next_enabled(wizard_window)


def test_already_migrated_database_is_valid_at_once(wizard_window: MigrationWizard,
                                                    qtbot: QtBot, open_session: Any,
                                                    pg_db: PgSettings) -> None:
    _plan, done, _journal = jobs.run(pg_db, "up")
    assert done.ok, done.error
    page = open_page(wizard_window, qtbot, open_session, pg_db)
    assert page.plan is not None
    assert not page.plan.steps
    assert "already migrated" in page.summary.text()
    assert not page.run_button.isEnabled()
    assert not page.rehearse_button.isEnabled()
    qtbot.waitUntil(lambda: next_enabled(wizard_window), timeout=5_000)


@pytest.fixture
def locker(pg_db: PgSettings) -> Iterator[psycopg.Connection]:
    """Another session holding a lock on wallet, as an application transaction would."""
    conn = pg_db.connect()
    conn.execute("SET application_name = 'nest-app'")
    conn.execute("LOCK TABLE wallet IN ACCESS SHARE MODE")
    yield conn
    conn.close()


def test_lock_never_released_shows_the_error_and_the_blocker(
        wizard_window: MigrationWizard, qtbot: QtBot, open_session: Any, pg_db: PgSettings,
        locker: psycopg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    before = fingerprint(pg_db)
    page = open_page(wizard_window, qtbot, open_session, pg_db)
    monkeypatch.setattr(migrate, "ask", lambda *_a: True)
    # Not rehearsed (the lock would stop a rehearsal too): the typed override.
    monkeypatch.setattr(migrate, "confirm_typed", lambda _p, _t, _c, expected, _a: expected)
    page.lock_timeout.setValue(0.2)
    page.retries.setValue(0)
    page.run_button.click()
    result = wait_result(page, qtbot)
    assert not result.ok
    assert result.attempts == 1
    assert page.errors.isVisible()
    assert "nest-app" in page.errors.message.text()
    assert "schema is unchanged" in page.errors.action.text()
    assert page.errors.step.text() == result.failed_step
    assert result.failed_step
    assert result.failed_step.startswith("[")
    failed = int(result.failed_step[1:].split("/")[0])
    assert page.step_items[failed].text(2) == "✘ failed"
    # The blockers, as the engine found them, in their own box.
    assert page.locks.isVisible()
    assert page.blockers.rowCount() >= 1
    cells = (page.blockers.item(r, 1) for r in range(page.blockers.rowCount()))
    apps = {cell.text() for cell in cells if cell is not None}
    assert "nest-app" in apps
    assert fingerprint(pg_db) == before
    assert jobs.inspect(pg_db).state == "pre"
    assert not next_enabled(wizard_window)
    assert page.run_button.isEnabled()  # once the session is gone, run again


def test_a_refused_run_shows_the_refusal_in_the_wizards_words(
        wizard_window: MigrationWizard, qtbot: QtBot, open_session: Any, pg_db: PgSettings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The real guard, with no backup in the journals: the rehearsal runs (it needs none),
    the run is refused before anything changes, and the refusal names the Backup page and
    its button, not `enerlink-migrate backup --out DIR` and `--without-backup`."""
    before = fingerprint(pg_db)
    open_session(wizard_window, pg_db)
    page = wizard_window.start_at(MigratePage)
    assert isinstance(page, MigratePage)
    qtbot.waitUntil(lambda: page.plan is not None and not page.busy, timeout=WAIT)
    page.rehearse_button.click()
    assert wait_result(page, qtbot).ok
    page.result = None
    monkeypatch.setattr(migrate, "ask", lambda *_a: True)
    page.run_button.click()
    qtbot.waitUntil(lambda: page.errors.isVisible() and not page.busy, timeout=WAIT)
    message = page.errors.message.text()
    assert message.startswith(f"no verified backup of {pg_db.describe()}"), message
    assert "take a backup on the Backup page first" in message
    assert f"Continue without a backup… there and type {pg_db.dbname}" in message
    assert "--" not in message
    assert "enerlink-migrate" not in message
    assert "schema is unchanged" in page.errors.action.text()
    assert page.result is None
    assert "migrate" not in page.session.results
    assert page.run_button.isEnabled()
    assert not next_enabled(wizard_window)
    assert fingerprint(pg_db) == before


def test_the_run_is_the_plan_on_screen_and_refuses_a_changed_catalog(
        wizard_window: MigrationWizard, qtbot: QtBot, open_session: Any, pg_db: PgSettings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    page = open_page(wizard_window, qtbot, open_session, pg_db)
    assert page.plan is not None
    shown = page.plan.digest
    assert shown[:12] in page.summary.text()
    journal = page.session.ensure_journal()
    assert journal.events("migrate_plan_shown")[-1]["digest"] == shown
    with pg_db.connect() as conn:  # someone changes the schema after the plan was read
        conn.execute("CREATE INDEX prosumer_late_idx ON wallet (prosumer_id)")
    before = fingerprint(pg_db)
    monkeypatch.setattr(migrate, "ask", lambda *_a: True)
    page.rehearse_button.click()
    result = wait_result(page, qtbot)
    assert not result.ok
    assert "the catalog changed since the plan was made" in (result.error or "")
    assert "prosumer_late_idx" in (result.error or "")
    assert fingerprint(pg_db) == before
    assert journal.events("plan")[-1]["digest"] == shown  # the run took the plan shown


def test_the_run_question_is_wide_and_answers_no_by_default(qtbot: QtBot) -> None:
    """The box Run migration asks with: No is the default and Escape's answer, and its text
    is wide enough that the rollback point's path is not wrapped at every slash."""
    path = "/var/backups/enerlink/enerlink_enerlink_db_20261202T151516Z_pre-user-rename.dump"
    box = migrate.question_box(None, "Run the migration?", f"Rollback point: {path}")
    qtbot.addWidget(box)
    assert box.defaultButton() is box.button(QMessageBox.StandardButton.No)
    assert box.escapeButton() is box.button(QMessageBox.StandardButton.No)
    label = box.findChild(QLabel, "qt_msgbox_label")
    assert label is not None
    assert label.minimumWidth() == migrate.QUESTION_WIDTH
    assert label.fontMetrics().horizontalAdvance(path) < migrate.QUESTION_WIDTH
