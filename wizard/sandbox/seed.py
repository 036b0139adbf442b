"""Builds the sample EnerLink database: schema from sql/fixtures, rows streamed with COPY."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from wizard.core.sqlfiles import sections

FIXTURE = "fixtures/enerlink_pre_rename.sql"
CHUNK_USERS = 20_000
BASE_MILLIS = 1_730_534_400_000  # 2024-11-02, the registration time of the first sample user

# TypeORM's history as it stood before the rename (the migrations of intermediate.sql).
MIGRATION_HISTORY = [
    (1761541252880, "DropTelemetryTable1761541252880"),
    (1761541962168, "RemovePluralFromTableNames1761541962168"),
    (1761576800000, "DropTradeOrdersCacheTable1761576800000"),
    (1761992110457, "DropSystemConfigTable1761992110457"),
    (1761992645604, "RenameKwhColumnsToWh1761992645604"),
]

# Rows per user, so a report can say what N users means.
PER_USER = {
    "prosumer": 1, "wallet": 2, "smart_meter": 1, "energy_settlement": 2,
    "transaction_log": 3, "market_trade": 2, "idrs_conversion": 1, "token_blacklist": 0.25,
}

Progress = Callable[[str], None]

_TIMES = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]
_DAYS = [f"2024-{m:02d}-{d:02d}" for m in range(1, 13) for d in range(1, 29)]


def user_id(i: int) -> str:
    """Registration-style id, e.g. prosumer_1730534400000_k3j9x2abc (deterministic)."""
    return f"prosumer_{BASE_MILLIS + i * 1013}_{((i + 1) * 2654435761) % 68719476736:09x}"


def wallet_address(i: int, j: int) -> str:
    return f"0x{((2 * i + j + 1) * 0x9E3779B97F4A7C15F39CC0605CEDC835) % (1 << 160):040x}"


def _ts(i: int, shift: int = 0) -> str:
    k = i + shift
    return f"{_DAYS[(k // 86400) % len(_DAYS)]} {_TIMES[k % 86400]}"


def _meter(i: int) -> str:
    return f"METER{i:08d}"


# One function per table: the COPY lines for users [lo, hi) of n. Columns are listed in the
# COPY statement, so the text order below is the COPY column order, not the table's.

def _prosumer(lo: int, hi: int, n: int) -> Iterator[str]:
    pw = "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"
    for i in range(lo, hi):
        yield (f"{user_id(i)}\tuser{i}@example.com\t{pw}\tProsumer {i}\t{_ts(i)}\t"
               f"{_ts(i, 3600)}\t{wallet_address(i, 0)}\n")


def _wallet(lo: int, hi: int, n: int) -> Iterator[str]:
    for i in range(lo, hi):
        uid, ts = user_id(i), _ts(i)
        yield f"t\t{wallet_address(i, 0)}\t{uid}\tPrimary\t\\N\t{ts}\tGENERATED\t{_ts(i, 7200)}\n"
        yield (f"{'t' if i % 3 else 'f'}\t{wallet_address(i, 1)}\t{uid}\tTrading\t"
               f"enc:{i:012x}\t{ts}\tIMPORTED_PRIVATE_KEY\t\\N\n")


def _smart_meter(lo: int, hi: int, n: int) -> Iterator[str]:
    for i in range(lo, hi):
        m, ts = _meter(i), _ts(i)
        yield (f"5\t{m}\t{user_id(i)}\t\\N\tBandung\tACTIVE\t{ts}\t{_ts(i, 900)}\t{ts}\t"
               f"enerlink/meters/{m}/sensors\tenerlink/meters/{m}/settlement\t1.4.2\t"
               f"{_ts(i, 600)}\t\\N\t{_ts(i, 900)}\tESP32-S3\tv2\t\\N\n")


def _energy_settlement(lo: int, hi: int, n: int) -> Iterator[str]:
    for i in range(lo, hi):
        m = _meter(i)
        for k in range(2):
            sid = 2 * i + k + 1
            yield (f"{(i % 900) - 450}\t{(i % 97) / 10}\t{i % 1200}\t{i % 800}\t{sid}\t{m}\t"
                   f"{_ts(i, k * 300)}\t{_ts(i, k * 300 + 300)}\t0x{sid:064x}\tSUCCESS\t"
                   f"{_ts(i, k * 300 + 310)}\t{_ts(i, k * 300 + 330)}\tPERIODIC\tVALID\t"
                   "MQTT\t\\N\t\\N\n")


_TX_TYPES = ("ENERGY_SETTLEMENT", "TOKEN_MINTING", "TRADE_EXECUTION")


def _transaction_log(lo: int, hi: int, n: int) -> Iterator[str]:
    for i in range(lo, hi):
        uid = user_id(i)
        for k in range(3):
            settlement = str(2 * i + 1) if k == 0 else "\\N"
            yield (f"{(i * 7 + k) % 500}.5\t\\N\t{3 * i + k + 1}\t{uid}\t\\N\t{settlement}\t"
                   f"{_TX_TYPES[k]}\tsample entry {k}\tETK\t\\N\t\\N\t{_ts(i, k * 60)}\n")


def _market_trade(lo: int, hi: int, n: int) -> Iterator[str]:
    for i in range(lo, hi):
        for k in range(2):
            s = (i + 1 + 7 * k) % n
            tid = 2 * i + k + 1
            yield (f"{(i % 40) + 1}\t1500\t{((i % 40) + 1) * 1500}\t21000\t{tid}\t"
                   f"order_b_{tid}\torder_s_{tid}\t{user_id(i)}\t{user_id(s)}\t"
                   f"{wallet_address(i, 0)}\t{wallet_address(s, 0)}\t0x{tid:064x}\t"
                   f"{_ts(i, k * 120)}\t{_ts(i, k * 120 + 1)}\n")


def _idrs_conversion(lo: int, hi: int, n: int) -> Iterator[str]:
    for i in range(lo, hi):
        yield (f"{(i % 50 + 1) * 10000}\t{(i % 50 + 1) * 10000}\t1\t{i + 1}\t{user_id(i)}\t"
               f"{wallet_address(i, 0)}\tON_RAMP\t\\N\tSUCCESS\tsimulated\t{_ts(i)}\t"
               f"{_ts(i, 30)}\n")


def _token_blacklist(lo: int, hi: int, n: int) -> Iterator[str]:
    for i in range(lo + (-lo % 4), hi, 4):
        yield (f"{'USER' if i % 8 else 'TOKEN'}\t{user_id(i)}\t{i:064x}\tLOGOUT\t10.0.0.{i % 250}\t"
               f"Mozilla/5.0\t2030-01-01 00:00:00+00\tt\t\\N\t\\N\t{i // 4 + 1}\t{_ts(i)}\n")


TABLES: dict[str, tuple[tuple[str, ...], Callable[[int, int, int], Iterator[str]]]] = {
    "prosumer": (("prosumer_id", "email", "password_hash", "name", "created_at", "updated_at",
                  "primary_wallet_address"), _prosumer),
    "wallet": (("is_active", "wallet_address", "prosumer_id", "wallet_name",
                "encrypted_private_key", "created_at", "import_method", "last_used_at"),
               _wallet),
    "smart_meter": (("settlement_interval_minutes", "meter_id", "prosumer_id",
                     "meter_blockchain_address", "location", "status", "created_at",
                     "last_seen", "updated_at", "mqtt_topic_realtime", "mqtt_topic_settlement",
                     "firmware_version", "last_settlement_at", "device_configuration",
                     "last_heartbeat_at", "device_model", "device_version", "capabilities"),
                    _smart_meter),
    "energy_settlement": (("net_wh_from_grid", "etk_amount_credited", "raw_export_wh",
                           "raw_import_wh", "settlement_id", "meter_id", "period_start_time",
                           "period_end_time", "blockchain_tx_hash", "status",
                           "created_at_backend", "confirmed_at_on_chain", "settlement_trigger",
                           "validation_status", "settlement_data_source",
                           "detailed_energy_breakdown", "mqtt_message_id"),
                          _energy_settlement),
    "transaction_log": (("amount_primary", "amount_secondary", "log_id", "prosumer_id",
                         "related_order_id", "related_settlement_id", "transaction_type",
                         "description", "currency_primary", "currency_secondary",
                         "blockchain_tx_hash", "transaction_timestamp"), _transaction_log),
    "market_trade": (("traded_etk_amount", "price_idrs_per_etk", "total_idrs_value",
                      "gas_fee_wei", "trade_id", "buyer_order_id", "seller_order_id",
                      "buyer_prosumer_id", "seller_prosumer_id", "buyer_wallet_address",
                      "seller_wallet_address", "blockchain_tx_hash", "trade_timestamp",
                      "created_at"), _market_trade),
    "idrs_conversion": (("idr_amount", "idrs_amount", "exchange_rate", "conversion_id",
                         "prosumer_id", "wallet_address", "conversion_type",
                         "blockchain_tx_hash", "status", "simulation_note", "created_at",
                         "confirmed_at"), _idrs_conversion),
    "token_blacklist": (("blacklist_type", "prosumer_id", "token_hash", "reason",
                         "ip_address", "user_agent", "expires_at", "is_active", "created_by",
                         "notes", "blacklist_id", "created_at"), _token_blacklist),
}

SERIALS = {
    "energy_settlement": "settlement_id", "transaction_log": "log_id",
    "market_trade": "trade_id", "idrs_conversion": "conversion_id",
    "token_blacklist": "blacklist_id", "migrations": "id",
}


def expected_rows(users: int) -> dict[str, int]:
    """How many rows seed() writes per table for this many users."""
    counts = {t: int(users * k) for t, k in PER_USER.items()}
    counts["token_blacklist"] = (users + 3) // 4
    return counts


@dataclass
class SeedReport:
    users: int
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def _copy_table(cur: psycopg.Cursor[Any], table: str, users: int) -> int:
    columns, rows_for = TABLES[table]
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier("public", table), sql.SQL(", ").join(map(sql.Identifier, columns)))
    count = 0
    with cur.copy(stmt) as copy:
        for lo in range(0, users, CHUNK_USERS):
            lines = list(rows_for(lo, min(lo + CHUNK_USERS, users), users))
            count += len(lines)
            copy.write("".join(lines))
    return count


def seed(conn: psycopg.Connection[Any], users: int,
         progress: Progress | None = None) -> SeedReport:
    """Create the pre-rename schema in an empty database and fill it for `users` users.

    Runs as whoever `conn` is connected as (the sandbox uses the table-owner role), in one
    transaction: pre-data DDL, COPY of every table, then keys, indexes, foreign keys and
    triggers, so the keys are built once and foreign keys validated in one pass.
    """
    say = progress or (lambda _msg: None)
    report = SeedReport(users)
    parts = sections(FIXTURE)
    with conn.transaction(), conn.cursor() as cur:
        started = time.perf_counter()
        cur.execute(parts["pre-data"])
        report.seconds["schema"] = time.perf_counter() - started
        for table in TABLES:
            t0 = time.perf_counter()
            report.rows[table] = _copy_table(cur, table, users)
            report.seconds[table] = time.perf_counter() - t0
            say(f"{table}: {report.rows[table]:,} rows in {report.seconds[table]:.1f} s")
        cur.executemany("INSERT INTO public.migrations (\"timestamp\", name) VALUES (%s, %s)",
                        MIGRATION_HISTORY)
        report.rows["migrations"] = len(MIGRATION_HISTORY)
        for table, column in SERIALS.items():
            cur.execute(sql.SQL(
                "SELECT setval(pg_get_serial_sequence({qualified}, {col}),"
                " coalesce(max({ident}), 0) + 1, false) FROM {table}").format(
                    qualified=sql.Literal(f"public.{table}"), col=sql.Literal(column),
                    ident=sql.Identifier(column), table=sql.Identifier("public", table)))
        t0 = time.perf_counter()
        cur.execute(parts["post-data"])
        report.seconds["keys"] = time.perf_counter() - t0
        say(f"keys, indexes, foreign keys and triggers in {report.seconds['keys']:.1f} s")
    t0 = time.perf_counter()
    with conn.cursor() as cur:
        prior = conn.autocommit
        conn.autocommit = True
        try:
            cur.execute("ANALYZE")
        finally:
            conn.autocommit = prior
    report.seconds["analyze"] = time.perf_counter() - t0
    return report


# Each place that refers to a prosumer, with an INSERT that writes one orphan there.
ORPHAN_INSERTS: dict[str, str] = {
    "wallet.prosumer_id": """
        INSERT INTO public.wallet (is_active, wallet_address, prosumer_id, created_at,
                                   import_method)
        VALUES (true, %(key)s, %(ghost)s, now(), 'GENERATED')""",
    "smart_meter.prosumer_id": """
        INSERT INTO public.smart_meter (meter_id, prosumer_id, created_at, updated_at)
        VALUES (%(key)s, %(ghost)s, now(), now())""",
    "transaction_log.prosumer_id": """
        INSERT INTO public.transaction_log (amount_primary, prosumer_id, transaction_type,
                                            currency_primary, transaction_timestamp)
        VALUES (1, %(ghost)s, 'TOKEN_MINTING', 'ETK', now())""",
    "market_trade.buyer_prosumer_id": """
        INSERT INTO public.market_trade (traded_etk_amount, price_idrs_per_etk,
            total_idrs_value, buyer_order_id, seller_order_id, buyer_prosumer_id,
            seller_prosumer_id, buyer_wallet_address, seller_wallet_address,
            trade_timestamp, created_at)
        SELECT 1, 1, 1, %(key)s, %(key)s, %(ghost)s, p.prosumer_id, %(key)s, %(key)s,
               now(), now()
          FROM (SELECT prosumer_id FROM public.prosumer ORDER BY 1 LIMIT 1) p""",
    "market_trade.seller_prosumer_id": """
        INSERT INTO public.market_trade (traded_etk_amount, price_idrs_per_etk,
            total_idrs_value, buyer_order_id, seller_order_id, buyer_prosumer_id,
            seller_prosumer_id, buyer_wallet_address, seller_wallet_address,
            trade_timestamp, created_at)
        SELECT 1, 1, 1, %(key)s, %(key)s, p.prosumer_id, %(ghost)s, %(key)s, %(key)s,
               now(), now()
          FROM (SELECT prosumer_id FROM public.prosumer ORDER BY 1 LIMIT 1) p""",
    "idrs_conversion.prosumer_id": """
        INSERT INTO public.idrs_conversion (idrs_amount, prosumer_id, wallet_address,
                                            conversion_type, status, created_at)
        VALUES (1, %(ghost)s, %(key)s, 'ON_RAMP', 'SUCCESS', now())""",
    "token_blacklist.prosumer_id": """
        INSERT INTO public.token_blacklist (blacklist_type, prosumer_id, expires_at)
        VALUES ('USER', %(ghost)s, now() + interval '1 day')""",
}


def inject_orphans(superuser_conn: psycopg.Connection[Any], per_column: int) -> dict[str, int]:
    """Write `per_column` rows whose prosumer does not exist into each referencing column.

    Fixture only: orphans can only be written with the foreign-key triggers off, which is
    what `session_replication_role = replica` does (superuser). The wizard never does this.
    The market_trade orphans need at least one real prosumer for their other column.
    """
    written: dict[str, int] = {}
    with superuser_conn.transaction(), superuser_conn.cursor() as cur:
        cur.execute("SET LOCAL session_replication_role = replica")
        for place, insert in ORPHAN_INSERTS.items():
            column = place.replace(".", "_")
            for k in range(per_column):
                cur.execute(insert, {"ghost": f"prosumer_ghost_{column}_{k:04d}",
                                     "key": f"orphan_{column}_{k:04d}"})
            written[place] = per_column
    return written
