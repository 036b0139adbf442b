"""Start the desktop wizard: the application object, the error hook, the window."""

from __future__ import annotations

import contextlib
import os
import sys

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from wizard.core.files import FolderNotPrivate, private_folder
from wizard.core.journal import runs_root
from wizard.core.pgenv import sweep_passfiles
from wizard.core.resources import resource_path
from wizard.ui import require_sound_binding
from wizard.ui.error_panel import ErrorHook
from wizard.ui.startup_probe import arm as arm_startup_probe
from wizard.ui.window import MigrationWizard


def has_display() -> bool:
    """False on a headless host, where Qt would abort instead of saying why."""
    if os.environ.get("QT_QPA_PLATFORM") or sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def build(profile: str | None = None) -> tuple[QApplication, MigrationWizard, ErrorHook]:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    require_sound_binding()
    app.setApplicationName("enerlink-migrate")
    app.setOrganizationName("enerlink-migrate")
    app.setWindowIcon(QIcon(str(resource_path("resources", "icons", "enerlink-migrate.svg"))))
    window = MigrationWizard()
    hook = ErrorHook(runs_root() / "wizard-errors.log", window)
    sys.excepthook = hook
    if profile:
        window.steps[0].refresh_list(select=profile)  # type: ignore[attr-defined]
    return app, window, hook


def run_gui(profile: str | None = None) -> int:
    if not has_display():
        print("enerlink-migrate: no display (DISPLAY/WAYLAND_DISPLAY unset). Run the steps "
              "headless instead: enerlink-migrate --help", file=sys.stderr)
        return 2
    try:
        private_folder(runs_root())  # journals hold the target's names and the run's log
    except FolderNotPrivate as exc:
        print(f"enerlink-migrate: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(OSError):  # a password file a killed run left behind goes now
        sweep_passfiles()
    app, window, hook = build(profile)
    arm_startup_probe(window)
    window.show()
    try:
        return int(app.exec())
    finally:
        sys.excepthook = hook.previous
