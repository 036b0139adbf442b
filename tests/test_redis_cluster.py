"""The Redis migration on a real Redis Cluster (three primaries, a password).

Every test seeds the application's order book through a cluster client, takes a digest
of every key on every primary, runs the step, and compares the digest with the one the
rules predict: so a key changed that no rule names, or a key a rule names left as it was,
fails the test. The seed has a few thousand keys, so SCAN (COUNT 1000) takes several
batches on each node.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from wizard.core.redis_conn import CLUSTER, RedisSettings, RedisUnavailable, explain
from wizard.core.redis_keyspace import open_keyspace
from wizard.core.redis_migrate import DryRun, MigrationResult, dry_run, migrate
from wizard.core.redis_rules import DEFAULT_RULES, inverse
from wizard.core.reporting import Cancelled
from wizard.sandbox.redis_seed import seed_redis
from wizard.sandbox.servers import RedisClusterServer, RedisServer

USERS = 1500  # 3000 order hashes, 1500 per-owner sorted sets: ~4700 keys in all
ORDERS_PER_USER = 2
CACHE_KEYS = 20  # prosumer:*:profile, as seed_redis writes them
OLD, NEW = b"orders:by_prosumer:", b"orders:by_user:"

Entry = tuple[str, Any, bool]  # type, content, has a TTL
Digest = dict[bytes, Entry]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServer]:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server and redis-cli are needed for a Redis Cluster "
                    "(Debian: apt-get install redis-server)")
    server = RedisClusterServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nodes(cluster: RedisClusterServer) -> Iterator[list[redis.Redis]]:
    """A bytes client per primary, every primary flushed before and after the test."""
    clients = [redis.Redis(host="127.0.0.1", port=port, password=cluster.password)
               for port in cluster.ports]
    for client in clients:
        client.flushall()
    try:
        yield clients
    finally:
        for client in clients:
            client.flushall()
            client.close()


@pytest.fixture
def routed(cluster: RedisClusterServer) -> Iterator[RedisCluster]:
    """A bytes cluster client (routes each key to its node), as the migration's own."""
    client = RedisCluster(host="127.0.0.1", port=cluster.ports[0], password=cluster.password)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def settings(cluster: RedisClusterServer) -> RedisSettings:
    return RedisSettings.from_url(cluster.url, password=cluster.password)


@pytest.fixture
def seeded(nodes: list[redis.Redis], routed: RedisCluster) -> Digest:
    """The order book, written through the cluster client (its pipeline routes each
    command to the node owning the key); returns the digest before any migration."""
    seed_redis(cast(redis.Redis, routed), USERS, orders_per_user=ORDERS_PER_USER)
    return digest(nodes)


# -- digests ---------------------------------------------------------------------------------

def _keys(node: redis.Redis) -> list[bytes]:
    return list(node.scan_iter(count=1000))


def _queue_content(pipe: Any, kind: str, key: bytes) -> None:
    if kind == "hash":
        pipe.hgetall(key)
    elif kind == "zset":
        pipe.zrange(key, 0, -1, withscores=True)
    elif kind == "set":
        pipe.smembers(key)
    elif kind == "list":
        pipe.lrange(key, 0, -1)
    else:
        pipe.get(key)


def _canonical(kind: str, reply: Any) -> Any:
    """Order-independent for hashes and sets; zsets come sorted by score already."""
    if kind == "hash":
        return tuple(sorted(reply.items()))
    if kind == "set":
        return tuple(sorted(reply))
    return tuple(reply) if isinstance(reply, list) else reply


def digest(nodes: list[redis.Redis]) -> Digest:
    """Every key of every primary: type, content (hash items, zset members with scores,
    set members, list items, string value), whether it has a TTL. Pipelined per node: a
    node holds only keys of its own slots, so no command is redirected."""
    out: Digest = {}
    for node in nodes:
        keys = _keys(node)
        pipe = node.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
            pipe.pttl(key)
        meta = pipe.execute()
        kinds = [k.decode() for k in meta[0::2]]
        for key, kind in zip(keys, kinds, strict=True):
            _queue_content(pipe, kind, key)
        contents = pipe.execute()
        for key, kind, ttl, content in zip(keys, kinds, meta[1::2], contents, strict=True):
            out[key] = (kind, _canonical(kind, content), ttl > 0)
    return out


def placement(nodes: list[redis.Redis]) -> dict[bytes, int]:
    """Which primary holds each key."""
    return {key: i for i, node in enumerate(nodes) for key in _keys(node)}


def expected_up(before: Digest) -> Digest:
    """What DEFAULT_RULES must make of `before` (no target existed): prosumerId becomes
    userId in orders:* hashes, orders:by_prosumer:X becomes orders:by_user:X unchanged,
    prosumer:* is gone; every other key exactly as it was."""
    after: Digest = {}
    for key, (kind, content, ttl) in before.items():
        if key.startswith(b"prosumer:"):
            continue
        if key.startswith(OLD):
            after[NEW + key[len(OLD):]] = (kind, content, ttl)
        elif kind == "hash" and key.startswith(b"orders:"):
            renamed = ((b"userId" if f == b"prosumerId" else f, v) for f, v in content)
            after[key] = (kind, tuple(sorted(renamed)), ttl)
        else:
            after[key] = (kind, content, ttl)
    return after


def changed_keys(before: Digest, after: Digest) -> set[bytes]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def _family(key: bytes) -> bytes:
    if key.startswith((OLD, NEW, b"prosumer:")):
        return key.rsplit(b":", 2 if key.startswith(b"prosumer:") else 1)[0] + b":*"
    return key


# -- the tests -------------------------------------------------------------------------------

def test_the_seed_spreads_every_family_over_every_primary(
        seeded: Digest, nodes: list[redis.Redis], settings: RedisSettings) -> None:
    where = placement(nodes)
    for prefix in (b"orders:order_", OLD, b"prosumer:", b"telemetry:"):
        assert {where[k] for k in seeded if k.startswith(prefix)} == {0, 1, 2}, prefix
    # SCAN takes several batches on each node for the orders:* family.
    assert all(sum(1 for k in _keys(n) if k.startswith(b"orders:")) > 1000 for n in nodes)
    with open_keyspace(settings) as ks:
        assert ks.cluster
        assert len(ks.primaries) == 3
        assert "Redis Cluster, 3 primaries" in ks.describe()


def test_dry_run_counts_each_rule_and_changes_nothing(
        seeded: Digest, nodes: list[redis.Redis], settings: RedisSettings) -> None:
    result = dry_run(settings, DEFAULT_RULES)
    rename, move, delete = result.rules
    orders = USERS * ORDERS_PER_USER
    assert (rename.rule, rename.keys, rename.conflicts) == (
        "field orders:* prosumerId=userId", orders, 0)
    assert (move.keys, move.members, move.conflicts, move.targets_before) == (
        USERS, orders, 0, 0)
    assert (move.expected_keys_after, move.expected_members_after) == (USERS, orders)
    assert (delete.keys, delete.conflicts) == (CACHE_KEYS, 0)
    assert all(s.startswith("prosumer:") for s in delete.samples)
    assert result.orders_all is not None
    assert result.orders_all["members"] == orders
    assert digest(nodes) == seeded


def test_migrate_changes_exactly_the_rule_matched_keys_and_a_second_run_nothing(
        seeded: Digest, nodes: list[redis.Redis], settings: RedisSettings,
        routed: RedisCluster) -> None:
    owner = NEW + seeded_owner(seeded)
    routed.pexpire(OLD + owner[len(NEW):], 600_000)  # a TTL must travel with the key
    before = digest(nodes)
    old_place = placement(nodes)

    result = migrate(settings, DEFAULT_RULES)

    after = digest(nodes)
    assert after == expected_up(before)
    assert after[owner][2], "the TTL of the moved key was lost"
    families = {_family(k) for k in changed_keys(before, after)}
    assert families == {OLD + b"*", NEW + b"*", b"prosumer:*"} | {
        k for k in before if k.startswith(b"orders:order_")}
    assert [(r.changed, r.merged, r.conflicts) for r in result.rules] == [
        (USERS * ORDERS_PER_USER, 0, 0), (USERS, 0, 0), (CACHE_KEYS, 0, 0)]
    assert result.rules[0].batches > len(nodes)  # SCAN took more than one batch per node
    # The moved sets live in other slots, most on another primary, each on its owner.
    new_place = placement(nodes)
    moved = [k for k in after if k.startswith(NEW)]
    assert all(key_slot(k) != key_slot(OLD + k[len(NEW):]) for k in moved)
    assert sum(new_place[k] != old_place[OLD + k[len(NEW):]] for k in moved) > USERS // 2
    assert all(owner_port(routed, k) == node_port(nodes, new_place[k]) for k in moved[:200])

    again = migrate(settings, DEFAULT_RULES)
    assert again.changed == 0
    assert digest(nodes) == after


def test_down_restores_every_order_key_exactly(
        seeded: Digest, nodes: list[redis.Redis], settings: RedisSettings) -> None:
    migrate(settings, DEFAULT_RULES)
    back = migrate(settings, inverse(DEFAULT_RULES), direction="down")
    assert back.direction == "down"
    assert [r.changed for r in back.rules] == [USERS * ORDERS_PER_USER, USERS]
    restored = digest(nodes)
    # The prosumer:* cache stays deleted by design (the old application rebuilds it).
    assert restored == {k: v for k, v in seeded.items() if not k.startswith(b"prosumer:")}
    assert not any(k.startswith(NEW) for k in restored)


def test_a_target_the_new_application_created_ends_with_the_union(
        seeded: Digest, nodes: list[redis.Redis], settings: RedisSettings,
        routed: RedisCluster) -> None:
    uid = seeded_owner(seeded)
    source, target = OLD + uid, NEW + uid
    old_members = scores(routed, source)
    shared = next(iter(old_members))
    # The new application already wrote one new order, and re-scored a shared one.
    routed.zadd(target, {b"order_new_app": 1.0, shared: 2.0})

    plan = dry_run(settings, DEFAULT_RULES).rules[1]
    assert (plan.targets_before, plan.expected_keys_after) == (1, USERS)
    assert plan.expected_members_after == USERS * ORDERS_PER_USER + 1

    result = migrate(settings, DEFAULT_RULES)

    assert (result.rules[1].changed, result.rules[1].merged) == (USERS, 1)
    merged = scores(routed, target)
    assert set(merged) == set(old_members) | {b"order_new_app"}
    assert merged[shared] == 2.0  # the target's own score wins
    assert all(merged[m] == s for m, s in old_members.items() if m != shared)
    assert not routed.exists(source)
    after = digest(nodes)
    assert {k: v for k, v in after.items() if k != target} == {
        k: v for k, v in expected_up(seeded).items() if k != target}


def test_a_cancelled_run_then_a_rerun_ends_like_an_uninterrupted_run(
        seeded: Digest, nodes: list[redis.Redis], settings: RedisSettings) -> None:
    cancel = threading.Event()

    def progress(_fraction: float, message: str) -> None:
        if message.startswith("move ") and not message.endswith(": 0 keys"):
            cancel.set()  # after the move's first batch

    with pytest.raises(Cancelled, match="running the step again finishes it"):
        migrate(settings, DEFAULT_RULES, progress=progress, cancel=cancel)
    half = digest(nodes)
    assert half != seeded
    assert any(k.startswith(OLD) for k in half), "the cancel came too late to test anything"
    moved_before = sum(1 for k in half if k.startswith(NEW))
    assert moved_before > 0

    result = migrate(settings, DEFAULT_RULES)

    assert result.rules[0].changed == 0  # the field rename had finished before the cancel
    assert result.rules[1].changed == USERS - moved_before
    assert digest(nodes) == expected_up(seeded)


def test_a_copy_whose_source_was_not_deleted_is_finished_by_the_next_run(
        seeded: Digest, nodes: list[redis.Redis], settings: RedisSettings,
        routed: RedisCluster) -> None:
    uid = seeded_owner(seeded)
    # As if a run had copied this set and stopped before deleting the source.
    routed.zadd(NEW + uid, cast(dict[Any, float], scores(routed, OLD + uid)))

    result = migrate(settings, DEFAULT_RULES)

    assert (result.rules[1].changed, result.rules[1].conflicts) == (USERS, 0)
    assert digest(nodes) == expected_up(seeded)


def write_edge_cases(client: redis.Redis | RedisCluster) -> None:
    """One key for each branch of the rules: conflicts of both kinds, keys that are not
    sorted sets, merges of sets and hashes, a hash tag (target in the same slot), TTLs, a
    key that is not UTF-8."""
    client.hset("orders:edge_conflict", mapping={"prosumerId": "u1", "userId": "u2"})
    client.hset("orders:edge_same", mapping={"prosumerId": "u1", "userId": "u1"})
    client.zadd("orders:by_prosumer:{tagged}", {"o1": 1.5, "o2": -3})
    client.zadd("orders:by_prosumer:typed", {"o1": 1})
    client.set("orders:by_user:typed", "the new application's")  # another type: conflict
    client.set("orders:by_prosumer:text", "moves whole", px=600_000)
    client.rpush("orders:by_prosumer:list", "b", "a", "b")
    client.set("orders:by_prosumer:both", "old")
    client.set("orders:by_user:both", "new")  # strings cannot be merged: conflict
    client.sadd("orders:by_prosumer:set", "a", "b")
    client.sadd("orders:by_user:set", "b", "c")
    client.hset("orders:by_prosumer:hash", mapping={"a": "old", "b": "old"})
    client.hset("orders:by_user:hash", mapping={"b": "new", "c": "new"})
    client.pexpire("orders:by_user:hash", 600_000)  # the target's TTL stays
    client.zadd(b"orders:by_prosumer:\xff\xfe", {b"\x00order": 7})


def _outcome(plan: DryRun, result: MigrationResult) -> list[tuple[Any, ...]]:
    return [(c.keys, c.members, c.conflicts, c.targets_before, c.expected_keys_after,
             c.expected_members_after, r.changed, r.merged, r.conflicts,
             sorted(r.conflict_samples)) for c, r in zip(plan.rules, result.rules, strict=True)]


def test_every_kind_of_key_ends_as_on_a_single_redis(
        seeded: Digest, nodes: list[redis.Redis], settings: RedisSettings,
        routed: RedisCluster, redis_server: RedisServer,
        redis_client: redis.Redis) -> None:
    single = redis.Redis(host="127.0.0.1", port=redis_server.port,
                         password=redis_server.password, db=1)
    single_settings = RedisSettings.from_url(f"{redis_server.url}/1",
                                             password=redis_server.password)
    seed_redis(single, USERS, orders_per_user=ORDERS_PER_USER)
    for client in (routed, single):
        write_edge_cases(client)
    try:
        on_single = _outcome(dry_run(single_settings, DEFAULT_RULES),
                             migrate(single_settings, DEFAULT_RULES))
        on_cluster = _outcome(dry_run(settings, DEFAULT_RULES),
                              migrate(settings, DEFAULT_RULES))
        assert on_cluster == on_single
        # The dry run predicted what the run did: keys changed and conflicts.
        assert all(row[0] == row[6] and row[2] == row[8] for row in on_cluster)
        assert on_cluster[1][9] == ["orders:by_prosumer:both", "orders:by_prosumer:typed"]
        assert digest(nodes) == digest([single])
    finally:
        single.close()


def test_a_cluster_error_is_explained_without_the_password(
        cluster: RedisClusterServer, nodes: list[redis.Redis],
        settings: RedisSettings) -> None:
    with pytest.raises(redis.exceptions.ResponseError) as raised:
        nodes[0].unlink("orders:a", "orders:b")  # two slots in one command
    explained = explain(settings, raised.value)
    assert explained.kind == CLUSTER
    assert "CROSSSLOT" in str(explained)
    assert "did not expect" in str(explained)
    assert "not supported" not in str(explained)
    assert cluster.password not in str(explained)


NARROW = ["-@all", "+ping", "+@read", "+@write", "+@keyspace", "+@scripting", "-info"]


@pytest.mark.parametrize(("grants", "says"), [
    ([], "needs +cluster|slots and +command"),
    (["+cluster|slots", "+command"], None),
])
def test_a_user_without_info_is_still_seen_as_on_a_cluster(
        seeded: Digest, nodes: list[redis.Redis], cluster: RedisClusterServer,
        grants: list[str], says: str | None) -> None:
    """INFO refused must not make the cluster look like one Redis (counted from one node
    only); a user who cannot read the slot map is told which grants a cluster needs."""
    for node in nodes:  # ACL users are per node: a cluster does not share them
        node.acl_setuser("narrow", enabled=True, passwords=["+narrow-pw"], keys=["*"],
                         commands=NARROW + grants)
    narrow = RedisSettings.from_url(cluster.url, username="narrow", password="narrow-pw")
    try:
        if says is None:
            plan = dry_run(narrow, DEFAULT_RULES)
            assert [c.keys for c in plan.rules] == [USERS * ORDERS_PER_USER, USERS,
                                                    CACHE_KEYS]
            assert "Redis Cluster, 3 primaries" in plan.target
        else:
            with pytest.raises(RedisUnavailable, match=re.escape(says)) as raised:
                dry_run(narrow, DEFAULT_RULES)
            assert raised.value.kind == CLUSTER
            assert "narrow-pw" not in str(raised.value)
    finally:
        for node in nodes:
            node.acl_deluser("narrow")
    assert digest(nodes) == seeded


# -- helpers ---------------------------------------------------------------------------------

def seeded_owner(seeded: Digest) -> bytes:
    """The id of one owner with orders (the first in key order: the test is repeatable)."""
    return min(k for k in seeded if k.startswith(OLD))[len(OLD):]


def node_port(nodes: list[redis.Redis], index: int) -> int:
    return int(nodes[index].connection_pool.connection_kwargs["port"])


def scores(client: RedisCluster, key: bytes) -> dict[bytes, float]:
    """A sorted set as {member: score}."""
    return dict(cast(list[tuple[bytes, float]], client.zrange(key, 0, -1, withscores=True)))


def owner_port(client: RedisCluster, key: bytes) -> int:
    """The port of the primary that owns `key`'s slot, as the cluster client sees it."""
    return int(client.get_node_from_key(key).port)  # type: ignore[no-untyped-call]
