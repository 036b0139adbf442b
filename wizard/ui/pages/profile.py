"""Page 1: choose or edit a profile, test PostgreSQL and Redis, then start the run."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QPaintEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from wizard.core import profiles, secrets
from wizard.core.connection import check_connection as check_pg
from wizard.core.profiles import SCHEMA, FieldSpec, Profile, ProfileError
from wizard.core.redis_conn import RedisSettingsError
from wizard.core.redis_conn import check_connection as check_redis
from wizard.core.session import WizardSession
from wizard.ui.pages.base import StepPage

# Which tab each declared field goes on; the form itself is built from the schema.
# Mnemonics avoid QWizard's own (&Next, &Back) and the log's (&Copy, Sa&ve).
# The first matching prefix wins: pg_dump_path before the other pg_ fields.
TABS = (("Bac&kup", "pg_dump_path"), ("Post&greSQL", "pg_"), ("R&edis", "redis_"),
        ("Bac&kup", "backup_"), ("Mig&ration", "lock_timeout_s"), ("Mig&ration", "retries"),
        ("&Application", "app_"), ("&Application", "smoke_"), ("Mig&ration", "operator"),
        ("Mig&ration", "reviewer"), ("Mig&ration", "change_ref"))
PASSWORDS = (("postgres", "PostgreSQL password"), ("redis", "Redis password"),
             ("smoke", "Smoke-check password"))


def _label(spec: FieldSpec) -> str:
    """The form's label: the one the schema declares for people, never made from the key."""
    return f"{spec.label}:"


class FieldEditor:
    """One widget per declared field, converting to and from the profile's value."""

    def __init__(self, spec: FieldSpec) -> None:
        self.spec = spec
        self.widget: QWidget
        if spec.type is bool:
            self.widget = QCheckBox()
        elif spec.choices:
            box = QComboBox()
            if spec.optional:
                box.addItem("(default)", None)
            for choice in spec.choices:
                box.addItem(choice, choice)
            self.widget = box
        else:
            edit = QLineEdit()
            if spec.default is not None:
                edit.setPlaceholderText(str(spec.default))
            self.widget = edit
        # The schema's description is what the CLI's --help says: the tooltip and what a
        # screen reader reads after the label.
        self.widget.setToolTip(spec.description)
        self.widget.setObjectName(spec.key)
        self.widget.setAccessibleName(spec.label)
        self.widget.setAccessibleDescription(spec.description)

    def set(self, value: Any) -> None:
        if isinstance(self.widget, QCheckBox):
            self.widget.setChecked(bool(value))
        elif isinstance(self.widget, QComboBox):
            index = self.widget.findData(value)
            self.widget.setCurrentIndex(max(index, 0))
        elif isinstance(self.widget, QLineEdit):
            self.widget.setText("" if value is None else str(value))

    def get(self) -> Any:
        if isinstance(self.widget, QCheckBox):
            return self.widget.isChecked()
        if isinstance(self.widget, QComboBox):
            return self.widget.currentData()
        text = self.widget.text().strip() if isinstance(self.widget, QLineEdit) else ""
        if not text:
            return None if self.spec.optional else self.spec.default
        if self.spec.type is int:
            try:
                return int(text)
            except ValueError:
                raise ProfileError(f"{self.spec.key} must be a whole number, not {text!r}")\
                    from None
        if self.spec.type is float:
            try:
                return float(text)
            except ValueError:
                raise ProfileError(f"{self.spec.key} must be a number, not {text!r}") from None
        return text


class ProfilePage(StepPage):
    """Connection details come from a saved profile; passwords from the keyring or typed."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Connect", "Choose a saved profile or fill in the connection, test "
                         "it, then press Next. Passwords are kept in the system keyring, "
                         "never in the profile file.", parent)
        self.tested: dict[str, Any] | None = None  # the form as it was when the test passed
        self.list = QListWidget()
        self.list.setAccessibleName("saved profiles")
        self.list.currentTextChanged.connect(self.load_profile)
        new, self.save_button, delete = (QPushButton("Ne&w"), QPushButton("&Save"),
                                         QPushButton("&Delete…"))
        new.clicked.connect(self.new_profile)
        self.save_button.clicked.connect(self.save_profile)
        delete.clicked.connect(self.delete_profile)
        restore = QPushButton("Rest&ore a backup…")
        restore.setToolTip("Restore a database from a backup without going through the steps")
        restore.clicked.connect(lambda: self.shell.open_restore())
        previous = QPushButton("Open a previous r&un…")
        previous.setToolTip("See the log and checklist of an earlier run, export its PDF")
        previous.clicked.connect(lambda: self.shell.open_previous_run())
        left = QVBoxLayout()
        saved = QLabel("Saved &profiles:")
        saved.setBuddy(self.list)
        left.addWidget(saved)
        left.addWidget(self.list, 1)
        row = QHBoxLayout()
        for button in (new, self.save_button, delete):
            row.addWidget(button)
        left.addLayout(row)
        left.addWidget(restore)
        left.addWidget(previous)

        self.editors = {spec.key: FieldEditor(spec) for spec in SCHEMA}
        self.tabs = QTabWidget()
        forms: dict[str, QFormLayout] = {}
        for title, _prefix in TABS:
            if title not in forms:
                sheet = QWidget()
                forms[title] = QFormLayout(sheet)
                self.tabs.addTab(sheet, title)
        general = QFormLayout()
        name = self.editors["name"].widget
        general.addRow("Profile na&me:", name)
        for spec in SCHEMA:
            if spec.key in ("name", "ask_every_time"):
                continue
            tab_title = next(t for t, prefix in TABS if spec.key.startswith(prefix))
            forms[tab_title].addRow(_label(spec), self.editors[spec.key].widget)
        self.passwords: dict[str, QLineEdit] = {}
        for what, label in PASSWORDS:
            edit = QLineEdit()
            edit.setEchoMode(QLineEdit.EchoMode.Password)
            edit.setObjectName(f"password-{what}")
            edit.setAccessibleName(label)
            edit.setToolTip(f"{label}: kept in the system keyring when “Keep passwords in "
                            "the keyring” is ticked, never in the profile file")
            edit.setAccessibleDescription(edit.toolTip())
            self.passwords[what] = edit
        forms["Post&greSQL"].addRow("Password:", self.passwords["postgres"])
        forms["R&edis"].addRow("Password:", self.passwords["redis"])
        forms["&Application"].addRow("Smoke password:", self.passwords["smoke"])
        # The keyring is asked once the window has painted (finding its backend takes
        # 60-100 ms, more on a desktop whose Secret Service is slow to answer), or
        # before then when a password is stored.
        self._keyring_known = False
        self.remember = QCheckBox("Keep passwords in the ke&yring")
        self.remember.setEnabled(False)
        self.keyring_note = QLabel("Asking the system keyring…")
        self.keyring_note.setWordWrap(True)
        self.keyring_note.setTextFormat(Qt.TextFormat.PlainText)

        self.test_pg_button = QPushButton("&Test PostgreSQL")
        self.test_pg_button.clicked.connect(self.test_postgres)
        self.test_redis_button = QPushButton("Test Red&is")
        self.test_redis_button.clicked.connect(self.test_redis)
        self.pg_status, self.redis_status = QLabel("not tested"), QLabel("not tested")
        for status_label in (self.pg_status, self.redis_status):
            status_label.setWordWrap(True)
            status_label.setTextFormat(Qt.TextFormat.PlainText)
            status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        tests = QGridLayout()
        tests.addWidget(self.test_pg_button, 0, 0)
        tests.addWidget(self.pg_status, 0, 1)
        tests.addWidget(self.test_redis_button, 1, 0)
        tests.addWidget(self.redis_status, 1, 1)
        tests.setColumnStretch(1, 1)

        right = QVBoxLayout()
        right.addLayout(general)
        right.addWidget(self.tabs, 1)
        right.addWidget(self.remember)
        right.addWidget(self.keyring_note)
        box = QGroupBox("Connection tests")
        box.setLayout(tests)
        right.addWidget(box)
        columns = QHBoxLayout()
        columns.addLayout(left, 1)
        columns.addLayout(right, 3)
        self.body.addLayout(columns)
        for editor in self.editors.values():
            self._on_change(editor.widget, self._form_changed)
        for edit in self.passwords.values():
            edit.textChanged.connect(self._form_changed)
        self.refresh_list()

    @staticmethod
    def _on_change(widget: QWidget, slot: Any) -> None:
        if isinstance(widget, QLineEdit):
            widget.textChanged.connect(slot)
        elif isinstance(widget, QComboBox):
            widget.currentIndexChanged.connect(slot)
        elif isinstance(widget, QCheckBox):
            widget.toggled.connect(slot)

    # -- profiles ---------------------------------------------------------------------------

    def refresh_list(self, select: str | None = None) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        self.list.addItems(profiles.list_profiles())
        self.list.blockSignals(False)
        if select is not None:
            matches = self.list.findItems(select, Qt.MatchFlag.MatchExactly)
            if matches:
                self.list.setCurrentItem(matches[0])

    def new_profile(self) -> None:
        self.list.clearSelection()
        for editor in self.editors.values():
            editor.set(editor.spec.default)
        for edit in self.passwords.values():
            edit.clear()
        self.editors["name"].widget.setFocus()

    def load_profile(self, name: str) -> None:
        if not name:
            return
        self.check_keyring()  # before its passwords are read, so a failure's note stays
        try:
            profile = profiles.load(name)
        except ProfileError as exc:
            self.show_error(str(exc), "Loading the profile", "Fix or remove the file named "
                            "in the message.")
            return
        self.errors.clear()
        for key, editor in self.editors.items():
            editor.set(getattr(profile, key))
        note = ""
        for what, edit in self.passwords.items():
            try:
                stored = None if profile.ask_every_time else secrets.get(name, what)
            except secrets.SecretsUnavailable as exc:
                stored, note = None, str(exc)
            edit.setText(stored or "")
        if note:
            self.keyring_note.setText(note)
        self.log.append("info", f"profile {name} loaded")

    def profile_from_form(self) -> Profile:
        values = {key: editor.get() for key, editor in self.editors.items()}
        if not values.get("name"):
            raise ProfileError("give the profile a name (it is how you pick it next time)")
        return Profile(**values)

    def save_profile(self) -> Profile | None:
        try:
            profile = self.profile_from_form()
            path = profiles.save(profile)
        except ProfileError as exc:
            self.show_error(str(exc), "Saving the profile", "Correct the field named above.")
            return None
        stored = self._store_passwords(profile)
        self.log.append("info", f"profile {profile.name} saved to {path}" +
                        (f"; {stored}" if stored else ""))
        self.refresh_list(select=profile.name)
        return profile

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if not self._keyring_known:
            QTimer.singleShot(0, self.check_keyring)

    def check_keyring(self) -> None:
        """Whether passwords can be kept: the keyring's backend, said under the checkbox."""
        if self._keyring_known:
            return
        self._keyring_known = True
        status = secrets.backend_status()
        self.remember.setChecked(status.usable)
        self.remember.setEnabled(status.usable)
        self.keyring_note.setText(status.message)

    def _store_passwords(self, profile: Profile) -> str:
        self.check_keyring()
        if profile.ask_every_time or not self.remember.isChecked():
            return "passwords not stored (asked every time)"
        kept = []
        for what, edit in self.passwords.items():
            if edit.text():
                try:
                    secrets.set(profile.name, what, edit.text())
                except secrets.SecretsUnavailable as exc:
                    self.keyring_note.setText(str(exc))
                    return str(exc)
                kept.append(what)
        return f"{', '.join(kept)} password(s) kept in the keyring" if kept else ""

    def delete_profile(self) -> None:
        item = self.list.currentItem()
        if item is None:
            return
        name = item.text()
        answer = QMessageBox.question(self, "Delete profile",
                                      f"Delete profile {name!r} and its stored passwords?")
        if answer != QMessageBox.StandardButton.Yes:
            return
        warnings = profiles.remove(name)
        for warning in warnings:
            self.log.append("warn", warning)
        self.log.append("info", f"profile {name} deleted")
        self.refresh_list()
        self.new_profile()

    # -- tests ------------------------------------------------------------------------------

    def _form_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {k: e.get() for k, e in self.editors.items()
                                 if k.startswith("pg_")}
        state["pw"] = hash(self.passwords["postgres"].text())
        return state

    def _form_changed(self) -> None:
        try:
            changed = self.tested is not None and self._form_state() != self.tested
        except ProfileError:
            changed = True
        if changed:
            self.tested = None
            self.pg_status.setText("changed since the test: test again")
            self.set_valid(False)

    def session_from_form(self) -> WizardSession:
        profile = self.profile_from_form() if self.editors["name"].get() else Profile(
            **{**{k: e.get() for k, e in self.editors.items()}, "name": "unsaved"})
        return WizardSession.from_profile(
            profile, self.passwords["postgres"].text() or None,
            self.passwords["redis"].text() or None, self.passwords["smoke"].text() or None)

    def test_postgres(self) -> None:
        try:
            session = self.session_from_form()
            state = self._form_state()
        except (ProfileError, RedisSettingsError) as exc:
            self.show_error(str(exc), "Reading the form", "Correct the field named above.")
            return
        self.pg_status.setText("testing…")

        def done(text: str) -> None:
            self.pg_status.setText(f"✔ {text}")
            self.log.append("info", text)
            self.tested = state
            self.set_valid(True)

        def failed(message: str) -> None:
            self.pg_status.setText(f"✘ {message}")
            self.tested = None
            self.set_valid(False)

        self.run_job("Testing PostgreSQL", check_pg, session.pg, on_done=done,
                     on_failed=failed, advice="Correct host, port, database, user or "
                     "password, then test again.")

    def test_redis(self) -> None:
        try:
            session = self.session_from_form()
        except (ProfileError, RedisSettingsError) as exc:
            self.show_error(str(exc), "Reading the form", "Correct the Redis URL.")
            return
        if session.redis is None:
            self.redis_status.setText("no Redis URL in this profile: the cache step will "
                                      "be skipped")
            return
        self.redis_status.setText("testing…")
        self.run_job("Testing Redis", check_redis, session.redis,
                     on_done=self._redis_ok,
                     on_failed=lambda message: self.redis_status.setText(f"✘ {message}"),
                     advice="Correct the Redis URL, user, db or password, then test again. "
                     "The database steps do not depend on it.")

    def _redis_ok(self, text: str) -> None:
        self.redis_status.setText(f"✔ {text}")
        self.log.append("info", text)

    # -- leaving the page -------------------------------------------------------------------

    def validatePage(self) -> bool:
        try:
            if self.editors["name"].get():
                profile = self.save_profile()
                if profile is None:
                    return False
            self.shell.set_session(self.session_from_form())
        except (ProfileError, RedisSettingsError) as exc:
            self.show_error(str(exc), "Starting the run", "Correct the field named above.")
            return False
        return True

