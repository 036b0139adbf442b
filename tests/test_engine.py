"""The migration engine against real PostgreSQL: right on the sample and real schemas."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from wizard.core import jobs, names
from wizard.core.connection import PgSettings
from wizard.core.discovery import CONFLICT, MIGRATED, PARTIAL, UNKNOWN
from wizard.core.execute import RunOptions, RunResult
from wizard.core.plan import DOWN, UP, PlanRefused
from wizard.sandbox.probes import fingerprint
from wizard.sandbox.seed import user_id
from wizard.sandbox.servers import PostgresServer

# The names TypeORM expects after the rename (shared/reference/enerlink-schema.md).
EXPECTED_FKS = {
    ("wallet", "user_id"): ("FK_72548a47ac4a996cd254b082522", "a"),
    ("smart_meter", "user_id"): ("FK_eee8d9f28ea7e608cc6e4318e23", "a"),
    ("transaction_log", "user_id"): ("FK_c283a396803b3420429bfb261d8", "a"),
    ("market_trade", "buyer_user_id"): ("FK_ea761ff82cf2994d4e2e2461093", "a"),
    ("market_trade", "seller_user_id"): ("FK_43365c9acb690506d2494f57322", "a"),
    ("idrs_conversion", "user_id"): ("FK_9872cc8a2ea16866fb617343352", "a"),
    ("token_blacklist", "user_id"): ("FK_4326ba2b08167d2edb39199a871", "c"),
}

FK_SQL = """
SELECT c.conrelid::regclass::text, a.attname, c.conname, c.confdeltype, c.confupdtype,
       c.condeferrable, c.convalidated
  FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
 WHERE c.contype = 'f' AND c.confrelid = 'public."user"'::regclass
"""


def migrate(settings: PgSettings, **kw: object) -> RunResult:
    _plan, result, _journal = jobs.run(settings, UP, options=RunOptions(**kw))  # type: ignore[arg-type]
    return result


def revert(settings: PgSettings) -> RunResult:
    return jobs.run(settings, DOWN)[1]


def assert_target_schema(settings: PgSettings) -> None:
    with settings.connect() as conn:
        fks = conn.execute(FK_SQL).fetchall()
        pk = conn.execute("SELECT conname FROM pg_constraint WHERE contype = 'p' "
                          "AND conrelid = 'public.\"user\"'::regclass").fetchone()
        idx = conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = "
                           "'token_blacklist' AND indexdef LIKE '%(user_id)'").fetchall()
        trg = conn.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = "
                           "'public.\"user\"'::regclass AND NOT tgisinternal").fetchall()
        rows = conn.execute("SELECT name FROM migrations WHERE name = %s",
                            (names.MIGRATION_NAME,)).fetchall()
    assert pk == ("PK_758b8ce7c18b9d347461b30228d",)
    assert {(t, c): (n, d) for t, c, n, d, *_ in fks} == EXPECTED_FKS
    assert all(r[4:] == ("a", False, True) for r in fks)
    assert idx == [("IDX_4326ba2b08167d2edb39199a87",)]
    assert trg == [("set_timestamp_users",)]
    assert len(rows) == 1


@pytest.mark.pg_matrix("migrate")
def test_migrate_revert_migrate_on_the_sample(pg_db: PgSettings) -> None:
    original = fingerprint(pg_db)
    result = migrate(pg_db)
    assert result.ok, result.error
    assert result.state_after == MIGRATED
    assert {c.id: c.status for c in result.checks}["row_counts"] == "pass"
    assert_target_schema(pg_db)
    back = revert(pg_db)
    assert back.ok, back.error
    assert fingerprint(pg_db) == original  # byte for byte
    again = migrate(pg_db)
    assert again.ok, again.error
    assert_target_schema(pg_db)


@pytest.mark.pg_matrix("migrate")
def test_referential_actions_survive_the_rename(pg_db: PgSettings) -> None:
    assert migrate(pg_db).ok
    with pg_db.connect() as conn:
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute('DELETE FROM "user" WHERE user_id = %s', (user_id(3),))
        conn.rollback()
        conn.execute("INSERT INTO \"user\" VALUES ('user_x', 'x@e.com', 'h', NULL, now(), now(), "
                     "NULL)")
        conn.execute("INSERT INTO token_blacklist (blacklist_type, user_id, expires_at) "
                     "VALUES ('USER', 'user_x', now())")
        conn.execute("DELETE FROM \"user\" WHERE user_id = 'user_x'")
        assert conn.execute("SELECT count(*) FROM token_blacklist WHERE user_id = 'user_x'"
                            ).fetchone() == (0,)


@pytest.mark.pg_matrix("migrate")
def test_rehearsal_changes_nothing(pg_db: PgSettings, pg_major: int) -> None:
    original = fingerprint(pg_db)
    result = migrate(pg_db, rehearse=True)
    assert result.ok
    assert result.rehearsal
    # 9 columns and tables, 9 keys and indexes, the trigger, the migrations row; from 18 on
    # also the 12 named NOT NULL constraints of the renamed table and columns.
    assert len(result.steps) == 20 + (12 if pg_major >= 18 else 0)
    assert fingerprint(pg_db) == original


@pytest.mark.pg_matrix("migrate")
def test_partial_database_gets_a_plan_that_finishes(pg_db: PgSettings) -> None:
    with pg_db.connect() as conn:
        conn.execute("ALTER TABLE wallet RENAME COLUMN prosumer_id TO user_id")
        conn.execute("ALTER TABLE prosumer RENAME TO \"user\"")
    d = jobs.inspect(pg_db)
    assert d.state == PARTIAL
    assert 'table "prosumer" → "user"' in d.done
    assert "wallet.prosumer_id → user_id" in d.done
    assert "smart_meter.prosumer_id → user_id" in d.pending
    result = migrate(pg_db)
    assert result.ok, result.error
    assert_target_schema(pg_db)


def test_migrated_database_gets_an_empty_plan(pg_db: PgSettings) -> None:
    assert migrate(pg_db).ok
    d = jobs.inspect(pg_db)
    assert d.state == MIGRATED
    assert jobs.make_plan(d, UP, pg_db).steps == []
    with pg_db.connect() as conn:
        conn.execute("DELETE FROM migrations WHERE name = %s", (names.MIGRATION_NAME,))
    d = jobs.inspect(pg_db)
    assert d.state == MIGRATED
    steps = jobs.make_plan(d, UP, pg_db).steps
    assert [s.op for s in steps] == ["record_migration"]


def test_conflict_and_unknown_are_refused(pg_db: PgSettings, empty_db: PgSettings) -> None:
    with pg_db.connect() as conn:
        conn.execute('CREATE TABLE "user" (user_id varchar PRIMARY KEY)')
    d = jobs.inspect(pg_db)
    assert d.state == CONFLICT
    with pytest.raises(PlanRefused, match="both tables exist"):
        jobs.make_plan(d, UP, pg_db)
    d = jobs.inspect(empty_db)
    assert d.state == UNKNOWN
    with pytest.raises(PlanRefused, match="not an EnerLink database"):
        jobs.make_plan(d, UP, empty_db)


@pytest.mark.pg_matrix("migrate")
def test_a_missing_foreign_key_is_added_not_valid_then_validated(pg_db: PgSettings) -> None:
    with pg_db.connect() as conn:
        conn.execute('ALTER TABLE smart_meter DROP CONSTRAINT "FK_15c4c55f7a7ac1a93ae9a06a6c4"')
    plan = jobs.make_plan(jobs.inspect(pg_db), UP, pg_db)
    assert "NOT VALID" in next(s.sql for s in plan.steps if s.op == "add_foreign_key")
    assert [s.title for s in plan.validate_steps]
    result = migrate(pg_db)
    assert result.ok, result.error
    assert_target_schema(pg_db)


def test_custom_foreign_keys_and_functions_are_listed_unchanged(pg_db: PgSettings) -> None:
    with pg_db.connect() as conn:
        conn.execute("CREATE TABLE audit (id int, owner varchar REFERENCES prosumer)")
        conn.execute("CREATE FUNCTION count_prosumers() RETURNS bigint LANGUAGE sql AS "
                     "$$ SELECT count(*) FROM prosumer $$")
    d = jobs.inspect(pg_db)
    assert any("count_prosumers" in str(r) and r.line_no == 1 for r in d.text_references)
    plan = jobs.make_plan(d, UP, pg_db)
    assert any("audit" in u and "not one of EnerLink's seven columns" in u
               for u in plan.unchanged)
    assert migrate(pg_db).ok


@pytest.fixture
def odd_db(pg_server: PostgresServer, owner: PgSettings, template_db: object
           ) -> Iterator[PgSettings]:
    name = "enér link's \"db\""
    with pg_server.admin_connect() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE enerlink_template OWNER {}").format(
            sql.Identifier(name), sql.Identifier(owner.user)))
    try:
        yield owner.with_dbname(name)
    finally:
        pg_server.drop_database(name)


@pytest.mark.pg_matrix("migrate")
def test_database_name_with_space_quote_and_accents(odd_db: PgSettings) -> None:
    result = migrate(odd_db)
    assert result.ok, result.error
    assert revert(odd_db).ok


@pytest.fixture
def locker(pg_db: PgSettings) -> Iterator[psycopg.Connection]:
    """Another session that holds a lock on wallet, as an application transaction would."""
    conn = pg_db.with_dbname(pg_db.dbname).connect()
    conn.execute("SET application_name = 'nest-app'")
    conn.execute("LOCK TABLE wallet IN ACCESS SHARE MODE")
    yield conn
    conn.close()


def test_lock_never_released_fails_and_names_the_blocker(pg_db: PgSettings,
                                                         locker: psycopg.Connection) -> None:
    original = fingerprint(pg_db)
    result = migrate(pg_db, lock_timeout_s=0.2, retries=1, backoff_s=0.1)
    assert not result.ok
    assert result.attempts == 2
    assert "nest-app" in (result.error or "")
    assert result.lock_waits[0][0]["application_name"] == "nest-app"
    assert fingerprint(pg_db) == original


def test_a_lock_on_typeorms_migrations_table_is_named_with_its_holder(
        pg_db: PgSettings) -> None:
    """The last step writes TypeORM's row: a session holding the migrations table (an
    application's own TypeORM run, say) is named, even without an application_name (its
    backend type stands in, as for autovacuum). Before, it was "held by unknown"."""
    with pg_db.connect() as holder:
        holder.execute("SET application_name = ''")
        holder.execute("LOCK TABLE migrations IN SHARE MODE")
        result = migrate(pg_db, lock_timeout_s=0.2, retries=0)
        holder.rollback()
    assert not result.ok
    assert result.failed_step is not None
    assert "Recording" in result.failed_step
    assert "client backend" in (result.error or "")
    assert "ShareLock on migrations" in (result.error or "")
    assert {b["relation"] for b in result.lock_waits[0]} == {"migrations"}


def test_lock_released_midway_then_succeeds(pg_db: PgSettings,
                                            locker: psycopg.Connection) -> None:
    # The blocker's transaction ends right after our first attempt timed out, whatever the
    # machine's load: the engine's own "lock timeout" report releases it.
    def report(level: str, message: str) -> None:
        if level == "warn" and message.startswith("lock timeout at"):
            locker.rollback()

    _plan, result, _j = jobs.run(pg_db, UP, options=RunOptions(lock_timeout_s=0.2, retries=5,
                                                               backoff_s=0.4), report=report)
    assert result.ok, result.error
    assert result.attempts == 2
    assert len(result.lock_waits) == 1


def test_backend_terminated_mid_plan_leaves_schema_untouched(pg_db: PgSettings,
                                                             pg_server: PostgresServer) -> None:
    """The plan goes to the server in one pipeline, so "mid-plan" is made real: step 4
    (smart_meter's column) waits for a lock another session holds, and the migration's
    session is terminated while it waits."""
    original = fingerprint(pg_db)
    stop = threading.Event()

    def terminate_when_waiting() -> None:
        with pg_server.admin_connect() as admin:
            while not stop.is_set():
                row = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                    "AND wait_event_type = 'Lock' AND application_name = %s",
                    (pg_db.dbname, pg_db.application_name)).fetchone()
                if row:
                    return
                time.sleep(0.02)

    with pg_db.connect() as blocker:
        blocker.execute("LOCK TABLE smart_meter IN ACCESS SHARE MODE")
        killer = threading.Thread(target=terminate_when_waiting)
        killer.start()
        try:
            _plan, result, _j = jobs.run(pg_db, UP, options=RunOptions(lock_timeout_s=30))
        finally:
            stop.set()
            killer.join()
        blocker.rollback()
    assert not result.ok
    assert "schema is unchanged" in (result.error or "")
    assert result.failed_step
    assert result.failed_step.startswith("[4/")
    assert fingerprint(pg_db) == original


def test_role_that_owns_nothing_is_refused_before_any_change(
        pg_db: PgSettings, pg_server: PostgresServer) -> None:
    with pg_server.admin_connect(pg_db.dbname) as admin:
        admin.execute("CREATE ROLE intruder LOGIN PASSWORD 'pw'")
        admin.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO intruder")
    try:
        intruder = PgSettings(host=pg_db.host, port=pg_db.port, dbname=pg_db.dbname,
                              user="intruder", password="pw", sslmode="disable")
        original = fingerprint(pg_db)
        result = migrate(intruder)
        assert not result.ok
        assert "refused before any change" in (result.error or "")
        assert "cannot ALTER table public.wallet (owner: enerlink)" in (result.error or "")
        assert fingerprint(pg_db) == original
    finally:
        with pg_server.admin_connect(pg_db.dbname) as admin:
            admin.execute("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM intruder")
            admin.execute("DROP ROLE intruder")


def test_journal_records_plan_and_results_without_secrets(pg_db: PgSettings,
                                                          journal_dir: Path) -> None:
    _plan, result, journal = jobs.run(pg_db, UP)
    assert result.ok
    text = journal.path.read_text()
    assert pg_db.password
    assert pg_db.password not in text
    events = [e["event"] for e in journal.events()]
    assert events[:3] == ["run_started", "state_before", "plan"]
    assert "run_finished" in events
    assert "down_plan" in events
    assert journal.folder.parent == journal_dir


@pytest.mark.pg_matrix("realworld")
@pytest.mark.realworld
def test_migrate_and_revert_the_real_schema(pg_server: PostgresServer, realworld_dir: Path,
                                            empty_db: PgSettings) -> None:
    loaded = pg_server.psql_file(empty_db.dbname,
                                 realworld_dir / "enerlink_pre_rename_schema.sql")
    assert loaded.returncode == 0, loaded.stderr
    superuser = pg_server.settings(empty_db.dbname)
    original = fingerprint(superuser)
    result = migrate(superuser)
    assert result.ok, result.error
    assert_target_schema(superuser)
    assert revert(superuser).ok
    assert fingerprint(superuser) == original


@pytest.mark.pg_matrix("verify")
def test_verify_flags_a_key_left_with_its_old_name(pg_db: PgSettings) -> None:
    assert migrate(pg_db).ok
    assert {c.status for c in jobs.verify(pg_db)} == {"pass"}
    with pg_db.connect() as conn:
        conn.execute('ALTER INDEX "IDX_4326ba2b08167d2edb39199a87" '
                     'RENAME TO "IDX_1a320f4470d1b5517ee5553b66"')
        conn.execute('ALTER TABLE wallet RENAME CONSTRAINT "FK_72548a47ac4a996cd254b082522" '
                     'TO "FK_62a1a16628b883318e6b443cf52"')
    checks = {c.id: c for c in jobs.verify(pg_db)}
    assert checks["indexes_renamed"].status == "fail"
    assert "IDX_4326ba2b08167d2edb39199a87" in checks["indexes_renamed"].detail
    assert checks["foreign_keys"].status == "fail"
    assert "FK_62a1a16628b883318e6b443cf52" in checks["foreign_keys"].detail


def test_counts_the_renamed_table_by_default_and_every_table_on_request(
        pg_db: PgSettings) -> None:
    _plan, result, _j = jobs.run(pg_db, UP)
    assert result.ok, result.error
    assert result.counts_before == {"prosumer": 40}
    assert result.counts_after == {"user": 40}
    checks = {c.id: c for c in jobs.verify(pg_db)}
    assert checks["row_counts"].status == "pass"
    assert jobs.run(pg_db, DOWN)[1].ok
    _plan, result, _j = jobs.run(pg_db, UP, options=RunOptions(count_all_tables=True))
    assert result.ok, result.error
    assert set(result.counts_before) == {"prosumer", *names.CHILD_TABLES}
    assert result.counts_after["user"] == 40
    assert result.counts_after["wallet"] == result.counts_before["wallet"] == 80


NOT_NULL_SQL = """
SELECT c.conrelid::regclass::text, c.conname FROM pg_constraint c
  JOIN pg_namespace n ON n.oid = c.connamespace
 WHERE c.contype = 'n' AND n.nspname = 'public' ORDER BY 1, 2
"""


@pytest.mark.pg_matrix("migrate")
def test_not_null_constraints_follow_the_rename(pg_db: PgSettings, pg_major: int) -> None:
    if pg_major < 18:
        pytest.skip("NOT NULL constraints have names in pg_constraint from PostgreSQL 18 on")
    with pg_db.connect() as conn:
        before = conn.execute(NOT_NULL_SQL).fetchall()
    assert ("prosumer", "prosumer_email_not_null") in before
    assert ("wallet", "wallet_prosumer_id_not_null") in before
    result = migrate(pg_db)
    assert result.ok, result.error
    with pg_db.connect() as conn:
        after = conn.execute(NOT_NULL_SQL).fetchall()
    assert ('"user"', "user_email_not_null") in after
    assert ('"user"', "user_user_id_not_null") in after
    assert ("wallet", "wallet_user_id_not_null") in after
    assert not [name for _t, name in after if "prosumer" in name]
    assert [(t, n) for t, n in after if "user" not in t and "user" not in n] == [
        (t, n) for t, n in before if "prosumer" not in t and "prosumer" not in n]
    assert revert(pg_db).ok
    with pg_db.connect() as conn:
        assert conn.execute(NOT_NULL_SQL).fetchall() == before


@pytest.mark.pg_matrix("migrate")
def test_a_sequence_owned_by_the_renamed_table_is_renamed_and_back(pg_db: PgSettings) -> None:
    with pg_db.connect() as conn:
        conn.execute("ALTER TABLE prosumer ADD COLUMN badge_no serial")
    original = fingerprint(pg_db)
    assert "prosumer_badge_no_seq" in "\n".join(original)
    result = migrate(pg_db)
    assert result.ok, result.error
    with pg_db.connect() as conn:
        seqs = [r[0] for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'S' AND relname LIKE '%badge%'")]
    assert seqs == ["user_badge_no_seq"]
    assert {c.status for c in jobs.verify(pg_db)} == {"pass"}
    assert revert(pg_db).ok
    assert fingerprint(pg_db) == original


@pytest.mark.pg_matrix("verify")
def test_verify_fails_while_a_name_of_the_renamed_objects_still_says_prosumer(
        pg_db: PgSettings) -> None:
    assert migrate(pg_db).ok
    with pg_db.connect() as conn:
        conn.execute('ALTER TRIGGER set_timestamp_users ON "user" '
                     "RENAME TO set_timestamp_prosumers")
        conn.execute('CREATE INDEX prosumer_email_idx ON "user" (email)')
        conn.execute('CREATE INDEX wallet_prosumer_idx ON wallet (user_id)')
        conn.execute("CREATE INDEX prosumer_unrelated_idx ON wallet (wallet_address)")
    check = {c.id: c for c in jobs.verify(pg_db)}["no_prosumer_names"]
    assert check.status == "fail"
    assert check.detail == ('index prosumer_email_idx on "user"; index wallet_prosumer_idx '
                            'on wallet; trigger set_timestamp_prosumers on "user"')


def test_a_failing_check_inside_the_transaction_rolls_everything_back(pg_db: PgSettings
                                                                      ) -> None:
    """A hand-made CHECK constraint named prosumer is not one the plan renames: the
    server's verdict in the transaction fails, so its COMMIT never runs."""
    with pg_db.connect() as conn:
        conn.execute("ALTER TABLE prosumer ADD CONSTRAINT prosumer_email_check "
                     "CHECK (email <> '')")
    original = fingerprint(pg_db)
    _plan, result, journal = jobs.run(pg_db, UP)
    assert not result.ok
    assert result.error
    assert result.error.startswith("rolled back, nothing changed")
    assert "prosumer_email_check" in result.error
    assert result.failed_step == "catalog checks inside the transaction"
    assert fingerprint(pg_db) == original
    assert len(result.steps) == len(_plan.catalog_steps)  # every statement ran, then ROLLBACK
    assert journal.events("run_finished")[-1]["result"]["ok"] is False


def test_verify_judges_against_the_state_recorded_before_the_migration(
        pg_db: PgSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key made DEFERRABLE by hand: migrate keeps it, and verify agrees, because it
    compares with what the migration recorded. Without that journal the difference from
    the entities is a warning naming the key, not a failure."""
    with pg_db.connect() as conn:
        conn.execute('ALTER TABLE wallet ALTER CONSTRAINT "FK_62a1a16628b883318e6b443cf52" '
                     "DEFERRABLE INITIALLY DEFERRED")
    assert migrate(pg_db).ok
    checks = {c.id: c for c in jobs.verify(pg_db)}
    assert checks["foreign_keys"].status == "pass", checks["foreign_keys"].detail
    monkeypatch.setenv("ENERLINK_MIGRATE_RUNS", str(tmp_path / "no-journals"))
    checks = {c.id: c for c in jobs.verify(pg_db)}
    assert checks["foreign_keys"].status == "warn"
    assert "wallet.user_id" in checks["foreign_keys"].detail
    assert "migrate keeps what it finds" in checks["foreign_keys"].detail
    assert all(c.status != "fail" for c in checks.values()), checks


def test_a_second_run_says_at_once_who_holds_the_migration_lock(pg_db: PgSettings) -> None:
    """The lock is taken before anything is read: a second run (here, a session holding
    the lock while an exclusive lock stops every catalog read of prosumer) is refused at
    once, naming the holder and the run's journal."""
    from wizard.core.execute import ADVISORY_KEY
    from wizard.core.journal import Journal

    first = Journal.create(pg_db, "migrate")  # the first run's journal: started, unfinished
    with pg_db.connect(autocommit=True) as holder, pg_db.connect() as blocker:
        holder.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_KEY,))
        blocker.execute("LOCK TABLE prosumer IN ACCESS EXCLUSIVE MODE")
        t0 = time.perf_counter()
        with pytest.raises(jobs.RunInProgress) as refused:
            jobs.run(pg_db, UP)
        waited = time.perf_counter() - t0
        blocker.rollback()
    message = str(refused.value)
    assert "another enerlink-migrate run is migrating" in message
    assert "server pid" in message
    assert str(first.folder) in message
    assert "nothing was read or changed" in message
    assert waited < 5, waited  # not a speed figure: without the lock first this never returns
    assert jobs.inspect(pg_db).state == "pre"


def test_a_catalog_read_never_waits_without_a_bound_or_a_word(pg_db: PgSettings) -> None:
    """An application session holds wallet exclusively: inspect gives up after its lock
    waits and names that session, instead of waiting silently for as long as it lasts."""
    from wizard.core.discovery import DiscoveryError

    with pg_db.connect() as blocker:
        blocker.execute("LOCK TABLE wallet IN ACCESS EXCLUSIVE MODE")
        pid = blocker.info.backend_pid
        with pytest.raises(DiscoveryError) as refused:
            jobs.inspect(pg_db)
        blocker.rollback()
    message = str(refused.value)
    assert f"pid {pid} (enerlink-migrate" in message
    assert "AccessExclusiveLock on wallet" in message
    assert "Nothing was changed" in message
    assert jobs.inspect(pg_db).state == "pre"  # once it is gone, the read goes through
