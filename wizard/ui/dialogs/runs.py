"""Open a previous run: its log and checklist from the journal, and its PDF."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from wizard.core import runs as core_runs
from wizard.core.journal import Journal, runs_root
from wizard.core.report import MARK, STATUS_LABEL, build_report, format_ts
from wizard.core.runs import RunSummary
from wizard.ui.dialogs import DEFAULT_SIZE, fitting_size
from wizard.ui.pages.base import LOG_FILE
from wizard.ui.pdf import write_report_pdf

if TYPE_CHECKING:
    from wizard.ui.window import MigrationWizard

COLUMNS = ("started", "command", "database", "host", "outcome")


@dataclass
class RunRow:
    """A row of the table: wizard.core.runs' summary of the run (what that run did, never
    the database's state now), and its journal."""

    summary: RunSummary

    @property
    def journal(self) -> Journal:
        return Journal(self.summary.folder)

    @property
    def started(self) -> str:
        return format_ts(self.summary.started) if self.summary.started else "?"

    @property
    def command(self) -> str:
        return self.summary.command

    @property
    def dbname(self) -> str:
        return self.summary.dbname

    @property
    def host(self) -> str:
        return f"{self.summary.host}:{self.summary.port}"

    @property
    def outcome(self) -> str:
        return self.summary.outcome

    @property
    def ok(self) -> bool:
        return self.summary.ok is not False  # None: nothing to judge, not a failure


def list_runs(root: Path | None = None) -> list[RunRow]:
    """Every run under the runs root, newest first, as the CLI's `runs` sums them up."""
    return [RunRow(summary) for summary in core_runs.list_runs(root)]


def run_log(journal: Journal) -> str:
    """The run's wizard.log, else the `log` events the engine journaled."""
    log_file = journal.folder / LOG_FILE
    if log_file.is_file():
        return log_file.read_text(encoding="utf-8", errors="replace")
    lines = [f"{e.get('ts', '')} [{e.get('level', 'info')}] {e.get('message', '')}"
             for e in journal.events("log")]
    return "\n".join(lines) or "(no log recorded in this run)"


class RunsDialog(QDialog):
    """The runs under the runs folder, newest first; the selected one's log and checklist."""

    def __init__(self, parent: QWidget | None = None, root: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open a previous run")
        self.root = root or runs_root()
        self.runs: list[RunRow] = []
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAccessibleName("previous runs")
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        for i in range(len(COLUMNS) - 1):
            header.setSectionResizeMode(i, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.currentCellChanged.connect(lambda row, *_: self.show_run(row))

        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setFont(mono)
        self.log.setAccessibleName("log of the selected run")
        self.checklist = QTreeWidget()
        self.checklist.setHeaderLabels(["", "Item", "Result or note"])
        self.checklist.setAccessibleName("checklist of the selected run")
        ch = self.checklist.header()
        ch.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        ch.resizeSection(1, 360)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.log, "&Log")
        self.tabs.addTab(self.checklist, "C&hecklist")
        self.where = QLabel()
        self.where.setTextFormat(Qt.TextFormat.PlainText)
        self.where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.where.setWordWrap(True)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        bottom_layout.addWidget(self.where)
        bottom_layout.addWidget(self.tabs, 1)
        splitter.addWidget(bottom)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.pdf_button = QPushButton("Export &PDF…")
        self.pdf_button.setEnabled(False)
        self.pdf_button.clicked.connect(self.export_pdf_dialog)
        self.refresh_button = QPushButton("&Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        self.buttons.addButton(self.pdf_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.addButton(self.refresh_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"Runs in {self.root}, newest first:"))
        layout.addWidget(splitter, 1)
        layout.addWidget(self.buttons)
        self.resize(fitting_size(self, *DEFAULT_SIZE))
        self.refresh()

    @classmethod
    def open_for(cls, window: MigrationWizard) -> RunsDialog:
        dialog = cls(window)
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        return dialog

    @property
    def selected(self) -> RunRow | None:
        row = self.table.currentRow()
        return self.runs[row] if 0 <= row < len(self.runs) else None

    def refresh(self) -> None:
        self.runs = list_runs(self.root)
        self.table.setRowCount(len(self.runs))
        for i, run in enumerate(self.runs):
            values = (run.started, run.command, run.dbname, run.host, run.outcome)
            for j, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setToolTip(value)
                if j == len(values) - 1 and not run.ok:
                    item.setForeground(Qt.GlobalColor.red)
                self.table.setItem(i, j, item)
        if self.runs:
            self.table.setCurrentCell(0, 0)
        else:
            self.show_run(-1)

    def show_run(self, row: int) -> None:
        run = self.runs[row] if 0 <= row < len(self.runs) else None
        self.pdf_button.setEnabled(run is not None)
        self.checklist.clear()
        if run is None:
            self.where.setText("No run recorded yet." if not self.runs else "")
            self.log.clear()
            return
        self.where.setText(f"{run.journal.folder} — {run.outcome}")
        self.log.setPlainText(run_log(run.journal))
        try:
            model = build_report(run.journal)
        except (OSError, ValueError) as exc:
            self.checklist.addTopLevelItem(QTreeWidgetItem(["?", "journal unreadable",
                                                            str(exc)]))
            return
        for c in model.checklist:
            item = QTreeWidgetItem([MARK.get(c.status, "?"), c.title,
                                    c.detail if c.kind == "automated" else c.note])
            item.setToolTip(0, STATUS_LABEL.get(c.status, c.status))
            item.setToolTip(1, f"{c.section}: {c.how}" if c.how else c.section)
            for key, value in c.evidence.items():
                item.addChild(QTreeWidgetItem(["", key, " ".join(str(value).split())[:300]]))
            self.checklist.addTopLevelItem(item)
        if not model.checklist:
            self.checklist.addTopLevelItem(QTreeWidgetItem(["", "no checklist in this run",
                                                            ""]))

    def export_pdf(self, path: Path, run: RunRow | None = None) -> int:
        """The selected (or given) run's report as a PDF; returns its page count."""
        run = run or self.selected
        if run is None:
            raise ValueError("no run selected")
        return write_report_pdf(run.journal, path)

    def export_pdf_dialog(self) -> None:
        run = self.selected
        if run is None:
            return
        day = run.started.split(" ", 1)[0]
        default = Path.home() / f"enerlink-migration-{run.dbname}-{day}.pdf"
        path, _ = QFileDialog.getSaveFileName(self, "Export the run's report as PDF",
                                              str(default), "PDF (*.pdf)")
        if not path:
            return
        try:
            pages = self.export_pdf(Path(path), run)
        except OSError as exc:
            self.where.setText(f"✘ cannot write {path}: {exc}")
            return
        self.where.setText(f"✔ report written to {path} ({pages} pages)")
