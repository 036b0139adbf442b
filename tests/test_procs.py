"""The program runner's edge cases.

These use stand-in programs (`sys.executable -c ...`): huge output, a crash mid-output, a
process group with a child that must die on cancel, a program that ignores SIGTERM. Real
pg_dump / pg_restore runs through the same runner in tests/test_backup.py.
"""

from __future__ import annotations

import os
import select
import sys
import threading
from pathlib import Path

import pytest

from wizard.core.procs import Outcome, ProgramNotFound, run_program


def _py(code: str) -> list[str]:
    return [sys.executable, "-u", "-c", code]


class Lines:
    def __init__(self) -> None:
        self.got: list[tuple[str, str]] = []

    def __call__(self, stream: str, line: str) -> None:
        self.got.append((stream, line))

    def of(self, stream: str) -> list[str]:
        return [line for s, line in self.got if s == stream]


def _exits(pid: int, timeout: float = 10.0) -> bool:
    """Whether `pid` (not our child) has ended, waiting on a pidfd: the pipe closes a moment
    before the kernel marks the process dead, so /proc alone would race."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
        return bool(readable)
    finally:
        os.close(fd)


def test_huge_output_on_both_streams_does_not_deadlock() -> None:
    code = ("import sys\n"
            "for i in range(200000):\n"
            "    sys.stdout.write(f'out {i}\\n')\n"
            "    if i % 4 == 0: sys.stderr.write(f'err {i}\\n')\n")
    lines = Lines()
    outcome = run_program(_py(code), env=os.environ, on_line=lines)
    assert outcome.ok, outcome
    out, err = lines.of("stdout"), lines.of("stderr")
    assert len(out) == 200000
    assert out[0] == "out 0"
    assert out[-1] == "out 199999"
    assert len(err) == 50000
    assert err[-1] == "err 199996"
    assert outcome.stderr_tail[-1] == "err 199996"
    assert len(outcome.stderr_tail) == 50


def test_crash_mid_output_is_reported_as_signalled() -> None:
    code = ("import os, signal\n"
            "for i in range(1000): print(f'line {i}')\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    lines = Lines()
    outcome = run_program(_py(code), env=os.environ, on_line=lines)
    assert not outcome.ok
    assert outcome.signalled
    assert outcome.returncode == -9
    assert not outcome.cancelled
    assert len(lines.of("stdout")) == 1000
    assert "killed by SIGKILL" in outcome.describe()


def test_non_zero_exit_keeps_the_stderr_tail() -> None:
    code = "import sys\nprint('working')\nsys.stderr.write('pg_dump: error: no such table\\n')\n" \
           "sys.exit(3)"
    outcome = run_program(_py(code), env=os.environ, on_line=Lines())
    assert not outcome.ok
    assert not outcome.signalled
    assert outcome.returncode == 3
    assert outcome.stderr_tail == ["pg_dump: error: no such table"]
    assert outcome.describe().endswith("exited with code 3")
    assert outcome.to_dict()["ok"] is False


def test_cancel_kills_the_whole_process_group() -> None:
    """The stand-in starts a grandchild that shares its stdout; both must die on cancel.

    run_program can only return once every holder of the pipe has closed it, so its return
    alone proves the grandchild got the signal; its pidfd confirms it ended.
    """
    code = ("import subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
            "print(f'child {child.pid}', flush=True)\n"
            "time.sleep(600)\n")
    cancel = threading.Event()
    pids: list[int] = []

    def on_line(stream: str, line: str) -> None:
        if line.startswith("child "):
            pids.append(int(line.split()[1]))
            cancel.set()

    outcome = run_program(_py(code), env=os.environ, on_line=on_line, cancel=cancel)
    assert outcome.cancelled
    assert not outcome.ok
    assert outcome.returncode == -15
    assert pids
    assert _exits(pids[0])
    assert outcome.describe().endswith("was cancelled")


def test_cancel_escalates_to_sigkill_when_sigterm_is_ignored() -> None:
    code = ("import signal, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\n"
            "time.sleep(600)\n")
    cancel = threading.Event()

    def on_line(_stream: str, line: str) -> None:
        if line == "ready":
            cancel.set()

    outcome = run_program(_py(code), env=os.environ, on_line=on_line, cancel=cancel,
                          grace_s=0.2)
    assert outcome.cancelled
    assert outcome.returncode == -9


def test_cancel_before_start_still_runs_cleanly() -> None:
    cancel = threading.Event()
    cancel.set()
    outcome = run_program(_py("import time; time.sleep(600)"), env=os.environ,
                          on_line=Lines(), cancel=cancel)
    assert outcome.cancelled


def test_a_child_left_behind_holding_the_pipe_is_cleaned_up() -> None:
    """The program exits at once but leaves a grandchild that keeps stdout open."""
    code = ("import subprocess, sys\n"
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
            "print('bye')\n")
    lines = Lines()
    outcome = run_program(_py(code), env=os.environ, on_line=lines, grace_s=0.2)
    assert outcome.ok
    assert lines.of("stdout") == ["bye"]


def test_stdin_from_a_file_and_cwd(tmp_path: Path) -> None:
    data = tmp_path / "in.sql"
    data.write_text("SELECT 1;\nSELECT 2;\n")
    code = "import sys, os\nprint(os.getcwd())\nfor l in sys.stdin: print(l.strip())"
    lines = Lines()
    outcome = run_program(_py(code), env=os.environ, on_line=lines, stdin_path=data,
                          cwd=tmp_path)
    assert outcome.ok
    assert lines.of("stdout") == [str(tmp_path), "SELECT 1;", "SELECT 2;"]


def test_missing_program_is_named() -> None:
    with pytest.raises(ProgramNotFound, match="pg_dump_nonexistent not found on PATH"):
        run_program(["pg_dump_nonexistent", "--version"], env=os.environ, on_line=Lines())
    with pytest.raises(ProgramNotFound, match="/nowhere/pg_dump does not exist"):
        run_program(["/nowhere/pg_dump"], env=os.environ, on_line=Lines())


def test_an_error_in_the_callback_kills_the_program_and_propagates() -> None:
    def on_line(_stream: str, _line: str) -> None:
        raise ValueError("callback failed")

    with pytest.raises(ValueError, match="callback failed"):
        run_program(_py("import time\nprint('x', flush=True)\ntime.sleep(600)"),
                    env=os.environ, on_line=on_line)


def test_outcome_ok_needs_exit_zero() -> None:
    assert Outcome(["x"], 0, False, False, 0.1).ok
    assert not Outcome(["x"], 0, False, True, 0.1).ok
    assert not Outcome(["x"], None, False, False, 0.1).ok
