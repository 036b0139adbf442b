"""The engine's next steps in the front end's words: commands and flags on the CLI, pages and
buttons in the wizard (whose worker threads and GUI thread speak GUI)."""

from __future__ import annotations

import threading

import pytest

from wizard.core import hints
from wizard.core.hints import hint
from wizard.core.recover import no_redis


def test_cli_by_default_and_gui_inside_speaking() -> None:
    assert hints.front() == hints.CLI
    assert hint("--out DIR", "the Backup page") == "--out DIR"
    with hints.speaking(hints.GUI):
        assert hint("--out DIR", "the Backup page") == "the Backup page"
    assert hint("--out DIR", "the Backup page") == "--out DIR"


def test_a_thread_speaks_cli_until_told_otherwise() -> None:
    """A worker thread starts with the default, whatever the thread that started it says:
    the wizard's Job wraps its function in speaking(GUI) for that reason."""
    seen: list[str] = []
    with hints.speaking(hints.GUI):
        thread = threading.Thread(target=lambda: seen.append(hints.front()))
        thread.start()
        thread.join()
    assert seen == [hints.CLI]


def test_unknown_front_refused() -> None:
    with pytest.raises(ValueError, match="unknown front end"):
        hints.use("tui")


def test_engine_messages_name_no_flag_in_the_wizard() -> None:
    cli_words = no_redis()
    with hints.speaking(hints.GUI):
        gui_words = no_redis()
    assert "--redis-url" in cli_words
    assert "enerlink-migrate cache" in cli_words
    assert "--" not in gui_words
    assert "enerlink-migrate" not in gui_words
    assert "the Migrate Redis data page" in gui_words
    assert "reverted schema" in no_redis("reverted")
