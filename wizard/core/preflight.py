"""Pre-flight: what a DBA checks before the change window opens, as a list of checks."""

from __future__ import annotations

import shutil
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from wizard.core import names
from wizard.core.appctl import AppCommandResult, run_app_command
from wizard.core.connection import PgSettings
from wizard.core.discovery import (
    CONFLICT,
    MIGRATED,
    PARTIAL,
    PRE,
    UNKNOWN,
    Discovery,
    DiscoveryError,
    discover,
)
from wizard.core.events import AppCommandRan, PreflightDone, SessionSignalled
from wizard.core.execute import privilege_problems
from wizard.core.journal import Journal
from wizard.core.pgtools import ToolNotFound, find_tool
from wizard.core.plan import PlanRefused, build_up
from wizard.core.reporting import Report, no_report
from wizard.core.units import format_bytes
from wizard.core.verify import FAIL, PASS, WARN, Check

OLDEST_SUPPORTED = 12

SESSIONS_SQL = """
SELECT a.pid, a.usename AS user, a.application_name,
       coalesce(a.client_addr::text, 'local') AS client, coalesce(a.state, '') AS state,
       round(extract(epoch FROM now() - a.xact_start)::numeric, 1) AS xact_age_s,
       round(extract(epoch FROM now() - a.query_start)::numeric, 1) AS query_age_s,
       coalesce(a.wait_event_type || ':' || a.wait_event, '') AS waiting_on,
       left(coalesce(a.query, ''), 300) AS query
  FROM pg_stat_activity a
 WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
   AND a.backend_type = 'client backend'
 ORDER BY a.xact_start NULLS LAST, a.pid
"""

ROLE_SQL = """
SELECT r.rolsuper, r.rolcreatedb, pg_database_size(current_database()) AS db_bytes,
       current_setting('server_version_num')::int AS version_num
  FROM pg_roles r WHERE r.rolname = current_user
"""


@dataclass(frozen=True)
class Session:
    """Another connection to the database being migrated."""

    pid: int
    user: str
    application_name: str
    client: str
    state: str
    xact_age_s: float | None
    query_age_s: float | None
    waiting_on: str
    query: str


@dataclass
class Preflight:
    """Everything the pre-flight page shows; checks say what blocks the run."""

    target: str
    server_version: str
    server_version_num: int
    current_user: str
    state: str
    explanation: str
    database_bytes: int
    estimated_rows: dict[str, int]
    sessions: list[Session]
    checks: list[Check] = field(default_factory=list)
    discovery: Discovery | None = field(default=None, repr=False)

    @property
    def blocking(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("discovery")
        return data


def sessions(conn: psycopg.Connection[Any]) -> list[Session]:
    """Other client sessions on this database, oldest transaction first."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(SESSIONS_SQL)
        rows = cur.fetchall()
    return [Session(int(r["pid"]), str(r["user"] or ""), str(r["application_name"] or ""),
                    str(r["client"]), str(r["state"]),
                    float(r["xact_age_s"]) if r["xact_age_s"] is not None else None,
                    float(r["query_age_s"]) if r["query_age_s"] is not None else None,
                    str(r["waiting_on"]), str(r["query"])) for r in rows]


def list_sessions(settings: PgSettings) -> list[Session]:
    with settings.connect(autocommit=True) as conn:
        return sessions(conn)


def signal_session(settings: PgSettings, pid: int, *, terminate: bool,
                   journal: Journal | None = None) -> str:
    """Cancel the running query of `pid`, or terminate its connection; says what happened,
    and records it in the journal when one is given (another session's work was touched)."""
    message = _signal(settings, pid, terminate)
    if journal is not None:
        journal.record(SessionSignalled(message))
    return message


def _signal(settings: PgSettings, pid: int, terminate: bool) -> str:
    function = "pg_terminate_backend" if terminate else "pg_cancel_backend"
    verb = "terminated" if terminate else "sent a cancel to"
    with settings.connect(autocommit=True) as conn:
        try:
            row = conn.execute(sql.SQL("SELECT {}(%s)").format(sql.Identifier(function)),
                               (pid,)).fetchone()
        except psycopg.errors.InsufficientPrivilege:
            return (f"not allowed to signal pid {pid}: it belongs to another role; ask a "
                    f"superuser, or a member of pg_signal_backend, to run "
                    f"SELECT {function}({pid})")
    if row and row[0]:
        return f"{verb} pid {pid}"
    return f"pid {pid} is no longer connected"


def _state_check(d: Discovery) -> Check:
    if d.state == PRE:
        return Check("state", "Database is EnerLink before the rename", PASS, d.explanation)
    if d.state == MIGRATED:
        return Check("state", "Database is EnerLink before the rename", WARN,
                     f"{d.explanation}; the migrate step will have nothing to do (or only "
                     f"the migrations row to add)")
    if d.state == PARTIAL:
        return Check("state", "Database is EnerLink before the rename", WARN,
                     f"{d.explanation}; the plan finishes what is left: "
                     + "; ".join(d.pending))
    status = FAIL
    what = "two tables" if d.state == CONFLICT else "not an EnerLink database"
    return Check("state", "Database is EnerLink before the rename", status,
                  f"{what}: {d.explanation}")


def _privilege_check(conn: psycopg.Connection[Any], d: Discovery) -> Check:
    title = "Connected role may rename every affected table"
    try:
        plan = build_up(d)
    except PlanRefused as exc:
        return Check("privileges", title, WARN, f"no plan to check against: {exc}")
    problems = privilege_problems(conn, d, plan)
    if problems:
        return Check("privileges", title, FAIL, "; ".join(problems))
    return Check("privileges", title, PASS,
                 f"{d.current_user} owns (or is a member of the owner of) every table")


def _restore_check(superuser: bool, createdb: bool, user: str) -> Check:
    title = "A restore from the backup would be possible"
    if superuser or createdb:
        return Check("createdb", title, PASS,
                     f"{user} may create the database a restore goes into")
    return Check("createdb", title, WARN,
                 f"{user} lacks CREATEDB: a restore (which builds a new database, then swaps "
                 f"names) would need ALTER ROLE {user} CREATEDB, or a superuser")


def _disk_check(folder: Path | None, db_bytes: int) -> Check:
    title = "Free space in the backup folder"
    if folder is None:
        return Check("disk", title, WARN, "no backup folder chosen yet")
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    detail = f"{format_bytes(free)} free in {folder}, database is {format_bytes(db_bytes)}"
    if free < db_bytes:
        return Check("disk", title, FAIL, f"{detail}: free space in {folder} or choose "
                     f"another folder")
    return Check("disk", title, PASS, detail)


def _sessions_check(others: list[Session]) -> Check:
    title = "No other sessions on the database"
    if not others:
        return Check("sessions", title, PASS, "none")
    apps = sorted({s.application_name or "(no application_name)" for s in others})
    return Check("sessions", title, WARN,
                 f"{len(others)} other session(s) ({', '.join(apps)}): stop the application "
                 f"first; the rename waits at most the lock timeout for them, then retries")


def _tools_check(server_major: int, pg_dump: str | None) -> Check:
    """The client programs the backup and restore steps will run, and their versions."""
    title = f"pg_dump and pg_restore {server_major} or newer"
    found, missing = [], []
    for name, override in (("pg_dump", pg_dump), ("pg_restore", None)):
        try:
            tool = find_tool(name, server_major, override)
            found.append(f"{name} {tool.version} ({tool.path})")
        except ToolNotFound as exc:
            missing.append(str(exc))
    if missing:
        return Check("client_tools", title, WARN, "; ".join(missing) + ": the backup and "
                     "restore steps need them")
    return Check("client_tools", title, PASS, ", ".join(found))


def _unreadable(settings: PgSettings, why: str) -> Preflight:
    return Preflight(settings.describe(), "", 0, settings.user, UNKNOWN, why, 0, {}, [],
                     [Check("state", "Database is EnerLink before the rename", FAIL, why)])


def app_command(what: str, command: str, *, journal: Journal, report: Report = no_report,
                cancel: threading.Event | None = None) -> AppCommandResult:
    """The profile's stop or start command (the pre-flight's application step), recorded
    in the run's journal: the report shows whether the application was stopped."""
    result = run_app_command(what, command, report=report, cancel=cancel)
    journal.record(AppCommandRan(result.what, result.command, result.ok, result.detail))
    return result


def run_preflight(settings: PgSettings, backup_folder: Path | None = None,
                  report: Report = no_report, pg_dump: str | None = None, *,
                  journal: Journal | None = None) -> Preflight:
    """Read-only checks against the database: nothing here changes anything. With a journal,
    the result is recorded as the run's `preflight` event, the same whichever driver ran
    the checks (the Pre-flight page, `enerlink-migrate preflight`, the headless demo)."""
    result = _checks(settings, backup_folder, report, pg_dump)
    if journal is not None:
        journal.record(PreflightDone(result.to_dict()))
    return result


def _checks(settings: PgSettings, backup_folder: Path | None, report: Report,
            pg_dump: str | None) -> Preflight:
    report("info", f"pre-flight checks on {settings.describe()}")
    with settings.connect(autocommit=True) as conn:
        try:
            d = discover(conn)
        except DiscoveryError as exc:
            report("error", str(exc))
            return _unreadable(settings, str(exc))
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(ROLE_SQL)
            role = cur.fetchone() or {}
        others = sessions(conn)
        checks = [_state_check(d)]
        version_num = int(role.get("version_num", 0))
        checks.append(Check(
            "server_version", f"PostgreSQL {OLDEST_SUPPORTED} or newer",
            PASS if version_num >= OLDEST_SUPPORTED * 10000 else FAIL,
            f"server {d.server_version}"))
        checks.append(_tools_check(version_num // 10000, pg_dump))
        if d.state not in (CONFLICT, UNKNOWN):
            checks.append(_privilege_check(conn, d))
    checks += [_restore_check(bool(role.get("rolsuper")), bool(role.get("rolcreatedb")),
                              d.current_user),
               _disk_check(backup_folder, int(role.get("db_bytes", 0))),
               _sessions_check(others)]
    if d.text_references:
        checks.append(Check(
            "text_references", "No stored code still names prosumer", WARN,
            f"{len(d.text_references)} line(s) in functions, views or policies name "
            f"prosumer; the rename does not rewrite them (they are listed in the log)",
            {"result": [str(r) for r in d.text_references]}))
        for ref in d.text_references:
            report("warn", f"text reference: {ref}")
    for check in checks:
        report("error" if check.status == FAIL else "warn" if check.status == WARN else "info",
               f"{check.title}: {check.detail}")
    rows = {t.name: t.estimated_rows for t in d.tables.values()
            if t.name in (names.OLD_TABLE, names.NEW_TABLE, *names.CHILD_TABLES)}
    return Preflight(settings.describe(), d.server_version, version_num, d.current_user,
                     d.state, d.explanation, int(role.get("db_bytes", 0)), rows, others,
                     checks, d)
