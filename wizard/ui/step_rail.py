"""The wizard's side rail: the run's key facts on top, then every step with its state."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QResizeEvent, QTextOption
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSizePolicy,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from wizard.core.run_state import (
    DONE,
    FAILED,
    PHASES,
    RUNNING,
    SKIPPED,
    STEPS,
    TODO,
    KeyFacts,
    StepState,
    clock,
    now_utc,
)

TICK_MS = 1000  # the running step's elapsed time
RAIL_CHARS = 36  # the rail's width in average characters: it scales with the font and DPI
MARKS = {TODO: "○", RUNNING: "▶", DONE: "✔", FAILED: "✘", SKIPPED: "↷"}
# Colour repeats what the mark and the words say; never the only sign.
COLOURS = {RUNNING: "#0b57d0", DONE: "#1a7f37", FAILED: "#c62828", SKIPPED: "#5f6368"}
GOOD, BAD = "#1a7f37", "#c62828"


class WrapView(QTextBrowser):
    """Read-only text that wraps anywhere (paths, hashes) and is as tall as its text: Tab
    reaches it, the arrow keys and Shift select, Ctrl+C copies the plain text."""

    def __init__(self, name: str, parent: QWidget | None = None, max_lines: int = 0) -> None:
        super().__init__(parent)
        self.max_lines = max_lines  # taller text scrolls (0: always as tall as the text)
        self.setAccessibleName(name)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setOpenLinks(False)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded if max_lines
                                        else Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByKeyboard
                                     | Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.viewport().setAutoFillBackground(False)
        self.setStyleSheet("QTextBrowser { background: transparent; }")
        self.document().setDocumentMargin(2)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    def set_html(self, html: str, plain: str) -> None:
        self.setHtml(html)
        self.setAccessibleDescription(plain)
        self._fit()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        self.document().setTextWidth(self.viewport().width())
        height = int(self.document().size().height()) + 2
        if self.max_lines:
            height = min(height, self.fontMetrics().lineSpacing() * self.max_lines + 6)
        self.setFixedHeight(height)


class StepRail(QWidget):
    """Shows what the window derived (wizard.core.run_state); it reads nothing itself."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("step-rail")
        self.setAccessibleName("the run's steps and key facts")
        self.states: list[StepState] = []
        self.facts: KeyFacts | None = None
        self.current = ""
        heading = QLabel("This run")
        bold = QFont(heading.font())
        bold.setBold(True)
        heading.setFont(bold)
        self.facts_view = WrapView("the run's key facts: database, schema state, rollback "
                                   "point, lock waits")
        steps_heading = QLabel("Steps")
        steps_heading.setFont(bold)
        self.list = QListWidget()
        self.list.setAccessibleName("the steps of the run and their state")
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.list.setWordWrap(True)
        self.list.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setSpacing(1)
        self.list.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        # Every step stays in sight: two lines each, and a third when a reason wraps.
        self.list.setMinimumHeight(self.fontMetrics().lineSpacing()
                                   * (2 * len(STEPS) + len(PHASES)) + 24)
        self._rows: dict[str, int] = {}  # step → its row (phase headings sit between)
        for step, title in STEPS:
            if step in PHASES:
                heading_item = QListWidgetItem(PHASES[step])
                heading_item.setFlags(Qt.ItemFlag.NoItemFlags)  # a heading, not a step
                heading_item.setFont(bold)
                self.list.addItem(heading_item)
            item = QListWidgetItem(title)
            item.setData(Qt.ItemDataRole.UserRole, step)
            self._rows[step] = self.list.count()
            self.list.addItem(item)
        self.list.currentRowChanged.connect(lambda _row: self._show_detail())
        steps_heading.setBuddy(self.list)
        self.detail = WrapView("what the selected step did, and why", max_lines=6)
        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 6, 0)
        layout.addWidget(heading)
        layout.addWidget(self.facts_view)
        layout.addSpacing(self.fontMetrics().height() // 2)
        layout.addWidget(steps_heading)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.detail)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
        self.setFixedWidth(self.fontMetrics().averageCharWidth() * RAIL_CHARS)

    def sizeHint(self) -> QSize:
        return QSize(self.fontMetrics().averageCharWidth() * RAIL_CHARS, 400)

    # -- what the window tells it -----------------------------------------------------------

    def show_run(self, states: Sequence[StepState], facts: KeyFacts, current: str) -> None:
        self.states, self.facts, self.current = list(states), facts, current
        self._show_facts()
        self._paint_steps()
        if current:
            row = self._rows.get(current, -1)
            if row >= 0 and not self.list.hasFocus():
                self.list.setCurrentRow(row)
        self._show_detail()
        running = any(s.status == RUNNING for s in self.states)
        if running and not self.timer.isActive():
            self.timer.start()
        elif not running and self.timer.isActive():
            self.timer.stop()

    def state_of(self, step: str) -> StepState | None:
        return next((s for s in self.states if s.step == step), None)

    def step_text(self, step: str) -> str:
        """The rail's words for one step, as shown (tests and screen readers read them)."""
        item = self.list.item(self._rows.get(step, -1))
        return item.text() if item is not None else ""

    def facts_text(self) -> str:
        return self.facts_view.toPlainText()

    # -- painting ---------------------------------------------------------------------------

    def _tick(self) -> None:
        self._paint_steps()
        self._show_detail()
        if not any(s.status == RUNNING for s in self.states):
            self.timer.stop()

    def _paint_steps(self) -> None:
        now = now_utc()
        for state in self.states:
            item = self.list.item(self._rows.get(state.step, -1))
            if item is None:
                continue
            here = "  ◂ this page" if state.step == self.current else ""
            line = state.line(now)
            if state.status == RUNNING and state.job:
                line += f": {state.job}"
            elif state.status in (SKIPPED, FAILED, TODO) and state.reason:
                line += f": {_short(state.reason)}"  # the whole reason: below the list
            item.setText(f"{MARKS[state.status]} {state.title}{here}\n    {line}")
            colour = COLOURS.get(state.status)
            item.setForeground(QColor(colour) if colour else self.palette().text().color())
            font = QFont(self.list.font())
            font.setBold(state.step == self.current)
            item.setFont(font)
            spoken = f"{state.title}: {line}." + (f" {state.reason}" if state.reason else "")
            item.setData(Qt.ItemDataRole.AccessibleTextRole, spoken)
            item.setToolTip(_tip(state))

    def _show_detail(self) -> None:
        item = self.list.currentItem()
        step = item.data(Qt.ItemDataRole.UserRole) if item is not None else ""
        state = self.state_of(str(step))
        if state is None:
            self.detail.set_html("", "")
            return
        plain = _tip(state)
        self.detail.set_html(escape(plain).replace("\n", "<br>"), plain)

    def _show_facts(self) -> None:
        facts = self.facts
        if facts is None:
            return
        rows: list[tuple[str, str, str | None]] = [
            ("Database", facts.database or "not connected yet", None)]
        at = f" — read by {facts.state_source} at {clock(facts.state_at)}" \
            if facts.state_source else ""
        risky = facts.state not in ("", "pre", "migrated")
        rows.append(("Schema", facts.state_words + at, BAD if risky else None))
        rollback = facts.rollback
        status = {s.step: s.status for s in self.states}
        if rollback is None:
            # Red once it matters: the backup failed, or the migration is under way.
            late = status.get("backup") == FAILED or status.get("migrate") in (
                RUNNING, DONE, FAILED)
            rows.append(("Rollback point", "none: no verified backup in this run" if late
                         else "none yet: the Backup step makes it", BAD if late else None))
        elif rollback.skipped:
            rows.append(("Rollback point", rollback.describe(), BAD))
        else:
            proof = ("PROVEN ✔" if rollback.proven else "proof FAILED ✘"
                     if rollback.proven is False else "not proven")
            rows.append(("Rollback point", rollback.path, None))
            rows.append(("", f"sha256 {rollback.sha256[:12]}… · {proof}",
                         GOOD if rollback.proven else BAD if rollback.proven is False
                         else None))
        waits = (f"{facts.lock_waits} lock timeout(s), last held by "
                 f"{'; '.join(facts.blockers) or 'a session not named'}"
                 if facts.lock_waits else "none")
        # Red while they matter: until the migration is through.
        rows.append(("Lock waits", waits, BAD if facts.lock_waits and
                     status.get("migrate") != DONE else None))
        html, plain = [], []
        for key, value, colour in rows:
            style = f' style="color:{colour}; font-weight:bold"' if colour else ""
            label = f"<b>{escape(key)}:</b> " if key else ""
            html.append(f"<div>{label}<span{style}>{escape(value)}</span></div>")
            plain.append(f"{key}: {value}" if key else value)
        self.facts_view.set_html("".join(html), "\n".join(plain))


def _short(text: str, limit: int = 44) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _tip(state: StepState) -> str:
    parts = [f"{state.title}: {state.line()}"]
    if state.started is not None:
        parts.append(f"started {clock(state.started)}"
                     + (f", ended {clock(state.ended)}" if state.ended is not None
                        and state.status != RUNNING else ""))
    if state.job and state.status == RUNNING:
        parts.append(f"now: {state.job}")
    if state.reason:
        parts.append(state.reason)
    return "\n".join(parts)
