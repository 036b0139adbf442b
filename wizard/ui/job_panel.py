"""The body of a step page or dialog: its widgets, the error panel, progress + Cancel, the log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from wizard.core.journal import write_traceback
from wizard.ui.error_panel import ErrorPanel
from wizard.ui.log_view import LogView
from wizard.ui.worker import Job


class JobPanel(QWidget):
    """Runs one core job at a time on a worker thread and shows what it says.

    The owner puts its own widgets in `body`; `busy_changed` tells it when to enable
    buttons. `on_done`/`on_failed` run after the panel stopped showing the job as running,
    so they may start the next job.
    """

    busy_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None, *, sizes: tuple[int, int] = (520, 180)
                 ) -> None:
        super().__init__(parent)
        self.job: Job | None = None
        self.step_name = ""
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
        self.log.setMinimumHeight(110)

        top = QWidget(self)
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.content, 1)
        top_layout.addWidget(self.errors)
        top_layout.addWidget(self.running_row)
        self.splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.splitter.addWidget(top)
        self.splitter.addWidget(self.log)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)
        # The step's own widgets first; the log keeps a readable strip (it can be dragged).
        self.splitter.setSizes(list(sizes))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)

    @property
    def busy(self) -> bool:
        return self.job is not None and self.job.is_running()

    def run_job(self, name: str, func: Callable[..., Any], *args: Any,
                on_done: Callable[[Any], None] | None = None,
                on_failed: Callable[[str], None] | None = None,
                advice: str = "", **kwargs: Any) -> Job:
        """Run `func` on a worker thread; its log lands in this panel's log view."""
        if self.busy:
            raise RuntimeError(f"{self.step_name or name}: a step is already running")
        self.errors.clear()
        job = Job.of(func, *args, name=name, parent=self, **kwargs)
        self.job = job
        self.log.attach(job)
        job.progress.connect(self._on_progress)
        job.cancelled.connect(lambda: self.log.append("warn", f"{name}: cancelled"))
        job.done.connect(lambda kind: self._on_done(job, kind, on_done, on_failed, advice))
        self.log.append("step", f"{name}…")
        self.progress_bar.setRange(0, 0)  # busy until the job reports a fraction
        self.progress_detail.clear()
        self.running_row.show()
        job.start()
        self.busy_changed.emit(True)
        return job

    def cancel_job(self) -> None:
        if self.job is not None and self.job.is_running():
            self.log.append("warn", f"{self.job.name}: cancelling…")
            self.job.cancel()

    def stop(self) -> None:
        """Cancel and join a running job (closing); stop writing the log file."""
        if self.job is not None and self.job.is_running():
            self.job.cancel()
            self.job.wait()
        self.log.flush()
        self.log.set_log_file(None)

    def show_error(self, message: str, step: str = "", action: str = "",
                   title: str = "This step failed") -> None:
        self.errors.show_error(message, step or self.step_name, action, title)
        self.log.append("error", message)

    def _on_progress(self, fraction: float, detail: str) -> None:
        if self.progress_bar.maximum() == 0:
            self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(round(fraction * 1000))
        self.progress_detail.setText(detail)

    def _on_done(self, job: Job, kind: str, on_done: Callable[[Any], None] | None,
                 on_failed: Callable[[str], None] | None, advice: str) -> None:
        if job is self.job:
            self.running_row.hide()
            self.busy_changed.emit(False)
        if kind == "failed":
            message, tb = job.failure or ("", "")
            if self.log.log_file is not None:
                write_traceback(self.log.log_file, tb)
            self.show_error(message, job.name, advice)
            if on_failed is not None:
                on_failed(message)
        elif kind == "finished" and on_done is not None:
            on_done(job.result)


class PanelHost:
    """For a page or dialog built around a JobPanel in `self.panel`: its job and runner."""

    panel: JobPanel

    @property
    def job(self) -> Job | None:
        return self.panel.job

    @property
    def busy(self) -> bool:
        return self.panel.busy

    def run_job(self, name: str, func: Callable[..., Any], *args: Any,
                on_done: Callable[[Any], None] | None = None,
                on_failed: Callable[[str], None] | None = None,
                advice: str = "", **kwargs: Any) -> Job:
        """Run `func` on a worker thread; its log lands in the panel's log view."""
        return self.panel.run_job(name, func, *args, on_done=on_done, on_failed=on_failed,
                                  advice=advice, **kwargs)

    def cancel_job(self) -> None:
        self.panel.cancel_job()

    def show_error(self, message: str, step: str = "", action: str = "",
                   title: str = "This step failed") -> None:
        self.panel.show_error(message, step, action, title)
