"""What the backup holds, read in the very snapshot pg_dump dumps.

A session exports its snapshot (pg_export_snapshot) and pg_dump runs with --snapshot: the
dump and this session then see exactly the same rows. While pg_dump writes, the session
counts every table's rows and takes the schema fingerprint; the proof of the backup later
compares a restored copy with these, not with a live database that has moved on since.
"""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import datetime, timezone
from typing import Any

import psycopg
from psycopg import sql

from wizard.core.connection import PgSettings
from wizard.core.fingerprint import schema_fingerprint
from wizard.core.reporting import Report

# The tables whose rows pg_dump writes: ordinary tables outside the system schemas that no
# extension owns (partitioned parents hold no rows of their own: their partitions count).
TABLES_SQL = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                   AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 1, 2
"""


def table_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """{schema.table: exact row count} of every table a dump holds rows of."""
    counts: dict[str, int] = {}
    for schema, table in conn.execute(TABLES_SQL).fetchall():
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
            sql.Identifier(schema, table))).fetchone()
        counts[f"{schema}.{table}"] = int(row[0]) if row else 0
    return counts


def fingerprint_digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


class DumpSnapshot:
    """`with DumpSnapshot(settings, report) as snap:` exports a snapshot (snap.id, None when
    the server would not) for pg_dump --snapshot; snap.count() then reads the rows and the
    fingerprint in it on a thread while pg_dump runs; snap.result() waits and returns them."""

    def __init__(self, settings: PgSettings, report: Report) -> None:
        self.settings = settings
        self.report = report
        self.id: str | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._thread: threading.Thread | None = None
        self._result: dict[str, Any] | None = None
        self.error: str | None = None
        self.taken_at: str | None = None

    def __enter__(self) -> DumpSnapshot:
        try:
            conn = self.settings.connect(keepalives=True)
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = conn.execute("SELECT pg_export_snapshot()").fetchone()
            self.id = str(row[0]) if row else None
            # When pg_dump's view of the data was fixed: a restore of this backup loses what
            # was written after it (this machine's clock, as the window's stop time is).
            self.taken_at = datetime.now(timezone.utc).isoformat()
            self._conn = conn
        except psycopg.Error as exc:
            self.error = str(exc).strip()
            self.report("warn", f"could not export a snapshot for pg_dump ({self.error}): "
                                "the backup's row counts will not be recorded, so its proof "
                                "compares with the live database instead")
        return self

    def count(self) -> None:
        """Start counting in the exported snapshot (after pg_dump has started)."""
        if self._conn is None:
            return
        self._thread = threading.Thread(target=self._count, name="dump-snapshot-counts",
                                        daemon=True)
        self._thread.start()

    def _count(self) -> None:
        assert self._conn is not None
        t0 = time.perf_counter()
        try:
            counts = table_counts(self._conn)
            lines = schema_fingerprint(self._conn)
        except psycopg.Error as exc:
            self.error = str(exc).strip()
            return
        self._result = {"snapshot": self.id, "taken_at": self.taken_at, "counts": counts,
                        "fingerprint": lines,
                        "fingerprint_sha256": fingerprint_digest(lines),
                        "count_s": round(time.perf_counter() - t0, 3)}

    def result(self) -> dict[str, Any] | None:
        """The counts and fingerprint in pg_dump's snapshot, or None (the reason in error)."""
        if self._thread is not None:
            self._thread.join()
        if self._result is None and self.error and self._conn is not None:
            self.report("warn", f"the row counts in pg_dump's snapshot could not be read "
                                f"({self.error}): the proof compares with the live database")
        return self._result

    def __exit__(self, *_exc: object) -> None:
        if self._conn is None:
            return
        if self._thread is not None and self._thread.is_alive():
            self._conn.cancel_safe()
            self._thread.join()
        self._conn.close()
