"""What is inside a backup (format, header, objects, integrity, whose it is), read before a
restore, and whether the server it goes to can take it."""

from __future__ import annotations

import mmap
import os
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from wizard.core import names
from wizard.core.archive import archive_sha256
from wizard.core.connection import PgSettings
from wizard.core.journal import Journal, runs_root
from wizard.core.pgenv import child_environ
from wizard.core.pgtools import Tool
from wizard.core.procs import Outcome, run_program
from wizard.core.reporting import Report, no_report
from wizard.core.units import format_bytes

CUSTOM, DIRECTORY, TAR, PLAIN = "custom", "directory", "tar", "plain"
# pg_dump's object types, longest first so that "FK CONSTRAINT" wins over a shorter match.
_DESCS = sorted((
    "ACCESS METHOD", "ACL", "AGGREGATE", "BLOB", "BLOB DATA", "BLOB METADATA", "BLOBS", "CAST",
    "CHECK CONSTRAINT", "COLLATION", "COMMENT", "CONSTRAINT", "CONVERSION", "DATABASE",
    "DATABASE PROPERTIES", "DEFAULT", "DEFAULT ACL", "DOMAIN", "ENCODING", "EVENT TRIGGER",
    "EXTENSION", "FK CONSTRAINT", "FOREIGN DATA WRAPPER", "FOREIGN SERVER", "FOREIGN TABLE",
    "FUNCTION", "INDEX", "INDEX ATTACH", "LARGE OBJECT", "MATERIALIZED VIEW",
    "MATERIALIZED VIEW DATA", "OPERATOR", "OPERATOR CLASS", "OPERATOR FAMILY", "POLICY",
    "PROCEDURAL LANGUAGE", "PROCEDURE", "PUBLICATION", "PUBLICATION TABLE",
    "PUBLICATION TABLES IN SCHEMA", "ROW SECURITY", "RULE", "SCHEMA", "SEARCHPATH",
    "SECURITY LABEL", "SEQUENCE", "SEQUENCE OWNED BY", "SEQUENCE SET", "SERVER", "SHELL TYPE",
    "STATISTICS", "STATISTICS DATA", "STDSTRINGS", "SUBSCRIPTION", "SUBSCRIPTION TABLE",
    "TABLE", "TABLE ATTACH", "TABLE DATA", "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY", "TEXT SEARCH PARSER", "TEXT SEARCH TEMPLATE", "TRANSFORM",
    "TRIGGER", "TYPE", "USER MAPPING", "VIEW"), key=len, reverse=True)
_PLAIN_NAME = re.compile(r"^-- (?:Data for )?Name: (.*); Type: (.*); Schema: (.*); "
                         r"Owner: (.*)$")


class RestoreRefused(RuntimeError):
    """The restore will not start; nothing has been changed. The message says why."""


@dataclass(frozen=True)
class TocEntry:
    """One object of the backup, as `pg_restore --list` or a plain dump's comments name it."""

    desc: str
    schema: str
    tag: str
    owner: str


@dataclass
class Inspection:
    """What is inside a backup, read before anything changes."""

    path: str
    format: str
    size_bytes: int
    dbname: str | None = None
    dumped_at: str | None = None
    pg_dump_version: str | None = None
    server_version: str | None = None
    toc_entries: int = 0
    compression: str | None = None
    entries: list[TocEntry] = field(default_factory=list, repr=False)
    sha256: str | None = None
    journal_backup: dict[str, Any] | None = None  # our backup event for this file, if any
    fully_read: bool = False  # pg_restore read every byte (archives we did not record)
    notes: list[str] = field(default_factory=list)

    @property
    def source_db(self) -> str | None:
        """The database this is a backup of: the archive's header, else our journal."""
        if self.dbname:
            return self.dbname
        if self.journal_backup and self.journal_backup.get("dbname"):
            return str(self.journal_backup["dbname"])
        return None

    @property
    def source_from(self) -> str:
        """Where source_db was read, or why there is none."""
        if self.dbname:
            return "named in the archive's table of contents"
        if self.source_db:
            return f"recorded by the backup step in {self.journal_backup_folder}"
        return ("not recorded: a plain SQL dump does not name the database it was taken "
                "from, so the tool cannot tell whose backup this is")

    @property
    def journal_backup_folder(self) -> str:
        return str((self.journal_backup or {}).get("journal") or "a run journal")

    @property
    def compressed(self) -> bool:
        """Whether the data is compressed (its size on disk then understates it)."""
        if self.format == PLAIN:
            return False
        return (self.compression or "").strip().lower() not in ("0", "none", "")

    @property
    def tables(self) -> list[str]:
        return sorted({e.tag for e in self.entries if e.desc == "TABLE"})

    def owned_by(self, owner: str, most: int = 3) -> str:
        """A few of the objects `owner` owns in the backup, e.g. 'SCHEMA public'."""
        mine = [f"{e.desc} {e.tag}" for e in self.entries if e.owner == owner]
        return ", ".join(mine[:most]) + (f" and {len(mine) - most} more" if len(mine) > most
                                         else "")

    @property
    def extensions(self) -> list[str]:
        """Extensions the restore will create (pg_dump writes CREATE EXTENSION IF NOT EXISTS)."""
        return sorted({e.tag.strip('"') for e in self.entries if e.desc == "EXTENSION"})

    @property
    def owners(self) -> list[str]:
        return sorted({e.owner for e in self.entries if e.owner not in ("", "-")})

    @property
    def state(self) -> str:
        """pre (prosumer), migrated (user), or unknown, from the table names in the backup."""
        tables = set(self.tables)
        if names.OLD_TABLE in tables and names.NEW_TABLE not in tables:
            return "pre"
        if names.NEW_TABLE in tables and names.OLD_TABLE not in tables:
            return "migrated"
        return "unknown"

    def summary(self) -> list[str]:
        lines = [f"backup {self.path} ({self.format}, {format_bytes(self.size_bytes)})",
                 f"  database: {self.source_db or '?'} ({self.source_from})",
                 f"  dumped at: {self.dumped_at or 'not recorded'}",
                 f"  pg_dump {self.pg_dump_version or '?'}, server {self.server_version or '?'}",
                 f"  {self.toc_entries} entries, {len(self.tables)} tables; schema state "
                 f"in the backup: {self.state}"]
        if self.journal_backup:
            lines.append(f"  made by this tool ({self.journal_backup.get('journal')}); "
                         f"sha256 {self.sha256} matches the journal")
        elif self.fully_read:
            lines.append("  not recorded in any run journal: read completely by pg_restore, "
                         "no error")
        lines += [f"  note: {n}" for n in self.notes]
        return lines

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["entries"]
        data.update(tables=self.tables, owners=self.owners, state=self.state)
        return data


def detect_format(path: Path) -> str:
    """custom, directory, tar or plain; RestoreRefused for anything else."""
    if path.is_dir():
        if (path / "toc.dat").is_file():
            return DIRECTORY
        raise RestoreRefused(f"{path} is a folder without toc.dat: not a pg_dump directory "
                             "backup (pg_dump -Fd)")
    if not path.is_file():
        raise RestoreRefused(f"backup {path} does not exist")
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.startswith(b"PGDMP"):
        return CUSTOM
    if len(head) > 262 and head[257:262] == b"ustar":
        return TAR
    if head.startswith(b"\x1f\x8b"):
        raise RestoreRefused(f"{path} is gzip-compressed: decompress it first "
                             f"(gunzip -k '{path}') and restore the .sql file")
    text = head.decode("utf-8", errors="replace")
    if "PostgreSQL database dump" in text or text.lstrip().startswith(("--", "SET ")):
        return PLAIN
    raise RestoreRefused(f"{path} is neither a pg_dump archive (custom, directory, tar) nor "
                         "a plain SQL dump")


def parse_list_entry(line: str) -> TocEntry | None:
    """One `pg_restore --list` line: '<id>; <tableoid> <oid> <DESC> <schema> <tag> <owner>'."""
    match = re.match(r"^\d+; \d+ \d+ (.*)$", line)
    if not match:
        return None
    rest = match.group(1)
    desc = next((d for d in _DESCS if rest.startswith(d + " ")), rest.split(" ", 1)[0])
    schema, _, tail = rest[len(desc) + 1:].partition(" ")
    tag, _, owner = tail.rpartition(" ")
    return TocEntry(desc, schema, tag, owner)


def parse_list(lines: list[str], inspection: Inspection) -> None:
    """Fill the inspection from `pg_restore --list` output (header comments, then entries)."""
    header = {"dbname": "dbname", "TOC Entries": "toc", "Compression": "compression",
              "Dumped from database version": "server", "Dumped by pg_dump version": "pg_dump"}
    found: dict[str, str] = {}
    for line in lines:
        if line.startswith(";"):
            body = line[1:].strip()
            if body.startswith("Archive created at "):
                inspection.dumped_at = body.removeprefix("Archive created at ")
            key, sep, value = body.partition(": ")
            if sep and key in header:
                found[header[key]] = value.strip()
        elif (entry := parse_list_entry(line)) is not None:
            inspection.entries.append(entry)
    inspection.dbname = found.get("dbname")
    inspection.server_version = found.get("server")
    inspection.pg_dump_version = found.get("pg_dump")
    inspection.compression = found.get("compression")
    inspection.toc_entries = int(found.get("toc", len(inspection.entries)))


@dataclass
class PlainScan:
    copies: list[tuple[int, int, str]]  # (offset of COPY, end of its data, the COPY line)
    connects: list[str]  # \connect lines: a dump of several databases or made with --create
    complete: bool  # ends with pg_dump's "dump complete" trailer


def scan_plain(path: Path, inspection: Inspection, cancel: threading.Event | None) -> PlainScan:
    """One pass over a plain dump: its header, object comments, COPY blocks (skipped whole,
    at memory speed) and any \\connect; for the owner check, progress and truncation."""
    copies: list[tuple[int, int, str]] = []
    connects: list[str] = []
    size = path.stat().st_size
    if size == 0:
        raise RestoreRefused(f"{path} is empty")
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m:
        pos = 0
        while pos < size:
            end = m.find(b"\n", pos)
            end = size if end < 0 else end
            line = m[pos:end].decode("utf-8", errors="replace")
            start, pos = pos, end + 1
            if line.startswith("-- "):
                if (match := _PLAIN_NAME.match(line)) is not None:
                    tag, desc, schema, owner = match.groups()
                    inspection.entries.append(TocEntry(desc, schema, tag, owner))
                elif line.startswith("-- Dumped from database version "):
                    inspection.server_version = line.split("version ", 1)[1]
                elif line.startswith("-- Dumped by pg_dump version "):
                    inspection.pg_dump_version = line.split("version ", 1)[1]
                elif line.startswith("-- Started on ") and inspection.dumped_at is None:
                    inspection.dumped_at = line.removeprefix("-- Started on ")
            elif line.startswith("\\connect"):
                connects.append(line)
            elif line.startswith("COPY ") and line.rstrip().endswith("FROM stdin;"):
                # Data rows never start with "\." (a backslash is escaped), so this ends it.
                stop = m.find(b"\n\\.\n", pos - 1)
                data_end = size if stop < 0 else stop + 4
                copies.append((start, data_end, line))
                pos = data_end
                if cancel is not None and cancel.is_set():
                    break
        tail = m[max(0, size - 4096):size]
    inspection.toc_entries = len(inspection.entries)
    return PlainScan(copies, connects, b"-- PostgreSQL database dump complete" in tail)


def sha256_of(path: Path, cancel: threading.Event | None = None) -> str:
    """The backup step's sha256 (archive.archive_sha256), cancellable."""
    def on_bytes(_n: int) -> None:
        if cancel is not None and cancel.is_set():
            raise RestoreRefused("restore cancelled while checking the backup's sha256; "
                                 "nothing was changed")
    return archive_sha256(path, on_bytes)


def journal_backup(path: Path, root: Path | None = None) -> dict[str, Any] | None:
    """The newest `backup` event of any run journal for this file, with its journal folder."""
    root = root or runs_root()
    if not root.exists():
        return None
    wanted = path.resolve()
    for folder in sorted(root.iterdir(), reverse=True):
        for event in reversed(Journal(folder).events("backup")):
            if event.get("path") and Path(str(event["path"])).resolve() == wanted:
                return {**event, "journal": str(folder)}
    return None


def _collect(argv: list[str], env: dict[str, str],
             cancel: threading.Event | None) -> tuple[Outcome, list[str], list[str]]:
    out: list[str] = []
    err: list[str] = []
    outcome = run_program(argv, env=env, cancel=cancel,
                          on_line=lambda s, ln: (out if s == "stdout" else err).append(ln))
    return outcome, out, err


def inspect_backup(path: Path, tool: Tool, *, report: Report = no_report,
                   cancel: threading.Event | None = None) -> tuple[Inspection, PlainScan | None]:
    """Read a backup without changing anything: format, header, objects, integrity."""
    fmt = detect_format(path)
    size = (sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir()
            else path.stat().st_size)
    insp = Inspection(path=str(path), format=fmt, size_bytes=size)
    record = journal_backup(path)
    if record is not None:
        insp.journal_backup = {k: record.get(k) for k in
                               ("journal", "ts", "sha256", "dbname", "format", "verified",
                                "toc_entries", "size_bytes")}
        if record.get("verified") is False:
            raise RestoreRefused(f"{path} failed verification when it was made (journal "
                                 f"{record['journal']}): it cannot be trusted for a restore")
        report("step", "checking the sha256 against the journal")
        insp.sha256 = sha256_of(path, cancel)
        expected = str(record.get("sha256") or "")
        if expected and expected != insp.sha256:
            raise RestoreRefused(
                f"{path} has changed since it was made: sha256 {insp.sha256}, the journal "
                f"({record['journal']}) recorded {expected}. Do not restore it; use another "
                "copy of the backup")
    scan = None
    if fmt == PLAIN:
        scan = scan_plain(path, insp, cancel)
        if not scan.complete:
            raise RestoreRefused(f"{path} does not end with pg_dump's 'PostgreSQL database "
                                 "dump complete' line: it is truncated or not a pg_dump file")
        if scan.connects:
            raise RestoreRefused(f"{path} switches databases ({scan.connects[0]}): it was made "
                                 "with --create or by pg_dumpall; restore needs a dump of one "
                                 "database made without --create")
        insp.notes.append("plain SQL: restored with psql -v ON_ERROR_STOP=1, in one process")
        return insp, scan
    env = child_environ()
    outcome, out, err = _collect([str(tool.path), "--list", str(path)], env, cancel)
    if not outcome.ok:
        raise RestoreRefused(f"pg_restore --list cannot read {path}: "
                             f"{' '.join(err[-3:]) or outcome.describe()}")
    parse_list(out, insp)
    if record is None:
        # No sha256 to compare with: read the whole archive (a truncated file's TOC at the
        # start still lists fine; only reading the data finds the end missing).
        report("step", "reading the whole archive (it is not recorded in a run journal)")
        outcome, _out, err = _collect([str(tool.path), "-f", os.devnull, str(path)], env,
                                      cancel)
        if outcome.cancelled:
            raise RestoreRefused("restore cancelled while reading the backup; nothing changed")
        if not outcome.ok:
            raise RestoreRefused(f"{path} is damaged: pg_restore could not read it to the end "
                                 f"({' '.join(err[-3:]) or outcome.describe()})")
        insp.fully_read = True
    if fmt == TAR:
        insp.notes.append("tar format: pg_restore cannot use --jobs with it; one process")
    return insp, scan


# --- the backup against the server it goes to ------------------------------------------


def check_owners(conn: psycopg.Connection[Any], insp: Inspection, superuser: bool,
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


def check_plain_settings(conn: psycopg.Connection[Any], insp: Inspection,
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


def check_extensions(settings: PgSettings, conn: psycopg.Connection[Any],
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


def enerlink_tables_missing(tables: list[str]) -> list[str]:
    present = set(tables)
    wanted = [*names.CHILD_TABLES, "migrations"]
    missing = [t for t in wanted if t not in present]
    if names.OLD_TABLE not in present and names.NEW_TABLE not in present:
        missing.insert(0, f"{names.OLD_TABLE} (or {names.NEW_TABLE})")
    return missing


def estimate_size(conn: psycopg.Connection[Any], insp: Inspection, live: str,
              live_size: int) -> tuple[int, str]:
    """How big the restored copy will be, conservatively: the larger of the archive and
    the database it is a backup of as it is on this server (else the live one)."""
    source = insp.source_db
    size, what = live_size, f"the size of {live} now"
    if source and source != live:
        row = conn.execute("SELECT pg_database_size(oid) FROM pg_database WHERE datname = %s",
                           (source,)).fetchone()
        if row is not None:
            size, what = int(row[0]), f"the size of {source} on this server"
    archive = (f"the backup file, {'compressed, ' if insp.compressed else ''}is "
               f"{format_bytes(insp.size_bytes)}")
    if insp.size_bytes > size:
        return insp.size_bytes, f"the backup file's size; {what} is {format_bytes(size)}"
    return size, f"{what}; {archive}"


def check_identity(insp: Inspection, live: str, named: str | None,
                   warnings: list[str]) -> None:
    source = insp.source_db
    if named and source and named != source:
        raise RestoreRefused(f"--from-database {named} does not match the backup: "
                             f"{insp.path} is a backup of {source} ({insp.source_from}). "
                             "Nothing was changed")
    if source is None and named is None:
        warnings.append(f"{insp.path}: the database it was taken from is {insp.source_from}; "
                        f"make sure it is a backup of {live}")
