"""`make screenshots`: walk the wizard over a fresh sandbox, offscreen, and save each page.

The README shows these PNGs. Everything is real: a sandbox PostgreSQL + Redis with sample
data, the actual jobs on worker threads. Confirmation dialogs are answered "yes" by the
script (it plays the DBA), which says so in the log it prints.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget, QWizard

from wizard.sandbox import demo
from wizard.sandbox.sandbox import Sandbox
from wizard.ui.app import build
from wizard.ui.dialogs import DEFAULT_SIZE
from wizard.ui.dialogs.restore import RestoreDialog
from wizard.ui.dialogs.runs import RunsDialog
from wizard.ui.pages import migrate
from wizard.ui.pages.base import StepPage

OUT = Path(__file__).resolve().parents[1] / "resources" / "screenshots"
SIZE = (1100, 780)


def wait(app: QApplication, done: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("the wizard did not finish its step in time")
        app.processEvents()
        time.sleep(0.02)
    for _ in range(20):  # let the log view paint its last batch
        app.processEvents()
        time.sleep(0.01)


def idle(page: StepPage) -> Callable[[], bool]:
    return lambda: not page.busy


def save(pixmap: QPixmap, name: str) -> Path:
    path = OUT / f"{name}.png"
    pixmap.save(str(path))
    print(f"  {path.relative_to(OUT.parents[1])}")
    return path


def shoot(app: QApplication, window: QWidget, name: str) -> Path:
    wait(app, lambda: True)
    return save(window.grab(), name)


def shoot_running(app: QApplication, window: QWizard, page: StepPage, name: str,
                  after: float = 1.5) -> Path:
    """Shoot the window while `page`'s job runs (the step rail mid-run): `after` seconds
    into the job, or its last frame before it ended if it was quicker."""
    start = time.monotonic()
    frame: QPixmap | None = None
    while page.busy and time.monotonic() - start < after:
        app.processEvents()
        time.sleep(0.02)
        if page.busy and time.monotonic() - start > 0.3:  # past the rail's coalescing
            frame = window.grab()
    if frame is None:
        raise RuntimeError(f"{type(page).__name__}'s job ended before it could be shot")
    return save(frame, name)


def shoot_run_question(app: QApplication, page: StepPage, name: str) -> Path:
    """Press Run migration after the rehearsal and shoot its question, answered No: the
    page's own words, in the question box it asks with; nothing is started."""
    shots: list[Path] = []

    def ask(parent: QWidget, title: str, text: str) -> bool:
        box = migrate.question_box(parent, title, text)
        box.open()
        shots.append(shoot(app, box, name))
        box.done(QMessageBox.StandardButton.No)
        return False
    migrate.ask = ask
    try:
        page.run_button.click()  # type: ignore[attr-defined]
    finally:
        migrate.ask = lambda *_a, **_k: True
    if not shots or page.busy:
        raise RuntimeError("Run migration did not ask first")
    return shots[0]


def shoot_restore(app: QApplication, window: QWizard, backup: Path) -> Path:
    """Restore a backup…: the dialog once it has inspected this run's backup, before the
    name is typed; closed without restoring."""
    window.open_restore()  # type: ignore[attr-defined]
    dialog = window.findChild(RestoreDialog)
    if dialog is None:
        raise RuntimeError("Restore a backup… did not open its dialog")
    # The size it opens at on a desk's screen (offscreen, the screen is 800 by 600).
    dialog.resize(*DEFAULT_SIZE)
    dialog.path.setText(str(backup))
    dialog.inspect_button.click()
    wait(app, lambda: not dialog.busy)
    if dialog.plan is None:
        raise RuntimeError("the restore dialog could not inspect the backup")
    path = shoot(app, dialog, "7-restore")
    dialog.reject()
    wait(app, lambda: not dialog.isVisible())
    return path


def shoot_runs(app: QApplication, window: QWizard) -> Path:
    """Open a previous run…: the sandbox's runs, the wizard's own selected (the restore's is
    newer), its checklist shown; closed."""
    window.open_previous_run()  # type: ignore[attr-defined]
    dialog = window.findChild(RunsDialog)
    if dialog is None:
        raise RuntimeError("Open a previous run… did not open its dialog")
    dialog.resize(*DEFAULT_SIZE)
    row = next((i for i, run in enumerate(dialog.runs) if run.command == "wizard"), 0)
    dialog.table.setCurrentCell(row, 0)
    dialog.tabs.setCurrentWidget(dialog.checklist)
    path = shoot(app, dialog, "8-runs")
    dialog.reject()
    return path


def shoot_close_question(app: QApplication, window: QWizard) -> Path:
    """Close the window after the run's steps: its question, answered Stay."""
    window.close()
    question = window.question  # type: ignore[attr-defined]
    if question is None:
        raise RuntimeError("closing the wizard did not ask first")
    path = shoot(app, question, "8-close-question")
    question.escapeButton().click()
    wait(app, lambda: window.question is None)  # type: ignore[attr-defined]
    return path


def shoot_not_valid(app: QApplication, verify: StepPage, dbname: str) -> Path:
    """From the Verify page, restore the run's backup (taken before the orphans were
    deleted) up to its question about the foreign keys it brings back NOT VALID; shoot the
    question with the name typed, then Cancel: nothing is swapped."""
    verify.restore_from_backup()  # type: ignore[attr-defined]

    def asked() -> bool:
        ask = verify.not_valid_ask  # type: ignore[attr-defined]
        return ask is not None and (ask.dialog is not None or not verify.busy)
    wait(app, asked)
    dialog = verify.not_valid_ask.dialog  # type: ignore[attr-defined]
    if dialog is None:
        raise RuntimeError("the restore did not ask about foreign keys NOT VALID")
    dialog.entry.setText(dbname)
    wait(app, lambda: True)
    path = OUT / "7-restore-not-valid.png"
    dialog.grab().save(str(path))
    print(f"  {path.relative_to(OUT.parents[1])}")
    dialog.reject()
    wait(app, idle(verify))
    return path


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    print("Starting a sandbox (PostgreSQL + Redis, 2,000 sample users, 3 orphan rows per "
          "column)...")
    box = Sandbox.start(users=2_000, orphans=3)
    try:
        demo.prepare(box)
        # The script plays the DBA: it answers the confirmations it is asked.
        QMessageBox.question = staticmethod(  # type: ignore[method-assign]
            lambda *_a, **_k: QMessageBox.StandardButton.Yes)
        app, window, _hook = build(demo.PROFILE)
        for module in [m for name, m in sys.modules.items() if name.startswith("wizard.ui")]:
            if hasattr(module, "confirm_typed"):
                module.confirm_typed = lambda *_a, **_k: box.owner.dbname
        window.resize(*SIZE)
        window.show()
        pages: list[StepPage] = window.steps
        profile = pages[0]
        profile.test_pg_button.click()  # type: ignore[attr-defined]
        wait(app, idle(profile))
        profile.test_redis_button.click()  # type: ignore[attr-defined]
        wait(app, idle(profile))
        shoot(app, window, "1-connect")
        for n, page in enumerate(pages[1:], start=2):
            window.next()
            wait(app, idle(page))
            action = {"BackupPage": "start_backup", "CachePage": "start_dry_run"}.get(
                type(page).__name__)
            if action:
                getattr(page, action)()
                if action == "start_backup":
                    shoot_running(app, window, page, f"{n}-backup-running")
                wait(app, idle(page))
            if type(page).__name__ == "OrphansPage":
                page.table.selectRow(0)  # type: ignore[attr-defined]
                shoot(app, window, f"{n}-orphans-found")
                page.export_rows()  # type: ignore[attr-defined]
                wait(app, idle(page))
                page.delete_rows()  # type: ignore[attr-defined]
                wait(app, idle(page))
            if type(page).__name__ == "MigratePage":
                page.start_run(rehearse=True)  # type: ignore[attr-defined]
                wait(app, idle(page))
                shoot_run_question(app, page, f"{n}-run-confirmation")
                page.start_run(rehearse=False)  # type: ignore[attr-defined]
                wait(app, idle(page))
            if type(page).__name__ == "CachePage":
                shoot(app, window, f"{n}-{page.title().lower().replace(' ', '-')}-counted")
                page.start_migration()  # type: ignore[attr-defined]
                wait(app, idle(page))
            shoot(app, window, f"{n}-{page.title().lower().replace(' ', '-')}")
        shoot_close_question(app, window)
        shoot_not_valid(app, pages[-1], box.owner.dbname)
        backup = pages[-1].backup_of_this_run()  # type: ignore[attr-defined]
        shoot_restore(app, window, backup)
        shoot_runs(app, window)
    finally:
        box.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
