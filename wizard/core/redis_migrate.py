"""The Redis step: migrate the application's order book to the new names, key by key.

Each rule walks its family with SCAN (never KEYS) on every primary. A batch is changed by
one server-side script (EVALSHA), so each key is either fully migrated or untouched and
other clients are served between batches. Every rule is idempotent: a second run finds
nothing left to change, so a run stopped half-way (a crash, a cancel, Redis gone) is
finished by running it again. The dry run counts what each rule would change, the
conflicts it would leave alone, and what verify must find afterwards.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from wizard.core.events import RedisDryRun, RedisMigrated, RedisProgress
from wizard.core.journal import Journal
from wizard.core.lazy import lazy_module
from wizard.core.redis_conn import RedisSettings, RedisUnavailable, explain
from wizard.core.redis_keyspace import Keyspace, by_slot, open_keyspace, type_of
from wizard.core.redis_rules import DeleteKeys, MoveKey, RenameField, Rule, to_text, validate
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

ORDERS_ALL = b"orders:all"  # the set of every order id: the migration must not change it
PROGRESS_EVERY_S = 1.0

# KEYS: hashes. ARGV: old field, new field. A hash with both fields and different values
# is a conflict: left untouched, counted, named.
RENAME_FIELD_LUA = """
local changed, conflicts = 0, {}
for _, key in ipairs(KEYS) do
  if redis.call('TYPE', key).ok == 'hash' then
    local v = redis.call('HGET', key, ARGV[1])
    if v then
      local w = redis.call('HGET', key, ARGV[2])
      if not w or w == v then
        if not w then redis.call('HSET', key, ARGV[2], v) end
        redis.call('HDEL', key, ARGV[1])
        changed = changed + 1
      else
        conflicts[#conflicts + 1] = key
      end
    end
  end
end
return {changed, conflicts}
"""

# KEYS: source, target, source, target, ... (one Redis: both in one script). A target of
# another type is a conflict; an existing target of the same type is merged into (its own
# members and scores win), then the source is deleted.
MOVE_LUA = """
local moved, merged, conflicts = 0, 0, {}
for i = 1, #KEYS, 2 do
  local src, dst = KEYS[i], KEYS[i + 1]
  local t = redis.call('TYPE', src).ok
  if t ~= 'none' then
    local d = redis.call('TYPE', dst).ok
    if d == 'none' then
      redis.call('RENAME', src, dst)
      moved = moved + 1
    elseif d ~= t or (t ~= 'zset' and t ~= 'set' and t ~= 'hash') then
      conflicts[#conflicts + 1] = src
    else
      if t == 'zset' then
        local items = redis.call('ZRANGE', src, 0, -1, 'WITHSCORES')
        for j = 1, #items, 2 do redis.call('ZADD', dst, 'NX', items[j + 1], items[j]) end
      elseif t == 'set' then
        for _, m in ipairs(redis.call('SMEMBERS', src)) do redis.call('SADD', dst, m) end
      else
        local items = redis.call('HGETALL', src)
        for j = 1, #items, 2 do redis.call('HSETNX', dst, items[j], items[j + 1]) end
      end
      redis.call('DEL', src)
      moved = moved + 1
      merged = merged + 1
    end
  end
end
return {moved, merged, conflicts}
"""

MERGEABLE = ("zset", "set", "hash")


@dataclass
class RuleCount:
    """What one rule would do (dry run), and what verify must find after it."""

    rule: str
    keys: int = 0  # keys the rule would change (delete)
    members: int = 0  # move: members of the source keys
    conflicts: int = 0
    conflict_samples: list[str] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)
    targets_before: int = 0  # move: target keys the new application already created
    expected_keys_after: int = 0  # move: target keys after the move
    expected_members_after: int = 0  # move: members of the target keys after the move


@dataclass
class DryRun:
    target: str
    rules: list[RuleCount]
    orders_all: dict[str, int] | None  # {"members", "digest"}: must not change
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RuleDone:
    rule: str
    changed: int = 0
    merged: int = 0
    conflicts: int = 0
    conflict_samples: list[str] = field(default_factory=list)
    batches: int = 0


@dataclass
class MigrationResult:
    target: str
    direction: str  # "up" (to the new names) or "down" (the inverse rules)
    rules: list[RuleDone] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def changed(self) -> int:
        return sum(r.changed for r in self.rules)

    @property
    def conflicts(self) -> int:
        return sum(r.conflicts for r in self.rules)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "changed": self.changed, "conflicts": self.conflicts}


def _text(key: bytes | str) -> str:
    return key if isinstance(key, str) else key.decode("utf-8", errors="backslashreplace")


# -- dry run ---------------------------------------------------------------------------------

def dry_run(settings: RedisSettings, rules: Sequence[Rule], samples: int = 10, *,
            report: Report = no_report, progress: Progress = no_progress,
            cancel: threading.Event | None = None, journal: Journal | None = None,
            allow: Sequence[str] = ()) -> DryRun:
    """Counts, samples and conflicts per rule; reads only. `allow`: the protected
    families the operator typed (redis_rules.validate)."""
    checked = validate(rules, allow)
    t0 = time.monotonic()
    with open_keyspace(settings) as ks:
        counts = []
        for n, rule in enumerate(checked):
            progress(n / len(checked), to_text(rule))
            counts.append(_count(ks, rule, samples, cancel))
        result = DryRun(ks.describe(), counts, orders_all(ks))
    result.seconds = round(time.monotonic() - t0, 3)
    for c in counts:
        report("step", _count_line(c))
    if journal is not None:
        journal.record(RedisDryRun(result.target, [to_text(r) for r in checked],
                                   result.to_dict()))
    progress(1.0, "counted")
    return result


def _count_line(c: RuleCount) -> str:
    extra = (f", {c.members} members; {c.targets_before} target keys exist already"
             if c.rule.startswith("move") else "")
    return (f"{c.rule}: {c.keys} keys{extra}; {c.conflicts} conflicts"
            + (f" ({', '.join(c.conflict_samples[:3])})" if c.conflict_samples else ""))


def hash_fields(ks: Keyspace, pattern: str, fields: Sequence[str],
                cancel: threading.Event | None = None
                ) -> Iterator[tuple[bytes, list[bytes | None]]]:
    """Every hash of the family, with the values of `fields` (None where absent); keys of
    other types are skipped. Reads only (the dry run and verify)."""
    for _node, keys in ks.scan(pattern):
        check_cancel(cancel, "Redis read")
        pipe = ks.routed.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
            for name in fields:
                pipe.hget(key, name)
        # Not every key of the family is a hash: HGET on the others is a WRONGTYPE error,
        # read here as "no such field".
        replies = [None if isinstance(r, redis.exceptions.ResponseError) else r
                   for r in pipe.execute(raise_on_error=False)]
        width = 1 + len(fields)
        for i, key in enumerate(keys):
            row = replies[width * i:width * (i + 1)]
            if type_of(row[0]) == "hash":
                yield key, [v if v is None or isinstance(v, bytes) else str(v).encode()
                            for v in row[1:]]


def family_size(ks: Keyspace, pattern: str, cancel: threading.Event | None = None
                ) -> tuple[int, int]:
    """Keys of a family and their members (ZCARD, SCARD, HLEN; 1 for other types)."""
    keys_n = members = 0
    for _node, keys in ks.scan(pattern):
        check_cancel(cancel, "Redis read")
        pipe = ks.routed.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
        kinds = [type_of(k) for k in pipe.execute()]
        pipe = ks.routed.pipeline(transaction=False)
        for key, kind in zip(keys, kinds, strict=True):
            _card(pipe, kind, key)
        members += sum(int(n) for n in pipe.execute())
        keys_n += len(keys)
    return keys_n, members


def _count(ks: Keyspace, rule: Rule, samples: int, cancel: threading.Event | None
           ) -> RuleCount:
    out = RuleCount(to_text(rule))
    if isinstance(rule, RenameField):
        for key, (old, new) in hash_fields(ks, rule.pattern, (rule.old, rule.new), cancel):
            if old is not None:
                _note(out, key, conflict=new is not None and new != old, samples=samples)
    elif isinstance(rule, MoveKey):
        _count_move(ks, rule, out, samples, cancel)
    else:
        for _node, keys in ks.scan(rule.pattern):
            check_cancel(cancel, "Redis dry run")
            for key in keys:
                _note(out, key, conflict=False, samples=samples)
    return out


def _note(out: RuleCount, key: bytes, *, conflict: bool, samples: int) -> None:
    if conflict:
        out.conflicts += 1
        if len(out.conflict_samples) < samples:
            out.conflict_samples.append(_text(key))
    else:
        out.keys += 1
        if len(out.samples) < samples:
            out.samples.append(_text(key))


def _card(pipe: Any, kind: str, key: bytes) -> None:
    {"zset": pipe.zcard, "set": pipe.scard, "hash": pipe.hlen}.get(kind, pipe.exists)(key)


def _members(client: Any, kind: str, key: bytes) -> set[bytes]:
    if kind == "zset":
        return set(client.zrange(key, 0, -1))
    if kind == "set":
        return set(client.smembers(key))
    if kind == "hash":
        return set(client.hkeys(key))
    return set()


def _count_move(ks: Keyspace, rule: MoveKey, out: RuleCount, samples: int,
                cancel: threading.Event | None) -> None:
    out.targets_before, target_members = family_size(ks, rule.target, cancel)
    new_members = merged = 0
    for _node, keys in ks.scan(rule.source):
        check_cancel(cancel, "Redis dry run")
        pipe = ks.routed.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
            pipe.type(rule.target_of(key))
        kinds = [type_of(k) for k in pipe.execute()]
        pipe = ks.routed.pipeline(transaction=False)
        for i, key in enumerate(keys):
            _card(pipe, kinds[2 * i], key)
        cards = [int(n) for n in pipe.execute()]
        for i, key in enumerate(keys):
            kind, there = kinds[2 * i], kinds[2 * i + 1]
            if there != "none" and (there != kind or kind not in MERGEABLE):
                _note(out, key, conflict=True, samples=samples)
                continue
            _note(out, key, conflict=False, samples=samples)
            out.members += cards[i]
            if there == "none":
                new_members += cards[i]
            else:  # merged: only members the target lacks are new
                merged += 1
                new = _members(ks.routed, kind, key) - _members(ks.routed, kind,
                                                                rule.target_of(key))
                new_members += len(new)
    out.expected_keys_after = out.targets_before + out.keys - merged
    out.expected_members_after = target_members + new_members


def orders_all(ks: Keyspace) -> dict[str, int] | None:
    """Members of `orders:all` and an order-independent digest of them (CRC32 sum)."""
    if type_of(ks.routed.type(ORDERS_ALL)) != "set":
        return None
    total, digest, cursor = 0, 0, 0
    while True:
        cursor, members = ks.routed.sscan(ORDERS_ALL, cursor, count=1000)
        total += len(members)
        digest = (digest + sum(zlib.crc32(m if isinstance(m, bytes) else m.encode())
                               for m in members)) % (1 << 63)
        if cursor == 0:
            return {"members": total, "digest": digest}


# -- the migration ---------------------------------------------------------------------------

Tick = Callable[[RuleDone, int], None]


def migrate(settings: RedisSettings, rules: Sequence[Rule], *, direction: str = "up",
            report: Report = no_report, progress: Progress = no_progress,
            cancel: threading.Event | None = None, journal: Journal | None = None,
            allow: Sequence[str] = ()) -> MigrationResult:
    """Apply the rules in order (field renames, moves, deletes); idempotent and resumable.

    A failure (Redis gone, read-only replica, OOM) raises RedisUnavailable naming the rule
    and the batch; what was migrated stays migrated, and running the step again finishes
    the rest. The database's result is not touched by anything here.
    """
    checked = validate(rules, allow)
    result = MigrationResult(settings.describe(), direction)
    t0 = time.monotonic()
    outcome, error = "ok", None
    current: RuleDone | None = None
    last_tick = [time.monotonic()]

    def tick(done: RuleDone, batch_keys: int) -> None:
        done.batches += 1
        now = time.monotonic()
        if journal is not None and now - last_tick[0] >= PROGRESS_EVERY_S:
            last_tick[0] = now
            journal.record(RedisProgress(done.rule, done.batches, done.changed,
                                         done.conflicts))
        progress(min((checked_index[0] + 0.5) / len(checked), 0.99),
                 f"{done.rule}: {done.changed} keys")

    checked_index = [0]
    try:
        with open_keyspace(settings) as ks:
            result.target = ks.describe()
            report("info", f"Redis {result.target}: " + "; ".join(r.describe()
                                                                   for r in checked))
            for n, rule in enumerate(checked):
                checked_index[0] = n
                current = RuleDone(to_text(rule))
                result.rules.append(current)
                _apply(ks, rule, current, cancel, tick)
                report("step", f"{current.rule}: {current.changed} keys"
                       + (f" ({current.merged} merged)" if current.merged else "")
                       + (f"; {current.conflicts} conflicts left untouched: "
                          f"{', '.join(current.conflict_samples[:3])}"
                          if current.conflicts else ""))
    except Cancelled:
        outcome = "cancelled"
        raise Cancelled(f"the Redis migration was cancelled during "
                        f"`{current.rule if current else '?'}` after {result.changed} keys; "
                        f"every key is either migrated or untouched, and running the step "
                        f"again finishes it") from None
    except RedisUnavailable as exc:
        outcome, error = "failed", str(exc)
        raise RedisUnavailable(
            f"{exc} — during the Redis rule `{current.rule if current else '?'}`, after "
            f"{result.changed} keys: each key is either migrated or untouched; the database "
            f"result stands; run the Redis step again to finish", exc.kind) from None
    finally:
        result.seconds = round(time.monotonic() - t0, 3)
        if journal is not None:
            journal.record(RedisMigrated(result.target, direction,
                                         [to_text(r) for r in checked], result.to_dict(),
                                         outcome, error))
    progress(1.0, f"{result.changed} keys migrated")
    report("info", f"Redis: {result.changed} keys changed in {result.seconds:.2f} s"
           + (f", {result.conflicts} conflicts left untouched" if result.conflicts else ""))
    return result


def _apply(ks: Keyspace, rule: Rule, done: RuleDone, cancel: threading.Event | None,
           tick: Tick) -> None:
    try:
        if isinstance(rule, RenameField):
            _rename_field(ks, rule, done, cancel, tick)
        elif isinstance(rule, MoveKey):
            if ks.cluster:
                _move_across_slots(ks, rule, done, cancel, tick)
            else:
                _move(ks, rule, done, cancel, tick)
        else:
            _delete(ks, rule, done, cancel, tick)
    except (redis.exceptions.RedisError, OSError) as exc:
        raise explain(ks.settings, exc) from None


def _conflicts(done: RuleDone, keys: Sequence[bytes]) -> None:
    done.conflicts += len(keys)
    room = max(10 - len(done.conflict_samples), 0)
    done.conflict_samples += [_text(k) for k in keys[:room]]


def _rename_field(ks: Keyspace, rule: RenameField, done: RuleDone,
                  cancel: threading.Event | None, tick: Tick) -> None:
    scripts: dict[int, Any] = {}
    for node, keys in ks.scan(rule.pattern):
        check_cancel(cancel, "Redis migration")
        script = scripts.setdefault(id(node), node.register_script(RENAME_FIELD_LUA))
        if ks.cluster:  # one script per hash slot, pipelined on the node that owns them
            pipe = node.pipeline(transaction=False)
            for group in by_slot(keys):
                script(keys=group, args=[rule.old, rule.new], client=pipe)
            replies = pipe.execute()
        else:
            replies = [script(keys=keys, args=[rule.old, rule.new])]
        for changed, conflicts in replies:
            done.changed += int(changed)
            _conflicts(done, conflicts)
        tick(done, len(keys))


def _move(ks: Keyspace, rule: MoveKey, done: RuleDone, cancel: threading.Event | None,
          tick: Tick) -> None:
    node = ks.primaries[0]
    script = node.register_script(MOVE_LUA)
    for _node, keys in ks.scan(rule.source):
        check_cancel(cancel, "Redis migration")
        pairs = [k for key in keys for k in (key, rule.target_of(key))]
        moved, merged, conflicts = script(keys=pairs)
        done.changed += int(moved)
        done.merged += int(merged)
        _conflicts(done, conflicts)
        tick(done, len(keys))


def _move_across_slots(ks: Keyspace, rule: MoveKey, done: RuleDone,
                       cancel: threading.Event | None, tick: Tick) -> None:
    """Cluster: the target usually lives in another slot (often on another node), where
    RENAME cannot go. Copy (members, scores, TTL), then delete the source; a run stopped
    between the two finds the source again, copies again (a no-op: NX) and deletes it."""
    client = ks.routed
    for _node, keys in ks.scan(rule.source):
        check_cancel(cancel, "Redis migration")
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
            pipe.type(rule.target_of(key))
            pipe.pttl(key)
        replies = pipe.execute()
        copies = client.pipeline(transaction=False)
        moved: list[bytes] = []
        for i, key in enumerate(keys):
            kind, there, ttl = type_of(replies[3 * i]), type_of(replies[3 * i + 1]), \
                int(replies[3 * i + 2])
            if kind == "none":
                continue
            # As MOVE_LUA (and the dry run): only an existing target can conflict; a key
            # of a kind that cannot be merged moves whole to a free target.
            if there != "none" and (there != kind or kind not in MERGEABLE):
                _conflicts(done, [key])
                continue
            target = rule.target_of(key)
            _copy(client, copies, kind, key, target)
            if ttl > 0 and there == "none":
                copies.pexpire(target, ttl)
            if there != "none":
                done.merged += 1
            moved.append(key)
        copies.execute()
        deletes = client.pipeline(transaction=False)
        for key in moved:
            deletes.delete(key)
        deletes.execute()
        done.changed += len(moved)
        tick(done, len(keys))


def _copy(client: Any, pipe: Any, kind: str, source: bytes, target: bytes) -> None:
    """Queue on `pipe` the writes that copy `source` into `target` (merged: what the target
    has wins). A string, list or stream only reaches a free target, so it is copied whole
    (DUMP, RESTORE without a TTL: the caller sets the source's)."""
    if kind == "zset":
        items = client.zrange(source, 0, -1, withscores=True)
        if items:
            pipe.zadd(target, dict(items), nx=True)
    elif kind == "set":
        members = client.smembers(source)
        if members:
            pipe.sadd(target, *members)
    elif kind == "hash":
        for name, value in client.hgetall(source).items():
            pipe.hsetnx(target, name, value)
    else:
        payload = client.dump(source)
        if payload is not None:  # None: it expired since it was scanned
            pipe.restore(target, 0, payload)


def _delete(ks: Keyspace, rule: DeleteKeys, done: RuleDone, cancel: threading.Event | None,
            tick: Tick) -> None:
    for node, keys in ks.scan(rule.pattern):
        check_cancel(cancel, "Redis migration")
        if ks.cluster:
            pipe = node.pipeline(transaction=False)
            for group in by_slot(keys):
                pipe.unlink(*group)
            done.changed += sum(int(n) for n in pipe.execute())
        else:
            done.changed += int(node.unlink(*keys))
        tick(done, len(keys))
