"""TimescaleDB's timescaledb_pre_restore() and timescaledb_post_restore() around pg_restore.

Real TimescaleDB cannot be installed here: the `timescaledb` extension these tests create is a
TEST STAND-IN (tests/fixtures/timescaledb_standin/), installed into the test server's
extension folder for this module and removed afterwards. It has only the two functions, and
they record each call, with the database it was made in, in the table standin_restore_calls.
That table carries no rows through pg_dump (no pg_extension_config_dump), so after a restore
the restored database's table holds exactly the calls the restore made into it.

Real PostgreSQL, pg_dump and pg_restore; the backup is made by our own backup step.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from wizard.core import backup as backup_job
from wizard.core import restore
from wizard.core.connection import PgSettings
from wizard.core.journal import Journal
from wizard.core.reporting import Report
from wizard.sandbox.servers import PostgresServer

STANDIN = Path(__file__).resolve().parent / "fixtures" / "timescaledb_standin"
MARKER = "TEST STAND-IN, NOT TimescaleDB"  # in both files: a leftover of ours, not the real one
PRE = "timescaledb_pre_restore()"
POST = "timescaledb_post_restore()"


def _ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


@pytest.fixture(scope="module")
def timescaledb_standin(pg_server: PostgresServer) -> Iterator[Path]:
    """The stand-in's control and script files in the extension folder of the running
    test server (its own SHAREDIR, as the server reports it), removed afterwards. Never
    replaces a real TimescaleDB's files: the test is skipped then, as it is when the
    folder is not writable (not root) or the server is older than 13 (no trusted
    extensions: the owner role could not create it)."""
    if pg_server.major_version < 13:
        pytest.skip("the stand-in is a trusted extension, which needs PostgreSQL 13 or later")
    with pg_server.admin_connect() as admin:
        row = admin.execute("SELECT setting FROM pg_config WHERE name = 'SHAREDIR'").fetchone()
    assert row is not None
    folder = Path(str(row[0])) / "extension"
    if not os.access(folder, os.W_OK):
        pytest.skip(f"cannot install the TimescaleDB stand-in: {folder} is not writable "
                    f"(run as root, or as the owner of the PostgreSQL installation)")
    sources = sorted(STANDIN.iterdir())
    for source in sources:  # all checked before any is written
        target = folder / source.name
        if target.exists() and not _ours(target):
            pytest.skip(f"{target} exists and is not the test stand-in (a real "
                        "TimescaleDB?): not overwriting it")
    created: list[Path] = []
    try:
        for source in sources:
            target = folder / source.name
            shutil.copyfile(source, target)
            created.append(target)
            target.chmod(0o644)  # the server runs as another user
        yield folder
    finally:
        for target in created:
            target.unlink(missing_ok=True)


def _collect() -> tuple[list[tuple[str, str]], Report]:
    lines: list[tuple[str, str]] = []

    def report(level: str, message: str) -> None:
        lines.append((level, message))

    return lines, report


def _backup(settings: PgSettings, out: Path) -> Path:
    made = backup_job.backup(settings, backup_job.BackupOptions(out),
                             journal=Journal.create(settings, "backup"))
    assert made.verified, made.error
    return Path(made.path)


def _calls(settings: PgSettings) -> list[tuple[str, str]]:
    with settings.connect() as conn:
        return [(str(fn), str(db)) for fn, db in conn.execute(
            "SELECT fn, db FROM standin_restore_calls ORDER BY n").fetchall()]


def _index(lines: list[tuple[str, str]], what: str) -> int:
    found = [i for i, (_level, message) in enumerate(lines) if what in message]
    assert len(found) == 1, (what, found, lines)
    return found[0]


@pytest.mark.pg_matrix("restore")
def test_pre_and_post_restore_run_in_the_new_database_around_pg_restore(
        timescaledb_standin: Path, live: PgSettings, restore_template: str,
        tmp_path: Path) -> None:
    with live.connect(autocommit=True) as conn:  # as the database owner: it is trusted
        conn.execute("CREATE EXTENSION timescaledb")
        # A row in the backed-up database: the restored one must not get it.
        conn.execute("INSERT INTO standin_restore_calls (fn) VALUES ('source')")
    backup = _backup(live, tmp_path / "out")
    lines, report = _collect()
    plan = restore.prepare(live, backup, restore.RestoreOptions(template=restore_template),
                           report=report)
    assert plan.inspection.extensions.count("timescaledb") == 1

    result = restore.run(plan, confirm=live.dbname, report=report)

    assert result.ok, result.error
    assert result.timescaledb
    # Both calls went into the new database (now live under its name), pre first; the
    # source's row stayed behind in the previous database.
    assert _calls(live) == [("pre", plan.restore_db), ("post", plan.restore_db)]
    assert result.before_db is not None
    assert _calls(live.with_dbname(result.before_db)) == [("source", live.dbname)]
    pre = _index(lines, PRE)
    restoring = _index(lines, f"restoring {plan.inspection.path} into {plan.restore_db}")
    post = _index(lines, POST)
    assert lines[pre] == ("step", f"the backup holds the timescaledb extension: running "
                                  f"{PRE} in {plan.restore_db} before pg_restore")
    assert lines[post] == ("step", f"running {POST} in {plan.restore_db}")
    assert lines[restoring][0] == "step"
    pg_restore_lines = [i for i, (_lvl, m) in enumerate(lines) if m.startswith("pg_restore:")]
    assert pg_restore_lines  # its --verbose output, reported while it ran
    assert pre < restoring < min(pg_restore_lines) <= max(pg_restore_lines) < post


@pytest.mark.pg_matrix("restore")
def test_a_backup_without_the_extension_calls_neither(live: PgSettings, restore_template: str,
                                                      tmp_path: Path) -> None:
    backup = _backup(live, tmp_path / "out")
    lines, report = _collect()
    plan = restore.prepare(live, backup, restore.RestoreOptions(template=restore_template),
                           report=report)
    assert "timescaledb" not in plan.inspection.extensions

    result = restore.run(plan, confirm=live.dbname, report=report)

    assert result.ok, result.error
    assert not result.timescaledb
    assert not [m for _l, m in lines if "timescaledb" in m]
    with live.connect() as conn:
        row = conn.execute("SELECT count(*) FROM pg_extension "
                           "WHERE extname = 'timescaledb'").fetchone()
    assert row is not None
    assert row[0] == 0
