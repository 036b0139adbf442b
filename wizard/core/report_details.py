"""The report's detailed sections in HTML: each migration run, the checklist, other
events, the proofs, restores and Redis migrations, and the SQL appendix."""

from __future__ import annotations

from typing import Any

from wizard.core.report_markup import TABLE, esc, kv_table, plain, status_html
from wizard.core.report_model import FAIL, PASS, ReportModel, RunSection, format_ts
from wizard.core.report_steps import ms_text, run_words
from wizard.core.runs import plural


def run_html(n: int, r: RunSection, shown: dict[str, int]) -> str:
    head = f"<h3>{n}. {esc(r.kind.capitalize())}: " + (
        '<span class="pass">succeeded</span>' if r.ok else '<span class="fail">FAILED</span>'
    ) + "</h3>"
    _status_word, words = run_words(r)
    rows = [("Result", esc(words)),
            ("Started", esc(format_ts(r.started))), ("Ended", esc(format_ts(r.finished))),
            ("Attempts", esc(r.attempts)),
            ("Application blocked", esc(ms_text(r.blocked_ms))),
            ("Total time", esc(f"{r.total_s} s" if r.total_s is not None else "—"))]
    if r.failed_step:
        rows.append(("Failed step", esc(r.failed_step)))
    if r.commit_lost:
        rows.append(("COMMIT", esc(f"the connection was lost during COMMIT; asked afterwards, "
                                   f"the server showed: {r.commit_lost.upper()} "
                                   f"({r.commit_evidence or 'no evidence'})")))
    rows += [("Note", esc(note)) for note in r.notes]
    out = head + kv_table(rows)
    titles = tuple(s.title for s in r.steps)
    same = shown.get("|".join(titles)) if titles else None
    if same is not None:
        slowest = max(r.steps, key=lambda s: s.ms or 0)
        out += (f"<p>The same {len(r.steps)} steps as run {same}; the slowest took "
                f"{esc(ms_text(slowest.ms))} ({esc(slowest.title)}).</p>")
    elif r.steps:
        shown["|".join(titles)] = n
        body = "".join(f"<tr><td>{s.index}</td><td>{esc(s.title)}</td>"
                       f'<td align="right">{esc(ms_text(s.ms))}</td><td>{esc(s.status)}</td></tr>'
                       for s in r.steps)
        out += (f'{TABLE}<thead><tr><th width="5%">#</th><th>Step</th>'
                '<th width="12%">Duration</th><th width="10%">Status</th></tr></thead>'
                f"{body}</table>")
    if r.counts_before or r.counts_after:
        out += _counts(r)
    return out


def _counts(r: RunSection) -> str:
    before = list(r.counts_before.items())
    after = list(r.counts_after.items())
    rows = ""
    for i in range(max(len(before), len(after))):
        b = before[i] if i < len(before) else ("", "")
        a = after[i] if i < len(after) else ("", "")
        rows += (f"<tr><td>{esc(b[0])}</td><td align='right'>{esc(b[1])}</td>"
                 f"<td>{esc(a[0])}</td><td align='right'>{esc(a[1])}</td></tr>")
    return ('<table width="70%" border="1" cellspacing="0" cellpadding="3"><tr><th>Table '
            "before</th><th>Rows before</th><th>Table after</th><th>Rows after</th></tr>"
            f"{rows}</table>")


def _evidence(ev: dict[str, Any]) -> str:
    """A check's evidence in words (its query is in the appendix)."""
    rest = {k: v for k, v in ev.items() if k != "query"}
    if not rest:
        return ""
    text = plain(rest.get("result") if list(rest) == ["result"] else rest)
    if text == "none":
        return ""
    return f'<br><span class="small">Evidence: {esc(text)}</span>'


def checklist_html(m: ReportModel) -> str:
    auto = [c for c in m.checklist if c.kind == "automated"]
    manual = [c for c in m.checklist if c.kind == "manual"]
    out = "<h3>Automated checks</h3>"
    if not auto:
        out += '<p><span class="warn">No automated check was recorded in this run.</span></p>'
    else:
        rows = "".join(
            f"<tr><td>{status_html(c.status)}</td><td><b>{esc(c.title)}</b><br>{esc(c.detail)}"
            f'<br><span class="small">{esc(c.section)} · id {esc(c.id)}</span>'
            # A backup's evidence is its detail again: path, size, sha256.
            f"{'' if c.section == 'Backup' else _evidence(c.evidence)}</td></tr>" for c in auto)
        out += (f'{TABLE}<thead><tr><th width="16%">Status</th><th>Check, result and '
                f"evidence</th></tr></thead>{rows}</table>")
    out += "<h3>Application and frontend checks (ticked by the operator)</h3>"
    rows = "".join(
        f"<tr><td>{status_html(c.status)}</td><td><b>{esc(c.title)}</b>"
        + (f'<br><span class="small">{esc(c.section)}: {esc(c.how)}</span>' if c.how else
           f'<br><span class="small">{esc(c.section)}</span>')
        + f"</td><td>{esc(c.note) or '&nbsp;'}</td></tr>" for c in manual)
    out += (f'{TABLE}<thead><tr><th width="16%">Status</th><th width="53%">Item</th>'
            f"<th>Operator's note</th></tr></thead>{rows}</table>")
    return out


def others_html(m: ReportModel) -> str:
    out = ""
    if m.events:
        rows = "".join(f"<tr><td class='small'>{esc(format_ts(e.ts))}</td><td>{esc(e.text)}</td>"
                       "</tr>" for e in m.events)
        out += ('<h2>Other recorded events</h2>'
                f'{TABLE}<thead><tr><th width="20%">Time</th><th>Event</th></tr></thead>'
                f"{rows}</table>")
    if m.left_out:
        names = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(m.left_out.items()))
        out += (f"<p class='small'>{plural(sum(m.left_out.values()), 'record')} this version "
                f"of the report does not read ({esc(names)}) are left out; they are in the "
                f"journal <span class='mono'>{esc(m.journal_path)}</span>.</p>")
    return out


def appendix_html(m: ReportModel) -> str:
    parts = ['<h1 style="page-break-before: always">Appendix: the SQL</h1>'
             '<p class="small">Exactly what ran (or was rehearsed), as the journal recorded '
             "it.</p>"]
    seen: dict[str, int] = {}
    for n, r in enumerate(m.runs, 1):
        if not r.script:
            continue
        title = f"SQL of run {n} ({esc(r.kind)})"
        if r.script in seen:
            parts.append(f"<h3>{title}</h3><p>The same SQL as run {seen[r.script]}.</p>")
            continue
        seen[r.script] = n
        parts.append(f"<h2>{title}</h2><pre>{esc(r.script)}</pre>")
    if not seen:
        parts.append("<p>No SQL was run in this session.</p>")
    if m.down_script:
        parts.append(f"<h2>Revert SQL (for reference)</h2><pre>{esc(m.down_script)}</pre>")
    queries = [(c.title, c.evidence["query"]) for c in m.checklist
               if c.kind == "automated" and isinstance(c.evidence.get("query"), str)]
    if queries:
        parts.append("<h2>The queries behind the automated checks</h2>" + "".join(
            f"<h3>{esc(title)}</h3><pre>{esc(query.strip())}</pre>"
            for title, query in queries))
    return "".join(parts)




def proofs_html(proofs: list[dict[str, Any]]) -> str:
    out = []
    for p in proofs:
        rows = [("Backup", f'<span class="mono">{esc(p.get("path"))}</span>'),
                ("Outcome", f"{status_html(PASS if p.get('proven') else FAIL)} "
                            f"{esc(p.get('summary') or p.get('reason'))}"),
                ("Scratch copy", esc(f"{p.get('scratch_db')} ("
                                     + ("dropped" if p.get("dropped") else "NOT dropped")
                                     + ")")),
                ("Compared with", esc(p.get("compared_with"))),
                ("Timings", esc(", ".join(f"{k[:-2]} {v} s" for k, v in
                                          (p.get("timings") or {}).items())))]
        diffs = list(p.get("count_diffs") or []) + list(p.get("fingerprint_diffs") or [])
        if diffs:
            rows.append(("Differences", esc("; ".join(diffs[:12]))))
        rows += [("NOT VALID", esc(f"{k.get('name')} on {k.get('table')}: "
                                   f"{k.get('violating_rows')} row(s)"))
                 for k in p.get("not_valid") or []]
        out.append(kv_table(rows))
    return "<br>".join(out)


def restores_html(restores: list[dict[str, Any]]) -> str:
    out = []
    for r in restores:
        rows = [("Outcome", f"{status_html(PASS if r.get('ok') else FAIL)} "
                            + esc(f"{r.get('live_db')} is the restored copy; the previous one "
                                  f"is kept as {r.get('before_db')}" if r.get("ok")
                                  else r.get("error")))]
        if r.get("timescaledb"):
            rows.append(("TimescaleDB", "timescaledb_pre_restore() and "
                                        "timescaledb_post_restore() ran around pg_restore"))
        for k in r.get("not_valid") or []:
            rows.append((f"NOT VALID {esc(k.get('name'))}",
                         esc(f"on {k.get('table')} ({', '.join(k.get('columns') or [])} → "
                             f"{k.get('references')}): {k.get('violating_rows')} row(s) of the "
                             f"backup violate it. After cleaning them up: ")
                         + f'<span class="mono">{esc(k.get("validate_sql"))}</span>'))
        rows += [("Next", esc(step)) for step in r.get("next_steps") or []]
        out.append(kv_table(rows))
    return "<br>".join(out)


def redis_html(runs: list[dict[str, Any]]) -> str:
    """Each Redis migration of the run: where, which way, and per rule what changed."""
    out = []
    for r in runs:
        result = r.get("result") or {}
        way = "to the new names" if r.get("direction") == "up" else "back to the old names"
        ok = r.get("outcome") == "ok" and not result.get("conflicts")
        head = (f"<p><b>{esc(format_ts(str(r.get('ts', ''))))}</b>: {esc(r.get('target'))}, "
                f"{way} — {status_html(PASS if ok else FAIL)} {esc(r.get('outcome'))}"
                + (f": {esc(r.get('error'))}" if r.get("error") else "") + "</p>")
        rows = "".join(
            f"<tr><td class='mono'>{esc(d.get('rule'))}</td><td align='right'>"
            f"{esc(d.get('changed'))}</td><td align='right'>{esc(d.get('merged'))}</td>"
            f"<td align='right'>{esc(d.get('conflicts'))}</td><td class='small'>"
            f"{esc(', '.join(d.get('conflict_samples') or []))}</td></tr>"
            for d in result.get("rules") or [])
        out.append(head + '<table width="100%" border="1" cellspacing="0" cellpadding="3">'
                   "<tr><th>Rule</th><th>Keys changed</th><th>Merged</th><th>Conflicts</th>"
                   f"<th>Conflicting keys</th></tr>{rows}</table>")
    return "".join(out)

