"""A question a worker thread asks the DBA: a dialog on the GUI thread while the worker waits."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QDialog

from wizard.ui.worker import POLL_MS, Job

WAIT_S = 0.05  # how often a waiting worker looks at its job's cancel


class _Question:
    """One question in flight; the Event carries the answer across threads."""

    def __init__(self, payload: Any) -> None:
        self.payload = payload
        self.answer = False
        self.answered = threading.Event()
        self.withdrawn = threading.Event()  # the job was cancelled: nobody waits any more


class WorkerQuestion(QObject):
    """Called on the worker (e.g. as restore.run's confirm_not_valid), answered on the GUI.

    The worker never calls Qt: it queues the question and waits on a threading.Event; a
    timer in the GUI thread, running while the attached job runs, picks it up (as Job
    collects lines), builds the dialog with `make_dialog(payload)` and opens it without a
    nested event loop. Accepted is yes, anything else no. The GUI thread never waits for
    the worker, so cancelling or closing (which joins the worker) while the dialog is open
    cannot deadlock: the waiting worker sees the cancel within WAIT_S, answers no, and
    the dialog is closed.
    """

    shown = Signal(object)  # the dialog, once open (tests, screenshots)

    def __init__(self, make_dialog: Callable[[Any], QDialog], parent: QObject) -> None:
        super().__init__(parent)
        self._make_dialog = make_dialog
        self._pending: deque[_Question] = deque()  # appends and pops are thread-safe
        self._cancel: threading.Event | None = None
        self._open: _Question | None = None
        self.dialog: QDialog | None = None  # the open dialog, if any
        self.asked = 0  # questions shown so far
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)

    def attach(self, job: Job) -> None:
        """Answer for `job` (started with this object as its callback) until it is done."""
        self._cancel = job.cancel_event
        job.done.connect(self._job_done)
        self._timer.start()

    # -- worker thread ----------------------------------------------------------------------

    def __call__(self, payload: Any) -> bool:
        question = _Question(payload)
        self._pending.append(question)
        while not question.answered.wait(WAIT_S):
            cancel = self._cancel  # None until attach() ran on the GUI thread
            if cancel is not None and cancel.is_set():
                question.withdrawn.set()
                return False
        return question.answer

    # -- GUI thread -------------------------------------------------------------------------

    def _poll(self) -> None:
        if self._open is not None:
            if self._open.withdrawn.is_set() and self.dialog is not None:
                self.dialog.reject()
            return
        while self._pending:
            question = self._pending.popleft()
            if question.withdrawn.is_set():
                continue
            dialog = self._make_dialog(question.payload)
            dialog.finished.connect(lambda code, q=question, d=dialog: self._answer(q, d, code))
            self._open, self.dialog = question, dialog
            self.asked += 1
            dialog.open()
            self.shown.emit(dialog)
            return

    def _answer(self, question: _Question, dialog: QDialog, code: int) -> None:
        question.answer = code == QDialog.DialogCode.Accepted and not question.withdrawn.is_set()
        question.answered.set()
        if self._open is question:
            self._open, self.dialog = None, None
        dialog.deleteLater()

    def _job_done(self, _kind: str) -> None:
        self._timer.stop()
        if self.dialog is not None:
            self.dialog.reject()
        for question in self._pending:  # asked as the job ended: nobody waits for these
            question.answered.set()
        self._pending.clear()
