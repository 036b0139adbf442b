"""What every step page shares: a job runner, progress, the error panel and the live log."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget, QWizard, QWizardPage

from wizard.core.session import WizardSession
from wizard.ui.job_panel import JobPanel, PanelHost

if TYPE_CHECKING:
    from wizard.ui.window import MigrationWizard

LOG_FILE = "wizard.log"


class StepPage(PanelHost, QWizardPage):
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
        self._initialized = False
        self.step_name = title
        self.panel = JobPanel(self)
        self.panel.step_name = title
        self.panel.busy_changed.connect(self._busy_changed)
        # The panel's parts, under the names the pages use.
        self.body, self.log, self.errors = self.panel.body, self.panel.log, self.panel.errors
        self.cancel_button, self.progress_bar = self.panel.cancel_button, self.panel.progress_bar
        self.splitter = self.panel.splitter
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.panel)

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

    def set_valid(self, valid: bool) -> None:
        if valid != self._valid:
            self._valid = valid
            self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self._valid and not self.busy

    def initializePage(self) -> None:
        self._initialized = True  # the window then knows the page has just re-read its state
        session = self.shell.session
        if session is not None:
            self.log.set_log_file(session.ensure_journal().folder / LOG_FILE)

    def shown(self) -> None:
        """The window shows this page. Going forward QWizard has just called
        initializePage; coming Back it has not, and the page may describe a state the
        database has left since: `shown_again` re-reads it."""
        if self._initialized:
            self._initialized = False
        elif self.shell.session is not None:
            self.shown_again()

    def shown_again(self) -> None:
        """Shown again by Back: re-read what the page shows (pages that show the database's
        state override this; the default re-runs initializePage, as going forward does)."""
        self.initializePage()
        self._initialized = False

    # -- running jobs -----------------------------------------------------------------------

    def _busy_changed(self, busy: bool) -> None:
        self.completeChanged.emit()
        self.busy_changed.emit(busy)
        wizard = self.wizard()
        if wizard is not None:
            # QWizard re-enables Back on completeChanged; going back mid-step is not allowed.
            wizard.button(QWizard.WizardButton.BackButton).setEnabled(
                not busy and bool(wizard.visitedIds()[:-1]))
