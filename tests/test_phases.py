"""The change window in two phases, on real PostgreSQL, pg_dump/pg_restore and Redis: prepare
while the application runs, then the window, with stop and start commands that write down
when they ran (a shell appending the time to a file: the stand-in for pm2 or systemd)."""

from __future__ import annotations

import re
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from wizard.cli import main as cli_main
from wizard.core import jobs, phases
from wizard.core.backup import BackupOptions
from wizard.core.connection import PgSettings
from wizard.core.execute import RunOptions
from wizard.core.journal import Journal
from wizard.core.phases import PrepareOptions, WindowOptions, WindowRefused
from wizard.core.prove import ProofOptions
from wizard.core.redis_conn import RedisSettings
from wizard.core.report import build_report, render_html
from wizard.sandbox.redis_seed import seed_redis
from wizard.sandbox.servers import RedisServer


def prepare(pg: PgSettings, tmp_path: Path, redis_settings: RedisSettings | None = None,
            restore_template: str = "template0") -> phases.Prepared:
    options = PrepareOptions(BackupOptions(out_dir=tmp_path / "backups"),
                             proof=ProofOptions(template=restore_template))
    return phases.prepare(pg, redis_settings, options=options)


def events(folder: str) -> list[str]:
    return [e["event"] for e in Journal(Path(folder)).events()]


def watched_table(prepared: phases.Prepared) -> dict[str, Any]:
    assert [w["label"] for w in prepared.watched] == ["wallet.prosumer_id"]
    return prepared.watched[0]


def add_orphan(pg: PgSettings, watched: dict[str, Any]) -> None:
    """One row of a watched column pointed at an owner that does not exist (the column has
    no key yet, so PostgreSQL lets it): a row written after the scan, the app still up."""
    with pg.connect() as conn:
        conn.execute(psycopg.sql.SQL(
            "UPDATE {t} SET {c} = 'no-such-owner' WHERE ctid = (SELECT min(ctid) FROM {t})")
            .format(t=psycopg.sql.Identifier(watched["table"]),
                    c=psycopg.sql.Identifier(watched["column"])))


@pytest.mark.pg_matrix("migrate")  # the snapshot horizon differs before 13
def test_prepare_then_window_migrates_with_the_downtime_measured(
        app_clock: Any, drop_key: Any, pg_db: PgSettings, tmp_path: Path, redis_server: RedisServer,
        redis_client: redis.Redis, restore_template: str) -> None:
    seed_redis(redis_client, 20)
    redis_settings = RedisSettings.from_url(f"{redis_server.url}/1",
                                            password=redis_server.password)
    prepared = prepare(pg_db, tmp_path, redis_settings, restore_template)
    assert prepared.ok, prepared.problems
    assert prepared.backup is not None
    assert prepared.backup["proven"]
    assert prepared.digest
    assert prepared.blocked_ms is not None
    assert prepared.redis is not None
    assert prepared.redis["keys"] > 0
    assert jobs.inspect(pg_db).state == "pre"  # prepare changed nothing in the schema
    assert "phase_prepared" in events(prepared.journal)
    before = datetime.now(timezone.utc).timestamp()
    result = phases.window(pg_db, redis_settings, options=WindowOptions(
        stop_command=app_clock.command("stopped"), start_command=app_clock.command("started")))
    assert result.ok, result.error
    assert jobs.inspect(pg_db).state == "migrated"
    assert result.redis_changed
    stopped, started = app_clock.times("stopped"), app_clock.times("started")
    assert len(stopped) == 1
    assert len(started) == 1
    assert before < stopped[0] < started[0]
    assert result.downtime_s is not None
    # stop → start, as the commands themselves saw it (the stop command's own run and the
    # start command's interpreter start make the difference)
    assert abs(result.downtime_s - (started[0] - stopped[0])) < 1.0
    assert result.writes_at_risk_s is not None
    assert result.writes_at_risk_s > 0
    assert result.recheck is not None
    assert result.recheck["digest_equal"]
    assert result.recheck["orphans"] == 0
    assert all(c["scope"] == "rows written since the scan" for c in result.recheck["columns"])
    said = events(result.journal)
    assert said.index("window_opened") < said.index("window_rechecked") \
        < said.index("run_finished") < said.index("window_closed")
    assert said.count("app_command") == 2
    # The window's report: the downtime, what a restore would lose, and the prepare phase.
    report = build_report(Journal(Path(result.journal)))
    assert report.rollback is not None
    assert report.rollback.path == prepared.backup["path"]
    text = " ".join(re.sub(r"<[^>]+>", " ", render_html(report)).split())
    assert f"the application started again: downtime {result.downtime_s:.2f} s" in text
    assert (f"a restore of the prepared backup would lose {result.writes_at_risk_s:g} s of "
            "writes") in text
    assert "re-check in " in text
    assert "Prepare phase" in " ".join(
        re.sub(r"<[^>]+>", " ", render_html(build_report(Journal(Path(prepared.journal)))))
        .split())


@pytest.mark.pg_matrix("orphans")  # the snapshot horizon differs before 13
def test_a_new_orphan_in_a_watched_column_refuses_the_window_and_changes_nothing(
        app_clock: Any, drop_key: Any, pg_db: PgSettings, tmp_path: Path,
        restore_template: str) -> None:
    drop_key(pg_db)
    prepared = prepare(pg_db, tmp_path, restore_template=restore_template)
    assert prepared.ok, prepared.problems
    add_orphan(pg_db, watched_table(prepared))  # written after the scan, app still up
    result = phases.window(pg_db, options=WindowOptions(
        stop_command=app_clock.command("stopped"), start_command=app_clock.command("started")))
    assert not result.ok
    assert result.error is not None
    assert "1 orphan row(s) written since the prepare phase's scan" in result.error
    assert watched_table(prepared)["label"] in result.error
    assert jobs.inspect(pg_db).state == "pre"
    assert len(app_clock.times("stopped")) == 1
    assert app_clock.times("started") == []  # the new version must not start on the old schema
    assert "the application is still stopped" in result.next_steps[0]


@pytest.mark.pg_matrix("orphans")  # the snapshot horizon differs before 13
def test_a_deleted_parent_makes_the_recheck_read_whole_columns_and_find_its_orphan(
        app_clock: Any, drop_key: Any, pg_db: PgSettings, tmp_path: Path,
        restore_template: str) -> None:
    """A child row older than the scan loses its parent after it: nothing in the child's
    xmin says so, the parent's delete counter does, and the whole column is read."""
    drop_key(pg_db)
    with pg_db.connect() as conn:
        conn.execute("INSERT INTO prosumer SELECT 'lonely', 'lonely@example.org', "
                     "password_hash, name, created_at, updated_at, NULL FROM prosumer LIMIT 1")
        conn.execute("UPDATE wallet SET prosumer_id = 'lonely' "
                     "WHERE ctid = (SELECT min(ctid) FROM wallet)")
    prepared = prepare(pg_db, tmp_path, restore_template=restore_template)
    assert prepared.ok, prepared.problems
    with pg_db.connect() as conn:
        deleted = conn.execute("DELETE FROM prosumer WHERE prosumer_id = 'lonely'").rowcount
    assert deleted == 1
    wait_for_statistics(pg_db, prepared)
    result = phases.window(pg_db, options=WindowOptions(app_stopped=True))
    assert not result.ok
    assert result.recheck is not None
    assert "1 rows of prosumer were deleted or updated since the scan" in \
        result.recheck["full_reason"]
    assert [c["scope"] for c in result.recheck["columns"]] == ["whole column"]
    assert result.recheck["orphans"] == 1
    assert jobs.inspect(pg_db).state == "pre"


def wait_for_statistics(pg: PgSettings, prepared: phases.Prepared) -> None:
    """The statistics of a closed session reach the server's counters shortly after."""
    assert prepared.horizon is not None
    for _ in range(50):
        with pg.connect(autocommit=True) as conn:
            row = conn.execute("SELECT n_tup_del + n_tup_upd FROM pg_stat_user_tables "
                               "WHERE relname = 'prosumer'").fetchone()
        if row and row[0] != prepared.horizon["parent_changes"]:
            return
        time.sleep(0.1)
    raise AssertionError("the delete never reached pg_stat_user_tables")


def test_the_window_refuses_before_stopping_without_a_prepare_phase_or_a_stop(
        app_clock: Any, drop_key: Any, pg_db: PgSettings, tmp_path: Path) -> None:
    with pytest.raises(WindowRefused, match="no ready prepare phase"):
        phases.window(pg_db, options=WindowOptions(stop_command=app_clock.command("stopped")))
    assert app_clock.times("stopped") == []


def test_the_cli_runs_prepare_then_window_and_prints_the_downtime(
        app_clock: Any, drop_key: Any, pg_db: PgSettings, tmp_path: Path, passfile: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    dsn = (f"postgresql://{pg_db.user}@{pg_db.host}:{pg_db.port}/{pg_db.dbname}"
           "?sslmode=disable")
    assert cli_main(["window", "--dsn", dsn, "--app-stopped"]) == 3
    assert "no ready prepare phase" in capsys.readouterr().err
    assert cli_main(["prepare", "--dsn", dsn, "--out", str(tmp_path / "b"),
                     "--change", "CHG-7"]) == 0
    said = capsys.readouterr().out
    assert f"✔ prepare phase of {pg_db.dbname}: ready for the window" in said
    # By default a folder written by one pg_dump per core (up to 4), proven by a restore.
    point = re.search(r"rollback point: (\S+) \(sha256 [0-9a-f]{12}…, snapshot \S+, PROVEN\)",
                      said)
    assert point is not None, said
    assert Path(point.group(1)).is_dir()
    # Neither a stop command (none in a profile here) nor --app-stopped: refused, unchanged.
    assert cli_main(["window", "--dsn", dsn]) == 3
    assert "needs the application stopped" in capsys.readouterr().err
    assert jobs.inspect(pg_db).state == "pre"
    assert cli_main(["window", "--dsn", dsn, "--stop-command", app_clock.command("stopped"),
                     "--start-command", app_clock.command("started")]) == 0
    said = capsys.readouterr().out
    assert f"✔ window on {pg_db.dbname}: migrated" in said
    assert "downtime (stop → start): " in said
    assert "a restore of the prepared backup would lose " in said
    assert "a revert loses none" in said
    assert len(app_clock.times("stopped")) == len(app_clock.times("started")) == 1
    assert jobs.inspect(pg_db).state == "migrated"


def test_the_wizards_run_refuses_before_the_stop_without_a_backup(
        app_clock: Any, drop_key: Any, pg_db: PgSettings) -> None:
    """Run migration with a stop command and no verified backup: refused before the stop
    (the guard would refuse after it, leaving the application down for nothing)."""
    plan = jobs.make_plan(jobs.inspect(pg_db), "up", pg_db)
    journal = Journal.create(pg_db, "wizard")
    with pytest.raises(WindowRefused, match="the application was not stopped"):
        phases.stop_then_run(pg_db, plan, stop_command=app_clock.command("stopped"),
                             options=RunOptions(), journal=journal, guard=jobs.Guard())
    assert app_clock.times("stopped") == []
    assert jobs.inspect(pg_db).state == "pre"


def test_the_window_refuses_before_the_stop_when_the_prepared_backup_is_gone(
        app_clock: Any, drop_key: Any, pg_db: PgSettings, tmp_path: Path) -> None:
    """The guard would refuse a rollback point that is no longer on disk after the stop,
    with the application down for nothing: the window asks first."""
    drop_key(pg_db)
    prepared = phases.prepare(pg_db, options=PrepareOptions(
        BackupOptions(out_dir=tmp_path / "backups"), prove=False))
    assert prepared.ok, prepared.problems
    point = Path(str((prepared.backup or {})["path"]))
    shutil.rmtree(point) if point.is_dir() else point.unlink()
    with pytest.raises(WindowRefused, match=r"no verified backup of .* in the run journals.*"
                       rf"\(the prepare phase of .* took {re.escape(str(point))}\)"):
        phases.window(pg_db, options=WindowOptions(stop_command=app_clock.command("stopped")))
    assert app_clock.times("stopped") == []
    assert jobs.inspect(pg_db).state == "pre"
