"""Benchmark: the Redis step, our migration vs SCAN+UNLINK vs the guide's KEYS | xargs DEL
vs FLUSHALL, with the longest stall a concurrent client saw in each.

A fresh redis-server is loaded (server-side Lua, in chunks) with --keys keys (default 2M):
--orders `orders:{id}` hashes shaped like the application's (default 1M, every field the
pre-rename RedisOrdersService.setOrder writes, owner in `prosumerId`), one
`orders:by_prosumer:{id}` sorted set per owner (--users, default 300k) holding its order ids
with their timestamps as scores, `orders:all`, `orders:by_type:*`, `orders:by_status:*`,
`prosumer:*` profile strings (5% of the keys) and filler (`telemetry:*`, `price:*`,
`session:*`) up to --keys. `--scale 0.1` makes every figure ten times smaller.

Each method runs on a freshly loaded db while a separate process PINGs in a loop:

  (a) ours: `redis_migrate.migrate(settings, DEFAULT_RULES)` (rename prosumerId → userId in
      every order hash, move orders:by_prosumer:* → orders:by_user:*, delete prosumer:*);
  (b) SCAN + UNLINK (`cache.delete`) of the same keys the rules touch: the order hashes
      (all of them have prosumerId), the by_prosumer sets and prosumer:* — the anchor;
  (c) the guide's `redis-cli KEYS '<family>' | xargs redis-cli DEL` for the same three
      families (password through REDISCLI_AUTH, never -a);
  (d) FLUSHALL.

The methods are interleaved over --rounds rounds and the fastest round of each is shown.
Columns: seconds, keys changed (ours) or deleted, ratio to (b), the longest and the 99th
percentile PING of the concurrent client, the slowest event in the server's own LATENCY
monitor (threshold 1 ms: how long it answered nobody), and how many commands SLOWLOG saw
run longer than 10 ms (with the slowest). On a small machine the PING figures also include
CPU contention between the server, this client and the pinger. A profile of (a) follows:
per rule its batches and seconds, and the server's INFO commandstats. After (a) the
bench checks that the data really was migrated (sampled hashes have userId and no
prosumerId, sampled by_user sets hold their owner's orders with their scores, nothing of
the old families is left, orders:all and the filler unchanged).

Targets (the issue): (a) within 2x the time of (b), and no PING stall over 10 ms.
`--experiment` adds variants of (a) that are NOT shipped (e1 to e4, built from the engine's
own scripts): what changes to redis_migrate would gain. Run by `make bench` (without
them); `--scale 0.1` for a quick look.
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis
from benchkit import print_table

from wizard.core import cache, redis_keyspace, redis_migrate
from wizard.core.redis_conn import RedisSettings
from wizard.core.redis_rules import DEFAULT_RULES, DeleteKeys, MoveKey, RenameField, literal_prefix
from wizard.sandbox.servers import RedisServer

CHUNK = 20_000  # keys (or orders) per loader EVAL
BASE_MS = 1_761_993_000_000
USER_MS = 1_730_534_400_000
TIME_TARGET = 2.0  # ours / SCAN+UNLINK
STALL_TARGET_MS = 10.0
ANCHOR_PATTERNS = ("orders:order_*", "orders:by_prosumer:*", "prosumer:*")
STATUSES = ("OPEN", "PARTIALLY_FILLED", "FILLED", "CANCELLED")
SAMPLES = 200
SLOWLOG_LEN = 1000
EXPERIMENT_SCAN_COUNT = 1000  # the engine's SCAN_COUNT

# Server-side loader: one EVAL writes one chunk, far faster than sending millions of
# commands. Ids are computed the same way here and in uid()/order_id() below.
LOADER = """
local kind, first, n, users = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local statuses = {'OPEN', 'PARTIALLY_FILLED', 'FILLED', 'CANCELLED'}
local function uid(u)
  return string.format('prosumer_%d_%06x', 1730534400000 + u * 1013, u)
end
local function iso(ms)
  local s = math.floor(ms / 1000)
  return string.format('2025-11-%02dT%02d:%02d:%02d.%03dZ', 1 + math.floor(s / 86400) % 28,
                       math.floor(s / 3600) % 24, math.floor(s / 60) % 60, s % 60, ms % 1000)
end
if kind == 'orders' then
  local all, bid, ask, by_status = {}, {}, {}, {{}, {}, {}, {}}
  for i = first, first + n - 1 do
    local id = string.format('order_%d_%06x', 1761993000000 + i * 10, i)
    local u = i % users
    local owner = uid(u)
    local created = 1761993000000 + i * 10
    local price, amount = 1500 + (i % 7) * 25, (i % 40) + 1
    local otype = (i % 2 == 0) and 'BID' or 'ASK'
    local status = i % 4 + 1
    local at = iso(created)
    redis.call('HSET', 'orders:' .. id, 'orderId', id, 'prosumerId', owner,
      'walletAddress', '0x' .. redis.sha1hex(owner), 'orderType', otype, 'pair', 'ETK/IDRS',
      'amountEtk', tostring(amount), 'priceIdrsPerEtk', tostring(price),
      'totalIdrsValue', tostring(amount * price), 'statusOnChain', statuses[status],
      'createdAtOnChain', at, 'updatedAtCache', at,
      'blockchainTxHashPlaced', '0x' .. redis.sha1hex(id) .. string.format('%024x', i),
      'blockchainTxHashFilled', '', 'blockchainTxHashCancelled', '')
    redis.call('ZADD', 'orders:by_prosumer:' .. owner, created, id)
    all[#all + 1] = id
    local side = (otype == 'BID') and bid or ask
    side[#side + 1] = price * 100
    side[#side + 1] = id
    local st = by_status[status]
    st[#st + 1] = created
    st[#st + 1] = id
  end
  for j = 1, #all, 5000 do
    redis.call('SADD', 'orders:all', unpack(all, j, math.min(j + 4999, #all)))
  end
  local function zadd(key, items)
    for j = 1, #items, 5000 do
      redis.call('ZADD', key, unpack(items, j, math.min(j + 4999, #items)))
    end
  end
  zadd('orders:by_type:BID', bid)
  zadd('orders:by_type:ASK', ask)
  for s = 1, 4 do zadd('orders:by_status:' .. statuses[s], by_status[s]) end
elseif kind == 'profiles' then
  for u = first, first + n - 1 do
    local owner = uid(u)
    redis.call('SET', 'prosumer:' .. owner .. ':profile',
      '{"prosumerId":"' .. owner .. '","walletAddress":"0x' .. redis.sha1hex(owner) .. '"}',
      'EX', 86400)
  end
else  -- filler the migration must not touch: meter series, readings, price ticks, sessions
  for i = first, first + n - 1 do
    local m = i % 20
    if m == 0 then
      local key = string.format('telemetry:timeseries:METER%08d', i)
      for t = 0, 3 do redis.call('ZADD', key, 1761993000000 + t * 300000,
        string.format('{"t":%d,"w":%d}', 1761993000000 + t * 300000, (i + t) % 900)) end
    elseif m < 10 then
      redis.call('SET', string.format('telemetry:reading:METER%08d', i),
        string.format('{"w":%d,"v":230.%d}', i % 900, i % 10))
    elseif m < 15 then
      redis.call('SET', string.format('price:tick:%d', i), tostring(1500 + i % 50))
    else
      redis.call('HSET', string.format('session:%d', i), 'sub', uid(i % users), 'exp',
        tostring(1761993000 + i))
    end
  end
end
return n
"""


def uid(u: int) -> str:
    return f"prosumer_{USER_MS + u * 1013}_{u:06x}"


def order_id(i: int) -> str:
    return f"order_{BASE_MS + i * 10}_{i:06x}"


@dataclass(frozen=True)
class Shape:
    keys: int
    orders: int
    users: int
    profiles: int

    @property
    def singles(self) -> int:
        return 7  # orders:all, two by_type, four by_status

    @property
    def filler(self) -> int:
        return self.keys - self.orders - self.users - self.profiles - self.singles - 3

    @property
    def touched(self) -> int:
        """Keys the rules change: every order hash, every by_prosumer set, every profile."""
        return self.orders + self.users + self.profiles


def load(client: redis.Redis, shape: Shape) -> int:
    """Write the db; returns DBSIZE."""
    client.flushall()
    script = client.register_script(LOADER)
    for kind, count in (("orders", shape.orders), ("profiles", shape.profiles),
                        ("filler", shape.filler)):
        for first in range(0, count, CHUNK):
            script(args=[kind, first, min(CHUNK, count - first), shape.users])
    client.set("telemetry:latest:data", f'{{"meters":{shape.filler}}}')
    client.set("telemetry:latest:status", '{"online":true}')
    client.set("price:current", '{"idrsPerEtk":1500}')
    size = int(client.dbsize())
    assert size == shape.keys, f"loaded {size} keys, meant {shape.keys}"
    return size


# -- the concurrent client and the server's own view ----------------------------------------

def _pinger(port: int, password: str, ready: Event, stop: Event, out: Connection) -> None:
    """Another client of the server: PING in a loop, report the latencies seen."""
    client = redis.Redis(host="127.0.0.1", port=port, password=password)
    client.ping()
    ready.set()
    latencies = []
    while not stop.is_set():
        start = time.perf_counter()
        client.ping()
        latencies.append(time.perf_counter() - start)
    out.send(latencies)
    client.close()


def slowest_event(client: redis.Redis) -> tuple[float, str]:
    """The longest event since LATENCY RESET as the server measured it (commands, scripts,
    frees; 1 ms or more are recorded): how long it could not serve anyone else, and its
    name."""
    return max(((float(e[3]), str(e[0])) for e in client.latency_latest()),
               default=(0.0, ""))


def _command_text(command: bytes | str) -> str:
    text = command.decode(errors="replace") if isinstance(command, bytes) else command
    words = text.split()
    return " ".join(w[:24] for w in words[:2]) + (" ..." if len(words) > 2 else "")


def cpu_wait(pid: int | None) -> tuple[float, int]:
    """Seconds the process's main thread has waited for a CPU while runnable, and how often
    it was preempted (Linux /proc; zeros elsewhere)."""
    try:
        waited = int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
        status = Path(f"/proc/{pid}/status").read_text()
    except (OSError, IndexError, ValueError):
        return 0.0, 0
    switches = next((int(line.split()[1]) for line in status.splitlines()
                     if line.startswith("nonvoluntary_ctxt_switches")), 0)
    return waited, switches


@dataclass
class Figures:
    seconds: float
    count: int
    max_ping_ms: float
    p99_ms: float
    server_ms: float
    server_event: str
    slow: list[tuple[float, str]]  # SLOWLOG: (ms, command and first argument) over 10 ms
    waited_s: float  # the server's main thread, runnable but not running (schedstat)
    preempted: int  # its involuntary context switches


def measured(server: RedisServer, job: Callable[[], int]) -> Figures:
    """Run job() while a separate process pings."""
    ctx = multiprocessing.get_context("fork")  # the password stays in memory, not in argv
    ready, stop = ctx.Event(), ctx.Event()
    receiver, sender = ctx.Pipe(duplex=False)
    pinger = ctx.Process(target=_pinger, args=(server.port, server.password, ready, stop,
                                               sender))
    pinger.start()
    admin = server.client()
    admin.latency_reset()
    admin.slowlog_reset()
    if not ready.wait(30):
        pinger.kill()
        raise RuntimeError("the pinging client did not connect")
    time.sleep(0.05)  # a few PINGs before, so a stall at the very start is seen
    waited0, preempted0 = cpu_wait(server.pid)
    start = time.perf_counter()
    try:
        count = job()
    finally:
        seconds = time.perf_counter() - start
        waited1, preempted1 = cpu_wait(server.pid)
        time.sleep(0.05)
        stop.set()
    latencies = sorted(receiver.recv())
    pinger.join()
    slowest, event = slowest_event(admin)
    slow = sorted(((e["duration"] / 1000, _command_text(e["command"]))
                   for e in admin.slowlog_get(SLOWLOG_LEN)), reverse=True)
    admin.close()
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else 0.0
    return Figures(seconds, int(count), max(latencies, default=0.0) * 1000, p99 * 1000,
                   slowest, event, slow, waited1 - waited0, preempted1 - preempted0)


# -- the methods -----------------------------------------------------------------------------

class Ours:
    """(a), with a profile of the run: per rule its batches, keys and seconds (from the
    engine's per-batch progress calls) and the server's INFO commandstats."""

    def __init__(self, settings: RedisSettings, shape: Shape) -> None:
        self.settings, self.shape = settings, shape
        self.ticks: list[tuple[float, str]] = []
        self.rules: list[redis_migrate.RuleDone] = []
        self.started = 0.0

    def __call__(self) -> int:
        self.ticks = []
        self.started = time.perf_counter()
        result = redis_migrate.migrate(
            self.settings, DEFAULT_RULES,
            progress=lambda _f, what: self.ticks.append((time.perf_counter(), what)))
        self.rules = result.rules
        shape = self.shape
        by_rule = [r.changed for r in result.rules]
        assert by_rule == [shape.orders, shape.users, shape.profiles], \
            f"ours changed {by_rule}, meant {[shape.orders, shape.users, shape.profiles]}"
        assert result.conflicts == 0, f"ours left {result.conflicts} conflicts"
        return result.changed

    def per_rule(self) -> list[tuple[str, int, int, float, float]]:
        """(rule, batches, keys, seconds, slowest batch seconds) from the progress ticks."""
        out = []
        previous = self.started
        for done in self.rules:
            mine = [t for t, what in self.ticks if what.startswith(done.rule + ":")]
            end = mine[-1] if mine else previous
            gaps = [b - a for a, b in zip([previous, *mine], mine, strict=False)]
            out.append((done.rule, done.batches, done.changed, end - previous,
                        max(gaps, default=0.0)))
            previous = end
        return out


Histogram = dict[str, dict[str, object]]


def histogram_text(hist: Histogram, command: str) -> str:
    """LATENCY HISTOGRAM's cumulative buckets as counts per duration band."""
    entry = hist.get(command)
    if not entry:
        return "none"
    cumulative = cast("dict[int, int]", entry["histogram_usec"])
    bands, below = [], 0
    for bound in sorted(cumulative):
        n = cumulative[bound] - below
        below = cumulative[bound]
        if n and bound >= 512:
            bands.append(f"{n} up to {bound / 1000:.1f} ms")
    return f"{entry['calls']} calls, " + (", ".join(bands) if bands else "all under 0.5 ms")


def print_profile(ours: Ours, seconds: float, stats: dict[str, dict[str, float]],
                  hist: Histogram) -> None:
    print(f"\nprofile of (a), {seconds:.2f} s in all:")
    for rule, batches, keys, secs, slowest in ours.per_rule():
        print(f"  {rule}: {batches} batches, {keys} keys, {secs:.2f} s "
              f"({1000 * secs / max(batches, 1):.2f} ms a batch, slowest "
              f"{1000 * slowest:.1f} ms, {keys / max(batches, 1):.0f} keys a batch)")
    busy = 0.0
    for name in sorted(stats, key=lambda n: -stats[n]["usec"]):
        st = stats[name]
        if name in ("cmdstat_evalsha", "cmdstat_scan", "cmdstat_unlink"):
            busy += st["usec"] / 1e6
        if st["calls"] < 100 or name == "cmdstat_ping":  # the pinger, the bench's own
            continue
        print(f"  server {name[8:]} (in scripts too): {int(st['calls'])} calls, "
              f"{st['usec'] / 1e6:.2f} s, {st['usec_per_call']:.1f} us a call")
    print(f"  server busy with our top-level commands: {busy:.2f} s of {seconds:.2f} s "
          f"({100 * busy / seconds:.0f}%); the rest is round trips and the client")
    for command in ("evalsha", "scan"):
        print(f"  {command} by duration (LATENCY HISTOGRAM, bands of 0.5 ms and more): "
              f"{histogram_text(hist, command)}", flush=True)


def anchor(settings: RedisSettings) -> int:
    return cache.delete(settings, ANCHOR_PATTERNS).total


def guide(server: RedisServer, redis_cli: str) -> int:
    """The guide's commands, one KEYS | xargs DEL per family; REDISCLI_AUTH like a DBA."""
    base = f"{redis_cli} -h 127.0.0.1 -p {server.port} -n 0"
    script = "; ".join(f"{base} KEYS '{p}' | xargs -r {base} DEL" for p in ANCHOR_PATTERNS)
    env = {**os.environ, "REDISCLI_AUTH": server.password}
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                         check=True)
    return sum(int(line) for line in out.stdout.split() if line.strip().isdigit())


def flushall(server: RedisServer) -> int:
    client = server.client()  # no socket timeout: a FLUSHALL of 2M keys takes seconds
    try:
        size = int(client.dbsize())  # one fast command, then the flush (sync: the default)
        client.flushall()
        return size
    finally:
        client.close()


# -- experiments (--experiment): NOT shipped, a measurement of what the engine could do ----

# e4's rename script: the same outcome as redis_migrate.RENAME_FIELD_LUA (changed, or a
# conflict when both fields exist with different values) in 3 calls a key instead of 5: no
# TYPE (the walk is SCAN TYPE hash; a key that changed type since is skipped by pcall) and
# HSETNX instead of HGET new + HSET.
LEAN_RENAME_LUA = """
local changed, conflicts = 0, {}
for _, key in ipairs(KEYS) do
  local v = redis.pcall('HGET', key, ARGV[1])
  if type(v) == 'string' then
    if redis.call('HSETNX', key, ARGV[2], v) == 1 or redis.call('HGET', key, ARGV[2]) == v then
      redis.call('HDEL', key, ARGV[1])
      changed = changed + 1
    else
      conflicts[#conflicts + 1] = key
    end
  end
end
return {changed, conflicts}
"""

Queued = tuple[Callable[..., object], list[bytes], list[str], Callable[[object], None]]


def _pipelined_walk(client: redis.Redis, match: str, scan_type: str | None,
                    jobs_for: Callable[[list[bytes]], list[Queued]]) -> None:
    """SCAN a family; each round trip runs the scripts of the previous reply and asks for
    the next one (as cache.delete does), instead of SCAN, wait, EVALSHA, wait."""
    cursor, started = 0, False
    queued: list[Queued] = []
    while True:
        pipe = client.pipeline(transaction=False)
        for script, keys, args, _sink in queued:
            script(keys=keys, args=args, client=pipe)
        more = not started or cursor != 0
        if more:
            pipe.scan(cursor, match=match, count=EXPERIMENT_SCAN_COUNT, _type=scan_type)
        replies = pipe.execute()
        for (_s, _k, _a, sink), reply in zip(queued, replies, strict=False):
            sink(reply)
        if not more:
            return
        started = True
        cursor, keys = replies[-1]
        queued = jobs_for(list(keys)) if keys else []


def experimental_migrate(settings: RedisSettings, *, lean: bool,
                         lean_script: bool = False) -> list[int]:
    """The engine's own scripts (RENAME_FIELD_LUA, MOVE_LUA, unchanged) and rule order, on
    one Redis, with the SCAN of the next batch pipelined behind the current batch's script.
    `lean` also filters the rename walk with SCAN TYPE hash (the by_prosumer sets,
    orders:all, by_type and by_status never reach the script) and lets the move and the
    delete share one walk, MATCH *prosumer:* split by prefix (as cache.scan_passes does):
    two walks of the keyspace instead of three; `lean_script` runs LEAN_RENAME_LUA. Returns
    the keys changed per rule."""
    rename_rule, move_rule, delete_rule = DEFAULT_RULES
    assert isinstance(rename_rule, RenameField)
    assert isinstance(move_rule, MoveKey)
    assert isinstance(delete_rule, DeleteKeys)
    client = settings.client()
    changed = [0, 0, 0]

    def add(n: int, pos: int = 0) -> Callable[[object], None]:
        def sink(reply: object) -> None:
            changed[n] += int(reply if isinstance(reply, int)
                              else cast("list[int]", reply)[pos])
        return sink

    rename = client.register_script(LEAN_RENAME_LUA if lean_script
                                    else redis_migrate.RENAME_FIELD_LUA)
    move = client.register_script(redis_migrate.MOVE_LUA)
    fields = [rename_rule.old, rename_rule.new]
    move_prefix = move_rule.source_prefix.encode()
    delete_prefix = literal_prefix(delete_rule.pattern).encode()

    def unlink(keys: list[bytes], args: list[str], client: redis.client.Pipeline) -> object:
        return client.unlink(*keys)

    def moves(keys: list[bytes]) -> list[Queued]:
        pairs = [k for key in keys for k in (key, move_rule.target_of(key))]
        return [(move, pairs, [], add(1))] if pairs else []

    def deletes(keys: list[bytes]) -> list[Queued]:
        return [(unlink, keys, [], add(2))] if keys else []

    try:
        _pipelined_walk(client, rename_rule.pattern, "hash" if lean else None,
                        lambda keys: [(rename, keys, fields, add(0))])
        if lean:
            walk = cache.scan_passes([move_rule.source, delete_rule.pattern])[0]
            assert len(walk.patterns) == 2, walk  # one shared walk: MATCH *prosumer:*
            _pipelined_walk(client, walk.match, None, lambda keys: moves(
                [k for k in keys if k.startswith(move_prefix)]) + deletes(
                [k for k in keys if k.startswith(delete_prefix)]))
        else:
            _pipelined_walk(client, move_rule.source, None, moves)
            _pipelined_walk(client, delete_rule.pattern, None, deletes)
    finally:
        client.close()
    return changed


def experiment(settings: RedisSettings, shape: Shape, *, lean: bool,
               lean_script: bool = False) -> int:
    changed = experimental_migrate(settings, lean=lean, lean_script=lean_script)
    assert changed == [shape.orders, shape.users, shape.profiles], \
        f"experiment changed {changed}"
    return sum(changed)


def engine_with_scan_count(ours: Ours, count: int) -> int:
    """The shipped engine, its module's SCAN COUNT patched for this call only."""
    saved = redis_keyspace.SCAN_COUNT
    redis_keyspace.SCAN_COUNT = count
    try:
        return ours()
    finally:
        redis_keyspace.SCAN_COUNT = saved


# -- checks ----------------------------------------------------------------------------------

def count_matching(client: redis.Redis, match: str) -> int:
    return sum(1 for _ in client.scan_iter(match=match, count=10_000))


def verify_migrated(client: redis.Redis, shape: Shape, size: int) -> None:
    """The figure of (a) counts only if the data is really in its new shape."""
    rng = random.Random(7)
    for i in rng.sample(range(shape.orders), min(SAMPLES, shape.orders)):
        fields = client.hgetall(f"orders:{order_id(i)}")
        assert "prosumerId" not in fields, f"order {i} still has prosumerId"
        assert fields.get("userId") == uid(i % shape.users), f"order {i}: {fields}"
        assert len(fields) == 14, f"order {i} has {len(fields)} fields"
    for u in rng.sample(range(shape.users), min(SAMPLES, shape.users)):
        want = {order_id(i): float(BASE_MS + i * 10)
                for i in range(u, shape.orders, shape.users)}
        got = dict(cast("list[tuple[str, float]]", client.zrange(
            f"orders:by_user:{uid(u)}", 0, -1, withscores=True)))
        assert got == want, f"orders:by_user:{uid(u)} holds {got}, not {want}"
        assert not client.exists(f"orders:by_prosumer:{uid(u)}")
    for match in ("orders:by_prosumer:*", "prosumer:*"):
        left = count_matching(client, match)
        assert left == 0, f"{left} {match} keys left after ours"
    assert count_matching(client, "orders:by_user:*") == shape.users
    assert client.scard("orders:all") == shape.orders
    assert client.zcard("orders:by_type:BID") + client.zcard("orders:by_type:ASK") \
        == shape.orders
    assert int(client.dbsize()) == size - shape.profiles


def verify_deleted(client: redis.Redis, name: str, shape: Shape, size: int,
                   figures: Figures) -> None:
    assert figures.count == shape.touched, \
        f"{name}: deleted {figures.count}, meant {shape.touched}"
    left = int(client.dbsize())
    assert left == size - shape.touched, f"{name}: {left} keys left"


# -- main ------------------------------------------------------------------------------------

def shape_of(args: argparse.Namespace) -> Shape:
    keys = args.keys or int(2_000_000 * args.scale)
    orders = args.orders or int(1_000_000 * args.scale)
    users = args.users or int(300_000 * args.scale)
    profiles = args.profiles or int(keys * 0.05)
    shape = Shape(keys, orders, users, profiles)
    if shape.filler < 0 or users > orders:
        sys.exit(f"--keys {keys} cannot hold {orders} orders, {users} owner sets and "
                 f"{profiles} profiles (and owners need an order each)")
    return shape


def server_ms(f: Figures) -> str:
    return f"{f.server_ms:.0f} ({f.server_event})" if f.server_ms else "< 1"


def slow_text(f: Figures) -> str:
    """How many commands ran longer than the stall target, and the slowest of them."""
    if not f.slow:
        return "0"
    ms, what = f.slow[0]
    return f"{len(f.slow)} (slowest {ms:.0f} ms: {what})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply the default sizes (2M keys, 1M orders, 300k owners)")
    parser.add_argument("--keys", type=int, default=0, help="keys in the db")
    parser.add_argument("--orders", type=int, default=0, help="orders:{id} hashes")
    parser.add_argument("--users", type=int, default=0, help="owners (by_prosumer sets)")
    parser.add_argument("--profiles", type=int, default=0,
                        help="prosumer:* strings (default 5%% of the keys)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (best kept)")
    parser.add_argument("--methods", default="abcd", help="which of a, b, c, d to run")
    parser.add_argument("--experiment", action="store_true",
                        help="also run variants of (a) that are NOT shipped (e1 to e4): "
                             "what changes in redis_migrate would gain")
    parser.add_argument("--pin", action="store_true",
                        help="pin redis-server's main thread to CPU 0 and this bench and its "
                             "pinger to the others, so the server is not preempted by them")
    args = parser.parse_args()
    shape = shape_of(args)
    redis_cli = shutil.which("redis-cli")
    if redis_cli is None:
        sys.exit("redis-cli not found (apt-get install redis-tools)")
    server = RedisServer.start()
    try:
        if args.pin:
            cpus = sorted(os.sched_getaffinity(0))
            if len(cpus) < 2:
                sys.exit("--pin needs two CPUs")
            os.sched_setaffinity(server.pid or 0, {cpus[0]})
            os.sched_setaffinity(0, set(cpus[1:]))  # the pinger, forked later, inherits it
            print(f"pinned: redis-server on CPU {cpus[0]}, the clients on {cpus[1:]}")
        client = server.client()
        client.config_set("latency-monitor-threshold", 1)
        client.config_set("slowlog-log-slower-than", int(STALL_TARGET_MS * 1000))
        client.config_set("slowlog-max-len", SLOWLOG_LEN)
        settings = RedisSettings.from_url(f"{server.url}/0", password=server.password)
        ours = Ours(settings, shape)
        methods: dict[str, tuple[str, Callable[[], int]]] = {
            "a": ("(a) ours: redis_migrate.migrate(DEFAULT_RULES)", ours),
            "b": ("(b) SCAN + UNLINK of the same keys (cache.delete)",
                  lambda: anchor(settings)),
            "c": ("(c) guide: KEYS | xargs redis-cli DEL", lambda: guide(server, redis_cli)),
            "d": ("(d) FLUSHALL", lambda: flushall(server)),
            "e1": ("EXPERIMENT (not shipped) e1: (a)'s scripts, next SCAN pipelined",
                   lambda: experiment(settings, shape, lean=False)),
            "e2": ("EXPERIMENT (not shipped) e2: e1 + SCAN TYPE hash + 2 walks, not 3",
                   lambda: experiment(settings, shape, lean=True)),
            "e3": ("EXPERIMENT (not shipped) e3: (a) with SCAN COUNT 2000",
                   lambda: engine_with_scan_count(Ours(settings, shape), 2000)),
            "e4": ("EXPERIMENT (not shipped) e4: e2 + a 3-call rename script",
                   lambda: experiment(settings, shape, lean=True, lean_script=True)),
        }
        chosen = [m for m in "abcd" if m in args.methods]
        if args.experiment:
            chosen += ["e1", "e2", "e3", "e4"]
        best: dict[str, Figures] = {}
        profile: tuple[Ours, dict[str, dict[str, float]], Histogram] | None = None
        size = shape.keys
        for round_no in range(1, args.rounds + 1):
            for m in chosen:
                name, job = methods[m]
                started = time.perf_counter()
                size = load(client, shape)
                loaded = time.perf_counter() - started
                client.config_resetstat()
                figures = measured(server, job)
                stats = client.info("commandstats")
                hist = cast("Histogram", cast("Any", client).execute_command(
                    "LATENCY", "HISTOGRAM", "evalsha", "scan"))
                if m == "a" or m.startswith("e"):
                    verify_migrated(client, shape, size)
                elif m in "bc":
                    verify_deleted(client, name, shape, size, figures)
                else:
                    assert int(client.dbsize()) == 0
                    assert figures.count == size
                print(f"round {round_no} {name}: {figures.seconds:.2f} s, {figures.count} "
                      f"keys, max PING {figures.max_ping_ms:.1f} ms, p99 "
                      f"{figures.p99_ms:.2f} ms, server {server_ms(figures)}, "
                      f"{slow_text(figures)}, server waited {figures.waited_s:.2f} s for a "
                      f"CPU ({figures.preempted} preemptions) (db of {size} keys loaded in "
                      f"{loaded:.1f} s)",
                      flush=True)
                if m not in best or figures.seconds < best[m].seconds:
                    best[m] = figures
                    if m == "a":
                        profile = (copy.copy(ours), stats, hist)
        base = best.get("b")
        rows: list[list[object]] = []
        for m in chosen:
            f = best[m]
            rows.append([methods[m][0], f"{f.seconds:.2f}", f.count,
                         f"{f.seconds / base.seconds:.2f}x" if base else "-",
                         f"{f.max_ping_ms:.1f}", f"{f.p99_ms:.2f}", server_ms(f),
                         slow_text(f), f"{f.waited_s:.2f} ({f.preempted})"])
        print_table(
            f"Redis: {shape.orders} order hashes, {shape.users} per-owner sets and "
            f"{shape.profiles} prosumer:* among {size} keys; best of {args.rounds} "
            f"interleaved rounds, a concurrent client PINGing",
            ["method", "seconds", "keys changed/deleted", "ratio to (b)",
             "longest PING ms", "p99 PING ms", "server LATENCY max ms (event)",
             f"commands > {STALL_TARGET_MS:g} ms (SLOWLOG)",
             "server waited for a CPU s (preemptions)"], rows)
        if "a" in best:
            a = best["a"]
            if base:
                ratio = a.seconds / base.seconds
                print(f"target: ours <= {TIME_TARGET:g}x SCAN+UNLINK: {ratio:.2f}x — "
                      f"{'met' if ratio <= TIME_TARGET else 'NOT met'}")
            stall = max(a.max_ping_ms, a.server_ms)
            print(f"target: longest stall <= {STALL_TARGET_MS:g} ms: PING "
                  f"{a.max_ping_ms:.1f} ms, server {a.server_ms:.0f} ms — "
                  f"{'met' if stall <= STALL_TARGET_MS else 'NOT met'}")
            print("ours verified: sampled hashes have userId and no prosumerId, sampled "
                  "by_user sets hold their orders and scores, no old keys left", flush=True)
            if profile is not None:
                print_profile(profile[0], a.seconds, profile[1], profile[2])
        client.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
