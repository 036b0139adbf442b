"""Page 3: a verified pg_dump backup of this run, or the typed override to go on without one."""

from __future__ import annotations

import getpass
from datetime import datetime, timezone
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from wizard.core.backup import (
    DEFAULT_COMPRESSION,
    FORMATS,
    BackupOptions,
    BackupResult,
    backup,
    record_skipped,
)
from wizard.core.session import WizardSession
from wizard.core.units import format_bytes
from wizard.ui.confirm import confirm_typed
from wizard.ui.pages.base import StepPage

COMPRESSIONS = (DEFAULT_COMPRESSION, "gzip:6", "none", "lz4", "zstd:3")
STEP = "Backup"
ADVICE = ("Fix what the message names, then press Back up now again; or, knowingly, "
          "Continue without a backup… (needs the database name typed back).")


def _value(text: str = "—") -> QLabel:
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class BackupPage(StepPage):
    """Next is enabled after a verified backup in this run, or after the typed override."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(STEP, "pg_dump of the whole database into a private file, then "
                         "verified: pg_restore reads it back and its sha256 goes into the "
                         "run journal. The migration waits for it.", parent)
        self.result: BackupResult | None = None  # the latest attempt that produced a result
        self.verified: BackupResult | None = None  # the newest verified backup of this run
        self.skipped: dict[str, str] | None = None
        self._for_session: WizardSession | None = None

        self.folder = QLineEdit()
        self.folder.setAccessibleName("backup folder")
        self.folder.setToolTip("Created with mode 0700 if missing; the backup file is 0600")
        browse = QPushButton("B&rowse…")
        browse.clicked.connect(self.choose_folder)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        self.format = QComboBox()
        self.format.addItems(list(FORMATS))
        self.format.setAccessibleName("backup format")
        self.format.setToolTip("custom: one file; directory: a folder, written by several "
                               "pg_dump jobs in parallel (big databases)")
        self.format.currentTextChanged.connect(self._format_changed)
        self.jobs = QSpinBox()
        self.jobs.setRange(1, 64)
        self.jobs.setAccessibleName("parallel pg_dump jobs")
        self.jobs.setToolTip("Parallel jobs: directory format only")
        self.compression = QComboBox()
        self.compression.setEditable(True)
        self.compression.addItems(list(COMPRESSIONS))
        self.compression.setAccessibleName("compression")
        self.compression.setToolTip(f"none, gzip:1..9, lz4 or zstd[:level] (pg_dump 16+); "
                                    f"{DEFAULT_COMPRESSION} is close to an uncompressed dump's "
                                    f"speed at a fraction of its size")
        form = QFormLayout()
        folder_label = QLabel("Backup fol&der:")
        folder_label.setBuddy(self.folder)
        form.addRow(folder_label, folder_row)
        options = QHBoxLayout()
        for text, widget in (("For&mat:", self.format), ("&Jobs:", self.jobs),
                             ("Com&pression:", self.compression)):
            label = QLabel(text)
            label.setBuddy(widget)
            options.addWidget(label)
            options.addWidget(widget)
            options.addSpacing(12)
        options.addStretch(1)
        form.addRow("Options:", options)

        self.run_button = QPushButton("Back &up now")
        self.run_button.setDefault(False)
        self.run_button.clicked.connect(self.start_backup)
        self.skip_button = QPushButton("Continue &without a backup…")
        self.skip_button.setToolTip("Only when a backup exists elsewhere: needs the database "
                                    "name typed back and is written to the run journal")
        self.skip_button.clicked.connect(self.skip_backup)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addStretch(1)
        buttons.addWidget(self.skip_button)

        self.status = _value("No backup in this run yet.")
        self.path, self.size_value, self.sha256 = _value(), _value(), _value()
        self.sha256.setWordWrap(False)
        self.verdict = _value()
        self.path.setAccessibleName("backup path")
        self.sha256.setAccessibleName("backup sha256")
        self.verdict.setAccessibleName("backup verification")
        result_form = QFormLayout()
        result_form.addRow("Path:", self.path)
        result_form.addRow("Size:", self.size_value)
        result_form.addRow("SHA-256:", self.sha256)
        result_form.addRow("Verification:", self.verdict)
        result_box = QGroupBox("Result")
        result_box.setLayout(result_form)

        self.body.addLayout(form)
        self.body.addLayout(buttons)
        self.body.addWidget(self.status)
        self.body.addWidget(result_box)
        self.body.addStretch(1)
        self.busy_changed.connect(self._busy)

    # -- entering the page ------------------------------------------------------------------

    def initializePage(self) -> None:
        super().initializePage()
        session = self.session
        if session is self._for_session:
            return  # back here in the same run: keep the choices and the result
        self._for_session = session
        self.result = self.verified = self.skipped = None
        profile = session.profile
        self.folder.setText(str(session.backup_folder))
        self.format.setCurrentText(profile.backup_format if profile else FORMATS[0])
        self.jobs.setValue(profile.backup_jobs if profile else 1)
        self.compression.setCurrentText(DEFAULT_COMPRESSION)
        self._format_changed(self.format.currentText())
        self._show(None)
        self._update_valid()

    def _format_changed(self, fmt: str) -> None:
        self.jobs.setEnabled(fmt == "directory")

    def _busy(self, busy: bool) -> None:
        for widget in (self.run_button, self.skip_button, self.folder, self.format,
                       self.compression):
            widget.setEnabled(not busy)
        self.jobs.setEnabled(not busy and self.format.currentText() == "directory")

    def choose_folder(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Backup folder", self.folder.text())
        if chosen:
            self.folder.setText(chosen)

    # -- the backup -------------------------------------------------------------------------

    def options(self) -> BackupOptions:
        fmt = self.format.currentText()
        profile = self.session.profile
        return BackupOptions(
            out_dir=Path(self.folder.text().strip() or str(self.session.backup_folder)),
            format=fmt, jobs=self.jobs.value() if fmt == "directory" else 1,
            compression=self.compression.currentText().strip() or None,
            pg_dump=profile.pg_dump_path if profile and profile.pg_dump_path else None)

    def start_backup(self) -> None:
        if self.busy:
            return
        self.status.setText("Backing up…")
        job = self.run_job("Backup", backup, self.session.pg, self.options(),
                           journal=self.session.ensure_journal(), on_done=self.show_result,
                           on_failed=self._failed, advice=ADVICE)
        job.cancelled.connect(self._cancelled)

    def show_result(self, result: BackupResult) -> None:
        self.result = result
        if result.verified:
            self.verified = result
            self.session.results["backup"] = result
        else:
            self.show_error(result.error or "the backup was not verified", STEP, ADVICE)
        self._show(result)
        self._update_valid()

    def _failed(self, message: str) -> None:
        self.status.setText(f"✘ No backup: {message}" + self._earlier())

    def _cancelled(self) -> None:
        self.status.setText("Cancelled: pg_dump was stopped and the partial backup removed."
                            + self._earlier())

    def _earlier(self) -> str:
        if self.verified is None:
            return ""
        return f"\nThe earlier verified backup of this run still stands: {self.verified.path}"

    def _show(self, result: BackupResult | None) -> None:
        if result is None:
            for label in (self.path, self.size_value, self.sha256, self.verdict):
                label.setText("—")
            if self.skipped is None:
                self.status.setText("No backup in this run yet.")
            return
        self.path.setText(result.path)
        self.size_value.setText(
            f"{format_bytes(result.size_bytes)} ({result.size_bytes:,} bytes)"
            if result.size_bytes else "—")
        self.sha256.setText(result.sha256 or "—")
        if result.verified:
            self.verdict.setText(f"verified ✔ — pg_restore --list read {result.toc_entries} "
                                 f"entries; dump {result.dump_s:.1f} s, verification "
                                 f"{result.verify_s:.1f} s")
            self.status.setText(f"✔ Verified backup of {result.dbname} ({result.format}, "
                                f"compression {result.compression}, pg_dump "
                                f"{result.tool.get('version', '')}). Next is enabled.")
        else:
            self.verdict.setText(f"✘ not verified: {result.error or 'unknown reason'}")
            self.status.setText("✘ The backup failed; see the reason below and the log."
                                + self._earlier())

    # -- the override -----------------------------------------------------------------------

    def skip_backup(self) -> None:
        if self.busy:
            return
        session = self.session
        db = session.pg.dbname
        typed = confirm_typed(
            self, "Continue without a backup",
            f"The migration of {session.pg.describe()} will run without a verified backup "
            f"from this run. If it goes wrong, only a backup you made elsewhere can bring the "
            f"data back. Your choice is written to the run journal with your name and the "
            f"time.", db, "Continue without a backup")
        if typed != db:
            self.log.append("info", "continuing without a backup: not confirmed")
            return
        who = session.operator or getpass.getuser()
        when = datetime.now(timezone.utc).isoformat(timespec="seconds")
        record_skipped(session.ensure_journal(), db, who, when,
                       "typed confirmation in the wizard")
        self.skipped = {"who": who, "when": when}
        session.results["backup_skipped"] = self.skipped
        self.log.append("warn", f"continuing WITHOUT a backup of {db}: confirmed by {who} "
                                f"at {when} (typed the database name)")
        self.status.setText(f"! Continuing without a backup: confirmed by {who} at {when}. "
                            f"The journal records it.")
        self._update_valid()

    def _update_valid(self) -> None:
        self.set_valid(self.verified is not None or self.skipped is not None)
