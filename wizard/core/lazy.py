"""Modules imported when first used, not when the wizard starts (its first window waits
for every import): `redis = lazy_module("redis")` behaves as `import redis` from its first
attribute read on. Write the real import under `if TYPE_CHECKING:` next to it, so that
mypy checks the uses and PyInstaller's analysis still bundles the package."""

from __future__ import annotations

import importlib
import threading
from types import ModuleType
from typing import Any


class _Deferred(ModuleType):
    """Stands for a module until an attribute is read: then imports it (the import system's
    own locks make two threads' first reads safe, which importlib's LazyLoader is not
    before Python 3.12) and keeps its names, so later reads are plain lookups."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._lock = threading.Lock()

    def __getattr__(self, attr: str) -> Any:  # only for names not copied in yet
        with self._lock:
            module = importlib.import_module(self.__name__)
            vars(self).update(vars(module))
        return getattr(module, attr)


def lazy_module(name: str) -> ModuleType:
    return _Deferred(name)
