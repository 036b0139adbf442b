"""The run report: a model and its HTML, built from a run journal only (no database).

This module is the report's public face: what the GUI, the CLI and the tests import. The
parts live beside it: report_model (dataclasses, manual checklist, statuses, redaction),
report_steps (each step of the change window in words), report_build (the journal read
into the model), report_markup, report_html and report_details (the HTML). Here are the
records the operator adds to a run's journal for its report.
"""

from __future__ import annotations

from wizard.core.events import (
    ChangeNamed,
    ManualCheckDone,
    OperatorNamed,
    ReportExported,
    VerificationSigned,
)
from wizard.core.journal import Journal
from wizard.core.report_build import build_report
from wizard.core.report_html import PROOF_STATUS, render_html
from wizard.core.report_markup import CSS, MARK, TABLE, plain
from wizard.core.report_model import (
    CHECK_EVENTS,
    DONE,
    EVIDENCE_CHARS,
    FAIL,
    MANUAL_CHECKS,
    MANUAL_IDS,
    NONE,
    OPEN,
    OUTSIDE_WINDOW,
    PASS,
    STATUS_LABEL,
    TARGET_FIELDS,
    WARN,
    ChecklistItem,
    ManualCheck,
    Record,
    ReportModel,
    RollbackPoint,
    RunSection,
    StepLine,
    StepOutcome,
    StepRow,
    format_ts,
    redact,
    size_text,
)
from wizard.core.report_steps import (
    ALWAYS,
    OTHER_EVENTS,
    SHOWN_ELSEWHERE,
    STEP_EVENTS,
    STEPS,
    Words,
    run_words,
)

__all__ = [
    "ALWAYS", "CHECK_EVENTS", "CSS", "DONE", "EVIDENCE_CHARS", "FAIL", "MANUAL_CHECKS",
    "MANUAL_IDS", "MARK", "NONE", "OPEN", "OTHER_EVENTS", "OUTSIDE_WINDOW", "PASS",
    "PROOF_STATUS", "SHOWN_ELSEWHERE", "STATUS_LABEL", "STEPS", "STEP_EVENTS", "TABLE",
    "TARGET_FIELDS", "WARN", "ChecklistItem", "ManualCheck", "Record", "ReportModel",
    "RollbackPoint", "RunSection", "StepLine", "StepOutcome", "StepRow", "Words",
    "build_report", "format_ts", "plain", "record_change", "record_export",
    "record_manual_check", "record_operator", "record_signed", "redact", "render_html",
    "report_html", "run_words", "size_text",
]


def record_manual_check(journal: Journal, check_id: str, done: bool, note: str = "") -> None:
    """The operator ticked (or unticked) a manual item; the last record of an id wins."""
    if check_id not in MANUAL_IDS:
        known = ", ".join(m.id for m in MANUAL_CHECKS)
        raise ValueError(f"unknown manual check {check_id!r}; known: {known}")
    journal.record(ManualCheckDone(check_id, bool(done), note))


def record_operator(journal: Journal, name: str) -> None:
    """The name the operator signs the report with (not the OS account)."""
    journal.record(OperatorNamed(name.strip()))


def record_change(journal: Journal, ref: str | None, reviewer: str | None = None,
                  operator: str | None = None) -> bool:
    """The change this run belongs to (reference, reviewer, operator), recorded when a
    journal is opened with one; nothing is recorded when none of the three is given."""
    fields = [(v or "").strip() for v in (ref, reviewer, operator)]
    if not any(fields):
        return False
    journal.record(ChangeNamed(*fields))
    return True


def record_signed(journal: Journal, operator: str, failed_checks: list[str],
                  manual_done: list[str]) -> None:
    """The operator finished the checklist: who, with which checks failed and which manual
    items ticked. Finishing with failures is allowed; this record says they were seen."""
    journal.record(VerificationSigned(operator, failed_checks, manual_done))


def record_export(journal: Journal, fmt: str, path: str, pages: int | None = None) -> None:
    """A report left the machine as a file (pdf with its page count, or json): where to."""
    journal.record(ReportExported(fmt, path, pages))



def report_html(journal: Journal) -> str:
    return render_html(build_report(journal))
