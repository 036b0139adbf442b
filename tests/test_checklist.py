"""The verify step's checklist: catalog, orphans, old Redis keys, each with evidence."""

from __future__ import annotations

import redis

from wizard.core import jobs, redis_migrate
from wizard.core.checklist import final_checklist
from wizard.core.connection import PgSettings
from wizard.core.journal import Journal
from wizard.core.plan import UP
from wizard.core.redis_conn import RedisSettings
from wizard.core.redis_rules import DEFAULT_RULES
from wizard.sandbox.redis_seed import seed_redis
from wizard.sandbox.servers import RedisServer, free_port


def _redis(server: RedisServer) -> RedisSettings:
    return RedisSettings.from_url(f"redis://127.0.0.1:{server.port}/1",
                                  password=server.password)


def test_all_pass_after_the_migration_and_the_redis_step(pg_db: PgSettings,
                                                         redis_server: RedisServer,
                                                         redis_client: redis.Redis) -> None:
    seed_redis(redis_client, 40)
    journal = Journal.create(pg_db, "wizard")
    assert jobs.run(pg_db, UP, journal=journal)[1].ok
    settings = _redis(redis_server)
    checks = {c.id: c for c in final_checklist(pg_db, settings, journal=journal)}
    assert {i: checks[i].status for i in ("redis_fields", "redis_moved", "redis_keys")} == \
        {"redis_fields": "fail", "redis_moved": "fail", "redis_keys": "fail"}
    assert "prosumer:*" in checks["redis_keys"].title
    redis_migrate.dry_run(settings, DEFAULT_RULES, journal=journal)
    redis_migrate.migrate(settings, DEFAULT_RULES, journal=journal)
    checks = {c.id: c for c in final_checklist(pg_db, settings, journal=journal)}
    failed = {i: c.detail for i, c in checks.items() if c.status != "pass"}
    assert failed == {}
    assert checks["no_orphans"].evidence["query"].startswith("anti-join")
    recorded = journal.events("verification")[-1]["checks"]
    assert {c["id"] for c in recorded} == set(checks)
    assert redis_server.password not in journal.path.read_text()


def test_redis_down_fails_only_its_own_check(pg_db: PgSettings) -> None:
    assert jobs.run(pg_db, UP)[1].ok
    down = RedisSettings.from_url(f"redis://127.0.0.1:{free_port()}/0", password="pw-xyz",
                                  timeout_s=1)
    checks = {c.id: c for c in final_checklist(pg_db, down)}
    assert checks["redis_keys"].status == "fail"
    assert "pw-xyz" not in checks["redis_keys"].detail
    assert checks["table_renamed"].status == "pass"
    assert checks["no_orphans"].status == "pass"


def test_without_redis_the_check_is_a_warning(pg_db: PgSettings) -> None:
    checks = {c.id: c for c in final_checklist(pg_db, None)}
    assert checks["redis_keys"].status == "warn"
