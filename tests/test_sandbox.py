"""`make demo`'s sandbox: comes up with data, is reachable as printed, and goes away on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import redis


def _read_until(proc: subprocess.Popen[bytes], marker: str, timeout: float) -> str:
    """Collect the child's output until `marker` appears (or fail with what it said).

    Reads the raw pipe: a buffered readline() would hide lines from select().
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and marker.encode() not in seen:
        if sel.select(timeout=max(0.0, deadline - time.monotonic())):
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            seen += chunk
    sel.close()
    text = seen.decode(errors="replace")
    assert marker in text, f"no {marker!r} within {timeout} s; output was:\n{text}"
    return text


def test_sandbox_up_serves_sample_data_until_interrupted() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "wizard.sandbox", "up", "--users", "30",
                             "--mode", "servers"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out = _read_until(proc, "redis-cli", timeout=120)
        folder = Path(re.search(r"Client files\s+(\S+)", out).group(1))  # type: ignore[union-attr]
        info = json.loads((folder / "sandbox.json").read_text())
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        for name in ("pgpass", "redis-password", "sandbox.json"):
            assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
        pg = info["postgres"]
        # Reachable exactly as printed: libpq reads the password from the pgpass file.
        with psycopg.connect(host=pg["host"], port=pg["port"], dbname=pg["dbname"],
                             user=pg["user"], passfile=pg["passfile"]) as conn:
            row = conn.execute("SELECT count(*) FROM prosumer").fetchone()
        assert row == (30,)
        password = (folder / "redis-password").read_text().strip()
        assert password not in out, "the Redis password was printed"
        client = redis.Redis.from_url(info["redis"]["url"], password=password)
        assert client.exists("orders:all") == 1
        client.close()
        pids = sorted({int(p) for p in re.findall(r"pid (\d+)", out)})
        assert len(pids) == 2
    finally:
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=60)[0].decode(errors="replace")
    assert proc.returncode == 0, rest
    assert "Sandbox stopped and removed." in rest
    assert not folder.exists()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), f"server {pid} survived"


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_headless_demo_runs_every_step_and_writes_the_pdf(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY",
                                                             "QT_QPA_PLATFORM")}
    env["HOME"] = str(tmp_path / "home")  # no Documents folder: kept in the current one
    env.pop("XDG_DOCUMENTS_DIR", None)
    out = subprocess.run([sys.executable, "-m", "wizard.sandbox", "up", "--users", "60",
                          "--exit"], env=env, capture_output=True, text=True, timeout=300,
                         check=False, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "No display: running the wizard's steps headless" in out.stdout
    steps = re.findall(r"^(\d)/2 ", out.stdout, re.MULTILINE)
    assert steps == ["1", "2"]  # prepare, then the window
    assert re.search(r"^  a restore of the prepared backup would lose [\d.]+ s of writes; a "
                     r"revert loses none$", out.stdout, re.MULTILINE), out.stdout
    assert "COMMIT: 20 steps" in out.stdout
    assert re.search(r"^  proven: restored into a scratch copy in [\d.]+ s; \d+ rows in \d+ "
                     r"tables equal the dump's snapshot; the migration rehearsed on the copy",
                     out.stdout, re.MULTILINE), out.stdout
    assert re.search(r"rollback point: .* · PROVEN", out.stdout)
    assert "Demo run succeeded" in out.stdout
    assert re.search(r"enerlink-migration-report-\S+\.pdf \(\d+ pages\)", out.stdout)
    assert "Sandbox stopped and removed." in out.stdout
    # The PDF and the full log outlive the sandbox; pg_dump's verbose lines are in the log,
    # not in the summary.
    kept = list(tmp_path.glob("enerlink-migration-report-*.pdf"))
    assert len(kept) == 1
    assert kept[0].read_bytes().startswith(b"%PDF")
    assert f"checklist PDF: {kept[0]} (kept when the sandbox stops)" in out.stdout
    assert "pg_dump: dumping contents of table" not in out.stdout
    log = next(tmp_path.glob("enerlink-demo-*.log")).read_text()
    assert "pg_dump: dumping contents of table" in log
