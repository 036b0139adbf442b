"""Dialogs outside the steps; JobDialog gives them a step page's job runner, errors and log."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QMessageBox, QVBoxLayout, QWidget

from wizard.ui.job_panel import JobPanel, PanelHost


class JobDialog(PanelHost, QDialog):
    """A dialog laid out like a step page: body, error panel, progress with Cancel, log.

    Closing while a job runs asks first, then cancels and joins it: no worker outlives
    the dialog.
    """

    busy_changed = Signal(bool)

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.panel = JobPanel(self, sizes=(440, 220))
        self.panel.step_name = title
        self.panel.busy_changed.connect(self.busy_changed)
        self.body, self.log, self.errors = self.panel.body, self.panel.log, self.panel.errors
        self.cancel_button, self.progress_bar = self.panel.cancel_button, self.panel.progress_bar
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.panel, 1)
        layout.addWidget(self.buttons)
        self.resize(1000, 720)

    # -- closing ----------------------------------------------------------------------------

    def _may_close(self) -> bool:
        job = self.job
        if not self.busy or job is None:
            return True
        answer = QMessageBox.warning(
            self, "A step is running", f"{job.name} is still running. Cancel it and "
            "close? A restore cancelled before the names are swapped drops the half-restored "
            "copy and leaves the live database untouched; after the swap the restored "
            "database stays live and closing waits for the last steps (ANALYZE, cache).",
            QMessageBox.StandardButton.Cancel | QMessageBox.StandardButton.Close,
            QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Close

    def stop(self) -> None:
        """Cancel and join a running job; stop writing the log file."""
        self.panel.stop()

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
