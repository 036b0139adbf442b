"""Read a pg_dump archive's header and table of contents, and check that its data is whole."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

MAGIC = b"PGDMP"
CUSTOM, DIRECTORY, TAR = 1, 3, 5
FORMAT_NAMES = {CUSTOM: "custom", DIRECTORY: "directory", TAR: "tar"}
DIRECTORY_NAME = FORMAT_NAMES[DIRECTORY]
# pg_backup_archiver.h: archive versions that added the fields we read.
K_1_14, K_1_15, K_1_16 = (1, 14), (1, 15), (1, 16)
OFFSET_NOT_SET, OFFSET_SET, OFFSET_NO_DATA = 1, 2, 3
BLK_DATA, BLK_BLOBS = 1, 3
COMPRESSION_NAMES = {0: "none", 1: "gzip", 2: "lz4", 3: "zstd"}
HASH_BUFFER = 1 << 20
DATA_EXTS = ("", ".gz", ".lz4", ".zst")  # a directory backup's data file, by compression


class ArchiveError(RuntimeError):
    """The file is not a readable pg_dump archive, or its data is incomplete."""


@dataclass(frozen=True)
class TocEntry:
    dump_id: int
    desc: str  # "TABLE", "TABLE DATA", "INDEX", ...
    namespace: str
    tag: str
    had_dumper: bool
    data_state: int  # custom format: OFFSET_*; directory: OFFSET_SET when it names a file
    data_pos: int  # custom: byte offset of its data block; directory: unused
    filename: str  # directory format: the data file, "" when none


@dataclass
class ArchiveInfo:
    path: Path
    format: str  # custom | directory
    version: tuple[int, int, int]
    compression: str  # "gzip:6", "none", "lz4", ...
    created: str  # local time as pg_dump wrote it, ISO format
    dbname: str
    server_version: str
    dump_version: str
    entries: list[TocEntry] = field(default_factory=list)
    toc_end: int = 0  # custom format: where the data blocks begin
    int_size: int = 4
    off_size: int = 8

    def data_entries(self) -> list[TocEntry]:
        return [e for e in self.entries if e.had_dumper]

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "format": self.format,
                "version": ".".join(map(str, self.version)), "compression": self.compression,
                "created": self.created, "dbname": self.dbname,
                "server_version": self.server_version, "dump_version": self.dump_version,
                "toc_entries": len(self.entries)}


class _Reader:
    """pg_dump's integer and string encoding (pg_backup_archiver.c ReadInt/ReadStr)."""

    def __init__(self, fh: IO[bytes], where: Path) -> None:
        self.fh, self.where = fh, where
        self.int_size = 4
        self.off_size = 8

    def raw(self, n: int) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            raise ArchiveError(f"{self.where} ends early at byte {self.fh.tell()} "
                               f"(truncated or not a pg_dump archive)")
        return data

    def byte(self) -> int:
        return self.raw(1)[0]

    def num(self) -> int:
        data = self.raw(1 + self.int_size)
        value = int.from_bytes(data[1:], "little")
        return -value if data[0] else value

    def text(self) -> str | None:
        length = self.num()
        if length < 0:
            return None
        return self.raw(length).decode("utf-8", errors="replace")

    def offset(self) -> tuple[int, int]:
        flag = self.byte()
        return flag, int.from_bytes(self.raw(self.off_size), "little")


def _header(r: _Reader, path: Path) -> dict[str, Any]:
    if r.fh.read(5) != MAGIC:
        raise ArchiveError(f"{path} is not a pg_dump custom or directory archive "
                           f"(no PGDMP header)")
    vmaj, vmin, vrev = r.byte(), r.byte(), r.byte()
    if (vmaj, vmin) < (1, 12):
        raise ArchiveError(f"{path}: archive version {vmaj}.{vmin} is older than pg_dump 9.6; "
                           f"not supported")
    r.int_size, r.off_size = r.byte(), r.byte()
    fmt = r.byte()
    if (vmaj, vmin) >= K_1_15:
        algo = r.byte()
        compression = COMPRESSION_NAMES.get(algo, f"algorithm {algo}")
    else:
        level = r.num()
        compression = "none" if level == 0 else f"gzip:{level if level > 0 else 6}"
    sec, minute, hour, mday, mon, year, _dst = (r.num() for _ in range(7))
    try:
        created = datetime(year + 1900, mon + 1, mday, hour, minute, sec).isoformat()
    except ValueError:
        created = ""
    dbname = r.text() or ""
    server_version, dump_version = r.text() or "", r.text() or ""
    return {"version": (vmaj, vmin, vrev), "format": fmt, "int_size": r.int_size,
            "off_size": r.off_size, "compression": compression,
            "created": created, "dbname": dbname, "server_version": server_version,
            "dump_version": dump_version}


def _toc(r: _Reader, version: tuple[int, int, int], fmt: int) -> list[TocEntry]:
    entries = []
    for _ in range(r.num()):
        dump_id = r.num()
        had_dumper = bool(r.num())
        r.text()  # table oid
        r.text()  # oid
        tag, desc = r.text() or "", r.text() or ""
        r.num()  # section
        for _text in range(3):  # defn, dropStmt, copyStmt
            r.text()
        namespace = r.text() or ""
        r.text()  # tablespace
        if version[:2] >= K_1_14:
            r.text()  # table access method
        if version[:2] >= K_1_16:
            r.num()  # relkind
        r.text()  # owner
        r.text()  # "false": WITH OIDS
        while r.text() is not None:  # dependencies, ended by a NULL string
            pass
        state, pos, filename = OFFSET_NO_DATA, 0, ""
        if fmt == CUSTOM:
            state, pos = r.offset()
        elif fmt == DIRECTORY:
            filename = r.text() or ""
            state = OFFSET_SET if filename else OFFSET_NO_DATA
        entries.append(TocEntry(dump_id, desc, namespace, tag, had_dumper, state, pos,
                                filename))
    return entries


def read_archive(path: Path) -> ArchiveInfo:
    """Header and TOC of a custom-format file or a directory-format folder."""
    path = Path(path)
    toc_path = path / "toc.dat" if path.is_dir() else path
    try:
        with open(toc_path, "rb") as fh:
            r = _Reader(fh, toc_path)
            head = _header(r, toc_path)
            if head["format"] not in (CUSTOM, DIRECTORY):
                raise ArchiveError(f"{path}: archive format "
                                   f"{FORMAT_NAMES.get(head['format'], head['format'])} is "
                                   f"not supported here (use custom or directory)")
            entries = _toc(r, head["version"], head["format"])
            toc_end = fh.tell()
    except OSError as exc:
        raise ArchiveError(f"cannot read {toc_path}: {exc.strerror or exc}") from None
    return ArchiveInfo(path=path, format=FORMAT_NAMES[head["format"]],
                       version=head["version"], compression=head["compression"],
                       created=head["created"], dbname=head["dbname"],
                       server_version=head["server_version"],
                       dump_version=head["dump_version"], entries=entries, toc_end=toc_end,
                       int_size=head["int_size"], off_size=head["off_size"])


def _skip_chunks(r: _Reader, size: int) -> None:
    """Skip one data stream: (length, bytes)* ended by a zero length."""
    while True:
        length = r.num()
        if length == 0:
            return
        if length < 0 or r.fh.tell() + length > size:
            raise ArchiveError(f"{r.where}: a data chunk at byte {r.fh.tell()} runs past the "
                               f"end of the file ({size} bytes): the file is truncated")
        r.fh.seek(length, os.SEEK_CUR)


def _skip_block(r: _Reader, size: int, expect_id: int | None) -> int:
    start = r.fh.tell()
    kind, dump_id = r.byte(), r.num()
    if kind not in (BLK_DATA, BLK_BLOBS) or (expect_id is not None and dump_id != expect_id):
        raise ArchiveError(f"{r.where}: no valid data block at byte {start} (type {kind}, "
                           f"entry {dump_id}): the file is damaged")
    if kind == BLK_DATA:
        _skip_chunks(r, size)
    else:
        while r.num() != 0:  # large objects: oid, data stream; a zero oid ends the block
            _skip_chunks(r, size)
    return dump_id


def check_complete(info: ArchiveInfo) -> None:
    """Every data block the TOC promises is present and the last one ends at end of file.

    Custom format: the blocks are contiguous, so checking each block's header at its
    recorded offset and walking the last block to the end finds any truncation without
    decompressing. Directory format: every data file the TOC names exists.
    """
    wanted = [e for e in info.entries if e.had_dumper and e.data_state != OFFSET_NO_DATA]
    if info.format == DIRECTORY_NAME:
        missing = [e.filename for e in wanted
                   if not any((info.path / (e.filename + ext)).is_file() for ext in DATA_EXTS)]
        if missing:
            raise ArchiveError(f"{info.path}: data files missing: {', '.join(missing[:5])}")
        return
    size = info.path.stat().st_size
    with open(info.path, "rb") as fh:
        r = _Reader(fh, info.path)
        r.int_size, r.off_size = info.int_size, info.off_size
        placed = sorted((e for e in wanted if e.data_state == OFFSET_SET),
                        key=lambda e: e.data_pos)
        if len(placed) == len(wanted) and placed:
            for entry in placed:
                if entry.data_pos >= size:
                    raise ArchiveError(f"{info.path}: the data of {entry.desc} {entry.tag} "
                                       f"should start at byte {entry.data_pos} but the file "
                                       f"has {size} bytes: the file is truncated")
                fh.seek(entry.data_pos)
                if (r.byte(), r.num()) not in ((BLK_DATA, entry.dump_id),
                                               (BLK_BLOBS, entry.dump_id)):
                    raise ArchiveError(f"{info.path}: no data block for {entry.desc} "
                                       f"{entry.tag} at byte {entry.data_pos}: damaged")
            fh.seek(placed[-1].data_pos)
            _skip_block(r, size, placed[-1].dump_id)
        else:  # written to a pipe: no offsets, walk every block from the end of the TOC
            fh.seek(info.toc_end)
            seen = set()
            while fh.tell() < size:
                seen.add(_skip_block(r, size, None))
            lost = [e for e in wanted if e.dump_id not in seen]
            if lost:
                raise ArchiveError(f"{info.path}: no data for {lost[0].desc} {lost[0].tag} "
                                   f"and {len(lost) - 1} more: the file is truncated")
        if fh.tell() != size:
            raise ArchiveError(f"{info.path}: {size - fh.tell()} unexpected bytes after the "
                               f"last data block")


def archive_files(path: Path) -> list[Path]:
    """The files that make up a backup: the file itself, or a folder's files by path."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file())


def archive_sha256(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    """sha256 of a backup file. For a directory-format backup: of every file in the folder
    in path order (toc.dat among them), each preceded by its relative path and a NUL byte,
    so a renamed, missing or extra file changes the sum (restore computes the same)."""
    digest = hashlib.sha256()
    path = Path(path)
    for file in archive_files(path):
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as fh:
            while chunk := fh.read(HASH_BUFFER):
                digest.update(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
    return digest.hexdigest()


def archive_size(path: Path) -> int:
    return sum(f.stat().st_size for f in archive_files(Path(path)))
