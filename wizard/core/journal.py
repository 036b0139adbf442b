"""The run journal: one folder per run, append-only JSON lines, no secrets."""

from __future__ import annotations

import getpass
import json
import os
import re
import socket
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import platformdirs

from wizard.core import events as declared
from wizard.core.connection import PgSettings
from wizard.core.events import E, Event, RunStarted, parse

APP = "enerlink-migrate"
EVENTS = "events.jsonl"


def runs_root() -> Path:
    """Where run folders live: the platform's user-data dir (XDG_DATA_HOME on Linux)."""
    override = os.environ.get("ENERLINK_MIGRATE_RUNS")
    return Path(override) if override else platformdirs.user_data_path(APP) / "runs"


def write_traceback(log_file: Path, text: str, where: str = "the wizard") -> None:
    """Append an unexpected error's traceback to a private log file (0600)."""
    log_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = datetime.now().astimezone().isoformat(timespec="milliseconds")
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(f"{stamp} [error] unexpected error in {where}\n{text}\n")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def target_of(settings: PgSettings) -> dict[str, Any]:
    """The fields of a connection that may be written down: never the password."""
    return {"host": settings.host, "port": settings.port, "dbname": settings.dbname,
            "user": settings.user}


class Journal:
    """Append-only record of one run; the GUI and the PDF read it back."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def path(self) -> Path:
        return self.folder / EVENTS

    @classmethod
    def create(cls, settings: PgSettings, command: str, root: Path | None = None) -> Journal:
        root = root or runs_root()
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", settings.dbname)[:40] or "db"
        folder = root / f"{stamp}_{slug}_{command}"
        folder.mkdir(mode=0o700)
        journal = cls(folder)
        journal.record(RunStarted(command, target_of(settings), getpass.getuser(),
                                  socket.gethostname(), os.getpid()))
        return journal

    def record(self, event: Event) -> None:
        """Append one declared event (wizard.core.events)."""
        if type(event).event not in declared.EVENTS:
            raise TypeError(f"{type(event).__name__} is not a declared journal event")
        entry = {"ts": _now(), "event": type(event).event, **event.fields()}
        line = json.dumps(entry, default=str, ensure_ascii=False)
        data = (line + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            # One write of the whole record (a buffered file splits a long line into
            # several): a reader on another thread sees it all or, briefly, a tail.
            written = os.write(fd, data)
            while written < len(data):
                written += os.write(fd, data[written:])
        finally:
            os.close(fd)

    def typed(self, cls: type[E]) -> list[E]:
        """The records of one event, as that event (old records: defaults fill the gaps)."""
        return [parse(r, cls) for r in self.events(cls.event)]

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        text = self.path.read_text(encoding="utf-8")
        if not text.endswith("\n"):
            # The last record is being appended right now (by another thread or process):
            # it is read next time, whole.
            text = text[:text.rfind("\n") + 1]
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
        return [r for r in records if event is None or r["event"] == event]

    def target(self) -> dict[str, Any]:
        started = self.events("run_started")
        return dict(started[0]["target"]) if started else {}


def runs_for(settings: PgSettings, root: Path | None = None) -> Iterator[Journal]:
    """Journals of runs against the same host, port and database, newest first."""
    root = root or runs_root()
    if not root.exists():
        return
    wanted = target_of(settings)
    for folder in sorted(root.iterdir(), reverse=True):
        journal = Journal(folder)
        target = journal.target()
        if all(target.get(k) == wanted[k] for k in ("host", "port", "dbname")):
            yield journal
