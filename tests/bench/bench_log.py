"""Benchmark: the longest GUI stall while a worker streams log lines, ours vs one signal per line.

A shown window with the live log; a worker thread reports BENCH_LOG_LINES lines (default
100,000) as fast as it can. A 1 ms precise timer in the GUI thread records the longest gap
between its ticks: that is how long the window could not repaint or take a click. "Ours" is
worker.Job + LogView (the worker queues, the GUI collects and paints in batches); "naive" is
a queued signal per line into QPlainTextEdit.appendPlainText, same block cap. Total time is
until the last line is on screen. A worker that never waits (pure Python) holds the GIL for
the interpreter's switch interval (5 ms) at a time, so a row shows the effect of 1 ms.
"Ours" also writes the full log file, as every page's log does. The target is a stall of
at most one 60 Hz frame (16 ms); the table shows the longest stall against it, and runs the
measurement BENCH_LOG_ROUNDS times (default 3): the spread is the machine's, shared.
Run by `make bench`; BENCH_LOG_LINES sets the size.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import print_table
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication, QPlainTextEdit

from wizard.ui import require_sound_binding
from wizard.ui.log_view import MAX_BLOCKS, LogView
from wizard.ui.worker import Job

LINES = int(os.environ.get("BENCH_LOG_LINES", "100000"))
ROUNDS = max(1, int(os.environ.get("BENCH_LOG_ROUNDS", "3")))
TICK_MS = 1
FRAME_S = 0.016  # one frame at 60 Hz: the longest a stall may be


class StallMeter:
    """Ticks every millisecond in the GUI thread and keeps the gaps between ticks."""

    def __init__(self) -> None:
        self.gaps: list[float] = []
        self._last = 0.0
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._last = time.perf_counter()
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def stop(self) -> None:
        self.timer.stop()


def _line(i: int) -> str:
    return f"[{i % 20 + 1}/20] dumping contents of table public.transaction_log row {i}"


def run_ours(app: QApplication, lines: int = LINES,
             log_file: Path | None = None) -> tuple[float, StallMeter]:
    view = LogView(log_file=log_file)
    view.resize(900, 600)
    view.show()

    def stream(report: Any, progress: Any, cancel: threading.Event) -> None:
        for i in range(lines):
            report("step" if i % 50 == 0 else "info", _line(i))

    job = Job(stream, name="bench")
    view.attach(job)
    return _measure(app, job.start, lambda: job.state == "finished" and view.pending() == 0,
                    lambda: job.wait())


class Emitter(QObject):
    line = Signal(str)
    end = Signal()


def run_naive(app: QApplication) -> tuple[float, StallMeter]:
    editor = QPlainTextEdit()
    editor.setReadOnly(True)
    editor.setMaximumBlockCount(MAX_BLOCKS)
    editor.resize(900, 600)
    editor.show()
    emitter = Emitter()
    emitter.line.connect(editor.appendPlainText, Qt.ConnectionType.QueuedConnection)
    ended = threading.Event()
    seen = {"end": False}
    emitter.end.connect(lambda: seen.update(end=True), Qt.ConnectionType.QueuedConnection)

    def stream() -> None:
        for i in range(LINES):
            emitter.line.emit(_line(i))
        emitter.end.emit()
        ended.set()

    thread = threading.Thread(target=stream, name="naive")
    return _measure(app, thread.start, lambda: seen["end"], thread.join)


def _measure(app: QApplication, start: Callable[[], None], done: Callable[[], bool],
             join: Callable[[], Any]) -> tuple[float, StallMeter]:
    meter = StallMeter()
    check = QTimer()
    check.setInterval(5)

    def maybe_quit() -> None:
        if done():
            app.quit()
    check.timeout.connect(maybe_quit)
    meter.start()
    check.start()
    t0 = time.perf_counter()
    start()
    app.exec()
    total = time.perf_counter() - t0
    meter.stop()
    check.stop()
    join()
    return total, meter


def main() -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    try:
        require_sound_binding()
    except RuntimeError as exc:
        print(f"bench_log: skipped: {exc}", file=sys.stderr)
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_log.") as tmp:
        def log_file(name: str) -> Path:
            return Path(tmp) / f"{name}.log"

        run_ours(app, 2_000, log_file("warm-up"))  # first show, fonts, caches; not reported
        results: dict[str, list[tuple[float, StallMeter]]] = {}
        previous = sys.getswitchinterval()
        for r in range(ROUNDS):  # interleaved, so a busy spell of the machine hits all
            results.setdefault("ours (Job + LogView)", []).append(
                run_ours(app, log_file=log_file(f"ours-{r}")))
            sys.setswitchinterval(0.001)  # the GUI thread waits at most 1 ms for the GIL
            try:
                results.setdefault("ours, GIL switch interval 1 ms", []).append(
                    run_ours(app, log_file=log_file(f"ours-1ms-{r}")))
            finally:
                sys.setswitchinterval(previous)
            results.setdefault("naive (signal per line)", []).append(run_naive(app))
    ours = results["ours (Job + LogView)"]
    base_stall = statistics.median(max(meter.gaps) for _, meter in ours)
    base_total = statistics.median(total for total, _ in ours)
    for name, runs in results.items():
        for r, (total, meter) in enumerate(runs, 1):
            gaps = sorted(meter.gaps)
            p99 = gaps[int(len(gaps) * 0.99)] if gaps else 0.0
            longest = max(gaps)
            rows.append([name, str(r), f"{LINES:,}", f"{total:.2f}", f"{longest * 1000:.1f}",
                         f"{longest / FRAME_S:.2f}", f"{p99 * 1000:.1f}",
                         f"{statistics.median(gaps) * 1000:.1f}",
                         f"{total / base_total:.2f}x", f"{longest / base_stall:.1f}x"])
    print_table(f"Live log: {LINES:,} lines streamed from a worker thread (block cap "
                f"{MAX_BLOCKS:,}, 1 ms GUI tick; target: longest stall <= one 16 ms frame; "
                f"'vs ours' against the median of ours)",
                ["variant", "round", "lines", "until all shown (s)", "longest stall (ms)",
                 "stall / 16 ms frame", "p99 tick gap (ms)", "median tick gap (ms)",
                 "time vs ours", "stall vs ours"], rows)
    worst = max(max(meter.gaps) for _, meter in ours)
    print(f"ours: longest stall {worst * 1000:.1f} ms over {ROUNDS} round(s), "
          f"{worst / FRAME_S:.2f} of a 16 ms frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
