"""The first two pages, driven with qtbot on real PostgreSQL: profile, test, pre-flight."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QLineEdit, QWizard
from pytestqt.qtbot import QtBot

from wizard.core import profiles, secrets
from wizard.core.connection import PgSettings
from wizard.ui.pages.preflight import PreflightPage
from wizard.ui.pages.profile import ProfilePage
from wizard.ui.window import MigrationWizard


@pytest.fixture
def window(wizard_window: MigrationWizard) -> MigrationWizard:
    return wizard_window


def fill(page: ProfilePage, name: str, pg: PgSettings) -> None:
    values = {"name": name, "pg_host": pg.host, "pg_port": str(pg.port),
              "pg_dbname": pg.dbname, "pg_user": pg.user}
    for key, value in values.items():
        widget = page.editors[key].widget
        assert isinstance(widget, QLineEdit)
        widget.setText(value)
    page.editors["pg_sslmode"].set("disable")
    page.passwords["postgres"].setText(pg.password or "")


def next_enabled(wizard: QWizard) -> bool:
    return wizard.button(QWizard.WizardButton.NextButton).isEnabled()


def test_connect_save_profile_and_run_preflight(window: MigrationWizard, qtbot: QtBot,
                                                pg_db: PgSettings, config_dir: Path) -> None:
    page = window.currentPage()
    assert isinstance(page, ProfilePage)
    assert not next_enabled(window)
    fill(page, "sample", pg_db)
    page.test_pg_button.click()
    qtbot.waitUntil(lambda: next_enabled(window), timeout=10_000)
    assert page.pg_status.text().startswith("✔ PostgreSQL")
    # Changing a connection field invalidates the test.
    port = page.editors["pg_port"].widget
    assert isinstance(port, QLineEdit)
    port.setText("1")
    assert not next_enabled(window)
    port.setText(str(pg_db.port))
    page.test_pg_button.click()
    qtbot.waitUntil(lambda: next_enabled(window), timeout=10_000)
    window.next()
    pre = window.currentPage()
    assert isinstance(pre, PreflightPage)
    qtbot.waitUntil(lambda: pre.result is not None, timeout=20_000)
    assert pre.result is not None
    assert not pre.result.blocking, pre.result.blocking
    qtbot.waitUntil(pre.isComplete, timeout=5_000)
    assert pre.result.state == "pre"
    assert pg_db.dbname in window.windowTitle()
    assert "sample" in window.windowTitle()
    # The profile was saved without its password; the password went to the keyring.
    saved = profiles.load("sample")
    assert saved.pg_dbname == pg_db.dbname
    text = (config_dir / "profiles" / "sample.json").read_text()
    assert pg_db.password
    assert pg_db.password not in text
    assert secrets.get("sample", "postgres") == pg_db.password
    log = (window.session.ensure_journal().folder / "wizard.log").read_text()  # type: ignore[union-attr]
    assert pg_db.password not in log


def test_wrong_password_is_named_and_next_stays_disabled(window: MigrationWizard, qtbot: QtBot,
                                                          pg_db: PgSettings) -> None:
    page = window.currentPage()
    assert isinstance(page, ProfilePage)
    fill(page, "wrong", pg_db)
    page.passwords["postgres"].setText("not-the-password")
    page.test_pg_button.click()
    qtbot.waitUntil(lambda: page.pg_status.text().startswith("✘"), timeout=10_000)
    assert "password authentication failed" in page.pg_status.text()
    assert "wrong password for this role" in page.errors.message.text()
    assert not next_enabled(window)


def test_saved_profile_loads_its_password_from_the_keyring(window: MigrationWizard,
                                                           pg_db: PgSettings) -> None:
    profiles.save(profiles.Profile(name="stored", pg_host=pg_db.host, pg_port=pg_db.port,
                                   pg_dbname=pg_db.dbname, pg_user=pg_db.user))
    secrets.set("stored", "postgres", pg_db.password or "")
    page = window.currentPage()
    assert isinstance(page, ProfilePage)
    page.refresh_list(select="stored")
    assert page.passwords["postgres"].text() == pg_db.password


def test_the_keyring_is_asked_once_the_window_has_painted(window: MigrationWizard,
                                                          qtbot: QtBot) -> None:
    """The start-up does not wait for the keyring's backend: the shown page asks it right
    after its first paint and says what it found (the test's in-memory backend)."""
    page = window.currentPage()
    assert isinstance(page, ProfilePage)
    qtbot.waitUntil(lambda: page.remember.isEnabled(), timeout=5_000)
    assert page.remember.isChecked()
    assert page.keyring_note.text() == f"passwords are kept in {secrets.backend_status().name}"
