"""`enerlink-migrate --self-test`: prove an installation (or a frozen build) is complete."""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import wizard
from wizard.core.resources import resource_root, shipped_files

Check = tuple[str, Callable[[], str]]


def _sql_files() -> str:
    from wizard.core.sqlfiles import queries, sections
    root = resource_root() / "sql"
    files = [p for p in shipped_files("sql") if p.suffix == ".sql"]
    if not files:
        raise RuntimeError(f"no SQL files under {root}")
    for path in files:
        rel = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8")
        if "-- name:" in text:
            queries(rel)
        elif "-- @section" in text:
            sections(rel)
    return f"{len(files)} SQL files under {root}"


def _resources() -> str:
    root = resource_root() / "resources"
    files = shipped_files("resources")
    if not files:
        raise RuntimeError(f"no files under {root}")
    for path in files:
        path.read_bytes()
    return f"{len(files)} resource files under {root}"


def _modules() -> str:
    # Not the sandbox (a developer's tool, not shipped) nor __main__ (it would run).
    names = [m.name for m in pkgutil.walk_packages(wizard.__path__, "wizard.")
             if not m.name.startswith("wizard.sandbox") and not m.name.endswith("__main__")]
    for name in names:
        importlib.import_module(name)
    return f"{len(names)} modules imported"


def _keyring() -> str:
    import keyring

    from wizard.core import secrets
    backends = [type(b).__name__ for b in keyring.backend.get_all_keyring()]
    status = secrets.backend_status()
    usable = "usable" if status.usable else "not usable (passwords asked every time)"
    return f"keyring backends: {', '.join(backends) or 'none'}; current {status.name}: {usable}"


def _qt_app() -> object:
    from PySide6.QtWidgets import QApplication
    return QApplication.instance() or QApplication(["enerlink-migrate"])


def _pdf() -> str:
    from wizard.ui.pdf import html_to_pdf
    _qt_app()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "self-test.pdf"
        pages = html_to_pdf("<h1>enerlink-migrate self-test</h1><p>One page.</p>", path,
                            title="self-test")
        size = path.stat().st_size
    if pages < 1 or size == 0:
        raise RuntimeError("the PDF came out empty")
    return f"one-page PDF rendered ({size:,} bytes)"


def _window() -> str:
    from PySide6.QtWidgets import QApplication

    from wizard.ui import require_sound_binding
    from wizard.ui.window import MigrationWizard
    app = _qt_app()
    assert isinstance(app, QApplication)
    require_sound_binding()
    started = time.perf_counter()
    window = MigrationWizard()
    window.show()
    app.processEvents()
    shown = (time.perf_counter() - started) * 1000
    title = window.windowTitle()
    window.close()
    window.deleteLater()
    app.processEvents()
    return f"window {title!r} opened and closed offscreen ({shown:.0f} ms)"


CHECKS: list[Check] = [("SQL files", _sql_files), ("resources", _resources),
                       ("modules", _modules), ("keyring", _keyring), ("PDF", _pdf),
                       ("window", _window)]


def run_self_test() -> int:
    """Each check prints one line; the exit code is the number of failed checks (0 = ok)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with tempfile.TemporaryDirectory() as tmp:
        # The test window must not read or write the user's profiles or runs.
        os.environ.setdefault("ENERLINK_MIGRATE_CONFIG", str(Path(tmp) / "config"))
        os.environ.setdefault("ENERLINK_MIGRATE_RUNS", str(Path(tmp) / "runs"))
        failed = 0
        checkout = (resource_root().parent / "pyproject.toml").is_file()
        frozen = ("frozen" if getattr(sys, "frozen", False)
                  else "from a checkout" if checkout else "installed")
        print(f"enerlink-migrate {wizard.__version__} self-test ({frozen}, Python "
              f"{sys.version.split()[0]}, {sys.platform})")
        for name, check in CHECKS:
            try:
                print(f"  ok    {name}: {check()}", flush=True)
            except Exception as exc:  # every failure is reported, then the next check runs
                failed += 1
                print(f"  FAIL  {name}: {type(exc).__name__}: {exc}", flush=True)
        print("self-test passed" if not failed else f"self-test FAILED: {failed} check(s)")
    return 1 if failed else 0
