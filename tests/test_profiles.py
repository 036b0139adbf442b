"""Profiles: files, versions, export/import, the profiles command and --profile end to end."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from wizard import cli
from wizard.cli.common import settings_from
from wizard.core import profiles, secrets
from wizard.core.connection import PgSettings
from wizard.core.profiles import Profile, ProfileError

SECRET = "s3cret-Never-In-Files"


@pytest.fixture(autouse=True)
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Profiles of this test only: never the DBA's own config folder."""
    folder = tmp_path / "config"
    monkeypatch.setenv("ENERLINK_MIGRATE_CONFIG", str(folder))
    for name in profiles.PG_ENV.values():  # the precedence tests set their own PG* values
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    return folder


@pytest.fixture
def typed_password(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the DBA types at getpass prompts (the CLI never takes a password argument)."""
    answers: list[str] = []
    monkeypatch.setattr("wizard.cli.profiles.getpass.getpass",
                        lambda prompt="": answers.pop(0))
    return answers


@pytest.fixture
def empty_pgpass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No ~/.pgpass help: a password can only come from the keyring."""
    path = tmp_path / "empty-pgpass"
    path.write_text("")
    path.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(path))
    return path


def _profile_for(settings: PgSettings, name: str = "p", **more: Any) -> Profile:
    return Profile(name=name, pg_host=settings.host, pg_port=settings.port,
                   pg_dbname=settings.dbname, pg_user=settings.user,
                   pg_sslmode=settings.sslmode, **more)


def _files_text(folder: Path) -> str:
    return "".join(p.read_text() for p in folder.rglob("*") if p.is_file())


def _main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# --- the core API --------------------------------------------------------------------------

def test_round_trip_save_load_list_remove(memory_keyring: Any) -> None:
    prod = Profile(name="prod", pg_host="db.example", pg_port=5433, pg_dbname="enerlink_db",
                   pg_user="enerlink", pg_sslmode="verify-full", pg_sslrootcert="/etc/ca.pem",
                   redis_url="rediss://cache.example:6380", redis_username="app", redis_db=2,
                   redis_ca_file="/etc/redis-ca.pem", backup_format="directory",
                   backup_jobs=4, lock_timeout_s=1.5, retries=5, operator="Dewi",
                   app_stop_command="pm2 stop enerlink-backend",
                   smoke_base_url="https://api.example", smoke_user="smoke@example")
    profiles.save(prod)
    profiles.save(Profile(name="staging 2"))
    assert profiles.list_profiles() == ["prod", "staging 2"]
    assert profiles.load("prod") == prod
    assert prod.redis_fields() == {"url": "rediss://cache.example:6380", "username": "app",
                                   "db": 2, "ca_file": "/etc/redis-ca.pem"}
    redis = prod.redis_settings(password=SECRET)
    assert (redis.url, redis.username, redis.db, redis.ca_file, redis.password) == (
        "rediss://cache.example:6380", "app", 2, "/etc/redis-ca.pem", SECRET)
    assert SECRET not in repr(redis)
    assert Profile(name="x").redis_settings().url == "redis://localhost:6379/0"
    secrets.set("prod", "postgres", SECRET)
    secrets.set("prod", "smoke", SECRET)
    secrets.set("staging 2", "postgres", "other")
    assert profiles.remove("prod") == []
    assert profiles.list_profiles() == ["staging 2"]
    assert memory_keyring.secrets == {("enerlink-migrate", "staging 2/postgres"): "other"}
    with pytest.raises(profiles.ProfileNotFound, match="no profile named 'prod'"):
        profiles.load("prod")


def test_file_is_0600_in_a_0700_folder(config_dir: Path) -> None:
    config_dir.mkdir()
    (config_dir / "profiles").mkdir(mode=0o755)  # made by hand, too open
    (config_dir / "profiles").chmod(0o755)
    path = profiles.save(Profile(name="prod"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.parent == config_dir / "profiles"


def test_failed_write_leaves_the_old_file(monkeypatch: pytest.MonkeyPatch) -> None:
    path = profiles.save(Profile(name="prod", pg_host="old-host"))
    before = path.read_bytes()

    def disk_full(_fd: int) -> None:
        # Stand-in for a full disk while the new document is flushed: a real one cannot be
        # produced on demand. The temporary file holds the new text, unflushed, then it fails.
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:  # undone before the checks below, env kept
        patched.setattr(os, "fsync", disk_full)
        with pytest.raises(OSError, match="No space left"):
            profiles.save(Profile(name="prod", pg_host="new-host"))
    assert path.read_bytes() == before
    assert profiles.load("prod").pg_host == "old-host"
    assert sorted(p.name for p in path.parent.iterdir()) == ["prod.json"]  # no temp left


def test_future_schema_is_refused_and_old_one_migrated(config_dir: Path) -> None:
    folder = config_dir / "profiles"
    folder.mkdir(parents=True)
    (folder / "next.json").write_text(json.dumps(
        {"schema_version": 2, "profile": {"name": "next", "pg_hostname": "x"}}))
    with pytest.raises(ProfileError, match=r"newer enerlink-migrate \(schema version 2; this "
                                           r"one reads up to 1\): upgrade"):
        profiles.load("next")
    # Version 0: a bare object of fields, as someone would write by hand.
    (folder / "hand.json").write_text(json.dumps({"name": "hand", "pg_host": "db", "pg_port": 6}))
    assert profiles.load("hand") == Profile(name="hand", pg_host="db", pg_port=6)
    (folder / "broken.json").write_text("{not json")
    with pytest.raises(ProfileError, match=r"broken\.json is not valid JSON"):
        profiles.load("broken")


@pytest.mark.parametrize(("data", "message"), [
    ({"name": "a", "pg_hots": "db"}, "unknown key(s) 'pg_hots'"),
    ({"name": "a", "password": SECRET}, "passwords are never kept in a profile"),
    ({"name": "a", "pg_port": "5432"}, "pg_port must be a whole number, not '5432'"),
    ({"name": "a", "pg_port": 70000}, "pg_port must be between 1 and 65535"),
    ({"name": "a/b"}, "name must not contain '/'"),
    ({"name": ".hidden"}, "must be 1-64 letters"),
    ({"name": "a", "ask_every_time": 1}, "ask_every_time must be true or false"),
    ({"name": "a", "pg_sslmode": "on"}, "pg_sslmode must be one of disable, allow"),
    ({"name": "a", "redis_url": f"redis://:{SECRET}@cache:6379"},
     "redis_url must not contain a password"),
    ({"name": "a", "redis_url": "http://cache:6379"},
     "redis_url is not usable: Redis URL scheme 'http' is not supported"),
    ({"name": "a", "redis_url": "redis://cache", "redis_ca_file": "/ca.pem"},
     "Redis settings: a CA file only applies to TLS"),
    ({"name": "a", "smoke_base_url": "ftp://x"}, "must be an http:// or https:// URL"),
    ({"name": "a", "backup_jobs": 0}, "backup_jobs must be between 1 and 64"),
    ({"pg_host": "db"}, "has no name"),
])
def test_validation_says_what_to_fix(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ProfileError) as err:
        profiles.from_dict(data)
    assert message in str(err.value)
    assert SECRET not in str(err.value)


def test_a_password_never_reaches_a_profile_file(memory_keyring: Any, config_dir: Path,
                                                  typed_password: list[str],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(TypeError):
        Profile(name="p", password=SECRET)  # type: ignore[call-arg]
    with pytest.raises(ProfileError):
        profiles.from_dict({"name": "p", "pg_password": SECRET})
    typed_password += [SECRET, SECRET, SECRET, SECRET]
    code, out, err = _main(capsys, "profiles", "add", "p", "--host", "db", "--set-password",
                           "postgres", "--set-password", "redis")
    assert code == 0, err
    assert memory_keyring.secrets == {("enerlink-migrate", "p/postgres"): SECRET,
                                      ("enerlink-migrate", "p/redis"): SECRET}
    assert SECRET not in out + err
    with pytest.raises(SystemExit):  # there is no option that takes a password
        cli.main(["profiles", "edit", "p", "--password", SECRET])
    assert SECRET not in _files_text(config_dir)
    assert "pg_host" in _files_text(config_dir)


def test_export_import_carry_no_secrets(memory_keyring: Any, config_dir: Path,
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = Profile(name="a", pg_host="h1", operator="Ana"), Profile(name="b", pg_port=6543)
    profiles.save(a)
    profiles.save(b)
    secrets.set("a", "postgres", SECRET)
    export = tmp_path / "team-profiles.json"
    assert profiles.export([], export) == ["a", "b"]
    assert SECRET not in export.read_text()
    assert stat.S_IMODE(export.stat().st_mode) == 0o600
    assert profiles.export(["b"], tmp_path / "b.json") == ["b"]

    monkeypatch.setenv("ENERLINK_MIGRATE_CONFIG", str(tmp_path / "other-machine"))
    before = dict(memory_keyring.secrets)
    assert profiles.import_(export) == ["a", "b"]
    assert [profiles.load("a"), profiles.load("b")] == [a, b]
    assert memory_keyring.secrets == before  # importing stores no password
    changed = tmp_path / "changed.json"
    profiles.save(Profile(name="a", pg_host="h2"))
    profiles.export(["a"], changed)
    profiles.save(a)
    with pytest.raises(ProfileError, match=r"'a' already exist: nothing imported; use "
                                           r"--overwrite"):
        profiles.import_(changed)
    assert profiles.load("a").pg_host == "h1"
    profiles.import_(changed, overwrite=True)
    assert profiles.load("a").pg_host == "h2"

    future = json.loads(export.read_text()) | {"schema_version": 9}
    export.write_text(json.dumps(future))
    with pytest.raises(ProfileError, match="schema version 9"):
        profiles.import_(export)
    twice = {"schema_version": 1, "profiles": [{"name": "z"}, {"name": "z"}]}
    export.write_text(json.dumps(twice))
    with pytest.raises(ProfileError, match="'z' more than once"):
        profiles.import_(export)
    assert "z" not in profiles.list_profiles()


def test_precedence_dsn_then_profile_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHOST", "env-host")
    monkeypatch.setenv("PGPORT", "5999")
    monkeypatch.setenv("PGUSER", "env-user")
    monkeypatch.setenv("PGDATABASE", "env_db")
    prof = Profile(name="p", pg_host="prof-host", pg_user="prof-user")
    got = settings_from("postgresql://dsn-user@/dsn_db", prof)
    assert (got.host, got.port, got.user, got.dbname) == ("prof-host", 5999, "dsn-user",
                                                          "dsn_db")
    assert prof.pg_settings() == PgSettings(host="prof-host", port=5999, dbname="env_db",
                                            user="prof-user")
    assert settings_from(None, None).host == "env-host"


# --- the profiles command ------------------------------------------------------------------

def test_profiles_command(memory_keyring: Any, capsys: pytest.CaptureFixture[str],
                          typed_password: list[str], tmp_path: Path) -> None:
    code, out, _ = _main(capsys, "profiles", "list")
    assert code == 0
    assert "no profiles" in out
    code, out, err = _main(capsys, "profiles", "add", "prod", "--host", "db", "--port", "6432",
                           "--user", "enerlink", "--redis-url", "redis://cache:6379/0",
                           "--lock-timeout", "1.5", "--operator", "Dewi Lestari")
    assert code == 0, err
    assert "profile 'prod' added" in out
    code, _, err = _main(capsys, "profiles", "add", "prod")
    assert code == 2
    assert "profiles edit prod" in err
    code, out, _ = _main(capsys, "profiles", "list", "--json")
    assert [p["name"] for p in json.loads(out)] == ["prod"]
    code, out, _ = _main(capsys, "profiles", "list")
    assert out.strip() == "prod: enerlink@db:6432/enerlink_db, redis redis://cache:6379/0"

    typed_password += ["pw1", "pw1"]
    code, out, err = _main(capsys, "profiles", "edit", "prod", "--unset", "pg_port",
                           "--backup-jobs", "4", "--set-password", "postgres")
    assert code == 0, err
    assert "postgres password stored in the keyring" in out
    code, out, _ = _main(capsys, "profiles", "show", "prod", "--json")
    shown = json.loads(out)
    assert (shown["pg_port"], shown["backup_jobs"], shown["lock_timeout_s"]) == (None, 4, 1.5)
    assert shown["passwords"] == {"postgres": "in the keyring", "redis": "not stored",
                                  "smoke": "not stored"}
    assert "pw1" not in out
    code, out, _ = _main(capsys, "profiles", "show", "prod")
    assert "connects as enerlink@db:5432/enerlink_db" in out
    assert "postgres password: in the keyring" in out

    typed_password += ["a", "b"]
    code, _, err = _main(capsys, "profiles", "edit", "prod", "--set-password", "redis")
    assert code == 2
    assert "differ: nothing stored" in err
    code, _, err = _main(capsys, "profiles", "edit", "prod", "--port", "0")
    assert (code, err.strip()) == (2, "enerlink-migrate profiles: profile 'prod': pg_port "
                                      "must be between 1 and 65535")
    code, out, _ = _main(capsys, "profiles", "edit", "prod", "--ask-every-time")
    assert "postgres password removed from the keyring" in out
    assert memory_keyring.secrets == {}

    export = tmp_path / "out.json"
    assert _main(capsys, "profiles", "export", str(export))[0] == 0
    code, _, err = _main(capsys, "profiles", "import", str(export))
    assert code == 2
    assert "use --overwrite" in err
    assert _main(capsys, "profiles", "import", str(export), "--overwrite")[0] == 0
    code, out, _ = _main(capsys, "profiles", "remove", "prod")
    assert code == 0
    assert _main(capsys, "profiles", "show", "prod")[0] == 2
    assert _main(capsys, "profiles", "remove", "prod")[0] == 2


def test_no_keyring_refuses_to_store_and_changes_nothing(no_keyring: None,
                                                         capsys: pytest.CaptureFixture[str],
                                                         typed_password: list[str]) -> None:
    code, _, err = _main(capsys, "profiles", "add", "p", "--set-password", "postgres")
    assert code == 1
    assert "No usable keyring backend" in err
    assert "nothing is stored in plaintext" in err
    assert profiles.list_profiles() == []
    assert typed_password == []  # refused before asking
    code, out, err = _main(capsys, "profiles", "add", "p")
    assert code == 0, err
    code, out, _ = _main(capsys, "profiles", "show", "p")
    assert "postgres password: asked every time (no usable keyring)" in out
    code, _, err = _main(capsys, "profiles", "remove", "p")
    assert code == 0
    assert "could not be removed" in err


# --- --profile on the engine commands ------------------------------------------------------

def test_profile_password_from_the_keyring(pg_db: PgSettings, memory_keyring: Any,
                                           empty_pgpass: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    profiles.save(_profile_for(pg_db))
    code, _, err = _main(capsys, "inspect", "--profile", "p", "--json")
    assert code == 2  # no password anywhere yet
    assert "no password supplied" in err
    assert pg_db.password
    secrets.set("p", "postgres", pg_db.password)
    code, out, err = _main(capsys, "inspect", "--profile", "p", "--json")
    assert code == 0, err
    assert json.loads(out)["state"] == "pre"
    assert pg_db.password not in out + err
    # --dsn fields override the profile; the stored password still fits the same role.
    code, out, err = _main(capsys, "inspect", "--profile", "p", "--dsn", "dbname=postgres",
                           "--json")
    assert (code, json.loads(out)["state"]) == (3, "unknown"), err
    # Another role through --dsn: the profile's password is not sent for it.
    code, _, err = _main(capsys, "inspect", "--profile", "p", "--dsn", "user=postgres")
    assert code == 2
    assert "no password supplied" in err


def test_wrong_keyring_password_names_the_fix(pg_db: PgSettings, memory_keyring: Any,
                                              empty_pgpass: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    profiles.save(_profile_for(pg_db))
    secrets.set("p", "postgres", "not-it")
    code, _, err = _main(capsys, "verify", "--profile", "p")
    assert code == 2
    assert "password authentication failed" in err
    assert "stored in the keyring for profile 'p' is wrong" in err
    assert "profiles edit p --set-password postgres" in err
    code, _, err = _main(capsys, "verify", "--profile", "nope")
    assert code == 2
    assert "no profile named 'nope'" in err


def test_invalid_dsn_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _main(capsys, "inspect", "--dsn", "not a dsn")
    assert code == 2
    assert "invalid --dsn" in err


def test_ask_every_time_never_reads_the_keyring(pg_db: PgSettings, memory_keyring: Any,
                                                empty_pgpass: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    profiles.save(_profile_for(pg_db, ask_every_time=True))
    assert pg_db.password
    memory_keyring.secrets[("enerlink-migrate", "p/postgres")] = pg_db.password
    code, _, err = _main(capsys, "inspect", "--profile", "p")
    assert code == 2
    assert "no password supplied" in err


def test_profile_without_keyring_uses_pgpass_in_a_subprocess(pg_db: PgSettings,
                                                             tmp_path: Path) -> None:
    """The installed command on a headless host: no keyring backend, password in pgpass."""
    config = tmp_path / "cfg"
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"{pg_db.host}:{pg_db.port}:*:{pg_db.user}:{pg_db.password}\n")
    passfile.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env |= {"ENERLINK_MIGRATE_CONFIG": str(config), "PGPASSFILE": str(passfile),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    args = [f"--host={pg_db.host}", f"--port={pg_db.port}", f"--dbname={pg_db.dbname}",
            f"--user={pg_db.user}", "--sslmode=disable"]
    add = subprocess.run([sys.executable, "-m", "wizard", "profiles", "add", "p", *args],
                         env=env, capture_output=True, text=True, check=False,
                         stdin=subprocess.DEVNULL)
    assert add.returncode == 0, add.stderr
    out = subprocess.run([sys.executable, "-m", "wizard", "inspect", "--profile", "p", "--json"],
                         env=env, capture_output=True, text=True, check=False,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["state"] == "pre"
    assert "No usable keyring backend" in out.stderr  # said once, then pgpass did the work
    assert out.stderr.count("No usable keyring backend") == 1
