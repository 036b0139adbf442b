"""The one door to the OS keyring: profile passwords in, never a plaintext fallback."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wizard.core.lazy import lazy_module

if TYPE_CHECKING:
    import keyring
    import keyring.errors
else:  # keyring and its backends take ~0.1 s: loaded when a password is first asked for
    keyring = lazy_module("keyring")

SERVICE = "enerlink-migrate"
WHATS = ("postgres", "redis", "smoke")
ASK_EVERY_TIME = "passwords will be asked every time; nothing is stored in plaintext"


def _keyring_errors() -> tuple[type[Exception], ...]:
    """The errors a backend raises when it exists but cannot serve us right now."""
    from keyring import errors
    return (errors.NoKeyringError, errors.KeyringLocked, errors.PasswordSetError,
            errors.InitError)


class SecretsUnavailable(RuntimeError):
    """The keyring cannot be used; the message is meant to be shown to the DBA as is."""


@dataclass(frozen=True)
class BackendStatus:
    usable: bool
    name: str
    message: str


def _name(backend: Any) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_plaintext(backend: Any) -> bool:
    # keyrings.alt's file backends write passwords to a file readable by anything running as
    # the user (Plaintext) or guarded by a second password we would have to ask for anyway.
    module = type(backend).__module__
    return module.startswith("keyrings.alt.file") or "plaintext" in type(backend).__name__.lower()


def _priority(backend: Any) -> float:
    return float(type(backend).priority)


def _unusable_reason(backend: Any) -> str | None:
    """Why this backend must not hold our passwords, or None when it may."""
    from keyring.backends import chainer, fail

    name = _name(backend)
    if isinstance(backend, fail.Keyring):
        return (f"{name}: keyring found no backend; on a headless host install and unlock a "
                "Secret Service (gnome-keyring, KeePassXC) or use 'ask every time'")
    if isinstance(backend, chainer.ChainerBackend):
        chained = list(type(backend).backends)
        if not chained:
            return f"{name} has no backend to chain"
        # The chainer writes to the first backend that accepts: refuse a chain in which
        # a plaintext store could be that one, and judge the top backend on its own.
        plain = [b for b in chained if _is_plaintext(b)]
        if plain:
            return f"{name} chains {_name(plain[0])}, which keeps passwords in a plaintext file"
        why = _unusable_reason(chained[0])
        return f"{name} chains {why}" if why else None
    if _is_plaintext(backend):
        return f"{name} keeps passwords in a plaintext file"
    try:
        priority = _priority(backend)
    except Exception as exc:  # a backend reports "not available here" by raising
        return f"{name} is not available here: {exc}"
    if priority < 1:
        return f"{name} has priority {priority:g}: keyring does not recommend it"
    return None


def backend_status() -> BackendStatus:
    """Whether the current keyring backend can keep our passwords, and a line saying so."""
    backend = keyring.get_keyring()
    why = _unusable_reason(backend)
    if why:
        return BackendStatus(False, _name(backend),
                             f"No usable keyring backend ({why}): {ASK_EVERY_TIME}")
    return BackendStatus(True, _name(backend), f"passwords are kept in {_name(backend)}")


def key(profile: str, what: str) -> str:
    """The keyring user name for one secret of one profile: `<profile>/<what>`."""
    if what not in WHATS:
        raise ValueError(f"unknown secret {what!r}: one of {', '.join(WHATS)}")
    if not profile or "/" in profile or "\\" in profile:
        raise ValueError(f"invalid profile name {profile!r}")
    return f"{profile}/{what}"


def _unavailable(exc: Exception, doing: str) -> SecretsUnavailable:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return SecretsUnavailable(f"No usable keyring backend ({doing} failed: {detail}): "
                              f"{ASK_EVERY_TIME}")


def get(profile: str, what: str) -> str | None:
    """The stored secret, or None when there is none or no usable backend (then ask)."""
    username = key(profile, what)
    if not backend_status().usable:
        return None
    try:
        secret = keyring.get_password(SERVICE, username)
    except _keyring_errors() as exc:
        raise _unavailable(exc, f"reading {username}") from None
    return None if secret is None else str(secret)


def set(profile: str, what: str, secret: str) -> None:  # the facade's verb, as in keyring
    """Store a secret; SecretsUnavailable when no usable backend (never plaintext)."""
    username = key(profile, what)
    if not secret:
        raise ValueError(f"empty password for {username}: nothing stored")
    status = backend_status()
    if not status.usable:
        raise SecretsUnavailable(status.message)
    try:
        keyring.set_password(SERVICE, username, secret)
    except _keyring_errors() as exc:
        raise _unavailable(exc, f"storing {username}") from None


def delete(profile: str, what: str) -> bool:
    """Forget a secret; False when none was stored. SecretsUnavailable without a backend."""
    username = key(profile, what)
    status = backend_status()
    if not status.usable:
        raise SecretsUnavailable(status.message)
    try:
        keyring.delete_password(SERVICE, username)
    except keyring.errors.PasswordDeleteError:
        return False
    except _keyring_errors() as exc:
        raise _unavailable(exc, f"deleting {username}") from None
    return True
