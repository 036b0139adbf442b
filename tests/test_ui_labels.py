"""Labels a person wrote: every profile field's label and tooltip come from the declared
schema, no generated label is left, table headers are not cut at the default size, and a
check's evidence shows its SQL as it ran."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFormLayout, QHeaderView, QLabel, QTableWidget, QWidget
from pytestqt.qtbot import QtBot

from wizard.core import jobs, names, verify
from wizard.core.connection import PgSettings
from wizard.core.execute import RunOptions
from wizard.core.plan import UP
from wizard.core.profiles import SCHEMA, FieldSpec
from wizard.core.verify import Check
from wizard.ui.pages.migrate import MigratePage
from wizard.ui.pages.preflight import PreflightPage
from wizard.ui.pages.profile import ProfilePage
from wizard.ui.window import MigrationWizard

# What the form used to make from the keys: "App (s)top command", "Dbname", "Url", "Ca file".
GENERATED = re.compile(r"\(s\)\w|\b(Url|Dbname|Db|Ca|Sslmode|Sslrootcert|Username|Ref)\b|"
                       r"(?<!pg)_")


def generated(spec: FieldSpec) -> str:
    """The label the page once derived from the key."""
    words = spec.key.removeprefix("pg_").removeprefix("redis_").replace("_", " ")
    return words.replace(" s", " (s)").capitalize()


def test_every_field_declares_a_written_label() -> None:
    for spec in SCHEMA:
        assert spec.label, spec.key
        assert spec.label == spec.label.strip()
        assert not spec.label.endswith(":")
        assert not GENERATED.search(spec.label), (spec.key, spec.label)
        assert spec.description, spec.key
    labels = {s.key: s.label for s in SCHEMA}
    assert labels["app_stop_command"] == "Stop command"
    assert labels["app_start_command"] == "Start command"
    assert labels["pg_dbname"] == "Database"
    assert labels["redis_url"] == "Redis URL"
    assert labels["pg_sslrootcert"] == "CA certificate file"
    assert labels["change_ref"] == "Change reference"
    assert labels["reviewer"] == "Reviewer"
    # The generated ones that were wrong are all gone.
    wrong = {k: generated(s) for s in SCHEMA if GENERATED.search(generated(s))
             for k in [s.key]}
    assert {"app_stop_command", "pg_dbname", "redis_url", "redis_ca_file"} <= set(wrong)
    assert not set(wrong.values()) & set(labels.values())


def _form_label(page: QWidget, widget: QWidget) -> str | None:
    """The text of the label a form layout of `page` puts beside `widget`."""
    for form in page.findChildren(QFormLayout):
        label = form.labelForField(widget)
        if isinstance(label, QLabel):
            return label.text()
    return None


def test_each_editor_shows_its_label_and_its_description_as_tooltip(
        wizard_window: MigrationWizard) -> None:
    page = wizard_window.currentPage()
    assert isinstance(page, ProfilePage)
    shown = {lb.text() for lb in page.findChildren(QLabel)}
    for old in ("App (s)top command:", "App (s)tart command:", "Dbname:", "Url:", "Ca file:"):
        assert old not in shown
    for spec in SCHEMA:
        widget = page.editors[spec.key].widget
        assert widget.toolTip() == spec.description, spec.key
        assert widget.accessibleDescription() == spec.description, spec.key
        assert widget.accessibleName() == spec.label, spec.key
        if spec.key not in ("name", "ask_every_time"):  # the name row has its own mnemonic
            assert _form_label(page, widget) == f"{spec.label}:", spec.key
    assert _form_label(page, page.editors["name"].widget) == "Profile na&me:"
    for edit in page.passwords.values():
        assert edit.toolTip()
        assert "never in the profile file" in edit.toolTip()


# --- column headers fit at the window's default size -------------------------------------


def _cut_headers(table: QTableWidget) -> list[str]:
    """Headers whose section is narrower than their text needs (drawn cut off)."""
    header = table.horizontalHeader()
    cut = []
    for i in range(header.count()):
        item = table.horizontalHeaderItem(i)
        if item is not None and header.sectionSize(i) < header.sectionSizeHint(i):
            cut.append(f"{item.text()!r}: {header.sectionSize(i)} < {header.sectionSizeHint(i)}")
    return cut


def test_no_header_is_cut_on_the_preflight_page(wizard_window: MigrationWizard, qtbot: QtBot,
                                                open_session: Any, pg_db: PgSettings,
                                                tmp_path: Path) -> None:
    assert (wizard_window.width(), wizard_window.height()) == (1100, 780)
    with pg_db.connect(autocommit=True) as other:  # a session the Sessions tab lists
        other.execute("SET application_name = 'enerlink-backend'")
        other.execute("BEGIN")
        other.execute("SELECT 1")
        open_session(wizard_window, pg_db)
        page = wizard_window.start_at(PreflightPage)
        assert isinstance(page, PreflightPage)
        qtbot.waitUntil(lambda: page.result is not None and not page.busy, timeout=30_000)
        other.execute("ROLLBACK")
    assert page.sessions.rowCount() >= 1
    for tab, table in ((1, page.rows), (2, page.sessions)):
        page.tabs.setCurrentIndex(tab)

        def fits(t: QTableWidget = table) -> bool:
            return t.isVisible() and not _cut_headers(t)

        qtbot.waitUntil(fits, timeout=5_000)
        shot = wizard_window.grab()
        assert not shot.isNull()
        assert shot.save(str(tmp_path / f"preflight-tab{tab}.png"))
        assert all(not label[:1].islower() for label in _headers(table))
    assert "Transaction age (s)" in _headers(page.sessions)


def test_the_lock_wait_table_sizes_its_columns_to_their_headers(
        wizard_window: MigrationWizard) -> None:
    """Shown only while a lock is waited for: its headers fit the same way."""
    page = next(p for p in wizard_window.steps if isinstance(p, MigratePage))
    header = page.blockers.horizontalHeader()
    assert "Transaction age (s)" in _headers(page.blockers)
    last = header.count() - 1
    assert all(header.sectionResizeMode(i) == QHeaderView.ResizeMode.ResizeToContents
               for i in range(last))
    assert header.stretchLastSection()


def _headers(table: QTableWidget) -> list[str]:
    items = [table.horizontalHeaderItem(i) for i in range(table.columnCount())]
    return [item.text() if item is not None else "" for item in items]


# --- evidence shows the SQL as it ran ----------------------------------------------------

PLACEHOLDER = re.compile(r"%\(\w+\)s|%s\b")


def _queries(checks: list[Check]) -> dict[str, str]:
    return {c.id: str(c.evidence["query"]) for c in checks if "query" in c.evidence}


def test_check_evidence_holds_the_statements_with_their_parameters_bound(
        pg_db: PgSettings) -> None:
    _plan, rehearsal, _j = jobs.run(pg_db, UP, options=RunOptions(rehearse=True))
    assert rehearsal.ok, rehearsal.error
    _plan, result, _j = jobs.run(pg_db, UP)
    assert result.ok, result.error
    for checks in (rehearsal.checks, result.checks):  # inside the transaction, after commit
        queries = _queries(checks)
        assert {"table_renamed", "foreign_keys", "migration_row"} <= set(queries)
        for check_id, query in queries.items():
            assert not PLACEHOLDER.search(query), (check_id, query)
        assert "'public'" in queries["table_renamed"]
        assert names.MIGRATION_NAME in queries["migration_row"]
    with pg_db.connect() as conn:
        later = _queries(verify.catalog_checks(conn, verify.default_expectations()))
    assert not any(PLACEHOLDER.search(q) for q in later.values())
    assert pg_db.password
    assert not any(pg_db.password in q for q in (*later.values(), *_queries(result.checks)))


def test_bound_shows_literals_and_leaves_a_statement_without_parameters_alone(
        pg_db: PgSettings) -> None:
    with pg_db.connect() as conn:
        text = verify.bound(conn, "SELECT %(a)s, %(b)s", {"a": "it's", "b": [1, 2]})
        assert text.startswith("SELECT 'it''s', '{1,2}'")
        assert conn.execute(text).fetchone() == ("it's", [1, 2])  # it runs as it reads
        assert verify.bound(conn, "SELECT 1", None) == "SELECT 1"
