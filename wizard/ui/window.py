"""The wizard window: the pages in order, the run's session, and a careful close."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QMessageBox, QWidget, QWizard

from wizard import __version__
from wizard.core.session import WizardSession
from wizard.ui.pages.base import StepPage

APP_TITLE = "EnerLink migration"

PageFactory = Callable[[], StepPage]


def page_factories() -> list[PageFactory]:
    """The steps in the guide's order; each module holds one page."""
    from wizard.ui.pages.backup import BackupPage
    from wizard.ui.pages.cache import CachePage
    from wizard.ui.pages.migrate import MigratePage
    from wizard.ui.pages.orphans import OrphansPage
    from wizard.ui.pages.preflight import PreflightPage
    from wizard.ui.pages.profile import ProfilePage
    from wizard.ui.pages.verify import VerifyPage
    return [ProfilePage, PreflightPage, BackupPage, OrphansPage, MigratePage, CachePage,
            VerifyPage]


class MigrationWizard(QWizard):
    """Next is enabled by each page's complete state; Back is disabled while a step runs."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session: WizardSession | None = None
        self.setWizardStyle(QWizard.WizardStyle.ModernStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.setOption(QWizard.WizardOption.HaveHelpButton, False)
        self.setOption(QWizard.WizardOption.NoCancelButtonOnLastPage, True)
        self.setButtonText(QWizard.WizardButton.CancelButton, "&Quit")
        self.setButtonText(QWizard.WizardButton.FinishButton, "&Finish")
        self.steps: list[StepPage] = []
        for factory in page_factories():
            page = factory()
            self.addPage(page)
            self.steps.append(page)
        self.resize(1100, 780)
        self.setMinimumSize(900, 640)
        self._update_title()

    # -- the run ----------------------------------------------------------------------------

    def set_session(self, session: WizardSession) -> None:
        self.session = session
        self._update_title()

    def _update_title(self) -> None:
        where = f" — {self.session.title}" if self.session else ""
        self.setWindowTitle(f"{APP_TITLE} {__version__}{where}")

    def start_at(self, page_type: type[StepPage]) -> StepPage:
        """Show `page_type` as the first page (a reopened run, tests); needs a session."""
        index = next(i for i, p in enumerate(self.steps) if isinstance(p, page_type))
        self.setStartId(self.pageIds()[index])
        self.restart()
        return self.steps[index]

    def busy_pages(self) -> list[StepPage]:
        return [p for p in self.steps if p.busy]

    # -- entries that skip the steps --------------------------------------------------------

    def open_restore(self) -> None:
        from wizard.ui.dialogs.restore import RestoreDialog
        RestoreDialog.open_for(self)

    def open_previous_run(self) -> None:
        from wizard.ui.dialogs.runs import RunsDialog
        RunsDialog.open_for(self)

    # -- closing ----------------------------------------------------------------------------

    def reject(self) -> None:
        """Quit (the Cancel button, Esc) goes through the same question as closing."""
        if self._may_close():
            self._stop_all()
            super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._may_close():
            self._stop_all()
            event.accept()
        else:
            event.ignore()

    def _may_close(self) -> bool:
        running = self.busy_pages()
        if not running:
            return True
        names = ", ".join(p.job.name for p in running if p.job is not None)
        answer = QMessageBox.warning(
            self, "A step is running",
            f"{names} is still running. Cancel it and close the wizard? A cancelled step "
            f"undoes what it changed; the run's journal keeps its log.",
            QMessageBox.StandardButton.Cancel | QMessageBox.StandardButton.Close,
            QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Close

    def _stop_all(self) -> None:
        for page in self.steps:
            if page.job is not None and page.job.is_running():
                page.job.cancel()
                page.job.wait()
            page.log.flush()
            page.log.set_log_file(None)
