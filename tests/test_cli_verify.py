"""`enerlink-migrate verify`: the Verify page's checklist, on real PostgreSQL and Redis."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis

from wizard import cli
from wizard.core import jobs, profiles, secrets
from wizard.core.checklist import final_checklist
from wizard.core.connection import PgSettings
from wizard.core.journal import Journal
from wizard.core.plan import UP
from wizard.core.profiles import Profile
from wizard.core.redis_conn import RedisSettings
from wizard.sandbox.probes import run_cli
from wizard.sandbox.redis_seed import seed_redis
from wizard.sandbox.servers import RedisServer


def migrated(pg_db: PgSettings) -> PgSettings:
    _plan, result, _journal = jobs.run(pg_db, UP)
    assert result.ok, result.error
    return pg_db


def verify(pg_db: PgSettings, redis_server: RedisServer, tmp_path: Path,
           *args: str) -> subprocess.CompletedProcess[str]:
    """verify as a DBA runs it: Redis db 1 by URL, its password in REDISCLI_AUTH."""
    env = {**os.environ, "REDISCLI_AUTH": redis_server.password}
    return run_cli(pg_db, "verify", "--redis-url", f"{redis_server.url}/1", *args,
                   folder=tmp_path, env=env)


def redis_step(pg_db: PgSettings, redis_server: RedisServer, tmp_path: Path,
               *args: str) -> subprocess.CompletedProcess[str]:
    """`cache` (the Redis step) for this database, as a DBA runs it."""
    env = {**os.environ, "REDISCLI_AUTH": redis_server.password}
    out = run_cli(pg_db, "cache", "--redis-url", f"{redis_server.url}/1", *args,
                  folder=tmp_path, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


REDIS_IDS = ["redis_fields", "redis_owners", "redis_moved", "redis_keys", "redis_orders_all"]


def verify_journal(journal_dir: Path) -> Journal:
    runs = sorted(journal_dir.glob("*_verify"))
    assert runs, f"no verify run under {journal_dir}"
    return Journal(runs[-1])


def test_a_migrated_sandbox_with_redis_passes_with_the_pages_checks_and_is_journaled(
        pg_db: PgSettings, redis_server: RedisServer, redis_client: redis.Redis,
        journal_dir: Path, tmp_path: Path) -> None:
    migrated(pg_db)
    seed_redis(redis_client, 40)
    redis_step(pg_db, redis_server, tmp_path, "--dry-run")  # verify compares with its counts
    redis_step(pg_db, redis_server, tmp_path)
    out = verify(pg_db, redis_server, tmp_path, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    checks = json.loads(out.stdout)
    assert {c["status"] for c in checks} == {"pass"}
    direct = final_checklist(pg_db, RedisSettings(url=redis_server.url,
                                                  password=redis_server.password, db=1))
    assert [c["id"] for c in checks] == [c.id for c in direct]  # the Verify page's, in order
    assert [c["id"] for c in checks][-6:] == ["no_orphans", *REDIS_IDS]
    journal = verify_journal(journal_dir)
    assert journal.events("verification")[-1]["checks"] == checks
    assert redis_server.password not in out.stdout + out.stderr + journal.path.read_text()

    text = verify(pg_db, redis_server, tmp_path)
    assert text.returncode == 0, text.stdout + text.stderr
    assert text.stdout.startswith(f"verification of {pg_db.describe()}: passed\n")
    assert "✔ No orders:* hash still has prosumerId: none in" in text.stdout
    assert ("✔ Per-owner keys moved to orders:by_user:*, as many and as full as the dry run "
            "said: 40 keys with 80 members, as the dry run expected") in text.stdout
    assert ("✔ A sample of orders names owners that exist in the user table: 40 owners of "
            "80 sampled orders all exist") in text.stdout
    assert "login smoke check is skipped" in text.stdout
    assert "journal: " in text.stdout
    assert "  scanning for orphan rows" in text.stderr  # progress, not the checks again


def test_redis_data_left_in_the_old_names_fails_naming_the_keys(
        pg_db: PgSettings, redis_server: RedisServer, redis_client: redis.Redis,
        journal_dir: Path, tmp_path: Path) -> None:
    migrated(pg_db)
    redis_client.set("prosumer:7", "stale")
    redis_client.hset("orders:o7", mapping={"orderId": "o7", "prosumerId": "p7"})
    redis_client.zadd("orders:by_prosumer:p7", {"o7": 1})
    out = verify(pg_db, redis_server, tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout.startswith(f"verification of {pg_db.describe()}: FAILED\n")
    assert "✘ No cache keys prosumer:* left in Redis: 1 keys (e.g. prosumer:7)" in out.stdout
    assert "✘ No orders:* hash still has prosumerId: 1 hashes still have prosumerId (e.g. " \
           "orders:o7)" in out.stdout
    assert "1 keys still under orders:by_prosumer:*" in out.stdout
    recorded = verify_journal(journal_dir).events("verification")[-1]["checks"]
    statuses = {c["id"]: c["status"] for c in recorded}
    assert [statuses[i] for i in ("redis_fields", "redis_moved", "redis_keys")] == ["fail"] * 3

    # A user the database does not have: the new application could not serve that owner.
    redis_step(pg_db, redis_server, tmp_path)
    redis_client.delete("prosumer:7")
    out = verify(pg_db, redis_server, tmp_path)
    assert ("✘ A sample of orders names owners that exist in the user table: 1 of 1 owners of "
            "1 sampled orders are not in user (e.g. p7)") in out.stdout


def test_without_redis_the_check_warns_and_a_failed_catalog_check_fails(
        pg_db: PgSettings, tmp_path: Path) -> None:
    out = run_cli(pg_db, "verify", folder=tmp_path)  # before the migration: the catalog fails
    assert out.returncode == 1, out.stdout + out.stderr
    assert "! Redis data in the new names: no Redis in this profile (or --redis-url): not " \
           "checked" in out.stdout
    migrated(pg_db)
    assert run_cli(pg_db, "verify", folder=tmp_path).returncode == 0


def test_a_redis_that_does_not_answer_fails_its_check_only(
        pg_db: PgSettings, redis_server: RedisServer, tmp_path: Path) -> None:
    migrated(pg_db)
    env = {**os.environ, "REDISCLI_AUTH": "not-the-password"}
    out = run_cli(pg_db, "verify", "--redis-url", f"{redis_server.url}/1", "--json",
                  folder=tmp_path, env=env)
    assert out.returncode == 1, out.stdout + out.stderr
    statuses = {c["id"]: c["status"] for c in json.loads(out.stdout)}
    assert statuses.pop("redis_keys") == "fail"
    assert set(statuses.values()) == {"pass"}
    assert "not-the-password" not in out.stdout + out.stderr


# --- the profile's login smoke check -----------------------------------------------------
# Stand-in: the EnerLink application is not part of this repository; conftest's
# login_app answers POST /auth/login as the guide shows.

def test_the_profiles_smoke_check_runs_last_with_the_keyrings_password(
        pg_db: PgSettings, login_app: Any, memory_keyring: Any, config_dir: Path,
        journal_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    migrated(pg_db)
    profiles.save(Profile(name="p", pg_host=pg_db.host, pg_port=pg_db.port,
                          pg_dbname=pg_db.dbname, pg_user=pg_db.user,
                          pg_sslmode=pg_db.sslmode, smoke_base_url=login_app.url,
                          smoke_user="test@example.com"))
    secrets.set("p", "postgres", pg_db.password or "")
    secrets.set("p", "smoke", "smoke-pw-123")
    code = cli.main(["verify", "--profile", "p", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    checks = json.loads(out)
    assert [c["id"] for c in checks][-3:] == ["no_orphans", "redis_keys", "smoke_login"]
    assert checks[-1]["status"] == "pass"
    assert login_app.seen == [{"path": "/auth/login",
                          "body": {"email": "test@example.com", "password": "smoke-pw-123"}}]
    journal = verify_journal(journal_dir)
    assert "smoke-pw-123" not in out + err + journal.path.read_text()
