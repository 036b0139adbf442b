"""Foreign keys the restored rows violate: re-created NOT VALID, their violating rows counted.

A backup holds whatever rows the database held, including orphans written while FK
triggers were off (session_replication_role = replica). pg_restore loads the data, then its
ADD CONSTRAINT ... FOREIGN KEY fails on them. When those failures are pg_restore's only
errors, the copy holds exactly the backup's rows and lacks only those keys: we take each
key's definition from the archive itself (pg_restore -L), add it NOT VALID (new rows are
checked, old ones are not), and count and sample the rows that violate it — the orphans
the scan finds.
"""

from __future__ import annotations

import re
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from wizard.core.connection import PgSettings
from wizard.core.pgenv import libpq_env
from wizard.core.procs import run_program

# The server quotes the name without doubling the quotes in it: the last quote ends it.
_VIOLATES = re.compile(r'violates foreign key constraint "(.+)"\s*$')
# "pg_restore: from TOC entry 3467; 2606 16400 FK CONSTRAINT wallet FK_62a... postgres"
_TOC = re.compile(r"from TOC entry (\d+); \d+ \d+ FK CONSTRAINT (\S+) (.+?) \S+\s*$")
_ADD_FK = re.compile(
    r"(ALTER TABLE (?:ONLY )?[^;]+?\s+ADD CONSTRAINT [^;]+? FOREIGN KEY [^;]+?);")
# What the processes of pg_restore --jobs put before a message, in separate writes.
_PREFIXES = re.compile(r"^(?:\s*(?:pg_restore:|error:|warning:))*\s*")
# pg_restore's --verbose lines: never an error, but one may carry a stray "error: " prefix.
_INFO = ("launching item ", "finished item ", "processing item ", "processing missed item ",
         "processing data for table ", "creating ", "executing ", "entering ",
         "finished main parallel loop", "while PROCESSING TOC:", "connecting to database ",
         "setting owner and privileges for ", "skipping item ", "transferring dependency ",
         "reducing dependencies for ", "errors ignored on restore:")
# Errors a restore as a non-superuser always has and that lose nothing: the comment on an
# extension a superuser created in the template (PostgreSQL 12, or untrusted extensions).
_HARMLESS_ENTRY = re.compile(r"from TOC entry \d+; \d+ \d+ COMMENT (?:- )?EXTENSION ")
_HARMLESS_ERROR = re.compile(r"must be owner of extension ")
SAMPLE_ROWS = 5


def harmless(line: str) -> bool:
    """An error line of pg_restore that loses nothing (COMMENT ON EXTENSION by a role
    that does not own the extension)."""
    return bool(_HARMLESS_ENTRY.search(line) or _HARMLESS_ERROR.search(line))


class FkRepairFailed(RuntimeError):
    """The violated keys could not be re-created NOT VALID; the message says why."""


@dataclass
class NotValidKey:
    """A foreign key of the backup that the restored rows violate, re-created NOT VALID."""

    table: str
    name: str
    references: str = ""
    columns: list[str] = field(default_factory=list)
    violating_rows: int = 0
    sample: list[list[Any]] = field(default_factory=list)

    @property
    def validate_sql(self) -> str:
        return (f"ALTER TABLE {_qualified(self.table)} VALIDATE CONSTRAINT "
                f"{_quote(self.name)};")

    def describe(self) -> str:
        keys = ", ".join("(" + ", ".join(str(v) for v in row) + ")" for row in self.sample)
        more = (f"; e.g. {', '.join(self.columns)} = {keys}" if keys else "")
        return (f"{self.name} on {self.table} ({', '.join(self.columns)} → {self.references}): "
                f"{self.violating_rows} row(s) of the backup violate it{more}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "validate_sql": self.validate_sql}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _qualified(table: str) -> str:
    schema, _, rel = table.rpartition(".")
    return f"{_quote(schema or 'public')}.{_quote(rel)}"


def violated_keys(errors: list[str], ignored: int) -> dict[str, tuple[str, str]] | None:
    """{TOC id: (table, constraint)} when every entry pg_restore reported an error in is a
    foreign key, and every server error it printed is a foreign key the rows violate
    (errors: its error lines, ignored: its "errors ignored" count); None when any other
    error is among them.

    The entries are what counts, read from the text of the lines, not from their prefixes
    or the count. pg_restore --jobs runs several processes on one stderr, each writing
    "pg_restore:", "error: " and the message in separate writes: under load a prefix lands
    on another process's line ("pg_restore:pg_restore:  error: launching item ...") and a
    violation's text on a line of its own, which may not be among `errors`. And it counts
    a failed item more than once (the worker's errors, then the item's status): two
    violations say "errors ignored on restore: 4". recreate_not_valid then checks that
    each key's rows do violate it."""
    entries: dict[str, tuple[str, str]] = {}
    violations: set[str] = set()
    for line in errors:
        text = _PREFIXES.sub("", line)
        if harmless(text):
            continue  # COMMENT ON EXTENSION by a role that does not own it: loses nothing
        if text.startswith("from TOC entry"):
            if (m := _TOC.search(text)) is None:
                return None  # an error in an entry that is not a foreign key
            entries[m.group(1)] = (m.group(2), m.group(3))
        elif (m := _VIOLATES.search(text)) is not None:
            violations.add(m.group(1))
        elif text.startswith("Command was:") or text.startswith(_INFO):
            continue  # the query of an error above; or an info line with a stray prefix
        else:
            return None  # any other error
    if not entries or ignored < len(entries):
        return None
    if not violations <= {name for _table, name in entries.values()}:
        return None  # a violation pg_restore did not tie to a TOC entry we can re-run
    return entries


def not_valid_script(pg_restore: Path, archive: str, settings: PgSettings, toc: list[str],
                     cancel: threading.Event | None = None) -> str:
    """The archive's own ADD CONSTRAINT statements for these TOC entries, each NOT VALID:
    those statements only, not the rest of pg_restore's script (its SET lines, and the
    psql meta-commands \\restrict/\\unrestrict of 17.6, 16.10, 15.14, 14.19, 13.22 and later,
    which the server cannot run)."""
    listed: list[str] = []
    with libpq_env(settings) as env:
        outcome = run_program([str(pg_restore), "--list", archive], env=env, cancel=cancel,
                              on_line=lambda s, ln: listed.append(ln) if s == "stdout"
                              else None)
        if not outcome.ok:
            raise FkRepairFailed(f"pg_restore --list {archive} failed: {outcome.describe()}")
        wanted = {t.strip() for t in toc}
        chosen = [ln for ln in listed if ln.split(";", 1)[0].strip() in wanted]
        with tempfile.NamedTemporaryFile("w", suffix=".list", delete=False) as fh:
            fh.write("\n".join(chosen) + "\n")
            list_path = fh.name
        out: list[str] = []
        try:
            outcome = run_program([str(pg_restore), "--use-list", list_path, "--file", "-",
                                   archive], env=env, cancel=cancel,
                                  on_line=lambda s, ln: out.append(ln) if s == "stdout"
                                  else None)
        finally:
            Path(list_path).unlink(missing_ok=True)
    if not outcome.ok:
        raise FkRepairFailed(f"pg_restore could not print the keys' definitions from "
                             f"{archive}: {outcome.describe()}")
    found = _ADD_FK.findall("\n".join(out))
    if len(found) != len(wanted):
        raise FkRepairFailed(f"the archive's definitions of {len(wanted)} foreign key(s) "
                             f"could not be read (found {len(found)})")
    return "\n".join(f"{statement} NOT VALID;" for statement in found)


_KEY_SQL = """
SELECT n.nspname || '.' || c.relname, rn.nspname || '.' || r.relname,
       array(SELECT a.attname::text FROM unnest(x.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = x.conrelid AND a.attnum = k.n ORDER BY k.i),
       array(SELECT a.attname::text FROM unnest(x.confkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = x.confrelid AND a.attnum = k.n ORDER BY k.i),
       x.convalidated
  FROM pg_constraint x JOIN pg_class c ON c.oid = x.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_class r ON r.oid = x.confrelid JOIN pg_namespace rn ON rn.oid = r.relnamespace
 WHERE x.contype = 'f' AND x.conname = %s AND c.relname = %s
"""


def _ident(qualified: str) -> sql.Identifier:
    schema, _, rel = qualified.partition(".")
    return sql.Identifier(schema, rel)


def violations(conn: psycopg.Connection[Any], table: str, name: str) -> NotValidKey:
    """Count and sample the rows of `table` that violate key `name` (MATCH SIMPLE: a row
    with a null key column never does)."""
    rel = table.rpartition(".")[2]
    row = conn.execute(_KEY_SQL, (name, rel)).fetchone()
    if row is None:
        raise FkRepairFailed(f"foreign key {name} on {table} is not in the restored copy")
    child, parent, cols, refs, _valid = row
    key = NotValidKey(table=str(child), name=name, references=f"{parent}({', '.join(refs)})",
                      columns=list(cols))
    not_null = sql.SQL(" AND ").join(sql.SQL("c.{} IS NOT NULL").format(sql.Identifier(c))
                                     for c in cols)
    match = sql.SQL(" AND ").join(sql.SQL("p.{} = c.{}").format(sql.Identifier(r),
                                                                sql.Identifier(c))
                                  for c, r in zip(cols, refs, strict=True))
    where = sql.SQL("{} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})").format(
        not_null, _ident(str(parent)), match)
    count = conn.execute(sql.SQL("SELECT count(*) FROM {} c WHERE {}").format(
        _ident(str(child)), where)).fetchone()
    key.violating_rows = int(count[0]) if count else 0
    picked = sql.SQL(", ").join(sql.SQL("c.{}").format(sql.Identifier(c)) for c in cols)
    key.sample = [[str(v) for v in r] for r in conn.execute(
        sql.SQL("SELECT DISTINCT {} FROM {} c WHERE {} LIMIT {}").format(
            picked, _ident(str(child)), where, sql.Literal(SAMPLE_ROWS))).fetchall()]
    return key


def recreate_not_valid(settings: PgSettings, pg_restore: Path, archive: str,
                       keys: dict[str, tuple[str, str]],
                       cancel: threading.Event | None = None) -> list[NotValidKey]:
    """Add the violated keys NOT VALID to the restored copy (`settings` names it) and count
    and sample their violating rows, in one transaction. A key that no row violates failed
    for another reason: FkRepairFailed, and none of them is added."""
    script = not_valid_script(pg_restore, archive, settings, list(keys), cancel)
    with settings.connect() as conn, conn.transaction():
        try:
            conn.execute(script.encode())
        except psycopg.Error as exc:
            raise FkRepairFailed(f"re-creating {len(keys)} foreign key(s) NOT VALID failed: "
                                 f"{str(exc).strip()}") from None
        found = [violations(conn, table, name) for table, name in keys.values()]
        clean = [k.name for k in found if not k.violating_rows]
        if clean:  # rolls the keys back
            raise FkRepairFailed(f"pg_restore failed to add foreign key(s) "
                                 f"{', '.join(clean)}, yet no row violates them: it failed "
                                 "for another reason (see pg_restore's errors)")
    return sorted(found, key=lambda k: (k.table, k.name))
