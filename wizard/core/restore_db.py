"""The database side of a restore: who is connected, the database's own properties, free
space on the server, creating the new database like the live one, dropping it, the swap."""

from __future__ import annotations

import os
import re
import shlex
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from wizard.core.connection import PgSettings
from wizard.core.reporting import Report
from wizard.core.units import format_bytes

if TYPE_CHECKING:
    from wizard.core.restore import RestorePlan, RestoreResult

MAX_IDENTIFIER = 63  # bytes: PostgreSQL's NAMEDATALEN - 1


class SwapFailed(RuntimeError):
    """The names could not be swapped; nothing was renamed."""


class SwapCancelled(RuntimeError):
    """The operator cancelled while the swap waited to retry; nothing was renamed."""


class CopyFailed(RuntimeError):
    """A property of the live database could not be given to the new one."""


def db_name_with(base: str, suffix: str) -> str:
    """base + suffix within 63 bytes, cutting base at a character boundary if needed."""
    room = MAX_IDENTIFIER - len(suffix.encode())
    cut = base.encode()[:room].decode("utf-8", errors="ignore")
    return cut + suffix


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --- sessions ------------------------------------------------------------------------------

_CAN_SIGNAL = """
    (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
    OR (NOT coalesce((SELECT rolsuper FROM pg_roles WHERE oid = a.usesysid), false)
        AND (pg_has_role(current_user, a.usesysid, 'MEMBER')
             OR pg_has_role(current_user, 'pg_signal_backend', 'MEMBER')))"""
HIDDEN = "(hidden)"  # another role's session: pg_stat_activity shows its pid and user only
_OTHERS = ("a.datname = %s AND a.pid <> pg_backend_pid() AND a.usesysid IS NOT NULL "
           "AND coalesce(a.backend_type, 'client backend') = 'client backend'")
_SESSIONS_SQL = f"""
SELECT a.pid, coalesce(a.usename, '') AS user, coalesce(a.application_name, '') AS application,
       CASE WHEN a.state IS NULL THEN '(hidden)' ELSE coalesce(host(a.client_addr), 'local')
            || coalesce(' (' || a.client_hostname || ')', '') END AS client,
       coalesce(a.state, '(hidden)') AS state,
       coalesce(to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC',
                '(hidden)') AS since,
       coalesce({_CAN_SIGNAL}, false) AS can_terminate,
       coalesce((SELECT rolsuper FROM pg_roles WHERE oid = a.usesysid), false) AS superuser
  FROM pg_stat_activity a WHERE {_OTHERS} ORDER BY a.backend_start, a.pid"""


@dataclass(frozen=True)
class Session:
    """Another connection to the database a restore replaces."""

    pid: int
    user: str
    application: str
    client: str
    state: str
    since: str
    can_terminate: bool
    superuser: bool

    def describe(self) -> str:
        """'pid 123: app_user, psql, 10.0.0.5, idle, connected since ... UTC'; of another
        role's session only pid, user and application (pg_read_all_stats sees the rest)."""
        who = f"pid {self.pid}: {self.user}, {self.application or 'no application name'}"
        if self.state == HIDDEN:
            return f"{who} (client and state hidden from this role: pg_read_all_stats sees them)"
        return f"{who}, {self.client}, {self.state}, connected since {self.since}"

    def why_not(self, role: str) -> str:
        """Why `role` cannot terminate it (for a session with can_terminate False)."""
        if self.superuser:
            return f"it is a superuser's session and {role} is not a superuser"
        return (f"{role} is neither a member of {self.user} nor of pg_signal_backend")


def sessions_on(conn: psycopg.Connection[Any], dbname: str) -> list[Session]:
    """Client sessions on a database (not ours), and whether we may terminate each."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_SESSIONS_SQL, (dbname,))
        return [Session(int(r["pid"]), str(r["user"]), str(r["application"]),
                        str(r["client"]), str(r["state"]), str(r["since"]),
                        bool(r["can_terminate"]), bool(r["superuser"]))
                for r in cur.fetchall()]


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


# --- the database's own properties --------------------------------------------------------

# pg_dump's variable_is_guc_list_quote(): values stored as a list of quoted elements.
_LIST_QUOTE = frozenset({"local_preload_libraries", "search_path", "session_preload_libraries",
                         "shared_preload_libraries", "temp_tablespaces",
                         "unix_socket_directories"})
_PRIVILEGES = frozenset({"CREATE", "TEMPORARY", "CONNECT"})
_PROPS_SQL = """
SELECT pg_get_userbyid(d.datdba) AS owner, t.spcname AS tablespace,
       pg_tablespace_location(t.oid) AS location,
       pg_encoding_to_char(d.encoding) AS encoding, d.datcollate AS collate,
       d.datctype AS ctype, to_jsonb(d) AS raw, d.datconnlimit AS connlimit,
       shobj_description(d.oid, 'pg_database') AS comment,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(
                   CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END,
                   x.privilege_type, x.is_grantable)), '[]')
          FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) x) AS acl,
       d.datacl IS NULL AS default_acl,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(
                   CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END, c)),
                       '[]')
          FROM pg_db_role_setting s, unnest(s.setconfig) c
         WHERE s.setdatabase = d.oid) AS settings
  FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace
 WHERE d.datname = %s"""


@dataclass(frozen=True)
class DbProperties:
    """What belongs to the database itself, not to its contents: a dump without --create
    carries none of it, so the restore copies it from the live database and compares."""

    owner: str
    tablespace: str
    location: str  # pg_tablespace_location: '' for pg_default
    encoding: str
    collate: str
    ctype: str
    locale_provider: str  # c (libc), i (icu), b (builtin, 17)
    locale: str | None  # ICU or builtin locale (daticulocale, datlocale from 17)
    icu_rules: str | None
    connection_limit: int
    comment: str | None
    grants: tuple[tuple[str, str, bool], ...]  # (grantee or PUBLIC, privilege, grantable)
    default_grants: bool  # datacl is NULL: the built-in defaults
    settings: tuple[tuple[str | None, str], ...]  # (role or None for all, "name=value")

    def differences(self, other: DbProperties) -> list[str]:
        """How `other` differs, each as 'what: ours, theirs' (grants as a set)."""
        out = []
        for name in ("owner", "tablespace", "encoding", "collate", "ctype", "locale_provider",
                     "locale", "icu_rules", "connection_limit", "comment"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                out.append(f"{name.replace('_', ' ')}: {mine!r} live, {theirs!r} restored")
        for label, mine_t, theirs_t in (("privileges", self.grants, other.grants),
                                        ("settings", self.settings, other.settings)):
            mine_s, theirs_s = set(mine_t), set(theirs_t)
            if mine_s != theirs_s:
                out.append(f"{label}: only live {sorted(mine_s - theirs_s, key=str)}, only "
                           f"restored {sorted(theirs_s - mine_s, key=str)}")
        return out

    def lines(self) -> list[str]:
        grants = ("built-in defaults" if self.default_grants else
                  ", ".join(f"{p} to {g}{' (grantable)' if o else ''}"
                            for g, p, o in self.grants) or "none")
        settings = ", ".join(f"{c}{f' (role {r})' if r else ''}" for r, c in self.settings)
        return [f"owner {self.owner}, tablespace {self.tablespace}"
                + (f" ({self.location})" if self.location else ""),
                f"encoding {self.encoding}, collation {self.collate}, ctype {self.ctype}"
                + (f", locale {self.locale} ({self.locale_provider})" if self.locale else ""),
                f"connection limit {self.connection_limit}; comment "
                + (repr(self.comment) if self.comment is not None else "none"),
                f"privileges on the database: {grants}",
                f"settings: {settings or 'none'}"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def database_properties(conn: psycopg.Connection[Any], dbname: str) -> DbProperties | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_PROPS_SQL, (dbname,)).fetchone()
    if row is None:
        return None
    raw = dict(row["raw"])
    return DbProperties(
        str(row["owner"]), str(row["tablespace"]), str(row["location"] or ""),
        str(row["encoding"]), str(row["collate"]), str(row["ctype"]),
        str(raw.get("datlocprovider", "c")), raw.get("datlocale") or raw.get("daticulocale"),
        raw.get("daticurules"), int(row["connlimit"]), row["comment"],
        tuple(sorted((str(g), str(p), bool(o)) for g, p, o in row["acl"])),
        bool(row["default_acl"]),
        tuple(sorted(((r, str(c)) for r, c in row["settings"]), key=lambda s: (s[0] or "", s[1]))))


def guc_values(name: str, value: str) -> list[str]:
    """The elements to SET: a list-quoted setting (search_path) split as PostgreSQL's
    SplitGUCList does, anything else one value."""
    if name.lower() not in _LIST_QUOTE:
        return [value]
    out: list[str] = []
    for item in re.finditer(r'\s*(?:"((?:[^"]|"")*)"|([^,]*?))\s*(?:,|$)', value):
        quoted, plain = item.group(1), item.group(2)
        if quoted is not None:
            out.append(quoted.replace('""', '"'))
        elif plain:
            out.append(plain)
    return out


def settings_we_cannot_copy(props: DbProperties, role: str, superuser: bool,
                            createrole: bool) -> list[str]:
    """Per-role settings in the database (ALTER ROLE r IN DATABASE d SET) that `role`
    may not set: only a superuser sets them for others (CREATEROLE: non-superusers)."""
    if superuser:
        return []
    return [f"ALTER ROLE {quote_ident(r)} IN DATABASE ... SET {c}" for r, c in props.settings
            if r is not None and r != role and not createrole]


def create_database(conn: psycopg.Connection[Any], plan: RestorePlan) -> list[str]:
    """CREATE DATABASE like the live one (encoding, locale, tablespace, owner, limit), then
    what CREATE DATABASE cannot say: settings, comment, privileges."""
    p = plan.properties
    options = [sql.SQL("TEMPLATE {} ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
        sql.Identifier(plan.options.template), sql.Literal(p.encoding), sql.Literal(p.collate),
        sql.Literal(p.ctype))]
    if p.locale_provider == "i" and p.locale:
        options.append(sql.SQL("LOCALE_PROVIDER icu ICU_LOCALE {}").format(
            sql.Literal(p.locale)))
        if p.icu_rules:
            options.append(sql.SQL("ICU_RULES {}").format(sql.Literal(p.icu_rules)))
    elif p.locale_provider == "b" and p.locale:
        options.append(sql.SQL("LOCALE_PROVIDER builtin BUILTIN_LOCALE {}").format(
            sql.Literal(p.locale)))
    if p.tablespace != _template_tablespace(conn, plan.options.template):
        # Only when it differs: naming even pg_default needs CREATE on it, which PUBLIC lacks.
        options.append(sql.SQL("TABLESPACE {}").format(sql.Identifier(p.tablespace)))
    options.append(sql.SQL("OWNER {} CONNECTION LIMIT {}").format(
        sql.Identifier(plan.db_owner), sql.Literal(p.connection_limit)))
    conn.execute(sql.SQL("CREATE DATABASE {} ").format(sql.Identifier(plan.restore_db))
                 + sql.SQL(" ").join(options))
    return copy_database_level(conn, plan.restore_db, p)


def _template_tablespace(conn: psycopg.Connection[Any], template: str) -> str | None:
    row = conn.execute("SELECT t.spcname FROM pg_database d JOIN pg_tablespace t ON "
                       "t.oid = d.dattablespace WHERE d.datname = %s", (template,)).fetchone()
    return str(row[0]) if row else None


def copy_database_level(conn: psycopg.Connection[Any], new_db: str,
                        p: DbProperties) -> list[str]:
    """Settings, comment and privileges of the live database onto the new one."""
    new = sql.Identifier(new_db)
    notes: list[str] = []
    for role, setting in p.settings:
        key, _, value = setting.partition("=")
        values = sql.SQL(", ").join(sql.Literal(v) for v in guc_values(key, value))
        target = (sql.SQL("DATABASE {}").format(new) if role is None else
                  sql.SQL("ROLE {} IN DATABASE {}").format(sql.Identifier(role), new))
        try:
            conn.execute(sql.SQL("ALTER {} SET {} TO {}").format(
                target, sql.Identifier(key), values))
        except psycopg.Error as exc:
            raise CopyFailed(f"cannot give the new database the setting {setting}"
                             + (f" of role {role}" if role else "")
                             + f" ({str(exc).strip()}): run the restore as a superuser") from None
    if p.comment is not None:
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(new, sql.Literal(p.comment)))
    if not p.default_grants:
        _copy_grants(conn, new, p, notes)
    return notes


def _copy_grants(conn: psycopg.Connection[Any], new: sql.Identifier, p: DbProperties,
                 notes: list[str]) -> None:
    conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC, {}").format(
        new, sql.Identifier(p.owner)))
    for grantee, privilege, grantable in p.grants:
        if privilege not in _PRIVILEGES:
            notes.append(f"privilege {privilege} on the database (to {grantee}) is not one "
                         "this tool knows; grant it by hand after the swap")
            continue
        conn.execute(sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
            sql.SQL(privilege), new,
            sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee),
            sql.SQL(" WITH GRANT OPTION" if grantable else "")))


# --- free space on the server -------------------------------------------------------------

@dataclass
class Place:
    """A filesystem on the server the restore writes to, what it needs there, what is free."""

    what: str  # "tablespace ts (/path)", "data directory /path (pg_default and WAL)"
    path: str | None
    needed: int
    free: int | None = None
    source: str = ""  # how `free` was read, or why it could not be
    device: str | None = None  # the same device for two places: their needs add up

    @property
    def fits(self) -> bool | None:
        return None if self.free is None else self.free >= self.needed

    def describe(self) -> str:
        head = f"{self.what}: needs {format_bytes(self.needed)}"
        if self.free is None:
            return f"{head}; its free space is unknown: {self.source}"
        return f"{head}, {format_bytes(self.free)} free ({self.source})"


@dataclass
class SpaceCheck:
    """The free-space check before a restore: the estimate and each place it needs room."""

    estimate: int
    estimate_from: str
    wal_headroom: int
    places: list[Place] = field(default_factory=list)

    @property
    def short(self) -> list[Place]:
        return [p for p in self.places if p.fits is False]

    @property
    def unknown(self) -> list[Place]:
        return [p for p in self.places if p.fits is None]

    def lines(self) -> list[str]:
        return [f"free space: the restored copy needs about {format_bytes(self.estimate)} "
                f"({self.estimate_from}) plus {format_bytes(self.wal_headroom)} of WAL "
                "headroom", *(f"  {p.describe()}" for p in self.places)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_WAL_SQL = """
SELECT pg_size_bytes(current_setting('max_wal_size')),
       CASE WHEN current_setting('server_version_num')::int >= 130000
            THEN pg_size_bytes(current_setting('wal_keep_size'))
            ELSE current_setting('wal_keep_segments')::bigint
                 * pg_size_bytes(current_setting('wal_segment_size')) END"""


def wal_headroom(conn: psycopg.Connection[Any], estimate: int) -> int:
    """WAL the restore may keep on the data directory's disk: it writes about as much WAL
    as data, of which checkpoints keep up to max_wal_size, plus wal_keep_size."""
    row = conn.execute(_WAL_SQL).fetchone()
    max_wal, keep = (int(row[0]), int(row[1])) if row else (0, 0)
    return min(estimate, max_wal) + keep


def free_bytes(path: str) -> tuple[int, str]:
    """Free bytes for an unprivileged writer (the postgres user) and the device id."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize, str(os.stat(path).st_dev)


def local_backend(conn: psycopg.Connection[Any]) -> int | None:
    """The backend's pid when the server runs on this host: its process is here and its
    title names our end of the connection (not a tunnel's or a container proxy's)."""
    row = conn.execute("SELECT pg_backend_pid(), inet_client_port()").fetchone()
    if row is None:
        return None
    pid, client_port = int(row[0]), row[1]
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
        with socket.socket(fileno=os.dup(conn.pgconn.socket)) as ours:
            family, name = ours.family, ours.getsockname()
    except OSError:
        return None
    if not title.startswith("postgres"):
        return None
    if client_port is None:
        return pid if family == socket.AF_UNIX else None
    return pid if isinstance(name, tuple) and f"({name[1]})" in title else None


def data_directory(conn: psycopg.Connection[Any], pid: int | None) -> tuple[str | None, str]:
    """The server's data directory and where it was read, or None and why not."""
    row = conn.execute("SELECT setting FROM pg_settings WHERE name = 'data_directory'"
                       ).fetchone()
    if row is not None:
        return str(row[0]), "data_directory setting"
    if pid is not None:
        try:
            return os.readlink(f"/proc/{pid}/cwd"), "the server process's folder"
        except OSError:
            pass
    return None, ("the data directory is hidden from this role (a superuser or a member "
                  "of pg_read_all_settings sees it)")


def _df_on_server(conn: psycopg.Connection[Any], path: str) -> tuple[int, str]:
    """Free bytes as the server's own `df` reports them (COPY FROM PROGRAM, which needs
    superuser or pg_execute_server_program); the mount point stands for the device."""
    command = f"df -Pk {shlex.quote(path)}"
    with conn.transaction():
        conn.execute("CREATE TEMP TABLE enerlink_df (line text) ON COMMIT DROP")
        conn.execute(sql.SQL("COPY enerlink_df FROM PROGRAM {}").format(sql.Literal(command)))
        lines = [str(r[0]) for r in conn.execute("SELECT line FROM enerlink_df").fetchall()]
    fields = lines[-1].split() if len(lines) >= 2 else []
    if len(fields) < 6 or not fields[3].isdigit():
        raise OSError(f"unexpected df output: {' | '.join(lines)[:200]}")
    return int(fields[3]) * 1024, "df:" + fields[-1]


def _may_run_programs(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT rolsuper OR pg_has_role(current_user, "
                       "'pg_execute_server_program', 'MEMBER') FROM pg_roles "
                       "WHERE rolname = current_user").fetchone()
    return bool(row and row[0])


def _read_place(conn: psycopg.Connection[Any], place: Place, local: bool,
                server_df: bool, report: Report) -> None:
    if place.path is None:
        return
    if local:
        try:
            place.free, place.device = free_bytes(place.path)
            place.source = "statvfs here, on the server's host"
            return
        except OSError as exc:
            place.source = f"statvfs {place.path} on this host: {exc.strerror or exc}"
    if server_df:
        report("info", f"asking the server for the free space in {place.path}: "
                       f"df -Pk (COPY FROM PROGRAM)")
        try:
            place.free, place.device = _df_on_server(conn, place.path)
            place.source = "df on the server"
            return
        except (psycopg.Error, OSError) as exc:
            place.source = f"df on the server failed: {str(exc).strip()}"
            return
    if not place.source:
        place.source = ("the server is not on this host and this role may not run a "
                        "program on it (superuser or pg_execute_server_program can)")


def _merge_same_device(places: list[Place]) -> list[Place]:
    """Two places on one filesystem: one need, the sum of both."""
    merged: list[Place] = []
    for place in places:
        twin = next((m for m in merged if place.device and m.device == place.device), None)
        if twin is None:
            merged.append(place)
        else:
            twin.needed += place.needed
            twin.what += f" and {place.what} (the same filesystem)"
    return merged


def check_space(conn: psycopg.Connection[Any], props: DbProperties, estimate: int,
                estimate_from: str, report: Report) -> SpaceCheck:
    """Where the new copy goes (the live database's tablespace) and where its WAL goes
    (the data directory), what each needs and what is free there."""
    wal = wal_headroom(conn, estimate)
    check = SpaceCheck(estimate, estimate_from, wal)
    pid = local_backend(conn)
    datadir, found = data_directory(conn, pid)
    wal_dir = None
    if datadir is not None:
        wal_dir = os.path.join(datadir, "pg_wal")
        if pid is not None and not os.path.isdir(wal_dir):
            wal_dir = datadir  # pg_wal unreadable here: its parent's filesystem
    where = f"data directory {datadir}" if datadir else "data directory"
    if props.location:
        places = [Place(f"tablespace {props.tablespace} ({props.location})", props.location,
                        estimate), Place(f"{where} (WAL)", wal_dir, wal)]
    else:
        places = [Place(f"{where} (tablespace {props.tablespace} and WAL)", wal_dir,
                        estimate + wal)]
    server_df = pid is None and _may_run_programs(conn)
    for place in places:
        if place.path is None:
            place.source = found
        _read_place(conn, place, pid is not None, server_df, report)
    check.places = _merge_same_device(places)
    return check


# --- what stops a restore before it starts ---------------------------------------------

def sessions_refusal(live: str, sessions: list[Session]) -> str:
    return (f"{len(sessions)} session(s) are connected to {live} and would be terminated at "
            "the swap: " + "; ".join(s.describe() for s in sessions)
            + ". Stop the application first, or agree to terminate them (CLI "
            "--terminate-sessions; the wizard asks). Nothing was changed")


def stuck_refusal(live: str, stuck: list[Session], role: str) -> str:
    return ("; ".join(f"session {s.describe()} on {live} cannot be terminated by {role}: "
                      f"{s.why_not(role)}" for s in stuck)
            + f". The swap could not happen while it is connected: ask its user to "
            f"disconnect from {live}, or have a superuser run SELECT pg_terminate_backend("
            f"{stuck[0].pid}), then run the restore again. Nothing was changed")


def space_unknown_refusal(space: SpaceCheck) -> str:
    places = "; ".join(p.describe() for p in space.unknown)
    return (f"the free space on the server cannot be read: {places}. Check it on the "
            f"server (df) yourself: the restored copy needs about "
            f"{format_bytes(space.estimate)} plus {format_bytes(space.wal_headroom)} of WAL; "
            "then agree to go on without the check (CLI --accept-unknown-free-space; the "
            "wizard asks). Nothing was changed")


def space_short_refusal(live: str, space: SpaceCheck) -> str:
    return ("not enough free space on the server for the restored copy of " + live + ": "
            + "; ".join(f"{p.what} needs {format_bytes(p.needed)} but has "
                        f"{format_bytes(p.free or 0)} free ({p.source})" for p in space.short)
            + f" (the copy: about {format_bytes(space.estimate)}, {space.estimate_from}; WAL "
            f"headroom {format_bytes(space.wal_headroom)}). A full disk there would stop "
            "PostgreSQL for every database on the server. Free space there, or restore "
            "where there is room, then run again. Nothing was changed")



# --- drop, swap ---------------------------------------------------------------------------

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


def blocked_swap(plan: RestorePlan, left: list[Session], role: str) -> str | None:
    """Why the swap cannot succeed with these sessions on the live database, or None."""
    stuck = [s for s in left if not s.can_terminate]
    if stuck:
        return ("; ".join(f"session {s.describe()} cannot be terminated: {s.why_not(role)}"
                          for s in stuck)
                + f". Ask its user to disconnect from {plan.live_db} (or have a superuser "
                f"run SELECT pg_terminate_backend(pid)), then run the restore again")
    if left and not plan.options.terminate_sessions:
        return (f"{len(left)} session(s) connected to {plan.live_db} during the restore and "
                "terminating sessions was not agreed to: "
                + "; ".join(s.describe() for s in left)
                + ". Stop the application, or agree to terminate them (CLI "
                "--terminate-sessions), then run the restore again")
    return None


def swap(plan: RestorePlan, report: Report, cancel: threading.Event | None,
         result: RestoreResult) -> None:
    """Terminate the live database's sessions (when agreed to) and swap the names in one
    transaction. A session that cannot go stops it at once, not after the retries."""
    live, new, old = (sql.Identifier(n) for n in (plan.live_db, plan.restore_db,
                                                   plan.before_db))
    # pg_terminate_backend(pid, timeout) waits for the session to end; it exists from 14.
    wait = ", 5000" if plan.server_major >= 14 else ""
    terminate = (f"SELECT a.pid, a.usename, a.application_name, pg_terminate_backend(a.pid"
                 f"{wait}) FROM pg_stat_activity a WHERE {_OTHERS} AND "
                 f"coalesce({_CAN_SIGNAL}, false)")
    maint = plan.settings.with_dbname(plan.options.maintenance_db)
    with maint.connect() as conn:
        role = role_of(conn)[0]
        for attempt in range(1, plan.options.swap_retries + 1):
            result.swap_attempts = attempt
            try:
                with conn.transaction():
                    rows = (conn.execute(terminate, (plan.live_db,)).fetchall()
                            if plan.options.terminate_sessions else [])
                    blocked = blocked_swap(plan, sessions_on(conn, plan.live_db), role)
                    if blocked:
                        raise SwapFailed(f"could not swap: {blocked}")
                    conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(live, old))
                    conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(new, live))
                result.terminated += [{"pid": r[0], "user": r[1], "application": r[2]}
                                      for r in rows]
                for r in rows:
                    report("info", f"terminated session {r[0]} of {r[1]} ({r[2] or '-'})")
                return
            except psycopg.errors.ObjectInUse:
                left = sessions_on(conn, plan.live_db)
                who = ", ".join(s.describe() for s in left) or "sessions that connected meanwhile"
                report("warn", f"swap attempt {attempt}: {plan.live_db} still in use by {who}")
                if attempt == plan.options.swap_retries:
                    raise SwapFailed(
                        f"could not swap: {plan.live_db} stays in use by {who} after "
                        f"{attempt} attempts; stop the application and run the restore "
                        "again") from None
                if cancel is not None and cancel.wait(0.2 * attempt):
                    raise SwapCancelled("restore cancelled by the operator during the "
                                        "swap") from None
