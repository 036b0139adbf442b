"""What every step page shares: a job runner, progress, the error panel and the live log."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from wizard.core.session import WizardSession
from wizard.ui.error_panel import ErrorPanel, write_traceback
from wizard.ui.log_view import LogView
from wizard.ui.worker import Job

if TYPE_CHECKING:
    from wizard.ui.window import MigrationWizard

LOG_FILE = "wizard.log"


class StepPage(QWizardPage):
    """A thin view over engine jobs. The page says valid/busy; the shell enables buttons.

    Subclasses put their widgets in `self.body` and start work with `run_job`; Next is
    enabled only while the page is valid and no job runs.
    """

    busy_changed = Signal(bool)

    def __init__(self, title: str, subtitle: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTitle(title)
        self.setSubTitle(subtitle)
        self._valid = False
        self.job: Job | None = None
        self.step_name = title

        self.content = QWidget(self)
        self.body = QVBoxLayout(self.content)
        self.body.setContentsMargins(0, 0, 0, 0)
        self.errors = ErrorPanel(self)
        self.progress_bar = QProgressBar(self)
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(False)
        self.progress_detail = QLabel(self)
        self.cancel_button = QPushButton("Cancel t&his step", self)
        self.cancel_button.setToolTip("Stop the running step; what it changed is undone")
        self.cancel_button.clicked.connect(self.cancel_job)
        running = QHBoxLayout()
        running.addWidget(self.progress_bar, 1)
        running.addWidget(self.progress_detail)
        running.addWidget(self.cancel_button)
        self.running_row = QWidget(self)
        self.running_row.setLayout(running)
        running.setContentsMargins(0, 0, 0, 0)
        self.running_row.hide()
        self.log = LogView(self)

        top = QWidget(self)
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.content, 1)
        top_layout.addWidget(self.errors)
        top_layout.addWidget(self.running_row)
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(top)
        splitter.addWidget(self.log)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setChildrenCollapsible(False)
        # The step's own widgets first; the log keeps a readable strip (it can be dragged).
        self.log.setMinimumHeight(110)
        splitter.setSizes([520, 180])
        self.splitter = splitter
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

    # -- state the shell reads --------------------------------------------------------------

    @property
    def shell(self) -> MigrationWizard:
        return self.wizard()  # type: ignore[return-value]

    @property
    def session(self) -> WizardSession:
        session = self.shell.session
        if session is None:
            raise RuntimeError("no connection chosen yet: go back to the first page")
        return session

    @property
    def busy(self) -> bool:
        return self.job is not None and self.job.is_running()

    def set_valid(self, valid: bool) -> None:
        if valid != self._valid:
            self._valid = valid
            self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self._valid and not self.busy

    def initializePage(self) -> None:
        session = self.shell.session
        if session is not None:
            self.log.set_log_file(session.ensure_journal().folder / LOG_FILE)

    # -- running jobs -----------------------------------------------------------------------

    def run_job(self, name: str, func: Callable[..., Any], *args: Any,
                on_done: Callable[[Any], None] | None = None,
                on_failed: Callable[[str], None] | None = None,
                advice: str = "", **kwargs: Any) -> Job:
        """Run `func` on a worker thread; its log lands in this page's log view."""
        if self.busy:
            raise RuntimeError(f"{self.step_name}: a step is already running")
        self.errors.clear()
        job = Job.of(func, *args, name=name, parent=self, **kwargs)
        self.job = job
        self.log.attach(job)
        job.progress.connect(self._on_progress)
        job.finished.connect(lambda result: on_done(result) if on_done else None)
        job.failed.connect(lambda message, tb: self._on_failed(name, message, tb, advice,
                                                               on_failed))
        job.cancelled.connect(lambda: self.log.append("warn", f"{name}: cancelled"))
        job.done.connect(self._on_done)
        self.log.append("step", f"{name}…")
        self.progress_bar.setRange(0, 0)  # busy until the job reports a fraction
        self.progress_detail.clear()
        self.running_row.show()
        job.start()
        self._busy_changed(True)
        return job

    def cancel_job(self) -> None:
        if self.job is not None and self.job.is_running():
            self.log.append("warn", f"{self.job.name}: cancelling…")
            self.job.cancel()

    def show_error(self, message: str, step: str = "", action: str = "",
                   title: str = "This step failed") -> None:
        self.errors.show_error(message, step or self.step_name, action, title)
        self.log.append("error", message)

    def _on_progress(self, fraction: float, detail: str) -> None:
        if self.progress_bar.maximum() == 0:
            self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(round(fraction * 1000))
        self.progress_detail.setText(detail)

    def _on_failed(self, name: str, message: str, tb: str, advice: str,
                   on_failed: Callable[[str], None] | None) -> None:
        log_file = self.log.log_file
        if log_file is not None:
            write_traceback(log_file, tb)
        self.show_error(message, name, advice)
        if on_failed is not None:
            on_failed(message)

    def _on_done(self, _kind: str) -> None:
        self.running_row.hide()
        self._busy_changed(False)

    def _busy_changed(self, busy: bool) -> None:
        self.completeChanged.emit()
        self.busy_changed.emit(busy)
        wizard = self.wizard()
        if wizard is not None:
            # QWizard re-enables Back on completeChanged; going back mid-step is not allowed.
            wizard.button(QWizard.WizardButton.BackButton).setEnabled(
                not busy and bool(wizard.visitedIds()[:-1]))
