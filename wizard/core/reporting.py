"""How long-running jobs talk back: log lines, a progress fraction, cancellation."""

from __future__ import annotations

import threading
from collections.abc import Callable

Report = Callable[[str, str], None]  # (level, message); levels: info, step, warn, error
Progress = Callable[[float, str], None]  # (fraction 0..1, short detail such as "ETA 12 s")


class Cancelled(RuntimeError):
    """The operator cancelled a running job; what it changed has been undone."""


def no_report(_level: str, _message: str) -> None:
    """A Report that drops everything."""


def no_progress(_fraction: float, _detail: str) -> None:
    """A Progress that drops everything."""


def check_cancel(cancel: threading.Event | None, what: str) -> None:
    """Raise Cancelled when the operator asked to stop."""
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"{what} cancelled by the operator")
