"""The run report: model and HTML from a real journal, the PDF's text, the CLI command."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from wizard.core import checklist, jobs, orphans, redis_migrate
from wizard.core.backup import BackupOptions, BackupResult, backup
from wizard.core.connection import PgSettings
from wizard.core.events import BackupDone, Verified
from wizard.core.execute import RunOptions
from wizard.core.journal import Journal
from wizard.core.plan import UP
from wizard.core.preflight import app_command, run_preflight
from wizard.core.profiles import Profile
from wizard.core.prove import prove
from wizard.core.redis_conn import RedisSettings
from wizard.core.report import (
    MANUAL_CHECKS,
    build_report,
    format_ts,
    record_manual_check,
    record_operator,
    redact,
    render_html,
)
from wizard.core.session import WizardSession

OPERATOR = "Dewi Anggraini"
REVIEWER = "Ratna Wijaya"
CHANGE = "CHG-2026-0142"
BACKUP_SHA = "9f" * 32


def append_raw(journal: Journal, event: str, **fields: Any) -> None:
    """A record written as it lies on disk, bypassing the declared events (old journals)."""
    with journal.path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"ts": "2026-01-01T00:00:00.000+00:00", "event": event,
                             **fields}) + "\n")


def _words(text: str) -> str:
    return " ".join(text.split())


def _pdf_text(pdf: Path) -> str:
    out = subprocess.run(["pdftotext", "-raw", "-enc", "UTF-8", str(pdf), "-"],
                         capture_output=True, text=True, check=True)
    # Qt typesets "fi" as a ligature; NFKC turns it back into two letters.
    return _words(unicodedata.normalize("NFKC", out.stdout))


@pytest.fixture
def migrated_run(pg_db: PgSettings) -> Journal:
    """A real journal: the engine migrates the sample database, then the operator signs."""
    _plan, result, journal = jobs.run(pg_db, "up")
    assert result.ok, result.error
    # The verify step's record: the engine's real checks, plus one as the orphan scan adds it.
    checks = [c.to_dict() for c in jobs.verify(pg_db)]
    checks.append({"id": "no_orphans", "title": "No orphan rows in the referencing columns",
                   "status": "pass", "detail": "0 orphans in 7 columns", "evidence": {}})
    journal.record(Verified(checks))
    # The backup step's record, by the fields the brief names (written by hand here so that
    # this test does not depend on pg_dump; the backup's own tests cover the real one).
    journal.record(BackupDone({
        "path": "/var/backups/enerlink/enerlink_db_pre-user-rename.dump", "format": "custom",
        "size_bytes": 5_432_100, "sha256": BACKUP_SHA, "toc_entries": 87, "verified": True}))
    # An older record's shape, with a secret in it: the report must redact what it reads.
    append_raw(journal, "cache_delete", url="redis://app:hunter2-redis@cache:6379/0",
               patterns=["orders:by_prosumer:*", "prosumer:*"], deleted=12)
    record_operator(journal, OPERATOR)
    record_manual_check(journal, "app_starts", True, "pm2 logs clean <b>after</b> 2 min")
    record_manual_check(journal, "login_user_id", True, "userId user_1730534400000_abc123")
    record_manual_check(journal, "login_user_id", False, "re-checked: reply still cached")
    return journal


def test_model_from_a_real_run(migrated_run: Journal, pg_db: PgSettings) -> None:
    m = build_report(migrated_run)
    assert m.operator == OPERATOR
    assert m.target == {"host": pg_db.host, "port": pg_db.port, "dbname": pg_db.dbname,
                        "user": pg_db.user}
    assert m.outcome_ok
    assert (m.state_before, m.state_after) == ("pre", "migrated")
    [run] = m.runs
    assert run.kind == "migration"
    assert len(run.steps) == 20
    assert all(s.ms is not None for s in run.steps)
    assert 'ALTER TABLE "public"."prosumer" RENAME TO "user"' in run.script
    assert run.counts_before == {"prosumer": 40}
    auto = {c.id: c for c in m.checklist if c.kind == "automated"}
    assert {"table_renamed", "foreign_keys", "row_counts", "backup_verified",
            "no_orphans"} <= set(auto)
    assert all(c.status == "pass" for c in auto.values())
    # The later verification replaces the run's own result of the same check.
    assert auto["table_renamed"].section == "Database (verification)"
    manual = {c.id: c for c in m.checklist if c.kind == "manual"}
    assert list(manual) == [c.id for c in MANUAL_CHECKS]
    assert manual["app_starts"].status == "done"
    # The last tick of an item wins.
    assert manual["login_user_id"].status == "open"
    assert manual["login_user_id"].note == "re-checked: reply still cached"
    # An older record's shape is still read, in words, and redacted.
    [redis] = [s for s in m.steps if s.step == "Redis"]
    assert [line.text for line in redis.lines] == [
        "cache keys deleted on redis://app:***@cache:6379/0: 12"]
    assert redis.status == "pass"
    json.dumps(m.to_dict())  # the --json output and the GUI's "Export JSON…"


def test_html_escapes_everything(migrated_run: Journal) -> None:
    html = render_html(build_report(migrated_run))
    assert "pm2 logs clean &lt;b&gt;after&lt;/b&gt; 2 min" in html
    assert "<b>after</b>" not in html
    assert "hunter2" not in html


def test_unknown_manual_check_is_refused(migrated_run: Journal) -> None:
    with pytest.raises(ValueError, match="unknown manual check 'nope'"):
        record_manual_check(migrated_run, "nope", True)


def test_redact_by_key_and_url() -> None:
    data = {"password": "x", "redis_password": "y", "token_blacklist": 3,
            "dsn": "postgresql://u:pw@h/db", "nested": [{"secret": "z"}]}
    assert redact(data) == {"password": "(redacted)", "redis_password": "(redacted)",
                            "token_blacklist": 3, "dsn": "postgresql://u:***@h/db",
                            "nested": [{"secret": "(redacted)"}]}


def test_interrupted_run_is_reported_as_such(pg_db: PgSettings) -> None:
    journal = Journal.create(pg_db, "migrate")
    # A journal as an older version left it when the run was killed after planning.
    append_raw(journal, "state_before", state="pre", explanation="ready", server_version="15")
    append_raw(journal, "plan", direction="up", state="pre", steps=[], script="BEGIN;\nCOMMIT;\n")
    m = build_report(journal)
    assert not m.outcome_ok
    assert "interrupted" in m.outcome


def test_pdf_has_every_item_and_no_secret(qapp: Any, migrated_run: Journal,
                                          pg_db: PgSettings, tmp_path: Path) -> None:
    from wizard.ui.pdf import write_report_pdf

    pdf = tmp_path / "report.pdf"
    pages = write_report_pdf(migrated_run, pdf)
    assert pages >= 2
    text = _pdf_text(pdf)
    model = build_report(migrated_run)
    for item in model.checklist:
        assert _words(item.title) in text, item.title
    assert OPERATOR in text
    assert pg_db.dbname in text
    assert BACKUP_SHA in text.replace(" ", "")
    assert 'ALTER TABLE "public"."prosumer" RENAME TO "user";' in text
    assert f"page 1 of {pages}" in text
    assert pg_db.password
    assert pg_db.password not in text
    assert pg_db.password.encode() not in pdf.read_bytes()
    assert "hunter2" not in text
    # Page 1 as a picture, for a person to look at (the helper's report says what it showed).
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf),
                    str(tmp_path / "page")], check=True)
    [png] = list(tmp_path.glob("page*.png"))
    header = png.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    # A4 at 60 dpi: 496 x 702 pixels.
    assert (int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")) == \
        (496, 702)


def test_cli_report_end_to_end(migrated_run: Journal, pg_db: PgSettings, tmp_path: Path,
                               journal_dir: Path) -> None:
    pdf = tmp_path / "out.pdf"
    env_cmd = [sys.executable, "-m", "wizard", "report", migrated_run.folder.name,
               "--pdf", str(pdf), "--json"]
    done = subprocess.run(env_cmd, capture_output=True, text=True, check=False,
                          env=_headless_env(journal_dir))
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["pdf"] == str(pdf)
    assert data["report"]["operator"] == OPERATOR
    assert data["pages"] >= 2
    text = _pdf_text(pdf)
    assert pg_db.dbname in text
    # By path too, and an unknown run is a usage error naming where runs are.
    done = subprocess.run([sys.executable, "-m", "wizard", "report", str(migrated_run.folder),
                           "--pdf", str(tmp_path / "by_path.pdf")], capture_output=True,
                          text=True, check=False, env=_headless_env(journal_dir))
    assert done.returncode == 0, done.stderr
    assert "by_path.pdf" in done.stdout
    done = subprocess.run([sys.executable, "-m", "wizard", "report", "no_such_run", "--pdf",
                           str(tmp_path / "x.pdf")], capture_output=True, text=True,
                          check=False, env=_headless_env(journal_dir))
    assert done.returncode == 2
    assert re.search(r"no run .*no_such_run", done.stderr), done.stderr
    assert migrated_run.folder.name in done.stderr  # the newest runs are offered


def _headless_env(journal_dir: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["ENERLINK_MIGRATE_RUNS"] = str(journal_dir)
    return env


def _dark_pixels(pdf: Path, tmp_path: Path, name: str) -> int:
    """Pixels darker than mid-grey on page 1 (ink on the paper)."""
    subprocess.run(["pdftoppm", "-gray", "-r", "30", "-f", "1", "-l", "1", str(pdf),
                    str(tmp_path / name)], check=True)
    [pgm] = list(tmp_path.glob(f"{name}*.pgm"))
    data = pgm.read_bytes()
    # Binary PGM: "P5", width, height, maxval, then one byte per pixel.
    fields = data.split(maxsplit=4)
    width, height = int(fields[1]), int(fields[2])
    pixels = fields[4][-width * height:]
    return sum(1 for p in pixels if p < 128)


def test_pdf_ink_is_dark_under_a_dark_desktop_theme(qapp: Any, migrated_run: Journal,
                                                    tmp_path: Path) -> None:
    from PySide6.QtGui import QColor, QPalette

    from wizard.ui.pdf import write_report_pdf

    light_pdf, dark_pdf = tmp_path / "light.pdf", tmp_path / "dark.pdf"
    write_report_pdf(migrated_run, light_pdf)
    previous = qapp.palette()
    dark = QPalette(previous)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText):
        dark.setColor(role, QColor("#f0f0f0"))
    dark.setColor(QPalette.ColorRole.Base, QColor("#1e1e1e"))
    qapp.setPalette(dark)
    try:
        write_report_pdf(migrated_run, dark_pdf)
    finally:
        qapp.setPalette(previous)
    light_ink = _dark_pixels(light_pdf, tmp_path, "light")
    assert light_ink > 1000
    assert _dark_pixels(dark_pdf, tmp_path, "dark") == light_ink


def test_the_report_says_what_the_redis_step_changed_per_rule(
        migrated_run: Journal, redis_server: Any, redis_client: Any) -> None:
    from wizard.core import redis_migrate
    from wizard.core.redis_conn import RedisSettings
    from wizard.core.redis_rules import DEFAULT_RULES
    from wizard.sandbox.redis_seed import seed_redis

    seed_redis(redis_client, 10)
    redis_client.hset("orders:both", mapping={"prosumerId": "a", "userId": "b"})
    settings = RedisSettings.from_url(f"{redis_server.url}/1", password=redis_server.password)
    redis_migrate.migrate(settings, DEFAULT_RULES, journal=migrated_run)
    html = render_html(build_report(migrated_run))
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    assert "Redis data" in text
    assert f"{settings.describe()}, to the new names" in text
    assert "field orders:* prosumerId=userId 20 0 1 orders:both" in text
    assert "move orders:by_prosumer:* orders:by_user:* 10 0 0" in text
    assert redis_server.password not in html


# ---- the report a change board signs, from a whole change window -----------------------------

@dataclass
class Window:
    journal: Journal
    rollback: BackupResult  # the backup the migration relied on
    early: BackupResult  # one taken before it: also taken, not the rollback point


@pytest.fixture
def change_window(pg_db: PgSettings, redis_server: Any, redis_client: Any,
                  tmp_path: Path) -> Window:
    """Every step of the wizard on one session's journal, as the headless demo runs them:
    pre-flight, the application stopped, two backups (the second proven), the orphan scan,
    a rehearsal, the migration (its guard accepts the proven backup), Redis, verification,
    the application started again, the operator's name and one ticked item."""
    from wizard.sandbox.redis_seed import seed_redis

    seed_redis(redis_client, 10)
    redis = RedisSettings.from_url(f"{redis_server.url}/1", password=redis_server.password)
    stand_in = f"{sys.executable} -c pass"  # the application's stop and start commands
    profile = Profile(name="prod", change_ref=CHANGE, reviewer=REVIEWER, operator=OPERATOR,
                      app_stop_command=stand_in, app_start_command=stand_in)
    session = WizardSession(pg_db, redis, profile)
    journal = session.ensure_journal()
    folder = tmp_path / "backups"
    assert not run_preflight(pg_db, folder, journal=journal).blocking
    assert app_command("stop", stand_in, journal=journal).ok
    early = backup(pg_db, BackupOptions(out_dir=folder / "early"), journal=journal)
    made = backup(pg_db, BackupOptions(out_dir=folder), journal=journal)
    assert early.verified, early.error
    assert made.verified, made.error
    assert prove(pg_db, made.path, journal=journal).proven
    orphans.scan(pg_db, journal=journal)
    assert jobs.run(pg_db, UP, options=RunOptions(rehearse=True), journal=journal)[1].ok
    assert jobs.run(pg_db, UP, journal=journal, guard=jobs.Guard())[1].ok
    redis_migrate.dry_run(redis, session.redis_rules, journal=journal)
    redis_migrate.migrate(redis, session.redis_rules, journal=journal)
    checklist.final_checklist(pg_db, redis, journal=journal)
    assert app_command("start", stand_in, journal=journal).ok
    record_operator(journal, OPERATOR)
    record_manual_check(journal, "app_starts", True, "pm2 logs clean")
    return Window(journal, made, early)


def test_the_session_opens_its_journal_with_the_change(change_window: Window) -> None:
    first, second, *_ = change_window.journal.events()
    assert (first["event"], first["command"]) == ("run_started", "wizard")
    assert {k: second[k] for k in ("event", "ref", "reviewer", "operator")} == {
        "event": "change", "ref": CHANGE, "reviewer": REVIEWER, "operator": OPERATOR}


def test_the_model_of_a_change_window(change_window: Window) -> None:
    journal, made = change_window.journal, change_window.rollback
    m = build_report(journal)
    events = journal.events()
    assert (m.change_ref, m.reviewer, m.operator) == (CHANGE, REVIEWER, OPERATOR)
    assert (m.started, m.finished) == (events[0]["ts"], events[-1]["ts"])
    stop, start = journal.events("app_command")
    assert (m.app_stopped, m.app_started) == (stop["ts"], start["ts"])
    assert m.downtime_s is not None
    assert 0 < m.downtime_s <= m.duration_s  # type: ignore[operator]
    rb = m.rollback
    assert rb is not None
    assert (rb.path, rb.sha256, rb.size_bytes) == (made.path, made.sha256, made.size_bytes)
    assert (rb.accepted, rb.proof) == (True, "proven")
    assert rb.proof_summary.startswith("proven: restored into a scratch copy")
    assert [b["path"] for b in m.backups] == [change_window.early.path, made.path]
    steps = {s.step: s for s in m.steps}
    assert list(steps) == ["Pre-flight", "Application stopped", "Backup and proof",
                           "Orphan rows", "Migration", "Redis", "Verification",
                           "Application started"]
    assert {s.step: s.status for s in m.steps if s.status != "pass"} == {
        "Verification": "warn"}  # 1 of the 17 application and frontend items ticked
    rehearsal, migration = [line.text for line in steps["Migration"].lines]
    assert re.fullmatch(r"rehearsal: would block \d+\.\d ms, rolled back \(nothing changed; "
                        r"20 steps\)", rehearsal), rehearsal
    assert migration.startswith("migration committed: state pre → migrated; 20 steps in 1 "
                                "attempt, application blocked ")
    backups = [line.text for line in steps["Backup and proof"].lines]
    assert backups[0].endswith(": also taken, not the rollback point")
    assert backups[1].endswith(": the rollback point")
    assert "proven: restored into a scratch copy" in backups[2]
    assert "accepted" in backups[3]
    assert steps["Orphan rows"].lines[0].text == "no orphan rows in 7 referencing columns"
    assert m.left_out == {}


def test_the_pdf_a_change_board_signs(qapp: Any, change_window: Window,
                                      tmp_path: Path) -> None:
    from wizard.ui.pdf import write_report_pdf

    journal, made = change_window.journal, change_window.rollback
    m = build_report(journal)
    pdf = tmp_path / "report.pdf"
    pages = write_report_pdf(journal, pdf)
    text = _pdf_text(pdf)
    assert f"Change reference {CHANGE}" in text
    assert f"{CHANGE} · EnerLink prosumer → user" in text  # every page's footer
    assert f"Window start {format_ts(m.started)}" in text
    assert f"Window end {format_ts(m.finished)}" in text
    assert "Application downtime " in text
    assert f"stopped {format_ts(m.app_stopped)}, started again {format_ts(m.app_started)}" \
        in text
    assert f"Operator {OPERATOR}" in text
    assert f"Reviewer {REVIEWER}" in text
    # The sign-off lines name both.
    assert re.search(f"Role Name Date Signature Operator {OPERATOR} .*Reviewer {REVIEWER}",
                     text), text[:2000]
    # The rollback point, marked, with its hash and proof; the other backup only as taken.
    marked = text.index("ROLLBACK POINT: restore this file")
    box = text[marked:text.index("Also taken in this run (not the rollback point)")]
    assert made.path in box.replace(" ", "")
    assert f"sha256 {made.sha256}" in box
    assert "Proof ✔ PASS proven: proven: restored into a scratch copy" in box
    assert change_window.early.path not in box.replace(" ", "")
    assert text.count("ROLLBACK POINT") == 1
    # Each step's outcome in words.
    for words in ("pre-flight: 7 of 7 checks passed (state pre); nothing blocks the run",
                  "no orphan rows in 7 referencing columns",
                  "rehearsal: would block", "ms, rolled back (nothing changed; 20 steps)",
                  "migration committed: state pre → migrated",
                  "40 keys of redis://", "brought to the new names, no conflicts",
                  "verification:", "checks passed",
                  "application and frontend checks: 1 of 17 ticked by the operator"):
        assert words in text, words
    assert "→ ?" not in text
    # The SQL at the end, after everything else.
    appendix = text.index("Appendix: the SQL")
    assert appendix > text.index("Application and frontend checks (ticked by the operator)")
    assert text.index('ALTER TABLE "public"."prosumer" RENAME TO "user";') > appendix
    assert text.index("Revert SQL (for reference)") > appendix
    # No raw journal JSON anywhere (a cast in the appendix's SQL, "user_id"::text, is SQL).
    assert '{"' not in text
    assert not re.search(r'"\w+": ', text)
    assert f"page {pages} of {pages}" in text
    # A search of the PDF finds "verified" and "fingerprint": no "fi" ligature glyphs.
    raw = subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"], capture_output=True,
                         text=True, check=True).stdout
    assert "\ufb01" not in raw
    assert "A verified backup" in raw
    # Every page as a picture, for a person to look at, and none of them blank.
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(pdf), str(tmp_path / "page")],
                   check=True)
    pngs = sorted(tmp_path.glob("page*.png"))
    assert len(pngs) == pages
    for png in pngs:
        assert png.stat().st_size > 5_000, png


def test_no_page_cuts_a_row_or_leaves_a_heading_alone(
        qapp: Any, change_window: Window, monkeypatch: pytest.MonkeyPatch) -> None:
    from PySide6.QtCore import QBuffer

    from wizard.ui import pdf

    laid = pdf.lay_out(render_html(build_report(change_window.journal)),
                       pdf.a4_writer(QBuffer()))
    assert pdf.first_cut(laid.doc, laid.page_h) is None
    # A long table of tall rows under a heading, after some text; then many headings over
    # one to four lines each, as the appendix's queries are.
    rows = "".join(f"<tr><td>{n}</td><td>{'word ' * (40 + n % 7 * 30)}</td></tr>"
                   for n in range(60))
    queries = "".join(f"<h3>Check {n}</h3><pre>{'SELECT 1;' + chr(10) * (n % 4)}</pre>"
                      for n in range(200))
    html = ("<p>" + "text " * 2000 + "</p><h2>Heading</h2><table border='1' width='100%'>"
            f"<thead><tr><th>#</th><th>Text</th></tr></thead>{rows}</table>{queries}")
    with monkeypatch.context() as m:
        m.setattr(pdf, "keep_together", lambda _doc, _page_h: 0)
        raw = pdf.lay_out(html, pdf.a4_writer(QBuffer()))
        assert pdf.first_cut(raw.doc, raw.page_h) is not None  # Qt alone cuts them
    laid = pdf.lay_out(html, pdf.a4_writer(QBuffer()))
    assert laid.count > 5
    assert pdf.first_cut(laid.doc, laid.page_h) is None


def test_unknown_records_are_left_out_with_a_count_not_dumped(pg_db: PgSettings) -> None:
    journal = Journal.create(pg_db, "migrate")
    append_raw(journal, "from_a_later_version", payload={"nested": {"deep": [1, 2]}})
    append_raw(journal, "from_a_later_version", payload={"again": True})
    m = build_report(journal)
    assert m.left_out == {"from_a_later_version": 2}
    html = render_html(m)
    assert "2 records this version of the report does not read (2 from a later version) are " \
        "left out; they are in the journal" in " ".join(re.sub(r"<[^>]+>", " ", html).split())
    assert str(journal.path) in html
    assert "nested" not in html
    assert "{&quot;" not in html


def test_a_migration_without_a_backup_has_no_rollback_point(pg_db: PgSettings) -> None:
    _plan, result, journal = jobs.run(pg_db, UP, guard=jobs.Guard(without_backup=pg_db.dbname))
    assert result.ok, result.error
    m = build_report(journal)
    assert m.rollback is None
    assert m.skipped_backup is not None
    [backup_step] = [s for s in m.steps if s.step == "Backup and proof"]
    assert backup_step.status == "fail"
    assert backup_step.lines[0].text.startswith("NO BACKUP: ")
    text = " ".join(re.sub(r"<[^>]+>", " ", render_html(m)).split())
    assert "✘ NO ROLLBACK POINT : the backup was skipped" in text
    assert "not given (enerlink-migrate … --change REF" in text  # no change reference
