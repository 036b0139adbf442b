"""Labels a person wrote: every profile field's label and tooltip come from the declared
schema; no generated label is left."""

from __future__ import annotations

import re

from PySide6.QtWidgets import QFormLayout, QLabel, QWidget

from wizard.core.profiles import SCHEMA, FieldSpec
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
