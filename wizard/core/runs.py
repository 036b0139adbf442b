"""The recorded runs: each journal summed up in words (what that run did), newest first."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wizard.core.commit_outcome import UNKNOWN as UNKNOWN_COMMIT
from wizard.core.commit_outcome import committed
from wizard.core.journal import EVENTS, Journal, runs_root

Record = dict[str, Any]
# Events whose newest record stands for the run (a check run again replaces the first).
LATEST_ONLY = frozenset({"preflight", "verification", "orphan_scan", "cache_dry_run"})


class RunNotFound(LookupError):
    """No run, or more than one, answers to the name given; the message says which."""


@dataclass(frozen=True)
class RunSummary:
    """One run: where, when, what command, and what it did (never the database's state
    now: a later revert or restore changes that, and this run's words stay true)."""

    folder: Path
    started: str  # the run_started record's ISO time (UTC); "" when unreadable
    command: str
    host: str
    port: str
    dbname: str
    outcome: str
    ok: bool | None  # None: nothing to judge (no result recorded)
    parts: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def database(self) -> str:
        return f"{self.host}:{self.port}/{self.dbname}"

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.name, "folder": str(self.folder), "started": self.started,
                "command": self.command, "host": self.host, "port": self.port,
                "dbname": self.dbname, "database": self.database, "outcome": self.outcome,
                "ok": self.ok, "parts": list(self.parts)}


def short(text: Any, limit: int = 160) -> str:
    """One line of a message: its first line, spaces collapsed, cut at `limit`."""
    first = (str(text or "").strip().splitlines() or [""])[0]
    line = " ".join(first.split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _kind(direction: str, rehearsal: bool) -> str:
    if rehearsal:
        return "rehearsal"
    return "migration" if direction == "up" else "revert"


ENGINE_COMMANDS = {"migrate": "migration", "revert": "revert", "rehearse-migrate": "rehearsal",
                   "rehearse-revert": "rehearsal"}


def _engine_kind(command: str, plan: Record | None) -> str:
    """migration, rehearsal or revert: the command's, else (a wizard session) the plan's."""
    if command in ENGINE_COMMANDS:
        return ENGINE_COMMANDS[command]
    return _kind(str(plan.get("direction") or "up"), False) if plan else "migration"


def engine_phrase(result: Record) -> tuple[str, bool]:
    """What one migration, rehearsal or revert did, from its run_finished result."""
    kind = _kind(str(result.get("direction") or "up"), bool(result.get("rehearsal")))
    error = short(result.get("error") or "see the log")
    if kind == "rehearsal":
        return ("rehearsal ok (rolled back)", True) if result.get("ok") else \
            (f"rehearsal FAILED: {error}", False)
    if result.get("commit_lost") and result.get("commit") == UNKNOWN_COMMIT:
        return f"{kind} outcome UNKNOWN: {error}", False
    if result.get("ok") and not result.get("steps"):
        return f"{kind}: nothing to do (state {result.get('state_before') or '?'})", True
    if result.get("ok"):
        lost = " after a lost connection" if result.get("commit_lost") else ""
        return f"{kind} committed{lost}", True
    if committed(result):
        return f"{kind} committed, then a check FAILED: {error}", False
    return f"{kind} FAILED: {error}", False


def _backup_phrase(event: Record, proof: Record | None) -> tuple[str, bool]:
    if not event.get("verified"):
        return f"backup FAILED: {short(event.get('error') or 'see the log')}", False
    if proof is None:
        return "backup verified", True
    if proof.get("proven"):
        return "backup verified and proven", True
    return f"backup verified; its proof FAILED: {short(proof.get('reason'))}", False


def _proof_phrase(event: Record) -> tuple[str, bool]:
    name = Path(str(event.get("path") or "?")).name
    if event.get("proven"):
        return f"backup {name} proven by a restore", True
    return f"proof of {name} FAILED: {short(event.get('reason') or 'see the log')}", False


def _restore_phrase(result: Record) -> tuple[str, bool]:
    live = result.get("live_db") or "?"
    if result.get("ok"):
        return (f"restore ok: the backup's copy swapped in as {live} (the previous one kept "
                f"as {result.get('before_db')})"), True
    if result.get("declined"):
        return f"restore not done: the NOT VALID swap was declined ({live} untouched)", False
    if result.get("cancelled"):
        return f"restore cancelled ({live} untouched)", False
    return f"restore FAILED: {short(result.get('error') or 'see the log')}", False


def _redis_phrase(event: Record) -> tuple[str, bool]:
    names = "the old names" if event.get("direction") == "down" else "the new names"
    outcome = str(event.get("outcome") or "")
    if outcome == "ok":
        changed = (event.get("result") or {}).get("changed", "?")
        return f"Redis brought to {names} ({changed} keys)", True
    if outcome == "cancelled":
        return "Redis migration cancelled", False
    return f"Redis migration FAILED: {short(event.get('error') or 'see the log')}", False


def _checks_phrase(what: str, checks: list[Any]) -> tuple[str, bool]:
    statuses = [c.get("status") for c in checks if isinstance(c, dict)]
    failed, warned = statuses.count("fail"), statuses.count("warn")
    if failed:
        return f"{what} FAILED: {failed} of {len(statuses)} checks", False
    return (f"{what} passed ({plural(len(statuses), 'check')}"
            + (f", {plural(warned, 'warning')})" if warned else ")")), True


def _other_phrase(event: Record) -> tuple[str, bool] | None:
    """Phrases of the events that need nothing else of the journal; None: not an outcome."""
    name = event["event"]
    if name == "restore_finished":
        return _restore_phrase(event.get("result") or {})
    if name == "redis_migrated":
        return _redis_phrase(event)
    if name == "backup_cancelled":
        return "backup cancelled", False
    if name == "backup_skipped":
        return "no backup (skipped, the database name typed)", True
    if name == "preflight":
        blocking = [c for c in event.get("checks") or [] if c.get("status") == "fail"]
        return ((f"pre-flight: {len(blocking)} check(s) block the run", False) if blocking
                else ("pre-flight: nothing blocks the run", True))
    if name == "verification":
        return _checks_phrase("verification", event.get("checks") or [])
    if name == "orphan_scan":
        total = int(event.get("total") or 0)
        return (f"{total} orphan rows found", False) if total else ("no orphan rows", True)
    if name == "orphan_export":
        rows = sum(int(f.get("rows") or 0) for f in event.get("files") or [])
        return f"{rows} orphan rows exported to CSV", True
    if name == "orphan_delete":
        return f"{sum((event.get('deleted') or {}).values())} orphan rows deleted", True
    if name == "cache_dry_run":
        return "Redis dry run (nothing changed)", True
    if name == "cache_delete":
        ok = event.get("outcome") == "ok"
        return f"Redis cache keys deleted: {event.get('total', '?')}" if ok else \
            f"Redis cache delete {event.get('outcome')}: {short(event.get('error'))}", ok
    if name == "cache_flushdb":
        ok = event.get("outcome") == "ok"
        return f"Redis FLUSHDB of db {event.get('db')}: {event.get('outcome')}", ok
    if name == "cache_unavailable":
        return f"Redis unreachable: {short(event.get('error'))}", False
    return None


def outcome_parts(events: list[Record], proofs: dict[str, Record] | None = None
                  ) -> list[tuple[str, bool]]:
    """What the run did, in the order it happened. `proofs`: the newest proof of each
    backup (by sha256) recorded in later runs."""
    backups = {str(e.get("sha256")) for e in events if e["event"] == "backup"}
    newest = dict(proofs or {})
    for e in events:
        sha = str(e.get("sha256"))
        if e["event"] == "backup_proven" and str(e.get("ts", "")) >= str(
                newest.get(sha, {}).get("ts", "")):
            newest[sha] = e
    command = str(next((e.get("command") for e in events if e["event"] == "run_started"), ""))
    parts: list[tuple[int, str, bool]] = []
    latest: dict[str, int] = {}  # LATEST_ONLY event -> index of its part
    plan: Record | None = None
    for n, e in enumerate(events):
        name = e["event"]
        phrase: tuple[str, bool] | None = None
        if name == "plan":
            if plan is not None:
                parts.append((n, *_interrupted(_engine_kind(command, plan))))
            plan = e
        elif name == "run_finished":
            phrase, plan = engine_phrase(e.get("result") or {}), None
        elif name == "refused":
            phrase = (f"{_engine_kind(command, plan)} refused: {short(e.get('reason'))}",
                      False)
            plan = None
        elif name == "backup":
            phrase = _backup_phrase(e, newest.get(str(e.get("sha256"))))
        elif name == "backup_proven":
            if str(e.get("sha256")) not in backups:
                phrase = _proof_phrase(e)
        else:
            phrase = _other_phrase(e)
        if phrase is None:
            continue
        if name in LATEST_ONLY:
            parts = [p for p in parts if p[0] != latest.get(name)]
            latest[name] = n
        parts.append((n, *phrase))
    if plan is not None:
        parts.append((len(events), *_interrupted(_engine_kind(command, plan))))
    return [(text, ok) for _n, text, ok in sorted(parts)]


def _interrupted(kind: str) -> tuple[str, bool]:
    return f"{kind} interrupted: no result recorded (run `enerlink-migrate inspect`)", False


def summarise(journal: Journal, events: list[Record] | None = None,
              proofs: dict[str, Record] | None = None) -> RunSummary:
    """The run in one line. Raises OSError or ValueError for an unreadable journal."""
    events = journal.events() if events is None else events
    started = next((e for e in events if e["event"] == "run_started"), {})
    target = started.get("target") or {}
    parts = outcome_parts(events, proofs)
    outcome = "; ".join(text for text, _ok in parts) or "no result recorded"
    return RunSummary(journal.folder, str(started.get("ts", "")),
                      str(started.get("command") or "?"), str(target.get("host") or "?"),
                      str(target.get("port") or "?"), str(target.get("dbname") or "?"),
                      outcome, all(ok for _text, ok in parts) if parts else None,
                      tuple(text for text, _ok in parts))


def run_folders(root: Path | None = None) -> list[Path]:
    """Every run folder (one with a journal) under the runs root, newest first: folder
    names start with the UTC time the run began."""
    root = root or runs_root()
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if (p / EVENTS).is_file()), reverse=True)


def list_runs(root: Path | None = None, dbname: str | None = None,
              limit: int | None = None) -> list[RunSummary]:
    """The runs newest first, those of database `dbname` only when given, at most `limit`."""
    found: list[RunSummary] = []
    proofs: dict[str, Record] = {}  # from newer runs, which are read first
    for folder in run_folders(root):
        if limit is not None and len(found) >= limit:
            break
        journal = Journal(folder)
        try:
            events = journal.events()
        except (OSError, ValueError) as exc:
            if dbname is None:
                found.append(RunSummary(folder, "", "?", "?", "?", "?",
                                        f"unreadable journal: {short(exc)}", False))
            continue
        summary = summarise(journal, events, proofs)
        for e in events:
            if e["event"] == "backup_proven":
                sha = str(e.get("sha256"))
                if str(e.get("ts", "")) >= str(proofs.get(sha, {}).get("ts", "")):
                    proofs[sha] = e
        if dbname is None or summary.dbname == dbname:
            found.append(summary)
    return found


def find_run(run: str, root: Path | None = None) -> Journal:
    """A run given by its folder's path, its name under the runs root, or a prefix of the
    name that only one run has."""
    root = root or runs_root()
    for folder in (Path(run).expanduser(), root / run):
        if (folder / EVENTS).is_file():
            return Journal(folder)
    names = [p.name for p in run_folders(root)]
    matches = [n for n in names if n.startswith(run)] if run else []
    if len(matches) == 1:
        return Journal(root / matches[0])
    if matches:
        shown = ", ".join(matches[:5]) + (f" and {len(matches) - 5} more"
                                          if len(matches) > 5 else "")
        raise RunNotFound(f"{run!r} names {len(matches)} runs under {root}: {shown}; give "
                          f"more of the name")
    hint = ("; newest runs: " + ", ".join(names[:5])) if names else \
        "; no runs are recorded there yet"
    raise RunNotFound(f"no run {run!r}: not a run folder (with {EVENTS}), nor the name or "
                      f"the start of a name under {root}{hint}")
