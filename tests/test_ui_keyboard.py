"""Keyboard use: on every page each mnemonic is unique (with QWizard's own), and every
button can be reached with Tab."""

from __future__ import annotations

import re
from collections import defaultdict

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QGroupBox, QLabel, QTabWidget, QWizard

from wizard.ui.window import MigrationWizard

WIZARD_BUTTONS = (QWizard.WizardButton.NextButton, QWizard.WizardButton.BackButton,
                  QWizard.WizardButton.CancelButton, QWizard.WizardButton.FinishButton)


def _mnemonic(text: str) -> str | None:
    found = re.search(r"&(?!&)(.)", text or "")
    return found.group(1).lower() if found else None


def test_mnemonics_are_unique_on_every_page(wizard_window: MigrationWizard) -> None:
    shared = [wizard_window.buttonText(b) for b in WIZARD_BUTTONS]
    for page in wizard_window.steps:
        texts = [*shared, *(b.text() for b in page.findChildren(QAbstractButton)),
                 *(lb.text() for lb in page.findChildren(QLabel) if lb.buddy() is not None),
                 *(g.title() for g in page.findChildren(QGroupBox))]
        for tabs in page.findChildren(QTabWidget):
            texts += [tabs.tabText(i) for i in range(tabs.count())]
        keys: dict[str, list[str]] = defaultdict(list)
        for text in texts:
            key = _mnemonic(text)
            if key:
                keys[key].append(text)
        clashes = {k: v for k, v in keys.items() if len(v) > 1}
        assert clashes == {}, f"{type(page).__name__}: {clashes}"


def test_every_button_takes_tab_focus(wizard_window: MigrationWizard) -> None:
    for page in wizard_window.steps:
        for button in page.findChildren(QAbstractButton):
            if button.text():
                assert button.focusPolicy() & Qt.FocusPolicy.TabFocus, \
                    f"{type(page).__name__}: {button.text()!r} cannot be reached with Tab"
