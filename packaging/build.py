"""`make package`: build the one-file and one-folder executables into dist/, then smoke-test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIST, WORK = ROOT / "dist", ROOT / "build" / "pyinstaller"
ONEFILE = DIST / "enerlink-migrate"
ONEDIR = DIST / "enerlink-migrate-onedir"


def size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*")
                                            if p.is_file() and not p.is_symlink()]
    return sum(p.stat().st_size for p in files) / 1e6


def main() -> int:
    exe_suffix = ".exe" if sys.platform == "win32" else ""
    for old in (ONEFILE.with_suffix(exe_suffix) if exe_suffix else ONEFILE, ONEDIR):
        if old.is_dir():
            shutil.rmtree(old)
        elif old.exists():
            old.unlink()
    started = time.perf_counter()
    # --clean: both EXEs share one Analysis, and a stale cache once kept a dropped plugin.
    subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean",
                    "--log-level", os.environ.get("PYINSTALLER_LOG_LEVEL", "WARN"),
                    "--distpath", str(DIST), "--workpath", str(WORK),
                    str(ROOT / "packaging" / "enerlink-migrate.spec")], check=True, cwd=ROOT)
    took = time.perf_counter() - started
    onefile = Path(str(ONEFILE) + exe_suffix)
    print(f"\nbuilt in {took:.0f} s:\n  {onefile.relative_to(ROOT)}  {size_mb(onefile):.0f} MB "
          f"(one file)\n  {ONEDIR.relative_to(ROOT)}/  {size_mb(ONEDIR):.0f} MB (one folder; "
          f"run {ONEDIR.name}/enerlink-migrate{exe_suffix})")
    # The smoke test a release script runs: the frozen app checks itself, outside the venv.
    with tempfile.TemporaryDirectory() as cwd, tempfile.TemporaryDirectory() as home:
        # What a DBA's fresh shell has: no virtualenv on PATH, an empty home.
        env = {"PATH": "/usr/bin:/bin", "HOME": home} if sys.platform != "win32" else None
        done = subprocess.run([str(onefile), "--self-test"], cwd=cwd, env=env, check=False)
    if done.returncode != 0:
        print(f"{onefile.name} --self-test FAILED (exit {done.returncode})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
