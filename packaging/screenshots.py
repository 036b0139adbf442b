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

from PySide6.QtWidgets import QApplication, QMessageBox, QWizard

from wizard.sandbox import demo
from wizard.sandbox.sandbox import Sandbox
from wizard.ui.app import build
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


def shoot(app: QApplication, window: QWizard, name: str) -> Path:
    wait(app, lambda: True)
    path = OUT / f"{name}.png"
    window.grab().save(str(path))
    print(f"  {path.relative_to(OUT.parents[1])}")
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
                wait(app, idle(page))
            if type(page).__name__ == "OrphansPage":
                page.table.selectRow(0)  # type: ignore[attr-defined]
                shoot(app, window, f"{n}-orphans-found")
                page.export_rows()  # type: ignore[attr-defined]
                wait(app, idle(page))
                page.delete_rows()  # type: ignore[attr-defined]
                wait(app, idle(page))
            if type(page).__name__ == "MigratePage":
                page.start_run(rehearse=False)  # type: ignore[attr-defined]
                wait(app, idle(page))
            if type(page).__name__ == "CachePage":
                shoot(app, window, f"{n}-{page.title().lower().replace(' ', '-')}-counted")
                page.start_migration()  # type: ignore[attr-defined]
                wait(app, idle(page))
            shoot(app, window, f"{n}-{page.title().lower().replace(' ', '-')}")
        shoot_not_valid(app, pages[-1], box.owner.dbname)
        window.close()
    finally:
        box.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
