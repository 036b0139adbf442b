"""What pipx installs: the wheel, in a fresh virtualenv, run from a clean folder against the
test cluster (not the editable checkout the rest of the suite imports)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import wizard
from wizard.core.connection import PgSettings
from wizard.core.resources import shipped_files
from wizard.sandbox.probes import fingerprint
from wizard.sandbox.servers import PostgresServer

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 600.0

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Installed:
    wheel: Path
    exe: Path
    home: Path


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """`pip wheel .` then `pip install THE.whl` into a new virtualenv, as pipx does."""
    base = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                            str(base / "dist"), str(ROOT)], capture_output=True, text=True,
                           check=False, timeout=TIMEOUT_S)
    assert built.returncode == 0, built.stderr
    wheel = next((base / "dist").glob("enerlink_migrate-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(base / "venv")], check=True,
                   timeout=TIMEOUT_S)
    pip = subprocess.run([str(base / "venv" / "bin" / "python"), "-m", "pip", "install", "-q",
                          str(wheel)], capture_output=True, text=True, check=False,
                         timeout=TIMEOUT_S)
    assert pip.returncode == 0, pip.stderr
    home = base / "home"
    home.mkdir()
    return Installed(wheel, base / "venv" / "bin" / "enerlink-migrate", home)


def test_the_wheel_carries_every_sql_and_resource_file(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as zf:
        inside = set(zf.namelist())
    for folder in ("sql", "resources"):
        for path in shipped_files(folder):
            rel = path.relative_to(ROOT / "wizard").as_posix()
            assert f"wizard/{rel}" in inside, f"{rel} is not in {installed.wheel.name}"
    assert not [n for n in inside if "/screenshots/" in n], "README pictures stay out"
    assert not [n for n in inside if n.startswith(("tests/", "sql/", "resources/"))]


def _run(installed: Installed, cwd: Path, *args: str, env: dict[str, str] | None = None,
         ) -> subprocess.CompletedProcess[str]:
    base = {"PATH": f"{installed.exe.parent}{os.pathsep}/usr/bin:/bin",
            "HOME": str(installed.home), "ENERLINK_MIGRATE_RUNS": str(cwd / "runs"),
            "ENERLINK_MIGRATE_CONFIG": str(cwd / "config"), "LANG": "C.UTF-8"}
    return subprocess.run([str(installed.exe), *args], env={**base, **(env or {})}, cwd=cwd,
                          capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL, timeout=TIMEOUT_S)


def test_self_test_passes_from_the_installed_wheel(installed: Installed,
                                                   tmp_path: Path) -> None:
    out = _run(installed, tmp_path, "--self-test", env={"QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.rstrip().endswith("self-test passed")
    assert "self-test (installed, Python" in out.stdout
    sql_files = len([p for p in shipped_files("sql") if p.suffix == ".sql"])
    assert f"ok    SQL files: {sql_files} SQL files under " in out.stdout
    assert "site-packages/wizard/sql" in out.stdout, "read from the install, not the checkout"
    assert str(ROOT) not in out.stdout
    version = _run(installed, tmp_path, "--version")
    assert version.stdout.strip() == f"enerlink-migrate {wizard.__version__}"


def test_every_step_runs_from_the_installed_wheel(installed: Installed, pg_server: PostgresServer,
                                                  pg_db: PgSettings, tmp_path: Path) -> None:
    """inspect, plan --sql, rehearse, then backup → migrate → verify → revert on the sample."""
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"{pg_db.host}:{pg_db.port}:*:{pg_db.user}:{pg_db.password}\n")
    passfile.chmod(0o600)
    dsn = ["--dsn", f"postgresql://{pg_db.user}@{pg_db.host}:{pg_db.port}/{pg_db.dbname}"]
    # The client tools the DBA installed: on PATH, as the README says.
    env = {"PGPASSFILE": str(passfile),
           "PATH": f"{installed.exe.parent}:{pg_server.client_bindir}:/usr/bin:/bin"}
    original = fingerprint(pg_db)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        out = _run(installed, tmp_path, *args, *dsn, env=env)
        assert "Traceback" not in out.stderr, out.stderr
        return out

    out = cli("inspect", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["state"] == "pre"
    out = cli("plan", "--sql")
    assert out.returncode == 0, out.stderr
    assert 'ALTER TABLE "public"."prosumer" RENAME TO "user";' in out.stdout
    out = cli("migrate", "--rehearse")
    assert out.returncode == 0, out.stderr
    assert fingerprint(pg_db) == original
    out = cli("backup", "--out", str(tmp_path / "backups"))
    assert out.returncode == 0, out.stderr
    out = cli("migrate")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "migration succeeded" in out.stdout
    out = cli("verify", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    statuses = {c["id"]: c["status"] for c in json.loads(out.stdout)}
    assert statuses.pop("redis_keys") == "warn"  # no Redis given: not checked, not failed
    assert set(statuses.values()) == {"pass"}
    out = cli("revert", "--confirm", pg_db.dbname)
    assert out.returncode == 0, out.stdout + out.stderr
    assert fingerprint(pg_db) == original
