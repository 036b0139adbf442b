"""The run report as HTML for QTextDocument (and any browser): the page and its first
sections (the change, sign-off, rollback point, outcome per step). Every value is escaped."""

from __future__ import annotations

from wizard.core.report_details import (
    appendix_html,
    checklist_html,
    others_html,
    proofs_html,
    redis_html,
    restores_html,
    run_html,
)
from wizard.core.report_markup import CSS, MARK, TABLE, esc, kv_table, status_html
from wizard.core.report_model import FAIL, PASS, WARN, ReportModel, format_ts, size_text


def _not_given(what: str) -> str:
    return f'<span class="warn">not given</span> <span class="small">({esc(what)})</span>'


def _change(m: ReportModel) -> str:
    t = m.target
    ref = (f'<span class="ref">{esc(m.change_ref)}</span>' if m.change_ref else
           _not_given("enerlink-migrate … --change REF, or the profile's change reference"))
    where = (f"<b>{esc(t.get('dbname', '?'))}</b> on {esc(t.get('host', '?'))}:"
             f"{esc(t.get('port', '?'))} as role {esc(t.get('user', '?'))}"
             + (f" <span class='small'>(PostgreSQL {esc(m.server_version)})</span>"
                if m.server_version else ""))
    length = f" ({m.duration_s:.1f} s)" if m.duration_s is not None else ""
    if m.downtime_s is not None:
        down = (f"<b>{esc(_duration(m.downtime_s))}</b>: stopped {esc(format_ts(m.app_stopped))}, "
                f"started again {esc(format_ts(m.app_started))}")
    elif m.app_stopped:
        down = (f'<span class="warn">stopped {esc(format_ts(m.app_stopped))}; no start was '
                "recorded in this run</span>")
    else:
        down = "no stop or start command was recorded in this run"
    state = esc(m.state_before or "—") + (f" → {esc(m.state_after)}" if m.state_after else "")
    rows = [
        ("Change reference", ref),
        ("Database", where),
        ("Outcome", f'<span class="{PASS if m.outcome_ok else FAIL}">{esc(m.outcome)}</span>'),
        ("Window start", esc(format_ts(m.started))),
        ("Window end", esc(format_ts(m.finished) + length)),
        ("Application downtime", down),
        ("Database state", state + (f" <span class='small'>(before: "
                                    f"{esc(m.state_before_explanation)})</span>"
                                    if m.state_before_explanation else "")),
        ("Operator", (f"<b>{esc(m.operator)}</b>" if m.operator else
                      _not_given("the name typed on the Verify page, or the profile's"))
         + f" <span class='small'>(OS account {esc(m.os_user)} on {esc(m.client_host)})</span>"),
        ("Reviewer", f"<b>{esc(m.reviewer)}</b>" if m.reviewer else
         _not_given("--reviewer NAME, or the profile's reviewer")),
        ("Run journal", f'<span class="mono">{esc(m.journal_path or m.run)}</span>'),
    ]
    return "<h2>Change</h2>" + kv_table(rows, 24)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _sign_off(m: ReportModel) -> str:
    blank = "&nbsp;<br>&nbsp;<br>&nbsp;"  # room to write by hand
    rows = "".join(f"<tr><td><b>{role}</b></td><td>{name}</td><td>{blank}</td>"
                   f"<td>{blank}</td></tr>"
                   for role, name in (("Operator", esc(m.operator) or "&nbsp;"),
                                      ("Reviewer", esc(m.reviewer) or "&nbsp;")))
    return ("<h3>Sign-off</h3><p>By signing, the operator confirms the steps and checks in "
            "this report were made as recorded; the reviewer confirms the evidence was read "
            "and the rollback point below exists.</p>"
            '<table width="100%" border="1" cellspacing="0" cellpadding="6"><tr>'
            '<th width="14%">Role</th><th width="30%">Name</th><th width="18%">Date</th>'
            f"<th>Signature</th></tr>{rows}</table>")


PROOF_STATUS = {"proven": PASS, "failed": FAIL, "not proven": WARN}


def _rollback(m: ReportModel) -> str:
    out = "<h2>Rollback point</h2>"
    rb = m.rollback
    if rb is None:
        if m.skipped_backup:
            s = m.skipped_backup
            return out + (f'<p><span class="fail">✘ NO ROLLBACK POINT</span>: the backup was '
                          f"skipped, {esc(s.get('dbname'))}'s name typed to go on without one "
                          f"({esc(s.get('how'))}{', ' + esc(s.get('who')) if s.get('who') else ''}"
                          f", {esc(format_ts(str(s.get('ts', ''))))}).</p>")
        done = [r for r in m.restores if r.get("ok")]
        if done:
            r = done[-1]
            return out + kv_table([
                ("The way back", f"<b>{esc(r.get('before_db'))}</b>: the database this "
                                 f"restore replaced, kept (rename it back to "
                                 f"{esc(r.get('live_db'))} to undo the restore)"),
                ("Restored from", f'<span class="mono">{esc(r.get("backup"))}</span>'),
                ("sha256", f'<span class="mono">{esc(r.get("backup_sha256") or "—")}</span>')],
                24)
        if m.runs and all(r.direction == "down" for r in m.runs):
            return out + ("<p>No backup was taken in this run: a revert renames the schema "
                          "back in one transaction, and the migration can be run again.</p>")
        return out + ('<p><span class="warn">No backup was recorded in this run.</span> Record '
                      "where the backup of this database is before the change is signed "
                      "off.</p>")
    status = PROOF_STATUS.get(rb.proof, WARN)
    rows = [("File", f'<span class="mono"><b>{esc(rb.path)}</b></span>'),
            ("Size", esc(size_text(rb.size_bytes))),
            ("sha256", f'<span class="mono">{esc(rb.sha256)}</span>'),
            ("Verified", esc(format_ts(rb.taken))),
            ("Proof", f"{status_html(status)} <b>{esc(rb.proof)}</b>: {esc(rb.proof_summary)}"),
            ("Why this one", esc(rb.why))]
    d = rb.details
    if d.get("format"):
        rows.insert(2, ("Format", esc(f"{d.get('format')}, {d.get('toc_entries', '?')} entries "
                                      f"(pg_restore --list), compression "
                                      f"{d.get('compression', '?')}")))
    snapshot = d.get("snapshot")
    if isinstance(snapshot, dict) and isinstance(snapshot.get("counts"), dict):
        counts = snapshot["counts"]
        rows.append(("Counted in pg_dump's snapshot",
                     esc(f"{sum(int(v) for v in counts.values())} rows in {len(counts)} "
                         "tables, schema fingerprint "
                         f"{str(snapshot.get('fingerprint_sha256'))[:16]}…")))
    body = "".join(f'<tr><td class="k rb" width="24%">{esc(k)}</td><td class="rb">{v}</td></tr>'
                   for k, v in rows)
    out += ('<table width="100%" border="2" cellspacing="0" cellpadding="4"><tr>'
            '<th colspan="2">ROLLBACK POINT: restore this file to undo the change '
            "(enerlink-migrate restore FILE, or the wizard's Restore)</th></tr>"
            f"{body}</table>")
    also = [b for b in m.backups if str(b.get("path")) != rb.path]
    if also:
        proofs = {str(p.get("path")): p for p in m.proofs}
        rows_html = ""
        for b in also:
            p = proofs.get(str(b.get("path")))
            proof = ("not proven" if p is None else "proven" if p.get("proven")
                     else "proof FAILED")
            rows_html += (f"<tr><td class='small'>{esc(format_ts(str(b.get('ts', ''))))}</td>"
                          f"<td class='mono'>{esc(b.get('path'))}</td>"
                          f"<td>{esc(size_text(b.get('size_bytes')))}</td>"
                          f"<td>{status_html(PASS if b.get('verified') else FAIL)}, "
                          f"{esc(proof)}</td></tr>")
        out += ("<h3>Also taken in this run (not the rollback point)</h3>"
                f'{TABLE}<thead><tr><th width="17%">Taken</th><th>File</th>'
                '<th width="17%">Size</th><th width="19%">Verified, proof</th></tr></thead>'
                f"{rows_html}</table>")
    return out


def _steps_html(m: ReportModel) -> str:
    rows = ""
    for s in m.steps:
        lines = "<br>".join(
            (f'<span class="small">{esc(format_ts(line.ts)[11:19])}</span> ' if line.ts else "")
            + (f"{MARK.get(line.status, '')} " if len(s.lines) > 1 else "") + esc(line.text)
            for line in s.lines) or '<span class="small">not run in this session</span>'
        rows += (f"<tr><td>{status_html(s.status)}</td><td><b>{esc(s.step)}</b></td>"
                 f"<td>{lines}</td></tr>")
    return ("<h2>Outcome per step</h2>"
            f'{TABLE}<thead><tr><th width="16%">Status</th><th width="17%">Step</th>'
            "<th>What happened (times UTC)</th></tr></thead>"
            f"{rows}</table>")




def render_html(m: ReportModel) -> str:
    """The report as HTML for QTextDocument (and any browser). Every value is escaped."""
    db = esc(m.target.get("dbname", "?"))
    ref = f" — {esc(m.change_ref)}" if m.change_ref else ""
    parts = [f"<html><head><meta charset='utf-8'><title>EnerLink migration report — {db}{ref}"
             f"</title><style>{CSS}</style></head><body>",
             "<h1>EnerLink schema migration: prosumer → user</h1>",
             f'<p class="small">Change report for database {db}, generated by enerlink-migrate '
             "from the run journal.</p>", _change(m), _sign_off(m), _rollback(m),
             _steps_html(m)]
    if m.text_references:
        parts.append("<h3>Stored text that still names prosumer (warnings)</h3><ul>" + "".join(
            f"<li>{esc(r)}</li>" for r in m.text_references) + "</ul>")
    if m.runs:
        shown: dict[str, int] = {}
        parts += ["<h2>Migration runs</h2>"] + [run_html(n, r, shown)
                                               for n, r in enumerate(m.runs, 1)]
    if any(r.kind == "migration" and r.ok for r in m.runs):
        parts.append("<p><b>Revert</b> with the wizard or <span class='mono'>enerlink-migrate "
                     "revert</span>, not <span class='mono'>npm run migration:revert</span>: "
                     "the upstream down() cannot succeed on this schema.</p>")
    if m.problems:
        rows = "".join(f"<tr><td class='small'>{esc(format_ts(p['ts']))}</td>"
                       f"<td>{status_html(FAIL if p['level'] == 'error' else WARN)}</td>"
                       f"<td>{esc(p['message'])}</td></tr>" for p in m.problems)
        parts.append(f"<h3>Warnings and errors from the log</h3>{TABLE}{rows}</table>")
    if m.proofs:
        parts += ["<h2>Proof of the backup</h2>", proofs_html(m.proofs)]
    if m.restores:
        parts += ["<h2>Restore</h2>", restores_html(m.restores)]
    if m.redis:
        parts += ["<h2>Redis data</h2>", redis_html(m.redis)]
    parts += ["<h2>Checklist</h2>", checklist_html(m), others_html(m), appendix_html(m),
              "</body></html>"]
    return "".join(parts)

