"""The backup page driven with qtbot: a real pg_dump of the sample database, cancel, override."""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QWizard
from pytestqt.qtbot import QtBot

from wizard.core.backup import DEFAULT_COMPRESSION, latest_verified_backup
from wizard.core.connection import PgSettings
from wizard.sandbox.servers import PostgresServer
from wizard.ui.confirm import TypedConfirmDialog
from wizard.ui.pages import backup as backup_page
from wizard.ui.pages.backup import BackupPage
from wizard.ui.window import MigrationWizard

BACKUP_TIMEOUT_MS = 120_000


def next_enabled(window: QWizard) -> bool:
    return window.button(QWizard.WizardButton.NextButton).isEnabled()


@pytest.fixture
def page(wizard_window: MigrationWizard, open_session: Any, pg_db: PgSettings,
         qtbot: QtBot) -> Iterator[BackupPage]:
    open_session(wizard_window, pg_db)
    shown = wizard_window.start_at(BackupPage)
    assert isinstance(shown, BackupPage)
    yield shown
    # A test that failed mid-backup: let the job end here, or closing the window would ask.
    shown.cancel_job()
    qtbot.waitUntil(lambda: not shown.busy, timeout=60_000)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_defaults_come_from_the_session_and_next_waits_for_a_backup(
        page: BackupPage, wizard_window: MigrationWizard) -> None:
    assert page.folder.text() == str(page.session.backup_folder)
    assert page.format.currentText() == "custom"
    assert page.compression.currentText() == DEFAULT_COMPRESSION
    assert not page.jobs.isEnabled()  # parallel jobs need the directory format
    page.format.setCurrentText("directory")
    assert page.jobs.isEnabled()
    assert not next_enabled(wizard_window)


def test_backup_now_makes_a_verified_private_backup_and_enables_next(
        page: BackupPage, wizard_window: MigrationWizard, qtbot: QtBot, pg_db: PgSettings,
        tmp_path: Path) -> None:
    out = tmp_path / "backups"
    page.folder.setText(str(out))
    page.run_button.click()
    assert page.busy
    assert not next_enabled(wizard_window)
    assert not page.run_button.isEnabled()  # no second backup while one runs
    qtbot.waitUntil(lambda: not page.busy, timeout=BACKUP_TIMEOUT_MS)
    result = page.result
    assert result is not None
    assert result.verified, page.errors.details()
    path = Path(result.path)
    assert path.parent == out
    assert path.is_file()
    assert _mode(path) == 0o600
    assert _mode(out) == 0o700
    assert result.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert page.path.text() == str(path)
    assert page.sha256.text() == result.sha256
    assert page.verdict.text().startswith("verified ✔")
    assert f"{result.size_bytes:,} bytes" in page.size_value.text()
    assert next_enabled(wizard_window)
    # The session and the run journal have it; the migration's guard finds it there.
    journal = page.session.ensure_journal()
    assert page.session.results["backup"] is result
    event = journal.events("backup")[-1]
    assert (event["verified"], event["sha256"], event["path"]) == (True, result.sha256,
                                                                   str(path))
    found = latest_verified_backup(pg_db, [journal])
    assert found is not None
    assert found["sha256"] == result.sha256
    # The progress reached the end and the live log showed pg_dump's own lines.
    assert page.progress_bar.value() == 1000
    assert "dumping contents of table" in page.log.full_text()
    assert pg_db.password
    assert pg_db.password not in page.log.full_text()
    assert pg_db.password not in journal.path.read_text()
    # Coming back to the page keeps the result (the wizard re-initialises its pages).
    wizard_window.restart()
    assert wizard_window.currentPage() is page
    assert page.result is result
    assert page.verdict.text().startswith("verified ✔")
    assert next_enabled(wizard_window)


def test_a_directory_backup_with_two_jobs_is_verified(
        page: BackupPage, qtbot: QtBot, tmp_path: Path) -> None:
    page.folder.setText(str(tmp_path / "dir"))
    page.format.setCurrentText("directory")
    page.jobs.setValue(2)
    page.run_button.click()
    qtbot.waitUntil(lambda: not page.busy, timeout=BACKUP_TIMEOUT_MS)
    result = page.result
    assert result is not None
    assert result.verified, page.errors.details()
    assert (result.format, result.jobs) == ("directory", 2)
    folder = Path(result.path)
    assert folder.is_dir()
    assert _mode(folder) == 0o700
    assert all(_mode(f) == 0o600 for f in folder.iterdir())


def test_a_refused_backup_shows_the_error_and_next_stays_disabled(
        page: BackupPage, wizard_window: MigrationWizard, qtbot: QtBot,
        tmp_path: Path) -> None:
    page.folder.setText(str(tmp_path / "out"))
    page.compression.setCurrentText("brotli")
    page.run_button.click()
    qtbot.waitUntil(lambda: not page.busy, timeout=30_000)
    assert page.errors.isVisible()
    assert "unknown compression 'brotli'" in page.errors.details()
    assert page.status.text().startswith("✘ No backup")
    assert not next_enabled(wizard_window)
    assert not (tmp_path / "out").exists()  # prepare() writes nothing


@contextmanager
def table_locked(pg_server: PostgresServer, dbname: str) -> Iterator[None]:
    """Another session holds an ACCESS EXCLUSIVE lock, so pg_dump waits mid-run on it."""
    conn = pg_server.admin_connect(dbname)  # autocommit: explicit BEGIN/ROLLBACK
    try:
        conn.execute("BEGIN")
        conn.execute("LOCK TABLE public.wallet IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def test_cancel_during_the_backup_removes_the_partial_file(
        page: BackupPage, wizard_window: MigrationWizard, qtbot: QtBot,
        pg_server: PostgresServer, pg_db: PgSettings, tmp_path: Path) -> None:
    out = tmp_path / "backups"
    page.folder.setText(str(out))
    with table_locked(pg_server, pg_db.dbname):
        page.run_button.click()
        # pg_dump has read the table list and now waits for its lock on wallet.
        qtbot.waitUntil(lambda: "reading user-defined tables" in page.log.shown_text()
                        or not page.busy, timeout=60_000)
        assert page.busy, f"{page.errors.details()}\n{page.log.shown_text()}"
        partial = list(out.iterdir())
        assert len(partial) == 1
        assert partial[0].suffix == ".dump"
        assert page.cancel_button.isVisible()
        page.cancel_button.click()
        qtbot.waitUntil(lambda: not page.busy, timeout=30_000)
    assert list(out.iterdir()) == []
    assert page.job is not None
    assert page.job.state == "cancelled"
    assert page.status.text().startswith("Cancelled")
    assert page.result is None
    assert "backup" not in page.session.results
    assert not next_enabled(wizard_window)
    journal = page.session.ensure_journal()
    assert journal.events("backup_cancelled")[-1]["removed"] is True
    assert journal.events("backup") == []


def _typing(answers: list[str], asked: list[dict[str, str]]) -> Any:
    """confirm_typed without exec(): the real dialog, with `answers` typed in turn."""
    def confirm(parent: Any, title: str, consequence: str, expected: str,
                action: str) -> str | None:
        dialog = TypedConfirmDialog(parent, title, consequence, expected, action)
        dialog.entry.setText(answers.pop(0))
        asked.append({"title": title, "expected": expected, "action": action})
        accepted = dialog.ok.isEnabled()
        dialog.deleteLater()
        return dialog.typed() if accepted else None
    return confirm


def test_continue_without_a_backup_needs_the_database_name(
        page: BackupPage, wizard_window: MigrationWizard, pg_db: PgSettings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[dict[str, str]] = []
    monkeypatch.setattr(backup_page, "confirm_typed",
                        _typing(["enerlink", pg_db.dbname.upper(), pg_db.dbname], asked))
    journal = page.session.ensure_journal()
    for _wrong in range(2):
        page.skip_button.click()
        assert not next_enabled(wizard_window)
        assert journal.events("backup_skipped") == []
    page.skip_button.click()
    assert next_enabled(wizard_window)
    assert [a["expected"] for a in asked] == [pg_db.dbname] * 3
    event = journal.events("backup_skipped")[-1]
    assert event["dbname"] == pg_db.dbname
    assert event["who"]
    assert event["when"]
    assert page.session.results["backup_skipped"]["who"] == event["who"]
    assert "backup" not in page.session.results
    assert page.status.text().startswith("! Continuing without a backup")


def test_the_typed_confirmation_dialog_enables_ok_only_for_the_exact_name(
        qtbot: QtBot) -> None:
    dialog = TypedConfirmDialog(None, "t", "c", "enerlink_db", "Go")
    qtbot.addWidget(dialog)
    assert not dialog.ok.isEnabled()
    for wrong in ("enerlink", "ENERLINK_DB", "enerlink_db "):
        dialog.entry.setText(wrong)
        assert not dialog.ok.isEnabled()
    dialog.entry.setText("enerlink_db")
    assert dialog.ok.isEnabled()
