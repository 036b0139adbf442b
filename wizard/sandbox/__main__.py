"""`python -m wizard.sandbox`: bring up the sandbox, or seed a database you point it at."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

import psycopg
from psycopg.conninfo import conninfo_to_dict

from wizard.sandbox import demo
from wizard.sandbox.sandbox import Sandbox
from wizard.sandbox.seed import inject_orphans, seed


def _print(msg: str) -> None:
    print(msg, flush=True)


def _describe(box: Sandbox) -> str:
    o, r = box.owner, box.redis
    dsn = f"postgresql://{o.user}@{o.host}:{o.port}/{o.dbname}"
    keys = sum(box.redis_keys.values())
    return "\n".join([
        "",
        "EnerLink sandbox is up; stopping it deletes both servers and everything in them.",
        f"  PostgreSQL {box.pg.major_version}  {o.host}:{o.port}  database {o.dbname}, "
        f"owner role {o.user} (not a superuser), pid {box.pg.pid}",
        f"  Redis          {r.url}/0  (password required), pid {r.pid}",
        f"  Sample data    {box.report.users:,} users, {box.report.total_rows:,} rows, "
        f"{keys:,} Redis keys (pre-rename: table prosumer, orders:by_prosumer:*)",
        f"  Client files   {box.folder} (mode 0700): pgpass, redis-password, sandbox.json",
        "",
        "Drive it from another terminal:",
        f"  export PGPASSFILE={box.pgpass}",
        f"  psql '{dsn}'",
        f"  redis-cli -p {r.port} --askpass      # password in {box.redis_password_file}",
        f"  .venv/bin/enerlink-migrate inspect --dsn {dsn}",
        f"  .venv/bin/enerlink-migrate plan --sql --dsn {dsn}",
        f"  .venv/bin/enerlink-migrate migrate --rehearse --dsn {dsn}",
        f"  .venv/bin/enerlink-migrate backup --out {box.folder / 'backups'} --dsn {dsn}",
        f"  .venv/bin/enerlink-migrate orphans --dsn {dsn}",
        f"  .venv/bin/enerlink-migrate migrate --dsn {dsn}",
        f"  .venv/bin/enerlink-migrate cache --redis-url {r.url}/0 --dry-run  "
        f"# REDISCLI_AUTH=$(cat {box.redis_password_file})",
        f"  .venv/bin/enerlink-migrate verify --dsn {dsn}",
        f"  .venv/bin/enerlink-migrate revert --confirm {box.owner.dbname} --dsn {dsn}",
        "",
    ])


def _wait_for_interrupt() -> None:
    stop = threading.Event()

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stop.wait()


def cmd_up(args: argparse.Namespace) -> int:
    _print(f"Starting the sandbox with {args.users:,} sample users...")
    box = Sandbox.start(users=args.users, orphans=args.orphans, progress=_print)
    code = 0
    try:
        _print(_describe(box))
        mode = args.mode
        if mode == "auto":
            from wizard.ui.app import has_display
            mode = "gui" if has_display() else "headless"
        if mode == "gui":
            _print("Opening the wizard on profile 'sandbox' (close it to stop the sandbox)...")
            code = demo.run_gui(box)
        elif mode == "headless":
            _print("No display: running the wizard's steps headless on the sandbox.\n")
            outcome = demo.run_headless(box, _print)
            _print("")
            _print("Demo run " + ("succeeded" if outcome.ok else "FAILED: "
                                  + "; ".join(outcome.failed)))
            _print(f"  journal: {outcome.journal}")
            if outcome.pdf:
                _print(f"  checklist PDF: {outcome.pdf} (kept when the sandbox stops)")
            if outcome.log:
                _print(f"  every line of the run (pg_dump's included): {outcome.log}")
            code = 0 if outcome.ok else 1
        if not args.exit and mode != "gui":
            _print("\nThe sandbox stays up for the commands above; Ctrl-C stops it.")
            _wait_for_interrupt()
        _print("Stopping Redis and PostgreSQL...")
    finally:
        box.stop()
    _print("Sandbox stopped and removed.")
    return code


def cmd_seed(args: argparse.Namespace) -> int:
    # The password comes from libpq's usual places (PGPASSFILE, ~/.pgpass, PGPASSWORD).
    for dsn in filter(None, (args.dsn, args.superuser_dsn)):
        if "password" in conninfo_to_dict(dsn):
            print("--dsn must not contain a password; use ~/.pgpass or PGPASSFILE",
                  file=sys.stderr)
            return 2
    with psycopg.connect(args.dsn) as conn:
        report = seed(conn, args.users, _print)
    if args.orphans:
        with psycopg.connect(args.superuser_dsn or args.dsn, autocommit=True) as conn:
            inject_orphans(conn, args.orphans)
    _print(f"{report.users:,} users, {report.total_rows:,} rows loaded.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m wizard.sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start PostgreSQL + Redis with sample data until Ctrl-C")
    up.add_argument("--users", type=int, default=2_000)
    up.add_argument("--orphans", type=int, default=0,
                    help="orphan rows to write into each referencing column")
    up.add_argument("--mode", choices=("auto", "gui", "headless", "servers"), default="auto",
                    help="auto: the wizard when there is a display, else the steps headless; "
                    "servers: only start the sandbox")
    up.add_argument("--exit", action="store_true",
                    help="stop the sandbox once the headless run is done")
    up.set_defaults(func=cmd_up)
    sd = sub.add_parser("seed", help="build the sample schema and rows in an empty database")
    sd.add_argument("--dsn", required=True, help="postgresql://owner@host:port/db (no password)")
    sd.add_argument("--users", type=int, required=True)
    sd.add_argument("--orphans", type=int, default=0)
    sd.add_argument("--superuser-dsn", help="superuser connection for --orphans")
    sd.set_defaults(func=cmd_seed)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
