"""Clearing the application's Redis keys that name prosumers: SCAN + UNLINK, never KEYS."""

from __future__ import annotations

import threading
import time
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from wizard.core.events import (
    CacheDeleted,
    CacheDryRun,
    CacheFlushed,
    CacheSkipped,
    CacheUnavailable,
)
from wizard.core.hints import hint
from wizard.core.journal import Journal
from wizard.core.lazy import lazy_module
from wizard.core.redis_conn import RedisSettings, RedisUnavailable, connected, dbsize
from wizard.core.reporting import (
    Cancelled,
    Progress,
    Report,
    check_cancel,
    no_progress,
    no_report,
)

if TYPE_CHECKING:
    import redis
else:
    redis = lazy_module("redis")  # about 0.1 s: loaded when Redis is first spoken to

# orders:by_prosumer:{id} is the application's per-user order index before the rename;
# prosumer:* is the family the upstream guide clears. Everything else must survive.
DEFAULT_PATTERNS = ("orders:by_prosumer:*", "prosumer:*")
SCAN_COUNT = 1000
GLOB_CHARS = "*?[\\"
Key = bytes | str  # the client returns bytes: keys need not be UTF-8
MIN_SHARED = 4  # shortest common ending that lets prefix patterns share one SCAN walk


class CacheRefused(RuntimeError):
    """A request that would clear more than it should (or without confirmation)."""


@dataclass(frozen=True)
class PatternCount:
    pattern: str
    count: int
    samples: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"pattern": self.pattern, "count": self.count, "samples": list(self.samples)}


@dataclass
class CacheResult:
    target: str
    deleted: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    batches: int = 0

    @property
    def total(self) -> int:
        return sum(self.deleted.values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total}


def check_patterns(patterns: Sequence[str]) -> tuple[str, ...]:
    """Distinct patterns, each with a literal prefix: '*' alone would be a FLUSHDB by stealth."""
    checked: list[str] = []
    for pattern in patterns:
        first_glob = min((i for i, ch in enumerate(pattern) if ch in GLOB_CHARS),
                         default=len(pattern))
        if first_glob == 0:
            raise CacheRefused(
                f"pattern {pattern!r} has no literal prefix and could match every key of the "
                "db; name the key family (e.g. 'orders:by_prosumer:*'), or clear the whole db "
                + hint("with --flushdb --confirm <dbname>", "with Clear the whole Redis db…"))
        if pattern not in checked:
            checked.append(pattern)
    if not checked:
        raise CacheRefused("no key pattern given")
    return tuple(checked)


def _text(key: Key) -> str:
    return key if isinstance(key, str) else key.decode("utf-8", errors="backslashreplace")


def _raw(key: Key) -> bytes:
    return key if isinstance(key, bytes) else key.encode()


@dataclass(frozen=True)
class ScanPass:
    """One walk over the keyspace: the glob sent as SCAN MATCH and the patterns it serves.

    Patterns of the form 'literal*' whose literals end alike ('orders:by_prosumer:' and
    'prosumer:') share one walk with MATCH '*prosumer:*' and are told apart here by prefix:
    each walk costs the server a look at every key, so one walk instead of two halves it.
    """

    match: str
    patterns: tuple[str, ...]
    prefixes: tuple[bytes, ...] = ()

    def split(self, keys: Sequence[Key]) -> dict[str, list[Key]]:
        """The keys of one SCAN reply, by the pattern they belong to (first one wins)."""
        if not self.prefixes:
            return {self.patterns[0]: list(keys)} if keys else {}
        out: dict[str, list[Key]] = {}
        for key in keys:
            raw = _raw(key)
            for pattern, prefix in zip(self.patterns, self.prefixes, strict=True):
                if raw.startswith(prefix):
                    out.setdefault(pattern, []).append(key)
                    break
        return out


def _common_suffix(words: Sequence[str]) -> str:
    shortest = min(words, key=len)
    n = 0
    while n < len(shortest) and all(w[-1 - n] == shortest[-1 - n] for w in words):
        n += 1
    return shortest[len(shortest) - n:]


def scan_passes(patterns: Sequence[str]) -> list[ScanPass]:
    """The walks that cover `patterns`: shared for prefix patterns with a common ending of
    MIN_SHARED or more characters (a shorter one, like ':', would match nearly every key and
    ship the whole keyspace to the client), one per pattern otherwise."""
    simple = [p for p in patterns if p.endswith("*") and not any(
        ch in GLOB_CHARS for ch in p[:-1])]
    shared = _common_suffix([p[:-1] for p in simple]) if len(simple) > 1 else ""
    passes: list[ScanPass] = []
    if len(shared) >= MIN_SHARED:
        passes.append(ScanPass(f"*{shared}*", tuple(simple),
                               tuple(p[:-1].encode() for p in simple)))
    else:
        simple = []
    passes += [ScanPass(p, (p,)) for p in patterns if p not in simple]
    return passes


def _scan(client: redis.Redis, match: str) -> Iterator[list[Key]]:
    """SCAN batches of one glob until the cursor returns to 0."""
    cursor: int = 0
    while True:
        cursor, keys = client.scan(cursor, match=match, count=SCAN_COUNT)
        yield keys
        if cursor == 0:
            return


def _fraction(index: int, scans: int, size: int, passes: int) -> float:
    # Each SCAN call with COUNT n looks at about n keys, so calls * n / DBSIZE is how far
    # through the keyspace this walk is.
    return min((index + min(scans * SCAN_COUNT / size, 1.0)) / passes, 0.99)


def dry_run(settings: RedisSettings, patterns: Sequence[str] = DEFAULT_PATTERNS,
            samples: int = 10, *, report: Report = no_report, progress: Progress = no_progress,
            cancel: threading.Event | None = None,
            journal: Journal | None = None) -> list[PatternCount]:
    """How many keys each pattern matches, with a few samples; changes nothing.

    SCAN may return a key twice while the server resizes its table, so under heavy writes a
    count can be slightly high; the deletion reports exact numbers.
    """
    wanted = check_patterns(patterns)
    counts = {p: 0 for p in wanted}
    seen: dict[str, list[str]] = {p: [] for p in wanted}
    passes = scan_passes(wanted)
    with connected(settings) as client:
        size = max(dbsize(client) or 0, 1)
        for n, walk in enumerate(passes):
            for scans, batch in enumerate(_scan(client, walk.match), 1):
                check_cancel(cancel, "Redis key count")
                for pattern, keys in walk.split(batch).items():
                    counts[pattern] += len(keys)
                    room = max(samples - len(seen[pattern]), 0)
                    seen[pattern] += [_text(k) for k in keys[:room]]
                progress(_fraction(n, scans, size, len(passes)), walk.match)
    result = [PatternCount(p, counts[p], tuple(seen[p])) for p in wanted]
    for c in result:
        report("step", f"{c.pattern}: {c.count} keys in {settings.describe()}")
    if journal is not None:
        journal.record(CacheDryRun(settings.describe(), list(wanted), counts))
    progress(1.0, "counted")
    return result


def delete(settings: RedisSettings, patterns: Sequence[str] = DEFAULT_PATTERNS,
           report: Report = no_report, progress: Progress = no_progress,
           cancel: threading.Event | None = None, journal: Journal | None = None, *,
           expected: Mapping[str, int] | None = None) -> CacheResult:
    """UNLINK every key matching the patterns, in pipelined SCAN batches; idempotent.

    Each round trip unlinks the keys of the previous SCAN reply and asks for the next
    batch, so the server never works on more than ~SCAN_COUNT keys at a time and other
    clients are served in between. Cancel is honoured between batches; the keys unlinked
    so far stay unlinked (it is a cache) and a second run finishes the job. `expected`
    (dry-run counts) makes the progress fraction exact; without it DBSIZE is the estimate.
    """
    wanted = check_patterns(patterns)
    result = CacheResult(settings.describe(), {p: 0 for p in wanted})
    passes = scan_passes(wanted)
    started = time.monotonic()
    outcome, error = "ok", None
    report("info", f"clearing {', '.join(wanted)} in {result.target} (SCAN MATCH "
           f"{' then '.join(w.match for w in passes)} + UNLINK)")
    try:
        with connected(settings) as client:
            size = max(dbsize(client) or 0, 1)
            total_expected = sum(expected.values()) if expected else 0
            for n, walk in enumerate(passes):
                cursor, scans = 0, 0
                pending: dict[str, list[Key]] = {}
                while True:
                    check_cancel(cancel, "Redis key deletion")
                    finished = scans > 0 and cursor == 0
                    pipe = client.pipeline(transaction=False)
                    for keys in pending.values():
                        pipe.unlink(*keys)
                    if not finished:
                        pipe.scan(cursor, match=walk.match, count=SCAN_COUNT)
                    replies = pipe.execute()
                    for pattern, unlinked in zip(pending, replies, strict=False):
                        result.deleted[pattern] += int(unlinked)
                        result.batches += 1
                    if finished:
                        break
                    cursor, batch = replies[-1]
                    pending = walk.split(batch)
                    scans += 1
                    done = result.total
                    progress(min(done / total_expected, 0.99) if total_expected
                             else _fraction(n, scans, size, len(passes)),
                             f"{done} keys deleted")
                    if cursor == 0 and not pending:
                        break
            for pattern in wanted:
                report("step", f"{pattern}: {result.deleted[pattern]} keys deleted")
    except Cancelled:
        outcome = "cancelled"
        raise Cancelled(
            f"Redis key deletion cancelled by the operator after {result.total} keys; the "
            "rest are still there, and running the step again finishes it") from None
    except RedisUnavailable as exc:
        outcome, error = "failed", str(exc)
        raise RedisUnavailable(
            f"{exc} ({result.total} keys were deleted before the failure; the step can be "
            "run again, it only deletes what is left)", exc.kind) from None
    finally:
        result.seconds = round(time.monotonic() - started, 3)
        if journal is not None:
            journal.record(CacheDeleted(result.target, list(wanted), result.deleted,
                                        result.total, result.seconds, outcome, error))
    progress(1.0, f"{result.total} keys deleted")
    report("info", f"{result.total} keys deleted in {result.seconds:.2f} s")
    return result


def record_skipped(journal: Journal, settings: RedisSettings | None, reason: str) -> None:
    """The operator went on without the cache step: the report says old keys may remain."""
    journal.record(CacheSkipped(settings.describe() if settings else None, reason))


def record_unavailable(journal: Journal, settings: RedisSettings, error: str) -> None:
    """Redis did not answer before the step began: nothing was changed there."""
    journal.record(CacheUnavailable(settings.describe(), error))


def _same_name(typed: str, expected: str) -> bool:
    # A name typed on one OS may arrive decomposed (NFD) and on another composed (NFC).
    return unicodedata.normalize("NFC", typed) == unicodedata.normalize("NFC", expected)


def confirm_flush(settings: RedisSettings, confirm: str | None, expected: str | None,
                  journal: Journal | None = None) -> None:
    """Raise CacheRefused (and journal it) unless `confirm` is `expected`; no network."""
    confirm_typed_name("FLUSHDB", settings, confirm, expected, journal)


def confirm_typed_name(what: str, settings: RedisSettings, confirm: str | None,
                       expected: str | None, journal: Journal | None = None) -> None:
    """A destructive Redis action (FLUSHDB, the revert) only with the PostgreSQL database
    name typed back; CacheRefused (journaled for FLUSHDB) otherwise. No network."""
    target = settings.describe()
    refusal = None
    if not expected:
        refusal = (f"{what} of {target} refused: no database name to confirm against; say "
                   "which PostgreSQL database this run targets "
                   + hint("(--dsn .../<dbname> or PGDATABASE)", "(the profile's Database)"))
    elif not confirm or not _same_name(confirm, expected):
        refusal = (f"{what} of {target} refused: the confirmation {confirm or '(empty)'!r} "
                   f"is not the database name {expected!r}; type the name exactly"
                   + hint(f" (--confirm {expected})", ""))
    if refusal:
        if journal is not None and what == "FLUSHDB":
            journal.record(CacheFlushed(target, settings.effective_db, None, "refused"))
        raise CacheRefused(refusal)


def flushdb(settings: RedisSettings, confirm: str | None, expected: str | None, *,
            report: Report = no_report, journal: Journal | None = None) -> int | None:
    """FLUSHDB ASYNC of the one configured db, only when `confirm` is the database name.

    `expected` is the PostgreSQL database the run targets: typing it proves the operator
    knows which system they are clearing. Returns how many keys the db held (None when
    the ACL user may not run DBSIZE). FLUSHALL is never sent: other db indexes (other
    applications) keep their keys.
    """
    confirm_flush(settings, confirm, expected, journal)
    target = settings.describe()
    outcome, before = "failed", None
    try:
        with connected(settings) as client:
            before = dbsize(client)
            # ASYNC frees the memory in a background thread: the server keeps answering.
            client.flushdb(asynchronous=True)
            outcome = "ok"
    finally:
        if journal is not None:
            journal.record(CacheFlushed(target, settings.effective_db, before, outcome))
    report("info", f"FLUSHDB {target}: {'all' if before is None else before} keys removed")
    return before
