"""PyInstaller runtime hook: a UTF-8 locale, and children get the library path the user had."""

import os
import sys

if sys.platform.startswith("linux"):
    # The bootloader points LD_LIBRARY_PATH at the bundle so the frozen Python finds its
    # libraries; the dynamic loader read it at start-up already, so undoing it here only
    # affects child processes (pg_dump, psql), which must load the system's libssl/libpq.
    _orig = os.environ.pop("LD_LIBRARY_PATH_ORIG", None)
    if _orig is not None:
        os.environ["LD_LIBRARY_PATH"] = _orig
    else:
        os.environ.pop("LD_LIBRARY_PATH", None)
    # What `python` does itself (PEP 538) and a frozen app does not: under the C locale
    # (env -i, cron, a bare ssh) use C.UTF-8, or Qt warns and non-ASCII names break.
    if not os.environ.get("LC_ALL") and (os.environ.get("LC_CTYPE") or os.environ.get(
            "LANG") or "C") in ("C", "POSIX"):
        os.environ["LC_CTYPE"] = "C.UTF-8"
