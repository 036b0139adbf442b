"""The sample database is EnerLink as it stands before the rename, with consistent rows."""

from __future__ import annotations

import re
from typing import cast

import psycopg
import pytest
import redis

from wizard.core.connection import PgSettings
from wizard.sandbox.redis_seed import seed_redis
from wizard.sandbox.seed import (
    MIGRATION_HISTORY,
    ORPHAN_INSERTS,
    expected_rows,
    inject_orphans,
    user_id,
)
from wizard.sandbox.servers import PostgresServer

# (table, column, referential action) of every foreign key to prosumer, from the facts.
PROSUMER_FKS = {
    ("wallet", "prosumer_id", "FK_62a1a16628b883318e6b443cf52", "a"),
    ("smart_meter", "prosumer_id", "FK_15c4c55f7a7ac1a93ae9a06a6c4", "a"),
    ("transaction_log", "prosumer_id", "FK_c610529db3b0d2fa571fcb32c0c", "a"),
    ("market_trade", "buyer_prosumer_id", "FK_e5d6128781fecd5e123649fd47b", "a"),
    ("market_trade", "seller_prosumer_id", "FK_028c93bfb292f998635a701742d", "a"),
    ("idrs_conversion", "prosumer_id", "FK_ca221ee5d35d43d27e8e2d0b799", "a"),
    ("token_blacklist", "prosumer_id", "FK_1a320f4470d1b5517ee5553b66b", "c"),
}

ORPHAN_COUNT_SQL = """
SELECT count(*) FROM {table} c
 WHERE c.{column} IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM prosumer p WHERE p.prosumer_id = c.{column})
"""


def _orphans(conn: psycopg.Connection, place: str) -> int:
    table, column = place.split(".")
    row = conn.execute(ORPHAN_COUNT_SQL.format(table=table, column=column)).fetchone()
    return int(row[0]) if row else -1


def test_row_counts_follow_the_per_user_proportions(pg_db: PgSettings) -> None:
    with pg_db.connect() as conn:
        for table, expected in expected_rows(40).items():
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert row == (expected,), table
        names = [r[0] for r in conn.execute("SELECT name FROM migrations ORDER BY id")]
    assert names == [name for _ts, name in MIGRATION_HISTORY]


def test_foreign_keys_to_prosumer_match_production(pg_db: PgSettings) -> None:
    with pg_db.connect() as conn:
        rows = conn.execute("""
            SELECT c.conrelid::regclass::text, a.attname, c.conname, c.confdeltype,
                   c.confupdtype, c.condeferrable, c.convalidated
              FROM pg_constraint c
              JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
             WHERE c.contype = 'f' AND c.confrelid = 'public.prosumer'::regclass""").fetchall()
    assert {r[:4] for r in rows} == PROSUMER_FKS
    assert all(r[4:] == ("a", False, True) for r in rows)


def test_ids_look_like_registration_ids(pg_db: PgSettings) -> None:
    with pg_db.connect() as conn:
        ids = [r[0] for r in conn.execute("SELECT prosumer_id FROM prosumer")]
    assert len(set(ids)) == 40
    assert all(re.fullmatch(r"prosumer_\d{13}_[0-9a-z]{9}", i) for i in ids)
    assert user_id(0) in ids


def test_clean_sample_has_no_orphans(pg_db: PgSettings) -> None:
    with pg_db.connect() as conn:
        assert {place: _orphans(conn, place) for place in ORPHAN_INSERTS} == dict.fromkeys(
            ORPHAN_INSERTS, 0)


def test_orphans_are_injected_past_the_foreign_keys(pg_db: PgSettings,
                                                    pg_server: PostgresServer) -> None:
    with pg_server.admin_connect(pg_db.dbname) as admin:
        written = inject_orphans(admin, 3)
    assert set(written) == set(ORPHAN_INSERTS)
    assert len(written) == 7  # seven referencing columns in six tables
    with pg_db.connect() as conn:
        found = {place: _orphans(conn, place) for place in ORPHAN_INSERTS}
        # The foreign keys are still there and still claim to be valid.
        (valid,) = conn.execute("SELECT bool_and(convalidated) FROM pg_constraint "
                                "WHERE confrelid = 'prosumer'::regclass").fetchone() or (None,)
    assert found == dict.fromkeys(ORPHAN_INSERTS, 3)
    assert valid is True


def test_referential_actions_behave_as_in_production(pg_db: PgSettings) -> None:
    with pg_db.connect() as conn:
        # NO ACTION: a prosumer who owns a meter (and wallets, trades...) cannot be deleted.
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="prosumer"):
            conn.execute("DELETE FROM prosumer WHERE prosumer_id = %s", (user_id(5),))
        conn.rollback()
        # CASCADE: a prosumer referenced only by blacklist rows takes them along.
        conn.execute("INSERT INTO prosumer VALUES ('prosumer_x', 'x@example.com', 'h', NULL, "
                     "now(), now(), NULL)")
        conn.execute("INSERT INTO token_blacklist (blacklist_type, prosumer_id, expires_at) "
                     "VALUES ('USER', 'prosumer_x', now()), ('TOKEN', 'prosumer_x', now())")
        conn.execute("DELETE FROM prosumer WHERE prosumer_id = 'prosumer_x'")
        left = conn.execute("SELECT count(*) FROM token_blacklist "
                            "WHERE prosumer_id = 'prosumer_x'").fetchone()
    assert left == (0,)


def test_leftover_functions_still_name_old_tables(pg_db: PgSettings) -> None:
    with pg_db.connect() as conn:
        bodies = dict(conn.execute(
            "SELECT proname, prosrc FROM pg_proc WHERE pronamespace = 'public'::regnamespace "
            "AND prolang = (SELECT oid FROM pg_language WHERE lanname = 'plpgsql')"))
        triggers = {r[0] for r in conn.execute(
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")}
        # The wallet trigger on market_trade already fails today, as in production.
        with pytest.raises(psycopg.errors.UndefinedTable, match="wallets"):
            conn.execute("""
                INSERT INTO market_trade (traded_etk_amount, price_idrs_per_etk,
                    total_idrs_value, buyer_order_id, seller_order_id, buyer_prosumer_id,
                    seller_prosumer_id, buyer_wallet_address, seller_wallet_address,
                    trade_timestamp, created_at)
                SELECT 1, 1, 1, 'b', 's', w.prosumer_id, w.prosumer_id, w.wallet_address,
                       w.wallet_address, now(), now() FROM wallet w LIMIT 1""")
    assert "UPDATE WALLETS" in bodies["update_wallet_last_used"]
    assert "DEVICE_COMMANDS" in bodies["handle_command_timeouts"]
    assert {"set_timestamp_prosumers", "set_timestamp_smart_meters",
            "trg_update_wallet_last_used_conversions",
            "trg_update_wallet_last_used_trades"} <= triggers


def test_redis_sample_keys_follow_the_application(redis_client: redis.Redis) -> None:
    counts = seed_redis(redis_client, 30, orders_per_user=2, meters=5)
    assert counts["orders:by_prosumer:*"] == 30
    assert counts["orders:{id}"] == 60
    assert counts["telemetry:timeseries:*"] == 5
    assert redis_client.scard("orders:all") == 60
    # The client decodes replies (decode_responses=True); the stubs say bytes.
    some_order = str(next(iter(redis_client.smembers("orders:all"))))
    order = cast(dict[str, str], redis_client.hgetall(f"orders:{some_order}"))
    assert order["prosumerId"].startswith("prosumer_")
    assert redis_client.zscore(f"orders:by_prosumer:{order['prosumerId']}", some_order)
    for key in ("telemetry:latest:data", "telemetry:latest:status", "price:current",
                "price:history:1h", "price:candles:1h"):
        assert redis_client.exists(key), key
    # The old application's profile cache: what the Redis step's `delete prosumer:*` is for.
    profiles = list(redis_client.scan_iter("prosumer:*"))
    assert counts["prosumer:*"] == len(profiles) == 20
    assert all(str(k).endswith(":profile") for k in profiles)
    assert len(order) == 14  # every field the pre-rename RedisOrdersService.setOrder writes
