"""Orphan scan: rows whose prosumer/user id has no parent; CSV export, then deletion."""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import shlex
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from wizard.core import names
from wizard.core.backup import newest_verified_backup
from wizard.core.connection import PgSettings
from wizard.core.discovery import CONFLICT, UNKNOWN, Discovery, discover
from wizard.core.events import OrphanScanned, OrphansDeleted, OrphansExported
from wizard.core.files import FolderNotPrivate, IfOpen, private_folder
from wizard.core.hints import hint
from wizard.core.journal import Journal, runs_for
from wizard.core.ops import AddForeignKey, ValidateForeignKey
from wizard.core.reporting import (
    Cancelled,
    Progress,
    Report,
    check_cancel,
    no_progress,
    no_report,
)
from wizard.core.sqlfiles import queries

if TYPE_CHECKING:
    from wizard.core.plan import Plan

SQL_FILE = "catalog/orphans.sql"
SAMPLE_LIMIT = 20
DEFAULT_STATEMENT_TIMEOUT_S = 300.0
# Export and delete must print every value the same way, so that the rows a delete takes
# can be compared byte for byte with the file written before it.
CSV_SETTINGS = {"DateStyle": "ISO, MDY", "IntervalStyle": "postgres", "TimeZone": "UTC",
                "extra_float_digits": "1", "bytea_output": "hex"}


class OrphanError(RuntimeError):
    """A scan, export or delete could not be done; the message names the next step."""


class OrphanRefused(OrphanError):
    """A delete was refused: no typed confirmation, or no export of the rows first."""


@dataclass
class OrphanColumn:
    """One referencing column (or column list) and the rows in it that have no parent."""

    table: str
    column: str  # as it is named now; several columns of one FK are joined by ", "
    fk_name: str | None  # the FK(s) on it, None when it has none (the plan will add one)
    count: int
    samples: list[dict[str, Any]]
    schema: str = "public"
    columns: tuple[str, ...] = ()
    ref_columns: tuple[str, ...] = ()
    fk_validated: bool | None = None
    known: bool = False  # one of EnerLink's seven columns
    key_columns: tuple[str, ...] = ()  # the table's primary key, to name sample rows

    @property
    def label(self) -> str:
        prefix = "" if self.schema == "public" else f"{self.schema}."
        return f"{prefix}{self.table}.{self.column}"

    def sample_keys(self) -> list[dict[str, Any]]:
        """Each sample's primary key and orphan value: all the journal may hold of a row."""
        keep = (*self.key_columns, *self.columns)
        return [{k: _plain(row.get(k)) for k in dict.fromkeys(keep)} for row in self.samples]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "table": self.table, "column": self.column,
                "label": self.label, "fk_name": self.fk_name, "fk_validated": self.fk_validated,
                "known": self.known, "count": self.count, "columns": list(self.columns),
                "ref_columns": list(self.ref_columns), "key_columns": list(self.key_columns),
                "samples": [{k: _plain(v) for k, v in r.items()} for r in self.samples]}


@dataclass
class OrphanScan:
    database: str
    schema: str
    parent: str  # the prosumer/user table as it is named now
    parent_key: str
    state: str  # the database's state: pre, migrated, partial
    columns: list[OrphanColumn]
    duration_s: float
    missing: list[str] = field(default_factory=list)  # known columns not in this database
    deleted: dict[str, int] = field(default_factory=dict)  # set by delete(): rows per table
    work_mem_mb: int = 0

    @property
    def total(self) -> int:
        return sum(c.count for c in self.columns)

    @property
    def clean(self) -> bool:
        return self.total == 0

    def dirty_tables(self) -> dict[tuple[str, str], list[OrphanColumn]]:
        """(schema, table) → its columns with orphans, in scan order."""
        found: dict[tuple[str, str], list[OrphanColumn]] = {}
        for c in self.columns:
            if c.count:
                found.setdefault((c.schema, c.table), []).append(c)
        return found

    def lines(self) -> list[str]:
        """A readable report: one line per column, then the sample rows' keys."""
        head = (f"orphan scan of {self.database} ({self.parent}.{self.parent_key}, state "
                f"{self.state}): {len(self.columns)} columns in {self.duration_s:.2f} s, "
                + ("no orphans" if self.clean else f"{self.total} orphan rows"))
        width = max((len(c.label) for c in self.columns), default=0)
        out = [head]
        for c in self.columns:
            fk = (f"FK {c.fk_name}" + ("" if c.fk_validated in (True, None) else " NOT VALID")
                  if c.fk_name else "no FK")
            out.append(f"  {c.label.ljust(width)}  {c.count:>9}  {fk}")
            for key in c.sample_keys():
                out.append("      " + ", ".join(f"{k}={v}" for k, v in key.items()))
            if c.count > len(c.samples):
                out.append(f"      ... {c.count - len(c.samples)} more")
        out += [f"  not in this database: {m}" for m in self.missing]
        out += [f"  deleted from {t}: {n} rows" for t, n in self.deleted.items()]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"database": self.database, "schema": self.schema, "parent": self.parent,
                "parent_key": self.parent_key, "state": self.state,
                "duration_s": round(self.duration_s, 3), "total": self.total,
                "clean": self.clean, "missing": self.missing, "deleted": self.deleted,
                "work_mem_mb": self.work_mem_mb, "columns": [c.to_dict() for c in self.columns]}

    def journal_record(self) -> dict[str, Any]:
        """Counts and the samples' keys only: no other row data goes to the journal."""
        return {"database": self.database, "parent": self.parent, "state": self.state,
                "duration_s": round(self.duration_s, 3), "total": self.total,
                "missing": self.missing,
                "columns": [{"label": c.label, "fk_name": c.fk_name, "count": c.count,
                             "sample_keys": c.sample_keys()} for c in self.columns]}


@dataclass(frozen=True)
class ExportedCsv:
    """One CSV written by export(): every orphan row of one table, with a header row."""

    path: Path
    schema: str
    table: str
    rows: int
    sha256: str

    def __fspath__(self) -> str:
        return str(self.path)


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def _q(*parts: str) -> sql.Identifier:
    return sql.Identifier(*parts)


@contextlib.contextmanager
def _cancel_watcher(conn: psycopg.Connection[Any],
                    cancel: threading.Event | None) -> Iterator[None]:
    """Cancel the running statement on the server as soon as the operator asks."""
    if cancel is None:
        yield
        return
    done = threading.Event()

    def watch() -> None:
        # Two events cannot be waited on at once; a short timeout bounds the reaction time.
        while not cancel.wait(0.05):
            if done.is_set():
                return
        # A cancel request that arrives between two statements is lost: repeat it, while a
        # statement runs, until the job has stopped.
        while not done.is_set():
            if conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.ACTIVE:
                with contextlib.suppress(psycopg.Error):
                    conn.cancel_safe()
            done.wait(0.1)

    watcher = threading.Thread(target=watch, name="orphans-cancel-watcher", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def _set_local(cur: psycopg.Cursor[Any], settings: dict[str, str]) -> None:
    for name, value in settings.items():
        cur.execute("SELECT set_config(%s, %s, true)", (name, value))


def _timeout_error(exc: psycopg.errors.QueryCanceled, cancel: threading.Event | None,
                   what: str, timeout_s: float) -> Exception:
    if cancel is not None and cancel.is_set():
        return Cancelled(f"{what} cancelled by the operator; nothing was changed")
    return OrphanError(f"{what} stopped by statement_timeout ({timeout_s:g} s): {exc}. Run it "
                       f"again with a longer timeout ("
                       + hint("--statement-timeout", "the page's Statement timeout") + ").")


def _schema_changed(exc: psycopg.Error, what: str) -> OrphanError:
    return OrphanError(f"{what} stopped, nothing changed: the schema is not what the scan saw "
                       f"({exc}); the database was migrated or altered since. Scan again.")


# ---------------------------------------------------------------------------------------
# What to scan


@dataclass(frozen=True)
class _Target:
    schema: str
    table: str
    columns: tuple[str, ...]
    ref_columns: tuple[str, ...]
    fk_names: tuple[str, ...]
    validated: bool | None
    known: bool
    not_null: frozenset[str] = frozenset()


def _parent_of(d: Discovery) -> tuple[str, str]:
    parent, key = d.target_table, d.key_column
    if d.state in (CONFLICT, UNKNOWN) or parent is None or key is None:
        raise OrphanError(f"cannot scan for orphans in state '{d.state}': {d.explanation}")
    return parent, key


def _targets(cur: psycopg.Cursor[dict[str, Any]], d: Discovery, parent: str,
             key: str) -> tuple[list[_Target], list[str]]:
    """The seven known columns (by either name, FK or not) and every other FK to parent."""
    cur.execute(queries(SQL_FILE)["foreign_keys_to"], {"schema": d.schema, "table": parent})
    fks: dict[tuple[str, str, tuple[str, ...]], list[dict[str, Any]]] = {}
    for row in cur.fetchall():
        fks.setdefault((row["table_schema"], row["table_name"], tuple(row["columns"])),
                       []).append(row)
    targets: list[_Target] = []
    missing: list[str] = []
    for place in names.REFERENCING:
        column = d.place_column(place)
        if column is None:
            missing.append(place.label)
            continue
        rows = fks.pop((d.schema, place.table, (column,)), [])
        targets.append(_target(d.schema, place.table, (column,), rows, (key,), known=True))
    for (schema, table, columns), rows in fks.items():
        targets.append(_target(schema, table, columns, rows, (key,), known=False))
    not_null = {(t.schema, t.table): frozenset(c["name"] for c in _columns(cur, t.schema, t.table)
                                               if c["not_null"]) for t in targets}
    return [replace(t, not_null=not_null[(t.schema, t.table)]) for t in targets], missing


def _target(schema: str, table: str, columns: tuple[str, ...], fks: list[dict[str, Any]],
            default_ref: tuple[str, ...], *, known: bool) -> _Target:
    ref = tuple(fks[0]["ref_columns"]) if fks else default_ref
    validated = all(r["validated"] for r in fks) if fks else None
    return _Target(schema, table, columns, ref, tuple(r["name"] for r in fks), validated, known)


def _columns(cur: psycopg.Cursor[dict[str, Any]], schema: str,
             table: str) -> list[dict[str, Any]]:
    cur.execute(queries(SQL_FILE)["columns"], {"schema": schema, "table": table})
    return cur.fetchall()


def _primary_key(cur: psycopg.Cursor[dict[str, Any]], schema: str, table: str) -> tuple[str, ...]:
    cur.execute(queries(SQL_FILE)["primary_key"], {"schema": schema, "table": table})
    return tuple(r["name"] for r in cur.fetchall())


def _hash_work_mem_mb(cur: psycopg.Cursor[dict[str, Any]], schema: str, parent: str,
                      ref: tuple[str, ...]) -> int:
    """Enough work_mem for the parent's keys to hash in one batch (a spill doubles the cost).

    A hash entry costs its key plus about 64 bytes of tuple header, bucket and allocation
    overhead; a third more leaves room for a stale estimate.
    """
    cur.execute(queries(SQL_FILE)["estimated_rows"],
                {"schema": schema, "table": parent, "columns": list(ref)})
    row = cur.fetchone() or {"estimated_rows": 0, "avg_width": 0, "work_mem": 0}
    width = int(row["avg_width"]) or 40 * len(ref)
    needed = math.ceil(int(row["estimated_rows"]) * (width + 64) * 4 / 3 / 2**20)
    return max(64, min(4096, needed), math.ceil(int(row["work_mem"]) / 2**20))


# ---------------------------------------------------------------------------------------
# Scan


def _missing_parent(schema: str, parent: str, ref: tuple[str, ...], types: list[str],
                    values: Sequence[sql.Composable]) -> sql.Composed:
    """NOT EXISTS (the parent row for these values): the anti-join, never NOT IN."""
    match = sql.SQL(" AND ").join(
        sql.SQL("p.{} = {}::{}").format(_q(r), v, sql.SQL(t))
        for r, v, t in zip(ref, values, types, strict=True))
    return sql.SQL("NOT EXISTS (SELECT 1 FROM {} p WHERE {})").format(_q(schema, parent), match)


def _orphan_predicate(schema: str, parent: str, ref: tuple[str, ...], types: list[str],
                      columns: tuple[str, ...]) -> sql.Composed:
    """Row t is an orphan in these columns: all non-null (MATCH SIMPLE) and no parent."""
    not_null = [sql.SQL("t.{} IS NOT NULL").format(_q(x)) for x in columns]
    anti = _missing_parent(schema, parent, ref, types,
                           [sql.SQL("t.{}").format(_q(x)) for x in columns])
    return sql.SQL("({})").format(sql.SQL(" AND ").join([*not_null, anti]))


def _scan_query(schema: str, parent: str, ref: tuple[str, ...], types: list[str],
                targets: list[_Target], limit: int | None) -> sql.Composed:
    """One statement for all columns that refer to the same parent columns.

    The children's values are appended into one stream and anti-joined once, so the
    planner reads the parent and builds its hash a single time instead of once per
    column; each orphan keeps its ctid so that samples are fetched by TID afterwards.
    Types come from format_type() of the parent's columns (catalog text, not input).
    """
    branches = []
    for tag, t in enumerate(targets):
        values = sql.SQL(", ").join(sql.SQL("{}::{} AS {}").format(_q(c), sql.SQL(typ),
                                                                   _q(f"v{k}"))
                                    for k, (c, typ) in enumerate(zip(t.columns, types,
                                                                     strict=True)))
        # NULL has no parent to miss; the test is left out on NOT NULL columns (all seven
        # are), which saves an expression per row.
        not_null = [sql.SQL("{} IS NOT NULL").format(_q(c)) for c in t.columns
                    if c not in t.not_null]
        where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(not_null) if not_null else sql.SQL("")
        branches.append(sql.SQL("SELECT {} AS tag, ctid AS tid, {} FROM {}{}").format(
            sql.Literal(tag), values, _q(t.schema, t.table), where))
    anti = _missing_parent(schema, parent, ref, types,
                           [sql.SQL("c.{}").format(_q(f"v{k}")) for k in range(len(ref))])
    tids = (sql.SQL("(array_agg(tid ORDER BY tid))[1:{}]").format(sql.Literal(limit))
            if limit is not None else sql.SQL("array_agg(tid)"))
    return sql.SQL(
        "SELECT tag, count(*) AS orphans, {}::text[] AS tids "
        "FROM ({}) c WHERE {} GROUP BY tag").format(
        tids, sql.SQL(" UNION ALL ").join(branches), anti)


def _tune(cur: psycopg.Cursor[Any], work_mem_mb: int) -> None:
    """Settings for the one-pass anti-join, for this transaction only.

    JIT compilation at these plan costs takes longer than it saves; a hash that spills to
    disk doubles the time, so work_mem is sized for it. Few rows leave the anti-join, but
    the planner cannot know it (it guesses half of them) and so shuns a parallel plan:
    tell it the rows are cheap to gather.
    """
    _set_local(cur, {"work_mem": f"{work_mem_mb}MB", "jit": "off",
                     "parallel_tuple_cost": "0"})


def _find(cur: psycopg.Cursor[dict[str, Any]], schema: str, parent: str,
          targets: list[_Target], work_mem_mb: int | None, limit: int | None,
          say: Report = no_report) -> tuple[dict[_Target, tuple[int, list[str]]], int]:
    """Orphan count and ctids (up to `limit`) of every target, one pass per parent key."""
    parent_types = {c["name"]: c["type"] for c in _columns(cur, schema, parent)}
    groups: dict[tuple[str, ...], list[_Target]] = {}
    for t in targets:
        groups.setdefault(t.ref_columns, []).append(t)
    found: dict[_Target, tuple[int, list[str]]] = {}
    mem = 0
    for ref, group in groups.items():
        if not set(ref) <= set(parent_types):
            raise OrphanError(f"{parent}({', '.join(ref)}) is not there any more: the "
                              f"database was migrated or altered since the scan. Nothing "
                              f"changed; scan again.")
        mem = work_mem_mb or _hash_work_mem_mb(cur, schema, parent, ref)
        _tune(cur, mem)
        labels = ", ".join(f"{t.table}.{'+'.join(t.columns)}" for t in group)
        say("step", f"scanning {len(group)} columns against {parent}({', '.join(ref)}) "
                    f"in one pass: {labels}")
        cur.execute(_scan_query(schema, parent, ref, [parent_types[r] for r in ref], group,
                                limit))
        for row in cur.fetchall():
            found[group[row["tag"]]] = (int(row["orphans"]), list(row["tids"]))
    return found, mem


def scan(settings: PgSettings, *, schema: str = "public",
         statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S,
         work_mem_mb: int | None = None, sample_limit: int = SAMPLE_LIMIT,
         report: Report | None = None, progress: Progress | None = None,
         cancel: threading.Event | None = None, journal: Journal | None = None) -> OrphanScan:
    """Count the rows whose non-null reference has no parent, in every referencing column.

    Read-only, in one REPEATABLE READ snapshot; cancellable while a statement runs.
    """
    say, move = report or no_report, progress or no_progress
    check_cancel(cancel, "orphan scan")
    started = time.perf_counter()
    with settings.connect() as conn, _cancel_watcher(conn, cancel):
        try:
            result = _scan(conn, settings.dbname, schema, statement_timeout_s, work_mem_mb,
                           sample_limit, say, move, cancel)
        except psycopg.errors.QueryCanceled as exc:
            raise _timeout_error(exc, cancel, "orphan scan", statement_timeout_s) from None
    result.duration_s = time.perf_counter() - started
    say("info", result.lines()[0])
    if journal is not None:
        journal.record(OrphanScanned(result.journal_record()))
    move(1.0, "done")
    return result


def _scan(conn: psycopg.Connection[Any], dbname: str, schema: str, timeout_s: float,
          work_mem_mb: int | None, limit: int, say: Report, move: Progress,
          cancel: threading.Event | None) -> OrphanScan:
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        _set_local(cur, {"statement_timeout": f"{int(timeout_s * 1000)}ms"})
        move(0.02, "reading the catalog")
        d = discover(conn, schema, text_references=False)
        parent, key = _parent_of(d)
        targets, missing = _targets(cur, d, parent, key)
        check_cancel(cancel, "orphan scan")
        move(0.05, f"{len(targets)} columns in one pass")
        counts, mem = _find(cur, schema, parent, targets, work_mem_mb, limit, say)
        parent_types = {c["name"]: c["type"] for c in _columns(cur, schema, parent)}
        columns: list[OrphanColumn] = []
        for n, t in enumerate(targets):
            check_cancel(cancel, "orphan scan")
            count, tids = counts.get(t, (0, []))
            samples: list[dict[str, Any]] = []
            if tids:
                # A partitioned table repeats ctids across partitions: the predicate keeps
                # only orphans, the limit only as many as asked for.
                pred = _orphan_predicate(schema, parent, t.ref_columns,
                                         [parent_types[r] for r in t.ref_columns], t.columns)
                cur.execute(sql.SQL("SELECT * FROM {} t WHERE ctid = ANY(%s::tid[]) AND {} "
                                    "ORDER BY ctid LIMIT {}").format(
                    _q(t.schema, t.table), pred, sql.Literal(limit)), (tids,))
                samples = cur.fetchall()
            col = OrphanColumn(t.table, ", ".join(t.columns),
                               ", ".join(t.fk_names) or None, count, samples, t.schema,
                               t.columns, t.ref_columns, t.validated, t.known,
                               _primary_key(cur, t.schema, t.table) if samples else ())
            columns.append(col)
            say("warn" if count else "info",
                f"{col.label}: {count} orphan rows" if count else f"{col.label}: clean")
            move(0.8 + 0.2 * (n + 1) / len(targets), col.label)
    return OrphanScan(dbname, schema, parent, key, d.state, columns, 0.0, missing,
                      work_mem_mb=mem)


# ---------------------------------------------------------------------------------------
# Export and delete


@dataclass(frozen=True)
class _TableRows:
    """Exactly the orphan rows of one table, in a stable order.

    They are located by the one-pass anti-join (their ctids), then read or deleted by TID;
    the orphan test is applied again on those few rows (a partitioned table repeats
    ctids across its partitions, and a row may have changed since).
    """

    schema: str
    table: str
    columns: list[str]
    order: list[str]  # primary key, or empty: then the physical position
    predicate: sql.Composable
    tids: list[str]

    @property
    def label(self) -> str:
        return self.table if self.schema == "public" else f"{self.schema}.{self.table}"

    def _where(self) -> sql.Composed:
        return sql.SQL("t.ctid = ANY({}::tid[]) AND ({})").format(sql.Literal(self.tids),
                                                                 self.predicate)

    def select(self) -> sql.Composed:
        order = (sql.SQL(", ").join(sql.SQL("t.{}").format(_q(c)) for c in self.order)
                 if self.order else sql.SQL("t.tableoid, t.ctid"))
        return sql.SQL("SELECT {} FROM {} t WHERE {} ORDER BY {}").format(
            sql.SQL(", ").join(sql.SQL("t.{}").format(_q(c)) for c in self.columns),
            _q(self.schema, self.table), self._where(), order)

    def delete_returning(self) -> sql.Composed:
        """DELETE the rows and give them back in the export's order and format."""
        order = (sql.SQL(", ").join(_q(c) for c in self.order) if self.order
                 else sql.SQL('"?rel", "?tid"'))
        return sql.SQL(
            'WITH gone AS (DELETE FROM {} t WHERE {} RETURNING t.tableoid AS "?rel", '
            't.ctid AS "?tid", {}) SELECT {} FROM gone ORDER BY {}').format(
            _q(self.schema, self.table), self._where(),
            sql.SQL(", ").join(sql.SQL("t.{}").format(_q(c)) for c in self.columns),
            sql.SQL(", ").join(_q(c) for c in self.columns), order)

    def dependents(self, fk: dict[str, Any]) -> sql.Composed:
        """Rows of another table that point at these rows through the FK `fk`."""
        cols = sql.SQL(", ").join(sql.SQL("d.{}").format(_q(c)) for c in fk["columns"])
        refs = sql.SQL(", ").join(sql.SQL("t.{}").format(_q(c)) for c in fk["ref_columns"])
        return sql.SQL("SELECT count(*) AS n FROM {} d WHERE ({}) IN "
                       "(SELECT {} FROM {} t WHERE {})").format(
            _q(fk["table_schema"], fk["table_name"]), cols, refs,
            _q(self.schema, self.table), self._where())


def _orphan_rows(cur: psycopg.Cursor[dict[str, Any]], scan: OrphanScan,
                 say: Report = no_report) -> list[_TableRows]:
    """Every table's orphan rows as they are now, found in one pass as the scan does."""
    pairs = [(c, _Target(c.schema, c.table, c.columns, c.ref_columns or (scan.parent_key,),
                         (), None, c.known))
             for cols in scan.dirty_tables().values() for c in cols]
    found, _mem = _find(cur, scan.schema, scan.parent, [t for _c, t in pairs], None, None, say)
    parent_types = {c["name"]: c["type"] for c in _columns(cur, scan.schema, scan.parent)}
    result = []
    for schema, table in scan.dirty_tables():
        info = _columns(cur, schema, table)
        if not info:
            raise OrphanError(f"{schema}.{table} is not there any more: the database was "
                              f"altered since the scan. Nothing changed; scan again.")
        tids: set[str] = set()
        parts = []
        for c, t in pairs:
            if c.schema == schema and c.table == table:
                tids.update(found.get(t, (0, []))[1])
                parts.append(_orphan_predicate(scan.schema, scan.parent, t.ref_columns,
                                               [parent_types[r] for r in t.ref_columns],
                                               c.columns))
        result.append(_TableRows(schema, table, [c["name"] for c in info],
                                 list(_primary_key(cur, schema, table)),
                                 sql.SQL(" OR ").join(parts), sorted(tids)))
    return result


def _slug(schema: str, table: str) -> str:
    name = table if schema == "public" else f"{schema}.{table}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _private_folder(folder: Path) -> Path:
    """The operator's export folder, refused when others can enter it: the export is the
    only copy of the rows a delete removes, and the delete checks them against it."""
    try:
        return private_folder(folder, if_open=IfOpen.REFUSE)
    except FolderNotPrivate as exc:
        raise OrphanError(str(exc)) from None


def export(settings: PgSettings, scan: OrphanScan, folder: Path, *,
           statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S,
           report: Report | None = None, progress: Progress | None = None,
           cancel: threading.Event | None = None,
           journal: Journal | None = None) -> list[ExportedCsv]:
    """One CSV per table with orphans (all their rows, every column, a header row).

    Files are 0600 in a 0700 folder, named orphans_<table>_<UTC time>.csv, written from
    one read-only snapshot; a failure or cancel removes the files written so far.
    """
    say, move = report or no_report, progress or no_progress
    tables = scan.dirty_tables()
    if not tables:
        say("info", "no orphan rows: nothing to export")
        return []
    folder = _private_folder(folder)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    written: list[ExportedCsv] = []
    try:
        with settings.connect() as conn, _cancel_watcher(conn, cancel), \
                conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            _set_local(cur, {**CSV_SETTINGS,
                             "statement_timeout": f"{int(statement_timeout_s * 1000)}ms"})
            for n, rows in enumerate(_orphan_rows(cur, scan, say)):
                check_cancel(cancel, "orphan export")
                path = _free_name(folder, f"orphans_{_slug(rows.schema, rows.table)}_{stamp}")
                move(n / len(tables), f"exporting {rows.label}")
                written.append(_copy_out(cur, rows, path))
                say("step", f"exported {written[-1].rows} orphan rows of {rows.label} to "
                            f"{path}")
    except psycopg.errors.QueryCanceled as exc:
        _remove(written)
        raise _timeout_error(exc, cancel, "orphan export", statement_timeout_s) from None
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as exc:
        _remove(written)
        raise _schema_changed(exc, "orphan export") from None
    except BaseException:
        _remove(written)
        raise
    if journal is not None:
        journal.record(OrphansExported(str(folder), [
            {"path": str(e.path), "table": e.table, "schema": e.schema, "rows": e.rows,
             "sha256": e.sha256} for e in written]))
    move(1.0, "exported")
    return written


def _free_name(folder: Path, stem: str) -> Path:
    """stem.csv, or stem-2.csv, ... when an export ran in the same second."""
    path, n = folder / f"{stem}.csv", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}.csv"
    return path


def _remove(written: list[ExportedCsv]) -> None:
    for item in written:
        item.path.unlink(missing_ok=True)


def _copy_out(cur: psycopg.Cursor[Any], rows: _TableRows, path: Path) -> ExportedCsv:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh, cur.copy(sql.SQL(
                "COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER true)").format(
                    rows.select())) as cp:
            for chunk in cp:
                fh.write(chunk)
                digest.update(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return ExportedCsv(path, rows.schema, rows.table, max(cur.rowcount, 0), digest.hexdigest())


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _exports_by_table(scan: OrphanScan, exported: Sequence[ExportedCsv | Path],
                      tables: list[tuple[str, str]]) -> dict[tuple[str, str], Path]:
    found: dict[tuple[str, str], Path] = {}
    for item in exported:
        if isinstance(item, ExportedCsv):
            found[(item.schema, item.table)] = item.path
            continue
        for schema, table in tables:
            if Path(item).name.startswith(f"orphans_{_slug(schema, table)}_2"):
                found[(schema, table)] = Path(item)
    lacking = [t for s, t in tables if not (found.get((s, t)) and found[(s, t)].is_file())]
    if lacking:
        raise OrphanRefused(f"no export of the orphan rows of {', '.join(lacking)}: export "
                            f"them first ("
                            + hint("enerlink-migrate orphans --export DIR", "Export CSV…")
                            + "), then delete")
    return found


def delete(settings: PgSettings, scan: OrphanScan, exported: Sequence[ExportedCsv | Path],
           confirm: str, *, lock_timeout_s: float = 2.0,
           statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S,
           report: Report | None = None, progress: Progress | None = None,
           cancel: threading.Event | None = None, journal: Journal | None = None) -> OrphanScan:
    """Delete exactly the exported orphan rows in one transaction, then scan again.

    Refused unless `confirm` is the database name and every table's rows were exported.
    The rows the DELETE takes are compared byte for byte with the export: if they changed
    since (new orphans, edited rows), everything is rolled back and the DBA exports again.
    """
    say, move = report or no_report, progress or no_progress
    if confirm != settings.dbname:
        raise OrphanRefused("deleting orphan rows needs the database name typed back"
                            + hint(f": --confirm {shlex.quote(settings.dbname)}",
                                   f" ({settings.dbname})"))
    tables = scan.dirty_tables()
    if not tables:
        say("info", "no orphan rows: nothing to delete")
        return scan
    files = _exports_by_table(scan, exported, list(tables))
    check_cancel(cancel, "orphan delete")
    deleted: dict[str, int] = {}
    with settings.connect() as conn, _cancel_watcher(conn, cancel):
        try:
            with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
                _set_local(cur, {**CSV_SETTINGS,
                                 "lock_timeout": f"{int(lock_timeout_s * 1000)}ms",
                                 "statement_timeout": f"{int(statement_timeout_s * 1000)}ms"})
                for n, rows in enumerate(_orphan_rows(cur, scan, say)):
                    check_cancel(cancel, "orphan delete")
                    move(0.8 * n / len(tables), f"deleting from {rows.label}")
                    _refuse_dependents(cur, rows)
                    deleted[rows.label] = _delete_matching(cur, rows,
                                                           files[(rows.schema, rows.table)])
                    say("step", f"deleted {deleted[rows.label]} orphan rows from {rows.label}")
        except psycopg.errors.QueryCanceled as exc:
            raise _timeout_error(exc, cancel, "orphan delete", statement_timeout_s) from None
        except psycopg.errors.LockNotAvailable as exc:
            raise OrphanError(f"orphan delete rolled back, nothing deleted: another session "
                              f"holds a lock on the rows or table ({exc}); wait for it or "
                              f"end it, then run the delete again") from None
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as exc:
            raise _schema_changed(exc, "orphan delete") from None
        except psycopg.errors.ForeignKeyViolation as exc:
            raise OrphanRefused(
                f"orphan delete rolled back, nothing deleted: {exc.diag.message_primary} "
                f"({exc.diag.message_detail}). Deal with those rows first (export and delete "
                f"them, or point them elsewhere), then delete again") from None
    say("info", "deleted " + ", ".join(f"{t}: {n} rows" for t, n in deleted.items())
        + "; scanning again")
    if journal is not None:
        journal.record(OrphansDeleted(settings.dbname, deleted,
                                      {f"{s}.{t}": str(p) for (s, t), p in files.items()}))
    again = _rescan(settings, schema=scan.schema, statement_timeout_s=statement_timeout_s,
                    report=say, cancel=cancel, journal=journal)
    again.deleted = deleted
    move(1.0, "deleted")
    return again


def _rescan(settings: PgSettings, **options: Any) -> OrphanScan:
    return scan(settings, **options)  # delete()'s parameter `scan` hides the function


def _delete_matching(cur: psycopg.Cursor[Any], rows: _TableRows, export_file: Path) -> int:
    """DELETE the rows and check they are the exported ones; raise (rolls back) if not."""
    digest = hashlib.sha256()
    with cur.copy(sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER true)").format(
            rows.delete_returning())) as cp:
        for chunk in cp:
            digest.update(chunk)
    count = max(cur.rowcount, 0)
    if digest.hexdigest() != _file_sha256(export_file):
        raise OrphanError(
            f"the orphan rows of {rows.label} are not the ones exported to {export_file} "
            f"({count} now): they changed since the export. Nothing was deleted; export "
            f"again, then delete")
    return count


def _refuse_dependents(cur: psycopg.Cursor[dict[str, Any]], rows: _TableRows) -> None:
    """Rows of other tables that a cascading FK would change along with the orphans."""
    cur.execute(queries(SQL_FILE)["foreign_keys_to"],
                {"schema": rows.schema, "table": rows.table})
    for fk in cur.fetchall():
        if fk["on_delete"] in ("a", "r"):
            continue  # the DELETE itself fails on those rows; that error is reported
        cur.execute(rows.dependents(fk))
        row = cur.fetchone()
        if row and row["n"]:
            action = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL",
                      "d": "SET DEFAULT"}.get(fk["on_delete"], fk["on_delete"])
            raise OrphanRefused(
                f"{row['n']} rows of {fk['table_name']} refer to orphan rows of "
                f"{rows.label} through {fk['name']} (ON DELETE {action}); deleting would "
                f"change them too. Nothing was deleted: deal with those rows of "
                f"{fk['table_name']} first, then delete again")


# ---------------------------------------------------------------------------------------
# The migration's guard


def needs_orphan_check(plan: Plan) -> bool:
    """Whether the plan adds or validates a foreign key (only then can orphans block it)."""
    return any(isinstance(op, AddForeignKey | ValidateForeignKey) for op in plan.ops)


def blocking_orphans(scan: OrphanScan, plan: Plan) -> list[str]:
    """Columns with orphans on which the plan must add or validate a foreign key."""
    added: dict[tuple[str, str], str] = {}  # (table, column after) → FK name
    validated: set[tuple[str, str]] = set()  # (table, FK name)
    for op in plan.ops:
        if isinstance(op, AddForeignKey):
            added[(op.on, op.column)] = op.name
        if isinstance(op, ValidateForeignKey):
            validated.add((op.on, op.name))
    messages = []
    fix = hint(f"enerlink-migrate orphans --export DIR --delete --confirm "
               f"{shlex.quote(scan.database)}",
               "the Orphans page: Export CSV…, then Delete orphans…")
    for c in scan.columns:
        if not c.count or len(c.columns) != 1:
            continue
        after = names.column_after(c.table, c.columns[0])
        table_after = names.NEW_TABLE if c.table == names.OLD_TABLE else c.table
        fk = added.get((table_after, after)) or added.get((table_after, c.columns[0]))
        existing = [n for n in (c.fk_name or "").split(", ") if (table_after, n) in validated]
        if fk is None and not existing:
            continue
        what = (f"add foreign key {fk} on it (VALIDATE would fail on them)" if fk
                else f"validate foreign key {existing[0]} on it")
        messages.append(f"{c.label}: {c.count} orphan rows; the migration must {what}; "
                        f"export and delete them first ({fix})")
    return messages


def backup_still_holds(settings: PgSettings, scan: OrphanScan) -> str | None:
    """What to tell a DBA about to delete orphans when a verified backup exists: it was
    taken before the deletion, so it still holds these rows, and restoring it brings them
    back (a restore re-creates their foreign keys NOT VALID). None without a backup."""
    latest = newest_verified_backup(settings, runs_for(settings))
    if latest is None or scan.clean:
        return None
    return (f"the backup {latest.get('path')} (verified {latest.get('ts')}) was taken before "
            f"this deletion and still holds these {scan.total:,} orphan rows: a restore of it "
            f"brings them back. Take a fresh backup after the deletion ("
            + hint("enerlink-migrate backup --out DIR", "the Backup page")
            + ") so the rollback point is clean.")
