"""The proof of a backup in the wizard, on real PostgreSQL, pg_dump and pg_restore: the Backup
page's box and button, the restore's NOT VALID question asked across threads, and the
Migrate page's typed override of a failed proof."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QDialogButtonBox, QLabel, QTableWidgetItem, QWizard
from pytestqt.qtbot import QtBot
from shiboken6 import isValid

from wizard.core import backup as backup_job
from wizard.core import jobs, prove, restore_db, runs
from wizard.core.connection import PgSettings
from wizard.core.journal import Journal
from wizard.sandbox.probes import databases, fingerprint
from wizard.sandbox.seed import inject_orphans
from wizard.sandbox.servers import PostgresServer
from wizard.ui.dialogs import restore as restore_dialog
from wizard.ui.dialogs.restore import NotValidDialog, RestoreDialog
from wizard.ui.pages import migrate as migrate_module
from wizard.ui.pages import verify as verify_module
from wizard.ui.pages.backup import BackupPage
from wizard.ui.pages.migrate import MigratePage
from wizard.ui.pages.verify import VerifyPage
from wizard.ui.window import MigrationWizard

JOB_MS = 120_000


def next_enabled(window: QWizard) -> bool:
    return window.button(QWizard.WizardButton.NextButton).isEnabled()


def take_backup(settings: PgSettings, out: Path, journal: Journal
                ) -> backup_job.BackupResult:
    result = backup_job.backup(settings, backup_job.BackupOptions(out_dir=out),
                               journal=journal)
    assert result.verified, result.error
    return result


def not_valid_keys(settings: PgSettings) -> list[str]:
    with settings.connect() as conn:
        return [str(r[0]) for r in conn.execute(
            "SELECT conname FROM pg_constraint WHERE contype = 'f' AND NOT convalidated "
            "ORDER BY 1").fetchall()]


@pytest.fixture
def backup_page(wizard_window: MigrationWizard, open_session: Any, live: PgSettings,
                qtbot: QtBot) -> Iterator[BackupPage]:
    open_session(wizard_window, live)
    page = wizard_window.start_at(BackupPage)
    assert isinstance(page, BackupPage)
    yield page
    page.cancel_job()
    qtbot.waitUntil(lambda: not page.busy, timeout=60_000)


# --- the Backup page ---------------------------------------------------------------------


def test_the_prove_box_is_on_by_default_and_shows_its_estimate(
        backup_page: BackupPage, wizard_window: MigrationWizard, qtbot: QtBot) -> None:
    page = backup_page
    assert page.prove_box.isChecked()
    qtbot.waitUntil(lambda: page.prove_estimate.text().startswith("about ") and
                    "…" not in page.prove_estimate.text(), timeout=10_000)
    text = page.prove_estimate.text()
    assert " s — restores it into a scratch database on the same server" in text
    assert "compares every table with the dump, rehearses the migration, drops it" in text
    assert "first estimate" in page.prove_estimate.toolTip()
    assert not page.prove_button.isEnabled()  # nothing to prove yet
    assert page.proof_value.text() == "—"
    assert not next_enabled(wizard_window)


def test_a_backup_with_the_box_on_ends_proven(
        backup_page: BackupPage, wizard_window: MigrationWizard, qtbot: QtBot,
        live: PgSettings, pg_server: PostgresServer, tmp_path: Path) -> None:
    page = backup_page
    page.folder.setText(str(tmp_path / "backups"))
    dbs = databases(pg_server)
    page.run_button.click()
    assert page.busy
    assert not page.prove_box.isEnabled()
    qtbot.waitUntil(lambda: not page.busy, timeout=JOB_MS)
    assert page.verified is not None, page.errors.details()
    proof = page.proof
    assert proof is not None
    assert proof.proven, proof.reason
    assert proof.path == page.verified.path
    assert proof.dropped
    assert databases(pg_server) == dbs  # the scratch copy is gone
    shown = page.proof_value.text() + "\n" + page.proof_detail.text()
    assert shown.startswith("PROVEN ✔ — restored into a scratch copy in ")
    assert "equal the dump's snapshot" in shown
    assert "the migration rehearsed on the copy" in shown
    assert f"scratch copy {proof.scratch_db} dropped" in shown
    assert page.status.text().startswith("✔ Verified and PROVEN backup of")
    assert not page.errors.isVisible()
    assert next_enabled(wizard_window)
    assert page.session.results["backup_proof"] is proof
    # One worker, one journal: the backup, then its proof, with the live log.
    journal = page.session.ensure_journal()
    names = [e["event"] for e in journal.events()
             if e["event"] in ("backup", "backup_proof_started", "backup_proven")]
    assert names == ["backup", "backup_proof_started", "backup_proven"]
    assert journal.events("backup_proven")[-1]["sha256"] == page.verified.sha256
    log = page.log.full_text()
    assert "dumping contents of table" in log
    assert f"restoring it into {proof.scratch_db}" in log
    assert page.progress_bar.value() == 1000
    # The next estimate rests on this proof.
    qtbot.waitUntil(lambda: "from the proof of" in page.prove_estimate.toolTip(),
                    timeout=10_000)
    # The migrate guard now calls the rollback point proven.
    lines: list[str] = []
    _plan, result, _journal = jobs.run(live, "up", guard=jobs.Guard(), journal=journal,
                                       report=lambda _l, m: lines.append(m))
    assert result.ok, result.error
    assert any("rollback point: " in m and "· PROVEN" in m for m in lines)


def test_a_backup_holding_orphans_is_proven_and_says_its_keys_come_back_not_valid(
        backup_page: BackupPage, qtbot: QtBot, live: PgSettings,
        pg_server: PostgresServer, tmp_path: Path) -> None:
    with pg_server.admin_connect(live.dbname) as admin:
        inject_orphans(admin, 3)
    page = backup_page
    page.folder.setText(str(tmp_path / "backups"))
    page.run_button.click()
    qtbot.waitUntil(lambda: not page.busy, timeout=JOB_MS)
    proof = page.proof
    assert proof is not None
    assert proof.proven, proof.reason
    assert proof.not_valid
    assert page.proof_value.text().startswith("PROVEN ✔")
    assert (f"! {len(proof.not_valid)} foreign key(s) come back NOT VALID: the backup holds "
            f"orphan rows") in page.proof_detail.text()


def test_a_proof_that_does_not_fit_leaves_the_backup_verified_then_the_button_proves_it(
        backup_page: BackupPage, wizard_window: MigrationWizard, qtbot: QtBot,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = backup_page
    page.folder.setText(str(tmp_path / "backups"))
    # Stand-in for a full disk on the server (as in test_prove): 1 MiB free.
    monkeypatch.setattr(restore_db, "free_bytes", lambda _p: (1 << 20, "statvfs stand-in"))
    page.run_button.click()
    qtbot.waitUntil(lambda: not page.busy, timeout=JOB_MS)
    assert page.verified is not None
    assert page.proof is None
    assert page.errors.isVisible()
    details = page.errors.details()
    assert "The proof could not start" in page.errors.title.text()
    assert "Failed step: Proof of the backup" in details
    assert "not enough free space" in details
    assert "but has 1.0 MiB free" in details
    assert "The backup itself is verified and stands" in details
    assert page.proof_value.text().startswith("✘ not proven: the proof could not start")
    assert page.verdict.text().startswith("verified ✔")
    assert next_enabled(wizard_window)  # the backup is valid without its proof
    # Room again: the button proves the verified backup.
    monkeypatch.undo()
    assert page.prove_button.isEnabled()
    page.prove_button.click()
    assert page.busy
    assert not page.run_button.isEnabled()
    qtbot.waitUntil(lambda: not page.busy, timeout=JOB_MS)
    assert page.proof is not None
    assert page.proof.proven, page.proof.reason
    assert page.proof.path == page.verified.path
    assert page.proof_value.text().startswith("PROVEN ✔")
    assert not page.errors.isVisible()


def test_without_the_box_the_backup_is_not_proven_until_the_button_is_pressed(
        backup_page: BackupPage, qtbot: QtBot, live: PgSettings, tmp_path: Path) -> None:
    page = backup_page
    page.folder.setText(str(tmp_path / "backups"))
    page.prove_box.setChecked(False)
    assert not page.prove_estimate.isEnabled()
    page.run_button.click()
    qtbot.waitUntil(lambda: not page.busy, timeout=JOB_MS)
    assert page.verified is not None
    assert page.proof is None
    assert page.proof_value.text().startswith("not proven (Prove this backup now")
    assert page.session.ensure_journal().events("backup_proof_started") == []
    assert page.prove_button.isEnabled()


def test_a_backup_that_does_not_restore_exactly_says_not_proven(
        backup_page: BackupPage, wizard_window: MigrationWizard, qtbot: QtBot,
        live: PgSettings, tmp_path: Path,
        unrestorable: Any) -> None:
    unrestorable(live)
    page = backup_page
    page.folder.setText(str(tmp_path / "backups"))
    page.run_button.click()
    qtbot.waitUntil(lambda: not page.busy, timeout=JOB_MS)
    assert page.verified is not None
    proof = page.proof
    assert proof is not None
    assert not proof.proven
    assert page.proof_value.text().startswith("NOT PROVEN ✘ — ")
    assert "lower_mail" in page.proof_value.text()
    assert "NOT PROVEN" in page.status.text()
    assert "The backup&#x27;s proof failed" in page.errors.title.text() or \
        "The backup's proof failed" in page.errors.title.text()
    assert "the migration refuses this one unless you type the database name" in \
        page.errors.details()


# --- the restore's NOT VALID question ----------------------------------------------------


@pytest.fixture
def orphan_backup(live: PgSettings, pg_server: PostgresServer, open_session: Any,
                  wizard_window: MigrationWizard, tmp_path: Path) -> Path:
    """A verified backup of this run whose rows violate the sample's foreign keys."""
    with pg_server.admin_connect(live.dbname) as admin:
        inject_orphans(admin, 3)
    session = open_session(wizard_window, live)
    return Path(take_backup(live, tmp_path / "backups", session.ensure_journal()).path)


def open_verify(window: MigrationWizard, qtbot: QtBot,
                monkeypatch: pytest.MonkeyPatch) -> VerifyPage:
    page = window.start_at(VerifyPage)
    assert isinstance(page, VerifyPage)
    qtbot.waitUntil(lambda: page.checks is not None and not page.busy, timeout=JOB_MS)
    monkeypatch.setattr(verify_module, "confirm_typed",
                        lambda _p, _t, _c, expected, _a: expected)
    return page


@contextmanager
def asking(owner: Any, qtbot: QtBot) -> Iterator[NotValidDialog]:
    """The open question (a failed assertion leaves the restore waiting for it: the
    wizard_window fixture cancels it, with the event loop turning, before closing)."""
    yield wait_question(owner, qtbot)


def wait_question(owner: Any, qtbot: QtBot) -> NotValidDialog:
    """The question, once the restore asks it (fails at once if the restore ended)."""
    def asked_or_ended() -> bool:
        ask = owner.not_valid_ask
        return (ask is not None and ask.dialog is not None) or (
            ask is not None and owner.job is not None and not owner.busy)
    qtbot.waitUntil(asked_or_ended, timeout=JOB_MS)
    dialog = owner.not_valid_ask.dialog
    assert isinstance(dialog, NotValidDialog), owner.log.full_text()[-3000:]
    qtbot.waitUntil(dialog.isVisible, timeout=5_000)
    return dialog


def cell(dialog: NotValidDialog, row: int, column: int) -> QTableWidgetItem:
    item = dialog.table.item(row, column)
    assert item is not None
    return item


def test_the_not_valid_keys_are_asked_and_the_typed_name_swaps(
        wizard_window: MigrationWizard, qtbot: QtBot, live: PgSettings,
        orphan_backup: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = open_verify(wizard_window, qtbot, monkeypatch)
    assert page.backup_of_this_run() == orphan_backup
    checked = page.checks
    page.restore_button.click()
    with asking(page, qtbot) as dialog:
        assert page.busy  # the restore waits for the answer, before its swap
        assert dialog.isModal()
        keys = dialog.keys
        assert keys
        assert dialog.table.rowCount() == len(keys)
        names = {cell(dialog, i, 4).text() for i in range(len(keys))}
        assert names == {str(k["name"]) for k in keys}
        for i, key in enumerate(keys):
            assert cell(dialog, i, 0).text().startswith(
                f"{key['table'].removeprefix('public.')} (")
            assert cell(dialog, i, 1).text() == key["references"].removeprefix("public.")
            assert cell(dialog, i, 2).text() == f"{key['violating_rows']:,}"
            assert str(key["sample"][0][0]) in cell(dialog, i, 3).text()
            assert str(key["sample"][-1][0]) in cell(dialog, i, 3).toolTip()
        said = " ".join(label.text() for label in dialog.findChildren(QLabel))
        assert "re-created NOT VALID" in said
        assert f"the current {live.dbname} is kept as" in said
        assert f"Cancel: the copy is dropped; {live.dbname} stays as it is now." in said
        assert "VALIDATE CONSTRAINT" in dialog.validate.toPlainText()
        # The house's typed confirmation: only the exact name enables the swap.
        assert not dialog.ok.isEnabled()
        dialog.entry.setText(live.dbname + "x")
        assert not dialog.ok.isEnabled()
        dialog.entry.setText(live.dbname)
        assert dialog.ok.isEnabled()
        dialog.ok.click()
    qtbot.waitUntil(lambda: page.restore_outcome is not None, timeout=JOB_MS)
    # After a restore the checklist runs again.
    qtbot.waitUntil(lambda: page.checks is not checked and not page.busy, timeout=JOB_MS)
    outcome = page.restore_outcome
    assert outcome is not None
    assert outcome.result.ok, outcome.result.error
    assert outcome.result.not_valid
    assert page.not_valid_ask is not None
    assert page.not_valid_ask.asked == 1
    assert page.not_valid_ask.dialog is None
    # Swapped in: the live database is the copy, its keys NOT VALID; the page says so.
    assert set(not_valid_keys(live)) == {str(k["name"]) for k in keys}
    shown = page.result_label.text()
    assert f"{len(keys)} foreign key(s) are NOT VALID in {live.dbname}" in shown
    assert "VALIDATE CONSTRAINT" in shown


def test_cancel_in_the_not_valid_question_does_not_swap(
        wizard_window: MigrationWizard, qtbot: QtBot, live: PgSettings,
        pg_server: PostgresServer, orphan_backup: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = fingerprint(live)
    dialog = RestoreDialog.open_for(wizard_window)
    assert dialog is not None
    dialog.path.setText(str(orphan_backup))
    dialog.inspect_button.click()
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=JOB_MS)
    qtbot.waitUntil(dialog.restore_button.isEnabled, timeout=5_000)
    monkeypatch.setattr(restore_dialog, "confirm_typed",
                        lambda _p, _t, _c, expected, _a: expected)
    dbs = databases(pg_server)
    dialog.restore_button.click()
    with asking(dialog, qtbot) as question:
        assert question.parent() is dialog
        question.buttons.button(QDialogButtonBox.StandardButton.Cancel).click()
    qtbot.waitUntil(lambda: dialog.outcome is not None, timeout=JOB_MS)
    assert dialog.outcome is not None
    result = dialog.outcome.result
    assert not result.ok
    # The DBA's decision, said as one: no failure, no error panel, no FAIL in the report.
    assert result.cancelled
    assert result.declined
    assert result.error is not None
    assert result.error.startswith("not swapped: you declined to swap in a copy whose")
    assert f"the copy is dropped and {live.dbname} stays as it was" in result.error
    assert result.dropped
    assert databases(pg_server) == dbs  # the copy was dropped
    assert fingerprint(live) == before
    assert not_valid_keys(live) == []
    shown = dialog.result_label.text()
    assert shown.startswith("! Not restored, as you decided: not swapped"), shown
    assert "failed" not in shown.lower()
    assert not dialog.errors.isVisible()
    assert dialog.outcome.problem("restore again") is None
    summary = runs.summarise(Journal(Path(str(result.journal))))
    assert "restore not done: the NOT VALID swap was declined" in summary.outcome
    dialog.reject()


def test_cancelling_the_restore_while_the_question_is_open_does_not_deadlock(
        wizard_window: MigrationWizard, qtbot: QtBot, live: PgSettings,
        pg_server: PostgresServer, orphan_backup: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = fingerprint(live)
    page = open_verify(wizard_window, qtbot, monkeypatch)
    dbs = databases(pg_server)
    page.restore_button.click()
    with asking(page, qtbot) as dialog:
        job = page.job
        assert job is not None
        # What closing the window does: cancel, then join the worker on the GUI thread.
        job.cancel()
        assert job.wait(30), "the worker kept waiting for the answer"
    qtbot.waitUntil(lambda: not page.busy, timeout=10_000)
    qtbot.waitUntil(lambda: not isValid(dialog) or not dialog.isVisible(), timeout=5_000)
    assert page.not_valid_ask is not None
    assert page.not_valid_ask.dialog is None
    outcome = page.restore_outcome
    assert outcome is not None
    assert outcome.result.cancelled
    assert outcome.result.dropped
    assert databases(pg_server) == dbs
    assert fingerprint(live) == before


# --- the Migrate page's override ---------------------------------------------------------


def test_a_failed_proof_is_overridden_on_the_migrate_page_only_by_the_typed_name(
        wizard_window: MigrationWizard, qtbot: QtBot, live: PgSettings, open_session: Any,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        unrestorable: Any) -> None:
    unrestorable(live)
    session = open_session(wizard_window, live)
    journal = session.ensure_journal()
    backup = take_backup(live, tmp_path / "backups", journal)
    proof = prove.prove(live, backup.path, prove.ProofOptions(rehearse=False),
                        journal=journal)
    assert not proof.proven
    page = wizard_window.start_at(MigratePage)
    assert isinstance(page, MigratePage)
    qtbot.waitUntil(lambda: page.plan is not None and not page.busy, timeout=JOB_MS)
    monkeypatch.setattr(migrate_module, "ask", lambda *_a: True)
    asked: list[tuple[str, str, str]] = []
    answers = [None, live.dbname]  # declined first, then typed

    def typed(_parent: Any, title: str, consequence: str, expected: str,
              _action: str) -> str | None:
        asked.append((title, consequence, expected))
        return answers[len(asked) - 1]
    monkeypatch.setattr(migrate_module, "confirm_typed", typed)
    page.rehearse_button.click()  # a real run wants a rehearsal of this plan first
    qtbot.waitUntil(lambda: page.result is not None and not page.busy, timeout=JOB_MS)
    assert page.result is not None
    assert page.result.ok, page.result.error
    page.result = None

    page.run_button.click()
    qtbot.waitUntil(lambda: len(asked) == 1 and not page.busy, timeout=JOB_MS)
    title, consequence, expected = asked[0]
    assert expected == live.dbname
    assert title == "Migrate although the backup is not proven"
    assert f"the backup {backup.path} cannot be restored exactly" in consequence
    assert "lower_mail" in consequence
    assert "take a new backup on the Backup page and prove it" in consequence
    assert "cannot be restored exactly" in page.errors.details()
    assert page.result is None
    assert jobs.inspect(live).state == "pre"
    assert "the failed proof was not accepted" in page.log.full_text()

    page.run_button.click()
    qtbot.waitUntil(lambda: page.result is not None and not page.busy, timeout=JOB_MS)
    assert len(asked) == 2
    assert page.result is not None
    assert page.result.ok, page.result.error
    assert jobs.inspect(live).state == "migrated"
    accepted = journal.events("backup_accepted")[-1]
    assert accepted["proof"]["proven"] is False
    assert "proof FAILED, accepted by typed name" in page.log.full_text()
    assert next_enabled(wizard_window)
