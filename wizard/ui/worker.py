"""Run a Qt-free core job on a worker thread; its reports reach the GUI thread as signals."""

from __future__ import annotations

import inspect
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QMetaMethod, QObject, QTimer, Signal, Slot

from wizard.core import hints
from wizard.core.reporting import Cancelled
from wizard.ui import require_sound_binding

JobFn = Callable[..., Any]  # called as fn(report=..., progress=..., cancel=..., events=...)
POLL_MS = 20  # how often the GUI thread collects what the worker queued
CHUNK = 500  # lines per log_batch signal
BUDGET_S = 0.002  # GUI time per collection; what is left waits for the next turn
# A worker reporting in a tight loop never waits, so it keeps the GIL until the interpreter
# takes it away (sys.getswitchinterval(), 5 ms) and the GUI thread waits that long for every
# slot, timer and paint that runs Python. Its report() lends the GIL every GIL_LEND_EVERY_S
# instead: a sleep short enough to cost the worker a few per cent, long enough for a waiting
# thread to take it. Only this thread: the switch interval is the whole process's.
GIL_LEND_EVERY_S = 0.001
GIL_LEND_S = 0.00005
GIL_CHECK_LINES = 32  # lines between clock reads (a read costs about what a line does)

RUNNING, FINISHED, FAILED, CANCELLED = "running", "finished", "failed", "cancelled"


class Job(QObject):
    """One run of a core function on its own thread.

    The function gets `report(level, message)`, `progress(fraction, detail)` and a
    `threading.Event` cancel. The worker only appends to a deque and never calls Qt; a
    timer in the GUI thread collects in batches within a time budget, so 100,000 lines cost
    the event loop a few hundred short turns. Terminal signals come after the last line.

    A plain `threading.Thread` runs the job: it is joinable, and Python code running on a
    QThread leaves a never-ending "dummy" thread in `threading.enumerate()`. Not emitting
    from the worker also avoids a PySide6 6.12 crash (a refcount race when two threads emit
    one signal at once: "bool_dealloc: deallocating True").
    """

    log = Signal(str, str)  # level, message (one per line, in the GUI thread)
    # [(level, message), ...]: what a log view wants. `object`, not `list`: a list signal
    # converts every tuple to a QVariant and back (0.4 ms per 500 lines, in the GUI thread).
    log_batch = Signal(object)
    progress = Signal(float, str)  # fraction 0..1, detail (only the newest is kept)
    emitted = Signal(object)  # a wizard.core.events.Event the job emitted (structured progress)
    finished = Signal(object)  # the function's return value
    failed = Signal(str, str)  # message, traceback
    cancelled = Signal()
    done = Signal(str)  # after any of the three above: finished / failed / cancelled

    def __init__(self, fn: JobFn, *, name: str = "job", parent: QObject | None = None) -> None:
        require_sound_binding()
        super().__init__(parent)
        self.name = name
        self._fn = fn
        self.cancel_event = threading.Event()
        self._lines: deque[tuple[str, str]] = deque()  # appends and pops are thread-safe
        self._events: deque[Any] = deque()
        self._takes_events = "events" in inspect.signature(fn).parameters
        self._progress: tuple[float, str] | None = None
        self._shown_progress: tuple[float, str] | None = None
        self._outcome: tuple[str, Any] | None = None
        self._reported = 0  # lines so far (worker thread): when to look at the clock
        self._lent_at = 0.0  # when the worker last lent the GIL
        self._thread: threading.Thread | None = None
        self.state = ""
        self.result: Any = None
        self.failure: tuple[str, str] | None = None  # (message, traceback) when it failed
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._drain)

    @classmethod
    def of(cls, func: Callable[..., Any], *args: Any, name: str | None = None,
           parent: QObject | None = None, **kwargs: Any) -> Job:
        """A job calling `func(*args, **kwargs)` plus whichever of report/progress/cancel
        it accepts (and `events`, for structured progress), e.g.
        `Job.of(jobs.run, settings, "up", options=opts)`."""
        accepted = inspect.signature(func).parameters

        def call(report: Any, progress: Any, cancel: threading.Event, events: Any) -> Any:
            extra = {k: v for k, v in (("report", report), ("progress", progress),
                                       ("cancel", cancel), ("events", events))
                     if k in accepted and k not in kwargs}
            return func(*args, **kwargs, **extra)
        return cls(call, name=name or str(getattr(func, "__name__", "job")), parent=parent)

    # -- GUI thread -------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"job {self.name} was already started; make a new Job")
        self.state = RUNNING
        self._thread = threading.Thread(target=self._run, name=f"job:{self.name}")
        self._timer.start(POLL_MS)
        self._thread.start()

    def cancel(self) -> None:
        """Ask the job to stop at its next cancellation point."""
        self.cancel_event.set()

    def is_running(self) -> bool:
        return self.state == RUNNING

    def wait(self, timeout: float | None = None) -> bool:
        """Join the worker thread (tests, shutdown); True when it has ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @Slot()
    def _drain(self) -> None:
        # Read the outcome first: once it is set, every line is already in the deque.
        outcome = self._outcome
        started = time.monotonic()
        # Per-line signals only for someone who listens: 100,000 idle emits cost the GUI.
        per_line = self.isSignalConnected(QMetaMethod.fromSignal(self.log))
        while self._events:
            self.emitted.emit(self._events.popleft())
        while self._lines and not self._events:
            batch = [self._lines.popleft() for _ in range(min(CHUNK, len(self._lines)))]
            self.log_batch.emit(batch)
            if per_line:
                for level, message in batch:
                    self.log.emit(level, message)
            if time.monotonic() - started > BUDGET_S:
                break
        progress = self._progress
        if progress is not None and progress != self._shown_progress:
            self._shown_progress = progress
            self.progress.emit(*progress)
        if self._lines or self._events:
            self._timer.setInterval(0)  # more right after painting and input
        elif outcome is not None and self.state == RUNNING:
            self._timer.stop()
            self._finish(*outcome)
        else:
            self._timer.setInterval(POLL_MS)

    def _finish(self, kind: str, value: Any) -> None:
        if self._thread is not None:
            # Setting the outcome was the worker's last act: this join returns at once.
            self._thread.join()
        self.state = kind
        if kind == FINISHED:
            self.result = value
            self.finished.emit(value)
        elif kind == CANCELLED:
            self.cancelled.emit()
        else:
            self.failure = value
            self.failed.emit(*value)
        self.done.emit(kind)

    # -- worker thread ----------------------------------------------------------------------

    def _report(self, level: str, message: str) -> None:
        self._lines.append((level, str(message)))
        self._reported += 1
        if not self._reported % GIL_CHECK_LINES:
            now = time.perf_counter()
            if now - self._lent_at >= GIL_LEND_EVERY_S:
                time.sleep(GIL_LEND_S)
                self._lent_at = time.perf_counter()

    def _on_event(self, event: Any) -> None:
        self._events.append(event)

    def _on_progress(self, fraction: float, detail: str = "") -> None:
        self._progress = (max(0.0, min(1.0, float(fraction))), detail)

    def _run(self) -> None:
        outcome: tuple[str, Any]
        try:
            extra = {"events": self._on_event} if self._takes_events else {}
            with hints.speaking(hints.GUI):  # next steps in pages and buttons, not flags
                value = self._fn(report=self._report, progress=self._on_progress,
                                 cancel=self.cancel_event, **extra)
            outcome = (FINISHED, value)
        except Cancelled as exc:
            self._lines.append(("warn", str(exc) or f"{self.name} cancelled"))
            outcome = (CANCELLED, None)
        except BaseException as exc:  # everything must reach the GUI
            message = str(exc).strip() or type(exc).__name__
            outcome = (FAILED, (message, traceback.format_exc()))
        self._outcome = outcome  # the last thing the worker does
