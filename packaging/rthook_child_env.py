"""PyInstaller runtime hook: children (pg_dump, psql...) get the library path the user had."""

import os
import sys

# The bootloader points LD_LIBRARY_PATH at the bundle so the frozen Python finds its
# libraries; the dynamic loader read it at start-up already, so undoing it here only
# affects child processes, which must load the system's libssl/libpq, not ours.
if sys.platform.startswith("linux") or sys.platform.startswith("freebsd"):
    _orig = os.environ.pop("LD_LIBRARY_PATH_ORIG", None)
    if _orig is not None:
        os.environ["LD_LIBRARY_PATH"] = _orig
    else:
        os.environ.pop("LD_LIBRARY_PATH", None)
