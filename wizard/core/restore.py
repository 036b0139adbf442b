"""Restore a backup into a new database, check it, then swap names with the live one."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from wizard.core import names
from wizard.core.commit_outcome import committed
from wizard.core.connection import PgSettings
from wizard.core.events import (
    RestoreChecked,
    RestoreDbCreated,
    RestoreDropped,
    RestoreFinished,
    RestorePrepared,
    RestoreProgram,
    RestoreSwapped,
)
from wizard.core.journal import Journal, runs_for
from wizard.core.pgenv import conninfo_arg, libpq_env
from wizard.core.pgtools import Tool, find_tool, server_major
from wizard.core.procs import Outcome, ProgramNotFound, run_program
from wizard.core.reporting import Progress, Report, no_progress, no_report
from wizard.core.restore_db import (
    SwapCancelled,
    SwapFailed,
    create_database,
    db_name_with,
    db_props,
    drop_database,
    quote_ident,
    role_of,
    sessions_on,
    swap,
)
from wizard.core.restore_inspect import (
    PLAIN,
    TAR,
    Inspection,
    PlainScan,
    RestoreRefused,
    detect_format,
    inspect_backup,
)

__all__ = ["CACHE_NEXT", "Inspection", "RestoreFailed", "RestoreOptions", "RestorePlan",
           "RestoreRefused", "RestoreResult", "prepare", "run"]

CACHE_NEXT = ("bring the application's Redis data to the restored schema next "
              "(enerlink-migrate cache, with --revert for a pre-rename backup), so Redis and "
              "the restored database agree")
# The objects whose presence in the restored database is checked, by catalog query below.
CHECKED_KINDS = ("TABLE", "SEQUENCE", "VIEW", "MATERIALIZED VIEW", "INDEX", "CONSTRAINT",
                 "FK CONSTRAINT", "CHECK CONSTRAINT", "TRIGGER")
_IGNORED = re.compile(r"errors ignored on restore: (\d+)")
_ITEM = re.compile(r"(?:processing|finished) item (\d+) ")
_SERIAL_ITEM = re.compile(r"^pg_restore: (?:creating |processing data for table |executing )")


class RestoreFailed(RuntimeError):
    """The restore failed before the swap; the new database was dropped, live untouched."""


@dataclass
class RestoreOptions:
    jobs: int = 2
    pg_restore: str | None = None  # a program or its folder: the DBA's explicit choice
    psql: str | None = None
    maintenance_db: str = "postgres"
    # The new database is a copy of this one: template0 (clean), or one where a superuser
    # created the extensions the connecting role may not create itself.
    template: str = "template0"
    swap_retries: int = 5
    check_counts: bool = True
    analyze: bool = True


@dataclass
class RestorePlan:
    """Everything run() needs, built and checked by prepare(); nothing changed yet."""

    settings: PgSettings = field(repr=False)
    options: RestoreOptions
    inspection: Inspection
    tool: Tool
    live_db: str
    restore_db: str
    before_db: str
    db_owner: str
    keep_owners: bool  # False: pg_restore --no-owner (objects owned by the connecting role)
    server_major: int
    live_props: dict[str, Any] = field(repr=False)
    expected_counts: dict[str, int] | None = None
    counts_source: str | None = None
    warnings: list[str] = field(default_factory=list)
    scan: PlainScan | None = field(default=None, repr=False)  # plain dumps: COPY offsets

    def argv(self) -> list[str]:
        """The command line (never a password: that goes through a temporary pgpass)."""
        target = f"--dbname={conninfo_arg(self.settings, self.restore_db)}"
        path = self.inspection.path
        if self.inspection.format == PLAIN:
            return [str(self.tool.path), "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1",
                    "-v", "ECHO=queries", target, "-f", path]
        argv = [str(self.tool.path), "--verbose", "--no-password", target]
        if self.options.jobs > 1 and self.inspection.format != TAR:
            argv += ["--jobs", str(self.options.jobs)]
        if not self.keep_owners:
            argv.append("--no-owner")
        return [*argv, path]

    def to_dict(self) -> dict[str, Any]:
        return {"inspection": self.inspection.to_dict(), "live_db": self.live_db,
                "restore_db": self.restore_db, "before_db": self.before_db,
                "db_owner": self.db_owner, "keep_owners": self.keep_owners,
                "tool": {"path": str(self.tool.path), "version": self.tool.version},
                "argv": self.argv(), "jobs": self.options.jobs,
                "expected_counts": self.expected_counts, "counts_source": self.counts_source,
                "warnings": self.warnings}


@dataclass
class RestoreResult:
    ok: bool
    live_db: str
    restore_db: str
    before_db: str | None = None  # where the old live database is kept, after the swap
    cancelled: bool = False
    dropped: bool = False  # the unfinished new database was dropped after a failure/cancel
    error: str | None = None
    ignored_errors: int = 0
    warnings: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    terminated: list[dict[str, Any]] = field(default_factory=list)
    swap_attempts: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    drop_old_sql: str | None = None
    next_steps: list[str] = field(default_factory=list)
    journal: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- before starting: privileges, names, counts ------------------------------------------


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d_%H%M%S")


def _check_owners(conn: psycopg.Connection[Any], insp: Inspection, superuser: bool,
                  ) -> tuple[bool, list[str]]:
    """Whether every owner in the backup can be kept (exists and we may act as it)."""
    owners = insp.owners
    if not owners:
        return True, []
    missing, foreign = [], []
    for owner in owners:
        row = conn.execute("SELECT pg_has_role(current_user, oid, 'MEMBER') FROM pg_roles "
                           "WHERE rolname = %s", (owner,)).fetchone()
        if row is None:
            missing.append(owner)
        elif not row[0] and not superuser:
            foreign.append(owner)
    problems = [f"role {o} (owner in the backup) does not exist on this server" for o in missing]
    problems += [f"objects in the backup are owned by {o} ({insp.owned_by(o)}), which the "
                 "connecting role is not a member of" for o in foreign]
    return not problems, problems


_SET_LINE = re.compile(rb"^SET ([a-z_][a-z0-9_.]*) = ", re.MULTILINE)
HEADER_BYTES = 64 * 1024  # pg_dump writes its SET lines before the first object


def _check_plain_settings(conn: psycopg.Connection[Any], insp: Inspection,
                          server: int) -> None:
    """A plain script sets parameters at its top; a newer pg_dump's may be unknown to an
    older server (pg_dump 17 writes SET transaction_timeout), and psql stops there."""
    if insp.format != PLAIN:
        return
    with open(insp.path, "rb") as fh:
        wanted = sorted({m.group(1).decode() for m in _SET_LINE.finditer(fh.read(HEADER_BYTES))})
    known = {r[0] for r in conn.execute("SELECT name FROM pg_settings WHERE name = ANY(%s)",
                                        (wanted,))}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise RestoreRefused(
            f"{insp.path} is a plain SQL dump (pg_dump {insp.pg_dump_version}) that sets "
            f"{', '.join(unknown)}, which this PostgreSQL {server} server does not know: "
            "psql would stop at that line. Restore it into a server of that pg_dump's major "
            "or newer, or restore a custom-format backup (the backup step writes one), "
            "which pg_restore adapts to the server. Nothing was changed")


def _check_extensions(settings: PgSettings, conn: psycopg.Connection[Any],
                      extensions: list[str], template: str, major: int, role: str,
                      superuser: bool) -> None:
    """Refuse before anything changes when the restore would need CREATE EXTENSION for an
    extension the role may not create (every one before 13, untrusted ones after)."""
    if superuser or not extensions:
        return
    present: set[str] = set()
    if template != "template0":
        try:
            with settings.with_dbname(template).connect() as tconn:
                present = {r[0] for r in tconn.execute("SELECT extname FROM pg_extension")}
        except psycopg.OperationalError as exc:
            raise RestoreRefused(f"cannot read template database {template} "
                                 f"({str(exc).strip()})") from None
    blocked: list[str] = []
    for name in extensions:
        if name in present:
            continue
        row = conn.execute(
            "SELECT " + ("coalesce(bool_or(v.trusted), false)" if major >= 13 else "false")
            + ", count(*) FROM pg_available_extension_versions v WHERE v.name = %s",
            (name,)).fetchone()
        trusted, available = (bool(row[0]), int(row[1])) if row else (False, 0)
        if not available:
            raise RestoreRefused(
                f"the backup needs extension {name}, which is not installed on this server "
                f"(PostgreSQL {major}): install its package on the server first. Nothing "
                "was changed")
        if not trusted:
            blocked.append(name)
    if not blocked:
        return
    why = ("before PostgreSQL 13 only a superuser can create extensions" if major < 13 else
           "they are not trusted extensions, so only a superuser can create them")
    listed = ", ".join(blocked)
    create = "; ".join(f'CREATE EXTENSION IF NOT EXISTS "{n}"' for n in blocked)
    raise RestoreRefused(
        f"the backup needs extension(s) {listed}, which role {role} cannot create ({why}). "
        f"Either run the restore as a superuser, or have one pre-create them in a template "
        f"and restore from it: psql -d template1 -c '{create}', then restore with template1 "
        f"as the template (CLI --template template1; wizard: the Template field). Nothing "
        f"was changed")


def expected_counts(settings: PgSettings, since: datetime | None) -> tuple[dict[str, int] | None,
                                                                          str | None]:
    """Row counts the first committed migration after the backup took before it ran."""
    if since is None:
        return None, None
    found: tuple[datetime, dict[str, int], str] | None = None
    for journal in runs_for(settings):
        for event in journal.events("run_finished"):
            result = event.get("result", {})
            counts = result.get("counts_before")
            if not (committed(result) and not result.get("rehearsal") and counts
                    and result.get("direction") == "up"):
                continue
            when = datetime.fromisoformat(str(event["ts"]))
            if when >= since and (found is None or when < found[0]):
                found = (when, {str(k): int(v) for k, v in counts.items()}, str(journal.folder))
    return (found[1], found[2]) if found else (None, None)


def _backup_time(insp: Inspection) -> datetime | None:
    if insp.journal_backup and insp.journal_backup.get("ts"):
        return datetime.fromisoformat(str(insp.journal_backup["ts"]))
    if insp.dumped_at:
        with_zone = insp.dumped_at.replace(" UTC", " +0000")
        for fmt in ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S %Z"):
            try:
                return datetime.strptime(with_zone, fmt)
            except ValueError:
                continue
    if insp.format == PLAIN:  # the file was last written when the dump ended
        return datetime.fromtimestamp(Path(insp.path).stat().st_mtime, timezone.utc)
    return None


def _enerlink_tables_missing(tables: list[str]) -> list[str]:
    present = set(tables)
    wanted = [*names.CHILD_TABLES, "migrations"]
    missing = [t for t in wanted if t not in present]
    if names.OLD_TABLE not in present and names.NEW_TABLE not in present:
        missing.insert(0, f"{names.OLD_TABLE} (or {names.NEW_TABLE})")
    return missing


def prepare(settings: PgSettings, backup: str | Path, options: RestoreOptions | None = None,
            *, report: Report = no_report, cancel: threading.Event | None = None,
            ) -> RestorePlan:
    """Inspect the backup and check everything the restore needs. Changes nothing."""
    opts = options or RestoreOptions()
    path = Path(backup).expanduser().absolute()
    live = settings.dbname
    if live == opts.maintenance_db:
        raise RestoreRefused(f"the database to restore ({live}) is also the maintenance "
                             "database the swap connects to; pick another one "
                             "(--maintenance-db template1)")
    fmt = detect_format(path)
    maint = settings.with_dbname(opts.maintenance_db)
    try:
        conn = maint.connect(autocommit=True)
    except psycopg.OperationalError as exc:
        raise RestoreRefused(f"cannot connect to the maintenance database "
                             f"{maint.describe()} ({str(exc).strip()}); the swap runs from "
                             "there: pass another one with --maintenance-db") from None
    with conn:
        major = server_major(conn)
        role, superuser, createdb = role_of(conn)
        if not (createdb or superuser):
            raise RestoreRefused(
                f"role {role} lacks CREATEDB: the restore goes into a new database first and "
                f"never drops {live}. Ask a superuser to run ALTER ROLE {quote_ident(role)} "
                "CREATEDB; (or connect as a role that has it). Nothing was changed")
        props = db_props(conn, live)
        if props is None:
            raise RestoreRefused(f"database {live} does not exist on {settings.host}:"
                                 f"{settings.port}")
        if not (props["can_own"] or superuser):
            raise RestoreRefused(
                f"role {role} does not own database {live} (owner {props['owner']}) and so "
                "cannot rename it for the swap; connect as its owner or a superuser")
        tool = find_tool("psql" if fmt == PLAIN else "pg_restore", major,
                         opts.psql if fmt == PLAIN else opts.pg_restore)
        report("step", f"reading {path} with {tool.path} ({tool.version})")
        insp, scan = inspect_backup(path, tool, report=report, cancel=cancel)
        _check_plain_settings(conn, insp, major)
        missing = _enerlink_tables_missing(insp.tables)
        if missing:
            raise RestoreRefused(f"{path} is not a backup of an EnerLink database: no "
                                 f"{', '.join(missing)}; nothing was changed")
        _check_extensions(settings, conn, insp.extensions, opts.template, major, role,
                          superuser)
        keep_owners, problems = _check_owners(conn, insp, superuser)
        warnings: list[str] = []
        if not keep_owners and fmt == PLAIN:
            raise RestoreRefused(f"{path} is a plain dump that sets owners it cannot set as "
                                 f"{role}: {'; '.join(problems)}. Connect as that role or a "
                                 "superuser, or use a custom-format backup (restored with "
                                 "--no-owner)")
        if not keep_owners:
            warnings.append(f"{'; '.join(problems)}: restoring with --no-owner, so every "
                            f"object will be owned by {role}")
        stamp = _stamp()
        restore_db = db_name_with(live, f"_restore_{stamp}")
        before_db = db_name_with(live, f"_before_restore_{stamp}")
        for name in (restore_db, before_db):
            if db_props(conn, name) is not None:
                raise RestoreRefused(f"database {name} already exists; try again in a second")
        for s in sessions_on(conn, live):
            if not s["can_terminate"]:
                warnings.append(
                    f"session {s['pid']} of {s['usename']} ({s['application_name'] or '-'}, "
                    f"{s['client'] or 'local'}) on {live} cannot be terminated by {role}: "
                    "stop the application before the swap, or it will fail")
    counts, source = (None, None)
    if opts.check_counts:
        counts, source = expected_counts(settings, _backup_time(insp))
    if counts is None:
        insp.notes.append("no row counts from a migration after this backup in the journals: "
                          "row counts are not compared")
    db_owner = str(props["owner"]) if props["can_own"] else role
    plan = RestorePlan(settings, opts, insp, tool, live, restore_db, before_db, db_owner,
                       keep_owners, major, props, counts, source, warnings, scan)
    for w in warnings:
        report("warn", w)
    return plan


# --- run ---------------------------------------------------------------------------------


class _Progress:
    """Progress of pg_restore (TOC items done over total) or psql (bytes of the file)."""

    def __init__(self, plan: RestorePlan, scan: PlainScan | None, progress: Progress) -> None:
        self.total = max(plan.inspection.toc_entries, 1)
        self.size = max(plan.inspection.size_bytes, 1)
        self.scan = scan
        self.progress = progress
        self.items: set[str] = set()
        self.serial = True
        self.copy = -1
        self.fraction = 0.0

    def line(self, stream: str, line: str) -> None:
        if self.scan is not None:
            self._psql(stream, line)
        elif stream == "stderr":
            # With --jobs, items carry their TOC id ("processing item 3467 ...", "finished
            # item ..."); a serial run only says "creating ..." or "processing data ...".
            if (m := _ITEM.search(line)) is not None:
                self.items.add(m.group(1))
            elif self.serial and _SERIAL_ITEM.search(line):
                self.items.add(str(len(self.items)))
            else:
                return
            if m is not None:
                self.serial = False
            self._set(len(self.items) / self.total, f"{len(self.items)}/{self.total} items")

    def _psql(self, stream: str, line: str) -> None:
        assert self.scan is not None
        if stream != "stdout":
            return
        copies = self.scan.copies
        if line.startswith("COPY ") and self.copy + 1 < len(copies):
            self.copy += 1
            start, _end, text = copies[self.copy]
            self._set(start / self.size, text.split(" (", 1)[0].removeprefix("COPY "))
        elif 0 <= self.copy < len(copies):
            self._set(copies[self.copy][1] / self.size, "schema")

    def _set(self, fraction: float, detail: str) -> None:
        fraction = min(fraction, 0.99)
        if fraction > self.fraction:
            self.fraction = fraction
            self.progress(fraction, detail)


def _restore_program(plan: RestorePlan, scan: PlainScan | None, report: Report,
                     progress: Progress, cancel: threading.Event | None,
                     result: RestoreResult) -> Outcome:
    tracker = _Progress(plan, scan, progress)
    errors: list[str] = []
    name = plan.tool.path.name

    def on_line(stream: str, line: str) -> None:
        tracker.line(stream, line)
        if stream == "stdout":  # psql echoing its statements: only the data loads matter
            if line.startswith("COPY "):
                report("info", line.split(" (", 1)[0] + " ...")
            return
        if (m := _IGNORED.search(line)) is not None:
            result.ignored_errors = int(m.group(1))
        is_error = ("error:" in line or "from TOC entry" in line
                    or line.startswith(("Command was:", "ERROR:", "psql:")))
        if is_error:
            errors.append(line)
        report("warn" if is_error else "info", line)

    with libpq_env(plan.settings) as env:
        outcome = run_program(plan.argv(), env=env, on_line=on_line, cancel=cancel)
    if outcome.cancelled:
        return outcome
    fatal = not outcome.ok and not (outcome.returncode == 1 and result.ignored_errors
                                    and scan is None)
    if fatal:
        raise RestoreFailed(f"{name} failed ({outcome.describe()}): "
                            + " | ".join((errors or outcome.stderr_tail)[-6:]))
    if result.ignored_errors:
        result.warnings.append(f"{name}: errors ignored on restore: {result.ignored_errors}")
        result.warnings += errors
    return outcome


_PRESENT_SQL = """
SELECT 'TABLE', n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'f')
UNION ALL SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                 WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'INDEX' END, n.nspname, c.relname
 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('S', 'v', 'm', 'i', 'I')
UNION ALL SELECT CASE x.contype WHEN 'f' THEN 'FK CONSTRAINT' WHEN 'c' THEN 'CHECK CONSTRAINT'
                 ELSE 'CONSTRAINT' END, n.nspname, c.relname || ' ' || x.conname
 FROM pg_constraint x JOIN pg_class c ON c.oid = x.conrelid
 JOIN pg_namespace n ON n.oid = c.relnamespace
UNION ALL SELECT 'TRIGGER', n.nspname, c.relname || ' ' || t.tgname
 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal
"""


def check_restored(conn: psycopg.Connection[Any], plan: RestorePlan,
                   result: RestoreResult) -> list[str]:
    """Every table, key, index and trigger of the backup is there; counts match if known."""
    failures: list[str] = []
    present = {(str(k), str(s), str(t)) for k, s, t in conn.execute(_PRESENT_SQL).fetchall()}
    wanted = [e for e in plan.inspection.entries if e.desc in CHECKED_KINDS]
    missing = [f"{e.desc} {e.schema}.{e.tag}" for e in wanted
               if (e.desc, e.schema, e.tag) not in present]
    result.checks.append({"id": "objects", "ok": not missing,
                          "detail": f"{len(wanted) - len(missing)}/{len(wanted)} tables, keys, "
                                    "indexes and triggers of the backup are present"
                                    + (f"; missing: {', '.join(missing[:20])}" if missing
                                       else "")})
    if missing:
        failures.append(f"missing after the restore: {', '.join(missing[:20])}")
    if plan.expected_counts:
        diffs = []
        for table, expected in plan.expected_counts.items():
            candidates = [table, {names.OLD_TABLE: names.NEW_TABLE,
                                  names.NEW_TABLE: names.OLD_TABLE}.get(table, table)]
            found = next((t for t in candidates if ("TABLE", "public", t) in present), None)
            if found is None:
                diffs.append(f"{table}: missing")
                continue
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
                sql.Identifier("public", found))).fetchone()
            result.counts[found] = int(row[0]) if row else 0
            if result.counts[found] != expected:
                diffs.append(f"{found}: {result.counts[found]} restored, {expected} before "
                             "the migration")
        result.checks.append({"id": "row_counts", "ok": not diffs,
                              "detail": (f"row counts equal the journal's ({plan.counts_source})"
                                         if not diffs else "; ".join(diffs))})
        if diffs:
            failures.append("row counts differ from those taken before the migration ("
                            + "; ".join(diffs) + "): the backup is not the one taken before "
                            "it, or rows were written in between; run again with the count "
                            "check off to restore anyway")
    return failures


def run(plan: RestorePlan, *, confirm: str, report: Report = no_report,
        progress: Progress = no_progress, cancel: threading.Event | None = None,
        journal: Journal | None = None,
        after_swap: Callable[[RestoreResult], None] | None = None) -> RestoreResult:
    """Restore into a new database, check it, swap it in. The live database is never dropped;
    any failure or cancel before the swap drops the new database and leaves live untouched.

    `after_swap` is the follow-up that belongs to the same run once the restored database is
    live (recover.restore_then_clear clears the Redis cache with it): it runs before the
    next steps are said and the run's last record is written, so both show what it did."""
    if confirm != plan.live_db:
        raise RestoreRefused(f"confirmation {confirm!r} does not match the database name "
                             f"{plan.live_db!r}; type the name of the database to replace")
    journal = journal or Journal.create(plan.settings, "restore")
    result = RestoreResult(ok=False, live_db=plan.live_db, restore_db=plan.restore_db,
                           warnings=list(plan.warnings), journal=str(journal.folder))
    journal.record(RestorePrepared(plan.to_dict()))
    t0 = time.perf_counter()
    scan = plan.scan
    maint = plan.settings.with_dbname(plan.options.maintenance_db)
    created = False
    try:
        _step(cancel, "before creating the database")
        report("step", f"creating database {plan.restore_db}")
        with maint.connect(autocommit=True) as conn:
            notes = create_database(conn, plan)
        created = True
        result.warnings += notes
        journal.record(RestoreDbCreated(plan.restore_db, plan.db_owner))
        result.timings["create_s"] = _since(t0)
        report("step", f"restoring {plan.inspection.path} into {plan.restore_db}: "
                       + " ".join(plan.argv()))
        t1 = time.perf_counter()
        outcome = _restore_program(plan, scan, report, progress, cancel, result)
        result.timings["restore_s"] = _since(t1)
        journal.record(RestoreProgram(outcome.to_dict(), result.ignored_errors,
                                      result.warnings))
        _step(cancel, "during the restore")
        with plan.settings.with_dbname(plan.restore_db).connect(autocommit=True) as conn:
            report("step", "checking the restored database")
            t1 = time.perf_counter()
            failures = check_restored(conn, plan, result)
            result.timings["check_s"] = _since(t1)
        journal.record(RestoreChecked(result.checks, result.counts))
        if failures:
            raise RestoreFailed("the restored database failed its checks: "
                                + "; ".join(failures))
        _step(cancel, "before the swap")
        report("step", f"swapping: {plan.live_db} → {plan.before_db}, "
                       f"{plan.restore_db} → {plan.live_db}")
        t1 = time.perf_counter()
        swap(plan, report, cancel, result)
        result.timings["swap_s"] = _since(t1)
        result.timings["until_swap_s"] = _since(t0)
    except BaseException as exc:
        result.cancelled = (isinstance(exc, (_Stop, SwapCancelled))
                            or bool(cancel and cancel.is_set()))
        result.error = ("restore cancelled by the operator" if result.cancelled
                        else str(exc) or type(exc).__name__)
        if created:
            report("step", f"dropping the unfinished {plan.restore_db}; {plan.live_db} "
                           "is untouched")
            drop_database(maint, plan.restore_db, plan.server_major)
            result.dropped = True
            journal.record(RestoreDropped(plan.restore_db))
        result.timings["total_s"] = _since(t0)
        journal.record(RestoreFinished(result.to_dict()))
        if isinstance(exc, (RestoreFailed, _Stop, SwapFailed, SwapCancelled, psycopg.Error,
                            ProgramNotFound)):
            report("error", result.error)
            return result
        raise
    result.ok = True
    result.before_db = plan.before_db
    result.drop_old_sql = f"DROP DATABASE {quote_ident(plan.before_db)};"
    result.next_steps = [CACHE_NEXT, f"the previous {plan.live_db} is kept as "
                         f"{plan.before_db}; when satisfied: {result.drop_old_sql}"]
    if plan.options.analyze:
        _analyze(plan, report, result)
    result.timings["total_s"] = _since(t0)
    progress(1.0, "restored")
    journal.record(RestoreSwapped(plan.live_db, plan.before_db, result.terminated,
                                  result.swap_attempts))
    report("step", f"{plan.live_db} is now the restored copy; the old one is kept as "
                   f"{plan.before_db}")
    if after_swap is not None:
        try:
            after_swap(result)
        except Exception as exc:  # the database result stands; the hook is a follow-up
            result.warnings.append(f"after the swap: {exc}")
            report("warn", f"after the swap: {exc}")
    for step in result.next_steps:
        report("step", f"next: {step}")
    journal.record(RestoreFinished(result.to_dict()))
    return result


def _analyze(plan: RestorePlan, report: Report, result: RestoreResult) -> None:
    """Planner statistics (a restore writes none), once the application is back: it runs
    meanwhile on default estimates for a few seconds, as after pg_upgrade."""
    report("step", f"ANALYZE {plan.live_db} (planner statistics; the application can "
                   "already connect)")
    t0 = time.perf_counter()
    try:
        with plan.settings.connect(autocommit=True) as conn:
            conn.execute("ANALYZE")
    except psycopg.Error as exc:
        result.warnings.append(f"ANALYZE after the restore failed ({exc}); run ANALYZE in "
                               f"{plan.live_db} by hand")
        report("warn", result.warnings[-1])
    result.timings["analyze_s"] = _since(t0)


class _Stop(RuntimeError):
    """Cancel seen between steps (the program itself is stopped by run_program)."""


def _step(cancel: threading.Event | None, where: str) -> None:
    if cancel is not None and cancel.is_set():
        raise _Stop(f"restore cancelled by the operator {where}")


def _since(t0: float) -> float:
    return round(time.perf_counter() - t0, 3)

