"""Finds the files that travel with the program (sql/, resources/) in source and frozen runs."""

from __future__ import annotations

import sys
from pathlib import Path


class ResourceMissing(FileNotFoundError):
    """A file that ships with the program is not where it should be."""


def resource_root() -> Path:
    """The folder that holds sql/ and resources/.

    A PyInstaller build unpacks them under sys._MEIPASS; a source checkout or an editable
    install has them at the top of the repository, one level above the package.
    """
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen)
    return Path(__file__).resolve().parents[2]


def resource_path(*parts: str) -> Path:
    """Path of a shipped file, e.g. resource_path("sql", "fixtures", "x.sql")."""
    path = resource_root().joinpath(*parts)
    if not path.exists():
        raise ResourceMissing(
            f"{path} is missing: the installation is incomplete; reinstall enerlink-migrate"
        )
    return path


def read_text(*parts: str) -> str:
    return resource_path(*parts).read_text(encoding="utf-8")
