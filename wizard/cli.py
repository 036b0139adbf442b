"""`enerlink-migrate`: the headless runner over the engine's jobs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from wizard import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="enerlink-migrate",
        description="Rename EnerLink's prosumer table to user, safely.")
    parser.add_argument("--version", action="version", version=f"enerlink-migrate {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0
