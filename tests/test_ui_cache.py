"""The Migrate Redis data page, driven with qtbot on a real password-protected Redis seeded
like the application: editable rules checked as typed, dry run, migrate, revert and FLUSHDB
behind the typed name, skip, and errors that never show the password."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from PySide6.QtWidgets import QWizard
from pytestqt.qtbot import QtBot

from wizard.core import redis_migrate
from wizard.core import redis_rules as rr
from wizard.core.connection import PgSettings
from wizard.core.profiles import Profile
from wizard.core.redis_conn import RedisSettings
from wizard.core.redis_migrate import MigrationResult
from wizard.sandbox.redis_seed import seed_redis
from wizard.sandbox.servers import RedisServer
from wizard.ui.confirm import TypedConfirmDialog
from wizard.ui.pages import cache as cache_page
from wizard.ui.pages.cache import CachePage
from wizard.ui.window import MigrationWizard

WAIT = 20_000
USERS = 40
ORDERS = USERS * 2  # the seed writes two orders per user
PROFILE_CACHE = 20  # and the old application's profile cache of the first 20 users
# No database is needed: the page only reads the PostgreSQL name to ask for it.
PG = PgSettings(host="127.0.0.1", port=1, dbname="enerlink_prod", user="enerlink")
CONFLICT = "orders:order_conflict"  # a hash the new application already wrote userId into


def next_enabled(window: QWizard) -> bool:
    return window.button(QWizard.WizardButton.NextButton).isEnabled()


def keys(client: redis.Redis, match: str = "*") -> set[str]:
    """Keys of the db (the test clients decode replies)."""
    return set(client.scan_iter(match=match, count=1000))


def untouchable(client: redis.Redis) -> dict[str, Any]:
    """Every telemetry:* and price:* key with its content: no rule may change them."""
    out: dict[str, Any] = {}
    for key in keys(client, "telemetry:*") | keys(client, "price:*"):
        kind = client.type(key)
        out[key] = (client.zrange(key, 0, -1, withscores=True) if kind == "zset"
                    else client.get(key))
    return out


def owner_sets(client: redis.Redis, family: str) -> dict[str, set[str]]:
    """{owner id: order ids} of orders:by_prosumer:* or orders:by_user:*."""
    prefix = f"orders:{family}:"
    return {k[len(prefix):]: {str(m) for m in client.zrange(k, 0, -1)}
            for k in keys(client, prefix + "*")}


def order_hashes(client: redis.Redis) -> list[str]:
    return [k for k in keys(client, "orders:order_*") if client.type(k) == "hash"]


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
              redis_settings: RedisSettings | None, profile: Profile | None = None
              ) -> CachePage:
    session = open_session(window, PG, redis_settings)
    session.profile = profile
    page = window.start_at(CachePage)
    assert isinstance(page, CachePage)
    return page


def reached(qtbot: QtBot, page: CachePage) -> None:
    """The entry check of Redis has answered."""
    qtbot.waitUntil(lambda: page.reachable is not None and not page.busy, timeout=WAIT)
    assert page.reachable, page.errors.message.text()


def dry_run(qtbot: QtBot, page: CachePage) -> None:
    page.dry_run_button.click()
    qtbot.waitUntil(lambda: page.dry is not None and not page.busy, timeout=WAIT)


def migrate(qtbot: QtBot, page: CachePage, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Dry run, Migrate (answering yes) and the count afterwards; returns the question."""
    asked: list[str] = []

    def yes(_parent: Any, _title: str, text: str) -> bool:
        asked.append(text)
        return True
    monkeypatch.setattr(cache_page, "ask", yes)
    dry_run(qtbot, page)
    page.migrate_button.click()
    qtbot.waitUntil(lambda: page.after is not None and not page.busy, timeout=WAIT)
    return asked


def cells(page: CachePage, row: int) -> list[str]:
    items = (page.table.item(row, c) for c in range(page.table.columnCount()))
    return [item.text() if item else "" for item in items]


def test_no_redis_in_the_profile_skips_the_step(wizard_window: MigrationWizard,
                                                open_session: Any) -> None:
    page = open_page(wizard_window, open_session, None)
    assert page.title() == "Migrate Redis data"
    assert "no Redis" in page.summary.text()
    assert not page.controls.isVisible()
    assert next_enabled(wizard_window)


def test_rules_come_from_the_profile_in_words_and_reset_to_enerlinks(
        wizard_window: MigrationWizard, qtbot: QtBot, open_session: Any,
        settings: RedisSettings) -> None:
    profile = Profile(name="p", redis_rules="delete prosumer:*; field orders:* prosumerId=uid")
    page = open_page(wizard_window, open_session, settings, profile)
    reached(qtbot, page)
    # Shown in the order they run: field renames, moves, deletes.
    assert page.editor.toPlainText() == "field orders:* prosumerId=uid\ndelete prosumer:*"
    assert page.in_words.text() == ("1. rename hash field prosumerId → uid in orders:* hashes\n"
                                    "2. delete cache keys prosumer:*")
    assert page.rule_status.text().startswith("✔ 2 rules")
    page.reset_button.click()
    assert page.rules == rr.DEFAULT_RULES
    assert page.editor.toPlainText().splitlines() == [rr.to_text(r) for r in rr.DEFAULT_RULES]
    assert "move orders:by_prosumer:* → orders:by_user:*" in page.in_words.text()


def test_an_invalid_rule_disables_the_actions_with_its_message(
        wizard_window: MigrationWizard, qtbot: QtBot, open_session: Any,
        settings: RedisSettings, seeded: Counter[str]) -> None:
    page = open_page(wizard_window, open_session, settings)
    reached(qtbot, page)
    dry_run(qtbot, page)
    assert page.migrate_button.isEnabled()
    actions = (page.dry_run_button, page.migrate_button, page.revert_button)
    for text, says in (("delete *", "no literal prefix"),
                       ("move telemetry:* metrics:*", "telemetry:"),
                       ("rename orders:* a b", "Cannot read the Redis rule"),
                       ("", "No Redis rule given")):
        page.editor.setPlainText(text)
        assert page.rules is None
        assert page.rule_status.text().startswith("✘"), text
        assert says in page.rule_status.text(), page.rule_status.text()
        assert not any(b.isEnabled() for b in actions), text
    # Each line in words, the one at fault marked; a protected family is never migrated.
    page.editor.setPlainText("delete prosumer:*\nmove telemetry:* metrics:*")
    assert page.in_words.text() == ("• delete cache keys prosumer:*\n"
                                    "✘ move telemetry:* → metrics:* (members and scores kept, "
                                    "merged)")
    assert "leave the telemetry: and price: families out of the rules" \
        in page.rule_status.text()
    assert page.dry is None  # the counts were for other rules
    assert page.table.rowCount() == 0
    page.editor.setPlainText("delete prosumer:*")
    assert page.rule_status.text().startswith("✔")
    assert page.dry_run_button.isEnabled()
    assert page.revert_button.isEnabled()
    assert not page.migrate_button.isEnabled()  # a dry run of these rules first
    dry_run(qtbot, page)
    assert page.session.redis_rules == (rr.DeleteKeys("prosumer:*"),)  # what verify checks


def test_dry_run_counts_match_the_seed_and_change_nothing(
        wizard_window: MigrationWizard, qtbot: QtBot, open_session: Any,
        settings: RedisSettings, redis_client: redis.Redis, seeded: Counter[str]) -> None:
    redis_client.hset(CONFLICT, mapping={"prosumerId": "user_a", "userId": "user_b"})
    before = {k: redis_client.type(k) for k in keys(redis_client)}
    page = open_page(wizard_window, open_session, settings)
    reached(qtbot, page)
    assert "Dry run first" in page.summary.text()
    assert not page.migrate_button.isEnabled()
    assert not next_enabled(wizard_window)

    dry_run(qtbot, page)
    assert page.dry is not None
    counts = {c.rule: c for c in page.dry.rules}
    field = counts["field orders:* prosumerId=userId"]
    move = counts["move orders:by_prosumer:* orders:by_user:*"]
    delete = counts["delete prosumer:*"]
    assert (field.keys, field.conflicts, field.conflict_samples) == (ORDERS, 1, [CONFLICT])
    assert (move.keys, move.members, move.conflicts) == (USERS, ORDERS, 0)
    assert seeded["orders:by_prosumer:*"] == USERS
    assert delete.keys == seeded["prosumer:*"] == PROFILE_CACHE
    assert page.dry.orders_all is not None
    assert page.dry.orders_all["members"] == ORDERS

    assert page.table.rowCount() == 3
    assert cells(page, 0)[:4] == ["field orders:* prosumerId=userId", f"{ORDERS}", "—", "1"]
    rule_cell = page.table.item(0, 0)
    assert rule_cell is not None
    assert rule_cell.toolTip() == "rename hash field prosumerId → userId in orders:* hashes"
    assert cells(page, 0)[4].startswith(f"conflicts: {CONFLICT}; samples: orders:order_")
    assert cells(page, 1)[1:4] == [f"{USERS}", f"{ORDERS}", "0"]
    assert cells(page, 1)[4].startswith("orders:by_prosumer:")
    assert cells(page, 2)[1] == f"{PROFILE_CACHE}"
    assert f"orders:all holds {ORDERS} order ids" in page.orders_all.text()
    assert "nothing was changed" in page.table_caption.text()
    assert {k: redis_client.type(k) for k in keys(redis_client)} == before
    assert redis_client.hgetall(CONFLICT) == {"prosumerId": "user_a", "userId": "user_b"}
    assert page.migrate_button.isEnabled()
    assert not next_enabled(wizard_window)  # counted, not migrated
    assert page.session.ensure_journal().events("redis_dry_run")


def test_migrate_asks_then_moves_the_order_book_and_leaves_the_rest(
        wizard_window: MigrationWizard, qtbot: QtBot, open_session: Any,
        settings: RedisSettings, redis_client: redis.Redis, seeded: Counter[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    redis_client.hset(CONFLICT, mapping={"prosumerId": "user_a", "userId": "user_b"})
    kept = untouchable(redis_client)
    assert kept  # the seed wrote telemetry and prices
    owners = owner_sets(redis_client, "by_prosumer")
    orders_all = redis_client.smembers("orders:all")
    page = open_page(wizard_window, open_session, settings)
    reached(qtbot, page)

    monkeypatch.setattr(cache_page, "ask", lambda *_a: False)
    dry_run(qtbot, page)
    page.migrate_button.click()
    assert not page.busy
    assert owner_sets(redis_client, "by_prosumer") == owners  # "no": nothing changed

    asked = migrate(qtbot, page, monkeypatch)
    assert settings.describe() in asked[0]
    assert f"{ORDERS} keys; 1 conflicts left untouched" in asked[0]
    assert f"{USERS} keys, {ORDERS} members" in asked[0]
    assert f"orders:all holds {ORDERS} order ids" in asked[0]

    result = page.session.results["cache"]
    assert isinstance(result, MigrationResult)
    assert (result.direction, result.conflicts) == ("up", 1)
    assert result.changed == ORDERS + USERS + PROFILE_CACHE
    with_old = [k for k in order_hashes(redis_client) if redis_client.hexists(k, "prosumerId")]
    assert with_old == [CONFLICT]  # the conflict is left untouched, and named
    assert len(order_hashes(redis_client)) == ORDERS + 1
    assert owner_sets(redis_client, "by_user") == owners
    assert not keys(redis_client, "orders:by_prosumer:*")
    assert not keys(redis_client, "prosumer:*")
    assert redis_client.smembers("orders:all") == orders_all
    assert untouchable(redis_client) == kept

    assert cells(page, 0)[1:5] == [f"{ORDERS}", "—", "1", CONFLICT]
    assert cells(page, 1)[1:4] == [f"{USERS}", "0", "0"]
    assert "1 conflicting keys were left untouched" in page.summary.text()
    assert "nothing left to change, apart from the 1 conflicts" in page.orders_all.text()
    assert f"orders:all holds {ORDERS} order ids, the same ones as before" \
        in page.orders_all.text()
    qtbot.waitUntil(lambda: next_enabled(wizard_window), timeout=5_000)
    journal = page.session.ensure_journal()
    migrated = journal.events("redis_migrated")[-1]
    assert migrated["outcome"] == "ok"
    # Dry runs are journaled (verify compares with them); the count afterwards is not.
    assert all(d["ts"] <= migrated["ts"] for d in journal.events("redis_dry_run"))


def test_revert_needs_the_typed_name_and_brings_prosumer_id_back(
        wizard_window: MigrationWizard, qtbot: QtBot, open_session: Any,
        settings: RedisSettings, redis_client: redis.Redis, seeded: Counter[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    owners = owner_sets(redis_client, "by_prosumer")
    page = open_page(wizard_window, open_session, settings)
    reached(qtbot, page)
    migrate(qtbot, page, monkeypatch)
    assert owner_sets(redis_client, "by_user") == owners

    asked: list[tuple[str, str]] = []

    def refuse(_parent: Any, _title: str, consequence: str, expected: str,
               _action: str) -> str | None:
        asked.append((consequence, expected))
        return None
    monkeypatch.setattr(cache_page, "confirm_typed", refuse)
    page.revert_button.click()
    assert asked[0][1] == PG.dbname
    assert "rename hash field userId → prosumerId in orders:* hashes" in asked[0][0]
    assert "restored from the pre-rename backup" in asked[0][0]
    assert not page.busy
    assert owner_sets(redis_client, "by_user") == owners  # not typed: nothing changed

    monkeypatch.setattr(cache_page, "confirm_typed", lambda *_a: PG.dbname)
    page.after = None
    page.revert_button.click()
    qtbot.waitUntil(lambda: page.after is not None and not page.busy, timeout=WAIT)
    result = page.session.results["cache"]
    assert isinstance(result, MigrationResult)
    assert (result.direction, result.changed) == ("down", ORDERS + USERS)
    assert all(redis_client.hexists(k, "prosumerId") and not redis_client.hexists(k, "userId")
               for k in order_hashes(redis_client))
    assert owner_sets(redis_client, "by_prosumer") == owners
    assert not keys(redis_client, "orders:by_user:*")
    assert "old names" in page.summary.text()
    assert "nothing left to change" in page.orders_all.text()
    events = page.session.ensure_journal().events("redis_migrated")
    assert [e["direction"] for e in events] == ["up", "down"]


def test_redis_stopped_mid_migration_shows_the_engine_message(
        wizard_window: MigrationWizard, qtbot: QtBot, open_session: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = RedisServer.start()
    try:
        client = server.client(db=1)
        seed_redis(client, USERS)
        client.close()
        settings = RedisSettings.from_url(f"{server.url}/1", password=server.password)
        page = open_page(wizard_window, open_session, settings)
        reached(qtbot, page)
        real_move = redis_migrate._move

        def stop_then_move(*args: Any) -> None:
            server.stop()  # Redis goes away after the field rename, before the move
            real_move(*args)
        monkeypatch.setattr(redis_migrate, "_move", stop_then_move)
        monkeypatch.setattr(cache_page, "ask", lambda *_a: True)
        dry_run(qtbot, page)
        page.migrate_button.click()
        qtbot.waitUntil(lambda: page.errors.isVisible() and not page.busy, timeout=WAIT)
    finally:
        server.stop()
    message = page.errors.message.text()
    assert "during the Redis rule `move orders:by_prosumer:* orders:by_user:*`" in message
    assert f"after {ORDERS} keys" in message
    assert "the database result stands" in message
    assert server.password not in message
    advice = page.errors.action.text()
    assert "database migration stands" in advice
    assert "idempotent" in advice
    assert page.retry_button.isVisible()
    assert page.session.results.get("cache") is None
    assert not next_enabled(wizard_window)
    events = page.session.ensure_journal().events("redis_migrated")
    assert events[-1]["outcome"] == "failed"


def test_flushdb_needs_the_typed_database_name_and_stays_in_its_db(
        wizard_window: MigrationWizard, qtbot: QtBot, open_session: Any,
        settings: RedisSettings, redis_client: redis.Redis, seeded: Counter[str],
        db0: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    page = open_page(wizard_window, open_session, settings)
    reached(qtbot, page)
    assert "order book" in page.flush_button.toolTip()
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
    assert "order book" in asked[0][0]
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


def test_skip_is_journaled(wizard_window: MigrationWizard, qtbot: QtBot, open_session: Any,
                           settings: RedisSettings) -> None:
    page = open_page(wizard_window, open_session, settings)
    reached(qtbot, page)
    assert not next_enabled(wizard_window)
    page.skip_button.click()
    events = page.session.ensure_journal().events("cache_skipped")
    assert events[-1]["reason"] == "operator skipped the Redis step"
    assert "order book keeps the old names" in page.summary.text()
    assert next_enabled(wizard_window)


def test_wrong_password_at_entry_shows_the_error_without_the_password_and_retry_works(
        wizard_window: MigrationWizard, qtbot: QtBot, open_session: Any,
        redis_server: RedisServer, seeded: Counter[str]) -> None:
    wrong = "not-the-redis-password-1234"
    bad = RedisSettings.from_url(f"{redis_server.url}/1", password=wrong)
    page = open_page(wizard_window, open_session, bad)
    session = page.session
    qtbot.waitUntil(lambda: page.errors.isVisible() and not page.busy, timeout=WAIT)
    assert page.reachable is False
    message = page.errors.message.text()
    assert "WRONGPASS" in message
    assert wrong not in message
    assert "database migration stands" in page.errors.action.text()
    assert page.retry_button.isVisible()
    assert not page.dry_run_button.isEnabled()
    assert page.skip_button.isEnabled()
    log = (session.ensure_journal().folder / "wizard.log").read_text()
    assert wrong not in log
    assert redis_server.password not in log
    assert wrong not in session.ensure_journal().path.read_text()
    assert not next_enabled(wizard_window)
    # The operator fixes the password (on the profile page, in real life) and retries.
    session.redis = bad.with_password(redis_server.password)
    page.retry_button.click()
    reached(qtbot, page)
    assert not page.errors.isVisible()
    assert not page.retry_button.isVisible()
    assert page.dry_run_button.isEnabled()


def test_redis_unreachable_at_entry_says_so_and_offers_retry(
        wizard_window: MigrationWizard, qtbot: QtBot, open_session: Any) -> None:
    server = RedisServer.start()
    try:
        settings = RedisSettings.from_url(f"{server.url}/1", password=server.password)
    finally:
        server.stop()  # a real server that went away, as in a maintenance window
    page = open_page(wizard_window, open_session, settings)
    qtbot.waitUntil(lambda: page.errors.isVisible() and not page.busy, timeout=WAIT)
    assert "connection refused" in page.errors.message.text()
    assert server.password not in page.errors.message.text()
    assert "did not answer, so nothing was changed there" in page.summary.text()
    assert page.retry_button.isVisible()
    for button in (page.dry_run_button, page.migrate_button, page.revert_button,
                   page.flush_button):
        assert not button.isEnabled()
    assert page.session.ensure_journal().events("cache_unavailable")
    assert not next_enabled(wizard_window)
