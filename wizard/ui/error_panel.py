"""What went wrong on a page (message, failed step, what to do), and the last-resort hook."""

from __future__ import annotations

import html
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QEvent, Qt, QThread
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QApplication,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from wizard.core.journal import write_traceback
from wizard.ui.log_view import is_dark

ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], None]


class ErrorPanel(QFrame):
    """Shown on a page when its job failed; hidden when cleared."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("errorPanel")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self._dark: bool | None = None
        self.title = QLabel("<b>This step failed</b>", self)
        self.message = self._field()
        self.step = self._field()
        self.action = self._field()
        # No mnemonic: each letter of it is taken on some page (it stays a Tab stop).
        self.copy_button = QPushButton("Copy details", self)
        self.copy_button.clicked.connect(self.copy_details)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("What happened:", self.message)
        form.addRow("Failed step:", self.step)
        form.addRow("What to do:", self.action)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(form)
        self._restyle()
        self.hide()

    def _field(self) -> QLabel:
        label = QLabel(self)
        label.setWordWrap(True)
        label.setTextFormat(Qt.TextFormat.PlainText)  # error text is data, never markup
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                      | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        return label

    def _restyle(self) -> None:
        dark = is_dark(self.palette())
        if dark == self._dark:
            return  # setting a style sheet changes the palette again: stop there
        self._dark = dark
        border, back = ("#ff8a80", "#3b1f1f") if dark else ("#b00020", "#fdecea")
        self.setStyleSheet(f"QFrame#errorPanel {{ border: 1px solid {border}; "
                           f"border-radius: 4px; background: {back}; }}")

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self._restyle()
        super().changeEvent(event)

    def show_error(self, message: str, step: str = "", action: str = "",
                   title: str = "This step failed") -> None:
        self.title.setText(f"<b>{html.escape(title)}</b>")
        self.message.setText(message)
        self.step.setText(step or "—")
        self.action.setText(action or "Read the log above, fix the cause, then run the step "
                            "again.")
        self.show()

    def clear(self) -> None:
        for label in (self.message, self.step, self.action):
            label.clear()
        self.hide()

    def details(self) -> str:
        return (f"What happened: {self.message.text()}\nFailed step: {self.step.text()}\n"
                f"What to do: {self.action.text()}\n")

    def copy_details(self) -> None:
        QGuiApplication.clipboard().setText(self.details())


class ErrorHook:
    """sys.excepthook for the GUI: the traceback to the log file, then a dialog."""

    def __init__(self, log_file: Path, parent: QWidget | None = None) -> None:
        self.log_file = Path(log_file)
        self.parent = parent
        self.previous: ExceptHook = sys.excepthook
        self.boxes: list[QMessageBox] = []  # dialogs being shown (kept alive here)

    def __call__(self, kind: type[BaseException], exc: BaseException,
                 tb: TracebackType | None) -> None:
        text = "".join(traceback.format_exception(kind, exc, tb))
        try:
            write_traceback(self.log_file, text)
        except OSError as err:
            print(f"cannot write {self.log_file}: {err}", file=sys.stderr)
        print(text, file=sys.stderr)
        app = QApplication.instance()
        in_gui = (app is not None and QThread.currentThread() == app.thread()
                  and threading.current_thread() is threading.main_thread())
        if in_gui and not issubclass(kind, KeyboardInterrupt):
            self._dialog(kind, exc, text)

    def _dialog(self, kind: type[BaseException], exc: BaseException, text: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Critical, "Unexpected error",
                          str(exc).strip() or kind.__name__, QMessageBox.StandardButton.Close,
                          self.parent)
        box.setInformativeText(f"The wizard hit an error it did not expect; the details are "
                               f"in {self.log_file}. Check the database's state (Pre-flight "
                               f"page or `enerlink-migrate inspect`) before going on.")
        box.setDetailedText(text)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _result: self.boxes.remove(box))
        self.boxes.append(box)
        box.open()  # not exec(): no nested event loop inside a hook

    def uninstall(self) -> None:
        if sys.excepthook is self:
            sys.excepthook = self.previous


def install_excepthook(log_file: Path, parent: QWidget | None = None) -> ErrorHook:
    """Uncaught exceptions in the GUI thread: traceback to `log_file`, then a dialog.

    `.uninstall()` on the result puts the previous hook back.
    """
    hook = ErrorHook(log_file, parent)
    sys.excepthook = hook
    return hook
