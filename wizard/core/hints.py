"""Next steps in the words of the front end that shows them.

The engine's messages end with what to do next. The CLI says it in commands and flags
(`enerlink-migrate backup --out DIR`), the wizard in pages, buttons and fields ("the Backup
page"): a DBA in the window has no command line to type a flag into. The wizard's worker
threads speak with `speaking(GUI)` and its window sets GUI for the GUI thread (`use`); the
default is the CLI's, so the engine's own tests and the headless flows read commands.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

CLI, GUI = "cli", "gui"

_front: ContextVar[str] = ContextVar("enerlink_migrate_front", default=CLI)


@contextlib.contextmanager
def speaking(front: str) -> Iterator[None]:
    """Messages made inside this block (on this thread) name `front`'s way of doing things."""
    if front not in (CLI, GUI):
        raise ValueError(f"unknown front end {front!r}")
    token = _front.set(front)
    try:
        yield
    finally:
        _front.reset(token)


def use(front: str) -> None:
    """From now on (on this thread) messages name `front`'s way: the wizard's window sets
    GUI for the GUI thread, where its pages call the engine directly."""
    if front not in (CLI, GUI):
        raise ValueError(f"unknown front end {front!r}")
    _front.set(front)


def front() -> str:
    return _front.get()


def hint(cli: str, gui: str) -> str:
    """`cli` for the command line, `gui` in the wizard: the same next step, in its words."""
    return gui if _front.get() == GUI else cli
