"""A connection lost during COMMIT: the tool asks the server what happened and says it.

The cases are made with real servers: a synchronous standby that never answers holds the
COMMIT (the commit record is already in the WAL), then the server is stopped in immediate
mode, as a crash would; a deferred constraint trigger holds the COMMIT before its commit
record, then an administrator terminates the session.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from wizard.core import jobs
from wizard.core.connection import PgSettings
from wizard.core.execute import RunOptions, RunResult
from wizard.core.journal import Journal
from wizard.core.plan import UP, Plan
from wizard.core.report import build_report, report_html
from wizard.core.verify import FAIL
from wizard.sandbox.probes import run_cli
from wizard.sandbox.sandbox import create_owner_role, create_sample_database
from wizard.sandbox.servers import PostgresServer

ROLE = "crash_owner"
WAITING_FOR = ("SELECT pid FROM pg_stat_activity WHERE datname = %s AND "
               "application_name = 'enerlink-migrate' AND wait_event = %s")


@pytest.fixture(scope="module")
def crash_server() -> Iterator[tuple[PostgresServer, PgSettings]]:
    """A cluster of its own: these tests stop it the hard way."""
    server = PostgresServer.start()
    try:
        password = secrets.token_urlsafe(16)
        create_owner_role(server, ROLE, password)
        owner = server.settings("postgres", ROLE, password)
        create_sample_database(server, "crash_template", owner, users=200)
        yield server, owner
    finally:
        server.stop()


@pytest.fixture
def crash_db(crash_server: tuple[PostgresServer, PgSettings],
             request: pytest.FixtureRequest) -> Iterator[PgSettings]:
    """A fresh sample database whose commits wait for a synchronous standby that does not
    exist: COMMIT hangs after its commit record is written."""
    server, owner = crash_server
    name = f"crash_{request.node.name[5:30]}"
    with server.admin_connect() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE crash_template OWNER {}").format(
            sql.Identifier(name), sql.Identifier(ROLE)))
        admin.execute(sql.SQL("ALTER DATABASE {} SET synchronous_commit = on").format(
            sql.Identifier(name)))
        admin.execute("ALTER SYSTEM SET synchronous_standby_names = 'standby_that_never_was'")
        admin.execute("SELECT pg_reload_conf()")
    _until_new_sessions_see(server, "standby_that_never_was")
    try:
        yield owner.with_dbname(name)
    finally:
        if server.process is not None:
            server.crash()  # a restart drops what the test set on the command line
        server.restart()
        with server.admin_connect() as admin:
            admin.execute("ALTER SYSTEM RESET synchronous_standby_names")
            admin.execute("SELECT pg_reload_conf()")
        _until_new_sessions_see(server, "")
        server.drop_database(name)


def _until_new_sessions_see(server: PostgresServer, standbys: str) -> None:
    """pg_reload_conf only signals the postmaster: wait until a new session has the value."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with server.admin_connect() as conn:
            row = conn.execute("SHOW synchronous_standby_names").fetchone()
        if row and row[0] == standbys:
            return
        time.sleep(0.05)
    raise AssertionError("the server never took synchronous_standby_names")


def _wait_for(server: PostgresServer, dbname: str, wait_event: str,
              child: subprocess.Popen[str] | None = None) -> int:
    deadline = time.monotonic() + 30
    with server.admin_connect() as admin:
        while time.monotonic() < deadline:
            if child is not None and child.poll() is not None:
                raise AssertionError(f"the run ended first: {child.communicate()}")
            row = admin.execute(WAITING_FOR, (dbname, wait_event)).fetchone()
            if row:
                return int(row[0])
            time.sleep(0.05)
    raise AssertionError(f"the migration never waited on {wait_event}")


def test_a_crash_during_commit_is_reported_as_the_commit_it_was(
        crash_server: tuple[PostgresServer, PgSettings], crash_db: PgSettings) -> None:
    """COMMIT waits for the standby, the server dies (immediate stop) and comes back: the
    run says the connection was lost, asks the server, finds the migrations row and the
    migrated schema, runs the checks after commit and succeeds. Before, it said "the
    transaction was not committed, so the schema is unchanged", and so did the PDF."""
    server, _owner = crash_server
    journal = Journal.create(crash_db, "migrate")
    done: list[tuple[Plan, RunResult, Journal]] = []
    run = threading.Thread(target=lambda: done.append(jobs.run(
        crash_db, UP, options=RunOptions(reconnect_s=60), journal=journal)))
    run.start()
    try:
        _wait_for(server, crash_db.dbname, "SyncRep")
        server.crash()
        time.sleep(1.0)  # the server is down: the run's reconnects fail meanwhile
        server.restart("synchronous_standby_names=")
    finally:
        run.join(120)
    _plan, result, _journal = done[0]
    assert result.commit_lost
    assert result.commit == "committed", result.error
    assert result.ok, result.error
    assert result.state_after == "migrated"
    assert result.checks
    assert not [c.id for c in result.checks if c.status == FAIL]
    events = [e["event"] for e in journal.events()]
    assert events.index("commit_unknown") < events.index("commit_resolved") < \
        events.index("run_finished")
    resolved = journal.events("commit_resolved")[0]
    assert resolved["outcome"] == "committed"
    assert "migrations row" in resolved["evidence"]
    assert "state migrated" in resolved["evidence"]
    logged = " ".join(e["message"] for e in journal.events("log"))
    assert "unchanged" not in logged
    assert "failed at" not in logged
    model = build_report(journal)
    assert model.outcome == "migration succeeded"
    assert model.runs[-1].commit_lost == "committed"
    assert "the server showed: COMMITTED" in report_html(journal)


def test_a_server_that_stays_down_makes_the_outcome_unknown_not_unchanged(
        crash_server: tuple[PostgresServer, PgSettings], crash_db: PgSettings,
        tmp_path: Path) -> None:
    """The same crash, but the server is not back within --reconnect-wait: the CLI says the
    outcome is UNKNOWN, tells the DBA to start no application and exits 4; once the
    server is back, inspect shows the commit held."""
    server, _owner = crash_server
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"{crash_db.host}:{crash_db.port}:*:{crash_db.user}:"
                        f"{crash_db.password}\n")
    passfile.chmod(0o600)
    child = subprocess.Popen(
        [sys.executable, "-m", "wizard", "migrate", "--without-backup", "--confirm",
         crash_db.dbname, "--reconnect-wait", "3", "--dsn",
         f"postgresql://{crash_db.user}@{crash_db.host}:{crash_db.port}/{crash_db.dbname}"],
        env={**os.environ, "PGPASSFILE": str(passfile)}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(server, crash_db.dbname, "SyncRep", child)
        server.crash()
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
    assert child.returncode == 4, (out, err)
    assert ("migration outcome UNKNOWN: the connection was lost during COMMIT and the "
            "server could not be asked (no answer within 3 s") in out
    assert "Start no version of the application" in out
    assert "unchanged" not in out + err
    server.restart("synchronous_standby_names=")
    state = run_cli(crash_db, "inspect", "--json", folder=tmp_path)
    assert '"state": "migrated"' in state.stdout


SLOW_COMMIT = """
CREATE FUNCTION public.slow_commit() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN PERFORM pg_sleep(60); RETURN NULL; END$$;
CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON public.migrations
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.slow_commit();
"""


def test_a_session_ended_during_commit_before_it_held_says_unchanged(
        pg_server: Any, pg_db: PgSettings, tmp_path: Path) -> None:
    """COMMIT runs a deferred trigger (the commit record is not written yet) and the
    session is terminated: the tool asks the server, finds no migrations row and the
    catalog as before, and says the schema is unchanged, with the evidence."""
    with pg_server.admin_connect(pg_db.dbname) as admin:
        admin.execute(SLOW_COMMIT)
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"{pg_db.host}:{pg_db.port}:*:{pg_db.user}:{pg_db.password}\n")
    passfile.chmod(0o600)
    child = subprocess.Popen(
        [sys.executable, "-m", "wizard", "migrate", "--without-backup", "--confirm",
         pg_db.dbname, "--dsn",
         f"postgresql://{pg_db.user}@{pg_db.host}:{pg_db.port}/{pg_db.dbname}"],
        env={**os.environ, "PGPASSFILE": str(passfile)}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pid = _wait_for(pg_server, pg_db.dbname, "PgSleep", child)
        with pg_server.admin_connect() as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
    assert child.returncode == 1, (out, err)
    assert ("the connection was lost during COMMIT, and the server shows the transaction "
            "was not committed") in out
    assert "the migrations row" in out
    assert "is absent" in out
    assert "the schema is unchanged" in out
    state = run_cli(pg_db, "inspect", "--json", folder=tmp_path)
    assert '"state": "pre"' in state.stdout


# -- the wizard says the same ----------------------------------------------------------------

def _migrate_page(window: Any, qtbot: Any, open_session: Any, pg: PgSettings,
                  monkeypatch: pytest.MonkeyPatch) -> Any:
    from wizard.core.events import BackupSkipped
    from wizard.ui.pages import migrate
    from wizard.ui.pages.migrate import MigratePage

    session = open_session(window, pg)
    session.ensure_journal().record(BackupSkipped(pg.dbname, "test of a lost COMMIT"))
    page = window.start_at(MigratePage)
    qtbot.waitUntil(lambda: page.plan is not None and not page.busy, timeout=30_000)
    monkeypatch.setattr(migrate, "ask", lambda *_a: True)
    # Not rehearsed: the typed override the Run button then asks for.
    monkeypatch.setattr(migrate, "confirm_typed", lambda _p, _t, _c, expected, _a: expected)
    return page


def test_the_wizard_says_a_crashed_commit_held(
        crash_server: tuple[PostgresServer, PgSettings], crash_db: PgSettings,
        wizard_window: Any, qtbot: Any, open_session: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server, _owner = crash_server
    page = _migrate_page(wizard_window, qtbot, open_session, crash_db, monkeypatch)
    page.run_button.click()
    _wait_for(server, crash_db.dbname, "SyncRep")
    server.crash()
    qtbot.waitUntil(lambda: "lost during COMMIT" in page.outcome.text(), timeout=10_000)
    assert "do not start any version of the application" in page.outcome.text()
    server.restart("synchronous_standby_names=")
    qtbot.waitUntil(lambda: page.result is not None and not page.busy, timeout=60_000)
    assert page.result.ok
    assert page.result.commit == "committed"
    assert page.outcome.text().startswith("Migrated: state pre → migrated.")
    assert "the server then showed it committed" in page.outcome.text()
    assert not page.errors.isVisible()


def test_the_wizard_says_a_commit_cut_before_it_held_changed_nothing(
        pg_server: Any, pg_db: PgSettings, wizard_window: Any, qtbot: Any,
        open_session: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with pg_server.admin_connect(pg_db.dbname) as admin:
        admin.execute(SLOW_COMMIT)
    page = _migrate_page(wizard_window, qtbot, open_session, pg_db, monkeypatch)
    page.run_button.click()
    pid = _wait_for(pg_server, pg_db.dbname, "PgSleep")
    with pg_server.admin_connect() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    qtbot.waitUntil(lambda: page.result is not None and not page.busy, timeout=60_000)
    assert page.result.commit == "not committed"
    assert "the server shows the transaction was not committed" in page.errors.message.text()
    assert page.errors.step.text() == "COMMIT"
    assert "schema is unchanged" in page.errors.action.text()
    assert jobs.inspect(pg_db).state == "pre"


def test_a_commit_held_by_a_standby_is_named_while_it_waits(
        crash_server: tuple[PostgresServer, PgSettings], crash_db: PgSettings) -> None:
    """No wait without a word: statement_timeout does not end COMMIT's wait for a
    synchronous standby, so the run looks at its COMMIT from another session and says what
    it waits for and what cancelling would mean. Once the standby setting goes, COMMIT
    returns and the run ends committed."""
    server, _owner = crash_server
    journal = Journal.create(crash_db, "migrate")
    done: list[tuple[Plan, RunResult, Journal]] = []
    run = threading.Thread(target=lambda: done.append(jobs.run(crash_db, UP, journal=journal)))
    run.start()
    try:
        pid = _wait_for(server, crash_db.dbname, "SyncRep")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(
                "synchronous standby" in e["message"] for e in journal.events("log")):
            time.sleep(0.1)
    finally:
        with server.admin_connect() as admin:
            admin.execute("ALTER SYSTEM RESET synchronous_standby_names")
            admin.execute("SELECT pg_reload_conf()")
        run.join(60)
    said = [e["message"] for e in journal.events("log") if "synchronous standby" in e["message"]]
    assert said, "nothing said while COMMIT waited"
    assert "synchronous_standby_names = 'standby_that_never_was'" in said[0]
    assert f"pg_cancel_backend({pid})" in said[0]
    _plan, result, _journal = done[0]
    assert result.commit == "committed"
    assert not result.commit_lost
    assert result.ok
