"""Redis cache clearing against a real, password-protected redis-server: exactly the
application's prosumer keys go, everything else stays, and failures say what to do."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from wizard.core import cache, redis_conn, redis_migrate
from wizard.core.connection import PgSettings
from wizard.core.journal import Journal
from wizard.core.redis_conn import RedisSettings, RedisUnavailable
from wizard.core.redis_rules import DEFAULT_RULES, DeleteKeys
from wizard.sandbox.redis_seed import seed_redis
from wizard.sandbox.seed import user_id
from wizard.sandbox.servers import RedisServer, free_port

GUIDE_KEYS = 25  # `prosumer:{id}` keys, the family the upstream guide clears


def _keys(client: redis.Redis) -> set[str]:
    return set(client.scan_iter(count=1000))


def _matches(key: str) -> bool:
    return key.startswith(("orders:by_prosumer:", "prosumer:"))


@pytest.fixture
def settings(redis_server: RedisServer) -> RedisSettings:
    """Db 1 of the test server, as a DBA would configure it."""
    return RedisSettings.from_url(f"{redis_server.url}/1", password=redis_server.password)


@pytest.fixture
def seeded(redis_client: redis.Redis) -> Counter[str]:
    """The sample application's keys plus the guide's `prosumer:*` family, in db 1."""
    families = seed_redis(redis_client, 40)
    for i in range(GUIDE_KEYS):
        redis_client.set(f"prosumer:{user_id(i)}", json.dumps({"n": i}))
    families["prosumer:*"] += GUIDE_KEYS
    # Contains "prosumer:" but in neither family: the shared SCAN walk must not take it.
    redis_client.set("audit:prosumer:note", "keep")
    return families


@pytest.fixture
def other_db(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """Db 2: another application's keys on the same server."""
    client = redis_server.client(db=2)
    client.flushdb()
    client.mset({f"other:app:{i}": "x" for i in range(50)})
    client.set("prosumer:in-another-db", "must stay")
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def journal() -> Journal:
    return Journal.create(PgSettings(dbname="enerlink_cache_t"), "cache")


# --- settings ------------------------------------------------------------------------------

def test_settings_never_show_the_password() -> None:
    s = RedisSettings.from_url("rediss://alice@cache.example:6380/2", password="s3cret-pw",
                               db=5, ca_file="/etc/ca.pem")
    assert s.describe() == "rediss://alice@cache.example:6380/5"
    assert "s3cret-pw" not in repr(s)
    assert s.tls
    assert s.effective_db == 5
    assert s.effective_user == "alice"
    assert RedisSettings.from_url("redis://h").describe() == "redis://h:6379/0"
    assert RedisSettings.from_url("unix:///run/redis.sock?db=3").describe() == \
        "unix:///run/redis.sock?db=3"




# --- dry run and delete --------------------------------------------------------------------





def test_custom_rules_and_keys_that_are_not_utf8(
        settings: RedisSettings, redis_client: redis.Redis) -> None:
    redis_client.set(b"prosumer:\xff\xfe", "binary key")
    redis_client.set("orders:by_prosumer:x", "1")
    rules = [DeleteKeys("prosumer:*"), DeleteKeys("prosumer:*")]
    counts = redis_migrate.dry_run(settings, rules)
    assert [(c.keys, c.samples) for c in counts.rules] == [(1, ["prosumer:\\xff\\xfe"])]
    assert redis_migrate.migrate(settings, rules).changed == 1
    assert _keys(redis_client) == {"orders:by_prosumer:x"}




def test_no_keys_and_no_flushall_ever_reach_the_server(
        settings: RedisSettings, seeded: Counter[str], redis_server: RedisServer) -> None:
    """The server's own command statistics: SCAN and scripts, never KEYS or FLUSHALL."""
    admin = redis_server.client()
    admin.config_resetstat()
    redis_migrate.dry_run(settings, DEFAULT_RULES)
    redis_migrate.migrate(settings, DEFAULT_RULES)
    cache.flushdb(settings, "shop", "shop")
    used = {name.removeprefix("cmdstat_") for name in admin.info("commandstats")}
    assert {"scan", "evalsha", "unlink", "flushdb"} <= used
    assert not used & {"keys", "flushall"}
    admin.close()


# --- cancellation and failures -------------------------------------------------------------



def test_redis_going_down_mid_migration_fails_the_step_naming_the_rule() -> None:
    server = RedisServer.start()
    try:
        settings = RedisSettings.from_url(server.url, password=server.password)
        server.client().mset({f"prosumer:{i}": "x" for i in range(3000)})
        calls = 0

        def progress(_fraction: float, _detail: str) -> None:
            nonlocal calls
            calls += 1
            if calls == 2:
                server.stop()

        with pytest.raises(RedisUnavailable, match=r"during the Redis rule `delete "
                                                   r"prosumer:\*`, after \d+ keys") as info:
            redis_migrate.migrate(settings, [DeleteKeys("prosumer:*")], progress=progress)
        assert info.value.kind in (redis_conn.REFUSED, redis_conn.CLOSED)
        assert server.password not in str(info.value)
    finally:
        server.stop()


def test_wrong_password_missing_password_and_unknown_db_say_so(
        settings: RedisSettings, redis_server: RedisServer) -> None:
    with pytest.raises(RedisUnavailable, match="wrong password or user for Redis") as info:
        redis_conn.check_connection(settings.with_password("not-the-password"))
    assert info.value.kind == redis_conn.WRONGPASS
    assert "not-the-password" not in str(info.value)
    assert redis_server.password not in str(info.value)
    with pytest.raises(RedisUnavailable, match=r"requires a password \(NOAUTH\)") as info:
        redis_migrate.dry_run(settings.with_password(None), DEFAULT_RULES)
    assert info.value.kind == redis_conn.NOAUTH
    acl_user = RedisSettings.from_url(redis_server.url, username="enerlink",
                                      password=redis_server.password)
    with pytest.raises(RedisUnavailable, match="ACL user 'enerlink'"):
        redis_conn.check_connection(acl_user)
    with pytest.raises(RedisUnavailable, match="has no db 99") as info:
        redis_conn.check_connection(RedisSettings(url=redis_server.url, db=99,
                                                 password=redis_server.password))
    assert info.value.kind == redis_conn.NO_DB
    assert redis_conn.check_connection(settings).startswith("Redis ")


@pytest.fixture
def narrow_user(redis_server: RedisServer) -> Iterator[tuple[str, str]]:
    """An ACL user allowed what the migration needs: no INFO, DBSIZE or FLUSHDB."""
    admin = redis_server.client()
    name, password = "cache-migrator", "acl-user-pw-1"
    admin.acl_setuser(name, enabled=True, passwords=[f"+{password}"], keys=["*"],
                      commands=["-@all", "+ping", "+select", "+@read", "+@write",
                                "+@keyspace", "+@scripting", "-flushdb", "-flushall",
                                "-info", "-dbsize"])
    try:
        yield name, password
    finally:
        admin.acl_deluser(name)
        admin.close()


def test_a_narrow_acl_user_can_migrate_and_is_told_what_it_lacks(
        redis_server: RedisServer, redis_client: redis.Redis,
        narrow_user: tuple[str, str]) -> None:
    name, password = narrow_user
    redis_client.mset({"prosumer:1": "a", "prosumer:2": "b", "price:current": "1500"})
    acl = RedisSettings.from_url(f"redis://{name}@127.0.0.1:{redis_server.port}/1",
                                 password=password)
    assert "no INFO permission" in redis_conn.check_connection(acl)
    assert redis_migrate.migrate(acl, DEFAULT_RULES).changed == 2
    assert _keys(redis_client) == {"price:current"}
    with pytest.raises(RedisUnavailable, match=f"user '{name}' .* lacks a permission") as info:
        cache.flushdb(acl, "shop", "shop")
    assert info.value.kind == redis_conn.NOPERM
    assert password not in str(info.value)
    assert redis_client.dbsize() == 1
    with pytest.raises(RedisUnavailable, match="wrong password or user"):
        redis_conn.check_connection(acl.with_password("nope"))


def test_server_down_names_host_and_port(settings: RedisSettings) -> None:
    port = free_port()
    down = RedisSettings.from_url(f"redis://127.0.0.1:{port}/1", password="pw-not-shown")
    jobs = (redis_conn.check_connection,
            lambda s: redis_migrate.dry_run(s, DEFAULT_RULES),
            lambda s: redis_migrate.migrate(s, DEFAULT_RULES))
    for job in jobs:
        with pytest.raises(RedisUnavailable, match=f"127.0.0.1:{port}: connection refused") \
                as info:
            job(down)
        assert info.value.kind == redis_conn.REFUSED
        assert "pw-not-shown" not in str(info.value)
    with pytest.raises(RedisUnavailable, match="connection refused"):
        cache.flushdb(down, "shop", "shop")


def test_a_server_that_never_answers_is_a_timeout() -> None:
    """Stand-in: a socket that listens but never answers (a firewall or hung host), which a
    healthy redis-server cannot be made to do."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        hung = RedisSettings.from_url(f"redis://127.0.0.1:{port}/0", timeout_s=0.3)
        with pytest.raises(RedisUnavailable, match=r"within 0.3 s \(timeout\)") as info:
            redis_conn.check_connection(hung)
    assert info.value.kind == redis_conn.TIMEOUT


# --- FLUSHDB -------------------------------------------------------------------------------

def test_flushdb_needs_the_typed_database_name_and_clears_only_its_db(
        settings: RedisSettings, seeded: Counter[str], redis_client: redis.Redis,
        other_db: redis.Redis, journal: Journal) -> None:
    size = redis_client.dbsize()
    for typed, expected in [("enerlink", "enerlink_db"), ("", "enerlink_db"),
                            (None, "enerlink_db"), ("ENERLINK_DB", "enerlink_db"),
                            ("enerlink_db", None), ("enerlink_db", "")]:
        with pytest.raises(cache.CacheRefused, match="refused"):
            cache.flushdb(settings, typed, expected, journal=journal)
        assert redis_client.dbsize() == size
    others = _keys(other_db)
    assert cache.flushdb(settings, "enerlink_db", "enerlink_db", journal=journal) == size
    assert redis_client.dbsize() == 0
    assert _keys(other_db) == others
    assert "prosumer:in-another-db" in others
    outcomes = [e["outcome"] for e in journal.events("cache_flushdb")]
    assert outcomes == ["refused"] * 6 + ["ok"]


def test_flushdb_confirmation_accepts_the_same_name_in_another_unicode_form(
        settings: RedisSettings, redis_client: redis.Redis) -> None:
    redis_client.set("k", "v")
    composed, decomposed = "Energ\u00eda db", "Energi\u0301a db"  # í as one or two code points
    with pytest.raises(cache.CacheRefused):
        cache.flushdb(settings, "Energia db", composed)
    assert cache.flushdb(settings, decomposed, composed) == 1


# --- TLS -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, int,
                                                                          Path]]:
    """A redis-server with a TLS port (enabled at runtime) and a private CA."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make the test certificates")
    folder = tmp_path_factory.mktemp("tls")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=enerlink test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext")
    server = RedisServer.start()
    try:
        admin = server.client()
        tls_port = free_port()
        for name, value in [("tls-cert-file", folder / "server.crt"),
                            ("tls-key-file", folder / "server.key"),
                            ("tls-ca-cert-file", folder / "ca.crt"),
                            ("tls-auth-clients", "no"), ("tls-port", tls_port)]:
            admin.config_set(name, str(value))
        admin.close()
        yield server, tls_port, folder / "ca.crt"
    finally:
        server.stop()


def test_rediss_with_the_ca_file_works_and_tls_problems_are_named(
        tls_redis: tuple[RedisServer, int, Path]) -> None:
    server, tls_port, ca = tls_redis
    server.client().mset({"prosumer:1": "a", "price:current": "1500"})
    good = RedisSettings.from_url(f"rediss://127.0.0.1:{tls_port}/0", ca_file=str(ca),
                                  password=server.password)
    assert "Redis" in redis_conn.check_connection(good)
    assert redis_migrate.migrate(good, DEFAULT_RULES).changed == 1
    no_ca = RedisSettings.from_url(f"rediss://127.0.0.1:{tls_port}/0", password=server.password)
    with pytest.raises(RedisUnavailable, match=r"TLS with Redis .* failed .*certificate") as info:
        redis_conn.check_connection(no_ca)
    assert info.value.kind == redis_conn.TLS
    plain_to_tls = RedisSettings.from_url(f"redis://127.0.0.1:{tls_port}/0", timeout_s=2,
                                          password=server.password)
    with pytest.raises(RedisUnavailable, match="rediss://") as info:
        redis_conn.check_connection(plain_to_tls)
    assert server.password not in str(info.value)
    tls_to_plain = RedisSettings.from_url(f"rediss://127.0.0.1:{server.port}/0",
                                          ca_file=str(ca), timeout_s=0.5,
                                          password=server.password)
    with pytest.raises(RedisUnavailable, match=r"timeout|TLS|closed"):
        redis_conn.check_connection(tls_to_plain)


# --- the CLI -------------------------------------------------------------------------------

def _cli(redis_server: RedisServer, *args: str, password: str | None = "",
         db: int = 1) -> subprocess.CompletedProcess[str]:
    """enerlink-migrate cache as a DBA runs it: the password in REDISCLI_AUTH, no tty."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "REDISCLI"))}
    if password is not None:
        env["REDISCLI_AUTH"] = password or redis_server.password
    return subprocess.run(
        [sys.executable, "-m", "wizard", "cache", "--redis-url", redis_server.url,
         "--redis-db", str(db), *args],
        env=env, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)


def test_cli_dry_run_migration_and_second_run(redis_server: RedisServer,
                                              seeded: Counter[str],
                                              redis_client: redis.Redis,
                                              journal_dir: Path) -> None:
    before = _keys(redis_client)
    out = _cli(redis_server, "--dry-run", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["dry_run"] is True
    assert [(c["rule"], c["keys"]) for c in report["rules"]] == [
        ("field orders:* prosumerId=userId", seeded["orders:{id}"]),
        ("move orders:by_prosumer:* orders:by_user:*", 40),
        ("delete prosumer:*", seeded["prosumer:*"])]
    assert _keys(redis_client) == before
    out = _cli(redis_server, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["changed"] == seeded["orders:{id}"] + 40 + seeded["prosumer:*"]
    assert not any(_matches(k) for k in _keys(redis_client))
    assert "audit:prosumer:note" in _keys(redis_client)
    out = _cli(redis_server)
    assert out.returncode == 0, out.stderr
    assert "0 keys brought to the new names" in out.stdout
    # Every run is journaled, without the password.
    journals = list(journal_dir.glob("*_cache/events.jsonl"))
    assert len(journals) == 3
    assert all(redis_server.password not in p.read_text() for p in journals)


def test_cli_flushdb_checks_the_typed_name_without_contacting_postgres(
        redis_server: RedisServer, seeded: Counter[str], redis_client: redis.Redis,
        other_db: redis.Redis) -> None:
    # Nothing listens on port 1: the dbname is read from --dsn, PostgreSQL is never asked.
    dsn = ["--dsn", "host=127.0.0.1 port=1 user=enerlink dbname='shop floor ü'"]
    size = redis_client.dbsize()
    out = _cli(redis_server, "--flushdb", "--confirm", "shop", *dsn)
    assert out.returncode == 3
    assert "is not the database name 'shop floor ü'" in out.stderr
    assert redis_client.dbsize() == size
    out = _cli(redis_server, "--flushdb", "--confirm", "shop floor ü")
    assert out.returncode == 3
    assert "PGDATABASE" in out.stderr
    out = _cli(redis_server, "--flushdb", *dsn)
    assert out.returncode == 2
    assert "--confirm" in out.stderr
    out = _cli(redis_server, "--flushdb", "--dry-run", *dsn)
    assert out.returncode == 0
    assert "would clear db 1 only" in out.stdout
    assert redis_client.dbsize() == size
    out = _cli(redis_server, "--flushdb", "--confirm", "shop floor ü", "--json", *dsn)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["keys_before"] == size
    assert redis_client.dbsize() == 0
    assert other_db.dbsize() == 51


def test_cli_connection_problems_exit_2_without_the_password(
        redis_server: RedisServer, redis_client: redis.Redis) -> None:
    out = _cli(redis_server, "--dry-run", password="wrong-pw-123")
    assert out.returncode == 2
    assert "wrong password or user for Redis" in out.stderr
    assert "wrong-pw-123" not in out.stdout + out.stderr
    out = _cli(redis_server, "--dry-run", password=None)
    assert out.returncode == 2
    assert "REDISCLI_AUTH" in out.stderr
    assert "NOAUTH" in out.stderr
    out = subprocess.run([sys.executable, "-m", "wizard", "cache", "--redis-url",
                          f"redis://127.0.0.1:{free_port()}/0"],
                         capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    assert out.returncode == 2
    assert "connection refused" in out.stderr
    out = _cli(redis_server, "--redis-url", "redis://:pw-in-url@127.0.0.1:1/0")
    assert out.returncode == 2
    assert "must not contain a password" in out.stderr
    assert "pw-in-url" not in out.stderr
    out = _cli(redis_server, "--rule", "delete *")
    assert out.returncode == 3
    assert "no literal prefix" in out.stderr


def _read_until(fd: int, wanted: str, limit_s: float = 30.0) -> str:
    """What the child wrote to its terminal up to `wanted` (select with a timeout, no sleep)."""
    seen = b""
    while wanted.encode() not in seen:
        ready, _, _ = select.select([fd], [], [], limit_s)
        if not ready:
            raise AssertionError(f"no {wanted!r} on the terminal; got {seen!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    return seen.decode(errors="replace")


def test_cli_prompts_for_the_password_on_a_terminal_when_redis_says_noauth(
        redis_server: RedisServer, redis_client: redis.Redis) -> None:
    redis_client.set("prosumer:1", "x")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "REDISCLI"))}
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wizard", "cache", "--redis-url", f"{redis_server.url}/1"],
        stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    try:
        assert "Redis password for redis://127.0.0.1" in _read_until(master, "password for")
        os.write(master, redis_server.password.encode() + b"\n")
        output = _read_until(master, "journal:")
        assert proc.wait(timeout=30) == 0, output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert "1 keys brought to the new names" in output
    assert redis_server.password not in output  # not echoed
    assert redis_client.dbsize() == 0
