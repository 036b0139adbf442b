"""One way to show checks (pre-flight, migration result, verification): a tree with evidence."""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QHeaderView, QTreeWidget, QTreeWidgetItem

from wizard.core.report import MARK, redact
from wizard.core.verify import Check


def checks_tree(accessible_name: str) -> QTreeWidget:
    """Columns mark / check / result; a check's evidence rows expand under it."""
    tree = QTreeWidget()
    tree.setHeaderLabels(["", "Check", "Result"])
    tree.setAccessibleName(accessible_name)
    header = tree.header()
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
    return tree


def _evidence_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, default=str,
                                                           ensure_ascii=False)


def check_item(check: Check) -> QTreeWidgetItem:
    """Mark, title, detail; the evidence (query, result, redacted) as monospace children.

    Column 0 keeps the status and column 1 the check id (UserRole); a child's full
    evidence text is in column 2's UserRole.
    """
    mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    item = QTreeWidgetItem([MARK.get(check.status, "?"), check.title, check.detail])
    item.setToolTip(1, check.title)
    item.setToolTip(2, check.detail)
    item.setData(0, Qt.ItemDataRole.UserRole, check.status)
    item.setData(1, Qt.ItemDataRole.UserRole, check.id)
    item.setData(0, Qt.ItemDataRole.AccessibleTextRole, check.status)
    for key, value in redact(check.evidence).items():
        text = _evidence_text(value)
        child = QTreeWidgetItem(["", key, " ".join(text.split())[:300]])
        child.setFont(2, mono)
        child.setToolTip(2, text[:4000])
        child.setData(2, Qt.ItemDataRole.UserRole, text)
        item.addChild(child)
    return item
