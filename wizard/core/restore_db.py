"""The database side of a restore: create the new one like the live one, drop it, swap names."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from wizard.core.connection import PgSettings
from wizard.core.reporting import Report

if TYPE_CHECKING:
    from wizard.core.restore import RestorePlan, RestoreResult

MAX_IDENTIFIER = 63  # bytes: PostgreSQL's NAMEDATALEN - 1


class SwapFailed(RuntimeError):
    """The names could not be swapped; nothing was renamed."""


class SwapCancelled(RuntimeError):
    """The operator cancelled while the swap waited to retry; nothing was renamed."""


def db_name_with(base: str, suffix: str) -> str:
    """base + suffix within 63 bytes, cutting base at a character boundary if needed."""
    room = MAX_IDENTIFIER - len(suffix.encode())
    cut = base.encode()[:room].decode("utf-8", errors="ignore")
    return cut + suffix


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_CAN_SIGNAL = """
    (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
    OR (NOT coalesce((SELECT rolsuper FROM pg_roles WHERE oid = a.usesysid), false)
        AND (pg_has_role(current_user, a.usesysid, 'MEMBER')
             OR pg_has_role(current_user, 'pg_signal_backend', 'MEMBER')))"""


def sessions_on(conn: psycopg.Connection[Any], dbname: str) -> list[dict[str, Any]]:
    """Client sessions on a database (not ours), and whether we may terminate each."""
    query = ("SELECT pid, usename, application_name, client_addr::text AS client, state, "
             f"coalesce({_CAN_SIGNAL}, false) AS can_terminate FROM pg_stat_activity a "
             "WHERE datname = %s AND pid <> pg_backend_pid() AND a.usesysid IS NOT NULL "
             "AND coalesce(backend_type, 'client backend') = 'client backend' "
             "ORDER BY pid")
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, (dbname,))
        return list(cur.fetchall())


def role_of(conn: psycopg.Connection[Any]) -> tuple[str, bool, bool]:
    row = conn.execute("SELECT current_user, rolsuper, rolcreatedb FROM pg_roles "
                       "WHERE rolname = current_user").fetchone()
    assert row is not None
    return str(row[0]), bool(row[1]), bool(row[2])


def db_props(conn: psycopg.Connection[Any], dbname: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT to_jsonb(d) || jsonb_build_object('owner', pg_get_userbyid(d.datdba), "
        "'encoding_name', pg_encoding_to_char(d.encoding), 'size', pg_database_size(d.oid), "
        "'can_own', pg_has_role(current_user, d.datdba, 'MEMBER')) "
        "FROM pg_database d WHERE datname = %s", (dbname,)).fetchone()
    return dict(row[0]) if row else None


def create_database(conn: psycopg.Connection[Any], plan: RestorePlan) -> list[str]:
    """CREATE DATABASE like the live one (encoding, collation, grants, settings)."""
    p = plan.live_props
    options = [sql.SQL("TEMPLATE {} ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
        sql.Identifier(plan.options.template), sql.Literal(p["encoding_name"]),
        sql.Literal(p["datcollate"]),
        sql.Literal(p["datctype"]))]
    icu = p.get("daticulocale") or p.get("datlocale")
    if p.get("datlocprovider") == "i" and icu:
        options.append(sql.SQL("LOCALE_PROVIDER icu ICU_LOCALE {}").format(sql.Literal(icu)))
    options.append(sql.SQL("OWNER {}").format(sql.Identifier(plan.db_owner)))
    conn.execute(sql.SQL("CREATE DATABASE {} ").format(sql.Identifier(plan.restore_db))
                 + sql.SQL(" ").join(options))
    return _copy_database_level(conn, plan)


def _copy_database_level(conn: psycopg.Connection[Any], plan: RestorePlan) -> list[str]:
    """A dump without --create carries no database-level grants or settings: copy them."""
    new = sql.Identifier(plan.restore_db)
    notes: list[str] = []
    limit = int(plan.live_props.get("datconnlimit", -1))
    if limit != -1:
        conn.execute(sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}").format(
            new, sql.Literal(limit)))
    if plan.live_props.get("datacl") is not None:
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(new))
        rows = conn.execute(
            "SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END, "
            "a.privilege_type, a.is_grantable FROM pg_database d, aclexplode(d.datacl) a "
            "WHERE d.datname = %s AND a.grantee <> d.datdba", (plan.live_db,)).fetchall()
        for grantee, privilege, grantable in rows:
            conn.execute(sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                sql.SQL(privilege), new,
                sql.Identifier(grantee) if grantee else sql.SQL("PUBLIC"),
                sql.SQL(" WITH GRANT OPTION" if grantable else "")))
    rows = conn.execute(
        "SELECT s.setrole, unnest(s.setconfig) FROM pg_db_role_setting s JOIN pg_database d "
        "ON d.oid = s.setdatabase WHERE d.datname = %s", (plan.live_db,)).fetchall()
    for setrole, setting in rows:
        key, _, value = str(setting).partition("=")
        if int(setrole) == 0 and "," not in value:
            conn.execute(sql.SQL("ALTER DATABASE {} SET {} TO {}").format(
                new, sql.Identifier(key), sql.Literal(value)))
        else:
            notes.append(f"database setting {setting} of {plan.live_db} was not copied; after "
                         f"the swap run ALTER ... SET {key} = {value} by hand")
    return notes


def drop_database(settings: PgSettings, dbname: str, major: int) -> None:
    """Terminate the sessions on a database and drop it (it is ours, half-restored)."""
    with settings.connect(autocommit=True) as conn:
        if major >= 13:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(dbname)))
            return
        for attempt in range(5):
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,))
            try:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(
                    sql.Identifier(dbname)))
                return
            except psycopg.errors.ObjectInUse:
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))


def swap(plan: RestorePlan, report: Report, cancel: threading.Event | None,
         result: RestoreResult) -> None:
    """Terminate the live database's sessions and swap the names in one transaction."""
    live, new, old = (sql.Identifier(n) for n in (plan.live_db, plan.restore_db,
                                                   plan.before_db))
    # pg_terminate_backend(pid, timeout) waits for the session to end; it exists from 14.
    wait = ", 5000" if plan.server_major >= 14 else ""
    terminate = (f"SELECT a.pid, a.usename, a.application_name, pg_terminate_backend(a.pid"
                 f"{wait}) FROM pg_stat_activity a WHERE a.datname = %s AND "
                 f"a.pid <> pg_backend_pid() AND a.usesysid IS NOT NULL AND "
                 f"coalesce(a.backend_type, 'client backend') = 'client backend' AND "
                 f"coalesce({_CAN_SIGNAL}, false)")
    maint = plan.settings.with_dbname(plan.options.maintenance_db)
    with maint.connect() as conn:
        for attempt in range(1, plan.options.swap_retries + 1):
            result.swap_attempts = attempt
            try:
                with conn.transaction():
                    rows = conn.execute(terminate, (plan.live_db,)).fetchall()
                    conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(live, old))
                    conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(new, live))
                result.terminated += [{"pid": r[0], "user": r[1], "application": r[2]}
                                      for r in rows]
                for r in rows:
                    report("info", f"terminated session {r[0]} of {r[1]} ({r[2] or '-'})")
                return
            except psycopg.errors.ObjectInUse:
                left = sessions_on(conn, plan.live_db)
                who = ", ".join(f"{s['pid']} ({s['usename']}, {s['application_name'] or '-'}"
                                f"{'' if s['can_terminate'] else ', cannot terminate'})"
                                for s in left) or "sessions that connected meanwhile"
                report("warn", f"swap attempt {attempt}: {plan.live_db} still in use by {who}")
                if attempt == plan.options.swap_retries:
                    raise SwapFailed(
                        f"could not swap: {plan.live_db} stays in use by {who} after "
                        f"{attempt} attempts; stop the application (or grant the role "
                        "pg_signal_backend) and run the restore again") from None
                if cancel is not None and cancel.wait(0.2 * attempt):
                    raise SwapCancelled("restore cancelled by the operator during the "
                                        "swap") from None
