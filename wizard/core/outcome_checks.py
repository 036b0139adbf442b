"""The checks of what the last undo did: after a revert, the pre-rename schema is back; after
a restore, the database is the backup's. The migration's own checklist (final_checklist)
would only report a reverted or restored database as a failed migration."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wizard.core.backup_snapshot import table_counts
from wizard.core.catalog import MIGRATED, PRE, catalog_facts, facts_digest
from wizard.core.connection import PgSettings
from wizard.core.discovery import discover
from wizard.core.events import Verified
from wizard.core.journal import Journal
from wizard.core.reporting import Report, no_report
from wizard.core.verify import FAIL, PASS, WARN, Check

MIGRATION = "migration"
REVERT = "revert"
RESTORE = "restore"

HEADINGS = {
    MIGRATION: "Checks of the migration: the renamed schema, its rows and Redis data",
    REVERT: "Checks of the revert: the schema is back as it was before the migration",
    RESTORE: "Checks of the restore: the database is the backup's copy",
}

Record = dict[str, Any]


@dataclass(frozen=True)
class LastOutcome:
    """The newest change this run made to the database: what Verify must check."""

    kind: str  # MIGRATION, REVERT or RESTORE
    index: int = -1  # the journal record it ends with (-1: none)

    @property
    def heading(self) -> str:
        return HEADINGS[self.kind]


def _committed(result: Record) -> bool:
    return bool(result.get("ok")) and bool(result.get("steps")) and not result.get(
        "rehearsal")


def last_outcome(events: Sequence[Record]) -> LastOutcome:
    """A committed revert or a successful restore after the last migration: that one;
    otherwise the migration (or nothing yet: its checks are the ones to run)."""
    found = LastOutcome(MIGRATION)
    for n, e in enumerate(events):
        if e.get("event") == "run_finished":
            result = e.get("result") or {}
            if _committed(result):
                found = LastOutcome(REVERT if result.get("direction") == "down"
                                    else MIGRATION, n)
        elif e.get("event") == "restore_finished" and (e.get("result") or {}).get("ok"):
            found = LastOutcome(RESTORE, n)
    return found


def _up_facts_digest(events: Sequence[Record], before: int) -> str | None:
    """The catalog digest the last committed migration (before record `before`) was
    planned from: the schema as it was before the migration."""
    plan: Record | None = None
    digest: str | None = None
    for e in events[:before]:
        if e.get("event") == "plan":
            plan = e
        elif e.get("event") == "run_finished" and plan is not None:
            result = e.get("result") or {}
            if _committed(result) and result.get("direction") == "up":
                digest = str(plan.get("facts_digest") or "") or None
            plan = None
    return digest


def _redis_after(later: Sequence[Record], direction: str, what: str) -> Check:
    """The Redis step the revert or restore ran itself (its RedisMigrated record, among
    `later`: the records of that revert or restore)."""
    title = f"Redis data in the {'old' if direction == 'down' else 'new'} names"
    skipped = [e for e in later if e.get("event") == "cache_skipped"]
    moved = [e for e in later if e.get("event") == "redis_migrated"]
    if moved:
        e = moved[-1]
        result = e.get("result") or {}
        if e.get("outcome") == "ok":
            return Check("redis_outcome", title, WARN,
                         f"brought to the {'old' if e.get('direction') == 'down' else 'new'} "
                         f"names by the {what} in {e.get('target')}: "
                         f"{result.get('changed', '?')} keys changed, "
                         f"{result.get('conflicts', 0)} conflicts (not read again here)",
                         {"result": e})
        return Check("redis_outcome", title, FAIL,
                     f"the {what}'s Redis step {e.get('outcome')}: {e.get('error') or ''}; run "
                     "the Redis step again (Migrate Redis data page)", {"result": e})
    if skipped:
        return Check("redis_outcome", title, WARN, str(skipped[-1].get("reason") or ""),
                     {"result": skipped[-1]})
    return Check("redis_outcome", title, WARN, f"the {what} journaled no Redis step")


def revert_checks(pg: PgSettings, events: Sequence[Record], at: int) -> list[Check]:
    """After a committed revert (journal record `at`): state pre, the catalog as the
    migration found it, no migrations row, Redis in the old names."""
    with pg.connect() as conn:
        d = discover(conn, text_references=False)
    checks = [Check("revert_state_pre", 'The schema is back in state pre (table "prosumer")',
                    PASS if d.state == PRE else FAIL, f"{d.state}: {d.explanation}",
                    {"query": "sql/catalog/discovery.sql", "result": d.pending})]
    now = facts_digest(catalog_facts(d))
    want = _up_facts_digest(events, at)
    title = "The catalog equals the one the migration was planned from"
    if want is None:
        checks.append(Check("revert_fingerprint", title, WARN,
                            "the migration of this run journaled no catalog digest: checked "
                            "against what a revert restores instead (state pre, no "
                            "migrations row)", {"result": {"now": now}}))
    else:
        checks.append(Check("revert_fingerprint", title, PASS if now == want else FAIL,
                            "equal to the digest journaled before the migration"
                            if now == want else
                            "differs from the digest journaled before the migration",
                            {"query": "catalog facts (tables, columns, constraints, indexes, "
                             "triggers, sequences, migrations)",
                             "result": {"before_migration": want, "now": now}}))
    checks.append(Check("revert_no_migration_row", "No migrations row of the rename",
                        FAIL if d.migration_recorded else PASS,
                        ", ".join(d.migration_names) or "none",
                        {"result": d.migration_names}))
    checks.append(_redis_after(events[at + 1:], "down", "revert"))
    return checks


def _prepared(events: Sequence[Record], before: int) -> tuple[int, Record]:
    found = [n for n, e in enumerate(events[:before]) if e.get("event") == "restore_prepared"]
    return (found[-1], events[found[-1]]) if found else (before, {})


def restore_checks(pg: PgSettings, events: Sequence[Record], at: int) -> list[Check]:
    """After a successful restore (journal record `at`): the restored database is in the
    backup's state and has the rows the backup recorded."""
    start, plan = _prepared(events, at)
    inspection = plan.get("inspection") or {}
    backup = inspection.get("journal_backup") or {}
    snapshot = backup.get("snapshot") or {}
    with pg.connect() as conn:
        d = discover(conn, text_references=False)
        counts = table_counts(conn)
    want = str(inspection.get("state") or "")
    title = "The restored database is in the backup's state"
    if want in (PRE, MIGRATED):
        checks = [Check("restore_state", title, PASS if d.state == want else FAIL,
                        f"{d.state} (the backup: {want}): {d.explanation}",
                        {"result": {"backup": want, "now": d.state}})]
    else:
        checks = [Check("restore_state", title,
                        PASS if d.state in (PRE, MIGRATED) else FAIL,
                        f"{d.state}: {d.explanation} (the backup's state was not read)",
                        {"result": {"now": d.state}})]
    expected = snapshot.get("counts") or plan.get("expected_counts")
    source = ("the backup's snapshot" if snapshot.get("counts")
              else "the counts the migration took before it ran ("
              + str(plan.get("counts_source") or "a journal") + ")")
    title = "Row counts equal the backup's"
    if not expected:
        checks.append(Check("restore_counts", title, WARN,
                            "no row counts recorded for this backup: not compared",
                            {"result": counts}))
    else:
        # The snapshot names schema.table; a migration's counts_before the bare table.
        want_counts = {(str(k) if "." in str(k) else f"{d.schema}.{k}"): int(v)
                       for k, v in expected.items()}
        diffs = [f"{t}: {counts.get(t, 'missing')} now, {n} in {source}"
                 for t, n in sorted(want_counts.items()) if counts.get(t) != n]
        checks.append(Check("restore_counts", title, FAIL if diffs else PASS,
                            "; ".join(diffs) or f"{len(want_counts)} tables equal to {source}",
                            {"result": {"expected": want_counts, "now": counts}}))
    checks.append(_redis_after(events[start:at], "down" if d.state == PRE else "up",
                               "restore"))
    return checks


def outcome_checks(pg: PgSettings, journal: Journal, outcome: LastOutcome | None = None, *,
                   report: Report = no_report) -> list[Check]:
    """The checks of a revert or restore (`outcome`, else the journal's last one), written
    to the journal like the migration's checklist."""
    events = journal.events()
    outcome = outcome or last_outcome(events)
    if outcome.kind == REVERT:
        checks = revert_checks(pg, events, outcome.index)
    elif outcome.kind == RESTORE:
        checks = restore_checks(pg, events, outcome.index)
    else:
        raise ValueError("the migration's checks are final_checklist's")
    for c in checks:
        level = "error" if c.status == FAIL else "warn" if c.status == WARN else "info"
        report(level, f"{c.status.upper()} {c.title}: {c.detail}")
    journal.record(Verified([c.to_dict() for c in checks]))
    return checks
