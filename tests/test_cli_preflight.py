"""`enerlink-migrate preflight`: the Pre-flight page's checks, headless, on real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

from wizard.core.connection import PgSettings
from wizard.core.fingerprint import schema_fingerprint
from wizard.core.journal import Journal
from wizard.core.preflight import run_preflight
from wizard.sandbox.probes import run_cli


def test_the_sample_passes_with_the_pages_checks_in_their_order_and_is_journaled(
        pg_db: PgSettings, tmp_path: Path) -> None:
    with pg_db.connect() as conn:
        before = schema_fingerprint(conn)
    backups = tmp_path / "backups"
    out = run_cli(pg_db, "preflight", "--backup-folder", str(backups), "--json",
                  folder=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads(out.stdout)
    direct = run_preflight(pg_db, backups)  # what the Pre-flight page runs
    assert [(c["id"], c["status"]) for c in data["checks"]] == [
        (c.id, c.status) for c in direct.checks]
    assert [c["id"] for c in data["checks"]] == [
        "state", "server_version", "client_tools", "privileges", "createdb", "disk",
        "sessions"]
    assert {c["status"] for c in data["checks"]} == {"pass"}
    assert (data["state"], data["blocking"]) == ("pre", [])
    assert data["estimated_rows"].keys() >= {"prosumer", "wallet"}
    journal = Journal(Path(data["journal"]))
    recorded = journal.events("preflight")
    assert len(recorded) == 1
    assert recorded[0]["checks"] == data["checks"]
    assert journal.events("run_started")[0]["command"] == "preflight"
    assert pg_db.password
    assert pg_db.password not in out.stdout + out.stderr + journal.path.read_text()
    with pg_db.connect() as conn:
        assert schema_fingerprint(conn) == before  # read-only

    text = run_cli(pg_db, "preflight", "--backup-folder", str(backups), folder=tmp_path)
    assert text.returncode == 0, text.stderr
    for check in direct.checks:
        assert f"✔ {check.title}: " in text.stdout
    assert "state: pre: " in text.stdout
    assert "nothing blocks the run" in text.stdout
    assert "other sessions: none" in text.stdout
    assert text.stderr == ""


def test_without_a_backup_folder_the_disk_check_warns_and_nothing_blocks(
        pg_db: PgSettings, tmp_path: Path) -> None:
    out = run_cli(pg_db, "preflight", folder=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "! Free space in the backup folder: no backup folder chosen yet" in out.stdout


def test_another_session_is_listed_and_warned_about(pg_db: PgSettings, tmp_path: Path) -> None:
    with pg_db.connect(autocommit=True) as app:
        app.execute("SET application_name = 'enerlink-api'")
        out = run_cli(pg_db, "preflight", folder=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr  # a warning, not a block
    assert "! No other sessions on the database: 1 other session(s) (enerlink-api)" \
        in out.stdout
    assert "other sessions: 1" in out.stdout
    assert "enerlink-api" in out.stdout.split("other sessions: 1")[1]


def test_a_database_that_is_not_enerlink_is_refused_with_exit_3(
        empty_db: PgSettings, tmp_path: Path) -> None:
    out = run_cli(empty_db, "preflight", folder=tmp_path)
    assert out.returncode == 3, out.stdout + out.stderr
    assert "✘ Database is EnerLink before the rename: not an EnerLink database" in out.stdout
    assert "1 blocking problem(s)" in out.stdout
    assert out.stderr.startswith("enerlink-migrate preflight: 1 check(s) block the run: ")
    assert "run `enerlink-migrate preflight` again" in out.stderr
    data = json.loads(run_cli(empty_db, "preflight", "--json", folder=tmp_path).stdout)
    assert data["blocking"] == ["state"]
    assert Journal(Path(data["journal"])).events("preflight")[0]["state"] == "unknown"


def test_json_output_is_only_the_document(pg_db: PgSettings, tmp_path: Path) -> None:
    out = run_cli(pg_db, "preflight", "--json", folder=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("{\n")
    json.loads(out.stdout)
