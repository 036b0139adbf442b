"""Reads the SQL a DBA can review in sql/: named queries and sectioned scripts."""

from __future__ import annotations

import re
from functools import cache

from wizard.core.resources import read_text

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_SECTION = re.compile(r"^--\s*@section\s+([\w-]+)\s*$", re.MULTILINE)


def _split(text: str, marker: re.Pattern[str]) -> dict[str, str]:
    parts = marker.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    return {name: body.strip() + "\n" for name, body in zip(parts[1::2], parts[2::2], strict=True)}


@cache
def queries(relpath: str) -> dict[str, str]:
    """The `-- name: foo` blocks of sql/<relpath>, by name."""
    found = _split(read_text("sql", relpath), _NAME)
    if not found:
        raise ValueError(f"sql/{relpath} has no '-- name:' blocks")
    return found


def query(relpath: str, name: str) -> str:
    try:
        return queries(relpath)[name]
    except KeyError:
        raise KeyError(f"sql/{relpath} has no query named {name!r}") from None


@cache
def sections(relpath: str) -> dict[str, str]:
    """The `-- @section foo` parts of a script, by name, in file order."""
    found = _split(read_text("sql", relpath), _SECTION)
    if not found:
        raise ValueError(f"sql/{relpath} has no '-- @section' markers")
    return found
