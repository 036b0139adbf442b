"""Page 4: rows whose prosumer is gone; export them as CSV, then delete them (typed)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from wizard.core import jobs
from wizard.core.discovery import Discovery
from wizard.core.orphans import (
    ExportedCsv,
    OrphanColumn,
    OrphanScan,
    backup_still_holds,
    blocking_orphans,
    delete,
)
from wizard.core.orphans import export as export_csv
from wizard.core.orphans import scan as scan_orphans
from wizard.core.plan import UP, PlanRefused
from wizard.core.session import WizardSession
from wizard.ui.confirm import confirm_typed
from wizard.ui.pages.base import StepPage

STEP = "Orphans"
COLUMNS = ("table", "column", "foreign key", "orphan rows", "migration")
FIX = ("Export CSV… keeps a copy of the rows; Delete orphans… then removes exactly those "
       "rows (database name typed back). Or repair them in the application; then Re-scan.")


def _item(text: str, *, number: bool = False) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    if number:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


class OrphansPage(StepPage):
    """Valid when no orphan sits in a column whose foreign key the migration adds or validates."""

    assessed = Signal()  # a scan and the plan it was judged against are shown

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(STEP, "Rows that name a prosumer who does not exist. Where the "
                         "migration adds a missing foreign key, they would make it fail: "
                         "export them, then delete them.", parent)
        self.scan: OrphanScan | None = None
        self.blocking: list[str] | None = None  # None: not judged yet
        self.exported: list[ExportedCsv] = []  # of self.scan, nothing else
        self.plan_pending = False  # a scan is shown; the job reading the plan comes next
        self.backup_note: str | None = None  # the backup that still holds the rows deleted
        self._for_session: WizardSession | None = None

        self.summary = QLabel("not scanned yet")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        self.rescan_button = QPushButton("&Re-scan")
        self.rescan_button.clicked.connect(self.run_scan)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.rescan_button)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAccessibleName("orphan rows per referencing column")
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        for n in range(len(COLUMNS) - 1):
            header.setSectionResizeMode(n, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self.show_samples)
        self.samples_title = QLabel("Sa&mples of the selected column:")
        self.samples = QTableWidget(0, 0)
        self.samples.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.samples.setAccessibleName("sample orphan rows of the selected column")
        self.samples.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.samples_title.setBuddy(self.samples)
        samples_box = QWidget()
        samples_layout = QVBoxLayout(samples_box)
        samples_layout.setContentsMargins(0, 0, 0, 0)
        samples_layout.addWidget(self.samples_title)
        samples_layout.addWidget(self.samples, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.table)
        split.addWidget(samples_box)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setChildrenCollapsible(False)
        split.setSizes([700, 380])  # the counts table whole at 1100 px; samples scroll

        self.folder = QLineEdit()
        self.folder.setAccessibleName("export folder")
        self.folder.setToolTip("CSV files are 0600; the folder must be private (0700)")
        folder_label = QLabel("E&xport folder:")
        folder_label.setBuddy(self.folder)
        choose = QPushButton("Ch&oose…")
        choose.clicked.connect(self.choose_folder)
        self.export_button = QPushButton("&Export CSV…")
        self.export_button.setToolTip("One CSV per table with every orphan row, all columns")
        self.export_button.clicked.connect(self.export_rows)
        self.delete_button = QPushButton("&Delete orphans…")
        self.delete_button.setToolTip("Enabled after an export of the current scan; deletes "
                                      "exactly the exported rows in one transaction")
        self.delete_button.clicked.connect(self.delete_rows)
        actions = QHBoxLayout()
        actions.addWidget(folder_label)
        actions.addWidget(self.folder, 1)
        actions.addWidget(choose)
        actions.addWidget(self.export_button)
        actions.addWidget(self.delete_button)
        self.exports_note = QLabel()
        self.exports_note.setWordWrap(True)
        self.exports_note.setTextFormat(Qt.TextFormat.PlainText)
        self.exports_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.body.addLayout(top)
        self.body.addWidget(split, 1)
        self.body.addLayout(actions)
        self.body.addWidget(self.exports_note)
        self.busy_changed.connect(lambda _busy: self._update_buttons())
        self._update_buttons()

    # -- entering the page ------------------------------------------------------------------

    def initializePage(self) -> None:
        super().initializePage()
        session = self.session
        if session is not self._for_session:
            self._for_session = session
            self.folder.setText(str(session.backup_folder))
        self.run_scan()

    def choose_folder(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Export folder", self.folder.text())
        if chosen:
            self.folder.setText(chosen)

    # -- scan, then judge against the migration's plan -------------------------------------

    def run_scan(self) -> None:
        if self.busy:
            return
        self.set_valid(False)
        self.blocking = None
        self.plan_pending = False
        self.summary.setText("scanning…")
        self.run_job("Orphan scan", scan_orphans, self.session.pg,
                     journal=self.session.ensure_journal(), on_done=self._scanned,
                     advice="Check the connection and the pre-flight state, then Re-scan.")

    def _scanned(self, result: OrphanScan) -> None:
        self.show_scan(result)
        self._plan_next()

    def _plan_next(self) -> None:
        # The plan is read by a second job once this one has fully ended (its `done`).
        self.blocking = None
        self.plan_pending = True
        QTimer.singleShot(0, self._plan)

    @property
    def settled(self) -> bool:
        """Nothing runs and nothing is about to: the page shows its final verdict."""
        return not self.busy and not self.plan_pending

    def _plan(self) -> None:
        self.plan_pending = False
        if self.busy or self.scan is None or self.shell is None:
            return
        self.summary.setText(self._counts_text() + " — reading the migration plan…")
        self.run_job("Reading the migration plan", jobs.inspect, self.session.pg,
                     on_done=self._judge, advice="Check the connection, then Re-scan.")

    def _judge(self, d: Discovery) -> None:
        scan = self.scan
        if scan is None:
            return
        try:
            plan = jobs.make_plan(d, UP, self.session.pg)
        except PlanRefused as exc:
            # Without a plan nothing can say which columns matter: only a clean scan passes.
            self.blocking = [] if scan.clean else [f"{c.label}: {c.count} orphan rows"
                                                   for c in scan.columns if c.count]
            self.show_error(f"no migration plan for {scan.database}: {exc}", STEP,
                            "Resolve the plan's refusal (see the pre-flight page); " + FIX)
        else:
            self.blocking = blocking_orphans(scan, plan)
            if self.blocking:
                self.show_error("Orphan rows stop the migration:\n" + "\n".join(self.blocking),
                                STEP, FIX, title="This step needs action")
        self.session.results["orphans"] = scan
        self.session.results["orphans_blocking"] = list(self.blocking)
        self._fill_marks()
        self.summary.setText(self._verdict())
        self.set_valid(not self.blocking)
        self._update_buttons()
        self.assessed.emit()

    def show_scan(self, result: OrphanScan) -> None:
        if result is not self.scan:
            self.exported = []  # an export belongs to the scan it was made from
        self.scan = result
        self.table.setRowCount(len(result.columns))
        for i, c in enumerate(result.columns):
            fk = c.fk_name or "(none: the migration adds one)"
            if c.fk_name and c.fk_validated is False:
                fk += " NOT VALID"
            values = (c.table if c.schema == "public" else f"{c.schema}.{c.table}", c.column,
                      fk)
            for j, value in enumerate(values):
                self.table.setItem(i, j, _item(value))
            self.table.setItem(i, 3, _item(f"{c.count:,}", number=True))
            self.table.setItem(i, 4, _item(""))
        self.summary.setText(self._counts_text())
        dirty = next((i for i, c in enumerate(result.columns) if c.count), None)
        self.table.clearSelection()
        if dirty is not None:
            self.table.selectRow(dirty)
        self.show_samples()
        self._update_buttons()

    def _fill_marks(self) -> None:
        if self.scan is None:
            return
        for i, c in enumerate(self.scan.columns):
            blocks = next((m for m in self.blocking or [] if m.startswith(f"{c.label}:")),
                          None)
            text, tip = (("✘ blocks", blocks) if blocks else
                         ("! does not block", "its foreign key exists and is not validated "
                          "again by the migration") if c.count else ("✔ clean", ""))
            item = _item(text)
            item.setToolTip(tip)
            self.table.setItem(i, 4, item)

    def _counts_text(self) -> str:
        s = self.scan
        if s is None:
            return "not scanned yet"
        what = "no orphan rows" if s.clean else \
            f"{s.total:,} orphan rows in {sum(1 for c in s.columns if c.count)} column(s)"
        extra = f"; not in this database: {', '.join(s.missing)}" if s.missing else ""
        return (f"{s.database} ({s.parent}.{s.parent_key}, state {s.state}): "
                f"{len(s.columns)} columns scanned in {s.duration_s:.2f} s, {what}{extra}")

    def _verdict(self) -> str:
        text = self._counts_text()
        if self.scan is None or self.blocking is None:
            return text
        if self.blocking:
            return f"{text}. ✘ {len(self.blocking)} column(s) stop the migration."
        if self.scan.clean:
            return f"{text}. ✔ Nothing stops the migration."
        return (f"{text}. ! They do not stop the migration (their foreign keys exist and "
                f"are not validated again), but the application may trip over them; "
                f"export and delete them if they are not wanted.")

    def selected_column(self) -> OrphanColumn | None:
        rows = self.table.selectionModel().selectedRows()
        if self.scan is None or not rows:
            return None
        return self.scan.columns[rows[0].row()]

    def show_samples(self) -> None:
        column = self.selected_column()
        samples = column.samples if column else []
        keys = list(dict.fromkeys(k for row in samples for k in row))
        self.samples.clear()
        self.samples.setColumnCount(len(keys))
        self.samples.setHorizontalHeaderLabels(keys)
        self.samples.setRowCount(len(samples))
        for i, row in enumerate(samples):
            for j, key in enumerate(keys):
                value = row.get(key)
                self.samples.setItem(i, j, _item("NULL" if value is None else str(value)))
        self.samples.resizeColumnsToContents()
        header = self.samples.horizontalHeader()
        for j in range(len(keys)):
            header.resizeSection(j, min(header.sectionSize(j), 260))
        if column is None:
            self.samples_title.setText("Sa&mples of the selected column:")
        else:
            more = f" (first {len(samples)} of {column.count:,})" if column.count > len(
                samples) else ""
            self.samples_title.setText(f"Sa&mples of {column.label}{more}:")

    # -- export, then delete ----------------------------------------------------------------

    def _update_buttons(self) -> None:
        dirty = self.scan is not None and not self.scan.clean
        idle = not self.busy
        self.rescan_button.setEnabled(idle)
        self.export_button.setEnabled(idle and dirty)
        self.delete_button.setEnabled(idle and dirty and bool(self.exported))
        self.folder.setEnabled(idle)

    def export_rows(self) -> None:
        if self.busy or self.scan is None or self.scan.clean:
            return
        folder = Path(self.folder.text().strip() or str(self.session.backup_folder))
        self.run_job("Orphan export", export_csv, self.session.pg, self.scan,
                     folder.expanduser(), journal=self.session.ensure_journal(),
                     on_done=self._exported,
                     advice="Choose a private folder (mode 0700) with free space, then "
                            "Export CSV… again.")

    def _exported(self, files: list[ExportedCsv]) -> None:
        self.exported = files
        self.session.results["orphans_export"] = files
        self.exports_note.setText(
            "Exported: " + "; ".join(f"{f.path} ({f.rows:,} rows)" for f in files)
            + ". Delete orphans… now removes exactly these rows.")
        self._update_buttons()

    def delete_rows(self) -> None:
        scan = self.scan
        if self.busy or scan is None or not self.exported:
            return
        db = self.session.pg.dbname
        tables = ", ".join(f"{t}" for _s, t in scan.dirty_tables())
        self.backup_note = backup_still_holds(self.session.pg, scan)
        typed = confirm_typed(
            self, "Delete orphan rows",
            f"{scan.total:,} orphan rows in {tables} will be deleted from "
            f"{self.session.pg.describe()} in one transaction. Only the rows exported to the "
            f"CSV files are taken; if they changed since, nothing is deleted."
            + (f"\n\nNote: {self.backup_note}" if self.backup_note else ""), db,
            "Delete orphan rows")
        if typed is None:
            self.log.append("info", "orphan delete: not confirmed")
            return
        self.set_valid(False)
        self.run_job("Orphan delete", delete, self.session.pg, scan, list(self.exported),
                     typed, journal=self.session.ensure_journal(), on_done=self._deleted,
                     advice="Nothing was deleted: act on the message, then Re-scan, export "
                            "and delete again.", on_failed=lambda _m: self._judge_again())

    def _deleted(self, again: OrphanScan) -> None:
        self.exports_note.setText(
            "Deleted: " + (", ".join(f"{t}: {n:,} rows" for t, n in again.deleted.items())
                           or "nothing") + ". The scan below was made right after."
            + (f"\n⚠ {self.backup_note} Go Back to the Backup page for a fresh one."
               if self.backup_note else ""))
        self.show_scan(again)
        self._plan_next()

    def _judge_again(self) -> None:
        # A refused delete leaves the database as it was: the earlier verdict stands.
        self.set_valid(self.blocking is not None and not self.blocking)
