"""Finds the files that travel with the program (sql/, resources/) through importlib.resources.

They live at the top of the repository; `wizard/sql` and `wizard/resources` are symlinks to
them, so the package holds them in a checkout, and the wheel and the PyInstaller build carry
them as `wizard/sql/...` and `wizard/resources/...`: one lookup for all three.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


class ResourceMissing(FileNotFoundError):
    """A file that ships with the program is not where it should be."""


def resource_root() -> Path:
    """The folder that holds sql/ and resources/: the `wizard` package's own folder."""
    return Path(str(files("wizard")))


def resource_path(*parts: str) -> Path:
    """Path of a shipped file, e.g. resource_path("sql", "fixtures", "x.sql")."""
    path = resource_root().joinpath(*parts)
    if not path.exists():
        raise ResourceMissing(
            f"{path} is missing: the installation is incomplete; reinstall enerlink-migrate"
        )
    return path


# README pictures under resources/: in the checkout, not in the wheel or the build.
NOT_SHIPPED = ("screenshots",)


def shipped_files(folder: str) -> list[Path]:
    """Every file under sql/ or resources/ that an installation must have, sorted."""
    root = resource_root() / folder
    return sorted(p for p in root.rglob("*") if p.is_file()
                  and not any(part in NOT_SHIPPED for part in p.relative_to(root).parts))


def read_text(*parts: str) -> str:
    return resource_path(*parts).read_text(encoding="utf-8")
