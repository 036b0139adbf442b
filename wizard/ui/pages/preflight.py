"""Page 2: pre-flight checks, the other sessions on the database, stopping the application."""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from wizard.core.appctl import AppCommandResult
from wizard.core.preflight import Preflight, Session, list_sessions, run_preflight, signal_session
from wizard.core.preflight import app_command as journaled_app_command
from wizard.core.units import format_bytes
from wizard.ui.checks_view import check_item, checks_tree
from wizard.ui.pages.base import StepPage


def _clock(stamp: datetime | None) -> str:
    return stamp.strftime("%H:%M:%S") if stamp is not None else "?"


# Headers say their unit; every column but the query (which takes the rest) is as wide as
# its header or its widest value, so no header is cut at the window's default size.
SESSION_COLUMNS = ("PID", "User", "Application", "Client", "State", "Transaction age (s)",
                   "Waiting on", "Query")


class PreflightPage(StepPage):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Pre-flight", "Read-only checks before the window opens: state, "
                         "privileges, disk, other sessions. Nothing here changes the "
                         "database.", parent)
        self.result: Preflight | None = None
        self.checked_at: datetime | None = None  # when `result` was read
        self.summary = QLabel("not checked yet")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        self.checks = checks_tree("pre-flight checks")
        self.rows = QTableWidget(0, 2)
        self.rows.setHorizontalHeaderLabels(["Table", "Rows (estimate)"])
        self.rows.horizontalHeader().setSectionResizeMode(
            0, QHeaderView.ResizeMode.ResizeToContents)
        self.rows.horizontalHeader().setStretchLastSection(True)
        self.rows.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)

        self.sessions = QTableWidget(0, len(SESSION_COLUMNS))
        self.sessions.setHorizontalHeaderLabels(list(SESSION_COLUMNS))
        self.sessions.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.sessions.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.sessions.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.sessions.horizontalHeader()
        for column in range(len(SESSION_COLUMNS) - 1):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.sessions.setAccessibleName("other sessions on the database")
        refresh, cancel_q, terminate = (QPushButton("&Refresh"), QPushButton("Cancel q&uery…"),
                                        QPushButton("&Terminate…"))
        refresh.clicked.connect(self.refresh_sessions)
        cancel_q.clicked.connect(lambda: self.signal_selected(terminate=False))
        terminate.clicked.connect(lambda: self.signal_selected(terminate=True))
        session_buttons = QHBoxLayout()
        for button in (refresh, cancel_q, terminate):
            session_buttons.addWidget(button)
        session_buttons.addStretch(1)
        sessions_tab = QWidget()
        layout = QVBoxLayout(sessions_tab)
        layout.addWidget(self.sessions, 1)
        layout.addLayout(session_buttons)

        self.stop_button = QPushButton("&Stop the application")
        self.stop_button.clicked.connect(lambda: self.app_command("stop"))
        self.start_button = QPushButton("St&art the application")
        self.start_button.clicked.connect(lambda: self.app_command("start"))
        self.app_note = QLabel()
        self.app_note.setWordWrap(True)
        self.app_note.setTextFormat(Qt.TextFormat.PlainText)
        app_tab = QWidget()
        app_layout = QVBoxLayout(app_tab)
        app_layout.addWidget(self.app_note)
        row = QHBoxLayout()
        row.addWidget(self.stop_button)
        row.addWidget(self.start_button)
        row.addStretch(1)
        app_layout.addLayout(row)
        app_layout.addStretch(1)

        self.tabs = QTabWidget()
        self.tabs.addTab(self.checks, "Chec&ks")
        self.tabs.addTab(self.rows, "Ro&w counts")
        self.tabs.addTab(sessions_tab, "Sess&ions")
        self.tabs.addTab(app_tab, "A&pplication")
        self.rerun = QPushButton("Run the checks a&gain")
        self.rerun.clicked.connect(self.run_checks)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.rerun)
        self.body.addLayout(top)
        self.body.addWidget(self.tabs, 1)

    def initializePage(self) -> None:
        super().initializePage()
        profile = self.session.profile
        stop = profile.app_stop_command if profile else None
        start = profile.app_start_command if profile else None
        self.stop_button.setEnabled(bool(stop))
        self.start_button.setEnabled(bool(start))
        self.app_note.setText(
            f"Stop command: {stop or '(none in this profile)'}\n"
            f"Start command: {start or '(none in this profile)'}\n"
            "Keep the application running through the prepare steps (pre-flight, backup, "
            "orphans, rehearsal): they only read, or change what you confirm. With a stop "
            "command, Run migration stops it just before the migration and the Verify page "
            "starts it again once the checks pass: that is the downtime. Without one, stop "
            "it yourself before Run migration. Commands run without a shell; their output "
            "goes to the log.")
        self.run_checks()

    def run_checks(self) -> None:
        if self.busy:
            return
        self.set_valid(False)
        if self.result is None:
            self.summary.setText("checking…")
        else:
            # Shown again: the old results stay readable, greyed and dated, until the new.
            self.summary.setText(f"checking again… (the results below are from "
                                 f"{_clock(self.checked_at)} and may be out of date)")
            self.tabs.setEnabled(False)
        profile = self.session.profile
        self.run_job("Pre-flight checks", run_preflight, self.session.pg,
                     self.session.backup_folder,
                     pg_dump=profile.pg_dump_path if profile else None,
                     journal=self.session.ensure_journal(), on_done=self.show_result,
                     on_failed=self._check_failed,
                     advice="Check the connection on the first page, then run the checks "
                     "again.")

    def _check_failed(self, _message: str) -> None:
        self.tabs.setEnabled(True)
        self.summary.setText("The checks could not run: see the error below."
                             + (f" The results below are from {_clock(self.checked_at)}: "
                                f"they may no longer hold." if self.result else ""))

    def show_result(self, result: Preflight) -> None:
        self.result = result
        self.checked_at = datetime.now().astimezone()
        self.tabs.setEnabled(True)
        self.session.results["preflight"] = result
        blocking = result.blocking
        self.summary.setText(
            f"Checked at {_clock(self.checked_at)} — {result.target}: PostgreSQL "
            f"{result.server_version}, state {result.state} "
            f"({result.explanation.rstrip('.')}); "
            f"database {format_bytes(result.database_bytes)}; "
            + (f"{len(blocking)} blocking problem(s)" if blocking else "nothing blocks the run"))
        self.checks.clear()
        for check in result.checks:
            self.checks.addTopLevelItem(check_item(check))
        self.rows.setRowCount(len(result.estimated_rows))
        for i, (table, n) in enumerate(sorted(result.estimated_rows.items())):
            self.rows.setItem(i, 0, QTableWidgetItem(table))
            count = QTableWidgetItem(f"≈ {n:,}")
            count.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.rows.setItem(i, 1, count)
        self.fill_sessions(result.sessions)
        if blocking:
            self.show_error("; ".join(f"{c.title}: {c.detail}" for c in blocking),
                            "Pre-flight", "Fix what the checks marked ✘, then run the checks "
                            "again.", title="Something blocks the run")
        self.set_valid(not blocking)

    def fill_sessions(self, sessions: list[Session]) -> None:
        self.sessions.setRowCount(len(sessions))
        for i, s in enumerate(sessions):
            values = (s.pid, s.user, s.application_name, s.client, s.state,
                      "" if s.xact_age_s is None else f"{s.xact_age_s:g}", s.waiting_on,
                      " ".join(s.query.split()))
            for j, value in enumerate(values):
                self.sessions.setItem(i, j, QTableWidgetItem(str(value)))
        self.tabs.setTabText(2, f"Sess&ions ({len(sessions)})")

    def refresh_sessions(self) -> None:
        if not self.busy:
            self.run_job("Listing sessions", list_sessions, self.session.pg,
                         on_done=self.fill_sessions)

    def signal_selected(self, *, terminate: bool) -> None:
        row = self.sessions.currentRow()
        if row < 0 or self.busy:
            return
        pid_item, app_item = self.sessions.item(row, 0), self.sessions.item(row, 2)
        if pid_item is None:
            return
        pid = int(pid_item.text())
        app = (app_item.text() if app_item else "") or "(no application name)"
        verb = "Terminate the connection of" if terminate else "Cancel the running query of"
        answer = QMessageBox.question(
            self, "Signal a session", f"{verb} pid {pid} ({app})?"
            + (" Its open transaction is rolled back." if terminate else ""))
        if answer != QMessageBox.StandardButton.Yes:
            return
        self.run_job("Signalling a session", signal_session, self.session.pg, pid,
                     terminate=terminate, journal=self.session.ensure_journal(),
                     on_done=self._signalled)

    def _signalled(self, message: str) -> None:
        self.log.append("info", message)
        self.refresh_sessions()

    def app_command(self, what: str) -> None:
        profile = self.session.profile
        command = getattr(profile, f"app_{what}_command", None) if profile else None
        if not command or self.busy:
            return
        self.run_job(f"{what.capitalize()} the application", journaled_app_command, what, command,
                     journal=self.session.ensure_journal(), on_done=self._app_done)

    def _app_done(self, result: AppCommandResult) -> None:
        if not result.ok:
            self.show_error(result.detail, f"{result.what} the application",
                            "Fix the command in the profile or run it by hand, then go on.")
        elif result.what == "stop":
            self.refresh_sessions()
