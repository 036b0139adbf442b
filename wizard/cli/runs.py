"""`enerlink-migrate runs`: the recorded runs, newest first; `runs show RUN`: one run's events."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from wizard.cli.common import CHECK_MARK, EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError, printer
from wizard.core.journal import runs_root
from wizard.core.report import format_ts
from wizard.core.runs import (
    RunNotFound,
    RunSummary,
    engine_phrase,
    find_run,
    list_runs,
    plural,
    short,
    summarise,
)
from wizard.core.units import format_bytes

Record = dict[str, Any]


def cmd_runs(args: argparse.Namespace) -> int:
    root = runs_root()
    runs = list_runs(root, dbname=args.db, limit=args.limit)
    if not runs:
        which = f" of database {args.db}" if args.db else ""
        text = f"no runs{which} recorded under {root}"
    else:
        text = "\n".join([f"runs under {root}, newest first:", *_table(runs)])
    printer(args).result({"root": str(root), "runs": [r.to_dict() for r in runs]}, text)
    return EXIT_OK


def _table(runs: list[RunSummary]) -> list[str]:
    rows = [(format_ts(r.started) if r.started else "?", r.command, r.database, r.outcome,
             r.name) for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return ["  ".join([*(row[i].ljust(widths[i]) for i in range(3)), row[3], row[4]])
            for row in rows]


def cmd_show(args: argparse.Namespace) -> int:
    try:
        journal = find_run(args.run)
    except RunNotFound as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    try:
        events = journal.events()
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read the journal {journal.path}: {exc}", EXIT_FAILED) from None
    summary = summarise(journal, events)
    started = next((e for e in events if e["event"] == "run_started"), {})
    head = [f"run {journal.folder.name} ({journal.folder})",
            f"  {summary.command} on {summary.database}, started "
            f"{format_ts(summary.started)} by {started.get('operator', '?')}@"
            f"{started.get('client_host', '?')}",
            f"  outcome: {summary.outcome}",
            f"events ({len(events)}, times UTC):"]
    printer(args).result({"run": journal.folder.name, "folder": str(journal.folder),
                          "summary": summary.to_dict(), "events": events},
                         "\n".join(head + event_lines(events)))
    return EXIT_OK


def event_lines(events: list[Record]) -> list[str]:
    """Each event as a line (a few with indented details), stamped with its UTC time."""
    lines: list[str] = []
    previous: Record = {}
    for e in events:
        text = describe(e, previous)
        previous = e
        if text is None:
            continue
        stamp = str(e.get("ts", ""))[11:23] or "?"
        first, *rest = text
        lines.append(f"  {stamp}  {first}")
        lines += [f"  {' ' * len(stamp)}    {line}" for line in rest]
    return lines


def describe(e: Record, previous: Record) -> list[str] | None:
    """An event in words; None when the line before already said it (a step's log line)."""
    if e["event"] == "step_done" and previous.get("event") == "log" and str(
            previous.get("message", "")).startswith(f"[{e.get('index')}/{e.get('total')}] "):
        return None
    render = RENDER.get(e["event"])
    if render is None:
        return [f"{e['event']}: " + "; ".join(f"{k} {_value(v)}" for k, v in e.items()
                                              if k not in ("ts", "event"))]
    return render(e)


def _value(v: Any, limit: int = 200) -> str:
    text = v if isinstance(v, str) else json.dumps(v, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _target(t: Any) -> str:
    t = t if isinstance(t, dict) else {}
    return f"{t.get('user', '?')}@{t.get('host', '?')}:{t.get('port', '?')}/{t.get('dbname', '?')}"


def _checks(checks: Any) -> list[str]:
    """Check records: {status, title, detail} (verify, pre-flight) or {ok, detail} (restore)."""
    lines = []
    for c in checks if isinstance(checks, list) else []:
        if not isinstance(c, dict):
            continue
        if "status" in c:
            lines.append(f"{CHECK_MARK.get(str(c['status']), '?')} {c.get('title', c.get('id'))}"
                         f": {short(c.get('detail'), 200)}")
        else:
            lines.append(f"{'✔' if c.get('ok') else '✘'} {short(c.get('detail'), 200)}")
    return lines


def _log(e: Record) -> list[str]:
    level = str(e.get("level", "info"))
    return [("" if level in ("step", "info") else f"[{level}] ") + str(e.get("message", ""))]


def _run_finished(e: Record) -> list[str]:
    r = e.get("result") or {}
    phrase, _ok = engine_phrase(r)
    facts = [plural(len(r.get("steps") or []), "step"), plural(int(r.get("attempts") or 0),
                                                                "attempt")]
    if r.get("blocked_ms") is not None:
        facts.append(f"application blocked {r['blocked_ms']} ms")
    facts.append(f"{r.get('total_s', '?')} s in all")
    lines = [f"finished: {phrase} ({', '.join(facts)}); state before {r.get('state_before')}"
             + (f", after {r['state_after']}" if r.get("state_after") else "")]
    if r.get("commit_evidence"):
        lines.append(f"COMMIT: {r.get('commit')} ({short(r['commit_evidence'], 200)})")
    return lines + _checks(r.get("checks"))


def _backup(e: Record) -> list[str]:
    if not e.get("verified"):
        return [f"backup FAILED: {short(e.get('error'), 300)}"]
    size = e.get("size_bytes")
    return [f"backup verified: {e.get('path')}",
            f"{format_bytes(size) if isinstance(size, int) else '?'}, "
            f"{e.get('toc_entries', '?')} TOC entries, sha256 {e.get('sha256')}"]


def _proven(e: Record) -> list[str]:
    if not e.get("proven"):
        return [f"backup NOT proven: {short(e.get('reason'), 300)}"]
    return [f"backup proven: {e.get('path')}", short(e.get("summary"), 400)]


def _accepted(e: Record) -> list[str]:
    proof = e.get("proof") or {}
    proven = ", proven" if proof.get("proven") else (", its proof FAILED" if proof
                                                     else ", not proven")
    return [f"rollback point: {e.get('path')} (sha256 {str(e.get('sha256'))[:16]}…, verified "
            f"{format_ts(str(e.get('verified_at', '')))}{proven})"]


def _restore_finished(e: Record) -> list[str]:
    r = e.get("result") or {}
    if r.get("ok"):
        lines = [f"restore finished: the restored copy swapped in as {r.get('live_db')}, the "
                 f"previous one kept as {r.get('before_db')}"]
    else:
        lines = [f"restore {'cancelled' if r.get('cancelled') else 'FAILED'}: "
                 f"{short(r.get('error'), 300)}"]
    return lines + [f"next: {s}" for s in r.get("next_steps") or []]


def _restore_program(e: Record) -> list[str]:
    outcome = e.get("outcome") or {}
    program = (outcome.get("argv") or ["the restore program"])[0]
    return [f"{program} ended with exit code {outcome.get('returncode')}, "
            f"{plural(int(e.get('ignored_errors') or 0), 'ignored error')}"]


def _orphan_scan(e: Record) -> list[str]:
    cols = [c for c in e.get("columns") or [] if c.get("count")]
    return [f"orphan scan of {e.get('database')}: {e.get('total', 0)} orphan rows"] + [
        f"{c.get('label')}: {c.get('count')} rows (key {c.get('fk_name')})" for c in cols]


def _preflight(e: Record) -> list[str]:
    return [f"pre-flight of {e.get('target')}: state {e.get('state')}", *_checks(e.get("checks"))]


def _redis_migrated(e: Record) -> list[str]:
    r = e.get("result") or {}
    way = "back to the old names" if e.get("direction") == "down" else "to the new names"
    return [f"Redis {e.get('target')} {way}: {e.get('outcome')}, {r.get('changed', '?')} keys "
            f"changed, {r.get('conflicts', 0)} conflicts"
            + (f": {short(e.get('error'), 300)}" if e.get("error") else "")]


RENDER: dict[str, Callable[[Record], list[str]]] = {
    "run_started": lambda e: [f"{e.get('command')} started by {e.get('operator')}@"
                              f"{e.get('client_host')} (pid {e.get('pid')}) on "
                              f"{_target(e.get('target'))}"],
    "log": _log,
    "operator": lambda e: [f"operator: {e.get('name')}"],
    "preflight": _preflight,
    "session_signalled": lambda e: [str(e.get("message", ""))],
    "app_command": lambda e: [f"{e.get('what')}: {e.get('command')} "
                              f"{'ok' if e.get('ok') else 'FAILED'}"
                              + (f" ({short(e.get('detail'))})" if e.get("detail") else "")],
    "backup_started": lambda e: [f"backup started: {e.get('path')} ({e.get('format')}, "
                                 f"compression {e.get('compression')}, "
                                 f"{plural(int(e.get('jobs') or 1), 'job')})"],
    "backup": _backup,
    "backup_cancelled": lambda e: [f"backup cancelled; the partial {e.get('path')} was "
                                   + ("removed" if e.get("removed") else "NOT removed")],
    "backup_accepted": _accepted,
    "backup_skipped": lambda e: [f"no backup: skipped for {e.get('dbname')} ({e.get('how')})"],
    "backup_proof_started": lambda e: [f"proving {e.get('path')}: restoring it into "
                                       f"{e.get('scratch_db')}, compared with "
                                       f"{e.get('compared_with')}"],
    "backup_proven": _proven,
    "orphan_scan": _orphan_scan,
    "orphan_export": lambda e: [f"orphan rows exported to {e.get('folder')}"] + [
        f"{f.get('table')}: {f.get('rows')} rows in {f.get('path')}"
        for f in e.get("files") or []],
    "orphan_delete": lambda e: [f"orphan rows deleted in {e.get('database')}: "
                                + ", ".join(f"{t} {n}" for t, n in
                                            (e.get("deleted") or {}).items())],
    "state_before": lambda e: [f"state before: {e.get('state')}: {e.get('explanation')}"],
    "migrate_plan_shown": lambda e: [f"plan shown: {e.get('steps')} steps, digest "
                                     f"{str(e.get('digest'))[:16]}"],
    "plan": lambda e: [f"plan ({e.get('direction')}) from state {e.get('state')}: "
                       f"{plural(len(e.get('ops') or []), 'step')}, digest "
                       f"{str(e.get('digest'))[:16]}"],
    "expected": lambda e: [f"recorded what verify will expect: "
                           f"{plural(len(e.get('fk_shapes') or {}), 'foreign key')}, "
                           f"{plural(len(e.get('index_names') or []), 'index name')}"],
    "refused": lambda e: [f"REFUSED: {e.get('reason')}"],
    "attempt": lambda e: [f"attempt {e.get('attempt')} of {e.get('of')}: BEGIN "
                          f"({e.get('steps')} steps)"],
    "step_done": lambda e: [f"[{e.get('index')}/{e.get('total')}] {e.get('title')} "
                            f"({e.get('ms')} ms)"],
    "lock_timeout": lambda e: [f"attempt {e.get('attempt')}: lock timeout at {e.get('at')}, "
                               "rolled back; held by "
                               + (", ".join(f"pid {b.get('pid')} {b.get('application_name', '')}"
                                            .strip() for b in e.get("blockers") or [])
                                  or "(no session found)")],
    "commit_unknown": lambda e: [f"connection lost during COMMIT (attempt {e.get('attempt')}): "
                                 f"{short(e.get('error'), 300)}"],
    "commit_resolved": lambda e: [f"COMMIT outcome: {e.get('outcome')} after "
                                  f"{e.get('waited_s')} s ({short(e.get('evidence'), 300)})"],
    "run_finished": _run_finished,
    "down_plan": lambda e: [f"revert plan kept: {plural(len(e.get('steps') or []), 'step')}, "
                            f"digest {str(e.get('digest'))[:16]}"],
    "cache_dry_run": lambda e: [f"Redis dry run on {e.get('redis')}: "
                                + ", ".join(f"{k} {v}" for k, v in
                                            (e.get("counts") or {}).items())],
    "redis_dry_run": lambda e: [f"Redis dry run on {e.get('target')}: "
                                + "; ".join(str(r) for r in e.get("rules") or [])],
    "redis_progress": lambda e: [f"Redis {e.get('rule')}: {e.get('changed')} changed in "
                                 f"{e.get('batches')} batches, {e.get('conflicts')} conflicts"],
    "redis_migrated": _redis_migrated,
    "cache_delete": lambda e: [f"Redis cache keys deleted on {e.get('redis')}: "
                               f"{e.get('total')} ({e.get('outcome')})"],
    "cache_flushdb": lambda e: [f"FLUSHDB {e.get('redis')} db {e.get('db')}: "
                                f"{e.get('outcome')}"],
    "cache_skipped": lambda e: [f"Redis not touched: {e.get('reason')}"],
    "cache_unavailable": lambda e: [f"Redis {e.get('redis')} unreachable: {e.get('error')}"],
    "verification": lambda e: ["verification:", *_checks(e.get("checks"))],
    "manual_check": lambda e: [f"manual check {e.get('id')}: "
                               + ("done" if e.get("done") else "not done")
                               + (f" ({e.get('note')})" if e.get("note") else "")],
    "verification_signed": lambda e: [f"verification signed by {e.get('operator')}"
                                      + (f"; failed checks: {', '.join(e['failed_checks'])}"
                                         if e.get("failed_checks") else "")],
    "report_exported": lambda e: [f"report exported: {e.get('format')} {e.get('path')}"],
    "restore_prepared": lambda e: [f"restore prepared: "
                                   f"{(e.get('inspection') or {}).get('path')} into "
                                   f"{e.get('restore_db')}, then {e.get('live_db')} kept as "
                                   f"{e.get('before_db')}"],
    "restore_db_created": lambda e: [f"created database {e.get('dbname')} (owner "
                                     f"{e.get('owner')})"],
    "restore_program": _restore_program,
    "restore_checks": lambda e: ["checks of the restored copy:", *_checks(e.get("checks"))],
    "restore_dropped": lambda e: [f"dropped the unfinished {e.get('dbname')}"],
    "restore_swapped": lambda e: [f"swapped: {e.get('live_db')} renamed to {e.get('before_db')}, "
                                  f"the restored copy to {e.get('live_db')} "
                                  f"({plural(len(e.get('terminated') or []), 'session')} "
                                  f"terminated)"],
    "restore_finished": _restore_finished,
}


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {n}")
    return n


def register(sub: Any, _common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "runs", help="the recorded runs, newest first (`runs show RUN`: one run's events)",
        description="The run journals under the runs folder (ENERLINK_MIGRATE_RUNS overrides "
        "it), newest first: when, which command, which database, and what that run did. A "
        "run's words stay what it did: a later revert or restore is a run of its own, so "
        "check the database's state now with `enerlink-migrate inspect`. Needs no database "
        "connection.")
    p.add_argument("--db", metavar="NAME", help="only the runs of the database NAME")
    p.add_argument("--limit", type=_positive, metavar="N", help="only the newest N runs")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_runs)
    actions = p.add_subparsers(dest="runs_command", metavar="ACTION",
                               help="show RUN: one run's events (without it: the list)")
    show = actions.add_parser("show", help="one run's events, readably",
                              description="Every event of one run's journal in words, with "
                              "its time (UTC); --json prints the records as they are.")
    show.add_argument("run", metavar="RUN", help="the run's folder name (as `runs` lists it), "
                      "the start of it that only one run has, or its path")
    # SUPPRESS: `runs --json show RUN` keeps the --json given before `show`.
    show.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                      help="the summary and the journal's records as JSON")
    show.set_defaults(handler=_show)


def _show(args: argparse.Namespace) -> int:
    if args.db is not None or args.limit is not None:
        raise CliError("--db and --limit choose runs to list; `runs show RUN` shows one run",
                       EXIT_USAGE)
    return cmd_show(args)
