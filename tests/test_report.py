"""The run report: model and HTML from a real journal, the PDF's text, the CLI command."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from wizard.core import jobs
from wizard.core.connection import PgSettings
from wizard.core.events import BackupDone, Verified
from wizard.core.journal import Journal
from wizard.core.report import (
    MANUAL_CHECKS,
    build_report,
    record_manual_check,
    record_operator,
    redact,
    render_html,
)

OPERATOR = "Dewi Anggraini"
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
    [cache] = [o for o in m.others if o.name == "cache_delete"]
    assert cache.fields["url"] == "redis://app:***@cache:6379/0"
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
