"""The application's stop/start commands: output in the log, failures and time limits named.

Stand-ins: PM2 and systemd are not on a test machine, so the commands are small Python
programs run the same way (no shell, the environment without secrets).
"""

from __future__ import annotations

import shlex
import sys
import threading

import pytest

from wizard.core.appctl import run_app_command
from wizard.core.reporting import Report

PY = shlex.quote(sys.executable)


def _collect() -> tuple[list[str], Report]:
    lines: list[str] = []
    return lines, lambda _level, msg: lines.append(msg)


def test_output_goes_to_the_log_and_success_is_reported() -> None:
    lines, report = _collect()
    result = run_app_command("stop", f"{PY} -c \"print('[PM2] Stopping backend-p2p-energy')\"",
                             report=report)
    assert result.ok
    assert "  [PM2] Stopping backend-p2p-energy" in lines
    assert "the stop command succeeded" in result.detail


def test_no_secret_reaches_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "leak-me")
    lines, report = _collect()
    run_app_command("start", f"{PY} -c \"import os; print(os.environ.get('PGPASSWORD'))\"",
                    report=report)
    assert "  None" in lines


def test_failure_missing_program_and_time_limit_are_named() -> None:
    failed = run_app_command("stop", f"{PY} -c 'import sys; sys.exit(3)'")
    assert not failed.ok
    assert "exited with code 3" in failed.detail
    missing = run_app_command("stop", "pm2-that-is-not-installed stop backend")
    assert not missing.ok
    assert "pm2-that-is-not-installed" in missing.detail
    slow = run_app_command("start", f"{PY} -c 'import time; time.sleep(30)'", timeout_s=0.5)
    assert not slow.ok
    assert "did not finish within 0.5 s and was stopped" in slow.detail


def test_cancel_stops_the_command() -> None:
    cancel = threading.Event()
    lines: list[str] = []

    def report(_level: str, msg: str) -> None:
        lines.append(msg)
        if "ready" in msg:
            cancel.set()

    result = run_app_command(
        "start", f"{PY} -u -c \"import time; print('ready'); time.sleep(30)\"",
        report=report, cancel=cancel)
    assert not result.ok
    assert result.detail == "the start command was cancelled"


def test_unparseable_command_is_refused() -> None:
    result = run_app_command("stop", "pm2 stop 'unterminated")
    assert not result.ok
    assert "cannot parse the stop command" in result.detail
