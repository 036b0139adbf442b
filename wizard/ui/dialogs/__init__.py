"""Dialogs outside the steps; JobDialog gives them a step page's job runner, errors and log."""

from __future__ import annotations

from PySide6.QtCore import QSize, Signal
from PySide6.QtGui import QCloseEvent, QGuiApplication
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QMessageBox, QVBoxLayout, QWidget

from wizard.ui.job_panel import JobPanel, PanelHost

DEFAULT_SIZE = (1240, 860)  # px: a restore's longest lines (path, sha256) fit on a desk's screen


def fitting_size(widget: QWidget, width: int, height: int) -> QSize:
    """`width` by `height`, or 90 % of the screen the widget is on when that is smaller: a
    restore's paths and sha256 fit on one line of a desk's screen, and nothing falls off a
    laptop's."""
    screen = widget.screen() or QGuiApplication.primaryScreen()
    if screen is None:
        return QSize(width, height)
    room = screen.availableGeometry()
    return QSize(min(width, int(room.width() * 0.9)), min(height, int(room.height() * 0.9)))


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
        self.resize(fitting_size(self, *DEFAULT_SIZE))

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
