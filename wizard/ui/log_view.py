"""The live log every page shows: coloured by level, batched on a timer, capped, saved in full."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QTimer, Signal, Slot
from PySide6.QtGui import (
    QColor,
    QFontDatabase,
    QGuiApplication,
    QHideEvent,
    QPalette,
    QTextCharFormat,
    QTextCursor,
    QTextOption,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

LEVELS = ("info", "step", "warn", "error")
PREFIX = {"warn": "WARNING ", "error": "ERROR "}  # not by colour alone
# (on a light background, on a dark one); info uses the palette's own text colour.
COLOURS = {"step": ("#1a5fb4", "#8cb8ff"), "warn": ("#8a5a00", "#f0c674"),
           "error": ("#b00020", "#ff8a80")}
MAX_BLOCKS = 10_000
INTERVAL_MS = 60
PAINT_CHUNK = 100  # most lines per edit block (at the cap, ~2 ms: the document trims its top)
# GUI time per turn spent painting. With the repaint and layout Qt does after it (1-3 ms)
# a turn stays well inside a 16 ms frame, also on a busy machine that preempts the GUI.
PAINT_BUDGET_S = 0.002
# While a backlog is painted the editor repaints once a frame, in a turn of its own, not
# after every turn: a repaint of the view (and the layout before it) costs 2-8 ms, as much as
# the painting turn, and the two in one event-loop turn would make a stall of their sum.
FRAME_S = 0.016
# The log file gets at most this much text per paint turn (about 2 ms of encoding and
# writing): a worker that streamed faster than the turns came would otherwise have the
# GUI write megabytes in one go (30 ms for 6.6 MB, measured by tests/bench/bench_log.py).
WRITE_BUDGET_BYTES = 512 * 1024


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Base).lightness() < 128


class LogView(QWidget):
    """Append from the GUI thread (or connect a Job's `log_batch`); painting is batched.

    Lines wait in a deque and are painted every `interval_ms`, at most `max_blocks` are
    kept on screen; the optional log file gets every line with a timestamp, so the full
    log survives the cap. "Copy all" and "Save log…" use the full log when there is one.
    """

    saved = Signal(str)  # path written by "Save log…"

    def __init__(self, parent: QWidget | None = None, *, max_blocks: int = MAX_BLOCKS,
                 interval_ms: int = INTERVAL_MS, log_file: Path | None = None) -> None:
        super().__init__(parent)
        self.editor = QPlainTextEdit(self)
        self.editor.setReadOnly(True)
        self.editor.setUndoRedoEnabled(False)
        self.editor.setMaximumBlockCount(max_blocks)
        self.editor.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.editor.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.editor.setAccessibleName("Log")
        self.copy_button = QPushButton("&Copy all", self)
        self.copy_button.setToolTip("Copy the whole log to the clipboard")
        self.save_button = QPushButton("Sa&ve log…", self)
        self.save_button.setToolTip("Save the whole log to a text file")
        self.copy_button.clicked.connect(self.copy_all)
        self.save_button.clicked.connect(self.save_dialog)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.editor, 1)
        layout.addLayout(buttons)

        # Lines that would scroll out of the capped view anyway are not worth laying out:
        # the deque keeps the newest (cap - 1, one line left for the notice) and drops the
        # oldest as it goes, in C; trimming the top of a QTextDocument costs far more.
        self._pending: deque[tuple[str, str]] = deque(
            maxlen=max_blocks - 1 if max_blocks > 1 else None)
        self.skipped = 0  # lines never painted because newer ones replaced them
        self._unsaid = 0  # of those, not yet told on screen
        self._sink_path: Path | None = None
        # For the log file: one string per batch, written with the paint turns.
        self._unwritten: deque[str] = deque()
        self._per_line = 0.0  # seconds a painted line cost lately: sizes the next chunk
        self._shown_at = 0.0  # when the editor was last let repaint during a backlog
        self._formats: dict[str, QTextCharFormat] = {}
        self._update_formats()
        self._interval = interval_ms
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.flush)
        if log_file is not None:
            self.set_log_file(log_file)

    # -- feeding ----------------------------------------------------------------------------

    def append(self, level: str, message: str) -> None:
        self.append_many(((level, message),))

    @Slot(object)
    def append_many(self, records: Iterable[tuple[str, str]]) -> None:
        records = list(records)
        limit = self._pending.maxlen
        if limit is not None:
            dropped = max(0, len(self._pending) + len(records) - limit)
            self.skipped += dropped
            self._unsaid += dropped
        self._pending.extend(records)
        if self._sink_path is not None:
            # Written with the next paint turn, not per batch: every write and open is a
            # system call that hands the GIL to a busy worker, and getting it back can take
            # the interpreter's switch interval (5 ms) each time.
            stamp = self._stamp()
            self._unwritten.append("".join(f"{stamp} [{level}] {message}\n"
                                           for level, message in records))
        if not self._timer.isActive():
            self._timer.start()

    def attach(self, job: Any) -> None:
        """Show a worker.Job's log (its batches, one slot call per batch)."""
        job.log_batch.connect(self.append_many)

    def pending(self) -> int:
        """Lines received but not painted yet."""
        return len(self._pending)

    # -- painting ---------------------------------------------------------------------------

    @Slot()
    def flush(self) -> None:
        """Paint what is waiting for at most PAINT_BUDGET_S; the timer comes back for more."""
        self._paint(PAINT_BUDGET_S)

    def paint_all(self) -> None:
        """Paint everything waiting now (tests; before copying what is shown)."""
        self._paint(None)

    def _paint(self, budget: float | None) -> None:
        self._write_unwritten(None if budget is None else WRITE_BUDGET_BYTES)
        if not self._pending:
            self._show()
            if self._unwritten:
                self._timer.start(0)  # the file is behind: the next turn writes more
            else:
                self._timer.stop()
            return
        started = time.perf_counter()
        if budget is not None and not self.editor.updatesEnabled() \
                and started - self._shown_at >= FRAME_S:
            # A frame has passed: this turn is the repaint (now, the painting waits a turn).
            self._show()
            self.editor.repaint()
            self._timer.start(0)
            return
        if budget is not None:
            if self.editor.updatesEnabled():
                self._shown_at = started
            self.editor.setUpdatesEnabled(False)
        else:
            self._show()
        bar = self.editor.verticalScrollBar()
        follow = bar.value() >= bar.maximum() - 2
        if self._pending.maxlen is not None and len(self._pending) >= self._pending.maxlen:
            # What waits fills the view by itself: all that is shown would be trimmed off
            # the top, a block at a time (~20 us a line, against ~8 us into an empty
            # document). Starting afresh shows the same lines for a third of the work.
            self.editor.clear()
        cursor = QTextCursor(self.editor.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if self._unsaid:  # dropped from the deque: said where they were, before the rest
            where = f" ({self._sink_path} has them)" if self._sink_path else ""
            self._paint_chunk(cursor, [("info", f"… {self._unsaid:,} lines not shown here{where}")])
            self._unsaid = 0
        first = True
        while self._pending:
            n = min(len(self._pending), PAINT_CHUNK)
            if budget is not None and self._per_line:
                # The cost measured in the last chunks (this turn's or an earlier one's)
                # sizes this one, so even the first chunk of a turn fits the budget; at
                # least one line a turn, so a slow spell cannot stall the log.
                left = budget - (time.perf_counter() - started)
                n = min(n, int(left / self._per_line))
                if n < 1:
                    if not first:
                        break
                    n = 1
            t0 = time.perf_counter()
            self._paint_chunk(cursor, [self._pending.popleft() for _ in range(n)])
            cost = (time.perf_counter() - t0) / n
            # Smoothed: one chunk preempted by another process must not shrink the next ten.
            self._per_line = cost if not self._per_line else (self._per_line + cost) / 2
            first = False
            if budget is not None and time.perf_counter() - started > budget:
                break
        if follow:
            bar.setValue(bar.maximum())
        if not self._pending:
            self._show()  # caught up: the editor repaints as usual
        # Behind: come back as soon as input and painting have had their turn.
        self._timer.start(0 if self._pending else self._interval)

    def _show(self) -> None:
        if not self.editor.updatesEnabled():
            self.editor.setUpdatesEnabled(True)  # and repaints what changed meanwhile

    def _paint_chunk(self, cursor: QTextCursor, batch: list[tuple[str, str]]) -> None:
        cursor.beginEditBlock()  # one edit block: the cap trims once per chunk
        # Consecutive lines of one level go in as one insertion.
        run_level, run_text = batch[0][0], list[str]()
        for level, message in batch:
            if level != run_level:
                self._insert(cursor, run_level, run_text)
                run_level, run_text = level, []
            run_text.append(PREFIX.get(level, "") + message)
        self._insert(cursor, run_level, run_text)
        cursor.endEditBlock()

    def _insert(self, cursor: QTextCursor, level: str, lines: list[str]) -> None:
        if not lines:
            return
        if not self.editor.document().isEmpty():
            cursor.insertBlock()
        cursor.insertText("\n".join(lines), self._format(level))

    def _format(self, level: str) -> QTextCharFormat:
        return self._formats.get(level, self._formats["info"])

    def color_for(self, level: str) -> QColor:
        return self._format(level).foreground().color()

    def _update_formats(self) -> None:
        dark = is_dark(self.editor.palette())
        text = self.editor.palette().color(QPalette.ColorRole.Text)
        self._formats = {"info": QTextCharFormat()}
        self._formats["info"].setForeground(text)
        for level, (light_c, dark_c) in COLOURS.items():
            fmt = QTextCharFormat()
            fmt.setForeground(QColor(dark_c if dark else light_c))
            if level == "error":
                fmt.setFontWeight(700)
            self._formats[level] = fmt

    def hideEvent(self, event: QHideEvent) -> None:
        self._write_unwritten()  # a closing page or dialog: the file gets its last lines now
        super().hideEvent(event)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self._update_formats()  # new lines follow a switch to (or from) a dark palette
        super().changeEvent(event)

    # -- the full log -----------------------------------------------------------------------

    def set_log_file(self, path: Path | None) -> None:
        """Append every line (timestamped) to `path` too, mode 0600; None stops writing."""
        self._write_unwritten()  # what came before goes to the file it was meant for
        self._sink_path = Path(path) if path is not None else None
        if self._sink_path is not None:
            self._sink_path.parent.mkdir(parents=True, exist_ok=True)
            self._write_sink("")

    def _write_unwritten(self, limit: int | None = None) -> None:
        """Append what the file is missing; with `limit`, about that many characters (at
        least one batch) and the rest with the next turns."""
        if self._sink_path is None:
            self._unwritten.clear()
            return
        if not self._unwritten:
            return
        if limit is None:
            text = "".join(self._unwritten)
            self._unwritten.clear()
        else:
            parts = [self._unwritten.popleft()]
            size = len(parts[0])
            while self._unwritten and size + len(self._unwritten[0]) <= limit:
                parts.append(self._unwritten.popleft())
                size += len(parts[-1])
            text = "".join(parts)
        self._write_sink(text)

    def _write_sink(self, text: str) -> None:
        # Opened per batch, not held: nothing to close when the page goes away, and what
        # was appended is on disk even if the wizard is killed.
        assert self._sink_path is not None
        fd = os.open(self._sink_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(text)

    @property
    def log_file(self) -> Path | None:
        """The full log; every line received so far is in it (whoever asks reads or appends)."""
        self._write_unwritten()
        return self._sink_path

    def shown_text(self) -> str:
        return self.editor.toPlainText()

    def full_text(self) -> str:
        """The whole log: the file when there is one (nothing capped), else what is shown."""
        self.paint_all()  # writes what the file is still missing too
        if self._sink_path is not None and self._sink_path.exists():
            return self._sink_path.read_text(encoding="utf-8")
        return self.shown_text()

    @Slot()
    def copy_all(self) -> None:
        clipboard = QGuiApplication.clipboard()
        clipboard.setText(self.full_text())

    def save_to(self, path: Path) -> Path:
        path = Path(path)
        path.write_text(self.full_text(), encoding="utf-8")
        self.saved.emit(str(path))
        return path

    @Slot()
    def save_dialog(self) -> Path | None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        name, _ = QFileDialog.getSaveFileName(self, "Save log", f"enerlink-migrate-{stamp}.log",
                                              "Log files (*.log *.txt);;All files (*)")
        return self.save_to(Path(name)) if name else None

    def clear(self) -> None:
        self._write_unwritten()  # off the screen, not out of the full log
        self._pending.clear()
        self._show()
        self.editor.clear()
        self.skipped = self._unsaid = 0

    @staticmethod
    def _stamp() -> str:
        return datetime.now().astimezone().isoformat(timespec="milliseconds")
