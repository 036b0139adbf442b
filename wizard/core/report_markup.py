"""The report's HTML building blocks: its CSS, status marks, escaping, tables, plain words.

QTextDocument understands a subset of HTML 4 and CSS: tables with attributes, no flexbox.
"""

from __future__ import annotations

from html import escape
from typing import Any

from wizard.core.report_model import (
    DONE,
    EVIDENCE_CHARS,
    FAIL,
    NONE,
    OPEN,
    PASS,
    STATUS_LABEL,
    WARN,
)
from wizard.core.runs import plural

CSS = """
body { font-size: 9pt; }
h1 { font-size: 16pt; margin-bottom: 2px; }
h2 { font-size: 12pt; margin-top: 14px; margin-bottom: 4px; }
h3 { font-size: 10pt; margin-top: 8px; margin-bottom: 2px; }
td, th { padding: 3px; vertical-align: top; }
th { background-color: #e8e8e8; text-align: left; }
td.k { font-weight: bold; }
td.rb { background-color: #fff4cc; }
.ref { font-size: 13pt; font-weight: bold; }
.mono { font-family: monospace; font-size: 8pt; }
pre { font-family: monospace; font-size: 8pt; white-space: pre-wrap; }
.pass { color: #116329; font-weight: bold; }
.done { color: #116329; font-weight: bold; }
.fail { color: #b00020; font-weight: bold; }
.warn { color: #8a5a00; font-weight: bold; }
.open { color: #8a5a00; font-weight: bold; }
.none { color: #555555; font-weight: bold; }
.small { font-size: 7.5pt; color: #444444; }
"""
MARK = {PASS: "✔", FAIL: "✘", WARN: "!", DONE: "☑", OPEN: "☐", NONE: "○"}
TABLE = '<table width="100%" border="1" cellspacing="0" cellpadding="3">'


def esc(value: Any) -> str:
    return escape("" if value is None else str(value))


def plain(value: Any, limit: int = EVIDENCE_CHARS, depth: int = 0) -> str:
    """A journal value in words for the PDF, never as JSON: `key: value` pairs, lists
    joined by commas, deeper levels counted; cut at `limit` characters."""
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif value is None:
        text = "none"
    elif isinstance(value, dict):
        if depth >= 2:
            text = plural(len(value), "field")
        else:
            pairs = [f"{str(k).replace('_', ' ')}: {plain(v, limit, depth + 1)}"
                     for k, v in value.items()]
            text = ("; " if depth == 0 else ", ").join(pairs) or "none"
            text = text if depth == 0 else f"({text})"
    elif isinstance(value, list | tuple):
        if not value:
            text = "none"
        elif depth >= 2 or (depth and any(isinstance(v, dict | list) for v in value)):
            text = plural(len(value), "item")
        else:
            text = ", ".join(plain(v, limit, depth + 1) for v in value[:6]) + (
                f" … and {len(value) - 6} more" if len(value) > 6 else "")
    else:
        text = str(value)
    if depth == 0 and len(text) > limit:
        text = text[:limit].rstrip() + " … (the rest is in the journal)"
    return text


def kv_table(rows: list[tuple[str, str]], key_width: int = 27) -> str:
    """A two-column table; values are already-escaped HTML."""
    body = "".join(f'<tr><td class="k" width="{key_width}%">{esc(k)}</td><td>{v}</td></tr>'
                   for k, v in rows)
    return f"{TABLE}{body}</table>"


def status_html(status: str) -> str:
    label = esc(STATUS_LABEL.get(status, status.upper())).replace(" ", "&nbsp;")
    return f'<span class="{esc(status)}">{MARK.get(status, "?")}&nbsp;{label}</span>'
