"""Restore a backup into a new database, check it, then swap names with the live one."""

from __future__ import annotations

import re
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from wizard.core import names, timescale
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
    CopyFailed,
    DbProperties,
    Session,
    SpaceCheck,
    SwapCancelled,
    SwapFailed,
    check_space,
    create_database,
    database_properties,
    db_name_with,
    db_props,
    drop_database,
    quote_ident,
    role_of,
    sessions_on,
    sessions_refusal,
    settings_we_cannot_copy,
    space_short_refusal,
    space_unknown_refusal,
    stuck_refusal,
    swap,
)
from wizard.core.restore_fk import FkRepairFailed, NotValidKey, recreate_not_valid, violated_keys
from wizard.core.restore_inspect import (
    PLAIN,
    TAR,
    Inspection,
    PlainScan,
    RestoreRefused,
    check_extensions,
    check_identity,
    check_owners,
    check_plain_settings,
    detect_format,
    enerlink_tables_missing,
    estimate_size,
    inspect_backup,
)
from wizard.core.units import format_bytes, format_duration

__all__ = ["CACHE_NEXT", "IDENTITY", "SESSIONS", "SPACE", "Inspection", "RestoreFailed",
           "RestoreOptions", "RestorePlan", "RestoreRefused", "RestoreResult", "Unconfirmed",
           "prepare", "run"]

CACHE_NEXT = ("bring the application's Redis data to the restored schema next "
              "(enerlink-migrate cache, with --revert for a pre-rename backup), so Redis and "
              "the restored database agree")
# The objects whose presence in the restored database is checked, by catalog query below.
CHECKED_KINDS = ("TABLE", "SEQUENCE", "VIEW", "MATERIALIZED VIEW", "INDEX", "CONSTRAINT",
                 "FK CONSTRAINT", "CHECK CONSTRAINT", "TRIGGER")
_IGNORED = re.compile(r"errors ignored on restore: (\d+)")
_ITEM = re.compile(r"(?:processing|finished) item (\d+) ")
_SERIAL_ITEM = re.compile(r"^pg_restore: (?:creating |processing data for table |executing )")
_DATA = re.compile(r'processing data for table "(.+)"')
_DATA_DONE = re.compile(r"finished item \d+ TABLE DATA (.+?)\s*$")
_CREATING = re.compile(r'creating ([A-Z][A-Z ]*[A-Z]) "(.+)"')
SCHEMA_SHARE = 0.02  # of the restore's bar, at most, for the TOC items before the data
# What pg_restore builds after the data (its post-data section), as TOC entries name them.
_POST_DATA = {"INDEX", "INDEX ATTACH", "CONSTRAINT", "FK CONSTRAINT", "CHECK CONSTRAINT",
              "TRIGGER", "EVENT TRIGGER", "RULE", "POLICY", "STATISTICS",
              "MATERIALIZED VIEW DATA", "PUBLICATION TABLE"}


class RestoreFailed(RuntimeError):
    """The restore failed before the swap; the new database was dropped, live untouched."""


class SwapDeclined(RuntimeError):
    """Asked before the swap (its foreign keys would be NOT VALID), the DBA said no: an
    operator's decision, not a failure; the copy is dropped and live is untouched."""


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
    # What the DBA agreed to, typed or passed as a flag; run() refuses without them.
    from_database: str | None = None  # the backup is of this other database (--from-database)
    terminate_sessions: bool = False  # sessions on the live database go at the swap
    accept_unknown_space: bool = False  # free space on the server could not be read
    # The backup's rows violate foreign keys (orphans): swap in the copy with those keys
    # NOT VALID. Without it run() asks `confirm_not_valid`, and refuses the swap if no one.
    accept_not_valid: bool = False
    # maintenance_work_mem for pg_restore's sessions only (index builds and foreign-key
    # checks sort in it; tests/bench/bench_proof.py measures it): None keeps the server's.
    maintenance_work_mem: str | None = None


IDENTITY, SESSIONS, SPACE = "identity", "sessions", "space"


@dataclass(frozen=True)
class Unconfirmed:
    """Something the DBA must agree to before the restore may start (kind: IDENTITY,
    SESSIONS or SPACE), and the message saying what and how."""

    kind: str
    message: str


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
    properties: DbProperties  # the live database's own: the restored copy gets them
    role: str  # the connecting role
    expected_counts: dict[str, int] | None = None
    counts_source: str | None = None
    warnings: list[str] = field(default_factory=list)
    scan: PlainScan | None = field(default=None, repr=False)  # plain dumps: COPY offsets
    sessions: list[Session] = field(default_factory=list)  # on the live database, now
    space: SpaceCheck | None = None

    @property
    def source_db(self) -> str | None:
        return self.inspection.source_db

    @property
    def foreign(self) -> bool:
        """A backup of another database than the one it replaces."""
        return self.source_db is not None and self.source_db != self.live_db

    def server_lines(self) -> list[str]:
        """Whose backup, who is connected, the free space, the properties kept: what the
        server side of this restore looks like, for a person to read before agreeing."""
        lines = []
        if self.foreign:
            lines.append(f"! this is a backup of {self.source_db}, not of {self.live_db}: "
                         f"restoring it puts {self.source_db}'s data into {self.live_db}")
        if self.sessions:
            lines.append(f"sessions on {self.live_db} now ({len(self.sessions)}), terminated "
                         "at the swap:")
            lines += [f"  {x.describe()}" for x in self.sessions]
        else:
            lines.append(f"sessions on {self.live_db} now: none")
        if self.space is not None:
            lines += self.space.lines()
        lines.append(f"kept from {self.live_db} (the restored copy gets them before the swap):")
        lines += [f"  {line}" for line in self.properties.lines()]
        return lines

    def unconfirmed(self) -> list[Unconfirmed]:
        """What the DBA has not agreed to yet; run() refuses while this is not empty."""
        out = []
        if self.foreign and self.options.from_database != self.source_db:
            out.append(Unconfirmed(IDENTITY, identity_refusal(self)))
        if self.sessions and not self.options.terminate_sessions:
            out.append(Unconfirmed(SESSIONS, sessions_refusal(self.live_db, self.sessions)))
        if self.space is not None and self.space.unknown and not self.options.accept_unknown_space:
            out.append(Unconfirmed(SPACE, space_unknown_refusal(self.space)))
        return out

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
                "warnings": self.warnings, "source_db": self.source_db,
                "source_from": self.inspection.source_from,
                "from_database": self.options.from_database,
                "terminate_sessions": self.options.terminate_sessions,
                "accept_unknown_space": self.options.accept_unknown_space,
                "properties": self.properties.to_dict(),
                "sessions": [asdict(x) for x in self.sessions],
                "space": self.space.to_dict() if self.space else None}


@dataclass
class RestoreResult:
    ok: bool
    live_db: str
    restore_db: str
    before_db: str | None = None  # where the old live database is kept, after the swap
    cancelled: bool = False
    declined: bool = False  # the DBA said no to the NOT VALID swap (cancelled is set too)
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
    not_valid: list[dict[str, Any]] = field(default_factory=list)  # NotValidKey.to_dict()
    timescaledb: bool = False  # pre/post restore functions ran around pg_restore

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- before starting: privileges, names, counts ------------------------------------------


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d_%H%M%S")


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


def identity_refusal(plan: RestorePlan) -> str:
    return (f"{plan.inspection.path} is a backup of database {plan.source_db} "
            f"({plan.inspection.source_from}), not of {plan.live_db}: restoring it would "
            f"replace {plan.live_db}'s data with {plan.source_db}'s. If that is what you "
            f"want, name the backup's database: --from-database {plan.source_db} (wizard: "
            f"type {plan.source_db} when asked). Nothing was changed")


def _check_database_level(conn: psycopg.Connection[Any], props: DbProperties, role: str,
                          superuser: bool) -> None:
    """What CREATE DATABASE like the live one needs: CREATE on its tablespace, the right
    to copy its per-role settings."""
    row = conn.execute("SELECT has_tablespace_privilege(%s, 'CREATE'), rolcreaterole "
                       "FROM pg_roles WHERE rolname = current_user",
                       (props.tablespace,)).fetchone()
    may_create, createrole = (bool(row[0]), bool(row[1])) if row else (False, False)
    if not (may_create or superuser or props.tablespace == "pg_default"):
        raise RestoreRefused(
            f"the database lives in tablespace {props.tablespace}, where role {role} may not "
            f"create one (the restored copy goes there too): as its owner or a superuser run "
            f"GRANT CREATE ON TABLESPACE {quote_ident(props.tablespace)} TO "
            f"{quote_ident(role)}; then run the restore again. Nothing was changed")
    blocked = settings_we_cannot_copy(props, role, superuser, createrole)
    if blocked:
        raise RestoreRefused(
            f"the database has per-role settings that role {role} may not give the restored "
            f"copy ({'; '.join(blocked)}): run the restore as a superuser. Nothing was "
            "changed")


def _check_sessions(conn: psycopg.Connection[Any], live: str, role: str) -> list[Session]:
    """Who is connected; a session we could not terminate stops the restore now, not
    after it (the swap would fail)."""
    found = sessions_on(conn, live)
    stuck = [x for x in found if not x.can_terminate]
    if stuck:
        raise RestoreRefused(stuck_refusal(live, stuck, role))
    return found


def _check_space(conn: psycopg.Connection[Any], insp: Inspection, live: str,
                 props: DbProperties, live_size: int, report: Report) -> SpaceCheck:
    estimate, estimate_from = estimate_size(conn, insp, live, live_size)
    space = check_space(conn, props, estimate, estimate_from, report)
    if space.short:
        raise RestoreRefused(space_short_refusal(live, space))
    return space


def _connect_maintenance(settings: PgSettings, opts: RestoreOptions) -> psycopg.Connection[Any]:
    maint = settings.with_dbname(opts.maintenance_db)
    try:
        return maint.connect(autocommit=True)
    except psycopg.OperationalError as exc:
        raise RestoreRefused(f"cannot connect to the maintenance database "
                             f"{maint.describe()} ({str(exc).strip()}); the swap runs from "
                             "there: pass another one with --maintenance-db") from None


def prepare(settings: PgSettings, backup: str | Path, options: RestoreOptions | None = None,
            *, report: Report = no_report, cancel: threading.Event | None = None,
            proof: bool = False) -> RestorePlan:
    """Inspect the backup and check everything the restore needs. Changes nothing.

    With `proof` the plan is for a scratch copy that is never swapped in (wizard.core.prove):
    named <db>_proof_<time>, no ownership of the live database or sessions to care about."""
    opts = options or RestoreOptions()
    path = Path(backup).expanduser().absolute()
    live = settings.dbname
    if live == opts.maintenance_db:
        raise RestoreRefused(f"the database to restore ({live}) is also the maintenance "
                             "database the swap connects to; pick another one "
                             "(--maintenance-db template1)")
    fmt = detect_format(path)
    with _connect_maintenance(settings, opts) as conn:
        major = server_major(conn)
        role, superuser, createdb = role_of(conn)
        if not (createdb or superuser):
            raise RestoreRefused(
                f"role {role} lacks CREATEDB: the restore goes into a new database first and "
                f"never drops {live}. Ask a superuser to run ALTER ROLE {quote_ident(role)} "
                "CREATEDB; (or connect as a role that has it). Nothing was changed")
        props = db_props(conn, live)
        properties = database_properties(conn, live)
        if props is None or properties is None:
            raise RestoreRefused(f"database {live} does not exist on {settings.host}:"
                                 f"{settings.port}")
        if not (props["can_own"] or superuser or proof):
            raise RestoreRefused(
                f"role {role} does not own database {live} (owner {props['owner']}) and so "
                "cannot rename it for the swap; connect as its owner or a superuser")
        _check_database_level(conn, properties, role, superuser)
        tool = find_tool("psql" if fmt == PLAIN else "pg_restore", major,
                         opts.psql if fmt == PLAIN else opts.pg_restore)
        report("step", f"reading {path} with {tool.path} ({tool.version})")
        insp, scan = inspect_backup(path, tool, report=report, cancel=cancel)
        check_plain_settings(conn, insp, major)
        missing = enerlink_tables_missing(insp.tables)
        if missing:
            raise RestoreRefused(f"{path} is not a backup of an EnerLink database: no "
                                 f"{', '.join(missing)}; nothing was changed")
        check_extensions(settings, conn, insp.extensions, opts.template, major, role,
                          superuser)
        warnings: list[str] = []
        check_identity(insp, live, opts.from_database, warnings)
        keep_owners, problems = check_owners(conn, insp, superuser)
        if not keep_owners and fmt == PLAIN:
            raise RestoreRefused(f"{path} is a plain dump that sets owners it cannot set as "
                                 f"{role}: {'; '.join(problems)}. Connect as that role or a "
                                 "superuser, or use a custom-format backup (restored with "
                                 "--no-owner)")
        if not keep_owners:
            warnings.append(f"{'; '.join(problems)}: restoring with --no-owner, so every "
                            f"object will be owned by {role}")
        stamp = _stamp()
        restore_db = db_name_with(live, f"_{'proof' if proof else 'restore'}_{stamp}")
        before_db = db_name_with(live, f"_before_restore_{stamp}")
        for name in (restore_db, before_db):
            if db_props(conn, name) is not None:
                raise RestoreRefused(f"database {name} already exists; try again in a second")
        sessions = [] if proof else _check_sessions(conn, live, role)
        report("step", "checking the free space on the server")
        space = _check_space(conn, insp, live, properties, int(props["size"]), report)
    counts, source = (None, None)
    if opts.check_counts and not proof:
        counts, source = expected_counts(settings, _backup_time(insp))
    if counts is None and not proof:
        insp.notes.append("no row counts from a migration after this backup in the journals: "
                          "row counts are not compared")
    db_owner = str(props["owner"]) if props["can_own"] else role
    plan = RestorePlan(settings, opts, insp, tool, live, restore_db, before_db, db_owner,
                       keep_owners, major, props, properties, role, counts, source, warnings,
                       scan, sessions, space)
    for w in warnings:
        report("warn", w)
    return plan


def _recheck(plan: RestorePlan, report: Report) -> None:
    """Right before anything changes: what was agreed to still covers what is there now
    (sessions that connected since the inspection, space used meanwhile)."""
    with _connect_maintenance(plan.settings, plan.options) as conn:
        now = _check_sessions(conn, plan.live_db, plan.role)
        space = _check_space(conn, plan.inspection, plan.live_db, plan.properties,
                             int(plan.live_props["size"]), report)
    plan.space = space
    if now and not plan.options.terminate_sessions:
        plan.sessions = now
    pending = plan.unconfirmed()
    if pending:
        raise RestoreRefused(" | ".join(u.message for u in pending))


# --- run ---------------------------------------------------------------------------------


class _Progress:
    """Progress of pg_restore from the bytes restored, or of psql (its place in the file).

    The new database's growth (pg_database_size, read about every SAMPLE_S by `sizer`)
    against the size the plan expects the copy to have (plan.space.estimate, else the live
    database's size) moves the bar; the phase comes from pg_restore's lines: the schema,
    the tables' data (with --jobs, the small tables' indexes meanwhile), then the indexes
    and constraints, counted against the archive's once every table is loaded (which
    keeps the bar moving when the copy ends up smaller than the estimate, without the
    live database's bloat). Without a size reading, TOC items done over the total.
    """

    SAMPLE_S = 1.0  # how often the new database's size is read

    def __init__(self, plan: RestorePlan, scan: PlainScan | None, progress: Progress, *,
                 sizer: Callable[[], int | None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = max(plan.inspection.toc_entries, 1)
        self.size = max(plan.inspection.size_bytes, 1)
        self.scan = scan
        self.progress = progress
        self.items: set[str] = set()
        self.serial = True
        self.copy = -1
        self.fraction = 0.0
        self.detail = ""
        entries = plan.inspection.entries
        self.tables = sum(1 for e in entries if e.desc == "TABLE DATA")
        self.post_total = sum(1 for e in entries if e.desc in _POST_DATA)
        self.expected = plan.space.estimate if plan.space else int(plan.live_props["size"])
        self.sizer = sizer
        self.clock = clock
        self.started = clock()
        self.sampled = -float("inf")
        self.base: int | None = None  # the new database's size before pg_restore
        self.grown = 0
        self.loading: dict[str, None] = {}  # tables whose data is loading, oldest first
        self.loaded = 0  # tables whose data pg_restore started
        self.built = 0  # indexes and constraints it started
        self.building = ""
        self.post_from: tuple[float, int] | None = None  # fraction and built: data all in

    def start(self) -> None:
        """Read the new database's size before anything is restored into it."""
        self._sample(force=True)

    def _sample(self, *, force: bool = False) -> None:
        now = self.clock()
        if self.sizer is None or (not force and now - self.sampled < self.SAMPLE_S):
            return
        self.sampled = now
        size = self.sizer()
        if size is None:
            self.sizer = None  # no reading: items from here on
            return
        if self.base is None:
            self.base = size
        self.grown = max(self.grown, size - self.base)

    def line(self, stream: str, line: str) -> None:
        if self.scan is not None:
            self._psql(stream, line)
            return
        if stream != "stderr":
            return
        self._phase(line)
        # With --jobs, items carry their TOC id ("processing item 3467 ...", "finished
        # item ..."); a serial run only says "creating ..." or "processing data ...".
        if (m := _ITEM.search(line)) is not None:
            self.items.add(m.group(1))
            self.serial = False
        elif self.serial and _SERIAL_ITEM.search(line):
            self.items.add(str(len(self.items)))
        else:
            return
        self.tick()

    def _phase(self, line: str) -> None:
        """Which tables are loading, how many indexes and constraints have started."""
        if (m := _DATA.search(line)) is not None:
            if self.serial:
                self.loading.clear()  # one at a time: the one before is in
            self.loading[m.group(1)] = None
            self.loaded += 1
        elif (m := _DATA_DONE.search(line)) is not None:
            tag = m.group(1)
            for name in [n for n in self.loading if n.split(".", 1)[-1] == tag][:1]:
                del self.loading[name]
        elif (m := _CREATING.search(line)) is not None and m.group(1) in _POST_DATA:
            if self.serial:
                self.loading.clear()
            self.built += 1
            self.building = m.group(2)
        if self.post_from is None and not self.loading and self.loaded >= self.tables \
                and self.built:
            self.post_from = (self.fraction, self.built - 1)

    def tick(self) -> None:
        if self.scan is not None:
            return
        self._sample()
        fraction = min(self._fraction(), 0.99)
        self._set(fraction, self._detail(max(fraction, self.fraction)))

    def _fraction(self) -> float:
        if self.sizer is None or self.base is None:
            return len(self.items) / self.total
        # The schema's items move the bar a little before the first bytes of data arrive.
        fraction = max(self.grown / max(1, self.expected - self.base),
                       SCHEMA_SHARE * len(self.items) / self.total)
        if self.post_from is not None:
            start, before = self.post_from
            left = self.post_total - before
            done = max(0, self.built - before - 1) / left if left > 0 else 1.0
            fraction = max(fraction, start + (1 - start) * min(1.0, done))
        return fraction

    def _detail(self, fraction: float) -> str:
        if self.loading:
            first = next(iter(self.loading))
            more = f" and {len(self.loading) - 1} more" if len(self.loading) > 1 else ""
            head = f"loading data: {first}{more} ({self.loaded} of {self.tables} tables)"
        elif self.built:
            head = (f"building indexes and constraints: {self.built} of {self.post_total} "
                    f"({self.building})")
        else:
            head = "creating the schema"
        parts = [head]
        if self.sizer is not None and self.base is not None and self.grown > 0:
            parts.append(f"{format_bytes(self.grown)} restored of about "
                         f"{format_bytes(max(self.grown, self.expected - self.base))}")
        elif self.sizer is None:
            parts.append(f"{len(self.items)} of {self.total} items")
        seconds = self.clock() - self.started
        elapsed = f"{format_duration(seconds)} elapsed"
        if fraction > 0.03 and seconds >= 2:
            elapsed += f", about {format_duration(seconds * (1 - fraction) / fraction)} left"
        return " · ".join([*parts, elapsed])

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
        if fraction > self.fraction or (self.scan is None and fraction == self.fraction
                                        and detail != self.detail):
            self.fraction = fraction
            self.detail = detail
            self.progress(fraction, detail)


class _DbSize:
    """The new database's size, read on a side connection to the maintenance database (one
    to the copy itself would hold off its drop after a failure); None once that fails."""

    def __init__(self, plan: RestorePlan) -> None:
        self.plan = plan
        self.conn: psycopg.Connection[Any] | None = None
        self.failed = False

    def __call__(self) -> int | None:
        if self.failed:
            return None
        try:
            if self.conn is None:
                maint = self.plan.settings.with_dbname(self.plan.options.maintenance_db)
                self.conn = maint.connect(autocommit=True)
                self.conn.execute("SET statement_timeout = '2s'")
            row = self.conn.execute("SELECT pg_database_size(oid) FROM pg_database "
                                    "WHERE datname = %s", (self.plan.restore_db,)).fetchone()
        except psycopg.Error:
            self.failed = True
            self.close()
            return None
        return int(row[0]) if row else None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _restore_program(plan: RestorePlan, scan: PlainScan | None, report: Report,
                     progress: Progress, cancel: threading.Event | None,
                     result: RestoreResult) -> tuple[Outcome, list[str]]:
    sizer = _DbSize(plan)
    tracker = _Progress(plan, scan, progress, sizer=sizer if scan is None else None)
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
        # "ERROR:" anywhere: pg_restore --jobs workers share stderr, and under load a
        # server error's text can arrive without its "pg_restore: error:" prefix.
        is_error = ("error:" in line or "ERROR:" in line or "from TOC entry" in line
                    or line.startswith(("Command was:", "psql:")))
        if is_error:
            errors.append(line)
        report("warn" if is_error else "info", line)

    try:
        tracker.start()
        with libpq_env(plan.settings) as env:
            outcome = run_program(plan.argv(), env=session_env(env, plan.options),
                                  on_line=on_line, cancel=cancel, on_tick=tracker.tick)
    finally:
        sizer.close()
    if outcome.cancelled:
        return outcome, errors
    full = [e for e in errors if any(m in e for m in _DISK_FULL)]
    if full:  # never an ignored error: the rest of the data did not fit either
        raise RestoreFailed(f"{name} failed: {full[0]}")
    fatal = not outcome.ok and not (outcome.returncode == 1 and result.ignored_errors
                                    and scan is None)
    if fatal:
        raise RestoreFailed(f"{name} failed ({outcome.describe()}): "
                            + " | ".join((errors or outcome.stderr_tail)[-6:]))
    return outcome, errors


def session_env(env: dict[str, str], options: RestoreOptions) -> dict[str, str]:
    """The restore program's environment with its sessions' settings (PGOPTIONS)."""
    if not options.maintenance_work_mem:
        return env
    extra = f"-c maintenance_work_mem={options.maintenance_work_mem}"
    return {**env, "PGOPTIONS": f"{env['PGOPTIONS']} {extra}" if env.get("PGOPTIONS")
            else extra}


def _ignored_errors(plan: RestorePlan, errors: list[str], report: Report,
                    cancel: threading.Event | None, result: RestoreResult) -> None:
    """pg_restore went on past errors: when they are all foreign keys the backup's rows
    violate, add those keys NOT VALID (the copy then holds exactly the backup's rows);
    any other error stays a warning, and the checks find what it left out."""
    name = plan.tool.path.name
    keys = violated_keys(errors, result.ignored_errors)
    if not keys:
        result.warnings.append(f"{name}: errors ignored on restore: {result.ignored_errors}")
        result.warnings += errors
        return
    report("warn", f"{name}: the backup's rows violate {len(keys)} foreign key(s) "
                   f"({', '.join(n for _t, n in keys.values())}): re-creating them NOT VALID "
                   "from the archive's own definitions")
    found = recreate_not_valid(plan.settings.with_dbname(plan.restore_db), plan.tool.path,
                               plan.inspection.path, keys, cancel)
    result.not_valid = [k.to_dict() for k in found]
    for key in found:
        report("warn", f"NOT VALID: {key.describe()}")
    result.warnings.append(not_valid_summary(found))


def not_valid_summary(keys: list[NotValidKey]) -> str:
    """What the NOT VALID keys mean, and how to make them valid, in one paragraph."""
    rows = sum(k.violating_rows for k in keys)
    return (f"{len(keys)} foreign key(s) restored NOT VALID because {rows} row(s) of the "
            f"backup violate them (the orphans the orphan scan finds): "
            + "; ".join(k.describe() for k in keys)
            + ". New rows are checked; once the orphans are cleaned up (enerlink-migrate "
            "orphans), validate them: " + " ".join(k.validate_sql for k in keys))


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


def check_properties(conn: psycopg.Connection[Any], plan: RestorePlan,
                     result: RestoreResult) -> list[str]:
    """The restored copy has the live database's own properties (owner, tablespace,
    locale, limit, settings, comment, privileges), read again now."""
    live = database_properties(conn, plan.live_db)
    restored = database_properties(conn, plan.restore_db)
    if live is None or restored is None:
        gone = plan.live_db if live is None else plan.restore_db
        diffs = [f"database {gone} is gone"]
    else:
        diffs = live.differences(restored)
    result.checks.append({"id": "database_properties", "ok": not diffs,
                          "detail": ("owner, tablespace, encoding and locale, connection "
                                     "limit, settings, comment and privileges equal the "
                                     f"live {plan.live_db}'s" if not diffs
                                     else "database properties differ: " + "; ".join(diffs))})
    if diffs:
        return [f"the restored copy's database properties differ from {plan.live_db}'s: "
                + "; ".join(diffs)]
    return []


def run(plan: RestorePlan, *, confirm: str, report: Report = no_report,
        progress: Progress = no_progress, cancel: threading.Event | None = None,
        journal: Journal | None = None,
        after_swap: Callable[[RestoreResult], None] | None = None,
        confirm_not_valid: Callable[[list[dict[str, Any]]], bool] | None = None,
        ) -> RestoreResult:
    """Restore into a new database, check it, swap it in. The live database is never dropped;
    any failure or cancel before the swap drops the new database and leaves live untouched.
    Refuses (RestoreRefused, nothing changed) without the typed name and what the DBA must
    agree to (plan.unconfirmed(), checked again against the server now).

    `after_swap` is the follow-up that belongs to the same run once the restored database is
    live (recover.restore_then_clear clears the Redis cache with it): it runs before the
    next steps are said and the run's last record is written, so both show what it did.

    `confirm_not_valid` is asked, before the swap, whether to swap in a copy whose foreign
    keys the backup's rows violate (re-created NOT VALID; their NotValidKey dicts are
    passed); without it, or on no, the copy is dropped unless options.accept_not_valid."""
    if confirm != plan.live_db:
        raise RestoreRefused(f"confirmation {confirm!r} does not match the database name "
                             f"{plan.live_db!r}; type the name of the database to replace")
    _recheck(plan, report)
    journal = journal or Journal.create(plan.settings, "restore")
    result = RestoreResult(ok=False, live_db=plan.live_db, restore_db=plan.restore_db,
                           warnings=list(plan.warnings), journal=str(journal.folder))
    journal.record(RestorePrepared(plan.to_dict()))
    t0 = time.perf_counter()
    created: list[bool] = []
    try:
        _restore_and_swap(plan, report, progress, cancel, journal, result, created,
                          confirm_not_valid)
    except BaseException as exc:
        _failed(plan, exc, bool(created), cancel, report, journal, result, t0)
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt and the like: cleaned up, then passed on
        return result
    result.ok = True
    result.before_db = plan.before_db
    result.drop_old_sql = f"DROP DATABASE {quote_ident(plan.before_db)};"
    result.next_steps = [CACHE_NEXT, f"the previous {plan.live_db} is kept as "
                         f"{plan.before_db}; when satisfied: {result.drop_old_sql}"]
    if result.not_valid:
        result.next_steps.append(
            "clean up the orphans the NOT VALID keys allow (enerlink-migrate orphans), then "
            "validate them: " + " ".join(str(k["validate_sql"]) for k in result.not_valid))
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


def restore_copy(plan: RestorePlan, report: Report, progress: Progress,
                 cancel: threading.Event | None, journal: Journal, result: RestoreResult,
                 created: list[bool]) -> None:
    """Create plan.restore_db like the live database, restore the backup into it and check
    it; nothing is swapped (the proof of a backup stops here too). Raises on failure,
    leaving the copy for the caller to drop (`created` says whether it exists)."""
    t0 = time.perf_counter()
    maint = plan.settings.with_dbname(plan.options.maintenance_db)
    _step(cancel, "before creating the database")
    report("step", f"creating database {plan.restore_db} (tablespace "
                   f"{plan.properties.tablespace}, owner {plan.db_owner})")
    with maint.connect(autocommit=True) as conn:
        try:
            notes = create_database(conn, plan)
        except BaseException:  # CREATE DATABASE may have run, copying a property failed
            if _exists(conn, plan.restore_db):
                created.append(True)
            raise
    created.append(True)
    result.warnings += notes
    journal.record(RestoreDbCreated(plan.restore_db, plan.db_owner))
    result.timings["create_s"] = _since(t0)
    copy = plan.settings.with_dbname(plan.restore_db)
    result.timescaledb = timescale.needed(plan.inspection.extensions)
    if result.timescaledb:
        timescale.pre_restore(copy, report)
    report("step", f"restoring {plan.inspection.path} into {plan.restore_db}: "
                   + shlex.join(plan.argv()))
    t1 = time.perf_counter()
    outcome, errors = _restore_program(plan, plan.scan, report, progress, cancel, result)
    result.timings["restore_s"] = _since(t1)
    _step(cancel, "during the restore")
    if result.ignored_errors:
        _ignored_errors(plan, errors, report, cancel, result)
    if result.timescaledb:
        timescale.post_restore(copy, report)
    journal.record(RestoreProgram(outcome.to_dict(), result.ignored_errors, result.warnings))
    report("step", f"checking {plan.restore_db}")
    t1 = time.perf_counter()
    with copy.connect(autocommit=True) as conn:
        failures = check_restored(conn, plan, result)
    with maint.connect(autocommit=True) as conn:
        failures += check_properties(conn, plan, result)
    result.timings["check_s"] = _since(t1)
    journal.record(RestoreChecked(result.checks, result.counts))
    if failures:
        raise RestoreFailed("the restored database failed its checks: " + "; ".join(failures))


def _restore_and_swap(plan: RestorePlan, report: Report, progress: Progress,
                      cancel: threading.Event | None, journal: Journal,
                      result: RestoreResult, created: list[bool],
                      confirm_not_valid: Callable[[list[dict[str, Any]]], bool] | None,
                      ) -> None:
    t0 = time.perf_counter()
    restore_copy(plan, report, progress, cancel, journal, result, created)
    if result.not_valid and not plan.options.accept_not_valid:
        listed = ", ".join(str(k["name"]) for k in result.not_valid)
        if confirm_not_valid is not None and not confirm_not_valid(result.not_valid):
            raise SwapDeclined(
                f"not swapped: you declined to swap in a copy whose {len(result.not_valid)} "
                f"foreign key(s) the backup's rows violate ({listed}, re-created NOT VALID); "
                f"the copy is dropped and {plan.live_db} stays as it was. To restore the "
                f"backup's rows as they are, restore again and agree; or restore a backup "
                f"taken after the orphan cleanup")
        if confirm_not_valid is None:
            raise RestoreFailed(
                f"not swapped: the backup's rows violate {len(result.not_valid)} foreign "
                f"key(s), which the copy has NOT VALID ({listed}), and that was not agreed "
                f"to. To restore the backup's "
                f"rows as they are, run again agreeing to it (CLI --accept-not-valid; the "
                f"wizard asks); or restore a backup taken after the orphan cleanup")
        report("warn", f"agreed: swapping in {plan.restore_db} with "
                       f"{len(result.not_valid)} foreign key(s) NOT VALID")
    _step(cancel, "before the swap")
    report("step", f"swapping: {plan.live_db} → {plan.before_db}, "
                   f"{plan.restore_db} → {plan.live_db}")
    t1 = time.perf_counter()
    swap(plan, report, cancel, result)
    result.timings["swap_s"] = _since(t1)
    result.timings["until_swap_s"] = _since(t0)


def _exists(conn: psycopg.Connection[Any], dbname: str) -> bool:
    """Whether the database exists; True when the server cannot say (drop to be sure)."""
    try:
        return db_props(conn, dbname) is not None
    except psycopg.Error:
        return True


# How a full disk shows in the server's and pg_restore's errors (a new session on a full
# disk already fails writing its relcache init file).
_DISK_FULL = ("No space left on device", "could not extend file", "could not write to file",
              "could not write init file", "disk full")


def failure_text(plan: RestorePlan, exc: BaseException) -> str:
    """What went wrong and what to do, for any failure before the swap."""
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, psycopg.errors.DiskFull) or any(m in text for m in _DISK_FULL):
        places = [p.what for p in plan.space.places] if plan.space else ["the server"]
        where = " or ".join(places) + (", whichever is full" if len(places) > 1 else "")
        need = (f" (the copy needs about {format_bytes(plan.space.estimate)} plus "
                f"{format_bytes(plan.space.wal_headroom)} of WAL)" if plan.space else "")
        return (f"the server ran out of disk space during the restore ({text}). Free space "
                f"on {where}{need}, then run the restore again")
    if isinstance(exc, psycopg.OperationalError):
        return (f"the connection to PostgreSQL was lost or refused ({text}). Check that the "
                "server is running (its log names the cause), then run the restore again")
    if isinstance(exc, (RestoreFailed, _Stop, SwapFailed, SwapCancelled, CopyFailed,
                        ProgramNotFound, FkRepairFailed, timescale.TimescaleFailed,
                        psycopg.Error)):
        return text
    return (f"unexpected {type(exc).__name__}: {text}. Read the run journal and the log, "
            "then run the restore again")


def _failed(plan: RestorePlan, exc: BaseException, created: bool,
            cancel: threading.Event | None, report: Report, journal: Journal,
            result: RestoreResult, t0: float) -> None:
    """Record a failure: drop the unfinished copy (live is untouched), say what to do."""
    result.declined = isinstance(exc, SwapDeclined)
    result.cancelled = (isinstance(exc, (_Stop, SwapCancelled, SwapDeclined, KeyboardInterrupt))
                        or bool(cancel and cancel.is_set()))
    result.error = (str(exc) if result.declined else
                    "restore cancelled by the operator" if result.cancelled
                    else failure_text(plan, exc))
    if created:
        report("step", f"dropping the unfinished {plan.restore_db}; {plan.live_db} "
                       "is untouched")
        maint = plan.settings.with_dbname(plan.options.maintenance_db)
        try:
            drop_database(maint, plan.restore_db, plan.server_major)
            result.dropped = True
            journal.record(RestoreDropped(plan.restore_db))
        except psycopg.Error as drop_exc:
            left = f"DROP DATABASE {quote_ident(plan.restore_db)};"
            result.error += (f". The unfinished {plan.restore_db} could not be dropped "
                             f"({str(drop_exc).strip()}): once PostgreSQL is back, run {left}")
            result.next_steps.append(f"drop the unfinished copy: {left}")
    result.timings["total_s"] = _since(t0)
    journal.record(RestoreFinished(result.to_dict()))
    report("warn" if result.declined else "error", result.error)


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

