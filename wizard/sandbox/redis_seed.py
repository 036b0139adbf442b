"""Writes sample Redis keys in the application's patterns, plus keys that must survive."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone

import redis

from wizard.sandbox.seed import user_id, wallet_address

ORDER_TYPES = ("BID", "ASK")
ORDER_STATUSES = ("OPEN", "PARTIALLY_FILLED", "FILLED", "CANCELLED")
BATCH = 5_000
PROFILE_CACHE_USERS = 20


def _iso(ms: int) -> str:
    """An instant as the application writes it (Date.toISOString)."""
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{ms % 1000:03d}Z"


def _pattern_of(key: str) -> str:
    """The family a key belongs to, for the summary: orders:by_prosumer:* etc."""
    parts = key.split(":")
    if parts[0] == "prosumer":
        return "prosumer:*"
    if parts[0] == "orders" and parts[1] in ("by_prosumer", "by_type", "by_status"):
        return f"orders:{parts[1]}:*"
    if key in ("orders:all", "telemetry:latest:data", "telemetry:latest:status",
               "price:current"):
        return key
    return ":".join(parts[:2]) + ":*" if parts[0] != "orders" else "orders:{id}"


def seed_redis(client: redis.Redis, users: int, *, orders_per_user: int = 2,
               max_order_users: int = 5_000, meters: int = 50) -> Counter[str]:
    """Orders of the first `max_order_users` users, telemetry of `meters` meters, prices.

    Returns how many keys of each family exist afterwards. Keys are written in pipelined
    batches; nothing is deleted, so run it on an empty db index.
    """
    keys: set[str] = set()
    pipe = client.pipeline(transaction=False)
    pending = 0

    def flush_if_full() -> None:
        nonlocal pending
        if pending >= BATCH:
            pipe.execute()
            pending = 0

    base_ms = 1_761_993_000_000
    for i in range(min(users, max_order_users)):
        uid = user_id(i)
        for k in range(orders_per_user):
            order_id = f"order_{base_ms + i * 10 + k}_{i:06x}{k}"
            order_type = ORDER_TYPES[(i + k) % 2]
            status = ORDER_STATUSES[(i * 3 + k) % len(ORDER_STATUSES)]
            created = base_ms + i * 10 + k
            price, amount = 1500 + (i % 7) * 25, (i % 40) + 1
            at = _iso(created)
            # Every field the pre-rename RedisOrdersService.setOrder writes, in its order.
            pipe.hset(f"orders:{order_id}", mapping={
                "orderId": order_id, "prosumerId": uid, "walletAddress": wallet_address(i, 0),
                "orderType": order_type, "pair": "ETK/IDRS", "amountEtk": str(amount),
                "priceIdrsPerEtk": str(price), "totalIdrsValue": str(amount * price),
                "statusOnChain": status, "createdAtOnChain": at, "updatedAtCache": at,
                "blockchainTxHashPlaced": f"0x{i:060x}{k:04x}", "blockchainTxHashFilled": "",
                "blockchainTxHashCancelled": "",
            })
            pipe.sadd("orders:all", order_id)
            pipe.zadd(f"orders:by_type:{order_type}", {order_id: price * 100})
            pipe.zadd(f"orders:by_status:{status}", {order_id: created})
            pipe.zadd(f"orders:by_prosumer:{uid}", {order_id: created})
            keys.update((f"orders:{order_id}", "orders:all", f"orders:by_type:{order_type}",
                         f"orders:by_status:{status}", f"orders:by_prosumer:{uid}"))
            pending += 5
            flush_if_full()
    for i in range(min(users, max_order_users, PROFILE_CACHE_USERS)):
        uid = user_id(i)  # the old application's profile cache: rebuilt on demand
        pipe.set(f"prosumer:{uid}:profile", json.dumps({"prosumerId": uid}), ex=3600)
        keys.add(f"prosumer:{uid}:profile")
        pending += 1
        flush_if_full()

    for m in range(min(users, meters)):
        meter = f"METER{m:08d}"
        key = f"telemetry:timeseries:{meter}"
        pipe.zadd(key, {json.dumps({"meterId": meter, "t": base_ms + s, "w": s % 900}):
                        base_ms + s for s in range(0, 3600_000, 300_000)})
        keys.add(key)
        pending += 1
        flush_if_full()
    pipe.set("telemetry:latest:data", json.dumps({"meters": min(users, meters)}))
    pipe.set("telemetry:latest:status", json.dumps({"online": min(users, meters)}))
    pipe.set("price:current", json.dumps({"idrsPerEtk": 1500, "at": base_ms}))
    for window in ("1h", "24h"):
        pipe.zadd(f"price:history:{window}", {str(1500 + d): base_ms + d for d in range(24)})
        pipe.zadd(f"price:candles:{window}", {json.dumps({"o": 1500, "c": 1500 + d}):
                                              base_ms + d for d in range(24)})
        keys.update((f"price:history:{window}", f"price:candles:{window}"))
    keys.update(("telemetry:latest:data", "telemetry:latest:status", "price:current"))
    pipe.execute()
    return Counter(_pattern_of(k) for k in keys)


def renamed_order_book(client: redis.Redis) -> None:
    """A tiny order book as the new application keeps it (userId, orders:by_user:*), and a
    key no rule touches: what a restore of a pre-rename backup must turn back."""
    client.hset("orders:order_7", mapping={"orderId": "order_7", "userId": "user_7",
                                           "statusOnChain": "OPEN"})
    client.sadd("orders:all", "order_7")
    client.zadd("orders:by_user:user_7", {"order_7": 1_761_993_000_000})
    client.set("telemetry:meter-1", "kept")


def old_order_book_problems(client: redis.Redis) -> list[str]:
    """What keeps renamed_order_book's data from being the old application's again."""
    def text(value: object) -> object:
        return value.decode() if isinstance(value, bytes) else value

    problems = []
    if text(client.hget("orders:order_7", "prosumerId")) != "user_7":
        problems.append("orders:order_7 has no prosumerId user_7")
    if client.hexists("orders:order_7", "userId"):
        problems.append("orders:order_7 still has userId")
    if client.exists("orders:by_user:user_7"):
        problems.append("orders:by_user:user_7 still exists")
    if client.zscore("orders:by_prosumer:user_7", "order_7") != 1_761_993_000_000:
        problems.append("orders:by_prosumer:user_7 lacks order_7 with its score")
    if text(client.get("telemetry:meter-1")) != "kept":
        problems.append("telemetry:meter-1 changed")
    return problems
