"""Page 6: migrate the application's Redis data to the new names (dry run first, FLUSHDB last)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from wizard.core import cache, redis_migrate
from wizard.core import redis_rules as rr
from wizard.core.profiles import parse_redis_rules
from wizard.core.redis_conn import check_connection
from wizard.core.redis_migrate import DryRun, MigrationResult, RuleCount, RuleDone
from wizard.ui.confirm import confirm_typed
from wizard.ui.log_view import is_dark
from wizard.ui.pages.base import StepPage

__all__ = ["CachePage", "ask", "confirm_typed"]

DB_STANDS = ("The database migration stands: it was committed and does not depend on this "
             "step.")
AGAIN = ("Each key is either migrated or untouched, and the step is idempotent: running it "
         "again finishes what is left.")
DRY_HEADERS = ["Rule", "Keys to change", "Members to move", "Conflicts", "Sample keys"]
DONE_HEADERS = ["Rule", "Keys changed", "Merged into existing keys",
                "Conflicts left untouched", "Conflicting keys"]
RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter


def ask(parent: QWidget, title: str, text: str) -> bool:
    """A plain yes/no question (tests replace it)."""
    answer = QMessageBox.question(parent, title, text,
                                  QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


def rules_text(rules: Sequence[rr.Rule]) -> str:
    return "\n".join(rr.to_text(r) for r in rules)


def words(rule_line: str) -> str:
    """A rule line in words (the engine's results name rules by their line)."""
    try:
        return rr.parse(rule_line).describe()
    except rr.RuleError:
        return rule_line


def parse_redis_rules_allowing(text: str) -> tuple[rr.Rule, ...]:
    """The rules with the protected families allowed: tells a protection refusal apart."""
    lines = [line.strip() for part in text.split(";") for line in part.splitlines()]
    return rr.validate((rr.parse(line) for line in lines if line), allow=rr.PROTECTED)


def count_words(c: RuleCount) -> str:
    moved = f", {c.members:,} members" if c.rule.startswith("move") else ""
    conflicts = f"; {c.conflicts:,} conflicts left untouched" if c.conflicts else ""
    return f"{c.keys:,} keys{moved}{conflicts}"


def orders_all_words(dry: DryRun) -> str:
    if dry.orders_all is None:
        return "orders:all (the set of every order id) is not in this Redis db."
    return (f"orders:all holds {dry.orders_all['members']:,} order ids; no rule changes it.")


class CachePage(StepPage):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(
            "Migrate Redis data",
            "The application's order book in Redis is migrated to the new names (hash field "
            "and key family renamed, members kept); pure cache keys are deleted. Dry run "
            "first: nothing changes without asking, and FLUSHALL is never sent.", parent)
        self.rules: tuple[rr.Rule, ...] | None = None
        self.rule_error: str | None = None
        self.reachable: bool | None = None  # None: not checked yet (or checking)
        self.dry: DryRun | None = None
        self.dry_rules: tuple[rr.Rule, ...] | None = None
        self.result: MigrationResult | None = None
        self.before: DryRun | None = None  # the dry run a migration was asked with
        self.after: DryRun | None = None  # the count taken right after a migration
        self._retry: Callable[[], None] | None = None
        self._rules_for: object | None = None  # the session whose profile filled the rules
        self.mono = mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)

        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        self.summary.setAccessibleName("Redis step summary")

        # -- the rules ------------------------------------------------------------------
        self.editor = QPlainTextEdit()
        self.editor.setFont(mono)
        self.editor.setAccessibleName("Redis migration rules, one per line")
        self.editor.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.editor.setTabChangesFocus(True)
        self.editor.setPlaceholderText("field orders:* prosumerId=userId\n"
                                       "move orders:by_prosumer:* orders:by_user:*\n"
                                       "delete prosumer:*")
        self.editor.setToolTip("One rule per line:\n"
                               "  field PATTERN OLD=NEW   rename a hash field\n"
                               "  move SOURCE* TARGET*    move a key family (members kept)\n"
                               "  delete PATTERN          delete pure cache keys")
        lines = self.editor.fontMetrics().lineSpacing()
        self.editor.setFixedHeight(lines * 5 + 14)
        self.editor.textChanged.connect(self._rules_edited)
        editor_label = QLabel("R&ules, one per line (field, move or delete):")
        editor_label.setBuddy(self.editor)
        self.rule_status = QLabel()
        self.rule_status.setWordWrap(True)
        self.rule_status.setTextFormat(Qt.TextFormat.PlainText)
        self.rule_status.setAccessibleName("rule check")
        self.in_words = QLabel()
        self.in_words.setWordWrap(True)
        self.in_words.setTextFormat(Qt.TextFormat.PlainText)
        self.in_words.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.in_words.setAccessibleName("the rules in words, in the order they run")
        self.reset_button = QPushButton("R&eset to EnerLink's rules")
        self.reset_button.setToolTip("Replace the rules with EnerLink's:\n"
                                     + rules_text(rr.DEFAULT_RULES))
        self.reset_button.clicked.connect(lambda: self.set_rules(rr.DEFAULT_RULES))

        rules_box = QGroupBox("Rules")
        rules_layout = QHBoxLayout(rules_box)
        left = QVBoxLayout()
        left.addWidget(editor_label)
        left.addWidget(self.editor)
        left.addWidget(self.rule_status)
        left.addStretch(1)
        right = QVBoxLayout()
        right.addWidget(QLabel("In words, in the order they run:"))
        right.addWidget(self.in_words, 1)
        reset_row = QHBoxLayout()
        reset_row.addStretch(1)
        reset_row.addWidget(self.reset_button)
        right.addLayout(reset_row)
        rules_layout.addLayout(left, 1)
        rules_layout.addLayout(right, 1)

        # -- counts and results ---------------------------------------------------------
        self.table_caption = QLabel("No dry run yet.")
        self.table_caption.setTextFormat(Qt.TextFormat.PlainText)
        self.table = QTableWidget(0, len(DRY_HEADERS))
        self.table.setHorizontalHeaderLabels(DRY_HEADERS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAccessibleName("what each rule would change, or changed")
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setMinimumHeight(self.table.horizontalHeader().sizeHint().height()
                                    + 3 * self.table.verticalHeader().defaultSectionSize() + 6)
        header = self.table.horizontalHeader()
        for column in range(len(DRY_HEADERS) - 1):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.orders_all = QLabel()
        self.orders_all.setWordWrap(True)
        self.orders_all.setTextFormat(Qt.TextFormat.PlainText)
        self.orders_all.setAccessibleName("orders:all count")

        # -- actions --------------------------------------------------------------------
        self.dry_run_button = QPushButton("&Dry run")
        self.dry_run_button.setToolTip("Count, per rule, the keys and members it would change "
                                       "and the conflicts it would leave alone; changes "
                                       "nothing")
        self.dry_run_button.clicked.connect(self.start_dry_run)
        self.migrate_button = QPushButton("&Migrate Redis data…")
        self.migrate_button.setToolTip("Apply the rules (asks first, with the dry run's "
                                       "counts); each key is migrated whole or left "
                                       "untouched, and a second run changes nothing")
        self.migrate_button.clicked.connect(self.start_migration)
        self.revert_button = QPushButton("Rever&t Redis data…")
        self.revert_button.setToolTip("Apply the inverse rules, back to the old names: for a "
                                      "reverted database or a restore of the pre-rename "
                                      "backup (asks for the database name)")
        self.revert_button.clicked.connect(self.start_revert)
        self.retry_button = QPushButton("Retr&y")
        self.retry_button.setToolTip("Run the step that failed again")
        self.retry_button.clicked.connect(self.retry)
        self.retry_button.hide()
        self.skip_button = QPushButton("&Skip the Redis step")
        self.skip_button.setToolTip("Go on without migrating Redis; the reason is written to "
                                    "the run's journal")
        self.skip_button.clicked.connect(self.skip)
        actions = QHBoxLayout()
        for button in (self.dry_run_button, self.migrate_button, self.revert_button,
                       self.retry_button):
            actions.addWidget(button)
        actions.addStretch(1)
        actions.addWidget(self.skip_button)

        self.flush_button = QPushButton("F&LUSHDB…")
        self.flush_button.setToolTip("Delete every key of this Redis db, the order book "
                                     "included (asks for the database name); other db "
                                     "indexes are kept")
        self.flush_button.clicked.connect(self.flush)
        last_resort = QLabel("Last resort: FLUSHDB empties this Redis db, and the live order "
                             "book is lost with it. Use it only when the data cannot be "
                             "migrated.")
        last_resort.setWordWrap(True)
        flush_row = QHBoxLayout()
        flush_row.addWidget(last_resort, 1)
        flush_row.addWidget(self.flush_button)

        self.cancel_button.setToolTip("Stop between two batches: each key is either migrated "
                                      "or untouched, and running the step again finishes it")

        self.controls = QWidget()
        controls = QVBoxLayout(self.controls)
        controls.setContentsMargins(0, 0, 0, 0)
        controls.addWidget(rules_box)
        controls.addWidget(self.table_caption)
        controls.addWidget(self.table, 1)
        controls.addWidget(self.orders_all)
        # In a small window the rules and counts scroll rather than squeezing together;
        # the actions stay in sight below them.
        self.rules_area = QScrollArea()
        self.rules_area.setWidgetResizable(True)
        self.rules_area.setFrameShape(QScrollArea.Shape.NoFrame)
        self.rules_area.setWidget(self.controls)
        self.action_bar = QWidget()
        action_rows = QVBoxLayout(self.action_bar)
        action_rows.setContentsMargins(0, 0, 0, 0)
        action_rows.addLayout(actions)
        action_rows.addLayout(flush_row)
        self.body.addWidget(self.summary)
        self.body.addWidget(self.rules_area, 1)
        self.body.addWidget(self.action_bar)
        self.busy_changed.connect(lambda _b: self._update_buttons())

    # -- entry ------------------------------------------------------------------------------

    def initializePage(self) -> None:
        super().initializePage()
        session = self.session
        redis = session.redis
        if redis is None:
            self.rules_area.hide()
            self.action_bar.hide()
            self.summary.setText("This profile has no Redis: the Redis step is skipped. (Add "
                                 "a Redis URL to the profile if the application keeps its "
                                 "order book in Redis.)")
            session.results.setdefault("cache", "no redis")
            self.set_valid(True)
            return
        self.rules_area.show()
        self.action_bar.show()
        if self._rules_for is not session:  # a new run: the profile's rules
            self._rules_for = session
            self._load_profile_rules()
        self.set_valid(session.results.get("cache") is not None)
        self.check_redis()

    def _load_profile_rules(self) -> None:
        profile = self.session.profile
        if profile is None:
            self.set_rules(rr.DEFAULT_RULES)
            return
        try:
            self.set_rules(profile.redis_rule_list())
        except rr.RuleError:  # shown as typed, with its message under it
            text = profile.redis_rules or ""
            self.editor.setPlainText("\n".join(p.strip() for p in text.split(";")))

    def check_redis(self) -> None:
        redis = self.session.redis
        if redis is None or self.busy:
            return
        self.reachable = None
        self.summary.setText(f"Checking Redis at {redis.describe()}…")
        self._run("Checking Redis", check_connection, redis, on_done=self._reached,
                  retry=self.check_redis, on_failed=self._unreachable,
                  advice="Start Redis, or fix the URL or password on the profile page, then "
                  f"Retry. Nothing was changed in Redis. {DB_STANDS}")

    def _reached(self, status: str) -> None:
        self.reachable = True
        status = re.sub(r"\b(\d{4,}) keys\b", lambda m: f"{int(m[1]):,} keys", status)
        self.summary.setText(f"{status}. Dry run first: it counts what each rule would "
                             f"change and changes nothing.")
        self._update_buttons()

    def _unreachable(self, message: str) -> None:
        self.reachable = False
        redis = self.session.redis
        if redis is not None:
            cache.record_unavailable(self.session.ensure_journal(), redis, message)
        self.summary.setText(f"Redis at {redis.describe() if redis else '?'} did not answer, "
                             f"so nothing was changed there. Start it or fix the profile, "
                             f"then Retry; or skip the Redis step.")
        self._failed(message)

    # -- rules ------------------------------------------------------------------------------

    def set_rules(self, rules: Sequence[rr.Rule]) -> None:
        self.editor.setPlainText(rules_text(rules))

    def _rules_edited(self) -> None:
        text = self.editor.toPlainText()
        try:
            rules: tuple[rr.Rule, ...] | None = parse_redis_rules(text)
            error = None
        except rr.RuleError as exc:
            rules, error = None, str(exc)
        self.rules, self.rule_error = rules, error
        if rules is not None:
            self.in_words.setText("\n".join(f"{n}. {r.describe()}"
                                            for n, r in enumerate(rules, 1)))
            plural = "s" if len(rules) != 1 else ""
            self._set_status(f"✔ {len(rules)} rule{plural}, checked.", error=False)
        else:
            self.in_words.setText("\n".join(self._line_words(text)))
            self._set_status(self._error_words(text, error or ""), error=True)
        if rules != self.dry_rules:
            # Counts belong to the rules they were taken for: Migrate asks with fresh ones.
            self.dry, self.dry_rules = None, None
            if self.result is None:
                self._clear_table("No dry run of these rules yet.")
        self._update_buttons()

    @staticmethod
    def _line_words(text: str) -> list[str]:
        """Each line in words, those that are wrong on their own marked."""
        out = []
        for line in (p.strip() for part in text.split(";") for p in part.splitlines()):
            if not line:
                continue
            try:
                rule = rr.parse(line)
            except rr.RuleError:
                out.append(f"✘ cannot read: {line}")
                continue
            try:
                rr.validate([rule])
                out.append(f"• {rule.describe()}")
            except rr.RuleError:
                out.append(f"✘ {rule.describe()}")
        return out

    @staticmethod
    def _error_words(text: str, error: str) -> str:
        message = f"✘ {error[:1].upper()}{error[1:]}."
        try:  # refused only for a protected family, which the engine never migrates
            parse_redis_rules_allowing(text)
        except rr.RuleError:
            return message
        return (f"{message} This page takes no such allowance: leave the "
                f"{' and '.join(rr.PROTECTED)} families out of the rules.")

    def _set_status(self, text: str, *, error: bool) -> None:
        self.rule_status.setText(text)
        colour = ("#ff8a80" if is_dark(self.palette()) else "#b00020") if error else ""
        self.rule_status.setStyleSheet(f"color: {colour};" if colour else "")

    def _update_buttons(self) -> None:
        idle, ready = not self.busy, self.reachable is True
        rules = self.rules is not None
        self.dry_run_button.setEnabled(idle and ready and rules)
        self.migrate_button.setEnabled(idle and ready and rules and self.dry is not None)
        self.revert_button.setEnabled(idle and ready and rules)
        self.flush_button.setEnabled(idle and ready)
        self.reset_button.setEnabled(idle)
        self.editor.setReadOnly(not idle)
        self.skip_button.setEnabled(idle)
        self.retry_button.setEnabled(idle)

    # -- jobs -------------------------------------------------------------------------------

    def _run(self, name: str, func: Callable[..., object], *args: object,
             on_done: Callable[..., None], retry: Callable[[], None],
             on_failed: Callable[[str], None] | None = None, advice: str = "",
             **kwargs: object) -> None:
        self._retry = retry
        self.retry_button.hide()
        job = self.run_job(name, func, *args, on_done=on_done,
                           on_failed=on_failed or self._failed,
                           advice=advice or "Start Redis, or fix the URL or password on the "
                           f"profile page, then Retry. {DB_STANDS}", **kwargs)
        job.cancelled.connect(self._cancelled)

    def _failed(self, _message: str) -> None:
        self.retry_button.show()
        self._update_buttons()

    def _cancelled(self) -> None:
        self.summary.setText(f"Cancelled. {AGAIN} {DB_STANDS}")
        self.retry_button.show()
        self._update_buttons()

    def retry(self) -> None:
        if self._retry is not None and not self.busy:
            self._retry()

    def start_dry_run(self) -> None:
        redis, rules = self.session.redis, self.rules
        if redis is None or rules is None or self.busy:
            return
        self._use(rules)
        self._run("Dry run of the Redis rules", redis_migrate.dry_run, redis, rules,
                  on_done=lambda dry: self.show_dry_run(dry, rules), retry=self.start_dry_run,
                  journal=self.session.ensure_journal())

    def show_dry_run(self, dry: DryRun, rules: tuple[rr.Rule, ...]) -> None:
        self.dry, self.dry_rules, self.result, self.after = dry, rules, None, None
        at = datetime.now().strftime("%H:%M:%S")
        self._fill(DRY_HEADERS, [self._dry_row(c) for c in dry.rules],
                   f"Dry run at {at} on {dry.target}, {dry.seconds:.2f} s: nothing was "
                   f"changed.")
        self.orders_all.setText(orders_all_words(dry))
        todo = sum(c.keys for c in dry.rules)
        conflicts = sum(c.conflicts for c in dry.rules)
        if todo == 0:
            self.summary.setText("Nothing to migrate: no key matches the rules"
                                 + (f" ({conflicts:,} conflicts stay as they are)"
                                    if conflicts else "") + ". The Redis step is done.")
            self.session.results["cache"] = dry
            self.set_valid(True)
        else:
            self.summary.setText(f"{todo:,} keys to change; nothing changed yet. "
                                 f"'Migrate Redis data' asks before it starts.")
        self._update_buttons()

    @staticmethod
    def _dry_row(c: RuleCount) -> list[str]:
        moving = c.rule.startswith("move")
        sample = ", ".join(c.samples) or "—"
        if c.conflict_samples:
            sample = f"conflicts: {', '.join(c.conflict_samples)}; samples: {sample}"
        return [c.rule, f"{c.keys:,}", f"{c.members:,}" if moving else "—",
                f"{c.conflicts:,}", sample]

    def start_migration(self) -> None:
        redis, rules, dry = self.session.redis, self.rules, self.dry
        if redis is None or rules is None or dry is None or self.busy:
            return
        lines = "\n".join(f"  • {words(c.rule)}: {count_words(c)}" for c in dry.rules)
        if not ask(self, "Migrate Redis data",
                   f"Migrate the Redis data at {dry.target}?\n\n{lines}\n\n"
                   f"{orders_all_words(dry)}\nOther keys are not touched. {AGAIN}"):
            self.log.append("info", "Redis data not migrated: the operator said no")
            return
        self._use(rules)
        self._migrate(rules, "up")

    def _use(self, rules: tuple[rr.Rule, ...]) -> None:
        """The rules as edited here are the run's: verify checks the data against them."""
        self.session.redis_rules = rules

    def start_revert(self) -> None:
        redis, rules = self.session.redis, self.rules
        if redis is None or rules is None or self.busy:
            return
        back = rr.inverse(rules)
        if not back:
            self.summary.setText("These rules only delete cache keys: there is nothing to "
                                 "revert (the old application rebuilds its caches).")
            return
        dbname = self.session.pg.dbname
        lines = "\n".join(f"  • {r.describe()}" for r in back)
        typed = confirm_typed(
            self, "Revert Redis data",
            f"Take the Redis data at {redis.describe()} back to the old names:\n{lines}\n\n"
            f"Only for a database that was reverted, or restored from the pre-rename "
            f"backup: the new application does not read the old names. Deleted cache keys "
            f"are not brought back; the old application rebuilds them.",
            dbname, "Revert Redis data")
        if typed is None:
            self.log.append("info", "Redis revert not confirmed: nothing changed")
            return
        self._migrate(rules, "down")

    def _migrate(self, rules: tuple[rr.Rule, ...], direction: str) -> None:
        redis = self.session.redis
        if redis is None:
            return
        applied = rules if direction == "up" else rr.inverse(rules)
        retry = self.start_migration if direction == "up" else self.start_revert
        self._run("Migrating Redis data" if direction == "up" else "Reverting Redis data",
                  redis_migrate.migrate, redis, applied, direction=direction,
                  on_done=lambda result: self.show_result(result, applied), retry=retry,
                  advice=f"Start Redis (or fix what the message says), then Retry. {AGAIN} "
                  f"{DB_STANDS}", journal=self.session.ensure_journal())

    def show_result(self, result: MigrationResult, applied: tuple[rr.Rule, ...]) -> None:
        self.before = self.dry if result.direction == "up" else None
        self.result, self.dry, self.dry_rules = result, None, None
        self.session.results["cache"] = result
        verb = "Migrated" if result.direction == "up" else "Reverted"
        self._fill(DONE_HEADERS, [self._done_row(r) for r in result.rules],
                   f"{verb} on {result.target} in {result.seconds:.2f} s.")
        conflicts = (f" {result.conflicts:,} conflicting keys were left untouched (listed in "
                     f"the table): compare them by hand." if result.conflicts else "")
        names = "new" if result.direction == "up" else "old"
        self.summary.setText(f"{verb}: {result.changed:,} keys changed, now under the "
                             f"{names} names.{conflicts}")
        self.set_valid(True)
        self._update_buttons()
        self.count_left(applied)

    def count_left(self, applied: tuple[rr.Rule, ...]) -> None:
        """A second look after the run. Not journaled: verify compares the Redis data with
        the dry run taken before the migration, not with this one."""
        redis = self.session.redis
        if redis is None or self.busy:
            return
        self.orders_all.setText("Counting what is left…")
        self._run("Counting what is left", redis_migrate.dry_run, redis, applied,
                  on_done=self.show_after, retry=lambda: self.count_left(applied),
                  advice="The migration itself finished (its result is in the table); "
                  "Retry counts again.")

    @staticmethod
    def _done_row(r: RuleDone) -> list[str]:
        return [r.rule, f"{r.changed:,}", f"{r.merged:,}" if r.rule.startswith("move")
                else "—", f"{r.conflicts:,}", ", ".join(r.conflict_samples) or "—"]

    def show_after(self, after: DryRun) -> None:
        self.after = after
        left = sum(c.keys for c in after.rules)
        conflicts = sum(c.conflicts for c in after.rules)
        text = ("Checked afterwards: nothing left to change" if left == 0 else
                f"Checked afterwards: {left:,} keys still match the rules (written since?); "
                f"run the step again")
        text += f", apart from the {conflicts:,} conflicts." if conflicts else "."
        self.orders_all.setText(f"{text} {self._orders_all_compared(after)}")

    def _orders_all_compared(self, after: DryRun) -> str:
        was, now = (self.before.orders_all if self.before else None), after.orders_all
        if was is None or now is None:
            return orders_all_words(after)
        if was == now:
            return (f"orders:all holds {now['members']:,} order ids, the same ones as before "
                    f"the migration.")
        return (f"orders:all changed: {was['members']:,} order ids before, "
                f"{now['members']:,} now (the application may have taken orders meanwhile).")

    def _clear_table(self, caption: str) -> None:
        self.table.setRowCount(0)
        self.table.setHorizontalHeaderLabels(DRY_HEADERS)
        self.table_caption.setText(caption)
        self.orders_all.clear()

    def _fill(self, headers: list[str], rows: list[list[str]], caption: str) -> None:
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            for j, text in enumerate(row):
                item = QTableWidgetItem(text)
                item.setToolTip(words(text) if j == 0 else
                                text.replace(", ", "\n") if j == len(row) - 1 else text)
                if j == 0:
                    item.setFont(self.mono)
                elif j < len(row) - 1:
                    item.setTextAlignment(RIGHT)
                self.table.setItem(i, j, item)
        self.table_caption.setText(caption)

    # -- last resort, skip ------------------------------------------------------------------

    def flush(self) -> None:
        redis = self.session.redis
        if redis is None or self.busy:
            return
        dbname = self.session.pg.dbname
        typed = confirm_typed(
            self, "FLUSHDB",
            f"FLUSHDB deletes EVERY key in Redis db {redis.effective_db} at "
            f"{redis.describe()}: the live order book (orders:*, orders:all) is lost with "
            f"it, and so are sessions, queues, telemetry and prices. Other db indexes are "
            f"not touched (FLUSHALL is never sent). Prefer 'Migrate Redis data'.",
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
                             f"{'all' if before is None else f'{before:,}'} keys removed, "
                             f"the order book with them.")
        self.dry, self.dry_rules, self.result = None, None, None
        self._clear_table("Redis db emptied: nothing to count.")
        self.set_valid(True)
        self._update_buttons()

    def skip(self) -> None:
        cache.record_skipped(self.session.ensure_journal(), self.session.redis,
                             "operator skipped the Redis step")
        self.session.results["cache"] = "skipped"
        self.summary.setText("Redis step skipped (written to the run's journal). The order "
                             "book keeps the old names until it is migrated, and old cache "
                             "keys may remain until they expire.")
        self.log.append("warn", "Redis step skipped by the operator")
        self.errors.clear()
        self.retry_button.hide()
        self.set_valid(True)

