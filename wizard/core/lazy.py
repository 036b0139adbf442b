"""Modules imported when first used, not when the wizard starts (its first window waits
for every import): `redis = lazy_module("redis")` behaves as `import redis` from its first
attribute read on. Write the real import under `if TYPE_CHECKING:` next to it, so that
mypy checks the uses and PyInstaller's analysis still bundles the package."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
