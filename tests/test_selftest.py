"""`--self-test`: every check passes on this installation, and a failing one is named."""

from __future__ import annotations

import subprocess
import sys

import pytest

from wizard import selftest


def test_self_test_passes_headless() -> None:
    out = subprocess.run([sys.executable, "-m", "wizard", "--self-test"], capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    for name in ("SQL files", "resources", "modules", "keyring", "PDF", "window"):
        assert f"  ok    {name}: " in out.stdout
    assert out.stdout.rstrip().endswith("self-test passed")


def test_a_failing_check_is_named_and_exits_non_zero(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    def broken() -> str:
        raise FileNotFoundError("sql/catalog/discovery.sql is missing")

    monkeypatch.setattr(selftest, "CHECKS", [("SQL files", broken), ("fine", lambda: "ok")])
    assert selftest.run_self_test() == 1
    out = capsys.readouterr().out
    assert "  FAIL  SQL files: FileNotFoundError: sql/catalog/discovery.sql is missing" in out
    assert "  ok    fine: ok" in out
    assert "self-test FAILED: 1 check(s)" in out
