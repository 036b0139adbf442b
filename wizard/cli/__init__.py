"""`enerlink-migrate`: the headless runner. Each capability registers its own commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from wizard import __version__
from wizard.cli import backup, cache, engine, gui, orphans, profiles, report, restore
from wizard.cli.common import EXIT_OK, EXIT_REFUSED, CliError, connection_parser
from wizard.core.discovery import DiscoveryError

# Each module has register(subparsers, connection_parser); its commands set `handler`.
COMMAND_MODULES = (engine, backup, orphans, cache, restore, profiles, report, gui)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="enerlink-migrate",
        description="Rename EnerLink's prosumer table to user, safely.",
        epilog="Exit codes: 0 success, 1 failed, 2 usage or connection, 3 refused.")
    parser.add_argument("--version", action="version", version=f"enerlink-migrate {__version__}")
    parser.add_argument("--self-test", action="store_true",
                        help="check this installation headless (SQL, resources, modules, "
                        "keyring, PDF, a window) and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = connection_parser()
    for module in COMMAND_MODULES:
        module.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.self_test:
        from wizard.selftest import run_self_test
        return run_self_test()
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    try:
        return int(args.handler(args))
    except CliError as exc:
        print(f"enerlink-migrate {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except DiscoveryError as exc:
        print(f"enerlink-migrate {args.command}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        print(f"enerlink-migrate {args.command}: interrupted; check the database's state "
              f"with `enerlink-migrate inspect` before going on", file=sys.stderr)
        return 130
