"""What happened to a COMMIT whose answer never came back.

A connection lost while COMMIT ran (the server crashed, a synchronous standby never
answered and the server was stopped, the network went) leaves the outcome unknown: the
commit record may or may not have reached the server's WAL. The only honest answer is the
server's, so this reconnects (bounded, cancellable), waits for the old session to end, and
reads the two facts the transaction changed together: TypeORM's migrations row and the
catalog.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from wizard.core.catalog import MIGRATED, PRE, catalog_facts
from wizard.core.connection import PgSettings
from wizard.core.discovery import DiscoveryError, discover
from wizard.core.ops.history import MIGRATIONS, DeleteMigration, RecordMigration
from wizard.core.plan import UP, Plan

COMMITTED, NOT_COMMITTED, UNKNOWN = "committed", "not committed", "unknown"

Say = Callable[[str, str], None]


def committed(result: dict[str, Any]) -> bool:
    """Whether a journaled run's transaction committed. Runs since the commit outcome was
    recorded say so; older ones: it succeeded, or it committed and then failed a check
    after commit (its state after differs from its state before; a rolled-back attempt
    never reached the checks after commit, so it has no state after)."""
    if result.get("commit"):
        return bool(result["commit"] == COMMITTED)
    return bool(result.get("ok")) or result.get("state_after") not in (
        None, "", result.get("state_before"))


@dataclass(frozen=True)
class CommitOutcome:
    outcome: str  # COMMITTED, NOT_COMMITTED or UNKNOWN
    evidence: str  # what the server showed, in words
    waited_s: float


@dataclass(frozen=True)
class Session:
    """The session that sent COMMIT: its pid, on the postmaster started at `postmaster`
    (after a restart the pid may belong to someone else)."""

    pid: int
    postmaster: str


def session_of(conn: psycopg.Connection[Any]) -> Session:
    row = conn.execute("SELECT pg_backend_pid(), pg_postmaster_start_time()::text").fetchone()
    assert row is not None
    return Session(int(row[0]), str(row[1]))


def resolve_commit(settings: PgSettings, plan: Plan, session: Session | None, *,
                   wait_s: float, cancel: threading.Event, say: Say) -> CommitOutcome:
    """Ask the server what became of the transaction of `session`, for up to `wait_s`."""
    t0 = time.monotonic()
    delay, tries, last = 0.5, 0, ""
    while True:
        tries += 1
        try:
            with settings.connect(autocommit=True) as conn:
                found = _read_outcome(conn, plan, session, t0 + wait_s, cancel)
            if found is not None:
                return CommitOutcome(found[0], found[1], round(time.monotonic() - t0, 1))
            last = (f"server pid {session.pid if session else '?'} is still in its COMMIT "
                    f"(waiting for a synchronous standby?): its outcome is not visible yet")
        except (psycopg.OperationalError, DiscoveryError) as exc:
            last = " ".join(str(exc).split())[:300]
        left = t0 + wait_s - time.monotonic()
        if left <= 0 or cancel.is_set():
            break
        say("warn", f"the outcome of COMMIT is not known yet ({last}); asking the server "
                    f"again in {min(delay, left):.1f} s (try {tries}, up to {wait_s:g} s)")
        if cancel.wait(min(delay, left)):
            break
        delay = min(delay * 2, 5.0)
    why = "cancelled" if cancel.is_set() else f"no answer within {wait_s:g} s"
    return CommitOutcome(UNKNOWN, f"{why}: {last}", round(time.monotonic() - t0, 1))


def _read_outcome(conn: psycopg.Connection[Any], plan: Plan, session: Session | None,
                  deadline: float, cancel: threading.Event) -> tuple[str, str] | None:
    """(outcome, evidence), or None while the old session still runs its COMMIT."""
    if session is not None and not _wait_for_session_end(conn, session, deadline, cancel):
        return None
    d = discover(conn, plan.source.schema if plan.source else "public",
                 text_references=False)
    row = _history_row(conn, d.schema, plan)
    post = MIGRATED if plan.direction == UP else PRE
    if row is None:  # a plan without a history operation: only the catalog can say
        if plan.facts and catalog_facts(d) == plan.facts:
            return NOT_COMMITTED, f"the catalog is exactly as before the run (state {d.state})"
        if d.state == post:
            return COMMITTED, f"the catalog is in the state the plan leaves (state {d.state})"
        return UNKNOWN, f"the catalog is in state {d.state}: {d.explanation}"
    committed, words = row
    if committed and d.state == post:
        return COMMITTED, f"{words}; the schema is in state {d.state}"
    if not committed and (not plan.facts or catalog_facts(d) == plan.facts):
        return NOT_COMMITTED, f"{words}; the catalog is exactly as before the run " \
                              f"(state {d.state})"
    return UNKNOWN, (f"{words}, but the schema is in state {d.state} ({d.explanation}): "
                     f"another session may have changed it")


def _wait_for_session_end(conn: psycopg.Connection[Any], session: Session,
                          deadline: float, cancel: threading.Event) -> bool:
    """True once the session that sent COMMIT is gone (its transaction has ended, one way or
    the other); False at the deadline. A session waiting for a synchronous standby has
    committed locally, but the change is visible only when the wait ends."""
    while True:
        row = conn.execute(
            "SELECT pg_postmaster_start_time()::text = %s AND EXISTS (SELECT FROM "
            "pg_stat_activity WHERE pid = %s)", (session.postmaster, session.pid)).fetchone()
        if not (row and row[0]):
            return True
        if time.monotonic() >= deadline or cancel.wait(0.5):
            return False


def _history_row(conn: psycopg.Connection[Any], schema: str, plan: Plan
                 ) -> tuple[bool, str] | None:
    """(committed, words) from TypeORM's migrations row, written in the same transaction."""
    for op in plan.ops:
        if isinstance(op, RecordMigration | DeleteMigration):
            present = _row_exists(conn, schema, op.name)
            shown = "present" if present else "absent"
            words = f"the migrations row {op.name} is {shown}"
            return present == isinstance(op, RecordMigration), words
    return None


def _row_exists(conn: psycopg.Connection[Any], schema: str, name: str) -> bool:
    table = conn.execute("SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = "
                         "c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
                         (schema, MIGRATIONS)).fetchone()
    if table is None:
        return False
    row = conn.execute(sql.SQL("SELECT 1 FROM {} WHERE name = %s").format(
        sql.Identifier(schema, MIGRATIONS)), (name,)).fetchone()
    return row is not None
