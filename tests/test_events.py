"""The journal's events: declared once, written by core only, old records still readable."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from wizard.core import events
from wizard.core.connection import PgSettings
from wizard.core.events import EVENTS, DownPlan, Event, PlanShown, StepDone, parse
from wizard.core.journal import Journal

WIZARD = Path(__file__).resolve().parent.parent / "wizard"


def test_every_event_has_a_unique_name_and_its_own_class() -> None:
    assert len(EVENTS) >= 35
    assert all(cls.event == name for name, cls in EVENTS.items())
    with pytest.raises(TypeError, match="declared twice"):
        @dataclass(frozen=True)
        class Again(Event):
            event = "run_started"


def test_only_core_records_events() -> None:
    """Pages, the CLI and the sandbox call core functions; none builds an event to write."""
    writers = []
    for path in WIZARD.rglob("*.py"):
        if path.is_relative_to(WIZARD / "core"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in ("record", "write") and node.args and \
                    isinstance(node.args[0], ast.Call | ast.Constant):
                first = node.args[0]
                name = first.func.id if isinstance(first, ast.Call) and isinstance(
                    first.func, ast.Name) else getattr(first, "value", None)
                if name in EVENTS or name in {c.__name__ for c in EVENTS.values()}:
                    writers.append(f"{path.relative_to(WIZARD)}:{node.lineno}")
    assert writers == []


def test_a_record_round_trips_and_old_records_take_defaults(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    step = StepDone(3, 20, "rename_column", "Renaming wallet.prosumer_id → user_id", 0.42)
    journal.record(step)
    assert journal.typed(StepDone) == [step]
    # Written by an older version: no digest, no operations.
    with journal.path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"ts": "2026-01-01T00:00:00Z", "event": "migrate_plan_shown",
                             "state": "pre", "steps": 20, "catalog_steps": 20,
                             "validate_steps": 0, "retired": True}) + "\n")
        fh.write(json.dumps({"ts": "2026-01-01T00:00:00Z", "event": "down_plan",
                             "script": "BEGIN;", "steps": []}) + "\n")
    assert journal.typed(PlanShown)[0].digest == ""
    assert journal.typed(DownPlan)[0].ops == []


def test_flat_events_keep_their_payload_as_the_record(pg_db: PgSettings) -> None:
    journal = Journal.create(pg_db, "backup")
    journal.record(events.BackupDone({"path": "/b/x.dump", "verified": True}))
    record = journal.events("backup")[0]
    assert record["path"] == "/b/x.dump"
    assert parse(record, events.BackupDone).payload == {"path": "/b/x.dump", "verified": True}


def test_an_undeclared_event_is_refused(tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class Nameless(Event):
        detail: str

    with pytest.raises(TypeError, match="not a declared journal event"):
        Journal(tmp_path).record(Nameless("x"))


def test_a_record_being_appended_is_not_read_half(tmp_path: Path) -> None:
    """The wizard's GUI thread reads journals while a worker appends to them: a record
    longer than a write buffer goes down in one write, and a reader that meets a tail
    still being written reads the whole records before it (the tail next time)."""
    settings = PgSettings(host="h", port=5432, dbname="db", user="u")
    journal = Journal.create(settings, "test", root=tmp_path)
    long_script = "ALTER TABLE x RENAME TO y;\n" * 2_000  # about 52 KB: several buffers
    journal.record(DownPlan(long_script, [], [], "d" * 64))
    whole = journal.path.read_bytes()
    assert whole.endswith(b"\n")
    assert json.loads(whole.splitlines()[-1])["script"] == long_script
    with journal.path.open("ab") as fh:
        fh.write(b'{"ts": "2026-12-02T00:00:00Z", "event": "log", "message": "half')
    assert [e["event"] for e in journal.events()] == ["run_started", "down_plan"]
    with journal.path.open("ab") as fh:
        fh.write(b' a line"}\n')
    assert [e["event"] for e in journal.events()] == ["run_started", "down_plan", "log"]
