"""Dialogs outside the steps; JobDialog gives them a step page's job runner, errors and log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from wizard.ui.error_panel import ErrorPanel, write_traceback
from wizard.ui.log_view import LogView
from wizard.ui.worker import Job


class JobDialog(QDialog):
    """A dialog laid out like a step page: body, error panel, progress with Cancel, log.

    Closing while a job runs asks first, then cancels and joins it: no worker outlives
    the dialog.
    """

    busy_changed = Signal(bool)

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.job: Job | None = None
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
        running.setContentsMargins(0, 0, 0, 0)
        running.addWidget(self.progress_bar, 1)
        running.addWidget(self.progress_detail)
        running.addWidget(self.cancel_button)
        self.running_row = QWidget(self)
        self.running_row.setLayout(running)
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
        splitter.setStretchFactor(1, 2)
        splitter.setChildrenCollapsible(False)
        splitter.setSizes([440, 220])  # the dialog's content first; the log below it
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.buttons)
        self.resize(1000, 720)

    @property
    def busy(self) -> bool:
        return self.job is not None and self.job.is_running()

    def run_job(self, name: str, func: Callable[..., Any], *args: Any,
                on_done: Callable[[Any], None] | None = None,
                on_failed: Callable[[str], None] | None = None,
                advice: str = "", **kwargs: Any) -> Job:
        """Run `func` on a worker thread (as StepPage.run_job does); its log lands here."""
        if self.busy:
            raise RuntimeError(f"{self.windowTitle()}: a step is already running")
        self.errors.clear()
        job = Job.of(func, *args, name=name, parent=self, **kwargs)
        self.job = job
        self.log.attach(job)
        job.progress.connect(self._on_progress)
        if on_done is not None:
            done_cb = on_done
            # Chained jobs start from on_done: let this job's own `done` finish first.
            job.finished.connect(lambda result: QTimer.singleShot(0, lambda: done_cb(result)))
        job.failed.connect(lambda message, tb: self._on_failed(name, message, tb, advice,
                                                               on_failed))
        job.cancelled.connect(lambda: self.log.append("warn", f"{name}: cancelled"))
        job.done.connect(self._on_done)
        self.log.append("step", f"{name}…")
        self.progress_bar.setRange(0, 0)
        self.progress_detail.clear()
        self.running_row.show()
        job.start()
        self.busy_changed.emit(True)
        return job

    def cancel_job(self) -> None:
        if self.job is not None and self.job.is_running():
            self.log.append("warn", f"{self.job.name}: cancelling…")
            self.job.cancel()

    def show_error(self, message: str, step: str, action: str = "") -> None:
        self.errors.show_error(message, step, action)
        self.log.append("error", message)

    def _on_progress(self, fraction: float, detail: str) -> None:
        if self.progress_bar.maximum() == 0:
            self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(round(fraction * 1000))
        self.progress_detail.setText(detail)

    def _on_failed(self, name: str, message: str, tb: str, advice: str,
                   on_failed: Callable[[str], None] | None) -> None:
        if self.log.log_file is not None:
            write_traceback(self.log.log_file, tb)
        self.show_error(message, name, advice)
        if on_failed is not None:
            on_failed(message)

    def _on_done(self, _kind: str) -> None:
        self.running_row.hide()
        self.busy_changed.emit(False)

    # -- closing ----------------------------------------------------------------------------

    def _may_close(self) -> bool:
        if not self.busy or self.job is None:
            return True
        answer = QMessageBox.warning(
            self, "A step is running", f"{self.job.name} is still running. Cancel it and "
            "close? A cancelled restore drops the half-restored copy; the live database is "
            "untouched.", QMessageBox.StandardButton.Cancel | QMessageBox.StandardButton.Close,
            QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Close

    def stop(self) -> None:
        """Cancel and join a running job; stop writing the log file."""
        if self.job is not None and self.job.is_running():
            self.job.cancel()
            self.job.wait()
        self.log.flush()
        self.log.set_log_file(None)

    def reject(self) -> None:
        if self._may_close():
            self.stop()
            super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._may_close():
            self.stop()
            event.accept()
        else:
            event.ignore()
