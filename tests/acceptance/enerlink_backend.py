"""Acceptance: the real EnerLink backend (post-rename head da9de11) cancels a pre-rename order.

Not collected by pytest (no test_ prefix). It starts a sandbox (PostgreSQL + a
password-protected Redis, 40 sample users, app-shaped pre-rename order book in Redis db 0,
the db the backend uses), migrates the schema with the wizard, runs the real backend, logs
in as a sample user and calls `POST /api/v1/trading/cancel-order` on one of that user's
pre-rename OPEN orders twice: before the wizard's Redis step (the order hash still has
`prosumerId`) and after it. It prints both HTTP answers and the SQL the backend ran for
the wallet-ownership check (PostgreSQL's log_statement), and exits 0 when:

- before the Redis step the answer is 400 "Unauthorized: You do not own this order";
- after it the request gets past the ownership, status and wallet checks, i.e. the
  answer is neither of the backend's 400s but its blockchain-call failure (no chain here).

How to run (local values only; nothing leaves 127.0.0.1):

    git -C /work/.mirror/p2p-energy-trading+backend/repo archive da9de11 \\
        | (mkdir -p /tmp/enerlink-backend && tar -x -C /tmp/enerlink-backend)
    cd /tmp/enerlink-backend && npm ci --no-audit --no-fund --ignore-scripts && npx nest build
    cd /work/main && .venv/bin/python tests/acceptance/enerlink_backend.py \\
        [--backend /tmp/enerlink-backend]

The sample users' password hash has no known plaintext, so the script sets a fresh random
password (bcryptjs, cost 12, as the backend hashes) on the one user it logs in as.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from wizard.core import jobs, redis_migrate
from wizard.core.plan import UP
from wizard.core.redis_conn import RedisSettings
from wizard.core.redis_rules import DEFAULT_RULES
from wizard.sandbox.sandbox import Sandbox
from wizard.sandbox.seed import user_id
from wizard.sandbox.servers import free_port

USERS = 40
DEFAULT_BACKEND = Path(tempfile.gettempdir()) / "enerlink-backend"
BOOT_TIMEOUT_S = 120.0


def _http(method: str, url: str, body: dict[str, Any] | None = None,
          token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (http://127.0.0.1)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def _bcrypt(backend: Path, password: str) -> str:
    """A bcryptjs hash (cost 12), made by the backend's own bcryptjs."""
    out = subprocess.run(
        ["node", "-e", "process.stdout.write(require('bcryptjs').hashSync("
                       "process.env.PW, 12))"],
        cwd=backend, env={**os.environ, "PW": password}, capture_output=True, text=True,
        check=True)
    return out.stdout.strip()


def _pick_user(box: Sandbox) -> tuple[int, str, str, bool]:
    """A sample user with an OPEN order and no token_blacklist row (the JWT strategy
    refuses blacklisted users): (index, order id, wallet address, is a BID)."""
    with box.redis.client() as r, box.owner.connect() as conn:
        blacklisted = {row[0] for row in conn.execute(
            "SELECT prosumer_id FROM token_blacklist WHERE is_active")}
        for i in range(USERS):
            uid = user_id(i)
            if uid in blacklisted:
                continue
            for oid in r.zrange(f"orders:by_prosumer:{uid}", 0, -1):
                h = r.hgetall(f"orders:{oid}")
                if h.get("statusOnChain") == "OPEN":
                    return i, oid, h["walletAddress"], h["orderType"] == "BID"
    raise SystemExit("no sample user with an OPEN order and no blacklist row")


def _start_backend(backend: Path, box: Sandbox, port: int, log: Path) -> subprocess.Popen[bytes]:
    dead = free_port()  # nothing listens there: the chain, MQTT and MinIO are absent
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", str(backend)),
        "NODE_ENV": "development", "PORT": str(port),
        "DB_HOST": box.owner.host, "DB_PORT": str(box.owner.port),
        "DB_USER": box.owner.user, "DB_PASS": box.owner.password or "",
        "DB_NAME": box.owner.dbname, "DB_SCHEMA": "public",
        "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(box.redis.port),
        "REDIS_PASSWORD": box.redis.password,
        "JWT_SECRET": secrets.token_urlsafe(32), "JWT_EXPIRES_IN": "1h",
        "WALLET_ENCRYPTION_KEY": secrets.token_urlsafe(32),
        "BLOCKCHAIN_RPC_URL": f"http://127.0.0.1:{dead}", "BLOCKCHAIN_CHAIN_ID": "1337",
        "MQTT_BROKER_URL": f"mqtt://127.0.0.1:{dead}",
        "MINIO_ENDPOINT": "127.0.0.1", "MINIO_PORT": str(dead),
        "AUTO_SETTLEMENT_ENABLED": "false",
    }
    fh = log.open("wb")
    proc = subprocess.Popen(["node", "dist/src/main.js"], cwd=backend, env=env,
                            stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"backend exited with {proc.returncode}:\n"
                             + log.read_text(errors="replace")[-4000:])
        try:
            status, _ = _http("GET", f"http://127.0.0.1:{port}/health/live")
            if status < 500:
                return proc
        except OSError:
            pass
        time.sleep(0.5)
    _stop(proc)
    raise SystemExit("backend did not answer within "
                     f"{BOOT_TIMEOUT_S:.0f} s:\n" + log.read_text(errors="replace")[-4000:])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", type=Path, default=DEFAULT_BACKEND)
    args = ap.parse_args(argv)
    backend: Path = args.backend.resolve()
    if not (backend / "dist" / "src" / "main.js").exists():
        raise SystemExit(f"{backend}/dist/src/main.js missing: build the backend first "
                         f"(see this script's docstring)")
    box = Sandbox.start(users=USERS, progress=print)
    proc = None
    try:
        with box.pg.admin_connect() as admin:  # the backend's SQL, in the server log
            admin.execute("ALTER SYSTEM SET log_statement = 'all'")
            admin.execute("SELECT pg_reload_conf()")
        i, order_id, wallet, is_bid = _pick_user(box)
        uid, email, password = user_id(i), f"user{i}@example.com", secrets.token_urlsafe(12)
        with box.owner.connect() as conn:
            conn.execute("UPDATE prosumer SET password_hash = %s WHERE prosumer_id = %s",
                         (_bcrypt(backend, password), uid))
        print(f"user {uid} ({email}), OPEN order {order_id}, wallet {wallet}")
        _plan, result, _journal = jobs.run(box.owner, UP)
        if not result.ok:
            raise SystemExit(f"schema migration failed: {result}")
        print("schema migrated (prosumer -> user)")

        port = free_port()
        log = backend / "acceptance-backend.log"
        proc = _start_backend(backend, box, port, log)
        base = f"http://127.0.0.1:{port}/api/v1"
        status, body = _http("POST", f"{base}/auth/login", {"email": email,
                                                             "password": password})
        if status != 200:
            raise SystemExit(f"login failed: HTTP {status} {json.dumps(body)}")
        print(f"login: HTTP {status}, data.user.userId = {body['data']['user']['userId']}")
        token = body["data"]["access_token"]
        cancel = {"orderId": order_id, "isBuyOrder": is_bid}

        before = _http("POST", f"{base}/trading/cancel-order", cancel, token)
        print(f"cancel-order before the Redis step: HTTP {before[0]} {json.dumps(before[1])}")

        settings = RedisSettings.from_url(f"{box.redis.url}/0", password=box.redis.password)
        moved = redis_migrate.migrate(settings, DEFAULT_RULES)
        print(f"Redis step: {moved.changed} keys changed")

        mark = box.pg.log_path.stat().st_size
        after = _http("POST", f"{base}/trading/cancel-order", cancel, token)
        print(f"cancel-order after the Redis step: HTTP {after[0]} {json.dumps(after[1])}")
        time.sleep(0.5)
        with box.pg.log_path.open(errors="replace") as fh:
            fh.seek(mark)
            logged = fh.read()
        (backend / "acceptance-postgres.log").write_text(logged)
        wallet_sql = [line.strip() for line in logged.splitlines()
                      if '"wallet"' in line.lower() and ("statement:" in line
                                                         or "execute" in line)]
        print("wallet-ownership SQL the backend ran:\n  " + "\n  ".join(wallet_sql))

        ok_before = before[0] == 400 and "do not own this order" in json.dumps(before[1])
        text_after = json.dumps(after[1])
        ok_after = (after[0] != 400 and "do not own" not in text_after
                    and "not open" not in text_after
                    and "Wallet not found" not in text_after and bool(wallet_sql))
        print(f"before: {'as expected (400, not the owner)' if ok_before else 'UNEXPECTED'}; "
              f"after: {'past the ownership and wallet checks' if ok_after else 'UNEXPECTED'}")
        return 0 if ok_before and ok_after else 1
    finally:
        if proc is not None:
            _stop(proc)
        box.stop()


if __name__ == "__main__":
    sys.exit(main())
