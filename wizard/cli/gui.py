"""`enerlink-migrate gui`: open the desktop wizard (the default with no command)."""

from __future__ import annotations

import argparse
from typing import Any


def cmd_gui(args: argparse.Namespace) -> int:
    from wizard.ui.app import run_gui  # Qt only when the window is wanted
    return run_gui(args.profile)


def register(sub: Any, _common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("gui", help="open the desktop wizard (the default with no command)")
    p.add_argument("--profile", metavar="NAME", help="select this saved profile")
    p.set_defaults(handler=cmd_gui)
