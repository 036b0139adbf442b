"""Restore a backup, then bring the application's Redis data to the restored schema's names:
one job for every driver."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from wizard.core import jobs, redis_migrate, redis_rules, restore
from wizard.core.catalog import PRE
from wizard.core.connection import PgSettings
from wizard.core.discovery import discover
from wizard.core.events import CacheSkipped
from wizard.core.execute import RunOptions, RunResult
from wizard.core.hints import hint
from wizard.core.journal import Journal
from wizard.core.plan import DOWN
from wizard.core.redis_conn import RedisSettings
from wizard.core.redis_rules import Rule
from wizard.core.reporting import Progress, Report, no_progress, no_report


def no_redis(what: str = "restored") -> str:
    """Why the Redis step did not run after a restore (or a revert), and what to do."""
    return ("no Redis in this connection ("
            + hint("the profile's Redis, or --redis-url", "the profile's Redis URL")
            + f"): bring the application's Redis data to the {what} schema yourself ("
            + hint("enerlink-migrate cache, with --revert for a pre-rename backup",
                   "the Migrate Redis data page")
            + ") so Redis and the database agree")


def redis_plan(state: str, rules: Sequence[Rule] = redis_rules.DEFAULT_RULES
               ) -> tuple[str, tuple[Rule, ...]]:
    """The Redis rules that fit a database in `state`: a pre-rename schema is read by the
    old application (prosumerId, orders:by_prosumer:*), so the inverse rules; otherwise
    the rules themselves. Both are idempotent: data already in that shape stays."""
    if state == PRE:
        return "down", redis_rules.inverse(rules)
    return "up", redis_rules.validate(rules)


def describe_redis_plan(state: str, rules: Sequence[Rule] = redis_rules.DEFAULT_RULES) -> str:
    """What the restore will do to Redis once the restored database is live, in words."""
    direction, chosen = redis_plan(state, rules)
    why = ("the backup is from before the rename: the old application reads the old names"
           if direction == "down" else "the backup is of the renamed schema")
    return f"then Redis: {'; '.join(r.describe() for r in chosen)} ({why})"


@dataclass
class RestoreOutcome:
    """The database restore and, separately, the cache clearing that follows it."""

    result: restore.RestoreResult
    cache: redis_migrate.MigrationResult | None = None
    cache_error: str | None = None  # the restore stands; only the Redis part failed
    cache_note: str | None = None  # not attempted, and why

    @property
    def ok(self) -> bool:
        """Restored, and the cache cleared or deliberately left (no Redis given)."""
        return self.result.ok and self.cache_error is None

    @property
    def cancelled(self) -> bool:
        """Stopped by the operator (a cancel, or the NOT VALID swap declined): not a failure."""
        return self.result.cancelled

    def lines(self) -> list[str]:
        r = self.result
        if r.declined:
            return [f"! Not restored, as you decided: {r.error}."]
        if not r.ok:
            what = "cancelled" if r.cancelled else "failed"
            lines = [f"✘ The restore {what}: {r.error}"]
            if r.dropped:
                lines.append(f"The unfinished {r.restore_db} was dropped; {r.live_db} is "
                             "untouched.")
            return lines
        lines = [f"✔ {r.live_db} is now the restored copy of the backup.",
                 f"The previous {r.live_db} is kept as {r.before_db}. When you are satisfied, "
                 f"drop it with: {r.drop_old_sql}"]
        lines += [f"! {w}" for w in r.warnings]
        if self.cache is not None:
            names = "old" if self.cache.direction == "down" else "new"
            lines.append(f"✔ Redis: {self.cache.changed} keys brought to the {names} names in "
                         f"{self.cache.target}"
                         + (f"; {self.cache.conflicts} conflicts left untouched"
                            if self.cache.conflicts else "") + ".")
        elif self.cache_error:
            lines.append(f"✘ Redis migration failed: {self.cache_error}. The database "
                         "restore stands; run the Redis step again ("
                         + hint("enerlink-migrate cache"
                                + (" --revert" if self.result.ok else ""),
                                "the Migrate Redis data page") + ").")
        elif self.cache_note:
            lines.append(f"! {self.cache_note}")
        return lines

    def problem(self, retry: str) -> tuple[str, str, str] | None:
        """(what happened, the failed step, what to do) for an error panel, or None (also
        when the DBA declined the swap: a decision, which the outcome's lines state)."""
        if self.result.declined:
            return None
        if not self.result.ok:
            return (self.result.error or "the restore failed", "Restore",
                    f"Read the log; fix the cause and {retry}.")
        if self.cache_error:
            return (self.cache_error, "Bringing Redis to the restored schema",
                    "The database is restored. Run the Redis step again ("
                    + hint("enerlink-migrate cache", "the Migrate Redis data page")
                    + "): it finishes what is left.")
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"result": self.result.to_dict(),
                "cache": self.cache.to_dict() if self.cache is not None else None,
                "cache_error": self.cache_error, "cache_note": self.cache_note}


class _AlignRedis:
    """restore.run's after-swap step: runs once the restored database is live, before the
    run's last journal record, so `restore_finished` already shows what is left to do."""

    def __init__(self, pg: PgSettings, redis: RedisSettings | None, rules: Sequence[Rule],
                 report: Report, journal: Journal) -> None:
        self.pg, self.redis, self.rules = pg, redis, rules
        self.report, self.journal = report, journal
        self.cache: redis_migrate.MigrationResult | None = None
        self.error: str | None = None
        self.note: str | None = None

    def __call__(self, result: restore.RestoreResult) -> None:
        if self.redis is None:
            self.note = no_redis()
            self.report("warn", self.note)
            self.journal.record(CacheSkipped(None, self.note))
            return
        try:
            with self.pg.connect() as conn:  # the live name: the restored copy now
                state = discover(conn, text_references=False).state
            direction, rules = redis_plan(state, self.rules)
            self.report("step", f"bringing Redis to the restored schema (state {state}): "
                                + "; ".join(r.describe() for r in rules))
            # Not cancellable: the swap is done and a half-migrated order book helps nobody.
            self.cache = redis_migrate.migrate(self.redis, rules, direction=direction,
                                               report=self.report, journal=self.journal)
        except Exception as exc:  # the restore stands; this part is reported on its own
            self.error = str(exc) or type(exc).__name__
            self.report("error", f"the Redis migration after the restore failed: "
                                 f"{self.error}")
            return
        if restore.CACHE_NEXT in result.next_steps:
            result.next_steps.remove(restore.CACHE_NEXT)


def restore_then_clear(plan: restore.RestorePlan, confirm: str,
                       redis: RedisSettings | None, *,
                       rules: Sequence[Rule] = redis_rules.DEFAULT_RULES,
                       report: Report = no_report,
                       progress: Progress = no_progress,
                       cancel: threading.Event | None = None,
                       journal: Journal | None = None,
                       confirm_not_valid: Callable[[list[dict[str, Any]]], bool] | None = None,
                       ) -> RestoreOutcome:
    """restore.run, then (only after the swap) bring Redis to the restored schema: the
    inverse rules for a pre-rename backup, the rules for a renamed one (redis_plan), in
    the same journal. `confirm` is the typed name of the database to replace: it gates the
    Redis step as much as the swap."""
    journal = journal or Journal.create(plan.settings, "restore")
    clear = _AlignRedis(plan.settings, redis, rules, report, journal)
    result = restore.run(plan, confirm=confirm, report=report, progress=progress,
                         cancel=cancel, journal=journal, after_swap=clear,
                         confirm_not_valid=confirm_not_valid)
    return RestoreOutcome(result, clear.cache, clear.error, clear.note)


@dataclass
class RevertOutcome:
    """The schema revert and, separately, the Redis data brought back to the old names."""

    result: RunResult
    journal: Journal
    redis: redis_migrate.MigrationResult | None = None
    redis_error: str | None = None  # the revert stands; only the Redis part failed
    redis_note: str | None = None  # not attempted, and why


def revert_then_align(settings: PgSettings, redis: RedisSettings | None, *,
                      rules: Sequence[Rule] = redis_rules.DEFAULT_RULES,
                      options: RunOptions | None = None, digest: str | None = None,
                      report: Report = no_report, cancel: threading.Event | None = None,
                      journal: Journal | None = None) -> RevertOutcome:
    """Revert the schema (jobs.run DOWN, `digest`: the approved plan's); once it
    committed, apply the inverse Redis rules so the old application finds prosumerId and
    orders:by_prosumer:* again."""
    _plan, result, journal = jobs.run(settings, DOWN, options=options, report=report,
                                      cancel=cancel, journal=journal, digest=digest)
    outcome = RevertOutcome(result, journal)
    if not result.ok or not result.steps:
        return outcome
    if redis is None:
        outcome.redis_note = no_redis("reverted")
        report("warn", outcome.redis_note)
        journal.record(CacheSkipped(None, outcome.redis_note))
        return outcome
    back = redis_rules.inverse(rules)
    report("step", "bringing Redis back to the old names: "
                   + "; ".join(r.describe() for r in back))
    try:
        outcome.redis = redis_migrate.migrate(redis, back, direction="down", report=report,
                                              journal=journal)
    except Exception as exc:  # the revert stands; this part is reported on its own
        outcome.redis_error = str(exc) or type(exc).__name__
        report("error", f"the Redis revert failed: {outcome.redis_error}")
    return outcome
