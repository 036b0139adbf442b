"""Runs a plan: one short transaction of catalog work, retried on lock timeouts."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from wizard.core import names
from wizard.core.catalog import catalog_facts
from wizard.core.commit_outcome import (
    COMMITTED,
    NOT_COMMITTED,
    Session,
    resolve_commit,
    session_of,
)
from wizard.core.connection import PgSettings
from wizard.core.discovery import Discovery, DiscoveryError, discover
from wizard.core.events import (
    AttemptStarted,
    CommitResolved,
    CommitUnknown,
    Event,
    LockTimedOut,
    LogLine,
    RunFinished,
    StepDone,
)
from wizard.core.hints import hint
from wizard.core.journal import Journal
from wizard.core.ops import Operation
from wizard.core.plan import UP, Plan
from wizard.core.reporting import Cancelled, Report
from wizard.core.snapshot import (
    CannotPredict,
    digest_of,
    digest_query,
    predict,
    rows_from_snapshot,
    snapshot_query,
)
from wizard.core.verify import (
    FAIL,
    Check,
    Expectations,
    Sent,
    bound,
    catalog_checks,
    count_rows,
    down_checks,
    evaluate_catalog,
    migration_rows_query,
    receive,
    row_count_check,
    send,
    text_reference_check,
)

EventSink = Callable[[Event], None]  # structured progress for a live view (GUI thread-safe)

# One key for every enerlink-migrate run on a database: two runs cannot overlap.
ADVISORY_KEY = 0x454E45524C4E4B  # "ENERLNK"


BLOCKERS_SQL = """
SELECT DISTINCT a.pid,
       coalesce(nullif(a.application_name, ''), a.backend_type) AS application_name,
       coalesce(a.client_addr::text, 'local') AS client,
       a.state, round(extract(epoch FROM now() - a.xact_start)::numeric, 1) AS xact_age_s,
       left(a.query, 200) AS query, l.relation::regclass::text AS relation, l.mode
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.granted AND l.pid <> pg_backend_pid()
   AND (l.relation = ANY(%(oids)s::oid[]) OR l.relation = (
        SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = %(schema)s AND c.relname = 'migrations'))
 ORDER BY a.pid
"""


RunCancelled = Cancelled


class PlanStale(RuntimeError):
    """The catalog changed since the plan was shown: the approved plan would not fit."""


@dataclass
class RunOptions:
    lock_timeout_s: float = 2.0
    statement_timeout_s: float = 30.0
    validate_timeout_s: float = 0.0  # 0 = no limit for VALIDATE CONSTRAINT (it scans)
    retries: int = 3
    backoff_s: float = 1.0
    rehearse: bool = False
    # The guide's check is the prosumer/user count. Counting every affected table exactly
    # costs two full scans of each (about 2 s at 1M users) and a rename cannot change them.
    count_all_tables: bool = False
    # A connection lost during COMMIT: how long to keep asking the server what happened
    # (a crashed server needs its restart and crash recovery).
    reconnect_s: float = 120.0


@dataclass
class StepResult:
    index: int
    title: str
    sql: str
    ms: float
    status: str = "done"
    op: str = ""  # Operation.op


@dataclass
class RunResult:
    ok: bool
    rehearsal: bool
    direction: str
    state_before: str
    state_after: str = ""
    attempts: int = 0
    steps: list[StepResult] = field(default_factory=list)
    blocked_ms: float | None = None
    total_s: float = 0.0
    counting_s: float = 0.0  # exact row counts before and after: full scans, outside locks
    counts_before: dict[str, int] = field(default_factory=dict)
    counts_after: dict[str, int] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    lock_waits: list[list[dict[str, Any]]] = field(default_factory=list)
    failed_step: str | None = None
    failed_index: int | None = None  # the step (1-based) that failed, when one did
    error: str | None = None
    # "committed" once the server confirmed the COMMIT (its answer, or after a lost
    # connection its catalog); "not committed" or "unknown" when the connection was lost
    # during COMMIT and the server showed that, or could not be asked; "" without COMMIT.
    commit: str = ""
    commit_lost: bool = False  # the connection went during COMMIT: commit_evidence says how
    commit_evidence: str = ""   # the outcome was established
    # The catalog as the commit left it, for the caller's next plan; not journaled.
    discovery_after: Discovery | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["discovery_after"]
        return data


def _noop(_level: str, _msg: str) -> None:
    return None


def privilege_problems(conn: psycopg.Connection[Any], d: Discovery, plan: Plan) -> list[str]:
    """What the connected role lacks for this plan (Operation.privilege), checked before
    anything changes."""
    problems = set()
    # Operations name the prosumer/user table as it is when they run; the check needs it as
    # it is now.
    as_now = dict.fromkeys((names.OLD_TABLE, names.NEW_TABLE), d.target_table)
    needs = {op.privilege() for op in plan.ops}
    with conn.cursor() as cur:
        for need in sorted(needs, key=lambda n: (n.kind, n.target)):
            problem = _lacks(cur, d, need.kind, as_now.get(need.target) or need.target)
            if problem:
                problems.add(problem)
    conn.rollback()
    return sorted(problems)


def _lacks(cur: psycopg.Cursor[Any], d: Discovery, kind: str, target: str) -> str | None:
    """Why the connected role may not do `kind` on `target`, or None when it may."""
    if kind == "owner":
        info = d.tables.get(target)
        if info is None or info.can_alter:
            return None
        return (f'role {d.current_user} cannot ALTER table {d.schema}.{info.name} (owner: '
                f'{info.owner}); renaming needs the owner or a member of its role: connect '
                f'as {info.owner}, or run GRANT {info.owner} TO {d.current_user}')
    if kind in ("insert", "delete"):
        if not d.migrations_table:
            return None  # the plan creates it, and its creator may write to it
        cur.execute("SELECT has_table_privilege(%s, %s)", (f"{d.schema}.{target}", kind.upper()))
        row = cur.fetchone()
        if row and row[0]:
            return None
        return (f"role {d.current_user} lacks {kind.upper()} on {d.schema}.{target}: "
                f"GRANT {kind.upper()} ON {d.schema}.{target} TO {d.current_user}")
    cur.execute("SELECT has_schema_privilege(%s, 'CREATE')", (target,))
    row = cur.fetchone()
    if row and row[0]:
        return None
    return (f"role {d.current_user} lacks CREATE on schema {target} (needed to create "
            f"TypeORM's migrations table)")


def _blockers(settings: PgSettings, oids: list[int], schema: str) -> list[dict[str, Any]]:
    """Who holds locks on the plan's tables or on TypeORM's migrations table (autovacuum
    and other background workers by their backend type)."""
    try:
        with settings.connect(autocommit=True) as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(BLOCKERS_SQL, {"oids": oids, "schema": schema})
            return [dict(r) for r in cur.fetchall()]
    except psycopg.Error:
        return []


def _describe_error(err: psycopg.Error) -> str:
    diag = err.diag
    msg = (diag.message_primary or str(err)).strip()
    if isinstance(err, psycopg.errors.InsufficientPrivilege):
        return (f"permission denied: {msg}. Connect as the tables' owner (or a member of the "
                f"owning role); no superuser is needed.")
    if isinstance(err, psycopg.errors.QueryCanceled):
        return f"{msg} (statement_timeout): the server was too slow; nothing was committed."
    if isinstance(err, psycopg.errors.DuplicateObject | psycopg.errors.DuplicateTable):
        return f"{msg}: another object already has the target name; rename or drop it first."
    if isinstance(err, psycopg.OperationalError):
        return f"the server ended our session ({msg})"
    detail = f" ({diag.sqlstate})" if diag.sqlstate else ""
    return msg + detail


def _facts_difference(before: tuple[str, ...], now: tuple[str, ...]) -> str:
    gone = [f for f in before if f not in set(now)]
    new = [f for f in now if f not in set(before)]
    parts = [f"gone: {'; '.join(gone[:8])}" + (f" (+{len(gone) - 8} more)" if len(gone) > 8
                                                 else "")] if gone else []
    if new:
        parts.append(f"new: {'; '.join(new[:8])}" + (f" (+{len(new) - 8} more)"
                                                     if len(new) > 8 else ""))
    return "; ".join(parts) or "the catalog facts differ"


class _Attempt:
    """One try of the transaction on an open connection.

    The catalog is read again first (no strong lock is held yet) and must match the facts
    the plan was built from. Then the operations, a server timestamp after each, and the
    in-transaction checks go to the server in one pipeline: the application waits for the
    catalog work and one round trip, not one round trip per statement.
    """

    def __init__(self, conn: psycopg.Connection[Any], plan: Plan, opts: RunOptions,
                 report: Report, cancel: threading.Event, emit: EventSink,
                 attempt: int = 1, oids: list[int] | None = None) -> None:
        self.conn, self.plan, self.opts, self.report, self.cancel = conn, plan, opts, report, cancel
        self.emit, self.attempt, self.oids = emit, attempt, oids or []
        self.steps: list[StepResult] = []
        self.current: str | None = None
        self.index: int | None = None  # the step running, 1-based
        self.started_at = 0.0  # epoch seconds of the server's clock before the first step
        self._stamps: list[psycopg.Cursor[Any]] = []
        self.schema = ""
        self.predicted: tuple[str, list[Check]] | None = None  # digest, checks
        self.notes: list[str] = []  # said after the transaction (not while locks are held)

    def _label(self, n: int) -> str:
        steps = self.plan.catalog_steps
        return f"[{n}/{len(steps)}] {steps[n - 1].title}"

    def _check_catalog(self, schema: str) -> None:
        if not self.plan.facts:
            return  # a plan made by hand (tests): nothing recorded to compare with
        self.current = "re-reading the catalog before the first statement"
        now = catalog_facts(discover(self.conn, schema, text_references=False))
        if now != self.plan.facts:
            raise PlanStale(
                f"the catalog changed since the plan was made (plan digest "
                f"{self.plan.digest[:12]}): {_facts_difference(self.plan.facts, now)}. "
                f"Nothing was changed; make the plan again, review it, then run it.")

    def run(self, exp: Expectations, schema: str) -> list[Check]:
        steps = self.plan.catalog_steps
        with self.conn.cursor() as cur:
            cur.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(
                sql.Literal(f"{int(self.opts.lock_timeout_s * 1000)}ms")))
            cur.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(
                sql.Literal(f"{int(self.opts.statement_timeout_s * 1000)}ms")))
        self._check_catalog(schema)
        if self.cancel.is_set():
            raise RunCancelled(f"cancelled before step 1/{len(steps)}")
        up = self.plan.direction == UP
        self.schema = schema
        checks_sql = self._check_queries(exp, schema) if up else {}
        self._warm(checks_sql, exp)
        if up and self.predicted:  # one short row back: the digest of the snapshot
            checks_sql = {"digest": digest_query(self.oids, schema),
                          "migration_row": checks_sql["migration_row"]}
        stamps: list[psycopg.Cursor[Any]] = []
        executed: list[psycopg.Cursor[Any]] = []
        self.current = self._label(1) if steps else None
        try:
            with self.conn.pipeline():
                stamps.append(self._stamp())
                for op in steps:
                    cur = self.conn.cursor()
                    cur.execute(op.sql.encode())
                    executed.append(cur)
                    stamps.append(self._stamp())
                sent = send(self.conn, checks_sql, prepare=True)
        except psycopg.Error:
            done = sum(1 for c in executed if c.pgresult is not None)
            self.index = done + 1 if done < len(steps) else None
            self.current = self._label(done + 1) if done < len(steps) else \
                "catalog checks inside the transaction"
            self._stamps = stamps[:done + 1]
            raise
        self._stamps = stamps  # read after the transaction: not while the locks are held
        self.current = "catalog checks inside the transaction"
        if up and self.predicted:
            checks = self._fast_checks(sent, exp, schema)
        elif up:
            checks = self._evaluate(sent, exp)
        else:
            checks = down_checks(self.conn, exp, schema)
        self.current = None
        return checks

    def _evaluate(self, sent: Sent, exp: Expectations) -> list[Check]:
        """The in-transaction checks from the snapshot read in the transaction."""
        found = receive(sent)
        snap_query, snap_rows = found.pop("snapshot")
        found.update(rows_from_snapshot(snap_rows, snap_query))
        return evaluate_catalog(found, exp, in_transaction=True)

    def _fast_checks(self, sent: Sent, exp: Expectations, schema: str) -> list[Check]:
        """Under the lock: the server's digest against the predicted one. Equal, the
        predicted checks stand (the catalog is exactly the predicted one); otherwise the
        whole snapshot is read and checked, as without a prediction."""
        assert self.predicted is not None
        found = receive(sent)
        digest, checks = self.predicted
        rows = found["migration_row"][1]
        if found["digest"][1][0]["digest"] == digest and rows:
            return [Check(c.id, c.title, c.status, c.detail,
                          {**c.evidence, "result": rows}) if c.id == "migration_row" else c
                    for c in checks]
        self.notes.append("the catalog after the statements is not the predicted one: "
                          "checked in full")
        return self._evaluate(send(self.conn, self._check_queries(exp, schema), prepare=True),
                              exp)

    def _check_queries(self, exp: Expectations, schema: str
                       ) -> dict[str, tuple[str, dict[str, Any]]]:
        return {"snapshot": snapshot_query(self.oids, schema),
                "migration_row": (migration_rows_query(schema),
                                  {"names": list(exp.migration_names)})}

    def _warm(self, checks_sql: dict[str, tuple[str, dict[str, Any]]],
              exp: Expectations) -> None:
        """Plan the in-transaction checks before the first lock is taken: prepared with a
        generic plan (the catalogs they read keep their shape), so while the locks are
        held the server only executes them."""
        if not checks_sql:
            return
        self.current = "preparing the checks (no lock held yet)"
        self.conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        self._stamp().fetchone()
        ready = {**checks_sql, "digest": digest_query(self.oids, self.schema)}
        if not self.plan.source or not self.plan.source.migrations_table:
            ready.pop("migration_row")  # the plan creates the table: nothing to prepare yet
        found = receive(send(self.conn, ready, prepare=True))
        self._predict(found["snapshot"][1], exp)

    def _predict(self, rows: list[dict[str, Any]], exp: Expectations) -> None:
        """From the snapshot before the statements (the catalog is as the plan says), the
        one they will leave and its digest; when its checks pass, the run under the lock
        only compares the server's digest with this one."""
        try:
            after = predict(rows, self.plan.catalog_steps)
        except CannotPredict as exc:
            self.notes.append(f"checks read in full under the lock: {exc}")
            return
        # The evidence shows the statements as they will run (bound, as the warm-up did).
        found = rows_from_snapshot(after, bound(self.conn, *snapshot_query(self.oids,
                                                                           self.schema)))
        found["migration_row"] = (
            bound(self.conn, migration_rows_query(self.schema),
                  {"names": list(exp.migration_names)}),
            [{"name": n} for n in exp.migration_names[:1]])
        checks = evaluate_catalog(found, exp, in_transaction=True)
        if not any(c.status == FAIL for c in checks):
            self.predicted = (digest_of(after, self.oids), checks)

    def _stamp(self) -> psycopg.Cursor[Any]:
        """The server's clock, queued (prepared once: between statements it costs a bind)."""
        cur = self.conn.cursor()
        cur.execute("SELECT clock_timestamp()", prepare=True)
        return cur

    def _timings(self, steps: list[Operation], stamps: list[psycopg.Cursor[Any]]) -> None:
        """Each operation's time on the server, from the timestamps around it."""
        times = []
        for cur in stamps:
            row = cur.fetchone() if cur.pgresult is not None else None
            if row is None:
                break
            times.append(row[0])
        if times:
            self.started_at = times[0].timestamp()
        for n, (a, b) in enumerate(itertools.pairwise(times), 1):
            ms = round((b - a).total_seconds() * 1000, 2)
            op = steps[n - 1]
            self.steps.append(StepResult(n, op.title, op.sql, ms, op=op.op))

    def tell(self) -> None:
        """Time and report the steps, once the transaction has ended: reading the server's
        timestamps and writing the log and the journal while the locks are held would make
        the application wait for Python and for disks."""
        if self._stamps and not self.steps:
            self._timings(self.plan.catalog_steps, self._stamps)
        total = len(self.plan.catalog_steps)
        for step in self.steps:
            self.report("step", f"[{step.index}/{total}] {step.title} ({step.ms:.1f} ms)")
            self.emit(StepDone(step.index, total, step.op, step.title, step.ms, self.attempt))


def run_plan(settings: PgSettings, plan: Plan, before: Discovery, exp: Expectations, *,
             options: RunOptions | None = None, report: Report | None = None,
             cancel: threading.Event | None = None,
             journal: Journal | None = None, events: EventSink | None = None,
             locked: bool = False) -> RunResult:
    """Execute (or rehearse) a plan. The schema changes only if every catalog check passes.

    `locked`: the caller holds the migration lock (migration_lock) on another session.

    `events` receives the structured progress (StepDone, AttemptStarted, LockTimedOut) as
    the journal records it.
    """
    opts = options or RunOptions()
    say = report or _noop
    stop = cancel or threading.Event()
    result = RunResult(False, opts.rehearse, plan.direction, before.state)
    t_start = time.perf_counter()

    def emit(event: Event) -> None:
        if journal is not None:
            journal.record(event)
        if events is not None:
            events(event)

    def log(level: str, msg: str) -> None:
        say(level, msg)
        if journal is not None:
            journal.record(LogLine(level, msg))

    warnings: list[str] = []
    with settings.connect(keepalives=True) as conn:
        conn.add_notice_handler(lambda d: warnings.append(d.message_primary or "")
                                if d.severity_nonlocalized == "WARNING" else None)
        _watch_the_client(conn)
        session = session_of(conn)
        conn.commit()
        problems = privilege_problems(conn, before, plan)
        if problems:
            result.error = "refused before any change: " + "; ".join(problems)
            log("error", result.error)
            return result
        tables = _tables_to_count(before, opts)
        oids = _table_oids(conn, before)
        conn.autocommit = True
        log("info", f"counting rows of {', '.join(tables)} before the transaction (reads "
                    "only, no locks held)")
        t0 = time.perf_counter()
        result.counts_before = count_rows(conn, tables, before.schema)
        result.counting_s = time.perf_counter() - t0
        if not locked and not _advisory_lock(conn, settings, log):
            result.error = ("another enerlink-migrate run holds the migration lock on this "
                            "database; wait for it to finish")
            return result
        try:
            _attempts(conn, settings, plan, opts, exp, before, oids, result, log, stop, emit,
                      session)
        finally:
            if not (conn.closed or conn.broken or locked):
                conn.autocommit = True
                conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_KEY,))
        for warning in warnings:
            log("warn", f"the server warned: {warning}")
        if result.ok and not opts.rehearse:
            if conn.closed or conn.broken:  # lost after (or during) a COMMIT that held
                with settings.connect(keepalives=True) as fresh:
                    _after_commit(fresh, plan, opts, exp, before, result, log)
            else:
                _after_commit(conn, plan, opts, exp, before, result, log)
    result.total_s = round(time.perf_counter() - t_start, 3)
    if journal is not None:
        journal.record(RunFinished(result.to_dict()))
    return result


IDLE_IN_TRANSACTION_S = 30  # a client stopped mid-transaction (SIGSTOP, a hung host)


def _watch_the_client(conn: psycopg.Connection[Any]) -> None:
    """Make the server end this session soon after its client is gone: a killed client
    must not keep the rename's locks (and the application waiting) until a lock wait ends.
    While it waits on a lock the server checks the socket every second (PostgreSQL 14+);
    idle in a transaction, it gives up after IDLE_IN_TRANSACTION_S."""
    if conn.info.server_version >= 140000:
        conn.execute("SET client_connection_check_interval = 1000")
    conn.execute(sql.SQL("SET idle_in_transaction_session_timeout = {}").format(
        sql.Literal(f"{IDLE_IN_TRANSACTION_S}s")))
    conn.commit()


def _tables_to_count(before: Discovery, opts: RunOptions) -> list[str]:
    if opts.count_all_tables:
        return list(before.tables)
    return [t for t in (names.OLD_TABLE, names.NEW_TABLE) if t in before.tables]


def _table_oids(conn: psycopg.Connection[Any], d: Discovery) -> list[int]:
    with conn.cursor() as cur:
        cur.execute("SELECT c.oid::bigint FROM pg_class c JOIN pg_namespace n ON "
                    "n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = ANY(%s)",
                    (d.schema, list(d.tables)))
        oids = [int(r[0]) for r in cur.fetchall()]
    conn.rollback()
    return oids


def lock_holder(conn: psycopg.Connection[Any]) -> str:
    """Who holds the migration lock: the server's view of the session, or ''."""
    holder = conn.execute(
        "SELECT pid, application_name, coalesce(client_addr::text, 'local'), "
        "to_char(backend_start, 'YYYY-MM-DD HH24:MI:SS TZ') FROM pg_locks "
        "JOIN pg_stat_activity USING (pid) WHERE locktype = 'advisory' AND granted "
        "AND ((classid::bigint << 32) | objid::bigint) = %s", (ADVISORY_KEY,)).fetchone()
    if not holder:
        return ""
    return (f"server pid {holder[0]}, {holder[1] or 'no application_name'}, from "
            f"{holder[2]}, connected {holder[3]}")


@contextmanager
def migration_lock(settings: PgSettings) -> Iterator[str | None]:
    """Hold the one migration lock of this database for a whole run (its catalog reads
    included), taken with pg_try_advisory_lock: yields None when held, else who holds it."""
    with settings.connect(autocommit=True, keepalives=True) as conn:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_KEY,)).fetchone()
        if not (row and row[0]):
            yield lock_holder(conn) or "another session"
            return
        try:
            yield None
        finally:
            # A server that went (a crash) ended the lock with the session.
            with suppress(psycopg.OperationalError):
                if not (conn.closed or conn.broken):
                    conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_KEY,))


def _advisory_lock(conn: psycopg.Connection[Any], settings: PgSettings,
                   log: Report) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_KEY,)).fetchone()
    if row and row[0]:
        return True
    who = lock_holder(conn)
    log("error", f"another enerlink-migrate run is migrating {settings.describe()}"
                 + (f" ({who})" if who else ""))
    return False


def _attempts(conn: psycopg.Connection[Any], settings: PgSettings, plan: Plan,
              opts: RunOptions, exp: Expectations, before: Discovery, oids: list[int],
              result: RunResult, log: Report, stop: threading.Event, emit: EventSink,
              session: Session) -> None:
    verb = "rehearsal" if opts.rehearse else "migration"
    for attempt in range(1, opts.retries + 2):
        result.attempts = attempt
        conn.autocommit = False
        runner = _Attempt(conn, plan, opts, log, stop, emit, attempt, oids)
        emit(AttemptStarted(attempt, opts.retries + 1, len(plan.catalog_steps)))
        log("info", f"{verb} attempt {attempt}: BEGIN; lock_timeout "
            f"{opts.lock_timeout_s:g} s, statement_timeout {opts.statement_timeout_s:g} s")
        try:
            checks = runner.run(exp, before.schema)
            failed = [c for c in checks if c.status == FAIL]
            if failed or opts.rehearse:
                runner.current = "ROLLBACK"
                conn.rollback()
            else:
                runner.current = "COMMIT"
                try:
                    with _commit_watch(settings, session, log):
                        conn.commit()
                except psycopg.Error as exc:
                    if not (conn.closed or conn.broken):
                        raise  # the server answered: an error of COMMIT is a rollback
                    _commit_lost(settings, plan, opts, runner, session, exc, result, log,
                                 stop, emit)
                    return
                result.commit = COMMITTED
            ended = _server_clock(conn)
            runner.tell()
            for note in runner.notes:
                log("info", note)
            result.steps, result.checks = runner.steps, checks
            result.blocked_ms = (round((float(ended[0]) - runner.started_at) * 1000, 2)
                                 if ended and runner.started_at else None)
            if failed:
                result.failed_step = "catalog checks inside the transaction"
                result.error = "rolled back, nothing changed: " + "; ".join(
                    f"{c.title}: {c.detail}" for c in failed)
                log("error", result.error)
                return
            result.ok = True
            log("info", f"{'ROLLBACK (rehearsal)' if opts.rehearse else 'COMMIT'}: "
                f"{len(runner.steps)} steps, application blocked {result.blocked_ms:.1f} ms")
            return
        except psycopg.errors.LockNotAvailable:
            conn.rollback()
            runner.tell()
            blockers = _blockers(settings, oids, before.schema)
            result.lock_waits.append(blockers)
            who = "; ".join(f"pid {b['pid']} ({b['application_name'] or '-'}, {b['client']}, "
                            f"{b['state']}, transaction {b['xact_age_s']} s old, holds "
                            f"{b['mode']} on {b['relation']})" for b in blockers) or \
                "a session that has ended since"
            log("warn", f"lock timeout at {runner.current}: rolled back. Held by: {who}")
            emit(LockTimedOut(attempt, runner.current or "", blockers))
            if attempt > opts.retries:
                result.failed_step, result.failed_index = runner.current, runner.index
                result.error = (f"gave up after {attempt} attempts: could not lock the tables "
                                f"within {opts.lock_timeout_s:g} s; held by {who}. Nothing "
                                f"changed. Stop that session (or the application) and retry.")
                log("error", result.error)
                return
            wait = opts.backoff_s * 2 ** (attempt - 1)
            log("info", f"retrying in {wait:g} s ({attempt}/{opts.retries} retries used)")
            if stop.wait(wait):
                result.error = "cancelled while waiting to retry; nothing changed"
                return
        except PlanStale as exc:
            conn.rollback()
            result.failed_step = runner.current
            result.error = str(exc)
            log("error", result.error)
            return
        except RunCancelled as exc:
            conn.rollback()
            result.error = f"{exc}; rolled back, nothing changed"
            log("warn", result.error)
            return
        except psycopg.Error as exc:
            if not conn.closed:
                conn.rollback()
            runner.tell()
            result.failed_step, result.failed_index = runner.current, runner.index
            result.steps = runner.steps
            where = runner.current or "the end of the transaction"
            result.error = f"failed at {where}: {_describe_error(exc)}"
            if isinstance(exc, psycopg.OperationalError):
                result.error += ("; the transaction was not committed (COMMIT was never "
                                 "sent), so the schema is unchanged. "
                                 + hint("Run `enerlink-migrate inspect` to confirm.",
                                        "Check again (Migrate page) confirms it."))
            log("error", result.error)
            return


COMMIT_WATCH_S = 5.0  # a COMMIT longer than this is looked at, and said, every so often


@contextmanager
def _commit_watch(settings: PgSettings, session: Session, log: Report) -> Iterator[None]:
    """While COMMIT runs, look at it from another session after COMMIT_WATCH_S, and then
    every so often say what it waits for. A synchronous standby that does not answer
    holds COMMIT for as long as it stays away (statement_timeout does not end that wait);
    the DBA must hear why, and what cancelling would mean."""
    done = threading.Event()
    watcher = threading.Thread(target=_watch_commit, args=(settings, session, log, done),
                               name="commit-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join(10)


def _watch_commit(settings: PgSettings, session: Session, log: Report,
                  done: threading.Event) -> None:
    t0, interval = time.monotonic(), COMMIT_WATCH_S
    while not done.wait(interval):
        interval = min(interval * 2, 30.0)
        try:
            with settings.connect(autocommit=True) as conn:
                row = conn.execute(
                    "SELECT wait_event_type, wait_event, "
                    "current_setting('synchronous_standby_names') FROM pg_stat_activity "
                    "WHERE pid = %s", (session.pid,)).fetchone()
        except psycopg.Error as exc:
            log("warn", f"COMMIT has run {time.monotonic() - t0:.0f} s and the server "
                        f"cannot be asked why: {' '.join(str(exc).split())[:200]}")
            continue
        if done.is_set() or row is None:
            return
        waited = f"COMMIT has waited {time.monotonic() - t0:.0f} s"
        if row[1] == "SyncRep":
            log("warn", f"{waited} for a synchronous standby (synchronous_standby_names = "
                        f"'{row[2]}') that has not confirmed. The transaction is committed "
                        f"on this server and becomes visible when a standby confirms; "
                        f"bring the standby back, or cancel the wait (SELECT "
                        f"pg_cancel_backend({session.pid})) knowing the change may then "
                        f"be missing on a standby that is promoted.")
        else:
            log("warn", f"{waited}: server pid {session.pid} waits on "
                        f"{row[0] or 'CPU'}/{row[1] or '-'}")


def _server_clock(conn: psycopg.Connection[Any]) -> tuple[Any, ...] | None:
    """When the transaction ended, by the server's clock; None when the connection went
    right after COMMIT (its answer came: the outcome is known)."""
    try:
        ended = conn.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()
        conn.rollback()
    except psycopg.OperationalError:
        return None
    return ended


def _commit_lost(settings: PgSettings, plan: Plan, opts: RunOptions, runner: _Attempt,
                 session: Session, exc: psycopg.Error, result: RunResult, log: Report,
                 stop: threading.Event, emit: EventSink) -> None:
    """COMMIT was sent and no answer came: ask the server what happened, and say it."""
    lost = " ".join(str(exc).split()) or type(exc).__name__
    emit(CommitUnknown(result.attempts, lost, session.pid))
    log("error", f"the connection was lost during COMMIT ({lost}): the outcome is unknown "
                 f"until the server answers; asking it (up to {opts.reconnect_s:g} s)")
    runner.tell()
    outcome = resolve_commit(settings, plan, session, wait_s=opts.reconnect_s, cancel=stop,
                             say=log)
    emit(CommitResolved(outcome.outcome, outcome.evidence, outcome.waited_s))
    result.steps, result.commit, result.commit_lost = runner.steps, outcome.outcome, True
    result.commit_evidence = outcome.evidence
    if outcome.outcome == COMMITTED:
        result.ok = True
        log("info", f"COMMIT held: the server shows the transaction committed "
                    f"({outcome.evidence}); running the checks after commit")
        return
    result.failed_step = "COMMIT"
    if outcome.outcome == NOT_COMMITTED:
        result.error = (f"the connection was lost during COMMIT, and the server shows the "
                        f"transaction was not committed ({outcome.evidence}): the schema is "
                        f"unchanged. Run the migration again once the server is healthy.")
    else:
        result.error = (f"the connection was lost during COMMIT and the server could not be "
                        f"asked ({outcome.evidence}). Start no version of the application yet: "
                        + hint("when the server answers, run `enerlink-migrate inspect` (state "
                               "migrated: the migration committed, run `enerlink-migrate "
                               "verify`; state pre: nothing changed).",
                               "when the server answers, press Check again on the Migrate "
                               "page (state migrated: the migration committed, go on to "
                               "Verify; state pre: nothing changed)."))
    log("error", result.error)


def _after_commit(conn: psycopg.Connection[Any], plan: Plan, opts: RunOptions,
                  exp: Expectations, before: Discovery, result: RunResult,
                  log: Report) -> None:
    conn.autocommit = True
    for step in plan.validate_steps:
        log("info", f"{step.title}")
        try:
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(
                    sql.Literal(f"{int(opts.lock_timeout_s * 1000)}ms")))
                conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(
                    sql.Literal(f"{int(opts.validate_timeout_s * 1000)}ms")))
                conn.execute(step.sql.encode())
        except psycopg.Error as exc:
            log("warn", f"{step.title} failed: {_describe_error(exc)}. The constraint stays "
                f"NOT VALID (new rows are still checked); remove the rows whose user does "
                f"not exist, then run: {step.sql};")
    try:
        _verify_after_commit(conn, plan, exp, before, result)
    except (psycopg.Error, DiscoveryError) as exc:
        why = _describe_error(exc) if isinstance(exc, psycopg.Error) else str(exc)
        result.ok = False
        result.error = (f"committed, but the checks after commit could not run: {why}. "
                        + hint("Run `enerlink-migrate verify`.",
                               "Run them on the Verify page."))
        log("error", result.error)
        return
    failed = [c for c in result.checks if c.status == FAIL]
    if failed:
        result.ok = False
        result.error = "committed, but verification failed: " + "; ".join(
            f"{c.title}: {c.detail}" for c in failed)
        log("error", result.error)


def _verify_after_commit(conn: psycopg.Connection[Any], plan: Plan, exp: Expectations,
                         before: Discovery, result: RunResult) -> None:
    after = discover(conn)
    result.discovery_after = after
    result.state_after = after.state
    renamed = ({names.OLD_TABLE: names.NEW_TABLE} if plan.direction == UP
               else {names.NEW_TABLE: names.OLD_TABLE})
    t0 = time.perf_counter()
    result.counts_after = count_rows(conn, [renamed.get(t, t) for t in result.counts_before],
                                     before.schema)
    result.counting_s = round(result.counting_s + time.perf_counter() - t0, 3)
    counts = row_count_check(result.counts_before, result.counts_after, renamed)
    if plan.direction == UP:
        result.checks = [*catalog_checks(conn, exp, before.schema), counts,
                         text_reference_check(after)]
    else:
        result.checks = [counts]
