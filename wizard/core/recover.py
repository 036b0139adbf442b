"""Restore a backup, then clear the application's Redis cache: one job for every driver."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from wizard.core import cache, restore
from wizard.core.events import CacheSkipped
from wizard.core.journal import Journal
from wizard.core.redis_conn import RedisSettings
from wizard.core.reporting import Progress, Report, no_progress, no_report

NO_REDIS = ("no Redis in this connection (the profile's Redis, or --redis-url): clear the "
            "application's cache keys yourself (enerlink-migrate cache) so Redis and the "
            "restored database agree")


@dataclass
class RestoreOutcome:
    """The database restore and, separately, the cache clearing that follows it."""

    result: restore.RestoreResult
    cache: cache.CacheResult | None = None
    cache_error: str | None = None  # the restore stands; only the cache part failed
    cache_note: str | None = None  # not attempted, and why

    @property
    def ok(self) -> bool:
        """Restored, and the cache cleared or deliberately left (no Redis given)."""
        return self.result.ok and self.cache_error is None

    def lines(self) -> list[str]:
        r = self.result
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
            lines.append(f"✔ Redis: {self.cache.total} cache keys of the old patterns "
                         f"deleted in {self.cache.target}.")
        elif self.cache_error:
            lines.append(f"✘ Redis cache clearing failed: {self.cache_error}. The database "
                         "restore stands; clear the keys on the Cache page or with "
                         "enerlink-migrate cache.")
        elif self.cache_note:
            lines.append(f"! {self.cache_note}")
        return lines

    def problem(self, retry: str) -> tuple[str, str, str] | None:
        """(what happened, the failed step, what to do) for an error panel, or None."""
        if not self.result.ok:
            return (self.result.error or "the restore failed", "Restore",
                    f"Read the log; fix the cause and {retry}.")
        if self.cache_error:
            return (self.cache_error, "Clearing the Redis cache after the restore",
                    "The database is restored. Clear the cache keys on the Cache page or "
                    "with enerlink-migrate cache.")
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"result": self.result.to_dict(),
                "cache": self.cache.to_dict() if self.cache is not None else None,
                "cache_error": self.cache_error, "cache_note": self.cache_note}


class _ClearCache:
    """restore.run's after-swap step: runs once the restored database is live, before the
    run's last journal record, so `restore_finished` already shows what is left to do."""

    def __init__(self, redis: RedisSettings | None, report: Report, journal: Journal) -> None:
        self.redis, self.report, self.journal = redis, report, journal
        self.cache: cache.CacheResult | None = None
        self.error: str | None = None
        self.note: str | None = None

    def __call__(self, result: restore.RestoreResult) -> None:
        if self.redis is None:
            self.note = NO_REDIS
            self.report("warn", self.note)
            self.journal.record(CacheSkipped(None, self.note))
            return
        self.report("step", "clearing the application's cache keys so Redis and the "
                            "restored database agree")
        try:
            # Not cancellable: the swap is done and a half-cleared cache helps nobody.
            self.cache = cache.delete(self.redis, cache.DEFAULT_PATTERNS, report=self.report,
                                      journal=self.journal)
        except Exception as exc:  # the restore stands; this part is reported on its own
            self.error = str(exc) or type(exc).__name__
            self.report("error", f"Redis cache clearing failed: {self.error}")
            return
        if restore.CACHE_NEXT in result.next_steps:
            result.next_steps.remove(restore.CACHE_NEXT)


def restore_then_clear(plan: restore.RestorePlan, confirm: str,
                       redis: RedisSettings | None, *, report: Report = no_report,
                       progress: Progress = no_progress,
                       cancel: threading.Event | None = None,
                       journal: Journal | None = None) -> RestoreOutcome:
    """restore.run, then (only after the swap) clear the application's cache keys with
    SCAN + UNLINK of the old patterns, in the same journal. `confirm` is the typed name of
    the database to replace: it gates the cache clearing as much as the swap."""
    journal = journal or Journal.create(plan.settings, "restore")
    clear = _ClearCache(redis, report, journal)
    result = restore.run(plan, confirm=confirm, report=report, progress=progress,
                         cancel=cancel, journal=journal, after_swap=clear)
    return RestoreOutcome(result, clear.cache, clear.error, clear.note)
