"""Typed confirmation: destructive actions need the database name typed back."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)


class TypedConfirmDialog(QDialog):
    """OK is enabled only once the operator has typed `expected` exactly."""

    def __init__(self, parent: QWidget | None, title: str, consequence: str,
                 expected: str, action: str) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.expected = expected
        text = QLabel(consequence)
        text.setWordWrap(True)
        prompt = QLabel(f"Type the database name <b>{_escape(expected)}</b> to confirm:")
        self.entry = QLineEdit()
        self.entry.setObjectName("confirm-entry")
        self.entry.setAccessibleName("database name, typed back")
        prompt.setBuddy(self.entry)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.ok = self.buttons.addButton(action, QDialogButtonBox.ButtonRole.AcceptRole)
        self.ok.setEnabled(False)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.entry.textChanged.connect(lambda t: self.ok.setEnabled(t == self.expected))
        layout = QVBoxLayout(self)
        for widget in (text, prompt, self.entry, self.buttons):
            layout.addWidget(widget)
        self.setMinimumWidth(460)

    def typed(self) -> str:
        return self.entry.text()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def confirm_typed(parent: QWidget | None, title: str, consequence: str, expected: str,
                  action: str) -> str | None:
    """Ask; returns what was typed (equal to `expected`) or None when cancelled."""
    dialog = TypedConfirmDialog(parent, title, consequence, expected, action)
    if dialog.exec() == QDialog.DialogCode.Accepted and dialog.typed() == expected:
        return dialog.typed()
    return None
