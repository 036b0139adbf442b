"""Page 6: clear the application's Redis keys that name prosumers (counts first, FLUSHDB last)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from wizard.core import cache
from wizard.core.cache import CacheResult, PatternCount
from wizard.ui.confirm import confirm_typed
from wizard.ui.pages.base import StepPage

__all__ = ["CachePage", "ask", "confirm_typed"]

DB_STANDS = ("The database migration stands: it was committed and does not depend on this "
             "step.")


def ask(parent: QWidget, title: str, text: str) -> bool:
    """A plain yes/no question (tests replace it)."""
    answer = QMessageBox.question(parent, title, text,
                                  QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


class CachePage(StepPage):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Cache", "Remove the cached Redis keys that still name prosumers, so "
                         "the application rebuilds them under the new names. Count first; "
                         "nothing is deleted without asking.", parent)
        self.counts: list[PatternCount] | None = None
        self.deleted: CacheResult | None = None
        self._retry: Callable[[], None] | None = None

        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        self.summary.setAccessibleName("cache step summary")

        self.patterns = QListWidget()
        self.patterns.setAccessibleName("key patterns to delete")
        self.patterns.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                      | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.patterns.itemChanged.connect(lambda _i: self._patterns_changed())
        self.new_pattern = QLineEdit()
        self.new_pattern.setPlaceholderText("e.g. session:by_prosumer:*")
        self.new_pattern.setAccessibleName("new key pattern")
        self.new_pattern.returnPressed.connect(self.add_pattern)
        add = QPushButton("&Add")
        add.clicked.connect(self.add_pattern)
        remove = QPushButton("&Remove")
        remove.clicked.connect(self.remove_pattern)
        defaults = QPushButton("Defa&ults")
        defaults.setToolTip("Back to the application's key families: "
                            + ", ".join(cache.DEFAULT_PATTERNS))
        defaults.clicked.connect(lambda: self.set_patterns(cache.DEFAULT_PATTERNS))
        edit_row = QHBoxLayout()
        edit_row.addWidget(self.new_pattern, 1)
        for button in (add, remove, defaults):
            edit_row.addWidget(button)
        pattern_box = QGroupBox("Key patterns (SCAN MATCH globs; each needs a literal prefix)")
        pattern_layout = QVBoxLayout(pattern_box)
        pattern_layout.addWidget(self.patterns, 1)
        pattern_layout.addLayout(edit_row)

        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["pattern", "keys", "samples"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAccessibleName("matching keys per pattern")
        self.table.verticalHeader().hide()
        self.table.setMinimumHeight(200)
        self.patterns.setMinimumHeight(120)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)

        self.count_button = QPushButton("Count &keys")
        self.count_button.setToolTip("SCAN for each pattern: counts and samples, deletes nothing")
        self.count_button.clicked.connect(self.count_keys)
        self.delete_button = QPushButton("Delete &matching keys…")
        self.delete_button.clicked.connect(self.delete_keys)
        self.flush_button = QPushButton("F&LUSHDB…")
        self.flush_button.setToolTip("Delete every key of this Redis db (typed confirmation)")
        self.flush_button.clicked.connect(self.flush)
        self.skip_button = QPushButton("&Skip the cache step")
        self.skip_button.clicked.connect(self.skip)
        self.retry_button = QPushButton("Retr&y")
        self.retry_button.clicked.connect(self.retry)
        self.retry_button.hide()
        actions = QHBoxLayout()
        for button in (self.count_button, self.delete_button, self.flush_button,
                       self.retry_button):
            actions.addWidget(button)
        actions.addStretch(1)
        actions.addWidget(self.skip_button)

        self.controls = QWidget()
        controls = QVBoxLayout(self.controls)
        controls.setContentsMargins(0, 0, 0, 0)
        lists = QHBoxLayout()
        lists.addWidget(pattern_box, 1)
        lists.addWidget(self.table, 1)
        controls.addLayout(lists, 1)
        controls.addLayout(actions)
        self.body.addWidget(self.summary)
        self.body.addWidget(self.controls, 1)
        self.busy_changed.connect(lambda _b: self._update_buttons())

    # -- entry ------------------------------------------------------------------------------

    def initializePage(self) -> None:
        super().initializePage()
        redis = self.session.redis
        if redis is None:
            self.controls.hide()
            self.summary.setText("This profile has no Redis: the cache step is skipped. "
                                 "(Add a Redis URL to the profile if the application caches "
                                 "keys that name prosumers.)")
            self.session.results.setdefault("cache", "no redis")
            self.set_valid(True)
            return
        self.controls.show()
        if self.patterns.count() == 0:
            self.set_patterns(cache.DEFAULT_PATTERNS)
        self.summary.setText(
            f"Redis: {redis.describe()} (db {redis.effective_db}). Count the keys first; "
            f"only keys matching the patterns are deleted, with SCAN + UNLINK in small "
            f"batches, so Redis keeps serving.")
        self.set_valid(self.session.results.get("cache") is not None)
        self._update_buttons()

    # -- patterns ---------------------------------------------------------------------------

    def pattern_list(self) -> list[str]:
        items = (self.patterns.item(i) for i in range(self.patterns.count()))
        return [text for item in items if item and (text := item.text().strip())]

    def set_patterns(self, patterns: tuple[str, ...] | list[str]) -> None:
        self.patterns.blockSignals(True)
        self.patterns.clear()
        for pattern in patterns:
            self._add_item(pattern)
        self.patterns.blockSignals(False)
        self._patterns_changed()

    def _add_item(self, pattern: str) -> None:
        item = QListWidgetItem(pattern)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
        self.patterns.addItem(item)

    def add_pattern(self) -> None:
        text = self.new_pattern.text().strip()
        if text and text not in self.pattern_list():
            self._add_item(text)
            self._patterns_changed()
        self.new_pattern.clear()

    def remove_pattern(self) -> None:
        row = self.patterns.currentRow()
        if row >= 0:
            self.patterns.takeItem(row)
            self._patterns_changed()

    def _patterns_changed(self) -> None:
        # Counts belong to the patterns they were taken for: delete asks with fresh ones.
        self.counts = None
        self.table.setRowCount(0)
        self._update_buttons()

    def _update_buttons(self) -> None:
        idle = not self.busy
        self.count_button.setEnabled(idle and bool(self.pattern_list()))
        self.delete_button.setEnabled(idle and bool(self.counts)
                                      and sum(c.count for c in self.counts or []) > 0)
        self.flush_button.setEnabled(idle)
        self.skip_button.setEnabled(idle)
        self.retry_button.setEnabled(idle)

    # -- jobs -------------------------------------------------------------------------------

    def _run(self, name: str, func: Callable[..., object], *args: object,
             on_done: Callable[..., None], retry: Callable[[], None], **kwargs: object) -> None:
        self._retry = retry
        self.retry_button.hide()
        self.run_job(name, func, *args, on_done=on_done, on_failed=self._failed,
                     advice="Start Redis, or fix the URL or password on the profile page, then "
                     f"Retry. {DB_STANDS}", **kwargs)

    def _failed(self, _message: str) -> None:
        self.retry_button.show()
        self._update_buttons()

    def retry(self) -> None:
        if self._retry is not None and not self.busy:
            self._retry()

    def count_keys(self) -> None:
        redis = self.session.redis
        if redis is None or self.busy:
            return
        self._run("Counting Redis keys", cache.dry_run, redis, self.pattern_list(),
                  on_done=self.show_counts, retry=self.count_keys,
                  journal=self.session.ensure_journal())

    def show_counts(self, counts: list[PatternCount]) -> None:
        self.counts = counts
        self.table.setRowCount(len(counts))
        for i, c in enumerate(counts):
            number = QTableWidgetItem(f"{c.count:,}")
            number.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            samples = QTableWidgetItem(", ".join(c.samples))
            samples.setToolTip("\n".join(c.samples))
            self.table.setItem(i, 0, QTableWidgetItem(c.pattern))
            self.table.setItem(i, 1, number)
            self.table.setItem(i, 2, samples)
        total = sum(c.count for c in counts)
        if total == 0:
            self.summary.setText("No key matches the patterns: nothing to delete. The cache "
                                 "step is done.")
            self.session.results["cache"] = counts
            self.set_valid(True)
        else:
            self.summary.setText(f"{total:,} keys match; nothing deleted yet. Delete them "
                                 f"with 'Delete matching keys…'.")
        self._update_buttons()

    def delete_keys(self) -> None:
        redis = self.session.redis
        if redis is None or self.busy or not self.counts:
            return
        lines = "\n".join(f"  {c.pattern}: {c.count:,} keys" for c in self.counts)
        total = sum(c.count for c in self.counts)
        if not ask(self, "Delete Redis keys",
                   f"Delete about {total:,} keys from {redis.describe()}?\n{lines}\n"
                   f"Other keys stay. The application rebuilds these caches."):
            self.log.append("info", "Redis keys not deleted: the operator said no")
            return
        expected = {c.pattern: c.count for c in self.counts}
        self._run("Deleting Redis keys", cache.delete, redis, [c.pattern for c in self.counts],
                  on_done=self.show_deleted, retry=self.delete_keys,
                  journal=self.session.ensure_journal(), expected=expected)

    def show_deleted(self, result: CacheResult) -> None:
        self.deleted = result
        self.session.results["cache"] = result
        for i in range(self.table.rowCount()):
            item = self.table.item(i, 0)
            if item is not None and item.text() in result.deleted:
                self.table.setItem(i, 1, QTableWidgetItem(
                    f"{result.deleted[item.text()]:,} deleted"))
        self.summary.setText(f"Deleted {result.total:,} keys from {result.target} in "
                             f"{result.seconds:.2f} s. Count again to confirm none are left.")
        self.counts = None
        self.set_valid(True)
        self._update_buttons()

    def flush(self) -> None:
        redis = self.session.redis
        if redis is None or self.busy:
            return
        dbname = self.session.pg.dbname
        typed = confirm_typed(
            self, "FLUSHDB",
            f"FLUSHDB deletes EVERY key in Redis db {redis.effective_db} at "
            f"{redis.describe()} — not only the keys that name prosumers: sessions, queues, "
            f"rate limits and anything else the application keeps there. Other db indexes "
            f"are not touched (FLUSHALL is never sent). Prefer 'Delete matching keys'.",
            dbname, "FLUSHDB")
        if typed is None:
            self.log.append("info", "FLUSHDB not confirmed: nothing deleted")
            return
        self._run("FLUSHDB", cache.flushdb, redis, typed, dbname, on_done=self.show_flushed,
                  retry=self.flush, journal=self.session.ensure_journal())

    def show_flushed(self, before: int | None) -> None:
        self.session.results["cache"] = {"flushdb": before}
        redis = self.session.redis
        where = redis.describe() if redis else "Redis"
        self.summary.setText(f"FLUSHDB of {where}: "
                             f"{'all' if before is None else f'{before:,}'} keys removed.")
        self.counts = None
        self.table.setRowCount(0)
        self.set_valid(True)
        self._update_buttons()

    def skip(self) -> None:
        cache.record_skipped(self.session.ensure_journal(), self.session.redis,
                             "operator skipped the cache step")
        self.session.results["cache"] = "skipped"
        self.summary.setText("Cache step skipped (written to the run's journal). Old keys "
                             "that name prosumers may remain until they expire.")
        self.log.append("warn", "cache step skipped by the operator")
        self.errors.clear()
        self.retry_button.hide()
        self.set_valid(True)
