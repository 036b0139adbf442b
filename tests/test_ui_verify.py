"""The verify page on real PostgreSQL, Redis, pg_dump and pg_restore: checklist, manual
items, the report, revert and restore."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
from PySide6.QtWidgets import QWizard
from pytestqt.qtbot import QtBot

from wizard.core import jobs, redis_migrate
from wizard.core.connection import PgSettings
from wizard.core.events import BackupDone
from wizard.core.plan import UP
from wizard.core.redis_conn import RedisSettings
from wizard.core.redis_rules import DEFAULT_RULES
from wizard.core.report import MANUAL_CHECKS
from wizard.core.restore_inspect import sha256_of
from wizard.core.session import WizardSession
from wizard.core.verify import FAIL, PASS
from wizard.sandbox.probes import databases, fingerprint, has_table, pdf_text, pg_dump_custom
from wizard.sandbox.redis_seed import old_order_book_problems, renamed_order_book
from wizard.sandbox.servers import PostgresServer, RedisServer
from wizard.ui.pages import verify as verify_module
from wizard.ui.pages.verify import VerifyPage
from wizard.ui.window import MigrationWizard

JOB_MS = 60_000




def migrate(session: WizardSession) -> None:
    _plan, result, _journal = jobs.run(session.pg, UP, journal=session.ensure_journal())
    assert result.ok, result.error


def open_verify(window: MigrationWizard, qtbot: QtBot) -> VerifyPage:
    page = window.start_at(VerifyPage)
    assert isinstance(page, VerifyPage)
    qtbot.waitUntil(lambda: page.checks is not None and not page.busy, timeout=JOB_MS)
    return page


def rerun_done(page: VerifyPage, previous: Any) -> bool:
    return page.checks is not previous and page.checks is not None and not page.busy


@pytest.fixture
def redis_settings(redis_server: RedisServer, redis_client: redis.Redis) -> RedisSettings:
    return RedisSettings(url=redis_server.url, password=redis_server.password, db=1)


# --- the checklist, the operator's part, the report -----------------------------------------


def test_after_migration_every_check_passes_and_the_operator_signs_the_pdf(
        wizard_window: MigrationWizard, qtbot: QtBot, pg_db: PgSettings, open_session: Any,
        redis_settings: RedisSettings, redis_server: RedisServer, tmp_path: Path) -> None:
    session = open_session(wizard_window, pg_db, redis_settings)
    migrate(session)
    journal = session.ensure_journal()
    # The Redis page's dry run, which verify compares the Redis data with.
    redis_migrate.dry_run(redis_settings, DEFAULT_RULES, journal=journal)
    redis_migrate.migrate(redis_settings, DEFAULT_RULES, journal=journal)
    page = open_verify(wizard_window, qtbot)

    assert page.checks
    assert [(c.id, c.detail) for c in page.checks if c.status != PASS] == []
    assert {"no_orphans", "redis_fields", "redis_moved", "redis_keys"} <= {
        c.id for c in page.checks}
    assert page.tree.topLevelItemCount() == len(page.checks)
    rows = [page.tree.topLevelItem(i) for i in range(len(page.checks))]
    assert {r.text(0) for r in rows if r is not None} == {"✔"}
    # Evidence: the query and its result, as children and in the monospace pane.
    orphan_row = next(r for r, c in zip(rows, page.checks, strict=True)
                      if c.id == "no_orphans")
    assert orphan_row is not None
    children = [orphan_row.child(i) for i in range(orphan_row.childCount())]
    assert {c.text(1) for c in children if c is not None} == {"query", "result"}
    page.tree.setCurrentItem(orphan_row)
    assert "-- query" in page.evidence.toPlainText()
    assert "anti-join" in page.evidence.toPlainText()
    assert journal.events("verification")
    # The last page: Finish is enabled once the checklist has run.
    assert wizard_window.button(QWizard.WizardButton.FinishButton).isEnabled()

    # Every manual item of the guide is on the page, as a check box with a note.
    assert list(page.manual) == [m.id for m in MANUAL_CHECKS]
    for spec in MANUAL_CHECKS:
        assert page.manual[spec.id].box.text() == spec.title
    page.manual["app_starts"].box.setChecked(True)
    login = page.manual["login_user_id"]
    login.box.setChecked(True)
    login.note.setFocus()
    qtbot.keyClicks(login.note, "curl shows userId 42")  # type: ignore[no-untyped-call]
    # Saved once after typing stops (debounced), not per keystroke.
    qtbot.waitUntil(lambda: any(e.get("note") == "curl shows userId 42"
                                for e in journal.events("manual_check")), timeout=10_000)
    login_events = [e for e in journal.events("manual_check") if e["id"] == "login_user_id"]
    assert [(e["done"], e["note"]) for e in login_events] == [
        (True, ""), (True, "curl shows userId 42")]
    # A note left (focus out / Enter) is saved at once.
    fe = page.manual["fe_console"]
    fe.note.setText("no prosumer in the console")
    fe.note.editingFinished.emit()
    assert journal.events("manual_check")[-1] == {
        **journal.events("manual_check")[-1], "id": "fe_console", "done": False,
        "note": "no prosumer in the console"}
    page.operator.setText("Dana Operator")
    page.operator.editingFinished.emit()
    assert journal.events("operator")[-1]["name"] == "Dana Operator"

    pdf = page.export_pdf(tmp_path / "report.pdf")
    text = pdf_text(pdf)
    for check in page.checks:
        assert " ".join(check.title.split()) in text, check.title
    for spec in MANUAL_CHECKS:
        assert " ".join(spec.title.split()) in text, spec.title
    assert "Dana Operator" in text
    assert "curl shows userId 42" in text
    assert pg_db.dbname in text
    assert pg_db.password
    assert pg_db.password not in text
    assert redis_server.password not in text
    assert page.default_export("pdf").name.startswith(f"enerlink-migration-{pg_db.dbname}-")

    exported = page.export_json(tmp_path / "report.json")
    assert exported.stat().st_mode & 0o777 == 0o600  # it names hosts and databases
    exports = journal.events("report_exported")
    assert [(e["format"], e["path"]) for e in exports] == [("pdf", str(pdf)),
                                                           ("json", str(exported))]
    assert exports[0]["pages"] > 0
    assert exports[1].get("pages") is None
    raw = exported.read_text()
    assert pg_db.password not in raw
    assert redis_server.password not in raw
    data = json.loads(raw)
    items = {c["id"]: c for c in data["checklist"]}
    assert items["app_starts"]["status"] == "done"
    assert items["login_user_id"]["note"] == "curl shows userId 42"
    assert items["fe_profile"]["status"] == "open"
    assert items["no_orphans"]["status"] == PASS
    assert data["operator"] == "Dana Operator"

    assert page.validatePage()
    signed = journal.events("verification_signed")[-1]
    assert signed["operator"] == "Dana Operator"
    assert signed["failed_checks"] == []
    log = (journal.folder / "wizard.log").read_text()
    assert pg_db.password not in log
    assert redis_server.password not in log


# --- undoing -----------------------------------------------------------------------------------


def test_revert_from_the_page_brings_the_schema_back(
        wizard_window: MigrationWizard, qtbot: QtBot, pg_db: PgSettings, open_session: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = fingerprint(pg_db)
    session = open_session(wizard_window, pg_db)
    migrate(session)
    page = open_verify(wizard_window, qtbot)
    asked: list[tuple[str, str]] = []

    def typed(_parent: Any, _title: str, text: str, expected: str, _action: str) -> str | None:
        asked.append((text, expected))
        return None if len(asked) == 1 else expected  # first declined, then typed
    monkeypatch.setattr(verify_module, "confirm_typed", typed)
    page.revert_button.click()
    assert not page.busy  # declined: nothing runs
    assert "user" in asked[0][0]
    first = page.checks
    page.revert_button.click()
    assert asked[1][1] == pg_db.dbname
    qtbot.waitUntil(lambda: "revert" in session.results and rerun_done(page, first),
                    timeout=JOB_MS)
    assert session.results["revert"].ok
    assert fingerprint(pg_db) == before
    assert "Reverted" in page.result_label.text()
    # The checks ran again, the revert's this time: all of them hold on the reverted schema.
    assert page.checks is not None
    assert page.heading.text().startswith("Checks of the revert")
    assert [c.id for c in page.checks] == ["revert_state_pre", "revert_fingerprint",
                                           "revert_no_migration_row", "redis_outcome"]
    assert [c for c in page.checks if c.status == FAIL] == []
    statuses = {c.id: c.status for c in page.checks}
    assert statuses["revert_state_pre"] == statuses["revert_fingerprint"] == PASS
    assert statuses["revert_no_migration_row"] == PASS
    assert "0 failed" in page.summary.text()


def test_restore_from_the_page_brings_back_the_pre_migration_schema(
        wizard_window: MigrationWizard, qtbot: QtBot, live: PgSettings, open_session: Any,
        pg_server: PostgresServer, redis_settings: RedisSettings, redis_client: redis.Redis,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    before = fingerprint(live)
    session = open_session(wizard_window, live, redis_settings)
    journal = session.ensure_journal()
    backup = pg_dump_custom(pg_server, live, tmp_path / "before.dump")
    # What the backup step journals for a verified backup of this run.
    journal.record(BackupDone({"path": str(backup), "format": "custom", "dbname": live.dbname,
                               "host": live.host, "port": live.port,
                               "sha256": sha256_of(backup), "verified": True,
                               "size_bytes": backup.stat().st_size}))
    migrate(session)
    renamed_order_book(redis_client)
    page = open_verify(wizard_window, qtbot)
    assert page.backup_of_this_run() == backup

    asked: list[tuple[str, str]] = []

    def typed(_parent: Any, _title: str, consequence: str, expected: str,
              _action: str) -> str:
        asked.append((consequence, expected))
        return expected
    monkeypatch.setattr(verify_module, "confirm_typed", typed)
    first = page.checks
    page.restore_button.click()
    qtbot.waitUntil(lambda: page.restore_outcome is not None, timeout=JOB_MS)
    qtbot.waitUntil(lambda: rerun_done(page, first), timeout=JOB_MS)

    outcome = page.restore_outcome
    assert outcome is not None
    result = outcome.result
    assert result.ok, result.error
    consequence, expected = asked[0]
    assert expected == live.dbname
    assert result.before_db
    assert result.before_db in consequence
    assert fingerprint(live) == before
    assert not has_table(live, "user")
    assert has_table(live, "prosumer")
    # The migrated database is kept under the reported name, with the DROP to run later.
    assert result.before_db in databases(pg_server)
    assert has_table(live.with_dbname(result.before_db), "user")
    shown = page.result_label.text()
    assert result.before_db in shown
    assert f'DROP DATABASE "{result.before_db}";' in shown
    # Redis is back in the old application's names (the backup is from before the rename).
    assert outcome.cache is not None
    assert outcome.cache.changed == 2
    assert old_order_book_problems(redis_client) == []
    assert [e["result"]["ok"] for e in journal.events("restore_finished")] == [True]
    # The checks shown are the restore's: the backup's state and rows, Redis aligned.
    assert page.heading.text().startswith("Checks of the restore")
    assert page.checks is not None
    statuses = {c.id: c.status for c in page.checks}
    assert set(statuses) == {"restore_state", "restore_counts", "redis_outcome"}
    assert statuses["restore_state"] == statuses["restore_counts"] == PASS
    assert FAIL not in statuses.values(), [c.detail for c in page.checks]
    assert "pre" in next(c.detail for c in page.checks if c.id == "restore_state")
