"""The live log: batched painting, the block cap, the full log file, copy, save, colours."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QFileDialog

from wizard.core.reporting import Progress, Report
from wizard.ui.log_view import LEVELS, WRITE_BUDGET_BYTES, LogView
from wizard.ui.worker import Job

CAP = 1_000


@pytest.fixture
def view(qtbot: Any, tmp_path: Path) -> LogView:
    widget = LogView(max_blocks=CAP, log_file=tmp_path / "run.log")
    qtbot.addWidget(widget)
    widget.show()
    return widget


def _lines(n: int) -> list[tuple[str, str]]:
    return [(LEVELS[i % 4], f"line {i}") for i in range(n)]


def test_ten_thousand_lines_capped_on_screen_all_in_the_file(qtbot: Any, view: LogView,
                                                            tmp_path: Path) -> None:
    records = _lines(10_000)
    for start in range(0, len(records), 500):  # as a job's batches arrive
        view.append_many(records[start:start + 500])
    qtbot.waitUntil(lambda: "line 9999" in view.editor.document().lastBlock().text(),
                    timeout=10_000)
    assert view.editor.blockCount() <= CAP
    shown = view.shown_text().splitlines()
    assert shown[-1] == "ERROR line 9999"  # warn/error carry a word, not colour alone
    assert shown[-2] == "WARNING line 9998"
    # The whole log is in the file, every line with a timestamp and its level.
    file_lines = view.full_text().splitlines()
    assert len(file_lines) == 10_000
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d \[info\] line 0",
                        file_lines[0])
    assert file_lines[-1].endswith("[error] line 9999")
    assert (tmp_path / "run.log").stat().st_mode & 0o777 == 0o600


def test_burst_larger_than_the_cap_says_what_it_skipped(view: LogView) -> None:
    view.append_many(_lines(5_000))
    view.paint_all()
    assert view.skipped == 5_000 - CAP + 1
    text = view.shown_text()
    assert "4,001 lines not shown here" in text
    assert "run.log has them" in text
    assert view.editor.blockCount() <= CAP


def test_copy_all_and_save(qtbot: Any, view: LogView, tmp_path: Path) -> None:
    view.append("step", "[1/2] Renaming table prosumer → user")
    view.append("info", "COMMIT")
    view.copy_all()
    clip = QGuiApplication.clipboard().text()
    assert "[step] [1/2] Renaming table prosumer → user" in clip
    assert clip.rstrip().endswith("[info] COMMIT")
    with qtbot.waitSignal(view.saved, timeout=5_000) as blocker:
        saved = view.save_to(tmp_path / "saved.log")
    assert blocker.args == [str(saved)]
    assert saved.read_text(encoding="utf-8") == clip


def test_save_dialog_writes_where_the_operator_chose(view: LogView, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Stand-in for the native file dialog, which cannot be driven offscreen.
    target = tmp_path / "chosen.log"
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(target), "")))
    view.append("warn", "3 sessions still connected")
    assert view.save_dialog() == target
    assert "[warn] 3 sessions still connected" in target.read_text(encoding="utf-8")
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: ("", "")))
    assert view.save_dialog() is None  # cancelled: nothing written


def test_without_a_file_copy_gives_what_is_shown(qtbot: Any) -> None:
    view = LogView(max_blocks=CAP)
    qtbot.addWidget(view)
    view.append("info", "only on screen")
    view.copy_all()
    assert QGuiApplication.clipboard().text() == "only on screen"


def _contrast(a: QColor, b: QColor) -> float:
    def lum(c: QColor) -> float:
        def ch(v: float) -> float:
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
        return 0.2126 * ch(c.redF()) + 0.7152 * ch(c.greenF()) + 0.0722 * ch(c.blueF())
    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize(("base", "text"), [("#ffffff", "#000000"), ("#1e1e1e", "#e6e6e6")],
                         ids=["light", "dark"])
def test_colours_differ_by_level_and_are_readable(qtbot: Any, base: str, text: str) -> None:
    view = LogView()
    qtbot.addWidget(view)
    palette = QPalette(view.palette())
    palette.setColor(QPalette.ColorRole.Base, QColor(base))
    palette.setColor(QPalette.ColorRole.Text, QColor(text))
    view.editor.setPalette(palette)
    view.setPalette(palette)  # what a theme switch does; the view re-picks its colours
    colours = {level: view.color_for(level).name() for level in LEVELS}
    assert len(set(colours.values())) == len(LEVELS), colours
    for level in LEVELS:
        assert _contrast(view.color_for(level), QColor(base)) >= 4.5, (level, colours[level])
    # The painted text carries the colour of its level.
    view.append("error", "lock timeout")
    view.paint_all()
    block = view.editor.document().lastBlock()
    assert block.begin().fragment().charFormat().foreground().color() == view.color_for("error")


def test_a_job_streams_into_the_view(qtbot: Any, view: LogView) -> None:
    def chatty(report: Report, progress: Progress, cancel: threading.Event) -> None:
        for i in range(20_000):
            report("info", f"row {i}")

    job = Job(chatty, name="chatty")
    view.attach(job)
    with qtbot.waitSignal(job.finished, timeout=30_000):
        job.start()
    qtbot.waitUntil(lambda: view.editor.document().lastBlock().text() == "row 19999",
                    timeout=10_000)
    assert view.editor.blockCount() <= CAP
    assert len(view.full_text().splitlines()) == 20_000


def test_a_job_streams_every_line_in_order_and_each_paint_is_time_boxed(qtbot: Any,
                                                                        tmp_path: Path) -> None:
    view = LogView(max_blocks=0, log_file=tmp_path / "all.log")  # no cap: every line shown
    qtbot.addWidget(view)
    view.show()
    slices: list[int] = []
    paint = view._paint

    def counted(budget: float | None) -> None:
        before = view.pending()
        paint(budget)
        slices.append(before - view.pending())
    view._paint = counted  # type: ignore[method-assign]
    n = 30_000

    def chatty(report: Report, progress: Progress, cancel: threading.Event) -> None:
        for i in range(n):
            report("step" if i % 7 == 0 else "info", f"row {i}")

    job = Job(chatty, name="ordered")
    view.attach(job)
    with qtbot.waitSignal(job.finished, timeout=30_000):
        job.start()
    qtbot.waitUntil(lambda: view.pending() == 0, timeout=30_000)
    assert view.shown_text().splitlines() == [f"row {i}" for i in range(n)]
    assert view.skipped == 0
    assert len(slices) > 1  # painted over several timer slices
    assert max(slices) < n
    file_lines = view.full_text().splitlines()
    assert [line.split("] ", 1)[1] for line in file_lines] == [f"row {i}" for i in range(n)]


def test_a_burst_beyond_the_cap_keeps_the_newest_in_order(view: LogView) -> None:
    for start in range(0, 3_000, 500):
        view.append_many(_lines(3_000)[start:start + 500])
    view.paint_all()
    shown = view.shown_text().splitlines()
    assert shown[0].startswith("… 2,001 lines not shown here")
    assert [s.split()[-1] for s in shown[1:]] == [str(i) for i in range(2_001, 3_000)]
    assert len(view.full_text().splitlines()) == 3_000


def test_the_file_has_every_line_received_before_anything_is_painted(view: LogView) -> None:
    # A failed job's traceback is appended to log_file right after its last lines arrived:
    # asking for the path writes what is still waiting, so the order in the file holds.
    view.append_many(_lines(3))
    path = view.log_file
    assert path is not None
    assert [line.split(" ", 1)[1] for line in path.read_text(encoding="utf-8").splitlines()] \
        == ["[info] line 0", "[step] line 1", "[warn] line 2"]
    assert view.pending() == 3  # the screen still has them to paint
    view.set_log_file(None)
    view.append("info", "not in the file")
    assert "not in the file" not in path.read_text(encoding="utf-8")


def test_a_backlog_that_fills_the_view_replaces_what_was_shown(view: LogView) -> None:
    view.append_many([("info", f"old {i}") for i in range(10)])
    view.paint_all()
    view.append_many(_lines(CAP + 500))
    view.flush()  # one budgeted turn, as the timer runs it
    view.paint_all()
    shown = view.shown_text().splitlines()
    assert not any(line.startswith("old ") for line in shown)
    assert shown[0].startswith("… 501 lines not shown here")
    assert shown[-1] == f"ERROR line {CAP + 499}"
    assert view.editor.blockCount() <= CAP
    assert view.editor.updatesEnabled()


def test_the_editor_repaints_again_once_the_view_has_caught_up(qtbot: Any,
                                                                view: LogView) -> None:
    # While a backlog is painted the editor repaints once a frame (updates held between).
    view.append_many(_lines(5_000))
    view.flush()
    assert not view.editor.updatesEnabled()  # a backlog: held until a frame has passed
    qtbot.waitUntil(lambda: view.pending() == 0, timeout=10_000)
    assert view.editor.updatesEnabled()
    view.append("info", "after")
    view.clear()
    assert view.editor.updatesEnabled()
    assert "after" in view.full_text()  # cleared off the screen, not out of the full log


def test_a_view_hidden_right_after_its_last_lines_has_them_in_the_file(view: LogView,
                                                                        tmp_path: Path) -> None:
    view.append("info", "last words")
    view.hide()  # a dialog closing before the next paint turn
    assert "[info] last words" in (tmp_path / "run.log").read_text(encoding="utf-8")


def test_a_backlog_for_the_file_is_written_a_slice_per_turn_and_all_of_it_in_time(
        qtbot: Any, view: LogView, tmp_path: Path) -> None:
    """A worker faster than the paint turns leaves megabytes for the file: each turn writes
    about WRITE_BUDGET_BYTES of it (6.6 MB in one write stalled the window 30 ms), in
    order, and the timer keeps coming back until the file has every line."""
    records = [("info", f"line {i} " + "x" * 80) for i in range(20_000)]  # ~2 MB
    for start in range(0, len(records), 500):
        view.append_many(records[start:start + 500])
    path = tmp_path / "run.log"
    view.flush()  # one budgeted turn
    written = path.stat().st_size
    assert 0 < written <= WRITE_BUDGET_BYTES * 1.2  # a slice (text of ~1 batch may exceed)
    qtbot.waitUntil(lambda: view.pending() == 0 and not view._unwritten, timeout=10_000)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 20_000
    assert [int(line.split(" ")[3]) for line in lines] == list(range(20_000))
