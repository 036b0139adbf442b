"""The window's step rail and key facts, the pages re-reading their state, the close/Finish
guards and the Run button's rehearsal gate, driven with qtbot on real PostgreSQL and Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractButton, QMessageBox, QWizard
from pytestqt.qtbot import QtBot

from wizard.core import backup as backup_job
from wizard.core import jobs, prove, run_state
from wizard.core.connection import PgSettings
from wizard.core.events import BackupSkipped
from wizard.core.execute import RunOptions
from wizard.core.plan import UP
from wizard.core.redis_conn import RedisSettings
from wizard.core.run_state import DONE, FAILED, PHASES, RUNNING, SKIPPED, TODO
from wizard.core.session import WizardSession
from wizard.sandbox.redis_seed import seed_redis
from wizard.sandbox.servers import RedisServer
from wizard.ui.confirm import TypedConfirmDialog
from wizard.ui.pages import migrate, verify
from wizard.ui.pages.base import StepPage
from wizard.ui.pages.migrate import MigratePage
from wizard.ui.pages.orphans import OrphansPage
from wizard.ui.pages.preflight import PreflightPage
from wizard.ui.pages.verify import VerifyPage
from wizard.ui.window import MigrationWizard

WAIT = 120_000


def idle(qtbot: QtBot, page: StepPage) -> None:
    qtbot.waitUntil(lambda: not page.busy, timeout=WAIT)


def settled(qtbot: QtBot, page: Any) -> None:
    """Idle, and no follow-up job queued (the Orphans page's plan, the Migrate re-plan)."""
    for _ in range(3):
        idle(qtbot, page)
        qtbot.wait(50)
    idle(qtbot, page)


def go_next(window: MigrationWizard, qtbot: QtBot) -> Any:
    qtbot.waitUntil(window.button(QWizard.WizardButton.NextButton).isEnabled, timeout=WAIT)
    window.next()
    page = window.currentPage()
    idle(qtbot, page)  # type: ignore[arg-type]
    return page


def status(window: MigrationWizard, step: str) -> run_state.StepState:
    found = window.rail.state_of(step)
    assert found is not None
    return found


def button(box: QMessageBox, text: str) -> QAbstractButton:
    return next(b for b in box.buttons() if b.text() == text)


def type_it(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[tuple[str, str]]:
    """Stand-in for the operator typing the database name in `module`'s typed dialogs."""
    asked: list[tuple[str, str]] = []

    def typed(_parent: Any, title: str, consequence: str, expected: str, _action: str) -> str:
        asked.append((title, consequence))
        return expected
    monkeypatch.setattr(module, "confirm_typed", typed)
    return asked


def migrate_page(window: MigrationWizard, qtbot: QtBot, session: WizardSession
                 ) -> MigratePage:
    page = window.start_at(MigratePage)
    assert isinstance(page, MigratePage)
    qtbot.waitUntil(lambda: page.plan is not None and not page.busy, timeout=WAIT)
    return page


def wait_run(page: MigratePage, qtbot: QtBot, rehearsal: bool) -> Any:
    qtbot.waitUntil(lambda: page.result is not None and page.result.rehearsal == rehearsal
                    and not page.busy, timeout=WAIT)
    return page.result


@pytest.fixture
def locker(pg_db: PgSettings) -> Iterator[psycopg.Connection]:
    """Another session holding a lock on wallet, as an application transaction would."""
    conn = pg_db.connect()
    conn.execute("SET application_name = 'nest-app'")
    conn.execute("LOCK TABLE wallet IN ACCESS SHARE MODE")
    yield conn
    conn.close()


# --- the rail through a whole run --------------------------------------------------------


def test_the_rail_and_headers_through_a_whole_run(
        wizard_window: MigrationWizard, qtbot: QtBot, pg_db: PgSettings,
        redis_server: RedisServer, redis_client: redis.Redis, open_session: Any,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    window, rail = wizard_window, wizard_window.rail
    # The test plays the DBA: it answers "Yes" to the plain confirmations.
    monkeypatch.setattr(QMessageBox, "question",
                        staticmethod(lambda *_a, **_k: QMessageBox.StandardButton.Yes))
    monkeypatch.setattr(migrate, "ask", lambda *_a: True)  # Run migration's question box
    seed_redis(redis_client, 20)
    assert rail.step_text("connect") == "○ Connect  ◂ this page\n    to do"
    assert "Database: not connected yet" in rail.facts_text()
    assert not rail.timer.isActive()
    open_session(window, pg_db, RedisSettings.from_url(f"{redis_server.url}/1",
                                                       password=redis_server.password))
    preflight = window.start_at(PreflightPage)
    assert status(window, "preflight").status == RUNNING
    assert rail.timer.isActive()  # the elapsed time ticks while a step runs
    idle(qtbot, preflight)
    assert not rail.timer.isActive()
    assert status(window, "connect").status == DONE
    done = status(window, "preflight")
    assert done.status == DONE
    assert done.started is not None
    assert done.seconds() is not None
    assert "done in " in rail.step_text("preflight")
    facts = rail.facts_text()
    assert f"Database: {pg_db.host}:{pg_db.port}/{pg_db.dbname}" in facts
    assert "Schema: pre (not migrated) — read by pre-flight at " in facts
    assert "Rollback point: none yet" in facts
    assert "Lock waits: none" in facts

    backup = go_next(window, qtbot)
    backup.folder.setText(str(tmp_path / "backups"))
    backup.start_backup()
    assert status(window, "backup").status == RUNNING
    assert status(window, "backup").job == "Backup and proof"
    assert "▶ Backup" in rail.step_text("backup")
    idle(qtbot, backup)
    assert backup.verified is not None, backup.errors.details()
    assert status(window, "backup").status == DONE
    assert "PROVEN by a restore" in status(window, "backup").reason
    facts = rail.facts_text()
    assert backup.verified.path in facts
    assert f"sha256 {backup.verified.sha256[:12]}… · PROVEN ✔" in facts

    orphans = go_next(window, qtbot)
    qtbot.waitUntil(lambda: orphans.settled, timeout=WAIT)
    assert status(window, "orphans").status == DONE
    assert status(window, "orphans").reason == "no orphan rows"

    page = go_next(window, qtbot)
    assert isinstance(page, MigratePage)
    qtbot.waitUntil(lambda: page.plan is not None and not page.busy, timeout=WAIT)
    assert "Rehearse first" in page.summary.text()
    assert status(window, "migrate").reason.startswith("plan ready")
    page.rehearse_button.click()
    rehearsed = wait_run(page, qtbot, rehearsal=True)
    assert rehearsed.ok, rehearsed.error
    assert "Rehearsed ✔ at " in page.summary.text()
    assert "Rehearse first" not in page.summary.text()
    assert status(window, "migrate").status == TODO
    assert "rehearsed ✔" in rail.step_text("migrate")
    page.run_button.click()
    assert status(window, "migrate").status == RUNNING
    result = wait_run(page, qtbot, rehearsal=False)
    assert result.ok, result.error
    settled(qtbot, page)
    # The header re-read the catalog the commit left: no "state pre", no "Rehearse first".
    assert "state pre" not in page.summary.text()
    assert "Rehearse" not in page.summary.text()
    assert "state migrated, read right after the COMMIT. Nothing to do: migrated in this run " \
        "at " in page.summary.text()
    assert status(window, "migrate").status == DONE
    assert "Schema: migrated — read by " in rail.facts_text()

    cache = go_next(window, qtbot)
    cache.start_dry_run()
    idle(qtbot, cache)
    cache.start_migration()
    settled(qtbot, cache)
    assert status(window, "redis").status == DONE
    verify_page = go_next(window, qtbot)
    assert isinstance(verify_page, VerifyPage)
    qtbot.waitUntil(lambda: verify_page.checks is not None and not verify_page.busy,
                    timeout=WAIT)
    states = {s.step: s.status for s in rail.states}
    assert states == dict.fromkeys(states, DONE), [(s.step, s.reason) for s in rail.states
                                                   if s.status != DONE]
    assert "no PDF report exported yet" in status(window, "verify").reason
    verify_page.export_pdf(tmp_path / "report.pdf")
    window.refresh_rail()
    assert "PDF report exported" in status(window, "verify").reason
    # Nothing to ask: every check passed and the report is out.
    window.button(QWizard.WizardButton.FinishButton).click()
    assert window.question is None
    assert not window.isVisible()


def test_a_failed_run_on_the_rail_and_the_lock_holders_read_again(
        wizard_window: MigrationWizard, qtbot: QtBot, pg_db: PgSettings, open_session: Any,
        locker: psycopg.Connection, pg_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    window = wizard_window
    session = open_session(window, pg_db)
    session.ensure_journal().record(BackupSkipped(pg_db.dbname, "test of the rail"))
    orphans = window.start_at(OrphansPage)
    assert isinstance(orphans, OrphansPage)
    qtbot.waitUntil(lambda: orphans.settled, timeout=WAIT)
    page = go_next(window, qtbot)
    assert isinstance(page, MigratePage)
    qtbot.waitUntil(lambda: page.plan is not None and not page.busy, timeout=WAIT)
    assert status(window, "backup").status == SKIPPED
    assert status(window, "backup").reason.startswith("backup skipped by typed name")
    assert status(window, "redis").reason == "no Redis configured in this profile"
    monkeypatch.setattr(migrate, "ask", lambda *_a: True)
    type_it(monkeypatch, migrate)  # not rehearsed: the lock would stop a rehearsal too
    page.lock_timeout.setValue(0.2)
    page.retries.setValue(0)
    page.run_button.click()
    result = wait_run(page, qtbot, rehearsal=False)
    assert not result.ok
    migrate_state = status(window, "migrate")
    assert migrate_state.status == FAILED
    assert migrate_state.reason.startswith("rolled back, the schema is unchanged")
    assert "✘ Migrate" in window.rail.step_text("migrate")
    pid = int(locker.info.backend_pid)
    facts = window.rail.facts_text()
    assert f"Lock waits: 1 lock timeout(s), last held by pid {pid} nest-app " \
           f"(AccessShareLock on wallet)" in facts
    assert "Schema: pre (not migrated)" in facts
    assert "Rollback point: none: backup skipped by typed name" in facts
    qtbot.waitUntil(lambda: "still connected" in page.lock_note.text(), timeout=10_000)
    assert page.blockers.rowCount() == 1
    # The DBA terminates the holder (as the Pre-flight page does), goes Back and returns.
    with pg_server.admin_connect() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    window.back()
    assert window.currentPage() is orphans
    qtbot.waitUntil(lambda: orphans.settled, timeout=WAIT)
    go_next(window, qtbot)
    qtbot.waitUntil(lambda: "they have all ended" in page.lock_note.text(), timeout=10_000)
    assert page.blockers.rowCount() == 0
    assert page.blockers.isHidden()
    assert f"pid {pid} nest-app" in page.lock_note.text()
    assert page.lock_note.text().endswith("Run again.")


def test_the_headers_after_a_restore_and_after_a_revert(
        wizard_window: MigrationWizard, qtbot: QtBot, live: PgSettings, open_session: Any,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    window = wizard_window
    session = open_session(window, live)
    journal = session.ensure_journal()
    taken = backup_job.backup(live, backup_job.BackupOptions(out_dir=tmp_path / "b"),
                              journal=journal)
    assert taken.verified, taken.error
    _plan, done, _journal = jobs.run(live, UP, journal=journal, guard=jobs.Guard())
    assert done.ok, done.error
    page = window.start_at(VerifyPage)
    assert isinstance(page, VerifyPage)
    qtbot.waitUntil(lambda: page.checks is not None and not page.busy, timeout=WAIT)
    assert "Schema: migrated — read by the migration at " in window.rail.facts_text()
    assert status(window, "migrate").status == DONE
    assert f"sha256 {str(taken.sha256)[:12]}… · not proven" in window.rail.facts_text()

    asked = type_it(monkeypatch, verify)
    page.restore_from(Path(taken.path))
    qtbot.waitUntil(lambda: page.restore_outcome is not None, timeout=WAIT)
    assert asked
    assert page.restore_outcome is not None
    assert page.restore_outcome.result.ok, page.restore_outcome.result.error
    settled(qtbot, page)
    assert "Schema: pre (not migrated) — read by the restore from a backup at " in \
        window.rail.facts_text()
    restored = status(window, "migrate")
    assert restored.status == TODO
    assert "restored from a backup" in restored.reason

    _plan, again, _journal = jobs.run(live, UP, journal=journal)
    assert again.ok, again.error
    window.refresh_rail()
    assert "Schema: migrated" in window.rail.facts_text()
    page.revert_button.click()
    settled(qtbot, page)
    assert page.session.results["revert"].ok
    assert "Schema: pre (not migrated) — read by the revert at " in window.rail.facts_text()
    assert status(window, "migrate").reason.startswith("reverted at ")


# --- every page re-reads its state when shown ---------------------------------------------


def test_preflight_dates_its_old_results_and_checks_again_when_shown(
        wizard_window: MigrationWizard, qtbot: QtBot, pg_db: PgSettings,
        open_session: Any) -> None:
    window = wizard_window
    open_session(window, pg_db)
    page = window.start_at(PreflightPage)
    assert isinstance(page, PreflightPage)
    idle(qtbot, page)
    first = page.checked_at
    assert first is not None
    assert page.summary.text().startswith(f"Checked at {first.strftime('%H:%M:%S')} — ")
    go_next(window, qtbot)
    qtbot.wait(1100)  # a later second on the clock
    window.back()
    assert window.currentPage() is page
    assert page.busy  # shown again: the checks run again
    assert page.summary.text() == (f"checking again… (the results below are from "
                                   f"{first.strftime('%H:%M:%S')} and may be out of date)")
    assert not page.tabs.isEnabled()  # the old results greyed while they may be stale
    idle(qtbot, page)
    assert page.tabs.isEnabled()
    assert page.checked_at is not None
    assert page.checked_at > first
    assert page.summary.text().startswith(f"Checked at {page.checked_at.strftime('%H:%M:%S')}")
    journal = page.session.ensure_journal()
    assert len(journal.events("preflight")) == 2


# --- nothing destructive by accident --------------------------------------------------------


def test_escape_closes_a_window_where_nothing_happened_yet(
        wizard_window: MigrationWizard, qtbot: QtBot) -> None:
    window = wizard_window
    QTest.keyClick(window.currentPage(), Qt.Key.Key_Escape)
    assert window.question is None
    assert not window.isVisible()


def test_escape_and_close_ask_once_something_happened(
        wizard_window: MigrationWizard, qtbot: QtBot, pg_db: PgSettings,
        open_session: Any) -> None:
    window = wizard_window
    open_session(window, pg_db)
    page = window.start_at(PreflightPage)
    idle(qtbot, page)
    QTest.keyClick(window.currentPage(), Qt.Key.Key_Escape)
    box = window.question
    assert box is not None
    qtbot.waitUntil(box.isVisible, timeout=5_000)
    assert window.isVisible()
    text = box.text()
    assert f"This run has begun on {pg_db.host}:{pg_db.port}/{pg_db.dbname}" in text
    assert "(schema pre (not migrated))" in text
    assert "Done: Connect, Pre-flight." in text
    assert "Skipped: Redis (no Redis configured in this profile)." in text
    assert "Not done yet: Backup, Orphans, Migrate, Verify." in text
    assert str(page.session.ensure_journal().folder) in text
    # Escape inside the question closes the question only.
    QTest.keyClick(box, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: window.question is None, timeout=5_000)
    assert window.isVisible()
    # The window's close asks the same; Stay keeps it.
    window.close()
    box = window.question
    assert box is not None
    button(box, "&Stay").click()
    qtbot.waitUntil(lambda: window.question is None, timeout=5_000)
    assert window.isVisible()
    # Asked again, Close the wizard closes it.
    window.close()
    box = window.question
    assert box is not None
    button(box, "&Close the wizard").click()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5_000)


def test_escape_while_a_step_runs_names_it(wizard_window: MigrationWizard, qtbot: QtBot,
                                           pg_db: PgSettings, open_session: Any) -> None:
    window = wizard_window
    open_session(window, pg_db)
    page = window.start_at(PreflightPage)
    assert page.busy
    window.reject()  # the Quit button
    box = window.question
    assert box is not None
    assert box.windowTitle() == "A step is running"
    assert "Pre-flight checks is still running" in box.text()
    button(box, "&Stay").click()
    idle(qtbot, page)
    assert window.isVisible()


def test_escape_inside_a_dialog_closes_only_the_dialog(
        wizard_window: MigrationWizard, qtbot: QtBot, pg_db: PgSettings,
        open_session: Any) -> None:
    window = wizard_window
    open_session(window, pg_db)
    page = window.start_at(PreflightPage)
    idle(qtbot, page)
    dialog = TypedConfirmDialog(window, "Revert the migration", "…", pg_db.dbname, "Revert")
    dialog.open()
    qtbot.waitUntil(dialog.isVisible, timeout=5_000)
    QTest.keyClick(dialog.entry, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=5_000)
    assert window.isVisible()
    assert window.question is None


def test_finish_with_failed_checks_and_no_report_asks(
        wizard_window: MigrationWizard, qtbot: QtBot, pg_db: PgSettings, open_session: Any,
        tmp_path: Path) -> None:
    window = wizard_window
    open_session(window, pg_db)  # not migrated: the migration's checks fail
    page = window.start_at(VerifyPage)
    assert isinstance(page, VerifyPage)
    qtbot.waitUntil(lambda: page.checks is not None and not page.busy, timeout=WAIT)
    finish = window.button(QWizard.WizardButton.FinishButton)
    qtbot.waitUntil(finish.isEnabled, timeout=5_000)
    finish.click()
    box = window.question
    assert box is not None
    assert box.windowTitle() == "Finish the run?"
    assert "check(s) failed" in box.text()
    assert "no PDF report was exported" in box.text()
    QTest.keyClick(box, Qt.Key.Key_Escape)  # Escape: the question only
    qtbot.waitUntil(lambda: window.question is None, timeout=5_000)
    assert window.isVisible()
    assert page.session.ensure_journal().events("verification_signed") == []
    finish.click()
    box = window.question
    assert box is not None
    button(box, "&Finish anyway").click()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5_000)
    assert window.result() == QWizard.DialogCode.Accepted
    signed = page.session.ensure_journal().events("verification_signed")
    assert signed
    assert signed[-1]["failed_checks"]


# --- the Run button needs a rehearsal of the same plan -------------------------------------


def test_run_without_a_rehearsal_is_refused_unless_the_name_is_typed(
        wizard_window: MigrationWizard, qtbot: QtBot, pg_db: PgSettings, open_session: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    session = open_session(wizard_window, pg_db)
    session.ensure_journal().record(BackupSkipped(pg_db.dbname, "test of the gate",
                                                  "dana", "10:00"))
    page = migrate_page(wizard_window, qtbot, session)
    assert page.plan is not None
    asked: list[tuple[str, str]] = []
    monkeypatch.setattr(migrate, "ask", lambda *_a: pytest.fail("no yes/no without rehearsal"))

    def decline(_p: Any, title: str, consequence: str, expected: str, _a: str) -> None:
        asked.append((title, consequence))
        assert expected == pg_db.dbname
    monkeypatch.setattr(migrate, "confirm_typed", decline)
    page.run_button.click()
    assert not page.busy
    assert page.result is None
    title, text = asked[0]
    assert title == "Run without a rehearsal?"
    assert text.startswith(f"Refused: no rehearsal of this plan (digest "
                           f"{page.plan.digest[:12]}) passed in this run.")
    assert f"Database: {pg_db.dbname} on {pg_db.host}:{pg_db.port}." in text
    assert "Rollback point: none: the backup was skipped by typed name (dana, 10:00)" in text
    assert "Blocked time: not measured" in text
    assert "no passing rehearsal" in page.log.full_text()
    assert jobs.inspect(pg_db).state == "pre"

    typed = type_it(monkeypatch, migrate)
    digest = page.plan.digest
    page.run_button.click()
    result = wait_run(page, qtbot, rehearsal=False)
    assert typed
    assert result.ok, result.error
    notes = [e["message"] for e in page.session.ensure_journal().events("log")
             if "without a passing rehearsal" in e["message"]]
    assert notes == [f"migration of {pg_db.dbname} started without a passing rehearsal of "
                     f"plan {digest[:12]}: confirmed by typing the database name"]


def test_with_a_rehearsal_the_confirmation_names_db_rollback_point_and_estimate(
        wizard_window: MigrationWizard, qtbot: QtBot, live: PgSettings, open_session: Any,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    session = open_session(wizard_window, live)
    journal = session.ensure_journal()
    taken = backup_job.backup(live, backup_job.BackupOptions(out_dir=tmp_path / "b"),
                              journal=journal)
    assert taken.verified, taken.error
    proof = prove.prove(live, taken.path, prove.ProofOptions(rehearse=False), journal=journal)
    assert proof.proven, proof.reason
    page = migrate_page(wizard_window, qtbot, session)
    page.rehearse_button.click()
    rehearsal = wait_run(page, qtbot, rehearsal=True)
    assert rehearsal.ok, rehearsal.error
    assert rehearsal.blocked_ms is not None
    asked: list[str] = []

    def say_no(_p: Any, title: str, text: str) -> bool:
        asked.append(text)
        return False
    monkeypatch.setattr(migrate, "ask", say_no)
    monkeypatch.setattr(migrate, "confirm_typed", lambda *_a: pytest.fail("rehearsed"))
    page.run_button.click()
    assert page.result is rehearsal  # said no: nothing ran
    text = asked[0]
    assert text.startswith(f"Rename prosumer → user in database {live.dbname} on "
                           f"{live.host}:{live.port}?")
    assert f"Rollback point: {taken.path} (sha256 {str(taken.sha256)[:16]}…, PROVEN by a " \
           f"restore into a scratch database)" in text
    blocked = wait_run(page, qtbot, rehearsal=True).blocked_ms
    assert f"Blocked time: about {blocked:.1f} ms, as measured by the rehearsal at " in text
    assert "at most 2 s per lock" in text

    # The catalog changes: the plan planned again is not the plan rehearsed.
    with live.connect() as conn:
        conn.execute("CREATE INDEX prosumer_late_idx ON wallet (prosumer_id)")
    old = page.plan.digest  # type: ignore[union-attr]
    page.replan_button.click()
    qtbot.waitUntil(lambda: page.plan is not None and page.plan.digest != old
                    and not page.busy, timeout=WAIT)
    assert "Rehearse first" in page.summary.text()
    refused: list[str] = []
    monkeypatch.setattr(migrate, "confirm_typed",
                        lambda _p, _t, text, _e, _a: refused.append(text))
    page.run_button.click()
    assert refused
    assert "ran another plan: the catalog changed since" in refused[0]
    # Rehearsed again, then run: the guard accepts the proven backup.
    page.rehearse_button.click()
    qtbot.waitUntil(lambda: page.result is not rehearsal and not page.busy, timeout=WAIT)
    monkeypatch.setattr(migrate, "ask", lambda *_a: True)
    page.run_button.click()
    result = wait_run(page, qtbot, rehearsal=False)
    assert result.ok, result.error
    accepted = journal.events("backup_accepted")[-1]
    assert accepted["sha256"] == taken.sha256


def test_a_rehearsal_in_the_journal_is_the_one_that_counts(
        wizard_window: MigrationWizard, qtbot: QtBot, pg_db: PgSettings, open_session: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A rehearsal the engine ran on the plan on screen (as the CLI would) counts too."""
    session = open_session(wizard_window, pg_db)
    journal = session.ensure_journal()
    journal.record(BackupSkipped(pg_db.dbname, "test of the gate"))
    page = migrate_page(wizard_window, qtbot, session)
    _plan, done, _journal = jobs.run(pg_db, UP, options=RunOptions(rehearse=True),
                                     journal=journal, plan=page.plan)
    assert done.ok
    asked: list[str] = []

    def say_no(_p: Any, _t: str, text: str) -> bool:
        asked.append(text)
        return False
    monkeypatch.setattr(migrate, "ask", say_no)
    page.run_button.click()
    assert asked
    assert "as measured by the rehearsal at " in asked[0]


# --- keyboard and scaling -------------------------------------------------------------------


def test_the_rail_is_reached_with_tab_and_speaks(wizard_window: MigrationWizard) -> None:
    rail = wizard_window.rail
    for widget in (rail.facts_view, rail.list, rail.detail):
        assert widget.focusPolicy() & Qt.FocusPolicy.TabFocus
        assert widget.accessibleName()
    heading = rail.list.item(0)  # the prepare phase's heading: read, never selected
    assert heading is not None
    assert heading.text() == PHASES["connect"]
    assert heading.flags() == Qt.ItemFlag.NoItemFlags
    item = rail.list.item(1)
    assert item is not None
    assert item.data(Qt.ItemDataRole.AccessibleTextRole) == "Connect: to do."
    rail.list.setFocus()
    QTest.keyClick(rail.list, Qt.Key.Key_Down)
    assert rail.detail.toPlainText().startswith("Pre-flight: to do")


SCALED = """
import json, os, sys
from PySide6.QtWidgets import QApplication
app = QApplication([])
from wizard.ui.window import MigrationWizard
w = MigrationWizard(); w.show(); app.processEvents()
rail = w.rail
rects = [rail.list.visualItemRect(rail.list.item(i)) for i in range(rail.list.count())]
line = rail.list.fontMetrics().height()
w.grab().save(sys.argv[1])
print(json.dumps({"ratio": w.devicePixelRatioF(), "two_lines": all(r.height() >= 2 * line
                  for r in rects), "inside": w.rect().contains(rail.geometry()),
                  "rail": rail.width(), "char": rail.fontMetrics().averageCharWidth()}))
w.close()
"""


@pytest.mark.parametrize("scale", ["1", "2"])
def test_the_rail_is_readable_at_100_and_200_percent(scale: str, tmp_path: Path) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QT_SCALE_FACTOR": scale,
           "ENERLINK_MIGRATE_CONFIG": str(tmp_path / "config"),
           "ENERLINK_MIGRATE_RUNS": str(tmp_path / "runs")}
    out = subprocess.run([sys.executable, "-c", SCALED, str(tmp_path / "rail.png")], env=env,
                         capture_output=True, text=True, check=True, timeout=60)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["ratio"] == float(scale)
    assert seen["two_lines"]  # each step shows its title and its state, unclipped
    assert seen["inside"]
    assert seen["rail"] >= 30 * seen["char"]  # the width follows the font, not pixels
