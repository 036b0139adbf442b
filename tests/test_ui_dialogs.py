"""The restore and previous-runs dialogs on real PostgreSQL, pg_dump and pg_restore."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from psycopg import sql
from PySide6.QtWidgets import QLineEdit, QMessageBox
from pytestqt.qtbot import QtBot

from wizard.core import jobs
from wizard.core.checklist import final_checklist
from wizard.core.connection import PgSettings
from wizard.core.events import RestoreFinished, RunFinished
from wizard.core.journal import Journal
from wizard.core.plan import UP
from wizard.core.redis_conn import RedisSettings
from wizard.core.report import MANUAL_CHECKS, record_operator
from wizard.core.session import WizardSession
from wizard.sandbox.probes import databases, fingerprint, has_table, pdf_text, pg_dump_custom
from wizard.sandbox.redis_seed import old_order_book_problems, renamed_order_book
from wizard.sandbox.servers import PostgresServer, RedisServer
from wizard.ui.confirm import TypedConfirmDialog
from wizard.ui.dialogs import restore as restore_dialog
from wizard.ui.dialogs.restore import RestoreDialog
from wizard.ui.dialogs.runs import RunsDialog
from wizard.ui.pages.profile import ProfilePage
from wizard.ui.window import MigrationWizard

JOB_MS = 60_000


def migrate(session: WizardSession) -> None:
    _plan, result, _journal = jobs.run(session.pg, UP, journal=session.ensure_journal())
    assert result.ok, result.error


def close(dialog: Any, qtbot: QtBot) -> None:
    if dialog.job is not None:
        qtbot.waitUntil(lambda: not dialog.busy, timeout=JOB_MS)
    dialog.reject()


def test_restore_dialog_shows_what_is_inside_then_restores(
        wizard_window: MigrationWizard, qtbot: QtBot, live: PgSettings,
        open_session: Any, pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    before = fingerprint(live)
    backup = pg_dump_custom(pg_server, live, tmp_path / "outside.dump")  # not in any journal
    session = open_session(wizard_window, live)
    migrate(session)
    dialog = RestoreDialog.open_for(wizard_window)
    assert dialog is not None
    assert not dialog.restore_button.isEnabled()
    dialog.path.setText(str(backup))
    dialog.jobs.setValue(2)
    dbs_before = databases(pg_server)
    dialog.inspect_button.click()
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=JOB_MS)
    plan = dialog.plan
    assert plan is not None
    shown = dialog.inspection.toPlainText()
    for expected in ("custom", live.dbname, "schema state in the backup: pre", "prosumer",
                     "wallet", "read completely by pg_restore", plan.before_db,
                     plan.restore_db):
        assert expected in shown, expected
    assert databases(pg_server) == dbs_before  # inspecting changed nothing
    qtbot.waitUntil(dialog.restore_button.isEnabled, timeout=5_000)

    asked: list[str] = []

    def typed(_parent: Any, _title: str, consequence: str, expected: str,
              _action: str) -> str:
        asked.append(expected)
        assert plan.before_db in consequence
        return expected
    monkeypatch.setattr(restore_dialog, "confirm_typed", typed)
    dialog.restore_button.click()
    qtbot.waitUntil(lambda: dialog.outcome is not None, timeout=JOB_MS)
    outcome = dialog.outcome
    assert outcome is not None
    assert outcome.result.ok, outcome.result.error
    assert asked == [live.dbname]
    assert fingerprint(live) == before
    assert has_table(live.with_dbname(plan.before_db), "user")
    text = dialog.result_label.text()
    assert plan.before_db in text
    assert "DROP DATABASE" in text
    assert "no Redis" in text  # the cache part is reported on its own
    # The dialog's own run journal, with its log file.
    assert dialog.journal is not None
    assert [e["result"]["ok"] for e in dialog.journal.events("restore_finished")] == [True]
    assert (dialog.journal.folder / "wizard.log").read_text().count("swapping") >= 1
    assert live.password
    assert live.password not in (dialog.journal.folder / "wizard.log").read_text()
    close(dialog, qtbot)


def test_restore_dialog_brings_redis_back_to_the_old_names_after_the_swap(
        wizard_window: MigrationWizard, qtbot: QtBot, live: PgSettings,
        open_session: Any, pg_server: PostgresServer, redis_server: RedisServer,
        redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    backup = pg_dump_custom(pg_server, live, tmp_path / "before.dump")
    settings = RedisSettings(url=redis_server.url, password=redis_server.password, db=1)
    session = open_session(wizard_window, live, settings)
    migrate(session)
    renamed_order_book(redis_client)
    dialog = RestoreDialog.open_for(wizard_window)
    assert dialog is not None
    dialog.path.setText(str(backup))
    dialog.inspect_button.click()
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=JOB_MS)
    qtbot.waitUntil(dialog.restore_button.isEnabled, timeout=5_000)
    # Said before anything changes: what the restore will do to Redis, and why.
    assert ("then Redis: rename hash field userId → prosumerId in orders:* hashes"
            in " ".join(dialog.inspection.toPlainText().split()))
    monkeypatch.setattr(restore_dialog, "confirm_typed",
                        lambda _p, _t, _c, expected, _a: expected)
    dialog.restore_button.click()
    qtbot.waitUntil(lambda: dialog.outcome is not None, timeout=JOB_MS)
    outcome = dialog.outcome
    assert outcome is not None
    assert outcome.ok, outcome.result.error or outcome.cache_error
    assert outcome.cache is not None
    assert outcome.cache.changed == 2
    assert old_order_book_problems(redis_client) == []
    assert "✔ Redis: 2 keys brought to the old names" in dialog.result_label.text()
    assert not dialog.errors.isVisible()
    # The core job's record, in the dialog's own journal: the same as the CLI's.
    assert dialog.journal is not None
    events = [e["event"] for e in dialog.journal.events()]
    assert events[-3:] == ["restore_swapped", "redis_migrated", "restore_finished"]
    assert redis_server.password not in dialog.journal.path.read_text()
    close(dialog, qtbot)


def test_restore_dialog_asks_for_the_other_databases_name_and_lists_the_sessions(
        wizard_window: MigrationWizard, qtbot: QtBot, live: PgSettings,
        open_session: Any, pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    backup = pg_dump_custom(pg_server, live, tmp_path / "s1.dump")  # a backup of live (s1)
    target = live.with_dbname(f"{live.dbname}_s4")  # pg_db's teardown drops it
    with pg_server.admin_connect() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE enerlink_template OWNER {}").format(
            sql.Identifier(target.dbname), sql.Identifier(live.user)))
    app = psycopg.connect(host=target.host, port=target.port, user=target.user,
                          password=target.password, dbname=target.dbname, sslmode="disable",
                          application_name="enerlink-api", autocommit=True)
    try:
        row = app.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        pid = row[0]
        open_session(wizard_window, target)
        dialog = RestoreDialog.open_for(wizard_window)
        assert dialog is not None
        dialog.path.setText(str(backup))
        dialog.inspect_button.click()
        qtbot.waitUntil(lambda: dialog.plan is not None, timeout=JOB_MS)
        shown = dialog.inspection.toPlainText()
        assert f"database: {live.dbname} (named in the archive's table of contents)" in shown
        assert f"! this is a backup of {live.dbname}, not of {target.dbname}" in shown
        assert f"sessions on {target.dbname} now (1), terminated at the swap:" in shown
        assert f"pid {pid}: {live.user}, enerlink-api, 127.0.0.1, idle" in shown
        qtbot.waitUntil(dialog.restore_button.isEnabled, timeout=5_000)
        asked: list[tuple[str, str]] = []
        answers: list[bool] = [True, False, True, True]  # the second name declined once

        def typed(_parent: Any, _title: str, consequence: str, expected: str,
                  _action: str) -> str | None:
            asked.append((consequence, expected))
            return expected if answers.pop(0) else None
        monkeypatch.setattr(restore_dialog, "confirm_typed", typed)
        dialog.restore_button.click()
        assert not dialog.busy  # declined: nothing runs, nothing agreed
        assert dialog.plan is not None
        assert dialog.plan.options.from_database is None
        assert not dialog.plan.options.terminate_sessions
        dialog.restore_button.click()
        qtbot.waitUntil(lambda: dialog.outcome is not None, timeout=JOB_MS)
        outcome = dialog.outcome
        assert outcome is not None
        assert outcome.result.ok, outcome.result.error
        assert [e for _c, e in asked] == [target.dbname, live.dbname] * 2
        assert f"pid {pid}: {live.user}, enerlink-api" in asked[0][0]
        assert "will be terminated at the swap" in asked[0][0]
        assert f"is a backup of {live.dbname}" in asked[1][0]
        assert pid in [t["pid"] for t in outcome.result.terminated]
        with pytest.raises(psycopg.OperationalError):
            app.execute("SELECT 1")
        close(dialog, qtbot)
    finally:
        app.close()


def test_restore_dialog_refuses_a_truncated_backup(
        wizard_window: MigrationWizard, qtbot: QtBot, live: PgSettings,
        open_session: Any, pg_server: PostgresServer, tmp_path: Path) -> None:
    whole = pg_dump_custom(pg_server, live, tmp_path / "whole.dump")
    cut = tmp_path / "cut.dump"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    open_session(wizard_window, live)
    dialog = RestoreDialog.open_for(wizard_window)
    assert dialog is not None
    dialog.path.setText(str(cut))
    dialog.inspect_button.click()
    qtbot.waitUntil(lambda: dialog.errors.isVisible(), timeout=JOB_MS)
    message = dialog.errors.message.text()
    assert str(cut) in message
    # Cut in the TOC, --list fails; cut in the data, reading it to the end does.
    assert "cannot read" in message or "damaged" in message
    assert dialog.plan is None
    assert "Not restorable" in dialog.inspection.toPlainText()
    assert not dialog.restore_button.isEnabled()
    close(dialog, qtbot)


def test_restore_dialog_takes_the_template_database_from_its_field(
        wizard_window: MigrationWizard, qtbot: QtBot, live: PgSettings,
        open_session: Any, pg_server: PostgresServer, tmp_path: Path) -> None:
    backup = pg_dump_custom(pg_server, live, tmp_path / "live.dump")
    open_session(wizard_window, live)
    dialog = RestoreDialog.open_for(wizard_window)
    assert dialog is not None
    assert dialog.template.text() == "template0"
    dialog.path.setText(str(backup))
    dialog.template.setText("no_such_template")  # the backup's uuid-ossp is looked up there
    dialog.inspect_button.click()
    qtbot.waitUntil(lambda: dialog.errors.isVisible(), timeout=JOB_MS)
    assert "cannot read template database no_such_template" in dialog.errors.message.text()
    assert dialog.plan is None
    dialog.template.setText("template0")
    dialog.inspect_button.click()
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=JOB_MS)
    plan = dialog.plan
    assert plan is not None
    assert plan.options.template == "template0"
    close(dialog, qtbot)


def test_restore_dialog_before_a_run_uses_the_first_pages_form(
        wizard_window: MigrationWizard, qtbot: QtBot, pg_db: PgSettings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    warned: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning",
                        lambda _p, _t, text, *_a: warned.append(text))
    page = wizard_window.currentPage()
    assert isinstance(page, ProfilePage)
    assert wizard_window.session is None
    values = {"pg_host": pg_db.host, "pg_port": str(pg_db.port), "pg_dbname": pg_db.dbname,
              "pg_user": pg_db.user}
    for key, value in values.items():
        widget = page.editors[key].widget
        assert isinstance(widget, QLineEdit)
        widget.setText(value)
    page.passwords["postgres"].setText(pg_db.password or "")
    dialog = RestoreDialog.open_for(wizard_window)
    assert dialog is not None
    assert (dialog.pg.host, dialog.pg.port, dialog.pg.dbname) == (pg_db.host, pg_db.port,
                                                                  pg_db.dbname)
    assert dialog.pg.password == pg_db.password
    assert warned == []
    close(dialog, qtbot)
    port = page.editors["pg_port"].widget
    assert isinstance(port, QLineEdit)
    port.setText("not a port")
    assert RestoreDialog.open_for(wizard_window) is None
    assert "whole number" in warned[0]


def test_typed_confirmation_enables_its_button_only_for_the_exact_name(qtbot: QtBot) -> None:
    dialog = TypedConfirmDialog(None, "Restore", "replaces the database", "enerlink_prod",
                                "&Restore")
    qtbot.addWidget(dialog)
    assert not dialog.ok.isEnabled()
    dialog.entry.setText("enerlink_pro")
    assert not dialog.ok.isEnabled()
    dialog.entry.setText("enerlink_prod ")
    assert not dialog.ok.isEnabled()
    dialog.entry.setText("enerlink_prod")
    assert dialog.ok.isEnabled()


def test_runs_dialog_lists_the_run_and_exports_its_pdf(
        wizard_window: MigrationWizard, qtbot: QtBot, pg_db: PgSettings,
        open_session: Any, tmp_path: Path) -> None:
    session = open_session(wizard_window, pg_db)
    migrate(session)
    journal = session.ensure_journal()
    final_checklist(pg_db, journal=journal)
    record_operator(journal, "Sam Reviewer")
    (journal.folder / "wizard.log").write_text("12:00:00 [step] Migrate…\n")
    # An older run without a wizard log: its journaled log lines are shown instead.
    _plan, result, older = jobs.run(pg_db, UP, journal=Journal.create(pg_db, "migrate"))
    assert result.ok  # nothing left to do: the database is migrated already

    dialog = RunsDialog.open_for(wizard_window)
    assert dialog.table.rowCount() == 2
    runs = {dialog.runs[i].journal.folder: i for i in range(2)}
    assert list(runs) == sorted(runs, reverse=True)  # newest first
    row = runs[journal.folder]
    cells = [dialog.table.item(row, j).text() for j in range(5)]  # type: ignore[union-attr]
    assert cells[1:4] == ["wizard", pg_db.dbname, f"{pg_db.host}:{pg_db.port}"]
    assert cells[4].startswith("migration committed; verification ")  # what the run did
    dialog.table.setCurrentCell(row, 0)
    assert dialog.log.toPlainText() == "12:00:00 [step] Migrate…\n"
    titles = [dialog.checklist.topLevelItem(i).text(1)  # type: ignore[union-attr]
              for i in range(dialog.checklist.topLevelItemCount())]
    assert "No orphan rows in the columns that refer to user" in titles
    assert {m.title for m in MANUAL_CHECKS} <= set(titles)
    assert dialog.pdf_button.isEnabled()
    pages = dialog.export_pdf(tmp_path / "previous.pdf")
    assert pages >= 1
    text = pdf_text(tmp_path / "previous.pdf")
    assert pg_db.dbname in text
    assert "Sam Reviewer" in text
    assert pg_db.password
    assert pg_db.password not in text

    dialog.table.setCurrentCell(runs[older.folder], 0)
    assert "[" in dialog.log.toPlainText()  # the journal's log events, formatted
    assert str(older.folder) in dialog.where.text()
    dialog.reject()


def test_runs_dialog_says_what_each_run_did_a_restore_after_a_revert_included(
        wizard_window: MigrationWizard, qtbot: QtBot, pg_db: PgSettings) -> None:
    journal = Journal.create(pg_db, "wizard")
    journal.record(RunFinished({"direction": "down", "ok": True, "rehearsal": False,
                                "steps": [{"title": "rename"}]}))
    journal.record(RestoreFinished({"ok": True, "live_db": pg_db.dbname,
                                    "before_db": "kept_before_restore"}))
    dialog = RunsDialog.open_for(wizard_window)
    row = next(i for i, r in enumerate(dialog.runs) if r.journal.folder == journal.folder)
    outcome = dialog.table.item(row, 4).text()  # type: ignore[union-attr]
    assert outcome == (f"revert committed; restore ok: the backup's copy swapped in as "
                       f"{pg_db.dbname} (the previous one kept as kept_before_restore)")
    assert "succeeded" not in outcome
    dialog.reject()
