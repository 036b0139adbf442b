"""The one atomic writer and the one private-folder policy (wizard.core.files)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from wizard.core.files import FolderNotPrivate, IfOpen, private_folder, write_atomic

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX modes and owners")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that lets everyone read and write what is created: the worst a user sets."""
    previous = os.umask(0o000)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def narrow_umask() -> Iterator[None]:
    """A umask that filters the owner's own bits out of mkdir's and mkstemp's mode."""
    previous = os.umask(0o277)
    try:
        yield
    finally:
        os.umask(previous)


# --- write_atomic ---------------------------------------------------------------------------

@posix_only
def test_write_atomic_writes_text_and_bytes_0600(tmp_path: Path, open_umask: None) -> None:
    text = write_atomic(tmp_path / "a.json", "{\"ü\": 1}\n")
    raw = write_atomic(tmp_path / "b.pdf", b"%PDF-1.4\n")
    assert text.read_bytes() == "{\"ü\": 1}\n".encode()
    assert raw.read_bytes() == b"%PDF-1.4\n"
    assert _mode(text) == _mode(raw) == 0o600


@posix_only
def test_write_atomic_takes_another_mode(tmp_path: Path) -> None:
    path = write_atomic(tmp_path / "shared.txt", "x", mode=0o644)
    assert _mode(path) == 0o644


@posix_only
def test_write_atomic_replaces_and_tightens_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text("old")
    path.chmod(0o644)
    inode = path.stat().st_ino
    write_atomic(path, "new")
    assert path.read_text() == "new"
    assert _mode(path) == 0o600
    assert path.stat().st_ino != inode  # a new file renamed over the old, never rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profile.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "profile.json"
    path.write_text("old")

    def full_disk(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    # Stand-in: a real full disk is not something a test can make safely.
    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["profile.json"]


def test_an_interrupted_write_leaves_no_temporary(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(_src: str, _dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "report.pdf", b"%PDF")
    assert list(tmp_path.iterdir()) == []


def test_write_atomic_into_a_missing_folder_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "nowhere" / "x.json", "{}")
    assert list(tmp_path.iterdir()) == []


# --- private_folder -------------------------------------------------------------------------

@posix_only
def test_created_folders_are_0700_whatever_the_umask(tmp_path: Path, open_umask: None) -> None:
    before = _mode(tmp_path)
    folder = private_folder(tmp_path / "config" / "enerlink-migrate" / "profiles")
    assert folder.is_dir()
    for made in (folder, folder.parent, folder.parent.parent):
        assert _mode(made) == 0o700, made
    assert _mode(tmp_path) == before  # the existing ancestor is not touched


@posix_only
def test_a_narrow_umask_still_gives_a_usable_0700_folder(tmp_path: Path,
                                                         narrow_umask: None) -> None:
    folder = private_folder(tmp_path / "runs")
    assert _mode(folder) == 0o700
    assert _mode(write_atomic(folder / "events.jsonl", "{}\n")) == 0o600


@posix_only
def test_an_existing_parent_keeps_its_mode(tmp_path: Path) -> None:
    parent = tmp_path / "backups"
    parent.mkdir()
    parent.chmod(0o755)
    private_folder(parent / "2024")
    assert _mode(parent) == 0o755
    assert _mode(parent / "2024") == 0o700


@posix_only
def test_our_own_open_folder_is_tightened(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    folder.chmod(0o775)
    assert private_folder(folder) == folder
    assert _mode(folder) == 0o700


@posix_only
def test_a_private_folder_is_left_as_it_is(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    folder.chmod(0o500)  # read-only for its owner: private, so not ours to change
    try:
        for if_open in IfOpen:
            private_folder(folder, if_open=if_open, warn=lambda _m: None)
        assert _mode(folder) == 0o500
    finally:
        folder.chmod(0o700)


@posix_only
def test_an_open_folder_of_another_user_is_refused_with_the_fix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "runs"
    folder.mkdir()
    folder.chmod(0o755)
    # Stand-in: a folder owned by another user needs root to make; pretend we are uid+1.
    monkeypatch.setattr(os, "geteuid", lambda: folder.stat().st_uid + 1)
    with pytest.raises(FolderNotPrivate) as info:
        private_folder(folder)
    message = str(info.value)
    assert str(folder) in message
    assert "belongs to another user" in message
    assert f"chmod 700 {folder}" in message
    assert _mode(folder) == 0o755


@posix_only
def test_refuse_never_chmods_the_operators_folder(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    folder.chmod(0o755)
    with pytest.raises(FolderNotPrivate, match=f"chmod 700 {folder}"):
        private_folder(folder, if_open=IfOpen.REFUSE)
    assert _mode(folder) == 0o755


@posix_only
def test_warn_tells_the_operator_and_goes_on(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    folder.chmod(0o750)
    said: list[str] = []
    assert private_folder(folder, if_open=IfOpen.WARN, warn=said.append) == folder
    assert len(said) == 1
    assert str(folder) in said[0]
    assert "mode 750" in said[0]
    assert f"chmod 700 {folder}" in said[0]
    assert _mode(folder) == 0o750


def test_warn_without_a_callback_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a warn callback"):
        private_folder(tmp_path, if_open=IfOpen.WARN)


def test_a_file_in_the_way_is_named(tmp_path: Path) -> None:
    path = tmp_path / "runs"
    path.write_text("not a folder")
    with pytest.raises(NotADirectoryError, match="runs is not a folder"):
        private_folder(path)
