"""`enerlink-migrate report RUN --pdf FILE`: a run's checklist report, rendered headless."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from wizard.cli.common import EXIT_OK, EXIT_USAGE, CliError, printer
from wizard.core import runs
from wizard.core.journal import Journal
from wizard.core.report import build_report, render_html


def find_run(run: str) -> Journal:
    """A run folder given by path, by its name under the runs folder, or by the start of a
    name only one run has (as `runs show` takes it)."""
    try:
        return runs.find_run(run)
    except runs.RunNotFound as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def headless() -> None:
    """No display (a server, CI, ssh): Qt must not look for one. An explicit choice stands."""
    if sys.platform.startswith(("win", "darwin")):
        return  # their native platform plugins need no display server
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def cmd_report(args: argparse.Namespace) -> int:
    journal = find_run(args.run)
    model = build_report(journal)
    data: dict[str, Any] = {"run": str(journal.folder), "report": model.to_dict()}
    lines = [f"run {journal.folder.name}: {model.outcome}"]
    if args.html:
        Path(args.html).write_text(render_html(model), encoding="utf-8")
        data["html"] = args.html
        lines.append(f"HTML written to {args.html}")
    if args.pdf:
        pdf = Path(args.pdf)
        if not pdf.parent.is_dir():
            raise CliError(f"cannot write {pdf}: folder {pdf.parent} does not exist", EXIT_USAGE)
        headless()
        from wizard.ui.pdf import write_report_pdf  # Qt only when a PDF is asked for

        data["pages"] = write_report_pdf(journal, pdf)
        data["pdf"] = str(pdf)
        lines.append(f"PDF written to {pdf} ({data['pages']} pages)")
    open_items = [c.title for c in model.checklist if c.status in ("fail", "open")]
    if open_items:
        lines.append(f"{len(open_items)} checklist item(s) failed or not ticked yet")
    printer(args).result(data, "\n".join(lines))
    return EXIT_OK


def register(sub: Any, _common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("report", help="a run's report (PDF, HTML, JSON) from its journal",
                       description="Render the report of a recorded run: operator, target, "
                       "timings, backup, the SQL that ran and the checklist with sign-off "
                       "lines. Needs no database connection.")
    p.add_argument("run", metavar="RUN", help="run folder, its name under the runs folder "
                   "(as `enerlink-migrate runs` lists it), or the start of it that only one "
                   "run has")
    p.add_argument("--pdf", metavar="FILE", help="write the report as an A4 PDF")
    p.add_argument("--html", metavar="FILE", help="write the report as HTML")
    p.add_argument("--json", action="store_true", help="print the report model as JSON")
    p.set_defaults(handler=_checked)


def _checked(args: argparse.Namespace) -> int:
    if not (args.pdf or args.html or args.json):
        raise CliError("say what to produce: --pdf FILE, --html FILE and/or --json", EXIT_USAGE)
    return cmd_report(args)
