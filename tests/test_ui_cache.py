"""The Cache page, driven with qtbot on a real password-protected Redis: counts, delete,
FLUSHDB behind the typed name, skip, and errors that never show the password."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from PySide6.QtWidgets import QWizard
from pytestqt.qtbot import QtBot

from wizard.core import cache
from wizard.core.cache import CacheResult
from wizard.core.connection import PgSettings
from wizard.core.redis_conn import RedisSettings
from wizard.sandbox.redis_seed import seed_redis
from wizard.sandbox.servers import RedisServer
from wizard.ui.confirm import TypedConfirmDialog
from wizard.ui.pages import cache as cache_page
from wizard.ui.pages.cache import CachePage
from wizard.ui.window import MigrationWizard

WAIT = 20_000
USERS = 40
# No database is needed: the page only reads the PostgreSQL name to ask for it.
PG = PgSettings(host="127.0.0.1", port=1, dbname="enerlink_prod", user="enerlink")


def next_enabled(window: QWizard) -> bool:
    return window.button(QWizard.WizardButton.NextButton).isEnabled()


def keys(client: redis.Redis) -> set[str]:
    """Every key of the db (the test clients decode replies)."""
    return set(client.scan_iter(count=1000))


@pytest.fixture
def settings(redis_server: RedisServer) -> RedisSettings:
    return RedisSettings.from_url(f"{redis_server.url}/1", password=redis_server.password)


@pytest.fixture
def seeded(redis_client: redis.Redis) -> Counter[str]:
    return seed_redis(redis_client, USERS)


@pytest.fixture
def db0(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """Another application's key in db 0: FLUSHDB of db 1 must leave it."""
    client = redis_server.client(db=0)
    client.set("other-app:keep", "1")
    try:
        yield client
    finally:
        client.delete("other-app:keep")
        client.close()


def open_page(window: MigrationWizard, open_session: Any,
              redis_settings: RedisSettings | None) -> CachePage:
    open_session(window, PG, redis_settings)
    page = window.start_at(CachePage)
    assert isinstance(page, CachePage)
    return page


def test_no_redis_in_the_profile_skips_the_step(wizard_window: MigrationWizard,
                                                open_session: Any) -> None:
    page = open_page(wizard_window, open_session, None)
    assert "no Redis" in page.summary.text()
    assert not page.controls.isVisible()
    assert next_enabled(wizard_window)


def test_count_then_delete_removes_only_matching_keys(
        wizard_window: MigrationWizard, qtbot: QtBot, open_session: Any,
        settings: RedisSettings, redis_client: redis.Redis, seeded: Counter[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = keys(redis_client)
    matching = {k for k in before if k.startswith(("orders:by_prosumer:", "prosumer:"))}
    assert len(matching) == seeded["orders:by_prosumer:*"] == USERS
    page = open_page(wizard_window, open_session, settings)
    assert page.pattern_list() == list(cache.DEFAULT_PATTERNS)
    assert not page.delete_button.isEnabled()  # counts first
    assert not next_enabled(wizard_window)

    page.count_button.click()
    qtbot.waitUntil(lambda: page.counts is not None and not page.busy, timeout=WAIT)
    assert page.counts is not None
    counted = {c.pattern: c.count for c in page.counts}
    assert counted == {"orders:by_prosumer:*": USERS, "prosumer:*": 0}
    assert page.table.rowCount() == 2
    cell = page.table.item(0, 2)
    assert cell is not None
    assert cell.text().startswith("orders:by_prosumer:")
    assert keys(redis_client) == before  # a dry run deletes nothing
    assert not next_enabled(wizard_window)

    asked: list[str] = []

    def yes(_parent: Any, _title: str, text: str) -> bool:
        asked.append(text)
        return True
    monkeypatch.setattr(cache_page, "ask", yes)
    page.delete_button.click()
    assert f"orders:by_prosumer:*: {USERS}" in asked[0]
    qtbot.waitUntil(lambda: page.deleted is not None and not page.busy, timeout=WAIT)
    assert page.deleted is not None
    assert page.deleted.total == USERS
    assert keys(redis_client) == before - matching
    assert isinstance(page.session.results["cache"], CacheResult)
    qtbot.waitUntil(lambda: next_enabled(wizard_window), timeout=5_000)
    journal = page.session.ensure_journal()
    assert journal.events("cache_dry_run")
    assert journal.events("cache_delete")[-1]["total"] == USERS


def test_patterns_are_editable_and_zero_counts_complete_the_step(
        wizard_window: MigrationWizard, qtbot: QtBot, open_session: Any,
        settings: RedisSettings, seeded: Counter[str]) -> None:
    page = open_page(wizard_window, open_session, settings)
    page.patterns.setCurrentRow(0)
    page.remove_pattern()
    assert page.pattern_list() == ["prosumer:*"]
    page.new_pattern.setText("session:by_prosumer:*")
    page.add_pattern()
    assert page.pattern_list() == ["prosumer:*", "session:by_prosumer:*"]
    page.count_button.click()
    qtbot.waitUntil(lambda: page.counts is not None and not page.busy, timeout=WAIT)
    assert "nothing to delete" in page.summary.text()
    assert not page.delete_button.isEnabled()
    qtbot.waitUntil(lambda: next_enabled(wizard_window), timeout=5_000)


def test_flushdb_needs_the_typed_database_name_and_stays_in_its_db(
        wizard_window: MigrationWizard, qtbot: QtBot, open_session: Any,
        settings: RedisSettings, redis_client: redis.Redis, seeded: Counter[str],
        db0: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    page = open_page(wizard_window, open_session, settings)
    before = keys(redis_client)
    asked: list[tuple[str, str]] = []

    def refuse(_parent: Any, _title: str, consequence: str, expected: str,
               _action: str) -> str | None:
        asked.append((consequence, expected))
        return None
    monkeypatch.setattr(cache_page, "confirm_typed", refuse)
    page.flush_button.click()
    assert asked[0][1] == PG.dbname
    assert "EVERY key in Redis db 1" in asked[0][0]
    assert not page.busy
    assert keys(redis_client) == before
    assert not next_enabled(wizard_window)

    monkeypatch.setattr(cache_page, "confirm_typed", lambda *_a: PG.dbname)
    page.flush_button.click()
    qtbot.waitUntil(lambda: "cache" in page.session.results and not page.busy, timeout=WAIT)
    assert page.session.results["cache"] == {"flushdb": len(before)}
    assert keys(redis_client) == set()
    assert db0.get("other-app:keep") == "1"  # FLUSHDB, never FLUSHALL
    events = page.session.ensure_journal().events("cache_flushdb")
    assert events[-1]["outcome"] == "ok"
    qtbot.waitUntil(lambda: next_enabled(wizard_window), timeout=5_000)


def test_typed_confirmation_enables_ok_only_for_the_exact_name(qtbot: QtBot) -> None:
    dialog = TypedConfirmDialog(None, "FLUSHDB", "deletes every key", PG.dbname, "FLUSHDB")
    qtbot.addWidget(dialog)
    assert not dialog.ok.isEnabled()
    dialog.entry.setText(PG.dbname[:-1])
    assert not dialog.ok.isEnabled()
    dialog.entry.setText(PG.dbname)
    assert dialog.ok.isEnabled()


def test_skip_is_journaled(wizard_window: MigrationWizard, open_session: Any,
                           settings: RedisSettings) -> None:
    page = open_page(wizard_window, open_session, settings)
    assert not next_enabled(wizard_window)
    page.skip_button.click()
    assert page.session.ensure_journal().events("cache_skipped")
    assert next_enabled(wizard_window)


def test_wrong_password_shows_the_error_without_the_password_and_retry_works(
        wizard_window: MigrationWizard, qtbot: QtBot, open_session: Any,
        redis_server: RedisServer, seeded: Counter[str]) -> None:
    wrong = "not-the-redis-password-1234"
    bad = RedisSettings.from_url(f"{redis_server.url}/1", password=wrong)
    session = open_session(wizard_window, PG, bad)
    page = wizard_window.start_at(CachePage)
    assert isinstance(page, CachePage)
    page.count_button.click()
    qtbot.waitUntil(lambda: page.errors.isVisible() and not page.busy, timeout=WAIT)
    message = page.errors.message.text()
    assert "WRONGPASS" in message
    assert wrong not in message
    assert "database migration stands" in page.errors.action.text()
    assert page.retry_button.isVisible()
    log = (session.ensure_journal().folder / "wizard.log").read_text()
    assert wrong not in log
    assert redis_server.password not in log
    assert not next_enabled(wizard_window)
    # The operator fixes the password (on the profile page, in real life) and retries.
    session.redis = bad.with_password(redis_server.password)
    page.retry_button.click()
    qtbot.waitUntil(lambda: page.counts is not None and not page.busy, timeout=WAIT)
    assert not page.errors.isVisible()
    assert not page.retry_button.isVisible()


def test_redis_stopped_shows_the_error(wizard_window: MigrationWizard, qtbot: QtBot,
                                       open_session: Any) -> None:
    server = RedisServer.start()
    try:
        settings = RedisSettings.from_url(f"{server.url}/1", password=server.password)
    finally:
        server.stop()  # a real server that went away, as in a maintenance window
    page = open_page(wizard_window, open_session, settings)
    page.count_button.click()
    qtbot.waitUntil(lambda: page.errors.isVisible() and not page.busy, timeout=WAIT)
    message = page.errors.message.text()
    assert "connection refused" in message
    assert server.password not in message
    assert page.retry_button.isVisible()
    assert not next_enabled(wizard_window)
