"""EnerLink's cancel-order, checked before its blockchain call, on pre-rename orders.

The real backend (p2p-energy-trading/backend at da9de11, the post-rename head) answered
HTTP 400 "Unauthorized: You do not own this order" when a user cancelled one of their own
pre-rename open orders after the schema migration: the order hash still said `prosumerId`
and the new code reads `userId`. These tests replay, on real servers, exactly the checks
`POST /api/v1/trading/cancel-order` makes before it calls the chain, for every pre-rename
OPEN order of the sample data: before the wizard's Redis step each one fails the
ownership check, after it each one passes all of them. The same steps against the real
backend are in tests/acceptance/enerlink_backend.py.

What the backend does, read from its source at da9de11:
- src/controllers/trading/trading.controller.ts:641-690 `cancelOrder`:
  :649 `tradeOrdersCacheService.findOne(orderId)`; :653 `cachedOrder.userId !== userId` →
  400 "Unauthorized: You do not own this order"; :659 `statusOnChain !== 'OPEN'` → 400
  "Order is not open (current status: …)"; :666 `verifyWalletOwnership(walletAddress,
  userId)`; :669 `blockchainService.cancelOrder(…)`.
- src/services/trading/trade-orders-cache-redis.service.ts:87-100 `findOne` →
  src/services/trading/redis-orders.service.ts:123-146 `getOrder`: HGETALL orders:{id};
  empty → null (findOne throws "Order with orderId … not found"); owner = field `userId`.
- trading.controller.ts:1029-1045 `verifyWalletOwnership` →
  src/models/user/user.service.ts:61-72 `findByWalletAddress`: TypeORM
  `WalletsRepo.find({ where: { walletAddress }, relations: ['users'] })` (the relation is
  src/models/wallet/wallet.entity.ts:56-58, ManyToOne User, JoinColumn user_id); no
  wallet → Error → 400 "Wallet not found"; then `prosumers.find(p => p.userId ===
  userId)` over the joined users (a null user throws → "Wallet not found"), none → 400
  "Unauthorized: You do not own this wallet".
- src/services/trading/redis-orders.service.ts:151-192 `getAllOrders({userId})`: ZRANGE
  orders:by_user:{userId}, the per-owner index the new code lists a user's orders from.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, cast

import psycopg
import pytest
import redis

from wizard.core import jobs, redis_migrate
from wizard.core.connection import PgSettings
from wizard.core.plan import UP
from wizard.core.redis_conn import RedisSettings
from wizard.core.redis_rules import DEFAULT_RULES
from wizard.sandbox.redis_seed import seed_redis
from wizard.sandbox.seed import user_id, wallet_address
from wizard.sandbox.servers import RedisServer

USERS = 40  # the sample database's users (tests/conftest.py TEMPLATE_USERS)
ORDERS_PER_USER = 2  # seed_redis's default

NOT_OWNER = "Unauthorized: You do not own this order"
NOT_WALLET_OWNER = "Unauthorized: You do not own this wallet"
WALLET_NOT_FOUND = "Wallet not found"

# The SQL findByWalletAddress runs (user.service.ts:62-65), exactly as the real backend
# sent it to PostgreSQL at da9de11 (TypeORM 0.3.27, captured with log_statement = all by
# tests/acceptance/enerlink_backend.py); only its $1 is written %s for psycopg.
WALLET_OWNERSHIP_SQL = (
    'SELECT "Wallet"."wallet_address" AS "Wallet_wallet_address", "Wallet"."user_id" AS '
    '"Wallet_user_id", "Wallet"."wallet_name" AS "Wallet_wallet_name", '
    '"Wallet"."encrypted_private_key" AS "Wallet_encrypted_private_key", '
    '"Wallet"."created_at" AS "Wallet_created_at", "Wallet"."import_method" AS '
    '"Wallet_import_method", "Wallet"."is_active" AS "Wallet_is_active", '
    '"Wallet"."last_used_at" AS "Wallet_last_used_at", "Wallet__Wallet_users"."user_id" AS '
    '"Wallet__Wallet_users_user_id", "Wallet__Wallet_users"."email" AS '
    '"Wallet__Wallet_users_email", "Wallet__Wallet_users"."password_hash" AS '
    '"Wallet__Wallet_users_password_hash", "Wallet__Wallet_users"."name" AS '
    '"Wallet__Wallet_users_name", "Wallet__Wallet_users"."created_at" AS '
    '"Wallet__Wallet_users_created_at", "Wallet__Wallet_users"."updated_at" AS '
    '"Wallet__Wallet_users_updated_at", "Wallet__Wallet_users"."primary_wallet_address" AS '
    '"Wallet__Wallet_users_primary_wallet_address" FROM "public"."wallet" "Wallet" LEFT JOIN '
    '"public"."user" "Wallet__Wallet_users" ON '
    '"Wallet__Wallet_users"."user_id"="Wallet"."user_id" WHERE '
    '(("Wallet"."wallet_address" = %s))'
)
JOINED_USER_ID = "Wallet__Wallet_users_user_id"


# redis_client decodes replies (decode_responses=True): these say so to the type checker.
def _hash(r: redis.Redis, key: str) -> dict[str, str]:
    return cast(dict[str, str], r.hgetall(key))


def _field(r: redis.Redis, key: str, name: str) -> str:
    return cast(str, r.hget(key, name) or "")


def _ids(values: Any) -> list[str]:
    return sorted(cast(Iterable[str], values))


def get_order(r: redis.Redis, order_id: str) -> dict[str, Any] | None:
    """redis-orders.service.ts:123-146: HGETALL orders:{id}, the owner read from userId."""
    data = _hash(r, f"orders:{order_id}")
    if not data:
        return None
    return {"orderId": data.get("orderId"), "userId": data.get("userId"),
            "walletAddress": data.get("walletAddress"),
            "statusOnChain": data.get("statusOnChain")}


def verify_wallet_ownership(conn: psycopg.Connection[Any], wallet: str,
                            caller: str) -> str | None:
    """trading.controller.ts:1029-1045 over user.service.ts:61-72; None when it passes."""
    try:
        cur = conn.execute(WALLET_OWNERSHIP_SQL, (wallet,))
    except psycopg.Error:
        conn.rollback()
        return WALLET_NOT_FOUND  # any error but a BadRequest becomes "Wallet not found"
    columns = [c.name for c in cur.description or ()]
    rows = cur.fetchall()
    if not rows:
        return WALLET_NOT_FOUND  # "No wallets found for walletAddress …"
    for row in rows:  # prosumers.find((p) => p.userId === userId)
        joined = row[columns.index(JOINED_USER_ID)]
        if joined is None:
            return WALLET_NOT_FOUND  # p is null: TypeError, caught as "Wallet not found"
        if joined == caller:
            return None
    return NOT_WALLET_OWNER


def cancel_order_checks(r: redis.Redis, conn: psycopg.Connection[Any], order_id: str,
                        caller: str) -> str | None:
    """What cancel-order answers before its blockchain call (trading.controller.ts:
    649-666): None when every check passes, else the backend's message."""
    order = get_order(r, order_id)
    if order is None:
        return f"Failed to cancel order: Order with orderId {order_id} not found"
    if order["userId"] != caller:
        return NOT_OWNER
    if order["statusOnChain"] != "OPEN":
        return f"Order is not open (current status: {order['statusOnChain']})"
    return verify_wallet_ownership(conn, order["walletAddress"], caller)


def _open_orders(r: redis.Redis) -> list[tuple[str, str]]:
    """(order id, owner) of every pre-rename OPEN order, read from the old field."""
    out = []
    for order_id in _ids(r.smembers("orders:all")):
        h = _hash(r, f"orders:{order_id}")
        if h["statusOnChain"] == "OPEN":
            out.append((order_id, h["prosumerId"]))
    return out


@pytest.fixture
def seeded(pg_db: PgSettings, redis_client: redis.Redis) -> list[tuple[str, str]]:
    """The pre-rename order book, checked against what the sample database holds."""
    seed_redis(redis_client, USERS)
    assert redis_client.scard("orders:all") == USERS * ORDERS_PER_USER
    with pg_db.connect() as conn:
        owner_of = dict(conn.execute("SELECT wallet_address, prosumer_id FROM wallet")
                        .fetchall())
        prosumers = {row[0] for row in conn.execute("SELECT prosumer_id FROM prosumer")}
    assert prosumers == {user_id(i) for i in range(USERS)}
    for order_id in _ids(redis_client.smembers("orders:all")):
        h = _hash(redis_client, f"orders:{order_id}")
        assert "userId" not in h
        i = next(i for i in range(USERS) if user_id(i) == h["prosumerId"])
        assert h["walletAddress"] == wallet_address(i, 0)
        assert owner_of[h["walletAddress"]] == h["prosumerId"]  # the DB agrees on the owner
        assert redis_client.zscore(f"orders:by_prosumer:{h['prosumerId']}", order_id) \
            is not None
    orders = _open_orders(redis_client)
    assert len(orders) >= 10  # every 4th order is OPEN: enough owners to mean something
    return orders


def _redis_settings(server: RedisServer) -> RedisSettings:
    return RedisSettings.from_url(f"{server.url}/1", password=server.password)


def test_cancel_order_checks_fail_before_the_redis_step_and_pass_after(
        pg_db: PgSettings, redis_server: RedisServer, redis_client: redis.Redis,
        seeded: list[tuple[str, str]]) -> None:
    t0 = time.monotonic()
    assert jobs.run(pg_db, UP)[1].ok  # the schema: prosumer → user, prosumer_id → user_id
    with pg_db.connect() as conn:
        # The migrated database alone is fine: each order's wallet belongs to its owner.
        assert all(verify_wallet_ownership(conn, _field(redis_client, f"orders:{o}",
                                                         "walletAddress"), owner) is None
                   for o, owner in seeded)
        before = {o: cancel_order_checks(redis_client, conn, o, owner) for o, owner in seeded}
        assert before == {o: NOT_OWNER for o, _ in seeded}  # what the real app said (400)
        for _o, owner in seeded:  # and the new code lists none of the user's orders
            assert redis_client.zrange(f"orders:by_user:{owner}", 0, -1) == []

        result = redis_migrate.migrate(_redis_settings(redis_server), DEFAULT_RULES)
        assert result.conflicts == 0

        after = {o: cancel_order_checks(redis_client, conn, o, owner) for o, owner in seeded}
        assert after == {o: None for o, _ in seeded}
    for order_id, owner in seeded:
        h = _hash(redis_client, f"orders:{order_id}")
        assert h["userId"] == owner
        assert "prosumerId" not in h
        assert order_id in _ids(redis_client.zrange(f"orders:by_user:{owner}", 0, -1))
        assert not redis_client.exists(f"orders:by_prosumer:{owner}")
    assert time.monotonic() - t0 < 10


def test_the_checks_still_refuse_what_the_backend_refuses(
        pg_db: PgSettings, redis_server: RedisServer, redis_client: redis.Redis,
        seeded: list[tuple[str, str]]) -> None:
    """The replayed checks are not a rubber stamp: another user, a closed order, a wallet
    of someone else and an unknown wallet get the backend's own refusals."""
    assert jobs.run(pg_db, UP)[1].ok
    redis_migrate.migrate(_redis_settings(redis_server), DEFAULT_RULES)
    order_id, owner = seeded[0]
    stranger = next(user_id(i) for i in range(USERS) if user_id(i) != owner)
    with pg_db.connect() as conn:
        assert cancel_order_checks(redis_client, conn, order_id, stranger) == NOT_OWNER
        assert cancel_order_checks(redis_client, conn, "order_missing", owner) == \
            "Failed to cancel order: Order with orderId order_missing not found"
        closed = next(o for o in _ids(redis_client.smembers("orders:all"))
                      if _field(redis_client, f"orders:{o}", "statusOnChain") == "FILLED")
        closer = _field(redis_client, f"orders:{closed}", "userId")
        assert cancel_order_checks(redis_client, conn, closed, closer) == \
            "Order is not open (current status: FILLED)"
        other_wallet = _field(redis_client, f"orders:{seeded[1][0]}", "walletAddress")
        assert seeded[1][1] != owner
        assert verify_wallet_ownership(conn, other_wallet, owner) == NOT_WALLET_OWNER
        assert verify_wallet_ownership(conn, "0x" + "0" * 40, owner) == WALLET_NOT_FOUND


def test_before_the_schema_step_the_wallet_query_fails(
        pg_db: PgSettings, redis_client: redis.Redis,
        seeded: list[tuple[str, str]]) -> None:
    """On the pre-rename schema the backend's wallet query has no table "user" to join:
    the new application needs both steps, not only the Redis one."""
    order_id, owner = seeded[0]
    wallet = _field(redis_client, f"orders:{order_id}", "walletAddress")
    with pg_db.connect() as conn:
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute(WALLET_OWNERSHIP_SQL, (wallet,))
        conn.rollback()
        assert verify_wallet_ownership(conn, wallet, owner) == WALLET_NOT_FOUND
