"""The change window in the wizard, on real PostgreSQL: the rail shows the two phases, Run
migration stops the application (the profile's stop command) and re-checks before it
migrates, and the Verify page starts it again once the checks pass, saying the downtime.
The stop and start commands append the time they ran to a file (the stand-in for pm2)."""

from __future__ import annotations

from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from wizard.core import jobs
from wizard.core.connection import PgSettings
from wizard.core.events import BackupSkipped
from wizard.core.profiles import Profile
from wizard.core.run_state import PHASES
from wizard.ui.pages import migrate
from wizard.ui.pages.migrate import MigratePage
from wizard.ui.pages.verify import VerifyPage
from wizard.ui.window import MigrationWizard

WAIT = 60_000


def test_run_stops_rechecks_and_migrates_and_verify_starts_with_the_downtime(
        app_clock: Any, drop_key: Any, wizard_window: MigrationWizard, qtbot: QtBot,
        open_session: Any, pg_db: PgSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    window = wizard_window
    rail = window.rail
    assert rail.list.item(0).text() == PHASES["connect"]
    assert PHASES["migrate"] in [rail.list.item(i).text() for i in range(rail.list.count())]
    drop_key(pg_db)  # wallet gains its key: the column the window re-checks
    session = open_session(window, pg_db)
    session.profile = Profile(name="window", app_stop_command=app_clock.command("stopped"),
                              app_start_command=app_clock.command("started"))
    journal = session.ensure_journal()
    journal.record(BackupSkipped(pg_db.dbname, "test of the change window"))
    page = window.start_at(MigratePage)
    assert isinstance(page, MigratePage)
    qtbot.waitUntil(lambda: page.plan is not None and not page.busy, timeout=WAIT)
    page.rehearse_button.click()
    qtbot.waitUntil(lambda: page.result is not None and not page.busy, timeout=WAIT)
    assert page.result is not None
    assert page.result.ok, page.result.error
    assert app_clock.times("stopped") == []  # the rehearsal is prepare: the application runs on
    page.result = None
    asked: list[str] = []

    def yes(_parent: Any, _title: str, text: str) -> bool:
        asked.append(text)
        return True
    monkeypatch.setattr(migrate, "ask", yes)
    page.run_button.click()
    qtbot.waitUntil(lambda: page.result is not None and not page.busy, timeout=WAIT)
    assert page.result is not None
    assert page.result.ok, page.result.error
    assert "stopped first by the profile's stop command" in asked[0]
    assert len(app_clock.times("stopped")) == 1
    assert app_clock.times("started") == []
    said = [e["event"] for e in journal.events()]
    assert said.index("window_opened") < said.index("window_rechecked") \
        < len(said) - 1 - said[::-1].index("run_finished")
    [rechecked] = journal.events("window_rechecked")
    assert rechecked["ok"]
    assert [c["label"] for c in rechecked["columns"]] == ["wallet.prosumer_id"]
    assert jobs.inspect(pg_db).state == "migrated"

    verify = window.start_at(VerifyPage)
    assert isinstance(verify, VerifyPage)
    qtbot.waitUntil(lambda: verify.checks is not None and not verify.busy, timeout=WAIT)
    assert verify.start_button.isVisible()
    assert verify.start_button.isEnabled()
    checked = verify.checks
    verify.start_button.click()
    qtbot.waitUntil(lambda: bool(journal.events("window_closed")) and not verify.busy,
                    timeout=WAIT)
    assert len(app_clock.times("started")) == 1
    [closed] = journal.events("window_closed")
    assert closed["started"]
    assert closed["downtime_s"] > 0
    assert "✔ The application started again: downtime " in verify.result_label.text()
    # The checks run again once the application is up (its login can pass now).
    qtbot.waitUntil(lambda: not verify.start_button.isVisible(), timeout=WAIT)
    qtbot.waitUntil(lambda: verify.checks is not checked and not verify.busy, timeout=WAIT)
