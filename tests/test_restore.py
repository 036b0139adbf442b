"""Restore: real pg_dump, pg_restore and psql; a new database, checked, swapped in by name."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from psycopg import sql

from wizard.cli import main as cli_main
from wizard.core import backup as backup_job
from wizard.core import jobs, pgtools, restore
from wizard.core.connection import PgSettings
from wizard.core.events import BackupDone
from wizard.core.fingerprint import schema_fingerprint
from wizard.core.journal import Journal
from wizard.core.pgenv import conninfo_arg, libpq_env
from wizard.core.plan import UP
from wizard.core.recover import no_redis, restore_then_clear
from wizard.core.redis_conn import RedisSettings
from wizard.core.reporting import no_progress
from wizard.core.restore_db import db_name_with
from wizard.core.restore_inspect import TocEntry, parse_list_entry, sha256_of
from wizard.sandbox.probes import databases, has_table
from wizard.sandbox.redis_seed import old_order_book_problems, renamed_order_book
from wizard.sandbox.servers import PostgresServer, RedisServer

# --- helpers -----------------------------------------------------------------------------


def pg_dump(server: PostgresServer, settings: PgSettings, out: Path, *args: str) -> Path:
    with libpq_env(settings) as env:
        subprocess.run([str(server.client_tool("pg_dump")), "--no-password", *args, "-f", str(out),
                        f"--dbname={conninfo_arg(settings)}"],
                       env=env, check=True, capture_output=True)
    return out


def record_backup(settings: PgSettings, path: Path, sha256: str | None = None) -> None:
    """Write the journal event our backup step writes, so the restore treats it as ours."""
    journal = Journal.create(settings, "backup")
    journal.record(BackupDone({"path": str(path), "format": "custom",
                               "dbname": settings.dbname, "sha256": sha256 or sha256_of(path),
                               "verified": True, "size_bytes": path.stat().st_size}))


def snapshot(settings: PgSettings) -> tuple[list[str], dict[str, str]]:
    """The schema fingerprint and an md5 of every table's rows, sorted."""
    with settings.connect() as conn:
        fingerprint = schema_fingerprint(conn)
        tables = [r[0] for r in conn.execute(
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE nspname = 'public' AND relkind = 'r' ORDER BY 1").fetchall()]
        sums = {}
        for table in tables:
            row = conn.execute(sql.SQL(
                "SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) "
                "FROM {} t").format(sql.Identifier("public", table))).fetchone()
            sums[table] = row[0] if row else ""
    return fingerprint, sums


def migrate(settings: PgSettings) -> None:
    _plan, result, _journal = jobs.run(settings, UP)
    assert result.ok, result.error
    assert has_table(settings, "user")


def restore_now(settings: PgSettings, backup: Path, **options: Any) -> restore.RestoreResult:
    cancel = options.pop("cancel", None)
    progress = options.pop("progress", no_progress)
    plan = restore.prepare(settings, backup, restore.RestoreOptions(**options))
    return restore.run(plan, confirm=settings.dbname, progress=progress, cancel=cancel)


# --- the round trips ---------------------------------------------------------------------


@pytest.mark.pg_matrix("restore")
def test_custom_backup_then_migrate_then_restore_gives_back_the_exact_database(
        live: PgSettings, pg_server: PostgresServer, pg_major: int, restore_template: str,
        tmp_path: Path) -> None:
    with live.connect(autocommit=True) as conn:  # database-level state a dump does not carry
        conn.execute(sql.SQL("ALTER DATABASE {} SET work_mem = '8MB'").format(
            sql.Identifier(live.dbname)))
    before = snapshot(live)
    backup = pg_dump(pg_server, live, tmp_path / "live.dump", "-Fc")
    record_backup(live, backup)
    migrate(live)
    assert snapshot(live) != before

    plan = restore.prepare(live, backup, restore.RestoreOptions(template=restore_template))
    insp = plan.inspection
    assert (insp.format, insp.dbname, insp.state) == ("custom", live.dbname, "pre")
    assert insp.sha256 == sha256_of(backup)
    assert insp.journal_backup is not None
    assert insp.server_version
    assert insp.pg_dump_version
    assert insp.dumped_at
    assert "prosumer" in insp.tables
    assert insp.toc_entries > 50
    assert plan.expected_counts == {"prosumer": 40}  # from the migration's journal
    # Before 15 the public schema belongs to the bootstrap superuser, an owner the owner
    # role cannot set: pg_restore runs with --no-owner (every other object is the role's).
    assert plan.keep_owners == (pg_major >= 15)
    assert ("--no-owner" in plan.argv()) == (pg_major < 15)
    assert live.password
    assert not any(live.password in a for a in plan.argv())
    fractions: list[float] = []
    result = restore.run(plan, confirm=live.dbname,
                         progress=lambda f, _d: fractions.append(f))

    assert result.ok, result.error
    assert snapshot(live) == before
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert len(fractions) > 10
    assert {c["id"]: c["ok"] for c in result.checks} == {"objects": True, "row_counts": True,
                                                         "database_properties": True}
    # The migrated database is kept under the reported name, as it was.
    assert result.before_db == plan.before_db
    assert result.before_db in databases(pg_server)
    assert has_table(live.with_dbname(result.before_db), "user")
    assert result.drop_old_sql == f'DROP DATABASE "{result.before_db}";'
    assert any("cache" in s for s in result.next_steps)
    with live.connect() as conn:
        row = conn.execute("SELECT current_setting('work_mem')").fetchone()
        assert row is not None
        assert row[0] == "8MB"
    events = [e["event"] for e in Journal(Path(str(result.journal))).events()]
    assert events[-4:] == ["restore_program", "restore_checks", "restore_swapped",
                           "restore_finished"]


@pytest.mark.pg_matrix("restore")
def test_plain_sql_backup_is_restored_with_psql(live: PgSettings, pg_server: PostgresServer,
                                                pg_major: int, tmp_path: Path) -> None:
    before = snapshot(live)
    backup = pg_dump(pg_server, live, tmp_path / "live.sql")
    migrate(live)
    client = pgtools.probe(pg_server.client_tool("pg_dump"))
    assert client is not None
    if pg_major < 17 <= client.major:
        # pg_dump 17's script sets transaction_timeout, which 16 does not know: refused
        # before anything changes, naming the setting.
        with pytest.raises(restore.RestoreRefused,
                           match=rf"sets transaction_timeout, which this PostgreSQL "
                                 rf"{pg_major} server does not know"):
            restore.prepare(pg_server.settings(live.dbname), backup)
        return
    if pg_major < 15:
        # The dump sets the public schema's owner (the bootstrap superuser before 15), which
        # psql cannot do as the owner role: refused before anything changes, naming it.
        refusal = (r"extension\(s\) uuid-ossp, which role enerlink cannot create" if pg_major < 13
                   else r"owned by postgres \(SCHEMA public\b.*superuser")
        with pytest.raises(restore.RestoreRefused, match=refusal):
            restore.prepare(live, backup)
        live = pg_server.settings(live.dbname)  # a superuser restores it
    plan = restore.prepare(live, backup)
    assert plan.inspection.format == "plain"
    assert plan.tool.path.name == "psql"
    assert "ON_ERROR_STOP=1" in plan.argv()
    assert "prosumer" in plan.inspection.tables
    assert "enerlink" in plan.inspection.owners
    details: list[str] = []
    result = restore.run(plan, confirm=live.dbname, progress=lambda _f, d: details.append(d))
    assert result.ok, result.error
    assert snapshot(live) == before
    assert "public.wallet" in details  # progress named the data loads as psql reached them


@pytest.mark.pg_matrix("restore")
def test_directory_backup_with_two_jobs(live: PgSettings, pg_server: PostgresServer,
                                        restore_template: str, tmp_path: Path) -> None:
    before = snapshot(live)
    # The backup step itself (directory format, two jobs), journaled as in a real run.
    made = backup_job.backup(live, backup_job.BackupOptions(tmp_path / "out", format="directory",
                                                            jobs=2),
                             journal=Journal.create(live, "backup"))
    assert made.verified, made.error
    backup = Path(made.path)
    migrate(live)
    plan = restore.prepare(live, backup, restore.RestoreOptions(jobs=2,
                                                                template=restore_template))
    assert plan.inspection.format == "directory"
    assert plan.inspection.sha256 == made.sha256  # the same sum as the backup step's
    argv = plan.argv()
    assert argv[argv.index("--jobs") + 1] == "2"
    assert argv[-1] == str(backup)
    result = restore.run(plan, confirm=live.dbname)
    assert result.ok, result.error
    assert snapshot(live) == before


# --- refusals before anything changes ----------------------------------------------------


def test_a_truncated_backup_is_refused_before_anything_changes(
        live: PgSettings, pg_server: PostgresServer, tmp_path: Path) -> None:
    full = pg_dump(pg_server, live, tmp_path / "full.dump", "-Fc")
    data = full.read_bytes()
    cut = tmp_path / "cut.dump"
    cut.write_bytes(data[:-200])  # the TOC at the start still lists fine: the data ends early
    stub = tmp_path / "stub.dump"
    stub.write_bytes(data[:300])  # the TOC itself is cut
    plain = pg_dump(pg_server, live, tmp_path / "full.sql")
    cut_sql = tmp_path / "cut.sql"
    cut_sql.write_bytes(plain.read_bytes()[: plain.stat().st_size // 2])
    dbs = databases(pg_server)
    with pytest.raises(restore.RestoreRefused, match=r"is damaged: pg_restore could not read"):
        restore.prepare(live, cut)
    with pytest.raises(restore.RestoreRefused, match=r"truncated"):
        restore.prepare(live, cut_sql)
    with pytest.raises(restore.RestoreRefused, match=r"pg_restore --list cannot read"):
        restore.prepare(live, stub)
    assert databases(pg_server) == dbs


def test_a_backup_whose_sha256_changed_is_refused_naming_both_hashes(
        live: PgSettings, pg_server: PostgresServer, tmp_path: Path) -> None:
    backup = pg_dump(pg_server, live, tmp_path / "live.dump", "-Fc")
    recorded = sha256_of(backup)
    record_backup(live, backup, recorded)
    with open(backup, "r+b") as fh:  # one byte changed in the data, the TOC untouched
        fh.seek(-100, os.SEEK_END)
        byte = fh.read(1)
        fh.seek(-100, os.SEEK_END)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(restore.RestoreRefused) as info:
        restore.prepare(live, backup)
    assert recorded in str(info.value)
    assert sha256_of(backup) in str(info.value)


def test_a_role_without_createdb_is_refused_before_starting(
        live: PgSettings, pg_server: PostgresServer, tmp_path: Path) -> None:
    backup = pg_dump(pg_server, live, tmp_path / "live.dump", "-Fc")
    with pg_server.admin_connect() as admin:
        admin.execute("CREATE ROLE restore_nocreatedb LOGIN NOCREATEDB PASSWORD 'pw-for-test'")
    try:
        weak = pg_server.settings(live.dbname, "restore_nocreatedb", "pw-for-test")
        dbs = databases(pg_server)
        with pytest.raises(restore.RestoreRefused, match=r"lacks CREATEDB.*ALTER ROLE"):
            restore.prepare(weak, backup)
        assert databases(pg_server) == dbs
    finally:
        with pg_server.admin_connect() as admin:
            admin.execute("DROP ROLE restore_nocreatedb")


def test_not_a_backup_or_a_multi_database_dump_is_refused(live: PgSettings,
                                                           tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01binary")
    with pytest.raises(restore.RestoreRefused, match="neither a pg_dump archive"):
        restore.prepare(live, junk)
    gz = tmp_path / "x.sql.gz"
    gz.write_bytes(b"\x1f\x8b\x08rest")
    with pytest.raises(restore.RestoreRefused, match="gunzip"):
        restore.prepare(live, gz)
    script = tmp_path / "all.sql"
    script.write_text("--\n-- PostgreSQL database dump\n--\n\\connect other\nSELECT 1;\n"
                      "-- PostgreSQL database dump complete\n")
    with pytest.raises(restore.RestoreRefused, match=r"switches databases"):
        restore.prepare(live, script)
    with pytest.raises(restore.RestoreRefused, match="does not exist"):
        restore.prepare(live, tmp_path / "missing.dump")


def test_cli_refuses_a_wrong_confirmation_after_showing_the_inspection(
        live: PgSettings, pg_server: PostgresServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    backup = pg_dump(pg_server, live, tmp_path / "live.dump", "-Fc")
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"{live.host}:{live.port}:*:{live.user}:{live.password}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    dsn = f"postgresql://{live.user}@{live.host}:{live.port}/{live.dbname}?sslmode=disable"
    dbs = databases(pg_server)
    code = cli_main(["restore", str(backup), "--dsn", dsn, "--confirm", "enerlink_db"])
    out, err = capsys.readouterr()
    assert code == 3
    assert f"database: {live.dbname}" in out
    assert "dumped at:" in out
    assert "--confirm must repeat the name" in err
    assert "Nothing was changed" in err
    assert databases(pg_server) == dbs
    with pytest.raises(restore.RestoreRefused, match="does not match"):
        restore.run(restore.prepare(live, backup), confirm=live.dbname + "x")
    assert databases(pg_server) == dbs
    # The right name restores; --json for machines.
    code = cli_main(["restore", str(backup), "--dsn", dsn, "--confirm", live.dbname, "--json"])
    out, _err = capsys.readouterr()
    assert code == 0, out
    assert '"ok": true' in out
    assert (live.password or "\0") not in out


# --- the swap, cancel, checks, warnings -------------------------------------------------


@pytest.mark.pg_matrix("restore")
def test_other_sessions_on_the_live_database_are_terminated_and_the_swap_succeeds(
        live: PgSettings, pg_server: PostgresServer, restore_template: str,
        tmp_path: Path) -> None:
    backup = pg_dump(pg_server, live, tmp_path / "live.dump", "-Fc")
    migrate(live)
    app = live.with_dbname(live.dbname).connect(autocommit=True)  # the application, idle
    try:
        row = app.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        hooked: list[str | None] = []  # the caller's follow-up (the cache job) runs after
        plan = restore.prepare(live, backup, restore.RestoreOptions(template=restore_template))
        assert [s.pid for s in plan.sessions] == [row[0]]  # listed before anything changes
        with pytest.raises(restore.RestoreRefused, match=r"would be terminated at the swap"):
            restore.run(plan, confirm=live.dbname)  # not agreed to: nothing changed
        plan.options.terminate_sessions = True  # agreed (CLI flag, the wizard's typed name)
        result = restore.run(plan, confirm=live.dbname,
                             after_swap=lambda r: hooked.append(r.before_db))
        assert result.ok, result.error
        assert hooked == [plan.before_db]
        assert row[0] in [t["pid"] for t in result.terminated]
        with pytest.raises(psycopg.OperationalError):
            app.execute("SELECT 1")
    finally:
        app.close()
    assert has_table(live, "prosumer")
    assert not has_table(live, "user")


def test_cancel_mid_restore_drops_the_new_database_and_leaves_live_untouched(
        live: PgSettings, pg_server: PostgresServer, tmp_path: Path) -> None:
    backup = pg_dump(pg_server, live, tmp_path / "live.dump", "-Fc")
    migrate(live)
    before = snapshot(live)
    dbs = databases(pg_server)
    cancel = threading.Event()
    seen: list[float] = []

    def progress(fraction: float, _detail: str) -> None:
        seen.append(fraction)
        if len(seen) == 3:  # a few TOC items in: pg_restore is running
            cancel.set()

    result = restore_now(live, backup, cancel=cancel, progress=progress, jobs=1)
    assert result.cancelled
    assert not result.ok
    assert result.dropped
    assert result.before_db is None
    assert 0 < max(seen) < 1
    assert databases(pg_server) == dbs  # the half-restored database is gone
    assert snapshot(live) == before
    events = [e["event"] for e in Journal(Path(str(result.journal))).events()]
    assert "restore_dropped" in events
    assert "restore_swapped" not in events


def test_rows_written_between_backup_and_migration_stop_the_swap(
        live: PgSettings, pg_server: PostgresServer, tmp_path: Path) -> None:
    backup = pg_dump(pg_server, live, tmp_path / "live.dump", "-Fc")
    with live.connect() as conn:
        conn.execute("INSERT INTO prosumer (prosumer_id, email, password_hash, created_at, "
                     "updated_at) VALUES ('late', 'late@example.org', 'x', now(), now())")
    migrate(live)
    dbs = databases(pg_server)
    result = restore_now(live, backup)
    assert not result.ok
    assert not result.cancelled
    assert "prosumer: 40 restored, 41 before the migration" in str(result.error)
    assert databases(pg_server) == dbs
    assert has_table(live, "user")
    result = restore_now(live, backup, check_counts=False)  # the DBA's explicit choice
    assert result.ok, result.error


def test_errors_ignored_by_pg_restore_are_warnings_not_a_failure(
        live: PgSettings, pg_server: PostgresServer, tmp_path: Path) -> None:
    with pg_server.admin_connect() as admin:
        admin.execute("CREATE ROLE restore_gone NOLOGIN")
    with live.connect() as conn:
        conn.execute("GRANT SELECT ON wallet TO restore_gone")
    backup = pg_dump(pg_server, live, tmp_path / "live.dump", "-Fc")
    with live.connect() as conn:
        conn.execute("REVOKE SELECT ON wallet FROM restore_gone")
    with pg_server.admin_connect() as admin:
        admin.execute("DROP ROLE restore_gone")
    result = restore_now(live, backup)
    assert result.ok, result.error
    assert result.ignored_errors > 0  # pg_restore's own count
    assert f"pg_restore: errors ignored on restore: {result.ignored_errors}" in result.warnings
    assert any("from TOC entry" in w and "ACL TABLE wallet" in w for w in result.warnings)
    assert any('role "restore_gone" does not exist' in w for w in result.warnings)


def test_names_stay_within_63_bytes_and_cut_at_a_character() -> None:
    base = "é" * 40  # 80 bytes
    name = db_name_with(base, "_before_restore_20250101_000000")
    assert len(name.encode()) <= 63
    assert name.endswith("_before_restore_20250101_000000")
    assert name.startswith("é" * 16)


def test_list_lines_are_parsed_with_multi_word_types() -> None:
    entry = parse_list_entry(
        "3313; 2606 16556 FK CONSTRAINT public market_trade FK_028c93bfb2 enerlink")
    assert entry == TocEntry("FK CONSTRAINT", "public", "market_trade FK_028c93bfb2",
                                     "enerlink")
    entry = parse_list_entry('3488; 0 0 COMMENT - EXTENSION "uuid-ossp" ')
    assert entry == TocEntry("COMMENT", "-", 'EXTENSION "uuid-ossp"', "")


def test_a_session_we_may_not_terminate_is_refused_before_anything_changes(
        live: PgSettings, pg_server: PostgresServer, tmp_path: Path) -> None:
    backup = pg_dump(pg_server, live, tmp_path / "live.dump", "-Fc")
    migrate(live)
    with pg_server.admin_connect() as admin:
        admin.execute("CREATE ROLE restore_app LOGIN PASSWORD 'app-pw-for-test'")
    app = pg_server.settings(live.dbname, "restore_app", "app-pw-for-test").connect()
    try:
        dbs = databases(pg_server)
        with pytest.raises(restore.RestoreRefused) as info:
            restore.prepare(live, backup)
        assert ("cannot be terminated by enerlink: enerlink is neither a member of "
                "restore_app nor of pg_signal_backend") in str(info.value)
        assert "Nothing was changed" in str(info.value)
        assert databases(pg_server) == dbs
        assert has_table(live, "user")  # live untouched, still migrated
        app.execute("SELECT 1")  # and its session still alive
    finally:
        app.close()
        with pg_server.admin_connect() as admin:
            admin.execute("DROP ROLE restore_app")


def test_a_database_name_with_spaces_and_non_ascii_letters(
        pg_server: PostgresServer, owner: PgSettings, template_db: object,
        tmp_path: Path) -> None:
    name = "EnerLink prüf-Datenbank ñ"
    with pg_server.admin_connect() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE enerlink_template OWNER {}").format(
            sql.Identifier(name), sql.Identifier(owner.user)))
    odd = owner.with_dbname(name)
    try:
        before = snapshot(odd)
        backup = pg_dump(pg_server, odd, tmp_path / "odd.dump", "-Fc")
        migrate(odd)
        result = restore_now(odd, backup)
        assert result.ok, result.error
        assert snapshot(odd) == before
        assert result.before_db == f"{name}_before_restore_{result.restore_db[-15:]}"
        assert has_table(odd.with_dbname(result.before_db), "user")
    finally:
        for db in databases(pg_server):
            if db.startswith(name):
                pg_server.drop_database(db)


@pytest.mark.pg_matrix("restore")
def test_an_extension_the_role_cannot_create_is_refused_first_then_taken_from_a_template(
        live: PgSettings, pg_server: PostgresServer, pg_major: int, tmp_path: Path) -> None:
    # Before 13 no extension is trusted (the sample's uuid-ossp was made by a superuser);
    # from 13 on, file_fdw stands for any untrusted one a superuser installed.
    ext = "uuid-ossp" if pg_major < 13 else "file_fdw"
    with pg_server.admin_connect(live.dbname) as admin:
        admin.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext)))
    backup = pg_dump(pg_server, live, tmp_path / "live.dump", "-Fc")
    record_backup(live, backup)
    before = snapshot(live)
    dbs = databases(pg_server)
    with pytest.raises(restore.RestoreRefused) as info:
        restore.prepare(live, backup)
    text = str(info.value)
    assert f"needs extension(s) {ext}, which role {live.user} cannot create" in text
    assert "restore with template1 as the template (CLI --template template1" in text
    assert "Nothing was changed" in text
    assert databases(pg_server) == dbs
    # What the message says to do: a superuser pre-creates it in a template.
    template = f"{live.dbname}_tmpl"
    with pg_server.admin_connect() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0").format(
            sql.Identifier(template), sql.Identifier(live.user)))
    try:
        with pg_server.admin_connect(template) as admin:
            admin.execute(sql.SQL("CREATE EXTENSION {}").format(sql.Identifier(ext)))
        result = restore_now(live, backup, template=template)
        assert result.ok, result.error
        assert snapshot(live) == before
    finally:
        pg_server.drop_database(template)


# --- restore, then clear the application's cache: one job for the CLI and the wizard -----


def test_restoring_a_pre_rename_backup_turns_redis_back_to_the_old_names_in_the_same_journal(
        live: PgSettings, pg_server: PostgresServer, restore_template: str,
        redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path) -> None:
    backup = pg_dump(pg_server, live, tmp_path / "live.dump", "-Fc")
    migrate(live)
    renamed_order_book(redis_client)
    plan = restore.prepare(live, backup, restore.RestoreOptions(template=restore_template))
    settings = RedisSettings(url=redis_server.url, password=redis_server.password, db=1)
    outcome = restore_then_clear(plan, live.dbname, settings)
    assert outcome.ok, outcome.result.error or outcome.cache_error
    assert outcome.cache is not None
    assert outcome.cache.direction == "down"
    assert outcome.cache.changed == 2
    assert old_order_book_problems(redis_client) == []
    assert has_table(live, "prosumer")
    assert restore.CACHE_NEXT not in outcome.result.next_steps  # done, not left to do
    journal = Journal(Path(str(outcome.result.journal)))
    events = [e["event"] for e in journal.events()]
    assert events[-3:] == ["restore_swapped", "redis_migrated", "restore_finished"]
    assert journal.events("redis_migrated")[0]["result"]["changed"] == 2
    assert restore.CACHE_NEXT not in journal.events("restore_finished")[-1]["result"][
        "next_steps"]
    assert redis_server.password not in journal.path.read_text()


def test_a_failed_restore_leaves_redis_alone_and_without_redis_the_run_says_so(
        live: PgSettings, pg_server: PostgresServer, redis_server: RedisServer,
        redis_client: redis.Redis, tmp_path: Path) -> None:
    backup = pg_dump(pg_server, live, tmp_path / "live.dump", "-Fc")
    with live.connect() as conn:  # a row the backup lacks: the count check stops the swap
        conn.execute("INSERT INTO prosumer (prosumer_id, email, password_hash, created_at, "
                     "updated_at) VALUES ('late', 'late@example.org', 'x', now(), now())")
    migrate(live)
    renamed_order_book(redis_client)
    settings = RedisSettings(url=redis_server.url, password=redis_server.password, db=1)
    outcome = restore_then_clear(restore.prepare(live, backup), live.dbname, settings)
    assert not outcome.result.ok
    assert outcome.cache is None
    assert redis_client.hget("orders:order_7", "userId") == "user_7"  # nothing swapped
    said: list[tuple[str, str]] = []
    outcome = restore_then_clear(
        restore.prepare(live, backup, restore.RestoreOptions(check_counts=False)),
        live.dbname, None, report=lambda level, message: said.append((level, message)))
    assert outcome.ok, outcome.result.error
    assert outcome.cache is None
    assert outcome.cache_note == no_redis()
    assert ("warn", no_redis()) in said
    assert restore.CACHE_NEXT in outcome.result.next_steps


def _cli_env(live: PgSettings, redis_server: RedisServer, tmp_path: Path,
             redis_password: str) -> dict[str, str]:
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"{live.host}:{live.port}:*:{live.user}:{live.password}\n")
    passfile.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "REDISCLI"))}
    return {**env, "PGPASSFILE": str(passfile), "REDISCLI_AUTH": redis_password}


def test_cli_restore_with_redis_url_brings_redis_back_to_the_old_names_after_the_swap(
        live: PgSettings, pg_server: PostgresServer, restore_template: str,
        redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path) -> None:
    backup = pg_dump(pg_server, live, tmp_path / "live.dump", "-Fc")
    migrate(live)
    renamed_order_book(redis_client)
    dsn = f"postgresql://{live.user}@{live.host}:{live.port}/{live.dbname}"
    argv = [sys.executable, "-m", "wizard", "restore", str(backup), "--dsn", dsn,
            "--confirm", live.dbname, "--template", restore_template,
            "--redis-url", f"{redis_server.url}/1"]
    # A wrong Redis password is found before anything changes.
    dbs = databases(pg_server)
    out = subprocess.run(argv, env=_cli_env(live, redis_server, tmp_path, "not-it"),
                         capture_output=True, text=True, check=False,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "wrong password or user for Redis" in out.stderr
    assert databases(pg_server) == dbs
    assert has_table(live, "user")
    out = subprocess.run(argv, env=_cli_env(live, redis_server, tmp_path,
                                            redis_server.password),
                         capture_output=True, text=True, check=False,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "restore succeeded" in out.stdout
    assert "✔ Redis: 2 keys brought to the old names in" in out.stdout
    assert "bring the application's Redis data to the restored schema next" not in out.stdout
    assert "bringing Redis to the restored schema (state pre)" in out.stderr
    assert old_order_book_problems(redis_client) == []
    assert has_table(live, "prosumer")
    assert redis_server.password not in out.stdout + out.stderr
