"""One Redis or a Redis Cluster, seen the same way by the Redis migration: the primaries to
SCAN, and a way to send commands to the node that owns a key.

A cluster refuses a command whose keys live in different hash slots (CROSSSLOT), so the
migration groups keys by slot, and moves a key to another slot by copying it and then
deleting the source, never with RENAME.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wizard.core.lazy import lazy_module
from wizard.core.redis_conn import CLUSTER, RedisSettings, RedisUnavailable, explain

if TYPE_CHECKING:
    import redis
    from redis.cluster import RedisCluster
else:
    redis = lazy_module("redis")  # about 0.1 s: loaded when Redis is first spoken to

SCAN_COUNT = 1000


@dataclass
class Keyspace:
    """`routed` sends a command to the node owning its key (the client itself on one
    Redis); `primaries` are the clients to SCAN (one on a single Redis)."""

    settings: RedisSettings
    routed: redis.Redis | RedisCluster
    primaries: list[redis.Redis]
    cluster: bool

    def describe(self) -> str:
        if not self.cluster:
            return self.settings.describe()
        return f"{self.settings.describe()} (Redis Cluster, {len(self.primaries)} primaries)"

    def scan(self, match: str) -> Iterator[tuple[redis.Redis, list[bytes]]]:
        """(node, keys) batches of every primary, with SCAN MATCH, until each cursor ends."""
        for node in self.primaries:
            cursor = 0
            while True:
                cursor, keys = node.scan(cursor, match=match, count=SCAN_COUNT)
                if keys:
                    yield node, [k if isinstance(k, bytes) else k.encode() for k in keys]
                if cursor == 0:
                    break


def by_slot(keys: Sequence[bytes]) -> list[list[bytes]]:
    """Keys grouped by their cluster hash slot (a script may only touch one slot)."""
    from redis.crc import key_slot

    groups: dict[int, list[bytes]] = defaultdict(list)
    for key in keys:
        groups[key_slot(key)].append(key)
    return list(groups.values())


def _cluster_enabled(client: redis.Redis) -> bool:
    """INFO's cluster_enabled; when an ACL refuses INFO, HELLO's mode (HELLO is never
    refused), so a cluster is not taken for one Redis and counted from one node only."""
    try:
        return bool(int(client.info("cluster").get("cluster_enabled", 0)))
    except redis.exceptions.ResponseError:
        pass
    try:
        reply = client.execute_command("HELLO", "2")  # type: ignore[no-untyped-call]
    except redis.exceptions.ResponseError:
        return False  # a Redis before 6: a single Redis as far as we can tell
    fields = reply if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2],
                                                            strict=True))
    return type_of(fields.get(b"mode", fields.get("mode", b""))) == "cluster"


def _no_slot_map(settings: RedisSettings, exc: Exception) -> RedisUnavailable:
    """redis-py says "Cluster mode is not enabled" when it may not read the slot map, which
    is a grant to give, not a setting to change."""
    text = str(exc).replace(settings.password, "***") if settings.password else str(exc)
    return RedisUnavailable(
        f"Redis at {settings.describe()} is a Redis Cluster node, but the cluster's slot map "
        f"could not be read (the client said: {text}); on a cluster the Redis user also "
        f"needs +cluster|slots and +command, and each node's announced address must be "
        f"reachable from here", CLUSTER)


@contextlib.contextmanager
def open_keyspace(settings: RedisSettings) -> Iterator[Keyspace]:
    """The keyspace behind `settings`; a cluster is recognised by INFO (cluster_enabled)
    or HELLO, and reached through its primaries. Errors come out as
    RedisUnavailable."""
    single = settings.client()
    cluster: RedisCluster | None = None
    try:
        single.ping()
        if not _cluster_enabled(single):
            yield Keyspace(settings, single, [single], False)
            return
        try:
            cluster = settings.cluster_client()
        except redis.exceptions.RedisClusterException as exc:  # not a RedisError
            raise _no_slot_map(settings, exc) from None
        nodes = [cluster.get_redis_connection(n)
                 for n in cluster.get_primaries()]  # type: ignore[no-untyped-call]
        yield Keyspace(settings, cluster, nodes, True)
    except (redis.exceptions.RedisError, OSError) as exc:
        raise explain(settings, exc) from None
    finally:
        single.close()
        if cluster is not None:
            cluster.close()


def type_of(reply: Any) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)
