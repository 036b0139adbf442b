"""The Redis step on a real, password-protected redis-server: the order book is migrated to
the new names (not deleted), exactly the rule-matched keys change, a second run changes
nothing, the inverse rules bring the order book back, and an interrupted run finishes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from wizard.core import redis_conn, redis_migrate
from wizard.core.connection import PgSettings
from wizard.core.journal import Journal
from wizard.core.redis_conn import RedisSettings, RedisUnavailable
from wizard.core.redis_rules import (
    DEFAULT_RULES,
    DeleteKeys,
    MoveKey,
    RenameField,
    RuleError,
    inverse,
    parse,
    validate,
)
from wizard.core.reporting import Cancelled
from wizard.sandbox.redis_seed import seed_redis
from wizard.sandbox.servers import RedisServer

ORDER_BOOK = ("orders:",)  # what `--revert` must give back exactly


def digest(client: redis.Redis) -> dict[str, str]:
    """Every key's type, content (hash items and set members sorted, zset with scores) and
    whether it expires: a change anywhere shows as a different value."""
    out = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == "hash":
            value: Any = sorted(client.hgetall(key).items())
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            value = sorted(client.smembers(key))
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        else:
            value = client.get(key)
        expires = client.pttl(key) > 0
        out[key] = hashlib.sha256(json.dumps([kind, value, expires]).encode()).hexdigest()
    return out


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


@pytest.fixture
def settings(redis_server: RedisServer) -> RedisSettings:
    return RedisSettings.from_url(f"{redis_server.url}/1", password=redis_server.password)


@pytest.fixture
def journal() -> Journal:
    return Journal.create(PgSettings(dbname="enerlink_redis_t"), "cache")


# --- rules ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("line", "says"), [
    ("delete *", "no literal prefix"),
    ("delete ", "cannot read the Redis rule"),
    ("field * prosumerId=userId", "no literal prefix"),
    ("delete telemetry:*", "telemetry:"),
    ("move p* price:x:*", "price:"),
    ("field orders:* a=a", "must rename a field to another name"),
    ("move orders:a:* orders:a:b:*", "overlap"),
    ("move orders:a orders:b:*", "prefix*"),
])
def test_rules_that_could_touch_too_much_are_refused(line: str, says: str) -> None:
    with pytest.raises(RuleError, match=says):
        validate([parse(line)])


def test_a_protected_family_is_allowed_only_when_typed_and_rules_round_trip() -> None:
    rule = parse("delete telemetry:old:*")
    assert validate([rule], allow=["telemetry:"]) == (rule,)
    assert [parse(line) for line in ("field orders:* prosumerId=userId",
                                     "move orders:by_prosumer:* orders:by_user:*",
                                     "delete prosumer:*")] == list(DEFAULT_RULES)
    assert inverse(DEFAULT_RULES) == (RenameField("orders:*", "userId", "prosumerId"),
                                      MoveKey("orders:by_user:*", "orders:by_prosumer:*"))


# --- the migration --------------------------------------------------------------------------

def test_exactly_the_rule_matched_keys_change_and_the_revert_gives_the_order_book_back(
        settings: RedisSettings, redis_client: redis.Redis, redis_server: RedisServer,
        journal: Journal) -> None:
    families = seed_redis(redis_client, 1500)  # 3000 orders: several SCAN batches
    before = digest(redis_client)
    admin = redis_server.client()
    admin.config_resetstat()
    dry = redis_migrate.dry_run(settings, DEFAULT_RULES, journal=journal)
    assert [(c.keys, c.conflicts) for c in dry.rules] == [
        (families["orders:{id}"], 0), (families["orders:by_prosumer:*"], 0),
        (families["prosumer:*"], 0)]
    assert dry.rules[1].expected_members_after == families["orders:{id}"]
    assert digest(redis_client) == before  # a dry run changes nothing

    result = redis_migrate.migrate(settings, DEFAULT_RULES, journal=journal)
    after = digest(redis_client)
    orders = {k for k in before if k.startswith("orders:order_")}
    by_prosumer = {k for k in before if k.startswith("orders:by_prosumer:")}
    cache_keys = {k for k in before if k.startswith("prosumer:")}
    by_user = {"orders:by_user:" + k.removeprefix("orders:by_prosumer:") for k in by_prosumer}
    assert changed(before, after) == orders | by_prosumer | cache_keys | by_user
    assert result.changed == len(orders) + len(by_prosumer) + len(cache_keys)
    sample = next(iter(sorted(orders)))
    assert redis_client.hget(sample, "prosumerId") is None
    owner = str(redis_client.hget(sample, "userId"))
    order_id = str(redis_client.hget(sample, "orderId"))
    assert redis_client.zscore(f"orders:by_user:{owner}", order_id) is not None
    assert len(redis_client.hgetall(sample)) == 14  # every field the application writes
    used = {n.removeprefix("cmdstat_") for n in admin.info("commandstats")}
    assert not used & {"keys", "flushall", "flushdb"}
    assert redis_server.password not in journal.path.read_text()

    again = redis_migrate.migrate(settings, DEFAULT_RULES)
    assert again.changed == 0
    assert digest(redis_client) == after

    back = redis_migrate.migrate(settings, inverse(DEFAULT_RULES), direction="down")
    assert back.changed == len(orders) + len(by_prosumer)
    restored = digest(redis_client)
    book = {k: v for k, v in before.items() if k.startswith(ORDER_BOOK)}
    assert {k: v for k, v in restored.items() if k.startswith(ORDER_BOOK)} == book
    assert changed(before, restored) == cache_keys  # cache keys are rebuilt by the app
    admin.close()


def test_the_scores_of_the_per_owner_sets_survive_the_move(
        settings: RedisSettings, redis_client: redis.Redis) -> None:
    seed_redis(redis_client, 30)
    old = {k: redis_client.zrange(k, 0, -1, withscores=True)
           for k in redis_client.scan_iter("orders:by_prosumer:*")}
    redis_migrate.migrate(settings, DEFAULT_RULES)
    for key, items in old.items():
        assert redis_client.zrange(key.replace("by_prosumer", "by_user"), 0, -1,
                                   withscores=True) == items


def test_conflicts_are_counted_named_and_left_untouched_and_targets_are_merged(
        settings: RedisSettings, redis_client: redis.Redis) -> None:
    redis_client.hset("orders:both", mapping={"prosumerId": "u1", "userId": "u2"})
    redis_client.hset("orders:same", mapping={"prosumerId": "u3", "userId": "u3"})
    redis_client.hset("orders:plain", mapping={"prosumerId": "u4", "orderId": "plain"})
    redis_client.zadd("orders:by_prosumer:u4", {"plain": 10, "shared": 20})
    redis_client.zadd("orders:by_user:u4", {"new": 30, "shared": 25})  # the new app's
    redis_client.set("orders:by_prosumer:u5", "a string")
    redis_client.zadd("orders:by_user:u5", {"x": 1})  # another type: a conflict
    dry = redis_migrate.dry_run(settings, DEFAULT_RULES)
    field, move, _delete = dry.rules
    assert (field.keys, field.conflicts, field.conflict_samples) == (2, 1, ["orders:both"])
    assert (move.keys, move.conflicts, move.conflict_samples) == (1, 1,
                                                                ["orders:by_prosumer:u5"])
    assert (move.targets_before, move.expected_keys_after, move.expected_members_after) == \
        (2, 2, 4)
    result = redis_migrate.migrate(settings, DEFAULT_RULES)
    assert result.conflicts == 2
    assert redis_client.hgetall("orders:both") == {"prosumerId": "u1", "userId": "u2"}
    assert redis_client.hgetall("orders:same") == {"userId": "u3"}
    assert redis_client.zrange("orders:by_user:u4", 0, -1, withscores=True) == [
        ("plain", 10.0), ("shared", 25.0), ("new", 30.0)]  # the target's own score wins
    assert not redis_client.exists("orders:by_prosumer:u4")
    assert redis_client.get("orders:by_prosumer:u5") == "a string"


def test_a_cancelled_run_leaves_every_key_whole_and_a_second_run_finishes(
        settings: RedisSettings, redis_client: redis.Redis, redis_server: RedisServer,
        journal: Journal) -> None:
    seed_redis(redis_client, 2500)
    reference = redis_server.client(db=3)  # the same data, migrated without interruption
    reference.flushdb()
    seed_redis(reference, 2500)
    redis_migrate.migrate(RedisSettings.from_url(f"{redis_server.url}/3",
                                                 password=redis_server.password),
                          DEFAULT_RULES)
    cancel = threading.Event()
    calls = 0

    def progress(_fraction: float, _detail: str) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:  # after the first batches of the first rule
            cancel.set()

    with pytest.raises(Cancelled, match="either migrated or untouched"):
        redis_migrate.migrate(settings, DEFAULT_RULES, progress=progress, cancel=cancel,
                              journal=journal)
    halfway = journal.events("redis_migrated")[-1]
    assert halfway["outcome"] == "cancelled"
    assert 0 < halfway["result"]["changed"] < 5000
    # No hash is half-renamed: each has exactly one of the two fields.
    for key in redis_client.scan_iter("orders:order_*", count=1000):
        assert redis_client.hexists(key, "prosumerId") != redis_client.hexists(key, "userId")
    redis_migrate.migrate(settings, DEFAULT_RULES)
    assert digest(redis_client) == digest(reference)
    reference.flushdb()
    reference.close()


def test_a_killed_step_is_finished_by_running_it_again(
        redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path) -> None:
    """SIGKILL of `enerlink-migrate cache` part-way: every key is migrated or untouched,
    the journal shows how far it got, and a second run reaches the uninterrupted end."""
    seed_redis(redis_client, 5000, max_order_users=5000)
    reference = redis_server.client(db=3)
    reference.flushdb()
    seed_redis(reference, 5000, max_order_users=5000)
    redis_migrate.migrate(RedisSettings.from_url(f"{redis_server.url}/3",
                                                 password=redis_server.password),
                          DEFAULT_RULES)
    env = {**os.environ, "REDISCLI_AUTH": redis_server.password,
           "XDG_DATA_HOME": str(tmp_path)}
    argv = [sys.executable, "-m", "wizard", "cache", "--redis-url", f"{redis_server.url}/1"]
    with subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True) as child:
        assert child.stderr is not None
        for line in child.stderr:  # progress lines: kill once the first rule is under way
            if "field orders:* prosumerId=userId:" in line and \
                    not line.strip().endswith(" 0 keys"):
                child.send_signal(signal.SIGKILL)
                break
        child.wait(30)
    half = [k for k in redis_client.scan_iter("orders:order_*", count=1000)
            if redis_client.hexists(k, "userId")]
    assert 0 < len(half) < 10_000, "the kill came too late or too early to prove anything"
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    assert digest(redis_client) == digest(reference)
    reference.flushdb()
    reference.close()


# --- failures: a clear message naming the rule, nothing half-done, retryable -------------

@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    server = RedisServer.start()
    try:
        yield server
    finally:
        server.stop()


def test_wrong_password_and_server_down_change_nothing(
        settings: RedisSettings, redis_client: redis.Redis, redis_server: RedisServer) -> None:
    seed_redis(redis_client, 20)
    before = digest(redis_client)
    with pytest.raises(RedisUnavailable, match="wrong password or user") as info:
        redis_migrate.migrate(settings.with_password("not-it"), DEFAULT_RULES)
    assert "not-it" not in str(info.value)
    assert digest(redis_client) == before
    down = RedisSettings.from_url("redis://127.0.0.1:1/0", password="pw-not-shown")
    with pytest.raises(RedisUnavailable, match="connection refused") as info:
        redis_migrate.dry_run(down, DEFAULT_RULES)
    assert "pw-not-shown" not in str(info.value)


def test_out_of_memory_names_the_rule_and_a_retry_finishes(own_server: RedisServer) -> None:
    client = own_server.client()
    seed_redis(client, 200)
    settings = RedisSettings.from_url(own_server.url, password=own_server.password)
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1")  # every write is refused with OOM
    with pytest.raises(RedisUnavailable, match=r"OOM.*rule `field orders:\* "
                                               r"prosumerId=userId`") as info:
        redis_migrate.migrate(settings, DEFAULT_RULES)
    assert info.value.kind == redis_conn.REFUSES_WRITES
    assert "database result stands" in str(info.value)
    assert client.hexists(next(client.scan_iter("orders:order_*")), "prosumerId")
    client.config_set("maxmemory", "0")
    assert redis_migrate.migrate(settings, DEFAULT_RULES).changed == 400 + 200 + 20
    client.close()


def test_a_read_only_replica_is_named_and_nothing_changes(own_server: RedisServer) -> None:
    replica = RedisServer.start()
    try:
        primary = own_server.client()
        seed_redis(primary, 50)
        rc = replica.client()
        rc.config_set("masterauth", own_server.password)
        rc.replicaof("127.0.0.1", own_server.port)
        deadline = time.monotonic() + 20
        while rc.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica never synced"
            time.sleep(0.1)
        while rc.dbsize() != primary.dbsize():
            time.sleep(0.05)
        settings = RedisSettings.from_url(replica.url, password=replica.password)
        with pytest.raises(RedisUnavailable, match="read-only replica") as info:
            redis_migrate.migrate(settings, DEFAULT_RULES)
        assert info.value.kind == redis_conn.REFUSES_WRITES
        assert "field orders:* prosumerId=userId" in str(info.value)
        assert primary.hexists(next(primary.scan_iter("orders:order_*")), "prosumerId")
        primary.close()
        rc.close()
    finally:
        replica.stop()


def test_the_protected_families_and_other_dbs_are_never_touched(
        settings: RedisSettings, redis_client: redis.Redis, redis_server: RedisServer) -> None:
    seed_redis(redis_client, 40)
    other = redis_server.client(db=2)
    other.flushdb()
    other.hset("orders:x", mapping={"prosumerId": "another app"})
    before = {k: v for k, v in digest(redis_client).items()
              if k.startswith(("telemetry:", "price:"))}
    redis_migrate.migrate(settings, [*DEFAULT_RULES, DeleteKeys("orders:by_type:*")])
    assert {k: v for k, v in digest(redis_client).items()
            if k.startswith(("telemetry:", "price:"))} == before
    assert other.hget("orders:x", "prosumerId") == "another app"
    other.flushdb()
    other.close()


def test_cli_revert_brings_redis_back_to_the_old_names_after_the_schema(
        pg_db: PgSettings, redis_server: RedisServer, redis_client: redis.Redis,
        tmp_path: Path) -> None:
    from wizard.core import jobs
    from wizard.core.plan import UP
    from wizard.sandbox.probes import run_cli
    from wizard.sandbox.redis_seed import old_order_book_problems, renamed_order_book

    assert jobs.run(pg_db, UP)[1].ok
    renamed_order_book(redis_client)
    env = {**os.environ, "REDISCLI_AUTH": redis_server.password}
    out = run_cli(pg_db, "revert", "--confirm", pg_db.dbname, "--redis-url",
                  f"{redis_server.url}/1", folder=tmp_path, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"Redis {redis_server.url}/1: 2 keys brought back to the old names" in out.stdout
    assert old_order_book_problems(redis_client) == []
    assert jobs.inspect(pg_db).state == "pre"
    assert redis_server.password not in out.stdout + out.stderr


def test_cli_a_protected_family_is_touched_only_when_typed(
        redis_server: RedisServer, redis_client: redis.Redis) -> None:
    redis_client.set("telemetry:old:1", "x")
    redis_client.set("telemetry:latest:data", "kept")
    env = {**os.environ, "REDISCLI_AUTH": redis_server.password}
    argv = [sys.executable, "-m", "wizard", "cache", "--redis-url", f"{redis_server.url}/1",
            "--rule", "delete telemetry:old:*"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 3
    assert "type the family (telemetry:)" in out.stderr
    assert redis_client.exists("telemetry:old:1")
    out = subprocess.run([*argv, "--allow-family", "telemetry:"], env=env,
                         capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    assert not redis_client.exists("telemetry:old:1")
    assert redis_client.get("telemetry:latest:data") == "kept"
