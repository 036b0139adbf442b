"""The orphans page driven with qtbot on real PostgreSQL: scan, judge, export, delete, re-scan."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QWizard
from pytestqt.qtbot import QtBot

from wizard.core.connection import PgSettings
from wizard.sandbox.seed import inject_orphans
from wizard.sandbox.servers import PostgresServer
from wizard.ui.pages import orphans as orphans_page
from wizard.ui.pages.orphans import OrphansPage
from wizard.ui.window import MigrationWizard

SEVEN = ("wallet.prosumer_id", "smart_meter.prosumer_id", "transaction_log.prosumer_id",
         "market_trade.buyer_prosumer_id", "market_trade.seller_prosumer_id",
         "idrs_conversion.prosumer_id", "token_blacklist.prosumer_id")
WALLET_FK = "FK_62a1a16628b883318e6b443cf52"


def next_enabled(window: QWizard) -> bool:
    return window.button(QWizard.WizardButton.NextButton).isEnabled()


@pytest.fixture
def start(wizard_window: MigrationWizard, open_session: Any, pg_db: PgSettings,
          qtbot: QtBot) -> Iterator[Any]:
    """start(): show the page (it scans on entry) and wait until the scan is judged."""
    shown: list[OrphansPage] = []

    def go() -> OrphansPage:
        open_session(wizard_window, pg_db)
        page = wizard_window.start_at(OrphansPage)
        assert isinstance(page, OrphansPage)
        shown.append(page)
        wait_judged(qtbot, page)
        return page
    yield go
    for page in shown:  # a test that failed mid-job: end it before the window closes
        page.cancel_job()
        qtbot.waitUntil(lambda: all(p.settled for p in shown), timeout=60_000)


def wait_judged(qtbot: QtBot, page: OrphansPage) -> None:
    qtbot.waitUntil(lambda: page.settled, timeout=60_000)
    assert page.blocking is not None, page.errors.details()
    assert not page.errors.isVisible() or page.blocking, page.errors.details()


def counts(page: OrphansPage) -> dict[str, str]:
    """What the table shows: table.column → the orphan count as displayed."""
    shown = {}
    for row in range(page.table.rowCount()):
        cells = [page.table.item(row, c) for c in range(page.table.columnCount())]
        texts = [c.text() if c is not None else "" for c in cells]
        shown[f"{texts[0]}.{texts[1]}"] = texts[3]
    return shown


def test_a_clean_database_scans_to_zero_and_is_valid(
        start: Any, wizard_window: MigrationWizard) -> None:
    page = start()
    assert counts(page) == dict.fromkeys(SEVEN, "0")
    assert page.blocking == []
    assert next_enabled(wizard_window)
    assert "no orphan rows" in page.summary.text()
    assert "Nothing stops the migration" in page.summary.text()
    assert not page.export_button.isEnabled()
    assert not page.delete_button.isEnabled()
    assert page.session.results["orphans"].clean
    assert page.folder.text() == str(page.session.backup_folder)
    assert page.session.ensure_journal().events("orphan_scan")[-1]["total"] == 0


def _drop_wallet_fk(pg_db: PgSettings) -> None:
    with pg_db.connect() as conn:
        conn.execute(f'ALTER TABLE wallet DROP CONSTRAINT "{WALLET_FK}"')


def test_orphans_in_a_column_whose_fk_is_added_block_until_exported_and_deleted(
        start: Any, wizard_window: MigrationWizard, qtbot: QtBot, pg_server: PostgresServer,
        pg_db: PgSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _drop_wallet_fk(pg_db)  # the migration must add it back, and VALIDATE it
    with pg_server.admin_connect(pg_db.dbname) as admin:
        inject_orphans(admin, 25)
    page = start()
    assert counts(page) == dict.fromkeys(SEVEN, "25")
    assert page.blocking is not None
    assert len(page.blocking) == 1
    assert page.blocking[0].startswith("wallet.prosumer_id: 25 orphan rows; the migration "
                                       "must add foreign key")
    assert not next_enabled(wizard_window)
    assert page.errors.isVisible()
    assert "wallet.prosumer_id" in page.errors.details()
    assert "Export CSV" in page.errors.details()  # what to do
    wallet_row = list(counts(page)).index("wallet.prosumer_id")
    mark = page.table.item(wallet_row, 4)
    assert mark is not None
    assert mark.text() == "✘ blocks"
    assert mark.toolTip() == page.blocking[0]
    assert page.table.item(wallet_row, 2).text().startswith("(none")
    # Samples of the selected column: at most 20 of the 25.
    page.table.selectRow(wallet_row)
    assert page.samples.rowCount() == 20
    headers = [page.samples.horizontalHeaderItem(c).text()
               for c in range(page.samples.columnCount())]
    assert "prosumer_id" in headers
    assert "first 20 of 25" in page.samples_title.text()
    # Delete needs an export of this scan first.
    assert page.export_button.isEnabled()
    assert not page.delete_button.isEnabled()
    out = tmp_path / "exports"
    page.folder.setText(str(out))
    page.export_button.click()
    qtbot.waitUntil(lambda: not page.busy, timeout=60_000)
    assert page.exported, page.errors.details()
    files = {f.table: f for f in page.exported}
    assert set(files) == {"wallet", "smart_meter", "transaction_log", "market_trade",
                          "idrs_conversion", "token_blacklist"}
    for f in files.values():
        assert f.path.parent == out
        assert stat.S_IMODE(f.path.stat().st_mode) == 0o600
        assert f.rows == (50 if f.table == "market_trade" else 25)
        assert len(f.path.read_text().splitlines()) == f.rows + 1  # a header row
    assert page.delete_button.isEnabled()
    assert str(out) in page.exports_note.text()
    # Not confirmed: nothing happens.
    typed: list[str | None] = [None, pg_db.dbname]
    asked: list[str] = []

    def confirm(_parent: Any, _title: str, _text: str, expected: str,
                _action: str) -> str | None:
        asked.append(expected)
        return typed.pop(0)
    monkeypatch.setattr(orphans_page, "confirm_typed", confirm)
    page.delete_button.click()
    assert not page.busy
    assert page.scan is not None
    assert page.scan.total == 7 * 25
    # Confirmed: the exported rows go, the re-scan is clean and Next is enabled.
    page.delete_button.click()
    assert asked == [pg_db.dbname, pg_db.dbname]
    wait_judged(qtbot, page)
    assert page.scan is not None
    assert page.scan.clean
    assert counts(page) == dict.fromkeys(SEVEN, "0")
    assert page.blocking == []
    assert next_enabled(wizard_window)
    assert not page.errors.isVisible()
    assert "wallet: 25 rows" in page.exports_note.text()
    events = [e["event"] for e in page.session.ensure_journal().events()
              if e["event"].startswith("orphan_")]
    # scan on entry, export, delete (with its own re-scan), then the page's judged scan
    assert events[:4] == ["orphan_scan", "orphan_export", "orphan_delete", "orphan_scan"]
    assert page.session.results["orphans"].clean


def test_orphans_under_existing_foreign_keys_do_not_block(
        start: Any, wizard_window: MigrationWizard, qtbot: QtBot, pg_server: PostgresServer,
        pg_db: PgSettings, tmp_path: Path) -> None:
    with pg_server.admin_connect(pg_db.dbname) as admin:
        inject_orphans(admin, 2)
    page = start()
    assert counts(page) == dict.fromkeys(SEVEN, "2")
    assert page.blocking == []
    assert next_enabled(wizard_window)
    assert "do not stop the migration" in page.summary.text()
    # An export belongs to its scan: Re-scan makes Delete wait for a new export.
    page.folder.setText(str(tmp_path / "x"))
    page.export_button.click()
    qtbot.waitUntil(lambda: not page.busy, timeout=60_000)
    assert page.exported, page.errors.details()
    assert page.delete_button.isEnabled()
    page.rescan_button.click()
    assert not page.delete_button.isEnabled()
    wait_judged(qtbot, page)
    assert page.exported == []
    assert not page.delete_button.isEnabled()
    assert page.export_button.isEnabled()
