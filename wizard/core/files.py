"""Files written whole or not at all, and folders only their owner can enter."""

from __future__ import annotations

import contextlib
import enum
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600
OTHERS = 0o077  # group and other bits: set means someone besides the owner can get in


class FolderNotPrivate(PermissionError):
    """A folder that other users can enter and that this tool may not, or will not, chmod."""


class IfOpen(enum.Enum):
    """What `private_folder` does with an existing folder that other users can enter.

    Who chose the folder decides it, so the caller says which case it is in:
    TIGHTEN  the tool's own folder (profiles, runs, a temporary folder): chmod 700 when we
             own it; refused when we do not, since only its owner can make it private.
    REFUSE   a folder the operator chose for files the tool later trusts (the orphan export
             that a delete checks against): never chmod'ed, refused so the operator picks.
    WARN     a folder the operator chose for files that are 0600 themselves (a backup
             destination, often shared with a backup agent on purpose): never chmod'ed,
             the operator is told and the run goes on.
    """

    TIGHTEN = "tighten"
    REFUSE = "refuse"
    WARN = "warn"


def write_atomic(path: Path, data: bytes | str, *, mode: int = PRIVATE_FILE) -> Path:
    """Replace `path` with `data` so that a crash leaves the old file or the new one.

    The temporary file sits beside `path` (os.replace is atomic only within one file
    system), is flushed to disk before the rename and removed on any failure; the folder
    is fsync'ed after it so the rename itself survives a power cut. Text is UTF-8.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)  # mkstemp makes 0600; another mode is the caller's choice
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _sync_folder(path.parent)
    return path


def _sync_folder(folder: Path) -> None:
    if os.name != "posix":  # Windows cannot open a folder for fsync; NTFS logs the rename
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def private_folder(path: Path, *, if_open: IfOpen = IfOpen.TIGHTEN,
                   warn: Callable[[str], None] | None = None) -> Path:
    """The folder `path`, created 0700 (missing parents too) if it does not exist.

    mkdir's mode is filtered by the umask, so what is created is chmod'ed 0700 after.
    An existing folder that others can enter is handled as `if_open` says (see IfOpen);
    WARN needs `warn`, which receives the message. Returns `path`.
    """
    path = Path(path)
    if if_open is IfOpen.WARN and warn is None:
        raise ValueError("private_folder(if_open=IfOpen.WARN) needs a warn callback")
    if _create(path):
        return path
    st = path.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"{path} is not a folder: remove it or choose another path")
    if os.name != "posix":  # no group/other bits to read; the user profile folder is private
        return path
    mode = stat.S_IMODE(st.st_mode)
    if not mode & OTHERS:
        return path
    if if_open is IfOpen.WARN:
        assert warn is not None
        warn(f"{path} is open to other users (mode {mode:o}); the files written there are "
             f"0600, but `chmod 700 {path}` keeps even their names private")
    elif if_open is IfOpen.TIGHTEN and st.st_uid == os.geteuid():
        os.chmod(path, PRIVATE_FOLDER)
    elif if_open is IfOpen.TIGHTEN:
        raise FolderNotPrivate(
            f"{path} belongs to another user (uid {st.st_uid}) and others can enter it "
            f"(mode {mode:o}): ask its owner to run `chmod 700 {path}`, or point the tool "
            f"at a folder of your own")
    else:
        raise FolderNotPrivate(
            f"{path} can be read by other users (mode {mode:o}) and will hold user data: "
            f"choose a private folder or run `chmod 700 {path}`")
    return path


def _create(path: Path) -> bool:
    """Make `path` and its missing parents, each 0700; False when `path` already existed."""
    missing: list[Path] = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    created = False
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_FOLDER)
        except FileExistsError:  # made meanwhile by someone else: judged as existing
            continue
        os.chmod(folder, PRIVATE_FOLDER)
        created = folder == path
    return created
