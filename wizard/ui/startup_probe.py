"""ENERLINK_MIGRATE_EXIT_AFTER_SHOW=1: print when the window first paints, then quit (bench)."""

from __future__ import annotations

import os
import time

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QWidget

ENV = "ENERLINK_MIGRATE_EXIT_AFTER_SHOW"
MARK = "enerlink-migrate: window painted"


class _FirstPaint(QObject):
    """Application-wide filter: the first paint of any widget of `window` is the moment."""

    def __init__(self, app: QApplication, window: QWidget) -> None:
        super().__init__(app)
        self._app, self._window = app, window
        self._armed_at = time.perf_counter()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if (event.type() == QEvent.Type.Paint and isinstance(obj, QWidget)
                and obj.window() is self._window):
            self._app.removeEventFilter(self)
            after = (time.perf_counter() - self._armed_at) * 1000
            # The bench times this line from outside (it includes unpacking a one-file
            # build); the figure after it is only from window creation to first paint.
            print(f"{MARK} ({after:.0f} ms after the window was built)", flush=True)
            QTimer.singleShot(0, self._app.quit)
        return False


def arm(window: QWidget) -> None:
    """Call before window.show(); does nothing unless ENERLINK_MIGRATE_EXIT_AFTER_SHOW is set."""
    if not os.environ.get(ENV):
        return
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    app.installEventFilter(_FirstPaint(app, window))
