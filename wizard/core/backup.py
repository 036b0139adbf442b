"""The verified backup: pg_dump into a private file with progress and cancel, then verify it."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shlex
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from wizard.core import sqlfiles
from wizard.core.archive import (
    ArchiveError,
    archive_sha256,
    archive_size,
    check_complete,
    read_archive,
)
from wizard.core.backup_snapshot import DumpSnapshot
from wizard.core.connection import PgSettings
from wizard.core.events import BackupCancelled, BackupDone, BackupSkipped, BackupStarted
from wizard.core.files import IfOpen, private_folder
from wizard.core.hints import hint
from wizard.core.journal import Journal, target_of
from wizard.core.pgenv import conninfo_arg, libpq_env
from wizard.core.pgtools import Tool, ToolNotFound, find_tool
from wizard.core.procs import Outcome, ProgramNotFound, run_program
from wizard.core.reporting import Cancelled, Progress, Report, check_cancel, no_progress, no_report
from wizard.core.units import format_bytes, format_duration, format_rate

FORMATS = ("custom", "directory")
# Measured by tests/bench/bench_backup.py at 1M users on 2 cores (custom format, vs the
# plain dump): zstd level 1 (pg_dump 16+) 0.96x the time at 12 % of the size, zlib level 1
# 1.34x at 18 %, lz4 0.82x but at 27 %, pg_dump's default (zlib 6) 2.2x; in directory
# format with -j 2, zstd:1 0.74x and gzip:1 0.93x. "auto" picks AUTO_MODERN where pg_dump
# can write it, else AUTO_OLDER; the plan and the result name the method chosen.
AUTO = "auto"
AUTO_MODERN, AUTO_OLDER = "zstd:1", "gzip:1"
DEFAULT_COMPRESSION = AUTO
PROBE_TIMEOUT_S = 10.0
DEFAULT_LOCK_WAIT_S = 30.0
SQL = "catalog/backup.sql"
DATA_START, DATA_END = 0.02, 0.90  # progress: catalog reading, table data, verification
PRIOR_BYTES_PER_S = 100e6  # table bytes per second until the first table is done (no path)
# Archive bytes per table byte (heap + TOAST pages) before a finished table has measured it
# (tests/test_progress.py: md5 text is 0.77 uncompressed, 0.42 with gzip:1; real rows with
# repeated values compress better), and how many table bytes the prior counts as.
NONE_RATIO, COMPRESSED_RATIO, PRIOR_WEIGHT = 0.8, 0.35, 4 * 2**20
CATALOG_BYTES = 8 * 2**20  # a fresh database's own size: no table's rows
SAMPLE_S = 0.2  # the archive's size is read at most this often (and at each table's end)
DUMPING = re.compile(r'dumping contents of table "(.+)"\s*$')
FINISHED = re.compile(r"finished item (\d+) TABLE DATA (.+?)\s*$")


class BackupRefused(RuntimeError):
    """The backup cannot start (options, tools, free space); nothing was written."""


class BackupOptionError(BackupRefused):
    """The options themselves are wrong (a usage mistake); nothing was read or written."""


@dataclass(frozen=True)
class BackupOptions:
    out_dir: Path
    format: str = "custom"  # custom | directory
    jobs: int = 1  # directory format only
    compression: str | None = DEFAULT_COMPRESSION  # None: pg_dump's own default
    lock_wait_timeout_s: float = DEFAULT_LOCK_WAIT_S
    pg_dump: str | Path | None = None  # a configured program or folder, else searched
    pg_restore: str | Path | None = None


@dataclass(frozen=True)
class BackupPlan:
    settings: PgSettings
    options: BackupOptions
    pg_dump: Tool
    pg_restore: Tool
    server_version: str
    path: Path
    argv: list[str]
    compression: str
    db_size_bytes: int
    free_bytes: int
    table_bytes: dict[str, int] = field(default_factory=dict)


@dataclass
class BackupResult:
    verified: bool
    path: str
    format: str
    dbname: str
    host: str
    port: int
    user: str
    compression: str
    jobs: int
    tool: dict[str, str]
    restore_tool: dict[str, str]
    server_version: str
    size_bytes: int = 0
    sha256: str | None = None
    toc_entries: int = 0
    dump_s: float = 0.0
    verify_s: float = 0.0
    duration_s: float = 0.0
    archive: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    # Row counts and fingerprint read in pg_dump's own snapshot (backup_snapshot), which
    # the proof compares a restored copy with; None when the snapshot could not be shared.
    snapshot: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.verified

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


# --- prepare: validate, find the tools, name the file, check the space -------------------


def backup_name(dbname: str, fmt: str, now: datetime) -> str:
    """enerlink_<db>_<UTC YYYYmmddTHHMMSSZ>_pre-user-rename.dump (.dir for a folder)."""
    slug = re.sub(r"[^\w.-]+", "_", dbname).strip("._") or "db"
    stamp = now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"enerlink_{slug}_{stamp}_pre-user-rename" + (".dump" if fmt == "custom" else ".dir")


@functools.lru_cache(maxsize=16)
def _writes_zstd(path: Path) -> bool:
    """Whether this pg_dump was built with zstd: it refuses the method before connecting
    ("this build does not support compression with zstd"), so a connection that cannot be
    made says it without touching a server."""
    argv = [str(path), "--no-password", f"--compress={AUTO_MODERN}", "--schema-only",
            f"--file={os.devnull}", "--dbname=host=/nonexistent-enerlink-probe port=1"]
    lines: list[str] = []
    cancel = threading.Event()
    timer = threading.Timer(PROBE_TIMEOUT_S, cancel.set)
    timer.start()
    try:
        outcome = run_program(argv, env=dict(os.environ), cancel=cancel,
                              on_line=lambda _stream, line: lines.append(line))
    except ProgramNotFound:
        return False
    finally:
        timer.cancel()
    return not outcome.cancelled and not any("support compression" in ln for ln in lines)


def auto_compression(tool: Tool) -> str:
    """What "auto" means with this pg_dump: zstd:1 from 16 on if it was built with zstd."""
    return AUTO_MODERN if tool.major >= 16 and _writes_zstd(tool.path) else AUTO_OLDER


def compression_args(spec: str | None, tool: Tool) -> tuple[list[str], str]:
    """pg_dump arguments for a method ("auto", "gzip:1", "lz4", "zstd:3", "none", "0".."9")."""
    if spec is None or spec.strip().lower() in ("", "default"):
        return [], "default (gzip:6)"
    text = spec.strip().lower()
    if text == AUTO:
        return compression_args(auto_compression(tool), tool)
    method, _, level = text.partition(":")
    if method.isdigit() and not level:
        method, level = ("none", "") if method == "0" else ("gzip", method)
    if method not in ("none", "gzip", "lz4", "zstd") or (level and not level.isdigit()):
        raise BackupOptionError(f"unknown compression {spec!r}: use auto, none, gzip:1..9, or "
                                f"lz4 / zstd[:level] with pg_dump 16 or newer")
    modern = tool.major >= 16
    if method == "none":
        return (["--compress=none"] if modern else ["-Z0"]), "none"
    if method == "gzip":
        lvl = int(level) if level else 6
        if not 1 <= lvl <= 9:
            raise BackupOptionError(f"gzip level {lvl} is out of range: use gzip:1 to gzip:9")
        return ([f"--compress=gzip:{lvl}"] if modern else [f"-Z{lvl}"]), f"gzip:{lvl}"
    if not modern:
        raise BackupRefused(f"{method} compression needs pg_dump 16 or newer; {tool.path} is "
                            f"{tool.version}. Use gzip:1, or "
                            + hint("point --pg-dump at a newer one",
                                   "set the profile's pg_dump program to a newer one"))
    return [f"--compress={text}"], text


def _first_error(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return next((ln for ln in lines if "FATAL" in ln or "error" in ln.lower()),
                lines[0] if lines else text).split("failed: ", 1)[-1]


def _existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _catalog(settings: PgSettings) -> tuple[dict[str, Any], dict[str, int]]:
    try:
        with settings.connect(autocommit=True) as conn, conn.cursor(row_factory=dict_row) as cur:
            # Catalog reads only; never wait behind another session's locks here.
            cur.execute("SET lock_timeout = '5s'")
            cur.execute("SET statement_timeout = '60s'")
            cur.execute(sqlfiles.query(SQL, "database"))
            db = cur.fetchone() or {}
            cur.execute(sqlfiles.query(SQL, "table_sizes"))
            tables = {str(r["name"]): int(r["bytes"]) for r in cur.fetchall()}
            if tables and not any(tables.values()):  # never vacuumed: weigh tables equally
                tables = dict.fromkeys(tables, 1)
    except psycopg.Error as exc:
        raise BackupRefused(f"cannot read {settings.describe()} before the backup: "
                            f"{_first_error(str(exc))}") from None
    return db, tables


def _find_tools(options: BackupOptions, major: int) -> tuple[Tool, Tool]:
    try:
        dump = find_tool("pg_dump", major, options.pg_dump)
        if options.pg_restore is not None:
            restore = find_tool("pg_restore", dump.major, options.pg_restore)
        else:
            # Read the archive with the pg_restore that came with this pg_dump if there is one.
            try:
                restore = find_tool("pg_restore", dump.major, dump.path.parent)
            except ToolNotFound:
                restore = find_tool("pg_restore", dump.major)
    except ToolNotFound as exc:
        raise BackupRefused(str(exc)) from None
    return dump, restore


def prepare(settings: PgSettings, options: BackupOptions, *,
            now: datetime | None = None) -> BackupPlan:
    """Validate, pick pg_dump, name the file and check the free space. Writes nothing."""
    if options.format not in FORMATS:
        raise BackupOptionError(f"unknown format {options.format!r}: use custom or directory")
    if options.jobs < 1:
        raise BackupOptionError("--jobs must be 1 or more")
    if options.jobs > 1 and options.format != "directory":
        raise BackupOptionError(f"--jobs {options.jobs} needs --format directory (pg_dump "
                                f"writes a custom-format file with one process)")
    if options.lock_wait_timeout_s <= 0:
        raise BackupOptionError("the lock wait timeout must be positive")
    out_dir = Path(options.out_dir).expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise BackupRefused(f"{out_dir} exists and is not a folder; choose a folder "
                            + hint("for --out", "to write the backup in"))
    db, tables = _catalog(settings)
    major = int(db["server_version_num"]) // 10000
    dump, restore = _find_tools(options, major)
    compress, compression = compression_args(options.compression, dump)
    path = out_dir / backup_name(settings.dbname, options.format, now or
                                 datetime.now(timezone.utc))
    if path.exists():
        raise BackupRefused(f"{path} already exists; wait a second or choose another folder")
    size = int(db["size_bytes"])
    free = shutil.disk_usage(_existing(out_dir)).free
    if free < size:
        raise BackupRefused(
            f"not enough free space for the backup: {format_bytes(free)} ({free} bytes) free "
            f"in {_existing(out_dir)}, the database {settings.dbname} is about "
            f"{format_bytes(size)} ({size} bytes, pg_database_size). Free some space or "
            f"choose another " + hint("--out folder", "backup folder"))
    argv = [str(dump.path), "--no-password", f"--dbname={conninfo_arg(settings)}",
            f"--format={options.format}", f"--file={path}", "--verbose",
            f"--lock-wait-timeout={int(options.lock_wait_timeout_s * 1000)}", *compress]
    if options.jobs > 1:
        argv.append(f"--jobs={options.jobs}")
    return BackupPlan(settings=settings, options=options, pg_dump=dump, pg_restore=restore,
                      server_version=str(db["server_version"]), path=path, argv=argv,
                      compression=compression, db_size_bytes=size, free_bytes=free,
                      table_bytes=tables)


# --- run: dump with progress and cancel, then verify -------------------------------------


class DumpProgress:
    """Turns pg_dump --verbose lines and the archive's growing size on disk into a fraction,
    the bytes written, their throughput, the elapsed time and an ETA.

    Each table weighs its catalog size; tables the catalog says are empty (never vacuumed:
    relpages 0) share part of the database's size no weight accounts for. The bytes
    written since the finished tables count for the tables in flight, turned into table
    bytes by the archive/table ratio measured on finished tables (a prior per compression
    before that), capped at 95 % of them; a table that outgrows its weight raises the
    total. Without a size reading (no `path`), a table in flight counts as far as the
    throughput of finished tables says.
    """

    def __init__(self, table_bytes: dict[str, int], jobs: int, progress: Progress, *,
                 path: Path | None = None, db_bytes: int = 0, compression: str = "",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.known = {n for n, b in table_bytes.items() if b > 1}  # prepare weighs unknown 1
        self.sizes = _weights(table_bytes, self.known, db_bytes)
        self.total = max(1, sum(self.sizes.values()))
        self.jobs = jobs
        self.progress = progress
        self.path = path
        self.clock = clock
        self.ratio_prior = NONE_RATIO if compression == "none" else COMPRESSED_RATIO
        self.started = clock()
        self.in_flight: dict[str, float] = {}
        self.done_bytes = 0  # table bytes of the finished tables
        self.done_tables = 0
        self.done_out = 0  # archive bytes of the finished tables
        self.ratio_in = 0  # finished tables of known weight: table bytes ...
        self.ratio_out = 0  # ... and the archive bytes they took
        self.base = 0  # archive bytes before the first table (header, schema)
        self.written = 0
        self.sampled = -1.0
        self.first: float | None = None
        self.last_fraction = 0.0
        self.current = ""

    def line(self, text: str) -> None:
        now = self.clock()
        if match := DUMPING.search(text):
            self._sample(now, force=True)
            if self.jobs == 1:
                self._finish_serial()
            name = match.group(1)
            self.in_flight[name] = now
            self.current = name
            if self.first is None:
                self.first = now
                self.base = self.written
            self.tick()
        elif match := FINISHED.search(text):
            item, tag = match.groups()
            self._sample(now, force=True)
            for name in [n for n in self.in_flight if n.split(".", 1)[-1] == tag][:1]:
                self._finish(name, self._item_bytes(item))
            self.tick()

    # -- the archive on disk ----------------------------------------------------------------

    def _sample(self, now: float, *, force: bool = False) -> None:
        if self.path is None or (not force and now - self.sampled < SAMPLE_S):
            return
        self.sampled = now
        self.written = max(self.written, _bytes_on_disk(self.path))

    def _item_bytes(self, item: str) -> int | None:
        """A directory backup's table file (<item>.dat, .dat.gz, ...) once it is finished."""
        if self.path is None or not self.path.is_dir():
            return None
        found = [p for p in self.path.glob(f"{item}.dat*") if p.is_file()]
        return sum(_bytes_on_disk(p) for p in found) if found else None

    def ratio(self) -> float:
        """Archive bytes per table byte: measured on finished tables, smoothed by the prior."""
        return ((self.ratio_out + self.ratio_prior * PRIOR_WEIGHT)
                / (self.ratio_in + PRIOR_WEIGHT))

    # -- tables finishing -------------------------------------------------------------------

    def _finish(self, name: str, out: int | None) -> None:
        self.in_flight.pop(name, None)
        size = self.sizes.get(name, 0)
        if out is None:  # its share of what the tables in flight wrote
            out = round(min(self._flying_out(), self.ratio() * size))
        self.done_bytes += size
        self.done_tables += 1
        self.done_out += out
        if name in self.known and self.path is not None:
            self.ratio_in += size
            self.ratio_out += out

    def _finish_serial(self) -> None:
        """One table at a time: everything written since the last one finished is its."""
        for name in list(self.in_flight):
            self._finish(name, self._flying_out())

    def _finish_all(self) -> None:
        for name in list(self.in_flight):
            self._finish(name, None)

    def _flying_out(self) -> int:
        return max(0, self.written - self.base - self.done_out)

    # -- the estimate -----------------------------------------------------------------------

    def data_fraction(self, now: float) -> float:
        if self.first is None:
            return 0.0
        flying_weight = sum(self.sizes.get(n, 0) for n in self.in_flight)
        if self.path is not None:
            flying = self._flying_out() / self.ratio()
        else:
            elapsed = max(now - self.first, 1e-6)
            rate = self.done_bytes / elapsed if self.done_bytes else PRIOR_BYTES_PER_S
            share = rate / max(1, len(self.in_flight))
            flying = sum(min(0.95 * self.sizes.get(n, 0), share * (now - t0))
                         for n, t0 in self.in_flight.items())
        total = float(self.total)
        if flying > 0.95 * flying_weight:  # bigger than the catalog said: so is the total
            total += flying / 0.95 - flying_weight
        return min(1.0, (self.done_bytes + flying) / total)

    def tick(self) -> None:
        now = self.clock()
        self._sample(now)
        frac = self.data_fraction(now)
        overall = max(self.last_fraction, DATA_START + (DATA_END - DATA_START) * frac)
        self.last_fraction = overall
        self.progress(overall, self.detail(now, frac))

    def detail(self, now: float, frac: float) -> str:
        """'public.big · written 12.3 MiB at 8.1 MiB/s · 2 of 9 tables · 4 s elapsed,
        about 6 s left': what a DBA watching the dump wants to see, never '0 B of ...'."""
        elapsed = f"{format_duration(now - self.started)} elapsed"
        if self.first is None:
            return f"reading the catalog and the schema · {elapsed}"
        parts = [self.current + (f" and {len(self.in_flight) - 1} more"
                                 if len(self.in_flight) > 1 else "")]
        if self.path is not None:
            out = self.written - self.base
            seconds = now - self.first
            parts.append(f"written {format_bytes(self.written)}" + (
                f" at {format_rate(out / seconds)}" if out > 0 and seconds >= 0.5 else ""))
        parts.append(f"{self.done_tables} of {len(self.sizes)} tables")
        if frac > 0.02 and now - self.first >= 1.0:
            elapsed += f", about {format_duration((now - self.first) * (1 - frac) / frac)} left"
        return " · ".join([*parts, elapsed])

    def data_done(self) -> None:
        self._sample(self.clock(), force=True)
        self._finish_all()
        self.last_fraction = max(self.last_fraction, DATA_END)
        took = format_duration(self.clock() - self.started)
        written = f"{format_bytes(self.written)} " if self.path is not None else ""
        self.progress(self.last_fraction, f"all table data written ({written}in {took}); "
                                          "verifying")


def _weights(table_bytes: dict[str, int], known: set[str], db_bytes: int) -> dict[str, int]:
    """The tables' weights: the catalog's sizes, and for those it knows nothing of a share of
    what the database holds beyond them (less a fresh database's catalog, half of the rest
    taken for indexes)."""
    unknown = [n for n in table_bytes if n not in known]
    rest = db_bytes - sum(table_bytes[n] for n in known) - CATALOG_BYTES
    if not unknown or rest <= 0:
        return dict(table_bytes)
    share = max(1, rest // 2 // len(unknown))
    return {n: table_bytes[n] if n in known else share for n in table_bytes}


def _bytes_on_disk(path: Path) -> int:
    """The size of a file, or of a directory's files, as pg_dump writes it (0 if not yet)."""
    try:
        if not path.is_dir():
            return path.stat().st_size
        with os.scandir(path) as entries:
            return sum(e.stat().st_size for e in entries if e.is_file())
    except OSError:
        return 0


def _level(line: str) -> str:
    low = line.lower()
    if "error:" in low or "fatal:" in low or line.startswith(("FATAL", "ERROR")):
        return "error"
    return "warn" if "warning:" in low else "info"


def _explain(outcome: Outcome, plan: BackupPlan) -> str:
    errors = [ln for ln in outcome.stderr_tail if _level(ln) == "error"] or \
        outcome.stderr_tail[-3:]
    text = "\n".join(outcome.stderr_tail)
    first = errors[0].split("failed: ", 1)[-1] if errors else ""
    s = plan.settings
    hint = "see the lines above; fix the cause and run the backup again"
    if "password authentication failed" in text:
        hint = f"wrong password for role {s.user} on {s.host}:{s.port}; correct it in the " \
               f"profile or pgpass file and retry"
    elif "no password supplied" in text:
        hint = f"the server wants a password for {s.user} and none was given; add it to the " \
               f"profile or a pgpass file"
    elif "lock timeout" in text or "statement timeout" in text:
        hint = (f"another session holds a lock that blocked pg_dump for "
                f"{plan.options.lock_wait_timeout_s:g} s; find it in the pre-flight session "
                f"list, end it or wait, then retry (or raise the lock wait timeout)")
    elif "No space left on device" in text:
        hint = f"the disk holding {plan.path.parent} is full; free space or choose another " \
               f"folder"
    elif "permission denied" in text:
        hint = f"role {s.user} cannot read everything pg_dump needs; back up as the tables' " \
               f"owner or a role with SELECT on every table"
    elif "server version mismatch" in text or "aborting because of server version" in text:
        hint = f"{plan.pg_dump.path} ({plan.pg_dump.version}) is older than the server " \
               f"({plan.server_version}); install a newer pg_dump"
    what = f": {first}" if first else ""
    return f"pg_dump failed ({outcome.describe()}){what}. {hint}"


def _create_target(plan: BackupPlan) -> None:
    """Create the file (0600) or folder (0700) before pg_dump opens it, never reusing one."""
    try:
        if plan.options.format == "custom":
            os.close(os.open(plan.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            os.chmod(plan.path, 0o600)
        else:
            plan.path.mkdir(mode=0o700)
            os.chmod(plan.path, 0o700)
    except FileExistsError:
        raise BackupRefused(f"{plan.path} already exists; nothing was written") from None


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _tighten(path: Path) -> None:
    """pg_dump creates a directory backup's files with the umask's mode: make them 0600."""
    if path.is_dir():
        for file in path.rglob("*"):
            if file.is_file():
                os.chmod(file, 0o600)


def _result(plan: BackupPlan) -> BackupResult:
    s = plan.settings
    return BackupResult(
        verified=False, path=str(plan.path), format=plan.options.format, dbname=s.dbname,
        host=s.host, port=s.port, user=s.user, compression=plan.compression,
        jobs=plan.options.jobs,
        tool={"path": str(plan.pg_dump.path), "version": plan.pg_dump.version},
        restore_tool={"path": str(plan.pg_restore.path), "version": plan.pg_restore.version},
        server_version=plan.server_version)


def verify(plan: BackupPlan, result: BackupResult, *, report: Report = no_report,
           progress: Progress = no_progress, cancel: threading.Event | None = None) -> None:
    """Fill `result`: the archive is whole, pg_restore --list reads it, its sha256."""
    path = plan.path
    argv = [str(plan.pg_restore.path), "--list", str(path)]
    report("step", f"verifying {path.name}: archive structure, sha256 and {shlex.join(argv)}")
    info = read_archive(path)
    check_complete(info)
    result.archive = info.to_dict()
    listed: list[str] = []
    errors: list[str] = []

    def on_line(stream: str, line: str) -> None:
        (listed if stream == "stdout" else errors).append(line)

    with libpq_env(plan.settings) as env:
        outcome = run_program(argv, env=env, on_line=on_line, cancel=cancel)
    if outcome.cancelled:
        raise Cancelled("backup cancelled by the operator during verification")
    if not outcome.ok:
        raise ArchiveError(f"pg_restore --list cannot read {path} ({outcome.describe()}): "
                           f"{' '.join(errors[-3:])}")
    result.toc_entries = sum(1 for ln in listed if ln.strip() and not ln.startswith(";"))
    if result.toc_entries == 0:
        raise ArchiveError(f"pg_restore --list shows no entries in {path}")
    total = max(1, archive_size(path))
    hashed = 0

    def on_bytes(n: int) -> None:
        nonlocal hashed
        hashed += n
        check_cancel(cancel, "backup")
        progress(DATA_END + (1 - DATA_END) * 0.95 * hashed / total, "computing sha256")

    result.sha256 = archive_sha256(path, on_bytes)
    result.size_bytes = archive_size(path)


def run(plan: BackupPlan, *, report: Report = no_report, progress: Progress = no_progress,
        cancel: threading.Event | None = None, journal: Journal | None = None) -> BackupResult:
    """Dump, then verify. Cancel removes the partial backup and raises Cancelled; a failed
    dump or verification is returned with `verified` False and the reason in `error`."""
    check_cancel(cancel, "backup")
    started = time.monotonic()
    # The DBA chose this folder and may share it with a backup agent: warn, never chmod it.
    private_folder(plan.path.parent, if_open=IfOpen.WARN,
                   warn=lambda message: report("warn", message))
    _create_target(plan)
    result = _result(plan)
    if journal is not None:
        journal.record(BackupStarted(str(plan.path), plan.options.format, plan.compression,
                                     plan.options.jobs, result.tool, target_of(plan.settings),
                                     plan.db_size_bytes, plan.free_bytes))
    tracker = DumpProgress(plan.table_bytes, plan.options.jobs, progress, path=plan.path,
                           db_bytes=plan.db_size_bytes, compression=plan.compression)
    progress(0.0, "starting pg_dump")

    def on_line(_stream: str, line: str) -> None:
        report(_level(line), line)
        tracker.line(line)

    try:
        try:
            with DumpSnapshot(plan.settings, report) as snap, \
                    libpq_env(plan.settings) as env:
                argv = plan.argv + ([f"--snapshot={snap.id}"] if snap.id else [])
                # The command exactly as it runs, one line a shell takes back (the password
                # goes through a temporary pgpass file, never the command line).
                report("step", f"pg_dump {plan.pg_dump.version} → {plan.path} "
                               f"({plan.options.format}, compression {plan.compression}): "
                               f"{shlex.join(argv)}")
                snap.count()
                outcome = run_program(argv, env=env, on_line=on_line, cancel=cancel,
                                      on_tick=tracker.tick)
                result.snapshot = snap.result() if outcome.ok else None
        except ProgramNotFound as exc:
            raise BackupRefused(str(exc)) from None
        result.dump_s = round(outcome.duration_s, 3)
        if outcome.cancelled:
            raise Cancelled("backup cancelled by the operator")
        if not outcome.ok:
            result.error = _explain(outcome, plan)
        else:
            tracker.data_done()
            _tighten(plan.path)
            t0 = time.monotonic()
            try:
                verify(plan, result, report=report, progress=progress, cancel=cancel)
                result.verified = True
            except ArchiveError as exc:
                result.error = f"the backup failed verification: {exc}"
            result.verify_s = round(time.monotonic() - t0, 3)
    except Cancelled:
        _remove(plan.path)
        if journal is not None:
            journal.record(BackupCancelled(str(plan.path), removed=True))
        report("warn", f"backup cancelled; the partial {plan.path} was removed")
        raise Cancelled(f"backup cancelled by the operator; the partial {plan.path} was "
                        f"removed") from None
    except BaseException:
        _remove(plan.path)
        raise
    result.duration_s = round(time.monotonic() - started, 3)
    if result.verified:
        report("step", f"backup verified: {result.path}, {format_bytes(result.size_bytes)}, "
                       f"{result.toc_entries} TOC entries, sha256 {result.sha256}")
        progress(1.0, "verified")
    else:
        if result.error and result.error.startswith("pg_dump failed"):
            _remove(plan.path)  # an incomplete dump is of no use to anyone
            result.error += f" (the incomplete {plan.path.name} was removed)"
        report("error", result.error or "backup failed")
    if journal is not None:
        journal.record(BackupDone(result.to_dict()))
    return result


def record_skipped(journal: Journal, dbname: str, who: str, when: str, how: str) -> None:
    """A DBA typed the database's name to go on without a backup (the guard reads it)."""
    journal.record(BackupSkipped(dbname, how, who, when))


def backup(settings: PgSettings, options: BackupOptions, *, report: Report = no_report,
           progress: Progress = no_progress, cancel: threading.Event | None = None,
           journal: Journal | None = None) -> BackupResult:
    """prepare() then run()."""
    return run(prepare(settings, options), report=report, progress=progress, cancel=cancel,
               journal=journal)


# --- the migrate guard -------------------------------------------------------------------


def _verified_backups(settings: PgSettings, journals: Iterable[Journal]
                      ) -> list[dict[str, Any]]:
    """Every verified `backup` event for this host, port and database, newest first, each
    with its journal folder under "journal"."""
    found: list[dict[str, Any]] = []
    for journal in journals:
        target = journal.target()
        for event in journal.events("backup"):
            where = (event.get("host", target.get("host")),
                     int(event.get("port", target.get("port")) or 0),
                     event.get("dbname", target.get("dbname")))
            if event.get("verified") and where == (settings.host, settings.port,
                                                   settings.dbname):
                found.append({**event, "journal": str(journal.folder)})
    return sorted(found, key=lambda e: str(e.get("ts", "")), reverse=True)


def newest_verified_backup(settings: PgSettings, journals: Iterable[Journal]
                           ) -> dict[str, Any] | None:
    """The newest verified backup whose file is still there, whatever its content now: the
    caller hashes it, so a changed file is refused rather than an older one taken."""
    return next((e for e in _verified_backups(settings, journals)
                 if e.get("sha256") and Path(str(e.get("path", ""))).exists()), None)


def latest_verified_backup(settings: PgSettings, journals: Iterable[Journal]
                           ) -> dict[str, Any] | None:
    """The newest verified `backup` event for this host, port and database whose file still
    exists with the recorded sha256 (with its journal folder under "journal"), or None."""
    for event in _verified_backups(settings, journals):
        path = Path(str(event.get("path", "")))
        if not (event.get("sha256") and path.exists()):
            continue
        if archive_sha256(path) == event["sha256"]:
            return event
    return None
