"""Find a pg_dump / pg_restore / psql whose major version can talk to the server."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

VERSION_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Tool:
    path: Path
    major: int
    version: str  # as the program prints it, e.g. "15.18"


class ToolNotFound(RuntimeError):
    """No suitable client program; the message names what was found and what is needed."""


def server_major(conn: psycopg.Connection[Any]) -> int:
    """The server's major version (9 for 9.6, 17 for 17.2)."""
    row = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
    return int(row[0]) // 10000 if row else 0


def _exe(name: str) -> str:
    return name + ".exe" if sys.platform == "win32" and not name.endswith(".exe") else name


def _version_sort_key(folder: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", folder)) or (0,)


def install_dirs() -> list[str]:
    """The folders where PostgreSQL packages put their client programs."""
    patterns = ["/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin",
                "/opt/homebrew/opt/postgresql@*/bin", "/usr/local/opt/postgresql@*/bin",
                "/Applications/Postgres.app/Contents/Versions/*/bin"]
    for var in ("ProgramFiles", "ProgramW6432", "ProgramFiles(x86)"):
        root = os.environ.get(var)
        if root:
            patterns.append(os.path.join(root, "PostgreSQL", "*", "bin"))
    found: list[str] = []
    for pattern in patterns:
        found += sorted(glob.glob(pattern), key=_version_sort_key)
    return found


def candidates(name: str) -> list[Path]:
    """Every copy of `name` on PATH and in the usual install folders, without duplicates."""
    paths: list[Path] = []
    on_path = shutil.which(name)
    if on_path:
        paths.append(Path(on_path))
    for folder in install_dirs():
        path = Path(folder) / _exe(name)
        if path.is_file():
            paths.append(path)
    unique: list[Path] = []
    seen: set[Path] = set()
    for path in paths:
        real = path.resolve()
        if real not in seen:
            seen.add(real)
            unique.append(path)
    return unique


def probe(path: Path) -> Tool | None:
    """Run `<path> --version`; None when it does not run or prints no version."""
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True,
                             timeout=VERSION_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?(\S*)", out.stdout)
    if out.returncode != 0 or not match:
        return None
    first, second = int(match.group(1)), match.group(2)
    # Before 10 the major version had two parts (9.6); the server reports 9 for it.
    version = f"{first}.{second}{match.group(3)}" if second is not None else \
        f"{first}{match.group(3)}"
    return Tool(path=path, major=first, version=version)


def _install_hint(name: str, major: int) -> str:
    if sys.platform == "win32":
        return (f"Install the PostgreSQL {major} command line tools (EDB installer, "
                f"'Command Line Tools' only)")
    if sys.platform == "darwin":
        return f"Install them with `brew install postgresql@{major}`"
    return (f"Install postgresql-client-{major} (Debian/Ubuntu, from apt.postgresql.org) or "
            f"postgresql{major} (RHEL, from the PGDG repository)")


def _missing(name: str, server: int, found: list[tuple[Path, Tool | None]],
             override: Path | None) -> ToolNotFound:
    listed = ", ".join(f"{p} ({t.version if t else 'does not run or prints no version'})"
                       for p, t in found) or "none"
    where = f"the configured path {override}" if override else \
        "PATH and the usual install folders"
    return ToolNotFound(
        f"{name} {server} or newer is needed for server {server}; searched {where}; "
        f"found: {listed}. {_install_hint(name, server)}, or set the {name} path in the "
        f"profile (CLI: --{name.replace('_', '-')} PATH).")


def find_tool(name: str, server_major: int, override: str | Path | None = None) -> Tool:
    """The best `name` for a server of `server_major`: the same major if present, else the
    lowest newer one (older ones cannot dump or restore a newer server).

    An override (a program or the folder holding it) is the DBA's explicit choice: it is
    used if it fits and is never silently replaced by another copy.
    """
    if override is not None:
        path = Path(override).expanduser()
        if path.is_dir():
            path = path / _exe(name)
        tool = probe(path) if path.is_file() else None
        if tool is None or tool.major < server_major:
            raise _missing(name, server_major, [(path, tool)], path)
        return tool
    found = [(path, probe(path)) for path in candidates(name)]
    fitting = [t for _, t in found if t is not None and t.major >= server_major]
    if not fitting:
        raise _missing(name, server_major, found, None)
    same = [t for t in fitting if t.major == server_major]
    return same[0] if same else min(fitting, key=lambda t: t.major)
