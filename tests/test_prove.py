"""The proof of a backup: real pg_dump (with an exported snapshot), pg_restore -j into a
scratch database, counts and fingerprint compared with the dump's snapshot, a rehearsal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wizard.cli import main as cli_main
from wizard.core import backup as backup_job
from wizard.core import jobs, prove, restore, restore_db
from wizard.core.backup_snapshot import table_counts
from wizard.core.connection import PgSettings
from wizard.core.journal import Journal, runs_for
from wizard.core.plan import UP
from wizard.core.proof_records import proofs_of
from wizard.core.report import build_report, render_html
from wizard.core.runs import list_runs
from wizard.core.verify import PASS
from wizard.sandbox.probes import databases
from wizard.sandbox.seed import inject_orphans
from wizard.sandbox.servers import PostgresServer


class Lines:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, level: str, message: str) -> None:
        self.lines.append((level, message))

    def text(self) -> str:
        return "\n".join(m for _l, m in self.lines)


def take_backup(settings: PgSettings, out: Path) -> backup_job.BackupResult:
    journal = Journal.create(settings, "backup")
    result = backup_job.backup(settings, backup_job.BackupOptions(out_dir=out),
                               journal=journal)
    assert result.verified, result.error
    return result


def add_user_row(settings: PgSettings) -> None:
    with settings.connect() as conn:
        conn.execute("INSERT INTO prosumer (prosumer_id, email, password_hash, created_at, "
                     "updated_at) VALUES ('after-the-backup', 'late@example.org', 'x', now(), "
                     "now())")


def counts(settings: PgSettings) -> dict[str, int]:
    with settings.connect() as conn:
        return table_counts(conn)


def test_the_backup_records_counts_and_fingerprint_in_pg_dumps_own_snapshot(
        live: PgSettings, tmp_path: Path) -> None:
    before = counts(live)
    result = take_backup(live, tmp_path)
    assert result.snapshot is not None
    assert result.snapshot["counts"] == before
    assert result.snapshot["fingerprint"]
    assert result.snapshot["snapshot"]
    event = next(e for j in runs_for(live) for e in j.events("backup"))
    assert event["snapshot"]["counts"] == before  # journaled with the backup


@pytest.mark.pg_matrix("backup")
def test_a_proof_restores_compares_with_the_snapshot_rehearses_and_drops_the_copy(
        live: PgSettings, pg_server: PostgresServer, tmp_path: Path, restore_template: str) -> None:
    backup = take_backup(live, tmp_path)
    snapshot = counts(live)
    add_user_row(live)  # written after the dump: the proof compares with the snapshot
    dbs = databases(pg_server)
    lines = Lines()
    proof = prove.prove(live, backup.path,
                        prove.ProofOptions(jobs=2, template=restore_template), report=lines)
    assert proof.proven, proof.reason
    assert proof.compared_with == prove.SNAPSHOT
    assert proof.counts_equal
    assert proof.fingerprint_equal
    assert proof.rows == sum(snapshot.values())
    assert proof.tables == len(snapshot)
    assert proof.rehearsal is not None
    assert proof.rehearsal["ok"], proof.rehearsal
    assert proof.rehearsal["blocked_ms"] is not None
    assert proof.dropped
    assert databases(pg_server) == dbs
    assert proof.scratch_db.startswith(f"{live.dbname}_proof_")
    text = lines.text()
    assert f"restoring it into {proof.scratch_db}" in text
    assert "--jobs 2" in text
    assert f"dropping the scratch copy {proof.scratch_db}" in text
    assert proof.summary().startswith("proven: restored into a scratch copy in ")
    assert "the migration rehearsed on the copy" in proof.summary()
    # The live database was only read: the late row is still there, state pre.
    assert jobs.inspect(live).state == "pre"
    recorded = [e for j in runs_for(live) for e in j.events("backup_proven")]
    assert recorded
    assert recorded[0]["proven"]
    assert recorded[0]["sha256"] == backup.sha256
    # The rehearsal's journal is part of the proof's run folder: the list of runs names
    # the real database's proof, never a run on the dropped scratch copy.
    rehearsal = Path(str(proof.rehearsal["journal"]))
    proving = [j.folder for j in runs_for(live) if j.events("backup_proven")]
    assert rehearsal.parent.parent in proving
    listed = list_runs()
    assert next(r.command for r in listed if r.dbname == live.dbname) == "prove"
    assert not [r for r in listed if "_proof_" in r.dbname]


def test_the_migrate_guard_shows_the_rollback_point_proven(
        live: PgSettings, tmp_path: Path) -> None:
    backup = take_backup(live, tmp_path)
    assert prove.prove(live, backup.path).proven
    lines = Lines()
    _plan, result, journal = jobs.run(live, UP, guard=jobs.Guard(), report=lines)
    assert result.ok, result.error
    assert any("rollback point: " in m and "· PROVEN" in m for _l, m in lines.lines)
    accepted = journal.events("backup_accepted")[-1]
    assert accepted["proof"]["proven"] is True
    assert accepted["proof"]["summary"].startswith("proven: ")


@pytest.mark.pg_matrix("backup")
def test_a_backup_that_does_not_restore_exactly_is_not_proven_and_the_guard_refuses(
        live: PgSettings, pg_server: PostgresServer, tmp_path: Path, restore_template: str,
        unrestorable: Any) -> None:
    unrestorable(live)
    backup = take_backup(live, tmp_path)
    dbs = databases(pg_server)
    proof = prove.prove(live, backup.path,
                        prove.ProofOptions(rehearse=False, template=restore_template))
    assert not proof.proven
    assert proof.reason is not None
    assert "function lower_mail(text) does not exist" in proof.reason
    assert proof.dropped
    assert databases(pg_server) == dbs
    with pytest.raises(jobs.GuardRefused) as info:
        jobs.run(live, UP, guard=jobs.Guard())
    text = str(info.value)
    assert f"the backup {backup.path} cannot be restored exactly" in text
    assert f"--accept-failed-proof {live.dbname}" in text
    assert jobs.inspect(live).state == "pre"
    lines = Lines()
    _plan, result, journal = jobs.run(live, UP, report=lines,
                                      guard=jobs.Guard(accept_failed_proof=live.dbname))
    assert result.ok, result.error
    assert "migrating anyway: confirmed by typing" in lines.text()
    assert journal.events("backup_accepted")[-1]["proof"]["proven"] is False


@pytest.mark.pg_matrix("backup")
def test_a_backup_with_orphans_is_proven_with_its_keys_not_valid(
        live: PgSettings, pg_server: PostgresServer, tmp_path: Path, restore_template: str) -> None:
    with pg_server.admin_connect(live.dbname) as admin:
        inject_orphans(admin, 3)
    backup = take_backup(live, tmp_path)
    proof = prove.prove(live, backup.path, prove.ProofOptions(template=restore_template))
    assert proof.proven, proof.reason
    assert proof.counts_equal
    assert proof.fingerprint_equal
    assert proof.not_valid, "the sample's existing FKs are violated by the orphans"
    # 3 orphans per column, more where rows point at other orphans (an orphan wallet's
    # own trades); at most 5 distinct sampled keys each.
    shapes = [(k["violating_rows"] >= 3, 1 <= len(k["sample"]) <= 5) for k in proof.not_valid]
    assert shapes == [(True, True)] * len(proof.not_valid), proof.not_valid
    assert "come back NOT VALID" in proof.summary()
    assert proof.rehearsal is not None
    assert "skipped" not in proof.rehearsal  # the copy is in state pre: rehearsed


def test_a_proof_that_does_not_fit_is_refused_with_both_numbers(
        live: PgSettings, pg_server: PostgresServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    backup = take_backup(live, tmp_path)
    # Stand-in for a full disk (filling the test machine's is not an option): the same
    # statvfs reading, told the data directory's filesystem has 1 MiB free.
    monkeypatch.setattr(restore_db, "free_bytes", lambda _p: (1 << 20, "statvfs stand-in"))
    dbs = databases(pg_server)
    with pytest.raises(prove.ProofRefused) as info:
        prove.prove(live, backup.path)
    text = str(info.value)
    assert text.startswith(f"cannot prove {backup.path}: not enough free space")
    assert "needs " in text
    assert "but has 1.0 MiB free" in text
    assert databases(pg_server) == dbs


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli_main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def dsn(settings: PgSettings) -> str:
    return (f"postgresql://{settings.user}@{settings.host}:{settings.port}/{settings.dbname}"
            "?sslmode=disable")


def test_the_cli_proves_with_backup_prove_and_prove(
        live: PgSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, passfile: Any,
        unrestorable: Any) -> None:
    code, text = _cli(capsys, "backup", "--dsn", dsn(live), "--out", str(tmp_path), "--prove")
    assert code == 0, text
    assert "backup verified: " in text
    assert "proof of " in text
    assert ": proven: " in text
    assert "was dropped" in text
    unrestorable(live)
    bad = take_backup(live, tmp_path / "bad")
    code, text = _cli(capsys, "prove", bad.path, "--dsn", dsn(live), "--no-rehearsal")
    assert code == 1, text
    assert f"proof of {bad.path}: NOT proven: " in text
    assert "function lower_mail(text) does not exist" in text


def test_proofs_are_found_by_sha256(live: PgSettings, tmp_path: Path) -> None:
    backup = take_backup(live, tmp_path)
    assert prove.prove(live, backup.path, prove.ProofOptions(rehearse=False)).proven
    found = proofs_of(live, str(backup.sha256))
    assert found
    assert found[0]["proven"]
    assert proofs_of(live, "0" * 64) == []


def test_the_report_shows_the_proof_and_the_snapshot_counts(
        live: PgSettings, tmp_path: Path) -> None:
    journal = Journal.create(live, "backup")
    result = backup_job.backup(live, backup_job.BackupOptions(out_dir=tmp_path),
                               journal=journal)
    proof = prove.prove(live, result.path, prove.ProofOptions(rehearse=False),
                        journal=journal)
    model = build_report(journal)
    item = next(c for c in model.checklist if c.id == "backup_proven")
    assert item.status == PASS
    assert item.detail == proof.summary()
    html = render_html(model)
    assert "<h2>Proof of the backup</h2>" in html
    assert "Counted in pg_dump&#x27;s snapshot" in html or "Counted in pg_dump's snapshot" in html
    assert '"fingerprint"' not in html  # the snapshot's lines are not dumped into the PDF
    assert f"{proof.scratch_db} (dropped)" in html


@pytest.mark.realworld
@pytest.mark.pg_matrix("realworld")
def test_a_backup_of_the_real_schema_is_proven_and_its_rehearsal_passes(
        pg_server: PostgresServer, realworld_dir: Path, empty_db: PgSettings,
        tmp_path: Path) -> None:
    loaded = pg_server.psql_file(empty_db.dbname,
                                 realworld_dir / "enerlink_pre_rename_schema.sql")
    assert loaded.returncode == 0, loaded.stderr
    superuser = pg_server.settings(empty_db.dbname)
    backup = take_backup(superuser, tmp_path)
    proof = prove.prove(superuser, backup.path)
    assert proof.proven, proof.reason
    assert proof.compared_with == prove.SNAPSHOT
    assert proof.fingerprint_equal, proof.fingerprint_diffs
    assert proof.rehearsal is not None
    assert proof.rehearsal["ok"], proof.rehearsal


def test_a_scratch_copy_left_by_a_killed_proof_is_named_with_its_drop_statement(
        live: PgSettings, pg_server: PostgresServer, tmp_path: Path,
        restore_template: str) -> None:
    left = f"{live.dbname}_proof_20200101_000000"
    with pg_server.admin_connect() as admin:
        admin.execute(f'CREATE DATABASE "{left}"')
    backup = take_backup(live, tmp_path)
    lines = Lines()
    proof = prove.prove(live, backup.path,
                        prove.ProofOptions(rehearse=False, template=restore_template),
                        report=lines)
    assert proof.proven, proof.reason
    warned = [m for level, m in lines.lines if level == "warn" and left in m]
    assert warned == [f"{left} is the scratch copy of an earlier proof that did not finish "
                      f"(a killed run?): it takes space on the server; when no proof runs, "
                      f'drop it: DROP DATABASE "{left}";']


def test_the_restore_sessions_get_maintenance_work_mem_through_pgoptions() -> None:
    options = restore.RestoreOptions(maintenance_work_mem="256MB")
    assert restore.session_env({"PATH": "/bin"}, options) == {
        "PATH": "/bin", "PGOPTIONS": "-c maintenance_work_mem=256MB"}
    assert restore.session_env({"PGOPTIONS": "-c work_mem=8MB"}, options) == {
        "PGOPTIONS": "-c work_mem=8MB -c maintenance_work_mem=256MB"}
    assert restore.session_env({"A": "b"}, restore.RestoreOptions()) == {"A": "b"}
