"""One runner for external programs: line-by-line output, process-group cancel, an Outcome."""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

OnLine = Callable[[str, str], None]  # (stream "stdout" | "stderr", line without newline)

TAIL_LINES = 50
GRACE_S = 5.0  # between SIGTERM and SIGKILL on cancel
QUEUE_LINES = 10_000  # readers block beyond this: back-pressure instead of unbounded memory
KILL = getattr(signal, "SIGKILL", signal.SIGTERM)  # Windows has no SIGKILL


class ProgramNotFound(RuntimeError):
    """The program to run does not exist or is not executable."""


@dataclass
class Outcome:
    argv: list[str]
    returncode: int | None
    signalled: bool
    cancelled: bool
    duration_s: float
    stderr_tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.cancelled and not self.signalled

    def describe(self) -> str:
        """How it ended, for an error message."""
        name = Path(self.argv[0]).name if self.argv else "program"
        if self.cancelled:
            return f"{name} was cancelled"
        if self.signalled and self.returncode is not None:
            sig = -self.returncode
            with contextlib.suppress(ValueError):
                return f"{name} was killed by {signal.Signals(sig).name}"
            return f"{name} was killed by signal {sig}"
        return f"{name} exited with code {self.returncode}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def resolve(program: str, env: Mapping[str, str]) -> str:
    """The full path of `program`, or ProgramNotFound naming it."""
    if os.sep in program or (os.altsep and os.altsep in program):
        if not (os.path.isfile(program) and os.access(program, os.X_OK)):
            raise ProgramNotFound(f"{program} does not exist or is not executable")
        return program
    found = shutil.which(program, path=env.get("PATH", os.defpath))
    if found is None:
        raise ProgramNotFound(f"{program} not found on PATH ({env.get('PATH', os.defpath)})")
    return found


def _reader(stream: IO[bytes], name: str, lines: queue.Queue[tuple[str, str | None]]) -> None:
    try:
        for raw in iter(stream.readline, b""):
            lines.put((name, raw.decode("utf-8", errors="replace").rstrip("\r\n")))
    finally:
        lines.put((name, None))  # end of this stream


def _signal_group(pid: int, sig: int) -> None:
    if sys.platform == "win32":  # no process groups: the program itself only
        with contextlib.suppress(OSError):
            os.kill(pid, sig)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def run_program(argv: Sequence[str], *, env: Mapping[str, str], on_line: OnLine,
                cancel: threading.Event | None = None, stdin_path: Path | None = None,
                cwd: Path | None = None, poll_s: float = 0.1,
                grace_s: float = GRACE_S,
                on_tick: Callable[[], None] | None = None) -> Outcome:
    """Run `argv` in its own session and stream its output to `on_line`.

    Lines are delivered on the calling thread, one at a time, in the order they were read.
    When `cancel` is set the whole process group gets SIGTERM, then SIGKILL after
    `grace_s`. `on_tick` is called about every `poll_s` on the calling thread (for a
    progress estimate between lines). Reader threads are joined before returning.
    """
    args = [resolve(argv[0], env), *argv[1:]]
    started = time.monotonic()
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue(maxsize=QUEUE_LINES)
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    stdin: Any = subprocess.DEVNULL
    with contextlib.ExitStack() as stack:
        if stdin_path is not None:
            stdin = stack.enter_context(open(stdin_path, "rb"))
        try:
            proc = subprocess.Popen(args, env=dict(env), cwd=cwd, stdin=stdin,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)
        except OSError as exc:
            raise ProgramNotFound(f"cannot start {args[0]}: {exc.strerror or exc}") from None
    assert proc.stdout is not None
    assert proc.stderr is not None
    readers = [threading.Thread(target=_reader, args=(s, n, lines), daemon=True,
                                name=f"procs-{n}-{proc.pid}")
               for s, n in ((proc.stdout, "stdout"), (proc.stderr, "stderr"))]
    for reader in readers:
        reader.start()
    cancelled = False
    killed_at: float | None = None
    open_streams = 2
    last_tick = time.monotonic()
    try:
        while open_streams or proc.poll() is None:
            if on_tick is not None and time.monotonic() - last_tick >= poll_s:
                last_tick = time.monotonic()
                on_tick()
            if cancel is not None and cancel.is_set() and not cancelled:
                cancelled = True
                _signal_group(proc.pid, signal.SIGTERM)
                killed_at = time.monotonic()
            if killed_at is not None and time.monotonic() - killed_at > grace_s:
                _signal_group(proc.pid, KILL)
                killed_at = float("inf")  # once
            if not open_streams:
                # Output is done; wait for the exit without spinning.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=poll_s)
                continue
            try:
                name, line = lines.get(timeout=poll_s)
            except queue.Empty:
                if proc.poll() is not None and killed_at is None:
                    # The program exited but a child it left behind still holds a pipe.
                    killed_at = time.monotonic()
                continue
            if line is None:
                open_streams -= 1
                continue
            if name == "stderr":
                tail.append(line)
            on_line(name, line)
    except BaseException:
        _signal_group(proc.pid, KILL)
        raise
    finally:
        if proc.poll() is None:
            proc.wait()
        # Drain what is left so a blocked reader can finish, then join both.
        while any(r.is_alive() for r in readers):
            with contextlib.suppress(queue.Empty):
                lines.get(timeout=poll_s)
        for reader in readers:
            reader.join()
        proc.stdout.close()
        proc.stderr.close()
    code = proc.returncode
    return Outcome(argv=list(argv), returncode=code, signalled=code is not None and code < 0,
                   cancelled=cancelled, duration_s=round(time.monotonic() - started, 3),
                   stderr_tail=list(tail))
