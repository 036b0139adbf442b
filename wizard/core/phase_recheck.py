"""The window's fast orphan re-check: only the columns whose foreign key the migration adds,
and only the rows written since the prepare phase's scan.

A column that already has a foreign key cannot gain orphans (PostgreSQL checks new rows and
deletes of parents, NOT VALID keys included), so only the columns the plan gives a new key
can. Before its scan the prepare phase reads the oldest transaction still running (the
snapshot's xmin): a row whose xmin is older was written by a transaction that had ended, so
the scan saw it. In the window, only rows whose xmin is that horizon or newer are checked
(`age(xmin) <= age(horizon)`; frozen rows are old). A deleted parent row leaves no trace in
its children's xmin, so when the parent table's delete or update counters moved since the
scan (or cannot be read, or the horizon is too old to compare) the whole column is checked
instead, and the reason said. Should a missed orphan remain, the migration's VALIDATE fails
and its transaction rolls back: the schema stays as it was.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import psycopg
from psycopg import sql

from wizard.core import names
from wizard.core.connection import PgSettings
from wizard.core.ops.keys import AddForeignKey
from wizard.core.plan import Plan

XID_SPACE = 2**32
NEAR_WRAP = 2**31 - 10_000_000  # an xid this old cannot be compared with age() any more


@dataclass
class Horizon:
    """Read just before the prepare phase's orphan scan."""

    xmin: int  # txid_snapshot_xmin: 64-bit, epoch included
    parent: str  # schema.table of the referenced table (prosumer, or user)
    parent_changes: int | None  # n_tup_del + n_tup_upd of the parent, None when unknown
    at: str  # ISO time, UTC

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Watched:
    """One column the migration adds a foreign key on, as it is named before the rename."""

    schema: str
    table: str
    column: str
    parent_key: str

    @property
    def label(self) -> str:
        return f"{self.table}.{self.column}"


@dataclass
class Recheck:
    orphans: int
    columns: list[dict[str, Any]] = field(default_factory=list)  # label, scope, orphans
    seconds: float = 0.0
    full_reason: str = ""  # why whole columns were read instead of the recent rows

    @property
    def clean(self) -> bool:
        return self.orphans == 0


def _snapshot_xmin(conn: psycopg.Connection[Any]) -> int:
    modern = conn.info.server_version >= 130000
    query = ("SELECT pg_snapshot_xmin(pg_current_snapshot())::text" if modern
             else "SELECT txid_snapshot_xmin(txid_current_snapshot())::text")
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def _parent_changes(conn: psycopg.Connection[Any], schema: str, table: str) -> int | None:
    row = conn.execute(
        "SELECT n_tup_del + n_tup_upd FROM pg_stat_user_tables WHERE schemaname = %s "
        "AND relname = %s", (schema, table)).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def read_horizon(settings: PgSettings, schema: str, parent: str) -> Horizon:
    """The horizon to read before the scan (its own short session, read only)."""
    with settings.connect(autocommit=True) as conn:
        return Horizon(_snapshot_xmin(conn), f"{schema}.{parent}",
                       _parent_changes(conn, schema, parent),
                       datetime.now(timezone.utc).isoformat())


def watched_columns(plan: Plan, schema: str) -> list[Watched]:
    """The columns the plan adds a foreign key on, as they are named before the rename
    (the table, the column, the key of prosumer they refer to)."""
    found: list[Watched] = []
    for op in plan.ops:
        if isinstance(op, AddForeignKey):
            table = names.OLD_TABLE if op.on == names.NEW_TABLE else op.on
            ref = names.column_before(names.OLD_TABLE, op.ref_column)
            found.append(Watched(schema, table, names.column_before(table, op.column), ref))
    return found


def _key_type(conn: psycopg.Connection[Any], schema: str, table: str, column: str) -> str:
    row = conn.execute(
        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass(%s) AND a.attname = %s AND NOT a.attisdropped",
        (str(sql.Identifier(schema, table).as_string(conn)), column)).fetchone()
    if not row:
        raise psycopg.errors.UndefinedColumn(f"{schema}.{table}.{column} is not there")
    return str(row[0])


def recheck(settings: PgSettings, watched: list[Watched], horizon: Horizon | None,
            parent: str, *, statement_timeout_s: float = 60.0) -> Recheck:
    """Orphans in the watched columns among the rows written since the horizon (or in
    the whole columns, with the reason). Read only, one REPEATABLE READ snapshot."""
    t0 = time.perf_counter()
    result = Recheck(0)
    if not watched:
        return result
    with settings.connect(autocommit=True) as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(
            sql.Literal(f"{int(statement_timeout_s * 1000)}ms")))
        if True:
            schema = watched[0].schema
            result.full_reason = _full_reason(conn, horizon, schema, parent)
            ktype = _key_type(conn, schema, parent, watched[0].parent_key)
            for w in watched:
                recent = (sql.SQL("") if result.full_reason else sql.SQL(
                    "age(t.xmin) <= age({}::text::xid) AND ").format(
                    sql.Literal(str((horizon.xmin if horizon else 0) % XID_SPACE))))
                query = sql.SQL(
                    "SELECT count(*) FROM {} t WHERE {}t.{} IS NOT NULL AND NOT EXISTS "
                    "(SELECT 1 FROM {} p WHERE p.{} = t.{}::{})").format(
                    sql.Identifier(w.schema, w.table), recent, sql.Identifier(w.column),
                    sql.Identifier(schema, parent), sql.Identifier(w.parent_key),
                    sql.Identifier(w.column), sql.SQL(ktype))
                row = conn.execute(query).fetchone()
                found = int(row[0]) if row else 0
                result.orphans += found
                result.columns.append({"label": w.label, "orphans": found,
                                       "scope": "whole column" if result.full_reason
                                       else "rows written since the scan"})
    result.seconds = round(time.perf_counter() - t0, 3)
    return result


def _full_reason(conn: psycopg.Connection[Any], horizon: Horizon | None, schema: str,
                 parent: str) -> str:
    """Why the recent rows are not enough ('' when they are)."""
    if horizon is None:
        return "the prepare phase recorded no horizon"
    now = _snapshot_xmin(conn)
    if now - horizon.xmin >= NEAR_WRAP:
        return "the scan's horizon is too many transactions ago to compare"
    if horizon.parent != f"{schema}.{parent}":
        return f"the referenced table is now {schema}.{parent}, not {horizon.parent}"
    changes = _parent_changes(conn, schema, parent)
    if changes is None or horizon.parent_changes is None:
        return f"the statistics of {parent} cannot be read"
    if changes != horizon.parent_changes:
        return (f"{changes - horizon.parent_changes} rows of {parent} were deleted or "
                f"updated since the scan (their children could have lost their parent)")
    return ""
