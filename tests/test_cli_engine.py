"""The CLI over the engine: exit codes, --json, and no password on the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from wizard.core.connection import PgSettings
from wizard.sandbox.probes import run_cli


@pytest.mark.pg_matrix("verify")
def test_inspect_migrate_verify_revert_through_therun_cli(pg_db: PgSettings, pg_major: int,
                                                        tmp_path: Path) -> None:
    out = run_cli(pg_db, "inspect", "--json", folder=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["state"] == "pre"
    out = run_cli(pg_db, "plan", "--sql", folder=tmp_path)
    assert 'ALTER TABLE "public"."prosumer" RENAME TO "user";' in out.stdout
    out = run_cli(pg_db, "migrate", folder=tmp_path)
    assert out.returncode == 3, "a real migration without a verified backup is refused"
    assert "no verified backup" in out.stderr
    out = run_cli(pg_db, "migrate", "--without-backup", "--confirm", pg_db.dbname,
               folder=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "migration succeeded" in out.stdout
    assert "WITHOUT a backup" in out.stderr
    steps = 20 + (12 if pg_major >= 18 else 0)  # PostgreSQL 18 names NOT NULL constraints
    assert f"[1/{steps}] Renaming table prosumer" in out.stderr
    out = run_cli(pg_db, "verify", "--json", folder=tmp_path)
    assert out.returncode == 0, out.stdout
    statuses = {c["id"]: c["status"] for c in json.loads(out.stdout)}
    assert statuses.pop("redis_keys") == "warn"  # no Redis given: not checked, not failed
    assert set(statuses.values()) == {"pass"}
    out = run_cli(pg_db, "revert", folder=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(run_cli(pg_db, "inspect", "--json", folder=tmp_path).stdout)[
        "state"] == "pre"


def test_wrong_password_says_so_and_exits_2(pg_db: PgSettings, tmp_path: Path) -> None:
    out = run_cli(pg_db, "inspect", folder=tmp_path, password="not-it")
    assert out.returncode == 2
    assert "password authentication failed" in out.stderr
    assert "wrong password" in out.stderr


def test_password_in_dsn_is_refused(pg_db: PgSettings) -> None:
    out = subprocess.run([sys.executable, "-m", "wizard", "inspect", "--dsn",
                          f"postgresql://u:secret@{pg_db.host}:{pg_db.port}/x"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 2
    assert "must not contain a password" in out.stderr


def test_unknown_database_is_refused_with_exit_3(empty_db: PgSettings, tmp_path: Path) -> None:
    out = run_cli(empty_db, "migrate", folder=tmp_path)
    assert out.returncode == 3
    assert "not an EnerLink database" in out.stderr


def test_migrate_runs_only_the_plan_whose_digest_was_approved(pg_db: PgSettings,
                                                              tmp_path: Path) -> None:
    out = run_cli(pg_db, "plan", "--json", folder=tmp_path)
    approved = json.loads(out.stdout)["digest"]
    assert approved in run_cli(pg_db, "plan", folder=tmp_path).stdout
    with pg_db.connect() as conn:  # the catalog changes after the DBA read the plan
        conn.execute("CREATE INDEX prosumer_late_idx ON wallet (prosumer_id)")
    out = run_cli(pg_db, "migrate", "--without-backup", "--confirm", pg_db.dbname,
                  "--plan-digest", approved[:16], folder=tmp_path)
    assert out.returncode == 3, out.stdout + out.stderr
    assert "you approved" in out.stderr
    assert "Run `enerlink-migrate plan` again" in out.stderr
    assert json.loads(run_cli(pg_db, "inspect", "--json", folder=tmp_path).stdout)[
        "state"] == "pre"
    approved = json.loads(run_cli(pg_db, "plan", "--json", folder=tmp_path).stdout)["digest"]
    out = run_cli(pg_db, "migrate", "--without-backup", "--confirm", pg_db.dbname,
                  "--plan-digest", approved, folder=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_inspect_and_plan_agree_when_no_plan_can_finish(pg_db: PgSettings,
                                                        tmp_path: Path) -> None:
    """Half an upstream run: renamed, and a second key on wallet's column (its duplicate)."""
    with pg_db.connect() as conn:
        conn.execute('ALTER TABLE prosumer RENAME TO "user"')
        conn.execute('ALTER TABLE "user" RENAME COLUMN prosumer_id TO user_id')
        conn.execute('ALTER TABLE wallet ADD CONSTRAINT "FK_dup" FOREIGN KEY (prosumer_id) '
                     'REFERENCES "user" (user_id)')
    out = run_cli(pg_db, "inspect", folder=tmp_path)
    assert out.returncode == 3, out.stdout + out.stderr
    assert "partial" in out.stdout
    assert "No plan can run until" in out.stdout
    assert "finishes the job" not in out.stdout
    plan = run_cli(pg_db, "plan", folder=tmp_path)
    assert plan.returncode == 3
    assert "FK_dup" in plan.stderr
    assert "FK_dup" in out.stdout
