"""Page 7: the checklist, the operator's manual checks, the report, revert and restore."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from wizard.core import phases, restore
from wizard.core.checklist import final_checklist, smoke_settings
from wizard.core.events import WindowClosed
from wizard.core.files import write_atomic
from wizard.core.journal import Journal
from wizard.core.outcome_checks import MIGRATION, LastOutcome, last_outcome, outcome_checks
from wizard.core.recover import (
    RestoreOutcome,
    RevertOutcome,
    restore_then_clear,
    revert_then_align,
)
from wizard.core.redis_rules import inverse
from wizard.core.report import (
    MANUAL_CHECKS,
    ManualCheck,
    build_report,
    record_export,
    record_manual_check,
    record_operator,
    record_signed,
    redact,
)
from wizard.core.smoke import CHECK_ID as SMOKE_ID
from wizard.core.verify import FAIL, PASS, WARN, Check
from wizard.ui.ask import WorkerQuestion
from wizard.ui.checks_view import check_item, checks_tree
from wizard.ui.confirm import confirm_typed
from wizard.ui.dialogs.restore import (
    confirm_plan,
    inspection_text,
    not_valid_question,
    outcome_lines,
)
from wizard.ui.pages.base import StepPage
from wizard.ui.pdf import write_report_pdf

NOTE_SAVE_MS = 1500  # a note is saved this long after the last keystroke (or on leaving it)


class ManualRow:
    """One manual item: a check box and a note, saved to the journal when they change."""

    def __init__(self, spec: ManualCheck, save: Any) -> None:
        self.spec = spec
        self.box = QCheckBox(spec.title)
        self.box.setObjectName(f"manual-{spec.id}")
        self.box.setToolTip(spec.how or spec.title)
        self.note = QLineEdit()
        self.note.setObjectName(f"note-{spec.id}")
        self.note.setAccessibleName(f"note for: {spec.title}")
        self.note.setPlaceholderText(spec.how or "note: what you saw, who checked")
        self.note.setToolTip(spec.how)
        self.saved: tuple[bool, str] = (False, "")
        self.timer = QTimer()
        self.timer.setSingleShot(True)
        self.timer.setInterval(NOTE_SAVE_MS)
        self.timer.timeout.connect(lambda: save(self))
        self.box.toggled.connect(lambda _on: save(self))
        self.note.textEdited.connect(lambda _t: self.timer.start())
        self.note.editingFinished.connect(lambda: save(self))

    @property
    def state(self) -> tuple[bool, str]:
        return self.box.isChecked(), self.note.text().strip()

    def load(self, done: bool, note: str) -> None:
        self.saved = (done, note)
        self.box.blockSignals(True)
        self.box.setChecked(done)
        self.box.blockSignals(False)
        self.note.setText(note)


class VerifyPage(StepPage):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Verify", "The guide's checks on the database, Redis and the "
                         "application; tick the application and frontend items as you check "
                         "them, then export the report.", parent)
        self.checks: list[Check] | None = None
        self.outcome = LastOutcome(MIGRATION)  # what the checks shown are the checks of
        self.heading = QLabel(self.outcome.heading)
        self.heading.setObjectName("verify-heading")
        self.heading.setWordWrap(True)
        self.heading.setTextFormat(Qt.TextFormat.PlainText)
        bold = self.heading.font()
        bold.setBold(True)
        self.heading.setFont(bold)
        self.mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.summary = QLabel("not checked yet")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        self.rerun = QPushButton("Run checks a&gain")
        self.rerun.clicked.connect(self.run_checks)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.rerun)

        self.tree = checks_tree("automated checks")
        self.tree.setWordWrap(False)
        header = self.tree.header()
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(1, 430)
        header.setStretchLastSection(True)
        self.tree.currentItemChanged.connect(self._show_evidence)
        self.evidence = QPlainTextEdit()
        self.evidence.setReadOnly(True)
        self.evidence.setFont(self.mono)
        self.evidence.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.evidence.setAccessibleName("evidence of the selected check")
        self.evidence.setPlaceholderText("Select a check to see its query and result.")
        auto = QSplitter(Qt.Orientation.Vertical)
        auto.addWidget(self.tree)
        auto.addWidget(self.evidence)
        auto.setStretchFactor(0, 3)
        auto.setStretchFactor(1, 1)

        self.manual: dict[str, ManualRow] = {}
        manual_sheet = QWidget()
        manual_layout = QVBoxLayout(manual_sheet)
        for section in dict.fromkeys(m.section for m in MANUAL_CHECKS):
            group = QGroupBox(section)
            grid = QGridLayout(group)
            grid.setColumnStretch(0, 3)
            grid.setColumnStretch(1, 2)
            for spec in (m for m in MANUAL_CHECKS if m.section == section):
                row = ManualRow(spec, self.save_manual)
                self.manual[spec.id] = row
                n = grid.rowCount()
                grid.addWidget(row.box, n, 0)
                grid.addWidget(row.note, n, 1)
            manual_layout.addWidget(group)
        manual_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(manual_sheet)
        self.tabs = QTabWidget()
        self.tabs.addTab(auto, "A&utomated checks")
        self.tabs.addTab(scroll, "Application and fron&tend")

        self.operator = QLineEdit()
        self.operator.setAccessibleName("operator's name")
        self.operator.setPlaceholderText("the name that signs the report")
        self.operator.editingFinished.connect(self.save_operator)
        self._operator_saved = ""
        operator_label = QLabel("&Operator:")
        operator_label.setBuddy(self.operator)
        self.pdf_button = QPushButton("Export &PDF…")
        self.pdf_button.clicked.connect(self.export_pdf_dialog)
        self.json_button = QPushButton("Export &JSON…")
        self.json_button.clicked.connect(self.export_json_dialog)
        self.revert_button = QPushButton("&Revert the migration…")
        self.revert_button.setToolTip("Rename user back to prosumer (metadata only; rows "
                                      "written since are kept)")
        self.revert_button.clicked.connect(self.revert)
        self.restore_button = QPushButton("Restore from bac&kup…")
        self.restore_button.setToolTip("Replace the database with this run's verified backup "
                                       "(the current one is kept under another name)")
        self.restore_button.clicked.connect(self.restore_from_backup)
        self.start_button = QPushButton("&Start the application")
        self.start_button.setToolTip("Run the profile's start command: the change window "
                                     "(opened by Run migration's stop) closes, with its "
                                     "downtime")
        self.start_button.clicked.connect(self.start_application)
        self.start_button.hide()
        bottom = QHBoxLayout()
        bottom.addWidget(operator_label)
        bottom.addWidget(self.operator, 1)
        for button in (self.start_button, self.pdf_button, self.json_button,
                       self.revert_button, self.restore_button):
            bottom.addWidget(button)
        self.result_label = QLabel()
        self.result_label.setWordWrap(True)
        self.result_label.setTextFormat(Qt.TextFormat.PlainText)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result_label.hide()
        self.restore_outcome: RestoreOutcome | None = None
        self.not_valid_ask: WorkerQuestion | None = None  # the restore's question, if any

        self.body.addWidget(self.heading)
        self.body.addLayout(top)
        self.body.addWidget(self.tabs, 1)
        self.body.addWidget(self.result_label)
        self.body.addLayout(bottom)
        self.busy_changed.connect(self._update_buttons)

    # -- entering ---------------------------------------------------------------------------

    @property
    def journal(self) -> Journal:
        return self.session.ensure_journal()

    def initializePage(self) -> None:
        super().initializePage()
        journal = self.journal
        operators = [e for e in journal.events("operator") if e.get("name")]
        name = str(operators[-1]["name"]) if operators else self.session.operator
        self.operator.setText(name)
        self._operator_saved = str(operators[-1]["name"]) if operators else ""
        latest: dict[str, tuple[bool, str]] = {}
        for event in journal.events("manual_check"):
            latest[str(event.get("id"))] = (bool(event.get("done")), str(event.get("note", "")))
        for check_id, row in self.manual.items():
            row.load(*latest.get(check_id, (False, "")))
        self.run_checks()

    def run_checks(self) -> None:
        if self.busy:
            return
        self.summary.setText("checking…")
        # After a revert or a restore, the checks of that outcome: the migration's checks
        # would report the database it left as a failed migration.
        self.outcome = last_outcome(self.journal.events())
        self.heading.setText(self.outcome.heading)
        if self.outcome.kind != MIGRATION:
            self.run_job(f"Checks of the {self.outcome.kind}", outcome_checks,
                         self.session.pg, self.journal, self.outcome,
                         on_done=self.show_checks,
                         advice="Check the connection, then run the checks again.")
            return
        # The same checks as `enerlink-migrate verify`; a skipped smoke check is logged there.
        smoke = smoke_settings(self.session.profile, self.session.smoke_password)
        self.run_job("Verification checklist", final_checklist, self.session.pg,
                     self.session.redis, smoke, rules=self.session.redis_rules,
                     journal=self.journal,
                     on_done=self.show_checks,
                     advice="Check the connection, then run the checks again.")

    def show_checks(self, checks: list[Check]) -> None:
        self.checks = checks
        self.session.results["verify"] = checks
        self.tree.clear()
        for check in checks:
            self.tree.addTopLevelItem(check_item(check))
        counts = {s: sum(1 for c in checks if c.status == s) for s in (PASS, FAIL, WARN)}
        self.summary.setText(
            f"{self.session.pg.describe()}: {counts[PASS]} passed, {counts[FAIL]} failed, "
            f"{counts[WARN]} warnings" + (" — failed checks are printed as such in the "
                                         "report" if counts[FAIL] else ""))
        first = self.tree.topLevelItem(0)
        if first is not None:
            self.tree.setCurrentItem(first)
        self.set_valid(True)  # finishing with failed checks is allowed; the report shows them
        self._update_buttons()

    def _show_evidence(self, item: QTreeWidgetItem | None, _previous: Any = None) -> None:
        if item is None:
            self.evidence.clear()
            return
        top = item.parent() or item
        parts = []
        for i in range(top.childCount()):
            child = top.child(i)
            if child is None:
                continue
            parts.append(f"-- {child.text(1)}\n{child.data(2, Qt.ItemDataRole.UserRole)}")
        self.evidence.setPlainText("\n\n".join(parts) or f"{top.text(1)}: no evidence recorded")

    def _update_buttons(self, *_args: object) -> None:
        for button in (self.rerun, self.revert_button, self.restore_button):
            button.setEnabled(not self.busy)
        command = self.start_command()
        self.start_button.setVisible(command is not None)
        # The login smoke check cannot pass while the application is stopped: the others must.
        checks = self.checks or []
        passed = bool(checks) and not any(c.status == FAIL and c.id != SMOKE_ID
                                          for c in checks)
        self.start_button.setEnabled(not self.busy and passed)
        if command is not None:
            self.start_button.setToolTip(f"Run the start command ({command}) once the checks "
                                         "pass: the change window closes, with its downtime")

    # -- the end of the change window -------------------------------------------------------

    def start_command(self) -> str | None:
        """The profile's start command while this run's window is open (Run migration
        stopped the application and nothing has started it since)."""
        profile = self.session.profile
        command = profile.app_start_command if profile else None
        opened = self.journal.events("window_opened")
        closed = self.journal.events("window_closed")
        if not command or not opened or (closed and closed[-1]["ts"] > opened[-1]["ts"]):
            return None
        return command

    def start_application(self) -> None:
        command = self.start_command()
        if command is None or self.busy:
            return
        self.run_job("Starting the application", phases.start_after_window, command,
                     journal=self.journal, on_done=self._started,
                     advice="Start the application by hand; the schema is migrated.")

    def _started(self, closed: WindowClosed) -> None:
        if not closed.ok:
            self.show_error(closed.detail, "Starting the application",
                            "Fix the start command in the profile or start it by hand.")
        else:
            downtime = ("" if closed.downtime_s is None
                        else f": downtime {closed.downtime_s:.2f} s (stop → start)")
            self.show_result(f"✔ The application started again{downtime}.")
            QTimer.singleShot(0, self.run_checks)  # the login smoke check can pass now
        self._update_buttons()

    # -- the operator's part ----------------------------------------------------------------

    def save_manual(self, row: ManualRow) -> None:
        row.timer.stop()
        state = row.state
        if state == row.saved:
            return
        record_manual_check(self.journal, row.spec.id, *state)
        row.saved = state

    def save_operator(self) -> None:
        name = self.operator.text().strip()
        if name != self._operator_saved:
            record_operator(self.journal, name)
            self._operator_saved = name

    def save_pending(self) -> None:
        """Write what the operator typed but has not left yet (before exports and Finish)."""
        for row in self.manual.values():
            self.save_manual(row)
        self.save_operator()

    def validatePage(self) -> bool:
        self.save_pending()
        failed = [c.title for c in self.checks or [] if c.status == FAIL]
        record_signed(self.journal, self._operator_saved, failed,
                      [i for i, r in self.manual.items() if r.saved[0]])
        return True

    # -- exports ----------------------------------------------------------------------------

    def default_export(self, suffix: str) -> Path:
        folder = Path.home()
        profile = self.session.profile
        if profile is not None and profile.backup_folder:
            candidate = Path(profile.backup_folder).expanduser()
            if candidate.is_dir():
                folder = candidate
        return folder / f"enerlink-migration-{self.session.pg.dbname}-{date.today()}.{suffix}"

    def export_pdf(self, path: Path) -> Path:
        self.save_pending()
        pages = write_report_pdf(self.journal, path)
        record_export(self.journal, "pdf", str(path), pages)
        self.log.append("info", f"report written to {path} ({pages} pages)")
        return path

    def export_json(self, path: Path) -> Path:
        self.save_pending()
        data = redact(build_report(self.journal).to_dict())
        # 0600: the report names hosts and databases.
        write_atomic(path, json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
        record_export(self.journal, "json", str(path))
        self.log.append("info", f"checklist and run report written to {path}")
        return path

    def export_pdf_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the report as PDF",
                                              str(self.default_export("pdf")), "PDF (*.pdf)")
        if path:
            self._export(self.export_pdf, Path(path))

    def export_json_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the report as JSON",
                                              str(self.default_export("json")),
                                              "JSON (*.json)")
        if path:
            self._export(self.export_json, Path(path))

    def _export(self, export: Any, path: Path) -> None:
        try:
            export(path)
        except OSError as exc:
            self.show_error(f"cannot write {path}: {exc}", "Exporting the report",
                            "Choose a folder you can write to.")

    # -- undoing ----------------------------------------------------------------------------

    def revert(self) -> None:
        if self.busy:
            return
        db = self.session.pg.dbname
        redis = self.session.redis
        then = ("Then Redis goes back to the old names: " + "; ".join(
            r.describe() for r in inverse(self.session.redis_rules)) + "."
            if redis is not None else "No Redis is configured: its data stays as it is.")
        typed = confirm_typed(
            self, "Revert the migration",
            f"Rename user back to prosumer in {db} ({self.session.pg.describe()}). This is a "
            "metadata change that takes a moment; rows written since the migration are kept. "
            f"{then} The application must be stopped or on its old version.", db,
            "Revert the migration")
        if typed is None:
            self.log.append("info", "revert: not confirmed")
            return
        self.run_job("Reverting the migration", revert_then_align, self.session.pg, redis,
                     rules=self.session.redis_rules, journal=self.journal,
                     on_done=self._reverted,
                     advice="Read the log; the revert runs in one transaction, so a failed "
                     "revert changed nothing.")

    def _reverted(self, outcome: RevertOutcome) -> None:
        result = outcome.result
        self.session.results["revert"] = result
        if result.ok and outcome.redis_error:
            self.show_error(f"the Redis revert failed: {outcome.redis_error}",
                            "Bringing Redis back to the old names",
                            "The schema revert stands. Run the Redis step's revert again "
                            "(Migrate Redis data page): it finishes what is left.")
        elif result.ok:
            redis = (f" Redis: {outcome.redis.changed} keys back in the old names."
                     if outcome.redis is not None else f" {outcome.redis_note or ''}")
            self.show_result(f"✔ Reverted: {self.session.pg.dbname} has the prosumer schema "
                             f"again ({result.state_after}).{redis}")
        else:
            self.show_error(result.error or "the revert failed", "Revert",
                            "Read the log; nothing was changed. Fix the cause and revert again.")
        QTimer.singleShot(0, self.run_checks)

    def backup_of_this_run(self) -> Path | None:
        for event in reversed(self.journal.events("backup")):
            if event.get("verified") and event.get("path"):
                return Path(str(event["path"]))
        return None

    def restore_from_backup(self) -> None:
        path = self.backup_of_this_run()
        if path is None or not path.exists():
            chosen, _ = QFileDialog.getOpenFileName(
                self, "No verified backup in this run: choose a backup", str(Path.home()),
                "Backups (*.dump *.backup *.sql *.tar);;All files (*)")
            if not chosen:
                return
            path = Path(chosen)
        self.restore_from(path)

    def restore_from(self, path: Path) -> None:
        """Inspect `path`, ask for the typed database name, then restore and clear Redis."""
        if self.busy:
            return
        self.run_job("Reading the backup", restore.prepare, self.session.pg, path,
                     restore.RestoreOptions(),
                     # After this job's own bookkeeping: the next job starts from there.
                     on_done=lambda plan: QTimer.singleShot(0, lambda: self._confirm_restore(
                         plan)),
                     advice="Choose another copy of the backup. Nothing was changed.")

    def _confirm_restore(self, plan: restore.RestorePlan) -> None:
        self.log.append_many(("info", line) for line in inspection_text(
            plan, self.session.redis is not None).splitlines())
        typed = confirm_plan(self, plan, confirm_typed)
        if typed is None:
            self.log.append("info", "restore not confirmed; nothing was changed")
            return
        self.not_valid_ask = not_valid_question(self, plan)
        job = self.run_job("Restoring from the backup", restore_then_clear, plan, typed,
                           self.session.redis, journal=self.journal,
                           confirm_not_valid=self.not_valid_ask, on_done=self._restored,
                           advice="Read the log; the live database is untouched unless the "
                           "log says the names were swapped.")
        self.not_valid_ask.attach(job)

    def _restored(self, outcome: RestoreOutcome) -> None:
        self.restore_outcome = outcome
        self.session.results["restore"] = outcome.result
        self.show_result("\n".join(outcome_lines(outcome)))
        problem = outcome.problem("restore again")
        if problem:
            self.show_error(*problem)
        if outcome.result.ok:
            QTimer.singleShot(0, self.run_checks)

    def show_result(self, text: str) -> None:
        self.result_label.setText(text)
        self.result_label.show()
        for line in text.splitlines():
            self.log.append("step", line)
