"""wizard.core.lazy: a module stands in until first read, then is imported once, even when
two threads read it first at the same moment."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from wizard.core.lazy import lazy_module

SLOW_MODULE = '''
import time
from pathlib import Path
runs = Path(__file__).with_suffix(".runs")
runs.write_text(runs.read_text() + "x" if runs.exists() else "x")
time.sleep(0.2)  # long enough for a second thread's first read to arrive meanwhile
VALUE = 42
'''


@pytest.fixture
def slow_module(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "lazy_probe_mod.py").write_text(SLOW_MODULE)
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path / "lazy_probe_mod.runs"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("lazy_probe_mod", None)


def test_imported_on_first_read_once_for_two_threads(slow_module: Path) -> None:
    probe = lazy_module("lazy_probe_mod")
    assert "lazy_probe_mod" not in sys.modules
    assert not slow_module.exists()
    seen: list[int] = []
    readers = [threading.Thread(target=lambda: seen.append(probe.VALUE)) for _ in range(2)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    assert seen == [42, 42]
    assert slow_module.read_text() == "x"  # executed once
    assert probe.VALUE == 42
    assert "VALUE" in vars(probe)


def test_a_missing_module_fails_when_read() -> None:
    missing = lazy_module("no_such_module_for_lazy")
    with pytest.raises(ModuleNotFoundError, match="no_such_module_for_lazy"):
        _ = missing.anything
