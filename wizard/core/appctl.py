"""The optional stop/start commands for the application (the guide's PM2/systemd step)."""

from __future__ import annotations

import os
import shlex
import threading
import time
from dataclasses import dataclass

from wizard.core.pgenv import child_environ
from wizard.core.procs import Outcome, ProgramNotFound, run_program
from wizard.core.reporting import Report, no_report


@dataclass
class AppCommandResult:
    what: str  # "stop" or "start"
    command: str
    ok: bool
    detail: str
    outcome: Outcome | None = None


def split_command(command: str) -> list[str]:
    """Split like a shell would; no shell runs it (write `sh -c '...'` for pipes)."""
    argv = shlex.split(command, posix=os.name != "nt")
    if not argv:
        raise ValueError("the command is empty")
    return argv


def run_app_command(what: str, command: str, *, report: Report = no_report,
                    cancel: threading.Event | None = None,
                    timeout_s: float = 120.0) -> AppCommandResult:
    """Run the profile's stop or start command with its output in the log."""
    try:
        argv = split_command(command)
    except ValueError as exc:
        return AppCommandResult(what, command, False, f"cannot parse the {what} command: {exc}")
    report("info", f"{what} the application: {command}")
    stop = threading.Event()  # the runner's cancel: set by the operator or by the clock
    deadline = time.monotonic() + timeout_s
    timed_out = False

    def on_tick() -> None:
        nonlocal timed_out
        if cancel is not None and cancel.is_set():
            stop.set()
        elif time.monotonic() > deadline:
            timed_out = True
            stop.set()

    try:
        outcome = run_program(argv, env=child_environ(),
                              on_line=lambda _stream, line: report("info", f"  {line}"),
                              cancel=stop, on_tick=on_tick)
    except ProgramNotFound as exc:
        return AppCommandResult(what, command, False,
                                f"{exc}; fix the {what} command in the profile")
    if outcome.ok:
        detail = f"the {what} command succeeded in {outcome.duration_s:.1f} s"
    elif outcome.cancelled and timed_out:
        detail = f"the {what} command did not finish within {timeout_s:g} s and was stopped"
    elif outcome.cancelled:
        detail = f"the {what} command was cancelled"
    else:
        detail = f"the {what} command failed: {outcome.describe()}"
    report("info" if outcome.ok else "error", detail)
    return AppCommandResult(what, command, outcome.ok, detail, outcome)
