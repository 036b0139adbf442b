"""Restore a backup: see what is inside, type the database name, restore, then bring Redis
to the restored schema's names."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from wizard.core import restore
from wizard.core.connection import PgSettings
from wizard.core.journal import Journal
from wizard.core.profiles import ProfileError
from wizard.core.recover import RestoreOutcome, describe_redis_plan, restore_then_clear
from wizard.core.redis_conn import RedisSettings, RedisSettingsError
from wizard.ui.ask import WorkerQuestion
from wizard.ui.confirm import TypedConfirmDialog, confirm_typed
from wizard.ui.dialogs import JobDialog
from wizard.ui.pages.base import LOG_FILE
from wizard.ui.pages.profile import ProfilePage

if TYPE_CHECKING:
    from wizard.ui.window import MigrationWizard

DEFAULT_JOBS = 2
NOT_VALID_COLUMNS = ("Table (columns)", "References", "Violating rows", "Sample keys",
                     "Foreign key")
SAMPLES_SHOWN = 2  # in the cell; its tooltip has all the sampled keys


def inspection_text(plan: restore.RestorePlan, with_redis: bool = False) -> str:
    """What the restore will read and do, for a person to check before confirming (with
    the Redis step that follows the swap when a Redis is configured)."""
    insp = plan.inspection
    lines = list(insp.summary())
    tables = insp.tables
    lines.append(textwrap.fill(f"  tables ({len(tables)}): {', '.join(tables)}", width=100,
                               subsequent_indent="    ", break_on_hyphens=False))
    lines += ["", f"Restore into a new database {plan.restore_db} on "
              f"{plan.settings.host}:{plan.settings.port}, check it, then swap names:",
              f"  {plan.live_db} → {plan.before_db} (kept, not dropped)",
              f"  {plan.restore_db} → {plan.live_db}",
              f"  with {plan.tool.path} ({plan.tool.version}), jobs {plan.options.jobs}"]
    if plan.expected_counts:
        lines.append(f"  row counts will be compared with those taken before the migration "
                     f"({plan.counts_source})")
    if with_redis:
        lines.append(textwrap.fill(f"  {describe_redis_plan(insp.state)}", width=100,
                                   subsequent_indent="    "))
    lines += ["", *plan.server_lines()]
    lines += [f"! {w}" for w in plan.warnings]
    lines += [f"! needs your agreement: {u.message}" for u in plan.unconfirmed()]
    return "\n".join(lines)


def confirm_consequence(plan: restore.RestorePlan) -> str:
    """What typing the database name agrees to: the replacement, the sessions terminated,
    going on without a free-space reading."""
    insp = plan.inspection
    when = insp.dumped_at or "at an unknown time"
    source = insp.source_db or "a database it does not name"
    text = (f"{plan.live_db} on {plan.settings.host}:{plan.settings.port} will be replaced by "
            f"the backup {insp.path} ({insp.format}, dumped {when} from {source}, schema "
            f"state {insp.state}). "
            f"It is restored into {plan.restore_db} first; only when that copy passes its "
            f"checks are the names swapped. The current {plan.live_db} is kept as "
            f"{plan.before_db}. Writes made after the backup are not in it.")
    if plan.sessions:
        text += (f" The {len(plan.sessions)} session(s) connected to {plan.live_db} now ("
                 + "; ".join(x.describe() for x in plan.sessions)
                 + "), and any that connect meanwhile, will be terminated at the swap.")
    else:
        text += (f" Sessions that connect to {plan.live_db} meanwhile will be terminated at "
                 "the swap.")
    if plan.space is not None and plan.space.unknown:
        text += (" The free space on the server could not be read ("
                 + "; ".join(p.describe() for p in plan.space.unknown)
                 + "): check it there yourself; typing the name goes on without the check.")
    return text


def identity_consequence(plan: restore.RestorePlan) -> str:
    return (f"{plan.inspection.path} is a backup of {plan.source_db} "
            f"({plan.inspection.source_from}), not of {plan.live_db}. Restoring it puts "
            f"{plan.source_db}'s data into {plan.live_db} (kept as {plan.before_db}).")


def confirm_plan(parent: QWidget | None, plan: restore.RestorePlan,
                 ask: Callable[[QWidget | None, str, str, str, str], str | None],
                 ) -> str | None:
    """Ask for the database name typed back (it agrees to what confirm_consequence
    says) and, for another database's backup, for that database's name too. Returns the
    typed name with the plan's options set to what was agreed, or None."""
    typed = ask(parent, "Restore from backup", confirm_consequence(plan), plan.live_db,
                "&Restore")
    if typed is None:
        return None
    if plan.foreign:
        assert plan.source_db is not None
        source = ask(parent, "A backup of another database", identity_consequence(plan),
                     plan.source_db, "&Restore it")
        if source is None:
            return None
        plan.options.from_database = source
    plan.options.terminate_sessions = True
    plan.options.accept_unknown_space = True
    return typed


def not_valid_consequence(plan: restore.RestorePlan, keys: list[dict[str, Any]]) -> str:
    """What swapping in a copy with these keys NOT VALID means, and what Cancel does."""
    rows = sum(int(k.get("violating_rows") or 0) for k in keys)
    return (f"The backup restored completely into {plan.restore_db}, but its rows break "
            f"{len(keys)} foreign key(s) ({rows:,} violations, counted key by key): they point "
            f"at rows that are not in the backup (orphans, written while the keys' triggers "
            f"were off). PostgreSQL could not add "
            f"these keys, so they were re-created NOT VALID: new and changed rows are checked, "
            f"the rows already there are not.\n\n"
            f"Swap: {plan.live_db} becomes this copy, orphans included; the current "
            f"{plan.live_db} is kept as {plan.before_db}. Then clean up the orphans (Orphans "
            f"page, or enerlink-migrate orphans) and validate the keys with the statements "
            f"below.\n"
            f"Cancel: the copy is dropped; {plan.live_db} stays as it is now.")


def _unqualified(name: str) -> str:
    """A table as psql shows it: without the public schema, others qualified."""
    return name.removeprefix("public.")


def _sample_text(key: dict[str, Any], limit: int | None = None) -> str:
    rows = list(key.get("sample", []))
    shown = rows if limit is None else rows[:limit]
    text = ", ".join("(" + ", ".join(str(v) for v in row) + ")" for row in shown)
    return text + (", …" if len(shown) < len(rows) else "")


class NotValidDialog(TypedConfirmDialog):
    """Before the swap: the keys the backup's rows violate; typing the name swaps anyway."""

    def __init__(self, parent: QWidget | None, plan: restore.RestorePlan,
                 keys: list[dict[str, Any]]) -> None:
        super().__init__(parent, "Restore: foreign keys NOT VALID in the copy",
                         not_valid_consequence(plan, keys), plan.live_db,
                         f"&Swap in with {len(keys)} key(s) NOT VALID")
        self.keys = keys
        self.table = QTableWidget(len(keys), len(NOT_VALID_COLUMNS), self)
        self.table.setAccessibleName("foreign keys re-created NOT VALID")
        self.table.setHorizontalHeaderLabels(list(NOT_VALID_COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        for i, key in enumerate(keys):
            columns = ", ".join(str(c) for c in key.get("columns", []))
            values = (f"{_unqualified(str(key.get('table', '')))} ({columns})",
                      _unqualified(str(key.get("references", ""))),
                      f"{int(key.get('violating_rows') or 0):,}",
                      _sample_text(key, SAMPLES_SHOWN), str(key.get("name", "")))
            for j, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setToolTip(_sample_text(key) if j == 3 else value)
                if j == 2:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.validate = mono()
        self.validate.setAccessibleName("statements that validate the keys after the cleanup")
        self.validate.setPlainText("\n".join(str(k.get("validate_sql", "")) for k in keys))
        self.validate.setMaximumHeight(24 + 18 * min(len(keys), 5))
        layout = self.layout()
        assert isinstance(layout, QVBoxLayout)
        layout.insertWidget(1, self.table, 1)
        layout.insertWidget(2, QLabel("After the orphan cleanup, validate them with:"))
        layout.insertWidget(3, self.validate)
        self.resize(1040, 640)


def not_valid_question(parent: QWidget, plan: restore.RestorePlan) -> WorkerQuestion:
    """restore.run's confirm_not_valid for `plan`: asks with NotValidDialog on the GUI
    thread while the restore waits before its swap (attach it to the job)."""
    return WorkerQuestion(lambda keys: NotValidDialog(parent, plan, keys), parent)


def outcome_lines(outcome: RestoreOutcome) -> list[str]:
    """The outcome's lines, and the keys it left NOT VALID with how to validate them."""
    lines = outcome.lines()
    keys = outcome.result.not_valid
    if outcome.result.ok and keys:
        lines.append(f"! {len(keys)} foreign key(s) are NOT VALID in {outcome.result.live_db} "
                     f"({', '.join(str(k['name']) for k in keys)}): clean up the orphans, "
                     f"then run " + " ".join(str(k["validate_sql"]) for k in keys))
    return lines


def mono(*, wrap: bool = False) -> QPlainTextEdit:
    """Read-only fixed-width text; `wrap` for prose that must be read whole (SQL does not)."""
    view = QPlainTextEdit()
    view.setReadOnly(True)
    view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    view.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth if wrap
                         else QPlainTextEdit.LineWrapMode.NoWrap)
    return view


class RestoreDialog(JobDialog):
    """Choose a backup (custom, directory or plain), inspect it, confirm, restore."""

    def __init__(self, pg: PgSettings, redis: RedisSettings | None,
                 parent: QWidget | None = None) -> None:
        super().__init__("Restore a backup", parent)
        self.pg, self.redis = pg, redis
        self.plan: restore.RestorePlan | None = None
        self.outcome: RestoreOutcome | None = None
        self.journal: Journal | None = None
        self.not_valid_ask: WorkerQuestion | None = None  # the restore's question, if any
        target = QLabel(f"Database to replace: {pg.describe()}"
                        + (f"; Redis {redis.describe()}" if redis else "; no Redis"))
        target.setTextFormat(Qt.TextFormat.PlainText)
        target.setWordWrap(True)
        self.path = QLineEdit()
        self.path.setAccessibleName("backup file or folder")
        self.path.setPlaceholderText("a pg_dump file (custom or plain SQL) or a directory "
                                     "backup's folder")
        self.path.textChanged.connect(self._path_changed)
        choose_file, choose_dir = QPushButton("Choose &file…"), QPushButton("Choose f&older…")
        choose_file.clicked.connect(self.choose_file)
        choose_dir.clicked.connect(self.choose_folder)
        self.jobs = QSpinBox()
        self.jobs.setRange(1, 32)
        self.jobs.setValue(DEFAULT_JOBS)
        self.jobs.setAccessibleName("parallel pg_restore jobs")
        self.jobs.setToolTip("pg_restore --jobs (custom and directory backups; plain SQL and "
                             "tar use one process)")
        self.template = QLineEdit("template0")
        self.template.setAccessibleName("template database")
        self.template.setToolTip("The new database is created from this template: template0 "
                                 "(clean), or one where a superuser pre-created extensions "
                                 "this role may not create (before PostgreSQL 13: any)")
        self.inspect_button = QPushButton("&Inspect")
        self.inspect_button.setToolTip("Read the backup and check the server; changes nothing")
        self.inspect_button.clicked.connect(self.inspect)
        self.restore_button = QPushButton("&Restore…")
        self.restore_button.setEnabled(False)
        self.restore_button.clicked.connect(self.start_restore)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path, 1)
        path_row.addWidget(choose_file)
        path_row.addWidget(choose_dir)
        form = QFormLayout()
        path_label = QLabel("&Backup:")
        path_label.setBuddy(self.path)
        form.addRow(path_label, path_row)
        jobs_label = QLabel("&Jobs:")
        jobs_label.setBuddy(self.jobs)
        actions = QHBoxLayout()
        actions.addWidget(self.jobs)
        actions.addWidget(self.inspect_button)
        actions.addWidget(self.restore_button)
        actions.addStretch(1)
        form.addRow(jobs_label, actions)
        template_label = QLabel("&Template:")
        template_label.setBuddy(self.template)
        form.addRow(template_label, self.template)
        self.inspection = mono(wrap=True)  # no line of what is restored hides off-screen
        self.inspection.setAccessibleName("what is inside the backup")
        self.inspection.setPlaceholderText("Inspect a backup to see what is inside before "
                                           "anything changes.")
        self.result_label = QLabel()
        self.result_label.setTextFormat(Qt.TextFormat.PlainText)
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.body.addWidget(target)
        self.body.addLayout(form)
        self.body.addWidget(self.inspection, 1)
        self.body.addWidget(self.result_label)
        self.busy_changed.connect(self._update_buttons)

    @classmethod
    def open_for(cls, window: MigrationWizard) -> RestoreDialog | None:
        """Open for the window's session or, before the run started, the first page's form."""
        session = window.session
        if session is None:
            form = window.steps[0]
            assert isinstance(form, ProfilePage)
            try:
                session = form.session_from_form()
            except (ProfileError, RedisSettingsError) as exc:
                QMessageBox.warning(window, "Restore a backup",
                                    f"Fill in the connection on this page first: {exc}")
                return None
        dialog = cls(session.pg, session.redis, window)
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        return dialog

    # -- choosing and inspecting ------------------------------------------------------------

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a backup file", self.path.text(),
                                              "Backups (*.dump *.backup *.sql *.tar);;"
                                              "All files (*)")
        if path:
            self.path.setText(path)

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a directory backup",
                                                self.path.text())
        if path:
            self.path.setText(path)

    def _path_changed(self) -> None:
        self.plan = None
        self._update_buttons()

    def _update_buttons(self, *_args: object) -> None:
        self.inspect_button.setEnabled(not self.busy and bool(self.path.text().strip()))
        self.restore_button.setEnabled(not self.busy and self.plan is not None)

    def inspect(self) -> None:
        text = self.path.text().strip()
        if not text or self.busy:
            return
        self.plan = None
        self.inspection.clear()
        self.result_label.clear()
        self.run_job("Reading the backup", restore.prepare, self.pg, Path(text),
                     restore.RestoreOptions(jobs=self.jobs.value(),
                                            template=self.template.text().strip()
                                            or "template0"),
                     on_done=self._inspected, on_failed=self._refused,
                     advice="Choose another copy of the backup, or fix what the message "
                     "names. Nothing was changed.")

    def _inspected(self, plan: restore.RestorePlan) -> None:
        self.plan = plan
        self.inspection.setPlainText(inspection_text(plan, self.redis is not None))
        self.log.append("info", f"{plan.inspection.path}: {plan.inspection.format}, "
                        f"{plan.inspection.toc_entries} entries; ready to restore")
        self._update_buttons()

    def _refused(self, message: str) -> None:
        self.inspection.setPlainText(f"✘ Not restorable: {message}")
        self._update_buttons()

    # -- restoring --------------------------------------------------------------------------

    def start_restore(self) -> None:
        plan = self.plan
        if plan is None or self.busy:
            return
        typed = confirm_plan(self, plan, confirm_typed)
        if typed is None:
            self.log.append("info", "restore not confirmed; nothing was changed")
            return
        self.journal = Journal.create(self.pg, "restore")
        self.log.set_log_file(self.journal.folder / LOG_FILE)
        self.log.append("info", f"run journal {self.journal.folder}")
        self.plan = None  # a plan is used once: its database names are taken by then
        self.not_valid_ask = not_valid_question(self, plan)
        job = self.run_job("Restoring from the backup", restore_then_clear, plan, typed,
                           self.redis, journal=self.journal,
                           confirm_not_valid=self.not_valid_ask, on_done=self._restored,
                           advice="Read the log; the live database is untouched unless the "
                           "log says the names were swapped.")
        self.not_valid_ask.attach(job)

    def _restored(self, outcome: RestoreOutcome) -> None:
        self.outcome = outcome
        lines = outcome_lines(outcome)
        self.result_label.setText("\n".join(lines))
        problem = outcome.problem("inspect the backup again")
        if problem:
            self.show_error(*problem)
        self._update_buttons()
