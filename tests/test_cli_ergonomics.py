"""The CLI as a DBA meets it: `runs`, options only where they act, exit codes, help texts,
`plan --sql` with nothing to do, and a typed name before `revert`."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wizard import cli
from wizard.core.connection import PgSettings
from wizard.core.events import BackupDone, BackupProven, PlanMade, RunFinished
from wizard.core.journal import Journal
from wizard.core.runs import list_runs
from wizard.sandbox.probes import run_cli


def _main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The CLI in this process; argparse's usage errors exit (2) instead of returning."""
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


# --- 1. runs ---------------------------------------------------------------------------------

@pytest.fixture
def recorded_runs(pg_db: PgSettings, tmp_path: Path, restore_template: str) -> PgSettings:
    """A rehearsal, a proven backup, the migration and its revert, all through the CLI."""
    for argv in (("migrate", "--rehearse"),
                 ("backup", "--out", str(tmp_path / "bk"), "--prove", "--template",
                  restore_template),
                 ("migrate",),
                 ("revert", "--confirm", pg_db.dbname)):
        out = run_cli(pg_db, *argv, folder=tmp_path)
        assert out.returncode == 0, (argv, out.stdout + out.stderr)
    return pg_db


def test_runs_says_what_each_run_did_newest_first(
        recorded_runs: PgSettings, journal_dir: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    db = recorded_runs
    code, out, _ = _main(capsys, "runs", "--json", "--db", db.dbname)
    assert code == 0
    runs = json.loads(out)["runs"]
    assert [r["command"] for r in runs] == ["revert", "migrate", "backup", "rehearse-migrate"]
    # What each run did, in words; the migration is "committed", not "the database is
    # migrated": the revert after it is a run of its own.
    assert [r["outcome"] for r in runs] == ["revert committed", "migration committed",
                                            "backup verified and proven",
                                            "rehearsal ok (rolled back)"]
    assert all(r["ok"] for r in runs)
    assert {r["database"] for r in runs} == {f"{db.host}:{db.port}/{db.dbname}"}
    assert [r["started"] for r in runs] == sorted((r["started"] for r in runs), reverse=True)
    assert all(Path(r["folder"]).parent == journal_dir for r in runs)

    # Without --db neither: the proof's rehearsal on its scratch copy is journaled inside
    # the proof's run folder, not listed as a run of a database that no longer exists.
    code, out, _ = _main(capsys, "runs", "--json")
    assert not [r for r in json.loads(out)["runs"] if "_proof_" in r["dbname"]]

    code, out, _ = _main(capsys, "runs", "--db", db.dbname, "--limit", "2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"runs under {journal_dir}, newest first:"
    assert len(lines) == 3
    assert "  revert  " in lines[1]
    assert f"{db.host}:{db.port}/{db.dbname}" in lines[1]
    assert "revert committed" in lines[1]
    assert lines[1].endswith(runs[0]["run"])
    assert "migration committed" in lines[2]
    assert " UTC " in lines[2]

    code, out, _ = _main(capsys, "runs", "--db", "no_such_db")
    assert (code, out.strip()) == (0, f"no runs of database no_such_db recorded under "
                                      f"{journal_dir}")
    code, _, err = _main(capsys, "runs", "--limit", "0")
    assert code == 2
    assert "must be 1 or more" in err


def test_runs_show_prints_one_runs_events_readably(
        recorded_runs: PgSettings, journal_dir: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    migrate = next(r for r in list_runs(dbname=recorded_runs.dbname) if r.command == "migrate")
    prefix = migrate.name[:len("20240101T000000.000000")]
    code, out, _ = _main(capsys, "runs", "show", prefix)
    assert code == 0, out
    assert not out.lstrip().startswith("{")
    assert out.startswith(f"run {migrate.name} ({journal_dir / migrate.name})\n")
    assert "  outcome: migration committed\n" in out
    assert "rollback point: " in out
    assert ", proven)" in out
    assert "  [1/" in out
    assert out.count("] Renaming table prosumer → user") == 1  # its log line, not twice
    assert "finished: migration committed (" in out
    assert "✔ Table \"user\" exists" in out
    assert '"event"' not in out

    code, out, _ = _main(capsys, "runs", "show", str(journal_dir / migrate.name), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["events"] == Journal(journal_dir / migrate.name).events()
    assert data["summary"]["outcome"] == "migration committed"
    code, again, _ = _main(capsys, "runs", "--json", "show", migrate.name)
    assert json.loads(again) == data

    code, _, err = _main(capsys, "runs", "show", migrate.name[:4])
    assert code == 2
    assert "give more of the name" in err
    code, _, err = _main(capsys, "runs", "show", "no_such_run")
    assert code == 2
    assert "no run 'no_such_run'" in err
    assert "newest runs: " in err
    code, _, err = _main(capsys, "runs", "--db", recorded_runs.dbname, "show", migrate.name)
    assert code == 2
    assert "`runs show RUN` shows one run" in err


def _journal(root: Path, name: str, command: str) -> Journal:
    return Journal.create(PgSettings(host="db.example", port=5433, dbname=name), command,
                          root=root)


def test_runs_wording_of_failures_unknown_commits_and_a_later_failed_proof(
        journal_dir: Path) -> None:
    """Journals written by hand with the declared events (no server is needed to read them)."""
    backup = _journal(journal_dir, "shop", "backup")
    backup.record(BackupDone({"verified": True, "path": "/b/shop.dump", "sha256": "ab" * 32}))
    failed = _journal(journal_dir, "shop", "migrate")
    failed.record(PlanMade({"direction": "up", "state": "pre"}))
    failed.record(RunFinished({"ok": False, "rehearsal": False, "direction": "up",
                               "state_before": "pre", "commit": "not committed",
                               "error": "lock timeout on wallet\nafter 4 attempts"}))
    unknown = _journal(journal_dir, "shop", "migrate")
    unknown.record(RunFinished({"ok": False, "rehearsal": False, "direction": "up",
                                "commit": "unknown", "commit_lost": True,
                                "error": "server closed the connection"}))
    checked = _journal(journal_dir, "shop", "migrate")
    checked.record(RunFinished({"ok": False, "rehearsal": False, "direction": "up",
                                "commit": "committed", "steps": [{}],
                                "error": "row counts differ"}))
    interrupted = _journal(journal_dir, "shop", "revert")
    interrupted.record(PlanMade({"direction": "down", "state": "migrated"}))
    proof = _journal(journal_dir, "shop", "prove")
    proof.record(BackupProven({"proven": False, "path": "/b/shop.dump", "sha256": "ab" * 32,
                               "reason": "prosumer has 3 rows, the dump's snapshot 4"}))
    _journal(journal_dir, "other", "verify")
    outcomes = {r.name: (r.outcome, r.ok) for r in list_runs(journal_dir, dbname="shop")}
    assert outcomes == {
        proof.folder.name: ("proof of shop.dump FAILED: prosumer has 3 rows, the dump's "
                            "snapshot 4", False),
        interrupted.folder.name: ("revert interrupted: no result recorded (run "
                                  "`enerlink-migrate inspect`)", False),
        checked.folder.name: ("migration committed, then a check FAILED: row counts differ",
                              False),
        unknown.folder.name: ("migration outcome UNKNOWN: server closed the connection", False),
        failed.folder.name: ("migration FAILED: lock timeout on wallet", False),
        # The newest proof of the file, recorded by a later run, speaks for the backup.
        backup.folder.name: ("backup verified; its proof FAILED: prosumer has 3 rows, the "
                             "dump's snapshot 4", False),
    }
    [other] = list_runs(journal_dir, dbname="other")
    assert (other.outcome, other.ok, other.database) == ("no result recorded", None,
                                                         "db.example:5433/other")


# --- 2. options only where they act --------------------------------------------------------

def _options(*command: str) -> set[str]:
    parser = cli.build_parser()
    for name in command:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return {s for a in parser._actions for s in a.option_strings if s.startswith("--")}


CONNECTION = {"--help", "--dsn", "--profile", "--json"}
TIMEOUTS = {"--lock-timeout", "--statement-timeout"}
RUN = {"--retries", "--reconnect-wait", "--count-all"}
MIGRATION_ROW = {"--migration-name", "--migration-timestamp"}
REDIS = {"--redis-url", "--redis-user", "--redis-db", "--redis-ca", "--redis-timeout"}
CHANGE = {"--change", "--reviewer"}  # recorded in the journal a command opens


def test_each_engine_command_offers_only_the_options_it_uses() -> None:
    assert _options("inspect") == CONNECTION
    # plan writes the two timeouts into its script's SET LOCAL lines and the migrations row
    # into its steps; retrying, reconnecting and counting happen only when a run runs.
    assert _options("plan") == CONNECTION | TIMEOUTS | MIGRATION_ROW | {"--down", "--sql"}
    assert _options("migrate") == CONNECTION | TIMEOUTS | RUN | MIGRATION_ROW | CHANGE | {
        "--rehearse", "--without-backup", "--confirm", "--accept-failed-proof",
        "--max-backup-age", "--plan-digest"}
    # revert never passed --migration-name or --migration-timestamp on: they are gone.
    assert _options("revert") == CONNECTION | TIMEOUTS | RUN | REDIS | CHANGE | {
        "--plan-digest", "--confirm"}
    assert _options("verify") == CONNECTION | REDIS | CHANGE
    assert _options("runs") == {"--help", "--db", "--limit", "--json"}


def test_plan_writes_the_given_timeouts_into_its_script_and_inspect_refuses_them(
        pg_db: PgSettings, tmp_path: Path) -> None:
    out = run_cli(pg_db, "plan", "--sql", "--lock-timeout", "1.5", "--statement-timeout", "5",
                  folder=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "SET LOCAL lock_timeout = '1500ms';" in out.stdout
    assert "SET LOCAL statement_timeout = '5000ms';" in out.stdout
    out = run_cli(pg_db, "inspect", "--lock-timeout", "1", folder=tmp_path)
    assert out.returncode == 2
    assert "unrecognized arguments: --lock-timeout" in out.stderr
    out = run_cli(pg_db, "plan", "--retries", "2", folder=tmp_path)
    assert out.returncode == 2


# --- 3. usage mistakes exit 2, refusals 3 --------------------------------------------------

def test_the_exit_codes_are_in_the_epilog(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _main(capsys, "--help")
    assert code == 0
    text = " ".join(out.split())
    for words in ("0 success", "1 failed", "2 usage or connection", "3 refused",
                  "4 outcome unknown"):
        assert words in text


@pytest.mark.parametrize(("argv", "says"), [
    (("migrate", "--plan-digest", "not-hex"), "is not a plan digest"),
    (("migrate", "--plan-digest", "abc123"), "is not a plan digest"),  # too short to mean one
    (("revert", "--plan-digest", "xyz"), "is not a plan digest"),
    (("migrate", "--lock-timeout", "0"), "must be more than 0 seconds"),  # 0: wait forever
    (("plan", "--statement-timeout", "-5"), "must be more than 0 seconds"),
    (("migrate", "--reconnect-wait", "soon"), "not a number of seconds"),
    (("migrate", "--retries", "-1"), "must be 0 or more"),
    (("migrate", "--max-backup-age", "0"), "must be more than 0 hours"),
    (("orphans", "--statement-timeout", "0"), "must be more than 0 seconds"),
])
def test_a_bad_value_is_a_usage_error(argv: tuple[str, ...], says: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _main(capsys, *argv)
    assert code == 2
    assert says in err


def test_a_redis_rule_that_does_not_read_is_a_usage_error_one_that_reaches_too_far_refused(
        capsys: pytest.CaptureFixture[str], journal_dir: Path) -> None:
    # Both are decided before Redis is contacted (nothing listens on port 1).
    code, _, err = _main(capsys, "cache", "--redis-url", "redis://127.0.0.1:1/0", "--rule",
                         "rename orders:* a=b")
    assert code == 2
    assert "cannot read the Redis rule" in err
    code, _, err = _main(capsys, "cache", "--redis-url", "redis://127.0.0.1:1/0", "--rule",
                         "delete *")
    assert code == 3
    assert "no literal prefix" in err
    assert not journal_dir.exists()


def test_migrate_confirm_without_its_flag_is_a_usage_error_a_wrong_name_a_refusal(
        pg_db: PgSettings, tmp_path: Path, journal_dir: Path) -> None:
    out = run_cli(pg_db, "migrate", "--confirm", pg_db.dbname, folder=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "--confirm goes with --without-backup" in out.stderr
    assert not journal_dir.exists()  # stopped before a run began
    out = run_cli(pg_db, "migrate", "--without-backup", folder=tmp_path)
    assert out.returncode == 2
    assert "--without-backup needs --confirm" in out.stderr
    out = run_cli(pg_db, "migrate", "--without-backup", "--confirm", "not_it", folder=tmp_path)
    assert out.returncode == 3, out.stderr
    assert "does not match the database" in out.stderr
    assert json.loads(run_cli(pg_db, "inspect", "--json", folder=tmp_path).stdout)[
        "state"] == "pre"


# --- 4. every option says what it does -----------------------------------------------------

# (command path, option or dest) hidden on purpose from --help; none today.
HIDDEN_ON_PURPOSE: set[tuple[str, str]] = set()


def _parsers(parser: argparse.ArgumentParser, path: str = "enerlink-migrate"
             ) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _parsers(sub, f"{path} {name}")
    return found


def test_every_command_and_option_has_help_text() -> None:
    missing = []
    for path, parser in _parsers(cli.build_parser()):
        parser.format_help()  # a help text with a bad %(...)s fails here, not at a DBA's
        for action in parser._actions:
            name = (action.option_strings or [action.dest])[-1]
            if action.help == argparse.SUPPRESS:
                if (path, name) not in HIDDEN_ON_PURPOSE:
                    missing.append(f"{path} {name}: help=SUPPRESS")
            elif not (action.help or "").strip():
                missing.append(f"{path} {name}")
            if isinstance(action, argparse._SubParsersAction):
                described = {a.dest for a in action._choices_actions if (a.help or "").strip()}
                missing += [f"{path} {c} (no help in the command list)"
                            for c in action.choices if c not in described]
    assert missing == []


# --- 5. plan --sql with nothing to do ------------------------------------------------------

def test_plan_sql_on_a_migrated_database_says_nothing_to_do_instead_of_an_empty_script(
        pg_db: PgSettings, tmp_path: Path) -> None:
    out = run_cli(pg_db, "migrate", "--without-backup", "--confirm", pg_db.dbname,
                  folder=tmp_path)
    assert out.returncode == 0, out.stderr
    out = run_cli(pg_db, "plan", "--sql", folder=tmp_path)
    assert (out.returncode, out.stdout) == (0, "")
    assert out.stderr.strip() == (f"note: nothing to do: {pg_db.dbname} is already migrated "
                                  f"(state migrated)")
    # The revert has steps: its script is printed as before. (A revert plan of a database
    # before the rename is refused, exit 3, by the engine: "nothing to revert".)
    out = run_cli(pg_db, "plan", "--sql", "--down", folder=tmp_path)
    assert out.returncode == 0
    assert out.stdout.startswith("-- enerlink-migrate plan (down), database state: migrated")
    assert 'ALTER TABLE "public"."user" RENAME TO "prosumer";' in out.stdout
    # --json keeps its document, with the empty plan in it.
    out = run_cli(pg_db, "plan", "--sql", "--json", folder=tmp_path)
    assert out.returncode == 0
    assert json.loads(out.stdout)["steps"] == []


# --- 6. revert wants the database's name typed back ----------------------------------------

def _state(settings: PgSettings, folder: Path) -> str:
    return str(json.loads(run_cli(settings, "inspect", "--json", folder=folder).stdout)["state"])


def _runs_of(journal_dir: Path, command: str) -> list[Path]:
    return [p for p in journal_dir.iterdir() if p.name.endswith(f"_{command}")] \
        if journal_dir.is_dir() else []


def _revert_on_a_terminal(settings: PgSettings, folder: Path, answer: str
                          ) -> subprocess.CompletedProcess[str]:
    """`revert` with a terminal (a pty) as its stdin, on which `answer` is typed."""
    passfile = folder / "pgpass"
    passfile.write_text(f"{settings.host}:{settings.port}:*:{settings.user}:"
                        f"{settings.password}\n")
    passfile.chmod(0o600)
    dsn = f"postgresql://{settings.user}@{settings.host}:{settings.port}/{settings.dbname}"
    env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
    env["PGPASSFILE"] = str(passfile)
    controller, terminal = os.openpty()
    try:
        os.write(controller, answer.encode() + b"\n")  # waits in the terminal's input queue
        return subprocess.run([sys.executable, "-m", "wizard", "revert", "--dsn", dsn],
                              stdin=terminal, capture_output=True, text=True, env=env,
                              check=False, timeout=120)
    finally:
        os.close(terminal)
        os.close(controller)


def test_revert_without_the_typed_name_refuses_and_changes_nothing(
        pg_db: PgSettings, tmp_path: Path, journal_dir: Path) -> None:
    out = run_cli(pg_db, "migrate", "--without-backup", "--confirm", pg_db.dbname,
                  folder=tmp_path)
    assert out.returncode == 0, out.stderr
    out = run_cli(pg_db, "revert", folder=tmp_path)  # stdin is not a terminal: no prompt
    assert out.returncode == 3, out.stdout + out.stderr
    assert f"a revert needs the database's name typed back: --confirm {pg_db.dbname}" \
        in out.stderr
    assert "Nothing was changed" in out.stderr
    out = run_cli(pg_db, "revert", "--confirm", pg_db.dbname + "_x", folder=tmp_path)
    assert out.returncode == 3
    assert f"got '{pg_db.dbname}_x'" in out.stderr
    out = run_cli(pg_db, "revert", "--json", folder=tmp_path)
    assert out.returncode == 3
    assert out.stdout == ""
    assert _state(pg_db, tmp_path) == "migrated"
    assert _runs_of(journal_dir, "revert") == []  # refused before a run began
    out = run_cli(pg_db, "revert", "--confirm", pg_db.dbname, folder=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "revert succeeded" in out.stdout
    assert _state(pg_db, tmp_path) == "pre"


def test_revert_on_a_terminal_asks_for_the_name(pg_db: PgSettings, tmp_path: Path,
                                                journal_dir: Path) -> None:
    out = run_cli(pg_db, "migrate", "--without-backup", "--confirm", pg_db.dbname,
                  folder=tmp_path)
    assert out.returncode == 0, out.stderr
    out = _revert_on_a_terminal(pg_db, tmp_path, "prod")
    assert out.returncode == 3, out.stdout + out.stderr
    assert f"Type {pg_db.dbname} to agree: " in out.stderr  # the question is not on stdout
    assert out.stdout == ""
    assert f"you typed 'prod', not the database's name '{pg_db.dbname}'" in out.stderr
    assert _state(pg_db, tmp_path) == "migrated"
    assert _runs_of(journal_dir, "revert") == []
    out = _revert_on_a_terminal(pg_db, tmp_path, pg_db.dbname)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "revert succeeded" in out.stdout
    assert _state(pg_db, tmp_path) == "pre"
    assert len(_runs_of(journal_dir, "revert")) == 1
