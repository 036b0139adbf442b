"""Connection settings for Redis, and errors a DBA can act on when it cannot be reached."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from wizard.core.hints import hint
from wizard.core.lazy import lazy_module

if TYPE_CHECKING:
    import redis
    from redis.cluster import RedisCluster
else:
    redis = lazy_module("redis")  # about 0.1 s: loaded when Redis is first spoken to

SCHEMES = ("redis", "rediss", "unix")
DEFAULT_PORT = 6379

# Kinds of RedisUnavailable, so a caller can react (the CLI prompts on NOAUTH).
REFUSED, TIMEOUT, DNS, NOAUTH, WRONGPASS, TLS, NO_DB, CLOSED, NOPERM, REFUSES_WRITES = (
    "refused", "timeout", "dns", "noauth", "wrongpass", "tls", "no_db", "closed", "noperm",
    "refuses_writes")
CLUSTER, OTHER = "cluster", "other"


class RedisSettingsError(ValueError):
    """The Redis URL or options are unusable; the message says which part and why."""


class RedisUnavailable(RuntimeError):
    """Redis could not be reached or refused us; the message never holds the password."""

    def __init__(self, message: str, kind: str = OTHER) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class _Endpoint:
    scheme: str
    host: str
    port: int
    path: str  # the socket path of unix:// URLs
    db: int
    username: str | None


def _url() -> str:
    return hint("--redis-url", "the profile's Redis URL")


def _parse(url: str) -> _Endpoint:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RedisSettingsError(f"invalid Redis URL ({exc}); expected "
                                 "redis://host:port/db or rediss://host:port/db") from None
    if parts.scheme not in SCHEMES:
        raise RedisSettingsError(
            f"Redis URL scheme {parts.scheme or '(none)'!r} is not supported; use redis:// "
            "(plain), rediss:// (TLS) or unix:///path/to/redis.sock")
    if parts.password is not None:
        raise RedisSettingsError(
            "the Redis URL must not contain a password (it would show in the process list, "
            "shell history and logs); give the password through REDISCLI_AUTH, the prompt or "
            "the profile's keyring entry")
    query = parse_qs(parts.query)
    db_text = (query.get("db") or [""])[0] if parts.scheme == "unix" else parts.path.lstrip("/")
    try:
        db = int(db_text) if db_text else 0
    except ValueError:
        raise RedisSettingsError(f"the Redis URL's database {db_text!r} is not a number "
                                 "(expected redis://host:port/0)") from None
    if parts.scheme == "unix":
        if not parts.path:
            raise RedisSettingsError("unix:// Redis URL without a socket path")
        return _Endpoint("unix", "", 0, unquote(parts.path), db,
                         unquote(parts.username) if parts.username else None)
    if not parts.hostname:
        raise RedisSettingsError(f"the Redis URL has no host; expected {parts.scheme}://host:port/db")
    return _Endpoint(parts.scheme, parts.hostname, port or DEFAULT_PORT, "", db,
                     unquote(parts.username) if parts.username else None)


@dataclass(frozen=True)
class RedisSettings:
    """Where and as whom to reach Redis. The password is never in the URL, repr or describe()."""

    url: str = "redis://localhost:6379/0"
    username: str | None = None
    password: str | None = field(default=None, repr=False, compare=False)
    db: int | None = None  # overrides the URL's /N
    ca_file: str | None = None
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        endpoint = _parse(self.url)
        if self.db is not None and self.db < 0:
            raise RedisSettingsError(f"Redis db index {self.db} is negative")
        if self.ca_file and endpoint.scheme != "rediss":
            raise RedisSettingsError("a CA file only applies to TLS: use a rediss:// URL")
        if self.timeout_s <= 0:
            raise RedisSettingsError("the Redis timeout must be positive")

    @classmethod
    def from_url(cls, url: str, *, username: str | None = None, password: str | None = None,
                 db: int | None = None, ca_file: str | None = None,
                 timeout_s: float = 5.0) -> RedisSettings:
        """Settings from a URL typed by a person; refuses a URL that carries a password."""
        return cls(url=url.strip(), username=username, password=password, db=db,
                   ca_file=ca_file, timeout_s=timeout_s)

    @property
    def endpoint(self) -> _Endpoint:
        return _parse(self.url)

    @property
    def effective_db(self) -> int:
        return self.db if self.db is not None else self.endpoint.db

    @property
    def effective_user(self) -> str | None:
        return self.username or self.endpoint.username

    @property
    def tls(self) -> bool:
        return self.endpoint.scheme == "rediss"

    def describe(self) -> str:
        """scheme://user@host:port/db, rebuilt from its parts so no secret can slip through."""
        ep = self.endpoint
        user = f"{self.effective_user}@" if self.effective_user else ""
        if ep.scheme == "unix":
            return f"unix://{user}{ep.path}?db={self.effective_db}"
        host = f"[{ep.host}]" if ":" in ep.host else ep.host
        return f"{ep.scheme}://{user}{host}:{ep.port}/{self.effective_db}"

    def with_password(self, password: str | None) -> RedisSettings:
        return replace(self, password=password)

    def client(self) -> redis.Redis:
        """A client speaking RESP2 (any Redis >= 4), bytes in and out, no silent retries."""
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        ep = self.endpoint
        kwargs: dict[str, Any] = {
            "db": self.effective_db, "username": self.effective_user, "password": self.password,
            "socket_timeout": self.timeout_s, "socket_connect_timeout": self.timeout_s,
            # No client name: CLIENT SETNAME needs a permission a narrow ACL user may lack.
            "protocol": 2, "decode_responses": False,
            # A retry would repeat a wrong password against the server; the operator retries.
            "retry": Retry(NoBackoff(), 0),
        }
        if ep.scheme == "unix":
            kwargs["unix_socket_path"] = ep.path
        else:
            kwargs.update(host=ep.host, port=ep.port)
        if ep.scheme == "rediss":
            kwargs.update(ssl=True, ssl_ca_certs=self.ca_file, ssl_cert_reqs="required")
        return redis.Redis(**kwargs)

    def cluster_client(self) -> RedisCluster:
        """A Redis Cluster client that finds every node from this URL's node."""
        from redis.cluster import RedisCluster

        ep = self.endpoint
        if ep.scheme == "unix":
            raise RedisSettingsError("a Redis Cluster is reached over TCP, not a unix socket")
        kwargs: dict[str, Any] = {
            "host": ep.host, "port": ep.port, "username": self.effective_user,
            "password": self.password, "socket_timeout": self.timeout_s,
            "socket_connect_timeout": self.timeout_s, "protocol": 2,
            "decode_responses": False,
        }
        if ep.scheme == "rediss":
            kwargs.update(ssl=True, ssl_ca_certs=self.ca_file, ssl_cert_reqs="required")
        return RedisCluster(**kwargs)


def _scrub(text: str, settings: RedisSettings) -> str:
    return text.replace(settings.password, "***") if settings.password else text


def explain(settings: RedisSettings, exc: BaseException) -> RedisUnavailable:
    """Turn a redis-py or socket error into a message that names the server and the next step."""
    target = settings.describe()
    ep = settings.endpoint
    where = ep.path if ep.scheme == "unix" else f"{ep.host}:{ep.port}"
    text = _scrub(str(exc), settings)
    low = text.lower()
    status = getattr(exc, "status_code", None)
    if isinstance(exc, redis.exceptions.AuthenticationError) or status in ("NOAUTH",
                                                                           "WRONGPASS"):
        if status == "NOAUTH" or (settings.password is None and "required" in low):
            return RedisUnavailable(
                f"Redis at {target} requires a password (NOAUTH): give it through "
                "REDISCLI_AUTH or the prompt (CLI), or the profile's keyring entry (wizard)",
                NOAUTH)
        user = settings.effective_user or "default"
        return RedisUnavailable(
            f"wrong password or user for Redis at {target} (WRONGPASS, ACL user {user!r}): "
            "check the password and " + hint("--redis-user", "the profile's Redis user name")
            + ", then retry", WRONGPASS)
    if isinstance(exc, redis.exceptions.NoPermissionError) or status == "NOPERM":
        return RedisUnavailable(
            f"the Redis user {settings.effective_user or 'default'!r} at {target} lacks a "
            f"permission ({text}); the Redis step needs +@read +@write +@keyspace "
            "+@scripting on the application's keys (+flushdb to clear the whole db; +info "
            "and +dbsize are optional)", NOPERM)
    if "db index is out of range" in low or "invalid database" in low:
        return RedisUnavailable(
            f"Redis at {where} has no db {settings.effective_db} (DB index is out of range: "
            "the server's `databases` setting is lower); check "
            + hint("--redis-db", "the profile's Redis database index") + " or the URL's /N",
            NO_DB)
    if isinstance(exc, (ssl.SSLError, redis.exceptions.ConnectionError)) and (
            "ssl" in low or "certificate" in low or "tls" in low):
        return RedisUnavailable(
            f"TLS with Redis at {target} failed ({text}); check the CA file ("
            + hint("--redis-ca", "the profile's Redis CA certificate file") + "), "
            f"that the server certificate names {ep.host}, and that this port speaks TLS",
            TLS)
    if isinstance(exc, (redis.exceptions.TimeoutError, socket.timeout, TimeoutError)):
        return RedisUnavailable(
            f"no answer from Redis at {where} within {settings.timeout_s:g} s (timeout): a "
            "firewall, the wrong host or port, or a TLS port reached with redis:// "
            "(use rediss://)", TIMEOUT)
    if ep.scheme == "unix" and ("no such file" in low or "error 2 " in low):
        return RedisUnavailable(
            f"no Redis socket at {ep.path}: is redis-server running, with `unixsocket` set "
            "to that path?", REFUSED)
    if status == "READONLY" or isinstance(exc, redis.exceptions.ReadOnlyError):
        return RedisUnavailable(
            f"Redis at {target} is a read-only replica ({text}); "
            + hint("point --redis-url at the primary",
                   "point the profile's Redis URL at the primary"), REFUSES_WRITES)
    if status in ("MISCONF", "LOADING", "OOM") or isinstance(
            exc, redis.exceptions.BusyLoadingError):
        return RedisUnavailable(
            f"Redis at {target} refuses the command for now ({status or ''} {text}); fix "
            "the server's condition (see its log), then retry the step", REFUSES_WRITES)
    if status in ("CROSSSLOT", "MOVED", "ASK", "CLUSTERDOWN"):
        return RedisUnavailable(
            f"a command reached a node of the Redis Cluster at {target} in a way the step "
            f"did not expect ({status}: {text}); the cluster may be resharding or failing "
            "over: check CLUSTER INFO on its nodes, then run the step again", CLUSTER)
    if "connection refused" in low or "error 111 " in low:
        return RedisUnavailable(
            f"cannot connect to Redis at {where}: connection refused; is redis-server "
            "running there? check the host and port of "
            + _url(), REFUSED)
    if ("name or service not known" in low or "nodename nor servname" in low
            or "temporary failure in name resolution" in low or "getaddrinfo" in low):
        return RedisUnavailable(
            f"the Redis host {ep.host!r} does not resolve (DNS); check the spelling in "
            + _url(), DNS)
    if "connection reset" in low or "closed by server" in low or "connection closed" in low:
        return RedisUnavailable(
            f"Redis at {where} closed the connection ({text}); if the server speaks TLS, use "
            "rediss:// and " + hint("--redis-ca", "a Redis CA certificate file"), CLOSED)
    return RedisUnavailable(f"Redis at {target}: {text}", OTHER)


@contextlib.contextmanager
def connected(settings: RedisSettings) -> Iterator[redis.Redis]:
    """A client whose errors come out as RedisUnavailable. Our commands are fixed and
    well-formed, so any error reply is the server's condition (auth, ACL, replica, cluster),
    and it is explained rather than shown as a traceback."""
    client = settings.client()
    try:
        yield client
    except (redis.exceptions.RedisError, OSError) as exc:
        raise explain(settings, exc) from None
    finally:
        client.close()


def check_connection(settings: RedisSettings) -> str:
    """PING the server; 'Redis 7.0.15 at redis://host:port/1: 42 keys' or RedisUnavailable."""
    with connected(settings) as client:
        client.ping()
        try:
            version = str(client.info("server").get("redis_version", "?"))
        except redis.exceptions.NoPermissionError:
            version = "(version unknown: no INFO permission)"
        size = dbsize(client)
    keys = f"{size} keys" if size is not None else "key count unknown (no DBSIZE permission)"
    return f"Redis {version} at {settings.describe()}: {keys} in db {settings.effective_db}"


def dbsize(client: redis.Redis) -> int | None:
    """DBSIZE, or None when an ACL user may not run it (only progress estimates need it)."""
    try:
        return int(client.dbsize())
    except redis.exceptions.NoPermissionError:
        return None

