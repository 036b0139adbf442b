"""--change and --reviewer: every command that opens a run journal records its change first."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from wizard.cli import build_parser
from wizard.cli import main as cli_main
from wizard.core import profiles
from wizard.core.connection import PgSettings
from wizard.core.journal import Journal, runs_root
from wizard.core.profiles import Profile
from wizard.core.report import build_report, render_html

CHANGE, REVIEWER = "CHG-2026-0142", "Ratna Wijaya"
JOURNALING = ("migrate", "revert", "verify", "preflight", "orphans", "backup", "prove",
              "restore", "cache")


def dsn(settings: PgSettings) -> str:
    return (f"postgresql://{settings.user}@{settings.host}:{settings.port}/{settings.dbname}"
            "?sslmode=disable")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Journal:
    """One command, in process; the journal it opened (the newest run)."""
    before = set(runs_root().iterdir()) if runs_root().exists() else set()
    code = cli_main(list(argv))
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    [folder] = set(runs_root().iterdir()) - before - {runs_root() / "cli-errors.log"}
    return Journal(folder)


def change_of(journal: Journal) -> dict[str, Any]:
    """The change record, which must come right after run_started."""
    first, second, *_ = journal.events()
    assert first["event"] == "run_started"
    assert second["event"] == "change", journal.events()[:3]
    return {k: second[k] for k in ("ref", "reviewer", "operator")}


@pytest.mark.parametrize("command", JOURNALING)
def test_every_journaling_command_takes_change_and_reviewer(command: str) -> None:
    required = {"backup": ["--out", "backups"], "prove": ["x.dump"], "restore": ["x.dump"]}
    args = build_parser().parse_args([command, *required.get(command, []), "--change", CHANGE,
                                      "--reviewer", REVIEWER])
    assert (args.change, args.reviewer) == (CHANGE, REVIEWER)


def test_a_change_window_on_the_command_line_names_its_change_in_every_journal(
        pg_db: PgSettings, tmp_path: Path, passfile: Path, redis_server: Any,
        redis_client: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    change = ["--dsn", dsn(pg_db), "--change", CHANGE, "--reviewer", REVIEWER]
    db = pg_db.dbname
    expected = {"ref": CHANGE, "reviewer": REVIEWER, "operator": ""}
    journals = {
        "preflight": run(capsys, "preflight", *change),
        "backup": run(capsys, "backup", "--out", str(tmp_path / "backups"), *change),
    }
    [dump] = (tmp_path / "backups").glob("*.dump")
    journals["prove"] = run(capsys, "prove", str(dump), "--no-rehearsal", *change)
    journals["orphans"] = run(capsys, "orphans", *change)
    journals["migrate"] = run(capsys, "migrate", *change)
    monkeypatch.setenv("REDISCLI_AUTH", redis_server.password)
    journals["cache"] = run(capsys, "cache", "--redis-url", f"{redis_server.url}/1", *change)
    journals["verify"] = run(capsys, "verify", *change)
    journals["revert"] = run(capsys, "revert", "--confirm", db, *change)
    journals["restore"] = run(capsys, "restore", str(dump), "--confirm", db, *change)
    for command, journal in journals.items():
        assert journal.folder.name.endswith(f"_{db}_{command}"), journal.folder
        assert change_of(journal) == expected, command
    # The migration's journal holds the rest of its run after the change, and its report
    # names it: the migrate guard accepted the backup taken above as the rollback point.
    migrate = journals["migrate"]
    assert migrate.events("run_finished")[0]["result"]["ok"]
    report = build_report(migrate)
    assert (report.change_ref, report.reviewer) == (CHANGE, REVIEWER)
    assert report.rollback is not None
    assert report.rollback.path == str(dump)
    assert report.rollback.proof == "proven"
    # A restore's report gives the way back instead: the database it replaced, kept.
    restored = build_report(journals["restore"])
    assert restored.rollback is None
    [done] = restored.restores
    assert done["ok"]
    assert (done["backup"], done["backup_sha256"]) == (
        str(dump), journals["backup"].events("backup")[0]["sha256"])
    text = " ".join(re.sub(r"<[^>]+>", " ", render_html(restored)).split())
    assert f"The way back {done['before_db']} : the database this restore replaced" in text


def test_the_profile_gives_the_change_and_the_command_line_overrides_it(
        pg_db: PgSettings, passfile: Path, config_dir: Path, no_keyring: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    profiles.save(Profile(name="prod", pg_host=pg_db.host, pg_port=pg_db.port,
                          pg_dbname=pg_db.dbname, pg_user=pg_db.user, pg_sslmode="disable",
                          ask_every_time=True, change_ref="CHG-7", reviewer="Sam Reviewer",
                          operator="Dewi Anggraini"))
    journal = run(capsys, "preflight", "--profile", "prod")
    assert change_of(journal) == {"ref": "CHG-7", "reviewer": "Sam Reviewer",
                                  "operator": "Dewi Anggraini"}
    journal = run(capsys, "preflight", "--profile", "prod", "--change", CHANGE)
    assert change_of(journal) == {"ref": CHANGE, "reviewer": "Sam Reviewer",
                                  "operator": "Dewi Anggraini"}
    report = build_report(journal)
    assert (report.change_ref, report.reviewer, report.operator) == (
        CHANGE, "Sam Reviewer", "Dewi Anggraini")


def test_without_a_change_nothing_is_recorded_and_the_report_says_so(
        pg_db: PgSettings, passfile: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = run(capsys, "preflight", "--dsn", dsn(pg_db))
    assert "change" not in {e["event"] for e in journal.events()}
    report = build_report(journal)
    assert (report.change_ref, report.reviewer) == ("", "")
