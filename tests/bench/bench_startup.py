"""Start-up time to the first painted window: one-file build, one-folder build, from source."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import print_table

ROOT = Path(__file__).resolve().parents[2]
MARK = "enerlink-migrate: window painted"  # wizard.ui.startup_probe.MARK
TIMEOUT_S = 180.0


def variants(root: Path) -> list[tuple[str, list[str]]]:
    return [("one-file dist/enerlink-migrate", [str(root / "dist" / "enerlink-migrate")]),
            ("one-folder dist/enerlink-migrate-onedir/",
             [str(root / "dist" / "enerlink-migrate-onedir" / "enerlink-migrate")]),
            ("python -m wizard (source)", [sys.executable, "-m", "wizard"])]


def time_to_window(argv: list[str], env: dict[str, str], cwd: Path) -> float | None:
    """Seconds from launch until the app prints that its window painted; None if it never does."""
    started = time.perf_counter()
    with subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True) as proc:
        assert proc.stdout is not None
        shown = None
        for line in proc.stdout:  # blocks on the child's output: no polling
            if line.startswith(MARK):
                shown = time.perf_counter() - started
                break
        try:
            proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return shown


def time_to_exit(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=True, timeout=TIMEOUT_S)
    return time.perf_counter() - started


def size(argv: list[str]) -> str:
    """On disk: the one file, or all files of the one-folder build; n/a from source."""
    exe = Path(argv[0])
    if argv[0] == sys.executable:
        return "n/a"
    files = [exe] if exe.parent.name == "dist" else [
        p for p in exe.parent.rglob("*") if p.is_file() and not p.is_symlink()]
    return f"{sum(p.stat().st_size for p in files) / 1e6:.0f} MB"


def spread(times: list[float | None]) -> str:
    """Fastest and slowest timed start: on a shared machine the median alone hides the load."""
    seen = [t for t in times if t is not None]
    return f"{fmt(min(seen))} - {fmt(max(seen))}" if seen and len(seen) == len(times) else "n/a"


def fmt(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds:.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per variant (default 5)")
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout holding dist/")
    opts = parser.parse_args()
    root = opts.root.resolve()
    present = [(name, argv) for name, argv in variants(root)
               if argv[0] == sys.executable or Path(argv[0]).is_file()]
    missing = [name for name, _ in variants(root) if name not in dict(present)]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen",
               "ENERLINK_MIGRATE_EXIT_AFTER_SHOW": "1",
               "ENERLINK_MIGRATE_CONFIG": str(Path(tmp) / "config"),
               "ENERLINK_MIGRATE_RUNS": str(Path(tmp) / "runs"),
               "PYTHONPATH": str(root)}
        window: dict[str, list[float | None]] = {name: [] for name, _ in present}
        version: dict[str, list[float]] = {name: [] for name, _ in present}
        # Round robin, so a busy moment on a shared machine hits every variant alike. The
        # first round is each variant's first start after the build (a one-file build
        # unpacks itself into a fresh temporary folder on every start).
        for _ in range(opts.runs + 1):
            for name, argv in present:
                window[name].append(time_to_window(argv, env, Path(tmp)))
                version[name].append(time_to_exit([*argv, "--version"], env, Path(tmp)))
    source = "python -m wizard (source)"
    base = statistics.median(t for t in window[source][1:] if t is not None) \
        if all(t is not None for t in window[source][1:]) else None
    rows = []
    for name, argv in present:
        first, rest = window[name][0], window[name][1:]
        median = statistics.median(rest) if all(t is not None for t in rest) else None  # type: ignore[type-var]
        ratio = f"{median / base:.2f}x" if median is not None and base else "n/a"
        rows.append([name, fmt(first), fmt(median), ratio,
                     fmt(statistics.median(version[name][1:])),
                     spread(rest),
                     size(argv)])
    print_table(f"Start-up to the first painted window, offscreen ({opts.runs} runs each, "
                f"median; first = first start after the build)",
                ["variant", "first start", "window (median)", "vs source", "--version (median)",
                 "window (min - max)", "size"],
                rows)
    if any(t is None for ts in window.values() for t in ts):
        print("n/a: the app never said its window painted: wizard/ui/app.py must call "
              "wizard.ui.startup_probe.arm(window) before window.show()")
    for name in missing:
        print(f"{name}: not built (run `make package`)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
