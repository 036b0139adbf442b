"""Page 3: a verified pg_dump backup of this run, proven by a restore, or the typed override."""

from __future__ import annotations

import getpass
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from wizard.core import prove
from wizard.core.backup import (
    AUTO,
    AUTO_MODERN,
    AUTO_OLDER,
    DEFAULT_COMPRESSION,
    FORMATS,
    BackupOptions,
    BackupResult,
    backup,
    record_skipped,
)
from wizard.core.connection import PgSettings
from wizard.core.journal import Journal
from wizard.core.preflight import Preflight
from wizard.core.reporting import Progress, Report, no_progress, no_report
from wizard.core.session import WizardSession
from wizard.core.units import format_bytes
from wizard.ui.confirm import confirm_typed
from wizard.ui.pages.base import StepPage
from wizard.ui.worker import Job

COMPRESSIONS = (DEFAULT_COMPRESSION, AUTO_OLDER, AUTO_MODERN, "gzip:6", "none", "lz4", "zstd:3")
STEP = "Backup"
ADVICE = ("Fix what the message names, then press Back up now again; or, knowingly, "
          "Continue without a backup… (needs the database name typed back).")
PROOF_STEP = "Proof of the backup"
PROOF_WHAT = ("restores it into a scratch database on the same server, compares every table "
              "with the dump, rehearses the migration, drops it")
PROOF_REFUSED_ADVICE = ("The backup itself is verified and stands; only its proof did not "
                        "start. Free what the message names (or prove it later with Prove "
                        "this backup now), or go on: the migration then shows the rollback "
                        "point as not proven.")
NOT_PROVEN_ADVICE = ("Restoring this backup would not give back this database exactly. Fix "
                     "the cause named above, take a new backup and prove it; the migration "
                     "refuses this one unless you type the database name.")
BACKUP_SHARE = 0.4  # of the progress bar, when the proof follows (its restore is the longer)


@dataclass
class BackedUp:
    """A backup and, when asked for, its proof (or why the proof could not start)."""

    backup: BackupResult
    proof: prove.ProofResult | None = None
    refused: str | None = None  # prove.ProofRefused: nothing was changed


def proof_options(result: BackupResult) -> prove.ProofOptions:
    """The proof's options: the engine's restore jobs, the rehearsal, the free-space check,
    and the pg_restore that verified the backup."""
    return prove.ProofOptions(rehearse=True, accept_unknown_space=False,
                              pg_restore=result.restore_tool.get("path") or None)


def backup_and_prove(settings: PgSettings, options: BackupOptions, with_proof: bool, *,
                     report: Report = no_report, progress: Progress = no_progress,
                     cancel: threading.Event | None = None,
                     journal: Journal | None = None) -> BackedUp:
    """The backup, then (when asked and it was verified) its proof on the same worker and
    journal; a proof that cannot start leaves the verified backup as it is."""
    share = BACKUP_SHARE if with_proof else 1.0
    result = backup(settings, options, report=report, cancel=cancel, journal=journal,
                    progress=lambda f, d: progress(f * share, d))
    done = BackedUp(result)
    if not (with_proof and result.verified):
        return done
    try:
        done.proof = prove.prove(settings, result.path, proof_options(result), report=report,
                                 progress=lambda f, d: progress(share + (1 - share) * f,
                                                               f"proof: {d}"),
                                 cancel=cancel, journal=journal)
    except prove.ProofRefused as exc:
        done.refused = str(exc)
        report("error", done.refused)
    return done


def proof_headline(proof: prove.ProofResult) -> str:
    """The verdict and what it rests on, in one line."""
    if not proof.proven:
        return f"NOT PROVEN ✘ — {proof.reason}"
    if proof.compared_with == prove.SNAPSHOT:
        basis = (f"{proof.rows:,} rows in {proof.tables} tables equal {proof.compared_with}")
    else:
        basis = f"complete (row counts compared with {proof.compared_with})"
    return (f"PROVEN ✔ — restored into a scratch copy in "
            f"{proof.timings.get('restore_s', 0):.1f} s; {basis}")


def proof_details(proof: prove.ProofResult) -> list[str]:
    """The lines under the verdict: keys NOT VALID, the rehearsal, warnings, timings."""
    lines = []
    if proof.not_valid:
        lines.append(f"! {len(proof.not_valid)} foreign key(s) come back NOT VALID: the backup "
                     f"holds orphan rows that break them (named in the log). Restoring it "
                     f"asks before swapping such a copy in.")
    if proof.rehearsal is not None:
        lines.append(prove.rehearsal_text(proof.rehearsal))
    # The restore's own warning about those keys repeats them at length: it is in the log.
    lines += [f"! {w}" for w in proof.warnings if not (proof.not_valid and "NOT VALID" in w)]
    timings = ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in proof.timings.items())
    dropped = (f"scratch copy {proof.scratch_db} dropped" if proof.dropped
               else f"scratch copy {proof.scratch_db} NOT dropped: see the log")
    lines.append(f"{timings}; {dropped}")
    return lines


def estimate(settings: PgSettings, size_bytes: int | None) -> tuple[float, str, int]:
    """How long a proof would take (seconds, basis, database size), reading the size when
    the page does not know it yet."""
    size = prove.database_bytes(settings) if size_bytes is None else size_bytes
    seconds, basis = prove.estimate_s(settings, size)
    return seconds, basis, size


def _seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _tone(label: QLabel, good: bool | None) -> None:
    """Proven in green, not proven in red and bold: the line a DBA looks for."""
    label.setStyleSheet("" if good is None else "font-weight: bold; color: #1a7f37;" if good
                        else "font-weight: bold; color: #c62828;")


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
        self.proof: prove.ProofResult | None = None  # the proof of `verified`, when run
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
        self.compression.setToolTip(f"{AUTO}: {AUTO_MODERN} where pg_dump is 16+ and built "
                                    f"with zstd, else {AUTO_OLDER} (both close to a plain "
                                    f"dump's speed at a fifth of its size or less); or none, "
                                    f"gzip:1..9, lz4, zstd[:level] (pg_dump 16+)")
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
        self.prove_box = QCheckBox("Pr&ove this backup")
        self.prove_box.setChecked(True)
        self.prove_box.setToolTip("After the backup is verified, restore it into a scratch "
                                  f"database <db>_proof_<time> on the same server "
                                  f"(pg_restore --jobs {prove.DEFAULT_JOBS}), compare every "
                                  f"table's rows and the "
                                  f"schema with what pg_dump saw, rehearse the migration on "
                                  f"it (rolled back), then drop it. The live database is "
                                  f"only read. Needs free space for a second copy.")
        self.prove_estimate = _value(f"about … s — {PROOF_WHAT}")
        self.prove_estimate.setAccessibleName("how long the proof takes")
        self.prove_box.toggled.connect(self.prove_estimate.setEnabled)
        self._size: int | None = None  # the database's size, for the estimate
        self._estimating: Job | None = None
        self.skip_button = QPushButton("Continue &without a backup…")
        self.skip_button.setToolTip("Only when a backup exists elsewhere: needs the database "
                                    "name typed back and is written to the run journal")
        self.skip_button.clicked.connect(self.skip_backup)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addStretch(1)
        buttons.addWidget(self.skip_button)
        proof_choice = QHBoxLayout()
        proof_choice.addWidget(self.prove_box, 0, Qt.AlignmentFlag.AlignTop)
        proof_choice.addWidget(self.prove_estimate, 1)

        self.status = _value("No backup in this run yet.")
        self.path, self.size_value, self.sha256 = _value(), _value(), _value()
        self.sha256.setWordWrap(False)
        self.verdict = _value()
        self.proof_value = _value()  # the verdict, in colour
        self.proof_detail = _value("")  # what it rests on, timings, the scratch copy
        self.proof_detail.hide()
        self.path.setAccessibleName("backup path")
        self.sha256.setAccessibleName("backup sha256")
        self.verdict.setAccessibleName("backup verification")
        self.proof_value.setAccessibleName("proof of the backup")
        self.proof_detail.setAccessibleName("details of the proof")
        self.prove_button = QPushButton("Prove &this backup now")
        self.prove_button.setToolTip("Prove the verified backup shown above (restore it into "
                                     "a scratch database, compare, rehearse, drop it)")
        self.prove_button.clicked.connect(self.start_proof)
        proof_text = QVBoxLayout()
        proof_text.setSpacing(2)
        proof_text.addWidget(self.proof_value)
        proof_text.addWidget(self.proof_detail)
        proof_row = QHBoxLayout()
        proof_row.addLayout(proof_text, 1)
        proof_row.addWidget(self.prove_button, 0, Qt.AlignmentFlag.AlignTop)
        result_form = QFormLayout()
        result_form.addRow("Path:", self.path)
        result_form.addRow("Size:", self.size_value)
        result_form.addRow("SHA-256:", self.sha256)
        result_form.addRow("Verification:", self.verdict)
        result_form.addRow("Proof:", proof_row)
        result_box = QGroupBox("Result")
        result_box.setLayout(result_form)

        self.body.addLayout(form)
        self.body.addLayout(proof_choice)
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
        self.proof = None
        self.prove_box.setChecked(True)
        self._size = None
        self._show(None)
        self._update_valid()
        self.refresh_estimate()

    def _format_changed(self, fmt: str) -> None:
        self.jobs.setEnabled(fmt == "directory")

    def _busy(self, busy: bool) -> None:
        for widget in (self.run_button, self.skip_button, self.folder, self.format,
                       self.compression, self.prove_box):
            widget.setEnabled(not busy)
        self.jobs.setEnabled(not busy and self.format.currentText() == "directory")
        self.prove_button.setEnabled(not busy and self.verified is not None)

    # -- the proof's estimate ---------------------------------------------------------------

    def refresh_estimate(self) -> None:
        """Estimate the proof from the database's size (the pre-flight's, else read once)
        and the proofs measured here, on a worker: the page never waits for the server."""
        preflight = self.session.results.get("preflight")
        if self._size is None and isinstance(preflight, Preflight):
            self._size = preflight.database_bytes
        if self._estimating is not None and self._estimating.is_running():
            return
        job = Job.of(estimate, self.session.pg, self._size, name="proof estimate", parent=self)
        job.finished.connect(self._show_estimate)
        job.failed.connect(lambda message, _tb: self.prove_estimate.setText(
            f"{PROOF_WHAT} (no estimate: {message})"))
        job.done.connect(lambda _kind: self._estimated(job))
        self._estimating = job
        job.start()

    def _estimated(self, job: Job) -> None:
        if self._estimating is job:
            self._estimating = None
        job.deleteLater()

    def _show_estimate(self, value: tuple[float, str, int]) -> None:
        seconds, basis, self._size = value
        self.prove_estimate.setText(f"about {_seconds(seconds)} — {PROOF_WHAT}")
        self.prove_estimate.setToolTip(f"{basis}; the database is {format_bytes(self._size)}")

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
        with_proof = self.prove_box.isChecked()
        self.status.setText("Backing up, then proving the backup…" if with_proof
                            else "Backing up…")
        job = self.run_job("Backup and proof" if with_proof else "Backup", backup_and_prove,
                           self.session.pg, self.options(), with_proof,
                           journal=self.session.ensure_journal(), on_done=self.show_backed_up,
                           on_failed=self._failed, advice=ADVICE)
        job.cancelled.connect(self._cancelled)

    def show_backed_up(self, done: BackedUp) -> None:
        self.show_result(done.backup)
        if done.refused is not None:
            self._proof_refused(done.refused, show=True)
        elif done.proof is not None:
            self.show_proof(done.proof)

    def show_result(self, result: BackupResult) -> None:
        self.result = result
        if result.verified:
            self.verified = result
            self.proof = None
            self.session.results["backup"] = result
        else:
            self.show_error(result.error or "the backup was not verified", STEP, ADVICE)
        self._show(result)
        self._update_valid()

    # -- the proof --------------------------------------------------------------------------

    def start_proof(self) -> None:
        """Prove the newest verified backup of this run (e.g. when the box was off)."""
        verified = self.verified
        if self.busy or verified is None:
            return
        self.status.setText(f"Proving {verified.path}…")
        self.proof_value.setText("proving…")
        _tone(self.proof_value, None)
        self.proof_detail.hide()
        self.run_job(PROOF_STEP, prove.prove, self.session.pg, verified.path,
                     proof_options(verified), journal=self.session.ensure_journal(),
                     on_done=self.show_proof, on_failed=self._proof_refused,
                     advice=PROOF_REFUSED_ADVICE)

    def show_proof(self, proof: prove.ProofResult) -> None:
        self.proof = proof
        self.session.results["backup_proof"] = proof
        self._show_proof(proof)
        verified = self.verified
        what = f"{verified.dbname} ({verified.format})" if verified else proof.path
        if proof.proven:
            self.status.setText(f"✔ Verified and PROVEN backup of {what}: it restores into "
                                f"exactly what pg_dump saw. Next is enabled.")
        elif "cancelled" in (proof.reason or ""):
            self.status.setText(f"✔ Verified backup of {what}; its proof was cancelled (the "
                                f"scratch copy was dropped). Next is enabled; the migration "
                                f"shows the rollback point as not proven.")
        else:
            self.status.setText(f"! Verified backup of {what}, but NOT PROVEN: restoring it "
                                f"would not give back this database exactly. See the reason "
                                f"below.")
            self.show_error(f"the backup is NOT proven: {proof.reason}", PROOF_STEP,
                            NOT_PROVEN_ADVICE, title="The backup's proof failed")
        self.refresh_estimate()  # the proof just measured is the next estimate's basis

    def _proof_refused(self, message: str, show: bool = False) -> None:
        self.proof_value.setText(f"✘ not proven: the proof could not start — {message}")
        _tone(self.proof_value, False)
        self.proof_detail.hide()
        self.status.setText("✔ The backup is verified and stands; its proof could not "
                            "start (see the error below).")
        if show:  # a job that raised ProofRefused has shown it already
            self.show_error(message, PROOF_STEP, PROOF_REFUSED_ADVICE,
                            title="The proof could not start")

    def _show_proof(self, proof: prove.ProofResult | None) -> None:
        label = self.proof_value
        if proof is None:
            label.setText("not proven (Prove this backup now, or tick Prove this backup "
                          "before backing up)" if self.verified is not None else "—")
            _tone(label, None)
            self.proof_detail.hide()
            return
        label.setText(proof_headline(proof))
        _tone(label, proof.proven)
        self.proof_detail.setText("\n".join(proof_details(proof)))
        self.proof_detail.show()

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
        self.prove_button.setEnabled(not self.busy and self.verified is not None)
        self._show_proof(self.proof)
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
