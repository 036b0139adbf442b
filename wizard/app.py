"""Program entry point: the CLI when given a command, the desktop wizard otherwise."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from wizard import cli


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    return cli.main(args or ["gui"])
