"""The keyring facade: round trip, and no storing at all without a usable backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import keyring
import keyring.backend
import keyring.backends.chainer
import keyring.backends.fail
import keyring.errors
import pytest

from wizard.core import secrets
from wizard.sandbox.memkeyring import MemoryKeyring

Install = Callable[[Any], Any]
UNUSABLE = "No usable keyring backend"
NO_PLAINTEXT = "nothing is stored in plaintext"


class _StandIn(MemoryKeyring):
    """Base of this file's stand-in backends: a dict, counting what reached it."""

    priority: float = 1


class PlaintextKeyring(_StandIn):
    """Stand-in for keyrings.alt.file.PlaintextKeyring (not installed, never depended on):
    same module and class name, and it claims a recommended priority."""


PlaintextKeyring.__module__ = "keyrings.alt.file"


class LowPriority(_StandIn):
    """Stand-in for a backend keyring itself marks as not recommended."""

    priority = 0.5


class Locked(_StandIn):
    """Stand-in for a Secret Service whose collection the user refused to unlock: a real
    locked keyring cannot be produced on a test machine."""

    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("Failed to unlock the collection!")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.KeyringLocked("Failed to unlock the collection!")


def _chainer(*backends: keyring.backend.KeyringBackend) -> keyring.backend.KeyringBackend:
    """A ChainerBackend over the given backends instead of every installed one."""
    cls = type("Chainer", (keyring.backends.chainer.ChainerBackend,),
               {"backends": list(backends), "__module__": "keyring.backends.chainer"})
    keyring.backend.KeyringBackend._classes.discard(cls)
    backend: keyring.backend.KeyringBackend = cls()
    return backend


# Keyring registers every backend class; the stand-ins must never join its own discovery.
for _cls in (_StandIn, PlaintextKeyring, LowPriority, Locked):
    keyring.backend.KeyringBackend._classes.discard(_cls)


@pytest.fixture
def use_backend() -> Iterator[Install]:
    """Install a backend for one test; the previous one comes back afterwards."""
    previous = keyring.get_keyring()

    def install(backend: keyring.backend.KeyringBackend) -> keyring.backend.KeyringBackend:
        keyring.set_keyring(backend)
        return backend

    try:
        yield install
    finally:
        keyring.set_keyring(previous)


def test_round_trip_through_the_facade(memory_keyring: Any) -> None:
    status = secrets.backend_status()
    assert status.usable, status.message
    assert "MemoryKeyring" in status.name
    secrets.set("prod", "postgres", "pg-secret")
    secrets.set("prod", "redis", "redis-secret")
    assert memory_keyring.secrets == {("enerlink-migrate", "prod/postgres"): "pg-secret",
                                      ("enerlink-migrate", "prod/redis"): "redis-secret"}
    assert secrets.get("prod", "postgres") == "pg-secret"
    assert secrets.get("prod", "smoke") is None
    assert secrets.delete("prod", "postgres") is True
    assert secrets.delete("prod", "postgres") is False
    assert secrets.get("prod", "postgres") is None


def test_no_backend_means_ask_every_time(no_keyring: None) -> None:
    status = secrets.backend_status()
    assert not status.usable
    assert status.name == "keyring.backends.fail.Keyring"
    assert UNUSABLE in status.message
    assert NO_PLAINTEXT in status.message
    assert secrets.get("prod", "postgres") is None
    with pytest.raises(secrets.SecretsUnavailable, match=NO_PLAINTEXT):
        secrets.set("prod", "postgres", "pg-secret")
    with pytest.raises(secrets.SecretsUnavailable):
        secrets.delete("prod", "postgres")


def test_a_plaintext_backend_is_never_used(use_backend: Install) -> None:
    plain = use_backend(PlaintextKeyring())
    status = secrets.backend_status()
    assert not status.usable
    assert "plaintext file" in status.message
    assert status.name == "keyrings.alt.file.PlaintextKeyring"
    with pytest.raises(secrets.SecretsUnavailable, match=UNUSABLE):
        secrets.set("prod", "postgres", "pg-secret")
    assert plain.secrets == {}
    plain.secrets[("enerlink-migrate", "prod/postgres")] = "left-by-someone"
    assert secrets.get("prod", "postgres") is None  # not even read back


@pytest.mark.parametrize(("backends", "usable", "why"), [
    ((), False, "no backend to chain"),
    ((_StandIn(),), True, ""),
    ((_StandIn(), PlaintextKeyring()), False, "plaintext"),
    ((LowPriority(),), False, "priority 0.5"),
], ids=["empty", "one-real", "real-and-plaintext", "low-priority"])
def test_chainer_is_judged_by_what_it_chains(use_backend: Install,
                                             backends: tuple[keyring.backend.KeyringBackend, ...],
                                             usable: bool, why: str) -> None:
    use_backend(_chainer(*backends))
    status = secrets.backend_status()
    assert status.usable is usable
    assert why in status.message


def test_low_priority_backend_is_not_used(use_backend: Install) -> None:
    low = use_backend(LowPriority())
    status = secrets.backend_status()
    assert not status.usable
    assert "priority 0.5" in status.message
    with pytest.raises(secrets.SecretsUnavailable):
        secrets.set("prod", "redis", "x")
    assert low.secrets == {}


def test_locked_keyring_becomes_one_message(use_backend: Install) -> None:
    use_backend(Locked())
    assert secrets.backend_status().usable  # nothing shows it is locked until it is asked
    with pytest.raises(secrets.SecretsUnavailable) as err:
        secrets.set("prod", "postgres", "pg-secret")
    assert "Failed to unlock" in str(err.value)
    assert NO_PLAINTEXT in str(err.value)
    with pytest.raises(secrets.SecretsUnavailable, match="reading prod/postgres"):
        secrets.get("prod", "postgres")


@pytest.mark.parametrize(("profile", "what"), [("a/b", "postgres"), ("", "postgres"),
                                               ("prod", "ssh")])
def test_bad_keys_are_refused(memory_keyring: Any, profile: str,
                              what: str) -> None:
    with pytest.raises(ValueError, match=r"invalid profile|unknown secret"):
        secrets.set(profile, what, "x")
    assert memory_keyring.secrets == {}


def test_empty_password_is_not_stored(memory_keyring: Any) -> None:
    with pytest.raises(ValueError, match="empty password"):
        secrets.set("prod", "postgres", "")
    assert memory_keyring.secrets == {}
