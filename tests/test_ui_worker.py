"""Jobs on worker threads: results, failures, cancel, ordering; the error panel and hook."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from wizard.core import jobs
from wizard.core.connection import PgSettings
from wizard.core.execute import RunOptions
from wizard.core.reporting import Cancelled, Progress, Report, check_cancel
from wizard.ui.error_panel import ErrorPanel, install_excepthook
from wizard.ui.worker import CANCELLED, FAILED, FINISHED, Job

TIMEOUT_MS = 10_000


def _job_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("job:") and t.is_alive()]


def test_job_forwards_log_progress_and_result(qtbot: Any) -> None:
    def work(report: Report, progress: Progress, cancel: threading.Event) -> int:
        report("step", "[1/2] first")
        progress(0.5, "half way")
        report("warn", "careful")
        progress(1.0, "done")
        return 42

    job = Job(work, name="answer")
    lines: list[tuple[str, str]] = []
    fractions: list[tuple[float, str]] = []
    job.log.connect(lambda level, message: lines.append((level, message)))
    job.progress.connect(lambda f, d: fractions.append((f, d)))
    ends: list[str] = []
    job.done.connect(ends.append)
    with qtbot.waitSignal(job.finished, timeout=TIMEOUT_MS) as blocker:
        job.start()
    assert blocker.args == [42]
    assert ends == [FINISHED]
    # Every line arrives, in order, before the result; progress is coalesced to the newest.
    assert lines == [("step", "[1/2] first"), ("warn", "careful")]
    assert fractions[-1] == (1.0, "done")
    assert (job.state, job.result) == (FINISHED, 42)
    assert _job_threads() == []  # joined before `finished` was emitted


def test_exception_becomes_failed_with_traceback(qtbot: Any) -> None:
    def broken(report: Report, progress: Progress, cancel: threading.Event) -> None:
        report("info", "about to fail")
        raise ValueError("table wallet has no column prosumer_id")

    job = Job(broken, name="broken")
    with qtbot.waitSignal(job.failed, timeout=TIMEOUT_MS) as blocker:
        job.start()
    message, tb = blocker.args
    assert message == "table wallet has no column prosumer_id"
    assert "Traceback (most recent call last)" in tb
    assert "in broken" in tb
    assert "ValueError" in tb
    assert job.state == FAILED


def test_cancel_reaches_the_job(qtbot: Any) -> None:
    def waits(report: Report, progress: Progress, cancel: threading.Event) -> str:
        report("info", "waiting for the operator")
        cancel.wait(TIMEOUT_MS / 1000)  # a cancellation point, as pg_dump's reader has
        check_cancel(cancel, "backup")
        return "not cancelled"

    job = Job(waits, name="waits")
    with qtbot.waitSignal(job.log, timeout=TIMEOUT_MS):
        job.start()
    assert job.is_running()
    lines: list[str] = []
    job.log.connect(lambda _level, message: lines.append(message))
    with qtbot.waitSignal(job.cancelled, timeout=TIMEOUT_MS):
        job.cancel()
    assert job.state == CANCELLED
    assert lines == ["backup cancelled by the operator"]
    assert job.wait(0)


def test_cancelled_raised_without_cancel_is_still_cancelled(qtbot: Any) -> None:
    def gives_up(report: Report, progress: Progress, cancel: threading.Event) -> None:
        raise Cancelled("restore cancelled: the half-restored database was dropped")

    job = Job(gives_up)
    with qtbot.waitSignal(job.cancelled, timeout=TIMEOUT_MS):
        job.start()


def test_many_lines_arrive_in_few_batches(qtbot: Any) -> None:
    n = 50_000

    def chatty(report: Report, progress: Progress, cancel: threading.Event) -> int:
        for i in range(n):
            report("info", f"line {i}")
        return n

    job = Job(chatty)
    batches: list[int] = []
    lines: list[str] = []
    job.log_batch.connect(lambda batch: batches.append(len(batch)))
    job.log.connect(lambda _level, message: lines.append(message))
    with qtbot.waitSignal(job.finished, timeout=30_000):
        job.start()
    assert lines == [f"line {i}" for i in range(n)]
    assert sum(batches) == n
    assert len(batches) < n / 10  # one wake-up per batch, not per line


def test_job_of_runs_an_engine_job(qtbot: Any, pg_db: PgSettings) -> None:
    """The real engine on a worker thread: a rehearsal, its step lines, its result."""
    job = Job.of(jobs.run, pg_db, "up", options=RunOptions(rehearse=True), name="rehearse")
    lines: list[str] = []
    job.log.connect(lambda _level, message: lines.append(message))
    with qtbot.waitSignal(job.finished, timeout=60_000) as blocker:
        job.start()
    _plan, result, journal = blocker.args[0]
    assert result.ok
    assert result.rehearsal
    assert any(line.startswith("[1/") for line in lines)
    assert journal.events("run_finished")


def test_a_job_runs_once(qtbot: Any) -> None:
    job = Job(lambda report, progress, cancel: None)
    with qtbot.waitSignal(job.finished, timeout=TIMEOUT_MS):
        job.start()
    with pytest.raises(RuntimeError, match="already started"):
        job.start()


def test_error_panel_shows_three_fields_and_hides(qtbot: Any) -> None:
    from PySide6.QtWidgets import QVBoxLayout, QWidget

    page = QWidget()
    qtbot.addWidget(page)
    panel = ErrorPanel(page)
    QVBoxLayout(page).addWidget(panel)
    page.show()  # the page is shown; the panel stays hidden until there is an error
    assert not panel.isVisible()
    panel.show_error("lock timeout on wallet after 3 attempts", "[3/20] Renaming wallet…",
                     "End session 4242 (Pre-flight page), then run again.")
    assert panel.isVisible()
    assert panel.message.text() == "lock timeout on wallet after 3 attempts"
    assert panel.step.text() == "[3/20] Renaming wallet…"
    assert "session 4242" in panel.action.text()
    panel.copy_details()
    from PySide6.QtGui import QGuiApplication

    assert "Failed step: [3/20] Renaming wallet…" in QGuiApplication.clipboard().text()
    panel.clear()
    assert not panel.isVisible()
    assert panel.message.text() == ""
    panel.show_error("<b>not markup</b>")
    assert panel.message.text() == "<b>not markup</b>"  # shown as plain text


def test_excepthook_writes_the_log_and_shows_a_dialog(qtbot: Any, tmp_path: Path) -> None:
    log_file = tmp_path / "wizard.log"
    hook = install_excepthook(log_file)
    try:
        assert sys.excepthook is hook
        try:
            raise RuntimeError("page state lost")
        except RuntimeError:
            sys.excepthook(*sys.exc_info())
        text = log_file.read_text(encoding="utf-8")
        assert "[error] unexpected error in the wizard" in text
        assert "RuntimeError: page state lost" in text
        [box] = hook.boxes
        qtbot.waitUntil(box.isVisible, timeout=TIMEOUT_MS)
        assert box.text() == "page state lost"
        assert str(log_file) in box.informativeText()
        box.close()
        qtbot.waitUntil(lambda: not hook.boxes, timeout=TIMEOUT_MS)
    finally:
        hook.uninstall()
    assert sys.excepthook is not hook
