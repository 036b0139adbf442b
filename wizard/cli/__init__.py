"""`enerlink-migrate`: the headless runner. Each capability registers its own commands."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Sequence

from wizard import __version__
from wizard.cli import (
    backup,
    cache,
    engine,
    gui,
    orphans,
    phases,
    preflight,
    profiles,
    report,
    restore,
    runs,
)
from wizard.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    CliError,
    Printer,
    connection_parser,
    new_command,
)
from wizard.core.discovery import DiscoveryError
from wizard.core.journal import runs_root, write_traceback
from wizard.core.pgenv import sweep_passfiles

CRASH_LOG = "cli-errors.log"

# Each module has register(subparsers, connection_parser); its commands set `handler`.
COMMAND_MODULES = (engine, phases, preflight, backup, orphans, cache, restore, profiles, report,
                   runs, gui)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="enerlink-migrate",
        description="Rename EnerLink's prosumer table to user, safely.",
        epilog="Exit codes: 0 success (also: nothing to do), 1 failed, 2 usage or connection, "
        "3 refused (the database's state, a check, or a typed name that does not match; "
        "nothing was changed), 4 outcome unknown (the connection went during COMMIT and the "
        "server could not be asked: run `enerlink-migrate inspect`).")
    parser.add_argument("--version", action="version", version=f"enerlink-migrate {__version__}")
    parser.add_argument("--self-test", action="store_true",
                        help="check this installation headless (SQL, resources, modules, "
                        "keyring, PDF, a window) and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND",
                                help="what to do (COMMAND --help for its options)")
    common = connection_parser()
    for module in COMMAND_MODULES:
        module.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. A DBA never sees a traceback: an unexpected error prints one line
    naming the log that holds it, and a closed pipe (`... | head -1`) ends quietly."""
    new_command()
    with contextlib.suppress(OSError):  # a password file a killed run left behind goes now
        sweep_passfiles()
    try:
        parser = build_parser()
        code = _dispatch(parser, parser.parse_args(argv))
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        # The reader went away: nothing more to say. Point stdout at /dev/null so that the
        # interpreter's own flush at exit does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13  # what a shell reports for SIGPIPE


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.self_test:
        from wizard.selftest import run_self_test
        return run_self_test()
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    out = Printer()
    try:
        return int(args.handler(args))
    except CliError as exc:
        out.error(args.command, str(exc))
        return exc.code
    except DiscoveryError as exc:
        out.error(args.command, str(exc))
        return EXIT_REFUSED
    except KeyboardInterrupt:
        out.error(args.command, "interrupted; check the database's state with "
                  "`enerlink-migrate inspect` before going on")
        return 130
    except BrokenPipeError:
        raise
    except Exception as exc:  # the last line of defence: one line for the DBA, a log for us
        return _unexpected(args.command, exc)


def _unexpected(command: str, exc: Exception) -> int:
    log = runs_root() / CRASH_LOG
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        write_traceback(log, text, where=f"enerlink-migrate {command}")
        where = f"the traceback is in {log}"
    except OSError as err:
        where = f"the traceback could not be written to {log} ({err.strerror})"
    first = (str(exc).strip().splitlines() or [""])[0]
    Printer().error(command, f"unexpected error: {type(exc).__name__}"
                    f"{': ' + first if first else ''}; {where}. Check the database's state "
                    f"with `enerlink-migrate inspect` before going on.")
    return EXIT_FAILED
