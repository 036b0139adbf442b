"""Orphan scan, export and delete against the real sample database, before and after."""

from __future__ import annotations

import csv
import json
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from wizard.core import jobs, names, orphans
from wizard.core.connection import PgSettings
from wizard.core.discovery import discover
from wizard.core.journal import Journal
from wizard.core.plan import UP, build_up
from wizard.core.reporting import Cancelled
from wizard.sandbox.probes import run_cli
from wizard.sandbox.seed import ORPHAN_INSERTS, inject_orphans
from wizard.sandbox.servers import PostgresServer

SEVEN = [p.label for p in names.REFERENCING]
AFTER = [f"{p.table}.{p.new}" for p in names.REFERENCING]


def _counts(scan: orphans.OrphanScan) -> dict[str, int]:
    return {c.label: c.count for c in scan.columns}


def _row_counts(settings: PgSettings) -> dict[str, int]:
    counts = {}
    with settings.connect() as conn:
        for t in names.CHILD_TABLES:
            row = conn.execute(f'SELECT count(*) FROM public."{t}"').fetchone()
            assert row is not None
            counts[t] = int(row[0])
    return counts


def _inject(pg_server: PostgresServer, settings: PgSettings, per_column: int) -> None:
    with pg_server.admin_connect(settings.dbname) as admin:
        assert inject_orphans(admin, per_column) == dict.fromkeys(ORPHAN_INSERTS, per_column)


def test_clean_sample_database_has_no_orphans(pg_db: PgSettings) -> None:
    scan = orphans.scan(pg_db)
    assert scan.clean
    assert scan.state == "pre"
    assert scan.parent == "prosumer"
    assert _counts(scan) == dict.fromkeys(SEVEN, 0)
    assert all(c.fk_name and c.fk_validated for c in scan.columns)
    assert "no orphans" in scan.lines()[0]


@pytest.mark.pg_matrix("orphans")
def test_injected_orphans_are_counted_per_column_with_at_most_20_samples(
        pg_server: PostgresServer, pg_db: PgSettings) -> None:
    _inject(pg_server, pg_db, 23)
    progress: list[float] = []
    scan = orphans.scan(pg_db, progress=lambda f, _d: progress.append(f))
    assert _counts(scan) == dict.fromkeys(SEVEN, 23)
    for col in scan.columns:
        assert len(col.samples) == orphans.SAMPLE_LIMIT
        assert all(row[col.columns[0]].startswith("prosumer_ghost_") for row in col.samples)
        assert set(col.samples[0]) >= {col.columns[0], *col.key_columns}  # full rows
    assert progress == sorted(progress)
    assert progress[-1] == 1.0
    text = "\n".join(scan.lines())
    assert "161 orphan rows" in text
    assert "... 3 more" in text


@pytest.mark.pg_matrix("orphans")
def test_scan_works_after_the_rename_with_the_new_names(pg_server: PostgresServer,
                                                        pg_db: PgSettings) -> None:
    _inject(pg_server, pg_db, 2)
    _plan, result, _journal = jobs.run(pg_db, UP)
    assert result.ok, result.error
    scan = orphans.scan(pg_db)
    assert (scan.parent, scan.parent_key, scan.state) == ("user", "user_id", "migrated")
    assert _counts(scan) == dict.fromkeys(AFTER, 2)


def test_a_scan_taken_before_the_rename_is_not_used_after_it(
        pg_server: PostgresServer, pg_db: PgSettings, tmp_path: Path) -> None:
    _inject(pg_server, pg_db, 1)
    scan = orphans.scan(pg_db)
    assert jobs.run(pg_db, UP)[1].ok
    with pytest.raises(orphans.OrphanError, match=r"(?i)scan again"):
        orphans.export(pg_db, scan, tmp_path / "x")
    assert list((tmp_path / "x").iterdir()) == []


def test_partial_state_uses_whatever_names_are_there(pg_server: PostgresServer,
                                                     pg_db: PgSettings) -> None:
    _inject(pg_server, pg_db, 1)
    with pg_db.connect() as conn:
        conn.execute("ALTER TABLE prosumer RENAME COLUMN prosumer_id TO user_id")
        conn.execute("ALTER TABLE wallet RENAME COLUMN prosumer_id TO user_id")
    scan = orphans.scan(pg_db)
    assert scan.state == "partial"
    assert (scan.parent, scan.parent_key) == ("prosumer", "user_id")
    assert _counts(scan)["wallet.user_id"] == 1
    assert _counts(scan)["smart_meter.prosumer_id"] == 1


def _drop_wallet_fk_and_write_orphans(settings: PgSettings) -> None:
    """The realistic case: an FK dropped by hand, rows written without it (no superuser)."""
    with settings.connect() as conn:
        conn.execute('ALTER TABLE wallet DROP CONSTRAINT "FK_62a1a16628b883318e6b443cf52"')
        conn.execute("INSERT INTO wallet (is_active, wallet_address, prosumer_id, created_at, "
                     "import_method) SELECT true, 'orphan_w' || g, 'gone_' || g, now(), "
                     "'GENERATED' FROM generate_series(1, 4) g")


def test_missing_fk_orphans_block_the_migration_and_name_the_column(
        pg_server: PostgresServer, pg_db: PgSettings) -> None:
    _drop_wallet_fk_and_write_orphans(pg_db)
    _inject(pg_server, pg_db, 1)  # smart_meter & co. have orphans too, but keep their FK
    scan = orphans.scan(pg_db)
    wallet = next(c for c in scan.columns if c.table == "wallet")
    assert (wallet.count, wallet.fk_name) == (5, None)
    with pg_db.connect() as conn:
        plan = build_up(discover(conn))
    assert orphans.needs_orphan_check(plan)
    blocking = orphans.blocking_orphans(scan, plan)
    assert len(blocking) == 1
    assert blocking[0].startswith("wallet.prosumer_id: 5 orphan rows; the migration must add "
                                  "foreign key FK_72548a47ac4a996cd254b082522")
    assert f"--delete --confirm {pg_db.dbname}" in blocking[0]


def test_a_plan_without_new_fks_needs_no_orphan_check(pg_server: PostgresServer,
                                                      pg_db: PgSettings) -> None:
    _inject(pg_server, pg_db, 1)
    with pg_db.connect() as conn:
        plan = build_up(discover(conn))
    assert not orphans.needs_orphan_check(plan)
    assert orphans.blocking_orphans(orphans.scan(pg_db), plan) == []


def test_a_clean_scan_blocks_nothing(pg_db: PgSettings) -> None:
    with pg_db.connect() as conn:
        conn.execute('ALTER TABLE wallet DROP CONSTRAINT "FK_62a1a16628b883318e6b443cf52"')
        plan = build_up(discover(conn))
    assert orphans.blocking_orphans(orphans.scan(pg_db), plan) == []


def test_other_tables_with_an_fk_to_prosumer_are_scanned_exported_and_deleted(
        pg_server: PostgresServer, pg_db: PgSettings, tmp_path: Path) -> None:
    """Another team's table: its own schema, partitioned (each partition has a copy of the
    FK, and the same ctids), no primary key, a nullable column."""
    with pg_db.connect() as conn:
        conn.execute('CREATE SCHEMA "audit trail"')
        conn.execute('CREATE TABLE "audit trail".login (who varchar REFERENCES prosumer '
                     "(prosumer_id), at date NOT NULL) PARTITION BY RANGE (at)")
        for year in (2024, 2025):
            conn.execute(f'CREATE TABLE "audit trail".login_{year} PARTITION OF '
                         f'"audit trail".login FOR VALUES FROM (\'{year}-01-01\') '
                         f"TO ('{year + 1}-01-01')")
        conn.execute('INSERT INTO "audit trail".login SELECT prosumer_id, d FROM prosumer, '
                     "(VALUES (date '2024-05-01'), (date '2025-05-01')) v(d) LIMIT 10")
        conn.execute('INSERT INTO "audit trail".login VALUES (NULL, \'2025-06-01\')')  # no orphan
    with pg_server.admin_connect(pg_db.dbname) as admin, admin.transaction():
        admin.execute("SET LOCAL session_replication_role = replica")
        admin.execute("""INSERT INTO "audit trail".login VALUES ('ghost1', '2024-01-01'),
                         ('ghost2', '2025-01-01')""")
    scan = orphans.scan(pg_db)
    extra = [c for c in scan.columns if not c.known]
    assert [(c.label, c.count, c.fk_name) for c in extra] == [
        ("audit trail.login.who", 2, "login_who_fkey")]
    assert sorted(s["who"] for s in extra[0].samples) == ["ghost1", "ghost2"]
    files = orphans.export(pg_db, scan, tmp_path / "x")
    assert [(f.path.name[:25], f.rows) for f in files] == [("orphans_audit_trail.login", 2)]
    after = orphans.delete(pg_db, scan, files, confirm=pg_db.dbname)
    assert after.clean
    assert after.deleted == {"audit trail.login": 2}
    with pg_db.connect() as conn:
        assert conn.execute('SELECT count(*) FROM "audit trail".login').fetchone() == (11,)


def test_export_writes_every_orphan_row_once_per_table_0600(
        pg_server: PostgresServer, pg_db: PgSettings, tmp_path: Path) -> None:
    _inject(pg_server, pg_db, 3)
    with pg_server.admin_connect(pg_db.dbname) as admin, admin.transaction():
        admin.execute("SET LOCAL session_replication_role = replica")  # orphaned twice
        admin.execute("UPDATE market_trade SET seller_prosumer_id = 'gone' WHERE "
                      "buyer_prosumer_id LIKE 'prosumer_ghost_%' AND buyer_order_id LIKE "
                      "'orphan_%0000'")
    scan = orphans.scan(pg_db)
    assert _counts(scan)["market_trade.seller_prosumer_id"] == 4
    journal = Journal.create(pg_db, "orphans")
    folder = tmp_path / "backups"
    files = orphans.export(pg_db, scan, folder, journal=journal)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    by_table = {f.table: f for f in files}
    assert set(by_table) == set(names.CHILD_TABLES)
    assert by_table["market_trade"].rows == 6  # 3 + 4 column hits, one row in both
    for f in files:
        assert stat.S_IMODE(f.path.stat().st_mode) == 0o600
        assert f.path.name.startswith(f"orphans_{f.table}_")
        assert f.path.suffix == ".csv"
        with f.path.open(newline="") as fh:
            rows = list(csv.reader(fh))
        assert len(rows) == f.rows + 1 == (6 if f.table == "market_trade" else 3) + 1
        with pg_db.connect() as conn:
            header = [r[0] for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND "
                "attnum > 0 AND NOT attisdropped ORDER BY attnum", (f.table,))]
        assert rows[0] == header
    recorded = journal.events("orphan_export")[0]["files"]
    assert {r["table"]: r["rows"] for r in recorded} == {f.table: f.rows for f in files}


def test_export_refuses_a_folder_others_can_read(pg_server: PostgresServer,
                                                  pg_db: PgSettings, tmp_path: Path) -> None:
    _inject(pg_server, pg_db, 1)
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    with pytest.raises(orphans.OrphanError, match="chmod 700"):
        orphans.export(pg_db, orphans.scan(pg_db), folder)
    assert list(folder.iterdir()) == []


def test_delete_refuses_without_the_typed_name_or_an_export(
        pg_server: PostgresServer, pg_db: PgSettings, tmp_path: Path) -> None:
    _inject(pg_server, pg_db, 2)
    scan = orphans.scan(pg_db)
    with pytest.raises(orphans.OrphanRefused, match=f"--confirm {pg_db.dbname}"):
        orphans.delete(pg_db, scan, [], confirm="enerlink_db")
    with pytest.raises(orphans.OrphanRefused, match="export them first"):
        orphans.delete(pg_db, scan, [], confirm=pg_db.dbname)
    files = orphans.export(pg_db, scan, tmp_path / "x")
    files[0].path.unlink()
    with pytest.raises(orphans.OrphanRefused, match=files[0].table):
        orphans.delete(pg_db, scan, [f.path for f in files], confirm=pg_db.dbname)
    assert _counts(orphans.scan(pg_db)) == dict.fromkeys(SEVEN, 2)


@pytest.mark.pg_matrix("orphans")
def test_delete_removes_exactly_the_exported_rows_then_rescans(
        pg_server: PostgresServer, pg_db: PgSettings, tmp_path: Path) -> None:
    before = _row_counts(pg_db)
    _inject(pg_server, pg_db, 3)
    journal = Journal.create(pg_db, "orphans")
    scan = orphans.scan(pg_db, journal=journal)
    files = orphans.export(pg_db, scan, tmp_path / "x", journal=journal)
    after = orphans.delete(pg_db, scan, [f.path for f in files], confirm=pg_db.dbname,
                           journal=journal)
    assert after.clean
    assert _counts(after) == dict.fromkeys(SEVEN, 0)
    assert after.deleted == {t: (6 if t == "market_trade" else 3) for t in names.CHILD_TABLES}
    assert _row_counts(pg_db) == before
    events = [e["event"] for e in journal.events() if e["event"].startswith("orphan_")]
    assert events == ["orphan_scan", "orphan_export", "orphan_delete", "orphan_scan"]
    scan_event = journal.events("orphan_scan")[0]
    assert {c["label"]: c["count"] for c in scan_event["columns"]} == dict.fromkeys(SEVEN, 3)
    wallet = next(c for c in scan_event["columns"] if c["label"] == "wallet.prosumer_id")
    assert set(wallet["sample_keys"][0]) == {"wallet_address", "prosumer_id"}  # keys only


def test_delete_rolls_back_when_the_rows_changed_since_the_export(
        pg_db: PgSettings, tmp_path: Path) -> None:
    _drop_wallet_fk_and_write_orphans(pg_db)
    scan = orphans.scan(pg_db)
    files = orphans.export(pg_db, scan, tmp_path / "x")
    with pg_db.connect() as conn:  # a new orphan arrives after the export
        conn.execute("INSERT INTO wallet (is_active, wallet_address, prosumer_id, created_at, "
                     "import_method) VALUES (true, 'late', 'gone_late', now(), 'GENERATED')")
    with pytest.raises(orphans.OrphanError, match="changed since the export"):
        orphans.delete(pg_db, scan, files, confirm=pg_db.dbname)
    assert _counts(orphans.scan(pg_db))["wallet.prosumer_id"] == 5


def test_delete_refuses_when_other_rows_point_at_an_orphan(
        pg_server: PostgresServer, pg_db: PgSettings, tmp_path: Path) -> None:
    _inject(pg_server, pg_db, 1)
    with pg_server.admin_connect(pg_db.dbname) as admin:
        admin.execute("INSERT INTO energy_settlement (net_wh_from_grid, meter_id, "
                      "period_start_time, period_end_time, status, created_at_backend, "
                      "settlement_trigger) SELECT 1, meter_id, now(), now(), 'PENDING', now(), "
                      "'PERIODIC' FROM smart_meter WHERE prosumer_id LIKE 'prosumer_ghost_%'")
    scan = orphans.scan(pg_db)
    files = orphans.export(pg_db, scan, tmp_path / "x")
    with pytest.raises(orphans.OrphanRefused, match="is still referenced from table "
                                                    '"energy_settlement"'):
        orphans.delete(pg_db, scan, files, confirm=pg_db.dbname)
    assert orphans.scan(pg_db).total == scan.total


def test_delete_refuses_when_a_cascade_would_change_other_rows(
        pg_server: PostgresServer, pg_db: PgSettings, tmp_path: Path) -> None:
    _inject(pg_server, pg_db, 1)
    with pg_db.connect() as conn:
        conn.execute("CREATE TABLE meter_note (meter_id varchar REFERENCES smart_meter "
                     "ON DELETE CASCADE, note text)")
        conn.execute("INSERT INTO meter_note SELECT meter_id, 'x' FROM smart_meter "
                     "WHERE prosumer_id LIKE 'prosumer_ghost_%'")
    scan = orphans.scan(pg_db)
    files = orphans.export(pg_db, scan, tmp_path / "x")
    with pytest.raises(orphans.OrphanRefused, match=r"1 rows of meter_note refer to orphan "
                                                    r"rows of smart_meter .*CASCADE"):
        orphans.delete(pg_db, scan, files, confirm=pg_db.dbname)
    assert orphans.scan(pg_db).total == scan.total


def test_delete_gives_up_at_lock_timeout_and_deletes_nothing(
        pg_server: PostgresServer, pg_db: PgSettings, tmp_path: Path) -> None:
    _inject(pg_server, pg_db, 1)
    scan = orphans.scan(pg_db)
    files = orphans.export(pg_db, scan, tmp_path / "x")
    with pg_db.connect() as holder:  # the application holds one of the orphan rows
        holder.execute("SELECT * FROM token_blacklist WHERE prosumer_id LIKE "
                       "'prosumer_ghost_%' FOR UPDATE")
        with pytest.raises(orphans.OrphanError, match="holds a lock"):
            orphans.delete(pg_db, scan, files, confirm=pg_db.dbname, lock_timeout_s=0.2)
    assert _counts(orphans.scan(pg_db)) == dict.fromkeys(SEVEN, 1)


def test_statement_timeout_stops_the_scan_with_advice(pg_db: PgSettings) -> None:
    with pg_db.connect() as holder:
        holder.execute("LOCK TABLE wallet IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(orphans.OrphanError, match="statement_timeout"):
            orphans.scan(pg_db, statement_timeout_s=0.3)


def test_cancel_stops_a_scan_that_waits_on_the_server(pg_db: PgSettings) -> None:
    """The watcher cancels the running statement: here one blocked by another session's
    ACCESS EXCLUSIVE lock (without the cancel it would end by statement_timeout)."""
    cancel = threading.Event()
    with pg_db.connect() as holder:
        holder.execute("LOCK TABLE wallet IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(Cancelled, match="nothing was changed"):
            orphans.scan(pg_db, progress=lambda _f, _d: cancel.set(), cancel=cancel,
                         statement_timeout_s=120)


def test_cli_scan_export_delete_end_to_end(pg_server: PostgresServer, pg_db: PgSettings,
                                           tmp_path: Path) -> None:
    out = run_cli(pg_db, "orphans", folder=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "no orphans" in out.stdout
    _inject(pg_server, pg_db, 2)
    out = run_cli(pg_db, "orphans", "--json", folder=tmp_path)
    assert out.returncode == 1
    assert out.stdout, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    assert data["scan"]["total"] == 14
    out = run_cli(pg_db, "orphans", folder=tmp_path)
    assert out.returncode == 1
    assert "orphan rows remain" in out.stderr
    assert "wallet.prosumer_id" in out.stdout
    assert "prosumer_ghost_" in out.stdout
    out = run_cli(pg_db, "orphans", "--delete", "--confirm", pg_db.dbname, folder=tmp_path)
    assert out.returncode == 2
    assert "export first" in out.stderr
    out = run_cli(pg_db, "orphans", "--export", str(tmp_path / "out"), "--delete",
                  "--confirm", "nope", folder=tmp_path)
    assert out.returncode == 3
    assert f"--confirm {pg_db.dbname}" in out.stderr
    assert not (tmp_path / "out").exists()  # refused before anything was written
    out = run_cli(pg_db, "orphans", "--export", str(tmp_path / "out"), "--delete", "--confirm",
               pg_db.dbname, folder=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "deleted from market_trade: 4 rows" in out.stdout
    assert len(list((tmp_path / "out").glob("orphans_*.csv"))) == 6
    assert run_cli(pg_db, "orphans", folder=tmp_path).returncode == 0
    assert pg_db.password
    assert pg_db.password not in out.stdout + out.stderr


def test_scan_refuses_a_database_that_is_not_enerlink(empty_db: PgSettings) -> None:
    with pytest.raises(orphans.OrphanError, match="not an EnerLink database"):
        orphans.scan(empty_db)


def test_scan_is_read_only(pg_db: PgSettings) -> None:
    seen: list[str] = []
    with pg_db.connect() as conn:
        before = conn.execute("SELECT n_tup_ins + n_tup_upd + n_tup_del FROM "
                              "pg_stat_user_tables WHERE relname = 'wallet'").fetchone()
    orphans.scan(pg_db, report=lambda _lvl, msg: seen.append(msg))
    with pg_db.connect() as conn:
        after = conn.execute("SELECT n_tup_ins + n_tup_upd + n_tup_del FROM "
                             "pg_stat_user_tables WHERE relname = 'wallet'").fetchone()
    assert before == after
    assert any("7 columns against prosumer(prosumer_id) in one pass" in m for m in seen)


def test_deleting_orphans_says_the_existing_backup_still_holds_them(
        pg_server: PostgresServer, pg_db: PgSettings, tmp_path: Path) -> None:
    _inject(pg_server, pg_db, 2)
    out = run_cli(pg_db, "backup", "--out", str(tmp_path / "backups"), folder=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    out = run_cli(pg_db, "orphans", "--export", str(tmp_path / "out"), "--delete", "--confirm",
                  pg_db.dbname, folder=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "was taken before this deletion and still holds these 14 orphan rows" in out.stdout
    assert "Take a fresh backup after the deletion" in out.stdout
