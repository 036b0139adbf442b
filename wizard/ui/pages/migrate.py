"""Page 5: the plan and its exact SQL, a rehearsal, the migration itself and its result."""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from wizard.core import jobs, phases, run_state
from wizard.core.commit_outcome import COMMITTED, NOT_COMMITTED
from wizard.core.connection import PgSettings
from wizard.core.discovery import Discovery
from wizard.core.events import (
    AttemptStarted,
    CommitResolved,
    CommitUnknown,
    LockTimedOut,
    StepDone,
)
from wizard.core.execute import RunOptions, RunResult
from wizard.core.journal import runs_for
from wizard.core.plan import UP, Plan
from wizard.core.preflight import Session, list_sessions
from wizard.ui.checks_view import check_item, checks_tree
from wizard.ui.confirm import confirm_typed
from wizard.ui.pages.base import StepPage
from wizard.ui.worker import Job

# As the pre-flight's sessions: the unit in the header, every column but the query as wide
# as its header or widest value, so none is cut off.
BLOCKER_COLUMNS = ("PID", "Application", "Client", "State", "Transaction age (s)", "Holds",
                   "On", "Query")
UNCHANGED = "The transaction was rolled back: the schema is unchanged."
FAILED_PROOF = "cannot be restored exactly"  # the guard's words for a backup whose proof failed


QUESTION_WIDTH = 640  # px of text: a backup's path and its sha256 on one line each


def question_box(parent: QWidget | None, title: str, text: str) -> QMessageBox:
    """A yes/no question, No the default and Escape's answer. Its text is wide enough for
    the rollback point's path, which a plain question box wraps at every slash."""
    box = QMessageBox(QMessageBox.Icon.Question, title, text,
                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, parent)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    box.setEscapeButton(QMessageBox.StandardButton.No)
    label = box.findChild(QLabel, "qt_msgbox_label")  # Qt's own name for the text label
    if label is not None:
        label.setMinimumWidth(QUESTION_WIDTH)
    return box


def ask(parent: QWidget, title: str, text: str) -> bool:
    """Ask `question_box` and wait for the answer (tests replace it)."""
    return question_box(parent, title, text).exec() == QMessageBox.StandardButton.Yes


def prepare(settings: PgSettings) -> tuple[Discovery, Plan]:
    """The database's state and the up plan for it (raises PlanRefused when there is none)."""
    discovery = jobs.inspect(settings)
    return discovery, jobs.make_plan(discovery, UP, settings)


def plan_summary(where: str, plan: Plan, discovery: Discovery | None,
                 rehearsal: run_state.Rehearsal | None, migrated: datetime | None,
                 after: Discovery | None = None) -> str:
    """The page's header from what was just read: the state, the plan, and whether this plan
    passed a rehearsal; after a COMMIT, the catalog the run read right after it (`after`).
    The page reads the catalog again whenever it is shown, so this never describes a state
    the database has left."""
    if after is not None:
        head = f"{where}: state {after.state}, read right after the COMMIT. "
        if migrated is not None:
            return head + (f"Nothing to do: migrated in this run at "
                           f"{run_state.clock(migrated)}. Go on to the Redis step.")
        return head + ("The change was committed, but a check after the commit failed: see "
                       "the Result tab, then verify or revert.")
    if not plan.steps:
        if migrated is not None:
            return (f"{where}: state {plan.state}. Nothing to do: migrated in this run at "
                    f"{run_state.clock(migrated)}. Go on to the Redis step.")
        return f"{where}: state {plan.state}. Nothing to do: the database is already migrated."
    why = f" ({discovery.explanation.rstrip('.')})" if discovery is not None else ""
    text = (f"{where}: state {plan.state}{why}. {len(plan.catalog_steps)} steps in one "
            f"transaction" + (f", then {len(plan.validate_steps)} VALIDATE after commit"
                              if plan.validate_steps else "")
            + f"; {len(plan.unchanged)} object(s) left unchanged; plan digest "
            f"{plan.digest[:12]} (the run refuses if the catalog changes). ")
    if rehearsal is None:
        return text + "Rehearse first: running it needs a passing rehearsal of this plan."
    blocked = "" if rehearsal.blocked_ms is None else \
        f": a run would block the application for about {rehearsal.blocked_ms:.1f} ms"
    return text + f"Rehearsed ✔ at {run_state.clock(rehearsal.at)}{blocked}. Ready to run."


def _mono(widget: QWidget) -> None:
    widget.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))


class MigratePage(StepPage):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Migrate", "The plan and its exact SQL; rehearse it (everything, then "
                         "ROLLBACK), then run it in one short transaction.", parent)
        self.plan: Plan | None = None
        self.discovery: Discovery | None = None
        self.result: RunResult | None = None
        self.step_items: dict[int, QTreeWidgetItem] = {}
        self._blockers: list[dict[str, Any]] = []  # the sessions under "Waiting for locks"
        self._lock_base = ""  # what the run said about them, before the re-check's line
        self._blocker_check: Job | None = None
        self._after: Discovery | None = None  # the catalog right after this run's COMMIT
        # Owned by the page: nothing fires once the window is gone.
        self._recheck_soon = QTimer(self)
        self._recheck_soon.setSingleShot(True)
        self._recheck_soon.setInterval(0)
        self._recheck_soon.timeout.connect(self.recheck_blockers)
        self._replan_soon = QTimer(self)
        self._replan_soon.setSingleShot(True)
        self._replan_soon.setInterval(0)
        self._replan_soon.timeout.connect(self.compute_plan)

        self.summary = QLabel("no plan yet")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        self.summary.setAccessibleName("plan summary")

        self.lock_timeout = QDoubleSpinBox()
        self.lock_timeout.setRange(0.05, 3600)
        self.lock_timeout.setDecimals(2)
        self.lock_timeout.setSingleStep(0.5)
        self.lock_timeout.setSuffix(" s")
        self.lock_timeout.setAccessibleName("lock timeout in seconds")
        self.lock_timeout.setToolTip("How long each ALTER may wait for its lock before the "
                                     "transaction rolls back and is retried")
        self.lock_timeout.valueChanged.connect(self._refresh_sql)
        self.retries = QSpinBox()
        self.retries.setRange(0, 100)
        self.retries.setAccessibleName("retries after a lock timeout")
        options = QFormLayout()
        options.addRow("Lock &timeout:", self.lock_timeout)
        options.addRow("Retr&ies after a lock timeout:", self.retries)
        self.rehearse_button = QPushButton("R&ehearse")
        self.rehearse_button.setToolTip("Run every step and the checks, then ROLLBACK: nothing "
                                        "changes")
        self.rehearse_button.clicked.connect(lambda: self.start_run(rehearse=True))
        self.run_button = QPushButton("Run &migration…")
        self.run_button.clicked.connect(lambda: self.start_run(rehearse=False))
        self.replan_button = QPushButton("Plan a&gain")
        self.replan_button.setToolTip("Read the catalog again and rebuild the plan")
        self.replan_button.clicked.connect(self.compute_plan)
        buttons = QVBoxLayout()
        for button in (self.rehearse_button, self.run_button, self.replan_button):
            buttons.addWidget(button)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addLayout(options)
        top.addLayout(buttons)

        self.steps = QTreeWidget()
        self.steps.setHeaderLabels(["#", "Step", "Time"])
        self.steps.setAccessibleName("migration plan steps")
        self.steps.setRootIsDecorated(True)
        self.steps.setUniformRowHeights(True)
        header = self.steps.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(False)

        self.sql = QPlainTextEdit()
        self.sql.setReadOnly(True)
        self.sql.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.sql.setAccessibleName("the plan's SQL")
        _mono(self.sql)
        copy_sql = QPushButton("Cop&y SQL")
        copy_sql.clicked.connect(self.copy_sql)
        save_sql = QPushButton("Save as .sq&l…")
        save_sql.clicked.connect(self.save_sql_dialog)
        sql_buttons = QHBoxLayout()
        sql_buttons.addWidget(copy_sql)
        sql_buttons.addWidget(save_sql)
        sql_buttons.addStretch(1)
        sql_tab = QWidget()
        sql_layout = QVBoxLayout(sql_tab)
        sql_layout.addWidget(self.sql, 1)
        sql_layout.addLayout(sql_buttons)

        self.outcome = QLabel("not run yet")
        self.outcome.setWordWrap(True)
        self.outcome.setTextFormat(Qt.TextFormat.PlainText)
        self.checks = checks_tree("checks of the last run")
        result_tab = QWidget()
        result_layout = QVBoxLayout(result_tab)
        result_layout.addWidget(self.outcome)
        result_layout.addWidget(self.checks, 1)

        self.tabs = QTabWidget()
        self.tabs.addTab(self.steps, "&Plan")
        self.tabs.addTab(sql_tab, "&SQL")
        self.tabs.addTab(result_tab, "Res&ult")

        # Lock waits are the one thing a DBA must act on during the window: shown apart.
        self.locks = QGroupBox("Waiting for locks")
        self.locks.setAccessibleName("sessions holding the locks the migration waits for")
        self.lock_note = QLabel()
        self.lock_note.setWordWrap(True)
        self.lock_note.setTextFormat(Qt.TextFormat.PlainText)
        self.blockers = QTableWidget(0, len(BLOCKER_COLUMNS))
        self.blockers.setHorizontalHeaderLabels(list(BLOCKER_COLUMNS))
        self.blockers.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        blockers_header = self.blockers.horizontalHeader()
        for column in range(len(BLOCKER_COLUMNS) - 1):
            blockers_header.setSectionResizeMode(column,
                                                 QHeaderView.ResizeMode.ResizeToContents)
        blockers_header.setStretchLastSection(True)
        self.blockers.verticalHeader().hide()
        self.blockers.setMaximumHeight(110)
        lock_layout = QVBoxLayout(self.locks)
        lock_layout.addWidget(self.lock_note)
        lock_layout.addWidget(self.blockers)
        self.locks.hide()
        self.busy_changed.connect(lambda busy: self.replan_button.setEnabled(not busy))
        # After every job: do the sessions named under "Waiting for locks" still exist?
        self.busy_changed.connect(lambda busy: None if busy else self._recheck_soon.start())

        self.body.addLayout(top)
        self.body.addWidget(self.locks)
        self.body.addWidget(self.tabs, 1)
        self._set_actions(False)

    # -- plan -------------------------------------------------------------------------------

    def initializePage(self) -> None:
        super().initializePage()
        profile = self.session.profile
        self.lock_timeout.setValue(profile.lock_timeout_s if profile else 2.0)
        self.retries.setValue(profile.retries if profile else 3)
        if self._migrated_at() is not None:
            self.set_valid(True)  # came back to the page after the run: it stands
        self.compute_plan()
        self.recheck_blockers()

    def shown_again(self) -> None:
        """Back from a later page: the catalog and the lock holders are read again; the
        operator's lock timeout and retries stay as typed."""
        StepPage.initializePage(self)
        self._initialized = False
        self.compute_plan()
        self.recheck_blockers()

    def _events(self) -> list[dict[str, Any]]:
        return self.session.ensure_journal().events()

    def _migrated_at(self) -> datetime | None:
        return run_state.migrated_at(self._events())

    def header_text(self) -> str:
        """The header for the plan on screen, with this run's journal (rehearsals, commit)."""
        if self.plan is None:
            return "no plan yet"
        events = self._events()
        return plan_summary(self.session.pg.describe(), self.plan, self.discovery,
                            run_state.rehearsal_of(events, self.plan.digest),
                            run_state.migrated_at(events), self._after)

    def compute_plan(self) -> None:
        if self.busy:
            return
        self._set_actions(False)
        self.summary.setText("reading the catalog and building the plan…")
        self.run_job("Building the plan", prepare, self.session.pg, on_done=self.show_plan,
                     on_failed=lambda _m: self.summary.setText("no plan: see the error below"),
                     advice="Check the database state on the Pre-flight page; a database "
                     "in conflict or not EnerLink's needs a DBA's decision first.")

    def show_plan(self, prepared: tuple[Discovery, Plan]) -> None:
        self.discovery, self.plan = prepared
        self._after = None
        plan = self.plan
        jobs.record_plan_shown(self.session.ensure_journal(), plan)
        self.fill_steps(plan)
        self._refresh_sql()
        self.log.append("info", f"plan for state {plan.state}: {len(plan.catalog_steps)} steps "
                        f"in one transaction, {len(plan.validate_steps)} after commit, "
                        f"{len(plan.unchanged)} object(s) left unchanged")
        self.summary.setText(self.header_text())
        if not plan.steps:
            self.set_valid(True)
            self._set_actions(False)
            return
        # Valid only while this run's migration stands (a revert or restore undoes it).
        self.set_valid(self._migrated_at() is not None)
        self._set_actions(True)

    def fill_steps(self, plan: Plan) -> None:
        self.steps.clear()
        self.step_items = {}
        total = len(plan.catalog_steps)
        for n, step in enumerate(plan.catalog_steps, 1):
            item = QTreeWidgetItem([f"{n}/{total}", step.title, ""])
            item.setToolTip(1, step.sql)
            self.steps.addTopLevelItem(item)
            self.step_items[n] = item
        groups = (("After commit (scans rows, does not block writes)",
                   [(s.title, s.sql) for s in plan.validate_steps]),
                  ("Left unchanged", [(u, "") for u in plan.unchanged]),
                  ("Notes", [(n, "") for n in plan.notes]))
        for title, entries in groups:
            if not entries:
                continue
            group = QTreeWidgetItem(["", f"{title} ({len(entries)})", ""])
            for text, tip in entries:
                child = QTreeWidgetItem(["", text, ""])
                child.setToolTip(1, tip or text)
                group.addChild(child)
            self.steps.addTopLevelItem(group)
            group.setExpanded(True)

    def _refresh_sql(self) -> None:
        if self.plan is not None:
            self.sql.setPlainText(self.plan.script(self.lock_timeout.value()))

    def copy_sql(self) -> None:
        QGuiApplication.clipboard().setText(self.sql.toPlainText())
        self.log.append("info", "the plan's SQL was copied to the clipboard")

    def save_sql(self, path: Path) -> Path:
        path = Path(path)
        path.write_text(self.sql.toPlainText(), encoding="utf-8")
        self.log.append("info", f"the plan's SQL was saved to {path}")
        return path

    def save_sql_dialog(self) -> Path | None:
        name, _ = QFileDialog.getSaveFileName(self, "Save the plan's SQL",
                                              f"enerlink-{self.session.pg.dbname}-up.sql",
                                              "SQL scripts (*.sql);;All files (*)")
        return self.save_sql(Path(name)) if name else None

    # -- runs -------------------------------------------------------------------------------

    def options(self, *, rehearse: bool) -> RunOptions:
        return RunOptions(lock_timeout_s=self.lock_timeout.value(),
                          retries=self.retries.value(), rehearse=rehearse)

    def start_run(self, *, rehearse: bool) -> None:
        if self.busy or self.plan is None or not self.plan.steps:
            return
        if not rehearse and not self.confirm_run():
            return
        self._start(rehearse, jobs.Guard())

    def confirm_run(self) -> bool:
        """A real run needs a passing rehearsal of this very plan (its digest) in this run's
        journal, or else the database name typed back; then the operator's yes to what the
        question names: the database, the rollback point, the blocked time measured."""
        assert self.plan is not None
        pg, plan = self.session.pg, self.plan
        journal = self.session.ensure_journal()
        events = journal.events()
        rehearsal = run_state.rehearsal_of(events, plan.digest)
        rollback = self.rollback_words(events)
        where = f"{pg.dbname} on {pg.host}:{pg.port}"
        wait = (f"at most {self.lock_timeout.value():g} s per lock while the run waits for "
                f"its locks, {self.retries.value()} retries")
        if rehearsal is None:
            typed = confirm_typed(
                self, "Run without a rehearsal?",
                f"Refused: no rehearsal of this plan (digest {plan.digest[:12]}) passed in "
                f"this run{self._why_unrehearsed(events)}. A rehearsal runs every step and "
                f"check, then rolls back: it changes nothing and measures how long the "
                f"application will be blocked. Press Rehearse first.\n\n"
                f"Database: {where}.\nRollback point: {rollback}.\nBlocked time: not "
                f"measured ({wait}).\n\nTo run anyway, knowingly, type the database name; "
                f"the run journal records that no rehearsal preceded the run.",
                pg.dbname, "Run &without a rehearsal")
            if typed != pg.dbname:
                self.log.append("info", "migration not started: this plan has no passing "
                                        "rehearsal (press Rehearse first)")
                return False
            run_state.record_unrehearsed(journal, plan.digest, pg.dbname)
            self.log.append("warn", f"migrating {pg.dbname} without a rehearsal of this plan: "
                                    f"confirmed by typing the database name")
            return True
        blocked = ("not measured" if rehearsal.blocked_ms is None else
                   f"about {rehearsal.blocked_ms:.1f} ms")
        if not ask(self, "Run the migration",
                   f"Rename prosumer → user in database {where}?\n\n"
                   f"Rollback point: {rollback}.\n"
                   f"Blocked time: {blocked}, as measured by the rehearsal at "
                   f"{run_state.clock(rehearsal.at)} ({wait}).\n\n"
                   f"{self.window_words()}\n\n"
                   f"{len(plan.catalog_steps)} steps run in one transaction. If any step or "
                   f"check fails, everything is rolled back."):
            self.log.append("info", "migration not started: the operator said no")
            return False
        return True

    def stop_command(self) -> str | None:
        """The profile's stop command, unless this run's journal shows the application
        already stopped by it (the Pre-flight page's Stop button): Run stops it first."""
        profile = self.session.profile
        command = profile.app_stop_command if profile else None
        commands = self.session.ensure_journal().events("app_command")
        if command and commands and commands[-1].get("what") == "stop" \
                and commands[-1].get("ok"):
            return None
        return command

    def window_words(self) -> str:
        """What the run does to the application: the change window's downtime."""
        command = self.stop_command()
        if command:
            return (f"The application: stopped first by the profile's stop command "
                    f"({command}); then the columns that gain a foreign key are checked "
                    f"again for orphans. The downtime runs from the stop until Start the "
                    f"application on the Verify page, once the checks pass.")
        return ("The application: stop it before you answer Yes (the profile has no stop "
                "command, or the Pre-flight page stopped it already).")

    def _why_unrehearsed(self, events: list[dict[str, Any]]) -> str:
        tries = run_state.rehearsals(events)
        if not tries:
            return ""
        last = tries[-1]
        if last.digest == (self.plan.digest if self.plan else ""):
            return f" (the last rehearsal, at {run_state.clock(last.at)}, failed: {last.error})"
        return (f" (the last rehearsal, at {run_state.clock(last.at)}, ran another plan: the "
                f"catalog changed since)")

    def rollback_words(self, events: list[dict[str, Any]]) -> str:
        """The backup the run would name as its rollback point, as the guard finds it (this
        run's journal first, then this database's other runs)."""
        journal = self.session.ensure_journal()
        others = sorted((e for j in runs_for(self.session.pg) if j.folder != journal.folder
                         for e in j.events()), key=lambda e: str(e.get("ts", "")))
        point = run_state.rollback_point(events, others)
        if point is None:
            return ("none: no verified backup of this database in the run journals, so the "
                    "run will refuse (take one on the Backup page)")
        if point.skipped:
            return (f"none: the backup was skipped by typed name ({point.skipped}); only a "
                    f"backup made elsewhere can bring the data back")
        proof = ("PROVEN by a restore into a scratch database" if point.proven else
                 f"its proof FAILED ({point.proof_reason}); the run refuses it unless you "
                 f"type the database name" if point.proven is False else
                 "not proven by a restore")
        return (f"{point.path} (sha256 {point.sha256[:16]}…, {proof}); the run hashes it "
                f"again before the transaction")

    def _start(self, rehearse: bool, guard: jobs.Guard) -> None:
        pg = self.session.pg
        assert self.plan is not None
        self._set_actions(False)
        self.locks.hide()
        self.blockers.setRowCount(0)
        for item in self.step_items.values():
            item.setText(2, "")
        name = "Rehearsal" if rehearse else "Migration"
        self.outcome.setText(f"{name} running…")
        # The last run's checks are not this run's: cleared; the Plan tab shows it live.
        self.checks.clear()
        self.tabs.setCurrentIndex(0)
        if rehearse:
            run: Any = functools.partial(jobs.run, pg, UP)
        else:  # the window: the stop (when the profile has the command) and a re-check first
            run = functools.partial(phases.stop_then_run, pg,
                                    stop_command=self.stop_command())
        job = self.run_job(
            name, run, options=self.options(rehearse=rehearse),
            journal=self.session.ensure_journal(), plan=self.plan, on_done=self.show_result,
            guard=guard,  # the verified backup (or its typed override), no orphans
            on_failed=lambda message: self._after_failure(rehearse, message),
            advice="Nothing was committed: the schema is unchanged. Fix the cause named "
            "above (a refusal names what is missing, e.g. the verified backup or the orphans: "
            "go Back to that page), then run it again.")
        job.emitted.connect(self._on_event)

    def _on_event(self, event: object) -> None:
        """Live progress from the engine's events: step durations and lock waits."""
        if isinstance(event, StepDone):
            item = self.step_items.get(event.index)
            if item is not None:
                item.setText(2, f"✔ {event.ms:.1f} ms")
                self.steps.scrollToItem(item)
        elif isinstance(event, LockTimedOut):
            self.locks.show()
            self.lock_note.setText(f"attempt {event.attempt}: lock timeout at {event.at}; "
                                   f"rolled back. Held by the sessions below.")
            self._fill_blockers(event.blockers)
        elif isinstance(event, AttemptStarted):
            for item in self.step_items.values():
                item.setText(2, "")
        elif isinstance(event, CommitUnknown):
            self.outcome.setText("The connection was lost during COMMIT: the outcome is not "
                                 "known yet. Asking the server what happened (it may be "
                                 "restarting); do not start any version of the application.")
        elif isinstance(event, CommitResolved):
            self.outcome.setText(f"After the lost connection the server shows: "
                                 f"{event.outcome} ({event.evidence}).")

    def show_result(self, outcome: tuple[Plan, RunResult, Any]) -> None:
        _plan, result, _journal = outcome
        self.result = result
        self.session.results["rehearsal" if result.rehearsal else "migrate"] = result
        self.fill_result(result)
        if result.lock_waits:
            self.show_blockers(result)
        if result.failed_index in self.step_items:
            item = self.step_items[result.failed_index]
            item.setText(2, "✘ failed")
            self.steps.scrollToItem(item)
        # A failure is read on the plan (which step, what passed); a success on its checks.
        self.tabs.setCurrentIndex(2 if result.ok else 0)
        if not result.ok:
            self.show_error(result.error or "the run failed", result.failed_step or
                            ("Rehearsal" if result.rehearsal else "Migration"),
                            self._failure_advice(result))
            self._set_actions(True)
            if result.commit == COMMITTED:  # committed, a check after it failed
                self._after = result.discovery_after
                self.summary.setText(self.header_text())
            elif result.commit_lost:
                self.summary.setText("state unknown: the connection was lost during COMMIT "
                                     "(see the Result tab). Plan again once the server "
                                     "answers.")
            else:
                self.summary.setText(self.header_text())
            return
        if result.rehearsal:
            self.summary.setText(self.header_text())
            self._set_actions(True)
            return
        self.set_valid(True)
        self._set_actions(False)
        self.replan_button.setEnabled(True)
        # The header said "state pre": it now says what the run read right after COMMIT.
        self._after = result.discovery_after
        self.summary.setText(self.header_text())
        if self._after is None:  # the run could not read it (a COMMIT it had to ask about)
            self._replan_soon.start()

    def fill_result(self, result: RunResult) -> None:
        for step in result.steps:
            item = self.step_items.get(step.index)
            if item is not None:
                item.setText(2, f"✔ {step.ms:.1f} ms")
        blocked = "—" if result.blocked_ms is None else f"{result.blocked_ms:.1f} ms"
        passed = sum(c.status == "pass" for c in result.checks)
        failed = sum(c.status == "fail" for c in result.checks)
        if result.rehearsal and result.ok:
            head = (f"Rehearsal: every step and check passed, then ROLLBACK — nothing "
                    f"changed. A real run would block the application for about {blocked}.")
        elif result.rehearsal:
            head = f"Rehearsal failed — nothing changed. {result.error}"
        elif result.ok:
            head = (f"Migrated: state {result.state_before} → {result.state_after}. "
                    f"The application was blocked {blocked}.")
            if result.commit_lost:
                head += (f" The connection was lost during COMMIT; the server then showed "
                         f"it committed ({result.commit_evidence}).")
        else:
            head = f"Migration failed. {self._failure_advice(result)}"
        counts = ", ".join(f"{t} {n:,}" for t, n in result.counts_after.items()) or \
            ", ".join(f"{t} {n:,}" for t, n in result.counts_before.items())
        self.outcome.setText(
            f"{head}\n{len(result.steps)} steps; blocked {blocked}; {result.attempts} "
            f"attempt(s); {result.total_s:.2f} s in all ({result.counting_s:.2f} s counting "
            f"rows outside the locks); checks ✔ {passed} ✘ {failed}"
            + (f"; rows: {counts}" if counts else ""))
        self.checks.clear()
        for check in result.checks:
            self.checks.addTopLevelItem(check_item(check))
        self.checks.setVisible(bool(result.checks))

    def show_blockers(self, result: RunResult) -> None:
        last = result.lock_waits[-1]
        self.locks.show()
        if result.ok:
            self.lock_note.setText(
                f"{len(result.lock_waits)} lock timeout(s) before the run got its locks; "
                f"these sessions held them (the last timed-out attempt).")
        else:
            self.lock_note.setText(
                f"{len(result.lock_waits)} lock timeout(s). These sessions held locks on the "
                f"tables the migration renames (last attempt); stop them or the application, "
                f"then run again. The Pre-flight page can cancel or terminate a session.")
        self._fill_blockers(last)

    def recheck_blockers(self) -> None:
        """The sessions under "Waiting for locks" may have ended since (terminated on the
        Pre-flight page, the application stopped): ask the server which still exist. A
        job of its own: the page stays usable while it runs."""
        if not self._blockers or self.locks.isHidden() or self.shell is None or \
                self.shell.session is None:
            return
        if self._blocker_check is not None and self._blocker_check.is_running():
            return
        job = Job.of(list_sessions, self.session.pg, name="Checking the lock holders",
                     parent=self)
        job.finished.connect(self._blockers_now)
        job.failed.connect(lambda message, _tb: self.lock_note.setText(
            f"{self._lock_base}\nCould not check whether they are still connected: {message}"))
        self._blocker_check = job
        job.start()

    def _blockers_now(self, sessions: list[Session]) -> None:
        alive = {s.pid: s for s in sessions}
        still = [{**b, "state": alive[b["pid"]].state, "xact_age_s": alive[b["pid"]].xact_age_s,
                  "query": alive[b["pid"]].query} for b in self._blockers if b.get("pid") in alive]
        gone = [f"pid {b.get('pid')} {b.get('application_name') or ''}".strip()
                for b in self._blockers if b.get("pid") not in alive]
        checked = datetime.now().strftime("%H:%M:%S")
        base = self._lock_base
        if not still:
            line = (f"Checked at {checked}: they have all ended ({', '.join(gone)}); nothing "
                    f"listed here holds the tables any more."
                    + ("" if self._migrated_at() is not None else " Run again."))
        else:
            line = (f"Checked at {checked}: {len(still)} of them still connected"
                    + (f"; ended: {', '.join(gone)}" if gone else "") + ".")
        self._fill_blockers(still)
        self._lock_base = base
        self.lock_note.setText(f"{base}\n{line}")
        self.blockers.setVisible(bool(still))

    def _fill_blockers(self, last: list[dict[str, Any]]) -> None:
        self._blockers = list(last)
        self._lock_base = self.lock_note.text()
        self.blockers.setVisible(bool(last))
        # Never squeezed to its header: at least one holder's row stays readable.
        bar = self.blockers.horizontalScrollBar().sizeHint().height()
        self.blockers.setMinimumHeight(min(110, self.blockers.horizontalHeader().height()
                                           + self.blockers.verticalHeader().defaultSectionSize()
                                           + bar + 4))
        self.blockers.setRowCount(len(last))
        for i, b in enumerate(last):
            values = (b.get("pid"), b.get("application_name") or "-", b.get("client"),
                      b.get("state"), b.get("xact_age_s"), b.get("mode"), b.get("relation"),
                      " ".join(str(b.get("query") or "").split()))
            for j, value in enumerate(values):
                self.blockers.setItem(i, j, QTableWidgetItem("" if value is None else str(value)))
        self.blockers.resizeColumnsToContents()

    @staticmethod
    def _failure_advice(result: RunResult) -> str:
        if result.commit_lost and result.commit not in (COMMITTED, NOT_COMMITTED):
            return ("The outcome is UNKNOWN: the server could not be asked whether the COMMIT "
                    "held. Start no version of the application; when the server answers, "
                    "go Back and forth to re-read the state (migrated: it committed, then "
                    "verify; pre: nothing changed).")
        if result.commit == COMMITTED:
            return ("The change was committed but a check after commit failed: look at the "
                    "Result tab, then run `enerlink-migrate verify`, or revert.")
        if result.lock_waits:
            return (f"{UNCHANGED} Another session held a lock (see 'Waiting for locks'): "
                    f"stop it or the application, or raise the lock timeout, then run again.")
        return f"{UNCHANGED} Fix the cause named above, then run again."

    def _after_failure(self, rehearse: bool, message: str = "") -> None:
        self.outcome.setText(f"{'Rehearsal' if rehearse else 'Migration'} did not run to the "
                             f"end: see the error above.")
        self._set_actions(True)
        if not rehearse and FAILED_PROOF in message:
            # After the panel's bookkeeping for this job: the override may start the next.
            QTimer.singleShot(0, lambda: self.override_failed_proof(message))

    def override_failed_proof(self, refusal: str) -> None:
        """The guard refused a backup whose proof failed: migrate anyway only with the
        database name typed back (journaled by the guard as accepted by typed name)."""
        if self.busy or self.plan is None or not self.plan.steps:
            return
        pg = self.session.pg
        db = pg.dbname
        typed = confirm_typed(
            self, "Migrate although the backup is not proven",
            f"The migration was refused: {refusal}\n\nIf the migration goes wrong, this "
            f"backup is the rollback point, and restoring it would not give back {db} on "
            f"{pg.host}:{pg.port} exactly. Better: take a new backup on the Backup page and "
            f"prove it. To migrate anyway, knowingly, type the database name; the run journal "
            f"records that the failed proof was accepted.", db, "Migrate &anyway")
        if typed != db:
            self.log.append("info", "migration not started: the failed proof was not accepted")
            return
        self.log.append("warn", f"migrating {db} although its backup's proof failed: "
                                f"confirmed by typing the database name")
        self._start(False, jobs.Guard(accept_failed_proof=db))

    def _set_actions(self, enabled: bool) -> None:
        ready = enabled and self.plan is not None and bool(self.plan.steps)
        self.rehearse_button.setEnabled(ready)
        self.run_button.setEnabled(ready)
        self.replan_button.setEnabled(not self.busy)
