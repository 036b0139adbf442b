"""Throwaway PostgreSQL and Redis servers on free local ports, for the sandbox and the tests."""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
from redis.cluster import RedisCluster

from wizard.core.connection import PgSettings
from wizard.core.pgtools import probe
from wizard.core.restore_db import drop_database

SUPERUSER = "postgres"
READY_TIMEOUT = 60.0


class ServerError(RuntimeError):
    """A sandbox server could not be started; the message quotes its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SERVER_BINDIR_VAR = "ENERLINK_PG_BINDIR"  # initdb + postgres of the server to run
CLIENT_BINDIR_VAR = "ENERLINK_PG_CLIENT_BINDIR"  # pg_dump, pg_restore, psql beside it


def _pg_config_bindir() -> Path | None:
    """What the installed PostgreSQL says its programs are (Debian: postgresql-common)."""
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
    return Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


def _setting(var: str, default: Path | None, programs: tuple[str, ...], what: str) -> Path:
    raw = os.environ.get(var)
    bindir = Path(raw).expanduser() if raw else default
    where = f"{var}={raw}" if raw else "pg_config --bindir"
    if bindir is None:
        raise ServerError(f"no PostgreSQL found: set {var} to the folder holding "
                          f"{', '.join(programs)}, or install Debian's postgresql (pg_config)")
    missing = [p for p in programs if not (bindir / p).is_file()]
    if missing:
        raise ServerError(f"{bindir} ({where}) has no {', '.join(missing)}: set {var} to "
                          f"the folder holding the {what}")
    return bindir


def find_pg_bindir() -> Path:
    """The server programs (initdb, postgres) to run: ENERLINK_PG_BINDIR, else the folder
    `pg_config --bindir` names. Never a guess among several installed versions."""
    return _setting(SERVER_BINDIR_VAR, _pg_config_bindir(), ("initdb", "postgres"),
                    "server programs")


def find_client_bindir(server_bindir: Path | None = None) -> Path:
    """pg_dump, pg_restore and psql for the harness's own work: ENERLINK_PG_CLIENT_BINDIR,
    else the server's folder (a server-only package needs the variable)."""
    return _setting(CLIENT_BINDIR_VAR, server_bindir or find_pg_bindir(),
                    ("pg_dump", "pg_restore", "psql"), "client programs")


def _run_user() -> pwd.struct_passwd | None:
    """initdb refuses root: when we are root, run the cluster as an unprivileged user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ServerError("running as root and neither a 'postgres' nor a 'nobody' user exists")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop_process(proc: subprocess.Popen[bytes], sig: int, timeout: float = 30.0) -> None:
    """Ask the process to stop with `sig`, then kill its whole group if it will not."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@dataclass
class PostgresServer:
    """A PostgreSQL cluster in a temporary folder: TCP on 127.0.0.1 with scram passwords,
    and a private unix socket (trust) for the harness's own superuser work."""

    base: Path
    port: int
    password: str = field(repr=False)
    bindir: Path
    client_bindir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    owns_base: bool = True

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def socket_dir(self) -> Path:
        return self.base / "socket"

    @property
    def log_path(self) -> Path:
        return self.base / "postgres.log"

    @functools.cached_property
    def major_version(self) -> int:
        tool = probe(self.bindir / "postgres")
        if tool is None:
            raise ServerError(f"{self.bindir / 'postgres'} --version printed no version")
        return tool.major

    def client_tool(self, name: str) -> Path:
        """pg_dump, pg_restore or psql of the harness's client folder."""
        return self.client_bindir / name


    @classmethod
    def start(cls, base: Path | None = None, *, port: int | None = None) -> PostgresServer:
        bindir = find_pg_bindir()
        client_bindir = find_client_bindir(bindir)
        owns_base = base is None
        base = Path(tempfile.mkdtemp(prefix="enerlink-pg-")) if base is None else base
        base.mkdir(parents=True, exist_ok=True)
        server = cls(base, port or free_port(), secrets.token_urlsafe(18), bindir,
                     client_bindir, owns_base=owns_base)
        try:
            server._initdb()
            server._launch()
        except BaseException:
            server.stop()
            raise
        return server

    def _as_run_user(self) -> dict[str, Any]:
        user = _run_user()
        if user is None:
            return {}
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def _chown(self, path: Path) -> None:
        user = _run_user()
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)

    def _initdb(self) -> None:
        os.chmod(self.base, 0o700)
        self._chown(self.base)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        self._chown(self.socket_dir)
        # The superuser password reaches initdb through a 0600 file, removed right after.
        pwfile = self.base / "initdb.pw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.password + "\n")
        self._chown(pwfile)
        try:
            result = subprocess.run(
                [str(self.bindir / "initdb"), "-D", str(self.base / "data"), "-U", SUPERUSER,
                 "--pwfile", str(pwfile), "-E", "UTF8", "--locale=C", "--no-sync",
                 "--auth-local=trust", "--auth-host=scram-sha-256"],
                capture_output=True, text=True, check=False, cwd=self.base,
                **self._as_run_user(),
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise ServerError(f"initdb failed ({result.returncode}):\n{result.stderr.strip()}")

    def _launch(self, *options: str) -> None:
        """Start the postmaster; `options` are more `-c name=value` settings (they win over
        postgresql.auto.conf, as on a command line)."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self.process = subprocess.Popen(
                [str(self.bindir / "postgres"), "-D", str(self.base / "data"),
                 "-p", str(self.port), "-k", str(self.socket_dir),
                 "-c", "listen_addresses=127.0.0.1",
                 "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=60",
                 "-c", "unix_socket_permissions=0700",
                 "-c", "log_min_messages=warning",
                 *(arg for option in options for arg in ("-c", option))],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=self.base, **self._as_run_user(),
            )
        finally:
            log.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise ServerError(
                    f"postgres exited with {self.process.returncode} on port {self.port}:\n"
                    + _tail(self.log_path))
            try:
                with self.admin_connect():
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"postgres did not accept connections within {READY_TIMEOUT:.0f} s:\n"
                        + _tail(self.log_path)) from None
                time.sleep(0.05)

    def crash(self) -> None:
        """Immediate shutdown (SIGQUIT, as `pg_ctl stop -m immediate`): no checkpoint, every
        session cut; the next start runs crash recovery."""
        if self.process is not None:
            _stop_process(self.process, signal.SIGQUIT)
            self.process = None

    def restart(self, *options: str) -> None:
        """Start the stopped cluster again on the same port (see _launch for `options`)."""
        if self.process is not None:
            raise ServerError("the server is still running")
        self._launch(*options)

    def admin_connect(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        """Superuser over the private unix socket, autocommit (CREATE DATABASE needs it)."""
        return psycopg.connect(host=str(self.socket_dir), port=self.port, user=SUPERUSER,
                               dbname=dbname, autocommit=True, connect_timeout=5)

    def psql_file(self, dbname: str, path: Path) -> subprocess.CompletedProcess[str]:
        """Run a script the way a DBA would (psql -f, stop at the first error), as superuser."""
        return subprocess.run(
            [str(self.client_bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
             "-h", str(self.socket_dir), "-p", str(self.port), "-U", SUPERUSER,
             "-d", dbname, "-f", str(path)],
            capture_output=True, text=True, check=False)

    def settings(self, dbname: str, user: str = SUPERUSER,
                 password: str | None = None) -> PgSettings:
        """How a client reaches this server over TCP, with a password like production."""
        if password is None and user == SUPERUSER:
            password = self.password
        return PgSettings(host="127.0.0.1", port=self.port, dbname=dbname, user=user,
                          password=password, sslmode="disable")

    def drop_database(self, name: str) -> None:
        """Drop a database and its sessions, on any major (WITH (FORCE) exists from 13)."""
        drop_database(self.settings("postgres"), name, self.major_version)

    def stop(self) -> None:
        """Fast shutdown (SIGINT) of the postmaster by PID, then remove the folder."""
        if self.process is not None:
            _stop_process(self.process, signal.SIGINT)
            self.process = None
        if self.owns_base:
            shutil.rmtree(self.base, ignore_errors=True)


@dataclass
class RedisServer:
    """A redis-server with requirepass, no persistence, on a free port of 127.0.0.1."""

    base: Path
    port: int
    password: str = field(repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    owns_base: bool = True

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, base: Path | None = None, *, port: int | None = None) -> RedisServer:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise ServerError("redis-server not found; on Debian: apt-get install redis-server")
        owns_base = base is None
        base = Path(tempfile.mkdtemp(prefix="enerlink-redis-")) if base is None else base
        base.mkdir(parents=True, exist_ok=True)
        server = cls(base, port or free_port(), secrets.token_urlsafe(18), owns_base=owns_base)
        try:
            server._launch(binary)
        except BaseException:
            server.stop()
            raise
        return server

    def _launch(self, binary: str) -> None:
        # The password goes in a 0600 config file, never on redis-server's command line.
        conf = self.base / "redis.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(
                f"port {self.port}\nbind 127.0.0.1\nprotected-mode yes\n"
                f"requirepass {self.password}\nsave \"\"\nappendonly no\n"
                f"dir {self.base}\nlogfile {self.base / 'redis.log'}\ndaemonize no\n"
                "databases 16\n"
            )
        self.process = subprocess.Popen(
            [binary, str(conf)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, cwd=self.base,
        )
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise ServerError(
                    f"redis-server exited with {self.process.returncode} on port {self.port}:\n"
                    + _tail(self.base / "redis.log"))
            try:
                with self.client() as client:
                    client.ping()
                    return
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"redis-server did not answer within {READY_TIMEOUT:.0f} s:\n"
                        + _tail(self.base / "redis.log")) from None
                time.sleep(0.05)

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, db=db,
                           decode_responses=True, socket_connect_timeout=5)

    def stop(self) -> None:
        if self.process is not None:
            _stop_process(self.process, signal.SIGTERM)
            self.process = None
        if self.owns_base:
            shutil.rmtree(self.base, ignore_errors=True)


CLUSTER_NODES = 3
CLUSTER_NODE_TIMEOUT_MS = 5000


def _free_ports(count: int) -> list[int]:
    """`count` distinct free ports of 127.0.0.1: all sockets are held open together, so the
    kernel cannot hand out one port twice (free_port called in a row could)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                 for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


@dataclass
class RedisClusterServer:
    """A Redis Cluster of three primaries (no replicas) on free ports of 127.0.0.1, with
    requirepass and masterauth, no persistence: what a production cluster looks like to
    the migration (MOVED, CROSSSLOT, keys of one family spread over every node)."""

    base: Path
    ports: list[int]
    bus_ports: list[int]  # cluster-port: set, since port + 10000 may not be free (or valid)
    password: str = field(repr=False)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)
    owns_base: bool = True

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    @property
    def url(self) -> str:
        """The first node: the migration finds the others from it, as from a seed node."""
        return f"redis://127.0.0.1:{self.ports[0]}"

    @classmethod
    def start(cls, base: Path | None = None, *, nodes: int = CLUSTER_NODES
              ) -> RedisClusterServer:
        server_binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        cli_binary = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        for binary in (server_binary, cli_binary):
            if not Path(binary).exists():
                raise ServerError(f"{Path(binary).name} not found; on Debian: apt-get "
                                  "install redis-server")
        owns_base = base is None
        base = Path(tempfile.mkdtemp(prefix="enerlink-redis-cluster-")) if base is None \
            else base
        base.mkdir(parents=True, exist_ok=True)
        ports = _free_ports(2 * nodes)
        server = cls(base, ports[:nodes], ports[nodes:], secrets.token_urlsafe(18),
                     owns_base=owns_base)
        try:
            for port, bus_port in zip(server.ports, server.bus_ports, strict=True):
                server._launch(server_binary, port, bus_port)
            for port in server.ports:
                server._wait_ping(port)
            server._create(cli_binary)
            server._wait_cluster_ok()
        except BaseException:
            server.stop()
            raise
        return server

    def _log(self, port: int) -> Path:
        return self.base / f"redis-{port}.log"

    def _launch(self, binary: str, port: int, bus_port: int) -> None:
        # The password goes in a 0600 config file, never on redis-server's command line;
        # masterauth too, which a replica (or a failover) would need to reach its primary.
        conf = self.base / f"redis-{port}.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(
                f"port {port}\nbind 127.0.0.1\nprotected-mode yes\n"
                f"cluster-enabled yes\ncluster-port {bus_port}\n"
                f"cluster-config-file {self.base / f'nodes-{port}.conf'}\n"
                f"cluster-node-timeout {CLUSTER_NODE_TIMEOUT_MS}\n"
                f"requirepass {self.password}\nmasterauth {self.password}\n"
                f"save \"\"\nappendonly no\ndir {self.base}\n"
                f"logfile {self._log(port)}\ndaemonize no\n"
            )
        self.processes.append(subprocess.Popen(
            [binary, str(conf)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, cwd=self.base,
        ))

    def _check_running(self) -> None:
        for proc, port in zip(self.processes, self.ports, strict=False):
            if proc.poll() is not None:
                raise ServerError(f"redis-server exited with {proc.returncode} on port "
                                  f"{port}:\n" + _tail(self._log(port)))

    def _wait_ping(self, port: int) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            self._check_running()
            try:
                with self.client(self.ports.index(port)) as client:
                    client.ping()
                    return
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"redis-server did not answer on port {port} within "
                        f"{READY_TIMEOUT:.0f} s:\n" + _tail(self._log(port))) from None
                time.sleep(0.05)

    def _create(self, cli: str) -> None:
        """redis-cli --cluster create, the password in REDISCLI_AUTH (never `-a`, which the
        process list would show)."""
        env = {**os.environ, "REDISCLI_AUTH": self.password}
        result = subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
            timeout=READY_TIMEOUT, check=False)
        if result.returncode != 0:
            raise ServerError(f"redis-cli --cluster create failed ({result.returncode}):\n"
                              + _scrub_tail(result.stdout + result.stderr, self.password))

    def _wait_cluster_ok(self) -> None:
        """Until every node says cluster_state:ok: only then do all of them agree that each
        slot has an owner, and a client can be routed by any of them."""
        deadline = time.monotonic() + READY_TIMEOUT
        pending = list(range(len(self.ports)))
        while pending:
            self._check_running()
            with self.client(pending[0]) as client:
                state = client.cluster("INFO")  # parsed: {"cluster_state": "ok", ...}
            if state.get("cluster_state") == "ok":
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                raise ServerError(f"the Redis Cluster on port {self.ports[pending[0]]} is "
                                  f"not ok within {READY_TIMEOUT:.0f} s:\n{state}")
            time.sleep(0.05)

    def client(self, node: int = 0) -> redis.Redis:
        """A plain client of one node (which answers MOVED for keys it does not own)."""
        return redis.Redis(host="127.0.0.1", port=self.ports[node], password=self.password,
                           decode_responses=True, socket_connect_timeout=5)

    def cluster_client(self) -> RedisCluster:
        """A client that routes each key to its node (its pipeline too)."""
        return RedisCluster(host="127.0.0.1", port=self.ports[0], password=self.password,
                            decode_responses=True, socket_connect_timeout=5)

    def stop(self) -> None:
        """Stop each node by its PID, then remove the folder (configs, nodes-*.conf)."""
        for proc in self.processes:
            _stop_process(proc, signal.SIGTERM)
        self.processes = []
        if self.owns_base:
            shutil.rmtree(self.base, ignore_errors=True)


def _scrub_tail(text: str, password: str, lines: int = 20) -> str:
    return "\n".join(text.replace(password, "***").splitlines()[-lines:])
