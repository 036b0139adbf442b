"""The environment and connection string for a child libpq program, password kept out of both."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from psycopg.conninfo import make_conninfo

from wizard.core.connection import PgSettings
from wizard.core.files import private_folder

# Whatever might carry a secret stays out of the child's environment (pg_dump needs none).
# ...AUTH$: REDISCLI_AUTH, redis-cli's (and our cache command's) password variable; not
# SSH_AUTH_SOCK or XAUTHORITY, which a stop/start command over ssh may need.
SECRET_NAME = re.compile(r"PASSW|SECRET|TOKEN|CREDENTIAL|PRIVATE_?KEY|API_?KEY|AUTH$",
                         re.IGNORECASE)
PASSFILE_NAME = "pgpass"
PASSFOLDER_PREFIX = "pgpass-"  # pgpass-<pid of the process that made it>-<random>


def secrets_root() -> Path:
    """Where temporary password files go: the per-user runtime folder (XDG_RUNTIME_DIR, a
    tmpfs that goes at logout) when there is one, else a 0700 folder of ours in the temp
    folder. Either way only this user can list it."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir() and Path(runtime).stat().st_uid == os.getuid():
        return private_folder(Path(runtime) / "enerlink-migrate")
    return private_folder(Path(tempfile.gettempdir()) / f"enerlink-migrate-{os.getuid()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: not ours to judge
    return True


def sweep_passfiles(root: Path | None = None) -> list[Path]:
    """Remove the password files left by a process that is gone (killed mid-backup, say):
    every command runs this first. Returns the folders removed."""
    root = root or secrets_root()
    removed = []
    for folder in root.glob(f"{PASSFOLDER_PREFIX}*"):
        pid = folder.name[len(PASSFOLDER_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def child_environ(base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment without PGPASSWORD or any other secret-bearing variable."""
    env = dict(os.environ if base is None else base)
    return {k: v for k, v in env.items() if k != "PGPASSWORD" and not SECRET_NAME.search(k)}


def _escape(field: str) -> str:
    # libpq's pgpass format: backslash escapes ':' and '\' inside a field.
    return field.replace("\\", "\\\\").replace(":", "\\:")


def pgpass_line(settings: PgSettings, password: str) -> str:
    """One pgpass line for this server and role, any database (a restore may create one)."""
    if "\n" in password or "\r" in password:
        raise ValueError("a password containing a line break cannot be passed through a "
                         "pgpass file; change the role's password")
    host = settings.host or "localhost"
    if host.startswith(("/", "@")):
        host = "localhost"  # libpq matches a unix-socket connection against "localhost"
    elif "," in host:
        host = "*"  # several hosts: libpq looks each one up; the role and port still match
    return ":".join([_escape(host), str(settings.port), "*", _escape(settings.user),
                     _escape(password)]) + "\n"


@contextmanager
def libpq_env(settings: PgSettings) -> Iterator[dict[str, str]]:
    """The environment for pg_dump, pg_restore or psql run with `--no-password`.

    With a password in `settings` (or, failing that, in our own PGPASSWORD) it goes to a
    temporary pgpass file (0600 in a fresh 0700 folder under `secrets_root`, named after
    this process) given by PGPASSFILE, removed on exit even after an error, and by the
    next command's sweep if this process is killed. Without one, libpq's own PGPASSFILE /
    ~/.pgpass lookup stays.
    """
    env = child_environ()
    password = settings.password
    if password is None:
        password = os.environ.get("PGPASSWORD") or None
    if password is None:
        yield env
        return
    root = secrets_root()
    sweep_passfiles(root)
    folder = Path(tempfile.mkdtemp(prefix=f"{PASSFOLDER_PREFIX}{os.getpid()}-", dir=root))
    try:
        private_folder(folder)  # mkdtemp asks for 0700, which a umask can still narrow
        passfile = folder / PASSFILE_NAME
        fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(pgpass_line(settings, password))
        env["PGPASSFILE"] = str(passfile)
        yield env
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def conninfo_arg(settings: PgSettings, dbname: str | None = None) -> str:
    """A libpq connection string for `--dbname=`: never the password."""
    kwargs = settings.conninfo_kwargs()
    kwargs.pop("password", None)
    if dbname is not None:
        kwargs["dbname"] = dbname
    return make_conninfo("", **kwargs)
