"""The desktop wizard: thin Qt views over the engine's jobs (the only package that imports Qt)."""

from __future__ import annotations

import ctypes
import functools
import sys

PROBE_EMITS = 8


@functools.cache
def signal_emit_is_sound() -> bool:
    """False when Signal.emit() drops a reference to True (PySide6 6.12.0 on Python < 3.12).

    Such a binding aborts the process ("bool_dealloc: deallocating True") after a few
    hundred emitted signals. On Python 3.12+ True is immortal and the probe always passes.
    """
    from PySide6.QtCore import QObject, Signal

    class Probe(QObject):
        ping = Signal()

    probe = Probe()
    before = sys.getrefcount(True)
    for _ in range(PROBE_EMITS):
        probe.ping.emit()
    lost = before - sys.getrefcount(True)
    if lost > 0 and sys.version_info < (3, 12):
        # Give back what the probe took, or the interpreter aborts on exit.
        for _ in range(lost):
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(True))
    # Other threads may take or drop a few references meanwhile; a leak loses one per emit.
    return lost < PROBE_EMITS * 3 // 4


def require_sound_binding() -> None:
    """Refuse to start the GUI on a Qt binding known to crash it, saying what to install."""
    if signal_emit_is_sound():
        return
    from PySide6 import __version__ as pyside

    raise RuntimeError(
        f"PySide6 {pyside} on Python {sys.version.split()[0]} loses a reference to True on "
        f"every Signal.emit(): the wizard would abort after a few hundred signals. Install a "
        f"different PySide6-Essentials (pip install 'PySide6-Essentials!=6.12.0'; 6.11.3 is "
        f"known good) or use Python 3.12 or later. The command line (enerlink-migrate "
        f"COMMAND) is not affected.")
