"""The whole wizard, as a DBA drives it: profile → pre-flight → backup → orphans → migrate →
cache → verify → PDF, on the sample database and a password-protected Redis."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis
from PySide6.QtWidgets import QLineEdit, QMessageBox, QWizard
from pytestqt.qtbot import QtBot

from wizard.core import jobs
from wizard.core.connection import PgSettings
from wizard.core.discovery import MIGRATED
from wizard.sandbox.redis_seed import seed_redis
from wizard.sandbox.servers import RedisServer
from wizard.ui.pages import migrate
from wizard.ui.pages.base import StepPage
from wizard.ui.pages.profile import ProfilePage
from wizard.ui.pages.verify import VerifyPage
from wizard.ui.window import MigrationWizard

TIMEOUT = 60_000


def _settle(qtbot: QtBot, page: StepPage) -> None:
    qtbot.waitUntil(lambda: not page.busy, timeout=TIMEOUT)


def _next(window: MigrationWizard, qtbot: QtBot) -> StepPage:
    qtbot.waitUntil(window.button(QWizard.WizardButton.NextButton).isEnabled, timeout=TIMEOUT)
    window.next()
    page = window.currentPage()
    assert isinstance(page, StepPage)
    _settle(qtbot, page)
    return page


def test_profile_to_pdf(wizard_window: MigrationWizard, qtbot: QtBot, pg_db: PgSettings,
                        redis_server: RedisServer, redis_client: redis.Redis,
                        config_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The test plays the DBA: it answers "Yes" to the plain confirmations.
    monkeypatch.setattr(QMessageBox, "question",
                        staticmethod(lambda *_a, **_k: QMessageBox.StandardButton.Yes))
    monkeypatch.setattr(migrate, "ask", lambda *_a: True)  # Run migration's question box
    seeded = seed_redis(redis_client, 40)
    window = wizard_window
    profile = window.currentPage()
    assert isinstance(profile, ProfilePage)
    values = {"name": "sample", "pg_host": pg_db.host, "pg_port": str(pg_db.port),
              "pg_dbname": pg_db.dbname, "pg_user": pg_db.user,
              "redis_url": f"redis://127.0.0.1:{redis_server.port}/1",
              "backup_folder": str(tmp_path / "backups"), "operator": "Dana DBA"}
    for key, value in values.items():
        widget = profile.editors[key].widget
        assert isinstance(widget, QLineEdit)
        widget.setText(value)
    profile.editors["pg_sslmode"].set("disable")
    profile.passwords["postgres"].setText(pg_db.password or "")
    profile.passwords["redis"].setText(redis_server.password)
    profile.test_redis_button.click()
    _settle(qtbot, profile)
    assert profile.redis_status.text().startswith("✔ Redis"), profile.redis_status.text()
    profile.test_pg_button.click()
    _settle(qtbot, profile)

    pages: dict[str, Any] = {}
    for _ in range(6):
        page: Any = _next(window, qtbot)
        pages[type(page).__name__] = page
        name = type(page).__name__
        if name == "BackupPage":
            page.start_backup()
            _settle(qtbot, page)
            assert page.result is not None
            assert page.result.verified, page.result.error
        elif name == "MigratePage":
            page.start_run(rehearse=True)  # a run needs a passing rehearsal of its plan
            _settle(qtbot, page)
            page.start_run(rehearse=False)
            _settle(qtbot, page)
            assert page.result is not None
            assert page.result.ok, page.result.error
        elif name == "CachePage":
            page.start_dry_run()
            _settle(qtbot, page)
            page.start_migration()
            _settle(qtbot, page)
    assert list(pages) == ["PreflightPage", "BackupPage", "OrphansPage", "MigratePage",
                           "CachePage", "VerifyPage"]
    assert jobs.inspect(pg_db).state == MIGRATED
    assert not redis_client.keys("orders:by_prosumer:*")
    assert len(redis_client.keys("orders:by_user:*")) == seeded["orders:by_prosumer:*"]
    assert redis_client.exists("orders:all")  # keys of other patterns survive
    verify = pages["VerifyPage"]
    assert isinstance(verify, VerifyPage)
    qtbot.waitUntil(lambda: window.button(QWizard.WizardButton.FinishButton).isEnabled(),
                    timeout=TIMEOUT)
    pdf = verify.export_pdf(tmp_path / "report.pdf")
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    for needle in (pg_db.dbname, "Dana DBA", "verified", "ALTER TABLE"):
        assert needle in text, needle
    journal = window.session.ensure_journal()  # type: ignore[union-attr]
    failed = [c for c in journal.events("verification")[-1]["checks"] if c["status"] != "pass"]
    assert failed == []
    # No secret anywhere the run wrote: profile file, journal, log, PDF.
    written = [config_dir / "profiles" / "sample.json", journal.path,
               journal.folder / "wizard.log"]
    for secret in (pg_db.password or "", redis_server.password):
        assert secret not in text
        for path in written:
            assert secret not in path.read_text(), path
    assert seeded  # the Redis sample had keys to clear
