"""Test harness: real PostgreSQL and Redis on free ports, a database per test, Qt offscreen."""

from __future__ import annotations

import atexit
import itertools
import json
import os
import secrets
import shlex
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# Before anything can import Qt: no display in CI, and none wanted on a developer's desk.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import keyring
import keyring.backend
import keyring.backends.fail
import keyring.errors
import pytest
import redis
from psycopg import sql

from wizard.core import hints
from wizard.core.connection import PgSettings
from wizard.sandbox.memkeyring import MemoryKeyring
from wizard.sandbox.probes import databases
from wizard.sandbox.sandbox import OWNER_ROLE, create_owner_role, create_sample_database
from wizard.sandbox.seed import SeedReport
from wizard.sandbox.servers import PostgresServer, RedisServer

TEMPLATE_DB = "enerlink_template"
TEMPLATE_USERS = 40
REALWORLD = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "realworld"

_db_counter = itertools.count(1)


_STEP = pytest.StashKey[str]()  # a pg_matrix test's step, for the matrix report
MATRIX_STEPS = ("migrate", "realworld", "backup", "restore", "orphans", "verify", "tools")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("pg_matrix")
        if marker is not None:
            step = marker.args[0] if marker.args else None
            if step not in MATRIX_STEPS:
                raise pytest.UsageError(f"{item.nodeid}: pg_matrix needs one of "
                                        f"{', '.join(MATRIX_STEPS)}, not {step!r}")
            item.stash[_STEP] = step



@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """With ENERLINK_MATRIX_REPORT set (packaging/pg_matrix.py), one line per test outcome."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    path = os.environ.get("ENERLINK_MATRIX_REPORT")
    step = item.stash.get(_STEP, None)
    if not path or step is None:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"step": step, "test": item.nodeid,
                                 "outcome": report.outcome}) + "\n")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the whole run, stopped by PID even if tests fail.

    Its programs come from ENERLINK_PG_BINDIR (server) and ENERLINK_PG_CLIENT_BINDIR
    (pg_dump, pg_restore, psql), else from `pg_config --bindir`; the client folder goes
    first on PATH, where the product looks for its tools as on a DBA's machine.
    """
    server = PostgresServer.start()
    atexit.register(server.stop)  # also when the session is torn down abnormally
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{server.client_bindir}{os.pathsep}{os.environ.get('PATH', '')}")
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def pg_major(pg_server: PostgresServer) -> int:
    """The test server's major version."""
    return pg_server.major_version


@pytest.fixture(scope="session")
def restore_template(pg_server: PostgresServer) -> str:
    """The template restores start from. Before 13 the owner role cannot create uuid-ossp
    (restore refuses and says so): a superuser puts it in template1 once, as the refusal
    tells a DBA to do."""
    if pg_server.major_version >= 13:
        return "template0"
    with pg_server.admin_connect("template1") as admin:
        admin.execute('CREATE EXTENSION IF NOT EXISTS "uuid-ossp" WITH SCHEMA public')
    return "template1"


@pytest.fixture(scope="session")
def pg_restore_bin(pg_server: PostgresServer) -> Path:
    """The harness's own pg_restore, to read back what the backup step wrote."""
    return pg_server.client_tool("pg_restore")


@pytest.fixture(scope="session")
def owner(pg_server: PostgresServer) -> PgSettings:
    """Connection settings of the non-superuser role that owns the EnerLink tables."""
    password = secrets.token_urlsafe(16)
    create_owner_role(pg_server, OWNER_ROLE, password)
    return pg_server.settings("postgres", OWNER_ROLE, password)


@pytest.fixture(scope="session")
def template_db(pg_server: PostgresServer, owner: PgSettings) -> SeedReport:
    """The sample database, built once; every test gets a clone of it."""
    return create_sample_database(pg_server, TEMPLATE_DB, owner, users=TEMPLATE_USERS)


def _create_db(pg_server: PostgresServer, name: str, template: str, owner: str) -> None:
    with pg_server.admin_connect() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(
            sql.Identifier(name), sql.Identifier(template), sql.Identifier(owner)))


def _drop_db(pg_server: PostgresServer, name: str) -> None:
    pg_server.drop_database(name)


@pytest.fixture
def pg_db(pg_server: PostgresServer, owner: PgSettings,
          template_db: SeedReport) -> Iterator[PgSettings]:
    """A fresh clone of the sample database (pre-rename), connected as the owner role."""
    name = f"enerlink_t{next(_db_counter)}"
    _create_db(pg_server, name, TEMPLATE_DB, owner.user)
    try:
        yield owner.with_dbname(name)
    finally:
        _drop_db(pg_server, name)
        # What a restore left: the kept <db>_before_restore_<time>, a half-made copy.
        for leftover in databases(pg_server):
            if leftover.startswith(name + "_"):
                _drop_db(pg_server, leftover)


@pytest.fixture
def live(pg_db: PgSettings) -> PgSettings:
    """The sample database a restore replaces (pg_db drops what the restore kept)."""
    return pg_db


@pytest.fixture
def passfile(pg_db: PgSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The password for the CLI, as a DBA keeps it: a 0600 pgpass file (never argv)."""
    path = tmp_path / "pgpass"
    path.write_text(f"*:*:*:{pg_db.user}:{pg_db.password}\n")
    path.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(path))
    return path


def _unrestorable(settings: PgSettings) -> None:
    """A classic pg_restore failure: a CHECK whose function calls another function by its
    bare name. pg_restore runs with an empty search_path, so loading prosumer's rows fails
    (and with them the keys of every table that references prosumer)."""
    with settings.connect() as conn:
        conn.execute("CREATE FUNCTION lower_mail(t text) RETURNS text LANGUAGE sql "
                     "IMMUTABLE AS 'SELECT lower(t)'")
        conn.execute("CREATE FUNCTION mail_ok(t text) RETURNS boolean LANGUAGE sql "
                     "IMMUTABLE AS $$SELECT lower_mail(t) LIKE '%@%'$$")
        conn.execute("ALTER TABLE prosumer ADD CONSTRAINT email_looks_valid "
                     "CHECK (mail_ok(email))")


@pytest.fixture
def unrestorable() -> Callable[[PgSettings], None]:
    """Makes a database's backup fail to restore exactly (see _unrestorable)."""
    return _unrestorable


@dataclass
class AppClock:
    """Stop and start commands that append the time they ran to a file each: the stand-in
    for pm2 or systemd in the change window's tests."""

    folder: Path

    def command(self, name: str) -> str:
        code = "import sys, time; open(sys.argv[1], 'a').write(repr(time.time()) + '\\n')"
        return shlex.join([sys.executable, "-c", code, str(self.folder / name)])

    def times(self, name: str) -> list[float]:
        path = self.folder / name
        return [float(x) for x in path.read_text().split()] if path.exists() else []


@pytest.fixture
def app_clock(tmp_path: Path) -> AppClock:
    return AppClock(tmp_path)


def _drop_key(pg: PgSettings, table: str = "wallet") -> None:
    with pg.connect() as conn:
        row = conn.execute(
            "SELECT conname FROM pg_constraint WHERE contype = 'f' AND conrelid = %s::regclass "
            "AND confrelid = 'prosumer'::regclass", (table,)).fetchone()
        assert row is not None
        conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
            sql.Identifier(table), sql.Identifier(row[0])))


@pytest.fixture
def drop_key() -> Callable[..., None]:
    """drop_key(pg, table='wallet'): drop the table's foreign key to prosumer, as on a
    database where it was never made: the migration adds it (NOT VALID, then VALIDATE)."""
    return _drop_key


@pytest.fixture
def empty_db(pg_server: PostgresServer, owner: PgSettings) -> Iterator[PgSettings]:
    """An empty database owned by the owner role."""
    name = f"empty_t{next(_db_counter)}"
    _create_db(pg_server, name, "template0", owner.user)
    try:
        yield owner.with_dbname(name)
    finally:
        _drop_db(pg_server, name)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer.start()
    atexit.register(server.stop)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """Redis db 1, empty at the start of the test and flushed at its end."""
    client = redis_server.client(db=1)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def no_keyring() -> Iterator[None]:
    """What keyring picks on a headless host without a Secret Service."""
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        keyring.set_keyring(previous)


@pytest.fixture(scope="session")
def realworld_dir() -> Path:
    if not (REALWORLD / "enerlink_pre_rename_schema.sql").exists():
        pytest.skip(f"realworld reference schema not found at {REALWORLD}")
    return REALWORLD


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread running (a worker that was never joined)."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for thread in leaked:
        thread.join(timeout=2)
    still = [t.name for t in leaked if t.is_alive()]
    if still:
        pytest.fail(f"test left threads running: {', '.join(still)}")


@pytest.fixture(autouse=True)
def _cli_words() -> Iterator[None]:
    """Each test starts with the engine speaking the CLI's words; a wizard window a test
    opens switches the GUI thread to the GUI's (hints.use), and that ends with the test."""
    with hints.speaking(hints.CLI):
        yield


@pytest.fixture(autouse=True)
def journal_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run journals go to the test's own folder, never the developer's data dir."""
    runs = tmp_path / "runs"
    monkeypatch.setenv("ENERLINK_MIGRATE_RUNS", str(runs))
    return runs


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Profiles go to the test's own folder, never the developer's config dir."""
    folder = tmp_path / "config"
    monkeypatch.setenv("ENERLINK_MIGRATE_CONFIG", str(folder))
    return folder


@pytest.fixture
def wizard_window(qtbot: Any, memory_keyring: MemoryKeyring,
                  config_dir: Path) -> Iterator[Any]:
    """The whole wizard, shown offscreen; running jobs are joined at the end."""
    from wizard.ui.window import MigrationWizard

    window = MigrationWizard()
    qtbot.addWidget(window)
    window.show()
    yield window
    # Cancel what still runs (a page's job or a dialog's: a test that failed mid-job leaves
    # one), and wait for it with the event loop turning: a job may wait for the GUI thread
    # (a question to the DBA), which a join on the GUI thread would never let answer. Then
    # closing the window never stops on its "a step is running" question.
    from wizard.ui.worker import Job

    running = [job for job in window.findChildren(Job) if job.is_running()]
    for job in running:
        job.cancel()
    qtbot.waitUntil(lambda: all(job.wait(0) for job in running) and not window.busy_pages(),
                    timeout=60_000)


@pytest.fixture
def open_session() -> Any:
    """open_session(window, pg, redis=None): skip the profile page, as if it had been filled."""
    from wizard.core.session import WizardSession

    def start(window: Any, pg: PgSettings, redis_settings: Any = None) -> Any:
        session = WizardSession(pg, redis_settings)
        window.set_session(session)
        return session
    return start


# --- a stand-in for EnerLink's POST /auth/login ----------------------------------------
# Stand-in: the EnerLink NestJS application is not part of this repository, so a local
# http.server answers /auth/login the way the guide shows (and the ways it can go wrong).

@dataclass
class LoginApp:
    """What the fake application answers (`reply`: status, JSON body) and was sent."""

    url: str = ""
    reply: tuple[int, Any] = (200, {"access_token": "tok", "user": {"userId": "user_1"}})
    seen: list[dict[str, Any]] = field(default_factory=list)


class _LoginHandler(BaseHTTPRequestHandler):
    app: LoginApp  # set on the class the fixture makes

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.app.seen.append({"path": self.path, "body": json.loads(self.rfile.read(length))})
        status, body = self.app.reply
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *_args: Any) -> None:
        return


@pytest.fixture
def login_app() -> Iterator[LoginApp]:
    app = LoginApp()
    handler = type("Handler", (_LoginHandler,), {"app": app})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    app.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app
    server.shutdown()
    server.server_close()
    thread.join()
