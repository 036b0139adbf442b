"""wizard/core (and the sandbox) must never import Qt: the CLI and the engine run headless.

pyproject.toml's import-linter contracts (`make lint`) check the imports written in our
code; this test imports every module and looks at sys.modules, which also catches Qt
pulled in by a third-party package or by an import built at run time.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import wizard.core
import wizard.sandbox

QT_FREE_PACKAGES = (wizard.core, wizard.sandbox)


def _modules() -> list[str]:
    names: list[str] = []
    for package in QT_FREE_PACKAGES:
        names.append(package.__name__)
        names += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
                  if not m.name.endswith("__main__")]
    return names


def test_every_core_module_imports_without_qt() -> None:
    modules = _modules()
    assert "wizard.core.fingerprint" in modules
    assert "wizard.sandbox.servers" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "qt = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6'))\n"
        "print(','.join(qt))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"Qt modules imported by the core: {result.stdout}"
