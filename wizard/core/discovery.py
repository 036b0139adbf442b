"""Reads what the rename needs from the catalog and says which state the database is in."""

from __future__ import annotations

import re
import time
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from wizard.core import names
from wizard.core.catalog import (
    CONFLICT,
    MIGRATED,
    PARTIAL,
    PRE,
    UNKNOWN,
    Constraint,
    Discovery,
    Index,
    Sequence,
    TableInfo,
    TextReference,
    Trigger,
)
from wizard.core.ops import object_renames, plan_blockers
from wizard.core.sqlfiles import queries

__all__ = ["CONFLICT", "MIGRATED", "PARTIAL", "PRE", "UNKNOWN", "Constraint", "Discovery",
           "DiscoveryError", "Index", "Sequence", "TableInfo", "TextReference", "Trigger",
           "classify", "discover"]

DISCOVERY_SQL = "catalog/discovery.sql"
CANDIDATE_TABLES = [names.OLD_TABLE, names.NEW_TABLE, *names.CHILD_TABLES]



class DiscoveryError(RuntimeError):
    """The catalog could not be read well enough to say what state the database is in."""


def _text_references(rows: list[dict[str, Any]]) -> list[TextReference]:
    found: list[TextReference] = []
    pattern = re.compile("prosumer", re.IGNORECASE)
    for row in rows:
        for n, line in enumerate((row["text"] or "").splitlines(), start=1):
            if pattern.search(line):
                found.append(TextReference(row["kind"], row["object"], n, line.strip()))
    return found


# A catalog read outside a run waits at most this long for a lock, this many times.
READ_LOCK_TIMEOUT_S, READ_TRIES, READ_BACKOFF_S = 2.0, 3, 1.0

HOLDERS_SQL = """
SELECT a.pid, coalesce(nullif(a.application_name, ''), a.backend_type) AS application,
       coalesce(a.client_addr::text, 'local') AS client, a.state, l.mode,
       l.relation::regclass::text AS relation,
       round(extract(epoch FROM now() - a.xact_start)::numeric, 1) AS xact_age_s
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.granted AND l.locktype = 'relation' AND l.pid <> pg_backend_pid()
   AND l.mode IN ('AccessExclusiveLock', 'ExclusiveLock', 'ShareRowExclusiveLock')
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
 ORDER BY a.pid
"""


def lock_holders(conn: psycopg.Connection[Any]) -> str:
    """The sessions holding strong locks in this database, in words (autovacuum too)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(HOLDERS_SQL)
        rows = cur.fetchall()
    return "; ".join(f"pid {r['pid']} ({r['application']}, {r['client']}, {r['state']}, "
                     f"transaction {r['xact_age_s']} s old) holds {r['mode']} on "
                     f"{r['relation']}" for r in rows) or "a session that has ended since"


def discover(conn: psycopg.Connection[Any], schema: str = "public", *,
             text_references: bool = True,
             lock_timeout_s: float = READ_LOCK_TIMEOUT_S) -> Discovery:
    """Read the catalog, in one read-only snapshot, and classify the database.

    Outside a run the read waits for locks at most `lock_timeout_s`, READ_TRIES times;
    then it fails naming the sessions in the way (a DiscoveryError).
    """
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        return _discover(conn, schema, text_references=text_references, lock_timeout_s=None)
    for attempt in range(1, READ_TRIES + 1):
        try:
            return _discover(conn, schema, text_references=text_references,
                             lock_timeout_s=lock_timeout_s)
        except psycopg.errors.LockNotAvailable:
            conn.rollback()
            holders = lock_holders(conn)
            conn.rollback()
            if attempt == READ_TRIES:
                raise DiscoveryError(
                    f"the catalog of {conn.info.dbname} could not be read: {READ_TRIES} "
                    f"waits of {lock_timeout_s:g} s for a lock, held by {holders}. Nothing "
                    f"was changed; stop that session (or wait for it), then try again."
                    ) from None
            time.sleep(READ_BACKOFF_S * attempt)
    raise AssertionError("unreachable")


def _discover(conn: psycopg.Connection[Any], schema: str, *, text_references: bool,
              lock_timeout_s: float | None) -> Discovery:
    """text_references=False skips the scan of every function, view and policy body: the
    check inside a revert's transaction needs only names, and runs while locks are held."""
    q = queries(DISCOVERY_SQL)
    params = {"schema": schema, "tables": CANDIDATE_TABLES}
    outside = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        if outside:  # one consistent snapshot; inside a run we see the run's own changes
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        if lock_timeout_s is not None:
            cur.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(
                sql.Literal(f"{int(lock_timeout_s * 1000)}ms")))
        cur.execute(q["tables"], params)
        tables = {r["table_name"]: TableInfo(r["table_name"], r["owner"], r["can_alter"],
                                             max(int(r["estimated_rows"]), 0))
                  for r in cur.fetchall()}
        cur.execute(q["columns"], params)
        columns: dict[str, list[str]] = {}
        for r in cur.fetchall():
            columns.setdefault(r["table_name"], []).append(r["column_name"])
        cur.execute(q["constraints"], params)
        constraints = [Constraint(
            r["name"], r["kind"], r["table_name"], tuple(r["columns"]), r["ref_table"],
            r["ref_schema"], tuple(r["ref_columns"] or ()), r["on_delete"], r["on_update"],
            r["deferrable"], r["deferred"], r["validated"], r["definition"])
            for r in cur.fetchall()]
        cur.execute(q["indexes"], params)
        indexes = [Index(r["name"], r["table_name"], tuple(r["columns"]), r["is_primary"],
                         r["is_unique"], r["constraint_name"], r["definition"], r["predicate"])
                   for r in cur.fetchall()]
        cur.execute(q["triggers"], params)
        triggers = [Trigger(r["name"], r["table_name"], r["function_name"], r["definition"])
                    for r in cur.fetchall()]
        cur.execute(q["sequences"], params)
        sequences = [Sequence(r["name"], r["table_name"], r["column_name"])
                     for r in cur.fetchall()]
        cur.execute(q["migrations"], params)
        row = cur.fetchone()
        migrations_table = bool(row and row["present"])
        migration_names: list[str] = []
        if migrations_table:
            try:
                cur.execute(sql.SQL("SELECT name FROM {} ORDER BY id").format(
                    sql.Identifier(schema, "migrations")))
            except psycopg.errors.InsufficientPrivilege:
                raise DiscoveryError(
                    f"role {conn.info.user} may not read {schema}.migrations, TypeORM's "
                    f"history: connect as the owner of the EnerLink tables (or GRANT SELECT "
                    f"ON {schema}.migrations TO {conn.info.user})") from None
            migration_names = [r["name"] for r in cur.fetchall()]
        text_rows: list[dict[str, Any]] = []
        for name in ("functions_naming_prosumer", "views_naming_prosumer",
                     "policies_naming_prosumer") if text_references else ():
            cur.execute(q[name], params)
            text_rows += cur.fetchall()
        cur.execute("SELECT current_setting('server_version') AS v, current_user AS u")
        info = cur.fetchone() or {"v": "?", "u": "?"}
    found = Discovery(schema, tables, columns, constraints, indexes, triggers, sequences,
                      migrations_table, migration_names, _text_references(text_rows),
                      info["v"], info["u"])
    classify(found)
    return found


def _object_names_done(d: Discovery) -> tuple[list[str], list[str]]:
    """Which key, constraint, index, sequence and trigger names have their final name."""
    done: list[str] = []
    pending: list[str] = []
    for rename in object_renames(d):
        (pending if rename.needed else done).append(rename.describe())
    return done, pending


def classify(d: Discovery) -> None:
    """Set d.state (pre, migrated, partial, conflict, unknown), say why, and list what
    stops a plan (d.blockers: `plan` refuses exactly when there are some)."""
    _classify(d)
    if d.state in (CONFLICT, UNKNOWN):
        return
    d.blockers = plan_blockers(d)
    if d.blockers:
        d.explanation = (d.explanation.replace(" The plan finishes the job.", "")
                         + " No plan can run until: " + " ".join(d.blockers))


def _classify(d: Discovery) -> None:
    old, new = names.OLD_TABLE, names.NEW_TABLE
    if old in d.tables and new in d.tables:
        d.state = CONFLICT
        d.explanation = (f'both tables exist: "{old}" and "{new}". Someone created "{new}" by '
                         f'hand or a migration ran halfway outside a transaction. Decide which '
                         f'one holds the data, rename or drop the other, then run again.')
        return
    target = d.target_table
    if target is None:
        d.state = UNKNOWN
        d.explanation = (f'no table "{old}" or "{new}" in schema {d.schema}: this is not an '
                         f'EnerLink database (check the database name and the schema).')
        return
    key = d.key_column
    children = [t for t in names.CHILD_TABLES if t in d.tables]
    if key is None or not children:
        d.state = UNKNOWN
        what = (f'table "{target}" has no {names.OLD_KEY} or {names.NEW_KEY} column'
                if key is None else f'none of the tables {", ".join(names.CHILD_TABLES)} exist')
        d.explanation = f"{what}: this does not look like EnerLink's schema."
        return
    renames = [(f'table "{old}" → "{new}"', target == new),
               (f"{target}.{names.OLD_KEY} → {names.NEW_KEY}", key == names.NEW_KEY)]
    for place in names.REFERENCING:
        current = d.place_column(place)
        if current is None:
            d.missing.append(f"{place.table}.{place.old}"
                             + ("" if place.table in d.tables else " (table missing)"))
            continue
        renames.append((f"{place.table}.{place.old} → {place.new}", current == place.new))
    d.done = [label for label, ok in renames if ok]
    d.pending = [label for label, ok in renames if not ok]
    names_done, names_pending = _object_names_done(d)
    if not d.done:
        d.state = PRE
        d.explanation = (f'"{old}" is in place and none of the renames is done: ready to '
                         f"migrate ({len(d.pending)} renames).")
        d.pending += names_pending
        return
    if not d.pending and not names_pending:
        d.state = MIGRATED
        d.done += names_done
        d.explanation = ("already migrated: every table, column, key, index and trigger has "
                         "its new name" + ("." if d.migration_recorded else
                                           "; only TypeORM's migrations row is missing."))
        return
    d.state = PARTIAL
    d.done += names_done
    d.pending += names_pending
    d.explanation = (f"partially migrated: {len(d.done)} renames done, {len(d.pending)} to "
                     f"go. The plan finishes the job.")
