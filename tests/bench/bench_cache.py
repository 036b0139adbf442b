"""Benchmark: clearing the prosumer keys, ours (SCAN + UNLINK) vs the guide's KEYS | xargs DEL.

A fresh redis-server holds --keys keys (default 2M), half of them in the two families the
migration clears (`orders:by_prosumer:*` sorted sets, `prosumer:*` strings), half that must
survive (`orders:{id}` hashes, `orders:by_user:*` sorted sets). Each method runs on a freshly
loaded db while a separate process PINGs in a loop; the table shows the time, the keys
deleted, the worst and 99th-percentile PING the other client saw, and the slowest single
command by the server's own LATENCY monitor (how long it answered nobody else). On one
small machine the PING figures also include CPU contention from the clients themselves.
Run by `make bench`; `--keys 200000` for a quick look.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis
from benchkit import print_table

from wizard.core import cache
from wizard.core.redis_conn import RedisSettings
from wizard.sandbox.servers import RedisServer

CHUNK = 50_000
# Server-side loader: one EVAL writes CHUNK keys, far faster than sending 2M commands.
LOADER = """
local kind, prefix, first, n = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
for i = first, first + n - 1 do
  local key = prefix .. i
  if kind == 'z' then redis.call('ZADD', key, 1761993000000 + i, 'order_' .. i)
  elseif kind == 'h' then
    redis.call('HSET', key, 'orderId', 'order_' .. i, 'userId', 'user_' .. i, 'status', 'OPEN')
  else redis.call('SET', key, '{"walletAddress":"0x' .. i .. '"}') end
end
return n
"""
FAMILIES = (  # (kind, prefix, share of the keys, cleared by the migration)
    ("z", "orders:by_prosumer:prosumer_", 0.25, True),
    ("s", "prosumer:prosumer_", 0.25, True),
    ("h", "orders:order_", 0.35, False),
    ("z", "orders:by_user:user_", 0.15, False),
)


def load(client: redis.Redis, total: int) -> int:
    """Write the key families; returns how many keys match the migration's patterns."""
    client.flushdb()
    script = client.register_script(LOADER)
    matching = 0
    for kind, prefix, share, cleared in FAMILIES:
        count = int(total * share)
        matching += count if cleared else 0
        for first in range(0, count, CHUNK):
            script(args=[kind, prefix, first, min(CHUNK, count - first)])
    return matching


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


def slowest_command_ms(client: redis.Redis) -> float:
    """The longest single command since LATENCY RESET, as the server measured it (events of
    1 ms or more are recorded): how long it could not serve anyone else."""
    events = client.latency_latest()
    return max((float(e[3]) for e in events if e[0] in (b"command", b"fast-command",
                                                         "command", "fast-command")),
               default=0.0)


def measured(server: RedisServer,
             job: Callable[[], int]) -> tuple[float, int, float, float, float]:
    """Run job() while a separate process pings: seconds, its result, max and p99 PING ms,
    and the slowest command the server recorded."""
    ctx = multiprocessing.get_context("fork")  # the password stays in memory, not in argv
    ready, stop = ctx.Event(), ctx.Event()
    receiver, sender = ctx.Pipe(duplex=False)
    pinger = ctx.Process(target=_pinger, args=(server.port, server.password, ready, stop,
                                               sender))
    pinger.start()
    admin = server.client()
    admin.latency_reset()
    if not ready.wait(30):
        pinger.kill()
        raise RuntimeError("the pinging client did not connect")
    start = time.perf_counter()
    try:
        deleted = job()
    finally:
        seconds = time.perf_counter() - start
        stop.set()
    latencies = sorted(receiver.recv())
    pinger.join()
    slowest = slowest_command_ms(admin)
    admin.close()
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else 0.0
    return seconds, int(deleted), max(latencies, default=0.0) * 1000, p99 * 1000, slowest


def guide_way(server: RedisServer, redis_cli: str) -> int:
    """The guide's commands, xargs batching so argv limits hold; REDISCLI_AUTH like a DBA."""
    base = f"{redis_cli} -h 127.0.0.1 -p {server.port} -n 0"
    script = "; ".join(f"{base} KEYS '{p}' | xargs -r -n 10000 {base} DEL"
                       for p in cache.DEFAULT_PATTERNS)
    env = {**os.environ, "REDISCLI_AUTH": server.password}
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                         check=True)
    return sum(int(line) for line in out.stdout.split() if line.strip().isdigit())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=2_000_000, help="keys in the db (half match)")
    args = parser.parse_args()
    redis_cli = shutil.which("redis-cli")
    if redis_cli is None:
        sys.exit("redis-cli not found (apt-get install redis-tools)")
    server = RedisServer.start()
    try:
        client = server.client()
        client.config_set("latency-monitor-threshold", 1)
        settings = RedisSettings.from_url(f"{server.url}/0", password=server.password)
        rows: list[list[object]] = []
        figures: list[tuple[float, float, float, float]] = []
        for name, job in [
            ("ours: SCAN MATCH COUNT 1000 + UNLINK, pipelined",
             lambda: cache.delete(settings).total),
            ("guide: redis-cli KEYS | xargs redis-cli DEL", lambda: guide_way(server, redis_cli)),
        ]:
            started = time.perf_counter()
            matching = load(client, args.keys)
            size = client.dbsize()
            print(f"loaded {size} keys ({matching} matching) in "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
            seconds, deleted, max_ping, p99, slowest = measured(server, job)
            left = client.dbsize()
            assert deleted == matching, f"{name}: deleted {deleted} of {matching}"
            assert left == size - matching, f"{name}: {left} keys left, not {size - matching}"
            rows.append([name, f"{seconds:.2f}", deleted, f"{max_ping:.1f}", f"{p99:.2f}",
                         f"{slowest:.0f}" if slowest else "< 1", left])
            figures.append((seconds, max_ping, p99, max(slowest, 1.0)))
        ours, guide = figures
        rows.append(["ratio guide / ours", f"{guide[0] / ours[0]:.2f}x", "",
                     f"{guide[1] / max(ours[1], 0.001):.1f}x",
                     f"{guide[2] / max(ours[2], 0.001):.2f}x", f"{guide[3] / ours[3]:.0f}x", ""])
        print_table(f"Redis: delete {matching} prosumer keys among {size}, side by side "
                    "(max/p99 PING of a concurrent client)",
                    ["method", "seconds", "keys deleted", "max PING ms", "p99 PING ms",
                     "slowest command ms (server)", "keys left"], rows)
        client.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
