"""The wizard window: the pages in order, the step rail, the run's session, a careful close."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QAbstractButton, QMessageBox, QWidget, QWizard

from wizard import __version__
from wizard.core import hints, run_state
from wizard.core.run_state import DONE, FAILED, SKIPPED, STEPS, TODO, JobSpan
from wizard.core.session import WizardSession
from wizard.ui.dialogs import JobDialog
from wizard.ui.pages.base import StepPage
from wizard.ui.step_rail import StepRail
from wizard.ui.worker import CANCELLED, Job
from wizard.ui.worker import FAILED as JOB_FAILED

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
        hints.use(hints.GUI)  # the engine's next steps name pages and buttons, not CLI flags
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
        if len(self.steps) != len(STEPS):
            raise RuntimeError("wizard.core.run_state.STEPS must name every page, in order")
        # The rail: every step's state and the run's key facts, refreshed on every page
        # change, job start and end, and (coalesced) on the events a running job emits.
        self.rail = StepRail(self)
        self.setSideWidget(self.rail)
        self.spans: list[JobSpan] = []
        self._rail_soon = QTimer(self)
        self._rail_soon.setSingleShot(True)
        self._rail_soon.setInterval(150)
        self._rail_soon.timeout.connect(self.refresh_rail)
        for page, (step, _title) in zip(self.steps, STEPS, strict=True):
            page.busy_changed.connect(
                lambda busy, p=page, s=step: self._page_busy(p, s, busy))
        self.currentIdChanged.connect(self._page_changed)
        self.question: QMessageBox | None = None  # the open "close / finish?" question
        self._leaving = False  # the operator agreed to close
        self._finishing = False  # the operator agreed to finish
        self.resize(1100, 780)
        self.setMinimumSize(900, 640)
        self._update_title()
        self.refresh_rail()

    # -- the run ----------------------------------------------------------------------------

    def set_session(self, session: WizardSession) -> None:
        self.session = session
        # A new run: only the connection test belongs to it of what the pages did before.
        self.spans = [s for s in self.spans if s.step == "connect" or s.ended is None]
        self._update_title()
        self.refresh_rail()

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

    # -- the step rail ----------------------------------------------------------------------

    def step_of(self, page: object) -> str:
        return next((step for p, (step, _t) in zip(self.steps, STEPS, strict=True)
                     if p is page), "")

    def events(self) -> list[dict[str, Any]]:
        """The session journal's records (none before the first step ran)."""
        journal = self.session.journal if self.session is not None else None
        return journal.events() if journal is not None else []

    def run_states(self) -> list[run_state.StepState]:
        session = self.session
        return run_state.step_states(
            self.events(), self.spans,
            redis_configured=session is None or session.redis is not None,
            orphans_blocking=session.results.get("orphans_blocking") if session else None)

    def refresh_rail(self) -> None:
        """Derive every step's state and the key facts again (wizard.core.run_state)."""
        self._rail_soon.stop()
        session = self.session
        journal = session.journal if session is not None else None
        events = self.events()
        others = run_state.other_records(journal, session.pg) \
            if journal is not None and session is not None else []
        facts = run_state.key_facts(events, others,
                                    database=session.pg.describe() if session else "")
        self.rail.show_run(self.run_states(), facts, self.step_of(self.currentPage()))

    def _page_changed(self, _page_id: int) -> None:
        page = self.currentPage()
        if isinstance(page, StepPage):
            page.shown()
        self.refresh_rail()

    def _page_busy(self, page: StepPage, step: str, busy: bool) -> None:
        now = run_state.now_utc()
        job = page.job
        if busy and job is not None:
            self.spans.append(JobSpan(step, job.name, now))
            job.emitted.connect(lambda _event: self._rail_soon.start())
            # Once more after the page's own on_done, which may journal (the plan shown,
            # a typed skip): connected after the panel's, so it runs after it.
            job.done.connect(lambda _kind: self.refresh_rail())
        elif not busy:
            for i in range(len(self.spans) - 1, -1, -1):
                if self.spans[i].step == step and self.spans[i].ended is None:
                    self.spans[i] = dataclasses.replace(self.spans[i], ended=now,
                                                        failed=_failure(job))
                    break
        self.refresh_rail()

    # -- entries that skip the steps --------------------------------------------------------

    def open_restore(self) -> None:
        from wizard.ui.dialogs.restore import RestoreDialog
        dialog = RestoreDialog.open_for(self)
        if dialog is not None:  # its own journal: the rail reads it as this database's
            dialog.busy_changed.connect(lambda _busy: self.refresh_rail())
            dialog.finished.connect(lambda _code: self.refresh_rail())

    def open_previous_run(self) -> None:
        from wizard.ui.dialogs.runs import RunsDialog
        RunsDialog.open_for(self)

    # -- closing ----------------------------------------------------------------------------

    def reject(self) -> None:
        """Quit (the Cancel button, Esc) goes through the same question as closing."""
        question = None if self._leaving else self.leave_question()
        if question is None:
            self._stop_all()
            super().reject()
            return
        self.ask(*question, "&Close the wizard", lambda: self._leave(super(
            MigrationWizard, self).reject))

    def closeEvent(self, event: QCloseEvent) -> None:
        question = None if self._leaving else self.leave_question()
        if question is None:
            self._stop_all()
            event.accept()
            return
        event.ignore()
        self.ask(*question, "&Close the wizard", lambda: self._leave(self.close))

    def accept(self) -> None:
        """Finish with failed checks, or before the PDF report was exported, asks first."""
        concerns = [] if self._finishing else run_state.finish_concerns(self.events())
        if not concerns or self.session is None:
            super().accept()
            return
        self.ask("Finish the run?",
                 "Finishing closes the wizard although " + "; ".join(concerns) + ". The "
                 "change board expects the PDF report with every check; the run's journal "
                 f"stays in {self.session.ensure_journal().folder}.", "&Finish anyway",
                 self._finish_anyway)

    def _finish_anyway(self) -> None:
        self._finishing = True
        try:
            self.accept()
        finally:
            self._finishing = False

    def _leave(self, how: Callable[[], Any]) -> None:
        self._leaving = True
        try:
            self._stop_all()
            how()
        finally:
            self._leaving = False

    def leave_question(self) -> tuple[str, str] | None:
        """What to ask before closing (title, text), or None when nothing has happened."""
        running: list[Any] = [*self.busy_pages(),
                              *(d for d in self.findChildren(JobDialog) if d.busy)]
        if running:
            names = ", ".join(p.job.name for p in running if p.job is not None)
            return ("A step is running",
                    f"{names} is still running. Cancel it and close the wizard? A cancelled "
                    f"step undoes what it changed; the run's journal keeps its log.")
        events = self.events()
        if self.session is None or not run_state.has_happened(events):
            return None
        states = self.run_states()
        done = [s.title for s in states if s.status == DONE]
        skipped = [f"{s.title} ({s.reason})" for s in states if s.status == SKIPPED]
        failed = [s.title for s in states if s.status == FAILED]
        todo = [s.title for s in states if s.status == TODO]
        facts = run_state.key_facts(events, database=self.session.pg.describe())
        lines = [f"This run has begun on {facts.database} (schema {facts.state_words}).", ""]
        lines += [f"{label}: {', '.join(names)}." for label, names in (
            ("Done", done), ("Skipped", skipped), ("Failed", failed), ("Not done yet", todo))
            if names]
        lines += ["", f"Closing ends the run; its journal stays in "
                      f"{self.session.ensure_journal().folder}."]
        text = "\n".join(lines)
        return "Close the wizard?", text

    def ask(self, title: str, text: str, go: str, then: Callable[[], Any]) -> None:
        """A window-modal question that does not block: `then` runs once the operator
        presses `go`; Escape or the default button closes the question only."""
        if self.question is not None:
            self.question.raise_()
            return
        box = QMessageBox(QMessageBox.Icon.Warning, title, text,
                          QMessageBox.StandardButton.NoButton, self)
        go_button = box.addButton(go, QMessageBox.ButtonRole.DestructiveRole)
        stay = box.addButton("&Stay", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(stay)
        box.setEscapeButton(stay)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.finished.connect(lambda _code: self._answered(box, go_button, then))
        self.question = box
        box.open()

    def _answered(self, box: QMessageBox, go: QAbstractButton,
                  then: Callable[[], Any]) -> None:
        self.question = None
        box.deleteLater()
        if box.clickedButton() is go:
            then()

    def _stop_all(self) -> None:
        for page in self.steps:
            if page.job is not None and page.job.is_running():
                page.job.cancel()
                page.job.wait()
            page.log.flush()
            page.log.set_log_file(None)


def _failure(job: Job | None) -> str | None:
    """Why a page's job did not succeed, as the rail says it (None: it did, or it was
    cancelled): a failure, or a result whose `ok` is false (a run rolled back)."""
    if job is None or job.state == CANCELLED:
        return None
    if job.state == JOB_FAILED:
        return job.failure[0] if job.failure else "failed"
    results = job.result if isinstance(job.result, tuple) else (job.result,)
    for result in results:
        if getattr(result, "cancelled", False) is True:
            continue  # the operator stopped it (a restore's NOT VALID swap declined)
        if getattr(result, "ok", None) is False:
            return str(getattr(result, "error", None) or "it did not succeed")
    return None
